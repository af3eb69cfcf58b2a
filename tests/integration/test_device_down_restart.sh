#!/bin/bash
# test_device_down_restart.sh — a device's down state and since-when survive an agent restart.
#
# An agent polls one simulated device every second. The device's simulator is stopped (by
# pid): the collector logs one device_down. The agent is restarted while the device is still
# down: it must not raise device_down again (it finds the device down in its state file,
# <spool>/devices.state). The simulator is started again: the collector logs one device_up
# whose down time ("answering again after ... down") covers the whole outage, before and after
# the agent's restart, and not only the part since the restart.
#
#   bash tests/integration/test_device_down_restart.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
kvl_make_rate_device "$KVL_TMP/rec/downdev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_agent_config "$KVL_TMP/agent.yaml" restart-agent lab "$COL_PORT" 1s
sed -i 's/timeout: 500ms/timeout: 300ms/' "$KVL_TMP/agent.yaml" # x 2 tries within the 1 s interval
kvl_agent_device "$KVL_TMP/agent.yaml" downdev "$SNMP" downdev
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
ALOG=$KVL_TMP/logs/agent.log
CLOG=$KVL_TMP/logs/collector.log
STATE=$KVL_TMP/agent.spool/devices.state

kvl_wait_until 30 "the archive of downdev" test -f "$KVL_TMP/data/lab/downdev/eth0.rrd"

count() { grep -c "event downdev\] $1 " "$CLOG"; }
has() { [ "$(count "$1")" -ge "$2" ]; }

kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
T_CUT=$SECONDS
kvl_log "downdev's simulator stopped"
kvl_wait_until 30 "the collector to log device_down" has device_down 1
kvl_wait_until 10 "the state file to say downdev is down" grep -q ' downdev$' "$STATE"

# Down for a while under the first agent, then a restart.
kvl_sleep_checking 10 "$AGENT" "$COL"
BEFORE=$((SECONDS - T_CUT))
kvl_stop "$AGENT" TERM || kvl_fail "could not stop the agent"
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
T_RESTART=$SECONDS
kvl_log "agent restarted $BEFORE s after the device stopped"
kvl_wait_until 20 "the agent to load the device's down state" \
    grep -q 'downdev.*before this start: no new device_down' "$ALOG"
# Several polls of the second agent, all timing out (three in a row make it "dead": the
# first agent said so once, the second says it again).
dead_twice() { [ "$(grep -c 'downdev.*no answer to 3 polls in a row' "$ALOG")" -ge 2 ]; }
kvl_wait_until 30 "the second agent to find downdev dead" dead_twice
kvl_sleep_checking 2 "$AGENT" "$COL"
n=$(count device_down)
[ "$n" -eq 1 ] || kvl_fail "the collector logged $n device_down events; the restart raised it again"

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP"
SIM=$KVL_LAST_PID
AFTER=$((SECONDS - T_RESTART))
kvl_wait_until 90 "the collector to log device_up" has device_up 1
WHOLE=$((SECONDS - T_CUT))
kvl_sleep_checking 2 "$AGENT" "$COL"

n=$(count device_down)
[ "$n" -eq 1 ] || kvl_fail "the collector logged $n device_down events in all"
n=$(count device_up)
[ "$n" -eq 1 ] || kvl_fail "the collector logged $n device_up events"
line=$(grep "event downdev\] device_up " "$CLOG" | head -n 1)
# "answering again after 25s down", "... after 1m 5s down"
down_s=$(printf '%s\n' "$line" | sed -n 's/.*answering again after \(.*\) down.*/\1/p' |
    awk '{ s = 0; for (i = 1; i <= NF; i++) { v = $i + 0; u = substr($i, length($i));
           s += (u == "s" ? v : u == "m" ? 60 * v : u == "h" ? 3600 * v : 86400 * v) } print s }')
[ -n "$down_s" ] || kvl_fail "no down time in the device_up line: $line"
kvl_log "down ${down_s}s by the agent; ${BEFORE}s before the restart, ${AFTER}s after it until the simulator came back, ${WHOLE}s until device_up was logged"
# The whole outage: at least the time before the restart plus the time after it, less a few
# seconds of slack for the detection at each end (a poll every second, 2 x 300 ms tries).
[ "$down_s" -gt "$BEFORE" ] || kvl_fail "down_s=$down_s does not cover the ${BEFORE}s before the agent's restart"
[ "$down_s" -ge $((BEFORE + AFTER - 3)) ] ||
    kvl_fail "down_s=$down_s is shorter than the outage (${BEFORE}s + ${AFTER}s)"
[ "$down_s" -le $((WHOLE + 3)) ] || kvl_fail "down_s=$down_s is longer than the outage (${WHOLE}s)"
# Up again: the state file no longer lists it.
kvl_wait_until 10 "the state file to forget downdev" bash -c "! grep -q ' downdev\$' '$STATE'"
kvl_pass "one device_down, none after the restart, one device_up with ${down_s}s down (${BEFORE}s before the restart)"
