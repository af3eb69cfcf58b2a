# shellcheck shell=bash disable=SC2034  # variables here are set for the test scripts
# lib.sh — shared helpers for kaaval's integration tests. Sourced, never run:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     kvl_init "$@"            # $1: the build folder (default <repo>/build)
#
# What it gives a test:
#   - a private temp folder ($KVL_TMP, logs in $KVL_TMP/logs), removed when the test passes
#     and kept (its path printed) when it fails or when KAAVAL_KEEP_TMP=1;
#   - free ports on 127.0.0.1 (kvl_free_port tcp|udp VAR); nothing here uses another address;
#   - snmpsim started through <shared>/testdata/snmprec/serve.sh (kvl_start_snmpsim), the
#     collector and agents started in the background (kvl_start_collector, kvl_start_agent);
#     every pid is recorded, and an EXIT trap stops each one by pid (TERM, then KILL), after
#     checking that the pid still runs the program that was started; a detached watchdog
#     does the same if the test itself is killed without a chance to run its trap;
#   - bounded waits (kvl_wait_until: a deadline in seconds and a bounded number of tries);
#   - readers for RRD files (kvl_rrd_last, kvl_rrd_rows) and a generator of small .snmprec
#     files whose counters grow at known rates (kvl_make_rate_device).
#
# Environment:
#   KAAVAL_SHARED_DIR   the shared folder (default <repo>/../shared)
#   KAAVAL_SNMPREC_DIR  the recorded devices (default $KAAVAL_SHARED_DIR/testdata/snmprec)
#   KAAVAL_KEEP_TMP=1   keep the temp folder even when the test passes
#   KAAVAL_PYTHON       python3 to use for small helpers (default: python3 on PATH)
#
# Failures print "FAIL: <test>: <what>" followed by the tail of every log the test wrote.

set -u
set -o pipefail
umask 022 # snmpsim drops to `nobody`: the files and folders it reads must be world-readable

KVL_TEST=$(basename "${0%.sh}")
KVL_PIDS=()          # "pid:program" of everything started, in order
KVL_TMP=""
KVL_LAST_PID=""
KVL_PORTS_GIVEN=" "
KVL_T0=$(date +%s)

# How close archived rates must be to the true ones. A step's rate is a counter difference
# over the difference of the agent's timestamps, and those carry the scheduling jitter of two
# processes (snmpsim computes the value, the agent stamps the answer): on a machine loaded by
# other tests a single 2 s step was seen 1.1 % off, though 0.1 % is usual. Over several steps
# the jitter cancels (only the end points count). So a mean over the steps must be within
# KVL_MEAN_TOL, and each single step within KVL_STEP_TOL, still far below any false spike
# (a reboot or a wrap taken for traffic is 10 to 10^13 times the rate).
KVL_MEAN_TOL=0.01
KVL_STEP_TOL=0.05

# ------------------------------------------------------------------- messages ----------------

kvl_log() {
    printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "$KVL_TEST" "$*" >&2
}

