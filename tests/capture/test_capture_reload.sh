#!/bin/bash
# test_capture_reload.sh BUILD: a changed `capture:` applied by SIGHUP to a running agent.
# In a network namespace of the test's own (its own loopback and ports): a collector, and an
# agent capturing on v1 of a veth pair (interval 1 s) while tcpreplay sends a loop of TCP and
# UDP frames onto v0 (a pcap this script writes). The collector's archive
# <data>/lab/_capture/capreload/v1.rrd is read with rrdtool fetch:
#   1. no filter: TCP and UDP bytes in the archive;
#   2. SIGHUP with `filter: udp`: the agent says the capture was made again; in the steps
#      after it UDP bytes go on and TCP bytes are 0;
#   3. SIGHUP with a filter that does not compile: the reload is refused with the file's
#      line and column; the old capture (udp) goes on counting, TCP still 0;
#   4. SIGHUP with an interface that does not exist beside v1: the new capture is not applied
#      (one ERROR line), the old one goes on counting;
#   5. SIGHUP with lo added and no filter: TCP on v1 again, and an archive for lo.
# The agent runs as root here; under systemd it keeps CAP_NET_RAW for this (the unit's
# ambient capability). Root, ip netns, tcpreplay and rrdtool; exits 77 without them. About
# 25 s.
set -euo pipefail
build=$(cd "$1" && pwd)
[ "$(id -u)" = 0 ] || { echo "not root: skipped"; exit 77; }
for c in ip tcpreplay rrdtool python3; do
    command -v "$c" >/dev/null || { echo "$c missing: skipped"; exit 77; }
done
ns=kvlcrl$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvl-capture-reload.XXXXXX")
chmod 755 "$tmp"
pids=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=$? p
    for p in $pids; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
    if [ "$rc" = 0 ] && [ "${KEEP:-0}" != 1 ]; then
        rm -rf "$tmp"
    else
        echo "work folder kept: $tmp"
    fi
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.log; do
        echo "--- $f"
        tail -15 "$f"
    done
    exit 1
}
ip netns add "$ns" || { echo "ip netns add failed: skipped"; exit 77; }
ip netns exec "$ns" sh -c '
    sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip link set lo up
    ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up'

# 20 frames, TCP and UDP in turn, between 10.7.0.1 and 198.51.100.7 (plain struct)
python3 - "$tmp/mix.pcap" <<'PY'
import struct, sys
eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for k in range(20):
        tcp = k % 2 == 0
        payload = 200
        l4 = (struct.pack("!HHIIBBHHH", 40000, 443, 1000 + k * 200, 1, 0x50, 0x18, 65535, 0, 0)
              if tcp else struct.pack("!HHHH", 40001, 53, 8 + payload, 0))
        ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(l4) + payload, k, 0, 64,
                         6 if tcp else 17, 0, 0x0A070001, 0xC6336407)
        frame = eth + ip + l4 + bytes(payload)
        f.write(struct.pack("<IIII", 1700000000, k * 1000, len(frame), len(frame)))
        f.write(frame)
PY

port=5171
cat >"$tmp/collector.yaml" <<YAML
id: test-collector
listen: 127.0.0.1:$port
data_dir: $tmp/data
log_level: info
archives: [step:1h]
consolidations: [AVERAGE]
insecure: true
YAML
agent_yaml() { # agent_yaml CAPTURE_LINES...: the agent's file with these `capture:` lines
    {
        cat <<YAML
id: capreload
site: lab
collector: 127.0.0.1:$port
insecure: true
log_level: info
flush_interval: 200ms
spool: {dir: $tmp/agent.spool, sync_interval: 1s}
traps: {listen: off}
capture:
  interval: 1s
  local_networks: [10.7.0.0/16]
YAML
        for l in "$@"; do
            echo "  $l"
        done
    } >"$tmp/agent.yaml.new"
    mv "$tmp/agent.yaml.new" "$tmp/agent.yaml"
}
agent_yaml "interfaces: [v1]"

ip netns exec "$ns" "$build/kaaval-collector" -c "$tmp/collector.yaml" >"$tmp/collector.out" 2>"$tmp/collector.log" &
pids="$pids $!"
for _ in $(seq 100); do
    grep -q 'listening for agents' "$tmp/collector.log" && break
    sleep 0.1
done
grep -q 'listening for agents' "$tmp/collector.log" || fail "the collector did not start"
ip netns exec "$ns" "$build/kaaval-agent" -c "$tmp/agent.yaml" >"$tmp/agent.out" 2>"$tmp/agent.log" &
agent=$!
pids="$pids $agent"
ip netns exec "$ns" tcpreplay -q --timer=nano --pps=400 --loop=0 -i v0 "$tmp/mix.pcap" >"$tmp/replay.log" 2>&1 &
pids="$pids $!"
rrd=$tmp/data/lab/_capture/capreload/v1.rrd

