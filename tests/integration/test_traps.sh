#!/bin/bash
# test_traps.sh — SNMP traps and informs become events with meaning, end to end.
#
# A simulated device (snmpsim, two interfaces) is polled by an agent whose trap receiver
# listens on a free 127.0.0.1 port; a collector logs the events it receives. Then, with
# net-snmp's own tools:
#   - snmptrap v1 and v2c linkDown for the device's ifIndex 2: the collector's log shows a
#     linkDown event naming the interface by the name the agent polls it under (derived
#     here the way the agent names interfaces: ifName, else ifDescr), with its admin and
#     oper status, and the agent polls the device at once;
#   - a v2c linkUp for ifIndex 1, a coldStart, and a trap the project's MIB names
#     (KAAVAL-MIB::kaavalDeviceDown, named from mibs/), with its varbind named too;
#   - snmpinform v2c: answered (snmpinform exits 0 only when answered);
#   - a wrong community and a trap from 127.0.0.2 (no configured device): counted in the
#     agent's log, never forwarded (a later trap from the device arrives, these do not);
#   - a second agent on the same port: one WARN line, and it runs on without traps;
#   - SNMPv3: a trap with the configured user (authPriv, the sender's engine ID listed in
#     traps.engine_ids) delivered; an inform with that user answered (engine ID discovery
#     against the agent's engine); a trap with an unknown user and one with a wrong
#     password refused and logged;
#   - a flood of 100 traps: at most max_per_second a second forwarded, the cut logged.
#
#   bash tests/integration/test_traps.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

for tool in snmptrap snmpinform; do
    command -v "$tool" >/dev/null 2>&1 || kvl_fail "'$tool' not found (Debian package snmp)"
done

INTERVAL=5
COMMUNITY=trapdev
V3_USER=kvtrap
V3_AUTH=trap-auth-pass-1
V3_PRIV=trap-priv-pass-1
SENDER_ENGINE=0x8000000001020304aabbccdd # the v3 trap sender's engine ID (snmptrap -e)
MAX_PER_SECOND=20 # well above what the steps below send in a second; a flood at the end
FLOOD=100
mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
kvl_make_rate_device "$KVL_TMP/rec/$COMMUNITY.snmprec" "eth0:1000:2000:1000" "ge-0/0/1:3000:4000:1000"
kvl_free_port udp SNMP
kvl_free_port udp TRAP
kvl_free_port tcp COL_PORT

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
KVL_AGENT_TRAPS="traps:
  listen: 127.0.0.1:$TRAP
  credentials: [trap-v3]
  engine_ids: [$SENDER_ENGINE]
  max_per_second: $MAX_PER_SECOND" \
    kvl_agent_config "$KVL_TMP/agent.yaml" trap-agent lab "$COL_PORT" "${INTERVAL}s" debug
kvl_agent_device "$KVL_TMP/agent.yaml" trapdev "$SNMP" "$COMMUNITY"
cat >>"$KVL_TMP/agent.yaml" <<EOF
mib_path: [$KVL_REPO/tests/mibs/base]   # SNMPv2-SMI and friends, which KAAVAL-MIB imports
credentials:
  - name: trap-v3
    user: $V3_USER
    level: authPriv
    auth_protocol: SHA
    auth_password: "$V3_AUTH"
    priv_protocol: AES
    priv_password: "$V3_PRIV"
EOF
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
ALOG=$KVL_TMP/logs/agent.log
CLOG=$KVL_TMP/logs/collector.log

kvl_wait_until 10 "the agent's trap receiver" grep -q "receiving traps and informs on udp 127.0.0.1:$TRAP" "$ALOG"
kvl_log "$(grep -o 'receiving traps and informs on .*' "$ALOG")"
# A second agent cannot bind the same port: one WARN line, and it runs on without traps.
KVL_AGENT_TRAPS="traps: {listen: 127.0.0.1:$TRAP}" \
    kvl_agent_config "$KVL_TMP/agent2.yaml" trap-agent-2 lab "$COL_PORT" "${INTERVAL}s"
kvl_agent_device "$KVL_TMP/agent2.yaml" trapdev "$SNMP" "$COMMUNITY"
kvl_start_agent agent2 "$KVL_TMP/agent2.yaml"
AGENT2=$KVL_LAST_PID
A2LOG=$KVL_TMP/logs/agent2.log
kvl_wait_until 10 "the second agent's bind failure" \
    grep -q "WARN  \[trap\] cannot receive traps on udp 127.0.0.1:$TRAP: address already in use; the agent runs on without traps" "$A2LOG"
