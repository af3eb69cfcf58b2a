/* kaaval.js — what every page of the board shares (window.kvl): the API's fetch wrapper
 * (the session's CSRF token on writes, the kiosk token of a wall screen's URL carried on
 * every call and every link), the login state, the top bar (Board / Map / Capacity /
 * Alerts, the search box, who is logged in), HTML escaping, number and time formats, and a
 * poller with a "last updated" clock that turns red when the screen stops updating.
 *
 * Never insert API text as HTML unescaped: build markup with kvl.esc() around every value.
 */
(function () {
    'use strict';

    const kvl = (window.kvl = window.kvl || {});
    const params = new URLSearchParams(window.location.search);
    kvl.params = params;
    kvl.kiosk = params.get('kiosk') || '';
    kvl.user = null; /* {user, role} once known */
    kvl.csrf = '';
    try {
        kvl.csrf = window.sessionStorage.getItem('kvl_csrf') || '';
    } catch (e) {
        kvl.csrf = '';
    }

    const ROLES = { none: 0, viewer: 1, operator: 2, admin: 3 };

    /* ---------------------------------------------------------------- text */

    const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
    kvl.esc = function (s) {
        if (s === null || s === undefined) {
            return '';
        }
        return String(s).replace(/[&<>"']/g, (c) => ESC[c]);
    };

    /* A query string from an object (null/undefined/'' values left out), with the kiosk
     * token when the page has one. */
    function query(q, withKiosk) {
        const u = new URLSearchParams();
        for (const [k, v] of Object.entries(q || {})) {
            if (v !== null && v !== undefined && v !== '') {
                u.set(k, String(v));
            }
        }
        if (withKiosk && kvl.kiosk && !u.has('kiosk')) {
            u.set('kiosk', kvl.kiosk);
        }
        const s = u.toString();
        return s ? '?' + s : '';
    }

    /* A link to another page of the board (keeps the kiosk token). */
    kvl.link = function (page, q) {
        return page + query(q, true);
    };

    /* ---------------------------------------------------------------- the API */

    kvl.ApiError = class extends Error {
        constructor(status, message) {
            super(message);
            this.status = status;
        }
    };

    /* fetch wrapper: kvl.api('/api/v1/sites', {query: {...}, method: 'POST', body: {...}}).
     * Resolves with the parsed JSON (null for an empty body); rejects with kvl.ApiError
     * (status, the server's sentence). */
    kvl.api = async function (path, opts) {
        opts = opts || {};
        const method = opts.method || 'GET';
        // X-Requested-With: the server then sends no Basic challenge on a 401, so the
        // browser shows the page's login form rather than its own password box.
        const headers = { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest' };
        const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
        if (opts.body !== undefined) {
            headers['Content-Type'] = 'application/json';
            init.body = JSON.stringify(opts.body);
        }
        if (method !== 'GET' && method !== 'HEAD' && kvl.csrf) {
            headers['X-CSRF-Token'] = kvl.csrf;
        }
        let r;
        try {
            r = await fetch(path + query(opts.query, method === 'GET'), init);
        } catch (e) {
            throw new kvl.ApiError(0, 'the collector does not answer (' + e.message + ')');
        }
        const text = await r.text();
        let body = null;
        if (text) {
            try {
                body = JSON.parse(text);
            } catch (e) {
                body = null;
            }
        }
        if (!r.ok) {
            const why = body && body.error ? body.error : r.status + ' ' + r.statusText;
            if (r.status === 401 && kvl.user !== null && path !== '/api/v1/login') {
                /* the session ended (expired, logged out elsewhere): show the login form */
                kvl.user = null;
                setCsrf('');
                renderWho();
            }
            throw new kvl.ApiError(r.status, why);
        }
        return body;
    };

    /* ---------------------------------------------------------------- login state */

    kvl.can = function (role) {
        return kvl.user !== null && (ROLES[kvl.user.role] || 0) >= (ROLES[role] || 99);
    };

    function setCsrf(t) {
        kvl.csrf = t || '';
        try {
            if (kvl.csrf) {
                window.sessionStorage.setItem('kvl_csrf', kvl.csrf);
            } else {
                window.sessionStorage.removeItem('kvl_csrf');
            }
        } catch (e) {
            /* no storage: whoami gives the token again */
        }
    }

    /* Who is this page's user: {user, role}, or null (not logged in). */
    kvl.whoami = async function () {
        try {
            const w = await kvl.api('/api/v1/whoami');
            kvl.user = { user: w.user, role: w.role };
            if (w.csrf_token) {
                setCsrf(w.csrf_token);
            }
        } catch (e) {
            if (e.status !== 401) {
                throw e;
            }
            kvl.user = null;
        }
        renderWho();
        return kvl.user;
    };

    kvl.login = async function (user, password) {
        const r = await kvl.api('/api/v1/login', { method: 'POST', body: { user, password } });
        setCsrf(r.csrf_token);
        kvl.user = { user: r.user, role: r.role };
        renderWho();
        document.dispatchEvent(new CustomEvent('kvl-auth', { detail: kvl.user }));
        return kvl.user;
    };

    kvl.logout = async function () {
        try {
            await kvl.api('/api/v1/logout', { method: 'POST' });
        } finally {
            setCsrf('');
            window.location.reload();
        }
    };

    /* ---------------------------------------------------------------- formats */

    kvl.pad = (n) => String(n).padStart(2, '0');
    kvl.clockText = function (d) {
        return kvl.pad(d.getHours()) + ':' + kvl.pad(d.getMinutes()) + ':' + kvl.pad(d.getSeconds());
    };
    /* "3 s", "4 min", "2 h 10 min", "3 d 4 h" from milliseconds */
    kvl.fmtAge = function (ms) {
        if (ms === null || ms === undefined || !isFinite(ms)) {
            return '–';
        }
        const s = Math.max(0, Math.round(ms / 1000));
        if (s < 60) {
            return s + ' s';
        }
        const m = Math.floor(s / 60);
        if (m < 60) {
            return m + ' min';
        }
        const h = Math.floor(m / 60);
        if (h < 48) {
            return h + ' h ' + (m % 60) + ' min';
        }
        return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
    };
    /* bits per second with a unit */
    kvl.fmtBits = function (bps) {
        if (bps === null || bps === undefined || !isFinite(bps)) {
            return '–';
        }
        const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
        let i = 0;
        while (Math.abs(bps) >= 1000 && i < units.length - 1) {
            bps /= 1000;
            i++;
        }
        return (bps >= 100 || i === 0 ? bps.toFixed(0) : bps.toFixed(1)) + ' ' + units[i];
    };
    kvl.fmtNum = function (v, digits) {
        if (v === null || v === undefined || !isFinite(v)) {
            return '–';
        }
        return Number(v).toFixed(digits === undefined ? 1 : digits);
    };
    kvl.plural = (n, word) => n + ' ' + word + (n === 1 ? '' : 's');
    kvl.stateClass = function (state) {
        const known = ['ok', 'warning', 'minor', 'major', 'critical', 'lost', 'unknown', 'stale', 'retired'];
        return 'st-' + (known.includes(state) ? state : 'unknown');
    };
    kvl.badge = function (state) {
        return '<span class="badge ' + kvl.stateClass(state) + '">' + kvl.esc(state) + '</span>';
    };

    /* ---------------------------------------------------------------- the site tree */

    /* {sites: [...]} → {byName, roots, children(name)} */
    kvl.siteTree = function (sites) {
        const byName = new Map();
        const kids = new Map();
        for (const s of sites) {
            byName.set(s.name, s);
            kids.set(s.name, []);
        }
        const roots = [];
        for (const s of sites) {
            if (s.parent && kids.has(s.parent)) {
                kids.get(s.parent).push(s);
            } else {
                roots.push(s);
            }
        }
        return { byName, roots, children: (n) => kids.get(n) || [] };
    };

    /* A site's tile: its label, kind, worst state and counts; links to site.html. */
    kvl.siteTile = function (s) {
        const t = s.subtree || {};
        const alerts = t.alerts || 0;
        return (
            '<a class="tile ' + kvl.stateClass(s.state) + '" data-site="' + kvl.esc(s.name) +
            '" data-state="' + kvl.esc(s.state) + '" href="' + kvl.esc(kvl.link('site.html', { site: s.name })) + '">' +
            '<div class="kind">' + kvl.esc(s.kind || 'site') + ' · <span class="state">' + kvl.esc(s.state) + '</span></div>' +
            '<div class="name">' + kvl.esc(s.label || s.name) + '</div>' +
            '<div class="counts">' + kvl.plural(t.devices || 0, 'device') + ' · ' + kvl.plural(t.agents || 0, 'agent') + ' · ' +
            kvl.plural(alerts, 'alert') + '</div></a>'
        );
    };

    /* ---------------------------------------------------------------- the top bar */

    function renderWho() {
        const who = document.getElementById('kvl-who');
        const form = document.getElementById('kvl-login');
        const out = document.getElementById('kvl-logout');
        if (!who || !form || !out) {
            return;
        }
        if (kvl.kiosk) {
            who.textContent = 'kiosk (read-only)';
            form.classList.add('hidden');
            out.classList.add('hidden');
            return;
        }
        const logged = kvl.user !== null && kvl.user.user !== 'anonymous';
        who.textContent = kvl.user === null ? 'not logged in' : logged ? kvl.user.user + ' (' + kvl.user.role + ')' : 'read-only view';
        form.classList.toggle('hidden', logged);
        out.classList.toggle('hidden', !logged);
    }

    /* Puts the top bar at the top of the page; `here` is 'board', 'map', 'capacity' or ''. */
    kvl.topbar = function (here) {
        let top = document.getElementById('kvl-top');
        if (!top) {
            top = document.createElement('header');
            top.id = 'kvl-top';
            document.body.insertBefore(top, document.body.firstChild);
        }
        const nav = [
            ['board', 'Board', 'index.html'],
            ['map', 'Map', 'map.html'],
            ['capacity', 'Capacity', 'capacity.html'],
            ['alerts', 'Alerts', 'index.html#alerts'],
        ];
        top.innerHTML =
            '<a class="brand" href="' + kvl.esc(kvl.link('index.html')) + '">kaaval</a><nav>' +
            nav.map(([k, label, href]) =>
                '<a id="kvl-nav-' + k + '"' + (k === here ? ' class="here"' : '') + ' href="' +
                kvl.esc(kvl.link(href.split('#')[0]) + (href.includes('#') ? '#' + href.split('#')[1] : '')) +
                '">' + label + '</a>').join('') +
            '</nav><span class="grow"></span>' +
            '<span id="kvl-search-box"><input id="kvl-search" type="search" placeholder="Search devices, interfaces, circuits" autocomplete="off">' +
            '<div id="kvl-search-results" class="hidden"></div></span>' +
            '<span class="clock" id="kvl-clock">not yet updated</span>' +
            '<span class="who" id="kvl-who"></span>' +
            '<form id="kvl-login" class="hidden"><input id="kvl-user" name="user" placeholder="user" autocomplete="username" size="10">' +
            '<input id="kvl-password" name="password" type="password" placeholder="password" autocomplete="current-password" size="10">' +
            '<button id="kvl-login-button" type="submit">Log in</button><span id="kvl-login-error" class="dim"></span></form>' +
            '<button id="kvl-logout" class="hidden" type="button">Log out</button>';
        document.getElementById('kvl-login').addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const err = document.getElementById('kvl-login-error');
            err.textContent = '';
            try {
                await kvl.login(document.getElementById('kvl-user').value, document.getElementById('kvl-password').value);
                document.getElementById('kvl-password').value = '';
            } catch (e) {
                err.textContent = e.message;
            }
        });
        document.getElementById('kvl-logout').addEventListener('click', () => kvl.logout());
        setupSearch();
        renderWho();
    };

    function setupSearch() {
        const input = document.getElementById('kvl-search');
        const box = document.getElementById('kvl-search-results');
        let timer = null;
        let seq = 0;
        const close = () => box.classList.add('hidden');
        input.addEventListener('keydown', (ev) => {
            if (ev.key === 'Escape') {
                close();
            }
        });
        document.addEventListener('click', (ev) => {
            if (!document.getElementById('kvl-search-box').contains(ev.target)) {
                close();
            }
        });
        input.addEventListener('input', () => {
            clearTimeout(timer);
            const q = input.value.trim();
            if (q.length < 2) {
                close();
                return;
            }
            timer = setTimeout(async () => {
                const mine = ++seq;
                let html;
                try {
                    const r = await kvl.api('/api/v1/search', { query: { q, limit: 15 } });
                    if (mine !== seq) {
                        return;
                    }
                    const rows = [];
                    for (const d of r.devices || []) {
                        rows.push('<a href="' + kvl.esc(kvl.link('device.html', { agent: d.agent, device: d.device })) + '">' +
                            '<b>' + kvl.esc(d.device) + '</b> <span class="dim">' + kvl.esc(d.site) + ' · ' +
                            kvl.esc(d.address || '') + ' ' + kvl.esc(d.sysName || '') + (d.retired ? ' · retired' : '') + '</span></a>');
                    }
                    for (const i of r.interfaces || []) {
                        rows.push('<a href="' + kvl.esc(kvl.link('graph.html', { agent: i.agent, device: i.device, interface: i.name })) + '">' +
                            kvl.esc(i.device) + ' <b>' + kvl.esc(i.name) + '</b> <span class="dim">' +
                            kvl.esc(i.ifAlias || i.ifDescr || '') + (i.retired ? ' · retired' : '') + '</span></a>');
                    }
                    html = rows.length ? rows.join('') : '<div class="dim">nothing found</div>';
                    if (r.truncated) {
                        html += '<div class="dim">more found: type more</div>';
                    }
                } catch (e) {
                    html = '<div class="dim">' + kvl.esc(e.message) + '</div>';
                }
                box.innerHTML = html;
                box.classList.remove('hidden');
            }, 250);
        });
    }

    /* ---------------------------------------------------------------- live updates */

    /* Runs `fn` (async) now and every `ms` after it finishes; the top bar's clock says when
     * the last round succeeded and turns red ("stale") when none did for 3 rounds and 5 s,
     * so a stalled wall screen is visible. `onError(e)` sees each failure. */
    kvl.poll = function (fn, ms, onError) {
        let last = 0;
        const tick = () => {
            const c = document.getElementById('kvl-clock');
            if (!c) {
                return;
            }
            if (last === 0) {
                c.textContent = 'not yet updated';
                return;
            }
            const age = Date.now() - last;
            const stale = age > 3 * ms + 5000;
            c.classList.toggle('stale', stale);
            c.textContent = (stale ? 'STALE: last updated ' : 'updated ') + kvl.clockText(new Date(last)) +
                (stale ? ' (' + kvl.fmtAge(age) + ' ago)' : '');
        };
        const round = async () => {
            try {
                await fn();
                last = Date.now();
            } catch (e) {
                if (onError) {
                    onError(e);
                }
            }
            tick();
            setTimeout(round, ms);
        };
        setInterval(tick, 1000);
        round();
    };

    /* Shows an error sentence in the element with this id (or clears it with ''). */
    kvl.showError = function (id, text) {
        const el = document.getElementById(id);
        if (!el) {
            return;
        }
        el.textContent = text || '';
        el.classList.toggle('hidden', !text);
    };
})();
