#!/bin/bash
# test_district.sh — one page per outage, in a simulated district (ctest netns_district,
# labels netns and integration; root: network namespaces).
#
#   noc  (10.140.0.1)  the collector (HTTP API, on its 127.0.0.1), the NOC agent, the NOC
#        |             router noc-core (snmpsim), the webhook receiver (the only receiver)
#   dhq  (10.140.0.2; 10.141.N.1 to block N; forwards IPv4)  the DHQ agent, router dhq-core
#        |
#   b01..b10 (10.141.N.2)  each a block agent and its block router bNN-rtr
#
# Every agent polls the router of its own namespace (snmpsim on that namespace's loopback)
# every 5 s, heartbeats every 1 s and ships to the collector at 10.140.0.1, the blocks through
# the DHQ. The routers are generated here (kvl_make_rate_device) with LLDP remote rows:
# dhq-core's wan0 sees noc-core's up0, each bNN-rtr's wan0 sees dhq-core's port bNN; the
# collector's `sites:` puts dhq-kollam under noc and the ten blocks under dhq-kollam, and the
# topology joins the routers by the neighbours' system names.
#   0. Up: GET /api/v1/topology shows the 12 sites, 12 agents and 12 devices reachable, the 11
#      LLDP links with their interfaces, and no cause; the webhook received nothing.
#   1. The DHQ uplink cut (the noc end of the noc-dhq veth down): the 11 agents behind it are
#      declared lost; exactly one page reaches the webhook, topology_cut (critical), its
#      summary naming b01 .. b10, and no other (20 s watched after it); /api/v1/alerts shows
#      the 11 agent_lost alerts firing, each "suppressed" with its cause; /api/v1/topology
#      one cause, dhq-core, cutting off the ten blocks.
#   2. Still cut, b07's router stops answering (its simulator stopped, by pid).
#   3. The repair (veth up): the agents come back and replay their spools; exactly one
#      resolution (topology_cut's) and, after the settle time (10 s) and within 50 s of the
#      repair, exactly one page: device_down of b07-rtr; nothing else.
#   4. b03 isolated (the dhq end of its veth down): exactly one page, topology_cut naming b03
#      as isolated; its repair: that page's resolution, nothing else, and b03's spooled polls
#      of the cut in its router's archive.
# Each check prints PASS or FAIL (tests/netns/lib.sh `check`) with its figures; the district
# not coming up is a failure of its own (the logs' tails are printed).
#
# The collector's root-cause keys (alerts: root_cause: {hold, settle}) are written unless
# ROOT_CAUSE_KEYS=0 (a collector without them refuses the configuration).
#   bash tests/netns/test_district.sh [BUILD_DIR]   (or KVL_AGENT, KVL_COLLECTOR from ctest)
#   KAAVAL_KEEP_TMP=1 keeps the work folder.
# shellcheck source-path=SCRIPTDIR disable=SC2317 # functions run from traps and helpers
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: needs root (network namespaces)"
    exit 77
fi
for t in ip curl; do
    command -v "$t" >/dev/null 2>&1 || { echo "SKIP: $t missing (packaging/install-deps.sh)"; exit 77; }
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${1:-}
[ -n "$BUILD" ] || { [ -n "${KVL_AGENT:-}" ] && BUILD=$(dirname "$KVL_AGENT"); }
# shellcheck source=../integration/lib.sh
. "$HERE/../integration/lib.sh"
kvl_init ${BUILD:+"$BUILD"}
# check, ns_add (the namespaces, in NS_LIST)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
FAIL=0
NS_LIST=
[ -x "$KVL_BUILD/kaavalctl" ] || kvl_fail "kaavalctl not built"

# The processes first (lib.sh, newest first), then the namespaces.
district_cleanup() {
    local rc=$? n
    (exit "$rc")
    (kvl_cleanup)
    for n in $NS_LIST; do
        ip netns del "$n" 2>/dev/null || true
    done
    exit "$rc"
}
trap district_cleanup EXIT

T=$KVL_TMP
L=$T/logs
BLOCKS=(b01 b02 b03 b04 b05 b06 b07 b08 b09 b10)
P=kd$$
NOC=${P}noc
DHQ=${P}dhq
ns_of() { echo "$P$1"; } # noc, dhq, bNN -> its namespace
now_ms() { date +%s%3N; }