[ "$(grep -c '\[trap\]' "$A2LOG")" -eq 1 ] || kvl_fail "more than one line about the trap port: $(grep '\[trap\]' "$A2LOG")"
kvl_wait_until 15 "the second agent to poll" grep -q "poll\(ing\)\? done\|discovery done\|interfaces, 2 reported" "$A2LOG"
kvl_stop "$AGENT2" TERM || kvl_fail "the second agent did not stop"

# The interfaces are known once the first discovery is archived.
IF2_FILE=$KVL_TMP/data/lab/trapdev/$(kvl_file_safe "ge-0/0/1").rrd
kvl_wait_until 30 "the first poll's archive $IF2_FILE" test -f "$IF2_FILE"

# ifIndex 2's name, the way the agent names it: ifName, else ifDescr.
if_name() {
    local v
    v=$(snmpget -v2c -c "$COMMUNITY" -Oqv -t 2 -r 1 "127.0.0.1:$SNMP" ".1.3.6.1.2.1.31.1.1.1.1.$1" 2>/dev/null)
    case "$v" in '' | No\ Such* | \"\") v=$(snmpget -v2c -c "$COMMUNITY" -Oqv -t 2 -r 1 "127.0.0.1:$SNMP" ".1.3.6.1.2.1.2.2.1.2.$1") ;; esac
    v=${v#\"}
    echo "${v%\"}"
}
IF1=$(if_name 1)
IF2=$(if_name 2)
[ -n "$IF1" ] && [ -n "$IF2" ] || kvl_fail "cannot read the interfaces' names from the simulator"
kvl_log "ifIndex 1 is '$IF1', ifIndex 2 is '$IF2'"

T=127.0.0.1:$TRAP
IFX=.1.3.6.1.2.1.2.2.1
# event_line REGEX: the collector logged an event line matching REGEX.
event_line() { grep -E "\[event trapdev\] $1" "$CLOG"; }
wait_event() { kvl_wait_until 15 "$2" event_line "$1"; }
re() { printf '%s' "$1" | sed 's/[][\.*^$/]/\\&/g'; }

# --- v1 linkDown (generic-trap 2) for ifIndex 2 ------------------------------------------
snmptrap -v1 -c "$COMMUNITY" "$T" .1.3.6.1.4.1.8072.3.2.10 127.0.0.1 2 0 '' \
    "$IFX.1.2" i 2 "$IFX.7.2" i 1 "$IFX.8.2" i 2 || kvl_fail "snmptrap -v1 failed"
wait_event "linkDown \(warning, agent trap-agent, site lab\): linkDown: interface $(re "$IF2") \(ifIndex 2, admin up, oper down\) from 127\.0\.0\.1 \(v1\)" \
    "the v1 linkDown naming $IF2"
# polled_now N: the agent polled the device out of schedule N times or more.
polled_now() { [ "$(grep -cF "[snmp trapdev] polling now, out of schedule" "$ALOG")" -ge "$1" ]; }
kvl_wait_until 10 "the poll at once after the linkDown" polled_now 1

# --- v2c linkDown for ifIndex 2, linkUp for ifIndex 1 -------------------------------------
snmptrap -v2c -c "$COMMUNITY" "$T" '' .1.3.6.1.6.3.1.1.5.3 \
    "$IFX.1.2" i 2 "$IFX.7.2" i 1 "$IFX.8.2" i 2 || kvl_fail "snmptrap -v2c failed"
wait_event "linkDown \(warning, [^)]*\): linkDown: interface $(re "$IF2") \(ifIndex 2, admin up, oper down\) from 127\.0\.0\.1 \(v2c\)" \
    "the v2c linkDown naming $IF2"
kvl_wait_until 10 "the second poll at once" polled_now 2
snmptrap -v2c -c "$COMMUNITY" "$T" '' .1.3.6.1.6.3.1.1.5.4 \
    "$IFX.1.1" i 1 "$IFX.7.1" i 1 "$IFX.8.1" i 1 || kvl_fail "snmptrap -v2c linkUp failed"
wait_event "linkUp \(info, [^)]*\): linkUp: interface $(re "$IF1") \(ifIndex 1, admin up, oper up\)" \
    "the v2c linkUp naming $IF1"

# --- an inform is answered ------------------------------------------------------------------
snmpinform -v2c -c "$COMMUNITY" -t 3 -r 2 "$T" '' .1.3.6.1.6.3.1.1.5.2 \
    || kvl_fail "the v2c inform was not answered"
wait_event "warmStart \(info, [^)]*\): warmStart from 127\.0\.0\.1 \(v2c\)" "the inform's warmStart event"

# --- wrong community, unknown source: counted, not forwarded ---------------------------------
snmptrap -v2c -c wrong-community "$T" '' .1.3.6.1.6.3.1.1.5.1 || kvl_fail "snmptrap failed"
kvl_wait_until 10 "the wrong community to be logged" \
    grep -q "\[trap trapdev\] v2c trap from 127.0.0.1 with a wrong community: dropped" "$ALOG"
snmptrap --clientaddr=127.0.0.2 -v2c -c "$COMMUNITY" "$T" '' .1.3.6.1.6.3.1.1.5.1 \
    || kvl_fail "snmptrap from 127.0.0.2 failed"
kvl_wait_until 10 "the unknown source to be logged" \
    grep -q "\[trap 127.0.0.2\] trap from an address that is no configured device: dropped" "$ALOG"
snmpinform --clientaddr=127.0.0.2 -v2c -c "$COMMUNITY" -t 1 -r 0 "$T" '' .1.3.6.1.6.3.1.1.5.1 \
    2>/dev/null && kvl_fail "an inform from an unknown source was answered"
# A MIB-named trap from the device, after them: when it has arrived, they would have too.
snmptrap -v2c -c "$COMMUNITY" "$T" '' .1.3.6.1.4.1.99999.0.1 \
    .1.3.6.1.4.1.99999.1.2.1.2.7 s "core-sw-9" || kvl_fail "snmptrap (kaavalDeviceDown) failed"
wait_event "kaavalDeviceDown \(info, [^)]*\): kaavalDeviceDown from 127\.0\.0\.1 \(v2c\): kaavalDeviceName=core-sw-9" \
    "the trap named from KAAVAL-MIB, its varbind named too"
if event_line "coldStart" >/dev/null; then
    kvl_fail "a coldStart with a wrong community or from an unknown source was forwarded: $(event_line coldStart)"
fi
snmptrap -v2c -c "$COMMUNITY" "$T" '' .1.3.6.1.6.3.1.1.5.1 || kvl_fail "snmptrap failed"
wait_event "coldStart \(info, [^)]*\): coldStart from 127\.0\.0\.1 \(v2c\)" "the device's coldStart"
[ "$(event_line coldStart | wc -l)" -eq 1 ] || kvl_fail "more than one coldStart forwarded"

# --- SNMPv3 ----------------------------------------------------------------------------------
V3="-v3 -l authPriv -a SHA -A $V3_AUTH -x AES -X $V3_PRIV"
# shellcheck disable=SC2086 # V3 holds several words
snmptrap $V3 -u "$V3_USER" -e "$SENDER_ENGINE" "$T" '' .1.3.6.1.6.3.1.1.5.3 \
    "$IFX.1.2" i 2 || kvl_fail "snmptrap -v3 failed"
wait_event "linkDown \(warning, [^)]*\): linkDown: interface $(re "$IF2") \(ifIndex 2\) from 127\.0\.0\.1 \(v3\)" \
    "the v3 linkDown (right user)"
# shellcheck disable=SC2086
snmpinform $V3 -u "$V3_USER" -t 3 -r 2 "$T" '' .1.3.6.1.6.3.1.1.5.2 \
    || kvl_fail "the v3 inform was not answered: $(grep 'trap' "$ALOG" | tail -n 3)"
wait_event "warmStart \(info, [^)]*\): warmStart from 127\.0\.0\.1 \(v3\)" "the v3 inform's warmStart"
# shellcheck disable=SC2086
snmptrap $V3 -u intruder -e "$SENDER_ENGINE" "$T" '' .1.3.6.1.6.3.1.1.5.5 \
    || kvl_fail "snmptrap -v3 (unknown user) failed"
kvl_wait_until 10 "the unknown v3 user to be refused" \
    grep -q "\[trap trapdev\] SNMPv3 message from 127.0.0.1 refused: user 'intruder': unknown user" "$ALOG"
snmptrap -v3 -l authPriv -a SHA -A wrong-auth-pass -x AES -X "$V3_PRIV" -u "$V3_USER" \
    -e "$SENDER_ENGINE" "$T" '' .1.3.6.1.6.3.1.1.5.5 || kvl_fail "snmptrap -v3 (wrong pass) failed"
kvl_wait_until 10 "the wrong v3 password to be refused" \
    grep -q "\[trap trapdev\] SNMPv3 message from 127.0.0.1 refused: user '$V3_USER': wrong digest" "$ALOG"
# shellcheck disable=SC2086
snmptrap $V3 -u "$V3_USER" -e 0x80000000010203040506ffee "$T" '' .1.3.6.1.6.3.1.1.5.5 \
    || kvl_fail "snmptrap -v3 (engine not listed) failed"
kvl_wait_until 10 "the v3 trap from an engine not listed to be refused" \
    grep -q "\[trap trapdev\] SNMPv3 message from 127.0.0.1 refused: user '$V3_USER' from engine ID 0x80000000010203040506ffee: that engine is not in traps.engine_ids" "$ALOG"
# A last good one: the refused ones (authenticationFailure) would have arrived before it.
snmptrap -v2c -c "$COMMUNITY" "$T" '' .1.3.6.1.6.3.1.1.5.2 || kvl_fail "snmptrap failed"
warm_starts() { [ "$(event_line "warmStart" | wc -l)" -ge "$1" ]; }
kvl_wait_until 15 "the last warmStart" warm_starts 3
if event_line "authenticationFailure" >/dev/null; then
    kvl_fail "a refused v3 trap was forwarded: $(event_line authenticationFailure)"
fi

# --- a flood: at most max_per_second a second taken, the rest counted and dropped -----------
# FLOOD v2c traps (KAAVAL-MIB::kaavalDeviceUp) in a tight loop, well within two seconds.
"$KVL_PY" - "$TRAP" "$COMMUNITY" "$FLOOD" <<'PY' || kvl_fail "cannot send the flood"
import socket, sys

def tlv(tag, body):
    n = len(body)
    head = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255])
    return bytes([tag]) + head + body

