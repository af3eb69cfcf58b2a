#!/bin/bash
# test_kswan_smoke.sh — the KSWAN benchmark (tests/bench/kswan/run) at a tiny size.
#
# kvl-loadgen --kswan at scale 0.002 (13 agents of every kind of site, 15 devices, 750
# interfaces, 16 probed links) with a 2 s step and a fifth of the devices going down and up,
# against a collector with archives, journal, the built-in rules and the board on. The
# benchmark's --check must hold (every interface and link archived, every device_down and
# device_up event acknowledged, device_down alerts raised), and its RESULT line must carry
# every key the issue names, each a number or na as the mode says.
#
#   bash tests/integration/test_kswan_smoke.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

LOADGEN="$KVL_BUILD/tests/bench/kvl-loadgen"
[ -x "$LOADGEN" ] || kvl_fail "$LOADGEN is not built"
OUT="$KVL_TMP/logs/kswan.log"
timeout 100 "$KVL_PY" "$KVL_REPO/tests/bench/kswan/run" --scale 0.002 --step 2 --minutes 0.4 \
    --down-pct 20 --sample 4 --check --data-base "$KVL_TMP" \
    --collector "$KVL_BUILD/kaaval-collector" --loadgen "$LOADGEN" >"$OUT" 2>&1 ||
    kvl_fail "the benchmark failed: $(grep -E 'CHECK|Error|refused|exited' "$OUT" | head -5)"
grep -q '^CHECK ok' "$OUT" || kvl_fail "no CHECK ok line"
line=$(grep '^RESULT ' "$OUT" | tail -1)
[ -n "$line" ] || kvl_fail "no RESULT line"
kvl_log "$line"
"$KVL_PY" - "$line" <<'PY' || kvl_fail "the RESULT line does not parse: $line"
import re, sys
keys = ["series", "samples_per_s", "collector_cpu_pct", "rss_mb", "disk_write_kb_per_update",
        "apply_lag_s_p99", "rrdcached_cpu_pct", "remote_write_lag_s_p99"]
kv = dict(p.split("=", 1) for p in sys.argv[1].split()[1:])
assert list(kv) == keys, list(kv)
num = re.compile(r"^\d+(\.\d+)?$")
for k in keys[:6]:
    assert num.match(kv[k]), (k, kv[k])
assert int(kv["series"]) > 10000 and float(kv["samples_per_s"]) > 1000, kv
assert kv["rrdcached_cpu_pct"] == "na" and kv["remote_write_lag_s_p99"] == "na", kv
PY
kvl_pass
