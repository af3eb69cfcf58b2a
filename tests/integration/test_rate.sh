#!/bin/bash
# test_rate.sh — proves that interface traffic reaches the archives as the right rates.
#
# A simulated device (our own .snmprec, served by snmpsim's numeric variation) counts
# ifHCInOctets/ifHCOutOctets up at known rates on two interfaces, each with different in and
# out rates (so a swap shows), one of them named with a '/' (so the file-safe name is used).
# One agent polls it every 2 s into one collector. For every complete step the archives hold,
# the AVERAGE of in_octets and out_octets over them must be within 1 % of the true rate
# (each single step within 5 %: see KVL_STEP_TOL in lib.sh), no complete step may be unknown,
# and the device archive must say reachable=1, 2 interfaces and the right speed.
#
#   bash tests/integration/test_rate.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
STEPS=10 # complete steps to collect
# name:in bytes/s:out bytes/s:speed Mbit/s
IFACES=("eth0:125000:50000:100" "wan0/1:10000:250000:1000")

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
kvl_make_rate_device "$KVL_TMP/rec/ratedev.snmprec" "${IFACES[@]}"
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_agent_config "$KVL_TMP/agent.yaml" rate-agent lab "$COL_PORT" "${INTERVAL}s"
kvl_agent_device "$KVL_TMP/agent.yaml" ratedev "$SNMP_PORT" ratedev
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID

DEV=$KVL_TMP/data/lab/ratedev
files=()
for spec in "${IFACES[@]}"; do
    files+=("$DEV/$(kvl_file_safe "${spec%%:*}").rrd")
done
_all_exist() { local f; for f in "${files[@]}" "$DEV.rrd"; do [ -f "$f" ] || return 1; done; }
kvl_wait_until 30 "the archives ${files[*]} and $DEV.rrd" _all_exist
t_first=$(kvl_rrd_last_time "${files[0]}")
[ -n "$t_first" ] || kvl_fail "cannot read the last update of ${files[0]}"
step=$(kvl_rrd_step "${files[0]}")
[ "$step" = "$INTERVAL" ] || kvl_fail "archive step is '$step', expected the poll interval $INTERVAL"
kvl_log "first sample at $t_first; collecting $STEPS steps"

_enough() {
    local t
    t=$(kvl_rrd_last_time "${files[0]}")
    [ -n "$t" ] && [ "$t" -ge $((t_first + (STEPS + 2) * INTERVAL)) ]
}
kvl_wait_until $(((STEPS + 6) * INTERVAL)) "$STEPS steps of samples" _enough
for p in "$SIM" "$COL" "$AGENT"; do
    kvl_is_ours "$p" "$(kvl_prog_of "$p")" || kvl_fail "$(kvl_prog_of "$p") (pid $p) died"
done

# Rows of complete steps: a row stamped T covers (T-step, T]; the rate is known from the
# first sample on, which came at t_first or within the second after it (lastupdate gives
# whole seconds), so complete rows have T-step > t_first and T <= the last update.
check_rates() { # FILE DS RATE
    local file=$1 ds=$2 rate=$3 t_last
    t_last=$(kvl_rrd_last_time "$file")
    kvl_rrd_rows "$file" AVERAGE "$ds" $((t_first - 2 * step)) $((t_last + step)) >"$KVL_TMP/rows" \
        || kvl_fail "rrdtool fetch failed on $file"
    awk -v first="$t_first" -v last="$t_last" -v step="$step" -v rate="$rate" \
        -v want="$STEPS" -v what="$file $ds" -v mtol="$KVL_MEAN_TOL" -v stol="$KVL_STEP_TOL" '
        $1 - step > first && $1 <= last {
            n++
            if ($2 == "nan") { bad = bad sprintf(" %s:unknown", $1); next }
            sum += $2; k++
            d = ($2 - rate) / rate; if (d < 0) d = -d; if (d > worst) worst = d
            if (d > stol) bad = bad sprintf(" %s:%.1f", $1, $2)
        }
        END {
            if (n < want) { printf "%s: only %d complete steps (want %d)\n", what, n, want; exit 1 }
            if (bad != "") { printf "%s: steps off the rate %d B/s by more than %g %%:%s\n", what, rate, stol * 100, bad; exit 1 }
            mean = sum / k
            if (mean < rate * (1 - mtol) || mean > rate * (1 + mtol)) {
                printf "%s: mean %.1f over %d steps is not within %g %% of %d\n", what, mean, k, mtol * 100, rate; exit 1 }
            printf "%s: %d complete steps, mean %.1f B/s (true %d, error %+.3f %%, worst step %.2f %%)\n",
                   what, n, mean, rate, (mean - rate) * 100 / rate, worst * 100
        }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "$(cat "$KVL_TMP/verdict")"
    kvl_log "$(cat "$KVL_TMP/verdict")"
}

i=0
for spec in "${IFACES[@]}"; do
    IFS=: read -r _ rin rout mbps <<<"$spec"
    check_rates "${files[$i]}" in_octets "$rin"
    check_rates "${files[$i]}" out_octets "$rout"
    # The speed comes from ifHighSpeed (Mbit/s) as bits/s.
    read -r _ speed < <(kvl_rrd_last "${files[$i]}" speed_bps) || kvl_fail "cannot read speed_bps of ${files[$i]}"
    awk -v s="$speed" -v w="$((mbps * 1000000))" 'BEGIN { exit !(s == w) }' \
        || kvl_fail "${files[$i]}: speed_bps is $speed, expected $((mbps * 1000000))"
    i=$((i + 1))
done

read -r _ reach < <(kvl_rrd_last "$DEV.rrd" reachable) || kvl_fail "cannot read $DEV.rrd"
read -r _ nif < <(kvl_rrd_last "$DEV.rrd" interfaces) || kvl_fail "cannot read $DEV.rrd"
awk -v r="$reach" 'BEGIN { exit !(r == 1) }' || kvl_fail "$DEV.rrd: reachable is $reach, expected 1"
awk -v n="$nif" -v w="${#IFACES[@]}" 'BEGIN { exit !(n == w) }' \
    || kvl_fail "$DEV.rrd: interfaces is $nif, expected ${#IFACES[@]}"

kvl_pass "rates of ${#IFACES[@]} interfaces within 1 % over $STEPS+ steps"
