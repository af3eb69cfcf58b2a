#!/bin/bash
# test_capacity.sh — the capacity report (collector/capacity/capacity.h) against archives of
# known shape:
#   1. a real agent polls a simulated device (snmpsim) until the collector's inventory knows
#      the device and its interface eth0 (with its ifAlias, the circuit); the agent is then
#      stopped by pid;
#   2. the test writes the archives itself where the store keeps them, with the store's data
#      sources: eth0's 40 days of 300 s steps whose counters grow at a rate rising linearly
#      (and swinging over each day), the device's `reachable` with an hour down and two
#      hours unknown, a link's `lost_pct` with 30 minutes of total loss and 15 of half loss;
#   3. GET /api/v1/capacity?days=30 is checked against the figures computed here in Python
#      from the same counter values over the rows the answer says it read (start, end,
#      resolution): avg, peak and p95 (rank rule) of both directions within 1e-6 (the same
#      rows, only float rounding apart), utilisation against the archive's speed, the
#      trend (least squares of the busier direction's means of whole days) within 1 %, days to 80 %
#      within 1 %, availability and outage minutes of the device, the link and the site;
#   4. format=csv parses with Python's csv module and equals the JSON; a second call is
#      answered from the cache; days=90 falls back to the daily archive (resolution 86400);
#   5. 400 for days=7x, format=xml, an empty site=; 401 without credentials.
#
#   bash tests/integration/test_capacity.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
kvl_make_rate_device "$T/rec/cdev.snmprec" "eth0:1000:2000:100"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
sed -i 's/^archives: .*/archives: [5m:45d, 1d:2y]/' "$T/collector.yaml"
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
kvl_add_token "$T/collector.yaml" planner viewer
TOKEN=$KVL_TOKEN
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec" "$SNMP"
kvl_agent_config "$T/agent.yaml" cap-agent dhq-cap "$COL_PORT" 2s
kvl_agent_device "$T/agent.yaml" cdev "$SNMP" cdev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID

URL="http://127.0.0.1:$HTTP_PORT"
kvl_wait_until 20 "the HTTP API" curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/status" -o /dev/null
knows_eth0() {
    curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/devices/cap-agent/cdev" |
        grep -q '"test link eth0"'
}
kvl_wait_until 60 "the inventory to know cdev's eth0 and its circuit" knows_eth0
IF_RRD=$T/data/dhq-cap/cdev/eth0.rrd
DEV_RRD=$T/data/dhq-cap/cdev.rrd
kvl_wait_until 30 "the archives of cdev" test -f "$IF_RRD" -a -f "$DEV_RRD"
kvl_stop "$AGENT" || kvl_fail "the agent did not stop"
sleep 1 # the collector's last writes of what the agent sent

# ------------------------------------------------------------------ 2: archives of known shape
NOW=$(date +%s)
END=$((NOW - NOW % 300))
LINK_RRD=$T/data/dhq-cap/cap-agent/_links/10.0.0.9.rrd
mkdir -p "$(dirname "$LINK_RRD")"
"$KVL_PY" - "$IF_RRD" "$DEV_RRD" "$LINK_RRD" "$END" "$T/shape.json" <<'EOF' || kvl_fail "cannot write the archives"
import json, math, os, subprocess, sys

if_rrd, dev_rrd, link_rrd, end, shape = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
STEP, DAYS = 300, 40
start = end - DAYS * 86400
rras = ["RRA:%s:0.5:1:13000" % cf for cf in ("AVERAGE", "MAX")] + \
       ["RRA:%s:0.5:288:800" % cf for cf in ("AVERAGE", "MAX")]

def create(path, ds):
    if os.path.exists(path):
        os.remove(path)
    subprocess.run(["rrdtool", "create", path, "--start", str(start), "--step", str(STEP)] +
                   ["DS:%s:%s:%d:%s:U" % (n, kind, 2 * STEP, "0" if kind == "DERIVE" else "U")
                    for n, kind in ds] + rras, check=True)

def update(path, names, rows):
    for i in range(0, len(rows), 2000):
        subprocess.run(["rrdtool", "update", path, "-t", ":".join(names)] +
                       [":".join(str(v) for v in r) for r in rows[i:i + 2000]], check=True)

# the interface: the store's 15 data sources (counters DERIVE min 0, states GAUGE)
iface_ds = [(n, "DERIVE") for n in ("in_octets", "out_octets", "in_ucast_pkts", "out_ucast_pkts",
            "in_mcast_pkts", "out_mcast_pkts", "in_bcast_pkts", "out_bcast_pkts", "in_errors",
            "out_errors", "in_discards", "out_discards")] + \
           [(n, "GAUGE") for n in ("oper_status", "admin_status", "speed_bps")]
