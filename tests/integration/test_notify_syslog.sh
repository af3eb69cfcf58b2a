#!/bin/bash
# test_notify_syslog.sh — the syslog receiver through the real syslog(3): in a mount namespace
# of its own (unshare -m; needs root, else exit 77 = skipped), /dev is a private folder
# holding the host's null/zero/urandom and a /dev/log socket that a python receiver reads.
# A firing critical alert must arrive as one line with the configured facility (local3) and
# priority crit, the ident, the rule, labels and summary; its resolution as a notice.
#
#   bash tests/integration/test_notify_syslog.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: test_notify_syslog needs root (a mount namespace for its own /dev/log)"
    exit 77
fi
kvl_init "$@"

SEND=$KVL_BUILD/tests/integration/kvl-notify-send
[ -x "$SEND" ] || kvl_fail "no $SEND (build first)"
T=$KVL_TMP
L=$T/logs

cat >"$T/notify.yaml" <<YAML
receivers:
  - {name: log, type: syslog, facility: local3, ident: kaaval-test}
YAML
NOW=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
for st in firing resolved; do
    ends=""
    [ $st = resolved ] && ends="\"ends_at\": \"$NOW\","
    cat >"$T/$st.json" <<JSON
[{"receiver": "log", "group_key": "site=DHQ-Kollam", "alerts": [
 {"status": "$st", "rule": "device_down", "severity": "critical",
  "labels": {"alertname": "device_down", "severity": "critical", "site": "DHQ-Kollam",
             "device": "rtr1"},
  "summary": "rtr1 is not answering", "active_at": "$NOW", "starts_at": "$NOW", $ends
  "changed": "$NOW"}]}]
JSON
done

cat >"$T/rx.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
print("listening", flush=True)
with open(sys.argv[1], "ab") as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
        f.flush()
PY

mkdir -p "$T/dev"
# Inside the namespace: /dev replaced, the receiver started, both notifications sent, the
# receiver stopped by its pid. Prints the senders' exit codes.
unshare -m bash -c '
    set -u
    T=$1 SEND=$2 L=$3
    mount --make-rprivate /
    for f in null zero urandom random; do
        touch "$T/dev/$f" && mount --bind "/dev/$f" "$T/dev/$f"
    done
    mount --rbind "$T/dev" /dev
    python3 -u "$T/rx.py" "$T/syslog.out" >"$L/rx.log" 2>&1 &
    rx=$!
    for i in $(seq 50); do grep -q listening "$L/rx.log" && break; sleep 0.1; done
    "$SEND" --timeout 10000 "$T/notify.yaml" "$T/state" "$T/firing.json" >"$L/send1.log" 2>&1
    echo "send1=$?"
    "$SEND" --timeout 10000 "$T/notify.yaml" "$T/state" "$T/resolved.json" >"$L/send2.log" 2>&1
    echo "send2=$?"
    for i in $(seq 50); do [ "$(wc -l <"$T/syslog.out")" -ge 2 ] && break; sleep 0.1; done
    kill "$rx"
    wait "$rx" 2>/dev/null
    exit 0
' unshare-notify-syslog "$T" "$SEND" "$L" >"$T/ns.out" 2>>"$L/ns.log" || kvl_fail "the namespace part failed: $(cat "$T/ns.out")"
grep -q '^send1=0$' "$T/ns.out" || kvl_fail "the firing alert was not delivered: $(cat "$T/ns.out")"
grep -q '^send2=0$' "$T/ns.out" || kvl_fail "the resolution was not delivered: $(cat "$T/ns.out")"
[ -s "$T/syslog.out" ] || kvl_fail "nothing reached /dev/log"

# <PRI> = facility * 8 + severity: local3 (19) * 8 + crit (2) = 154; notice (5) = 157.
grep -q '^<154>.*kaaval-test\[[0-9]*\]: FIRING device_down severity=critical site=DHQ-Kollam device=rtr1 interface=- since=.* summary="rtr1 is not answering"$' "$T/syslog.out" ||
    kvl_fail "the firing line: $(head -n 1 "$T/syslog.out")"
grep -q '^<157>.*kaaval-test\[[0-9]*\]: RESOLVED device_down ' "$T/syslog.out" ||
    kvl_fail "the resolved line: $(tail -n 1 "$T/syslog.out")"
[ "$(wc -l <"$T/syslog.out")" = 2 ] || kvl_fail "not exactly two lines: $(cat "$T/syslog.out")"
kvl_pass "syslog lines with facility, priority, ident and the alert"
