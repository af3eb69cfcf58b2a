#!/bin/bash
# test_alert_backlog.sh — late data is not news: rules run on sample times through an
# agent's backlog after a cut.
#
# An agent reaches the collector through a small TCP relay (frozen with SIGSTOP: a cut link)
# and polls one simulated device every second. The collector has `late_after: 6s` and one
# rule of this test's, a threshold on the device's `reachable` value (below 0.5: the device
# does not answer), with the built-in device_down rule disabled; it pages a webhook.
#   1. The relay is frozen (for less than the 30 s that make the agent lost); the device's
#      simulator is stopped and, once the agent has seen it down, started again; the relay
#      is thawed more than late_after after the first failed poll. The backlog holds the
#      crossing and its recovery: no page.
#   2. Frozen again; the simulator is stopped and left stopped; thawed more than
#      late_after later: the condition is still true in fresh data: exactly one page, whose
#      startsAt is the real start (the first failed poll, before the thaw), not the thaw.
#
#   bash tests/integration/test_alert_backlog.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
kvl_make_rate_device "$T/rec/backdev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT
kvl_free_port tcp RELAY_PORT
kvl_free_port tcp HOOK_PORT

"$KVL_PY" "$HERE/notify_webhook_rx.py" "$HOOK_PORT" "backlog-s3cret" "$T/hook.out" \
    >>"$L/webhook.log" 2>&1 &
kvl_track $! notify_webhook_rx.py
touch "$T/hook.out"

cat >"$T/rules.yaml" <<'YAML'
disable: [device_down]
rules:
  - name: reach_low
    severity: critical
    select: {device: backdev}
    threshold: {value: reachable, below: 0.5}
    summary: "{{device}} does not answer"
YAML
kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >>"$T/collector.yaml" <<YAML
rules: $T/rules.yaml
late_after: 6s
receivers:
  - {name: hook, type: webhook, url: "http://127.0.0.1:$HOOK_PORT/", secret: backlog-s3cret}
alerts:
  receiver: hook
YAML
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID

kvl_start_relay "$RELAY_PORT" "$COL_PORT"
RELAY=$KVL_LAST_PID

kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_agent_config "$T/agent.yaml" backlog-agent lab "$RELAY_PORT" 1s
sed -i 's/timeout: 500ms/timeout: 300ms/' "$T/agent.yaml"
kvl_agent_device "$T/agent.yaml" backdev "$SNMP" backdev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID
ALOG=$L/agent.log
kvl_wait_until 30 "the archive of backdev" test -f "$T/data/lab/backdev/eth0.rrd"
kvl_sleep_checking 3 "$AGENT" "$COL" "$SIM"

pages() { grep -c "^ok .* reach_low/$1/" "$T/hook.out" || true; }
down_lines() { grep -c 'backdev.*not answering' "$ALOG" || true; }
up_lines() { grep -c 'backdev.*answering again' "$ALOG" || true; }

# ---- 1. crossed and recovered inside the backlog --------------------------------------------
kill -STOP "$RELAY"
kvl_log "relay frozen"
d0=$(down_lines)
u0=$(up_lines)
kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
t_down=$SECONDS
down_more() { [ "$(down_lines)" -gt "$d0" ]; }
kvl_wait_until 20 "the agent to find backdev down" down_more
kvl_sleep_checking 3 "$AGENT" "$COL"
kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
up_more() { [ "$(up_lines)" -gt "$u0" ]; }
kvl_wait_until 25 "the agent to find backdev back" up_more
# the crossing older than late_after (6 s) when it arrives; under the 30 s of agent_lost
while [ $((SECONDS - t_down)) -lt 10 ]; do sleep 1; done
[ $((SECONDS - t_down)) -lt 27 ] || kvl_fail "the cut lasted $((SECONDS - t_down)) s: the agent would be lost"
kill -CONT "$RELAY"
kvl_log "relay thawed $((SECONDS - t_down)) s after the device stopped; the backlog holds its outage"
# in the history, as late (a page held back only by group_wait would not say so)
late_in_history() {
    "$KVL_PY" - "$T/data/_alerts/history.log" 2>/dev/null <<'EOF'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    try:
        rec = json.loads(line.split(" ", 1)[1])
    except (ValueError, IndexError):
        continue
    a = rec.get("alert") or {}
    if a.get("rule") == "reach_low" and a.get("late") is True:
        seen.add(a.get("status"))
sys.exit(0 if {"firing", "resolved"} <= seen else 1)
EOF
}
kvl_wait_until 20 "the outage inside the backlog in the alert history, as late" late_in_history
kvl_sleep_checking 4 "$AGENT" "$COL" # a page would follow the history within group_wait (1 s)
n=$(pages firing)
[ "$n" -eq 0 ] || kvl_fail "the outage inside the backlog paged: $(cat "$T/hook.out")"
kvl_log "crossed and recovered inside the backlog: recorded in the history, no page"

# ---- 2. still crossed when the backlog ends --------------------------------------------------
kvl_sleep_checking 5 "$AGENT" "$COL"
kill -STOP "$RELAY"
d0=$(down_lines)
kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
t_stop=$(date +%s)
kvl_wait_until 20 "the agent to find backdev down again" down_more
# older than late_after (6 s) when it arrives, and its start (the first failed poll, within
# 2 s of t_stop) at least 8 s before the thaw, as checked below
while [ $(($(date +%s) - t_stop)) -lt 13 ]; do sleep 1; done
kill -CONT "$RELAY"
t_thaw=$(date +%s)
kvl_log "relay thawed $((t_thaw - t_stop)) s after the device stopped again; it is still down"
page_seen() { [ "$(pages firing)" -ge 1 ]; }
kvl_wait_until 30 "the page of the outage still going on" page_seen
kvl_sleep_checking 8 "$AGENT" "$COL"
n=$(pages firing)
[ "$n" -eq 1 ] || kvl_fail "$n pages for one outage still going on (want 1): $(cat "$T/hook.out")"
start=$(grep "reach_low/firing/" "$T/hook.out" | head -n 1 | sed 's|.*reach_low/firing/[^/]*/||')
start_s=$(date -d "$start" +%s) || kvl_fail "no startsAt in the page: $(cat "$T/hook.out")"
kvl_log "paged once; starts_at $start ($((t_thaw - start_s)) s before the thaw)"
[ "$start_s" -le $((t_thaw - 8)) ] ||
    kvl_fail "the page's start $start is not the real start (the device stopped at $(date -d "@$t_stop" -u +%T), thawed at $(date -d "@$t_thaw" -u +%T))"
[ "$start_s" -ge $((t_stop - 2)) ] || kvl_fail "the page's start $start is before the device stopped"
if grep -q '^badsig' "$T/hook.out"; then
    kvl_fail "a webhook request with a bad signature: $(grep '^badsig' "$T/hook.out" | head -n 1)"
fi
kvl_pass "an outage inside a backlog paged nobody; one still going on paged once with its real start"
