#!/bin/bash
# test_notify_upstream.sh — kaaval's SNMP notifications to an upstream manager, end to end:
# real snmptrapd (Debian) processes as the NOC's manager.
#
# Two simulated devices (snmpsim) are polled every 2 s by an agent: `upa` first in its
# configuration (kaavalDeviceIndex 1), `updev` second (index 2). The collector runs its
# built-in rules and routes every alert to three `type: snmp` receivers:
#   up2     SNMPv2c traps to snmptrapd #1 (disableAuthorization)
#   up3     SNMPv3 informs (SHA, AES) to snmptrapd #2, which knows the user (createUser,
#           authUser log): engine discovery, then authenticated, encrypted informs
#   up3bad  the same user with a wrong auth_password: refused by snmptrapd #2 (a Report
#           usmStatsWrongDigests), never delivered, retried, logged clearly
#   1. The simulator is stopped (by pid): both managers get kaavalDeviceDown for each device,
#      with kaavalDeviceName.<i>, kaavalDeviceAddress.<i>, kaavalDeviceDownReason.<i> =
#      timeout(2) under the right index, then kaavalAlertSite and kaavalAlertFingerprint;
#      up3bad's failure names usmStatsWrongDigests and is retried.
#   2. The collector is killed (SIGKILL) and started again while both are down: no Down
#      sent again.
#   3. The simulator is started again: kaavalDeviceUp for each (reason up(1)), with the same
#      fingerprint as its Down. snmptrapd #2 got each Down and each Up exactly once (the
#      v3 informs acknowledged, so not resent; the wrong user's never accepted); the
#      collector is still running.
#
#   bash tests/integration/test_notify_upstream.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

TRAPD=$(command -v snmptrapd || true)
[ -n "$TRAPD" ] || kvl_fail "snmptrapd not found (Debian package snmptrapd)"
T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data" "$T/snmp2" "$T/snmp3"
kvl_make_rate_device "$T/rec/upa.snmprec" "eth0:1000:2000:1000"
kvl_make_rate_device "$T/rec/updev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port udp TRAP2
kvl_free_port udp TRAP3
kvl_free_port tcp COL_PORT

# ------------------------------------------------------------------ the managers ----------
printf 'disableAuthorization yes\n' >"$T/trapd2.conf"
cat >"$T/trapd3.conf" <<'EOF'
createUser kvlnoc SHA "noc-auth-pass" AES "noc-priv-pass"
authUser log kvlnoc
EOF
SNMP_PERSISTENT_DIR=$T/snmp2 stdbuf -oL "$TRAPD" -f -Lo -C -c "$T/trapd2.conf" -On -M /dev/null \
    -p "$T/trapd2.pid" "udp:127.0.0.1:$TRAP2" >"$T/trapd2.out" 2>>"$L/snmptrapd2.log" &
kvl_track $! snmptrapd
SNMP_PERSISTENT_DIR=$T/snmp3 stdbuf -oL "$TRAPD" -f -Lo -C -c "$T/trapd3.conf" -On -M /dev/null \
    -p "$T/trapd3.pid" "udp:127.0.0.1:$TRAP3" >"$T/trapd3.out" 2>>"$L/snmptrapd3.log" &
kvl_track $! snmptrapd
kvl_wait_until 20 "snmptrapd #1 started" grep -q 'NET-SNMP version' "$T/trapd2.out"
kvl_wait_until 20 "snmptrapd #2 started" grep -q 'NET-SNMP version' "$T/trapd3.out"

# ------------------------------------------------------------------ the daemons -----------
kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data" debug
cat >>"$T/collector.yaml" <<YAML
receivers:
  - {name: up2, type: snmp, address: "127.0.0.1:$TRAP2", community: public}
  - name: up3
    type: snmp
    version: 3
    address: "127.0.0.1:$TRAP3"
    user: kvlnoc
    auth_protocol: SHA
    auth_password: noc-auth-pass
    priv_protocol: AES
    priv_password: noc-priv-pass
    timeout: 3s
  - name: up3bad
    type: snmp
    version: 3
    address: "127.0.0.1:$TRAP3"
    user: kvlnoc
    auth_protocol: SHA
    auth_password: not-the-password
    priv_protocol: AES
    priv_password: noc-priv-pass
    timeout: 1s
alerts:
  group_by: [alertname, device]
  routes:
    - {receiver: up2, continue: true}
    - {receiver: up3, continue: true}
    - {receiver: up3bad}
YAML
"$KVL_BUILD/kaaval-collector" -c "$T/collector.yaml" --check-config >"$L/check.log" 2>&1 ||
    kvl_fail "--check-config refused the configuration: $(cat "$L/check.log")"
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
CLOG=$L/collector.log

kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_agent_config "$T/agent.yaml" up-agent lab "$COL_PORT" 2s
sed -i 's/timeout: 500ms/timeout: 300ms/' "$T/agent.yaml"
kvl_agent_device "$T/agent.yaml" upa "$SNMP" upa
kvl_agent_device "$T/agent.yaml" updev "$SNMP" updev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID
kvl_wait_until 30 "the archive of updev's eth0" test -f "$T/data/lab/updev/eth0.rrd"
kvl_wait_until 30 "the archive of upa's eth0" test -f "$T/data/lab/upa/eth0.rrd"
kvl_sleep_checking 2 "$AGENT" "$COL"