# ------------------------------------------------------------------ the network -----------
ns_add "$NOC" "$DHQ"
for b in "${BLOCKS[@]}"; do ns_add "$(ns_of "$b")"; done
ip link add dhq0 netns "$NOC" type veth peer name noc0 netns "$DHQ"
ip -n "$NOC" addr add 10.140.0.1/24 dev dhq0
ip -n "$DHQ" addr add 10.140.0.2/24 dev noc0
ip -n "$NOC" link set dhq0 up
ip -n "$DHQ" link set noc0 up
ip netns exec "$DHQ" sysctl -qw net.ipv4.ip_forward=1
for b in "${BLOCKS[@]}"; do
    n=$((10#${b#b}))
    ip link add "$b" netns "$DHQ" type veth peer name wan0 netns "$(ns_of "$b")"
    ip -n "$DHQ" addr add "10.141.$n.1/24" dev "$b"
    ip -n "$(ns_of "$b")" addr add "10.141.$n.2/24" dev wan0
    ip -n "$DHQ" link set "$b" up
    ip -n "$(ns_of "$b")" link set wan0 up
done
# routes: (again) after a link comes back up; a link set down takes its routes with it
routes() {
    local b
    ip -n "$NOC" route replace 10.141.0.0/16 via 10.140.0.2 dev dhq0
    for b in "${BLOCKS[@]}"; do
        ip -n "$(ns_of "$b")" route replace default via "10.141.$((10#${b#b})).1" dev wan0
    done
}
# set_routes: routes, tried again for a second at most (a link just up may still be coming)
set_routes() {
    local i
    for ((i = 0; i < 10; i++)); do
        routes 2>>"$L/routes.log" && return 0
        sleep 0.1
    done
    kvl_fail "cannot set the district's routes: $(tail -n 2 "$L/routes.log")"
}
set_routes
for b in b01 b10; do
    ip netns exec "$(ns_of "$b")" ping -c 1 -W 2 10.140.0.1 >/dev/null ||
        kvl_fail "$b does not reach the NOC through the DHQ"
done

# A program run inside a namespace under its own name (lib.sh's helpers start "$KVL_AGENT",
# "$KVL_COLLECTOR", bash "$KVL_SERVE" and recognise their processes by the name).
in_ns() { # NS NAME COMMAND...: prints the wrapper's path
    local ns=$1 name=$2 f
    shift 2
    mkdir -p "$T/bin/$ns"
    f=$T/bin/$ns/$name
    printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$ns" "$*" >"$f"
    chmod 755 "$f"
    echo "$f"
}

# ------------------------------------------------------------------ the routers -----------
# site's name -> its router's system name
rtr_of() { case $1 in noc) echo noc-core ;; dhq) echo dhq-core ;; *) echo "$1-rtr" ;; esac; }
dhq_ports=
for b in "${BLOCKS[@]}"; do dhq_ports="$dhq_ports $b:12500:25000:100"; done
for s in noc dhq "${BLOCKS[@]}"; do mkdir -p "$T/rec/$s"; done
kvl_make_rate_device "$T/rec/noc/noc-core.snmprec" "up0:250000:125000:100"
# shellcheck disable=SC2086 # one argument per port
kvl_make_rate_device "$T/rec/dhq/dhq-core.snmprec" "wan0:125000:250000:100" $dhq_ports
for b in "${BLOCKS[@]}"; do
    kvl_make_rate_device "$T/rec/$b/$b-rtr.snmprec" "wan0:25000:12500:100"
done
# their system names, and their LLDP neighbours on wan0 (local port 1 = ifIndex 1)
"$KVL_PY" - "$T/rec" "${BLOCKS[@]}" <<'PY' || kvl_fail "cannot write the LLDP rows"
import sys
rec, blocks = sys.argv[1], sys.argv[2:]
def edit(path, name, neighbour=None, port=None, mac=None):
    rows = dict(l.rstrip("\n").split("|", 1) for l in open(path) if l.strip())
    rows["1.3.6.1.2.1.1.5.0"] = "4|" + name
    if neighbour:
        rem = "1.0.8802.1.1.2.1.4.1.1.%d.0.1.1"  # lldpRemTable: TimeMark 0, port 1, index 1
        rows.update({rem % 4: "2|4", rem % 5: "4x|" + mac, rem % 6: "2|5", rem % 7: "4|" + port,
                     rem % 8: "4|" + port + " of " + neighbour, rem % 9: "4|" + neighbour})
    key = lambda oid: tuple(int(p) for p in oid.split("."))
    with open(path, "w") as f:
        for oid in sorted(rows, key=key):
            f.write("%s|%s\n" % (oid, rows[oid]))