def oid(s):
    arcs = [int(x) for x in s.strip(".").split(".")]
    out = bytes([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        enc = [a & 0x7F]
        a >>= 7
        while a:
            enc.insert(0, 0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(enc)
    return tlv(0x06, out)

def integer(v):
    return tlv(0x02, v.to_bytes(4, "big", signed=True))

port, community, n = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    vbs = tlv(0x30, tlv(0x30, oid("1.3.6.1.2.1.1.3.0") + tlv(0x43, b"\x01"))
              + tlv(0x30, oid("1.3.6.1.6.3.1.1.4.1.0") + oid("1.3.6.1.4.1.99999.0.2")))
    pdu = tlv(0xA7, integer(1000 + i) + integer(0) + integer(0) + vbs)
    s.sendto(tlv(0x30, integer(1) + tlv(0x04, community) + pdu), ("127.0.0.1", port))
PY
kvl_wait_until 10 "the flood to be cut" \
    grep -q "\[trap trapdev\] more than $MAX_PER_SECOND traps a second from 127.0.0.1: the rest dropped" "$ALOG"
sleep 1.1 # the next second: taken again
snmptrap -v2c -c "$COMMUNITY" "$T" '' .1.3.6.1.6.3.1.1.5.1 || kvl_fail "snmptrap failed"
cold_starts() { [ "$(event_line "coldStart" | wc -l)" -ge "$1" ]; }
kvl_wait_until 15 "a coldStart after the flood" cold_starts 2
ups=$(event_line "kaavalDeviceUp" | wc -l)
kvl_log "flood of $FLOOD: $ups events forwarded"
[ "$ups" -ge 1 ] && [ "$ups" -le $((3 * MAX_PER_SECOND)) ] \
    || kvl_fail "$ups of $FLOOD flooded traps forwarded, expected 1 to $((3 * MAX_PER_SECOND))"

kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent died"
kvl_is_ours "$SIM" snmpsimd || kvl_fail "snmpsim died"
kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
kvl_pass "v1, v2c and v3 traps and informs became events naming $IF2 and $IF1; wrong community, unknown source and bad v3 users refused"
