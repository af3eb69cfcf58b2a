# tests/netns/lib.sh — what the network-namespace tests share (POSIX sh, sourced): their
# namespaces and background processes, cleaned up at exit; PASS/FAIL lines; the figures of
# `kaaval-agent --probe-once`; the delay relay between two namespaces.
#
#   ns_init PREFIX TOOL...   exit 77 (skipped) without root or one of the tools; sets the
#                            work folder $W (kept with KEEP=1), FAIL=0 and the exit trap
#   ns_add NAME...           new namespaces, lo up; deleted at exit
#   ns_pair A B NET          veth a0 (in A, NET.1/24) to s0 (in B, NET.2/24), both up
#   ns_relayed A M B NET4 NET6
#                            A --veth a0|mida-- M --veth midb|b0-- B, with A = NET4.1 and
#                            NET6::1, B = NET4.2 and NET6::2; M forwards nothing by itself
#                            (IPv6 off there): relay_start bridges it
#   relay_start LOG ARGS...  tests/netns/delay_relay in M between mida and midb (with
#                            $RELAY_EXTRA), then waits until A pings B through it
#   relay_stop
#   check NAME RC MESSAGE    "PASS NAME: MESSAGE" when RC is 0, else "FAIL ..." and FAIL=1
#   field FILE TARGET INTERVAL KEY
#                            a figure of a `probe TARGET ... interval=INTERVAL ...` line
#
# Background processes the script starts go into NS_PIDS (space-separated) to be stopped at
# exit; the relay is tracked by relay_start/relay_stop.

ns_init() {
    prefix=$1
    shift
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: needs root (network namespaces)"
        exit 77
    fi
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || {
            echo "SKIP: $t missing (packaging/install-deps.sh)"
            exit 77
        }
    done
    W=$(mktemp -d "/tmp/kvl-$prefix.XXXXXX")
    chmod 755 "$W"
    FAIL=0
    NS_LIST=
    NS_PIDS=
    RELAY_PID=
    trap ns_cleanup EXIT
    trap 'exit 1' INT TERM
}

ns_stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

ns_cleanup() {
    for p in $NS_PIDS $RELAY_PID; do
        ns_stop_pid "$p"
    done
    for n in $NS_LIST; do
        ip netns del "$n" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "work folder kept: $W"
    else
        rm -rf "$W"
    fi
}

ns_add() {
    for n in "$@"; do
        ip netns add "$n"
        NS_LIST="$NS_LIST $n"
        ip -n "$n" link set lo up
    done
}

ns_pair() {
    ip link add a0 netns "$1" type veth peer name s0 netns "$2"
    ip -n "$1" addr add "$3.1/24" dev a0
    ip -n "$2" addr add "$3.2/24" dev s0
    ip -n "$1" link set a0 up
    ip -n "$2" link set s0 up
}

ns_relayed() {
    RELAY_NS=$2
    RELAY_TARGET=$4.2
    ip link add a0 netns "$1" type veth peer name mida netns "$2"
    ip link add b0 netns "$3" type veth peer name midb netns "$2"
    ip netns exec "$2" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$2" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip -n "$1" addr add "$4.1/24" dev a0
    ip -n "$1" addr add "$5::1/64" dev a0 nodad
    ip -n "$3" addr add "$4.2/24" dev b0
    ip -n "$3" addr add "$5::2/64" dev b0 nodad
    ip -n "$1" link set a0 up
    ip -n "$3" link set b0 up
    ip -n "$2" link set mida up
    ip -n "$2" link set midb up
    RELAY_FROM=$1
}

relay_start() {
    log=$1
    shift
    # shellcheck disable=SC2086 # RELAY_EXTRA is a list of arguments
    ip netns exec "$RELAY_NS" "$RELAY" mida midb -l "$log" ${RELAY_EXTRA:-} "$@" 2>>"$W/relay.err" &
    RELAY_PID=$!
    i=0
    until ip netns exec "$RELAY_FROM" ping -c 1 -W 1 "$RELAY_TARGET" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 10 ] || { echo "FAIL: no path through the relay"; cat "$W/relay.err"; exit 1; }
    done
}

relay_stop() {
    ns_stop_pid "$RELAY_PID"
    RELAY_PID=
}

check() {
    if [ "$2" = 0 ]; then
        echo "PASS $1: $3"
    else
        echo "FAIL $1: $3"
        FAIL=1
    fi
}

field() {
    awk -v t="$2" -v iv="interval=$3" -v k="$4" '
        $1 == "probe" && $2 == t { hit = 0
            for (i = 3; i <= NF; i++) if ($i == iv) hit = 1
            if (hit) for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"
}