edit(rec + "/noc/noc-core.snmprec", "noc-core")
edit(rec + "/dhq/dhq-core.snmprec", "dhq-core", "noc-core", "up0", "02000000a001")
for b in blocks:
    edit("%s/%s/%s-rtr.snmprec" % (rec, b, b), b + "-rtr", "dhq-core", b, "02000000b001")
PY

# ------------------------------------------------------------------ the collector ---------
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
kvl_free_port tcp HOOK_PORT
SECRET=district-s3cret
: >"$T/hook.out"
: >"$T/alerts.jsonl"
ip netns exec "$NOC" "$KVL_PY" "$HERE/../integration/notify_webhook_rx.py" "$HOOK_PORT" \
    "$SECRET" "$T/hook.out" 0 "$T/alerts.jsonl" >>"$L/webhook.log" 2>&1 &
kvl_track $! notify_webhook_rx.py

ROOT_CAUSE=
[ "${ROOT_CAUSE_KEYS:-1}" = 0 ] || ROOT_CAUSE=", root_cause: {hold: 3s, settle: 10s}"
C=$T/collector.yaml
kvl_collector_config "$C" "$COL_PORT" "$T/data"
sed -i "s/^listen: 127.0.0.1:/listen: 10.140.0.1:/" "$C"
{
    echo "lost_after: 3"
    echo "sites:"
    echo "  - {name: noc, kind: noc}"
    echo "  - {name: dhq-kollam, parent: noc, kind: dhq}"
    for b in "${BLOCKS[@]}"; do echo "  - {name: $b, parent: dhq-kollam, kind: bhq}"; done
    echo "receivers:"
    echo "  - {name: hook, type: webhook, url: \"http://127.0.0.1:$HOOK_PORT/\", secret: $SECRET}"
    echo "alerts: {receiver: hook, group_wait: 1s, group_interval: 1s$ROOT_CAUSE}"
} >>"$C"
kvl_http_config "$C" "$HTTP_PORT"
"$KVL_COLLECTOR" -c "$C" --check-config >"$L/check.log" 2>&1 ||
    kvl_fail "--check-config refused the configuration (ROOT_CAUSE_KEYS=0 leaves the root-cause keys out): $(cat "$L/check.log")"
kvl_add_token "$C" noc viewer
TOKEN=$KVL_TOKEN
KVL_COLLECTOR=$(in_ns "$NOC" kaaval-collector "$KVL_COLLECTOR") kvl_start_collector collector "$C"
COL=$KVL_LAST_PID
CLOG=$L/collector.log

api() { # PATH: GET with the token, from inside the NOC
    ip netns exec "$NOC" curl -s --noproxy '*' -m 5 -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$HTTP_PORT$1"
}
api_up() { [ "$(api /api/v1/status | head -c 1)" = "{" ]; }
kvl_wait_until 30 "the HTTP API" api_up

# ------------------------------------------------------------------ routers and agents ----
declare -A SNMP SIM
t0=$SECONDS
for s in noc dhq "${BLOCKS[@]}"; do
    kvl_free_port udp "SNMP[$s]"
    KVL_SERVE=$(in_ns "$(ns_of "$s")" serve.sh bash "$KVL_SERVE") \
        kvl_start_snmpsim "$T/rec/$s" "${SNMP[$s]}"
    SIM[$s]=$KVL_LAST_PID
