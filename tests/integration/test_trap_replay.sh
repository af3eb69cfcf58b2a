#!/bin/bash
# test_trap_replay.sh — a replayed old SNMPv3 trap is refused, also after an agent restart.
#
# A trap's sender is the authoritative SNMPv3 engine: the agent keeps the latest engineBoots
# and engineTime of each sender listed in traps.engine_ids, refuses a trap with lower boots
# or a time more than 150 s older (RFC 3414 3.2 step 7b), and keeps them in traps.state
# beside its spool, so a restart does not reopen the door. With net-snmp's snmptrap, whose
# -Z sets the boots and time a trap carries (what a captured and replayed trap would carry):
#   - boots 5, time 1000 taken; boots 5, time 2000 taken; boots 5, time 1000 again refused;
#   - the agent restarted (SIGTERM; then once more with SIGKILL): time 1000 refused, boots 4
#     refused, boots 5 time 2010 taken, boots 6 time 10 (the sender rebooted) taken;
#   - after the SIGKILL restart, boots 5 refused (the reboot's boots were kept).
# The agent's debug log shows every trap taken (its marker varbind) and every refusal.
#
#   bash tests/integration/test_trap_replay.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

command -v snmptrap >/dev/null 2>&1 || kvl_fail "'snmptrap' not found (Debian package snmp)"

V3_USER=kvtrap
V3_AUTH=trap-auth-pass-1
V3_PRIV=trap-priv-pass-1
SENDER_ENGINE=0x8000000001020304aabbccdd
kvl_free_port udp TRAP
kvl_free_port udp NO_DEVICE # the device is never polled successfully: only its address counts
kvl_free_port tcp NO_COLLECTOR # nobody listens: the agent spools, which is all this needs

KVL_AGENT_TRAPS="traps:
  listen: 127.0.0.1:$TRAP
  credentials: [trap-v3]
  engine_ids: [$SENDER_ENGINE]
  max_per_second: 50" \
    kvl_agent_config "$KVL_TMP/agent.yaml" replay-agent lab "$NO_COLLECTOR" 60s debug
kvl_agent_device "$KVL_TMP/agent.yaml" trapdev "$NO_DEVICE" public
cat >>"$KVL_TMP/agent.yaml" <<EOF
credentials:
  - name: trap-v3
    user: $V3_USER
    level: authPriv
    auth_protocol: SHA
    auth_password: "$V3_AUTH"
    priv_protocol: AES
    priv_password: "$V3_PRIV"
EOF
STATE=$KVL_TMP/agent.spool/traps.state
ALOG=$KVL_TMP/logs/agent.log

start_agent() {
    local before=0
    [ -f "$ALOG" ] && before=$(wc -l <"$ALOG")
    kvl_start_agent agent "$KVL_TMP/agent.yaml"
    AGENT=$KVL_LAST_PID
    kvl_wait_until 15 "the agent's trap receiver" \
        bash -c "tail -n +$((before + 1)) '$ALOG' | grep -q 'receiving traps and informs on udp 127.0.0.1:$TRAP'"
}

# send BOOTS TIME MARKER: a v3 coldStart as the sender at that boots and time.
send() {
    snmptrap -v3 -l authPriv -a SHA -A "$V3_AUTH" -x AES -X "$V3_PRIV" -u "$V3_USER" \
        -e "$SENDER_ENGINE" -Z "$1,$2" "127.0.0.1:$TRAP" '' .1.3.6.1.6.3.1.1.5.1 \
        .1.3.6.1.2.1.1.6.0 s "$3" || kvl_fail "snmptrap ($3) failed"
}
taken_n() { grep -c "\[trap trapdev\] coldStart from 127.0.0.1 (v3): .*=$1\$" "$ALOG"; }
refused_n() { grep -c "\[trap trapdev\] SNMPv3 message from 127.0.0.1 refused: user '$V3_USER' from engine ID $SENDER_ENGINE: not in the time window" "$ALOG"; }
taken() { [ "$(taken_n "$1")" -ge 1 ]; }
refused_at_least() { [ "$(refused_n)" -ge "$1" ]; }
# expect_taken MARKER: that trap became an event.
expect_taken() { kvl_wait_until 15 "the trap '$1' to be taken" taken "$1"; }
# expect_refused N MARKER: the Nth refusal came, and that trap never became an event.
expect_refused() {
    kvl_wait_until 15 "refusal number $1 ('$2')" refused_at_least "$1"
    [ "$(taken_n "$2")" -eq 0 ] || kvl_fail "the replayed trap '$2' was taken: $(grep "=$2" "$ALOG")"
}

start_agent
send 5 1000 first
expect_taken first
send 5 2000 second
expect_taken second
send 5 1000 replay-before-restart
expect_refused 1 replay-before-restart
kvl_wait_until 10 "$STATE to keep boots 5, time 2000" grep -qx "2000 5 $SENDER_ENGINE" "$STATE"
kvl_log "kept: $(sed -n 2p "$STATE")"

# --- restarted: the kept boots and time still refuse the replay -------------------------------
kvl_stop "$AGENT" TERM || kvl_fail "the agent did not stop"
start_agent
send 5 1000 replay-after-restart
expect_refused 2 replay-after-restart
send 4 9000 older-boots
expect_refused 3 older-boots
send 5 2010 newer
expect_taken newer
send 6 10 rebooted
expect_taken rebooted
kvl_wait_until 10 "$STATE to keep boots 6" grep -qx "10 6 $SENDER_ENGINE" "$STATE"

# --- killed (no orderly stop): what was written is what counts --------------------------------
kvl_stop "$AGENT" KILL || kvl_fail "the agent did not die"
start_agent
send 5 3000 before-reboot
expect_refused 4 before-reboot
send 6 20 after-reboot
expect_taken after-reboot
[ "$(refused_n)" -eq 4 ] || kvl_fail "$(refused_n) refusals, expected 4"
kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent died"
kvl_pass "replayed v3 traps (older time, lower boots) refused before and after restarts (TERM, KILL); newer ones taken"
