#!/bin/bash
# test_agent_lost.sh — the collector knows when an agent is gone, says so once, and says
# once when it is back; what the agent queued meanwhile arrives marked late.
#
# An agent (default heartbeat, 10 s) reaches the collector through a small TCP relay
# (tests/integration/tcp_relay.py, frozen with SIGSTOP: a link that stops carrying anything,
# the sockets still open, as a cut WAN link looks). One device, served by snmpsim.
#   1. The relay is frozen; 3 s later the device's simulator is stopped, so the agent raises
#      device_down while cut off. The collector must log agent_lost within 35 s of the cut
#      (lost_after 3 x 10 s, plus its 0.5 s tick and the last heartbeat's age) — measured
#      and printed — and only once.
#   2. The relay is thawed: the agent reconnects; agent_back is logged once, and the
#      device_down that arrives after it is logged as late (not a warning).
#   3. The agent is started again with `heartbeat: 2s` (the default's figure is proven by
#      step 1; a loss now takes 6 s, not 30) and frozen (SIGSTOP) until the collector logs
#      agent_lost again; the collector is then killed (SIGKILL) and started again: during
#      35 s it must not say agent_lost again (the agent is known lost from
#      <data_dir>/_agents.state); the agent is thawed and the new collector logs agent_back
#      exactly once.
#
#   bash tests/integration/test_agent_lost.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
kvl_make_rate_device "$KVL_TMP/rec/lostdev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT
kvl_free_port tcp RELAY_PORT

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data" info
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
CLOG=$KVL_TMP/logs/collector.log

kvl_start_relay "$RELAY_PORT" "$COL_PORT"
RELAY=$KVL_LAST_PID

kvl_agent_config "$KVL_TMP/agent.yaml" lost-agent lab "$RELAY_PORT" 1s debug
sed -i 's/timeout: 500ms/timeout: 300ms/' "$KVL_TMP/agent.yaml"
kvl_agent_device "$KVL_TMP/agent.yaml" lostdev "$SNMP" lostdev
grep -q '^heartbeat:' "$KVL_TMP/agent.yaml" && kvl_fail "the agent's configuration sets a heartbeat: the test wants the default"
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
ALOG=$KVL_TMP/logs/agent.log

kvl_wait_until 30 "the archive of lostdev" test -f "$KVL_TMP/data/lab/lostdev/eth0.rrd"
kvl_wait_until 30 "the agent's connection" grep -q 'connected to collector' "$ALOG"
kvl_sleep_checking 3 "$AGENT" "$COL" "$SIM" # batches (frames) on the way every second

count() { grep -c "$1" "$2" || true; }
# The collector's log from line $2 on.
since() { tail -n +"$2" "$1"; }

# ---- 1. the link freezes ------------------------------------------------------------------
kill -STOP "$RELAY"
t_cut=$(date +%s.%N)
kvl_log "relay frozen: the agent is cut off"
sleep 3
skip=$(wc -l <"$ALOG") # (its start queued an events batch of its own: devices_configured)
kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
_down_queued() { tail -n +"$((skip + 1))" "$ALOG" | grep -q 'batch [0-9]* lane 1 queued'; }
kvl_wait_until 30 "the agent to queue device_down" _down_queued
kvl_wait_until 60 "agent_lost in the collector's log" grep -q '\] agent_lost (critical' "$CLOG"
t_lost=$(date +%s.%N)
lost_s=$(awk -v a="$t_cut" -v b="$t_lost" 'BEGIN { printf "%.1f", b - a }')
kvl_log "agent_lost logged ${lost_s} s after the cut"
awk -v s="$lost_s" 'BEGIN { exit !(s <= 35) }' || kvl_fail "agent_lost came ${lost_s} s after the cut (at most 35 s)"
grep '\] agent_lost (critical' "$CLOG" | grep -q 'no heartbeat for' || kvl_fail "agent_lost does not say the heartbeats stopped"
kvl_sleep_checking 5 "$COL" "$AGENT"
[ "$(count '\] agent_lost (' "$CLOG")" -eq 1 ] || kvl_fail "agent_lost logged more than once"

# ---- 2. the link comes back ---------------------------------------------------------------
kill -CONT "$RELAY"
kvl_log "relay thawed"
kvl_wait_until 40 "agent_back in the collector's log" grep -q '\] agent_back (info' "$CLOG"
kvl_wait_until 30 "device_down in the collector's log" grep -q 'event lostdev\] device_down' "$CLOG"
kvl_sleep_checking 5 "$COL" "$AGENT"
dd=$(grep 'event lostdev\] device_down' "$CLOG")
[ "$(printf '%s\n' "$dd" | wc -l)" -eq 1 ] || kvl_fail "device_down logged more than once: $dd"
case "$dd" in
    *", late, agent lost-agent"*) ;;
    *) kvl_fail "the device_down queued while the agent was cut off is not marked late: $dd" ;;
esac
case "$dd" in *"WARN"*) kvl_fail "a late event was logged as a warning: $dd" ;; esac
[ "$(count '\] agent_back (' "$CLOG")" -eq 1 ] || kvl_fail "agent_back logged more than once"
[ "$(count '\] agent_lost (' "$CLOG")" -eq 1 ] || kvl_fail "agent_lost logged again after the return"
kvl_log "agent_back once; device_down arrived after it, marked late"

# ---- 3. a collector restart while the agent is lost ----------------------------------------
kvl_stop "$AGENT" TERM || kvl_fail "could not stop the agent"
conn0=$(count 'connected to collector' "$ALOG")
sed -i 's/^reconnect_max: .*/&\nheartbeat: 2s/' "$KVL_TMP/agent.yaml"
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
reconnected() { [ "$(count 'connected to collector' "$ALOG")" -gt "$conn0" ]; }
kvl_wait_until 30 "the agent's connection with heartbeat 2s" reconnected
kvl_sleep_checking 2 "$AGENT" "$COL"
kill -STOP "$AGENT"
kvl_log "agent frozen"
lost_count_is() { [ "$(count '\] agent_lost (' "$CLOG")" -eq "$1" ]; }
kvl_wait_until 30 "the second agent_lost" lost_count_is 2
kvl_wait_until 10 "the agents' state file to say lost" grep -q '^L .*lost-agent' "$KVL_TMP/data/_agents.state"
kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
lines=$(wc -l <"$CLOG")
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
since "$CLOG" $((lines + 1)) | grep -q 'agents. state: 1 lost' || kvl_fail "the restarted collector did not read the lost agent from its state file"
kvl_sleep_checking 35 "$COL"
[ "$(since "$CLOG" $((lines + 1)) | grep -c '\] agent_lost (')" -eq 0 ] ||
    kvl_fail "the restarted collector said agent_lost again for an agent already lost"
kill -CONT "$AGENT"
kvl_log "agent thawed"
kvl_wait_until 60 "agent_back after the restart" sh -c "tail -n +$((lines + 1)) '$CLOG' | grep -q '\] agent_back (info'"
kvl_sleep_checking 5 "$COL" "$AGENT"
back=$(since "$CLOG" $((lines + 1)) | grep -c '\] agent_back (')
[ "$back" -eq 1 ] || kvl_fail "agent_back logged $back times after the restart (once expected)"
[ "$(since "$CLOG" $((lines + 1)) | grep -c '\] agent_lost (')" -eq 0 ] || kvl_fail "agent_lost after the restart"
kvl_pass "agent_lost ${lost_s} s after the cut (once), agent_back once, the queued device_down late; across a collector restart no second agent_lost and one agent_back"
