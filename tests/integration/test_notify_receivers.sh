#!/bin/bash
# test_notify_receivers.sh — the notifiers against real receivers, through kvl-notify-send
# (the outbox of collector/alerts/notify.c driven from the command line).
#
#   1. One device_down alert fires, to every receiver type at once: a real
#      prometheus-alertmanager shows it through its own API (/api/v2/alerts) with its labels
#      and startsAt; a python webhook receiver checks the HMAC signature; aiosmtpd receives
#      the e-mail (subject and body checked); an exec receiver writes its environment and
#      its stdin; snmptrapd receives a kaavalAlertFiring trap with the varbinds. Then an
#      e-mail over STARTTLS with a login (notify_smtp_rx.py; a wrong password delivers
#      nothing and keeps the message), and SNMPv2c informs: one snmptrapd acknowledges is
#      delivered, one nobody answers stays in the outbox.
#   2. Its resolution: Alertmanager no longer lists it as active (endsAt taken), the
#      webhook gets "resolved", snmptrapd a kaavalAlertResolved.
#   3. Alertmanager stopped while three notifications are queued (B fires, B resolves, C
#      fires): the sender gives up after 3 s with all three still in its outbox on disk; with
#      Alertmanager back, a second sender process delivers them, each once, in order (B
#      would show as active had its resolution overtaken its firing; C does).
#   4. The sender killed (SIGKILL) while a webhook answer is outstanding: a new sender
#      resends from the first unconfirmed notification on, in order; the one confirmed
#      before the kill never comes again, the last comes once.
#
#   bash tests/integration/test_notify_receivers.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

SEND=$KVL_BUILD/tests/integration/kvl-notify-send
HERE=$KVL_REPO/tests/integration
PY3=/usr/bin/python3 # Debian's, which has python3-aiosmtpd
AM_BIN=$(command -v prometheus-alertmanager || true)
TRAPD=$(command -v snmptrapd || true)
[ -x "$SEND" ] || kvl_fail "no $SEND (build first)"
[ -n "$AM_BIN" ] || kvl_fail "prometheus-alertmanager not found (Debian package prometheus-alertmanager)"
[ -n "$TRAPD" ] || kvl_fail "snmptrapd not found (Debian package snmptrapd)"
$PY3 -c 'import aiosmtpd' 2>/dev/null || kvl_fail "python3-aiosmtpd not installed"
T=$KVL_TMP
L=$T/logs

kvl_free_port tcp AM_PORT
kvl_free_port tcp HOOK_PORT
kvl_free_port tcp SLOW_PORT # a webhook answering after 1.5 s
kvl_free_port tcp SMTP_PORT
kvl_free_port tcp SMTPS_PORT # STARTTLS and a login required
kvl_free_port udp TRAP_PORT
kvl_free_port udp LOST_PORT # nothing listens there: informs go unanswered

# ---------------------------------------------------------------- the receivers ------------

cat >"$T/am.yml" <<YAML
route:
  receiver: nowhere
  group_wait: 0s
receivers:
  - name: nowhere
YAML
mkdir -p "$T/am-data"

start_am() {
    "$AM_BIN" --config.file="$T/am.yml" --storage.path="$T/am-data" \
        --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= \
        --log.level=warn >>"$L/alertmanager.log" 2>&1 &
    AM_PID=$!
    kvl_track "$AM_PID" prometheus-alertmanager
    kvl_wait_until 30 "alertmanager ready" curl -sf "http://127.0.0.1:$AM_PORT/-/ready" -o /dev/null
    kvl_log "alertmanager pid $AM_PID on 127.0.0.1:$AM_PORT"
}
start_am

$PY3 "$HERE/notify_webhook_rx.py" "$HOOK_PORT" "hook-s3cret" "$T/hook.out" >>"$L/webhook.log" 2>&1 &
kvl_track $! notify_webhook_rx.py
$PY3 "$HERE/notify_webhook_rx.py" "$SLOW_PORT" "hook-s3cret" "$T/slow.out" 1.5 >>"$L/slow.log" 2>&1 &
kvl_track $! notify_webhook_rx.py
$PY3 -u -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" >"$T/smtp.out" 2>>"$L/smtp.log" &
kvl_track $! aiosmtpd
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$T/smtp.key" -out "$T/smtp.crt" -days 2 >>"$L/openssl.log" 2>&1 ||
    kvl_fail "openssl cannot make the SMTP server's certificate"
