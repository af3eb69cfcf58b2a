#!/bin/bash
# test_inventory.sh — the collector's inventory of devices and interfaces, through its API,
# against real recorded devices, a real agent and a real collector.
#
# snmpsim serves the four recordings with the fewest interfaces (chosen from the folder, not
# named here); one agent polls them and streams to a collector with `http:`. What the API
# must say is worked out from the recordings (inventory_check.py, on tests/snmprec/walkfile.py):
# every device with its sysName, sysDescr, sysLocation and address, every interface the agent
# reports under its name with ifIndex, ifName, ifDescr, ifAlias, type, speed and MAC; the
# list, its agent filter and the search by ifAlias agree. Then:
#   - no credentials: 401; a viewer's DELETE: 403; bad parameters: 400 with a sentence;
#   - the collector restarted: the same answers (first_seen and labels kept, last_seen aside);
#   - the agent restarted with one device fewer in its configuration: that device retired,
#     the others not, its archive still there;
#   - DELETE by an admin forgets it (404 after); --forget-device is refused beside the
#     running collector and, with it stopped, forgets another for good.
#
#   bash tests/integration/test_inventory.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
command -v curl >/dev/null 2>&1 || kvl_fail "'curl' not found"
CHECK=$(dirname "${BASH_SOURCE[0]}")/inventory_check.py

mapfile -t DEVS < <("$KVL_PY" "$CHECK" pick "$KVL_SNMPREC" 4)
[ "${#DEVS[@]}" -eq 4 ] || kvl_fail "fewer than four recordings with interfaces in $KVL_SNMPREC"
kvl_log "devices: ${DEVS[*]}"

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
kvl_add_token "$CFG" boss admin
ADMIN=$KVL_TOKEN
URL=http://127.0.0.1:$HTTP_PORT

start_collector() { # the collector, and its HTTP server answering
    kvl_start_http_collector collector "$CFG" "$HTTP_PORT"
    COL=$KVL_LAST_PID
}

kvl_start_snmpsim "$KVL_SNMPREC" "$SNMP_PORT"
start_collector

AGENT_CFG=$KVL_TMP/agent.yaml
write_agent() { # the devices given
    kvl_agent_config "$AGENT_CFG" inv-agent dhq-north "$COL_PORT" 10s
    sed -i 's/^  timeout: .*/  timeout: 3s/' "$AGENT_CFG"
    local d
    for d in "$@"; do
        kvl_agent_device "$AGENT_CFG" "$d" "$SNMP_PORT" "$d"
    done
}
write_agent "${DEVS[@]}"
kvl_start_agent agent "$AGENT_CFG"
AG=$KVL_LAST_PID