done
kvl_log "12 simulators started in $((SECONDS - t0)) s"
site_of() { case $1 in noc) echo noc ;; dhq) echo dhq-kollam ;; *) echo "$1" ;; esac; }
for s in noc dhq "${BLOCKS[@]}"; do
    f=$T/$s-agent.yaml
    KVL_AGENT_COLLECTORS="collector: 10.140.0.1:$COL_PORT" \
        kvl_agent_config "$f" "$s-agent" "$(site_of "$s")" "$COL_PORT" 5s
    sed -i 's/^reconnect_max: .*/&\nheartbeat: 1s/' "$f"
    kvl_agent_device "$f" "$(rtr_of "$s")" "${SNMP[$s]}" "$(rtr_of "$s")"
    KVL_AGENT=$(in_ns "$(ns_of "$s")" kaaval-agent "$KVL_AGENT") kvl_start_agent "$s-agent" "$f"
done

# ------------------------------------------------------------------ reading the results ---
# topo PYTHON: the topology's JSON as `t`, nodes' states by (kind, name) as `st`, node names
# by id as `ids`, causes as the list `c`; BLOCKS the block names; false (the reason in
# $T/topo.out) when an assertion fails
topo() {
    api /api/v1/topology >"$T/topo.json" 2>/dev/null
    "$KVL_PY" - "$T/topo.json" "$1" "${BLOCKS[@]}" <<'PY' >"$T/topo.out" 2>&1
import json, sys
t = json.load(open(sys.argv[1]))
BLOCKS = sys.argv[3:]
st = {(n["kind"], n["name"]): n["state"] for n in t["nodes"]}
ids = {n["id"]: n["name"] for n in t["nodes"]}
c = t["causes"]
exec(sys.argv[2])
PY
}
# firing_alerts PYTHON: GET /api/v1/alerts?status=firing as the list `a`; false (the reason
# in $T/alerts.out) when an assertion fails
firing_alerts() {
    api '/api/v1/alerts?status=firing' >"$T/alerts.json" 2>/dev/null
    "$KVL_PY" - "$T/alerts.json" "$1" <<'PY' >"$T/alerts.out" 2>&1
import json, sys
a = json.load(open(sys.argv[1]))
a = a.get("alerts", a) if isinstance(a, dict) else a
exec(sys.argv[2])
PY
}

# pages FROM_MS [TO_MS]: the alerts that reached the webhook in that span, each change once
# (a group's later notification repeats its alerts): "<ms> <status> <rule> <severity>
# <device, else agent, else site> | <summary>", in order of arrival
pages() {
    "$KVL_PY" - "$T/alerts.jsonl" "$1" "${2:-99999999999999}" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    a = r["alert"]
    if not int(sys.argv[2]) <= r["ms"] < int(sys.argv[3]):
        continue
    k = (a.get("fingerprint"), a.get("status"), a.get("starts_at"))
    if k in seen:
        continue
    seen.add(k)
    lb = a.get("labels", {})
    print(r["ms"], a.get("status"), a.get("rule"), a.get("severity"),
          lb.get("device") or lb.get("agent") or lb.get("site") or "-", "|", a.get("summary", ""))
PY
}
# count FROM_MS STATUS [RULE]: how many of those are STATUS (and of RULE)
count() { pages "$1" | awk -v s="$2" -v r="${3:-}" '$2 == s && (r == "" || $3 == r)' | wc -l; }
# first_ms FROM_MS STATUS RULE [TEXT]: the arrival of the first of those (with TEXT), or -1
first_ms() {
    local ms
    ms=$(pages "$1" | awk -v s="$2" -v r="$3" -v x="${4:-}" \
        '$2 == s && $3 == r && index($0, x) { print $1; exit }')
    echo "${ms:--1}"
}
# await_page FROM_MS SECONDS STATUS RULE [TEXT]: waits (bounded) for such a page; prints its ms
await_page() {
    local i ms=-1
    for ((i = 0; i < $2 * 2; i++)); do
        ms=$(first_ms "$1" "$3" "$4" "${5:-}")
        [ "$ms" -ge 0 ] && break
        sleep 0.5
    done
    echo "$ms"
}
# sleep_until MS: sleeps until that moment (while every daemon still runs)
sleep_until() {
    local left=$((($1 - $(now_ms) + 999) / 1000))
    [ "$left" -le 0 ] || kvl_sleep_checking "$left" "$COL"
}
log_count() { grep -c "$1" "$CLOG" || true; }
wait_log_count() { # PATTERN N SECONDS
    local i
    for ((i = 0; i < $3 * 2; i++)); do
        [ "$(log_count "$1")" -ge "$2" ] && return 0
        sleep 0.5
    done
    return 1
}
or_now() { if [ "$1" -ge 0 ]; then echo "$1"; else now_ms; fi; } # MS, or now when -1
show() { # TITLE FROM_MS: what reached the webhook since
    echo "--- $1: what reached the webhook ---"
    pages "$2" | sed 's/^/    /'
}

