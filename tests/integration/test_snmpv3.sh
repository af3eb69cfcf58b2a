#!/bin/bash
# test_snmpv3.sh — SNMPv3 (USM) polling against Debian's real snmpd on 127.0.0.1.
#
# Starts snmpd on a free UDP port with its own configuration in the test's temp folder
# (`snmpd -f -Lo -C -c <conf>`, persistent state in the temp folder too), with one user per
# combination of security level, authentication and privacy protocol the agent supports,
# then checks with `kaaval-agent --poll-once` (log level debug, so every log line is
# checked):
#   (a) every user and protocol gets the system group and lo's counters, the same
#       interface count snmpd's own ifTable has, reachable=1 and down_reason=0;
#   (b) a wrong authentication password gives reachable=0, down_reason=2, a device_down
#       event and a log line naming usmStatsWrongDigests; a wrong privacy password likewise
#       (the agent drops what it cannot decrypt: named as such); an unknown user and a level
#       the user lacks likewise, each naming its USM counter; and no output, log or event
#       line ever contains a password;
#   (c) a v3 device that does not answer is down for a timeout (down_reason=1) and does not
#       hold up the others: engine ID discovery is asynchronous;
#   (d) in normal mode with a collector, the v3 device's archives fill (reachable 1,
#       down_reason 0, lo's in_octets) over several polls, the later ones GETs.
# snmpd is stopped by pid (the EXIT trap of lib.sh).
#
#   bash tests/integration/test_snmpv3.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

SNMPD=$(command -v snmpd || echo /usr/sbin/snmpd)
[ -x "$SNMPD" ] || kvl_fail "snmpd not found: run packaging/install-deps.sh (Debian package snmpd)"

AUTH_PASS="kvl-auth-Pw-7301"
PRIV_PASS="kvl-priv-Pw-5519"
BAD_AUTH="kvl-WRONG-auth-4242"
BAD_PRIV="kvl-WRONG-priv-4343"

# user level auth priv: every combination polled in (a).
USERS="
kv-sha256-aes authPriv SHA-256 AES
kv-sha512-aes256 authPriv SHA-512 AES-256
kv-sha384-aes192 authPriv SHA-384 AES-192
kv-sha224-aes256c authPriv SHA-224 AES-256-C
kv-sha-aes192c authPriv SHA AES-192-C
kv-md5-des authPriv MD5 DES
kv-sha-des authPriv SHA DES
kv-sha256-noPriv authNoPriv SHA-256 -
kv-md5-noPriv authNoPriv MD5 -
kv-none noAuthNoPriv - -
"

# ------------------------------------------------------------------------- snmpd -------------
kvl_free_port udp SNMPD_PORT
kvl_free_port udp DEAD_PORT
S=$KVL_TMP/snmpd
mkdir -p "$S/persist"
{
    echo "agentAddress udp:127.0.0.1:$SNMPD_PORT"
    echo "sysLocation test_snmpv3"
    while read -r user level auth priv; do
        [ -n "$user" ] || continue
        case $level in
            authPriv) echo "createUser $user $auth $AUTH_PASS $priv $PRIV_PASS" ;;
            authNoPriv) echo "createUser $user $auth $AUTH_PASS" ;;
            *) echo "createUser $user" ;;
        esac
        case $level in
            authPriv) echo "rouser $user priv" ;;
            authNoPriv) echo "rouser $user auth" ;;
            *) echo "rouser $user noauth" ;;
        esac
    done <<<"$USERS"
} >"$S/snmpd.conf"

# -C: no other configuration file; persistent state (engine boots, users) in the temp folder;
# no MIB files (numeric OIDs only), so its log stays short.
SNMP_PERSISTENT_DIR=$S/persist MIBDIRS=$S/nomibs MIBS= \
    "$SNMPD" -f -Lo -C -c "$S/snmpd.conf" >"$KVL_TMP/logs/snmpd.log" 2>&1 &
SNMPD_PID=$!
kvl_track "$SNMPD_PID" snmpd
kvl_log "snmpd pid $SNMPD_PID on 127.0.0.1:$SNMPD_PORT"

_snmpd_answers() {
    kvl_is_ours "$SNMPD_PID" snmpd || kvl_fail "snmpd exited at start-up"
    snmpget -v3 -l authPriv -u kv-sha256-aes -a SHA-256 -A "$AUTH_PASS" -x AES -X "$PRIV_PASS" \
        -r 0 -t 1 "127.0.0.1:$SNMPD_PORT" .1.3.6.1.2.1.1.3.0 >/dev/null 2>&1
}
kvl_wait_until 20 "snmpd to answer SNMPv3" _snmpd_answers