$PY3 -u "$HERE/notify_smtp_rx.py" "$SMTPS_PORT" "$T/smtp.crt" "$T/smtp.key" "$T/smtps.out" \
    >>"$L/smtps.log" 2>&1 &
kvl_track $! notify_smtp_rx.py
printf 'disableAuthorization yes\n' >"$T/trapd.conf"
mkdir -p "$T/snmp"
SNMP_PERSISTENT_DIR=$T/snmp stdbuf -oL "$TRAPD" -f -Lo -C -c "$T/trapd.conf" -On -M /dev/null \
    -p "$T/trapd.pid" "udp:127.0.0.1:$TRAP_PORT" >"$T/trapd.out" 2>>"$L/snmptrapd.log" &
kvl_track $! snmptrapd
kvl_wait_until 20 "webhook receiver listening" curl -s -o /dev/null "http://127.0.0.1:$HOOK_PORT/"
kvl_wait_until 20 "slow webhook receiver listening" curl -s -o /dev/null "http://127.0.0.1:$SLOW_PORT/"
kvl_wait_until 20 "aiosmtpd listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT"
kvl_wait_until 20 "the STARTTLS SMTP server listening" grep -q listening "$L/smtps.log"
kvl_wait_until 20 "snmptrapd started" grep -q 'NET-SNMP version' "$T/trapd.out"
: >"$T/hook.out"

cat >"$T/notify.yaml" <<YAML
receivers:
  - {name: am, type: alertmanager, url: "http://127.0.0.1:$AM_PORT", resend: 1m, timeout: 5s}
  - {name: hook, type: webhook, url: "http://127.0.0.1:$HOOK_PORT/kaaval", secret: hook-s3cret}
  - {name: slow, type: webhook, url: "http://127.0.0.1:$SLOW_PORT/kaaval", secret: hook-s3cret}
  - name: mail
    type: email
    url: "smtp://127.0.0.1:$SMTP_PORT"
    from: kaaval@example.net
    to: [noc@example.net, oncall@example.net]
  - name: mail-tls
    type: email
    url: "smtp://127.0.0.1:$SMTPS_PORT"
    use_ssl: all
    ca: "$T/smtp.crt"
    user: kaaval
    password: mail-pw
    from: kaaval@example.net
    to: noc@example.net
  - name: mail-badpw
    type: email
    url: "smtp://127.0.0.1:$SMTPS_PORT"
    use_ssl: all
    ca: "$T/smtp.crt"
    user: kaaval
    password: wrong
    timeout: 1s
    from: kaaval@example.net
    to: noc@example.net
  - name: run
    type: exec
    timeout: 5s
    command: [/bin/sh, -c, 'env | grep ^KAAVAL_ > "\$0.tmp" && cat > "\$0.json" && mv "\$0.tmp" "\$0.env"', "$T/exec"]
  - {name: trap, type: snmp, address: "127.0.0.1:$TRAP_PORT", community: public}
  - {name: inform, type: snmp, address: "127.0.0.1:$TRAP_PORT", inform: true, timeout: 5s}
  - {name: inform-lost, type: snmp, address: "127.0.0.1:$LOST_PORT", inform: true, timeout: 500ms}
YAML

# ---------------------------------------------------------------- alerts -------------------

NOW=$(date +%s)
START=$(date -u -d "@$((NOW - 90))" +%Y-%m-%dT%H:%M:%S.000Z)
END=$(date -u -d "@$((NOW - 5))" +%Y-%m-%dT%H:%M:%S.000Z)
CHANGED=$(date -u -d "@$NOW" +%Y-%m-%dT%H:%M:%S.000Z)

# alert STATUS DEVICE: one device_down alert in kvl_alert_to_json's form.
alert() {
    local ends=""
    [ "$1" = resolved ] && ends="\"ends_at\": \"$END\","
    cat <<JSON
{"status": "$1", "rule": "device_down", "severity": "critical",
 "labels": {"alertname": "device_down", "severity": "critical", "site": "DHQ-Kollam",
            "device": "$2"},
 "summary": "$2 is not answering (timeout)", "description": "Block HQ core router",
 "active_at": "$START", "starts_at": "$START", $ends "changed": "$CHANGED",
 "url": "http://127.0.0.1:8080/graph.html?site=DHQ-Kollam&device=$2"}
JSON
}
# notifications RECEIVER... STATUS DEVICE: that alert to each receiver.
notifications() {
    local st=${*: -2:1} dev=${*: -1} first=1 r
    printf '['
    for r in "${@:1:$#-2}"; do
        [ $first = 1 ] || printf ','
        first=0
        printf '{"receiver": "%s", "group_key": "site=DHQ-Kollam", "alerts": [%s]}' "$r" "$(alert "$st" "$dev")"
    done
    printf ']\n'
}

