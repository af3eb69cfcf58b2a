#!/bin/bash
# test_alert_outages.sh — one page per outage: a flapping port, and an agent cut off while
# one of its devices went down and came back.
#
# An agent reaches the collector through a small TCP relay (tests/integration/tcp_relay.py,
# frozen with SIGSTOP: a cut WAN link, the sockets still open). It polls one simulated
# device every second and receives its traps; its heartbeat is 2 s, so the collector
# (lost_after 3) loses it after 6 s (test_agent_lost.sh proves the default's 30 s). The
# collector runs the built-in rules and pages a webhook receiver that checks the HMAC
# signature (notify_webhook_rx.py).
#   1. Flapping: linkDown and linkUp traps for ifIndex 9 of the device, 10 transitions in
#      10 s: exactly one page of the `flapping` alert (interface_down with flapping="true"),
#      however many plain pages came before it (the built-in rule allows 6 changes in 10
#      minutes).
#   2. The relay is frozen; meanwhile the device's simulator is stopped. Once the agent has
#      queued device_down, the collector must page agent_lost within 20 s of the cut (6 s
#      of missed heartbeats, its tick, the group's wait and the test's own steps); the
#      simulator is started again (the agent queues device_up) and the relay is thawed: one
#      agent_lost resolution, and no device_down page at all (its events arrive late:
#      history).
#
#   bash tests/integration/test_alert_outages.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v snmptrap >/dev/null 2>&1 || kvl_fail "'snmptrap' not found (Debian package snmp)"
T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
kvl_make_rate_device "$T/rec/outdev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port udp TRAP
kvl_free_port tcp COL_PORT
kvl_free_port tcp RELAY_PORT
kvl_free_port tcp HOOK_PORT

"$KVL_PY" "$HERE/notify_webhook_rx.py" "$HOOK_PORT" "outage-s3cret" "$T/hook.out" \
    >>"$L/webhook.log" 2>&1 &
kvl_track $! notify_webhook_rx.py
touch "$T/hook.out"

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >>"$T/collector.yaml" <<YAML
receivers:
  - {name: hook, type: webhook, url: "http://127.0.0.1:$HOOK_PORT/", secret: outage-s3cret}
alerts:
  receiver: hook
  group_by: [alertname, device]
YAML
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
CLOG=$L/collector.log

kvl_start_relay "$RELAY_PORT" "$COL_PORT"
RELAY=$KVL_LAST_PID

kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
KVL_AGENT_TRAPS="traps: {listen: 127.0.0.1:$TRAP}" \
    kvl_agent_config "$T/agent.yaml" outage-agent lab "$RELAY_PORT" 1s debug
sed -i 's/timeout: 500ms/timeout: 300ms/' "$T/agent.yaml"
sed -i 's/^reconnect_max: .*/&\nheartbeat: 2s/' "$T/agent.yaml"
kvl_agent_device "$T/agent.yaml" outdev "$SNMP" outdev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID
ALOG=$L/agent.log
kvl_wait_until 30 "the archive of outdev" test -f "$T/data/lab/outdev/eth0.rrd"

# pages STATUS RULE[~flapping]: notifications to the webhook holding such an alert
pages() { grep -c "^ok .* $2/$1/" "$T/hook.out" || true; }

# ---- 1. a flapping port ---------------------------------------------------------------------
IFX=.1.3.6.1.2.1.2.2.1
for k in 1 2 3 4 5 6 7 8 9 10; do
    if [ $((k % 2)) = 1 ]; then trap_oid=.1.3.6.1.6.3.1.1.5.3 oper=2; else trap_oid=.1.3.6.1.6.3.1.1.5.4 oper=1; fi
    snmptrap -v2c -c outdev "127.0.0.1:$TRAP" '' "$trap_oid" \
        "$IFX.1.9" i 9 "$IFX.7.9" i 1 "$IFX.8.9" i "$oper" || kvl_fail "snmptrap failed"
    kvl_sleep_checking 1 "$AGENT" "$COL"
done
flapping_paged() { [ "$(pages firing 'interface_down~flapping')" -ge 1 ]; }
kvl_wait_until 20 "the flapping page" flapping_paged
kvl_sleep_checking 8 "$AGENT" "$COL"
n=$(pages firing 'interface_down~flapping')
plain=$(pages firing interface_down)
[ "$n" -eq 1 ] || kvl_fail "$n flapping pages for one flapping port (want 1): $(cat "$T/hook.out")"
[ "$plain" -le 3 ] || kvl_fail "$plain plain interface_down pages before the flapping one (want at most 3)"
kvl_log "10 transitions in 10 s: $plain plain pages, then one flapping page"

# ---- 2. the agent cut off while its device goes down and up -------------------------------
kvl_sleep_checking 3 "$AGENT" "$COL" "$SIM" # batches (frames) on the way every second
kill -STOP "$RELAY"
t_cut=$SECONDS
kvl_log "relay frozen: the agent is cut off"
sleep 2
kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
kvl_wait_until 30 "the agent to find outdev down" grep -q 'outdev.*not answering' "$ALOG"
kvl_wait_until 60 "the agent_lost page" bash -c "grep -q '^ok .* agent_lost/firing/' '$T/hook.out'"
lost_s=$((SECONDS - t_cut))
kvl_log "agent_lost paged ${lost_s} s after the cut"
[ "$lost_s" -le 20 ] || kvl_fail "agent_lost paged ${lost_s} s after the cut (at most 20 s: 6 s of missed heartbeats, the test's own steps)"
kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_wait_until 60 "the agent to find outdev back" grep -q 'outdev.*answering again' "$ALOG"
kill -CONT "$RELAY"
kvl_log "relay thawed"
kvl_wait_until 60 "the agent_lost resolution" bash -c "grep -q '^ok .* agent_lost/resolved/' '$T/hook.out'"
kvl_wait_until 30 "the late device_up in the collector's log" grep -q 'event outdev\] device_up' "$CLOG"
kvl_sleep_checking 8 "$AGENT" "$COL"
[ "$(pages firing agent_lost)" -eq 1 ] || kvl_fail "agent_lost paged $(pages firing agent_lost) times"
[ "$(pages resolved agent_lost)" -eq 1 ] || kvl_fail "agent_lost resolved $(pages resolved agent_lost) times"
n=$(grep -c 'device_down/' "$T/hook.out" || true)
[ "$n" -eq 0 ] || kvl_fail "device_down paged for what happened while the agent was cut off: $(grep device_down "$T/hook.out")"
if grep -q '^badsig' "$T/hook.out"; then
    kvl_fail "a webhook request with a bad signature: $(grep '^badsig' "$T/hook.out" | head -n 1)"
fi
kvl_pass "one flapping page for 10 transitions; agent_lost paged ${lost_s} s after the cut and resolved once; no device page for the outage behind it"