# What snmpd itself says: its interfaces (ifIndex column) and lo's ifIndex.
N_IFS=$(snmpbulkwalk -v3 -l authPriv -u kv-sha256-aes -a SHA-256 -A "$AUTH_PASS" -x AES \
    -X "$PRIV_PASS" -On "127.0.0.1:$SNMPD_PORT" .1.3.6.1.2.1.2.2.1.1 2>/dev/null | grep -c INTEGER)
[ "$N_IFS" -ge 1 ] || kvl_fail "snmpd reports no interfaces"
kvl_log "snmpd reports $N_IFS interfaces"

# ------------------------------------------------------------------------- helpers -----------

# agent_head FILE: the top of an agent configuration with one credentials set per user, plus
# sets with wrong passwords.
agent_head() {
    {
        echo "id: v3-agent"
        echo "site: lab"
        echo "collector: 127.0.0.1:${COL_PORT:-9}"
        echo "log_level: debug"
        echo "flush_interval: 200ms"
        echo "reconnect_max: 2s"
        echo "insecure: true"
        echo "probes: {reflector: {enabled: false}}   # many agents on one host"
        echo "traps: {listen: off}                     # likewise"
        echo "credentials:"
        while read -r user level auth priv; do
            [ -n "$user" ] || continue
            echo "  - name: c-$user"
            echo "    user: $user"
            echo "    level: $level"
            [ "$auth" = - ] || printf '    auth_protocol: %s\n    auth_password: "%s"\n' "$auth" "$AUTH_PASS"
            [ "$priv" = - ] || printf '    priv_protocol: %s\n    priv_password: "%s"\n' "$priv" "$PRIV_PASS"
        done <<<"$USERS"
        cat <<EOF
  - name: bad-auth
    user: kv-sha256-aes
    auth_protocol: SHA-256
    auth_password: "$BAD_AUTH"
    priv_protocol: AES
    priv_password: "$PRIV_PASS"
  - name: bad-priv
    user: kv-sha256-aes
    auth_protocol: SHA-256
    auth_password: "$AUTH_PASS"
    priv_protocol: AES
    priv_password: "$BAD_PRIV"
  - name: no-such-user
    user: kv-nobody
    auth_protocol: SHA-256
    auth_password: "$AUTH_PASS"
    priv_protocol: AES
    priv_password: "$PRIV_PASS"
  - name: too-high
    user: kv-sha256-noPriv
    auth_protocol: SHA-256
    auth_password: "$AUTH_PASS"
    priv_protocol: AES
    priv_password: "$PRIV_PASS"
defaults:
  port: $SNMPD_PORT
  interval: ${INTERVAL:-10s}
  timeout: 1s
  retries: 1
EOF
    } >"$1"
}

# poll_once NAME CONFIG [SILENT]: runs --poll-once; output in $KVL_TMP/logs/NAME.out and .log.
# SILENT devices do not answer (0 by default): the run exits 1 then, 0 when all answer, and
# says "N devices, M answering" either way.
poll_once() {
    local name=$1 cfg=$2 silent=${3:-0} rc want n
    "$KVL_AGENT" -c "$cfg" --check-config >/dev/null 2>"$KVL_TMP/logs/$name.check" \
        || kvl_fail "$cfg does not pass --check-config: $(cat "$KVL_TMP/logs/$name.check")"
    timeout 60 "$KVL_AGENT" -c "$cfg" --poll-once >"$KVL_TMP/logs/$name.out" 2>"$KVL_TMP/logs/$name.log"
    rc=$?
    want=$([ "$silent" -gt 0 ] && echo 1 || echo 0)
    [ "$rc" -eq "$want" ] || kvl_fail "kaaval-agent --poll-once ($name) exited with $rc, not $want"
    n=$(grep -c '^  - {name: ' "$cfg")
    grep -q "^kaaval-agent: $n devices, $((n - silent)) answering$" "$KVL_TMP/logs/$name.log" ||
        kvl_fail "--poll-once ($name): no summary '$n devices, $((n - silent)) answering': $(tail -n 2 "$KVL_TMP/logs/$name.log")"
}

# dev_field OUT DEVICE FIELD: the value of FIELD on DEVICE's device line.
dev_field() {
    awk -v d="$2" -v f="$3" '$2 == d && $3 == "device" {
        for (i = 4; i <= NF; i++) if (index($i, f "=") == 1) { print substr($i, length(f) + 2); exit }
    }' "$1"
}

# no_secrets FILE...: no password, right or wrong, in these files.
no_secrets() {
    local f p
    for f in "$@"; do
        for p in "$AUTH_PASS" "$PRIV_PASS" "$BAD_AUTH" "$BAD_PRIV"; do
            if grep -qF -- "$p" "$f"; then
                kvl_fail "a password shows up in $f: $(grep -nF -- "$p" "$f" | head -n 3)"
            fi
        done
    done
}