# wait_rrd T: the archive updated at or after T (within 20 s)
wait_rrd() {
    local t
    for _ in $(seq 200); do
        kill -0 "$agent" 2>/dev/null || fail "the agent exited"
        if [ -f "$rrd" ]; then
            cp "$rrd" "$tmp/snap.rrd" 2>/dev/null || true
            t=$(rrdtool last "$tmp/snap.rrd" 2>/dev/null || echo 0)
            [ "$t" -ge "$1" ] && return 0
        fi
        sleep 0.1
    done
    fail "the archive has no step at or after $1"
}
# bytes FROM TO DS: the bytes of DS over the archive's steps ending in (FROM, TO]
bytes() {
    cp "$rrd" "$tmp/snap.rrd"
    rrdtool fetch "$tmp/snap.rrd" AVERAGE -r 1 -s "$1" -e "$2" |
        awk -v ds="$3" -v from="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == ds) c = i + 1 }
            /:/ { t = $1; sub(":", "", t); v = $c
                  if (t > from && v != "nan" && v != "-nan") s += v }
            END { printf "%.0f\n", s }'
}
# wait_log PATTERN: a new line of the agent's log matching PATTERN (within 10 s)
wait_log() {
    for _ in $(seq 100); do
        grep -Eq "$1" "$tmp/agent.log" && return 0
        sleep 0.1
    done
    fail "the agent did not log /$1/"
}
status=0
check() { # check WHAT CONDITION...
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        status=1
    fi
}

# 1. everything
t0=$(date +%s)
wait_rrd $((t0 + 4))
t1=$(date +%s)
tcp=$(bytes $((t0 + 1)) $((t1 - 1)) bytes_tcp)
udp=$(bytes $((t0 + 1)) $((t1 - 1)) bytes_udp)
echo "no filter: tcp $tcp bytes, udp $udp bytes"
check "TCP and UDP captured without a filter" test "$tcp" -gt 0 -a "$udp" -gt 0

# 2. filter: udp
agent_yaml "interfaces: [v1]" "filter: udp"
kill -HUP "$agent"
t2=$(date +%s)
wait_log 'reloaded: .*capture made again \(1 interfaces\)'
wait_rrd $((t2 + 5))
t3=$(date +%s)
tcp=$(bytes $((t2 + 2)) $((t3 - 1)) bytes_tcp)
udp=$(bytes $((t2 + 2)) $((t3 - 1)) bytes_udp)
echo "filter udp: tcp $tcp bytes, udp $udp bytes"
check "after the reload to 'udp': UDP only" test "$tcp" = 0 -a "$udp" -gt 0

# 3. a filter that does not compile: refused, the old capture goes on
agent_yaml "interfaces: [v1]" "filter: 'udp and ('"
kill -HUP "$agent"
t4=$(date +%s)
wait_log 'reload refused: .*agent\.yaml:[0-9]+:[0-9]+: .*filter'
grep -E 'reload refused' "$tmp/agent.log" | tail -1
wait_rrd $((t4 + 4))
t5=$(date +%s)
tcp=$(bytes "$t4" $((t5 - 1)) bytes_tcp)
udp=$(bytes "$t4" $((t5 - 1)) bytes_udp)
echo "broken filter refused: tcp $tcp bytes, udp $udp bytes"
check "a broken filter refused, the old capture ('udp') still counting" \
    test "$tcp" = 0 -a "$udp" -gt 0

# 4. an interface that is not there: the new capture not applied, the old one goes on
agent_yaml "interfaces: [v1, kvlnone0]"
kill -HUP "$agent"
t6=$(date +%s)
wait_log 'the new capture is not applied: .*kvlnone0.*capturing as before'
wait_rrd $((t6 + 4))
t7=$(date +%s)
tcp=$(bytes "$t6" $((t7 - 1)) bytes_tcp)
udp=$(bytes "$t6" $((t7 - 1)) bytes_udp)
echo "missing interface: tcp $tcp bytes, udp $udp bytes"
check "a capture that cannot open not applied, the old one ('udp') still counting" \
    test "$tcp" = 0 -a "$udp" -gt 0
# 5. an interface added (lo: the agent's own traffic to the collector), the filter gone
agent_yaml "interfaces: [v1, lo]"
kill -HUP "$agent"
t8=$(date +%s)
wait_log 'reloaded: .*capture made again \(2 interfaces\)'
wait_rrd $((t8 + 4))
t9=$(date +%s)
tcp=$(bytes $((t8 + 2)) $((t9 - 1)) bytes_tcp)
echo "v1 and lo, no filter: tcp $tcp bytes on v1"
check "after the reload to [v1, lo] without a filter: TCP again on v1" test "$tcp" -gt 0
lo=$tmp/data/lab/_capture/capreload/lo.rrd
for _ in $(seq 100); do
    [ -f "$lo" ] && break
    sleep 0.1
done
check "the added interface lo archived" test -f "$lo"
kill -0 "$agent" 2>/dev/null || fail "the agent exited"
[ "$status" = 0 ] && echo "PASS: capture: applied by a reload; a bad one refused, the old kept"
exit $status
