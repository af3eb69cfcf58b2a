#!/bin/bash
# test_remote_write.sh — remote-write out to a real Prometheus and a real VictoriaMetrics.
#
# A simulated device counts two interfaces up at known rates; one agent polls it every 2 s
# and probes 127.0.0.1 (ICMP) into one collector with `remote_write:` to both receivers (the
# Prometheus endpoint with a small queue). Then, with PromQL:
#   - the counters' rate from the raw samples Prometheus holds is within 1 % of the archive's
#     mean rate over the same steps (and of the true rate);
#   - constant gauges (speed_bps, the device's interfaces and reachable) equal the archive's
#     last value exactly;
#   - a moving gauge (the link's rtt_mean_ms) has the same samples in both receivers (to the
#     12 significant digits VictoriaMetrics keeps);
#   - both receivers stopped for a while: the collector's /metrics counts retries and, past
#     the Prometheus endpoint's small queue, drops (queue_full); after they come back,
#     VictoriaMetrics (large queue) holds every poll of the outage (catch-up, no gap);
#   - the interfaces' own labels (ifDescr) come along from the inventory;
#   - a reload that changes remote_write is refused (restart-only);
#   - every query and variable of the four dashboards in dashboards/grafana/ returns data
#     from Prometheus.
#
#   bash tests/integration/test_remote_write.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

for tool in prometheus victoria-metrics curl; do
    command -v "$tool" >/dev/null || kvl_fail "'$tool' not found: run packaging/install-deps.sh"
done
CHECK=("$KVL_PY" "$(dirname "${BASH_SOURCE[0]}")/rwrite_check.py")
DASH=$KVL_REPO/dashboards/grafana
INTERVAL=2
IFACES=("eth0:125000:50000:100" "wan0/1:10000:250000:1000")

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data" "$KVL_TMP/prom" "$KVL_TMP/vm"
kvl_make_rate_device "$KVL_TMP/rec/ratedev.snmprec" "${IFACES[@]}"
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
kvl_free_port tcp PROM_PORT
kvl_free_port tcp VM_PORT
PROM=http://127.0.0.1:$PROM_PORT
VM=http://127.0.0.1:$VM_PORT

printf 'global:\n  scrape_interval: 1h\n' >"$KVL_TMP/prometheus.yml"
start_prometheus() {
    prometheus --config.file="$KVL_TMP/prometheus.yml" --storage.tsdb.path="$KVL_TMP/prom" \
        --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver \
        >>"$KVL_TMP/logs/prometheus.log" 2>&1 &
    PROM_PID=$!
    kvl_track "$PROM_PID" prometheus
    kvl_wait_until 30 "Prometheus to be ready" curl -sf --noproxy '*' -m 2 -o /dev/null "$PROM/-/ready"
}
start_vm() {
    victoria-metrics -httpListenAddr "127.0.0.1:$VM_PORT" -storageDataPath "$KVL_TMP/vm" \
        -search.latencyOffset 1s -search.disableCache \
        >>"$KVL_TMP/logs/victoria-metrics.log" 2>&1 &
    VM_PID=$!
    kvl_track "$VM_PID" victoria-metrics
    kvl_wait_until 30 "VictoriaMetrics to be ready" curl -sf --noproxy '*' -m 2 -o /dev/null "$VM/health"
}
start_prometheus
start_vm

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data"
kvl_http_config "$KVL_TMP/collector.yaml" "$HTTP_PORT"
cat >>"$KVL_TMP/collector.yaml" <<EOF
remote_write:
  - name: prom
    url: $PROM/api/v1/write
    timeout: 2s
    max_queue: 150
    max_samples_per_send: 100
    shards: 1
    min_backoff: 200ms
    max_backoff: 1s
    external_labels: {region: test}
  - name: vm
    url: $VM/api/v1/write
    timeout: 2s
    min_backoff: 200ms
    max_backoff: 1s
    external_labels: {region: test}
EOF
kvl_start_http_collector collector "$KVL_TMP/collector.yaml" "$HTTP_PORT"
COL=$KVL_LAST_PID
kvl_add_token "$KVL_TMP/collector.yaml" rw-test viewer
kvl_agent_config "$KVL_TMP/agent.yaml" rw-agent lab "$COL_PORT" "${INTERVAL}s"
kvl_agent_device "$KVL_TMP/agent.yaml" ratedev "$SNMP_PORT" ratedev
# an ICMP probe of 127.0.0.1 for the link series
sed -i "s/^probes:$/probes:\n  interval: ${INTERVAL}s\n  count: 3\n  targets:\n    - {name: loopback, address: 127.0.0.1}/" \
    "$KVL_TMP/agent.yaml"
kvl_start_agent agent "$KVL_TMP/agent.yaml"

