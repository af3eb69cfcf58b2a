/* device.js — one device (device.html?agent=A&device=D): its labels from the inventory
 * (GET /api/v1/devices/<agent>/<device>), whether it answers (the latest `reachable`), its
 * firing alerts, and its interfaces with ifAlias (the circuit's name), speed, state and last
 * rates (GET /api/v1/latest); retired ones grey. Each interface links to its graphs. */
(function () {
    'use strict';
    const kvl = window.kvl;
    const agent = kvl.params.get('agent') || '';
    const device = kvl.params.get('device') || '';

    /* An interface's last values are stale when its device does not answer or when they
     * are older than 3 poll intervals (and 5 s). */
    function stale(v, devDown) {
        return devDown || !v || Date.now() - v.time_ms > 3000 * (v.interval_s || 60) + 5000;
    }

    function ifState(i, m, devDown) {
        if (i.retired) {
            return 'retired';
        }
        if (stale(m.oper_status, devDown)) {
            return 'stale';
        }
        if (m.admin_status && m.admin_status.value === 2) {
            return 'unknown'; /* shut down on purpose */
        }
        if (!m.oper_status || m.oper_status.value === null) {
            return 'unknown';
        }
        return m.oper_status.value === 1 ? 'ok' : 'critical';
    }

    async function refresh() {
        const path = '/api/v1/devices/' + encodeURIComponent(agent) + '/' + encodeURIComponent(device);
        const [d, latest, alerts] = await Promise.all([
            kvl.api(path),
            kvl.api('/api/v1/latest', { query: { agent, device, limit: 10000 } }),
            kvl.api('/api/v1/alerts', { query: { status: 'firing', device, limit: 500 } }),
        ]);
        const byIf = new Map();
        const dev = {};
        for (const v of latest.values || []) {
            if (v.scope === 'device') {
                dev[v.metric] = v;
            } else if (v.scope === 'interface') {
                if (!byIf.has(v.instance)) {
                    byIf.set(v.instance, {});
                }
                byIf.get(v.instance)[v.metric] = v;
            }
        }
        const mine = (Array.isArray(alerts) ? alerts : []).filter((a) => !a.labels || !a.labels.site || a.labels.site === d.site);
        let st = d.retired ? 'retired' : !dev.reachable || dev.reachable.value === null ? 'unknown'
            : stale(dev.reachable, false) ? 'stale' : dev.reachable.value ? 'ok' : 'critical';
        if (st === 'ok' && mine.some((a) => a.severity !== 'info')) {
            st = mine.some((a) => a.severity === 'critical') ? 'critical' : 'warning';
        }
        const devDown = !dev.reachable || dev.reachable.value === 0 || stale(dev.reachable, false);
        document.title = 'kaaval — ' + device;
        document.getElementById('crumbs').innerHTML = '<a href="' + kvl.esc(kvl.link('index.html')) + '">Board</a> › <a href="' +
            kvl.esc(kvl.link('site.html', { site: d.site })) + '">' + kvl.esc(d.site) + '</a> › ' + kvl.esc(agent);
        document.getElementById('device-title').innerHTML = kvl.esc(device) + ' ' + kvl.badge(st) + ' <span class="dim">' +
            kvl.esc(d.address) + (dev.response_ms && dev.response_ms.value !== null ? ' · ' + kvl.fmtNum(dev.response_ms.value, 0) + ' ms' : '') +
            (d.retired ? ' · retired ' + kvl.esc(d.retired) : '') + '</span>';
        document.getElementById('device-title').dataset.state = st;

        document.getElementById('device-alerts').innerHTML = mine.length
            ? mine.map((a) => '<div>' + kvl.badge(a.severity === 'info' || a.severity === 'warning' ? 'warning' : a.severity) + ' ' +
                  kvl.esc(a.summary || a.rule) + ' <span class="dim">since ' + kvl.esc(a.starts_at) + (a.ack ? ' · acknowledged by ' + kvl.esc(a.ack.by) : '') + '</span></div>').join('')
            : '<span class="dim">nothing firing</span>';

        const rate = (v) => (v && v.rate !== null && v.rate !== undefined ? v.rate * 8 : null);
        const ifs = (d.interface_list || []).slice().sort((a, b) => (a.ifIndex ?? 1e12) - (b.ifIndex ?? 1e12));
        document.getElementById('interfaces').innerHTML = ifs.length
            ? '<tr><th>state</th><th>interface</th><th>ifAlias (circuit)</th><th>ifDescr</th><th class="num">speed</th><th class="num">in</th><th class="num">out</th><th class="num">util %</th></tr>' +
              ifs.map((i) => {
                  const m = byIf.get(i.name) || {};
                  const s = ifState(i, m, devDown);
                  const speed = m.speed_bps && m.speed_bps.value ? m.speed_bps.value : i.speed;
                  const inb = rate(m.in_octets);
                  const outb = rate(m.out_octets);
                  const util = speed && (inb !== null || outb !== null) ? (100 * Math.max(inb || 0, outb || 0)) / speed : null;
                  return '<tr class="' + (s === 'retired' ? 'retired' : '') + '" data-interface="' + kvl.esc(i.name) + '" data-state="' + s + '">' +
                      '<td>' + kvl.badge(s) + '</td><td><a href="' + kvl.esc(kvl.link('graph.html', { agent, device, interface: i.name })) + '">' +
                      kvl.esc(i.name) + '</a></td><td>' + kvl.esc(i.ifAlias) + '</td><td class="dim">' + kvl.esc(i.ifDescr) + '</td>' +
                      '<td class="num">' + kvl.fmtBits(speed) + '</td><td class="num">' + kvl.fmtBits(inb) + '</td><td class="num">' +
                      kvl.fmtBits(outb) + '</td><td class="num">' + kvl.fmtNum(util, 1) + '</td></tr>';
              }).join('')
            : '<tr><td class="dim">no interfaces reported</td></tr>';

        const labels = Object.entries(d.labels || {});
        document.getElementById('labels').innerHTML = labels.length
            ? labels.map(([k, v]) => '<tr><th>' + kvl.esc(k) + '</th><td>' + kvl.esc(v) + '</td></tr>').join('') +
              '<tr><th>first seen</th><td>' + kvl.esc(d.first_seen) + '</td></tr><tr><th>last seen</th><td>' + kvl.esc(d.last_seen) + '</td></tr>'
            : '<tr><td class="dim">no labels reported yet</td></tr>';
        const ch = d.changes || [];
        document.getElementById('changes').innerHTML = ch.length
            ? '<tr><th>at</th><th>interface</th><th>label</th><th>was</th><th>now</th></tr>' +
              ch.map((c) => '<tr><td>' + kvl.esc(c.at) + '</td><td>' + kvl.esc(c.interface) + '</td><td>' + kvl.esc(c.key) +
                  '</td><td>' + kvl.esc(c.old) + '</td><td>' + kvl.esc(c.new) + '</td></tr>').join('')
            : '<tr><td class="dim">none</td></tr>';
        kvl.showError('device-error', '');
    }

    async function start() {
        kvl.topbar('');
        if (!agent || !device) {
            kvl.showError('device-error', 'which device? open this page as device.html?agent=A&device=D (from a site)');
            return;
        }
        try {
            await kvl.whoami();
        } catch (e) {
            kvl.showError('device-error', e.message);
        }
        const go = () => kvl.poll(refresh, 2000, (e) => kvl.showError('device-error', e.message));
        if (kvl.user === null && !kvl.kiosk) {
            kvl.showError('device-error', 'log in (top right) to see this device');
            document.addEventListener('kvl-auth', go, { once: true });
            return;
        }
        go();
    }

    start();
})();
