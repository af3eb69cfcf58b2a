#!/bin/bash
# test_damaged_logs.sh — damaged logs lose only the damage: the agent's spool and the
# collector's journal skip a damaged record, resynchronise on the next valid one and say
# what they lost; a segment missing from the journal is reported; a huge stray file in the
# journal's folder is never read.
#
# One agent polls a device with 250 interfaces (eth0's counters at known rates) every 2 s;
# agent and collector at log level debug: the agent logs every batch it queues and every
# acknowledgement, the collector every batch it applies; journal segments of 64 KiB.
#   1. Spool: the collector is killed, the agent spools for 16 s and is stopped; a byte is
#      flipped in the payload of two unacknowledged records in the middle of its spool
#      segment. Both come back: the agent logs two damaged records, one batch lost each.
#   2. Journal: a reader holds a lock on eth0's archive (as `rrdtool graph` does) so the
#      agent's batches are journaled and acknowledged but not applied, until they fill four
#      journal segments; the collector is killed -9. With the lock gone, a middle segment is
#      removed and a byte is flipped in one unapplied batch in the middle of the first
#      segment and of the last one. The next collector logs two damaged records (one
#      record lost each) and the missing segment with its records.
#   3. Every bulk batch the agent queued was applied by some collector, except exactly the
#      four damaged ones and the unapplied batches of the removed segment.
#   4. A sparse 8 GiB file named like a journal segment (with a valid header) and an
#      unrelated file in the journal's folder: the collector listens within 5 s, its peak
#      RSS stays under 200 MB, it sets the first aside as *.stray and names the second;
#      the agent goes on being applied.
#
#   bash tests/integration/test_damaged_logs.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

_acks() { grep -c 'acknowledged: lane 0 up to' "$ALOG"; }
# _acks_reach N: the agent has logged N acknowledgements of bulk batches in all.
_acks_reach() { [ "$(_acks)" -ge "$1" ]; }

# _caught_up COLLECTOR_LOG: the collector applied the last bulk batch the agent queued.
_caught_up() { kvl_applied_last "$ALOG" "$1"; }

INTERVAL=2
mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
ifs=(eth0:125000:50000:1000)
for ((i = 2; i <= 250; i++)); do ifs+=("if$i:$((1000 * i)):$((500 * i))"); done
kvl_make_rate_device "$KVL_TMP/rec/ratedev.snmprec" "${ifs[@]}"
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data" debug
echo "journal_segment_bytes: 65536" >>"$KVL_TMP/collector.yaml"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_agent_config "$KVL_TMP/agent.yaml" damaged-agent lab "$COL_PORT" "${INTERVAL}s" debug
kvl_agent_device "$KVL_TMP/agent.yaml" ratedev "$SNMP_PORT" ratedev
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
F=$KVL_TMP/data/lab/ratedev/eth0.rrd
ALOG=$KVL_TMP/logs/agent.log
JDIR=$KVL_TMP/data/_journal
SPOOL=$KVL_TMP/agent.spool/bulk
CLOGS=("$KVL_TMP/logs/collector.log")
kvl_wait_until 60 "the archive $F" test -f "$F"
kvl_wait_until 30 "3 batches acknowledged" _acks_reach 3