am_alerts() { curl -sf "http://127.0.0.1:$AM_PORT/api/v2/alerts"; }
# am_has DEVICE: Alertmanager lists an active alert for DEVICE.
am_has() {
    am_alerts | $PY3 -c '
import json, sys
dev = sys.argv[1]
sys.exit(0 if any(a["labels"].get("device") == dev and a["status"]["state"] == "active"
                  for a in json.load(sys.stdin)) else 1)' "$1"
}
am_lacks() { ! am_has "$1"; }

# ---------------------------------------------------------------- 1: firing ----------------

notifications am hook mail run trap firing rtr1 >"$T/fire.json"
"$SEND" --timeout 30000 "$T/notify.yaml" "$T/state" "$T/fire.json" >"$L/send1.log" 2>&1 ||
    kvl_fail "the first sender did not deliver everything: $(tail -n 3 "$L/send1.log")"
grep -q 'delivered=5 failed=0 dropped=0 waiting=0' "$L/send1.log" ||
    kvl_fail "first send: $(tail -n 1 "$L/send1.log")"

kvl_wait_until 10 "alertmanager listing rtr1" am_has rtr1
am_alerts | $PY3 -c '
import json, sys
start = sys.argv[1]
a = [a for a in json.load(sys.stdin) if a["labels"].get("device") == "rtr1"][0]
want = {"alertname": "device_down", "severity": "critical", "site": "DHQ-Kollam", "device": "rtr1"}
assert a["labels"] == want, a["labels"]
assert a["startsAt"].startswith(start[:19]), (a["startsAt"], start)
assert a["annotations"]["summary"] == "rtr1 is not answering (timeout)", a["annotations"]
assert a["generatorURL"].endswith("device=rtr1"), a["generatorURL"]
' "$START" || kvl_fail "alertmanager's view of rtr1: $(am_alerts)"
kvl_log "alertmanager: rtr1 active with its labels and startsAt $START"

kvl_wait_until 10 "the webhook's receipt" grep -q 'ok site=DHQ-Kollam firing rtr1' "$T/hook.out"
grep -q badsig "$T/hook.out" && kvl_fail "webhook signature refused: $(cat "$T/hook.out")"
kvl_log "webhook: signature checked"

kvl_wait_until 10 "the e-mail" grep -q 'END MESSAGE' "$T/smtp.out"
grep -q '^Subject: \[FIRING:1\] DHQ-Kollam: device_down rtr1$' "$T/smtp.out" ||
    kvl_fail "e-mail subject: $(grep -i '^Subject' "$T/smtp.out")"
grep -q 'Content-Type: multipart/alternative' "$T/smtp.out" || kvl_fail "e-mail is not multipart"
grep -q 'rtr1 is not answering (timeout)' "$T/smtp.out" || kvl_fail "e-mail body lacks the summary"
grep -q '<h3>FIRING device_down' "$T/smtp.out" || kvl_fail "e-mail lacks its HTML part"
grep -q '^To: noc@example.net, oncall@example.net' "$T/smtp.out" || kvl_fail "e-mail To:"
kvl_log "e-mail: subject and both parts"

# STARTTLS and a login: delivered with the right password, refused (and kept) with a wrong one
# (Debian's aiosmtpd 1.4.3 leaves a refused login unanswered: the attempt ends at its timeout).
notifications mail-tls firing rtr5 >"$T/tls.json"
"$SEND" --timeout 20000 "$T/notify.yaml" "$T/state" "$T/tls.json" >"$L/send-tls.log" 2>&1 ||
    kvl_fail "the e-mail over STARTTLS was not delivered: $(tail -n 3 "$L/send-tls.log")"
grep -q '^MESSAGE from=kaaval@example.net to=noc@example.net tls=True auth=True' "$T/smtps.out" ||
    kvl_fail "STARTTLS e-mail: $(head -n 1 "$T/smtps.out")"
