#!/usr/bin/env python3
"""make_dashboards.py — writes interfaces.json, links.json, devices.json and capacity.json
(Grafana 10 dashboard JSON) next to itself, for the series kaaval's remote-write sends
(names and labels: docs/configuration.md, "remote_write"). Edit this file, run it, commit
both. tests/integration/test_remote_write.sh runs every query against a real Prometheus."""
import json
import os

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
HERE = os.path.dirname(os.path.abspath(__file__))


def var(name, query, multi=True, label=None):
    return {"name": name, "label": label or name, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": name}, "definition": query,
            "includeAll": multi, "multi": multi, "allValue": ".*" if multi else None,
            "current": {}, "refresh": 2, "sort": 1, "options": []}


def target(expr, legend, ref, **extra):
    t = {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend}
    t.update(extra)
    return t


def panel(pid, title, targets, x, y, w=12, h=8, unit="short", kind="timeseries",
          overrides=None, custom=None, description=None):
    p = {"id": pid, "title": title, "type": kind, "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x, "y": y},
         "fieldConfig": {"defaults": {"unit": unit,
                                      "custom": custom or {"lineWidth": 1, "fillOpacity": 10}},
                         "overrides": overrides or []},
         "options": {"legend": {"displayMode": "list", "placement": "bottom",
                                "showLegend": True},
                     "tooltip": {"mode": "multi", "sort": "none"}},
         "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(targets)]}
    if description:
        p["description"] = description
    if kind in ("stat", "table", "state-timeline"):
        p["fieldConfig"]["defaults"].pop("custom")
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False}}
    return p


def dashboard(uid, title, description, variables, panels, tags):
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus",
                      "description": "the Prometheus (or VictoriaMetrics) kaaval "
                                     "remote-writes to",
                      "type": "datasource", "pluginId": "prometheus",
                      "pluginName": "Prometheus"}],
        "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana",
                        "version": "10.0.0"},
                       {"type": "datasource", "id": "prometheus", "name": "Prometheus",
                        "version": "1.0.0"}],
        "annotations": {"list": []}, "description": description, "editable": True,
        "graphTooltip": 1, "id": None,
        "links": [{"title": "kaaval", "type": "dashboards", "tags": ["kaaval"],
                   "asDropdown": True}],
        "panels": panels, "refresh": "1m", "schemaVersion": 38, "tags": ["kaaval"] + tags,
        "templating": {"list": [{"name": "DS_PROMETHEUS", "label": "Data source",
                                 "type": "datasource", "query": "prometheus", "current": {},
                                 "hide": 0, "options": [], "refresh": 1}] + variables},
        "time": {"from": "now-6h", "to": "now"}, "timepicker": {}, "timezone": "",
        "title": title, "uid": uid, "version": 1, "weekStart": ""}


IF = 'site=~"$site",device=~"$device",interface=~"$interface"'
SITE_VAR = var("site", "label_values(kaaval_device_reachable, site)")