rw_metric() { # NAME ENDPOINT [REASON]: the collector's own figure
    curl -s --noproxy '*' -m 5 -H "Authorization: Bearer $KVL_TOKEN" \
        "http://127.0.0.1:$HTTP_PORT/metrics" |
        awk -v n="$1" -v e="$2" -v r="${3:-}" '
            index($0, n "{endpoint=\"" e "\"") == 1 && (r == "" || index($0, "reason=\"" r "\"")) { print $NF; exit }'
}

DEV=$KVL_TMP/data/lab/ratedev
ETH0=$DEV/eth0.rrd
SEL_IN='kaaval_interface_in_octets_total{device="ratedev",interface="eth0",site="lab",agent="rw-agent",region="test"}'
_have_steps() {
    local t
    [ -f "$ETH0" ] && t=$(kvl_rrd_last_time "$ETH0") && [ -n "$t" ] && [ "$t" -ge $((T_FIRST + 10 * INTERVAL)) ]
}
kvl_wait_until 30 "the first archive $ETH0" test -f "$ETH0"
T_FIRST=$(kvl_rrd_last_time "$ETH0")
kvl_wait_until 40 "10 steps in $ETH0" _have_steps
T_LAST=$(kvl_rrd_last_time "$ETH0")
_in_prom() { [ "$("${CHECK[@]}" series "$PROM" "$SEL_IN")" = 1 ]; }
kvl_wait_until 20 "$SEL_IN in Prometheus" _in_prom

# --- the interface's own labels come along (from the collector's inventory)
n=$("${CHECK[@]}" series "$PROM" 'kaaval_interface_in_octets_total{interface="wan0/1",ifDescr="Test interface wan0/1"}')
[ "$n" = 1 ] || kvl_fail "no wan0/1 series with the ifDescr label in Prometheus ($n)"

# --- counters: rate from the raw samples vs the archive's mean over the same steps
step=$(kvl_rrd_step "$ETH0")
T0=$((T_FIRST + 2 * step)) T1=$T_LAST
check_rate() { # DS IFACE TRUE_RATE
    local file got n arch sel
    file=$DEV/$(kvl_file_safe "$2").rrd
    sel="kaaval_interface_$1_total{device=\"ratedev\",interface=\"$2\"}"
    read -r got n < <("${CHECK[@]}" rate "$PROM" "$sel" "$T0" "$T1") || kvl_fail "no rate of $sel from Prometheus"
    arch=$(kvl_rrd_rows "$file" AVERAGE "$1" "$T0" "$T1" | awk -v lo="$T0" -v step="$step" '
        $1 - step >= lo && $2 != "nan" { s += $2; k++ } END { if (k) printf "%.6f", s / k }')
    [ -n "$arch" ] || kvl_fail "no archive rows of $file $1 in [$T0, $T1]"
    awk -v a="$arch" -v p="$got" -v t="$3" -v tol="$KVL_MEAN_TOL" 'BEGIN {
        d = (p - a) / a; if (d < 0) d = -d; e = (p - t) / t; if (e < 0) e = -e
        exit !(d <= tol && e <= tol) }' ||
        kvl_fail "$sel: rate $got from Prometheus ($n samples), archive mean $arch, true $3: more than $KVL_MEAN_TOL apart"
    kvl_log "$sel: Prometheus rate $got over $n samples, archive $arch, true $3"
}
check_rate in_octets eth0 125000
check_rate out_octets eth0 50000
check_rate in_octets wan0/1 10000
check_rate out_octets wan0/1 250000

# --- gauges, exact: the last value in Prometheus equals the archive's last value
check_gauge() { # FILE DS QUERY
    local want got
    read -r _ want < <(kvl_rrd_last "$1" "$2") || kvl_fail "cannot read $2 of $1"
    got=$("${CHECK[@]}" last "$PROM" "$3") || kvl_fail "no value for $3"
    awk -v a="$want" -v b="$got" 'BEGIN { exit !(a + 0 == b + 0) }' ||
        kvl_fail "$3 is $got in Prometheus, $want in $1"
    kvl_log "$3 = $got (archive $want)"
}
check_gauge "$ETH0" speed_bps 'kaaval_interface_speed_bps{device="ratedev",interface="eth0"}'
check_gauge "$DEV/$(kvl_file_safe wan0/1).rrd" speed_bps 'kaaval_interface_speed_bps{device="ratedev",interface="wan0/1"}'
check_gauge "$DEV.rrd" interfaces 'kaaval_device_interfaces{device="ratedev"}'
check_gauge "$DEV.rrd" reachable 'kaaval_device_reachable{device="ratedev"}'

# --- a moving gauge: the same samples in both receivers
RTT='kaaval_link_rtt_mean_ms{agent="rw-agent",target="loopback"}'
_rtt_both() { "${CHECK[@]}" same "$PROM" "$VM" "$RTT" "$(date +%s)" 2m >/dev/null 2>&1; }
kvl_wait_until 20 "$RTT in both receivers" _rtt_both
kvl_log "$RTT: $("${CHECK[@]}" same "$PROM" "$VM" "$RTT" "$(date +%s)" 2m)"

