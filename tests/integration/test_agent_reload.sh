#!/bin/bash
# test_agent_reload.sh — SIGHUP makes a running agent apply a new configuration without loss.
#
# An agent polls 20 simulated devices (dev01..dev20, counters at known rates) every 2 s into a
# collector, and answers STAMP on its reflector, which a second agent (the mesh peer) probes
# 10 times a second. Then, while everything runs:
#   1. a configuration with dev01..dev05 removed, dev21..dev25 added, dev06 changed (another
#      timeout), a TCP probe added and the uplink's reconnect_max changed: the agent logs what it applied; the 14 unchanged
#      devices are not discovered again (their state, counters' readings included, is kept)
#      and their archives have a known value at every step across the reload; the added ones
#      get archives, the removed ones stop; the peer loses no STAMP probe (the reflector is
#      handed to the new prober with its sockets open);
#   2. a file with a syntax error: refused with file:line:column, polling goes on;
#   3. a change of the site (a key only a restart applies): refused naming it.
# The agent's pid is the same throughout, and the spool is never reopened.
#
#   bash tests/integration/test_agent_reload.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
DATA=$KVL_TMP/data
ALOG=$KVL_TMP/logs/agent.log
PLOG=$KVL_TMP/logs/peer.log
mkdir -p "$KVL_TMP/rec" "$DATA"

# 25 devices, one recording each (snmpsim: the community names the file)
kvl_make_rate_device "$KVL_TMP/rec/dev01.snmprec" "eth0:125000:50000:1000"
for i in $(seq -f %02g 2 25); do
    cp "$KVL_TMP/rec/dev01.snmprec" "$KVL_TMP/rec/dev$i.snmprec"
done
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_free_port udp REFL_PORT
kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$DATA"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID

# agent_config FILE FIRST LAST [SITE] [EXTRA_TARGET]: the agent under test polling devFIRST..
# devLAST (dev06 with a 400 ms timeout when CHANGED=1), its reflector on REFL_PORT.
agent_config() {
    local f=$1 site=${4:-lab}
    KVL_AGENT_SPOOL="spool: {dir: $KVL_TMP/agent.spool, sync_interval: 1s}" \
        kvl_agent_config "$f" reloaded "$site" "$COL_PORT" "${INTERVAL}s" debug
    # the reflector on a free port instead of the helper's "off"
    sed -i "s|reflector: {enabled: false}.*|reflector: {enabled: true, port: $REFL_PORT}\n  interval: 2s\n  targets: [${5:-}]|" "$f"
    for i in $(seq -f %02g "$2" "$3"); do
        kvl_agent_device "$f" "dev$i" "$SNMP_PORT" "dev$i"
        if [ "$i" = 06 ] && [ "${CHANGED:-0}" = 1 ]; then
            echo "    timeout: 400ms" >>"$f"
        fi
    done
}
agent_config "$KVL_TMP/agent.yaml" 1 20
# an empty `targets: []` is a valid list; check the file as the agent will
"$KVL_AGENT" -c "$KVL_TMP/agent.yaml" --check-config >/dev/null 2>"$KVL_TMP/logs/check.log" ||
    kvl_fail "the first configuration does not check: $(cat "$KVL_TMP/logs/check.log")"
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID

# The mesh peer: no devices, one STAMP target, the agent under test's reflector.
KVL_AGENT_SPOOL="" kvl_agent_config "$KVL_TMP/peer.yaml" peer lab "$COL_PORT" "${INTERVAL}s"
sed -i '/^devices:$/d' "$KVL_TMP/peer.yaml"
sed -i "s|reflector: {enabled: false}.*|reflector: {enabled: false}\n  interval: 2s\n  count: 20\n  clock: {sync: assumed}\n  targets: [{name: refl, type: stamp, address: 127.0.0.1, port: $REFL_PORT}]|" \
    "$KVL_TMP/peer.yaml"
