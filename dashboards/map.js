/*
 * map.js — the weathermap (map.html): reads GET /api/v1/map every 5 s and draws the site
 * tree as SVG. Layout: one layer per depth in the tree (roots — the NOCs — on top), each
 * leaf a slot of its own and a parent centred over its children, in name order, so the
 * same tree always gets the same picture; a site's x/y hints (percent) fix it instead.
 * Edges are coloured by utilisation (the larger direction) or, toggled, by loss, with the
 * figure drawn on the edge; nodes by state. A refresh updates attributes and texts in place;
 * the drawing is rebuilt only when the tree itself changed. Clicks: a node opens
 * site.html?site=, an edge its uplink's graph (graph.html?agent=&device=&interface=), or its
 * link's when it has no uplink interface. A ?kiosk= token is carried to every call and link.
 * Over the map, the topology's root causes (GET /api/v1/topology): one line per cause that
 * cuts something off, with the sites behind it.
 * Needs nothing else; uses nothing of kaaval.js (the board's shared script) either.
 */
(function () {
    "use strict";

    var SVGNS = "http://www.w3.org/2000/svg";
    var REFRESH_MS = 5000;
    var W = 1000; /* the drawing's width in SVG units (it scales to the window) */
    var LAYER_H = 150;
    var MARGIN = 110; /* room for a label centred on the outermost node */

    /* The weathermap scales: [upper bound (inclusive), class]; beyond the last: red. */
    var UTIL_SCALE = [[25, "w0"], [50, "w1"], [75, "w2"], [90, "w3"]];
    var UTIL_LABELS = ["0–25 %", "25–50 %", "50–75 %", "75–90 %", "> 90 %"];
    var LOSS_SCALE = [[0, "w0"], [1, "w1"], [5, "w2"], [20, "w3"]];
    var LOSS_LABELS = ["0 %", "≤ 1 %", "1–5 %", "5–20 %", "> 20 %"];
    var STATES = ["ok", "warning", "minor", "major", "lost", "critical", "unknown"];

    var params = new URLSearchParams(window.location.search);
    var kiosk = params.get("kiosk");
    var colourBy = params.get("by") === "loss" ? "loss" : "util";
    var svg = document.getElementById("map");
    var statusEl = document.getElementById("map-status");
    var drawn = null; /* {shape: string, nodes: {name: {g, circle, state}}, edges: {...}} */
    var last = null;
    var timer = null;

    function withKiosk(url) {
        if (!kiosk) {
            return url;
        }
        return url + (url.indexOf("?") < 0 ? "?" : "&") + "kiosk=" + encodeURIComponent(kiosk);
    }

    function link(page, args) {
        var q = new URLSearchParams();
        Object.keys(args).forEach(function (k) {
            if (args[k] !== null && args[k] !== undefined) {
                q.set(k, args[k]);
            }
        });
        if (kiosk) {
            q.set("kiosk", kiosk);
        }
        return page + "?" + q.toString();
    }

    function el(name, attrs, parent) {
        var e = document.createElementNS(SVGNS, name);
        Object.keys(attrs || {}).forEach(function (k) {
            e.setAttribute(k, attrs[k]);
        });
        if (parent) {
            parent.appendChild(e);
        }
        return e;
    }

    function setStatus(text, bad) {
        statusEl.textContent = text;
        statusEl.classList.toggle("bad", !!bad);
    }

    /* ------------------------------------------------------------------ layout ---------- */

    function layout(nodes) {
        var byName = {}, kids = {}, roots = [];
        nodes.forEach(function (n) {
            byName[n.name] = n;
            kids[n.name] = [];
        });
        nodes.forEach(function (n) {
            if (n.parent !== null && byName[n.parent]) {
                kids[n.parent].push(n);
            } else {
                roots.push(n);
            }
        });
        var kindOrder = {noc: 0, sdc: 1, dhq: 2, bhq: 3, minipop: 4, lsgi: 5};
        function cmp(a, b) {
            var ka = a.kind in kindOrder ? kindOrder[a.kind] : 9;
            var kb = b.kind in kindOrder ? kindOrder[b.kind] : 9;
            if (ka !== kb) {
                return ka - kb;
            }
            return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
        }
        roots.sort(cmp);
        Object.keys(kids).forEach(function (k) {
            kids[k].sort(cmp);
        });
        /* depth and leaf slots, iteratively (a deep tree must not overflow the stack) */
        var pos = {}, slot = 0, depthMax = 0;
        var stack = roots.slice().reverse().map(function (n) {
            return {n: n, depth: 0, done: false};
        });
        while (stack.length) {
            var top = stack.pop();
            var n = top.n, ch = kids[n.name];
            if (top.done || ch.length === 0) {
                var x;
                if (ch.length === 0) {
                    x = slot++;
                } else {
                    x = (pos[ch[0].name].slot + pos[ch[ch.length - 1].name].slot) / 2;
                }
                pos[n.name] = {slot: x, depth: top.depth};
                depthMax = Math.max(depthMax, top.depth);
                continue;
            }
            stack.push({n: n, depth: top.depth, done: true});
            for (var i = ch.length - 1; i >= 0; i--) {
                stack.push({n: ch[i], depth: top.depth + 1, done: false});
            }
        }
        var slots = Math.max(slot, 1);
        var height = 2 * MARGIN + depthMax * LAYER_H;
        var out = {};
        nodes.forEach(function (n) {
            var p = pos[n.name] || {slot: 0, depth: 0};
            var x = MARGIN + (slots === 1 ? (W - 2 * MARGIN) / 2 : (p.slot * (W - 2 * MARGIN)) / (slots - 1));
            var y = MARGIN + p.depth * LAYER_H;
            if (typeof n.x === "number") {
                x = MARGIN + (n.x * (W - 2 * MARGIN)) / 100;
            }
            if (typeof n.y === "number") {
                y = MARGIN + (n.y * (height - 2 * MARGIN)) / 100;
            }
            out[n.name] = {x: x, y: y};
        });
        return {pos: out, height: height, slots: slots};
    }

    /* ------------------------------------------------------------------ colours --------- */

    function scaleClass(v, scale) {
        if (v === null || v === undefined) {
            return "wu";
        }
        for (var i = 0; i < scale.length; i++) {
            if (v <= scale[i][0]) {
                return scale[i][1];
            }
        }
        return "w4";
    }

    function pct(v) {
        if (v === null || v === undefined) {
            return "–";
        }
        return (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + " %";
    }

    function bps(v) {
        if (v === null || v === undefined) {
            return "?";
        }
        var units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"], i = 0;
        while (v >= 1000 && i < units.length - 1) {
            v /= 1000;
            i++;
        }
        return v.toFixed(v >= 100 ? 0 : 1) + " " + units[i];
    }

    function edgeKey(e) {
        return e.site + "\u0000" + e.parent;
    }

    function edgeTitle(e) {
        var t = e.site + " → " + e.parent + ": " + e.state;
        if (e.uplink) {
            t += "\nuplink " + e.uplink.device + " " + e.uplink.interface +
                (e.uplink.agent ? " (agent " + e.uplink.agent + ")" : " (no agent reports it)");
        }
        t += "\nin " + bps(e.in_bps) + " (" + pct(e.util_in_pct) + "), out " + bps(e.out_bps) +
            " (" + pct(e.util_out_pct) + ") of " + bps(e.speed_bps);
        if (e.oper_status) {
            t += ", " + e.oper_status;
        }
        if (e.link) {
            t += "\nlink " + e.link.agent + " → " + e.link.target + ": loss " + pct(e.loss_pct) +
                ", RTT " + (e.rtt_ms === null ? "–" : e.rtt_ms.toFixed(1) + " ms");
        }
        return t;
    }

    function edgeHref(e) {
        if (e.uplink && e.uplink.agent) {
            return link("graph.html", {agent: e.uplink.agent, device: e.uplink.device, interface: e.uplink.interface});
        }
        if (e.link) {
            return link("graph.html", {agent: e.link.agent, target: e.link.target});
        }
        return null;
    }

    /* ------------------------------------------------------------------ drawing --------- */

    function shapeOf(m) {
        return JSON.stringify([
            m.nodes.map(function (n) {
                return [n.name, n.parent, n.kind, n.label, n.x, n.y];
            }),
            m.edges.map(edgeKey)
        ]);
    }

    function go(href) {
        if (href) {
            window.location.href = href;
        }
    }

    function build(m) {
        while (svg.firstChild) {
            svg.removeChild(svg.firstChild);
        }
        var L = layout(m.nodes);
        svg.setAttribute("viewBox", "0 0 " + W + " " + L.height);
        var r = Math.max(6, Math.min(22, (W - 2 * MARGIN) / L.slots / 3));
        var gEdges = el("g", {"class": "edges"}, svg);
        var gNodes = el("g", {"class": "nodes"}, svg);
        var d = {shape: shapeOf(m), nodes: {}, edges: {}, r: r};
        m.edges.forEach(function (e) {
            var a = L.pos[e.site], b = L.pos[e.parent];
            if (!a || !b) {
                return;
            }
            var g = el("g", {"class": "edge", tabindex: "0"}, gEdges);
            var title = el("title", {}, g);
            el("line", {"class": "hit", x1: a.x, y1: a.y, x2: b.x, y2: b.y}, g);
            var line = el("line", {"class": "bar", x1: a.x, y1: a.y, x2: b.x, y2: b.y}, g);
            var mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
            var box = el("rect", {"class": "tag", x: mx - 28, y: my - 12, width: 56, height: 24, rx: 5}, g);
            var text = el("text", {"class": "tag", x: mx, y: my + 6, "text-anchor": "middle"}, g);
            var entry = {g: g, line: line, box: box, text: text, title: title, href: null};
            g.addEventListener("click", function () {
                go(entry.href);
            });
            g.addEventListener("keydown", function (ev) {
                if (ev.key === "Enter") {
                    go(entry.href);
                }
            });
            d.edges[edgeKey(e)] = entry;
        });
        m.nodes.forEach(function (n) {
            var p = L.pos[n.name];
            var g = el("g", {"class": "node", tabindex: "0", transform: "translate(" + p.x + "," + p.y + ")"}, gNodes);
            var title = el("title", {}, g);
            var circle = el("circle", {r: r}, g);
            var label = el("text", {"class": "label", y: r + 18, "text-anchor": "middle"}, g);
            label.textContent = n.label || n.name;
            var href = link("site.html", {site: n.name});
            g.addEventListener("click", function () {
                go(href);
            });
            g.addEventListener("keydown", function (ev) {
                if (ev.key === "Enter") {
                    go(href);
                }
            });
            d.nodes[n.name] = {g: g, circle: circle, title: title};
        });
        drawn = d;
    }

    function setClass(node, base, cls) {
        var want = base + " " + cls;
        if (node.getAttribute("class") !== want) {
            node.setAttribute("class", want);
        }
    }

    function setText(node, text) {
        if (node.textContent !== text) {
            node.textContent = text;
        }
    }

    function update(m) {
        if (!drawn || drawn.shape !== shapeOf(m)) {
            build(m);
        }
        m.nodes.forEach(function (n) {
            var d = drawn.nodes[n.name];
            var st = STATES.indexOf(n.state) >= 0 ? n.state : "unknown";
            setClass(d.g, "node", "st-" + st);
            setText(d.title, (n.label || n.name) + " (" + (n.kind || "unplaced") + "): " + n.state +
                "\nagents " + n.subtree.agents + ", devices " + n.subtree.devices +
                ", firing alerts " + n.subtree.alerts);
        });
        m.edges.forEach(function (e) {
            var d = drawn.edges[edgeKey(e)];
            if (!d) {
                return;
            }
            var v = colourBy === "loss" ? e.loss_pct : e.util_pct;
            var cls = scaleClass(v, colourBy === "loss" ? LOSS_SCALE : UTIL_SCALE);
            if (e.oper_status && e.oper_status !== "up" && e.oper_status !== "dormant") {
                cls = "w4 down";
            }
            setClass(d.g, "edge", cls + " st-" + e.state);
            setText(d.text, v === null || v === undefined ? (e.state === "unknown" ? "?" : "–") : pct(v));
            setText(d.title, edgeTitle(e));
            d.href = edgeHref(e);
            d.g.classList.toggle("nolink", !d.href);
        });
    }

    function legend() {
        var box = document.getElementById("map-legend");
        while (box.firstChild) {
            box.removeChild(box.firstChild);
        }
        var h = document.createElement("h2");
        h.textContent = colourBy === "loss" ? "Edge: loss" : "Edge: utilisation";
        box.appendChild(h);
        var labels = colourBy === "loss" ? LOSS_LABELS : UTIL_LABELS;
        var rows = labels.map(function (t, i) {
            return ["w" + i, t];
        });
        rows.push(["wu", "no data"]);
        rows.forEach(function (r) {
            var p = document.createElement("div");
            var sw = document.createElement("span");
            sw.className = "swatch " + r[0];
            p.appendChild(sw);
            p.appendChild(document.createTextNode(r[1]));
            box.appendChild(p);
        });
        var h2 = document.createElement("h2");
        h2.textContent = "Site: state";
        box.appendChild(h2);
        STATES.forEach(function (s) {
            var p = document.createElement("div");
            var sw = document.createElement("span");
            sw.className = "dot st-" + s;
            p.appendChild(sw);
            p.appendChild(document.createTextNode(s));
            box.appendChild(p);
        });
    }

    function setColourBy(by) {
        colourBy = by;
        document.getElementById("map-by-util").setAttribute("aria-pressed", by === "util" ? "true" : "false");
        document.getElementById("map-by-loss").setAttribute("aria-pressed", by === "loss" ? "true" : "false");
        legend();
        if (last) {
            update(last);
        }
    }

    /* ------------------------------------------------------------------ data ------------ */

    function showLogin(show) {
        document.getElementById("map-login").hidden = !show;
        document.getElementById("map-wrap").hidden = show;
    }

    /* The topology's root causes (GET /api/v1/topology) over the map: what failed first on
     * the way from the NOC and the sites it cuts off, one line each; hidden when none. */
    function showCauses() {
        var box = document.getElementById("map-causes");
        fetch(withKiosk("/api/v1/topology"), {
            credentials: "same-origin",
            cache: "no-store",
            headers: {"X-Requested-With": "XMLHttpRequest"}
        })
            .then(function (r) {
                return r.ok ? r.json() : null;
            })
            .then(function (t) {
                var causes = t && Array.isArray(t.causes) ? t.causes.filter(function (c) {
                    return c.cut && (c.cut.sites + c.cut.agents + c.cut.devices) > 0;
                }) : [];
                box.hidden = causes.length === 0;
                box.textContent = "";
                causes.forEach(function (c) {
                    var li = document.createElement("li");
                    var sites = c.sites_cut || [];
                    li.textContent = c.name + ": " + c.reason + " — cuts off " + c.cut.sites +
                        " site" + (c.cut.sites === 1 ? "" : "s") + ", " + c.cut.agents + " agent" +
                        (c.cut.agents === 1 ? "" : "s") + ", " + c.cut.devices + " device" +
                        (c.cut.devices === 1 ? "" : "s") +
                        (sites.length ? " (" + sites.slice(0, 20).join(", ") +
                            (sites.length > 20 ? ", …" : "") + ")" : "");
                    box.appendChild(li);
                });
            })
            .catch(function () {
                box.hidden = true; /* the map's own status says when the server is away */
            });
    }

    function refresh() {
        timer = null;
        /* X-Requested-With: a script's call, for a server that then leaves out
         * WWW-Authenticate on a 401 (browsers answer that header with a dialog of their own) */
        fetch(withKiosk("/api/v1/map"), {
            credentials: "same-origin",
            cache: "no-store",
            headers: {"X-Requested-With": "XMLHttpRequest"}
        })
            .then(function (r) {
                if (r.status === 401 && !kiosk) {
                    showLogin(true);
                    setStatus("not logged in", true);
                    return null;
                }
                if (!r.ok) {
                    return r.json().catch(function () {
                        return {};
                    }).then(function (b) {
                        throw new Error("HTTP " + r.status + (b.error ? ": " + b.error : ""));
                    });
                }
                return r.json();
            })
            .then(function (m) {
                if (m) {
                    showLogin(false);
                    last = m;
                    update(m);
                    showCauses();
                    setStatus("updated " + new Date(m.time_ms).toLocaleTimeString() + " · " +
                        m.nodes.length + " sites, " + m.edges.length + " links", false);
                }
            })
            .catch(function (err) {
                setStatus("update failed: " + err.message + " (showing the last map)", true);
            })
            .then(function () {
                if (timer === null && document.getElementById("map-login").hidden) {
                    timer = window.setTimeout(refresh, REFRESH_MS);
                }
            });
    }

    document.getElementById("map-login").addEventListener("submit", function (ev) {
        ev.preventDefault();
        var f = ev.target;
        var errEl = document.getElementById("map-login-error");
        errEl.textContent = "";
        fetch("/api/v1/login", {
            method: "POST",
            credentials: "same-origin",
            headers: {"Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest"},
            body: JSON.stringify({user: f.elements.user.value, password: f.elements.password.value})
        }).then(function (r) {
            if (!r.ok) {
                throw new Error(r.status === 401 ? "wrong user or password" : "HTTP " + r.status);
            }
            f.elements.password.value = "";
            showLogin(false);
            refresh();
        }).catch(function (err) {
            errEl.textContent = err.message;
        });
    });
    document.getElementById("map-by-util").addEventListener("click", function () {
        setColourBy("util");
    });
    document.getElementById("map-by-loss").addEventListener("click", function () {
        setColourBy("loss");
    });
    setColourBy(colourBy);
    /* the board's top bar (navigation, search, login) when kaaval.js is there */
    if (window.kvl && window.kvl.topbar) {
        window.kvl.topbar("map");
        window.kvl.whoami().catch(function () {});
    }
    refresh();
})();
