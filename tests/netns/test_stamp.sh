#!/bin/sh
# test_stamp.sh — STAMP (RFC 8762) between two agents, with real packets in the test's own
# network namespaces (ctest label netns; root).
#
#   A (agent-a, 10.78.0.1) --veth-- M (delay_relay) --veth-- B (agent-b, 10.78.0.2)
#
# Both agents run their reflector on UDP 862 and probe each other with `mesh: {type:
# stamp}`. The relay holds STAMP packets (--udp-port 862) and ICMP echo, and logs what it
# imposed on each.
#
# Clock synchronisation. A, M and B are namespaces of one host: they read one and the same
# CLOCK_REALTIME, so the offset between "the two clocks" is exactly zero and the agents are
# configured `clock: {sync: assumed, error: 10us}` (the error covering where each timestamp
# is taken). That is what lets this test assert one-way delays; on real hosts the kernel's
# NTP state decides (checked here too: with `sync: kernel` the agent reports one-way
# figures exactly when the host's adjtimex says synchronised).
#
# Checks:
#   mesh      both agents measure each other: every probe of a full interval answered (and
#             agent-a's target on agent-b's IPv6 address, through the relay too)
#   twamp     a hand-made TWAMP-Light packet (RFC 5357, 41 octets) from a small Python
#             sender is answered: 44 octets, its sequence number, timestamp and error
#             estimate reflected where RFC 8762 puts them, TTL 64, T1 <= T2 <= T3 <= now;
#             a 13-octet packet is not answered
#   delay     the relay holds A->B only, uniform 15..25 ms: the agent's median RTT within
#             0.3 ms of ping's median in the same run and of the truth from the relay's
#             log; the forward one-way median within 0.3 ms of its truth, the backward one
#             within 0.3 ms of the base run's; clock_sync 1
#   unsync    agent-b's clock `sync: none`: agent-a reports clock_sync 0 and no one-way
#             figures (round trip still); agent-a with `sync: kernel` follows the host
#   port      the agent as nobody cannot bind port 862: one line naming the fix
# KEEP=1 keeps the work folder. Exit 77 (skipped) without root or tools.
set -eu

AGENT=${KVL_AGENT:-build/kaaval-agent}
RELAY=${KVL_RELAY:-build/tests/netns/delay_relay}
. "$(dirname "$0")/lib.sh"
ns_init stamp ip ping python3 setpriv
RELAY_EXTRA="--udp-port 862" # the relay holds STAMP packets too

P=kvls$$
NA=${P}a
NM=${P}m
NB=${P}b
ns_add "$NA" "$NM" "$NB"
ns_relayed "$NA" "$NM" "$NB" 10.78.0 fd78

agent_cfg() { # agent_cfg FILE ID INTERVAL COUNT SYNC TARGET-LINES
    cat >"$1" <<CFG
id: $2
site: test
collector: 127.0.0.1:5140
insecure: true
log_level: info
probes:
  interval: $3
  count: $4
  reflector: {enabled: true, port: 862}
  clock: {sync: $5, error: 10us, max_error: 1ms}
$6
CFG
    chmod 644 "$1"
}
MESH='  mesh:
    type: stamp
    agents:
      - {id: agent-a, site: test, address: 10.78.0.1}
      - {id: agent-b, site: test, address: 10.78.0.2}'