# --- the inventory as recorded ----------------------------------------------------------------
_as_recorded() {
    kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
    "$KVL_PY" "$CHECK" check "$URL" "$VIEW" inv-agent dhq-north "$KVL_SNMPREC" "${DEVS[@]}" \
        >"$KVL_TMP/check.out" 2>&1
}
# wait_showing SECONDS WHAT OUTFILE COMMAND...: like kvl_wait_until, the failure showing what
# the last try printed
wait_showing() {
    local secs=$1 what=$2 out=$3 i
    shift 3
    for ((i = 0; i < secs * 2; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    kvl_fail "timed out after ${secs}s waiting for $what: $(head -c 2000 "$out")"
}
wait_showing 120 "the inventory as recorded" "$KVL_TMP/check.out" _as_recorded
kvl_log "$(cat "$KVL_TMP/check.out")"

# --- authentication and parameters ------------------------------------------------------------
expect() { # CODE WHAT CURL-ARGS...
    local want=$1 what=$2 got
    shift 2
    got=$(curl -s --noproxy '*' -m 20 -o "$KVL_TMP/body" -w '%{http_code}' "$@")
    [ "$got" = "$want" ] || kvl_fail "$what: HTTP $got, expected $want: $(head -c 300 "$KVL_TMP/body")"
}
expect 401 "no credentials" "$URL/api/v1/devices"
expect 401 "no credentials (search)" "$URL/api/v1/search?q=a"
expect 403 "a viewer's DELETE" -X DELETE -H "Authorization: Bearer $VIEW" \
    "$URL/api/v1/devices/inv-agent/${DEVS[0]}"
for bad in "devices?limit=0" "devices?retired=maybe" "devices?q=" "search" "search?q=a&limit=9999"; do
    expect 400 "GET /api/v1/$bad" -H "Authorization: Bearer $VIEW" "$URL/api/v1/$bad"
    grep -q '"error": *"[a-z]*: ' "$KVL_TMP/body" \
        || kvl_fail "GET /api/v1/$bad: no sentence: $(cat "$KVL_TMP/body")"
done
expect 404 "an unknown device" -H "Authorization: Bearer $VIEW" "$URL/api/v1/devices/inv-agent/nope"

# --- a collector restart keeps it -------------------------------------------------------------
"$KVL_PY" "$CHECK" save "$URL" "$VIEW" inv-agent "${DEVS[@]}" "$KVL_TMP/before.json" \
    || kvl_fail "cannot read the inventory"
kvl_stop "$AG" || kvl_fail "the agent did not stop"
kvl_stop "$COL" || kvl_fail "the collector did not stop"
start_collector
"$KVL_PY" "$CHECK" same "$URL" "$VIEW" inv-agent "$KVL_TMP/before.json" >"$KVL_TMP/same.out" 2>&1 \
    || kvl_fail "the inventory changed across a collector restart: $(cat "$KVL_TMP/same.out")"
kvl_log "the inventory is the same after the collector's restart"

# --- a device removed from the agent's configuration ------------------------------------------
GONE=${DEVS[3]}
write_agent "${DEVS[@]:0:3}"
kvl_start_agent agent "$AGENT_CFG"
AG=$KVL_LAST_PID
_retired() {
    kvl_is_ours "$AG" kaaval-agent || kvl_fail "the agent died"
    "$KVL_PY" "$CHECK" retired "$URL" "$VIEW" inv-agent "$GONE" "${DEVS[@]:0:3}" \
        >"$KVL_TMP/retired.out" 2>&1
}
wait_showing 60 "$GONE retired" "$KVL_TMP/retired.out" _retired
[ -f "$DATA/dhq-north/$(kvl_file_safe "$GONE").rrd" ] || kvl_fail "the retired device's archive is gone"
expect 200 "retired=yes" -H "Authorization: Bearer $VIEW" "$URL/api/v1/devices?retired=yes"
grep -q "\"device\": *\"$GONE\"" "$KVL_TMP/body" || kvl_fail "retired=yes: $(head -c 300 "$KVL_TMP/body")"
kvl_log "$GONE retired, archive kept"

# --- forgetting -------------------------------------------------------------------------------
expect 200 "an admin's DELETE" -X DELETE -H "Authorization: Bearer $ADMIN" \
    "$URL/api/v1/devices/inv-agent/$GONE"
expect 404 "the forgotten device" -H "Authorization: Bearer $VIEW" "$URL/api/v1/devices/inv-agent/$GONE"
rc=0
"$KVL_COLLECTOR" -c "$CFG" --forget-device "inv-agent/${DEVS[2]}" 2>"$KVL_TMP/logs/forget0.log" || rc=$?
[ "$rc" = 1 ] || kvl_fail "--forget-device beside the running collector: exit $rc, expected 1"
grep -q "in use by another process" "$KVL_TMP/logs/forget0.log" \
    || kvl_fail "--forget-device beside the running collector: $(cat "$KVL_TMP/logs/forget0.log")"
kvl_stop "$AG" || kvl_fail "the agent did not stop"
kvl_stop "$COL" || kvl_fail "the collector did not stop"
"$KVL_COLLECTOR" -c "$CFG" --forget-device "inv-agent/${DEVS[2]}" 2>"$KVL_TMP/logs/forget.log" \
    || kvl_fail "--forget-device failed: $(cat "$KVL_TMP/logs/forget.log")"
rc=0
"$KVL_COLLECTOR" -c "$CFG" --forget-device "inv-agent/${DEVS[2]}" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || kvl_fail "--forget-device of an unknown device: exit $rc, expected 1"
start_collector
expect 404 "a device forgotten by --forget-device" -H "Authorization: Bearer $VIEW" \
    "$URL/api/v1/devices/inv-agent/${DEVS[2]}"
expect 404 "the device forgotten by DELETE, after a restart" -H "Authorization: Bearer $VIEW" \
    "$URL/api/v1/devices/inv-agent/$GONE"
expect 200 "the others" -H "Authorization: Bearer $VIEW" "$URL/api/v1/devices/inv-agent/${DEVS[0]}"
kvl_pass "inventory: ${#DEVS[@]} recorded devices as recorded, kept across a restart, one retired, two forgotten"
