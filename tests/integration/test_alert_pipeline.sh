#!/bin/bash
# test_alert_pipeline.sh — alerts end to end, as the on-call engineer gets them: a device
# stops answering, a linkDown trap arrives, the collector is killed while alerts fire.
#
# One simulated device (snmpsim; eth0 = ifIndex 1, and eth1 = ifIndex 2, a port that is down
# while admin up) is polled every 2 s by an agent
# whose trap receiver listens on a free 127.0.0.1 port; the collector runs its built-in rules
# and sends to two receivers: a real prometheus-alertmanager and a webhook that checks the
# HMAC signature (notify_webhook_rx.py). Its HTTP API is on with an API token.
#   1. snmptrap v2c linkDown for ifIndex 2: a page names the interface eth1
#      (interface_down; the poll made at once finds it down too, and it stays so: a port
#      found down at first sight pages on a linkDown, not before).
#   2. The simulator is stopped (by pid): one device_down page to the webhook, within
#      seconds; Alertmanager lists the alert with its labels and startsAt (its own API);
#      kaavalctl lists it and acknowledges it.
#   3. The collector is killed (SIGKILL) while device_down fires, and started again: no
#      second device_down page (counted again at the end, 10 s or more after the restart).
#   4. The simulator comes back: one resolution to the webhook, and Alertmanager shows the
#      alert resolved (no longer active).
#
#   bash tests/integration/test_alert_pipeline.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AM_BIN=$(command -v prometheus-alertmanager || true)
[ -n "$AM_BIN" ] || kvl_fail "prometheus-alertmanager not found (Debian package prometheus-alertmanager)"
command -v snmptrap >/dev/null 2>&1 || kvl_fail "'snmptrap' not found (Debian package snmp)"
CTL=$KVL_BUILD/kaavalctl
[ -x "$CTL" ] || kvl_fail "kaavalctl not built ($CTL)"

T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data" "$T/am-data"
kvl_make_rate_device "$T/rec/pipedev.snmprec" "eth0:1000:2000:1000" "eth1:0:0:1000:down"
kvl_free_port udp SNMP
kvl_free_port udp TRAP
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
kvl_free_port tcp AM_PORT
kvl_free_port tcp HOOK_PORT

# ------------------------------------------------------------------ the receivers ---------
cat >"$T/am.yml" <<YAML
route:
  receiver: nowhere
  group_wait: 0s
receivers:
  - name: nowhere
YAML
"$AM_BIN" --config.file="$T/am.yml" --storage.path="$T/am-data" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= \
    --log.level=warn >>"$L/alertmanager.log" 2>&1 &
kvl_track $! prometheus-alertmanager
kvl_wait_until 30 "alertmanager ready" curl -sf "http://127.0.0.1:$AM_PORT/-/ready" -o /dev/null
"$KVL_PY" "$HERE/notify_webhook_rx.py" "$HOOK_PORT" "pipe-s3cret" "$T/hook.out" \
    >>"$L/webhook.log" 2>&1 &
kvl_track $! notify_webhook_rx.py
touch "$T/hook.out"

# ------------------------------------------------------------------ the daemons -----------
kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >>"$T/collector.yaml" <<YAML
receivers:
  - {name: am, type: alertmanager, url: "http://127.0.0.1:$AM_PORT", resend: 1m}
  - {name: hook, type: webhook, url: "http://127.0.0.1:$HOOK_PORT/", secret: pipe-s3cret}
alerts:
  group_by: [alertname, device]
  routes:
    - {receiver: am, continue: true}
    - {receiver: hook}
YAML
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
"$KVL_BUILD/kaaval-collector" -c "$T/collector.yaml" --check-config >"$L/check.log" 2>&1 ||
    kvl_fail "--check-config refused the configuration: $(cat "$L/check.log")"
kvl_add_token "$T/collector.yaml" oncall operator
TOKEN=$KVL_TOKEN
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
CLOG=$L/collector.log

kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
KVL_AGENT_TRAPS="traps: {listen: 127.0.0.1:$TRAP}" \
    kvl_agent_config "$T/agent.yaml" pipe-agent lab "$COL_PORT" 2s
sed -i 's/timeout: 500ms/timeout: 300ms/' "$T/agent.yaml"
kvl_agent_device "$T/agent.yaml" pipedev "$SNMP" pipedev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID
kvl_wait_until 30 "the archive of pipedev's eth0" test -f "$T/data/lab/pipedev/eth0.rrd"
kvl_wait_until 20 "the HTTP API" curl -sf -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$HTTP_PORT/api/v1/status" -o /dev/null
export KAAVAL_URL="http://127.0.0.1:$HTTP_PORT" KAAVAL_TOKEN=$TOKEN

pages() { grep -c "^ok .* $1 pipedev $2/$1/" "$T/hook.out"; } # STATUS RULE
has_pages() { [ "$(pages "$1" "$2")" -ge "$3" ]; }