# ------------------------------------------------------------ mesh (no delay) + TWAMP ---
relay_start "$W/relay0.log" -d 0 -j 0
agent_cfg "$W/b.yaml" agent-b 2s 50 assumed "$MESH"
agent_cfg "$W/a.yaml" agent-a 2s 50 assumed "$MESH
  targets:
    - {name: b6, address: \"fd78::2\", type: stamp}"
ip netns exec "$NB" "$AGENT" -c "$W/b.yaml" --probe-once --probe-intervals 4 >"$W/b0.out" 2>"$W/b0.err" &
NS_PIDS=$!
sleep 1
ip netns exec "$NA" "$AGENT" -c "$W/a.yaml" --probe-once --probe-intervals 3 >"$W/a0.out" 2>"$W/a0.err" &
APID=$!
sleep 1
# A small TWAMP-Light session-sender (RFC 5357 4.1.2, unauthenticated, 27 octets of padding).
ip netns exec "$NA" python3 - >"$W/twamp.out" 2>&1 <<'PY' || true
import socket, struct, time
def ntp(t): return (int(t) + 2208988800) << 32 | int((t % 1) * 2**32)
def unntp(v): return (v >> 32) - 2208988800 + (v & 0xffffffff) / 2**32
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
t1 = time.time()
pkt = struct.pack(">IQH", 12345, ntp(t1), 0x0001) + bytes(27)
s.sendto(pkt, ("10.78.0.2", 862))
r, addr = s.recvfrom(2000)
now = time.time()
seq, t3, err, mbz, t2, sseq, st1, serr, mbz2, ttl = struct.unpack(">IQHHQIQHHB", r[:41])
ok = (len(r) == 44 and seq == 12345 and sseq == 12345 and st1 == ntp(t1) and serr == 1 and
      ttl == 64 and addr == ("10.78.0.2", 862) and
      t1 - 1e-6 <= unntp(t2) <= unntp(t3) <= now + 1e-6)
print("twamp", "ok" if ok else "bad", f"len={len(r)} seq={seq} sender_seq={sseq} ttl={ttl} "
      f"t2-t1={(unntp(t2)-t1)*1e3:.3f}ms t3-t2={(unntp(t3)-unntp(t2))*1e3:.3f}ms err=0x{err:04x}")
s.sendto(pkt[:13], ("10.78.0.2", 862))
try:
    s.recvfrom(2000)
    print("short answered")
except socket.timeout:
    print("short unanswered")
PY
wait "$APID" || true
wait "$NS_PIDS" || true
NS_PIDS=
cat "$W/a0.out" "$W/b0.out" "$W/twamp.out"
RA=$(field "$W/a0.out" agent-b 1 received)
RB=$(field "$W/b0.out" agent-a 1 received)
R6=$(field "$W/a0.out" b6 1 received)
r=0; { [ "$RA" = 50 ] && [ "$RB" = 50 ] && [ "$R6" = 50 ]; } || r=1
check mesh $r "agent-a received $RA of 50 from agent-b (and $R6 of 50 over IPv6), agent-b $RB of 50 from agent-a (interval 1)"
r=0; { grep -q '^twamp ok' "$W/twamp.out" && grep -q '^short unanswered' "$W/twamp.out"; } || r=1
check twamp $r "$(head -1 "$W/twamp.out"); $(sed -n 2p "$W/twamp.out")"
BASE=$(field "$W/a0.out" agent-b 1 rtt_median_ms)
BFWD=$(field "$W/a0.out" agent-b 1 owd_fwd_median_ms)
BBWD=$(field "$W/a0.out" agent-b 1 owd_bwd_median_ms)
echo "base: RTT median $BASE ms, forward $BFWD ms, backward $BBWD ms (through the relay)"

# ------------------------------------------------------------ delay A->B 20 +- 5 ms ---
relay_stop
relay_start "$W/relay1.log" -d 20000 -j 5000 -s 42 --only-ab
# agent-b: its reflector (its own probes to A at a low rate, enough intervals to outlast A).
agent_cfg "$W/b1.yaml" agent-b 5s 1 assumed "$MESH"
agent_cfg "$W/a1.yaml" agent-a 15s 300 assumed "$MESH"
ip netns exec "$NB" "$AGENT" -c "$W/b1.yaml" --probe-once --probe-intervals 5 >"$W/b1.out" 2>"$W/b1.err" &
NS_PIDS=$!
sleep 0.5
ip netns exec "$NA" ping -n -i 0.05 -c 300 -W 1 10.78.0.2 >"$W/ping.out" 2>&1 &
PING_PID=$!
ip netns exec "$NA" "$AGENT" -c "$W/a1.yaml" --probe-once --probe-verbose >"$W/a1.out" 2>"$W/a1.err"
wait "$PING_PID" || true
kill "$NS_PIDS" 2>/dev/null || true
wait "$NS_PIDS" 2>/dev/null || true
NS_PIDS=
relay_stop
grep '^probe' "$W/a1.out"
tail -1 "$W/ping.out"
MED=$(field "$W/a1.out" agent-b 0 rtt_median_ms)
FWD=$(field "$W/a1.out" agent-b 0 owd_fwd_median_ms)
BWD=$(field "$W/a1.out" agent-b 0 owd_bwd_median_ms)
SYNC=$(field "$W/a1.out" agent-b 0 clock_sync)
res=$(python3 - "$W/relay0.log" "$W/relay1.log" "$BASE" "$MED" "$W/ping.out" "$BFWD" "$FWD" \
    "$BBWD" "$BWD" "$SYNC" <<'PY'
import re, statistics, sys
def holds(path):
    # agent-a's session: its test packets A->B (type 8) and their reflections B->A (type 0)
    fwd, back = {}, {}
    for line in open(path):
        f = dict(kv.split("=") for kv in line.split())
        if f["id"] != "862" or f["copy"] != "0":
            continue
        if f["dir"] == "AB" and f["type"] == "8": fwd[int(f["seq"])] = int(f["held_us"]) / 1000
        if f["dir"] == "BA" and f["type"] == "0": back[int(f["seq"])] = int(f["held_us"]) / 1000
    return fwd, back
f0, b0 = holds(sys.argv[1])
f1, b1 = holds(sys.argv[2])
base, med = float(sys.argv[3]), float(sys.argv[4])
cost = statistics.median([f0[s] + b0[s] for s in f0 if s in b0])
rtt_truth = base + statistics.median([f1[s] + b1[s] for s in f1 if s in b1]) - cost
pings = [float(m.group(1)) for m in re.finditer(r"time=([0-9.]+) ms", open(sys.argv[5]).read())]
pmed = statistics.median(pings)
bfwd, fwd, bbwd, bwd = (float(x) for x in sys.argv[6:10])
fwd_truth = bfwd + statistics.median(f1.values()) - statistics.median(f0.values())
ok = (abs(med - pmed) <= 0.3 and abs(med - rtt_truth) <= 0.3 and abs(fwd - fwd_truth) <= 0.3
      and abs(bwd - bbwd) <= 0.3 and sys.argv[10] == "1")
print(0 if ok else 1, f"RTT median {med:.4f} ms vs ping {pmed:.4f} ms ({len(pings)} replies, "
      f"{med - pmed:+.4f}) and truth {rtt_truth:.4f} ms ({med - rtt_truth:+.4f}); forward "
      f"{fwd:.4f} ms vs truth {fwd_truth:.4f} ms ({fwd - fwd_truth:+.4f}); backward {bwd:.4f} "
      f"ms vs base {bbwd:.4f} ms ({bwd - bbwd:+.4f}); clock_sync {sys.argv[10]}")
PY
) || res="1 could not compute: $res"
check delay "${res%% *}" "${res#* }"

# ------------------------------------------------------------ unsynchronised ---
relay_start "$W/relay2.log" -d 0 -j 0
agent_cfg "$W/b2.yaml" agent-b 2s 20 none "$MESH"
agent_cfg "$W/a2.yaml" agent-a 2s 20 assumed "$MESH"
agent_cfg "$W/a3.yaml" agent-a 2s 20 kernel "$MESH"
ip netns exec "$NB" "$AGENT" -c "$W/b2.yaml" --probe-once --probe-intervals 4 >"$W/b2.out" 2>"$W/b2.err" &
NS_PIDS=$!
sleep 0.5
ip netns exec "$NA" "$AGENT" -c "$W/a2.yaml" --probe-once >"$W/a2.out" 2>"$W/a2.err"
grep '^probe' "$W/a2.out"
S=$(field "$W/a2.out" agent-b 0 clock_sync)
F=$(field "$W/a2.out" agent-b 0 owd_fwd_median_ms)
R=$(field "$W/a2.out" agent-b 0 rtt_median_ms)
r=0; { [ "$S" = 0 ] && [ "$F" = U ] && [ "$R" != U ]; } || r=1
check unsync-peer $r "reflector not synchronised: clock_sync $S, forward one-way $F, RTT $R ms"
# agent-b (reflector) back to assumed; agent-a's own clock from the kernel.
kill "$NS_PIDS" 2>/dev/null || true
wait "$NS_PIDS" 2>/dev/null || true
ip netns exec "$NB" "$AGENT" -c "$W/b.yaml" --probe-once --probe-intervals 4 >"$W/b3.out" 2>"$W/b3.err" &
NS_PIDS=$!
sleep 0.5
ip netns exec "$NA" "$AGENT" -c "$W/a3.yaml" --probe-once >"$W/a3.out" 2>"$W/a3.err"
kill "$NS_PIDS" 2>/dev/null || true
wait "$NS_PIDS" 2>/dev/null || true
NS_PIDS=
relay_stop
HOST=$(python3 -c '
import ctypes
class T(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int)] + \
               [("pad%d" % i, ctypes.c_long) for i in range(40)]
t = T(); rc = ctypes.CDLL(None).adjtimex(ctypes.byref(t))
print(1 if rc != 5 and not (t.status & 0x40) and t.maxerror <= 1000 else 0)')
S=$(field "$W/a3.out" agent-b 0 clock_sync)
F=$(field "$W/a3.out" agent-b 0 owd_fwd_median_ms)
r=0
if [ "$HOST" = 1 ]; then { [ "$S" = 1 ] && [ "$F" != U ]; } || r=1; else { [ "$S" = 0 ] && [ "$F" = U ]; } || r=1; fi
check unsync-kernel $r "host clock synchronised per adjtimex: $HOST; agent with sync: kernel reports clock_sync $S, forward one-way $F ($(grep -o 'clock [a-z ]*synchronised: [^(]*' "$W/a3.err" | head -1))"

# ------------------------------------------------------------ port 862 without privilege ---
agent_cfg "$W/nobody.yaml" agent-a 2s 20 kernel ""
ip netns exec "$NA" setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
    "$AGENT" -c "$W/nobody.yaml" --probe-once >"$W/nobody.out" 2>"$W/nobody.err" || true
r=0; grep -q 'cannot bind UDP port 862.*CAP_NET_BIND_SERVICE' "$W/nobody.err" || r=1
check port $r "$(grep -o 'cannot bind.*' "$W/nobody.err" | head -1)"

exit $FAIL