kvl_start_agent peer "$KVL_TMP/peer.yaml"
PEER=$KVL_LAST_PID
LINK=$DATA/lab/_links/peer/refl.rrd

after() { tail -n +"$((lines_before + 1))" "$ALOG"; }
# seen REGEX: the agent's log says REGEX after lines_before (grep -c reads all: no SIGPIPE)
seen() { after | grep -c -- "$1" >/dev/null; }
arch() { echo "$DATA/lab/dev$1/eth0.rrd"; }
all_archived() {
    local i
    for i in $(seq -f %02g "$1" "$2"); do
        kvl_rrd_updated_since "$(arch "$i")" "$3" || return 1
    done
}
T0=$(date +%s)
kvl_wait_until 60 "archives of dev01..dev20" all_archived 1 20 "$T0"
kvl_wait_until 30 "3 more polls of every device" all_archived 1 20 $((T0 + 3 * INTERVAL))
kvl_wait_until 30 "the peer's link archive" test -f "$LINK"

# ------------------------------------------------------------- 1: a new device list ----------
CHANGED=1 agent_config "$KVL_TMP/agent.yaml.new" 6 25 lab \
    "{name: col, type: tcp, address: 127.0.0.1, port: $COL_PORT, count: 1}"
# and the uplink's settings: its connection made again, the spool's position kept
sed -i 's/^reconnect_max: 2s$/reconnect_max: 3s/' "$KVL_TMP/agent.yaml.new"
mv "$KVL_TMP/agent.yaml.new" "$KVL_TMP/agent.yaml"
lines_before=$(wc -l <"$ALOG")
T_R=$(date +%s)
kill -HUP "$AGENT"
kvl_wait_until 20 "the reload's summary line" seen 'reloaded: '
summary=$(after | grep 'reloaded: ')
kvl_log "agent: ${summary#* \[agent reloaded\] }"
echo "$summary" | grep -q '14 devices kept, 1 changed, 5 added, 5 removed' ||
    kvl_fail "the reload's summary is not 14 kept, 1 changed, 5 added, 5 removed: $summary"
echo "$summary" | grep -q '1 probe targets' || kvl_fail "the new probe target not applied: $summary"
echo "$summary" | grep -q 'collectors made again' || kvl_fail "the uplink not made again: $summary"
kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent stopped at SIGHUP"

# Run on for 5 intervals, then look at every archive.
kvl_sleep_checking $((5 * INTERVAL + 1)) "$AGENT" "$PEER" "$COL" "$SIM"
T_END=$(date +%s)
for i in $(seq -f %02g 7 20); do
    if grep -q "\[snmp dev$i\] discovery done" <(after); then
        kvl_fail "dev$i (unchanged) was discovered again after the reload: its state was not kept"
    fi
    f=$(arch "$i")
    # up to the last complete step: the archive's last update, less one step (on a loaded
    # machine the latest poll may still be on its way at T_END)
    last=$(kvl_rrd_last_time "$f")
    [ -n "$last" ] && [ "$last" -ge $((T_R + 3 * INTERVAL)) ] ||
        kvl_fail "dev$i (unchanged): archive last updated at ${last:-never}, reload at $T_R"
    rows=$(kvl_rrd_rows "$f" AVERAGE in_octets $((T_R - 3 * INTERVAL)) $((last - INTERVAL)))
    [ -n "$rows" ] || kvl_fail "no rows in $f around the reload"
    if grep -q nan <<<"$rows"; then
        kvl_fail "dev$i (unchanged): an unknown step in its archive across the reload:
$rows"
    fi
done
kvl_log "14 unchanged devices: no rediscovery, every step known from $((T_R - 3 * INTERVAL)) to their last complete step (at least $((T_R + 2 * INTERVAL)))"
grep -q '\[snmp dev06\] settings changed' <(after) || kvl_fail "dev06's change not said"
grep -q '\[snmp dev06\] discovery done' <(after) || kvl_fail "dev06 (changed) was not polled afresh"
for i in $(seq -f %02g 21 25); do
    kvl_rrd_updated_since "$(arch "$i")" "$T_R" || kvl_fail "dev$i (added) has no archive updated after the reload"