# ------------------------------------------------------------------ 0: the district up ----
t0=$SECONDS
UP='
sites = ["noc", "dhq-kollam"] + BLOCKS
for s in sites:
    assert st.get(("site", s)) == "reachable", ("site", s, st.get(("site", s)))
agents = ["noc-agent", "dhq-agent"] + [b + "-agent" for b in BLOCKS]
assert len([k for k in st if k[0] == "agent"]) == 12, [k for k in st if k[0] == "agent"]
for a in agents:
    assert st.get(("agent", a)) == "reachable", ("agent", a, st.get(("agent", a)))
devs = ["noc-agent/noc-core", "dhq-agent/dhq-core"] + ["%s-agent/%s-rtr" % (b, b) for b in BLOCKS]
assert len([k for k in st if k[0] == "device"]) == 12, [k for k in st if k[0] == "device"]
for d in devs:
    assert st.get(("device", d)) == "reachable", ("device", d, st.get(("device", d)))
ll = {frozenset([(ids[l["a"]], l["a_if"]), (ids[l["b"]], l["b_if"])])
      for l in t["links"] if l["source"] == "lldp"}
want = {frozenset([("noc-agent/noc-core", "up0"), ("dhq-agent/dhq-core", "wan0")])}
want |= {frozenset([("dhq-agent/dhq-core", b), ("%s-agent/%s-rtr" % (b, b), "wan0")]) for b in BLOCKS}
assert ll == want, ("LLDP links", sorted(map(sorted, ll)))
assert not c, ("causes", c)
'
deadline=$((SECONDS + 90))
until topo "$UP"; do
    [ "$SECONDS" -lt "$deadline" ] ||
        kvl_fail "the district never came up: $(tail -n 3 "$T/topo.out") $(head -c 2000 "$T/topo.json")"
    sleep 1
done
kvl_log "the district is up $((SECONDS - t0)) s after the agents' start"
kvl_sleep_checking 3 "$COL"
n=$(count 0 firing)
check up "$([ "$n" -eq 0 ] && echo 0 || echo 1)" \
    "12 sites, 12 agents and 12 devices reachable, the 11 LLDP links, no cause; $n pages"
[ "$n" -eq 0 ] || show "before any cut" 0

# ------------------------------------------------------------------ 1: the uplink cut -----
lost0=$(log_count '\] agent_lost (')
T_CUT=$(now_ms)
ip -n "$NOC" link set dhq0 down
if wait_log_count '\] agent_lost (' $((lost0 + 11)) 30; then
    kvl_log "11 agents lost $(($(now_ms) - T_CUT)) ms after the cut"
else
    kvl_fail "$(($(log_count '\] agent_lost (') - lost0)) agents lost 30 s after the cut, not 11"
fi
PAGE=$(await_page "$T_CUT" 30 firing topology_cut)
QUIET_END=$(($(or_now "$PAGE") + 20000))
SUPP='
lost = [x for x in a if x["rule"] == "agent_lost" and x["status"] == "firing"]
assert len(lost) == 11, ("firing agent_lost", len(lost))
bad = [x["labels"].get("agent") for x in lost if not x.get("suppressed")]
assert not bad, ("agent_lost without a non-empty suppressed", bad)
'
CAUSE='
assert len(c) == 1, ("causes", [(k["name"], k["reason"]) for k in c])
k = c[0]
assert "dhq-core" in k["name"], ("the cause", k["name"], k["reason"])
assert set(BLOCKS) <= set(k["sites_cut"]), ("cut off", k["sites_cut"])
'
supp=1 cause=1
while [ "$(now_ms)" -lt "$QUIET_END" ]; do
    [ "$supp" = 0 ] || { firing_alerts "$SUPP" && supp=0; cp "$T/alerts.out" "$T/supp.out"; }
    [ "$cause" = 0 ] || { topo "$CAUSE" && cause=0; cp "$T/topo.out" "$T/cause.out"; }
    [ "$supp$cause" = 00 ] && break
    sleep 1
