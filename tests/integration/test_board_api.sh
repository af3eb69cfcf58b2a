#!/bin/bash
# test_board_api.sh — the board's API (collector/board/board.h) against a real collector fed
# by a real agent polling a simulated device (snmpsim) every 2 s:
#   1. /api/v1/latest gives, for every data source of the device's and its interface's
#      archives, what `rrdtool lastupdate` shows for the same update (same time, same value;
#      unknown as null);
#   2. /api/v1/series gives the points `rrdtool fetch` prints for the same file, range and
#      step (rows already final: the range ends before the last update);
#   3. /api/v1/agents lists the agent at its site; /api/v1/sites shows the site tree of
#      collector.yaml with the site ok and its agent and device counted;
#   4. 401 without credentials, 400 with a sentence for bad parameters, 404 for unknown paths;
#   5. the simulator is stopped (by pid): the built-in device_down alert fires and the site
#      (and its parent) turn critical in /api/v1/sites.
#
#   bash tests/integration/test_board_api.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
kvl_make_rate_device "$T/rec/bdev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >"$T/sites.yaml" <<YAML
- {name: noc-test, kind: noc, label: Test NOC}
- {name: dhq-test, parent: noc-test, kind: dhq}
- {name: bhq-quiet, parent: dhq-test, kind: bhq}
YAML
cat >>"$T/collector.yaml" <<YAML
sites: {file: sites.yaml}
YAML
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
"$KVL_BUILD/kaaval-collector" -c "$T/collector.yaml" --check-config >"$L/check.log" 2>&1 ||
    kvl_fail "--check-config refused the configuration: $(cat "$L/check.log")"
grep -q '3 sites' "$L/check.log" || kvl_fail "--check-config did not count the sites: $(cat "$L/check.log")"

# a cycle in the sites file: exit 2 with the place
cp "$T/sites.yaml" "$T/sites.good"
echo "- {name: loop-a, parent: loop-b, kind: bhq}" >>"$T/sites.yaml"
echo "- {name: loop-b, parent: loop-a, kind: bhq}" >>"$T/sites.yaml"
rc=0
"$KVL_BUILD/kaaval-collector" -c "$T/collector.yaml" --check-config >"$L/check2.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || kvl_fail "a cycle of parents: exit $rc, not 2"
grep -q "sites.yaml:4:26: site 'loop-a' is its own ancestor" "$L/check2.log" ||
    kvl_fail "a cycle of parents without its place: $(cat "$L/check2.log")"
cp "$T/sites.good" "$T/sites.yaml"

kvl_add_token "$T/collector.yaml" wall viewer
TOKEN=$KVL_TOKEN
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_agent_config "$T/agent.yaml" board-agent dhq-test "$COL_PORT" 2s
sed -i 's/timeout: 500ms/timeout: 300ms/' "$T/agent.yaml"
kvl_agent_device "$T/agent.yaml" bdev "$SNMP" bdev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID

IF_RRD=$T/data/dhq-test/bdev/eth0.rrd
DEV_RRD=$T/data/dhq-test/bdev.rrd
kvl_wait_until 30 "the archive of bdev's eth0" test -f "$IF_RRD"
kvl_wait_until 30 "the archive of bdev" test -f "$DEV_RRD"
URL="http://127.0.0.1:$HTTP_PORT"
api() { curl -s -H "Authorization: Bearer $TOKEN" "$URL$1"; }
kvl_wait_until 20 "the HTTP API" curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/status" -o /dev/null
kvl_sleep_checking 16 "$AGENT" "$COL"