grep -q '^Subject: \[FIRING:1\] DHQ-Kollam: device_down rtr5' "$T/smtps.out" ||
    kvl_fail "STARTTLS e-mail subject: $(grep -i '^Subject' "$T/smtps.out")"
notifications mail-badpw firing rtr6 >"$T/badpw.json"
rc=0
"$SEND" --timeout 6000 "$T/notify.yaml" "$T/state-badpw" "$T/badpw.json" >"$L/send-badpw.log" 2>&1 || rc=$?
[ "$rc" = 3 ] || kvl_fail "a refused login ended with $rc: $(tail -n 3 "$L/send-badpw.log")"
grep -q 'rtr6' "$T/smtps.out" && kvl_fail "an e-mail got through with a wrong password"
grep -q 'delivered=0 failed=[1-9].* waiting=1' "$L/send-badpw.log" ||
    kvl_fail "wrong password: $(tail -n 1 "$L/send-badpw.log")"
kvl_log "e-mail: STARTTLS with a login; a wrong password refused and kept in the outbox"

[ -s "$T/exec.env" ] || kvl_fail "the exec receiver did not run"
for kv in KAAVAL_STATUS=firing KAAVAL_RULE=device_down KAAVAL_SEVERITY=critical \
    KAAVAL_SITE=DHQ-Kollam KAAVAL_DEVICE=rtr1 "KAAVAL_SUMMARY=rtr1 is not answering (timeout)"; do
    grep -qx "$kv" "$T/exec.env" || kvl_fail "exec environment lacks $kv: $(cat "$T/exec.env")"
done
grep -q '"device":"rtr1"' "$T/exec.json" || kvl_fail "exec stdin: $(cat "$T/exec.json")"
kvl_log "exec: environment and stdin"

kvl_wait_until 10 "the trap" grep -q '\.1\.3\.6\.1\.4\.1\.99999\.0\.3' "$T/trapd.out"
for vb in '.1.3.6.1.4.1.99999.1.3.1.0 = STRING: "device_down"' \
    '.1.3.6.1.4.1.99999.1.3.2.0 = INTEGER: 1' \
    '.1.3.6.1.4.1.99999.1.3.3.0 = STRING: "DHQ-Kollam"' \
    '.1.3.6.1.4.1.99999.1.3.4.0 = STRING: "rtr1"'; do
    grep -qF "$vb" "$T/trapd.out" || kvl_fail "trap lacks $vb: $(tail -n 5 "$T/trapd.out")"
done
kvl_log "snmptrapd: kaavalAlertFiring with its varbinds"

# An inform counts only when acknowledged: snmptrapd answers one, nobody answers the other.
notifications inform firing rtr9 >"$T/inform.json"
"$SEND" --timeout 10000 "$T/notify.yaml" "$T/state" "$T/inform.json" >"$L/send-inform.log" 2>&1 ||
    kvl_fail "the inform was not acknowledged: $(tail -n 3 "$L/send-inform.log")"
grep -q 'delivered=1 failed=0 dropped=0 waiting=0' "$L/send-inform.log" ||
    kvl_fail "inform: $(tail -n 1 "$L/send-inform.log")"
kvl_wait_until 10 "the inform at snmptrapd" grep -q '"rtr9"' "$T/trapd.out"
notifications inform-lost firing rtr8 >"$T/lost.json"
rc=0
"$SEND" --timeout 5000 "$T/notify.yaml" "$T/state-lost" "$T/lost.json" >"$L/send-lost.log" 2>&1 || rc=$?
[ "$rc" = 3 ] || kvl_fail "an unanswered inform ended with $rc: $(tail -n 3 "$L/send-lost.log")"
grep -q 'delivered=0 failed=[1-9].* waiting=1' "$L/send-lost.log" ||
    kvl_fail "unanswered inform: $(tail -n 1 "$L/send-lost.log")"
kvl_log "informs: delivered when acknowledged, retried when not"

# ---------------------------------------------------------------- 2: resolved --------------

notifications am hook trap resolved rtr1 >"$T/resolve.json"
"$SEND" --timeout 30000 "$T/notify.yaml" "$T/state" "$T/resolve.json" >"$L/send2.log" 2>&1 ||
    kvl_fail "the resolution was not delivered: $(tail -n 3 "$L/send2.log")"
