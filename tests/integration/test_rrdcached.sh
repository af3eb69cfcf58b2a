#!/bin/bash
# test_rrdcached.sh — the collector writing its archives through a real rrdcached
# (`rrdcached:` in collector.yaml), and losing nothing when rrdcached is killed.
#
# rrdcached starts after the collector (its first batches wait in the journal until it is
# there), with its own socket, base folder and pid file, no journal and a write
# interval of an hour (-w 3600): it writes a file only when the collector's checkpoint
# (`rrdcached_checkpoint`, 8 s here) or a read asks it to (FLUSH), and a kill loses all it
# holds. Three agents poll their own simulated device (one interface, counters at known
# rates) every 2 s into the collector. Then:
#   0. while rrdcached is not there yet, the collector says so and writes nothing;
#   1. rows arrive in the archives, written by rrdcached (the collector created the files);
#   2. /api/v1/series (a read of the archive) sees rows newer than the file on disk had just
#      before: rrdcached read it for the collector, writing what it held of it first;
#   3. rrdcached is killed with SIGKILL while batches flow, 3.5 to 6 s after the last
#      checkpoint, so that it dies holding updates the collector was told it took, and
#      started again after 1.5 to 3 s (the collector meanwhile finds it unreachable and
#      retries, the agents' batches wait in its journal); then rrdcached and the collector
#      are killed together (a crash of their host) and both started again: the collector's
#      journal still holds the batches rrdcached had not written, and replays them;
#   4. after the agents caught up and rrdcached was stopped (it writes what it holds), every
#      archive has a known row, within KVL_STEP_TOL of the true rate, for every step from its
#      first complete step to its last update: no acknowledged sample lost (an update lost
#      with rrdcached would leave unknown rows: the gap exceeds the heartbeat of 2 steps);
#   5. /metrics counts the reconnections and the updates sent again; no ERROR but the
#      "cannot be reached" ones.
#
#   bash tests/integration/test_rrdcached.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
command -v rrdcached >/dev/null 2>&1 || kvl_fail "'rrdcached' not found: run packaging/install-deps.sh"

AGENTS=3
INTERVAL=2
CHECKPOINT=8
SEED=${KVL_SEED:-$(($(date +%s) % 100000))}
RANDOM=$SEED
kvl_log "seed $SEED (KVL_SEED=$SEED repeats these moments)"

T=$KVL_TMP
mkdir -p "$T/rec" "$T/data"
DATA=$(cd "$T/data" && pwd -P)
SOCK=$T/rrdcached.sock
for ((i = 1; i <= AGENTS; i++)); do
    kvl_make_rate_device "$T/rec/dev$i.snmprec" "eth0:$((100000 + 10000 * i)):$((50000 + 5000 * i)):1000"
done
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT

# start_rrdcached: in the foreground (-g), so that its pid is the one we signal.
RRDC=""
start_rrdcached() {
    rm -f "$SOCK" "$T/rrdcached.pid"
    rrdcached -g -l "unix:$SOCK" -b "$DATA" -B -w 3600 -z 1 -f 7200 -F \
        -p "$T/rrdcached.pid" -o "$T/logs/rrdcached.log" >>"$T/logs/rrdcached.out" 2>&1 &
    RRDC=$!
    kvl_track "$RRDC" rrdcached
    kvl_wait_until 10 "rrdcached's socket" test -S "$SOCK"
    kvl_log "rrdcached pid $RRDC"
}

kvl_start_snmpsim "$T/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID
kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$DATA" debug
cat >>"$T/collector.yaml" <<EOF
rrdcached: unix:$SOCK
rrdcached_checkpoint: ${CHECKPOINT}s
EOF
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
"$KVL_COLLECTOR" -c "$T/collector.yaml" --check-config >"$T/logs/check.log" 2>&1 ||
    kvl_fail "--check-config refused: $(cat "$T/logs/check.log")"
kvl_add_token "$T/collector.yaml" wall viewer
TOKEN=$KVL_TOKEN
kvl_start_http_collector collector "$T/collector.yaml" "$HTTP_PORT"
COL=$KVL_LAST_PID
PIDS=()
for ((i = 1; i <= AGENTS; i++)); do
    kvl_agent_config "$T/agent$i.yaml" "agent$i" lab "$COL_PORT" "${INTERVAL}s"
    kvl_agent_device "$T/agent$i.yaml" "dev$i" "$SNMP_PORT" "dev$i"
    kvl_start_agent "agent$i" "$T/agent$i.yaml"
    PIDS+=("$KVL_LAST_PID")
