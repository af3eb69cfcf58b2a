/* capacity.js — the capacity pages' own code (capacity.html, report.html): the API
   GET /api/v1/capacity?days=&site=&agent=&device=&format= read with the browser's session
   (or the page's ?kiosk= token), a sortable table, the CSV link, a small login form when
   the collector answers 401. Works without kaaval.js and style.css (the board's); every
   text from the collector goes into the page as text, never as HTML. */
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var kiosk = params.get("kiosk");

  function apiUrl(path, query) {
    var q = new URLSearchParams();
    Object.keys(query || {}).forEach(function (k) {
      if (query[k] !== undefined && query[k] !== null && query[k] !== "") q.set(k, query[k]);
    });
    if (kiosk) q.set("kiosk", kiosk);
    var s = q.toString();
    return path + (s ? "?" + s : "");
  }

  /* Resolves with the JSON; rejects with {status, message}. */
  function getJson(path, query) {
    return fetch(apiUrl(path, query), {
      credentials: "same-origin",
      headers: { "X-Requested-With": "XMLHttpRequest" }
    }).then(function (r) {
      return r.text().then(function (t) {
        var body = null;
        try { body = t ? JSON.parse(t) : null; } catch (e) { body = null; }
        if (!r.ok) {
          throw { status: r.status, message: (body && body.error) || ("HTTP " + r.status) };
        }
        return body;
      });
    });
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmtBps(v) {
    if (v === null || v === undefined) return "–";
    var u = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"], i = 0;
    /* 999999.99 is "1.00 Mbit/s", not "1000 kbit/s" */
    while (Math.abs(v) >= 999.5 && i < u.length - 1) { v /= 1000; i++; }
    return v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2) + " " + u[i];
  }
  function fmtPct(v) { return v === null || v === undefined ? "–" : v.toFixed(1) + " %"; }
  function fmtDays(v) { return v === null || v === undefined ? "never" : v < 1 ? "now" : Math.floor(v) + " d"; }
  function fmtMin(v) { return v === null || v === undefined ? "–" : v < 100 ? v.toFixed(0) + " min" : (v / 60).toFixed(1) + " h"; }

  /* An interface's utilisation that matters: the higher direction's 95th percentile. */
  function p95Pct(o) {
    var a = o.in && o.in.p95_pct, b = o.out && o.out.p95_pct;
    if (a === null || a === undefined) return b === undefined ? null : b;
    if (b === null || b === undefined) return a;
    return Math.max(a, b);
  }

  function graphLink(o) {
    var q = new URLSearchParams({ agent: o.agent, device: o.device, interface: o.interface });
    if (kiosk) q.set("kiosk", kiosk);
    return "graph.html?" + q.toString();
  }

  /* A table whose header cells sort it: cols [{key, label, get, fmt, num}]. */
  function sortableTable(table, cols, rows, rowClass, firstSort) {
    var thead = table.tHead, tbody = table.tBodies[0];
    var sort = firstSort || { col: 0, dir: 1 };
    function render() {
      var c = cols[sort.col];
      var sorted = rows.slice().sort(function (a, b) {
        var x = c.get(a), y = c.get(b);
        if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
        if (y === null || y === undefined) return -1;
        if (typeof x === "string") return sort.dir * x.localeCompare(y);
        return sort.dir * (x - y);
      });
      thead.textContent = "";
      var tr = el("tr");
      cols.forEach(function (col, i) {
        var th = el("th", { "class": "sortable" + (col.num ? " num" : ""), scope: "col" }, col.label);
        if (i === sort.col) th.setAttribute("aria-sort", sort.dir > 0 ? "ascending" : "descending");
        th.addEventListener("click", function () {
          sort = { col: i, dir: i === sort.col ? -sort.dir : (col.num ? -1 : 1) };
          render();
        });
        tr.appendChild(th);
      });
      thead.appendChild(tr);
      tbody.textContent = "";
      sorted.forEach(function (o) {
        var row = el("tr", { "class": rowClass ? rowClass(o) : "" });
        cols.forEach(function (col) {
          var td = el("td", { "class": col.num ? "num" : "" });
          if (col.link) {
            var a = el("a", { href: col.link(o) }, col.fmt ? col.fmt(col.get(o)) : col.get(o));
            td.appendChild(a);
          } else {
            var v = col.get(o);
            td.textContent = col.fmt ? col.fmt(v) : (v === null || v === undefined ? "–" : v);
          }
          row.appendChild(td);
        });
        tbody.appendChild(row);
      });
    }
    render();
  }

  function utilClass(o) {
    var p = p95Pct(o), d = o.days_to_80;
    if (o.retired) return "retired";
    if ((p !== null && p >= 80) || d === 0) return "hot";
    if ((p !== null && p >= 60) || (d !== null && d !== undefined && d < 90)) return "warm";
    return "";
  }

  var ifaceCols = [
    { label: "Site", get: function (o) { return o.site; } },
    { label: "Device", get: function (o) { return o.device; } },
    { label: "Interface", get: function (o) { return o.interface; }, link: graphLink },
    { label: "Circuit", get: function (o) { return o.circuit; } },
    { label: "Speed", num: true, get: function (o) { return o.speed_bps; }, fmt: fmtBps },
    { label: "In avg", num: true, get: function (o) { return o.in && o.in.avg_bps; }, fmt: fmtBps },
    { label: "In 95th", num: true, get: function (o) { return o.in && o.in.p95_bps; }, fmt: fmtBps },
    { label: "In peak", num: true, get: function (o) { return o.in && o.in.peak_bps; }, fmt: fmtBps },
    { label: "Out avg", num: true, get: function (o) { return o.out && o.out.avg_bps; }, fmt: fmtBps },
    { label: "Out 95th", num: true, get: function (o) { return o.out && o.out.p95_bps; }, fmt: fmtBps },
    { label: "Out peak", num: true, get: function (o) { return o.out && o.out.peak_bps; }, fmt: fmtBps },
    { label: "95th util.", num: true, get: p95Pct, fmt: fmtPct },
    { label: "Trend / day", num: true, get: function (o) { return o.trend_bps_per_day; }, fmt: fmtBps },
    { label: "Days to 80 %", num: true, get: function (o) { return o.days_to_80; }, fmt: fmtDays },
  ];
  var circuitCols = [
    { label: "Circuit", get: function (o) { return o.circuit; } },
    { label: "Ends", get: function (o) {
        return o.members.map(function (m) { return m.device + " " + m.interface; }).join(", ");
      } },
    { label: "Speed", num: true, get: function (o) { return o.speed_bps; }, fmt: fmtBps },
    { label: "95th", num: true, get: function (o) { return o.p95_bps; }, fmt: fmtBps },
    { label: "95th util.", num: true, get: function (o) { return o.p95_pct; }, fmt: fmtPct },
    { label: "Peak util.", num: true, get: function (o) { return o.peak_pct; }, fmt: fmtPct },
    { label: "Trend / day", num: true, get: function (o) { return o.trend_bps_per_day; }, fmt: fmtBps },
    { label: "Days to 80 %", num: true, get: function (o) { return o.days_to_80; }, fmt: fmtDays },
  ];
  var availCols = function (first) {
    return first.concat([
      { label: "Availability", num: true, get: function (o) { return o.availability_pct; },
        fmt: function (v) { return v === null || v === undefined ? "–" : v.toFixed(3) + " %"; } },
      { label: "Outage", num: true, get: function (o) { return o.outage_minutes; }, fmt: fmtMin },
      { label: "Unknown", num: true, get: function (o) { return o.unknown_minutes; }, fmt: fmtMin },
    ]);
  };
  var siteCols = availCols([
    { label: "Site", get: function (o) { return o.site; } },
    { label: "Devices", num: true, get: function (o) { return o.devices; } },
    { label: "Links", num: true, get: function (o) { return o.links; } },
  ]);
  var deviceCols = availCols([
    { label: "Site", get: function (o) { return o.site; } },
    { label: "Agent", get: function (o) { return o.agent; } },
    { label: "Device", get: function (o) { return o.device; } },
  ]);
  var linkCols = availCols([
    { label: "Site", get: function (o) { return o.site; } },
    { label: "Agent", get: function (o) { return o.agent; } },
    { label: "Target", get: function (o) { return o.target; } },
  ]);

  /* A login form in place (when the page has no session and no kiosk token). */
  function showLogin(box, then) {
    box.textContent = "";
    var f = el("form", { "class": "cap-login" });
    f.appendChild(el("p", null, "Log in to read the capacity report."));
    var u = el("input", { name: "user", autocomplete: "username", required: "" });
    var p = el("input", { name: "password", type: "password", autocomplete: "current-password", required: "" });
    f.appendChild(el("label", null, "User")); f.appendChild(u);
    f.appendChild(el("label", null, "Password")); f.appendChild(p);
    var msg = el("p", { "class": "cap-error" });
    f.appendChild(el("button", { type: "submit" }, "Log in"));
    f.appendChild(msg);
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      fetch("/api/v1/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest" },
        body: JSON.stringify({ user: u.value, password: p.value }),
      }).then(function (r) {
        if (!r.ok) throw new Error(r.status === 401 ? "wrong user name or password" : "HTTP " + r.status);
        box.textContent = "";
        then();
      }).catch(function (e) { msg.textContent = e.message; });
    });
    box.appendChild(f);
  }

  function fillSites(select, chosen) {
    return getJson("/api/v1/sites").then(function (b) {
      (b && b.sites || []).forEach(function (s) {
        if (s.name === "unplaced") return;
        var o = el("option", { value: s.name }, s.label && s.label !== s.name ? s.label + " (" + s.name + ")" : s.name);
        if (s.name === chosen) o.selected = true;
        select.appendChild(o);
      });
    }).catch(function () { /* the list is a convenience: the report works without it */ })
      .then(function () {
        if (chosen && select.value !== chosen) {
          select.appendChild(el("option", { value: chosen }, chosen));
          select.value = chosen;
        }
      });
  }

  /* The report; while the collector computes another one (503), asked again a few times. */
  function report(query, tries) {
    tries = tries === undefined ? 10 : tries;
    return getJson("/api/v1/capacity", query).catch(function (e) {
      if (!e || e.status !== 503 || tries <= 0) throw e;
      return new Promise(function (ok) { setTimeout(ok, 3000); }).then(function () {
        return report(query, tries - 1);
      });
    });
  }

  /* the board's top bar (navigation, search, login) when kaaval.js is there */
  function topbar() {
    if (window.kvl && window.kvl.topbar) {
      window.kvl.topbar("capacity");
      window.kvl.whoami().catch(function () {});
    }
  }

  function tablePage() {
    topbar();
    var $ = function (id) { return document.getElementById(id); };
    var status = $("status");
    var q = { days: params.get("days") || "30", site: params.get("site") || "",
              agent: params.get("agent") || "", device: params.get("device") || "" };
    $("days").value = q.days;
    $("agent").value = q.agent;
    $("device").value = q.device;
    function load() {
      var query = { days: q.days, site: q.site, agent: q.agent, device: q.device };
      $("csv").setAttribute("href", apiUrl("/api/v1/capacity", Object.assign({ format: "csv" }, query)));
      var rq = new URLSearchParams({ days: q.days });
      if (q.site) rq.set("site", q.site);
      if (kiosk) rq.set("kiosk", kiosk);
      $("report").setAttribute("href", "report.html?" + rq.toString());
      status.textContent = "Reading the archives…";
      status.className = "cap-note";
      report(query).then(function (a) {
        status.textContent = a.interfaces.length + " interfaces, " + a.devices.length + " devices, " +
          a.links.length + " links over " + a.days + " days (" + new Date(a.from * 1000).toISOString().slice(0, 10) +
          " to " + new Date(a.to * 1000).toISOString().slice(0, 10) + "); resolution " +
          (a.resolution_s ? a.resolution_s + " s" : "–") +
          (a.resolution_s && a.resolution_s !== a.resolution_wanted_s ? " (the 5-minute archive does not cover the period)" : "") +
          (a.cached ? "; from the cache" : "");
        sortableTable($("ifaces"), ifaceCols, a.interfaces, utilClass, { col: 11, dir: -1 });
        sortableTable($("circuits"), circuitCols, a.circuits || [], function (o) {
          return utilClass({ in: { p95_pct: o.p95_pct }, days_to_80: o.days_to_80 });
        }, { col: 4, dir: -1 });
        sortableTable($("sites"), siteCols, a.sites, null, { col: 3, dir: 1 });
        sortableTable($("devices"), deviceCols, a.devices, null, { col: 3, dir: 1 });
        sortableTable($("links"), linkCols, a.links, null, { col: 3, dir: 1 });
      }).catch(function (e) {
        if (e && e.status === 401 && !kiosk) {
          status.textContent = "Not logged in.";
          showLogin($("login"), function () { fillSites($("site"), q.site).then(load); });
          return;
        }
        status.textContent = (e && e.message) || String(e);
        status.className = "cap-error";
      });
    }
    $("filters").addEventListener("submit", function (ev) {
      ev.preventDefault();
      q = { days: $("days").value, site: $("site").value, agent: $("agent").value.trim(),
            device: $("device").value.trim() };
      var u = new URLSearchParams();
      Object.keys(q).forEach(function (k) { if (q[k]) u.set(k, q[k]); });
      if (kiosk) u.set("kiosk", kiosk);
      window.history.replaceState(null, "", "?" + u.toString());
      load();
    });
    fillSites($("site"), q.site).then(load);
  }

  window.KvlCap = {
    params: params, apiUrl: apiUrl, getJson: getJson, el: el, report: report,
    fmtBps: fmtBps, fmtPct: fmtPct, fmtDays: fmtDays, fmtMin: fmtMin, p95Pct: p95Pct,
    graphLink: graphLink, sortableTable: sortableTable, showLogin: showLogin,
    fillSites: fillSites, utilClass: utilClass, tablePage: tablePage, topbar: topbar,
  };
})();
