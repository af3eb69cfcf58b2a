#!/bin/bash
# test_board.sh — the NOC board in a real browser: starts a small state network on 127.0.0.1
# (a collector with its HTTP server serving dashboards/ and a site tree NOC → district →
# two blocks, two agents, one per block, each polling its own simulated device from its own
# snmpsim every second), then runs test_board.py, which drives headless Chromium through
# chromium-driver (python3-selenium): the kiosk view, the login, the tiles, the device the
# test stops (SIGSTOP of its snmpsim) turning red within 10 s, tile → site → device →
# interface graph, the acknowledgement; mini POP B's agent stopped: one topology_cut alert
# and its agent_lost held back behind it; no console errors; screenshots in
# <build>/test-artifacts/browser/.
#
#   bash tests/browser/test_board.sh [BUILD_DIR]
# Exit 77 (skipped) when chromium, chromedriver or python3-selenium is not installed.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

BUILD_ARG=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# python3-selenium is Debian's: the system's python3, whichever python3 is first on PATH
SEL_PY=
for py in "${KAAVAL_PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$py" ] || continue
    if "$py" -c 'import selenium.webdriver' >/dev/null 2>&1; then
        SEL_PY=$py
        break
    fi
done
CHROME=$(command -v chromium || command -v chromium-browser || true)
DRIVER=$(command -v chromedriver || true)
if [ -z "$SEL_PY" ] || [ -z "$CHROME" ] || [ -z "$DRIVER" ]; then
    echo "SKIP: test_board: needs chromium, chromium-driver and python3-selenium" \
        "(packaging/install-deps.sh)" >&2
    exit 77
fi

kvl_init "$BUILD_ARG"
T=$KVL_TMP
L=$T/logs
ART=$KVL_BUILD/test-artifacts/browser
mkdir -p "$T/rec-a" "$T/rec-b" "$T/data" "$ART"
rm -f "$ART"/*.png
kvl_make_rate_device "$T/rec-a/rtr-a.snmprec" "ge0:125000:62500:100" "ge1:50000:25000:100"
kvl_make_rate_device "$T/rec-b/rtr-b.snmprec" "ge0:250000:125000:1000"
kvl_free_port udp SNMP_A
kvl_free_port udp SNMP_B
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
cat >>"$T/collector.yaml" <<YAML
sites:
  - {name: noc-t, kind: noc, label: "Test NOC"}
  - {name: dhq-t, parent: noc-t, kind: dhq, label: "Test district"}
  - {name: bhq-a, parent: dhq-t, kind: bhq, label: "Block A"}
  - {name: bhq-b, parent: dhq-t, kind: minipop, label: "Mini POP B"}
http:
  listen: 127.0.0.1:$HTTP_PORT
  tls: false
  static_dir: $REPO/dashboards
  anonymous_viewer: true
web_url: http://127.0.0.1:$HTTP_PORT
lost_after: 3
alerts:
  root_cause: {hold: 2s, settle: 5s}
YAML
OP_PASSWORD=op-pass-$RANDOM$RANDOM
echo "$OP_PASSWORD" | "$KVL_BUILD/kaaval-collector" -c "$T/collector.yaml" --add-user op \
    --role operator >"$L/user.log" 2>&1 || kvl_fail "--add-user failed: $(cat "$L/user.log")"
KIOSK=$("$KVL_BUILD/kaaval-collector" -c "$T/collector.yaml" --add-token wall --role viewer \
    2>>"$L/user.log") || kvl_fail "--add-token failed: $(cat "$L/user.log")"
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec-a" "$SNMP_A"
SIM_A=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec-b" "$SNMP_B"
for s in a b; do
    kvl_agent_config "$T/agent-$s.yaml" "agent-$s" "bhq-$s" "$COL_PORT" 1s
    sed -i 's/timeout: 500ms/timeout: 300ms/' "$T/agent-$s.yaml"
done
kvl_agent_device "$T/agent-a.yaml" rtr-a "$SNMP_A" rtr-a
kvl_agent_device "$T/agent-b.yaml" rtr-b "$SNMP_B" rtr-b
sed -i 's/^reconnect_max: .*/&\nheartbeat: 1s/' "$T/agent-b.yaml" # lost 3 s after it stops
kvl_start_agent agent-a "$T/agent-a.yaml"
AGENT_A=$KVL_LAST_PID
kvl_start_agent agent-b "$T/agent-b.yaml"
AGENT_B=$KVL_LAST_PID
URL=http://127.0.0.1:$HTTP_PORT
kvl_wait_until 20 "the HTTP API" curl -sf "$URL/api/v1/status" -o /dev/null
kvl_wait_until 30 "rtr-a's interface archive" test -f "$T/data/bhq-a/rtr-a/ge0.rrd"
kvl_wait_until 30 "rtr-b's interface archive" test -f "$T/data/bhq-b/rtr-b/ge0.rrd"
kvl_sleep_checking 3 "$COL" "$AGENT_A" "$AGENT_B"

# the page's console, the browser's and the driver's logs stay with the test's logs
rc=0
KVL_URL=$URL KVL_OP_USER=op KVL_OP_PASSWORD=$OP_PASSWORD KVL_KIOSK=$KIOSK KVL_STOP_PID=$SIM_A \
    KVL_ISOLATE_PID=$AGENT_B \
    KVL_ARTEFACTS=$ART KVL_CHROME=$CHROME KVL_DRIVER=$DRIVER KVL_LOGS=$L \
    timeout 300 "$SEL_PY" "$HERE/test_board.py" >"$L/browser.log" 2>&1 || rc=$?
# the test thaws what it stopped; in case it could not (killed), thaw it here
kill -CONT "$SIM_A" "$AGENT_B" 2>/dev/null
cat "$L/browser.log" >&2
[ "$rc" -eq 0 ] || kvl_fail "the browser test failed (exit $rc); screenshots in $ART"
for p in "$COL" "$AGENT_A" "$AGENT_B"; do
    kvl_is_ours "$p" "$(kvl_prog_of "$p")" || kvl_fail "pid $p ($(kvl_prog_of "$p")) died during the test"
done
kvl_pass "board, kiosk, login, red tile, click-through, acknowledgement; screenshots in $ART"