def interfaces():
    v = [SITE_VAR,
         var("device", 'label_values(kaaval_interface_in_octets_total{site=~"$site"}, device)'),
         var("interface", 'label_values(kaaval_interface_in_octets_total{site=~"$site",'
                          'device=~"$device"}, interface)')]
    leg = "{{device}} {{interface}}"
    p = [
        panel(1, "Traffic (bits/s; out below zero)", [
            (f"8 * rate(kaaval_interface_in_octets_total{{{IF}}}[$__rate_interval])",
             leg + " in"),
            (f"-8 * rate(kaaval_interface_out_octets_total{{{IF}}}[$__rate_interval])",
             leg + " out")], 0, 0, w=24, unit="bps"),
        panel(2, "Utilisation (% of speed)", [
            (f"100 * 8 * rate(kaaval_interface_in_octets_total{{{IF}}}[$__rate_interval]) "
             f"/ (kaaval_interface_speed_bps{{{IF}}} > 0)", leg + " in"),
            (f"100 * 8 * rate(kaaval_interface_out_octets_total{{{IF}}}[$__rate_interval]) "
             f"/ (kaaval_interface_speed_bps{{{IF}}} > 0)", leg + " out")], 0, 8,
              unit="percent"),
        panel(3, "Packets/s (unicast)", [
            (f"rate(kaaval_interface_in_ucast_pkts_total{{{IF}}}[$__rate_interval])",
             leg + " in"),
            (f"rate(kaaval_interface_out_ucast_pkts_total{{{IF}}}[$__rate_interval])",
             leg + " out")], 12, 8, unit="pps"),
        panel(4, "Errors and discards/s", [
            (f"rate(kaaval_interface_in_errors_total{{{IF}}}[$__rate_interval])",
             leg + " in errors"),
            (f"rate(kaaval_interface_out_errors_total{{{IF}}}[$__rate_interval])",
             leg + " out errors"),
            (f"rate(kaaval_interface_in_discards_total{{{IF}}}[$__rate_interval])",
             leg + " in discards"),
            (f"rate(kaaval_interface_out_discards_total{{{IF}}}[$__rate_interval])",
             leg + " out discards")], 0, 16),
        panel(5, "Operational status (1 up, 2 down)", [
            (f"kaaval_interface_oper_status{{{IF}}}", leg)], 12, 16, kind="state-timeline"),
        panel(6, "Interfaces", [
            (f"kaaval_interface_speed_bps{{{IF}}}", "")], 0, 24, w=24, unit="bps",
              kind="table"),
    ]
    p[5]["targets"][0].update({"format": "table", "instant": True})
    return dashboard("kaaval-interfaces", "kaaval / Interfaces",
                     "Traffic, utilisation, packets, errors and state of the interfaces "
                     "kaaval polls.", v, p, ["interfaces"])


LK = 'site=~"$site",agent=~"$agent",target=~"$target"'


def links():
    v = [var("site", "label_values(kaaval_link_rtt_mean_ms, site)"),
         var("agent", 'label_values(kaaval_link_rtt_mean_ms{site=~"$site"}, agent)'),
         var("target", 'label_values(kaaval_link_rtt_mean_ms{site=~"$site",agent=~"$agent"}, '
                       'target)')]
    leg = "{{agent}} → {{target}}"
    # SmokePing's picture: the spread of the round trips (min to max) as a band, the median
    # as the line, the loss in its own panel below
    band = [{"matcher": {"id": "byRegexp", "options": ".* max$"},
             "properties": [{"id": "custom.fillBelowTo", "value": None},
                            {"id": "custom.lineWidth", "value": 0},
                            {"id": "custom.fillOpacity", "value": 25}]},
            {"matcher": {"id": "byRegexp", "options": ".* min$"},
             "properties": [{"id": "custom.lineWidth", "value": 0}]},
            {"matcher": {"id": "byRegexp", "options": ".* median$"},
             "properties": [{"id": "custom.lineWidth", "value": 2}]}]
    p = [
        panel(1, "Round trip: median, min–max band", [
            (f"kaaval_link_rtt_max_ms{{{LK}}}", leg + " max"),
            (f"kaaval_link_rtt_min_ms{{{LK}}}", leg + " min"),
            (f"kaaval_link_rtt_median_ms{{{LK}}}", leg + " median")], 0, 0, w=24, h=10,
              unit="ms", overrides=band,
              description="SmokePing-style: the shaded band spans each interval's fastest and "
                          "slowest answer, the line is the median."),
        panel(2, "Loss (%)", [(f"kaaval_link_lost_pct{{{LK}}}", leg)], 0, 10, unit="percent",
              custom={"lineWidth": 1, "fillOpacity": 30, "drawStyle": "bars"}),
        panel(3, "Jitter (ms)", [(f"kaaval_link_jitter_ms{{{LK}}}", leg)], 12, 10, unit="ms"),
        panel(4, "Round trip quantiles (ms)", [
            (f"kaaval_link_rtt_p10_ms{{{LK}}}", leg + " p10"),
            (f"kaaval_link_rtt_p90_ms{{{LK}}}", leg + " p90"),
            (f"kaaval_link_rtt_mean_ms{{{LK}}}", leg + " mean")], 0, 18, unit="ms"),
        panel(5, "Worst links now (loss %)", [
            (f"topk(10, kaaval_link_lost_pct{{{LK}}})", leg)], 12, 18, kind="table"),
    ]
    p[4]["targets"][0].update({"format": "table", "instant": True})
    return dashboard("kaaval-links", "kaaval / Links", "Latency and loss of the links kaaval's "
                     "agents probe, SmokePing-style.", v, p, ["links"])