create(if_rrd, iface_ds)
SPEED = 200000000  # the archive's speed (the inventory's ifSpeed says 100 Mbit/s)
cin = cout = 10 ** 9
rows, rates = [], {}
for i in range(1, DAYS * 288 + 1):
    t = start + i * STEP
    days = (t - start) / 86400.0
    base = 10e6 + 1e6 * days  # bit/s, rising 1 Mbit/s a day
    swing = 1 + 0.3 * math.sin(2 * math.pi * (t % 86400) / 86400.0)
    din = int(round(base * swing / 8 * STEP))
    dout = int(round(0.5 * base * swing / 8 * STEP))
    cin, cout = cin + din, cout + dout
    rows.append((t, cin, cout, 1, 1, SPEED))
    if i >= 2:  # the first update only gives DERIVE its starting point
        rates[t] = (din * 8 / STEP, dout * 8 / STEP)
update(if_rrd, ["in_octets", "out_octets", "oper_status", "admin_status", "speed_bps"], rows)

# the device: up, but one hour down 5 days ago and two hours unknown 3 days ago
create(dev_rrd, [(n, "GAUGE") for n in ("reachable", "uptime_s", "response_ms", "interfaces",
                                        "down_reason")])
down0, unk0 = end - 5 * 86400, end - 3 * 86400
rows, dev = [], {}
for i in range(1, DAYS * 288 + 1):
    t = start + i * STEP
    if unk0 < t <= unk0 + 7200:
        v = "U"
    else:
        v = 0 if down0 < t <= down0 + 3600 else 1
        dev[t] = v
    rows.append((t, v))
update(dev_rrd, ["reachable"], rows)

# a link: no loss, but 30 minutes of total loss and 15 of half loss 2 days ago
create(link_rrd, [(n, "GAUGE") for n in ("sent", "received", "lost_pct", "rtt_median_ms")])
cut0 = end - 2 * 86400
rows, link = [], {}
for i in range(1, DAYS * 288 + 1):
    t = start + i * STEP
    v = 100 if cut0 < t <= cut0 + 1800 else 50 if cut0 + 3600 < t <= cut0 + 4500 else 0
    link[t] = v
    rows.append((t, v))
update(link_rrd, ["lost_pct"], rows)
json.dump({"speed": SPEED, "rates": {str(k): v for k, v in rates.items()},
           "dev": {str(k): v for k, v in dev.items()},
           "link": {str(k): v for k, v in link.items()}}, open(shape, "w"))
EOF

# ------------------------------------------------------------------ 3: the figures
api() { curl -s -H "Authorization: Bearer $TOKEN" "$URL$1"; }
api "/api/v1/capacity?days=30" >"$T/cap.json" || kvl_fail "GET /api/v1/capacity failed"
"$KVL_PY" - "$T/cap.json" "$T/shape.json" <<'EOF' || kvl_fail "the figures differ (above); answer in $T/cap.json"
import json, math, sys

ans, shape = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
rates = {int(k): v for k, v in shape["rates"].items()}
speed = shape["speed"]
bad = []

def close(what, got, want, rel):
    if got is None or want is None:
        if got != want:
            bad.append("%s: %r, want %r" % (what, got, want))
        return
    if abs(got - want) > rel * max(abs(want), 1e-9):
        bad.append("%s: %r, want %r (tolerance %g relative)" % (what, got, want, rel))

rows = [r for r in ans["interfaces"] if r["device"] == "cdev" and r["interface"] == "eth0"]
if len(rows) != 1:
    sys.exit("eth0 of cdev: %d rows in %s" % (len(rows), json.dumps(ans)[:2000]))
r = rows[0]
if r["resolution_s"] != 300:
    bad.append("resolution_s %r, want 300 (the 5-minute archive covers 30 days)" % r["resolution_s"])
if r["circuit"] != "test link eth0" or r["agent"] != "cap-agent" or r["site"] != "dhq-cap":
    bad.append("names: %r %r %r" % (r["circuit"], r["agent"], r["site"]))
if r["speed_source"] != "archive":
    bad.append("speed_source %r, want archive" % r["speed_source"])
close("speed_bps", r["speed_bps"], speed, 1e-9)
step, t0, t1 = r["resolution_s"], r["start"], r["end"]
if not (ans["to"] - 600 <= t1 <= ans["to"] + 600 and t1 - t0 >= 30 * 86400 - 600):
    bad.append("rows %d..%d for the period %d..%d" % (t0, t1, ans["from"], ans["to"]))
ts = list(range(t0 + step, t1 + step, step))
known = [t for t in ts if t in rates]
if r["samples"] != len(known) or r["unknown"] != len(ts) - len(known):
    bad.append("samples %r unknown %r, want %d and %d" % (r["samples"], r["unknown"], len(known),
                                                        len(ts) - len(known)))
