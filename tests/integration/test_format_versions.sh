#!/bin/bash
# test_format_versions.sh — the files the daemons keep carry a format version: an upgrade
# reads what the previous release wrote, and a file a newer kaaval wrote stops the daemon
# with one sentence saying what to do, the file left as it was.
#
# A pipeline runs (an agent with a spool polling a simulated device, a collector) until the
# archive holds polls; the collector is stopped while the agent goes on (so its spool holds
# batches), then the agent. Then:
#   1. The previous release's layout, made from these files: series.defs without its header
#      (the frames alone), the alert book's and the inventory's heads and the topology's
#      state.json without "format". Both daemons start on them; the agent takes its series
#      from the old series.defs (its log says how many), the spooled batches are applied
#      (the same archive grows, no second one appears, no batch is refused), and the files
#      carry their version again.
#   2. The next version (this one's + 1) in one file at a time: series.defs and a spool
#      segment (the agent), a journal segment, book.snap, inventory.snap and state.json (the
#      collector). The daemon exits non-zero within seconds, its log says
#      "<path>: written by a newer kaaval (format N; this <daemon> reads up to N-1): run the
#      newer <daemon>, or move <path> aside to start afresh (...)", and the file's bytes are
#      unchanged. Put back, the daemon starts again.
#
#   bash tests/integration/test_format_versions.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
DATA=$KVL_TMP/data
SPOOL=$KVL_TMP/agent.spool

# The files' layouts, for the test to rewrite them (format_files.py).
fmt() { "$KVL_PY" "$KVL_REPO/tests/integration/format_files.py" "$@"; }

kvl_rate_pipeline fmt-agent "$INTERVAL" 125000 50000 debug
ALOG=$KVL_TMP/logs/agent.log
CLOG=$KVL_TMP/logs/collector.log

# Batches waiting in the spool: the collector away for a few polls, then the agent stopped.
kvl_stop "$COL" TERM || kvl_fail "the collector did not stop"
kvl_sleep_checking $((3 * INTERVAL)) "$AGENT" "$SIM"
kvl_stop "$AGENT" TERM || kvl_fail "the agent did not stop"
waiting=$(sed -n 's/.*stopping: spool holds [0-9]* bytes, \([0-9]*\) batches waiting.*/\1/p' "$ALOG" | tail -n 1)
[ -n "$waiting" ] && [ "$waiting" -gt 0 ] || kvl_fail "the agent stopped with no spooled batches ('$waiting')"
kvl_log "$waiting batches wait in the spool"
before_last=$(kvl_rrd_last_time "$F")
rrds_before=$(find "$DATA" -name '*.rrd' | sort | md5sum)

DEFS=$SPOOL/series.defs
BOOK=$DATA/_alerts/book.snap
INV=$DATA/_inventory/inventory.snap
TOPO=$DATA/_topology/state.json
# (state.json is written once the graph has links; without a site tree this one has none:
# one in the layout the collector writes, with nothing in it)
[ -e "$TOPO" ] || printf '{"format":1,"version":0,"nodes":{},"links":{},"cuts":{}}' >"$TOPO"
SEG=$(find "$SPOOL" -name '*.seg' | sort | head -n 1)
JNL=$(find "$DATA/_journal" -name '*.jnl' | sort | head -n 1)
for f in "$DEFS" "$BOOK" "$INV" "$TOPO" "$SEG" "$JNL"; do
    [ -n "$f" ] && [ -s "$f" ] || kvl_fail "a file the daemons keep is missing: '$f' (ls: $(ls -R "$DATA" "$SPOOL" | tr '\n' ' '))"
done
for kf in defs:"$DEFS" head:"$BOOK" head:"$INV" json:"$TOPO" seg:"$SEG" seg:"$JNL"; do
    [ "$(fmt version "${kf%%:*}" "${kf#*:}")" = 1 ] || kvl_fail "${kf#*:} does not say format 1"
done

# ------------------------------------------------ 1. the previous release's files -------
fmt unversion defs "$DEFS"
fmt unversion head "$BOOK"
fmt unversion head "$INV"
fmt unversion json "$TOPO"
[ "$(fmt version head "$BOOK")" = 0 ] || kvl_fail "book.snap still says a format"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
kvl_wait_until 60 "the spooled batches to reach the archive" kvl_rrd_updated_since "$F" \
    $((before_last + 2 * INTERVAL))
kvl_stop "$AGENT" TERM || kvl_fail "the agent did not stop"
kvl_stop "$COL" TERM || kvl_fail "the collector did not stop"
[ "$(find "$DATA" -name '*.rrd' | sort | md5sum)" = "$rrds_before" ] ||
    kvl_fail "the archives changed names: the series ids did not survive the upgrade"
! grep -Eiq 'undefined series|refus' "$CLOG" ||
    kvl_fail "the collector refused something: $(grep -Ei 'undefined series|refus' "$CLOG" | head -n 3)"
grep -Eq '[1-9][0-9]* series definitions and [0-9]+ families kept from earlier runs' "$ALOG" ||
    kvl_fail "the agent did not take its series from the header-less series.defs"
for kf in defs:"$DEFS" head:"$BOOK" head:"$INV"; do
    [ "$(fmt version "${kf%%:*}" "${kf#*:}")" = 1 ] || kvl_fail "${kf#*:} was not written again with format 1"
done
kvl_log "the previous release's files read; series.defs, book.snap and inventory.snap say format 1 again"

# ------------------------------------------------ 2. a newer kaaval's files --------------
# refused PROGRAM CONFIG KIND FILE: FILE at the next version stops PROGRAM with the sentence.
refused() {
    local prog=$1 cfg=$2 kind=$3 file=$4 bin rc sum log=$KVL_TMP/logs/refused.log
    [ "$prog" = kaaval-agent ] && bin=$KVL_AGENT || bin=$KVL_COLLECTOR
    fmt set "$kind" "$file" 2
    sum=$(md5sum <"$file")
    timeout 20 "$bin" -c "$cfg" >"$log" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || kvl_fail "$prog started (exit $rc) on $file of format 2"
    grep -qF "$file: written by a newer kaaval (format 2; this $prog reads up to 1): run the newer $prog, or move $file aside to start afresh (" "$log" ||
        kvl_fail "$prog did not say what to do for $file: $(tail -n 3 "$log")"
    [ "$(md5sum <"$file")" = "$sum" ] || kvl_fail "$prog changed $file"
    fmt set "$kind" "$file" 1
    kvl_log "$prog refused $file of format 2: $(grep -F 'written by a newer' "$log" | head -n 1 | sed 's/.*\] //')"
}
refused kaaval-agent "$KVL_TMP/agent.yaml" defs "$DEFS"
refused kaaval-agent "$KVL_TMP/agent.yaml" seg "$SEG"
JNL=$(find "$DATA/_journal" -name '*.jnl' | sort | head -n 1)
[ -n "$JNL" ] || kvl_fail "no journal segment left to try"
refused kaaval-collector "$KVL_TMP/collector.yaml" seg "$JNL"
refused kaaval-collector "$KVL_TMP/collector.yaml" head "$BOOK"
refused kaaval-collector "$KVL_TMP/collector.yaml" head "$INV"
refused kaaval-collector "$KVL_TMP/collector.yaml" json "$TOPO"

# Put back: both start.
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
t=$(kvl_rrd_last_time "$F")
kvl_wait_until 30 "polls after the files were put back" kvl_rrd_updated_since "$F" $((t + 2 * INTERVAL))

kvl_pass "the previous release's files read and upgraded; a newer format refused with what to do, untouched"
