#!/bin/bash
# test_kill9.sh — proves that the collector's journal keeps every sample exactly once when
# the collector is killed with SIGKILL at random moments while agents stream to it.
#
# Ten agents each poll their own simulated device (one interface, counters at known and
# different rates) every 2 s and stream to one collector (log_level debug: it logs every
# batch it applies to the archives). The collector is killed with SIGKILL $KILLS times, at
# random moments 4 to 12 s apart, and started again after 0 to 3 s on the same port and
# data folder (seed in the log; KVL_SEED=n repeats a run). Each kill comes 1 to 4 s into
# a reader's lock on a random half of the archives (as `rrdtool graph` takes), so that
# batches are journaled and acknowledged but not yet in the archives when it comes, and
# the next start has to replay them. After the agents have caught up:
#   - every archive has a known row, within KVL_STEP_TOL of the true rate, for every step
#     from its first complete step to its last update (nothing lost, nothing invented);
#   - per agent, the batches the collectors applied (their debug lines, over all runs) are
#     every sequence number from the first to the last (nothing lost, even a single poll
#     that RRD's heartbeat would bridge), and no batch had updates written twice: a batch
#     applied again is a replay whose updates the archive refused as already there
#     (applied just before a kill, not yet recorded as applied). There are at most as many
#     of those as agents per kill; replaying what the journal had recorded as applied
#     would be far more;
#   - no collector logged an ERROR, and no update outside a replay was refused as stale
#     (a duplicate written twice);
#   - the agents never dropped anything and are still running.
#
#   bash tests/integration/test_kill9.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

