#!/bin/bash
# tests/fuzz/run.sh — builds kaaval's libFuzzer targets with clang (ASan + UBSan) and runs
# each one for a bounded time.
#
#   tests/fuzz/run.sh [seconds-per-target]      default 60
#
# Targets run two at a time (KVL_FUZZ_JOBS, default: the number of CPUs), each on its own
# core; a target's output is printed whole when it ends.
#
# Targets: fuzz_wire (collector input), fuzz_config (YAML), fuzz_snmp_ber (SNMP responses).
# Every target tests/fuzz/fuzz_<name>.c is built into build-fuzz/ (override with
# KVL_FUZZ_BUILD=dir; extra CMake arguments in KVL_FUZZ_CMAKE_ARGS) and started from its
# seeds in tests/fuzz/corpus/fuzz_<name>/. What a run discovers goes to a working corpus
# in the build folder, never into the source tree; a crashing input is saved as
# build-fuzz/fuzz-artifacts/<target>-crash-<sha1>. Targets today: fuzz_wire (frames and
# messages), fuzz_config (agent.yaml, collector.yaml), fuzz_spool (spool segment and
# cursor files, in a folder under /tmp), fuzz_journal (the collector's journal segments
# and record reader, in a folder under /tmp), fuzz_seglog (segment files of both formats
# checked, repaired and read back, in a folder under /tmp), fuzz_icmp (echo replies),
# fuzz_stamp (STAMP and TWAMP-Light packets, both directions), fuzz_ingest (an agent's
# frames through the ingest's definitions tables, checks and time filter, with memory
# bounded by what they hold), fuzz_alerts_api (the alert book's silence and maintenance
# bodies, query parameters and `alerts:` section), fuzz_http_req (the HTTP server's path,
# query, Authorization, Cookie and JSON body checks), fuzz_downstate (the agent's
# down-state files), fuzz_engine (the rule engine's promises to the alert book across
# restarts), fuzz_notify (the notifiers' outbox records, `receivers:` and the webhook
# template), fuzz_trap_pdu (the trap port's packets), fuzz_rules (alert rules),
# fuzz_board_query (the board API's query parameters and the `sites:` list),
# fuzz_inventory_api (the inventory API's parameters, its files, agents' definitions),
# fuzz_graph_query (the graph API's parameters, cache key, rrd_graph_v's arguments),
# fuzz_nbrwalk (LLDP/CDP neighbour tables: indexes, the man-addr index, values),
# fuzz_capture_decode (captured frames of every link type, cut by any snap length),
# fuzz_captop (the capture's top-list records, as events and files carry them),
# fuzz_capture_pcapfile (pcap files of any bytes, read as libpcap reads them). The
# script exits non-zero if the build fails or any target crashes, leaks, times out or trips a
# sanitizer.
set -eu

secs=${1:-60}
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [seconds-per-target]" >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${KVL_FUZZ_BUILD:-$root/build-fuzz}

# All code, not only the fuzz targets, is compiled with coverage instrumentation
# (-fsanitize=fuzzer-no-link); the targets themselves link libFuzzer (tests/CMakeLists.txt).
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DKVL_FUZZ=ON -DKVL_ASAN=ON \
    -DKVL_UBSAN=ON -DBUILD_TESTING=ON -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link \
    ${KVL_FUZZ_CMAKE_ARGS:-}

targets=""
for src in "$root"/tests/fuzz/fuzz_*.c; do
    targets="$targets $(basename "$src" .c)"
done
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target $targets

mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
# run_one TARGET: one target for $secs seconds; its output in fuzz-logs/TARGET.log, printed
# when it ends; the exit status says whether it passed.
run_one() {
    local t=$1 work="$build/fuzz-corpus/$1" seeds="$root/tests/fuzz/corpus/$1"
    local log="$build/fuzz-logs/$1.log" limits="-rss_limit_mb=2048" rc=0
    mkdir -p "$work" "$seeds"
    # fuzz_ingest: memory must follow what a peer sends, so one allocation above 64 MiB (an
    # array sized by an id it names) or 512 MiB resident is a failure
    if [ "$t" = fuzz_ingest ]; then
        limits="-rss_limit_mb=512 -malloc_limit_mb=64"
    fi
    # shellcheck disable=SC2086
    "$build/tests/$t" -max_total_time="$secs" -timeout=10 $limits -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-artifacts/$t-" "$work" "$seeds" >"$log" 2>&1 || rc=$?
    echo "== $t: ${secs}s"
    cat "$log"
    if [ "$rc" -eq 0 ]; then
        echo "== $t: ok"
    else
        echo "== $t: FAILED (see $build/fuzz-artifacts/)" >&2
    fi
    return "$rc"
}

jobs=${KVL_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
status=0
running=0
for t in $targets; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit $status
