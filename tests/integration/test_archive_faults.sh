#!/bin/bash
# test_archive_faults.sh — an archive update that fails for a reason that can pass is
# retried from the journal, in order, and nothing acknowledged is lost.
#
# Runs as root in a mount namespace of its own (unshare -m, private propagation): the
# collector's data folder is a small tmpfs, its journal (<data_dir>/_journal) another, so
# that the archives' file system can fail while the journal keeps acknowledging; the alert
# book's, the notifiers' and the inventory's folders (<data_dir>/_alerts, /_notify,
# /_inventory) are tmpfs of their own too, as their open logs would keep the archives' one
# from being remounted read-only (EBUSY).
#
# An agent polls a device (an interface counting at known rates) every 2 s; collector and
# agent log at debug level (the agent names every bulk batch it queues, the collector every
# batch it applies).
#   (a) read-only: the data folder is remounted read-only for 15 s, then read-write. The
#       collector must say that applying paused (the file system's reason), and once that
#       it resumed.
#   (b) disk full: the data folder is filled with a file, and a second agent starts with a
#       device whose archives cannot be created (ENOSPC, which librrd reports with no message
#       at all). Applying pauses for it (not for the first agent, whose archives exist).
#       Meanwhile the collector is restarted: it stops at once, replays the waiting batches,
#       pauses again and accepts agents. After 15 s the file is removed: resumed once, the
#       new agent's first polls written first.
# Afterwards (the agent stopped, everything it queued applied): every bulk batch the agent
# queued was applied exactly once and in order, no update was lost or failed for good,
# none was refused as stale outside a retry, and every archive has a known value for every
# step from its first update to its last (the outages included).
#
#   bash tests/integration/test_archive_faults.sh [BUILD_DIR]
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: test_archive_faults needs root (mounts in its own namespace)"
    exit 77
fi
if [ -z "${KVL_FAULTS_NS:-}" ]; then
    command -v unshare >/dev/null 2>&1 || { echo "SKIP: no unshare"; exit 77; }
    KVL_FAULTS_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
RO_SECONDS=15
FULL_SECONDS=15
DATA=$KVL_TMP/data
ALOG=$KVL_TMP/logs/agent.log
CLOG=$KVL_TMP/logs/collector.log

# The mounts go before lib.sh's clean-up removes the folder (lazily: the collector may
# still hold files there); they vanish with the namespace in any case.
eval "_kvl_cleanup_lib() $(declare -f kvl_cleanup | tail -n +2)"
kvl_cleanup() {
    local rc=$?
    umount -l "$DATA/_journal" 2>/dev/null
    umount -l "$DATA/_alerts" 2>/dev/null
    umount -l "$DATA/_notify" 2>/dev/null
    umount -l "$DATA/_inventory" 2>/dev/null
    umount -l "$DATA" 2>/dev/null
    (exit "$rc")
    _kvl_cleanup_lib
}

mkdir -p "$DATA"
mount -t tmpfs -o size=64m,mode=0755 kvl-archives "$DATA" || kvl_fail "cannot mount a tmpfs on $DATA"
mkdir -p "$DATA/_journal"
mount -t tmpfs -o size=512m,mode=0755 kvl-journal "$DATA/_journal" \
    || kvl_fail "cannot mount a tmpfs on $DATA/_journal"
for d in _alerts _notify _inventory; do
    mkdir -p "$DATA/$d"
    mount -t tmpfs -o size=16m,mode=0755 "kvl-$d" "$DATA/$d" || kvl_fail "cannot mount a tmpfs on $DATA/$d"
done

# logged_times N PATTERN: the collector's log has at least N lines matching PATTERN.
logged_times() {
    [ "$(grep -c "$2" "$CLOG")" -ge "$1" ]
}

# remount_data OPTS: remount the archives' tmpfs; a file open for writing at that instant
# (an update in progress) makes `remount,ro` fail with EBUSY, so it is tried for 10 s.
remount_data() {
    local i
    for ((i = 0; i < 100; i++)); do
        mount -o "remount,$1" "$DATA" 2>/dev/null && return 0
        sleep 0.1
    done
    kvl_fail "cannot remount $DATA $1"
}

kvl_rate_pipeline faults-agent "$INTERVAL" 125000 50000 debug
t_first=$T_FIRST
F0=$F
F1=$DATA/lab/ratedev.rrd
kvl_wait_until 20 "the archive $F1" test -f "$F1"

# ---------------------------------------------------------------- (a) read-only ----------
remount_data ro
kvl_log "data folder read-only for ${RO_SECONDS}s"
kvl_wait_until 15 "the collector to pause applying (read-only)" \
    grep -q 'applying paused .*Read-only file system' "$CLOG"