# kvl_fail MESSAGE...: reports the failure with the logs' tails and exits 1 (the trap cleans up).
kvl_fail() {
    printf '\nFAIL: %s: %s\n' "$KVL_TEST" "$*" >&2
    if [ -n "$KVL_TMP" ] && [ -d "$KVL_TMP/logs" ]; then
        local f
        for f in "$KVL_TMP"/logs/*; do
            [ -s "$f" ] || continue
            printf -- '--- last lines of %s ---\n' "$f" >&2
            tail -n 25 "$f" >&2
        done
    fi
    exit 1
}

kvl_pass() {
    printf 'PASS: %s: %s (%ss)\n' "$KVL_TEST" "$*" "$(($(date +%s) - KVL_T0))"
    exit 0
}

# ------------------------------------------------------------------- set-up ------------------

# kvl_init [BUILD_DIR]: finds the binaries, the shared data and the tools; makes $KVL_TMP.
kvl_init() {
    KVL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    KVL_BUILD=${1:-$KVL_REPO/build}
    KVL_AGENT=$KVL_BUILD/kaaval-agent
    KVL_COLLECTOR=$KVL_BUILD/kaaval-collector
    KVL_SHARED=${KAAVAL_SHARED_DIR:-$KVL_REPO/../shared}
    KVL_SNMPREC=${KAAVAL_SNMPREC_DIR:-$KVL_SHARED/testdata/snmprec}
    KVL_PY=${KAAVAL_PYTHON:-$(command -v python3 || true)}

    [ -x "$KVL_AGENT" ] || kvl_fail "no agent binary at $KVL_AGENT (build first: cmake --build build)"
    [ -x "$KVL_COLLECTOR" ] || kvl_fail "no collector binary at $KVL_COLLECTOR"
    [ -d "$KVL_SNMPREC" ] || kvl_fail "recorded devices not found at $KVL_SNMPREC (set KAAVAL_SHARED_DIR or KAAVAL_SNMPREC_DIR)"
    KVL_SNMPREC=$(cd "$KVL_SNMPREC" && pwd)
    # serve.sh sits next to the recordings; a KAAVAL_SNMPREC_DIR copy may lack it.
    KVL_SERVE=$KVL_SNMPREC/serve.sh
    [ -f "$KVL_SERVE" ] || KVL_SERVE=$KVL_SHARED/testdata/snmprec/serve.sh
    [ -f "$KVL_SERVE" ] || kvl_fail "serve.sh not found next to $KVL_SNMPREC nor under $KVL_SHARED"
    local tool
    for tool in snmpsimd rrdtool snmpget ss; do
        command -v "$tool" >/dev/null 2>&1 || kvl_fail "'$tool' not found: run packaging/install-deps.sh"
    done
    [ -n "$KVL_PY" ] || kvl_fail "python3 not found: run packaging/install-deps.sh"
    # python3 on PATH may be a version manager's shim (pyenv's is a script that costs up to
    # a second a call on a loaded machine, and the tests call python often): asked once
    # which interpreter it runs, the tests run that one directly.
    KVL_PY=$("$KVL_PY" -c 'import sys; print(sys.executable)' 2>/dev/null) && [ -x "$KVL_PY" ] ||
        kvl_fail "python3 (${KAAVAL_PYTHON:-on PATH}) does not run"

    KVL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kaaval-$KVL_TEST.XXXXXX") || kvl_fail "cannot make a temp folder"
    chmod 755 "$KVL_TMP"
    mkdir -p "$KVL_TMP/logs"
    KVL_PIDFILE=$KVL_TMP/pids
    : >"$KVL_PIDFILE"
    trap kvl_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    _kvl_start_watchdog
    kvl_log "temp folder $KVL_TMP"
}

# A test killed outright (ctest's timeout, kill -9) runs no trap; the watchdog, detached from
# it, then stops what the test had started (the pids in $KVL_PIDFILE, checked as in
# kvl_is_ours). It checks once a second, for at most two hours, and ends with the test.
_kvl_start_watchdog() {
    (
        setsid bash -c '
            for ((i = 0; i < 7200; i++)); do
                kill -0 "$1" 2>/dev/null || break
                sleep 1
            done
            [ -f "$2" ] || exit 0
            while read -r pid prog; do
                cmd=$(tr "\0" " " <"/proc/$pid/cmdline" 2>/dev/null) || continue
                case "$cmd" in *"$prog"*) kill -KILL "$pid" 2>/dev/null ;; esac
            done <"$2"
        ' kaaval-test-watchdog "$$" "$KVL_PIDFILE" </dev/null >/dev/null 2>&1 &
    )
}

# ------------------------------------------------------------------- processes ---------------

# kvl_track PID PROGRAM: remembers a process to stop at exit.
kvl_track() {
    KVL_PIDS+=("$1:$2")
    echo "$1 $2" >>"$KVL_PIDFILE"
}

kvl_untrack() {
    local i e
    for i in "${!KVL_PIDS[@]}"; do
        [ "${KVL_PIDS[$i]%%:*}" = "$1" ] && unset 'KVL_PIDS[i]'
    done
    KVL_PIDS=("${KVL_PIDS[@]}")
    for e in "${KVL_PIDS[@]}"; do echo "${e%%:*} ${e#*:}"; done >"$KVL_PIDFILE"
}

# kvl_is_ours PID PROGRAM: true while PID is alive and still runs PROGRAM (guards against a
# recycled pid: we only ever signal what we started).
kvl_is_ours() {
    local cmd
    kill -0 "$1" 2>/dev/null || return 1
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
    case "$cmd" in *"$2"*) return 0 ;; *) return 1 ;; esac
}

# _kvl_await_exec PID PROGRAM: right after `prog &`, the child is still a copy of this shell
# until its exec; waits (5 s at most) until it runs PROGRAM. False if it never does.
_kvl_await_exec() {
    local i
    for ((i = 0; i < 50; i++)); do
        kvl_is_ours "$1" "$2" && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# kvl_prog_of PID: the program recorded for PID.
kvl_prog_of() {
    local e
    for e in "${KVL_PIDS[@]}"; do
        [ "${e%%:*}" = "$1" ] && { echo "${e#*:}"; return 0; }
    done
    return 1
}

# kvl_stop PID [SIGNAL]: signals a process we started (default TERM) and waits up to 10 s for
# it to go; KILLs it if it will not. Returns 0 when it is gone.
kvl_stop() {
    local pid=$1 sig=${2:-TERM} prog i
    prog=$(kvl_prog_of "$pid") || { kvl_log "kvl_stop: pid $pid was not started by this test"; return 1; }
    if kvl_is_ours "$pid" "$prog"; then
        kill "-$sig" "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            kvl_is_ours "$pid" "$prog" || break
            sleep 0.1
        done
        if kvl_is_ours "$pid" "$prog"; then
            kvl_log "$prog (pid $pid) still running 10 s after SIG$sig; killing it"
            kill -KILL "$pid" 2>/dev/null
            for ((i = 0; i < 50; i++)); do
                kvl_is_ours "$pid" "$prog" || break
                sleep 0.1
            done
        fi
    fi
    wait "$pid" 2>/dev/null # reap it when it is our child; harmless otherwise
    kvl_untrack "$pid"
    ! kvl_is_ours "$pid" "$prog"
}

kvl_cleanup() {
    local rc=$? e pid prog i k
    trap - EXIT INT TERM
    # Newest first, each gone before the next (agents flush to the collector, the collector
    # finishes its writes, then the simulator); 10 s each at most, then KILL.
    for ((i = ${#KVL_PIDS[@]} - 1; i >= 0; i--)); do
        e=${KVL_PIDS[$i]}
        pid=${e%%:*}
        prog=${e#*:}
        kvl_is_ours "$pid" "$prog" || continue
        kill -TERM "$pid" 2>/dev/null
        for ((k = 0; k < 100; k++)); do
            kvl_is_ours "$pid" "$prog" || break
            sleep 0.1
        done
        kvl_is_ours "$pid" "$prog" && kill -KILL "$pid" 2>/dev/null
    done
    if [ -n "$KVL_TMP" ] && [ -d "$KVL_TMP" ]; then
        if [ "$rc" -eq 0 ] && [ "${KAAVAL_KEEP_TMP:-0}" != 1 ]; then
            rm -rf "$KVL_TMP"
        else
            echo "$KVL_TEST: logs, configs and archives kept in $KVL_TMP" >&2
        fi
    fi
    exit "$rc"
}

# kvl_wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.5 s until it succeeds; fails
# the test with "timed out after SECONDS s waiting for WHAT" when it never does.
kvl_wait_until() {
    local secs=$1 what=$2 i
    shift 2
    local deadline=$((SECONDS + secs)) tries=$((secs * 2 + 2))
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        [ "$SECONDS" -ge "$deadline" ] && break
        sleep 0.5
    done
    kvl_fail "timed out after ${secs}s waiting for $what"
}

# kvl_sleep_checking SECONDS PID...: sleeps, failing at once if one of the pids dies.
kvl_sleep_checking() {
    local secs=$1 i p
    shift
    for ((i = 0; i < secs * 4; i++)); do
        for p in "$@"; do
            kvl_is_ours "$p" "$(kvl_prog_of "$p")" || kvl_fail "$(kvl_prog_of "$p") (pid $p) died"
        done
        sleep 0.25
    done
}

# ------------------------------------------------------------------- ports -------------------

# kvl_free_port tcp|udp VAR: sets VAR to a port on 127.0.0.1 that is free right now (the
# kernel picks it), never the same one twice in a test.
kvl_free_port() {
    local proto=$1 port i
    for ((i = 0; i < 20; i++)); do
        port=$("$KVL_PY" -c '
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
' "$proto") || kvl_fail "cannot find a free $proto port"
        case "$KVL_PORTS_GIVEN" in
            *" $port "*) continue ;;
        esac
        KVL_PORTS_GIVEN="$KVL_PORTS_GIVEN$port "
        printf -v "$2" '%s' "$port"
        return 0
    done
    kvl_fail "no free $proto port after 20 tries"
}

# ------------------------------------------------------------------- snmpsim -----------------

# kvl_start_snmpsim DATA_DIR PORT: serves every *.snmprec in DATA_DIR on 127.0.0.1:PORT with
# serve.sh; sets KVL_LAST_PID. A second start on the same port (after a stop) works.
kvl_start_snmpsim() {
    local dir=$1 port=$2 state pid
    state=$(mktemp -d "$KVL_TMP/snmpsim-$port.XXXXXX")
    chmod 755 "$state"
    pid=$(SNMPREC_DIR=$dir SNMPSIM_STATE=$state SNMPSIM_WAIT=60 \
          bash "$KVL_SERVE" "$port" 2>>"$KVL_TMP/logs/serve.log") \
        || kvl_fail "snmpsim did not start on 127.0.0.1:$port (see $KVL_TMP/logs/serve.log)"
    case "$pid" in '' | *[!0-9]*) kvl_fail "serve.sh printed no pid: '$pid'" ;; esac
    kvl_track "$pid" snmpsimd
    KVL_LAST_PID=$pid
    kvl_log "snmpsim pid $pid on 127.0.0.1:$port serving $dir"
}

# kvl_http_config FILE PORT: appends the collector's plain HTTP server on 127.0.0.1:PORT.
kvl_http_config() {
    printf 'http:\n  listen: 127.0.0.1:%s\n  tls: false\n' "$2" >>"$1"
}

# kvl_add_token CONFIG NAME ROLE: an API token made by the collector's --add-token (before
# it starts, or while it runs); sets KVL_TOKEN. A refusal fails the test with its words.
kvl_add_token() {
    KVL_TOKEN=$("$KVL_COLLECTOR" -c "$1" --add-token "$2" --role "$3" \
        2>>"$KVL_TMP/logs/add-token.log") ||
        kvl_fail "--add-token $2 failed: $(cat "$KVL_TMP/logs/add-token.log")"
}

# ------------------------------------------------------------------- daemons -----------------

# kvl_start_collector NAME CONFIG: starts kaaval-collector, logs in $KVL_TMP/logs/NAME.log;
# waits until it listens. Sets KVL_LAST_PID.
kvl_start_collector() {
    local name=$1 cfg=$2 pid before=0
    # a restarted collector appends to its log: only a line after this start counts
    [ -f "$KVL_TMP/logs/$name.log" ] && before=$(wc -l <"$KVL_TMP/logs/$name.log")
    "$KVL_COLLECTOR" -c "$cfg" >>"$KVL_TMP/logs/$name.out" 2>>"$KVL_TMP/logs/$name.log" &
    pid=$!
    kvl_track "$pid" kaaval-collector
    KVL_LAST_PID=$pid
    _kvl_await_exec "$pid" kaaval-collector || kvl_fail "$name (pid $pid) exited at start-up"
    kvl_wait_until 60 "$name (pid $pid) to listen" _kvl_listening "$pid" "$KVL_TMP/logs/$name.log" \
        "$before"
    kvl_log "$name pid $pid"
}

_kvl_listening() {
    kvl_is_ours "$1" kaaval-collector || kvl_fail "collector (pid $1) exited at start-up"
    tail -n +"$((${3:-0} + 1))" "$2" | grep -q 'listening for agents'
}

# kvl_start_http_collector NAME CONFIG PORT: kvl_start_collector, then waits until its HTTP
# server on 127.0.0.1:PORT answers (it starts after the ingest: 401 without credentials).
kvl_start_http_collector() {
    kvl_start_collector "$1" "$2"
    kvl_wait_until 30 "the HTTP server to answer" _kvl_http_up "$3"
}

_kvl_http_up() {
    [ "$(curl -s --noproxy '*' -m 5 -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$1/api/v1/status")" = 401 ]
}

# kvl_start_agent NAME CONFIG: starts kaaval-agent, logs in $KVL_TMP/logs/NAME.log. Sets
# KVL_LAST_PID.
kvl_start_agent() {
    local name=$1 cfg=$2 pid
    "$KVL_AGENT" -c "$cfg" >>"$KVL_TMP/logs/$name.out" 2>>"$KVL_TMP/logs/$name.log" &
    pid=$!
    kvl_track "$pid" kaaval-agent
    KVL_LAST_PID=$pid
    _kvl_await_exec "$pid" kaaval-agent || kvl_fail "$name (pid $pid) exited at start-up"
    sleep 0.3
    kvl_is_ours "$pid" kaaval-agent || kvl_fail "$name (pid $pid) exited at start-up"
    kvl_log "$name pid $pid"
}

# kvl_start_relay LISTEN_PORT TARGET_PORT: tcp_relay.py between two ports of 127.0.0.1 (its
# pid in KVL_LAST_PID, tracked): SIGSTOP freezes it like a cut link, SIGCONT thaws it.
kvl_start_relay() {
    "$KVL_PY" "$(dirname "${BASH_SOURCE[0]}")/tcp_relay.py" "$1" "$2" >>"$KVL_TMP/logs/relay.log" 2>&1 &
    KVL_LAST_PID=$!
    kvl_track "$KVL_LAST_PID" tcp_relay.py
    kvl_wait_until 10 "the relay to listen" grep -q 'relay listening' "$KVL_TMP/logs/relay.log"
}

# kvl_collector_config FILE PORT DATA_DIR [LOG_LEVEL]: a collector on 127.0.0.1:PORT with
# small archives (one hour at the poll step). Plain TCP (insecure: true) unless
# KVL_COLLECTOR_TLS holds the line to use instead, e.g. "tls: {ca: ..., cert: ..., key: ...}".
kvl_collector_config() {
    cat >"$1" <<EOF
id: test-collector
listen: 127.0.0.1:$2
data_dir: $3
log_level: ${4:-info}
max_frame: 4194304
archives: [step:1h]
consolidations: [AVERAGE, MAX]
${KVL_COLLECTOR_TLS:-insecure: true}
EOF
}

# kvl_agent_config FILE ID SITE COLLECTOR_PORT INTERVAL [LOG_LEVEL]: the top of an agent
# configuration; add devices with kvl_agent_device. Plain TCP (insecure: true) unless
# KVL_AGENT_TLS holds the line to use instead. The agent spools to FILE's name with .spool
# instead of .yaml (the agent makes it; started again with the same file it finds its spool),
# unless KVL_AGENT_SPOOL holds other lines (e.g. "" for no spool: batches wait in memory).
# KVL_AGENT_COLLECTORS, when set, replaces the collector line (e.g. "collectors: [...]").
# The trap receiver is off unless KVL_AGENT_TRAPS holds the `traps:` section to use.
kvl_agent_config() {
    local spool=${1%.yaml}.spool
    cat >"$1" <<EOF
id: $2
site: $3
${KVL_AGENT_COLLECTORS:-collector: 127.0.0.1:$4}
log_level: ${6:-info}
flush_interval: 200ms
reconnect_max: 2s
${KVL_AGENT_TLS:-insecure: true}
${KVL_AGENT_SPOOL-spool: {dir: $spool, sync_interval: 1s\}}
probes:
  reflector: {enabled: false}   # many agents on one host; tests/netns covers the reflector
${KVL_AGENT_TRAPS-traps: {listen: off\}}   # likewise; test_traps.sh covers traps
defaults:
  version: 2c
  interval: $5
  timeout: 500ms
  retries: 1
  max_repetitions: 25
devices:
EOF
}

# kvl_agent_device FILE NAME PORT COMMUNITY: appends a device on 127.0.0.1:PORT.
kvl_agent_device() {
    cat >>"$1" <<EOF
  - name: "$2"
    address: 127.0.0.1
    port: $3
    community: "$4"
EOF
}

# ------------------------------------------------------------------- names and archives ------

# kvl_file_safe NAME: the archive file name part for NAME, as the collector documents it:
# bytes outside [A-Za-z0-9._-] (and a leading '.' or '_') become %XX; an empty name becomes '%00'.
kvl_file_safe() {
    "$KVL_PY" -c '
import sys
n = sys.argv[1].encode("utf-8", "surrogateescape")
ok = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
out = "".join(chr(c) if c in ok and not (i == 0 and c in (0x2E, 0x5F)) else "%%%02X" % c
              for i, c in enumerate(n))
print(out or "%00")
' "$1"
}

# Reading an archive with rrdtool takes a shared fcntl lock on it, and librrd 1.7's update
# does not wait for locks: an update that meets a reader fails ("could not lock RRD"). So that
# the tests observe the collector without disturbing it, every read below is of a copy
# (plain read(2), no lock) taken just before.
_kvl_snap() {
    local snap=$KVL_TMP/.snapshot.rrd
    cp "$1" "$snap" 2>/dev/null || return 1
    echo "$snap"
}

# kvl_rrd_last FILE DS: prints "<last update time> <value of DS>" (value U when unknown);
# fails when the file cannot be read.
kvl_rrd_last() {
    local snap
    snap=$(_kvl_snap "$1") || return 1
    rrdtool lastupdate "$snap" 2>/dev/null | awk -v ds="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == ds) col = i; next }
        /:/ { t = $1; sub(":", "", t); last = t " " $(col + 1) }
        END { if (col == "" || last == "") exit 1; print last }'
}

# kvl_rrd_last_time FILE: the time of the file's last update (whole seconds), or nothing.
kvl_rrd_last_time() {
    local snap
    snap=$(_kvl_snap "$1") || return 1
    rrdtool lastupdate "$snap" 2>/dev/null | awk '/:/ { t = $1; sub(":", "", t); sub(/\..*/, "", t); print t }'
}

