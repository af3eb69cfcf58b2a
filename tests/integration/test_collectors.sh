#!/bin/bash
# test_collectors.sh — more than one collector: dual-homing and failover.
#
# Two collectors, A and B, each with its own data folder. Two agents poll the same simulated
# device every 2 s:
#   - "dual" (mode: dual, collectors [A, B]) sends everything to both. B is killed for 10 s
#     and comes back: B catches up from its own spool position while A goes on. Both
#     archives must then hold a known row for every step from the first update to the
#     last, and neither collector may refuse an update as stale.
#   - "fo" (mode: failover, collectors [A, B]) sends to A only, while A works (B has no
#     archive of it). A is killed: fo fails over to B, which receives what A had not
#     acknowledged and everything after it.
#
#   bash tests/integration/test_collectors.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data-a" "$KVL_TMP/data-b"
kvl_make_rate_device "$KVL_TMP/rec/ratedev.snmprec" "eth0:125000:50000:1000"
kvl_free_port udp SNMP_PORT
kvl_free_port tcp PORT_A
kvl_free_port tcp PORT_B

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/col-a.yaml" "$PORT_A" "$KVL_TMP/data-a" debug
kvl_collector_config "$KVL_TMP/col-b.yaml" "$PORT_B" "$KVL_TMP/data-b" debug
kvl_start_collector col-a "$KVL_TMP/col-a.yaml"
COL_A=$KVL_LAST_PID
kvl_start_collector col-b "$KVL_TMP/col-b.yaml"
COL_B=$KVL_LAST_PID

for who in dual fo; do
    mode=dual
    [ "$who" = fo ] && mode=failover
    KVL_AGENT_COLLECTORS="collectors: [127.0.0.1:$PORT_A, 127.0.0.1:$PORT_B]
mode: $mode" kvl_agent_config "$KVL_TMP/$who.yaml" "$who-agent" "$who" 0 "${INTERVAL}s" debug
    kvl_agent_device "$KVL_TMP/$who.yaml" ratedev "$SNMP_PORT" ratedev
    kvl_start_agent "$who" "$KVL_TMP/$who.yaml"
    eval "AG_$who=\$KVL_LAST_PID"
done

DA=$KVL_TMP/data-a/dual/ratedev/eth0.rrd
DB=$KVL_TMP/data-b/dual/ratedev/eth0.rrd
FA=$KVL_TMP/data-a/fo/ratedev/eth0.rrd
FB=$KVL_TMP/data-b/fo/ratedev/eth0.rrd
for f in "$DA" "$DB" "$FA"; do
    kvl_wait_until 30 "the archive $f" test -f "$f"
done
t0=$(date +%s)
kvl_wait_until 30 "3 polls at A" kvl_rrd_updated_since "$DA" $((t0 + 2 * INTERVAL))
[ -e "$FB" ] && kvl_fail "failover: B got data while A works ($FB)"
kvl_log "dual archives at A and B, failover agent at A only"

# ---------------------------------------------------------------- dual: B away and back ----
kvl_stop "$COL_B" KILL || kvl_fail "could not kill B"
kvl_log "B killed for 10 s"
kvl_sleep_checking 10 "$AG_dual" "$AG_fo" "$COL_A"
t_up=$(date +%s)
kvl_start_collector col-b "$KVL_TMP/col-b.yaml"
COL_B=$KVL_LAST_PID
kvl_wait_until 60 "B to catch up" kvl_rrd_updated_since "$DB" $((t_up + 2 * INTERVAL))

_check_rows() { # FILE FROM TO WHAT
    local step
    step=$(kvl_rrd_step "$1")
    kvl_rrd_rows "$1" AVERAGE in_octets $(($2 - step)) $(($3 + step)) >"$KVL_TMP/rows" \
        || kvl_fail "rrdtool fetch failed on $1"
    awk -v step="$step" -v first="$2" -v last="$3" -v what="$4" '
        $1 - step > first && $1 <= last { n++; if ($2 == "nan") missing = missing " " $1 }
        END {
            want = int((last - first) / step) - 1
            if (n < want) { printf "%s: %d rows, expected %d\n", what, n, want; exit 1 }
            if (missing != "") { printf "%s: unknown rows:%s\n", what, missing; exit 1 }
            printf "%s: all %d rows from %d to %d known\n", what, n, first, last
        }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "$(cat "$KVL_TMP/verdict")"
    kvl_log "$(cat "$KVL_TMP/verdict")"
}
first=$(rrdtool first "$(_kvl_snap "$DB")" 2>/dev/null)
t_first_b=$(kvl_rrd_rows "$DB" AVERAGE in_octets "$first" "$t_up" | awk '$2 != "nan" { print $1; exit }')
t_last=$(kvl_rrd_last_time "$DB")
_check_rows "$DB" "$t_first_b" "$t_last" "dual: B after its outage"
_check_rows "$DA" "$t_first_b" "$t_last" "dual: A"
grep -q 'connected to collector.*[1-9][0-9]* batches to send' "$KVL_TMP/logs/dual.log" \
    || kvl_fail "dual: the agent did not report a backlog for B"

# ---------------------------------------------------------------- failover: A away ---------
t_kill=$(date +%s)
kvl_stop "$COL_A" KILL || kvl_fail "could not kill A"
kvl_log "A killed: the failover agent must move to B"
kvl_wait_until 30 "the failover agent's archive at B" test -f "$FB"
kvl_wait_until 40 "B to receive the failover agent's polls" kvl_rrd_updated_since "$FB" $((t_kill + 5 * INTERVAL))
grep -q 'failing over to collector 127.0.0.1:'"$PORT_B" "$KVL_TMP/logs/fo.log" \
    || kvl_fail "the failover agent did not log its failover"
t_last=$(kvl_rrd_last_time "$FB")
t_first_fb=$(kvl_rrd_rows "$FB" AVERAGE in_octets $((t_kill - 60)) "$t_last" | awk '$2 != "nan" { print $1; exit }')
[ -n "$t_first_fb" ] && [ $((t_last - t_first_fb)) -ge $((3 * INTERVAL)) ] \
    || kvl_fail "failover: B holds too little of the failover agent ($t_first_fb..$t_last)"
_check_rows "$FB" "$t_first_fb" "$t_last" "failover: B"
for f in "$KVL_TMP"/logs/col-*.log; do
    grep -q 'older than their archive' "$f" && kvl_fail "$f: updates refused as stale"
done
kvl_pass "dual: both collectors complete after B's outage; failover: A down, B receives"
