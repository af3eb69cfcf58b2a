#!/bin/bash
# test_hostile_defs.sh — a peer claiming much and sending little cannot make the collector
# hold memory for it, poison an archive or keep a real agent from its archives.
#
# A real agent streams a device's counters (every 2 s). Then kvl-hostile, a fake agent over
# plain TCP, sends in turn: a definition naming series id 16,777,216 (and a batch using
# it), the same from two more agent ids, a definition naming id 2^32-1, a 4 MB frame repeating a
# 64-metric family definition, a batch with a group a million years ahead (beside one of
# now), and a definition whose device name has 300 bytes. Then:
#   - the collector's peak resident memory (VmHWM) stays within RSS_BOUND_MB (64 MiB; more
#     in sanitizer builds) of its resident memory before the attack (the old tables indexed
#     by id took ~500 MB for the first frame alone; decoding the 4 MB frame itself takes a
#     few tens of MB);
#   - the sparse ids are accepted (acknowledged), the far-future group is refused and
#     counted in the log while the group of now is acknowledged, the 300-byte name is
#     refused with its reason, sent to the peer and logged by the collector;
#   - the collector still runs and the real agent's archive has no unknown row from its
#     first update to several polls after the attack.
#
#   bash tests/integration/test_hostile_defs.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

# 64 MiB: decoding the 4 MB frame takes ~35 MiB for a moment; the sanitizers keep freed
# memory in quarantine and add shadow memory, so their builds get more (measured under ASan:
# +86 MiB), still far below what tables sized by the ids took (+500 MiB before any shadow).
# WAIT_MS: how long each attack waits for the collector's answers; a sanitizer's collector
# may still be decoding the previous attack's 4 MB frame (TSan: seconds), so it waits longer.
RSS_BOUND_MB=64
WAIT_MS=1500
if grep -q '^KVL_TSAN:BOOL=ON' "$KVL_BUILD/CMakeCache.txt" 2>/dev/null; then
    RSS_BOUND_MB=384
    WAIT_MS=8000
elif grep -q '^KVL_ASAN:BOOL=ON' "$KVL_BUILD/CMakeCache.txt" 2>/dev/null; then
    RSS_BOUND_MB=192
    WAIT_MS=4000
fi
HOSTILE=$KVL_BUILD/tests/integration/kvl-hostile
[ -x "$HOSTILE" ] || kvl_fail "$HOSTILE not built"
INTERVAL=2

kvl_rate_pipeline real-agent "$INTERVAL" 125000 50000
t_first=$T_FIRST
CLOG=$KVL_TMP/logs/collector.log

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

rss0=$(status_kb "$COL" VmRSS)
[ -n "$rss0" ] || kvl_fail "cannot read the collector's VmRSS"
kvl_log "collector resident before the attack: $((rss0 / 1024)) MiB (peak so far $(($(status_kb "$COL" VmHWM) / 1024)) MiB)"

# hostile AGENT ATTACK: runs kvl-hostile, its answers in $KVL_TMP/logs/hostile-AGENT.out
hostile() {
    local out=$KVL_TMP/logs/hostile-$1.out
    timeout 30 "$HOSTILE" --port "$COL_PORT" --agent "$1" --attack "$2" --wait-ms "$WAIT_MS" >"$out" 2>&1 \
        || kvl_fail "kvl-hostile $2 as $1 failed: $(cat "$out")"
    kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died under attack $2"
    kvl_log "attack $2 as $1: $(tr '\n' ';' <"$out") collector peak $(($(status_kb "$COL" VmHWM) / 1024)) MiB"
}

hostile fake-1 bigid
grep -q '^ack 0 1$' "$KVL_TMP/logs/hostile-fake-1.out" \
    || kvl_fail "the batch under series id 16777216 was not acknowledged"
hostile fake-2 bigid
hostile fake-3 bigid
hostile fake-4 maxid
grep -q '^welcome$' "$KVL_TMP/logs/hostile-fake-4.out" && ! grep -q '^refused\|^closed' "$KVL_TMP/logs/hostile-fake-4.out" \
    || kvl_fail "the definition of series id 2^32-1 was not taken"
hostile fake-5 famrepeat
grep -q '^refused' "$KVL_TMP/logs/hostile-fake-5.out" \
    && kvl_fail "repeating one family definition was refused"
hostile fake-6 future
grep -q '^ack 0 1$' "$KVL_TMP/logs/hostile-fake-6.out" \
    || kvl_fail "the batch with a far-future group was not acknowledged (its group of now is good)"
kvl_wait_until 10 "the far-future samples refused in the collector's log" \
    grep -q 'fake-6\].*1 samples refused, timestamped [0-9]* s ahead' "$CLOG"
hostile fake-7 longname
grep -q '^refused: device name of 300 bytes is too long' "$KVL_TMP/logs/hostile-fake-7.out" \
    || kvl_fail "the 300-byte device name was not refused with its reason"
grep -q '^ack' "$KVL_TMP/logs/hostile-fake-7.out" \
    && kvl_fail "a batch under a 300-byte device name was acknowledged"
grep -q 'fake-7\] closing connection .*device name of 300 bytes' "$CLOG" \
    || kvl_fail "the collector did not log why it refused the 300-byte name"

peak=$(status_kb "$COL" VmHWM)
rss=$(status_kb "$COL" VmRSS)
kvl_log "collector after the attack: resident $((rss / 1024)) MiB, peak $((peak / 1024)) MiB (bound: $((rss0 / 1024)) + $RSS_BOUND_MB MiB)"
[ "$peak" -le $((rss0 + RSS_BOUND_MB * 1024)) ] \
    || kvl_fail "the collector's peak resident memory grew by $(((peak - rss0) / 1024)) MiB (bound $RSS_BOUND_MB MiB)"

# The real agent: every step known from its first update to 4 polls after the attack.
t_attack=$(date +%s)
kvl_wait_until 30 "4 more polls of the real agent" kvl_rrd_updated_since "$F" $((t_attack + 4 * INTERVAL))
t_last=$(kvl_rrd_last_time "$F")
step=$(kvl_rrd_step "$F")
kvl_rrd_rows "$F" AVERAGE in_octets $((t_first - step)) $((t_last + step)) >"$KVL_TMP/rows" \
    || kvl_fail "rrdtool fetch failed on $F"
awk -v step="$step" -v first="$t_first" -v last="$t_last" '
    $1 - step > first && $1 <= last { n++; if ($2 == "nan") missing = missing " " $1 }
    END {
        if (n < int((last - first) / step) - 1) { printf "%d rows, expected %d\n", n, int((last - first) / step) - 1; exit 1 }
        if (missing != "") { printf "unknown rows:%s\n", missing; exit 1 }
        printf "%d rows from %d to %d, all known\n", n, first, last
    }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "the real agent's archive: $(cat "$KVL_TMP/verdict")"
kvl_log "real agent: $(cat "$KVL_TMP/verdict")"
kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the real agent died"

kvl_pass "sparse ids, repeated families, a far-future group and a long name bounded or refused; peak +$(((peak - rss0) / 1024)) MiB"
