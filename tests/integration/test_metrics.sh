#!/bin/bash
# test_metrics.sh — GET /metrics (collector/metrics.h) against a real collector fed by a real
# agent polling a simulated device every 2 s:
#   1. without credentials 401, with a viewer token 200 and Content-Type text/plain version
#      0.0.4; every line valid exposition syntax, HELP and TYPE for every family, histograms
#      whole (metrics_check.py);
#   2. between two scrapes with batches flowing, the batch and sample counters and the HTTP
#      request count grow;
#   3. `metrics_anonymous: true`: a second collector answers a loopback scrape without
#      credentials (and still refuses a wrong token);
#   4. a real Prometheus (when installed) scrapes the collector with the token in a file and
#      its query API shows up == 1 and a kaaval metric;
#   5. dashboards/grafana/kaaval-collector.json is Grafana JSON whose every query names
#      metrics the collector exports.
#
#   bash tests/integration/test_metrics.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

T=$KVL_TMP
L=$T/logs
CHECK=$KVL_REPO/tests/integration/metrics_check.py
mkdir -p "$T/rec" "$T/data" "$T/data2"
kvl_make_rate_device "$T/rec/mdev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
kvl_free_port tcp COL2_PORT
kvl_free_port tcp HTTP2_PORT

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >>"$T/collector.yaml" <<YAML
http:
  listen: 127.0.0.1:$HTTP_PORT
  tls: false
YAML
TOKEN=$("$KVL_BUILD/kaaval-collector" -c "$T/collector.yaml" --add-token prom --role viewer \
    2>>"$L/check.log") || kvl_fail "--add-token failed: $(cat "$L/check.log")"
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec" "$SNMP"
kvl_agent_config "$T/agent.yaml" metrics-agent dhq-test "$COL_PORT" 2s
kvl_agent_device "$T/agent.yaml" mdev "$SNMP" mdev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID
URL="http://127.0.0.1:$HTTP_PORT"
kvl_wait_until 30 "the archive of mdev" test -f "$T/data/dhq-test/mdev/eth0.rrd"

# ------------------------------------------------------------------ 1: format, auth
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")
[ "$code" = 401 ] || kvl_fail "/metrics without credentials: $code, not 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer nope" "$URL/metrics")
[ "$code" = 401 ] || kvl_fail "/metrics with an unknown token: $code, not 401"
scrape() { # FILE [URL]
    curl -s -D "$1.head" -H "Authorization: Bearer $TOKEN" -o "$1" -w '%{http_code}' "${2:-$URL}/metrics"
}
code=$(scrape "$T/m1.txt")
[ "$code" = 200 ] || kvl_fail "/metrics with a viewer token: $code: $(head -c 300 "$T/m1.txt")"
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$T/m1.txt.head" ||
    kvl_fail "/metrics Content-Type: $(grep -i content-type "$T/m1.txt.head")"
"$KVL_PY" "$CHECK" parse "$T/m1.txt" >"$L/parse1.log" 2>&1 ||
    kvl_fail "the first scrape is not valid exposition: $(cat "$L/parse1.log")"
kvl_log "scrape 1: $(cat "$L/parse1.log")"
for m in kaaval_batches_applied_total kaaval_samples_applied_total kaaval_journal_bytes \
    kaaval_journal_segments kaaval_apply_lag_seconds_count kaaval_connections_open \
    kaaval_agents_connected 'kaaval_alerts_firing{severity="critical"}' \
    kaaval_http_request_duration_seconds_bucket kaaval_inventory_devices \
    process_resident_memory_bytes process_open_fds; do
    grep -qF "$m" "$T/m1.txt" || kvl_fail "the scrape lacks $m"
done
grep -q '^kaaval_agents_connected 1$' "$T/m1.txt" || kvl_fail "agents connected is not 1: $(grep agents_connected "$T/m1.txt")"
rss=$(awk '/^process_resident_memory_bytes /{print $2}' "$T/m1.txt")
"$KVL_PY" -c "import sys; v=float(sys.argv[1]); sys.exit(0 if 1e6 < v < 1e10 else 1)" "$rss" ||
    kvl_fail "resident memory $rss is not plausible"

# ------------------------------------------------------------------ 2: counters grow
kvl_sleep_checking 6 "$AGENT" "$COL"
curl -s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/sites" -o /dev/null
code=$(scrape "$T/m2.txt")
[ "$code" = 200 ] || kvl_fail "the second scrape: $code"
"$KVL_PY" "$CHECK" parse "$T/m2.txt" >"$L/parse2.log" 2>&1 ||
    kvl_fail "the second scrape is not valid exposition: $(cat "$L/parse2.log")"
"$KVL_PY" "$CHECK" grow "$T/m1.txt" "$T/m2.txt" kaaval_batches_applied_total \
    kaaval_samples_applied_total kaaval_batches_journaled_total kaaval_apply_lag_seconds \
    kaaval_sample_age_applied_seconds kaaval_http_requests_total kaaval_http_request_duration_seconds >"$L/grow.log" 2>&1 ||
    kvl_fail "between two scrapes: $(cat "$L/grow.log")"
