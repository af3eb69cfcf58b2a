#!/bin/bash
# test_rrdcached_remote.sh — archives that live only on rrdcached's host
# (`rrdcached_files: remote` in collector.yaml), against a real rrdcached on 127.0.0.1.
#
# rrdcached listens on TCP (-l 127.0.0.1:PORT) with its own base folder (-b BASE -B -R: writes
# only under BASE, folders made there), no journal, and a write interval of an hour (-w 3600):
# it writes a file when the collector's checkpoint (`rrdcached_checkpoint`, 8 s here) or a
# read asks it to, and a kill loses all it holds. The collector's data_dir is another folder,
# and the collector runs from a third (its working folder), so that a file made by the
# collector itself (a fall back to local files, relative paths or not) shows. Two agents poll
# their own simulated device (one interface, counters at known rates) every 2 s. Then:
#   0. --check-config says what remote mode gives up; it refuses remote mode with a unix
#      socket, and a value other than local or remote, naming the line;
#   1. the archives appear under rrdcached's base folder, created by rrdcached (its log says
#      so), and no .rrd file anywhere else in the test's folder;
#   2. /api/v1/series reads them (through rrdcached: newest row about one poll old) and a
#      graph is drawn (librrd's graph with --daemon);
#   3. rrdcached is killed with SIGKILL while batches flow, 3.5 to 6 s after a checkpoint (it
#      dies holding updates the collector was told it took), and started again after 1.5 to
#      3 s; the collector sends them again. Then the collector and rrdcached are killed
#      together and both started again: the collector's journal replays what rrdcached had
#      not written;
#   4. after the agents caught up and everything stopped (rrdcached writes what it holds),
#      every archive has a known row within KVL_STEP_TOL of the true rate for every step from
#      its first complete step to its last update: no acknowledged sample lost.
#
#   bash tests/integration/test_rrdcached_remote.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
command -v rrdcached >/dev/null 2>&1 || kvl_fail "'rrdcached' not found: run packaging/install-deps.sh"

AGENTS=2
INTERVAL=2
CHECKPOINT=8
SEED=${KVL_SEED:-$(($(date +%s) % 100000))}
RANDOM=$SEED
kvl_log "seed $SEED (KVL_SEED=$SEED repeats these moments)"

T=$KVL_TMP
mkdir -p "$T/rec" "$T/data" "$T/base" "$T/cwd"
BASE=$(cd "$T/base" && pwd -P) # rrdcached's -b: no symbolic link on the way
DATA=$(cd "$T/data" && pwd -P)
KVL_BUILD=$(cd "$KVL_BUILD" && pwd) # the test runs from $T/cwd: the binaries by full path
KVL_AGENT=$KVL_BUILD/kaaval-agent
KVL_COLLECTOR=$KVL_BUILD/kaaval-collector
cd "$T/cwd" || kvl_fail "cannot enter $T/cwd"
for ((i = 1; i <= AGENTS; i++)); do
    kvl_make_rate_device "$T/rec/dev$i.snmprec" "eth0:$((100000 + 10000 * i)):$((50000 + 5000 * i)):1000"
done
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
kvl_free_port tcp RRDC_PORT

# start_rrdcached: in the foreground (-g), so that its pid is the one we signal.
RRDC=""
_rrdc_listening() { ss -Hltn "sport = :$RRDC_PORT" 2>/dev/null | grep -q .; }
start_rrdcached() {
    rm -f "$T/rrdcached.pid"
    rrdcached -g -l "127.0.0.1:$RRDC_PORT" -b "$BASE" -B -R -w 3600 -z 1 -f 7200 -F -V LOG_INFO \
        -p "$T/rrdcached.pid" -o "$T/logs/rrdcached.log" >>"$T/logs/rrdcached.out" 2>&1 &
    RRDC=$!
    kvl_track "$RRDC" rrdcached
    kvl_wait_until 10 "rrdcached to listen on $RRDC_PORT" _rrdc_listening
    kvl_log "rrdcached pid $RRDC"
}

# ---------------------------------------------------------------- 0: the configuration ---
kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$DATA" debug
cat >>"$T/collector.yaml" <<EOF
rrdcached: 127.0.0.1:$RRDC_PORT
rrdcached_files: remote
rrdcached_checkpoint: ${CHECKPOINT}s
EOF
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
"$KVL_COLLECTOR" -c "$T/collector.yaml" --check-config >"$T/logs/check.log" 2>&1 ||
    kvl_fail "--check-config refused: $(cat "$T/logs/check.log")"
grep -q "rrdcached_files: remote.*not available" "$T/logs/check.log" ||
    kvl_fail "--check-config does not say what remote mode gives up: $(cat "$T/logs/check.log")"
sed "s|^rrdcached: .*|rrdcached: unix:$T/none.sock|" "$T/collector.yaml" >"$T/bad1.yaml"
sed "s|^rrdcached_files: .*|rrdcached_files: elsewhere|" "$T/collector.yaml" >"$T/bad2.yaml"
for bad in bad1 bad2; do
    line=$(grep -n '^rrdcached_files:' "$T/$bad.yaml" | cut -d: -f1)
    if "$KVL_COLLECTOR" -c "$T/$bad.yaml" --check-config >"$T/logs/$bad.log" 2>&1; then
        kvl_fail "--check-config took $bad.yaml: $(cat "$T/$bad.yaml")"
    fi
    grep -q "$bad.yaml:$line:" "$T/logs/$bad.log" ||
        kvl_fail "$bad.yaml refused without naming line $line: $(cat "$T/logs/$bad.log")"
