#!/bin/bash
# test_systemd.sh — the daemons under systemd's rules (packaging/systemd/):
#   1. both units pass `systemd-analyze verify` (their ExecStart pointed at this build) with
#      nothing said, and `systemd-analyze security --offline=true` rates their exposure at
#      most MAX_EXPOSURE (printed); the agent's unit keeps exactly CAP_NET_RAW and
#      CAP_NET_BIND_SERVICE, the collector's none;
#   2. the notify protocol, as systemd speaks it, without systemd: a datagram socket of the
#      test's own as NOTIFY_SOCKET (notify_rx.py), WATCHDOG_USEC=1 s. The collector and then an
#      agent each send READY=1 with a STATUS once they serve (the collector's STATUS says
#      "listening for agents" once its journal is replayed), WATCHDOG=1 about every 0.5 s;
#      a daemon stopped (SIGSTOP: a hung loop) sends no ping for as long, and pings again once
#      it runs; SIGHUP stops neither: each reloads (RELOADING=1, its summary line, READY=1
#      again);
#      SIGTERM: STOPPING=1. Without NOTIFY_SOCKET nothing of this happens (every other test).
#
#   bash tests/integration/test_systemd.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
command -v systemd-analyze >/dev/null 2>&1 || {
    echo "SKIP: systemd-analyze missing (Debian's systemd package)"
    exit 77
}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
UNITS=$(cd "$HERE/../../packaging/systemd" && pwd)
T=$KVL_TMP
L=$T/logs
MAX_EXPOSURE=3.0

# ------------------------------------------------------------------ 1: the units ----------
mkdir -p "$T/units"
B=$(cd "$KVL_BUILD" && pwd) # systemd wants absolute paths
for u in kaaval-agent kaaval-collector; do
    sed "s|^ExecStart=/usr/bin/$u |ExecStart=$B/$u |" "$UNITS/$u.service" >"$T/units/$u.service"
    grep -q "^ExecStart=$B/$u " "$T/units/$u.service" || kvl_fail "$u.service: no ExecStart of /usr/bin/$u"
done
(cd "$T/units" && systemd-analyze verify --man=no ./kaaval-agent.service ./kaaval-collector.service) \
    >"$T/verify.out" 2>&1 || kvl_fail "systemd-analyze verify: $(cat "$T/verify.out")"
[ ! -s "$T/verify.out" ] || kvl_fail "systemd-analyze verify has remarks: $(cat "$T/verify.out")"
for u in kaaval-agent kaaval-collector; do
    (cd "$T/units" && systemd-analyze security --offline=true "./$u.service") >"$T/$u.security" 2>&1 ||
        true # its exit status says whether a threshold was passed; the figure is checked here
    x=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$T/$u.security")
    [ -n "$x" ] || kvl_fail "$u: no exposure level in: $(tail -n 3 "$T/$u.security")"
    awk -v x="$x" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(x <= m) }' ||
        kvl_fail "$u: exposure $x, more than $MAX_EXPOSURE: $(grep '✗' "$T/$u.security" | head -n 20)"
    kvl_log "$u.service: verify clean, exposure $x (at most $MAX_EXPOSURE)"
done
caps() { sed -n "s/^$1=//p" "$UNITS/$2.service"; }
[ "$(caps CapabilityBoundingSet kaaval-agent)" = "CAP_NET_RAW CAP_NET_BIND_SERVICE" ] &&
    [ "$(caps AmbientCapabilities kaaval-agent)" = "CAP_NET_RAW CAP_NET_BIND_SERVICE" ] ||
    kvl_fail "the agent's unit does not keep exactly CAP_NET_RAW and CAP_NET_BIND_SERVICE"
[ -z "$(caps CapabilityBoundingSet kaaval-collector)" ] && [ -z "$(caps AmbientCapabilities kaaval-collector)" ] &&
    grep -q '^CapabilityBoundingSet=$' "$UNITS/kaaval-collector.service" ||
    kvl_fail "the collector's unit keeps a capability"

# ------------------------------------------------------------------ 2: notify -------------
cat >"$T/notify_rx.py" <<'PY'
import os, socket, sys, time
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
with open(out, "a", buffering=1) as f:
    while True:
        msg = s.recv(4096).decode(errors="replace")
        for line in msg.split("\n"):
            f.write("%.3f %s\n" % (time.time(), line))
PY
start_rx() { # NAME: a receiver on $T/NAME.sock writing $T/NAME.msgs
    "$KVL_PY" "$T/notify_rx.py" "$T/$1.sock" "$T/$1.msgs" >>"$L/notify_rx.log" 2>&1 &
    kvl_track $! notify_rx.py
    kvl_wait_until 10 "the notify socket $1" test -S "$T/$1.sock"
}
count() { grep -c " $2" "$T/$1.msgs" 2>/dev/null || true; }

