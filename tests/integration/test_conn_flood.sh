#!/usr/bin/env bash
# test_conn_flood.sh — connection floods against a real collector (mutual TLS) while a real
# agent streams into it.
#
# (a) A connect/close flood: for 5 s, connections from 127.0.0.2-127.0.0.201 that close at
#     once. The collector must log about them a few lines only (lines a peer can repeat are
#     limited to 3 per reason every 10 s, each telling how many were left out), not one per
#     connection.
# (b) 3,000 half-open connections that never send a byte, kept open (2,700 from 200
#     addresses, 300 from one more), each one the collector closes opened again at once
#     (paced at 2,000 a second), for the rest of the test: every handshake slot is taken.
#     Meanwhile the real agent is stopped and started again, three times; each time it
#     must be connected (the collector's "agent connected" line) within 2 s of its start.
#     The collector logs a few lines about the flood, and the agent's samples keep reaching
#     the archive.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

command -v openssl >/dev/null 2>&1 || kvl_fail "'openssl' not found: run packaging/install-deps.sh"
# The flood holds thousands of sockets, the collector hundreds.
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 8192 ] || kvl_fail "need at least 8192 open files (ulimit -n is $(ulimit -n))"

CERTS=$KVL_TMP/certs
sh "$KVL_REPO/tests/tls/make-test-certs.sh" "$CERTS" >"$KVL_TMP/logs/certs.out" 2>&1 \
    || kvl_fail "cannot make the test certificates: $(cat "$KVL_TMP/logs/certs.out")"

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
kvl_make_rate_device "$KVL_TMP/rec/ratedev.snmprec" "eth0:1000:2000"
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID

KVL_COLLECTOR_TLS="tls: {ca: $CERTS/ca.crt, cert: $CERTS/collector.crt, key: $CERTS/collector.key}" \
    kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
COL_LOG=$KVL_TMP/logs/collector.log

KVL_AGENT_TLS="tls: {ca: $CERTS/ca.crt, cert: $CERTS/a1.crt, key: $CERTS/a1.key}" \
    kvl_agent_config "$KVL_TMP/agent.yaml" a1 lab "$COL_PORT" 2s
kvl_agent_device "$KVL_TMP/agent.yaml" ratedev "$SNMP_PORT" ratedev
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
F=$KVL_TMP/data/lab/ratedev/eth0.rrd
kvl_wait_until 30 "the agent's archive $F" test -f "$F"

# The flood: python3 - flood PORT MODE SECONDS READY_FILE
#   connect-close: connect and close at once, as fast as it goes (20,000 at most);
#   half-open: 3,000 connections kept open, reopened when the collector closes them.
cat >"$KVL_TMP/flood.py" <<'EOF'
import errno, os, selectors, signal, socket, sys, time

port, mode, seconds, ready = int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
spread = ["127.0.0.%d" % i for i in range(2, 202)]
end = time.monotonic() + seconds
opened = closed_by_peer = failed = 0

def connect(src, blocking):
    global opened, failed
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.setblocking(blocking)
    rc = s.connect_ex(("127.0.0.1", port))
    if rc not in (0, errno.EINPROGRESS):
        failed += 1
        s.close()
        return None
    opened += 1
    return s

def report(*_):
    print("opened %d closed_by_peer %d failed %d" % (opened, closed_by_peer, failed), flush=True)
    os._exit(0)

signal.signal(signal.SIGTERM, report)
if mode == "connect-close":
    i = 0
    while time.monotonic() < end and opened + failed < 20000:
        s = connect(spread[i % len(spread)], True)
        i += 1
        if s is not None:
            s.close()
    open(ready, "w").close()
else:
    sel = selectors.DefaultSelector()
    sources = [spread[i % len(spread)] for i in range(2700)] + ["127.0.0.250"] * 300
    def add(src):
        s = connect(src, False)
        if s is not None:
            sel.register(s, selectors.EVENT_READ, src)
    for src in sources:
        add(src)
    open(ready, "w").close()
    budget, t0 = 0.0, time.monotonic()
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.05):
            s, src = key.fileobj, key.data
            try:
                gone = s.recv(4096) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                sel.unregister(s)
                s.close()
                closed_by_peer += 1
                # paced: at most 2,000 new connections a second after the first 3,000
                while opened - 3000 >= 2000 * (time.monotonic() - t0) and time.monotonic() < end:
                    time.sleep(0.01)
                add(src)
report()
EOF

# t_of LINE: the epoch time (s.ms) of a log line's timestamp.
t_of() {
    date -d "$(cut -d' ' -f1 <<<"$1")" +%s.%3N
}
# flood_lines FROM_LINE: the collector's lines after line FROM_LINE about peers other than a1.
flood_lines() {
    tail -n +"$(($1 + 1))" "$COL_LOG" | grep -v '\[ingest a1\]' | grep -v "CN 'a1'" \
        | grep -E 'closing connection|closed its connection|disconnected|too many connections|accept' || true
}

# ---------------------------------------------------------------- (a) connect/close flood ----
mark=$(wc -l <"$COL_LOG")
t_a=$(date +%s)
"$KVL_PY" "$KVL_TMP/flood.py" flood "$COL_PORT" connect-close 5 "$KVL_TMP/cc.done" \
    >"$KVL_TMP/cc.out" 2>"$KVL_TMP/logs/flood-cc.log" &