kvl_log "grew: $(tr '\n' ';' <"$L/grow.log")"
# every group of samples applied within a minute of its time (the agent polls every few s)
age_n=$(awk '/^kaaval_sample_age_applied_seconds_count /{print $2}' "$T/m2.txt")
age_60=$(awk '/^kaaval_sample_age_applied_seconds_bucket\{le="60"\} /{print $2}' "$T/m2.txt")
[ -n "$age_n" ] && [ "$age_n" -gt 0 ] && [ "$age_60" = "$age_n" ] ||
    kvl_fail "sample age histogram: count '$age_n', within 60 s '$age_60'"
grep -q 'kaaval_http_requests_total{route="/metrics",code="200"}' "$T/m2.txt" ||
    kvl_fail "the scrapes themselves are not counted under their route"
grep -q 'kaaval_http_requests_total{route="other",code="401"}' "$T/m2.txt" ||
    kvl_fail "the refused scrapes are not counted (route other, 401)"
grep -q 'kaaval_http_requests_total{route="/api/v1/sites",code="200"}' "$T/m2.txt" ||
    kvl_fail "GET /api/v1/sites is not counted"

# ------------------------------------------------------------------ 3: metrics_anonymous
kvl_collector_config "$T/collector2.yaml" "$COL2_PORT" "$T/data2"
cat >>"$T/collector2.yaml" <<YAML
http:
  listen: 127.0.0.1:$HTTP2_PORT
  tls: false
  metrics_anonymous: true
YAML
kvl_start_collector collector2 "$T/collector2.yaml"
URL2="http://127.0.0.1:$HTTP2_PORT"
kvl_wait_until 20 "the second collector's HTTP server" curl -s -o /dev/null "$URL2/metrics"
code=$(curl -s -o "$T/anon.txt" -w '%{http_code}' "$URL2/metrics")
[ "$code" = 200 ] || kvl_fail "metrics_anonymous: a loopback scrape without credentials got $code"
"$KVL_PY" "$CHECK" parse "$T/anon.txt" >"$L/parse3.log" 2>&1 ||
    kvl_fail "the anonymous scrape is not valid exposition: $(cat "$L/parse3.log")"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL2/api/v1/status")
[ "$code" = 401 ] || kvl_fail "metrics_anonymous opened /api/v1/status too: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer nope" "$URL2/metrics")
[ "$code" = 401 ] || kvl_fail "metrics_anonymous: a wrong token got $code, not 401"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")
[ "$code" = 401 ] || kvl_fail "without metrics_anonymous a loopback scrape got $code"

# ------------------------------------------------------------------ 4: a real Prometheus
if command -v prometheus >/dev/null 2>&1; then
    kvl_free_port tcp PROM_PORT
    mkdir -p "$T/prom"
    printf '%s\n' "$TOKEN" >"$T/prom/token"
    cat >"$T/prom/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kaaval
    authorization:
      type: Bearer
      credentials_file: $T/prom/token
    static_configs:
      - targets: ['127.0.0.1:$HTTP_PORT']
YAML
    prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
        --web.listen-address="127.0.0.1:$PROM_PORT" >"$L/prometheus.log" 2>&1 &
    PROM=$!
    kvl_track "$PROM" prometheus
    prom_has() { # QUERY PYTHON-CONDITION-ON-v
        curl -s --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" \
            -o "$T/prom/q.json" || return 1
        "$KVL_PY" - "$T/prom/q.json" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
res = r.get("data", {}).get("result", [])
if r.get("status") != "success" or not res:
    sys.exit(1)
v = float(res[0]["value"][1])
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
    }
    kvl_wait_until 60 "Prometheus to scrape the collector (up == 1)" prom_has 'up{job="kaaval"}' 'v == 1'
    kvl_wait_until 30 "kaaval_batches_applied_total in Prometheus" prom_has \
        'kaaval_batches_applied_total{job="kaaval"}' 'v > 0'
    kvl_wait_until 30 "the request-time histogram in Prometheus" prom_has \
        'sum(kaaval_http_request_duration_seconds_count{job="kaaval"})' 'v > 0'
    kvl_log "Prometheus scraped the collector: up == 1, batches applied $(cat "$T/prom/q.json" | head -c 200)"
    kvl_stop "$PROM"
else
    kvl_log "prometheus is not installed: the real-scrape step is left out"
fi

# ------------------------------------------------------------------ 5: the Grafana dashboard
"$KVL_PY" "$CHECK" grafana "$KVL_REPO/dashboards/grafana/kaaval-collector.json" "$T/m2.txt" \
    >"$L/grafana.log" 2>&1 || kvl_fail "the Grafana dashboard: $(cat "$L/grafana.log")"
kvl_log "grafana: $(cat "$L/grafana.log")"

kvl_pass "/metrics valid, counters grow, anonymous only when asked, Prometheus scrapes it, Grafana JSON over exported metrics"