E=.1.3.6.1.4.1.99999
# notes FILE TRAP_OID DEVICE: the notifications of TRAP_OID naming DEVICE in snmptrapd's output
# (one line of varbinds each).
notes() { grep -F "OID: $2	" "$1" | grep -F "= STRING: \"$3\"" || true; }
count() { notes "$@" | grep -c . || true; }
has() { [ "$(count "$1" "$2" "$3")" -ge 1 ]; }
# check_vbs FILE TRAP_OID DEVICE INDEX REASON: its varbinds, by OID.
check_vbs() {
    local line
    line=$(notes "$1" "$2" "$3" | head -n 1)
    for vb in "$E.1.2.1.2.$4 = STRING: \"$3\"" "$E.1.2.1.3.$4 = STRING: \"127.0.0.1\"" \
        "$E.1.2.1.5.$4 = INTEGER: $5" "$E.1.3.3.0 = STRING: \"lab\"" "$E.1.3.7.0 = STRING: "; do
        case "$line" in
        *"$vb"*) ;;
        *) kvl_fail "$(basename "$1"): $2 for $3 lacks '$vb': $line" ;;
        esac
    done
}
fingerprint() { notes "$1" "$2" "$3" | head -n 1 | sed -n 's/.*99999\.1\.3\.7\.0 = STRING: "\([0-9a-f]*\)".*/\1/p'; }

# ------------------------------------------------------------------ 1: down --------------
for f in trapd2 trapd3; do
    n=$(grep -c "OID: $E.0" "$T/$f.out" || true)
    [ "$n" -eq 0 ] || kvl_fail "$f got notifications before any outage: $(grep "OID: $E.0" "$T/$f.out")"
done
kvl_stop "$SIM" TERM || kvl_fail "could not stop the simulator"
T_CUT=$SECONDS
for f in trapd2 trapd3; do
    kvl_wait_until 60 "kaavalDeviceDown for updev at $f" has "$T/$f.out" "$E.0.1" updev
    kvl_wait_until 30 "kaavalDeviceDown for upa at $f" has "$T/$f.out" "$E.0.1" upa
    check_vbs "$T/$f.out" "$E.0.1" updev 2 2
    check_vbs "$T/$f.out" "$E.0.1" upa 1 2
done
kvl_log "kaavalDeviceDown at both managers after $((SECONDS - T_CUT)) s, indexes 1 and 2, reason timeout(2)"
kvl_wait_until 30 "up3bad refused with a clear log line" \
    grep -q '\[notify up3bad\] delivery failed: the manager refused the inform: usmStatsWrongDigests' "$CLOG"
kvl_wait_until 30 "up3bad retried" \
    grep -q '\[notify up3bad\] attempt [2-9] failed: .*usmStatsWrongDigests' "$CLOG"
kvl_log "wrong auth_password: $(grep -m1 '\[notify up3bad\] delivery failed' "$CLOG" | cut -c1-200)"

# ------------------------------------------------------------------ 2: SIGKILL -----------
# while both devices are down: nothing sent again after the restart, and the resolutions
# below still carry each device's index (the book and the outbox keep the alert's fields)
kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_sleep_checking 5 "$AGENT" "$COL"
for d in updev upa; do
    n=$(count "$T/trapd3.out" "$E.0.1" $d)
    [ "$n" -eq 1 ] || kvl_fail "after the collector's restart snmptrapd #2 got kaavalDeviceDown for $d $n times"
done

# ------------------------------------------------------------------ 3: up ----------------
kvl_start_snmpsim "$T/rec" "$SNMP"
SIM=$KVL_LAST_PID
T_BACK=$SECONDS
for f in trapd2 trapd3; do
    kvl_wait_until 60 "kaavalDeviceUp for updev at $f" has "$T/$f.out" "$E.0.2" updev
    kvl_wait_until 30 "kaavalDeviceUp for upa at $f" has "$T/$f.out" "$E.0.2" upa
    check_vbs "$T/$f.out" "$E.0.2" updev 2 1
    check_vbs "$T/$f.out" "$E.0.2" upa 1 1
    for d in updev upa; do
        down=$(fingerprint "$T/$f.out" "$E.0.1" $d)
        up=$(fingerprint "$T/$f.out" "$E.0.2" $d)
        if [ -z "$down" ] || [ "$down" != "$up" ]; then
            kvl_fail "$f: kaavalDeviceUp of $d has fingerprint '$up', its Down '$down'"
        fi
    done
done
kvl_log "kaavalDeviceUp at both managers after $((SECONDS - T_BACK)) s, reason up(1), fingerprints paired"
kvl_sleep_checking 6 "$AGENT" "$COL"
for d in updev upa; do
    for oid in "$E.0.1" "$E.0.2"; do
        n=$(count "$T/trapd3.out" "$oid" $d)
        [ "$n" -eq 1 ] || kvl_fail "snmptrapd #2 (v3) got $oid for $d $n times (want 1: acknowledged once, the wrong user never)"
    done
done
n=$(grep -c "OID: $E.0.[34]" "$T/trapd2.out" "$T/trapd3.out" | awk -F: '{s += $2} END {print s}')
[ "$n" -eq 0 ] || kvl_fail "$n kaavalAlertFiring/Resolved for what are device outages"
grep -q '\[notify up3\] delivery failed' "$CLOG" &&
    kvl_fail "the right SNMPv3 user failed: $(grep -m1 '\[notify up3\] delivery failed' "$CLOG")"
kvl_pass "kaavalDeviceDown/Up with name, address, reason and index over v2c traps and SNMPv3 informs; a wrong auth password refused, logged and retried"
