#!/bin/bash
# test_link_cut.sh — an agent's link is cut for 45 s: it spools thousands of batches and,
# once the link is back, everything arrives, in order.
#
# The agent runs in a network namespace of its own (needs root: ip netns, veth), with
# snmpsim inside it on the namespace's own loopback serving DEVICES devices whose counters
# grow at known rates, polled every second and flushed every 10 ms, so that each device's
# poll travels in a batch of its own (DEVICES batches a second). A veth pair joins the
# namespace (10.231.N.2/30) to the root namespace (10.231.N.1/30, where the collector
# listens); nothing is routed anywhere else. The root end is set down for CUT_S seconds and up
# again. Then every batch the agent queued must have been written by the collector (its debug
# log), in sequence order, no update may have been refused as stale, and every device's
# archive must hold a known row for every step from its first update to its last, with the
# rows of the cut within 1 % of the true rate on average.
#
#   bash tests/integration/test_link_cut.sh [BUILD_DIR]      (as root; skipped otherwise)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

# Without root (or iproute2) the test cannot make its namespace: it says so and is skipped
# (exit 77, ctest's SKIP_RETURN_CODE), not failed.
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
    echo "SKIP: $KVL_TEST: needs root and iproute2 for ip netns and veth" >&2
    exit 77
fi

INTERVAL=1
DEVICES=60
CUT_S=45
NET=$((RANDOM % 250 + 1))
NS=kvl-lc-$$
VA=kvlc$$a # root end
VB=kvlc$$b # namespace end
IP_ROOT=10.231.$NET.1
IP_NS=10.231.$NET.2

_lc_cleanup() {
    local rc=$?
    ip link del "$VA" 2>/dev/null
    ip netns del "$NS" 2>/dev/null # gone for good once the processes in it are stopped below
    (exit "$rc")
    kvl_cleanup
}
trap _lc_cleanup EXIT

if ip -o addr show | grep -q " 10\.231\.$NET\."; then
    kvl_fail "10.231.$NET.0/30 is already in use here; run again"
fi
ip netns add "$NS" || kvl_fail "cannot create network namespace $NS"
ip link add "$VA" type veth peer name "$VB" || kvl_fail "cannot create a veth pair"
ip link set "$VB" netns "$NS"
ip addr add "$IP_ROOT/30" dev "$VA"
ip link set "$VA" up
ip -n "$NS" addr add "$IP_NS/30" dev "$VB"
ip -n "$NS" link set "$VB" up
ip -n "$NS" link set lo up
kvl_log "namespace $NS: $VB $IP_NS <-> $VA $IP_ROOT"
kvl_wait_until 10 "the veth to carry traffic" ip netns exec "$NS" ping -c 1 -W 1 "$IP_ROOT" >/dev/null

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
for ((i = 1; i <= DEVICES; i++)); do
    kvl_make_rate_device "$KVL_TMP/rec/dev$i.snmprec" "eth0:$((1000 * i)):$((500 * i)):1000"
done
SNMP_PORT=16100 # inside the namespace: nothing else listens there
kvl_free_port tcp COL_PORT

# snmpsim inside the namespace (serve.sh checks it answers there, on 127.0.0.1).
state=$(mktemp -d "$KVL_TMP/snmpsim.XXXXXX")
chmod 755 "$state"
SIM=$(ip netns exec "$NS" env SNMPREC_DIR="$KVL_TMP/rec" SNMPSIM_STATE="$state" SNMPSIM_WAIT=60 \
      bash "$KVL_SERVE" "$SNMP_PORT" 2>>"$KVL_TMP/logs/serve.log") \
    || kvl_fail "snmpsim did not start in $NS"
kvl_track "$SIM" snmpsimd
kvl_log "snmpsim pid $SIM in $NS"

kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data" debug
sed -i "s/^listen: .*/listen: $IP_ROOT:$COL_PORT/" "$KVL_TMP/collector.yaml"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID

KVL_AGENT_COLLECTORS="collector: $IP_ROOT:$COL_PORT" \
    kvl_agent_config "$KVL_TMP/agent.yaml" cut-agent lab 0 "${INTERVAL}s" debug
sed -i 's/^flush_interval: .*/flush_interval: 10ms/; s/timeout: 500ms/timeout: 300ms/' "$KVL_TMP/agent.yaml"
for ((i = 1; i <= DEVICES; i++)); do
    kvl_agent_device "$KVL_TMP/agent.yaml" "dev$i" "$SNMP_PORT" "dev$i"