done
api() { curl -s --noproxy '*' -m 10 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP_PORT$1"; }

# ---------------------------------------------------------------- 0: rrdcached not there yet
# The collector starts without rrdcached: the agents' first batches wait in its journal
# (said once), and go in once rrdcached is there.
kvl_wait_until 20 "the collector to find rrdcached unreachable" \
    grep -q 'cannot be reached' "$T/logs/collector.log"
[ ! -e "$DATA/lab" ] || [ -z "$(find "$DATA/lab" -name '*.rrd' -print -quit)" ] ||
    kvl_fail "archives were made while rrdcached was not there"
start_rrdcached

# ---------------------------------------------------------------- 1: rows arrive ---------
_all_files() {
    local i
    for ((i = 1; i <= AGENTS; i++)); do
        [ -n "$(kvl_rrd_last_time "$DATA/lab/dev$i/eth0.rrd")" ] || return 1
    done
}
kvl_wait_until 40 "every agent's archive" _all_files
# The collector made the files with a last update one second before the first sample's
# whole second (store.c); the rows are checked from two seconds after it, where the first
# sample has come (in direct mode the tests read that first update from the file; here it
# is in rrdcached until a checkpoint).
declare -A FIRST
for ((i = 1; i <= AGENTS; i++)); do
    FIRST[$i]=$(($(kvl_rrd_last_time "$DATA/lab/dev$i/eth0.rrd") + 2))
done
grep -q 'writing through rrdcached' "$T/logs/collector.log" ||
    kvl_fail "the collector does not say it writes through rrdcached"

# ---------------------------------------------------------------- 2: reads flush first ---
# The file on disk lags by up to a checkpoint; the API's read flushes it first, so its newest
# known row is newer than the disk had just before and about one poll old.
F1=$DATA/lab/dev1/eth0.rrd
flushed=0
for ((try = 0; try < 10 && flushed == 0; try++)); do
    on_disk=$(kvl_rrd_last_time "$F1")
    now=$(date +%s)
    api "/api/v1/series?agent=agent1&device=dev1&instance=eth0&metric=in_octets&from=$((now - 60))&to=$now&step=2" >"$T/series.json"
    newest=$("$KVL_PY" -c '
import json, sys
pts = [p for p in json.load(open(sys.argv[1]))["points"] if p[1] is not None]
print(int(pts[-1][0]) if pts else 0)' "$T/series.json" 2>/dev/null) ||
        kvl_fail "/api/v1/series answered: $(head -c 400 "$T/series.json")"
    kvl_log "series: newest known row $newest, disk had $on_disk just before, now $now"
    if [ "$newest" -gt "$on_disk" ] && [ "$newest" -ge $((now - 3 * INTERVAL)) ]; then
        flushed=1
    else
        sleep 1.3
    fi
done
[ "$flushed" -eq 1 ] || kvl_fail "the series read does not see rrdcached's newest rows (no flush before the read)"
# a graph is drawn through rrdcached too (librrd's graph with --daemon)
code=$(curl -s --noproxy '*' -m 20 -o "$T/graph.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$HTTP_PORT/api/v1/graph?kind=traffic&agent=agent1&device=dev1&interface=eth0&from=-1h&format=json")
if [ "$code" != 200 ] || ! grep -q '"image": *"data:image/png;base64,' "$T/graph.json"; then
    kvl_fail "graph through rrdcached: HTTP $code: $(head -c 300 "$T/graph.json")"
fi

# ---------------------------------------------------------------- 3: kill -9 rrdcached ---
# Each kill comes 3.5 to 6 s after a checkpoint (the collector's debug line), so that
# rrdcached holds two polls or more of every agent (one lost poll RRD would bridge: the
# heartbeat is two steps) and is not writing (the next checkpoint is 8 s after the last).
_checkpoints() { grep -c 'checkpoint [0-9]* done' "$T/logs/collector.log"; }
_checkpoint_after() { [ "$(_checkpoints)" -gt "$1" ]; }
ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
for k in 1 2; do
    seen=$(_checkpoints)
    kvl_wait_until $((CHECKPOINT * 3)) "a checkpoint" _checkpoint_after "$seen"
    hold_ms=$((3500 + RANDOM % 2500))
    down_ms=$((1500 + RANDOM % 1500))
    sleep "$(ms "$hold_ms")"
    if [ "$k" -eq 1 ]; then
        kvl_stop "$RRDC" KILL || kvl_fail "could not kill rrdcached"
        kvl_log "kill $k: rrdcached killed (SIGKILL) ${hold_ms} ms after a checkpoint; back in ${down_ms} ms"
        sleep "$(ms "$down_ms")"
        start_rrdcached
        continue
    fi
    api /metrics >"$T/metrics.txt" # this collector's counters, checked after the rows
    # both at once (the host's crash): the journal has the batches rrdcached had not written
    kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
    kvl_stop "$RRDC" KILL || kvl_fail "could not kill rrdcached"
    kvl_log "kill $k: collector and rrdcached killed (SIGKILL) ${hold_ms} ms after a checkpoint; back in ${down_ms} ms"
    sleep "$(ms "$down_ms")"
    start_rrdcached
    kvl_start_http_collector collector "$T/collector.yaml" "$HTTP_PORT"
    COL=$KVL_LAST_PID
done
t_up=$(date +%s)

_caught_up() {
    local i
    for ((i = 1; i <= AGENTS; i++)); do
        api "/api/v1/series?agent=agent$i&device=dev$i&instance=eth0&metric=in_octets&from=$((t_up - 10))&to=$(date +%s)&step=2" |
            "$KVL_PY" -c '
import json, sys
pts = [p for p in json.load(sys.stdin)["points"] if p[1] is not None]
sys.exit(0 if pts and int(pts[-1][0]) >= int(sys.argv[1]) else 1)' $((t_up + 3 * INTERVAL)) || return 1
    done
}
kvl_wait_until 45 "every agent to catch up after rrdcached's restarts" _caught_up
for p in "${PIDS[@]}" "$COL" "$SIM"; do
    kvl_is_ours "$p" "$(kvl_prog_of "$p")" || kvl_fail "$(kvl_prog_of "$p") (pid $p) died"
done

# ---------------------------------------------------------------- 4: every row there -----
for p in "${PIDS[@]}"; do
    kvl_stop "$p" TERM || kvl_fail "an agent did not stop"
done
kvl_stop "$COL" TERM || kvl_fail "the collector did not stop"
kvl_stop "$RRDC" TERM || kvl_fail "rrdcached did not stop" # -F: it writes what it holds
for ((i = 1; i <= AGENTS; i++)); do
    F=$DATA/lab/dev$i/eth0.rrd
    first=${FIRST[$i]}
    last=$(kvl_rrd_last_time "$F")
    step=$(kvl_rrd_step "$F")
    kvl_rrd_rows "$F" AVERAGE in_octets $((first - step)) $((last + step)) >"$T/rows" ||
        kvl_fail "rrdtool fetch failed on $F"
    awk -v step="$step" -v rate=$((100000 + 10000 * i)) -v first="$first" -v last="$last" \
        -v what="$F" -v stol="$KVL_STEP_TOL" -v t_up="$t_up" '
        $1 - step > first && $1 <= last {
            n++
            if ($2 == "nan") { missing = missing " " $1; next }
            if ($2 < rate * (1 - stol) || $2 > rate * (1 + stol)) off = off sprintf(" %d:%.0f", $1, $2)
        }
        END {
            want = int((last - first) / step) - 1
            if (last < t_up) { printf "%s: last update %d, before the restarts ended (%d)\n", what, last, t_up; exit 1 }
            if (n < want) { printf "%s: %d rows, expected %d\n", what, n, want; exit 1 }
            if (missing != "") { printf "%s: unknown rows (lost with rrdcached):%s\n", what, missing; exit 1 }
            if (off != "") { printf "%s: rows off the rate %d B/s:%s\n", what, rate, off; exit 1 }
            printf "%d rows known and right", n
        }' "$T/rows" >"$T/verdict" 2>&1 || kvl_fail "$(cat "$T/verdict")"
    kvl_log "dev$i: $(cat "$T/verdict")"
done

# ---------------------------------------------------------------- 5: metrics -------------
metric() { awk -v m="$1" '$1 == m { print $2 }' "$T/metrics.txt"; }
connects=$(metric kaaval_rrdcached_connects_total)
resent=$(metric kaaval_rrdcached_resent_total)
failures=$(metric kaaval_rrdcached_failures_total)
kvl_log "metrics: connects $connects, resent $resent, failures $failures, checkpoints $(metric kaaval_rrdcached_checkpoints_total)"
[ "${connects%.*}" -ge 2 ] 2>/dev/null || kvl_fail "kaaval_rrdcached_connects_total is '$connects', expected 2 or more"
[ "${resent%.*}" -ge 1 ] 2>/dev/null || kvl_fail "kaaval_rrdcached_resent_total is '$resent': nothing was sent again"

if grep ' ERROR ' "$T/logs/collector.log" | grep -v 'cannot be reached' >"$T/errors"; then
    kvl_fail "the collector logged errors: $(head -n 5 "$T/errors")"
fi

kvl_pass "through rrdcached: rows arrive, reads flush first, SIGKILLs of rrdcached (alone, and with the collector) lost no sample"
