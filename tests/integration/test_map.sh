#!/bin/bash
# test_map.sh — the map (collector/board/map.h) against a real collector fed by a real agent
# that polls a simulated device (snmpsim) every 2 s and probes its parent site over TCP:
#   1. GET /api/v1/map without credentials: 401; an unknown path under it: 404;
#   2. nodes: the three sites of the tree with kinds, parents, states and the x/y hints;
#      edges: one per site with a parent, with the uplink named in the compact form and its
#      agent, the link the agent measures to the parent (a target named as the parent site),
#      its loss and RTT;
#   3. the edge's utilisation (in and out) equals the one the test computes from two
#      consecutive /api/v1/latest readings of the uplink's octet counters and its speed (and
#      is near the simulator's rate: 10 % in, 5 % out);
#   4. the quiet site's edge, whose probe no agent measures, is "unknown" with null numbers;
#   5. the simulator is stopped (by pid): three intervals on, the edge has no utilisation
#      (stale values are not shown as current), while the probe still answers.
#
#   bash tests/integration/test_map.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
# up0: 125000 B/s in (1 Mbit/s), 62500 out, on 10 Mbit/s
kvl_make_rate_device "$T/rec/mapdev.snmprec" "up0:125000:62500:10"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >>"$T/collector.yaml" <<YAML
sites:
  - {name: noc-test, kind: noc, label: Test NOC, x: 50, y: 5}
  - {name: dhq-map, parent: noc-test, kind: dhq, uplink: [map-agent, mapdev, up0]}
  - {name: bhq-quiet, parent: dhq-map, kind: bhq, uplink: {probe: nobody-probes-this}}
YAML
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
"$KVL_BUILD/kaaval-collector" -c "$T/collector.yaml" --check-config >"$L/check.log" 2>&1 ||
    kvl_fail "--check-config refused the configuration: $(cat "$L/check.log")"
# an uplink on the root: exit 2 with the place
sed 's/label: Test NOC, x: 50, y: 5}/label: Test NOC, uplink: {probe: p}}/' "$T/collector.yaml" \
    >"$T/bad.yaml"
rc=0
"$KVL_BUILD/kaaval-collector" -c "$T/bad.yaml" --check-config >"$L/check2.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || kvl_fail "an uplink on a root site: exit $rc, not 2"
grep -q "bad.yaml:10:.*site 'noc-test' has no parent: an uplink leads to the parent site" \
    "$L/check2.log" || kvl_fail "an uplink on a root site, without its place: $(cat "$L/check2.log")"

kvl_add_token "$T/collector.yaml" wall viewer
TOKEN=$KVL_TOKEN
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_agent_config "$T/agent.yaml" map-agent dhq-map "$COL_PORT" 2s
sed -i 's/timeout: 500ms/timeout: 300ms/' "$T/agent.yaml"
# the agent probes its parent site: a TCP connect to the collector's HTTP port, named as the
# parent site (the map finds the link by that name)
sed -i "s/^  reflector: {enabled: false}.*/&\n  interval: 2s\n  count: 4\n  targets:\n    - {name: noc-test, address: 127.0.0.1, type: tcp, port: $HTTP_PORT}/" "$T/agent.yaml"
kvl_agent_device "$T/agent.yaml" mapdev "$SNMP" mapdev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID

URL="http://127.0.0.1:$HTTP_PORT"
api() { curl -s -H "Authorization: Bearer $TOKEN" "$URL$1"; }
kvl_wait_until 20 "the HTTP API" curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/status" -o /dev/null

# ------------------------------------------------------------------ 1: refusals -----------
code() { curl -s -o "$T/code.out" -w '%{http_code}' "${@:2}" "$URL$1"; }
[ "$(code /api/v1/map)" = 401 ] || kvl_fail "/api/v1/map without credentials: not 401"
[ "$(code /api/v1/map/x -H "Authorization: Bearer $TOKEN")" = 404 ] || kvl_fail "/api/v1/map/x: not 404"

# ------------------------------------------------------------------ 2: nodes and edges ----
edge_ready() { # the uplink's utilisation and the link's loss are known
    api /api/v1/map | "$KVL_PY" -c '
import json, sys
e = [x for x in json.load(sys.stdin)["edges"] if x["site"] == "dhq-map"][0]
sys.exit(0 if e["util_in_pct"] is not None and e["loss_pct"] is not None else 1)'
}
kvl_wait_until 60 "the map's edge of dhq-map to have utilisation and loss" edge_ready
api /api/v1/map >"$T/map.json"
"$KVL_PY" - "$T/map.json" <<'PY' >"$T/map_check.out" 2>&1 ||
import json, sys
m = json.load(open(sys.argv[1]))
nodes = {n["name"]: n for n in m["nodes"]}
assert set(nodes) == {"noc-test", "dhq-map", "bhq-quiet"}, nodes
n = nodes["noc-test"]
assert n["kind"] == "noc" and n["parent"] is None and n["x"] == 50 and n["y"] == 5, n
assert n["label"] == "Test NOC" and n["state"] == "ok", n
n = nodes["dhq-map"]
assert n["kind"] == "dhq" and n["parent"] == "noc-test" and n["x"] is None, n
assert n["state"] == "ok" and n["agents"] == 1 and n["devices"] == 1, n
assert nodes["bhq-quiet"]["state"] == "unknown", nodes["bhq-quiet"]
edges = {e["site"]: e for e in m["edges"]}
assert set(edges) == {"dhq-map", "bhq-quiet"}, edges
e = edges["dhq-map"]
assert e["parent"] == "noc-test", e
assert e["uplink"] == {"agent": "map-agent", "device": "mapdev", "interface": "up0"}, e
assert e["link"] == {"agent": "map-agent", "target": "noc-test"}, e
assert e["loss_pct"] == 0 and e["rtt_ms"] is not None and e["rtt_ms"] >= 0, e
assert e["speed_bps"] == 10e6 and e["oper_status"] == "up", e
assert e["state"] == "ok", e
print("nodes and edges as configured; dhq-map: %.2f %% in, %.2f %% out, rtt %.3f ms" %
      (e["util_in_pct"], e["util_out_pct"], e["rtt_ms"]))