# kvl_rrd_updated_since FILE T: true when FILE has an update at or after T (epoch seconds).
kvl_rrd_updated_since() {
    local t
    t=$(kvl_rrd_last_time "$1")
    [ -n "$t" ] && [ "$t" -ge "$2" ]
}

# kvl_rate_pipeline AGENT_ID INTERVAL IN_RATE OUT_RATE [COLLECTOR_LOG_LEVEL]: one rate device
# (eth0 at IN_RATE and OUT_RATE bytes/s, 1000 Mbit/s) served by snmpsim, a collector and an
# agent (log level debug) polling it every INTERVAL seconds, all started; returns once the
# archive holds 3 polls after its first. Sets SIM, COL, AGENT (pids), SNMP_PORT, COL_PORT,
# F (the archive of eth0) and T_FIRST (its first update).
kvl_rate_pipeline() {
    mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
    kvl_make_rate_device "$KVL_TMP/rec/ratedev.snmprec" "eth0:$3:$4:1000"
    kvl_free_port udp SNMP_PORT
    kvl_free_port tcp COL_PORT
    kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
    SIM=$KVL_LAST_PID
    kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data" "${5:-info}"
    kvl_start_collector collector "$KVL_TMP/collector.yaml"
    COL=$KVL_LAST_PID
    kvl_agent_config "$KVL_TMP/agent.yaml" "$1" lab "$COL_PORT" "${2}s" debug
    kvl_agent_device "$KVL_TMP/agent.yaml" ratedev "$SNMP_PORT" ratedev
    kvl_start_agent agent "$KVL_TMP/agent.yaml"
    AGENT=$KVL_LAST_PID
    F=$KVL_TMP/data/lab/ratedev/eth0.rrd
    kvl_wait_until 30 "the archive $F" test -f "$F"
    T_FIRST=$(kvl_rrd_last_time "$F")
    [ -n "$T_FIRST" ] || kvl_fail "cannot read the last update of $F"
    kvl_wait_until 30 "3 polls" kvl_rrd_updated_since "$F" $((T_FIRST + 3 * $2))
}