# ------------------------------------------------------------------------- (a) every protocol -
CFG_A=$KVL_TMP/agent-a.yaml
agent_head "$CFG_A"
echo "devices:" >>"$CFG_A"
while read -r user level auth priv; do
    [ -n "$user" ] || continue
    echo "  - {name: $user, address: 127.0.0.1, credentials: c-$user}" >>"$CFG_A"
done <<<"$USERS"
poll_once a "$CFG_A"
OUT=$KVL_TMP/logs/a.out
n_users=0
while read -r user level auth priv; do
    [ -n "$user" ] || continue
    n_users=$((n_users + 1))
    what="$user ($level${auth:+ $auth}${priv:+ $priv})"
    [ "$(dev_field "$OUT" "$user" reachable)" = 1 ] \
        || kvl_fail "$what: not reachable: $(grep -F " $user " "$OUT" | head -n 3; grep -F "[snmp $user]" "$KVL_TMP/logs/a.log" | head -n 3)"
    [ "$(dev_field "$OUT" "$user" down_reason)" = 0 ] || kvl_fail "$what: down_reason is not 0"
    up=$(dev_field "$OUT" "$user" uptime_s)
    [ -n "$up" ] && [ "$up" -ge 0 ] || kvl_fail "$what: no uptime_s (system group)"
    [ "$(dev_field "$OUT" "$user" interfaces)" = "$N_IFS" ] \
        || kvl_fail "$what: interfaces=$(dev_field "$OUT" "$user" interfaces), snmpd has $N_IFS"
    grep -E "^[0-9.]+ $user if \"lo\" .*ifType=\"24\".* in_octets=[0-9]+ out_octets=[0-9]+" "$OUT" >/dev/null \
        || kvl_fail "$what: no counters for lo: $(grep " $user if " "$OUT" | head -n 2)"
done <<<"$USERS"
grep -q '^event ' "$OUT" && kvl_fail "unexpected events: $(grep '^event ' "$OUT")"
grep -E ' (WARN|ERROR) ' "$KVL_TMP/logs/a.log" && kvl_fail "warnings or errors in the log of (a)"
no_secrets "$OUT" "$KVL_TMP/logs/a.log"
kvl_log "(a) $n_users users: system group and lo over every level and protocol"

# ------------------------------------------------------------------------- (b) refused -------
CFG_B=$KVL_TMP/agent-b.yaml
agent_head "$CFG_B"
cat >>"$CFG_B" <<EOF
devices:
  - {name: wrong-auth, address: 127.0.0.1, credentials: bad-auth}
EOF
poll_once b1 "$CFG_B" 1
# A second process for the wrong privacy password: one USM user entry per engine and user.
CFG_B2=$KVL_TMP/agent-b2.yaml
agent_head "$CFG_B2"
cat >>"$CFG_B2" <<EOF
devices:
  - {name: wrong-priv, address: 127.0.0.1, credentials: bad-priv}
  - {name: unknown-user, address: 127.0.0.1, credentials: no-such-user}
  - {name: wrong-level, address: 127.0.0.1, credentials: too-high}
