#!/bin/bash
# test_hostile_seq.sh — a peer claiming an agent's id with impossible sequence numbers
# harms neither the agent nor its archives.
#
# A real agent polls a device with counters at known rates every 2 s. A fake peer (plain
# TCP, the collector runs with `insecure: true`) connects three times under the agent's id,
# each time closing the agent's connection with its Hello, and sends one batch: numbered
# 10^18, then 2^64-1, then one hour ahead of the clock (within max_seq_ahead: taken). The
# first two must be refused with the reason (the peer reads the Refusal) and logged, never
# acknowledged. The third raises the agent's position above anything the agent made; the
# agent's next Hello says its own highest number, and the collector must go back (logged)
# instead of taking the agent's batches for duplicates. Afterwards every bulk batch the
# agent queued (its debug log) must have been applied by the collector (its debug log),
# once and in order, and the archive must hold a known row for every step from its first
# update to its last.
#
#   bash tests/integration/test_hostile_seq.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
IN_RATE=125000
OUT_RATE=50000
ID=hostile-agent

kvl_rate_pipeline "$ID" "$INTERVAL" "$IN_RATE" "$OUT_RATE" debug
t_first=$T_FIRST
ALOG=$KVL_TMP/logs/agent.log
CLOG=$KVL_TMP/logs/collector.log

# fake_peer SEQ EXPECT: connects as the agent, sends Hello and a batch numbered SEQ at once,
# and reads the answers for at most 10 s. EXPECT refusal: the batch must be refused with a
# reason naming the clock, and never acknowledged; ack: it must be acknowledged, unless the
# real agent's Hello closes the peer first. Prints what happened.
fake_peer() {
    "$KVL_PY" - "$COL_PORT" "$ID" "$1" "$2" <<'EOF'
import socket, struct, sys, time

port, agent, seq, expect = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]

def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(num, wt, payload):
    key = varint(num << 3 | wt)
    if wt == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload

def frame(env):
    return struct.pack(">I", len(env)) + env

def read_varint(b, i):
    v, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i

def fields(b):
    i, out = 0, []
    while i < len(b):
        key, i = read_varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 2:
            n, i = read_varint(b, i)
            v = b[i:i + n]
            i += n
        else:
            sys.exit("unexpected wire type %d" % wt)
        out.append((num, v))
    return out

hello = field(1, 0, 1) + field(2, 2, agent.encode()) + field(3, 2, b"fake") + field(4, 2, b"lab")
batch = field(1, 0, seq) + field(7, 0, 0)
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(frame(field(1, 2, hello)) + frame(field(5, 2, batch)))
buf, welcome, refusal, acked, deadline = b"", None, None, None, time.time() + 10
while time.time() < deadline:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    buf += chunk
    while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
        n = struct.unpack(">I", buf[:4])[0]
        env, buf = buf[4:4 + n], buf[4 + n:]
        for num, v in fields(env):
            if num == 2:
                welcome = dict(fields(v)).get(4, 0)
            elif num == 3:
                refusal = dict(fields(v)).get(1, b"").decode()
            elif num == 6:
                acked = dict(fields(v)).get(1, 0)
    if expect == "ack" and acked is not None:
        break
s.close()
print("welcome=%s acked=%s refusal=%s" % (welcome, acked, refusal))
if welcome is None:
    sys.exit("no Welcome")
if expect == "refusal":
    if refusal is None or "ahead of the collector's clock" not in refusal:
        sys.exit("batch %d not refused with a reason naming the clock" % seq)
    if acked is not None:
        sys.exit("batch %d acknowledged" % seq)
elif refusal is not None:
    sys.exit("batch %d refused: %s" % (seq, refusal))
EOF
}

# the agent's connection is (back) up: its last "connected to collector" is after $1 lines
agent_connected_after() {
    [ "$(grep -c 'connected to collector' "$ALOG")" -gt "$1" ]
}

attack() {
    local seq=$1 expect=$2 before out
    before=$(grep -c 'connected to collector' "$ALOG")
    out=$(fake_peer "$seq" "$expect" 2>&1) || kvl_fail "fake peer, batch $seq: $out"
    kvl_log "fake peer, batch $seq: $out"
    kvl_wait_until 20 "the agent to reconnect after the fake peer" agent_connected_after "$before"
    kvl_sleep_checking 2 "$AGENT" "$COL" "$SIM"
}