PY
    kvl_fail "the map: $(cat "$T/map_check.out") $(head -c 2000 "$T/map.json")"
kvl_log "$(cat "$T/map_check.out")"

# ------------------------------------------------------------------ 3: utilisation --------
# Two consecutive samples of each octet counter from /api/v1/latest (polled faster than the
# agent's interval), then the map, then /latest again: when nothing changed in between, the
# map's utilisation must be the rate of those two samples × 8 over the speed.
latest() { api "/api/v1/latest?agent=map-agent&device=mapdev&instance=up0&metric=$1"; }
snap_latest() { # FILE: the in/out octets and the speed, as one JSON object
    { latest in_octets; echo; latest out_octets; echo; latest speed_bps; echo; } >"$1"
}
newer() { # A B: B's in_octets and out_octets are both newer than A's
    "$KVL_PY" - "$1" "$2" <<'PY'
import json, sys
def times(p):
    vals = [json.loads(l)["values"][0] for l in open(p) if l.strip()]
    return [v["time_ms"] for v in vals[:2]]
a, b = times(sys.argv[1]), times(sys.argv[2])
sys.exit(0 if b[0] > a[0] and b[1] > a[1] else 1)
PY
}
ok=0
for attempt in $(seq 1 10); do
    snap_latest "$T/l1.json"
    got=0
    for _ in $(seq 1 40); do # 0.2 s apart: up to 8 s, 4 intervals
        sleep 0.2
        snap_latest "$T/l2.json"
        if newer "$T/l1.json" "$T/l2.json"; then got=1; break; fi
    done
    [ "$got" -eq 1 ] || continue
    api /api/v1/map >"$T/map2.json"
    snap_latest "$T/l3.json"
    "$KVL_PY" - "$T/l1.json" "$T/l2.json" "$T/l3.json" "$T/map2.json" <<'PY' >"$T/util.out" 2>&1 && { ok=1; break; }
import json, sys
def vals(p):
    v = [json.loads(l)["values"][0] for l in open(p) if l.strip()]
    return {x["metric"]: x for x in v}
a, b, c = vals(sys.argv[1]), vals(sys.argv[2]), vals(sys.argv[3])
for k in ("in_octets", "out_octets"):
    if c[k]["time_ms"] != b[k]["time_ms"]:
        sys.exit("a new sample came while the map was read: again")
    # consecutive samples: 2 s apart (the interval), give or take the poll's timing
    dt = (b[k]["time_ms"] - a[k]["time_ms"]) / 1000.0
    if not 1.0 <= dt <= 3.0:
        sys.exit("the two samples of %s are %.3f s apart: again" % (k, dt))
speed = b["speed_bps"]["value"]
e = [x for x in json.load(open(sys.argv[4]))["edges"] if x["site"] == "dhq-map"][0]
for k, key in (("in_octets", "util_in_pct"), ("out_octets", "util_out_pct")):
    dt = (b[k]["time_ms"] - a[k]["time_ms"]) / 1000.0
    want = (b[k]["value"] - a[k]["value"]) / dt * 8 / speed * 100
    got = e[key]
    if got is None or abs(got - want) > 1e-6 * (1 + abs(want)):
        print("%s: map %r, from /latest %r" % (key, got, want))
        sys.exit(2)
    near = {"util_in_pct": 10.0, "util_out_pct": 5.0}[key]
    if not near * 0.5 <= got <= near * 1.5:
        print("%s: %r, the simulator's rate gives about %r" % (key, got, near))
        sys.exit(2)
print("util in %.4f %%, out %.4f %% = from two /latest readings" % (e["util_in_pct"], e["util_out_pct"]))
PY
    rc=$?
    [ "$rc" -eq 2 ] && kvl_fail "the map's utilisation: $(cat "$T/util.out")"
    kvl_log "attempt $attempt: $(cat "$T/util.out")"
done
[ "$ok" -eq 1 ] || kvl_fail "no two consecutive /latest readings with the map between them: $(cat "$T/util.out")"
kvl_log "$(cat "$T/util.out")"

# ------------------------------------------------------------------ 4: the quiet edge -----
"$KVL_PY" - "$T/map2.json" <<'PY' >"$T/quiet.out" 2>&1 ||
import json, sys
e = [x for x in json.load(open(sys.argv[1]))["edges"] if x["site"] == "bhq-quiet"][0]
assert e["parent"] == "dhq-map" and e["uplink"] is None and e["link"] is None, e
assert e["state"] == "unknown" and e["util_pct"] is None and e["loss_pct"] is None, e
PY
    kvl_fail "bhq-quiet's edge: $(cat "$T/quiet.out")"

# ------------------------------------------------------------------ 5: stale values -------
kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
stale() {
    api /api/v1/map | "$KVL_PY" -c '
import json, sys
e = [x for x in json.load(sys.stdin)["edges"] if x["site"] == "dhq-map"][0]
sys.exit(0 if e["util_pct"] is None and e["speed_bps"] is None and e["loss_pct"] == 0 else 1)'
}
kvl_wait_until 60 "dhq-map's utilisation to go stale while its probe answers" stale
kvl_sleep_checking 1 "$AGENT" "$COL"

kvl_pass "the map: nodes, edges, utilisation = /latest's, loss and RTT, stale values dropped"