# --- the dashboards' queries
"${CHECK[@]}" dashboards "$PROM" "$DASH"/{interfaces,links,devices,capacity}.json >"$KVL_TMP/dash.out" 2>&1 ||
    kvl_fail "dashboard queries without data: $(cat "$KVL_TMP/dash.out")"
kvl_log "$(tail -n 1 "$KVL_TMP/dash.out")"

# --- both receivers away for a while: retries, drops past the small queue, then catch-up
kvl_stop "$PROM_PID"
kvl_stop "$VM_PID"
T_DOWN=$(date +%s)
kvl_log "receivers stopped at $T_DOWN"
_dropped() { [ "$(rw_metric kaaval_remote_write_samples_dropped_total prom queue_full)" -gt 0 ] 2>/dev/null; }
kvl_wait_until 30 "the prom endpoint's queue to overflow" _dropped
sleep 2
T_UP=$(date +%s)
retries_prom=$(rw_metric kaaval_remote_write_retries_total prom)
retries_vm=$(rw_metric kaaval_remote_write_retries_total vm)
dropped_vm=$(rw_metric kaaval_remote_write_samples_dropped_total vm queue_full)
queued_vm=$(rw_metric kaaval_remote_write_queue_samples vm)
[ "${retries_prom:-0}" -gt 0 ] && [ "${retries_vm:-0}" -gt 0 ] ||
    kvl_fail "no retries counted while the receivers were away (prom $retries_prom, vm $retries_vm)"
[ "${queued_vm:-0}" -gt 0 ] || kvl_fail "nothing queued for vm while it was away"
[ "${dropped_vm:-1}" = 0 ] || kvl_fail "vm's large queue dropped $dropped_vm samples"
kvl_log "away $((T_UP - T_DOWN)) s: retries prom $retries_prom vm $retries_vm, dropped prom $(rw_metric kaaval_remote_write_samples_dropped_total prom queue_full), queued vm $queued_vm"
start_prometheus
start_vm
_caught_up() { [ "$(rw_metric kaaval_remote_write_queue_samples vm)" -lt 200 ] 2>/dev/null; }
kvl_wait_until 30 "vm's queue to drain" _caught_up
sleep 3
# every poll of the outage is in VictoriaMetrics: the raw samples of eth0's counter between
# T_DOWN and T_UP come at most one poll interval (plus a second of jitter) apart
"${CHECK[@]}" raw "$VM" "$SEL_IN" "$((T_UP + 4))" "$((T_UP - T_DOWN + 12))s" >"$KVL_TMP/vm.raw" ||
    kvl_fail "no samples of $SEL_IN in VictoriaMetrics after the outage"
awk -v lo="$((T_DOWN - 2))" -v hi="$((T_UP + 2))" -v gap=$((INTERVAL + 1)) '
    $1 >= lo && $1 <= hi { if (p != "" && $1 - p > gap) { printf "gap %.1f s at %.1f\n", $1 - p, p; bad = 1 } p = $1; n++ }
    END { if (n < 3) { print "only " n " samples in the outage"; bad = 1 } exit bad }' "$KVL_TMP/vm.raw" >"$KVL_TMP/gap" ||
    kvl_fail "VictoriaMetrics lacks samples of the outage: $(cat "$KVL_TMP/gap")"
_prom_again() {
    local t
    t=$("${CHECK[@]}" raw "$PROM" "$SEL_IN" "$(date +%s)" 20s 2>/dev/null | tail -n 1 | cut -d' ' -f1)
    [ -n "$t" ] && awk -v t="$t" -v up="$T_UP" 'BEGIN { exit !(t > up) }'
}
kvl_wait_until 20 "new samples in Prometheus after its restart" _prom_again
# --- a reload that changes remote_write is refused (restart-only), the collector runs on
sed -i 's/^    max_backoff: 1s$/    max_backoff: 2s/' "$KVL_TMP/collector.yaml"
kill -HUP "$COL"
kvl_wait_until 10 "the reload's refusal" grep -q 'reload refused: .*remote_write changed: needs a restart' \
    "$KVL_TMP/logs/collector.log"
kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died at the reload"
lag=$(rw_metric kaaval_remote_write_lag_seconds vm)
last=$(rw_metric kaaval_remote_write_last_success_timestamp_seconds vm)
awk -v l="$lag" -v s="$last" -v now="$(date +%s)" 'BEGIN { exit !(l < 10 && now - s < 10) }' ||
    kvl_fail "vm: lag $lag s, last success at $last (now $(date +%s))"
sent=$(rw_metric kaaval_remote_write_samples_sent_total prom)
kvl_pass "rates within $KVL_MEAN_TOL of the archives, gauges exact, both receivers equal, retries and drops counted, catch-up without gap ($sent samples sent to prom)"
