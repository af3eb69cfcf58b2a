/* board.js — the NOC board (index.html): the site tree as tiles coloured by each site's
 * worst state (GET /api/v1/sites), the firing alerts with their age and, for operators, an
 * Acknowledge button (GET /api/v1/alerts, POST /api/v1/alerts/<fingerprint>/ack), the worst
 * links (GET /api/v1/links: loss, then RTT) and the busiest interfaces (GET /api/v1/latest:
 * the larger of the in and out rates over the speed). Polled every 2 s (the interfaces every
 * 10 s); the top bar's clock says when the screen last updated. */
(function () {
    'use strict';
    const kvl = window.kvl;
    const POLL_MS = 2000;
    const BUSY_EVERY = 5; /* rounds between two reads of the interfaces' rates */
    const TOP_N = 10;
    let round = 0;
    let alerts = [];

    /* ---------------------------------------------------------------- the site tree */

    function renderTree(sites) {
        const t = kvl.siteTree(sites);
        const html = [];
        const flat = (s, out) => {
            for (const c of t.children(s.name)) {
                out.push(kvl.siteTile(c));
                flat(c, out);
            }
            return out;
        };
        for (const root of t.roots) {
            if (root.name === 'unplaced' && t.children(root.name).length === 0) {
                continue;
            }
            html.push('<div class="root-site">' + kvl.siteTile(root));
            const loose = [];
            html.push('<div class="districts">');
            for (const d of t.children(root.name)) {
                const inner = flat(d, []);
                if (inner.length === 0) {
                    loose.push(kvl.siteTile(d));
                    continue;
                }
                html.push('<div class="district">' + kvl.siteTile(d) + '<div class="tiles">' + inner.join('') + '</div></div>');
            }
            html.push('</div>');
            if (loose.length) {
                html.push('<div class="tiles">' + loose.join('') + '</div>');
            }
            html.push('</div>');
        }
        document.getElementById('tree').innerHTML = html.join('') || '<p class="dim">no sites yet: name them under <code>sites:</code> in collector.yaml</p>';
    }

    /* ---------------------------------------------------------------- alerts */

    function graphLink(a) {
        const l = a.labels || {};
        return kvl.link('graph.html', { site: l.site, device: l.device, interface: l.interface, target: l.target });
    }

    function renderAlerts() {
        const now = Date.now();
        const canAck = kvl.can('operator') && !kvl.kiosk;
        const rank = { critical: 0, major: 1, minor: 2, warning: 3, info: 4 };
        /* alerts held back behind a root cause (the topology's cut) go last, dimmed */
        const held = (a) => (typeof a.suppressed === 'string' ? 1 : 0);
        alerts.sort((x, y) => held(x) - held(y) || (rank[x.severity] ?? 9) - (rank[y.severity] ?? 9) || Date.parse(x.starts_at) - Date.parse(y.starts_at));
        const nHeld = alerts.filter(held).length;
        document.getElementById('alert-count').textContent = '(' + alerts.length + (nHeld ? ', ' + nHeld + ' held back behind a root cause' : '') + ')';
        if (alerts.length === 0) {
            document.getElementById('alert-list').innerHTML = '<p class="dim">nothing firing</p>';
            return;
        }
        document.getElementById('alert-list').innerHTML = alerts
            .map((a) => {
                const l = a.labels || {};
                const where = [l.site, l.device, l.interface, l.target].filter((x) => x).join(' · ');
                const age = kvl.fmtAge(now - Date.parse(a.starts_at));
                const ack = a.ack
                    ? '<span class="dim ack-state">acknowledged by ' + kvl.esc(a.ack.by) + '</span>'
                    : canAck
                    ? '<button class="ack" data-fp="' + kvl.esc(a.fingerprint) + '">Acknowledge</button>'
                    : '';
                const why = held(a) ? ' · held back: ' + kvl.esc(a.suppressed) : '';
                return (
                    '<div class="alert' + (a.ack ? ' acked' : '') + (held(a) ? ' suppressed' : '') + '" data-fp="' + kvl.esc(a.fingerprint) + '">' +
                    kvl.badge(a.severity === 'warning' || a.severity === 'info' ? 'warning' : a.severity) +
                    '<a class="what" href="' + kvl.esc(graphLink(a)) + '">' + kvl.esc(a.summary || a.rule) + '</a>' +
                    '<span class="age" title="since ' + kvl.esc(a.starts_at) + '">' + kvl.esc(age) + '</span>' +
                    '<span class="where dim">' + kvl.esc(a.rule) + (where ? ' · ' + kvl.esc(where) : '') + why + '</span>' +
                    '<span>' + ack + '</span></div>'
                );
            })
            .join('');
    }

    document.getElementById('alert-list').addEventListener('click', async (ev) => {
        const b = ev.target.closest('button.ack');
        if (!b) {
            return;
        }
        b.disabled = true;
        try {
            await kvl.api('/api/v1/alerts/' + encodeURIComponent(b.dataset.fp) + '/ack', {
                method: 'POST',
                body: { comment: 'acknowledged on the board' },
            });
            kvl.showError('board-error', '');
            await refreshAlerts();
        } catch (e) {
            b.disabled = false;
            kvl.showError('board-error', 'acknowledging failed: ' + e.message);
        }
    });

    async function refreshAlerts() {
        const r = await kvl.api('/api/v1/alerts', { query: { status: 'firing', limit: 500 } });
        alerts = Array.isArray(r) ? r : r.alerts || [];
        renderAlerts();
    }

    /* ---------------------------------------------------------------- top-N lists */

    function renderLinks(links) {
        const worst = links
            .filter((l) => l.loss_pct !== null || l.rtt_ms !== null)
            .sort((a, b) => (b.loss_pct ?? -1) - (a.loss_pct ?? -1) || (b.rtt_ms ?? -1) - (a.rtt_ms ?? -1))
            .slice(0, TOP_N);
        document.getElementById('links-table').innerHTML = worst.length
            ? '<tr><th>from → to</th><th class="num">loss %</th><th class="num">RTT ms</th><th class="num">MOS</th></tr>' +
              worst.map((l) => {
                  const st = l.loss_pct >= 100 ? 'critical' : l.loss_pct > 2 ? 'major' : l.loss_pct > 0 ? 'warning' : 'ok';
                  return '<tr data-state="' + st + '"><td><a href="' + kvl.esc(kvl.link('graph.html', { agent: l.agent, target: l.target })) + '">' +
                      kvl.esc(l.site) + ' → ' + kvl.esc(l.target) + '</a></td>' +
                      '<td class="num">' + (st === 'ok' ? '' : kvl.badge(st) + ' ') + kvl.fmtNum(l.loss_pct, 1) + '</td>' +
                      '<td class="num">' + kvl.fmtNum(l.rtt_ms, 1) + '</td><td class="num">' + kvl.fmtNum(l.mos, 2) + '</td></tr>';
              }).join('')
            : '<tr><td class="dim">no link measurements yet</td></tr>';
    }

    async function refreshBusy() {
        const get = (metric) => kvl.api('/api/v1/latest', { query: { scope: 'interface', metric, limit: 10000 } });
        const [ins, outs, speeds] = await Promise.all([get('in_octets'), get('out_octets'), get('speed_bps')]);
        const key = (v) => v.agent + '\t' + v.device + '\t' + v.instance;
        /* rates older than 3 polls behind the newest one (a silent device's last rates)
         * are left out; the collector's own times, so the browser's clock does not matter */
        let newest = 0;
        for (const v of ins.values || []) {
            newest = Math.max(newest, v.time_ms);
        }
        const fresh = (v) => newest - v.time_ms <= 3000 * (v.interval_s || 60);
        const rows = new Map();
        for (const v of speeds.values || []) {
            if (v.value > 0) {
                rows.set(key(v), { agent: v.agent, site: v.site, device: v.device, iface: v.instance, speed: v.value, inb: null, outb: null });
            }
        }
        for (const [list, k] of [[ins, 'inb'], [outs, 'outb']]) {
            for (const v of list.values || []) {
                const r = rows.get(key(v));
                if (r && v.rate !== null && v.rate !== undefined && fresh(v)) {
                    r[k] = v.rate * 8;
                }
            }
        }
        const busy = [...rows.values()]
            .filter((r) => r.inb !== null || r.outb !== null)
            .map((r) => Object.assign(r, { util: (100 * Math.max(r.inb || 0, r.outb || 0)) / r.speed }))
            .sort((a, b) => b.util - a.util)
            .slice(0, TOP_N);
        document.getElementById('busy-table').innerHTML = busy.length
            ? '<tr><th>interface</th><th class="num">in</th><th class="num">out</th><th class="num">util %</th></tr>' +
              busy.map((r) => {
                  const st = r.util >= 90 ? 'critical' : r.util >= 80 ? 'warning' : '';
                  return '<tr><td><a href="' + kvl.esc(kvl.link('graph.html', { agent: r.agent, device: r.device, interface: r.iface })) + '">' +
                      kvl.esc(r.device) + ' ' + kvl.esc(r.iface) + '</a> <span class="dim">' + kvl.esc(r.site) + '</span></td>' +
                      '<td class="num">' + kvl.fmtBits(r.inb) + '</td><td class="num">' + kvl.fmtBits(r.outb) + '</td>' +
                      '<td class="num">' + (st ? kvl.badge(st) + ' ' : '') + kvl.fmtNum(r.util, 1) + '</td></tr>';
              }).join('')
            : '<tr><td class="dim">no interface rates yet</td></tr>';
    }

    /* ---------------------------------------------------------------- the loop */

    async function refresh() {
        const [sites, , links] = await Promise.all([kvl.api('/api/v1/sites'), refreshAlerts(), kvl.api('/api/v1/links')]);
        renderTree(sites.sites || []);
        renderLinks(links.links || []);
        if (round++ % BUSY_EVERY === 0) {
            await refreshBusy();
        }
        kvl.showError('board-error', '');
    }

    async function start() {
        kvl.topbar('board');
        try {
            await kvl.whoami();
        } catch (e) {
            kvl.showError('board-error', e.message);
        }
        document.addEventListener('kvl-auth', () => {
            renderAlerts();
            refresh().catch(() => {});
        });
        if (kvl.user === null && !kvl.kiosk) {
            kvl.showError('board-error', 'log in (top right) to see the board, or open it with a kiosk link (?kiosk=<viewer token>)');
            document.addEventListener('kvl-auth', () => kvl.poll(refresh, POLL_MS, (e) => kvl.showError('board-error', e.message)), { once: true });
            return;
        }
        kvl.poll(refresh, POLL_MS, (e) => kvl.showError('board-error', e.message));
    }

    start();
})();