attack 1000000000000000000 refusal
attack 18446744073709551615 refusal
hour_ahead=$(($(date +%s) * 1000000 + 3600 * 1000000))
attack "$hour_ahead" ack
kvl_sleep_checking 6 "$AGENT" "$COL" "$SIM"

kvl_wait_until 30 "the collector to apply the agent's latest batch" kvl_applied_last "$ALOG" "$CLOG"
t_last=$(kvl_rrd_last_time "$F")
step=$(kvl_rrd_step "$F")
kvl_stop_agent_drained "$AGENT" "$ALOG" "$CLOG"

# every batch the agent queued was applied, once, in order
sed -n 's/.*batch \([0-9]*\) lane 0 queued.*/\1/p' "$ALOG" | sort -n >"$KVL_TMP/queued"
sed -n "s/.*\[ingest $ID\] applied batch \([0-9]*\) lane 0:.*/\1/p" "$CLOG" >"$KVL_TMP/applied"
grep -v -x -e "$hour_ahead" "$KVL_TMP/applied" >"$KVL_TMP/applied_real"
sort -n -u "$KVL_TMP/applied_real" >"$KVL_TMP/written"
comm -23 "$KVL_TMP/queued" "$KVL_TMP/written" >"$KVL_TMP/missing"
nq=$(wc -l <"$KVL_TMP/queued")
[ "$nq" -gt 10 ] || kvl_fail "only $nq batches queued by the agent"
[ -s "$KVL_TMP/missing" ] && kvl_fail "$(wc -l <"$KVL_TMP/missing") of $nq batches the agent queued were never applied (taken for duplicates?): $(head -n 5 "$KVL_TMP/missing" | tr '\n' ' ')"
dups=$(sort -n "$KVL_TMP/applied_real" | uniq -d | head -n 3 | tr '\n' ' ')
[ -z "$dups" ] || kvl_fail "batches applied twice: $dups"
sort -n -c "$KVL_TMP/applied_real" 2>/dev/null || kvl_fail "batches applied out of order"
# the real agent, reconnecting four times, never resent what a Welcome had said was durable
if grep -q 'sent again though the Welcome said it was durable' "$CLOG"; then
    kvl_fail "unexpected duplicates: $(grep 'sent again though the Welcome' "$CLOG" | head -n 2)"
fi

kvl_rrd_rows "$F" AVERAGE in_octets $((t_first - step)) $((t_last + step)) >"$KVL_TMP/rows" \
    || kvl_fail "rrdtool fetch failed on $F"
awk -v step="$step" -v first="$t_first" -v last="$t_last" -v what="$F" '
    $1 - step > first && $1 <= last { n++; if ($2 == "nan") missing = missing " " $1 }
    END {
        want = int((last - first) / step) - 1
        if (n < want) { printf "%s: %d rows, expected %d\n", what, n, want; exit 1 }
        if (missing != "") { printf "%s: unknown rows after the attack:%s\n", what, missing; exit 1 }
        printf "%s: all %d rows from %d to %d known\n", what, n, first, last
    }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "$(cat "$KVL_TMP/verdict")"
kvl_log "$(cat "$KVL_TMP/verdict")"

grep -q 'batch 1000000000000000000 on the bulk lane is numbered .* ahead of the collector' "$CLOG" \
    || kvl_fail "the collector did not log the refusal of batch 10^18"
grep -q "position $hour_ahead on the bulk lane is above the agent's own highest number .* going back to" "$CLOG" \
    || kvl_fail "the collector did not go back from the fake peer's position $hour_ahead"
kvl_log "$(grep -o 'position [0-9]* on the bulk lane is above.*' "$CLOG" | head -n 1)"
# back to exactly the agent's last batch before the fake one: not to the agent's own highest
# number, which would have acknowledged its batches sent meanwhile without writing them
back=$(sed -n "s/.*position $hour_ahead on the bulk lane is above.* going back to \([0-9]*\).*/\1/p" "$CLOG" | head -n 1)
before_fake=$(sed -n "/applied batch $hour_ahead lane 0:/q; s/.*\[ingest $ID\] applied batch \([0-9]*\) lane 0:.*/\1/p" "$CLOG" | tail -n 1)
[ -n "$back" ] && [ "$back" = "$before_fake" ] \
    || kvl_fail "the position went back to '$back', not to the agent's last batch before the fake one ('$before_fake')"

kvl_pass "10^18 and 2^64-1 refused with their reason, the position an hour ahead undone at the agent's Hello; all $nq batches of the agent applied once, in order, no unknown row"
