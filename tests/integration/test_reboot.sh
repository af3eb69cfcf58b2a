#!/bin/bash
# test_reboot.sh — proves that a device reboot shows as unknown in the archives, never as a
# spike, and that the rates come back right afterwards.
#
# A simulated device (snmpsim numeric variation: sysUpTime and ifHC octet counters growing at
# known rates) is polled every 2 s. Its simulator is then restarted twice on the same port;
# each restart sets sysUpTime back to its initial value (snmpsim's numeric module counts from
# its own start time), which is what a device reboot looks like:
#   1. the same file again: the counters go back too (an agent that takes the drop for a
#      64-bit wrap would write a gigantic spike);
#   2. a file whose counters start higher than they ever were (counters that went on while
#      sysUpTime restarted): an agent that ignores sysUpTime would write a plausible-looking
#      but false burst, since the counters only went up.
# Afterwards, for in_octets and out_octets, in both AVERAGE and MAX:
#   - no row anywhere exceeds the true rate by more than KVL_STEP_TOL (5 %; the false spikes
#     this guards against are 10 to 10^13 times the rate; see lib.sh for why not 1 % per row),
#   - there is an unknown row around each restart,
#   - after each restart the rows are known again, each within 5 % and their mean within 1 %
#     of the true rate.
#
#   bash tests/integration/test_reboot.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
IN_RATE=125000
OUT_RATE=50000
PHASE_STEPS=7 # polls to let through after each (re)start before the next event

# First life: $KVL_TMP/rec, served from the start by kvl_rate_pipeline.
kvl_rate_pipeline reboot-agent "$INTERVAL" "$IN_RATE" "$OUT_RATE"
t_first=$T_FIRST
# Second life: counters 60 s of traffic ahead of anything the first lives can reach (each
# lasts well under 60 s), yet a jump small enough to look like real traffic on a 1 Gbit/s link.
mkdir -p "$KVL_TMP/rec-b"
kvl_make_rate_device "$KVL_TMP/rec-b/ratedev.snmprec" --counter-offset $((IN_RATE * 60)) \
    "eth0:$IN_RATE:$OUT_RATE:1000"

_phase() { # T: wait for PHASE_STEPS polls after T, checking that the daemons live
    kvl_wait_until $((PHASE_STEPS * INTERVAL + 20)) "$PHASE_STEPS polls after $1" \
        kvl_rrd_updated_since "$F" $(($1 + PHASE_STEPS * INTERVAL))
    kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent died"
    kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
}

_phase "$t_first"
kills=()
ups=()
for dir in rec rec-b; do
    kills+=("$(date +%s)")
    kvl_stop "$SIM" || kvl_fail "snmpsim (pid $SIM) would not stop"
    kvl_log "device 'rebooted' (snmpsim stopped); starting it again with $dir"
    kvl_start_snmpsim "$KVL_TMP/$dir" "$SNMP_PORT"
    SIM=$KVL_LAST_PID
    ups+=("$(date +%s)")
    _phase "${ups[-1]}"
done
t_last=$(kvl_rrd_last_time "$F")
step=$(kvl_rrd_step "$F")

for ds_rate in "in_octets:$IN_RATE" "out_octets:$OUT_RATE"; do
    ds=${ds_rate%%:*}
    rate=${ds_rate#*:}
    for cf in AVERAGE MAX; do
        kvl_rrd_rows "$F" "$cf" "$ds" $((t_first - step)) $((t_last + step)) >"$KVL_TMP/rows" \
            || kvl_fail "rrdtool fetch failed on $F"
        # After restart k (simulator answering again at ups[k], whole seconds): the agent's next
        # poll sees sysUpTime back and writes unknown, the one after starts a known rate, so
        # rows starting 3 steps after ups[k] and ending a step before the next kill must be
        # known and right.
        awk -v step="$step" -v rate="$rate" -v first="$t_first" -v last="$t_last" \
            -v kills="${kills[*]}" -v ups="${ups[*]}" -v what="$F $ds $cf" \
            -v mtol="$KVL_MEAN_TOL" -v stol="$KVL_STEP_TOL" '
            BEGIN { nk = split(kills, K, " "); split(ups, U, " ") }
            $1 - step > first && $1 <= last {
                t = $1; v = $2
                if (v != "nan" && v > rate * (1 + stol))
                    spikes = spikes sprintf(" %d:%.0f", t, v)
                for (k = 1; k <= nk; k++) {
                    if (t >= K[k] - step && t <= U[k] + 3 * step && v == "nan") gap[k] = 1
                    stop = (k < nk) ? K[k + 1] - step : last
                    if (t - step >= U[k] + 3 * step && t <= stop) {
                        n[k]++
                        if (v == "nan" || v < rate * (1 - stol) || v > rate * (1 + stol)) off[k] = off[k] " " t ":" v
                        else sum[k] += v
                    }
                }
            }
            END {
                bad = 0
                if (spikes != "") { printf "%s: rows above the true rate %d B/s + %g %%:%s\n", what, rate, stol * 100, spikes; bad = 1 }
                for (k = 1; k <= nk; k++) {
                    if (!gap[k]) { printf "%s: no unknown row around restart %d (stopped %d, up %d)\n", what, k, K[k], U[k]; bad = 1 }
                    if (n[k] < 2) { printf "%s: only %d rows after restart %d\n", what, n[k], k; bad = 1 }
                    if (off[k] != "") { printf "%s: after restart %d rows unknown or off the rate %d:%s\n", what, k, rate, off[k]; bad = 1 }
                    else if (n[k] >= 2 && (sum[k] / n[k] < rate * (1 - mtol) || sum[k] / n[k] > rate * (1 + mtol))) {
                        printf "%s: after restart %d the mean %.1f is not within %g %% of %d\n", what, k, sum[k] / n[k], mtol * 100, rate; bad = 1 }
                }
                if (!bad) printf "%s: no spike, unknown around %d restarts, rates right after each\n", what, nk
                exit bad
            }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" 2>&1 || kvl_fail "$(cat "$KVL_TMP/verdict")"
        kvl_log "$(cat "$KVL_TMP/verdict")"
    done
done

read -r _ reach < <(kvl_rrd_last "$KVL_TMP/data/lab/ratedev.rrd" reachable) \
    || kvl_fail "cannot read the device archive"
awk -v r="$reach" 'BEGIN { exit !(r == 1) }' || kvl_fail "ratedev.rrd: reachable is $reach at the end, expected 1"

kvl_pass "2 simulated reboots: unknown around each, no spike, rates right after"
