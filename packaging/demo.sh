#!/bin/bash
# demo.sh — kaaval's demo: a small simulated state network on this machine, no setup needed.
#
#   packaging/demo.sh          (after: cmake -S . -B build && cmake --build build -j2)
#
# It starts, all on 127.0.0.1:
#   - snmpsim serving the twelve recorded real devices from ../shared/testdata/snmprec plus
#     one generated device, demo-uplink, whose interface counters move (snmpsim's numeric
#     variation: a few Mbit/s to tens of Mbit/s with some jitter);
#   - one kaaval-collector with the real default archives (2 days of single steps, 2 weeks of
#     5 min, 2 months of 30 min, 2 years of days; AVERAGE and MAX): about 2.5 MB per interface
#     at a 60 s step, 6 MB at 10 s — some 1.7 GB for the whole demo network;
#   - a state network's site tree: the state NOC, three district HQs, four block HQs and
#     mini POPs below them; one kaaval-agent per site, splitting the devices between them:
#     the recorded devices every 60 s (their values never change), demo-uplink (at the NOC)
#     every 10 s so its graph fills fast; each agent measures the link to its parent's agent
#     (STAMP) and to the collector (TCP);
#   - one more generated device, anchal-rtr at block HQ Anchal, served by an snmpsim of its
#     own that the demo stops now and then (SIGSTOP for 90 s every 5 minutes): its tile on
#     the board turns red and a device_down alert fires, then both clear;
#   - the NOC board at http://127.0.0.1:8080/ (dashboards/), readable without logging in
#     (the demo sets `anonymous_viewer`), with a kiosk link for a wall screen and an
#     operator login (user noc, its password made once and kept in demo-run/etc/) to
#     acknowledge alerts.
#   - Debian's Prometheus with its remote-write receiver, to which the collector sends every
#     sample it archives (`remote_write:`): PromQL over the same data, and the Grafana
#     dashboards of dashboards/grafana/ read it (skipped when prometheus is not installed);
#   - once, the agent's passive capture on a recorded mix of traffic (`kaaval-agent
#     --capture-once` over a pcap that build/tests/bench/kvl-capgen writes): totals, TCP
#     handshake times, top hosts and conversations, applications (nDPI).
# Agents and collector talk mutual TLS with certificates from packaging/kaaval-certs.sh.
# Everything it writes lives in demo-run/ in this checkout (git-ignored): configurations
# (etc/), TLS certificates and keys (tls/), logs (log/), the served data folder (snmprec/), simulator state (snmpsim/), the
# archives (archives/<site>/<device>/<interface>.rrd) and graphs (graphs/). The archives are
# kept between runs; remove demo-run/ to start afresh.
#
# It waits for the first archives, prints where they are and an rrdtool graph command that
# draws demo-uplink's uplink traffic in bits/s, runs that command once after a few polls,
# and then prints a status line every 30 s until Ctrl-C, when it stops everything it
# started (by pid) and exits 0.
#
# Environment: KAAVAL_BUILD_DIR (default build/), KAAVAL_SHARED_DIR (default ../shared),
# KAAVAL_SNMPREC_DIR (default $KAAVAL_SHARED_DIR/testdata/snmprec).
set -u
umask 022 # snmpsim drops to `nobody`, which must read the served files

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KAAVAL_BUILD_DIR:-$REPO/build}
SHARED=${KAAVAL_SHARED_DIR:-$REPO/../shared}
RECORDINGS=${KAAVAL_SNMPREC_DIR:-$SHARED/testdata/snmprec}
RUN=$REPO/demo-run
INTERVAL=10          # demo-uplink's poll interval
RECORDED_INTERVAL=60 # the recorded devices' (static values: no need to poll them faster)
STATUS_EVERY=30
GRAPH_AFTER_POLLS=6

PIDS=() # "pid:program" of what we started
T0=$(date +%s)

say() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
    printf '[demo %s] error: %s\n' "$(date +%H:%M:%S)" "$*" >&2
    stop_all
    exit 1
}

# ----------------------------------------------------------------- processes -----------------

is_ours() { # PID PROGRAM: alive and still running PROGRAM (builtins only: no subshell)
    local args
    [ -r "/proc/$1/cmdline" ] || return 1
    mapfile -d '' args <"/proc/$1/cmdline" 2>/dev/null || return 1
    case "${args[*]}" in *"$2"*) return 0 ;; *) return 1 ;; esac
}

