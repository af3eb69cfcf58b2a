#!/bin/sh
# test_probe_cut.sh — how soon a cut link becomes target_down, and its repair target_up, at
# the collector (ctest label netns; root).
#
#   A (agent and collector, 10.82.0.1; the agent ships to the collector on A's 127.0.0.1)
#     --veth-- T (the target, 10.82.0.2)
#
# The agent probes T with icmp at the default 20 probes a minute (one every 3 s). Once T
# answers, the link is cut CUTS times: an nftables table in T drops every packet (in and
# out), and taken away again after HOLD seconds. For each cut: the time from the cut to the
# collector's log line of target_down (expected: the next scheduled probe, up to 3 s, then
# its 100 ms timeout and the confirming probes, 3 x 250 ms, about a second), and from the
# repair to target_up (the next scheduled probe). The times come from the collector's log
# timestamps against the moments the script cut and repaired (same host clock); they are
# printed, and each must be within 10 s. Exactly one target_down and one target_up per cut.
# KEEP=1 keeps the work folder. Exit 77 (skipped) without root or tools.
set -eu

AGENT=${KVL_AGENT:-build/kaaval-agent}
COLLECTOR=${KVL_COLLECTOR:-build/kaaval-collector}
CUTS=${CUTS:-3}
HOLD=${HOLD:-8}
BOUND_MS=10000
. "$(dirname "$0")/lib.sh"
ns_init cut ip nft python3

P=kvlc$$
NA=${P}a
NT=${P}t
ns_add "$NA" "$NT"
ns_pair "$NA" "$NT" 10.82.0

PORT=5141
mkdir -p "$W/data" "$W/spool"
cat >"$W/collector.yaml" <<CFG
id: cut-collector
listen: 127.0.0.1:$PORT
data_dir: $W/data
log_level: info
archives: [step:1h]
consolidations: [AVERAGE]
insecure: true
CFG
cat >"$W/agent.yaml" <<CFG
id: cut-agent
site: test
collector: 127.0.0.1:$PORT
insecure: true
log_level: debug
flush_interval: 1s
spool: {dir: $W/spool}
probes:
  reflector: {enabled: false}
  targets:
    - {name: far, address: 10.82.0.2, type: icmp}
CFG
chmod 644 "$W/agent.yaml" "$W/collector.yaml"

ip netns exec "$NA" "$COLLECTOR" -c "$W/collector.yaml" >"$W/collector.out" 2>"$W/collector.log" &
NS_PIDS="$NS_PIDS $!"
i=0
until grep -q 'listening for agents' "$W/collector.log"; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "FAIL: the collector did not start"; cat "$W/collector.log"; exit 1; }
    sleep 0.1
done
ip netns exec "$NA" "$AGENT" -c "$W/agent.yaml" >"$W/agent.out" 2>"$W/agent.log" &
NS_PIDS="$NS_PIDS $!"

# wait_for FILE PATTERN COUNT SECONDS: until FILE holds COUNT lines matching PATTERN.
wait_for() {
    n=0
    while [ "$(grep -c "$2" "$1" || true)" -lt "$3" ]; do
        n=$((n + 1))
        [ $n -lt $(($4 * 10)) ] || return 1
        sleep 0.1
    done
}

# The log time of the COUNT-th line matching PATTERN, in ms since 1970.
log_ms() {
    line=$(grep "$2" "$1" | sed -n "$3p")
    date -d "${line%% *}" +%s%3N
}

now_ms() {
    date +%s%3N
}

wait_for "$W/agent.log" '\[probe far\] answering' 1 30 || {
    echo "FAIL: the target never answered"
    tail -n 20 "$W/agent.log"
    exit 1
}

k=1
while [ $k -le "$CUTS" ]; do
    # Cut and repair at moments that vary against the 3 s probe schedule.
    sleep "$((k % 3)).$((k * 7 % 10))"
    ip netns exec "$NT" nft -f - <<'NFT'
table inet kvlcut {
    chain in { type filter hook input priority -300; policy drop; }
    chain out { type filter hook output priority -300; policy drop; }
}
NFT
    cut=$(now_ms)
    if wait_for "$W/collector.log" 'target_down' $k 30; then
        down=$(($(log_ms "$W/collector.log" 'target_down' $k) - cut))
    else
        down=-1
    fi
    sleep "$((HOLD + k * 2 % 3)).$((k * 3 % 10))"
    ip netns exec "$NT" nft delete table inet kvlcut
    repair=$(now_ms)
    if wait_for "$W/collector.log" 'target_up' $k 30; then
        up=$(($(log_ms "$W/collector.log" 'target_up' $k) - repair))
    else
        up=-1
    fi
    echo "cut $k: cut -> target_down ${down} ms, repair -> target_up ${up} ms"
    r=0
    [ "$down" -ge 0 ] && [ "$down" -le $BOUND_MS ] || r=1
    check "cut$k-down" $r "target_down ${down} ms after the cut (at most $BOUND_MS)"
    r=0
    [ "$up" -ge 0 ] && [ "$up" -le $BOUND_MS ] || r=1
    check "cut$k-up" $r "target_up ${up} ms after the repair (at most $BOUND_MS)"
    sleep 2
    k=$((k + 1))
done

nd=$(grep -c 'target_down' "$W/collector.log" || true)
nu=$(grep -c 'target_up' "$W/collector.log" || true)
r=0
{ [ "$nd" = "$CUTS" ] && [ "$nu" = "$CUTS" ]; } || r=1
check once $r "$nd target_down and $nu target_up events for $CUTS cuts"
grep 'target_' "$W/collector.log" | head -n 2
if [ "$FAIL" != 0 ]; then
    echo "--- agent log (probe lines) ---"
    grep '\[probe far\]' "$W/agent.log" | tail -n 20
    echo "--- collector log ---"
    tail -n 20 "$W/collector.log"
fi
exit $FAIL
