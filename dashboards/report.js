/* report.js — the printable capacity report (report.html): a site (and everything under it)
   or the whole state over 30/90/365 days: a summary, the ten most utilised circuits, the
   circuits with the fewest days to 80 %, availability by site. Built on capacity.js's
   helpers (KvlCap); prints to PDF from the browser (capacity.css's @media print). */
(function () {
  "use strict";
  var C = window.KvlCap;
  var $ = function (id) { return document.getElementById(id); };
  var q = { days: C.params.get("days") || "30", site: C.params.get("site") || "" };

  function name(o) { return o.circuit ? o.circuit + " (" + o.device + " " + o.interface + ")" : o.device + " " + o.interface; }

  var circuitCols = [
    { label: "Circuit", get: name, link: C.graphLink },
    { label: "Site", get: function (o) { return o.site; } },
    { label: "Speed", num: true, get: function (o) { return o.speed_bps; }, fmt: C.fmtBps },
    { label: "In 95th", num: true, get: function (o) { return o.in && o.in.p95_bps; }, fmt: C.fmtBps },
    { label: "Out 95th", num: true, get: function (o) { return o.out && o.out.p95_bps; }, fmt: C.fmtBps },
    { label: "95th util.", num: true, get: C.p95Pct, fmt: C.fmtPct },
    { label: "Trend / day", num: true, get: function (o) { return o.trend_bps_per_day; }, fmt: C.fmtBps },
    { label: "Days to 80 %", num: true, get: function (o) { return o.days_to_80; }, fmt: C.fmtDays },
  ];
  var siteCols = [
    { label: "Site", get: function (o) { return o.site; } },
    { label: "Devices", num: true, get: function (o) { return o.devices; } },
    { label: "Links", num: true, get: function (o) { return o.links; } },
    { label: "Availability", num: true, get: function (o) { return o.availability_pct; },
      fmt: function (v) { return v === null || v === undefined ? "–" : v.toFixed(3) + " %"; } },
    { label: "Outage", num: true, get: function (o) { return o.outage_minutes; }, fmt: C.fmtMin },
    { label: "Unknown", num: true, get: function (o) { return o.unknown_minutes; }, fmt: C.fmtMin },
  ];

  function card(box, label, value) {
    var d = C.el("div");
    d.appendChild(C.el("b", null, value));
    d.appendChild(C.el("span", null, label));
    box.appendChild(d);
  }

  function render(a) {
    var day = function (t) { return new Date(t * 1000).toISOString().slice(0, 10); };
    $("title").textContent = "Capacity report — " + (q.site || "the whole state") + ", " +
      day(a.from) + " to " + day(a.to);
    $("status").textContent = "Generated " + new Date().toISOString().slice(0, 16).replace("T", " ") +
      " UTC; resolution " + (a.resolution_s ? a.resolution_s + " s" : "–") + ".";
    var live = a.interfaces.filter(function (o) { return !o.retired && o.samples > 0; });
    var utils = live.map(C.p95Pct).filter(function (v) { return v !== null && v !== undefined; });
    var up = 0, down = 0, outage = 0;
    a.sites.forEach(function (s) { up += s.up_minutes; down += s.outage_minutes; outage += s.outage_minutes; });
    var box = $("summary");
    box.textContent = "";
    card(box, "circuits measured", live.length);
    card(box, "mean 95th percentile utilisation", utils.length ? C.fmtPct(utils.reduce(function (x, y) { return x + y; }, 0) / utils.length) : "–");
    card(box, "circuits above 80 % (95th)", utils.filter(function (v) { return v >= 80; }).length);
    card(box, "circuits reaching 80 % within 90 days", live.filter(function (o) { return o.days_to_80 !== null && o.days_to_80 < 90; }).length);
    card(box, "availability (devices and links)", up + down > 0 ? (100 * up / (up + down)).toFixed(3) + " %" : "–");
    card(box, "outage (device- and link-time)", C.fmtMin(outage));
    var top = live.filter(function (o) { return C.p95Pct(o) !== null; })
      .sort(function (x, y) { return C.p95Pct(y) - C.p95Pct(x); }).slice(0, 10);
    C.sortableTable($("top"), circuitCols, top, C.utilClass, { col: 5, dir: -1 });
    var fill = live.filter(function (o) { return o.days_to_80 !== null && o.days_to_80 !== undefined; })
      .sort(function (x, y) { return x.days_to_80 - y.days_to_80; }).slice(0, 10);
    C.sortableTable($("fill"), circuitCols, fill, C.utilClass, { col: 7, dir: 1 });
    C.sortableTable($("sites"), siteCols, a.sites, null, { col: 3, dir: 1 });
  }

  function load() {
    var rq = new URLSearchParams({ days: q.days });
    if (q.site) rq.set("site", q.site);
    if (C.params.get("kiosk")) rq.set("kiosk", C.params.get("kiosk"));
    $("table").setAttribute("href", "capacity.html?" + rq.toString());
    $("status").textContent = "Reading the archives…";
    C.report({ days: q.days, site: q.site }).then(render).catch(function (e) {
      if (e && e.status === 401 && !C.params.get("kiosk")) {
        $("status").textContent = "Not logged in.";
        C.showLogin($("login"), function () { C.fillSites($("site"), q.site).then(load); });
        return;
      }
      $("status").textContent = (e && e.message) || String(e);
      $("status").className = "cap-error";
    });
  }

  $("days").value = q.days;
  $("print").addEventListener("click", function () { window.print(); });
  $("filters").addEventListener("submit", function (ev) {
    ev.preventDefault();
    q = { days: $("days").value, site: $("site").value };
    var u = new URLSearchParams(q);
    if (!q.site) u.delete("site");
    if (C.params.get("kiosk")) u.set("kiosk", C.params.get("kiosk"));
    window.history.replaceState(null, "", "?" + u.toString());
    load();
  });
  C.topbar();
  C.fillSites($("site"), q.site).then(load);
})();