# kvl_collector_replay: starts the collector again ($KVL_TMP/collector.yaml, as
# kvl_rate_pipeline made it) and waits until the archive F holds polls made 2 and then 5
# intervals ($INTERVAL) after that start, i.e. the agent's backlog went first. Sets COL,
# T_UP (the start time), T_LAST (F's last update) and STEP (F's step).
kvl_collector_replay() {
    T_UP=$(date +%s)
    kvl_start_collector collector "$KVL_TMP/collector.yaml"
    COL=$KVL_LAST_PID
    kvl_wait_until 60 "the agent to replay its backlog" kvl_rrd_updated_since "$F" $((T_UP + 2 * INTERVAL))
    kvl_wait_until 30 "3 more polls" kvl_rrd_updated_since "$F" $((T_UP + 5 * INTERVAL))
    T_LAST=$(kvl_rrd_last_time "$F")
    STEP=$(kvl_rrd_step "$F")
}

# kvl_last_queued AGENT_LOG: the number of the last bulk batch the agent (log level debug)
# queued.
kvl_last_queued() {
    sed -n 's/.*batch \([0-9]*\) lane 0 queued.*/\1/p' "$1" | tail -n 1
}

# kvl_applied_last AGENT_LOG COLLECTOR_LOG [AFTER]: true when the collector (log level debug)
# applied the last bulk batch the agent queued, and that batch is numbered above AFTER.
kvl_applied_last() {
    local last
    last=$(kvl_last_queued "$1")
    [ -n "$last" ] && [ "$last" -gt "${3:-0}" ] && grep -q "applied batch $last lane 0:" "$2"
}

