#!/bin/bash
# test_spool_restart.sh — the agent's spool survives the agent, and its bound drops what it
# says it dropped.
#
# Part 1, restart: an agent polls a device with counters at known rates every 2 s. The
# collector is killed; while it is away the agent is stopped and started again (its batches
# wait in the spool on disk, not in memory). The restart is a slow one: the agent is stopped
# just after a poll and started RESTART_PAUSE s later, so an agent that waited an interval
# for its first poll would leave a gap longer than the archives' heartbeat (two steps); the
# restarted agent must poll at once. Then the collector comes back: the restarted
# agent replays the first run's batches (their series ids come from the registry kept in the
# spool) and then its own. The archive must hold a known row for every step from the first
# update to the last, the rows of the outage within 1 % of the true rate on average, and
# the collector must have refused no update as older than the archive's last one.
#
# Part 2, bound: with the collector away again, the agent runs with a tiny bound (its
# configuration's spool.lane_max_bytes) so that its spool fills and drops the oldest batches. The
# collector comes back and takes the rest. Every bulk batch the agent queued (its debug log)
# and the collector never wrote (its debug log) must be one the agent counted as dropped:
# the missing count equals the dropped count the agent reported, and they are the oldest.
#
#   bash tests/integration/test_spool_restart.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
IN_RATE=125000
OUT_RATE=50000
TEST_BOUND=1024 # each record then has a segment of its own: drops come one batch at a time
RESTART_PAUSE=2 # seconds the agent is away between its stop and its start

# log_time LINE: the seconds (with fractions) of an agent log line's timestamp.
log_time() { date -d "${1%% *}" +%s.%N; }
# nth_run_line N REGEX: the first line matching REGEX in the agent's Nth run (its log, ALOG,
# holds every run); last_run_line likewise the last; polled_in_run N: run N made a poll.
nth_run_line() { awk -v n="$1" -v re="$2" '/kaaval-agent .* starting/ { r++ } r == n && $0 ~ re { print; exit }' "$ALOG"; }
last_run_line() { awk -v n="$1" -v re="$2" '/kaaval-agent .* starting/ { r++ } r == n && $0 ~ re { l = $0 } END { print l }' "$ALOG"; }
POLLED='(poll|discovery) done'
polled_in_run() { [ -n "$(nth_run_line "$1" "$POLLED")" ]; }

kvl_rate_pipeline spool-agent "$INTERVAL" "$IN_RATE" "$OUT_RATE" debug
t_first=$T_FIRST
ALOG=$KVL_TMP/logs/agent.log
CLOG=$KVL_TMP/logs/collector.log

# ---------------------------------------------------------------- part 1: restart --------
t_kill=$(date +%s)
kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
kvl_log "collector killed; the agent spools for 8 s, then restarts (away ${RESTART_PAUSE} s)"
kvl_sleep_checking 8 "$AGENT" "$SIM"
# Stop it right after a poll (one comes every INTERVAL; 5 s at most).
polls=$(grep -c 'poll done' "$ALOG")
for ((i = 0; i < 100; i++)); do
    [ "$(grep -c 'poll done' "$ALOG")" -gt "$polls" ] && break
    sleep 0.05
done
[ "$(grep -c 'poll done' "$ALOG")" -gt "$polls" ] || kvl_fail "the agent made no poll in 5 s"
kvl_stop "$AGENT" TERM || kvl_fail "the agent did not stop"
waiting1=$(sed -n 's/.*stopping: spool holds [0-9]* bytes, \([0-9]*\) batches waiting.*/\1/p' "$ALOG" | tail -n 1)
[ -n "$waiting1" ] && [ "$waiting1" -gt 0 ] || kvl_fail "the stopping agent reported no spooled batches ('$waiting1')"
sleep "$RESTART_PAUSE"
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
# The restarted agent's first poll comes at once (within a tenth of the interval, plus the
# poll itself), not an interval later.
kvl_wait_until 10 "the restarted agent's first poll" polled_in_run 2
last1=$(last_run_line 1 "$POLLED")
first2=$(nth_run_line 2 "$POLLED")
start2=$(nth_run_line 2 'kaaval-agent .* starting')
[ -n "$last1" ] && [ -n "$start2" ] || kvl_fail "cannot find the two runs' polls in $ALOG"
gap=$(printf '%.2f' "$(echo "$(log_time "$first2") - $(log_time "$last1")" | bc)")
late=$(printf '%.2f' "$(echo "$(log_time "$first2") - $(log_time "$start2")" | bc)")
kvl_log "polls ${gap} s apart across the restart; the first ${late} s after the start"
[ "$(echo "$late < $INTERVAL / 2" | bc)" -eq 1 ] \
    || kvl_fail "the restarted agent polled ${late} s after its start, not at once"
kvl_wait_until 10 "the restarted agent to open its spool" \
    grep -q 'spool opened: [1-9][0-9]* bulk' "$ALOG"
kvl_log "$(grep -o 'spool opened: .*' "$ALOG" | tail -n 1) (first run stopped with $waiting1 waiting)"
grep -q 'series definitions and [0-9]* families kept from earlier runs' "$ALOG" \
    || kvl_fail "the restarted agent did not load its series registry"
