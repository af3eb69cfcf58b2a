#!/bin/bash
# test_collector_restart.sh — proves that nothing is lost when the collector dies.
#
# An agent polls a simulated device with counters at known rates every 2 s. The collector is
# killed with SIGKILL (no chance to flush or say goodbye) and kept away for 7 poll intervals,
# then started again on the same port and data folder. The agent must keep polling
# meanwhile, keep the unacknowledged batches in memory, reconnect and replay them. After it
# has caught up, the archive must have a known row for every step from the first complete
# step to the last update (a poll lost for two intervals or more would leave an unknown
# row: the heartbeat is 2 steps, so a single lost poll is bridged by RRD and cannot be seen
# here), the rows of the outage must average within 1 % of the true rate and each be within
# 5 % (replayed, not invented; see KVL_STEP_TOL in lib.sh), and every poll the agent logged
# (log_level debug: "poll done") must fall on a known row.
#
#   bash tests/integration/test_collector_restart.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
IN_RATE=125000
OUT_RATE=50000
DOWN_S=14 # how long the collector stays dead (7 intervals)

kvl_rate_pipeline restart-agent "$INTERVAL" "$IN_RATE" "$OUT_RATE"
t_first=$T_FIRST

t_kill=$(date +%s)
kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
before=$(kvl_rrd_last_time "$F")
kvl_log "collector killed (SIGKILL) at $t_kill; last update then $before; waiting ${DOWN_S}s"
kvl_sleep_checking "$DOWN_S" "$AGENT" "$SIM"
during=$(kvl_rrd_last_time "$F")
[ "$during" = "$before" ] || kvl_fail "the archive changed while the collector was dead ($before -> $during)"

kvl_collector_replay
t_up=$T_UP t_last=$T_LAST step=$STEP
kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent died"

grep -q 'connected to collector.*[1-9][0-9]* batches to send' "$KVL_TMP/logs/agent.log" \
    || kvl_log "note: the agent did not log a non-zero backlog on reconnect"
grep -E 'connected to collector' "$KVL_TMP/logs/agent.log" | tail -n 1 | sed 's/^/    agent: /' >&2

for ds_rate in "in_octets:$IN_RATE" "out_octets:$OUT_RATE"; do
    ds=${ds_rate%%:*}
    rate=${ds_rate#*:}
    kvl_rrd_rows "$F" AVERAGE "$ds" $((t_first - step)) $((t_last + step)) >"$KVL_TMP/rows" \
        || kvl_fail "rrdtool fetch failed on $F"
    awk -v step="$step" -v rate="$rate" -v first="$t_first" -v last="$t_last" \
        -v kill="$t_kill" -v up="$t_up" -v what="$F $ds" -v mtol="$KVL_MEAN_TOL" -v stol="$KVL_STEP_TOL" '
        $1 - step > first && $1 <= last {
            n++
            if ($2 == "nan") { missing = missing " " $1; next }
            if ($1 > kill && $1 < up) { outage++; osum += $2 }
            sum += $2; k++
            if ($2 < rate * (1 - stol) || $2 > rate * (1 + stol)) off = off sprintf(" %d:%.0f", $1, $2)
        }
        END {
            want = int((last - first) / step) - 1
            if (n < want) { printf "%s: %d rows, expected %d\n", what, n, want; exit 1 }
            if (outage < int((up - kill) / step) - 1) { printf "%s: the outage (%d..%d) is not covered\n", what, kill, up; exit 1 }
            if (missing != "") { printf "%s: unknown rows (polls lost):%s\n", what, missing; exit 1 }
            if (off != "") { printf "%s: rows off the rate %d B/s by more than %g %%:%s\n", what, rate, stol * 100, off; exit 1 }
            if (osum / outage < rate * (1 - mtol) || osum / outage > rate * (1 + mtol)) {
                printf "%s: the outage rows average %.1f, not within %g %% of %d\n", what, osum / outage, mtol * 100, rate; exit 1 }
            if (sum / k < rate * (1 - mtol) || sum / k > rate * (1 + mtol)) {
                printf "%s: the rows average %.1f, not within %g %% of %d\n", what, sum / k, mtol * 100, rate; exit 1 }
            printf "%s: all %d rows from %d to %d known (%d during the outage, mean %.1f), true rate %d\n",
                   what, n, first, last, outage, osum / outage, rate
        }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "$(cat "$KVL_TMP/verdict")"
    kvl_log "$(cat "$KVL_TMP/verdict")"
done

# Every poll the agent made (its debug log) lies on a known row of the archive.
kvl_rrd_rows "$F" AVERAGE in_octets $((t_first - step)) $((t_last + step)) >"$KVL_TMP/rows"
grep -E '\[snmp ratedev\] poll done' "$KVL_TMP/logs/agent.log" >"$KVL_TMP/polls" || true
npolls=$(wc -l <"$KVL_TMP/polls")
if [ "$npolls" -eq 0 ]; then
    kvl_log "note: the agent logs no 'poll done' lines; relying on the row count above"
else
    "$KVL_PY" - "$KVL_TMP/polls" "$KVL_TMP/rows" "$t_first" "$t_last" "$step" "$t_kill" "$t_up" \
        "$INTERVAL" >"$KVL_TMP/verdict" 2>&1 <<'EOF' || kvl_fail "$(cat "$KVL_TMP/verdict")"
import calendar, math, sys, time
polls_f, rows_f = sys.argv[1:3]
first, last, step, kill, up, interval = (float(x) for x in sys.argv[3:9])
rows = {}
for line in open(rows_f):
    t, v = line.split()
    rows[int(t)] = v
times = []
for line in open(polls_f):
    stamp = line.split()[0]  # 2025-01-01T00:00:00.000Z
    t = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float(stamp[19:-1] or 0)
    times.append(t)
inside = [t for t in times if first + step <= t <= last]
lost = [t for t in inside if rows.get(int(math.ceil(t / step) * step), "nan") == "nan"]
during = [t for t in times if kill < t < up]
if lost:
    sys.exit("polls at %s fall on unknown rows" % ", ".join("%.3f" % t for t in lost))
if len(during) < (up - kill) / interval - 1:
    sys.exit("the agent made only %d polls in the %.0f s outage" % (len(during), up - kill))
print("%d polls logged between the first and the last update, all on known rows; %d during the outage"
      % (len(inside), len(during)))
EOF
    kvl_log "$(cat "$KVL_TMP/verdict")"
fi

kvl_pass "collector killed for ${DOWN_S}s: no poll lost, replayed rates right"