# check_daemon NAME PID: READY with a STATUS, pings about every 0.5 s, none while stopped
check_daemon() {
    local n=$1 pid=$2 a b c
    kvl_wait_until 30 "$n's READY=1" grep -q ' READY=1$' "$T/$n.msgs"
    grep -q ' STATUS=..*' "$T/$n.msgs" || kvl_fail "$n: READY without a STATUS: $(cat "$T/$n.msgs")"
    sleep 3
    a=$(count "$n" 'WATCHDOG=1$')
    [ "$a" -ge 4 ] || kvl_fail "$n: $a watchdog pings in the first 3 s (WATCHDOG_USEC 1 s: want ~6)"
    kill -STOP "$pid"
    sleep 0.3 # a ping already on its way
    b=$(count "$n" 'WATCHDOG=1$')
    sleep 2
    c=$(count "$n" 'WATCHDOG=1$')
    kill -CONT "$pid"
    [ "$c" -eq "$b" ] || kvl_fail "$n: $((c - b)) pings while its loop was stopped"
    sleep 2
    [ "$(count "$n" 'WATCHDOG=1$')" -ge $((c + 2)) ] || kvl_fail "$n: no pings once running again"
    kvl_log "$n: READY ($(grep -m1 ' STATUS=' "$T/$n.msgs" | cut -d' ' -f2-)), $a pings in 3 s, none while stopped, again after"
}

start_rx col
kvl_free_port tcp COL_PORT
kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
export NOTIFY_SOCKET=$T/col.sock WATCHDOG_USEC=1000000
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
unset NOTIFY_SOCKET WATCHDOG_USEC
check_daemon col "$COL"
# READY as soon as it is made, then the ingest's STATUS once the journal is replayed
grep -q " STATUS=listening for agents on 127.0.0.1:$COL_PORT\$" "$T/col.msgs" ||
    kvl_fail "the collector's status after its replay: $(grep STATUS "$T/col.msgs")"

start_rx agent
kvl_agent_config "$T/agent.yaml" sd-agent lab "$COL_PORT" 5s
sed -i 's/^devices:$/devices: []/' "$T/agent.yaml"
export NOTIFY_SOCKET=$T/agent.sock WATCHDOG_USEC=1000000
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID
unset NOTIFY_SOCKET WATCHDOG_USEC
check_daemon agent "$AGENT"
grep -q ' STATUS=polling 0 devices for site lab$' "$T/agent.msgs" ||
    kvl_fail "the agent's status: $(grep STATUS "$T/agent.msgs")"

# SIGHUP (what `kill -HUP` and systemctl reload send): the agent reads its file again and
# says so to systemd, RELOADING=1 then READY=1 again (the unit's ExecReload= waits for it).
# reready NAME: a READY=1 came after the first RELOADING=1.
reready() { awk '/ RELOADING=1$/ { r = 1 } r && / READY=1$/ { ok = 1 } END { exit !ok }' "$T/$1.msgs"; }
kill -HUP "$AGENT"
kvl_wait_until 10 "the agent's READY=1 after RELOADING=1" reready agent
grep -q 'reloaded: devices unchanged' "$L/agent.log" ||
    kvl_fail "the agent's reload not said: $(grep -i reload "$L/agent.log")"
# SIGHUP stops neither daemon
kill -HUP "$COL"
sleep 2
kvl_is_ours "$COL" kaaval-collector && kvl_is_ours "$AGENT" kaaval-agent ||
    kvl_fail "a daemon stopped at SIGHUP"
# the collector reloads: one summary line, RELOADING=1 then READY=1 again
n=$(grep -c 'reloaded: ' "$L/collector.log" || true)
[ "$n" -eq 1 ] || kvl_fail "collector: $n reload summaries at SIGHUP, not 1"
kvl_wait_until 10 "the collector's READY=1 after RELOADING=1" reready col
kvl_sleep_checking 2 "$COL" "$AGENT"

for n in agent col; do
    pid=$([ "$n" = agent ] && echo "$AGENT" || echo "$COL")
    kvl_stop "$pid" TERM || kvl_fail "could not stop $n"
    grep -q ' STOPPING=1$' "$T/$n.msgs" || kvl_fail "$n: no STOPPING=1 at SIGTERM"
done
kvl_pass "units verified (exposure at most $MAX_EXPOSURE), READY, STATUS, watchdog from the loop, SIGHUP survived, STOPPING"