AGENTS=10
INTERVAL=2
KILLS=${KVL_KILLS:-4}
SEED=${KVL_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
kvl_log "seed $SEED (KVL_SEED=$SEED repeats these moments), $KILLS kills"

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
for ((i = 1; i <= AGENTS; i++)); do
    kvl_make_rate_device "$KVL_TMP/rec/dev$i.snmprec" "eth0:$((100000 + 10000 * i)):$((50000 + 5000 * i)):1000"
done
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data" debug
RUN=1
kvl_start_collector "collector-$RUN" "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
PIDS=()
for ((i = 1; i <= AGENTS; i++)); do
    kvl_agent_config "$KVL_TMP/agent$i.yaml" "agent$i" lab "$COL_PORT" "${INTERVAL}s" debug
    kvl_agent_device "$KVL_TMP/agent$i.yaml" "dev$i" "$SNMP_PORT" "dev$i"
    kvl_start_agent "agent$i" "$KVL_TMP/agent$i.yaml"
    PIDS+=("$KVL_LAST_PID")
done

_all_files() {
    local i
    for ((i = 1; i <= AGENTS; i++)); do
        [ -f "$KVL_TMP/data/lab/dev$i/eth0.rrd" ] || return 1
    done
}
kvl_wait_until 40 "every agent's archive" _all_files
declare -A FIRST
for ((i = 1; i <= AGENTS; i++)); do
    FIRST[$i]=$(kvl_rrd_last_time "$KVL_TMP/data/lab/dev$i/eth0.rrd")
done

# _lock_archives SECONDS FILE...: holds a shared fcntl lock on the files, as `rrdtool graph`
# or `fetch` does while it reads, so the collector's updates of them wait (its store retries
# for up to 10 s) while acknowledgements go on: batches pile up journaled and acknowledged
# but not yet in the archives, which is what a kill must not lose.
_lock_archives() {
    "$KVL_PY" -c '
import fcntl, sys, time
files = [open(p, "rb") for p in sys.argv[3:]]
for f in files:
    fcntl.lockf(f, fcntl.LOCK_SH)
time.sleep(float(sys.argv[2]))
' kvl-archive-locker "$@" &
    kvl_track $! kvl-archive-locker
}

ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

for ((k = 1; k <= KILLS; k++)); do
    up_ms=$((4000 + RANDOM % 8000))
    down_ms=$((RANDOM % 3000))
    lock_ms=$((1000 + RANDOM % 3000)) # the kill comes this long into a lock on half the archives
    locked=()
    for ((i = 1; i <= AGENTS; i++)); do
        [ $((RANDOM % 2)) -eq 0 ] && locked+=("$KVL_TMP/data/lab/dev$i/eth0.rrd")
    done
    sleep "$(ms $((up_ms - lock_ms)))"
    [ ${#locked[@]} -gt 0 ] && _lock_archives "$(ms $((lock_ms + 1500)))" "${locked[@]}"
    sleep "$(ms "$lock_ms")"
    kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
    kvl_log "kill $k: collector killed (SIGKILL) after ${up_ms} ms, ${lock_ms} ms into a reader's lock on ${#locked[@]} archives; restarting in ${down_ms} ms"
    sleep "$(ms "$down_ms")"
    for p in "${PIDS[@]}" "$SIM"; do
        kvl_is_ours "$p" "$(kvl_prog_of "$p")" || kvl_fail "$(kvl_prog_of "$p") (pid $p) died"
    done
    RUN=$((RUN + 1))
    kvl_start_collector "collector-$RUN" "$KVL_TMP/collector.yaml"
    COL=$KVL_LAST_PID
done
t_up=$(date +%s)

_caught_up() {
    local i t
    for ((i = 1; i <= AGENTS; i++)); do
        t=$(kvl_rrd_last_time "$KVL_TMP/data/lab/dev$i/eth0.rrd")
        [ -n "$t" ] && [ "$t" -ge $((t_up + 3 * INTERVAL)) ] || return 1
    done
}
kvl_wait_until 60 "every agent to catch up after the last restart" _caught_up
for p in "${PIDS[@]}"; do
    kvl_is_ours "$p" kaaval-agent || kvl_fail "agent pid $p died"
done

# 1. The archives: every step known and right.
for ((i = 1; i <= AGENTS; i++)); do
    F=$KVL_TMP/data/lab/dev$i/eth0.rrd
    first=${FIRST[$i]}
    last=$(kvl_rrd_last_time "$F")
    step=$(kvl_rrd_step "$F")
    kvl_rrd_rows "$F" AVERAGE in_octets $((first - step)) $((last + step)) >"$KVL_TMP/rows" \
        || kvl_fail "rrdtool fetch failed on $F"
    awk -v step="$step" -v rate=$((100000 + 10000 * i)) -v first="$first" -v last="$last" \
        -v what="$F" -v stol="$KVL_STEP_TOL" '
        $1 - step > first && $1 <= last {
            n++
            if ($2 == "nan") { missing = missing " " $1; next }
            if ($2 < rate * (1 - stol) || $2 > rate * (1 + stol)) off = off sprintf(" %d:%.0f", $1, $2)
        }
        END {
            want = int((last - first) / step) - 1
            if (n < want) { printf "%s: %d rows, expected %d\n", what, n, want; exit 1 }
            if (missing != "") { printf "%s: unknown rows:%s\n", what, missing; exit 1 }
            if (off != "") { printf "%s: rows off the rate %d B/s:%s\n", what, rate, off; exit 1 }
            printf "%d rows known and right", n
        }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "$(cat "$KVL_TMP/verdict")"
    echo "dev$i: $(cat "$KVL_TMP/verdict")" >>"$KVL_TMP/archives"
done
kvl_log "archives: $(tr '\n' ';' <"$KVL_TMP/archives")"

# 2. The collectors' logs: errors, stale updates outside replays.
cat "$KVL_TMP"/logs/collector-*.log >"$KVL_TMP/collectors.log"
if grep -E ' ERROR ' "$KVL_TMP/collectors.log" >"$KVL_TMP/errors"; then
    kvl_fail "a collector logged errors: $(head -n 5 "$KVL_TMP/errors")"
fi
if grep -E 'refused by the archive' "$KVL_TMP/collectors.log" >"$KVL_TMP/stale"; then
    kvl_fail "updates refused as stale outside a replay (a batch written twice): $(head -n 3 "$KVL_TMP/stale")"
fi
# (the outbox's status lines say "N dropped by its bound": only a non-zero N counts)
if grep -iE 'dropp' "$KVL_TMP"/logs/agent*.log | grep -vE ' 0 dropped by its bound' >"$KVL_TMP/drops"; then
    kvl_fail "an agent dropped batches: $(head -n 3 "$KVL_TMP/drops")"
fi

# 3. Per agent, the batches applied over all the collector's runs: each once, none missing.
"$KVL_PY" - "$KVL_TMP/collectors.log" "$AGENTS" "$KILLS" "$KVL_TMP/logs" >"$KVL_TMP/verdict" 2>&1 <<'EOF' || kvl_fail "$(cat "$KVL_TMP/verdict")"
import os, re, sys
log, agents, kills, logdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# What each agent queued (its debug lines): sequence numbers are not consecutive (they
# follow the clock), so these are the batches that must each be applied once.
queued = {}
qpat = re.compile(r'batch (\d+) lane 0 queued')
for i in range(1, agents + 1):
    path = os.path.join(logdir, 'agent%d.log' % i)
    queued['agent%d' % i] = sorted({int(m.group(1)) for m in qpat.finditer(open(path).read())})
pat = re.compile(r'\[ingest (\S+)\] applied batch (\d+) lane (\d+): (\d+) updates, (\d+) stale( \(replay\))?')
seen = {}      # (agent, seq) -> updates written for it
again = 0      # replays of batches already in the archives, every update refused
replayed = 0
for line in open(log):
    m = pat.search(line)
    if not m:
        continue
    agent, seq, lane, rows, stale, replay = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), bool(m.group(6))
    replayed += replay
    key = (agent, seq)
    if stale > 0 and not replay:
        sys.exit("%s batch %d: %d updates refused as stale outside a replay" % (agent, seq, stale))
    if rows > 0 and seen.get(key, 0) > 0:
        sys.exit("%s batch %d written into the archives twice" % (agent, seq))
    if stale > 0:
        again += 1  # applied (maybe partly, maybe unlogged) just before a kill
    seen[key] = seen.get(key, 0) + rows
per = {}
for agent, seq in seen:
    per.setdefault(agent, []).append(seq)
if len(per) != agents:
    sys.exit("batches applied for %d agents, expected %d" % (len(per), agents))
total = 0
for agent, seqs in sorted(per.items()):
    seqs.sort()
    have = set(seqs)
    holes = [s for s in queued.get(agent, []) if seqs[0] <= s <= seqs[-1] and s not in have]
    if not queued.get(agent):
        sys.exit("%s: no 'batch N lane 0 queued' lines in its log" % agent)
    if holes:
        sys.exit("%s: batches %s never applied (between %d and %d)" % (agent, holes[:10], seqs[0], seqs[-1]))
    total += len(seqs)
if again > agents * kills:
    sys.exit("%d batches replayed that the archives already had: the journal's applied "
             "positions are not honoured (at most %d expected)" % (again, agents * kills))
print("%d batches of %d agents each applied exactly once; %d replayed after kills, %d of them "
      "already in the archives (applied just before a kill)" % (total, agents, replayed, again))
EOF
kvl_log "$(cat "$KVL_TMP/verdict")"
replays=$(grep -c 'replay done' "$KVL_TMP/collectors.log" || true)
kvl_log "journal replays: $replays of $KILLS restarts had batches to apply"
[ "$replays" -ge 1 ] || kvl_fail "no restart found batches to replay: the test did not exercise the journal"


kvl_pass "collector killed $KILLS times (seed $SEED) while $AGENTS agents streamed: every sample in the archives exactly once"