done
ALOG=$KVL_TMP/logs/agent.log
CLOG=$KVL_TMP/logs/collector.log
ip netns exec "$NS" "$KVL_AGENT" -c "$KVL_TMP/agent.yaml" >>"$KVL_TMP/logs/agent.out" 2>>"$ALOG" &
AGENT=$!
kvl_track "$AGENT" kaaval-agent
_kvl_await_exec "$AGENT" kaaval-agent || kvl_fail "the agent did not start"
kvl_log "agent pid $AGENT in $NS"

F1=$KVL_TMP/data/lab/dev1/eth0.rrd
FN=$KVL_TMP/data/lab/dev$DEVICES/eth0.rrd
kvl_wait_until 40 "every device's archive" test -f "$FN"
kvl_wait_until 20 "the agent to connect" grep -q 'connected to collector' "$ALOG"
kvl_sleep_checking 5 "$AGENT" "$SIM" "$COL"

t_cut=$(date +%s)
q_cut=$(grep -c 'lane 0 queued' "$ALOG")
ip link set "$VA" down
kvl_log "link cut ($VA down) for $CUT_S s"
kvl_sleep_checking "$CUT_S" "$AGENT" "$SIM" "$COL"
q_up=$(grep -c 'lane 0 queued' "$ALOG")
t_up=$(date +%s)
ip link set "$VA" up
kvl_log "link restored; $((q_up - q_cut)) batches queued during the cut"
[ $((q_up - q_cut)) -ge 1000 ] || kvl_fail "only $((q_up - q_cut)) batches spooled during the cut; expected thousands"

last_needed=$(kvl_last_queued "$ALOG")
kvl_wait_until 90 "the collector to catch up" kvl_applied_last "$ALOG" "$CLOG" "$last_needed"
grep -E 'connected to collector' "$ALOG" | tail -n 1 | sed 's/^/    agent: /' >&2
kvl_sleep_checking 3 "$AGENT" "$SIM" "$COL"

sed -n 's/.*batch \([0-9]*\) lane 0 queued.*/\1/p' "$ALOG" | sort -n >"$KVL_TMP/queued"
sed -n 's/.*applied batch \([0-9]*\) lane 0:.*/\1/p' "$CLOG" >"$KVL_TMP/written"
sort -n -c "$KVL_TMP/written" 2>/dev/null || kvl_fail "bulk batches were written out of order"
sort -n -u "$KVL_TMP/written" -o "$KVL_TMP/written.sorted"
# The last few may still be on their way; everything up to the catch-up point must be there.
awk -v max="$last_needed" '$1 <= max' "$KVL_TMP/queued" >"$KVL_TMP/queued.needed"
missing=$(comm -23 "$KVL_TMP/queued.needed" "$KVL_TMP/written.sorted" | wc -l)
[ "$missing" -eq 0 ] || kvl_fail "$missing batches queued by the agent never written by the collector"
if grep -q 'older than their archive' "$CLOG"; then
    kvl_fail "the collector refused updates as stale: $(grep -c 'older than their archive' "$CLOG") batches"
fi
kvl_log "all $(wc -l <"$KVL_TMP/queued.needed") batches written, in order; no stale refusals"

# Every device's archive: no unknown row from the first update to the last, the cut covered.
bad=""
for ((i = 1; i <= DEVICES; i++)); do
    f=$KVL_TMP/data/lab/dev$i/eth0.rrd
    t_last=$(kvl_rrd_last_time "$f")
    step=$(kvl_rrd_step "$f")
    kvl_rrd_rows "$f" AVERAGE in_octets $((t_cut - 20)) "$t_last" >"$KVL_TMP/rows" \
        || kvl_fail "rrdtool fetch failed on $f"
    awk -v step="$step" -v rate=$((1000 * i)) -v cut="$t_cut" -v up="$t_up" -v last="$t_last" \
        -v what="dev$i" -v mtol="$KVL_MEAN_TOL" '
        $2 != "nan" && first == "" { first = $1 }
        first != "" && $1 > first && $1 <= last {
            if ($2 == "nan") { missing = missing " " $1; next }
            if ($1 > cut && $1 <= up) { k++; s += $2 }
        }
        END {
            if (missing != "") { printf "%s: unknown rows:%s\n", what, missing; exit 1 }
            if (k < (up - cut) / step - 2) { printf "%s: %d rows in the cut\n", what, k; exit 1 }
            if (s / k < rate * (1 - mtol) || s / k > rate * (1 + mtol)) {
                printf "%s: the cut rows average %.1f, not %d\n", what, s / k, rate; exit 1 }
        }' "$KVL_TMP/rows" >>"$KVL_TMP/verdict" 2>&1 || bad="$bad dev$i"
done
[ -z "$bad" ] || kvl_fail "archives with gaps or wrong rates:$bad; $(head -n 5 "$KVL_TMP/verdict")"
kvl_pass "link cut for ${CUT_S}s: $((q_up - q_cut)) batches spooled, all written in order, $DEVICES archives without a gap"
