#!/bin/bash
# test_topology.sh — the topology (collector/topology/topology.h) against a real collector
# fed by real agents: a NOC agent polls the NOC router (snmpsim) whose port up0 is the
# district's configured uplink and whose port up1 (down) is block 3's; the district and two
# blocks have agents of their own (heartbeat 1 s, lost after 3).
#   1. GET /api/v1/topology without credentials: 401. With: every site, agent and device;
#      the LLDP link between the two routers (their interfaces named), used as the district's
#      way up instead of its configured uplink (a warning says so, once);
#      its traffic (the routers' ports: 1 and 0.5 Mb/s on 10 Mb/s, 10 % utilised);
#      exactly one root cause: block 3's uplink interface (down), cutting off block 3 only;
#      `kaavalctl topology` prints the tree and that cause, exit 2;
#   2. block 2's agent stopped (SIGSTOP): a second cause, block 2 isolated (its agents all
#      lost), cutting off block 2 and its agent; back (SIGCONT): gone; block 1's agent
#      measures the district's agent (a TCP target named as that agent): a probe link between
#      the two while it answers, none once its listener is gone, back with it;
#   3. the NOC router down with everything behind it (SIGSTOP of the simulator and of the
#      district's and blocks' agents, as a dead router cuts them off): one cause, the router,
#      cutting off the district and its three blocks with their agents and the district's
#      router — block 3's uplink is now behind it, not a cause of its own; everything back:
#      as in 1. With the simulator alone stopped the district's agents still report, so the
#      district is not cut off (they are the proof of its path): the two routers are each a
#      cause of their own and only block 3 (no agent) is behind the NOC router;
#   4. the collector restarted: the same graph (the inventory's devices, the tree) and the
#      same one cause; GET /api/v1/topology/changes lists block 2's cut and repair (each a
#      version), kept across the restart, which adds no node or link as new.
#
#   bash tests/integration/test_topology.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
kvl_make_rate_device "$T/rec/nocrtr.snmprec" "up0:125000:62500:10" "up1:0:0:10:down"
kvl_make_rate_device "$T/rec/dhqrtr.snmprec" "wan0:62500:125000:10"
# system names of their own, and the district router's LLDP neighbour: the NOC router's up0
"$KVL_PY" - "$T/rec/nocrtr.snmprec" "$T/rec/dhqrtr.snmprec" <<'PY' || kvl_fail "cannot write the LLDP rows"
import sys
def edit(path, name, extra):
    rows = dict(l.rstrip("\n").split("|", 1) for l in open(path) if l.strip())
    rows["1.3.6.1.2.1.1.5.0"] = "4|" + name
    rows.update(extra)
    key = lambda oid: tuple(int(p) for p in oid.split("."))
    with open(path, "w") as f:
        for oid in sorted(rows, key=key):
            f.write("%s|%s\n" % (oid, rows[oid]))
edit(sys.argv[1], "noc-core", {})
rem = "1.0.8802.1.1.2.1.4.1.1.%d.0.1.1"  # TimeMark 0, local port 1 (ifIndex 1: wan0), index 1
edit(sys.argv[2], "dhq-core", {rem % 4: "2|4", rem % 5: "4x|02000000a001", rem % 6: "2|5",
                               rem % 7: "4|up0", rem % 8: "4|to the district",
                               rem % 9: "4|noc-core"})
PY
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >>"$T/collector.yaml" <<YAML
lost_after: 3
sites:
  - {name: noc-t, kind: noc}
  - {name: dhq-a, parent: noc-t, kind: dhq, uplink: [noc-agent, nocrtr, up0]}
  - {name: bhq-1, parent: dhq-a, kind: bhq}
  - {name: bhq-2, parent: dhq-a, kind: bhq}
  - {name: bhq-3, parent: dhq-a, kind: bhq, uplink: [noc-agent, nocrtr, up1]}
YAML
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
kvl_add_token "$T/collector.yaml" wall viewer
TOKEN=$KVL_TOKEN
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID

start_agent() { # ID SITE [DEVICE]
    kvl_agent_config "$T/$1.yaml" "$1" "$2" "$COL_PORT" 2s
    sed -i 's/timeout: 500ms/timeout: 300ms/; s/^reconnect_max: .*/&\nheartbeat: 1s/' "$T/$1.yaml"
    if [ -n "${3:-}" ]; then
        kvl_agent_device "$T/$1.yaml" "$3" "$SNMP" "$3"
    else
        sed -i 's/^devices:$/devices: []/' "$T/$1.yaml"
    fi
    kvl_start_agent "$1" "$T/$1.yaml"
}
start_agent noc-agent noc-t nocrtr
start_agent dhq-agent dhq-a dhqrtr
DHQ=$KVL_LAST_PID
# block 1's agent measures the district's agent (a TCP target named as that agent, as the
# mesh names them) at a listener of the test's own
kvl_free_port tcp PROBE_PORT
cat >"$T/probe_listener.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.close()
PY
listener() {
    "$KVL_PY" "$T/probe_listener.py" "$PROBE_PORT" >>"$L/listener.log" 2>&1 &
    LISTENER=$!
    kvl_track "$LISTENER" probe_listener.py
}
listener
kvl_agent_config "$T/b1-agent.yaml" b1-agent bhq-1 "$COL_PORT" 2s
sed -i 's/timeout: 500ms/timeout: 300ms/; s/^reconnect_max: .*/&\nheartbeat: 1s/; s/^devices:$/devices: []/' "$T/b1-agent.yaml"
sed -i "s/^probes:\$/probes:\n  interval: 1s\n  count: 2\n  targets:\n    - {name: dhq-agent, address: 127.0.0.1, type: tcp, port: $PROBE_PORT}/" "$T/b1-agent.yaml"
kvl_start_agent b1-agent "$T/b1-agent.yaml"
B1=$KVL_LAST_PID
start_agent b2-agent bhq-2
B2=$KVL_LAST_PID

URL="http://127.0.0.1:$HTTP_PORT"
api() { curl -s -H "Authorization: Bearer $TOKEN" "$URL$1"; }
kvl_wait_until 20 "the HTTP API" curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/status" -o /dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/topology")
[ "$code" = 401 ] || kvl_fail "/api/v1/topology without credentials: $code, not 401"

# check NAME PYTHON-ASSERTIONS: the topology's JSON as `t`, its causes by name as `c`, the
# nodes' states by name as `st`; exits non-zero (with the reason) when an assertion fails
check() {
    api /api/v1/topology >"$T/topo.json"
    "$KVL_PY" - "$T/topo.json" "$2" <<'PY' >"$T/check.out" 2>&1
import json, sys
t = json.load(open(sys.argv[1]))
st = {(n["kind"], n["name"]): n["state"] for n in t["nodes"]}
c = {x["name"]: x for x in t["causes"]}
exec(sys.argv[2])
PY
}
wait_check() { # SECONDS WHAT ASSERTIONS
    local deadline=$((SECONDS + $1))
    while ! check "$2" "$3"; do
        [ "$SECONDS" -lt "$deadline" ] ||
            kvl_fail "$2: $(cat "$T/check.out") $(head -c 3000 "$T/topo.json")"
        sleep 0.5
    done
    kvl_log "$2: ok"
}

# ------------------------------------------------------------------ 1: one cause ----------
SITES='["noc-t", "dhq-a", "bhq-1", "bhq-2", "bhq-3"]'
BASE='
for s in '"$SITES"':
    assert ("site", s) in st, s
for a in ["noc-agent", "dhq-agent", "b1-agent", "b2-agent"]:
    assert st.get(("agent", a)) == "reachable", (a, st.get(("agent", a)))