done
sleep_until "$QUIET_END"
show "the uplink cut" "$T_CUT"
pages "$T_CUT" | awk '$2 == "firing"' >"$T/cut.firing"
n=$(wc -l <"$T/cut.firing")
rc=0
[ "$n" -eq 1 ] && [ "$PAGE" -ge 0 ] && grep -q '^[0-9]* firing topology_cut critical ' "$T/cut.firing" || rc=1
for b in "${BLOCKS[@]}"; do grep -q "|.*\b$b\b" "$T/cut.firing" || rc=1; done
check cut-page $rc "$n firing pages during the cut (want 1: topology_cut, critical, naming b01..b10); page $([ "$PAGE" -ge 0 ] && echo "$((PAGE - T_CUT)) ms after the cut" || echo "never")"
check cut-suppressed $supp "11 agent_lost firing in /api/v1/alerts, each suppressed with its cause: $(tail -n 1 "$T/supp.out")"
check cut-cause $cause "/api/v1/topology: one cause, dhq-core, cutting off b01..b10: $(tail -n 1 "$T/cause.out")"
ip netns exec "$NOC" "$KVL_BUILD/kaavalctl" --url "http://127.0.0.1:$HTTP_PORT" --token "$TOKEN" \
    topology >"$T/ctl.out" 2>&1
kvl_log "kaavalctl topology during the cut (exit $?):
$(cat "$T/ctl.out")"
# the operator's view: kaavalctl alerts says which are held back and behind what
ip netns exec "$NOC" "$KVL_BUILD/kaavalctl" --url "http://127.0.0.1:$HTTP_PORT" --token "$TOKEN" \
    alerts --status firing >"$T/ctl-alerts.out" 2>&1
n=$(grep -c ' agent_lost .*(suppressed: cut off behind .*dhq-core' "$T/ctl-alerts.out" || true)
check cut-ctl-alerts "$([ "$n" -eq 11 ] && echo 0 || echo 1)" "kaavalctl alerts: $n agent_lost lines say suppressed behind dhq-core (want 11)"

# ------------------------------------------------------------------ 2: b07 down alone -----
kvl_stop "${SIM[b07]}" TERM || kvl_fail "could not stop b07's simulator"
kvl_log "b07-rtr stopped answering"
kvl_sleep_checking 15 "$COL"
# the whole cut: nothing but the root cause paged
pages "$T_CUT" | awk '$2 == "firing" && $3 != "topology_cut"' >"$T/cut.others"
n=$(wc -l <"$T/cut.others")
check cut-no-children "$([ "$n" -eq 0 ] && echo 0 || echo 1)" \
    "$n other firing pages during the whole cut ($(grep -c ' agent_lost ' "$T/cut.others") agent_lost, $(grep -c ' agent_silent ' "$T/cut.others") agent_silent, $(grep -c ' device_down ' "$T/cut.others") device_down)"

# ------------------------------------------------------------------ 3: the repair ---------
back0=$(log_count '\] agent_back (')
T_REP=$(now_ms)
ip -n "$NOC" link set dhq0 up
set_routes
if wait_log_count '\] agent_back (' $((back0 + 11)) 40; then
    kvl_log "11 agents back $(($(now_ms) - T_REP)) ms after the repair"
else
    kvl_fail "$(($(log_count '\] agent_back (') - back0)) agents back 40 s after the repair, not 11"