kvl_sleep_checking "$RO_SECONDS" "$COL" "$AGENT" "$SIM"
remount_data rw
kvl_log "data folder writable again"
kvl_wait_until 60 "the collector to resume applying" grep -q 'applying resumed' "$CLOG"
grep -o 'applying paused .*' "$CLOG" | head -n 1 | sed 's/^/    collector: /' >&2
grep -o 'applying resumed.*' "$CLOG" | head -n 1 | sed 's/^/    collector: /' >&2

# ---------------------------------------------------------------- (b) disk full ----------
# The first agent's own statistics (sent every minute) have their archive before the disk
# fills: then every archive it writes to exists, and it must not be held back.
kvl_wait_until 90 "the first agent's statistics archive" test -f "$DATA/lab/_agent/faults-agent.rrd"
dd if=/dev/zero of="$DATA/fill" bs=1M 2>/dev/null # ends with ENOSPC, by design
avail=$(df --output=avail -k "$DATA" | tail -n 1 | tr -d ' ')
kvl_log "data folder full ($avail KiB left); a second agent starts with a new device"
kvl_agent_config "$KVL_TMP/agent2.yaml" faults-agent2 lab "$COL_PORT" "${INTERVAL}s" debug
kvl_agent_device "$KVL_TMP/agent2.yaml" newdev "$SNMP_PORT" ratedev
kvl_start_agent agent2 "$KVL_TMP/agent2.yaml"
AGENT2=$KVL_LAST_PID
ALOG2=$KVL_TMP/logs/agent2.log
kvl_wait_until 30 "the collector to pause applying for the new agent (disk full)" \
    grep -q '\[ingest faults-agent2\] applying paused' "$CLOG"
t_full=$(date +%s)
kvl_sleep_checking 4 "$COL" "$AGENT" "$AGENT2" "$SIM"
# The collector stops while the new agent's batch waits for its retry: at once, the batch
# left in the journal; the next one replays it, pauses again, and accepts agents meanwhile.
t0=$SECONDS
kvl_stop "$COL" TERM || kvl_fail "the collector did not stop"
[ $((SECONDS - t0)) -le 5 ] || kvl_fail "the collector took $((SECONDS - t0)) s to stop with an agent paused"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_wait_until 30 "the restarted collector to listen" logged_times 2 'listening for agents'
grep -q "replay: the batches of 1 agents wait until their archives can be written" "$CLOG" \
    || kvl_fail "the restarted collector did not replay the waiting batches with applying paused"
kvl_wait_until 30 "the restarted collector to pause applying for the new agent again" \
    logged_times 2 '\[ingest faults-agent2\] applying paused'
kvl_log "collector restarted with the disk still full: replayed, paused again, agents accepted"
kvl_sleep_checking $((FULL_SECONDS - (SECONDS - t0) - 4)) "$COL" "$AGENT" "$AGENT2" "$SIM"
[ -e "$DATA/lab/newdev" ] && [ -n "$(find "$DATA/lab/newdev" -name '*.rrd')" ] \
    && kvl_fail "an archive was created on a full disk"
# the first agent's archives exist: it went on meanwhile
kvl_rrd_updated_since "$F0" $((t_full + FULL_SECONDS - 3 * INTERVAL)) \
    || kvl_fail "the first agent was held back by the second one's archives"
rm -f "$DATA/fill"
kvl_log "space freed"
kvl_wait_until 60 "the collector to resume applying for the new agent" \
    grep -q '\[ingest faults-agent2\] applying resumed' "$CLOG"
grep -o 'applying paused .*' "$CLOG" | sed -n 3p | sed 's/^/    collector: /' >&2
grep -o 'applying resumed.*' "$CLOG" | sed -n 2p | sed 's/^/    collector: /' >&2
F2=$DATA/lab/newdev/eth0.rrd
kvl_wait_until 30 "the new device's archive" test -f "$F2"
kvl_sleep_checking 6 "$COL" "$AGENT" "$AGENT2" "$SIM"

# ---------------------------------------------------------------- the verdict ------------
# applied_last AGENT_LOG ID: the collector applied the last bulk batch the agent queued.
applied_last() {
    local last
    last=$(kvl_last_queued "$1")
    [ -n "$last" ] && grep -q "\[ingest $2\] applied batch $last lane 0:" "$CLOG"
}
kvl_stop "$AGENT2" TERM || kvl_fail "the second agent did not stop"
kvl_stop "$AGENT" TERM || kvl_fail "the agent did not stop"
kvl_wait_until 30 "the collector to apply the first agent's last batch" applied_last "$ALOG" faults-agent
kvl_wait_until 30 "the collector to apply the second agent's last batch" applied_last "$ALOG2" faults-agent2