EOF
poll_once b2 "$CFG_B2" 3
cat "$KVL_TMP/logs/b1.out" "$KVL_TMP/logs/b2.out" >"$KVL_TMP/b.out"
cat "$KVL_TMP/logs/b1.log" "$KVL_TMP/logs/b2.log" >"$KVL_TMP/b.log"
for spec in "wrong-auth:usmStatsWrongDigests" \
    "wrong-priv:no answer to encrypted requests although the engine answers discovery" \
    "unknown-user:usmStatsUnknownUserNames" "wrong-level:usmStatsUnsupportedSecLevels"; do
    dev=${spec%%:*}
    why=${spec#*:}
    [ "$(dev_field "$KVL_TMP/b.out" "$dev" reachable)" = 0 ] || kvl_fail "$dev: reachable is not 0"
    [ "$(dev_field "$KVL_TMP/b.out" "$dev" down_reason)" = 2 ] \
        || kvl_fail "$dev: down_reason=$(dev_field "$KVL_TMP/b.out" "$dev" down_reason), expected 2"
    grep -E "^event [0-9.]+ $dev device_down down \(authentication failure\): .*$why" "$KVL_TMP/b.out" >/dev/null \
        || kvl_fail "$dev: no device_down event naming '$why': $(grep "^event" "$KVL_TMP/b.out")"
    grep -E "WARN  \[snmp $dev\] down \(authentication failure\): .*$why.*credentials '" "$KVL_TMP/b.log" >/dev/null \
        || kvl_fail "$dev: no log line naming '$why': $(grep "\[snmp $dev\]" "$KVL_TMP/b.log")"
    kvl_log "(b) $dev: $(grep -E "WARN  \[snmp $dev\]" "$KVL_TMP/b.log" | head -n 1 | cut -d' ' -f3-)"
done
no_secrets "$KVL_TMP/b.out" "$KVL_TMP/b.log"

# ------------------------------------------------------------------------- (c) no answer -----
CFG_C=$KVL_TMP/agent-c.yaml
agent_head "$CFG_C"
cat >>"$CFG_C" <<EOF
devices:
  - {name: v3-silent, address: 127.0.0.1, port: $DEAD_PORT, credentials: c-kv-sha256-aes, timeout: 2s}
  - {name: v3-live, address: 127.0.0.1, credentials: c-kv-sha512-aes256}
EOF
t0=$(date +%s.%N)
poll_once c "$CFG_C" 1
OUT=$KVL_TMP/logs/c.out
[ "$(dev_field "$OUT" v3-silent down_reason)" = 1 ] || kvl_fail "v3-silent: down_reason is not 1 (timeout)"
grep -E "WARN  \[snmp v3-silent\] not answering: timeout after 2 tries to 127.0.0.1:$DEAD_PORT" "$KVL_TMP/logs/c.log" >/dev/null \
    || kvl_fail "v3-silent: no timeout log line: $(cat "$KVL_TMP/logs/c.log" | grep v3-silent)"
[ "$(dev_field "$OUT" v3-live reachable)" = 1 ] || kvl_fail "v3-live: not reachable"
# The live device answered while the silent one's discovery was still waiting (4 s).
t_live=$(awk '$2 == "v3-live" && $3 == "device" { print $1 }' "$OUT")
t_silent=$(awk '$2 == "v3-silent" && $3 == "device" { print $1 }' "$OUT")
awk -v a="$t_live" -v b="$t_silent" -v s="$t0" 'BEGIN { exit !(a - s < 1.5 && b - a > 2.5) }' \
    || kvl_fail "the live device waited for the silent one (start $t0, live $t_live, silent $t_silent)"
no_secrets "$OUT" "$KVL_TMP/logs/c.log"
kvl_log "(c) a silent v3 device times out (down_reason 1) without holding up the live one"

# ------------------------------------------------------------------------- (d) archives ------
kvl_free_port tcp COL_PORT
DATA=$KVL_TMP/data
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$DATA" debug
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL_PID=$KVL_LAST_PID
INTERVAL=3s
CFG_D=$KVL_TMP/agent-d.yaml
agent_head "$CFG_D"
cat >>"$CFG_D" <<EOF
devices:
  - {name: v3-dev, address: 127.0.0.1, credentials: c-kv-sha256-aes}
EOF
kvl_start_agent agent "$CFG_D"
AGENT_PID=$KVL_LAST_PID
F=$DATA/lab/v3-dev.rrd
LO=$DATA/lab/v3-dev/lo.rrd
_archived() {
    local t r
    read -r t r < <(kvl_rrd_last "$F" reachable) || return 1
    [ "$r" = 1 ] || return 1
    read -r t r < <(kvl_rrd_last "$LO" in_octets) || return 1
    [ -n "$r" ]
}
kvl_wait_until 30 "v3-dev's archives" _archived
# Several more polls (GETs between discoveries), all of them reachable.
kvl_sleep_checking 10 "$AGENT_PID" "$COL_PID" "$SNMPD_PID"
read -r t r < <(kvl_rrd_last "$F" reachable) || kvl_fail "cannot read $F"
[ "$r" = 1 ] || kvl_fail "v3-dev: reachable $r in the archive"
read -r t r < <(kvl_rrd_last "$F" down_reason) || kvl_fail "no down_reason in $F"
[ "$r" = 0 ] || kvl_fail "v3-dev: down_reason $r in the archive"
awk -v t="$t" -v now="$(date +%s)" 'BEGIN { exit !(now - t < 6) }' || kvl_fail "v3-dev: last update $t is old"
n_disc=$(grep -c 'discovering the interfaces' "$KVL_TMP/logs/agent.log")
n_polls=$(grep -c 'poll done' "$KVL_TMP/logs/agent.log")
[ "$n_polls" -ge 3 ] || kvl_fail "expected GET polls between discoveries, got $n_polls (discoveries: $n_disc)"
kvl_stop "$AGENT_PID" || kvl_fail "agent did not stop"
grep -E ' (WARN|ERROR) ' "$KVL_TMP/logs/agent.log" | grep -v 'collector' \
    && kvl_fail "warnings in the agent's log"
no_secrets "$KVL_TMP/logs/agent.log" "$KVL_TMP/logs/agent.out" "$KVL_TMP/logs/collector.log"
kvl_log "(d) archives filled over $n_disc discovery and $n_polls GET polls"

kvl_pass "SNMPv3 over $n_users users and protocols; wrong credentials give down_reason 2 without showing a password; discovery never blocks"