DV = 'site=~"$site",device=~"$device"'


def devices():
    v = [SITE_VAR,
         var("device", 'label_values(kaaval_device_reachable{site=~"$site"}, device)')]
    leg = "{{site}} {{device}}"
    p = [
        panel(1, "Devices reachable", [(f"sum(kaaval_device_reachable{{{DV}}})", "reachable"),
                                       (f"count(kaaval_device_reachable{{{DV}}})", "polled")],
              0, 0, w=8, kind="stat"),
        panel(2, "Reachability (1 yes, 0 no)", [(f"kaaval_device_reachable{{{DV}}}", leg)],
              8, 0, w=16, kind="state-timeline"),
        panel(3, "SNMP response time (ms)", [(f"kaaval_device_response_ms{{{DV}}}", leg)],
              0, 8, unit="ms"),
        panel(4, "Uptime", [(f"kaaval_device_uptime_s{{{DV}}}", leg)], 12, 8, unit="s"),
        panel(5, "Interfaces per device", [(f"kaaval_device_interfaces{{{DV}}}", leg)],
              0, 16, w=24, kind="table"),
    ]
    p[4]["targets"][0].update({"format": "table", "instant": True})
    return dashboard("kaaval-devices", "kaaval / Devices", "Reachability, response time and "
                     "uptime of the devices kaaval polls.", v, p, ["devices"])


def capacity():
    v = [SITE_VAR,
         var("device", 'label_values(kaaval_interface_in_octets_total{site=~"$site"}, device)'),
         var("interface", 'label_values(kaaval_interface_in_octets_total{site=~"$site",'
                          'device=~"$device"}, interface)')]
    leg = "{{device}} {{interface}}"
    util_in = (f"(100 * 8 * rate(kaaval_interface_in_octets_total{{{IF}}}[5m]) "
               f"/ (kaaval_interface_speed_bps{{{IF}}} > 0))")
    util_out = (f"(100 * 8 * rate(kaaval_interface_out_octets_total{{{IF}}}[5m]) "
                f"/ (kaaval_interface_speed_bps{{{IF}}} > 0))")
    p = [
        panel(1, "95th percentile utilisation over the range (%)", [
            (f"quantile_over_time(0.95, {util_in}[$__range:$__interval])", leg + " in"),
            (f"quantile_over_time(0.95, {util_out}[$__range:$__interval])", leg + " out")], 0, 0,
              w=12, unit="percent", kind="table"),
        panel(2, "Peak utilisation over the range (%)", [
            (f"max_over_time({util_in}[$__range:$__interval])", leg + " in"),
            (f"max_over_time({util_out}[$__range:$__interval])", leg + " out")], 12, 0, w=12,
              unit="percent", kind="table"),
        panel(3, "Busiest interfaces now (% in or out)", [
            (f"topk(10, max by (site, device, interface) "
             f"(label_replace({util_in}, \"dir\", \"in\", \"\", \"\") or "
             f"label_replace({util_out}, \"dir\", \"out\", \"\", \"\")))", leg)], 0, 8, w=24,
              unit="percent"),
        panel(4, "Utilisation trend: in 30 days at today's growth (%)", [
            (f"predict_linear({util_in}[$__range:$__interval], 30 * 86400)", leg + " in"),
            (f"predict_linear({util_out}[$__range:$__interval], 30 * 86400)", leg + " out")], 0, 16,
              w=24, unit="percent",
              description="A straight line through the range's utilisation, 30 days on; "
                          "pick a long range (weeks) for a planning figure."),
    ]
    for i in (0, 1):
        for t in p[i]["targets"]:
            t.update({"format": "table", "instant": True})
    return dashboard("kaaval-capacity", "kaaval / Capacity", "95th percentiles, peaks, the "
                     "busiest interfaces and the trend, for planners.", v, p, ["capacity"])


for name, make in (("interfaces", interfaces), ("links", links), ("devices", devices),
                   ("capacity", capacity)):
    with open(os.path.join(HERE, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(make(), f, indent=2, ensure_ascii=False)
        f.write("\n")