fi
RES=$(await_page "$T_REP" 30 resolved topology_cut)
DOWN=$(await_page "$T_REP" $(((T_REP + 50000 - $(now_ms)) / 1000)) firing device_down b07-rtr)
sleep_until $(($(or_now "$DOWN") + 10000))
show "the repair" "$T_REP"
pages "$T_REP" >"$T/rep.pages"
n=$(awk '$2 == "resolved"' "$T/rep.pages" | wc -l)
rc=0
[ "$n" -eq 1 ] && [ "$RES" -ge 0 ] || rc=1
check repair-resolved $rc "$n resolutions after the repair (want 1: topology_cut's); $([ "$RES" -ge 0 ] && echo "$((RES - T_REP)) ms after the repair" || echo "never")"
awk '$2 == "firing"' "$T/rep.pages" >"$T/rep.firing"
n=$(wc -l <"$T/rep.firing")
rc=0
[ "$n" -eq 1 ] && [ "$DOWN" -ge 0 ] && grep -q '^[0-9]* firing device_down [a-z]* b07-rtr ' "$T/rep.firing" || rc=1
after=-1
[ "$DOWN" -lt 0 ] || after=$((DOWN - T_REP))
[ "$after" -ge 9000 ] && [ "$after" -le 50000 ] || rc=1
check repair-child $rc "$n firing pages after the repair (want 1: device_down of b07-rtr, 10-50 s after it); device_down ${after} ms after the repair"

# ------------------------------------------------------------------ 4: b03 isolated -------
lost0=$(log_count '\] agent_lost (')
T_ISO=$(now_ms)
ip -n "$DHQ" link set b03 down
wait_log_count '\] agent_lost (' $((lost0 + 1)) 20 || kvl_fail "b03's agent not lost 20 s after its cut"
ISO=$(await_page "$T_ISO" 25 firing topology_cut isolated)
sleep_until $(($(or_now "$ISO") + 8000))
show "b03 isolated" "$T_ISO"
pages "$T_ISO" | awk '$2 == "firing"' >"$T/iso.firing"
n=$(wc -l <"$T/iso.firing")
rc=0
[ "$n" -eq 1 ] && grep -q '^[0-9]* firing topology_cut .*|.*isolated' "$T/iso.firing" &&
    grep -q '|.*\bb03\b' "$T/iso.firing" || rc=1
check isolated-page $rc "$n firing pages while b03 is cut off (want 1: topology_cut, isolated, naming b03); page $([ "$ISO" -ge 0 ] && echo "$((ISO - T_ISO)) ms after the cut" || echo "never")"
# keep b03 cut off long enough that its spool holds whole steps no batch could have carried
# before the cut (rows from T_ISO + 10 s) nor after the repair (rows to T_ISO_REP - 5 s):
# at least two 5 s rows, however quickly the page came
sleep_until $((T_ISO + 22000))
back0=$(log_count '\] agent_back (')
T_ISO_REP=$(now_ms)
ip -n "$DHQ" link set b03 up
set_routes
wait_log_count '\] agent_back (' $((back0 + 1)) 30 || kvl_fail "b03's agent not back 30 s after its repair"
RES=$(await_page "$T_ISO_REP" 20 resolved topology_cut)
# b03's spool replayed: its router's archive holds polls made while it was cut off
F03=$T/data/b03/b03-rtr/wan0.rrd
cut_rows() {
    kvl_rrd_rows "$F03" AVERAGE in_octets $((T_ISO / 1000 + 10)) $((T_ISO_REP / 1000 - 5)) |
        awk '$2 != "nan"' >"$T/cut.rows"
    [ -s "$T/cut.rows" ]
}
rc=1
for ((i = 0; i < 40; i++)); do
    cut_rows && { rc=0; break; }
    sleep 0.5
done
check isolated-spool $rc "$(wc -l <"$T/cut.rows") steps of b03-rtr's wan0 from the time it was cut off in its archive"
sleep_until $(($(now_ms) + 5000))
show "b03 back" "$T_ISO_REP"
pages "$T_ISO_REP" >"$T/iso.back"
nr=$(awk '$2 == "resolved"' "$T/iso.back" | wc -l)
nf=$(awk '$2 == "firing"' "$T/iso.back" | wc -l)
rc=0
[ "$nr" -eq 1 ] && [ "$RES" -ge 0 ] && [ "$nf" -eq 0 ] || rc=1
check isolated-resolved $rc "$nr resolutions (want 1: topology_cut's) and $nf firing pages (want 0) after b03's repair"

echo "figures: cut -> page $([ "$PAGE" -ge 0 ] && echo "$((PAGE - T_CUT)) ms" || echo never); pages in all: $(count 0 firing) firing, $(count 0 resolved) resolved"
[ "$FAIL" = 0 ] || kvl_fail "a check failed (FAIL lines above)"
kvl_pass "one page per outage: the uplink cut, its repair, b07 down alone, b03 isolated"