done
for i in $(seq -f %02g 1 5); do
    grep -q "\[snmp dev$i\] removed" <(after) || kvl_fail "dev$i's removal not said"
    last=$(kvl_rrd_last_time "$(arch "$i")")
    [ "$last" -le $((T_R + 1)) ] || kvl_fail "dev$i (removed) still archived at $last (reload at $T_R)"
done
kvl_log "dev06 polled afresh, dev21..dev25 archived, dev01..dev05 stopped"

# The peer's STAMP probes across the reload: none lost.
last=$(kvl_rrd_last_time "$LINK")
link_rows=$(kvl_rrd_rows "$LINK" MAX lost_pct $((T_R - 2 * INTERVAL)) $((${last:-T_END} - INTERVAL)))
kvl_log "the peer's lost_pct around the reload: $(tr '\n' ' ' <<<"$link_rows")"
[ -n "$link_rows" ] || kvl_fail "no rows in the peer's link archive"
awk '$2 == "nan" { unknown++ } $2 != "nan" && $2 + 0 > 0 { lost++ }
     END { exit (lost > 0 || unknown == NR) ? 1 : 0 }' <<<"$link_rows" ||
    kvl_fail "the peer lost STAMP probes through the agent's reload: $link_rows"
grep -q 'cannot\|not answering' "$PLOG" && kvl_fail "the peer saw its target fail: $(grep 'cannot\|not answering' "$PLOG" | head -3)"

# ------------------------------------------------------------- 2: a broken file ------------
cp "$KVL_TMP/agent.yaml" "$KVL_TMP/agent.yaml.good"
printf 'devices: [\n  - {name: broken\n' >>"$KVL_TMP/agent.yaml"
lines_before=$(wc -l <"$ALOG")
kill -HUP "$AGENT"
kvl_wait_until 20 "the refusal" seen 'reload refused'
refusal=$(after | grep 'reload refused')
echo "$refusal" | grep -Eq "agent\.yaml:[0-9]+:[0-9]+: " ||
    kvl_fail "the refusal does not name file:line:column: $refusal"
kvl_log "broken file: ${refusal#*\] }"
T_B=$(date +%s)
kvl_wait_until 20 "dev07 polled after the refused reload" kvl_rrd_updated_since "$(arch 07)" $((T_B + 1))
kvl_wait_until 20 "dev21 polled after the refused reload" kvl_rrd_updated_since "$(arch 21)" $((T_B + 1))

# ------------------------------------------------------------- 3: a restart-only key -------
sed 's/^site: lab$/site: elsewhere/' "$KVL_TMP/agent.yaml.good" >"$KVL_TMP/agent.yaml"
lines_before=$(wc -l <"$ALOG")
kill -HUP "$AGENT"
kvl_wait_until 20 "the refusal of a new site" seen 'reload refused'
seen 'reload refused: site cannot change while the agent runs' ||
    kvl_fail "the site's change not refused by name: $(after | grep 'reload refused')"
T_S=$(date +%s)
kvl_wait_until 20 "dev07 polled after the second refusal" kvl_rrd_updated_since "$(arch 07)" $((T_S + 1))

kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent stopped"
[ "$(grep -c 'kaaval-agent .* starting' "$ALOG")" = 1 ] || kvl_fail "the agent started more than once"
grep -q 'ERROR' <(grep -v 'reload refused' "$ALOG") &&
    kvl_fail "errors in the agent's log: $(grep ERROR "$ALOG" | grep -v 'reload refused' | head -3)"
kvl_pass "20 devices: 5 removed, 5 added, 1 changed, 14 kept without a gap; reflector answered throughout; bad files refused"
