/* graph.js — the graph page (graph.html): an interface's traffic, errors and packets
 * (?agent=&device=&interface=), a link's latency, one-way delays and MOS (?agent=&target=),
 * a device's availability (?agent=&device=), a metric group's instance
 * (?agent=&device=&group=&instance=); or, as an alert's link gives it,
 * ?site=&device=&interface=&target=&from=&to=, the agent found through the inventory or the
 * links. Images from GET /api/v1/graph?format=json, whose geometry (graph_left,
 * graph_width, start, end) maps a rectangle dragged over the plot to a time range (zoom);
 * range buttons 1h .. 2y. While the collector has no graph API (404 for the route) the page
 * says "graph unavailable". */
(function () {
    'use strict';
    const kvl = window.kvl;
    const p = kvl.params;
    const sel = {
        agent: p.get('agent') || '',
        site: p.get('site') || '',
        device: p.get('device') || '',
        interface: p.get('interface') || '',
        target: p.get('target') || '',
        group: p.get('group') || '',
        instance: p.get('instance') || '',
    };
    let from = p.get('from') || '-1d';
    let to = p.get('to') || 'now';
    const RANGES = ['1h', '6h', '1d', '7d', '30d', '1y', '2y'];
    const MIN_SPAN_S = 3600;

    function kinds() {
        if (sel.target) {
            return ['latency', 'owd', 'mos'];
        }
        if (sel.interface) {
            return ['traffic', 'errors', 'packets'];
        }
        if (sel.group && sel.instance) {
            return ['group'];
        }
        return ['availability'];
    }

    /* The agent of an alert's link (site + device, or site + target). */
    async function resolveAgent() {
        if (sel.agent) {
            return;
        }
        if (sel.target) {
            const r = await kvl.api('/api/v1/links', { query: { site: sel.site || '*', instance: sel.target } });
            const l = (r.links || [])[0];
            if (l) {
                sel.agent = l.agent;
                return;
            }
        }
        if (sel.device) {
            const r = await kvl.api('/api/v1/devices', { query: { site: sel.site || undefined, limit: 10000 } });
            const d = (r.devices || []).find((x) => x.device === sel.device);
            if (d) {
                sel.agent = d.agent;
                sel.site = d.site;
                return;
            }
        }
        throw new kvl.ApiError(404, 'no agent found for ' + [sel.site, sel.device, sel.target].filter((x) => x).join(' / '));
    }

    function keepUrl() {
        const q = Object.assign({}, sel, { from, to });
        if (kvl.kiosk) {
            q.kiosk = kvl.kiosk;
        }
        const u = new URLSearchParams();
        for (const [k, v] of Object.entries(q)) {
            if (v) {
                u.set(k, v);
            }
        }
        window.history.replaceState(null, '', 'graph.html?' + u.toString());
    }

    function renderRanges() {
        document.getElementById('ranges').innerHTML =
            RANGES.map((r) => '<button data-range="' + r + '"' + (from === '-' + r && to === 'now' ? ' class="on"' : '') + '>' + r + '</button>').join('') +
            ' <span class="dim" id="range-text"></span> <span class="dim">drag over a graph to zoom</span>';
    }

    document.getElementById('ranges').addEventListener('click', (ev) => {
        const b = ev.target.closest('button[data-range]');
        if (b) {
            from = '-' + b.dataset.range;
            to = 'now';
            keepUrl();
            renderRanges();
            drawAll();
        }
    });

    function query(kind, width) {
        const q = { kind, agent: sel.agent, from, to, width, height: 250, format: 'json', theme: 'dark' };
        if (kind === 'latency' || kind === 'owd' || kind === 'mos') {
            q.target = sel.target;
        } else {
            q.device = sel.device;
            if (kind === 'group') {
                q.group = sel.group;
                q.instance = sel.instance;
            } else if (kind !== 'availability') {
                q.interface = sel.interface;
            }
        }
        return q;
    }

    async function draw(fig) {
        const kind = fig.dataset.kind;
        const width = Math.max(200, Math.min(3000, Math.floor(document.getElementById('graphs').clientWidth) - 120));
        const holder = fig.querySelector('.holder');
        try {
            const g = await kvl.api('/api/v1/graph', { query: query(kind, width) });
            if (!g || typeof g.image !== 'string' || !g.image.startsWith('data:image/')) {
                throw new kvl.ApiError(500, 'the graph API answered without an image');
            }
            let plot = holder.querySelector('.plot');
            if (!plot) {
                holder.innerHTML = '<div class="plot"><img class="graph" alt="' + kvl.esc(kind) + ' graph"><div class="zoom-box hidden"></div></div>';
                plot = holder.querySelector('.plot');
                setupZoom(plot);
            }
            plot.geometry = g;
            const img = plot.querySelector('img');
            img.src = g.image;
            img.dataset.start = g.start;
            img.dataset.end = g.end;
            fig.dataset.state = 'drawn';
            document.getElementById('range-text').textContent =
                new Date(g.start * 1000).toLocaleString() + ' – ' + new Date(g.end * 1000).toLocaleString();
        } catch (e) {
            fig.dataset.state = e.status === 404 ? 'unavailable' : 'error';
            holder.innerHTML = '<div class="unavailable">graph unavailable: ' + kvl.esc(e.message) + '</div>';
        }
    }

    function drawAll() {
        return Promise.all([...document.querySelectorAll('figure.graph')].map(draw));
    }

    /* Drag a rectangle over the plot: image pixels → seconds by the graph's geometry. */
    function setupZoom(plot) {
        const box = plot.querySelector('.zoom-box');
        let x0 = null;
        const imgX = (ev) => {
            const img = plot.querySelector('img');
            const r = img.getBoundingClientRect();
            const g = plot.geometry;
            const scale = g.image_width ? g.image_width / r.width : 1;
            return { css: ev.clientX - r.left, px: (ev.clientX - r.left) * scale, scale };
        };
        plot.addEventListener('mousedown', (ev) => {
            ev.preventDefault();
            x0 = imgX(ev);
            box.style.left = x0.css + 'px';
            box.style.width = '0px';
            box.classList.remove('hidden');
        });
        plot.addEventListener('mousemove', (ev) => {
            if (x0 === null) {
                return;
            }
            const x = imgX(ev);
            box.style.left = Math.min(x0.css, x.css) + 'px';
            box.style.width = Math.abs(x.css - x0.css) + 'px';
        });
        const end = (ev) => {
            if (x0 === null) {
                return;
            }
            const x1 = imgX(ev);
            const a = x0;
            x0 = null;
            box.classList.add('hidden');
            if (Math.abs(x1.css - a.css) < 5) {
                return; /* a click, not a drag */
            }
            const g = plot.geometry;
            const toTime = (px) => {
                const f = Math.max(0, Math.min(1, (px - g.graph_left) / g.graph_width));
                return g.start + f * (g.end - g.start);
            };
            let t0 = Math.floor(toTime(Math.min(a.px, x1.px)));
            let t1 = Math.ceil(toTime(Math.max(a.px, x1.px)));
            if (t1 - t0 < MIN_SPAN_S) {
                const mid = (t0 + t1) / 2;
                t0 = Math.floor(mid - MIN_SPAN_S / 2);
                t1 = t0 + MIN_SPAN_S;
            }
            from = String(t0);
            to = String(t1);
            keepUrl();
            renderRanges();
            drawAll();
        };
        plot.addEventListener('mouseup', end);
        plot.addEventListener('mouseleave', (ev) => {
            if (x0 !== null) {
                end(ev);
            }
        });
    }

    async function start() {
        kvl.topbar('');
        try {
            await kvl.whoami();
        } catch (e) {
            kvl.showError('graph-error', e.message);
        }
        if (kvl.user === null && !kvl.kiosk) {
            kvl.showError('graph-error', 'log in (top right) to see the graphs');
            await new Promise((res) => document.addEventListener('kvl-auth', res, { once: true }));
            kvl.showError('graph-error', '');
        }
        if (!sel.agent && sel.site && !sel.device && !sel.target) {
            /* an alert about a site as a whole (an agent lost): the site's page */
            window.location.replace(kvl.link('site.html', { site: sel.site }));
            return;
        }
        if (!sel.agent && !sel.site && !sel.device) {
            kvl.showError('graph-error', 'which graph? open this page as graph.html?agent=&device=&interface= or ?agent=&target=');
            return;
        }
        try {
            await resolveAgent();
        } catch (e) {
            kvl.showError('graph-error', e.message);
            return;
        }
        const what = sel.target
            ? sel.agent + ' → ' + sel.target
            : sel.device + (sel.interface ? ' ' + sel.interface : sel.group ? ' ' + sel.group + ' ' + sel.instance : '');
        document.title = 'kaaval — ' + what;
        document.getElementById('graph-title').textContent = what;
        document.getElementById('crumbs').innerHTML = '<a href="' + kvl.esc(kvl.link('index.html')) + '">Board</a>' +
            (sel.site ? ' › <a href="' + kvl.esc(kvl.link('site.html', { site: sel.site })) + '">' + kvl.esc(sel.site) + '</a>' : '') +
            (sel.device ? ' › <a href="' + kvl.esc(kvl.link('device.html', { agent: sel.agent, device: sel.device })) + '">' + kvl.esc(sel.device) + '</a>' : '');
        keepUrl();
        renderRanges();
        document.getElementById('graphs').innerHTML = kinds()
            .map((k) => '<figure class="graph" data-kind="' + k + '" id="graph-' + k + '"><figcaption>' + k + '</figcaption><div class="holder dim">drawing…</div></figure>')
            .join('');
        /* live while the range ends now: redrawn every minute */
        kvl.poll(async () => {
            if (to === 'now' || document.querySelector('figure.graph:not([data-state])')) {
                await drawAll();
            }
        }, 60000);
    }

    start();
})();