await_exec() { # PID PROGRAM: right after `prog &` the child runs this shell until its exec
    local i
    for ((i = 0; i < 50; i++)); do
        is_ours "$1" "$2" && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

stop_all() {
    local i k e pid prog n=${#PIDS[@]}
    [ "$n" -gt 0 ] || return 0
    say "stopping what the demo started: ${PIDS[*]}"
    # Newest first, each gone before the next: agents (they flush to the collector), then
    # the collector (it finishes its writes), then snmpsim. 10 s each at most, then KILL.
    for ((i = n - 1; i >= 0; i--)); do
        e=${PIDS[$i]}
        pid=${e%%:*}
        prog=${e#*:}
        is_ours "$pid" "$prog" || continue
        kill -CONT "$pid" 2>/dev/null # a stopped snmpsim (the silent device) must run to end
        kill -TERM "$pid" 2>/dev/null
        for ((k = 0; k < 100; k++)); do
            is_ours "$pid" "$prog" || break
            sleep 0.1
        done
        if is_ours "$pid" "$prog"; then
            say "$prog (pid $pid) did not stop in 10 s: killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    PIDS=()
    rm -f "$RUN/demo.pid"
}

on_interrupt() {
    echo
    stop_all
    say "stopped. Archives stay in $RUN/archives (remove $RUN to start afresh)."
    exit 0
}

free_port() { # PROTO PREFERRED: PREFERRED if it is free on 127.0.0.1, else one the kernel picks
    python3 - "$1" "$2" <<'EOF'
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
for port in (int(sys.argv[2]), 0):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(s.getsockname()[1])
    break
EOF
}

# Reading an archive takes a shared lock that librrd's update does not wait for; the status
# line reads a copy so that it never gets in the collector's way.
snap() {
    cp "$1" "$RUN/.status.rrd" 2>/dev/null && echo "$RUN/.status.rrd"
}
last_update() { # FILE: whole seconds of the last update, or nothing
    local s
    s=$(snap "$1") || return 1
    rrdtool lastupdate "$s" 2>/dev/null | awk '/:/ { t = $1; sub(":", "", t); sub(/\..*/, "", t); print t }'
}

# ----------------------------------------------------------------- checks ------------------

for tool in python3 rrdtool snmpsimd snmpget; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: run packaging/install-deps.sh"
done
for bin in kaaval-agent kaaval-collector; do
    [ -x "$BUILD/$bin" ] || die "$BUILD/$bin not found: build first (cmake -S . -B build && cmake --build build -j2)"
done
[ -d "$RECORDINGS" ] || die "recorded devices not found in $RECORDINGS (set KAAVAL_SHARED_DIR)"
RECORDINGS=$(cd "$RECORDINGS" && pwd)
SERVE=$RECORDINGS/serve.sh
[ -f "$SERVE" ] || SERVE=$SHARED/testdata/snmprec/serve.sh
[ -f "$SERVE" ] || die "serve.sh not found next to $RECORDINGS"
if [ -f "$RUN/demo.pid" ] && is_ours "$(cat "$RUN/demo.pid")" demo.sh; then
    die "a demo is already running (pid $(cat "$RUN/demo.pid")); stop it with Ctrl-C first"
fi

trap on_interrupt INT TERM

mkdir -p "$RUN"/{etc,log,snmprec,archives,graphs}
chmod 755 "$RUN" "$RUN/snmprec"
echo $$ >"$RUN/demo.pid"
say "everything the demo writes goes under $RUN (git-ignored)"

# ----------------------------------------------------------------- the served devices -------

# The recordings by symbolic link (they stay where they are), plus demo-uplink.
find "$RUN/snmprec" -maxdepth 1 \( -type l -o -name '*.snmprec' \) -delete
devices=()
for f in "$RECORDINGS"/*.snmprec; do
    [ -e "$f" ] || continue
    ln -s "$f" "$RUN/snmprec/$(basename "$f")"
    devices+=("$(basename "$f" .snmprec)")
done
[ ${#devices[@]} -gt 0 ] || die "no .snmprec files in $RECORDINGS"

# make_uplink FILE JITTER(0|1) NAME: ifName, description, in and out bytes/s, speed in Mbit/s.
# With jitter, snmpsim adds up to +-30 % of a poll's traffic to each reading (its numeric
# `deviation`), so the graph moves; the counters still only go up.
make_uplink() {
    python3 - "$1" "$2" "$INTERVAL" "${3:-demo-uplink}" <<'EOF'
import sys
out, jitter, interval, name = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
ifaces = [  # name, description, in B/s, out B/s, Mbit/s
    ("eth1", "uplink to the state data centre", 6250000, 2500000, 1000),
    ("eth2", "to district HQ Kollam", 1500000, 750000, 100),
    ("eth3", "to block HQ Chadayamangalam", 400000, 150000, 100),
    ("lo", "loopback", 0, 0, 0),
]
rows = {
    "1.3.6.1.2.1.1.1.0": "4|kaaval demo uplink router (simulated by snmpsim)",
    "1.3.6.1.2.1.1.2.0": "6|1.3.6.1.4.1.8072.3.2.10",
    "1.3.6.1.2.1.1.3.0": "67:numeric|rate=100,initial=360000",
    "1.3.6.1.2.1.1.5.0": "4|%s" % name,
    "1.3.6.1.2.1.1.6.0": "4|Thiruvananthapuram",
    "1.3.6.1.2.1.2.1.0": "2|%d" % len(ifaces),
}
def counter(rate, initial):
    if rate == 0:
        return "70|%d" % initial
    dev = ",deviation=%d" % int(rate * interval * 0.3) if jitter else ""
    return "70:numeric|rate=%d,initial=%d%s" % (rate, initial, dev)
for i, (name, descr, rin, rout, mbps) in enumerate(ifaces, start=1):
    t, x = "1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1."
    rows[t + "1.%d" % i] = "2|%d" % i
    rows[t + "2.%d" % i] = "4|%s" % name
    rows[t + "3.%d" % i] = "2|%d" % (24 if name.startswith("lo") else 6)
    rows[t + "5.%d" % i] = "66|%d" % min(mbps * 1000000, 4294967295)
    rows[t + "7.%d" % i] = "2|1"
    rows[t + "8.%d" % i] = "2|1"
    for col in (13, 14, 19, 20):
        rows[t + "%d.%d" % (col, i)] = "65|0"
    rows[x + "1.%d" % i] = "4|%s" % name
    rows[x + "6.%d" % i] = counter(rin, 10**9 * i)
    rows[x + "7.%d" % i] = counter(rin // 800, 10**6 * i)
    rows[x + "10.%d" % i] = counter(rout, 2 * 10**9 * i)
    rows[x + "11.%d" % i] = counter(rout // 800, 2 * 10**6 * i)
    rows[x + "15.%d" % i] = "66|%d" % mbps
    rows[x + "18.%d" % i] = "4|%s" % descr
key = lambda oid: tuple(int(p) for p in oid.split("."))
with open(out, "w") as f:
    for oid in sorted(rows, key=key):  # snmpsim needs OID order
        f.write("%s|%s\n" % (oid, rows[oid]))
EOF
    chmod 644 "$1"
}
UPLINK=$RUN/snmprec/demo-uplink.snmprec
make_uplink "$UPLINK" 1 demo-uplink || die "cannot write $UPLINK"
devices+=(demo-uplink)
if [ "$(id -u)" -eq 0 ] && command -v runuser >/dev/null 2>&1; then
    runuser -u nobody -- test -r "$UPLINK" \
        || die "user nobody (snmpsim) cannot read $UPLINK: make the folders above $RUN world-readable"
fi

start_snmpsim() {
    local pid
    pid=$(SNMPREC_DIR=$RUN/snmprec SNMPSIM_STATE=$RUN/snmpsim bash "$SERVE" "$SNMP_PORT" 2>>"$RUN/log/serve.log") \
        || die "snmpsim did not start (see $RUN/log/serve.log)"
    PIDS+=("$pid:snmpsimd")
    SIM=$pid
}
JITTER=1
SNMP_PORT=$(free_port udp 1161)
rm -rf "$RUN/snmpsim"
say "starting snmpsim on 127.0.0.1:$SNMP_PORT: ${#devices[@]} devices (${#devices[@]}th: demo-uplink, generated)"
start_snmpsim
# The jitter uses snmpsim's numeric `deviation`, which needs Python <= 3.11: without it, fall
# back on steady rates.
if ! snmpget -v2c -c demo-uplink -t 2 -r 1 -On 127.0.0.1:"$SNMP_PORT" .1.3.6.1.2.1.31.1.1.1.6.1 2>/dev/null | grep -q Counter64; then
    say "this snmpsim cannot jitter counters: demo-uplink gets steady rates"
    kill -TERM "$SIM"
    for ((i = 0; i < 50; i++)); do is_ours "$SIM" snmpsimd || break; sleep 0.1; done
    PIDS=()
    make_uplink "$UPLINK" 0 demo-uplink
    rm -rf "$RUN/snmpsim"
    start_snmpsim
    JITTER=0
fi

# anchal-rtr: the device that goes silent now and then, on an snmpsim of its own (stopping
# it stops nothing else).
FLAKY_DEV=anchal-rtr
FLAKY_DIR=$RUN/snmprec-flaky
mkdir -p "$FLAKY_DIR"
chmod 755 "$FLAKY_DIR"
make_uplink "$FLAKY_DIR/$FLAKY_DEV.snmprec" "$JITTER" "$FLAKY_DEV" || die "cannot write $FLAKY_DIR/$FLAKY_DEV.snmprec"
FLAKY_PORT=$(free_port udp 1171)
rm -rf "$RUN/snmpsim-flaky"
FLAKY=$(SNMPREC_DIR=$FLAKY_DIR SNMPSIM_STATE=$RUN/snmpsim-flaky bash "$SERVE" "$FLAKY_PORT" 2>>"$RUN/log/serve.log") \
    || die "the second snmpsim did not start (see $RUN/log/serve.log)"
PIDS+=("$FLAKY:snmpsimd")
say "starting snmpsim on 127.0.0.1:$FLAKY_PORT: $FLAKY_DEV (generated; the demo stops it now and then)"
FLAKY_STOPPED=0

# ----------------------------------------------------------------- collector and agents -----

COL_PORT=$(free_port tcp 5140)
DATA=$RUN/archives
# One agent per site of the tree; PARENT: the agent (index) whose reflector each measures
# (STAMP), -1 for none.
SITES=(state-noc dhq-tvm bhq-tvm-north minipop-vizhinjam dhq-klm bhq-klm-anchal dhq-ekm bhq-ekm-aluva)
PARENT=(-1 0 1 1 0 4 0 6)
AGENT_IDS=()
for s in "${SITES[@]}"; do AGENT_IDS+=("agent-$s"); done
FLAKY_AGENT=5 # anchal-rtr's: block HQ Anchal

# Mutual TLS as a real site would set it up: a CA, a certificate for the collector's
# address and one per agent (CN = the agent's id), made once with kaaval-certs.sh and kept
# in demo-run/tls/ (remove it to make new ones).
TLS=$RUN/tls
certs() { sh "$REPO/packaging/kaaval-certs.sh" -d "$TLS" "$@" >>"$RUN/log/certs.log" 2>&1 \
    || die "kaaval-certs.sh $* failed: $(tail -n 3 "$RUN/log/certs.log")"; }
[ -f "$TLS/ca.crt" ] || certs ca
[ -f "$TLS/collector.crt" ] || certs collector 127.0.0.1 localhost
for id in "${AGENT_IDS[@]}"; do
    [ -f "$TLS/$id.crt" ] || certs agent "$id"
done
say "TLS certificates in $TLS (made by packaging/kaaval-certs.sh)"

# Pages go to a small script that appends each notification to demo-run/alerts.log (an
# `exec` receiver: a real site names Alertmanager, a webhook, e-mail or its NMS here).
HTTP_PORT=8080
python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 8080))' 2>/dev/null ||
    die "127.0.0.1:8080 is taken: the demo serves its web API there; stop what uses it"
cat >"$RUN/etc/page.sh" <<'EOF'
#!/bin/sh
# demo pager: one line per notification (the notification's JSON on stdin is not used here)
cat >/dev/null
printf '%s %s %s %s %s\n' "$(date +%H:%M:%S)" "$KAAVAL_STATUS" "$KAAVAL_RULE" \
    "${KAAVAL_DEVICE:-$KAAVAL_SITE}" "$KAAVAL_SUMMARY" >>"$(dirname "$0")/../alerts.log"
EOF
chmod 755 "$RUN/etc/page.sh"
touch "$RUN/alerts.log"
# Prometheus with its remote-write receiver (Debian's prometheus), fed by the collector.
PROM_PORT=""
if command -v prometheus >/dev/null 2>&1; then
    PROM_PORT=$(free_port tcp 9090)
    mkdir -p "$RUN/prometheus"
    cat >"$RUN/etc/prometheus.yml" <<EOF
# the demo's Prometheus: nothing scraped; the collector remote-writes every sample here
global: {scrape_interval: 1m}
EOF
    setsid prometheus --config.file "$RUN/etc/prometheus.yml" --storage.tsdb.path "$RUN/prometheus" \
        --web.listen-address "127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver \
        --storage.tsdb.retention.time 2d >>"$RUN/log/prometheus.log" 2>&1 &
    PIDS+=("$!:prometheus")
    await_exec "$!" prometheus || die "prometheus did not start: $(tail -n 5 "$RUN/log/prometheus.log")"
    for ((i = 0; i < 100; i++)); do
        curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 && break
        sleep 0.2
    done
    say "prometheus (pid $!) on 127.0.0.1:$PROM_PORT, receiving the collector's remote-write"
else
    say "prometheus is not installed: the demo goes on without remote-write (packaging/install-deps.sh installs it)"
fi
cat >"$RUN/etc/collector.yaml" <<EOF
# kaaval demo collector: the default archives (no 'archives:' here) and the built-in alert
# rules (no 'rules:' here).
id: demo-collector
listen: 127.0.0.1:$COL_PORT
data_dir: $DATA
log_level: info
tls:
  ca: $TLS/ca.crt
  cert: $TLS/collector.crt
  key: $TLS/collector.key
receivers:
  - {name: pager, type: exec, command: [$RUN/etc/page.sh]}
alerts:
  receiver: pager
  root_cause: {hold: 15s, settle: 1m}   # one page per cut site (the topology's root cause)
web_url: http://127.0.0.1:$HTTP_PORT   # alerts link to the board's graph page
http:                         # the API (kaavalctl) and the NOC board
  listen: 127.0.0.1:$HTTP_PORT
  tls: false                  # plain HTTP is allowed on 127.0.0.1 only
  static_dir: $REPO/dashboards
  anonymous_viewer: true      # the demo's board reads without a login (loopback only)
sites:                        # the site tree: NOC, districts, blocks and mini POPs
  - {name: state-noc, kind: noc, label: "State NOC"}
  - {name: dhq-tvm, parent: state-noc, kind: dhq, label: "DHQ Thiruvananthapuram",
     uplink: [agent-state-noc, demo-uplink, eth1]}   # the map's edge: agent, device, interface
  - {name: bhq-tvm-north, parent: dhq-tvm, kind: bhq, label: "BHQ Nedumangad"}
  - {name: minipop-vizhinjam, parent: dhq-tvm, kind: minipop, label: "Mini POP Vizhinjam"}
  - {name: dhq-klm, parent: state-noc, kind: dhq, label: "DHQ Kollam"}
  - {name: bhq-klm-anchal, parent: dhq-klm, kind: bhq, label: "BHQ Anchal"}
  - {name: dhq-ekm, parent: state-noc, kind: dhq, label: "DHQ Ernakulam"}
  - {name: bhq-ekm-aluva, parent: dhq-ekm, kind: bhq, label: "BHQ Aluva"}
EOF
if [ -n "$PROM_PORT" ]; then
    cat >>"$RUN/etc/collector.yaml" <<EOF
remote_write:                 # every archived sample also to Prometheus (PromQL, Grafana)
  - {name: demo-prometheus, url: "http://127.0.0.1:$PROM_PORT/api/v1/write"}
EOF
fi
# The operator's password, made once (kept in demo-run/etc/, readable by root only).
if [ ! -s "$RUN/etc/operator-password" ]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(12))' >"$RUN/etc/operator-password") ||
        die "cannot write $RUN/etc/operator-password"
fi
OP_PASSWORD=$(cat "$RUN/etc/operator-password")
"$BUILD/kaaval-collector" -c "$RUN/etc/collector.yaml" --add-user noc --role operator \
    <"$RUN/etc/operator-password" >>"$RUN/log/collector.log" 2>&1 ||
    die "kaaval-collector --add-user failed: $(tail -n 3 "$RUN/log/collector.log")"
KIOSK=$("$BUILD/kaaval-collector" -c "$RUN/etc/collector.yaml" --add-token wall --role viewer \
    2>>"$RUN/log/collector.log") || die "kaaval-collector --add-token failed: $(tail -n 3 "$RUN/log/collector.log")"
TOKEN=$("$BUILD/kaaval-collector" -c "$RUN/etc/collector.yaml" --add-token demo --role operator \
    2>>"$RUN/log/collector.log") || die "kaaval-collector --add-token failed: $(tail -n 3 "$RUN/log/collector.log")"
# setsid: a Ctrl-C reaches only this script, which then stops the daemons in order.
setsid "$BUILD/kaaval-collector" -c "$RUN/etc/collector.yaml" 2>>"$RUN/log/collector.log" &
COL=$!
PIDS+=("$COL:kaaval-collector")
await_exec "$COL" kaaval-collector || die "the collector did not start: $(tail -n 5 "$RUN/log/collector.log")"
for ((i = 0; i < 50; i++)); do
    grep -q 'listening for agents' "$RUN/log/collector.log" 2>/dev/null && break
    is_ours "$COL" kaaval-collector || die "the collector exited: $(tail -n 5 "$RUN/log/collector.log")"
    sleep 0.2
done
say "collector (pid $COL) on 127.0.0.1:$COL_PORT, archives in $DATA, log $RUN/log/collector.log"

for k in "${!AGENT_IDS[@]}"; do
    cfg=$RUN/etc/${AGENT_IDS[$k]}.yaml
    mkdir -p "$RUN/spool/${AGENT_IDS[$k]}"
    cat >"$cfg" <<EOF
# kaaval demo agent ${AGENT_IDS[$k]} at site ${SITES[$k]}: polls its share of the simulated devices.
id: ${AGENT_IDS[$k]}
site: ${SITES[$k]}
collector: 127.0.0.1:$COL_PORT
log_level: info
spool:                        # batches wait here until the collector acknowledges them
  dir: $RUN/spool/${AGENT_IDS[$k]}
  max_size: 64MiB
tls:
  ca: $TLS/ca.crt
  cert: $TLS/${AGENT_IDS[$k]}.crt
  key: $TLS/${AGENT_IDS[$k]}.key
traps:                        # SNMP traps from the configured devices (162 needs root)
  listen: 127.0.0.1:$((16200 + k))
probes:
  reflector: {port: $((18620 + k))}   # STAMP reflector on an unprivileged port (862 needs root)
  targets:                    # the collector, and the parent site's agent (its reflector)
    - {name: collector, type: tcp, address: 127.0.0.1, port: $COL_PORT}
$(p=${PARENT[$k]}; [ "$p" -ge 0 ] && echo "    - {name: ${SITES[$p]}, type: stamp, address: 127.0.0.1, port: $((18620 + p))}")
defaults:
  version: 2c
  interval: ${RECORDED_INTERVAL}s
  timeout: 2s
  retries: 1
  metric_groups: [host-resources, ucd]   # servers' CPU, storage, memory; skipped where absent
devices:
EOF
done
# demo-uplink on the NOC's agent; the recordings in turn on the others.
n=0
for dev in demo-uplink "${devices[@]}"; do
    [ "$dev" = demo-uplink ] && [ "$n" -gt 0 ] && continue
    k=$(( n == 0 ? 0 : 1 + (n - 1) % (${#AGENT_IDS[@]} - 1) ))
    cat >>"$RUN/etc/${AGENT_IDS[$k]}.yaml" <<EOF
  - name: "$dev"
    address: 127.0.0.1
    port: $SNMP_PORT
    community: "$dev"
EOF
    if [ "$dev" = demo-uplink ]; then
        echo "    interval: ${INTERVAL}s" >>"$RUN/etc/${AGENT_IDS[$k]}.yaml"
    fi
    n=$((n + 1))
done
cat >>"$RUN/etc/${AGENT_IDS[$FLAKY_AGENT]}.yaml" <<EOF
  - name: "$FLAKY_DEV"         # the device the demo silences now and then
    address: 127.0.0.1
    port: $FLAKY_PORT
    community: "$FLAKY_DEV"
    interval: ${INTERVAL}s
EOF
AGENTS=()
for k in "${!AGENT_IDS[@]}"; do
    setsid "$BUILD/kaaval-agent" -c "$RUN/etc/${AGENT_IDS[$k]}.yaml" 2>>"$RUN/log/${AGENT_IDS[$k]}.log" &
    PIDS+=("$!:kaaval-agent")
    AGENTS+=("$!")
    await_exec "$!" kaaval-agent || die "agent ${AGENT_IDS[$k]} did not start: $(tail -n 5 "$RUN/log/${AGENT_IDS[$k]}.log")"
    say "agent ${AGENT_IDS[$k]} (pid $!) at site ${SITES[$k]}: $(grep -c '^  - name:' "$RUN/etc/${AGENT_IDS[$k]}.yaml") device(s), log $RUN/log/${AGENT_IDS[$k]}.log"
done

FLAKY_EVERY=300 # the silent device: every 5 minutes ...
FLAKY_DOWN=90   # ... for 90 s
ISOLATED_AGENT=7  # BHQ Aluva's agent: every 5 minutes (after the silent device) ...
ISOLATED_DOWN=120 # ... stopped for 120 s: its site cut off, one topology_cut page
ISOLATED_STOPPED=0
board_banner() {
    say "the NOC board:   http://127.0.0.1:$HTTP_PORT/   (read-only without a login)"
    say "  kiosk link for a wall screen: http://127.0.0.1:$HTTP_PORT/?kiosk=$KIOSK"
    say "  operator login (to acknowledge alerts): user noc, password $OP_PASSWORD"
}
board_banner

check_alive() {
    local e
    for e in "${PIDS[@]}"; do
        is_ours "${e%%:*}" "${e#*:}" || die "${e#*:} (pid ${e%%:*}) stopped unexpectedly; see $RUN/log/"
    done
}

# ----------------------------------------------------------------- first archives ----------

IF_FILE=$DATA/state-noc/demo-uplink/eth1.rrd
say "waiting for the first archives (with the default archives an interface file is 2.5 MB at a 60 s step, 6 MB at 10 s)..."
for ((i = 0; i < 600; i++)); do
    check_alive
    t=$(last_update "$IF_FILE" 2>/dev/null)
    [ -n "$t" ] && [ "$t" -ge "$T0" ] && break
    sleep 0.5
done
[ -n "${t:-}" ] && [ "$t" -ge "$T0" ] || die "no update of $IF_FILE within 5 minutes; see $RUN/log/"
T_FIRST=$(date +%s)
say "first archives after $((T_FIRST - T0)) s:"
say "  devices:    $DATA/<site>/<device>.rrd     (reachable uptime_s response_ms interfaces)"
say "  interfaces: $DATA/<site>/<device>/<interface>.rrd  (in_octets out_octets ... speed_bps)"
say "  groups:     $DATA/<site>/<device>/_<group>[/<row>].rrd  (host-resources, ucd: e.g. linux_powermon)"
say "  e.g. $IF_FILE"

PNG=$RUN/graphs/demo-uplink-eth1.png
GRAPH=(rrdtool graph "$PNG" --start now-10min --end now --width 800 --height 250 --lower-limit 0
    --title "demo-uplink eth1 (uplink to the state data centre)" --vertical-label "bits/s"
    "DEF:in=$IF_FILE:in_octets:AVERAGE" "DEF:out=$IF_FILE:out_octets:AVERAGE"
    "CDEF:inbits=in,8,*" "CDEF:outbits=out,8,*"
    "AREA:inbits#32CD3280:in " "GPRINT:inbits:LAST:last %6.2lf %sbit/s"
    "GPRINT:inbits:AVERAGE:avg %6.2lf %sbit/s" "GPRINT:inbits:MAX:max %6.2lf %sbit/s\\n"
    "LINE2:outbits#1E50C8:out" "GPRINT:outbits:LAST:last %6.2lf %sbit/s"
    "GPRINT:outbits:AVERAGE:avg %6.2lf %sbit/s" "GPRINT:outbits:MAX:max %6.2lf %sbit/s\\n")
printf -v GRAPH_CMD '%q ' "${GRAPH[@]}"
say "draw demo-uplink's uplink traffic in bits/s with:"
echo "  (cd $REPO && ${GRAPH_CMD//$REPO\//})"
say "drawing it myself after $GRAPH_AFTER_POLLS polls..."

status() {
    local nfiles du t age line=""
    nfiles=$(find "$DATA" -name '*.rrd' 2>/dev/null | wc -l)
    du=$(du -sh "$DATA" 2>/dev/null | cut -f1)
    t=$(last_update "$IF_FILE")
    age=$(($(date +%s) - ${t:-0}))
    local s
    if s=$(snap "$IF_FILE"); then
        # The last complete step's rates, in Mbit/s.
        line=$(rrdtool fetch "$s" AVERAGE -r "$INTERVAL" -s "end-$((3 * INTERVAL))" 2>/dev/null \
            | awk 'NR > 2 && $2 !~ /nan/ { i = $2; o = $3 } END { if (i != "") printf "in %.1f out %.1f Mbit/s", i * 8e-6, o * 8e-6 }')
    fi
    local firing
    firing=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP_PORT/api/v1/alerts?status=firing" 2>/dev/null |
        python3 -c 'import json, sys; d = json.load(sys.stdin); d = d.get("alerts", d) if isinstance(d, dict) else d; print(len(d))' 2>/dev/null)
    say "status: $nfiles archive files, $du in $DATA; demo-uplink eth1 updated ${age}s ago${line:+: $line}; ${firing:-?} alerts firing (demo-run/alerts.log); snmpsim, collector and ${#AGENT_IDS[@]} agents running"
}

for ((i = 0; i < GRAPH_AFTER_POLLS * INTERVAL; i++)); do
    check_alive
    sleep 1
done
if "${GRAPH[@]}" >"$RUN/log/graph.log" 2>&1; then
    say "graph written: $PNG"
else
    say "rrdtool graph failed: $(cat "$RUN/log/graph.log")"
fi
status
# A reload, as systemctl reload sends it: each daemon reads its file again and runs on.
say "reloading the collector's and ${AGENT_IDS[0]}'s configuration (SIGHUP, what systemctl reload sends); edit $RUN/etc/*.yaml, then the same applies the change without a restart:"
echo "  kill -HUP $COL ${AGENTS[0]}"
kill -HUP "$COL" "${AGENTS[0]}"
for f in collector "${AGENT_IDS[0]}"; do
    line=""
    for ((i = 0; i < 50; i++)); do
        line=$(grep -E 'reloaded: |reload refused' "$RUN/log/$f.log" 2>/dev/null | tail -n 1)
        [ -n "$line" ] && break
        sleep 0.1
    done
    say "$f: ${line#*] }"
done
if [ -n "$PROM_PORT" ]; then
    q='rate(kaaval_interface_in_octets_total{device="demo-uplink"}[2m])*8'
    n=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=count({__name__=~"kaaval_.+"})' 2>/dev/null |
        python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null)
    say "remote-write: Prometheus holds ${n:-?} kaaval series; demo-uplink's inbound bits/s in PromQL:"
    echo "  http://127.0.0.1:$PROM_PORT/graph?g0.expr=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$q")&g0.tab=0"
    say "  Grafana: import dashboards/grafana/{interfaces,links,devices,capacity}.json with this Prometheus as the data source"
fi
# The passive capture, once, over a recorded mix (a mirror port's traffic, made here).
CAPGEN=$BUILD/tests/bench/kvl-capgen
if [ -x "$CAPGEN" ]; then
    mkdir -p "$RUN/capture"
    PCAP=$RUN/capture/mix.pcap
    [ -s "$PCAP" ] || "$CAPGEN" --out "$PCAP" --packets 50000 --hosts 300 --remote 200 \
        --concurrency 200 --pps 2000 >"$RUN/log/capgen.log" 2>&1 ||
        say "kvl-capgen failed: $(tail -n 2 "$RUN/log/capgen.log")"
    if [ -s "$PCAP" ] && "$BUILD/kaaval-agent" --capture-once "$PCAP" >"$RUN/capture/once.txt" 2>>"$RUN/log/capture.log"; then
        say "passive capture (kaaval-agent --capture-once $PCAP: a mirror port's 25 s): $(awk '$1 == "total" {print $2, $3}' "$RUN/capture/once.txt")"
        awk '$1 == "handshake" && $2 == "port=443" {print "  TLS handshakes (port 443): " $4 " " $5 " " $6}
             $1 == "host" && $2 ~ /rank=[123]$/ {print "  top host " $3 " " $4}
             $1 == "app" {if (++a <= 4) print "  application " $2 " " $5}' "$RUN/capture/once.txt"
        say "  the whole report: $RUN/capture/once.txt"
    else
        say "passive capture: kaaval-agent --capture-once failed: $(tail -n 2 "$RUN/log/capture.log")"
    fi
fi
say "alerts: the built-in rules page demo-run/alerts.log (an exec receiver); $FLAKY_DEV goes silent for ${FLAKY_DOWN}s every ${FLAKY_EVERY}s (device_down)"
say "root-cause alerts: ${AGENT_IDS[$ISOLATED_AGENT]} goes silent for ${ISOLATED_DOWN}s every ${FLAKY_EVERY}s: one page, topology_cut (site ${SITES[$ISOLATED_AGENT]} isolated), its agent_lost and agent_silent held back as suppressed (kaavalctl alerts shows them)"
say "a linkDown trap to the first agent (the device's next poll, made at once, says whether it holds):"
echo "  snmptrap -v2c -c demo-uplink 127.0.0.1:16200 '' .1.3.6.1.6.3.1.1.5.3 .1.3.6.1.2.1.2.2.1.1.2 i 2 .1.3.6.1.2.1.2.2.1.7.2 i 1 .1.3.6.1.2.1.2.2.1.8.2 i 2"
say "the alerts through the API (http://127.0.0.1:$HTTP_PORT/api/v1/alerts) with kaavalctl:"
echo "  KAAVAL_URL=http://127.0.0.1:$HTTP_PORT KAAVAL_TOKEN=$TOKEN $BUILD/kaavalctl alerts"
say "the topology from the NOC: each site's reachability and the root cause of an outage (while $FLAKY_DEV is silent: its device, cutting off nothing else):"
echo "  KAAVAL_URL=http://127.0.0.1:$HTTP_PORT KAAVAL_TOKEN=$TOKEN $BUILD/kaavalctl topology"
say "the site tree with each site's worst state, the agents, latest values, links and the inventory (JSON API):"
for q in sites agents "latest?device=demo-uplink&metric=in_octets" links "devices?q=uplink" topology; do
    echo "  curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$HTTP_PORT/api/v1/$q'"
done
board_banner
say "running; a status line every ${STATUS_EVERY}s. Ctrl-C stops the demo."

# ----------------------------------------------------------------- run until Ctrl-C ----------

# Every FLAKY_EVERY seconds, two things go silent in turn (SIGSTOP, then SIGCONT): the silent
# device's snmpsim for FLAKY_DOWN seconds from a minute in, and the isolated site's agent for
# ISOLATED_DOWN seconds from 165 s in (its heartbeats stop as on a cut link).
# cycle_tick SECONDS PID OFFSET DOWN STATE_VAR STOP_MESSAGE CONT_MESSAGE
cycle_tick() {
    local t=$(( ($1 + FLAKY_EVERY - $3) % FLAKY_EVERY ))
    local -n stopped=$5
    if [ "$t" -lt "$4" ] && [ "$stopped" -eq 0 ]; then
        kill -STOP "$2" 2>/dev/null && stopped=1 && say "$6"
    elif [ "$t" -ge "$4" ] && [ "$stopped" -eq 1 ]; then
        kill -CONT "$2" 2>/dev/null
        stopped=0
        say "$7"
    fi
}
ticks() {
    cycle_tick "$1" "$FLAKY" 60 "$FLAKY_DOWN" FLAKY_STOPPED \
        "$FLAKY_DEV goes silent for ${FLAKY_DOWN}s (its snmpsim stopped): watch BHQ Anchal turn red on the board" \
        "$FLAKY_DEV answers again"
    cycle_tick "$1" "${AGENTS[$ISOLATED_AGENT]}" 165 "$ISOLATED_DOWN" ISOLATED_STOPPED \
        "${AGENT_IDS[$ISOLATED_AGENT]} stops for ${ISOLATED_DOWN}s: in about 45 s one page, site ${SITES[$ISOLATED_AGENT]} isolated (kaavalctl topology shows the cause)" \
        "${AGENT_IDS[$ISOLATED_AGENT]} runs again: the cut's resolution follows"
}
T_CYCLE=$(date +%s)
while :; do
    for ((i = 0; i < STATUS_EVERY; i++)); do
        check_alive
        ticks $(($(date +%s) - T_CYCLE))
        sleep 1
    done
    status
done