kvl_wait_until 10 "alertmanager dropping rtr1 from the active alerts" am_lacks rtr1
kvl_wait_until 10 "the webhook's resolution" grep -q 'ok site=DHQ-Kollam resolved rtr1' "$T/hook.out"
kvl_wait_until 10 "the resolved trap" grep -q '\.1\.3\.6\.1\.4\.1\.99999\.0\.4' "$T/trapd.out"
kvl_log "resolution: alertmanager, webhook and snmptrapd"

# ---------------------------------------------------------------- 3: receiver down ---------

kvl_stop "$AM_PID" || kvl_fail "alertmanager would not stop"
{
    printf '[%s,' "$(notifications am firing rtr2 | sed 's/^\[//; s/\]$//')"
    printf '%s,' "$(notifications am resolved rtr2 | sed 's/^\[//; s/\]$//')"
    printf '%s]\n' "$(notifications am firing rtr3 | sed 's/^\[//; s/\]$//')"
} >"$T/three.json"
rc=0
"$SEND" --timeout 3000 "$T/notify.yaml" "$T/state" "$T/three.json" >"$L/send3.log" 2>&1 || rc=$?
[ "$rc" = 3 ] || kvl_fail "the sender with alertmanager down ended with $rc: $(tail -n 3 "$L/send3.log")"
grep -q 'queued=3 delivered=0 .* waiting=3' "$L/send3.log" || kvl_fail "down: $(tail -n 1 "$L/send3.log")"
start_am
"$SEND" --timeout 60000 "$T/notify.yaml" "$T/state" >"$L/send4.log" 2>&1 ||
    kvl_fail "the queued notifications were not delivered: $(tail -n 3 "$L/send4.log")"
grep -q 'queued=0 delivered=3 failed=0 dropped=0 waiting=0' "$L/send4.log" ||
    kvl_fail "back: $(tail -n 1 "$L/send4.log")"
kvl_wait_until 10 "alertmanager listing rtr3" am_has rtr3
am_has rtr2 && kvl_fail "rtr2 is active: its resolution was not delivered after its firing"
"$SEND" --timeout 5000 "$T/notify.yaml" "$T/state" >"$L/send5.log" 2>&1 ||
    kvl_fail "a third sender found work: $(tail -n 3 "$L/send5.log")"
grep -q 'queued=0 delivered=0 failed=0 dropped=0 waiting=0' "$L/send5.log" ||
    kvl_fail "something was sent twice: $(tail -n 1 "$L/send5.log")"
kvl_log "receiver down: three queued, delivered once each, in order, after the restart"

# ---------------------------------------------------------------- 4: sender killed --------

: >"$T/slow.out"
{
    printf '[%s,' "$(notifications slow firing rtr11 | sed 's/^\[//; s/\]$//')"
    printf '%s,' "$(notifications slow firing rtr12 | sed 's/^\[//; s/\]$//')"
    printf '%s]\n' "$(notifications slow firing rtr13 | sed 's/^\[//; s/\]$//')"
} >"$T/kill.json"
"$SEND" --timeout 60000 "$T/notify.yaml" "$T/state-kill" "$T/kill.json" >"$L/send-kill1.log" 2>&1 &
SEND_PID=$!
kvl_track "$SEND_PID" kvl-notify-send
# rtr11 answered (1.5 s), rtr12 read and its answer outstanding: kill now.
kvl_wait_until 20 "the second notification at the slow webhook" grep -q 'firing rtr12' "$T/slow.out"
kvl_stop "$SEND_PID" KILL || kvl_fail "the sender would not die"
"$SEND" --timeout 60000 "$T/notify.yaml" "$T/state-kill" >"$L/send-kill2.log" 2>&1 ||
    kvl_fail "the restarted sender did not deliver the rest: $(tail -n 3 "$L/send-kill2.log")"
got=$(awk '{ print $4 }' "$T/slow.out" | tr '\n' ' ')
case "$got" in
"rtr11 rtr12 rtr12 rtr13 " | "rtr11 rtr12 rtr13 ") ;;
*) kvl_fail "after the kill the webhook got: $got (wanted rtr11 once, rtr12, rtr13 once, in order)" ;;
esac
grep -q 'queued=0 delivered=2 ' "$L/send-kill2.log" || kvl_fail "restart: $(tail -n 1 "$L/send-kill2.log")"
kvl_log "sender killed: resumed at the unconfirmed one ($got)"

kvl_pass "alertmanager, webhook (HMAC), e-mail, exec and snmptrapd receivers"