# kvl_stop_agent_drained PID AGENT_LOG COLLECTOR_LOG: stops the agent (it hands what it
# queued to the collector on its way out) and waits until the collector applied its last
# bulk batch, so that the agent's list of queued batches is final and the collector's log
# complete before the two are compared.
kvl_stop_agent_drained() {
    kvl_stop "$1" TERM || kvl_fail "the agent did not stop"
    kvl_wait_until 30 "the collector to apply the agent's last batch" kvl_applied_last "$2" "$3"
}

# kvl_rrd_rows FILE CF DS START END: prints "<time> <value>" for each row at the file's step
# between START and END (value nan when unknown).
kvl_rrd_rows() {
    local snap step
    snap=$(_kvl_snap "$1") || return 1
    step=$(rrdtool info "$snap" | awk -F' = ' '$1 == "step" { print $2 }')
    rrdtool fetch "$snap" "$2" -r "$step" -s "$4" -e "$5" 2>/dev/null | awk -v ds="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == ds) col = i; next }
        /:/ { t = $1; sub(":", "", t); v = $(col + 1); if (v ~ /nan/) v = "nan"; print t, v }'
}

# kvl_rrd_step FILE: the file's step in seconds.
kvl_rrd_step() {
    local snap
    snap=$(_kvl_snap "$1") || return 1
    rrdtool info "$snap" | awk -F' = ' '$1 == "step" { print $2 }'
}

