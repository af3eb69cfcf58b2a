#!/bin/bash
# test_capture_live.sh BUILD: the live capture (kaaval-agent --capture-live) on one end of a
# veth pair in a network namespace of the test's own, while tcpreplay sends onto the other:
#   1. the pcap of make_pcap.py replayed at 2,000 frames/s: the agent (started as root)
#      holds no capability once its ring is open; its figures are exactly tshark's and the
#      script's (compare.py; handshake times by count, the pacing changes them), and the
#      drops it reports are 0 with every frame the kernel took read;
#   2. the same frames 150 times at top speed into a 1 MiB ring while the agent is stopped
#      (SIGSTOP): the kernel drops what the ring cannot hold, the agent reports those drops,
#      and frames read + frames dropped = frames the kernel took = frames sent.
# Root, ip netns, tcpreplay, tshark and python3-scapy; exits 77 without them.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "not root: skipped"; exit 77; }
for c in ip tcpreplay tshark; do
    command -v "$c" >/dev/null || { echo "$c missing: skipped"; exit 77; }
done
py=""
for c in /usr/bin/python3 python3; do
    if "$c" -c "import scapy.all" 2>/dev/null; then
        py=$c
        break
    fi
done
[ -n "$py" ] || { echo "python3-scapy not installed: skipped"; exit 77; }
ns=kvlcap$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvl-capture-live.XXXXXX")
agent_pid=""
cleanup() {
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns" || { echo "ip netns add failed: skipped"; exit 77; }
ip netns exec "$ns" sh -c '
    sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up'
"$py" "$here/make_pcap.py" "$tmp/mix.pcap" "$tmp/mix.json" 2>"$tmp/make.log" || {
    cat "$tmp/make.log" >&2
    exit 1
}
frames=$(tshark -r "$tmp/mix.pcap" -T fields -e frame.number 2>/dev/null | wc -l)

# run_agent CONFIG OUT: the agent on v1 for one interval, in the background (its pid kept)
run_agent() {
    ip netns exec "$ns" "$build/kaaval-agent" -c "$1" --capture-live 1 >"$2" 2>"$2.err" &
    agent_pid=$!
    sleep 1 # the ring is open well before the first frame
}
# wait_agent: its exit, within 20 s
wait_agent() {
    for _ in $(seq 200); do
        kill -0 "$agent_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$agent_pid" 2>/dev/null; then
        echo "FAIL: the agent did not end its interval" >&2
        exit 1
    fi
    wait "$agent_pid" || { echo "FAIL: the agent failed:" >&2; cat "$tmp"/*.err >&2; exit 1; }
    agent_pid=""
}
field() { # field OUT KIND KEY: the value of KEY on the first line of KIND
    awk -v k="$2" -v f="$3" '$1 == k { for (i = 2; i <= NF; i++) { split($i, a, "=");
        if (a[1] == f) { print a[2]; exit } } }' "$1"
}

cat >"$tmp/paced.yaml" <<YAML
id: capture-live
site: lab
capture:
  interfaces: [v1]
  interval: 4s
  local_networks: [10.1.0.0/16, 2001:db8:1::/48]
  top_n: 1000
YAML
run_agent "$tmp/paced.yaml" "$tmp/paced.out"
# With its ring open the agent holds no capability any more (it started as root with all).
caps=$(awk '$1 == "CapEff:" || $1 == "CapPrm:" || $1 == "CapAmb:" { printf "%s%s", sep, $2;
    sep = " " }' "/proc/$agent_pid/status")
ip netns exec "$ns" tcpreplay -q --pps=2000 -i v0 "$tmp/mix.pcap" >"$tmp/replay1.log" 2>&1
wait_agent
status=0
echo "capabilities while capturing (effective, permitted, ambient): $caps"
if [ "$caps" != "0000000000000000 0000000000000000 0000000000000000" ]; then
    echo "FAIL: capabilities while capturing: $caps (effective, permitted, ambient)"
    status=1
fi
for k in received dropped if_dropped; do
    v=$(field "$tmp/paced.out" drops "$k")
    want=0
    [ "$k" = received ] && want=$frames
    if [ "$v" != "$want" ]; then
        echo "FAIL: paced replay: drops $k=$v, expected $want"
        status=1
    fi
done
KVL_CAPTURE_OUTPUT="$tmp/paced.out" "$py" "$here/compare.py" "$build/kaaval-agent" \
    "$tmp/mix.pcap" "$tmp/mix.json" "$tmp/paced.yaml" || status=1

cat >"$tmp/flood.yaml" <<YAML
id: capture-live
site: lab
capture:
  interfaces: [v1]
  interval: 6s
  buffer_mb: 1
  classify: false
YAML
run_agent "$tmp/flood.yaml" "$tmp/flood.out"
# The agent stopped while the frames come: the ring fills and the kernel drops the rest.
kill -STOP "$agent_pid"
ip netns exec "$ns" tcpreplay -q --topspeed --loop=150 -i v0 "$tmp/mix.pcap" \
    >"$tmp/replay2.log" 2>&1
kill -CONT "$agent_pid"
wait_agent
sent=$((frames * 150))
recv=$(field "$tmp/flood.out" drops received)
drop=$(field "$tmp/flood.out" drops dropped)
ifdrop=$(field "$tmp/flood.out" drops if_dropped)
read=$(field "$tmp/flood.out" capture frames_read)
total=$(field "$tmp/flood.out" total packets)
echo "flood: sent $sent, kernel took $recv, dropped $drop (interface $ifdrop), read $read"
if [ "$recv" != "$sent" ] || [ "$ifdrop" != 0 ] || [ $((read + drop)) != "$recv" ] ||
    [ "$total" != "$read" ] || [ "$drop" = 0 ]; then
    echo "FAIL: flood: read + dropped must be what the kernel took, which must be what was sent"
    status=1
fi
[ "$status" = 0 ] && echo "PASS: live capture: exact when nothing dropped; drops reported"
exit $status