assert st[("device", "noc-agent/nocrtr")] == "reachable", st
assert st[("device", "dhq-agent/dhqrtr")] == "reachable", st
ids = {n["id"]: n["name"] for n in t["nodes"]}
ll = [l for l in t["links"] if l["source"] == "lldp"]
assert len(ll) == 1, t["links"]
ends = {ids[ll[0]["a"]]: ll[0]["a_if"], ids[ll[0]["b"]]: ll[0]["b_if"]}
assert ends == {"dhq-agent/dhqrtr": "wan0", "noc-agent/nocrtr": "up0"}, ll
tr = ll[0]["traffic"]  # 1 Mb/s one way, 0.5 the other, on 10 Mb/s ports (either end)
assert tr is not None and tr["speed_bps"] == 10e6, tr
assert tr["util_pct"] is not None and 9.0 < tr["util_pct"] < 11.0, tr
assert 0.45e6 < min(tr["in_bps"], tr["out_bps"]) < 0.55e6 and 0.9e6 < max(tr["in_bps"], tr["out_bps"]) < 1.1e6, tr
up = [l for l in t["links"] if l["source"] == "uplink"]
assert len(up) == 1 and "bhq-3" in (ids[up[0]["a"]], ids[up[0]["b"]]), up
assert not [l for l in t["links"] if l["source"] == "tree" and "dhq-a" in (ids[l["a"]], ids[l["b"]]) and "noc-t" in (ids[l["a"]], ids[l["b"]])], "a tree link from the NOC to the district"
pl = [l for l in t["links"] if l["source"] == "probe"]
assert len(pl) == 1 and {ids[pl[0]["a"]], ids[pl[0]["b"]]} == {"b1-agent", "dhq-agent"} and pl[0]["up"], pl
assert len(c) == 1, list(c)
k = list(c.values())[0]
assert k["type"] == "link" and k["reason"] == "uplink interface down", k
assert "noc-agent/nocrtr [up1]" in k["name"] and k["name"].endswith("bhq-3"), k
assert k["sites_cut"] == ["bhq-3"] and k["cut"] == {"sites": 1, "agents": 0, "devices": 0}, k
for s in ["noc-t", "dhq-a", "bhq-1", "bhq-2"]:
    assert st[("site", s)] == "reachable", (s, st[("site", s)])
assert st[("site", "bhq-3")] == "unreachable", st
'
wait_check 60 "every agent and the router known, one cause: block 3's uplink (down)" "$BASE"
n=$(grep -c "LLDP/CDP neighbours join site 'dhq-a' to its parent 'noc-t': they are used, not its configured uplink (nocrtr up0)" "$L/collector.log")
[ "$n" -eq 1 ] || kvl_fail "the uplink's conflict with the neighbours logged $n times, not once"
rc=0
"$KVL_BUILD/kaavalctl" --url "$URL" --token "$TOKEN" topology >"$T/ctl.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || kvl_fail "kaavalctl topology with a cause: exit $rc, not 2: $(cat "$T/ctl.out")"
grep -q '^  dhq-a \[dhq\]  ok$' "$T/ctl.out" || kvl_fail "kaavalctl topology: no dhq-a line: $(cat "$T/ctl.out")"
grep -q '^    bhq-3 \[bhq\]  unreachable, behind noc-agent/nocrtr \[up1\] - bhq-3$' "$T/ctl.out" ||
    kvl_fail "kaavalctl topology: bhq-3 not shown behind its uplink: $(cat "$T/ctl.out")"
grep -q 'uplink interface down; cuts off 1 site, 0 agents, 0 devices: bhq-3$' "$T/ctl.out" ||
    kvl_fail "kaavalctl topology: the cause line: $(cat "$T/ctl.out")"
kvl_log "kaavalctl topology:
$(cat "$T/ctl.out")"

