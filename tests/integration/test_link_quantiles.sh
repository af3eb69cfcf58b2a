#!/usr/bin/env bash
# test_link_quantiles.sh — the interval's RTT quantiles on their way from a real agent's ICMP
# probes to the collector's link archives, and an archive made before they existed.
#
# The collector's data folder holds, before it starts, the link archive of target "old" as
# an earlier version made it: the 13 link data sources of old, with two rows (rtt_median_ms
# 3). An agent probes 127.0.0.1 ("old") and 127.0.0.2 ("new") every 2 s. Checks:
#   - "old" gains rtt_p10_ms, rtt_p25_ms, rtt_p75_ms, rtt_p90_ms (after mos, GAUGE, heartbeat
#     2 steps), keeps its old rows, and its new rows hold the quantiles; the collector says
#     so in one INFO line for that file, and no other (later rows do not rewrite it again)
#   - "new" is made with the 17 data sources at once
#   - in the last row of each: rtt_min <= p10 <= p25 <= median <= p75 <= p90 <= rtt_max
# Needs root (a raw ICMP socket; a new namespace's ping_group_range is closed): exit 77
# otherwise.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root for ICMP probes"
    exit 77
fi

kvl_free_port tcp COL_PORT
DATA=$KVL_TMP/data
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$DATA"

OLD_DS=(sent received lost_pct loss_burst duplicates reordered rtt_min_ms rtt_median_ms
    rtt_mean_ms rtt_max_ms rtt_stddev_ms jitter_ms mos)
NEW_DS=(rtt_p10_ms rtt_p25_ms rtt_p75_ms rtt_p90_ms)
OLD=$DATA/lab/_links/qa/old.rrd
NEW=$DATA/lab/_links/qa/new.rrd
mkdir -p "$(dirname "$OLD")"
T0=$(($(date +%s) / 2 * 2 - 60))
args=()
for ds in "${OLD_DS[@]}"; do
    args+=("DS:$ds:GAUGE:4:U:U")
done
rrdtool create "$OLD" --step 2 --start $((T0 - 2)) "${args[@]}" RRA:AVERAGE:0.5:1:1800 \
    RRA:MAX:0.5:1:1800 || kvl_fail "rrdtool create failed"
rrdtool update "$OLD" "$T0:10:10:0:0:0:0:1:3:3:5:1:0.1:4.4" "$((T0 + 2)):10:10:0:0:0:0:1:3:3:5:1:0.1:4.4" ||
    kvl_fail "rrdtool update failed"

kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID

cat >"$KVL_TMP/agent.yaml" <<EOF
id: qa
site: lab
collector: 127.0.0.1:$COL_PORT
insecure: true
log_level: info
flush_interval: 200ms
spool: {dir: $KVL_TMP/agent.spool, sync_interval: 1s}
traps: {listen: off}
probes:
  reflector: {enabled: false}   # many agents on one host; tests/netns covers the reflector
  interval: 2s
  count: 10
  targets:
    - {name: old, address: 127.0.0.1}
    - {name: new, address: 127.0.0.2}
EOF
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID

# The last update's values of a file (a copy: no lock on the collector's file), as
# "ds=value" lines.
last_values() {
    local snap
    snap=$(_kvl_snap "$1") || return 1
    rrdtool lastupdate "$snap" 2>/dev/null | awk '
        NR == 1 { n = split($0, names, " "); next }
        /:/ { for (i = 1; i <= n; i++) v[i] = $(i + 1) }
        END { for (i = 1; i <= n; i++) print names[i] "=" v[i] }'
}

# Both files have a row after the start with every quantile known.
quantiles_stored() {
    local f ds v
    kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent exited: $(tail -5 "$KVL_TMP/logs/agent.log")"
    for f in "$OLD" "$NEW"; do
        [ -f "$f" ] || return 1
        [ "$(kvl_rrd_last_time "$f")" -gt $((T0 + 2)) ] 2>/dev/null || return 1
        for ds in rtt_median_ms "${NEW_DS[@]}"; do
            v=$(last_values "$f" | sed -n "s/^$ds=//p")
            [ -n "$v" ] && [ "$v" != U ] || return 1
        done
    done
}
kvl_wait_until 60 "both link archives to hold RTT quantiles" quantiles_stored
# a few more intervals: the old file must not be rewritten again
kvl_sleep_checking 5 "$COL" "$AGENT"