# ------------------------------------------------------------------ 1: latest = lastupdate
# Compares one archive with /latest (same update time, then every data source); fails with
# the difference, so the bounded loop below retries when an update fell between the reads.
latest_equals() { # FILE SCOPE INSTANCE
    local snap
    snap=$(_kvl_snap "$1") || return 1
    rrdtool lastupdate "$snap" >"$T/lastupdate.out" 2>/dev/null || return 1
    api "/api/v1/latest?agent=board-agent&device=bdev&scope=$2&instance=$3" >"$T/latest.json"
    "$KVL_PY" - "$T/lastupdate.out" "$T/latest.json" <<'PY' >"$T/latest_cmp.out" 2>&1
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l.strip()]
names = lines[0].split()
t, vals = lines[-1].split(":", 1)
t = int(float(t))
vals = vals.split()
got = {v["metric"]: v for v in json.load(open(sys.argv[2]))["values"]}
n = 0
for name, text in zip(names, vals):
    if name not in got:
        if text == "U":
            continue  # a data source the device never reported: unknown, and no series
        sys.exit("no latest value for %s" % name)
    v = got[name]
    if v["time_ms"] // 1000 != t:
        sys.exit("%s: latest at %d, archive at %d" % (name, v["time_ms"] // 1000, t))
    if text == "U":
        if v["value"] is not None:
            sys.exit("%s: archive unknown, latest %r" % (name, v["value"]))
    elif v["value"] is None or abs(float(text) - float(v["value"])) > 1e-6 * (1 + abs(float(text))):
        sys.exit("%s: archive %s, latest %r" % (name, text, v["value"]))
    n += 1
if n < 5:
    sys.exit("only %d data sources compared" % n)
print("%d data sources equal at %d" % (n, t))
PY
}
for what in "$IF_RRD interface eth0" "$DEV_RRD device "; do
    set -- $what
    ok=0
    for _ in $(seq 1 20); do
        if latest_equals "$1" "$2" "${3:-}"; then ok=1; break; fi
        sleep 0.3
    done
    [ "$ok" -eq 1 ] || kvl_fail "/api/v1/latest differs from rrdtool lastupdate of $1: $(cat "$T/latest_cmp.out")"
    kvl_log "latest = lastupdate for $(basename "$1"): $(cat "$T/latest_cmp.out")"
done
# a counter's rate: in_octets grows 1000 bytes/s on the simulator
api "/api/v1/latest?device=bdev&instance=eth0&metric=in_octets" | "$KVL_PY" -c '
import json, sys
v = json.load(sys.stdin)["values"][0]
assert v["kind"] == "counter" and v["rate"] is not None and 900 < v["rate"] < 1100, v' ||
    kvl_fail "in_octets' rate is not about 1000/s: $(api "/api/v1/latest?device=bdev&instance=eth0&metric=in_octets")"

# ------------------------------------------------------------------ 2: series = fetch -----
LAST=$(kvl_rrd_last_time "$IF_RRD")
TO=$((LAST - 6))
FROM=$((TO - 24))
api "/api/v1/series?agent=board-agent&device=bdev&instance=eth0&metric=in_octets&from=$FROM&to=$TO&step=2" >"$T/series.json"
SNAP=$(_kvl_snap "$IF_RRD") || kvl_fail "cannot copy $IF_RRD"
rrdtool fetch "$SNAP" AVERAGE -s "$FROM" -e "$TO" -r 2 >"$T/fetch.out" 2>&1 ||
    kvl_fail "rrdtool fetch failed: $(cat "$T/fetch.out")"
"$KVL_PY" - "$T/fetch.out" "$T/series.json" <<'PY' >"$T/series_cmp.out" 2>&1 ||
import json, math, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l.strip()]
col = lines[0].split().index("in_octets")
rows = []
for l in lines[1:]:
    t, vals = l.split(":", 1)
    v = vals.split()[col]
    rows.append((int(t), None if "nan" in v.lower() else float(v)))
got = json.load(open(sys.argv[2]))
pts = got["points"]
if len(pts) != len(rows) or len(rows) < 10:
    sys.exit("%d points, rrdtool fetch printed %d" % (len(pts), len(rows)))
known = 0
for (t, v), (gt, gv) in zip(rows, pts):
    if t != gt:
        sys.exit("time %d, rrdtool fetch %d" % (gt, t))
    if (v is None) != (gv is None) or (v is not None and abs(v - gv) > 1e-9 * (1 + abs(v))):
        sys.exit("at %d: %r, rrdtool fetch %r" % (t, gv, v))
    known += v is not None