# ------------------------------------------------------------------ 2: an isolated site ---
kill -STOP "$B2"
wait_check 30 "block 2 isolated once its agent is lost" '
assert len(c) == 2, list(c)
k = [x for x in c.values() if x["reason"] != "uplink interface down"][0]
assert k["reason"] == "site isolated: all its agents lost", k
assert k["name"] == "dhq-a - bhq-2", k
assert k["sites_cut"] == ["bhq-2"] and k["cut"] == {"sites": 1, "agents": 1, "devices": 0}, k
assert st[("agent", "b2-agent")] == "unreachable", st
assert st[("site", "bhq-1")] == "reachable", st
'
kill -CONT "$B2"
wait_check 30 "block 2 back with its agent" "$BASE"
# what changed on the map: the cut and its repair, each a version of its own
api "/api/v1/topology/changes?since=0" >"$T/changes.json"
"$KVL_PY" - "$T/changes.json" <<'PY' || kvl_fail "the topology's changes: $(head -c 3000 "$T/changes.json")"
import json, sys
j = json.load(open(sys.argv[1]))
ch = [(c["what"], c["name"]) for c in j["changes"]]
assert ("cut", "bhq-2 - dhq-a") in ch and ("repaired", "bhq-2 - dhq-a") in ch, ch
assert ch.index(("cut", "bhq-2 - dhq-a")) < ch.index(("repaired", "bhq-2 - dhq-a")), ch
vs = [c["version"] for c in j["changes"]]
assert vs == sorted(vs) and len(set(vs)) == len(vs) and j["version"] == vs[-1], vs
assert any(w == "link_added" and n.endswith("(lldp)") for w, n in ch) or ch[0][0] == "learned", ch
PY
VERSION=$(api /api/v1/topology/changes | "$KVL_PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])')
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL/api/v1/topology/changes?since=x")
[ "$code" = 400 ] || kvl_fail "/api/v1/topology/changes?since=x: $code, not 400"

# ------------------------------------------------------------------ 2b: a probe lost -----
kvl_stop "$LISTENER" TERM
wait_check 30 "the district's agent no longer answers block 1's probes: no probe link" '
assert not [l for l in t["links"] if l["source"] == "probe"], [l for l in t["links"] if l["source"] == "probe"]
assert len(c) == 1, list(c)
'
listener
wait_check 30 "block 1's probes answered again" "$BASE"

# ------------------------------------------------------------------ 3: the router down ----
kill -STOP "$SIM"
wait_check 30 "the routers silent, the district's agents reporting: two causes, block 3 cut" '
assert len(c) == 2, list(c)
k = c["noc-agent/nocrtr"]
assert k["type"] == "node" and k["reason"] == "device unreachable", k
assert k["sites_cut"] == ["bhq-3"] and k["cut"] == {"sites": 1, "agents": 0, "devices": 0}, k
k = c["dhq-agent/dhqrtr"]
assert k["sites_cut"] == [] and k["cut"] == {"sites": 0, "agents": 0, "devices": 0}, k
assert st[("site", "dhq-a")] == "reachable", st
assert st[("agent", "dhq-agent")] == "reachable", st
'
kill -STOP "$DHQ" "$B1" "$B2"
wait_check 30 "the NOC router the one cause, the district behind it" '
assert len(c) == 1, list(c)
k = c["noc-agent/nocrtr"]
assert k["type"] == "node" and k["reason"] == "device unreachable", k
assert sorted(k["sites_cut"]) == ["bhq-1", "bhq-2", "bhq-3", "dhq-a"], k
assert k["cut"] == {"sites": 4, "agents": 3, "devices": 1}, k
assert st[("device", "dhq-agent/dhqrtr")] == "unreachable", st
assert st[("agent", "noc-agent")] == "reachable", st
assert st[("site", "bhq-3")] == "unreachable", st
'
kill -CONT "$SIM" "$DHQ" "$B1" "$B2"
wait_check 30 "the router back" "$BASE"

# ------------------------------------------------------------------ 4: a restart ----------
kvl_stop "$COL" TERM || kvl_fail "could not stop the collector"
kvl_start_collector collector2 "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_wait_until 20 "the HTTP API again" curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/status" -o /dev/null
wait_check 60 "after the collector's restart: the same graph, one cause" "$BASE"
api "/api/v1/topology/changes?since=0" >"$T/changes2.json"
"$KVL_PY" - "$T/changes2.json" "$VERSION" <<'PY' || kvl_fail "the changes after a restart: $(head -c 3000 "$T/changes2.json")"
import json, sys
j = json.load(open(sys.argv[1]))
ch = [(c["what"], c["name"]) for c in j["changes"]]
assert ("cut", "bhq-2 - dhq-a") in ch, ch  # kept across the restart
assert j["version"] >= int(sys.argv[2]), (j["version"], sys.argv[2])
assert not [c for c in j["changes"] if c["version"] > int(sys.argv[2]) and c["what"] in ("learned", "node_added", "link_added")], ch
PY
kvl_sleep_checking 1 "$COL" "$DHQ"

kvl_pass "the topology: one cause per outage (an uplink, an isolated site, a router), what each cuts off, kaavalctl topology"