snap=$(_kvl_snap "$OLD") || kvl_fail "cannot copy $OLD"
rrdtool info "$snap" >"$KVL_TMP/old.info"
for i in "${!OLD_DS[@]}"; do
    grep -qx "ds\[${OLD_DS[$i]}\].index = $i" "$KVL_TMP/old.info" ||
        kvl_fail "old archive: ${OLD_DS[$i]} is no longer data source $i"
done
for i in "${!NEW_DS[@]}"; do
    ds=${NEW_DS[$i]}
    grep -qx "ds\[$ds\].index = $((13 + i))" "$KVL_TMP/old.info" || kvl_fail "old archive lacks $ds"
    grep -qx "ds\[$ds\].type = \"GAUGE\"" "$KVL_TMP/old.info" || kvl_fail "old archive: $ds not a GAUGE"
    grep -qx "ds\[$ds\].minimal_heartbeat = 4" "$KVL_TMP/old.info" ||
        kvl_fail "old archive: $ds has not a heartbeat of 2 steps"
done
# the old rows kept: rtt_median_ms 3 in the row at T0 + 2, the quantiles unknown there
rrdtool fetch "$snap" AVERAGE -r 2 -s "$T0" -e $((T0 + 2)) >"$KVL_TMP/old.fetch"
"$KVL_PY" - "$KVL_TMP/old.fetch" $((T0 + 2)) <<'EOF' || kvl_fail "old rows not kept: $(cat "$KVL_TMP/old.fetch")"
import math, sys
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
names = lines[0]
row = next(l for l in lines[1:] if l[0] == sys.argv[2] + ":")
v = {n: float(x) for n, x in zip(names, row[1:])}
ok = v["rtt_median_ms"] == 3.0 and v["mos"] == 4.4 and math.isnan(v["rtt_p90_ms"])
sys.exit(0 if ok else 1)
EOF

n=$(grep -c "added 4 data sources the archive lacked" "$KVL_TMP/logs/collector.log")
[ "$n" = 1 ] || kvl_fail "expected one line about the data sources added, saw $n: $(grep 'data source' "$KVL_TMP/logs/collector.log")"
grep "added 4 data sources" "$KVL_TMP/logs/collector.log" | grep -q "_links/qa/old.rrd" ||
    kvl_fail "the line about the added data sources names another file"
grep -q "archive lacks\|update failed" "$KVL_TMP/logs/collector.log" &&
    kvl_fail "the collector refused an update: $(grep 'archive lacks\|update failed' "$KVL_TMP/logs/collector.log")"

snap=$(_kvl_snap "$NEW") || kvl_fail "cannot copy $NEW"
n=$(rrdtool info "$snap" | grep -c '^ds\[.*\]\.index')
[ "$n" = 17 ] || kvl_fail "the new archive has $n data sources, not 17"

for f in "$OLD" "$NEW"; do
    last_values "$f" >"$KVL_TMP/last"
    "$KVL_PY" - "$KVL_TMP/last" <<'EOF' || kvl_fail "$f: quantiles out of order: $(tr '\n' ' ' <"$KVL_TMP/last")"
import sys
v = dict(l.strip().split("=") for l in open(sys.argv[1]) if "=" in l)
order = ["rtt_min_ms", "rtt_p10_ms", "rtt_p25_ms", "rtt_median_ms", "rtt_p75_ms", "rtt_p90_ms",
         "rtt_max_ms"]
x = [float(v[k]) for k in order]
sys.exit(0 if all(a <= b for a, b in zip(x, x[1:])) and x[0] > 0 else 1)
EOF
    kvl_log "$(basename "$f"): $(grep -E '^rtt_(min|p10|p25|median|p75|p90|max)_ms=' "$KVL_TMP/last" | tr '\n' ' ')"
done

kvl_stop "$AGENT" || kvl_fail "the agent did not stop"
kvl_stop "$COL" || kvl_fail "the collector did not stop"
kvl_pass "link archives hold the RTT quantiles; the old one gained them once, its rows kept"
