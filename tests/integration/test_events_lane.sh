#!/bin/bash
# test_events_lane.sh — an alarm overtakes a backlog of metrics.
#
# An agent polls two simulated devices every second (each served by its own snmpsim). The
# collector is killed; the agent spools a backlog of bulk batches. Then one device's
# simulator is stopped: the agent raises device_down, which goes on the events lane. When
# the collector comes back, the event must reach the collector's log before the bulk batches
# that were queued before it are written (collector debug log: "applied batch N lane 0: ..."),
# although the backlog is older; and afterwards every bulk batch arrives, in order, with no
# update refused as stale.
#
#   bash tests/integration/test_events_lane.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=1
mkdir -p "$KVL_TMP/rec1" "$KVL_TMP/rec2" "$KVL_TMP/data"
kvl_make_rate_device "$KVL_TMP/rec1/ratedev.snmprec" "eth0:125000:50000:1000"
kvl_make_rate_device "$KVL_TMP/rec2/downdev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP1
kvl_free_port udp SNMP2
kvl_free_port tcp COL_PORT

kvl_start_snmpsim "$KVL_TMP/rec1" "$SNMP1"
SIM1=$KVL_LAST_PID
kvl_start_snmpsim "$KVL_TMP/rec2" "$SNMP2"
SIM2=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data" debug
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_agent_config "$KVL_TMP/agent.yaml" lane-agent lab "$COL_PORT" "${INTERVAL}s" debug
sed -i 's/timeout: 500ms/timeout: 300ms/' "$KVL_TMP/agent.yaml" # x 2 tries within the 1 s interval
kvl_agent_device "$KVL_TMP/agent.yaml" ratedev "$SNMP1" ratedev
kvl_agent_device "$KVL_TMP/agent.yaml" downdev "$SNMP2" downdev
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
ALOG=$KVL_TMP/logs/agent.log
CLOG=$KVL_TMP/logs/collector.log

F=$KVL_TMP/data/lab/ratedev/eth0.rrd
kvl_wait_until 30 "the archive $F" test -f "$F"
kvl_wait_until 30 "the archive of downdev" test -f "$KVL_TMP/data/lab/downdev/eth0.rrd"

kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
kvl_log "collector killed; the agent builds a backlog for 15 s"
kvl_sleep_checking 15 "$AGENT" "$SIM1"
# (the agent's start queued an events batch of its own, devices_configured: only one queued
# after this line of its log is the device_down)
skip=$(wc -l <"$ALOG")
kvl_stop "$SIM2" TERM || kvl_fail "could not stop the second simulator"
kvl_log "downdev's simulator stopped"
_down_queued() { tail -n +"$((skip + 1))" "$ALOG" | grep -q 'batch [0-9]* lane 1 queued'; }
kvl_wait_until 20 "the device_down event to be queued" _down_queued
kvl_sleep_checking 3 "$AGENT" "$SIM1"

# The bulk batches queued before the event.
awk -v skip="$skip" 'NR > skip && /batch [0-9]+ lane 1 queued/ { exit }
    match($0, /batch [0-9]+ lane 0 queued/) {
        s = substr($0, RSTART + 6); sub(/ .*/, "", s); print s }' "$ALOG" >"$KVL_TMP/before"
ev_seq=$(tail -n +"$((skip + 1))" "$ALOG" | sed -n 's/.*batch \([0-9]*\) lane 1 queued.*/\1/p' | head -n 1)

listen_lines=$(grep -c 'listening for agents' "$CLOG")
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_wait_until 60 "the collector to catch up" kvl_applied_last "$ALOG" "$CLOG"
# The agent goes on queueing a batch a second: stopped before the logs are compared.
kvl_stop_agent_drained "$AGENT" "$ALOG" "$CLOG"

# Only the collector's second life counts.
awk -v n="$listen_lines" '/listening for agents/ { k++ } k > n' "$CLOG" >"$KVL_TMP/col2.log"
ev_line=$(grep -n 'event downdev\] device_down' "$KVL_TMP/col2.log" | head -n 1 | cut -d: -f1)
[ -n "$ev_line" ] || kvl_fail "the collector never logged downdev's device_down event"
nb=0
late=""
while read -r s; do
    l=$(grep -n "applied batch $s lane 0:" "$KVL_TMP/col2.log" | head -n 1 | cut -d: -f1)
    [ -n "$l" ] || continue # written before the collector died
    nb=$((nb + 1))
    [ "$l" -gt "$ev_line" ] || late="$late $s"
done <"$KVL_TMP/before"
[ "$nb" -ge 10 ] || kvl_fail "only $nb backlog batches were queued before the event; expected a backlog of 10 or more"
[ -z "$late" ] || kvl_fail "the event (batch $ev_seq, lane 1) was logged after backlog batches queued before it:$late"
kvl_log "device_down (events batch $ev_seq) logged at line $ev_line, ahead of all $nb older backlog batches"

# The backlog itself: every bulk batch written, in sequence order, nothing refused as stale.
sed -n 's/.*applied batch \([0-9]*\) lane 0:.*/\1/p' "$CLOG" >"$KVL_TMP/written"
sort -n -c "$KVL_TMP/written" 2>/dev/null || kvl_fail "bulk batches were written out of order"
sed -n 's/.*batch \([0-9]*\) lane 0 queued.*/\1/p' "$ALOG" | sort -n >"$KVL_TMP/queued"
missing=$(comm -23 "$KVL_TMP/queued" <(sort -n -u "$KVL_TMP/written") | wc -l)
[ "$missing" -eq 0 ] || kvl_fail "$missing bulk batches never written"
if grep -q 'older than their archive' "$CLOG"; then
    kvl_fail "the collector refused updates as stale"
fi
kvl_pass "device_down overtook a backlog of $nb bulk batches; all $(wc -l <"$KVL_TMP/queued") bulk batches written in order"