done

start_rrdcached
kvl_add_token "$T/collector.yaml" wall viewer
TOKEN=$KVL_TOKEN
kvl_start_snmpsim "$T/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID
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

# ---------------------------------------------------------------- 1: where the files are -
_all_files() {
    local i
    for ((i = 1; i <= AGENTS; i++)); do
        [ -n "$(kvl_rrd_last_time "$BASE/lab/dev$i/eth0.rrd")" ] || return 1
    done
}
kvl_wait_until 30 "every agent's archive under rrdcached's folder" _all_files
declare -A FIRST
for ((i = 1; i <= AGENTS; i++)); do
    FIRST[$i]=$(($(kvl_rrd_last_time "$BASE/lab/dev$i/eth0.rrd") + 2))
    grep -q "rrdcreate request for $BASE/lab/dev$i/eth0.rrd" "$T/logs/rrdcached.log" ||
        kvl_fail "rrdcached did not create dev$i's archive (its log: $(tail -n 3 "$T/logs/rrdcached.log"))"
done
_local_rrds() { find "$T" -name '*.rrd' -not -path "$BASE/*" -not -name .snapshot.rrd -print; }
local_files=$(_local_rrds)
[ -z "$local_files" ] || kvl_fail "archives made outside rrdcached's folder: $local_files"

# ---------------------------------------------------------------- 2: reads, a graph ------
served=0
for ((try = 0; try < 10 && served == 0; try++)); do
    now=$(date +%s)
    api "/api/v1/series?agent=agent1&device=dev1&instance=eth0&metric=in_octets&from=$((now - 60))&to=$now&step=2" >"$T/series.json"
    newest=$("$KVL_PY" -c '
import json, sys
pts = [p for p in json.load(open(sys.argv[1]))["points"] if p[1] is not None]
print(int(pts[-1][0]) if pts else 0)' "$T/series.json" 2>/dev/null) ||
        kvl_fail "/api/v1/series answered: $(head -c 400 "$T/series.json")"
    kvl_log "series: newest known row $newest, now $now"
    if [ "$newest" -ge $((now - 3 * INTERVAL)) ]; then
        served=1
    else
        sleep 1.3
    fi
done
[ "$served" -eq 1 ] || kvl_fail "the series read does not see the newest rows rrdcached holds"
code=$(curl -s --noproxy '*' -m 20 -o "$T/graph.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$HTTP_PORT/api/v1/graph?kind=traffic&agent=agent1&device=dev1&interface=eth0&from=-1h&format=json")
if [ "$code" != 200 ] || ! grep -q '"image": *"data:image/png;base64,' "$T/graph.json"; then
    kvl_fail "graph of a remote archive: HTTP $code: $(head -c 300 "$T/graph.json")"
fi

# ---------------------------------------------------------------- 3: kill -9 rrdcached ---
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
    # both at once (their hosts' crash): the collector's journal still has what rrdcached had
    # not written, and replays it; what the files have is refused as stale (INFO's last
    # update), not sent to be refused at rrdcached's write with the file's later updates
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
sys.exit(0 if pts and int(pts[-1][0]) >= int(sys.argv[1]) else 1)' $((t_up + 2 * INTERVAL)) || return 1
    done
}
kvl_wait_until 30 "every agent to catch up after rrdcached's restarts" _caught_up
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
    F=$BASE/lab/dev$i/eth0.rrd
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
            if (last < t_up) { printf "%s: last update %d, before the restart (%d)\n", what, last, t_up; exit 1 }
            if (n < want) { printf "%s: %d rows, expected %d\n", what, n, want; exit 1 }
            if (missing != "") { printf "%s: unknown rows (lost with rrdcached):%s\n", what, missing; exit 1 }
            if (off != "") { printf "%s: rows off the rate %d B/s:%s\n", what, rate, off; exit 1 }
            printf "%d rows known and right", n
        }' "$T/rows" >"$T/verdict" 2>&1 || kvl_fail "$(cat "$T/verdict")"
    kvl_log "dev$i: $(cat "$T/verdict")"
done
local_files=$(_local_rrds)
[ -z "$local_files" ] || kvl_fail "archives made outside rrdcached's folder: $local_files"

metric() { awk -v m="$1" '$1 == m { print $2 }' "$T/metrics.txt"; }
resent=$(metric kaaval_rrdcached_resent_total)
kvl_log "metrics: connects $(metric kaaval_rrdcached_connects_total), resent $resent"
[ "${resent%.*}" -ge 1 ] 2>/dev/null || kvl_fail "kaaval_rrdcached_resent_total is '$resent': nothing was sent again"
if grep ' ERROR ' "$T/logs/collector.log" | grep -v 'cannot be reached' >"$T/errors"; then
    kvl_fail "the collector logged errors: $(head -n 5 "$T/errors")"
fi

kvl_pass "archives on rrdcached's host only: created there, read and drawn through it, SIGKILLs of rrdcached (alone, and with the collector) lost no sample"