if known < 4:
    sys.exit("only %d known points of %d" % (known, len(rows)))
print("%d points equal (%d known), step %d" % (len(rows), known, got["step"]))
PY
    kvl_fail "/api/v1/series differs from rrdtool fetch: $(cat "$T/series_cmp.out") $(head -c 600 "$T/series.json")"
kvl_log "series = rrdtool fetch: $(cat "$T/series_cmp.out")"

# ------------------------------------------------------------------ 3: agents and sites ---
api "/api/v1/agents" | "$KVL_PY" -c '
import json, sys
a = [x for x in json.load(sys.stdin)["agents"] if x["id"] == "board-agent"][0]
assert a["site"] == "dhq-test" and a["connected"] and not a["lost"] and a["last_batch_ms"], a
assert a["version"] and a["last_seen_ms"] and a["batches"] > 0, a' ||
    kvl_fail "/api/v1/agents: $(api /api/v1/agents)"
site_state() { # SITE: prints "<state> <agents> <devices> <alerts>"
    api "/api/v1/sites" | "$KVL_PY" -c '
import json, sys
s = [x for x in json.load(sys.stdin)["sites"] if x["name"] == sys.argv[1]][0]
print(s["state"], s["agents"], s["devices"], s["alerts"])' "$1"
}
[ "$(site_state dhq-test)" = "ok 1 1 0" ] || kvl_fail "dhq-test: $(site_state dhq-test), want ok 1 1 0"
[ "$(site_state noc-test)" = "ok 0 0 0" ] || kvl_fail "noc-test: $(site_state noc-test), want ok 0 0 0"
[ "$(site_state bhq-quiet)" = "unknown 0 0 0" ] || kvl_fail "bhq-quiet: $(site_state bhq-quiet)"

# ------------------------------------------------------------------ 4: refusals -----------
code() { curl -s -o "$T/code.out" -w '%{http_code}' "${@:2}" "$URL$1"; }
[ "$(code /api/v1/sites)" = 401 ] || kvl_fail "/api/v1/sites without credentials: not 401"
[ "$(code '/api/v1/latest?limit=lots' -H "Authorization: Bearer $TOKEN")" = 400 ] &&
    grep -q 'limit must be a whole number' "$T/code.out" ||
    kvl_fail "a bad limit: $(cat "$T/code.out")"
[ "$(code '/api/v1/series?agent=board-agent&device=bdev' -H "Authorization: Bearer $TOKEN")" = 400 ] &&
    grep -q 'metric are required' "$T/code.out" || kvl_fail "a series without metric: $(cat "$T/code.out")"
[ "$(code '/api/v1/series?agent=board-agent&device=bdev&metric=in_octets&instance=eth0&step=0' \
    -H "Authorization: Bearer $TOKEN")" = 400 ] || kvl_fail "step=0: $(cat "$T/code.out")"
[ "$(code /api/v1/sites/x -H "Authorization: Bearer $TOKEN")" = 404 ] || kvl_fail "/api/v1/sites/x: not 404"

# ------------------------------------------------------------------ 5: device stopped -----
kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
T_CUT=$SECONDS
is_critical() { [ "$(site_state dhq-test | cut -d' ' -f1)" = critical ]; }
kvl_wait_until 60 "dhq-test to turn critical" is_critical
kvl_log "device stopped: dhq-test critical after $((SECONDS - T_CUT)) s ($(site_state dhq-test))"
[ "$(site_state noc-test | cut -d' ' -f1)" = critical ] || kvl_fail "noc-test: $(site_state noc-test), its child is critical"
[ "$(site_state bhq-quiet | cut -d' ' -f1)" = unknown ] || kvl_fail "bhq-quiet: $(site_state bhq-quiet)"
api "/api/v1/latest?device=bdev&scope=device&metric=reachable" | "$KVL_PY" -c '
import json, sys
v = json.load(sys.stdin)["values"][0]
assert v["value"] == 0, v' || kvl_fail "bdev's reachable is not 0 in /api/v1/latest"

kvl_pass "latest = lastupdate, series = fetch, sites turn critical"
