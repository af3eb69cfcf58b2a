/* site.js — one site (site.html?site=NAME): where it sits in the tree, the sites below it as
 * tiles, its devices with their state (reachable from /api/v1/latest, firing alerts,
 * retired from the inventory), its agents and the links they measure. Polled every 2 s. */
(function () {
    'use strict';
    const kvl = window.kvl;
    const site = kvl.params.get('site') || '';
    const RANK = { ok: 0, unknown: 1, stale: 1, warning: 2, minor: 3, major: 4, lost: 5, critical: 6 };
    const worse = (a, b) => ((RANK[b] ?? 0) > (RANK[a] ?? 0) ? b : a);

    function deviceState(d, reach, alertsByDevice) {
        if (d.retired) {
            return 'retired';
        }
        let st = !reach || reach.value === null ? 'unknown'
            : Date.now() - reach.time_ms > 3000 * (reach.interval_s || 60) + 5000 ? 'stale'
            : reach.value ? 'ok' : 'critical';
        for (const a of alertsByDevice.get(d.device) || []) {
            st = worse(st, a.severity === 'info' ? 'ok' : a.severity);
        }
        return st;
    }

    async function refresh() {
        const [sites, devs, reach, agents, links, alerts] = await Promise.all([
            kvl.api('/api/v1/sites'),
            kvl.api('/api/v1/devices', { query: { site, retired: 'all', limit: 10000 } }),
            kvl.api('/api/v1/latest', { query: { site, scope: 'device', metric: 'reachable', limit: 10000 } }),
            kvl.api('/api/v1/agents'),
            kvl.api('/api/v1/links', { query: { site } }),
            kvl.api('/api/v1/alerts', { query: { status: 'firing', site, limit: 500 } }),
        ]);
        const t = kvl.siteTree(sites.sites || []);
        const me = t.byName.get(site);
        if (!me) {
            throw new kvl.ApiError(404, 'no site named "' + site + '" in the tree');
        }
        document.title = 'kaaval — ' + (me.label || me.name);
        const chain = [];
        for (let p = me.parent; p && t.byName.has(p) && chain.length < 64; p = t.byName.get(p).parent) {
            chain.unshift(t.byName.get(p));
        }
        document.getElementById('crumbs').innerHTML = '<a href="' + kvl.esc(kvl.link('index.html')) + '">Board</a>' +
            chain.map((s) => ' › <a href="' + kvl.esc(kvl.link('site.html', { site: s.name })) + '">' + kvl.esc(s.label || s.name) + '</a>').join('');
        document.getElementById('site-title').innerHTML = kvl.esc(me.label || me.name) + ' <span class="dim">' +
            kvl.esc(me.kind || '') + '</span> ' + kvl.badge(me.state);
        const kids = t.children(site);
        document.getElementById('children').innerHTML = kids.length ? kids.map(kvl.siteTile).join('') : '<span class="dim">none</span>';

        const alertsByDevice = new Map();
        for (const a of Array.isArray(alerts) ? alerts : []) {
            const d = (a.labels || {}).device;
            if (d) {
                alertsByDevice.set(d, (alertsByDevice.get(d) || []).concat([a]));
            }
        }
        const reachOf = new Map((reach.values || []).map((v) => [v.agent + '\t' + v.device, v]));
        const rows = (devs.devices || []).map((d) => {
            const st = deviceState(d, reachOf.get(d.agent + '\t' + d.device), alertsByDevice);
            const why = (alertsByDevice.get(d.device) || []).map((a) => a.summary || a.rule).join('; ');
            return '<tr class="' + (st === 'retired' ? 'retired' : '') + '" data-device="' + kvl.esc(d.device) + '" data-state="' + kvl.esc(st) + '">' +
                '<td>' + kvl.badge(st) + '</td><td><a href="' + kvl.esc(kvl.link('device.html', { agent: d.agent, device: d.device })) + '">' +
                kvl.esc(d.device) + '</a></td><td>' + kvl.esc(d.address) + '</td><td>' + kvl.esc(d.sysName) + '</td>' +
                '<td class="num">' + kvl.esc(d.interfaces) + '</td><td>' + kvl.esc(d.agent) + '</td><td class="dim">' + kvl.esc(why) + '</td></tr>';
        });
        document.getElementById('devices').innerHTML = rows.length
            ? '<tr><th>state</th><th>device</th><th>address</th><th>sysName</th><th class="num">interfaces</th><th>agent</th><th>why</th></tr>' + rows.join('')
            : '<tr><td class="dim">no devices reported at this site</td></tr>';

        const mine = (agents.agents || []).filter((a) => a.site === site);
        document.getElementById('agents').innerHTML = mine.length
            ? '<tr><th>state</th><th>agent</th><th>version</th><th>last batch</th></tr>' +
              mine.map((a) => '<tr><td>' + kvl.badge(a.lost ? 'lost' : a.connected ? 'ok' : 'unknown') + '</td><td>' + kvl.esc(a.id) +
                  '</td><td>' + kvl.esc(a.version) + '</td><td>' + (a.last_batch_ms ? kvl.fmtAge(Date.now() - a.last_batch_ms) + ' ago' : '–') + '</td></tr>').join('')
            : '<tr><td class="dim">no agent at this site</td></tr>';

        const ls = links.links || [];
        document.getElementById('links').innerHTML = ls.length
            ? '<tr><th>agent → target</th><th class="num">loss %</th><th class="num">RTT ms</th><th class="num">MOS</th></tr>' +
              ls.map((l) => '<tr><td><a href="' + kvl.esc(kvl.link('graph.html', { agent: l.agent, target: l.target })) + '">' +
                  kvl.esc(l.agent) + ' → ' + kvl.esc(l.target) + '</a></td><td class="num">' + kvl.fmtNum(l.loss_pct, 1) +
                  '</td><td class="num">' + kvl.fmtNum(l.rtt_ms, 1) + '</td><td class="num">' + kvl.fmtNum(l.mos, 2) + '</td></tr>').join('')
            : '<tr><td class="dim">no links measured from this site</td></tr>';
        kvl.showError('site-error', '');
    }

    async function start() {
        kvl.topbar('');
        if (!site) {
            kvl.showError('site-error', 'which site? open this page as site.html?site=NAME (from the board)');
            return;
        }
        try {
            await kvl.whoami();
        } catch (e) {
            kvl.showError('site-error', e.message);
        }
        const go = () => kvl.poll(refresh, 2000, (e) => kvl.showError('site-error', e.message));
        if (kvl.user === null && !kvl.kiosk) {
            kvl.showError('site-error', 'log in (top right) to see this site');
            document.addEventListener('kvl-auth', go, { once: true });
            return;
        }
        go();
    }

    start();
})();