# ------------------------------------------------------------------- simulated devices -------

# kvl_make_rate_device FILE [--uptime-initial TICKS] [--counter-offset N] IF:IN:OUT[:MBPS[:down]]...
#   writes an .snmprec for a device whose sysUpTime grows 100 ticks/s and whose interfaces
#   (ifName IF, ifIndex 1, 2, ...) count ifHCInOctets/ifHCOutOctets up at IN and OUT bytes/s
#   (snmpsim's numeric variation: value = initial + rate x seconds since snmpsimd started).
#   --counter-offset raises every counter's initial value (a device whose counters did not
#   restart with it). ":down": the interface's ifOperStatus is down (admin up). Lines are
#   written in OID order, as snmpsim requires.
kvl_make_rate_device() {
    "$KVL_PY" - "$@" <<'EOF' || kvl_fail "cannot write a simulated device"
import sys

args = sys.argv[1:]
out = args.pop(0)
uptime0, offset = 1000, 0
while args and args[0].startswith("--"):
    opt = args.pop(0)
    if opt == "--uptime-initial":
        uptime0 = int(args.pop(0))
    elif opt == "--counter-offset":
        offset = int(args.pop(0))
    else:
        sys.exit("unknown option " + opt)
rows = {
    "1.3.6.1.2.1.1.1.0": "4|kaaval test device with counters at known rates",
    "1.3.6.1.2.1.1.2.0": "6|1.3.6.1.4.1.8072.3.2.10",
    "1.3.6.1.2.1.1.3.0": "67:numeric|rate=100,initial=%d" % uptime0,
    "1.3.6.1.2.1.1.5.0": "4|ratedev",
    "1.3.6.1.2.1.2.1.0": "2|%d" % len(args),
}
for i, spec in enumerate(args, start=1):
    parts = spec.split(":")
    name, rin, rout = parts[0], int(parts[1]), int(parts[2])
    mbps = int(parts[3]) if len(parts) > 3 else 100
    oper = 2 if len(parts) > 4 and parts[4] == "down" else 1
    pre, x = "1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1."
    rows[pre + "1.%d" % i] = "2|%d" % i
    rows[pre + "2.%d" % i] = "4|Test interface %s" % name
    rows[pre + "3.%d" % i] = "2|6"
    rows[pre + "4.%d" % i] = "2|1500"
    rows[pre + "5.%d" % i] = "66|%d" % min(mbps * 1000000, 4294967295)
    rows[pre + "7.%d" % i] = "2|1"
    rows[pre + "8.%d" % i] = "2|%d" % oper
    rows[pre + "13.%d" % i] = "65|0"
    rows[pre + "14.%d" % i] = "65|0"
    rows[pre + "19.%d" % i] = "65|0"
    rows[pre + "20.%d" % i] = "65|0"
    rows[x + "1.%d" % i] = "4|%s" % name
    rows[x + "6.%d" % i] = "70:numeric|rate=%d,initial=%d" % (rin, 1000000 * i + offset)
    rows[x + "7.%d" % i] = "70|0"
    rows[x + "10.%d" % i] = "70:numeric|rate=%d,initial=%d" % (rout, 2000000 * i + offset)
    rows[x + "11.%d" % i] = "70|0"
    rows[x + "15.%d" % i] = "66|%d" % mbps
    rows[x + "18.%d" % i] = "4|test link %s" % name
key = lambda oid: tuple(int(p) for p in oid.split("."))
with open(out, "w") as f:
    for oid in sorted(rows, key=key):
        f.write("%s|%s\n" % (oid, rows[oid]))
EOF
    chmod 644 "$1"
}