kvl_sleep_checking 6 "$AGENT" "$SIM"

kvl_collector_replay
t_up=$T_UP t_last=$T_LAST step=$STEP
grep -E 'connected to collector' "$ALOG" | tail -n 1 | sed 's/^/    agent: /' >&2
if grep -q 'older than their archive' "$CLOG"; then
    kvl_fail "the collector refused updates as stale: $(grep 'older than their archive' "$CLOG" | head -n 3)"
fi
for ds_rate in "in_octets:$IN_RATE" "out_octets:$OUT_RATE"; do
    ds=${ds_rate%%:*}
    rate=${ds_rate#*:}
    kvl_rrd_rows "$F" AVERAGE "$ds" $((t_first - step)) $((t_last + step)) >"$KVL_TMP/rows" \
        || kvl_fail "rrdtool fetch failed on $F"
    awk -v step="$step" -v rate="$rate" -v first="$t_first" -v last="$t_last" \
        -v kill="$t_kill" -v up="$t_up" -v what="$F $ds" -v mtol="$KVL_MEAN_TOL" '
        $1 - step > first && $1 <= last {
            n++
            if ($2 == "nan") { missing = missing " " $1; next }
            if ($1 > kill && $1 < up) { outage++; osum += $2 }
        }
        END {
            want = int((last - first) / step) - 1
            if (n < want) { printf "%s: %d rows, expected %d\n", what, n, want; exit 1 }
            if (missing != "") { printf "%s: unknown rows (polls lost):%s\n", what, missing; exit 1 }
            if (outage < int((up - kill) / step) - 2) { printf "%s: the outage (%d..%d) is not covered (%d rows)\n", what, kill, up, outage; exit 1 }
            if (osum / outage < rate * (1 - mtol) || osum / outage > rate * (1 + mtol)) {
                printf "%s: the outage rows average %.1f, not within %g %% of %d\n", what, osum / outage, mtol * 100, rate; exit 1 }
            printf "%s: all %d rows from %d to %d known (%d during the outage and the agent restart, mean %.1f), true rate %d\n",
                   what, n, first, last, outage, osum / outage, rate
        }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "$(cat "$KVL_TMP/verdict")"
    kvl_log "$(cat "$KVL_TMP/verdict")"
done

# ---------------------------------------------------------------- part 2: the bound -------
kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
kvl_stop "$AGENT" TERM || kvl_fail "the agent did not stop"
mv "$ALOG" "$KVL_TMP/logs/agent-part1.txt"
sed -i "s|^spool: {\(.*\)}\$|spool: {\1, lane_max_bytes: $TEST_BOUND}|" "$KVL_TMP/agent.yaml"
grep -q "lane_max_bytes: $TEST_BOUND}" "$KVL_TMP/agent.yaml" || kvl_fail "could not set the spool's bound in $KVL_TMP/agent.yaml"
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
kvl_log "agent restarted with a $TEST_BOUND-byte bound per lane, the collector away until it drops"
kvl_wait_until 60 "the spool to reach its bound" grep -q 'full (.*dropped the oldest' "$ALOG"
kvl_sleep_checking 6 "$AGENT" "$SIM"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_wait_until 60 "the collector to catch up" kvl_applied_last "$ALOG" "$CLOG"
kvl_stop_agent_drained "$AGENT" "$ALOG" "$CLOG"
dropped=$(sed -n 's/.*stopping: spool holds .*, \([0-9]*\) dropped by its bound.*/\1/p' "$ALOG" | tail -n 1)
sed -n 's/.*batch \([0-9]*\) lane 0 queued.*/\1/p' "$ALOG" | sort -n >"$KVL_TMP/queued"
sed -n 's/.*applied batch \([0-9]*\) lane 0:.*/\1/p' "$CLOG" | sort -n -u >"$KVL_TMP/written"
comm -23 "$KVL_TMP/queued" "$KVL_TMP/written" >"$KVL_TMP/missing"
nq=$(wc -l <"$KVL_TMP/queued")
nm=$(wc -l <"$KVL_TMP/missing")
[ -n "$dropped" ] || kvl_fail "the agent reported no drop count when stopping"
kvl_log "part 2: $nq bulk batches queued, $nm never written, the agent reported $dropped dropped"
[ "$dropped" -gt 0 ] || kvl_fail "nothing was dropped: the bound was not reached"
[ "$nm" -eq "$dropped" ] || kvl_fail "$nm batches missing at the collector, but the agent reported $dropped dropped"
# The dropped ones are the oldest: every missing number is below every written one of this run.
max_missing=$(tail -n 1 "$KVL_TMP/missing")
first_kept=$(comm -12 "$KVL_TMP/queued" "$KVL_TMP/written" | head -n 1)
[ "$max_missing" -lt "$first_kept" ] || kvl_fail "a newer batch ($max_missing) was dropped while an older one ($first_kept) was kept"
grep -E 'stopping: spool holds' "$ALOG" | tail -n 1 | sed 's/^/    agent: /' >&2

kvl_pass "spool replayed after an agent restart with no gap; $dropped batches dropped by the bound, exactly the $nm missing, the oldest"
