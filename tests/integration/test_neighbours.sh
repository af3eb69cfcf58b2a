#!/bin/bash
# test_neighbours.sh — LLDP/CDP neighbours from real recordings through a real agent into the
# collector's inventory, its API and its log.
#
# snmpsim serves a copy of procurve_e2910 (LLDP with lldpLocPortTable) and of the project's
# cdp_access (tests/snmprec/make_cdp_access.py: CDP rows and an LLDP neighbour); one agent polls both every
# 10 s, rediscovering at every poll, into a collector with `http:`. Then:
#   - GET /api/v1/devices/<agent>/<device> lists every neighbour of each recording with all
#     its labels as tests/snmprec/walkfile.py derives them (neighbours_check.py);
#   - recabling: cdp_access's LLDP neighbour edited (another system and port on the same
#     local port) and a CDP neighbour removed, snmpsim restarted: the next rediscovery shows
#     the new neighbour, the removed one retired, and the collector logs both at INFO;
#   - the collector restarted (agent stopped): the same neighbours, first seen and retired
#     times kept.
#
#   bash tests/integration/test_neighbours.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
command -v curl >/dev/null 2>&1 || kvl_fail "'curl' not found"
CHECK=$(dirname "${BASH_SOURCE[0]}")/neighbours_check.py
LLDP_DEV=procurve_e2910
[ -f "$KVL_SNMPREC/$LLDP_DEV.snmprec" ] || kvl_fail "$LLDP_DEV.snmprec not in $KVL_SNMPREC"

REC=$KVL_TMP/rec
mkdir -p "$REC"
chmod 755 "$REC"
cp "$KVL_SNMPREC/$LLDP_DEV.snmprec" "$REC/"
"$KVL_PY" "$KVL_REPO/tests/snmprec/make_cdp_access.py" "$REC" || kvl_fail "cannot write cdp_access"
chmod 644 "$REC"/*.snmprec

DATA=$KVL_TMP/data
mkdir -p "$DATA"
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
CFG=$KVL_TMP/collector.yaml
kvl_collector_config "$CFG" "$COL_PORT" "$DATA"
kvl_http_config "$CFG" "$HTTP_PORT"
kvl_add_token "$CFG" wall viewer
VIEW=$KVL_TOKEN
URL=http://127.0.0.1:$HTTP_PORT
start_collector() { # the collector, and its HTTP server answering
    kvl_start_http_collector collector "$CFG" "$HTTP_PORT"
    COL=$KVL_LAST_PID
}

kvl_start_snmpsim "$REC" "$SNMP_PORT"
SIM=$KVL_LAST_PID
start_collector
AGENT_CFG=$KVL_TMP/agent.yaml
kvl_agent_config "$AGENT_CFG" nbr-agent dhq-nbr "$COL_PORT" 10s
sed -i 's/^  timeout: .*/  timeout: 3s/' "$AGENT_CFG"
for d in "$LLDP_DEV" cdp_access; do
    kvl_agent_device "$AGENT_CFG" "$d" "$SNMP_PORT" "$d"
    echo "    rediscover: 0" >>"$AGENT_CFG"
done
kvl_start_agent agent "$AGENT_CFG"
AG=$KVL_LAST_PID

# wait_showing SECONDS WHAT OUTFILE COMMAND...: the failure shows what the last try printed
wait_showing() {
    local secs=$1 what=$2 out=$3 i
    shift 3
    for ((i = 0; i < secs * 2; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    kvl_fail "timed out after ${secs}s waiting for $what: $(head -c 2000 "$out")"
}
_as_recorded() { # DEVICE
    kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
    "$KVL_PY" "$CHECK" check "$URL" "$VIEW" nbr-agent "$1" "$REC/$1.snmprec" >"$KVL_TMP/check.out" 2>&1
}
for d in "$LLDP_DEV" cdp_access; do
    wait_showing 90 "$d's neighbours as recorded" "$KVL_TMP/check.out" _as_recorded "$d"
    kvl_log "$d: $(cat "$KVL_TMP/check.out")"
done

# --- recabling --------------------------------------------------------------------------------
sed -i -e 's/|dist-1.example.net$/|dist-2.example.net/' -e 's/|Gi1\/0\/24$/|Gi1\/0\/12/' \
    -e '/^1\.3\.6\.1\.4\.1\.9\.9\.23\.1\.2\.1\.1\.[0-9]*\.3\.5|/d' "$REC/cdp_access.snmprec"
grep -q "dist-2.example.net" "$REC/cdp_access.snmprec" || kvl_fail "the recording was not edited"
kvl_stop "$SIM" || kvl_fail "snmpsim did not stop"
kvl_start_snmpsim "$REC" "$SNMP_PORT"
SIM=$KVL_LAST_PID
wait_showing 90 "the recabling seen" "$KVL_TMP/check.out" _as_recorded cdp_access
kvl_log "cdp_access after recabling: $(cat "$KVL_TMP/check.out")"
_logged() {
    grep -q "neighbour lldp.101.3 changed: dist-1.example.net port Gi1/0/24 on interface Gi0/1 -> dist-2.example.net port Gi1/0/12 on interface Gi0/1" \
        "$KVL_TMP/logs/collector.log" &&
        grep -q "cdp neighbour on interface Gi0/3 gone: SEP00AA11BB22CC port Port 1" \
            "$KVL_TMP/logs/collector.log"
}
kvl_wait_until 30 "the recabling logged" _logged || kvl_fail "recabling not logged: $(grep -i neighbour "$KVL_TMP/logs/collector.log" | tail -5)"
grep " INFO " "$KVL_TMP/logs/collector.log" | grep -q "neighbour lldp.101.3 changed" \
    || kvl_fail "the recabling is not logged at INFO"

# --- a collector restart keeps them -----------------------------------------------------------
for d in "$LLDP_DEV" cdp_access; do
    "$KVL_PY" "$CHECK" save "$URL" "$VIEW" nbr-agent "$d" "$KVL_TMP/$d.before.json" >/dev/null \
        || kvl_fail "cannot read $d's neighbours"
done
kvl_stop "$AG" || kvl_fail "the agent did not stop"
kvl_stop "$COL" || kvl_fail "the collector did not stop"
start_collector
for d in "$LLDP_DEV" cdp_access; do
    "$KVL_PY" "$CHECK" same "$URL" "$VIEW" nbr-agent "$d" "$KVL_TMP/$d.before.json" \
        >"$KVL_TMP/same.out" 2>&1 \
        || kvl_fail "$d's neighbours changed across a collector restart: $(cat "$KVL_TMP/same.out")"
done
"$KVL_PY" "$CHECK" check "$URL" "$VIEW" nbr-agent cdp_access "$REC/cdp_access.snmprec" \
    >"$KVL_TMP/check.out" 2>&1 || kvl_fail "after the restart: $(cat "$KVL_TMP/check.out")"
kvl_stop "$SIM" || kvl_fail "snmpsim did not stop"
kvl_pass "neighbours as recorded in the API, recabling seen and logged, kept across a collector restart"