# check_batches AGENT_LOG ID: every bulk batch the agent queued applied once, in order.
check_batches() {
    local q=$KVL_TMP/queued-$2 a=$KVL_TMP/applied-$2 nq
    sed -n 's/.*batch \([0-9]*\) lane 0 queued.*/\1/p' "$1" | sort -n -u >"$q"
    sed -n "s/.*\[ingest $2\] applied batch \([0-9]*\) lane 0:.*/\1/p" "$CLOG" >"$a"
    nq=$(wc -l <"$q")
    [ "$nq" -gt 10 ] || kvl_fail "$2: only $nq batches queued: the agent did not stream"
    sort -n "$a" | uniq -d >"$KVL_TMP/twice"
    [ -s "$KVL_TMP/twice" ] && kvl_fail "$2: batches applied twice: $(head -n 5 "$KVL_TMP/twice" | tr '\n' ' ')"
    sort -n -c "$a" 2>"$KVL_TMP/order" || kvl_fail "$2: batches applied out of order: $(cat "$KVL_TMP/order")"
    sort -n "$a" | comm -23 "$q" - >"$KVL_TMP/missing"
    [ -s "$KVL_TMP/missing" ] \
        && kvl_fail "$2: $(wc -l <"$KVL_TMP/missing") queued batches never applied: $(head -n 5 "$KVL_TMP/missing" | tr '\n' ' ')"
    kvl_log "$2: $nq bulk batches queued, each applied once, in order"
}
check_batches "$ALOG" faults-agent
check_batches "$ALOG2" faults-agent2
# ('lost' as in data lost: not the start-up line counting agents lost from the network)
for bad in 'failed for good' 'cannot read it back' 'older than their archive' 'lost'; do
    hits=$(grep "$bad" "$CLOG" | grep -v "agents' state: [0-9]* lost (agent_back")
    [ -z "$hits" ] || kvl_fail "the collector logged '$bad': $(head -n 3 <<<"$hits")"
done
np=$(grep -c 'applying paused' "$CLOG")
nr=$(grep -c 'applying resumed' "$CLOG")
# once per fault, and once more by the restarted collector (the first one stopped paused)
if [ "$np" -ne 3 ] || [ "$nr" -ne 2 ]; then
    kvl_fail "expected applying to pause 3 times and resume twice: paused $np, resumed $nr"
fi
grep -q '\[ingest faults-agent\] applying paused .*Read-only file system' "$CLOG" \
    || kvl_fail "the read-only pause is not the first agent's or lacks its reason"
grep -q '\[ingest faults-agent2\] applying paused .*lab/.*\(no space left\|KiB free\)' "$CLOG" \
    || kvl_fail "the disk-full pause does not name the archive and its file system: $(grep 'applying paused' "$CLOG" | tail -n 1)"

# Every archive: a known value at every step from its first known row to its last update.
check_rows() { # FILE DS FIRST LAST
    local step
    step=$(kvl_rrd_step "$1") || kvl_fail "cannot read $1"
    kvl_rrd_rows "$1" AVERAGE "$2" $(($3 - step)) $(($4 + step)) >"$KVL_TMP/rows" \
        || kvl_fail "rrdtool fetch failed on $1"
    awk -v step="$step" -v first="$3" -v last="$4" -v what="$1 $2" '
        $1 - step > first && $1 <= last {
            n++
            if ($2 == "nan") missing = missing " " $1
        }
        END {
            want = int((last - first) / step) - 1
            if (n < want) { printf "%s: %d rows, expected %d\n", what, n, want; exit 1 }
            if (missing != "") { printf "%s: unknown rows:%s\n", what, missing; exit 1 }
            printf "%s: all %d rows from %d to %d known\n", what, n, first, last
        }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "$(cat "$KVL_TMP/verdict")"
    kvl_log "$(cat "$KVL_TMP/verdict")"
}
t_last=$(kvl_rrd_last_time "$F0")
check_rows "$F0" in_octets "$t_first" "$t_last"
check_rows "$F1" reachable "$t_first" "$t_last"
f2_last=$(kvl_rrd_last_time "$F2")
[ -n "$f2_last" ] || kvl_fail "cannot read $F2"
f2_first=$(kvl_rrd_rows "$F2" AVERAGE in_octets $((f2_last - 3600)) "$f2_last" | awk '$2 != "nan" { print $1; exit }')
[ -n "$f2_first" ] || kvl_fail "$F2 has no known row"
[ "$f2_first" -le "$((t_full + INTERVAL))" ] \
    || kvl_fail "$F2 starts at $f2_first, after the disk filled ($t_full): the polls made meanwhile are missing"
check_rows "$F2" in_octets "$f2_first" "$f2_last"

kvl_pass "through ${RO_SECONDS}s read-only and ${FULL_SECONDS}s full (and a collector restart): every queued batch applied once and in order; paused and resumed once per fault, the other agent not held back; no unknown step"