# ---------------------------------------------------------------- 1. the spool ----------
kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
kvl_log "collector killed; the agent spools for 16 s"
kvl_sleep_checking 16 "$AGENT" "$SIM"
kvl_stop "$AGENT" TERM || kvl_fail "the agent did not stop"
acked=$(sed -n 's/.*acknowledged: lane 0 up to \([0-9]*\).*/\1/p' "$ALOG" | tail -n 1)
spool_lost=$("$KVL_PY" - "$SPOOL" "${acked:-0}" <<'EOF'
import os, struct, sys
folder, acked = sys.argv[1], int(sys.argv[2])
segs = sorted(n for n in os.listdir(folder) if n.endswith(".seg"))
recs = []  # (path, offset, length, seq) of unacknowledged records
for name in segs:
    path = os.path.join(folder, name)
    data = open(path, "rb").read()
    off = 16
    while off + 16 <= len(data):
        ln, _crc, seq = struct.unpack_from("<IIQ", data, off)
        if off + 16 + ln > len(data):
            break
        if seq > acked:
            recs.append((path, off, ln, seq))
        off += 16 + ln
if len(recs) < 6:
    sys.exit("only %d unacknowledged records in the spool" % len(recs))
lost = []
for path, off, ln, seq in (recs[len(recs) // 2 - 2], recs[len(recs) // 2 + 1]):
    with open(path, "r+b") as f:
        f.seek(off + 16 + ln // 2)
        b = f.read(1)
        f.seek(off + 16 + ln // 2)
        f.write(bytes([b[0] ^ 0x5A]))
    lost.append(seq)
print(" ".join(map(str, lost)))
EOF
) || kvl_fail "cannot damage the spool: $spool_lost"
kvl_log "spool: flipped a byte in the payload of batches $spool_lost (of those after $acked)"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
kvl_wait_until 60 "the collector to apply the agent's backlog" _caught_up "${CLOGS[0]}"
n=$(grep -c 'damaged record (checksum mismatch.*1 batch lost' "$ALOG")
[ "$n" -eq 2 ] || kvl_fail "the agent logged $n damaged records with one batch lost each, not 2"
grep 'damaged record' "$ALOG" | sed 's/^/    agent: /' >&2

# ---------------------------------------------------------------- 2. the journal --------
"$KVL_PY" -c '
import fcntl, sys, time
f = open(sys.argv[3], "rb")
fcntl.lockf(f, fcntl.LOCK_SH)
time.sleep(float(sys.argv[2]))
' kvl-archive-locker 120 "$F" &
LOCKER=$!
kvl_track "$LOCKER" kvl-archive-locker
kvl_log "eth0's archive locked: batches are journaled and acknowledged, not applied"

# _journal_ready: four segments or more, the last with two batches or more.
_journal_ready() {
    "$KVL_PY" - "$JDIR" <<'EOF'
import os, struct, sys
folder = sys.argv[1]
segs = sorted(n for n in os.listdir(folder) if n.endswith(".jnl"))
if len(segs) < 4:
    sys.exit(1)
data = open(os.path.join(folder, segs[-1]), "rb").read()
off, n = 16, 0
while off + 28 <= len(data):
    ln, _crc, _jseq, _seq, typ, lane = struct.unpack_from("<IIQQBB", data, off)
    if off + 28 + ln > len(data):
        break
    n += typ == 3 and lane == 0
    off += 28 + ln
sys.exit(0 if n >= 2 else 1)
EOF
}
kvl_wait_until 90 "four journal segments of held batches" _journal_ready
kvl_stop "$COL" KILL || kvl_fail "could not kill the collector"
kvl_stop "$LOCKER" TERM || kvl_fail "the archive locker did not stop"
kvl_log "collector killed with $(ls "$JDIR" | grep -c '\.jnl$') journal segments"
cat "${CLOGS[@]}" | sed -n 's/.*applied batch \([0-9]*\) lane 0:.*/\1/p' | sort -n -u >"$KVL_TMP/applied-before"
journal_lost=$("$KVL_PY" - "$JDIR" "$KVL_TMP/applied-before" <<'EOF'
import os, struct, sys
folder, applied = sys.argv[1], set(int(l) for l in open(sys.argv[2]) if l.strip())
segs = sorted(n for n in os.listdir(folder) if n.endswith(".jnl"))
if len(segs) < 3:
    sys.exit("%d journal segments (%s), expected 3 or more" % (len(segs), " ".join(segs)))
def batches(name):
    """(offset, size, agent length, data length, seq, last) of the segment's unapplied bulk batches"""
    data = open(os.path.join(folder, name), "rb").read()
    off, out = 16, []
    while off + 28 <= len(data):
        ln, _crc, _jseq, seq, typ, lane, alen = struct.unpack_from("<IIQQBBH", data, off)
        if off + 28 + ln > len(data):
            break
        if typ == 3 and lane == 0 and seq not in applied:
            out.append([off, alen, ln - alen, seq, False])
        off += 28 + ln
    if out and out[-1][0] + 28 + out[-1][1] + out[-1][2] == len(data):
        out[-1][4] = True
    return out
def flip(name, rec):
    off, alen, dlen, seq, _ = rec
    with open(os.path.join(folder, name), "r+b") as f:
        at = off + 28 + alen + dlen // 2
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x5A]))
    return seq
lost = []
mid = len(segs) // 2
gone = batches(segs[mid])
if not gone:
    sys.exit("the middle segment %s holds no unapplied batch" % segs[mid])
lost += [r[3] for r in gone]
os.unlink(os.path.join(folder, segs[mid]))
# The oldest segment left may hold only applied batches (or one, its last record, applied
# before the archive was locked): damage the first one before the middle that has an
# unapplied batch before its last record, and the last segment.
firsts = [n for n in segs[:mid] if [r for r in batches(n) if not r[4]]]
if not firsts:
    sys.exit("no segment before %s holds an unapplied batch before its last record" % segs[mid])
for name in (firsts[0], segs[-1]):
    recs = [r for r in batches(name) if not r[4]]
    if len(recs) < 1:
        sys.exit("%s holds no unapplied batch before its last record" % name)
    lost.append(flip(name, recs[len(recs) // 2]))
print(" ".join(map(str, sorted(lost))))
print("removed %s (%d unapplied batches)" % (segs[mid], len(gone)), file=sys.stderr)
EOF
) || kvl_fail "cannot damage the journal: $journal_lost"
kvl_log "journal: lost on purpose: batches $journal_lost"
kvl_start_collector collector-2 "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
CLOGS+=("$KVL_TMP/logs/collector-2.log")
C2=$KVL_TMP/logs/collector-2.log
kvl_wait_until 60 "the collector to catch up after the damaged journal" _caught_up "$C2"
n=$(grep -c 'damaged record (checksum mismatch.*1 record lost' "$C2")
[ "$n" -eq 2 ] || kvl_fail "the collector logged $n damaged journal records with one record lost each, not 2"
n=$(grep -c 'missing from the folder (the journal.s index lists it): its [0-9]* records' "$C2")
[ "$n" -eq 1 ] || kvl_fail "the collector reported $n missing journal segments, not 1"
grep -E 'damaged record|missing from the folder' "$C2" | sed 's/^/    collector: /' >&2

# ---------------------------------------------------------------- 3. what was lost ------
kvl_stop_agent_drained "$AGENT" "$ALOG" "$C2"
sed -n 's/.*batch \([0-9]*\) lane 0 queued.*/\1/p' "$ALOG" | sort -n -u >"$KVL_TMP/queued"
cat "${CLOGS[@]}" | sed -n 's/.*applied batch \([0-9]*\) lane 0:.*/\1/p' | sort -n -u >"$KVL_TMP/applied"
comm -23 "$KVL_TMP/queued" "$KVL_TMP/applied" >"$KVL_TMP/missing"
echo $spool_lost $journal_lost | tr ' ' '\n' | sort -n -u >"$KVL_TMP/expected"
cmp -s "$KVL_TMP/missing" "$KVL_TMP/expected" \
    || kvl_fail "batches never applied: $(tr '\n' ' ' <"$KVL_TMP/missing"); damaged or removed: $(tr '\n' ' ' <"$KVL_TMP/expected")"
nq=$(wc -l <"$KVL_TMP/queued")
nm=$(wc -l <"$KVL_TMP/missing")
kvl_log "$nq bulk batches queued, $nm never applied: exactly the damaged and removed ones"

# ---------------------------------------------------------------- 4. a stray file -------
kvl_stop "$COL" TERM || kvl_fail "the collector did not stop"
PYTHONPATH="$KVL_REPO/tests/integration" "$KVL_PY" - "$JDIR/7fffffffffffffff.jnl" \
    <<'EOF' || kvl_fail "cannot make the stray file"
import struct, sys
from format_files import crc32c  # the header's checksum
h = b"kvljrnl\0" + struct.pack("<I", 1)
with open(sys.argv[1], "wb") as f:
    f.write(h + struct.pack("<I", crc32c(h)))
    f.truncate(8 << 30)
EOF
echo "not a segment" >"$JDIR/notes.txt"
t0=$(date +%s%N)
kvl_start_collector collector-3 "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
t1=$(date +%s%N)
C3=$KVL_TMP/logs/collector-3.log
ms=$(((t1 - t0) / 1000000))
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$COL/status")
kvl_log "collector started in $ms ms beside a sparse 8 GiB file, peak RSS $hwm kB"
[ "$ms" -lt 5000 ] || kvl_fail "the collector took $ms ms to start"
[ -n "$hwm" ] && [ "$hwm" -lt 204800 ] || kvl_fail "the collector's peak RSS is $hwm kB"
grep -q 'set aside as 7fffffffffffffff.jnl.stray' "$C3" || kvl_fail "the stray file was not reported"
[ -f "$JDIR/7fffffffffffffff.jnl.stray" ] || kvl_fail "the stray file was not set aside"
grep -q 'notes.txt is not a journal file' "$C3" || kvl_fail "the unrelated file was not reported"
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
a0=$(_acks)
kvl_wait_until 30 "the agent to be acknowledged again" _acks_reach $((a0 + 3))
kvl_wait_until 30 "the collector to apply the agent's batches" _caught_up "$C3"

kvl_pass "spool and journal lost only the damaged records (each reported), a removed segment reported, a stray 8 GiB file set aside in $ms ms"