CC=$!
kvl_track "$CC" flood.py
kvl_wait_until 30 "the connect/close flood to end" test -f "$KVL_TMP/cc.done"
kvl_wait_until 10 "the connect/close flood to exit" eval '! kvl_is_ours "$CC" flood.py'
wait "$CC" 2>/dev/null
kvl_untrack "$CC"
kvl_sleep_checking 1 "$COL" "$AGENT"
secs_a=$(($(date +%s) - t_a + 1))
n_cc=$(awk '{ print $2 }' "$KVL_TMP/cc.out")
[ -n "$n_cc" ] && [ "$n_cc" -ge 1000 ] || kvl_fail "the connect/close flood made too few connections: $(cat "$KVL_TMP/cc.out" "$KVL_TMP/logs/flood-cc.log")"
lines_a=$(flood_lines "$mark" | wc -l)
# 3 per reason every 10 s: "closed before its hello" and maybe a TLS failure or two.
max_a=$((3 * 3 * (secs_a / 10 + 1)))
[ "$lines_a" -le "$max_a" ] || kvl_fail "$n_cc connect/close connections made $lines_a collector lines (at most $max_a expected): $(flood_lines "$mark" | head -n 20)"
[ "$lines_a" -ge 1 ] || kvl_fail "the collector logged nothing about $n_cc connect/close connections"
kvl_log "(a) $n_cc connections opened and closed in 5 s: $lines_a collector lines, e.g. $(flood_lines "$mark" | tail -n 1 | cut -d' ' -f3-)"

# ---------------------------------------------------------------- (b) half-open flood --------
mark=$(wc -l <"$COL_LOG")
"$KVL_PY" "$KVL_TMP/flood.py" flood "$COL_PORT" half-open 60 "$KVL_TMP/ho.ready" \
    >"$KVL_TMP/ho.out" 2>"$KVL_TMP/logs/flood-ho.log" &
HO=$!
kvl_track "$HO" flood.py
kvl_wait_until 30 "the half-open flood's 3,000 connections" test -f "$KVL_TMP/ho.ready"
kvl_sleep_checking 2 "$COL" "$AGENT" "$HO"

times=""
for try in 1 2 3; do
    kvl_stop "$AGENT" || kvl_fail "the agent did not stop"
    n_before=$(grep -c '\[ingest a1\] agent connected from' "$COL_LOG")
    t0=$(date +%s.%3N)
    kvl_start_agent agent "$KVL_TMP/agent.yaml"
    AGENT=$KVL_LAST_PID
    kvl_wait_until 20 "the agent to connect through the flood (try $try)" \
        eval '[ "$(grep -c "\[ingest a1\] agent connected from" "$COL_LOG")" -gt "$n_before" ]'
    line=$(grep '\[ingest a1\] agent connected from' "$COL_LOG" | tail -n 1)
    ms=$(awk -v a="$t0" -v b="$(t_of "$line")" 'BEGIN { printf "%d", (b - a) * 1000 }')
    times="$times ${ms}ms"
    kvl_is_ours "$HO" flood.py || kvl_fail "the flood ended before try $try: $(cat "$KVL_TMP/ho.out" "$KVL_TMP/logs/flood-ho.log")"
    [ "$ms" -lt 2000 ] || kvl_fail "try $try: the agent got in ${ms} ms after its start, through 3,000 half-open connections (2000 ms allowed)"
    # (4 s: the collector logs an agent's connections 3 times per 10 s at most)
    kvl_sleep_checking 4 "$COL" "$AGENT" "$HO"
done
kvl_log "(b) agent connected through the flood in:$times"
grep -q 'too many connections before their hello (max_handshakes ' "$COL_LOG" \
    || kvl_fail "the collector did not say it closed connections for max_handshakes"
grep -q 'too many connections before their hello (max_handshakes_per_address ' "$COL_LOG" \
    || kvl_fail "the collector did not say it closed connections for max_handshakes_per_address"

# Its samples reach the archive while the flood goes on.
t_now=$(date +%s)
kvl_wait_until 20 "an update of $F during the flood" kvl_rrd_updated_since "$F" "$t_now"
kvl_is_ours "$HO" flood.py || kvl_fail "the flood ended early: $(cat "$KVL_TMP/ho.out")"
kvl_stop "$HO"
n_ho=$(cat "$KVL_TMP/ho.out")
lines_b=$(flood_lines "$mark" | wc -l)
# Reasons: the two bounds, closed before the hello, the handshake timeout, accept failures.
t_b_first=$(t_of "$(tail -n +"$((mark + 1))" "$COL_LOG" | head -n 1)")
t_b_last=$(t_of "$(tail -n 1 "$COL_LOG")")
span_b=$(awk -v a="$t_b_first" -v b="$t_b_last" 'BEGIN { printf "%d", b - a + 1 }')
max_b=$((3 * 5 * (span_b / 10 + 1)))
[ "$lines_b" -le "$max_b" ] || kvl_fail "the half-open flood ($n_ho) made $lines_b collector lines in ${span_b}s (at most $max_b expected): $(flood_lines "$mark" | head -n 20)"
grep -q 'similar lines left out' "$COL_LOG" || kvl_fail "no collector line counts the lines it left out"
kvl_log "(b) flood: $n_ho; $lines_b collector lines about it in ${span_b}s"
kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
kvl_is_ours "$SIM" snmpsimd || kvl_fail "snmpsim died"

kvl_pass "a connect/close flood logged in $lines_a lines; through 3,000 half-open connections the agent got in within$times; $lines_b lines about them"
