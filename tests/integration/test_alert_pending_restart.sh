#!/bin/bash
# test_alert_pending_restart.sh — a pending alert survives a collector restart: its `for:`
# goes on from its real start.
#
# A rule that holds from the first sample (a simulated device answering: reachable above
# 0.5) with `for: 30s` makes a pending alert at the device's first sample. About 10 s later
# the collector is stopped and started again on the same data folder. The alert must fire
# with the start it had when pending (the engine's debug line "firing <fp> since <ms>" with
# the pending line's <ms>), once, and no second pending alert may begin after the restart
# (which would push the page to 30 s after the restart, with a wrong startsAt).
#
#   bash tests/integration/test_alert_pending_restart.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
kvl_make_rate_device "$T/rec/pendev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT

cat >"$T/rules.yaml" <<'YAML'
rules:
  - name: reach_held
    severity: warning
    select: {device: pendev}
    threshold: {value: reachable, above: 0.5, for: 30s}
    summary: "{{device}} answers"
YAML
kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data" debug
echo "rules: $T/rules.yaml" >>"$T/collector.yaml"
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
CLOG=$L/collector.log

kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_agent_config "$T/agent.yaml" pending-agent lab "$COL_PORT" 2s
kvl_agent_device "$T/agent.yaml" pendev "$SNMP" pendev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID

# since STATUS: the "since" of the engine's lines of that status for reach_held, one a line
since() { grep -o "\[alerts reach_held\] $1 [0-9a-f]* since [0-9]*" "$CLOG" | awk '{print $NF}'; }
has() { [ -n "$(since "$1")" ]; }
kvl_wait_until 60 "the pending alert" has pending
t_pending=$(since pending | head -n 1)
kvl_log "pending since $t_pending"
has firing && kvl_fail "fired before the restart: $(since firing)"
kvl_sleep_checking 10 "$COL" "$AGENT" "$SIM"
has firing && kvl_fail "fired 10 s into a 30 s for: $(since firing)"

kvl_stop "$COL" TERM || kvl_fail "the collector did not stop"
restart_line=$(wc -l <"$CLOG")
t_restart_ms=$(($(date +%s%N) / 1000000))
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_wait_until 90 "the firing alert after the restart" has firing
t_firing=$(since firing | head -n 1)
kvl_log "firing since $t_firing (restarted at $t_restart_ms)"
[ "$t_firing" = "$t_pending" ] \
    || kvl_fail "fired since $t_firing, not since the pending start $t_pending (the for: began again)"
after=$(tail -n +"$((restart_line + 1))" "$CLOG" | grep -c "\[alerts reach_held\] pending " || true)
[ "$after" -eq 0 ] || kvl_fail "$after new pending alerts after the restart: the pending one was forgotten"
kvl_sleep_checking 5 "$COL" "$AGENT" "$SIM"
[ "$(since firing | wc -l)" -eq 1 ] || kvl_fail "fired $(since firing | wc -l) times"
kvl_pass "pending since $t_pending before the restart, fired after it with that start"