for d, k in (("in", 0), ("out", 1)):
    v = sorted(rates[t][k] for t in known)
    rank = -(-95 * len(v) // 100)  # ceil(0.95 n), the rank rule
    want = {"avg_bps": sum(v) / len(v), "peak_bps": v[-1], "p95_bps": v[rank - 1]}
    for key, w in want.items():
        close("%s.%s" % (d, key), r[d][key], w, 1e-6)
        close("%s.%s" % (d, key.replace("bps", "pct")), r[d][key.replace("bps", "pct")],
              100 * w / speed, 1e-6)
if r["busier"] != "in":
    bad.append("busier %r, want in" % r["busier"])
# the trend: least squares over the daily means of the whole UTC days in the rows (each at
# its middle) of `in`
days = {}
day_lo, day_hi = -(-t0 // 86400), t1 // 86400
for t in known:
    if day_lo * 86400 < t <= day_hi * 86400:
        days.setdefault((t - step) // 86400, []).append(rates[t][0])
if r["trend_days"] != len(days) or len(days) < 29:
    bad.append("trend_days %r, want %d whole days" % (r["trend_days"], len(days)))
xs = [d + 0.5 for d in sorted(days)]
ys = [sum(days[d]) / len(days[d]) for d in sorted(days)]
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
at_end = my + slope * (t1 / 86400.0 - mx)
close("trend_bps_per_day", r["trend_bps_per_day"], slope, 0.01)
close("trend_end_bps", r["trend_end_bps"], at_end, 0.01)
close("days_to_80", r["days_to_80"], (0.8 * speed - at_end) / slope, 0.01)
# the ramp rises 1 Mbit/s a day: the fit must see it (a sanity check of the shape itself)
close("trend against the ramp", r["trend_bps_per_day"], 1e6, 0.01)

def avail(series, down):
    up = dn = unk = 0.0
    for t in range(t0 + step, t1 + step, step):
        v = series.get(t)
        if v is None:
            unk += step
        elif down(v):
            dn += step
        else:
            up += step
    return up, dn, unk

site = [0.0, 0.0, 0.0]
for kind, key, series, down in (("devices", "device", "dev", lambda v: v == 0),
                                ("links", "target", "link", lambda v: v >= 100)):
    want = avail({int(k): v for k, v in shape[series].items()}, down)
    name = "cdev" if kind == "devices" else "10.0.0.9"
    got = [o for o in ans[kind] if o[key] == name]
    if len(got) != 1:
        bad.append("%s: %r has %d rows" % (kind, name, len(got)))
        continue
    o = got[0]
    for i in range(3):
        site[i] += want[i]
    close(kind + " outage_minutes", o["outage_minutes"], want[1] / 60, 1e-9)
    close(kind + " unknown_minutes", o["unknown_minutes"], want[2] / 60, 1e-9)
    close(kind + " up_minutes", o["up_minutes"], want[0] / 60, 1e-9)
    close(kind + " availability_pct", o["availability_pct"], 100 * want[0] / (want[0] + want[1]), 1e-9)
if [o["outage_minutes"] for o in ans["devices"] if o["device"] == "cdev"] != [60.0]:
    bad.append("the device's hour down is not 60 outage minutes")
if [o["outage_minutes"] for o in ans["links"] if o["target"] == "10.0.0.9"] != [30.0]:
    bad.append("the link's 30 minutes of total loss are not 30 outage minutes")
s = [o for o in ans["sites"] if o["site"] == "dhq-cap"]
if len(s) != 1 or s[0]["devices"] != 1 or s[0]["links"] != 1:
    bad.append("site dhq-cap: %r" % s)
else:
    close("site outage_minutes", s[0]["outage_minutes"], site[1] / 60, 1e-9)
    close("site availability_pct", s[0]["availability_pct"], 100 * site[0] / (site[0] + site[1]), 1e-9)
cs = [c for c in ans["circuits"] if c["circuit"] == "test link eth0"]
if len(cs) != 1 or len(cs[0]["members"]) != 1 or cs[0]["members"][0]["interface"] != "eth0":
    bad.append("circuits: %r" % ans["circuits"])
else:
    close("circuit p95_pct", cs[0]["p95_pct"], max(r["in"]["p95_pct"], r["out"]["p95_pct"]), 1e-12)
    close("circuit days_to_80", cs[0]["days_to_80"], r["days_to_80"], 1e-12)
if ans.get("cached") is not False:
    bad.append("the first answer says cached %r" % ans.get("cached"))
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
print("figures: in p95 %.0f bit/s, trend %.0f bit/s/day, %.1f days to 80 %%" %
      (r["in"]["p95_bps"], r["trend_bps_per_day"], r["days_to_80"]))
EOF

# ------------------------------------------------------------------ 4: CSV, the cache, days=90
curl -s -D "$T/csv.head" -H "Authorization: Bearer $TOKEN" "$URL/api/v1/capacity?days=30&format=csv" \
    -o "$T/cap.csv" || kvl_fail "GET format=csv failed"
grep -qi '^content-type: text/csv; charset=utf-8' "$T/csv.head" || kvl_fail "CSV type: $(cat "$T/csv.head")"
api "/api/v1/capacity?days=30" >"$T/cap2.json"
"$KVL_PY" - "$T/cap.csv" "$T/cap.json" "$T/cap2.json" <<'EOF' || kvl_fail "the CSV or the cache differ (above)"
import csv, io, json, sys

raw = open(sys.argv[1], newline="").read()
ans, again = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
bad = []
if not raw.endswith("\r\n"):
    bad.append("the CSV's lines do not end with CRLF")
rows = list(csv.DictReader(io.StringIO(raw, newline="")))
if len(rows) != len(ans["interfaces"]):
    bad.append("%d CSV rows for %d interfaces" % (len(rows), len(ans["interfaces"])))
for row, o in zip(rows, ans["interfaces"]):
    for col, text in row.items():
        d, _, k = col.partition("_")
        v = o[d].get(k) if d in ("in", "out") and isinstance(o.get(d), dict) else o.get(col)
        if v is None:
            ok = text == ""
        elif isinstance(v, bool):
            ok = text == ("true" if v else "false")
        elif isinstance(v, (int, float)):
            ok = float(text) == float(v)
        else:
            ok = text == v
        if not ok:
            bad.append("CSV %s: %r, JSON %r" % (col, text, v))
if again.get("cached") is not True:
    bad.append("the second answer is not from the cache")
again.pop("cached")
ans.pop("cached")
if again != ans:
    bad.append("the cached answer differs")
if bad:
    print("\n".join(bad[:20]), file=sys.stderr)
    sys.exit(1)
EOF
api "/api/v1/capacity?days=90&agent=cap-agent&device=cdev" >"$T/cap90.json"
"$KVL_PY" - "$T/cap90.json" <<'EOF' || kvl_fail "days=90: $(head -c 1500 "$T/cap90.json")"
import json, sys
a = json.load(open(sys.argv[1]))
r = [o for o in a["interfaces"] if o["interface"] == "eth0"]
assert a["days"] == 90 and len(r) == 1, "no eth0"
assert r[0]["resolution_s"] == 86400, "resolution %r, want the daily archive" % r[0]["resolution_s"]
assert a["resolution_s"] == 86400 and a["resolution_wanted_s"] == 300
assert a["links"] == [], "device= selects no links"
EOF
# two requests for a report not yet cached at once: one run, both answered alike
api "/api/v1/capacity?days=365" >"$T/y1.json" &
Y1=$!
api "/api/v1/capacity?days=365&format=csv" >"$T/y2.csv"
wait "$Y1" || kvl_fail "the first of two concurrent requests failed"
"$KVL_PY" - "$T/y1.json" "$T/y2.csv" <<'EOF' || kvl_fail "two concurrent requests: $(head -c 600 "$T/y1.json")"
import csv, json, sys
a = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2], newline="")))
assert a["days"] == 365 and len(a["interfaces"]) == 1 and len(rows) == 1, (a.keys(), rows)
assert float(rows[0]["in_p95_bps"]) == a["interfaces"][0]["in"]["p95_bps"]
EOF
api "/api/v1/capacity?site=elsewhere" >"$T/cap-else.json"
grep -q '"interfaces": *\[\]' "$T/cap-else.json" || kvl_fail "site=elsewhere: $(head -c 500 "$T/cap-else.json")"

# ------------------------------------------------------------------ 5: refusals
code() { curl -s -o "$T/code.out" -w '%{http_code}' "${@:2}" "$URL$1"; }
expect() { # STATUS WHAT PATH [CURL ARGS]
    local got
    got=$(code "$3" "${@:4}")
    [ "$got" = "$1" ] || kvl_fail "$2: HTTP $got, want $1 ($(cat "$T/code.out"))"
}
AUTH=(-H "Authorization: Bearer $TOKEN")
expect 400 "days=7x" "/api/v1/capacity?days=7x" "${AUTH[@]}"
grep -q 'days= must be 30, 90 or 365' "$T/code.out" || kvl_fail "days=7x: $(cat "$T/code.out")"
expect 400 "days=7" "/api/v1/capacity?days=7" "${AUTH[@]}"
expect 400 "format=xml" "/api/v1/capacity?format=xml" "${AUTH[@]}"
expect 400 "an empty site=" "/api/v1/capacity?site=" "${AUTH[@]}"
expect 401 "no credentials" "/api/v1/capacity?days=30"
expect 404 "a path under the route" "/api/v1/capacity/x" "${AUTH[@]}"
kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
kvl_pass "capacity figures, CSV, cache, fallback and refusals as computed by hand"