# ------------------------------------------------------------------ 1: linkDown trap -----
IFX=.1.3.6.1.2.1.2.2.1
kvl_sleep_checking 3 "$AGENT" "$COL"
T0=$SECONDS
n=$(grep -c 'interface_down' "$T/hook.out")
[ "$n" -eq 0 ] || kvl_fail "eth1, down since it was first seen, paged before any linkDown"
snmptrap -v2c -c pipedev "127.0.0.1:$TRAP" '' .1.3.6.1.6.3.1.1.5.3 \
    "$IFX.1.2" i 2 "$IFX.7.2" i 1 "$IFX.8.2" i 2 || kvl_fail "snmptrap linkDown failed"
kvl_wait_until 20 "a page for eth1's linkDown" has_pages firing interface_down 1
kvl_log "linkDown trap paged after $((SECONDS - T0)) s: $(grep 'interface_down' "$T/hook.out" | head -n 1)"
grep 'firing interface_down' "$T/hook.out" >/dev/null || true
grep -q "^ok .* firing pipedev interface_down/firing/eth1/" "$T/hook.out" ||
    kvl_fail "the interface_down page does not name eth1: $(cat "$T/hook.out")"
kvl_sleep_checking 5 "$AGENT" "$COL"
n=$(grep -c 'interface_down/resolved' "$T/hook.out")
[ "$n" -eq 0 ] || kvl_fail "eth1's interface_down resolved while its polls say it is down"

# ------------------------------------------------------------------ 2: device down -------
kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
T_CUT=$SECONDS
kvl_wait_until 30 "a device_down page" has_pages firing device_down 1
kvl_log "device stopped: paged after $((SECONDS - T_CUT)) s"

am_state() {
    curl -sf "http://127.0.0.1:$AM_PORT/api/v2/alerts" | "$KVL_PY" -c '
import json, sys
for a in json.load(sys.stdin):
    if a["labels"].get("alertname") == "device_down" and a["labels"].get("device") == "pipedev":
        print(a["status"]["state"], a["labels"].get("site"), a["labels"].get("severity"),
              a["startsAt"], a.get("endsAt", ""))'
}
am_active() { am_state | grep -q '^active lab critical '; }
kvl_wait_until 15 "alertmanager listing device_down of pipedev" am_active
kvl_log "alertmanager: $(am_state)"

"$CTL" alerts >"$T/ctl.out" 2>&1 || kvl_fail "kaavalctl alerts failed: $(cat "$T/ctl.out")"
grep -q 'device_down' "$T/ctl.out" && grep -q 'pipedev' "$T/ctl.out" ||
    kvl_fail "kaavalctl alerts does not list device_down of pipedev: $(cat "$T/ctl.out")"
FP=$(curl -sf -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$HTTP_PORT/api/v1/alerts?status=firing&device=pipedev" | "$KVL_PY" -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("alerts", d) if isinstance(d, dict) else d
print([a["fingerprint"] for a in d if a["rule"] == "device_down"][0])') ||
    kvl_fail "no firing device_down in /api/v1/alerts"
"$CTL" ack "$FP" -m "on it" >>"$T/ctl.out" 2>&1 || kvl_fail "kaavalctl ack failed: $(tail -n 2 "$T/ctl.out")"

# ------------------------------------------------------------------ 3: SIGKILL -----------
kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
T_RESTART=$SECONDS
kvl_sleep_checking 4 "$AGENT" "$COL"
n=$(pages firing device_down)
[ "$n" -eq 1 ] || kvl_fail "after the collector's restart: $n device_down pages (want 1)"

# ------------------------------------------------------------------ 4: back --------------
kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
T_BACK=$SECONDS
kvl_wait_until 60 "the device_down resolution" has_pages resolved device_down 1
kvl_log "device back: resolution after $((SECONDS - T_BACK)) s"
am_resolved() { ! am_active; }
kvl_wait_until 20 "alertmanager no longer listing device_down as active" am_resolved
kvl_sleep_checking 3 "$AGENT" "$COL"
while [ $((SECONDS - T_RESTART)) -lt 10 ]; do kvl_sleep_checking 1 "$AGENT" "$COL"; done
n=$(pages firing device_down)
[ "$n" -eq 1 ] || kvl_fail "$n device_down pages in all (want 1)"
n=$(pages resolved device_down)
[ "$n" -eq 1 ] || kvl_fail "$n device_down resolutions (want 1)"
if grep -q '^badsig' "$T/hook.out"; then
    kvl_fail "a webhook request with a bad signature: $(grep '^badsig' "$T/hook.out" | head -n 1)"
fi
kvl_pass "linkDown paged naming eth1; device_down paged once (also across a SIGKILL), seen by alertmanager, acked with kaavalctl, resolved once"
