#!/bin/bash
# test_ctl_status.sh — `kaavalctl status` against a real collector fed by a real agent polling
# two simulated devices (each its own snmpsim, every 2 s):
#   1. all up: exit 0, the summary line counts the site, the agent and both devices, and
#      nothing is listed as down; --json agrees (ok true, no devices down);
#   2. one simulator stopped (SIGSTOP by pid): within a bounded wait status exits 2 and names
#      that device (down, since when, why: the device_down alert's summary), and not the other;
#      --json parses and agrees (ok false, devices_down 1, that device);
#   3. SIGCONT: status returns to exit 0.
#
#   bash tests/integration/test_ctl_status.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

T=$KVL_TMP
L=$T/logs
CTL=$KVL_BUILD/kaavalctl
[ -x "$CTL" ] || kvl_fail "kaavalctl not built ($CTL)"
export HOME=$T/home
mkdir -p "$HOME" "$T/rec1" "$T/rec2" "$T/data"
unset KAAVAL_TOKEN KAAVAL_URL KAAVAL_PASSWORD KAAVAL_CACERT
kvl_make_rate_device "$T/rec1/sdev1.snmprec" "eth0:1000:2000:1000"
kvl_make_rate_device "$T/rec2/sdev2.snmprec" "eth0:3000:4000:1000"
kvl_free_port udp SNMP1
kvl_free_port udp SNMP2
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >"$T/sites.yaml" <<YAML
- {name: noc-st, kind: noc}
- {name: dhq-st, parent: noc-st, kind: dhq}
YAML
cat >>"$T/collector.yaml" <<YAML
sites: {file: sites.yaml}
YAML
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
kvl_add_token "$T/collector.yaml" cli viewer
TOKEN=$KVL_TOKEN
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec1" "$SNMP1"
SIM1=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec2" "$SNMP2"
SIM2=$KVL_LAST_PID
kvl_agent_config "$T/agent.yaml" status-agent dhq-st "$COL_PORT" 2s
sed -i 's/timeout: 500ms/timeout: 300ms/' "$T/agent.yaml"
kvl_agent_device "$T/agent.yaml" sdev1 "$SNMP1" sdev1
kvl_agent_device "$T/agent.yaml" sdev2 "$SNMP2" sdev2
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID
kvl_wait_until 30 "the archive of sdev1" test -f "$T/data/dhq-st/sdev1.rrd"
kvl_wait_until 30 "the archive of sdev2" test -f "$T/data/dhq-st/sdev2.rrd"
URL="http://127.0.0.1:$HTTP_PORT"
export KAAVAL_URL=$URL KAAVAL_TOKEN=$TOKEN

# status [ARGS...]: runs kaavalctl status into $T/st.out; its exit code in ST_RC
status() {
    ST_RC=0
    "$CTL" --token "$TOKEN" status "$@" >"$T/st.out" 2>"$T/st.err" || ST_RC=$?
}
all_up() {
    status
    [ "$ST_RC" = 0 ] && grep -q '2 devices' "$T/st.out"
}
kvl_wait_until 40 "status to say all up with both devices" all_up
cp "$T/st.out" "$L/status_up.txt"
grep -q '^1 site\|^2 sites, 1 agent, 2 devices' "$T/st.out" ||
    kvl_fail "the summary line is not as expected: $(cat "$T/st.out")"
grep -q 'all up$' "$T/st.out" || kvl_fail "all up is not said: $(cat "$T/st.out")"
grep -q '^device' "$T/st.out" && kvl_fail "a device is listed while all are up: $(cat "$T/st.out")"
status --json
[ "$ST_RC" = 0 ] || kvl_fail "status --json exit $ST_RC while all up: $(cat "$T/st.err")"
"$KVL_PY" - "$T/st.out" <<'PY' >"$L/json_up.log" 2>&1 || kvl_fail "status --json while all up: $(cat "$L/json_up.log")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["ok"] is True, j
assert j["counts"]["devices"] == 2 and j["counts"]["agents"] == 1, j["counts"]
assert j["counts"]["devices_down"] == 0 and j["devices"] == [], j
print(j["summary"])
PY
kvl_log "all up: $(cat "$L/json_up.log")"

# ------------------------------------------------------------------ one device stops
kill -STOP "$SIM2"
T_CUT=$SECONDS
names_sdev2() {
    status
    [ "$ST_RC" = 2 ] && grep -q '^device .*status-agent/sdev2 .* down' "$T/st.out"
}
kvl_wait_until 90 "status to exit 2 and name sdev2 down" names_sdev2
cp "$T/st.out" "$L/status_down.txt"
kvl_log "sdev2 stopped: status exit 2 after $((SECONDS - T_CUT)) s"
grep -q 'sdev1' "$T/st.out" && kvl_fail "status names sdev1, which is up: $(cat "$T/st.out")"
grep -q '1 device down' "$T/st.out" || kvl_fail "the summary does not count the device: $(cat "$T/st.out")"
# since when and why come with the alert once it fires
has_since() {
    status
    [ "$ST_RC" = 2 ] && grep -q '^device .*sdev2 .*down .*since [0-9-]* [0-9:]*Z (' "$T/st.out"
}
kvl_wait_until 60 "status to say since when sdev2 is down" has_since
status --json
[ "$ST_RC" = 2 ] || kvl_fail "status --json exit $ST_RC with sdev2 down"
"$KVL_PY" - "$T/st.out" <<'PY' >"$L/json_down.log" 2>&1 || kvl_fail "status --json with sdev2 down: $(cat "$L/json_down.log")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["ok"] is False, j
assert j["counts"]["devices_down"] == 1, j["counts"]
d = j["devices"][0]
assert d["device"] == "sdev2" and d["agent"] == "status-agent" and d["state"] == "down", d
assert d["since_ms"] and d["age_s"] is not None and d["age_s"] >= 0, d
assert d["why"], d
assert any(s["name"] in ("dhq-st", "noc-st") for s in j["sites"]), j["sites"]
print("%s; %s: %s" % (j["summary"], d["name"], d["why"]))
PY
kvl_log "down: $(cat "$L/json_down.log")"

# ------------------------------------------------------------------ back
kill -CONT "$SIM2"
back_up() {
    status
    [ "$ST_RC" = 0 ]
}
kvl_wait_until 90 "status to return to exit 0 after SIGCONT" back_up
grep -q 'all up$' "$T/st.out" || kvl_fail "all up is not said after SIGCONT: $(cat "$T/st.out")"
kvl_sleep_checking 1 "$AGENT" "$COL" "$SIM1" "$SIM2"

# usage errors: exit 2
rc=0
"$CTL" status --loss nope >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || kvl_fail "status --loss nope: exit $rc, not 2"
rc=0
"$CTL" --url "http://127.0.0.1:1" status >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || kvl_fail "status against nothing: exit $rc, not 1"

kvl_pass "status 0 when up, 2 naming the stopped device (text and JSON), 0 again after SIGCONT"
