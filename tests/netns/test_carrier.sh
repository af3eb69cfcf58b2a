#!/bin/sh
# test_carrier.sh — an agent says in its log when its own link loses the carrier, and when
# it is back (agent/linkwatch.h; ctest label netns; root).
#
#   A (the agent, 10.83.0.1) --veth a0|s0-- B (10.83.0.2)
#
# The agent ships to a collector address nobody answers (it need not reach one). The test
# takes B's end of the veth down (A's end loses its carrier, as when the peer port or the
# cable goes) and up again, twice: each time exactly one "lost carrier on a0" line, then one
# "carrier back on a0" line, within 5 s; nothing about lo; nothing at start (the states
# found then are not changes). KEEP=1 keeps the work folder. Exit 77 without root or tools.
set -eu

AGENT=${KVL_AGENT:-build/kaaval-agent}
. "$(dirname "$0")/lib.sh"
ns_init carrier ip

P=kvlk$$
NA=${P}a
NB=${P}b
ns_add "$NA" "$NB"
ns_pair "$NA" "$NB" 10.83.0

cat >"$W/agent.yaml" <<EOF
id: carrier-agent
site: lab
collector: 10.83.0.2:5140
insecure: true
reconnect_max: 2s
traps: {listen: off}
probes:
  reflector: {enabled: false}
devices: []
EOF
ip netns exec "$NA" "$AGENT" -c "$W/agent.yaml" 2>"$W/agent.log" &
NS_PIDS="$NS_PIDS $!"
APID=$!

# lines LINE-TEXT: how many log lines hold it
lines() { grep -c "$1" "$W/agent.log" || true; }
wait_lines() { # TEXT N: until N lines hold TEXT (5 s at most)
    i=0
    while [ "$(lines "$1")" -lt "$2" ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ "$(lines "$1")" -ge "$2" ]
}
i=0
until grep -q 'kaaval-agent .* starting' "$W/agent.log" || [ $i -ge 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
sleep 1
check start "$( [ "$(lines 'carrier on\|carrier back')" -eq 0 ] && echo 0 || echo 1)" "no carrier line at start"

for round in 1 2; do
    ip -n "$NB" link set s0 down
    rc=0
    wait_lines 'lost carrier on a0' "$round" || rc=1
    check "lost-$round" $rc "lost carrier on a0 said ($(lines 'lost carrier on a0') lines)"
    ip -n "$NB" link set s0 up
    rc=0
    wait_lines 'carrier back on a0' "$round" || rc=1
    check "back-$round" $rc "carrier back on a0 said ($(lines 'carrier back on a0') lines)"
done
sleep 1
n_lost=$(lines 'lost carrier on a0')
n_back=$(lines 'carrier back on a0')
check once "$( [ "$n_lost" -eq 2 ] && [ "$n_back" -eq 2 ] && [ "$(lines ' on lo')" -eq 0 ] && echo 0 || echo 1)" \
    "exactly one line per change: $n_lost lost, $n_back back, none about lo"
kill -0 "$APID" 2>/dev/null
check running $? "the agent runs on"
grep '\[link ' "$W/agent.log" | head -n 4
exit "$FAIL"
