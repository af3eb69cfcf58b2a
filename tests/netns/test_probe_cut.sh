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
# The page too: the collector's built-in link_down rule sends to a webhook receiver (a small
# HTTP server of this script's, in A on 127.0.0.1, stamping each notification's arrival);
# from the cut to the link_down page and from the repair to its resolution, each within
# 15 s, and exactly one page and one resolution per cut (a repeated cut pages as the first).
# KEEP=1 keeps the work folder. Exit 77 (skipped) without root or tools.
set -eu

AGENT=${KVL_AGENT:-build/kaaval-agent}
COLLECTOR=${KVL_COLLECTOR:-build/kaaval-collector}
CUTS=${CUTS:-3}
HOLD=${HOLD:-8}
BOUND_MS=10000
PAGE_BOUND_MS=15000
. "$(dirname "$0")/lib.sh"
ns_init cut ip nft python3

P=kvlc$$
NA=${P}a
NT=${P}t
ns_add "$NA" "$NT"
ns_pair "$NA" "$NT" 10.82.0

PORT=5141
HOOK_PORT=5142
mkdir -p "$W/data" "$W/spool"
cat >"$W/collector.yaml" <<CFG
id: cut-collector
listen: 127.0.0.1:$PORT
data_dir: $W/data
log_level: info
archives: [step:1h]
consolidations: [AVERAGE]
insecure: true
receivers:
  - {name: hook, type: webhook, url: "http://127.0.0.1:$HOOK_PORT/"}
alerts:
  receiver: hook
CFG
cat >"$W/hook.py" <<'PY'
import http.server, json, sys, time
out = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        ms = int(time.time() * 1000)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        for a in body.get("alerts", []):
            out.write("%d %s %s\n" % (ms, a.get("rule"), a.get("status")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
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

: >"$W/hook.out"
ip netns exec "$NA" python3 "$W/hook.py" "$HOOK_PORT" "$W/hook.out" 2>"$W/hook.log" &
NS_PIDS="$NS_PIDS $!"
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

# The arrival (ms since 1970) of the COUNT-th page of link_down with STATUS at the webhook.
page_ms() {
    grep " link_down $1\$" "$W/hook.out" | sed -n "$2p" | cut -d' ' -f1
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
    if wait_for "$W/hook.out" ' link_down firing$' $k 30; then
        paged=$(($(page_ms firing $k) - cut))
    else
        paged=-1
    fi
    sleep "$((HOLD + k * 2 % 3)).$((k * 3 % 10))"
    ip netns exec "$NT" nft delete table inet kvlcut
    repair=$(now_ms)
    if wait_for "$W/collector.log" 'target_up' $k 30; then
        up=$(($(log_ms "$W/collector.log" 'target_up' $k) - repair))
    else
        up=-1
    fi
    if wait_for "$W/hook.out" ' link_down resolved$' $k 30; then
        resolved=$(($(page_ms resolved $k) - repair))
    else
        resolved=-1
    fi
    echo "cut $k: cut -> target_down ${down} ms, -> page ${paged} ms; repair -> target_up ${up} ms, -> resolution ${resolved} ms"
    r=0
    [ "$paged" -ge 0 ] && [ "$paged" -le $PAGE_BOUND_MS ] || r=1
    check "cut$k-page" $r "link_down paged ${paged} ms after the cut (at most $PAGE_BOUND_MS)"
    r=0
    [ "$resolved" -ge 0 ] && [ "$resolved" -le $PAGE_BOUND_MS ] || r=1
    check "cut$k-resolved" $r "resolution ${resolved} ms after the repair (at most $PAGE_BOUND_MS)"
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
pd=$(grep -c ' link_down firing$' "$W/hook.out" || true)
pr=$(grep -c ' link_down resolved$' "$W/hook.out" || true)
r=0
{ [ "$pd" = "$CUTS" ] && [ "$pr" = "$CUTS" ]; } || r=1
check pages $r "$pd link_down pages and $pr resolutions for $CUTS cuts"
grep 'target_' "$W/collector.log" | head -n 2
if [ "$FAIL" != 0 ]; then
    echo "--- agent log (probe lines) ---"
    grep '\[probe far\]' "$W/agent.log" | tail -n 20
    echo "--- collector log ---"
    tail -n 20 "$W/collector.log"
fi
exit $FAIL
