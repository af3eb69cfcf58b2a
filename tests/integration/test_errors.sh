#!/bin/bash
# test_errors.sh — proves that bad input gets a clear error and harms nobody else.
#
# (a) Broken configurations (among them names the collector would refuse: an empty agent
#     id, an id or site longer than it accepts, a device name too long for an archive file
#     name): for each of several broken agent and collector files, both
#     `--check-config` and a real start exit with status 2 and print
#     `<file>:<line>:<column>: <what was expected>` on stderr, the position being that of the
#     offending text (worked out here from the file itself). Valid files pass the check.
#     Among them: a TLS private key others may read (mode 0644, 0604), refused by both.
# (b) Malformed frames: while a real agent streams samples into the collector, other clients
#     connect and send garbage, an oversized length prefix, an empty frame, an undecodable
#     payload, a non-hello first message, a frame cut short, or nothing at all. The collector
#     must close each of those connections and log a line naming it, keep running, and keep
#     writing the real agent's samples (no unknown step, rates right, no reconnect).
# (c) An unreachable device (a UDP port with nothing listening) on the same agent is logged
#     as not answering exactly once over many intervals, is archived as unreachable, and the
#     agent's other device keeps being polled on time.
#
#   bash tests/integration/test_errors.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=2
IN_RATE=125000
OUT_RATE=50000

# ===================================================================== (a) configurations ===

C=$KVL_TMP/cfg
mkdir -p "$C"
kvl_free_port tcp COL_PORT

# expect_config_error BIN FILE LINE_REGEX TOKEN FRAGMENT
#   LINE_REGEX picks the offending line, TOKEN the offending text on it (empty: any column);
#   FRAGMENT must appear in the message.
expect_config_error() {
    local bin=$1 file=$2 re=$3 token=$4 frag=$5 line col want mode rc
    line=$(grep -n -E -m1 -- "$re" "$file" | cut -d: -f1)
    [ -n "$line" ] || kvl_fail "test bug: /$re/ not in $file"
    if [ -n "$token" ]; then
        col=$(sed -n "${line}p" "$file" | awk -v t="$token" '{ print index($0, t) }')
        [ "$col" -gt 0 ] || kvl_fail "test bug: '$token' not on line $line of $file"
        want="$file:$line:$col:"
    else
        want="$file:$line:[0-9]+:"
    fi
    for mode in --check-config run; do
        local args=(-c "$file")
        [ "$mode" = run ] || args+=("$mode")
        timeout 10 "$bin" "${args[@]}" >"$KVL_TMP/cfg.out" 2>"$KVL_TMP/cfg.err"
        rc=$?
        [ "$rc" -eq 2 ] || kvl_fail "$(basename "$bin") ${args[*]}: exit status $rc, expected 2; stderr: $(cat "$KVL_TMP/cfg.err")"
        grep -qE -- "$want" "$KVL_TMP/cfg.err" \
            || kvl_fail "$(basename "$bin") ${args[*]}: stderr lacks '$want': $(cat "$KVL_TMP/cfg.err")"
        grep -qF -- "$frag" "$KVL_TMP/cfg.err" \
            || kvl_fail "$(basename "$bin") ${args[*]}: stderr lacks '$frag': $(cat "$KVL_TMP/cfg.err")"
    done
    kvl_log "ok: $(head -n 1 "$KVL_TMP/cfg.err")"
}

expect_config_ok() {
    "$1" -c "$2" --check-config >"$KVL_TMP/cfg.out" 2>"$KVL_TMP/cfg.err" \
        || kvl_fail "$(basename "$1") --check-config rejects the valid $2: $(cat "$KVL_TMP/cfg.err")"
}

agent_base() { # the valid file, with sed edits applied
    cat <<EOF
# a valid agent configuration
id: err-agent
site: lab
collector: 127.0.0.1:$COL_PORT
defaults:
  interval: 10s
  timeout: 1s
devices:
  - name: dev1
    address: 127.0.0.1
    port: 1161
  - name: dev2
    address: 127.0.0.1
    community: public
insecure: true
EOF
}
collector_base() {
    cat <<EOF
# a valid collector configuration
id: err-collector
listen: 127.0.0.1:$COL_PORT
data_dir: $KVL_TMP/cfg-data
archives: [step:1h, 5m:1d]
consolidations: [AVERAGE, MAX]
max_frame: 65536
insecure: true
EOF
}

agent_base >"$C/agent-ok.yaml"
collector_base >"$C/collector-ok.yaml"
expect_config_ok "$KVL_AGENT" "$C/agent-ok.yaml"
expect_config_ok "$KVL_COLLECTOR" "$C/collector-ok.yaml"

agent_base | sed 's/^collector:/colector:/' >"$C/a-unknown-key.yaml"
expect_config_error "$KVL_AGENT" "$C/a-unknown-key.yaml" '^colector:' colector "unknown setting 'colector'"

agent_base | sed 's/^    port: 1161/    port: 1161\n    version: 3/' >"$C/a-version.yaml"
expect_config_error "$KVL_AGENT" "$C/a-version.yaml" 'version: 3' 3 "expected one of"

agent_base | sed 's/^  interval: 10s/  interval: 10 sec/' >"$C/a-duration.yaml"
expect_config_error "$KVL_AGENT" "$C/a-duration.yaml" 'interval: 10 sec' '10 sec' "expected a duration"

agent_base | sed 's/^  interval: 10s/  interval: 200ms/' >"$C/a-range.yaml"
expect_config_error "$KVL_AGENT" "$C/a-range.yaml" 'interval: 200ms' 200ms "out of range"

agent_base | sed 's/^    port: 1161/    port: 1161\n    interval: 2s\n    timeout: 1500ms/' >"$C/a-timeout.yaml"
expect_config_error "$KVL_AGENT" "$C/a-timeout.yaml" 'timeout: 1500ms' 1500ms "shorter than the interval"

agent_base | sed '/^    address: 127.0.0.1$/{x;s/^/x/;/^x$/{x;d};x}' >"$C/a-missing.yaml" # drop dev1's address
expect_config_error "$KVL_AGENT" "$C/a-missing.yaml" '- name: dev1' 'name: dev1' "missing required setting 'address'"

agent_base | sed 's/- name: dev2/- name: "dev1"/' >"$C/a-twice.yaml" # the second dev1 is wrong
expect_config_error "$KVL_AGENT" "$C/a-twice.yaml" 'name: "dev1"' '"dev1"' "used twice"

agent_base | sed "s/^collector: .*/collector: 127.0.0.1/" >"$C/a-hostport.yaml"
expect_config_error "$KVL_AGENT" "$C/a-hostport.yaml" '^collector:' 127.0.0.1 "host:port"

# Names the collector would refuse (its bounds on ids and sites, archive file names of at
# most 250 bytes): refused by the agent first, with the reason.
agent_base | sed "s/^id: err-agent/id: ''/" >"$C/a-empty-id.yaml"
expect_config_error "$KVL_AGENT" "$C/a-empty-id.yaml" '^id:' "''" "the id must not be empty"
long300=$(printf 'n%.0s' $(seq 300))
agent_base | sed "s/^  - name: dev2/  - name: $long300/" >"$C/a-long-device.yaml"
expect_config_error "$KVL_AGENT" "$C/a-long-device.yaml" "name: $long300" "$long300" \
    "device name of 300 bytes is too long for an archive file name"
agent_base | sed "s/^site: lab/site: $long300/" >"$C/a-long-site.yaml"
expect_config_error "$KVL_AGENT" "$C/a-long-site.yaml" '^site:' "$long300" \
    "the site has 300 bytes, at most 200"
agent_base | sed "s/^id: err-agent/id: ${long300:0:201}/" >"$C/a-long-id.yaml"
expect_config_error "$KVL_AGENT" "$C/a-long-id.yaml" '^id:' "${long300:0:201}" \
    "the id has 201 bytes, at most 200"

agent_base | sed 's/^site: lab/site: lab\n  oops: [unclosed/' >"$C/a-syntax.yaml"
expect_config_error "$KVL_AGENT" "$C/a-syntax.yaml" 'oops' '' "$C/a-syntax.yaml:"

collector_base | sed "s/^listen: .*/listen: 127.0.0.1/" >"$C/c-listen.yaml"
expect_config_error "$KVL_COLLECTOR" "$C/c-listen.yaml" '^listen:' 127.0.0.1 "host:port"

# Neither tls: nor insecure: true, both, or a TLS file that cannot be read.
agent_base | sed '/^insecure:/d' >"$C/a-no-tls.yaml"
expect_config_error "$KVL_AGENT" "$C/a-no-tls.yaml" '^id:' id "or insecure: true"
collector_base | sed '/^insecure:/d' >"$C/c-no-tls.yaml"
expect_config_error "$KVL_COLLECTOR" "$C/c-no-tls.yaml" '^id:' id "or insecure: true"
collector_base | sed 's|^insecure: true|tls: {ca: /nonexistent/ca.crt, cert: c.crt, key: c.key}|' \
    >"$C/c-tls-file.yaml"
expect_config_error "$KVL_COLLECTOR" "$C/c-tls-file.yaml" '^tls:' /nonexistent "cannot read /nonexistent/ca.crt"
install -m 600 "$C/agent-ok.yaml" "$C/a-both.key" # any readable file; a key kept secret
{ agent_base; echo "tls: {ca: $C/agent-ok.yaml, cert: $C/agent-ok.yaml, key: $C/a-both.key}"; } \
    >"$C/a-both.yaml"
expect_config_error "$KVL_AGENT" "$C/a-both.yaml" '^insecure:' true "exclude each other"

# A private key others may read: refused by both daemons, naming the file, its mode and the
# fix; the same keys with mode 0600 (and 0640, group ours) pass.
command -v openssl >/dev/null 2>&1 || kvl_fail "'openssl' not found: run packaging/install-deps.sh"
PKI=$C/pki
{ sh "$KVL_REPO/packaging/kaaval-certs.sh" -d "$PKI" ca &&
    sh "$KVL_REPO/packaging/kaaval-certs.sh" -d "$PKI" collector 127.0.0.1 &&
    sh "$KVL_REPO/packaging/kaaval-certs.sh" -d "$PKI" agent err-agent; } >"$C/pki.out" 2>&1 \
    || kvl_fail "cannot make certificates: $(cat "$C/pki.out")"
for k in "$PKI"/*.key; do
    [ "$(stat -c %a "$k")" = 600 ] || kvl_fail "kaaval-certs.sh made $k with mode $(stat -c %a "$k")"
done
agent_base | sed "s|^insecure: true|tls: {ca: $PKI/ca.crt, cert: $PKI/err-agent.crt, key: $PKI/err-agent.key}|" \
    >"$C/a-key.yaml"
collector_base | sed "s|^insecure: true|tls: {ca: $PKI/ca.crt, cert: $PKI/collector.crt, key: $PKI/collector.key}|" \
    >"$C/c-key.yaml"
expect_config_ok "$KVL_AGENT" "$C/a-key.yaml"
expect_config_ok "$KVL_COLLECTOR" "$C/c-key.yaml"
chmod 640 "$PKI/err-agent.key" "$PKI/collector.key" # the group is ours (made by us)
expect_config_ok "$KVL_AGENT" "$C/a-key.yaml"
expect_config_ok "$KVL_COLLECTOR" "$C/c-key.yaml"
chmod 644 "$PKI/err-agent.key" "$PKI/collector.key"
expect_config_error "$KVL_AGENT" "$C/a-key.yaml" '^tls:' "$PKI/err-agent.key" \
    "(mode 0644): run 'chmod 600 $PKI/err-agent.key'"
expect_config_error "$KVL_COLLECTOR" "$C/c-key.yaml" '^tls:' "$PKI/collector.key" \
    "(mode 0644): run 'chmod 600 $PKI/collector.key'"
chmod 604 "$PKI/collector.key"
expect_config_error "$KVL_COLLECTOR" "$C/c-key.yaml" '^tls:' "$PKI/collector.key" "(mode 0604)"

collector_base | sed 's/5m:1d/5x:1d/' >"$C/c-archive.yaml"
expect_config_error "$KVL_COLLECTOR" "$C/c-archive.yaml" '^archives:' 5x:1d "resolution:retention"

collector_base | sed 's/MAX\]/MEDIAN]/' >"$C/c-cf.yaml"
expect_config_error "$KVL_COLLECTOR" "$C/c-cf.yaml" '^consolidations:' MEDIAN "AVERAGE, MAX, MIN or LAST"

collector_base | sed 's/^max_frame: 65536/max_frame: -5/' >"$C/c-frame.yaml"
expect_config_error "$KVL_COLLECTOR" "$C/c-frame.yaml" '^max_frame:' -5 "expected a whole number"

collector_base | sed 's/^data_dir:/data-dir:/' >"$C/c-unknown.yaml"
expect_config_error "$KVL_COLLECTOR" "$C/c-unknown.yaml" '^data-dir:' data-dir "unknown setting 'data-dir'"

kvl_log "(a) configuration errors: all reported at file:line:column with status 2"

# The spool folder is made by the agent when missing; when its parent is missing too, the
# agent says so, naming the folder, and exits (status 1) instead of running without it.
{ agent_base; echo "spool: {dir: $KVL_TMP/no-such-parent/spool}"; } >"$C/a-spool.yaml"
rc=0
timeout 20 "$KVL_AGENT" -c "$C/a-spool.yaml" >/dev/null 2>"$KVL_TMP/spool.err" || rc=$?
[ "$rc" -eq 1 ] || kvl_fail "agent with an impossible spool folder: exit status $rc, expected 1"
grep -q "cannot create the spool folder $KVL_TMP/no-such-parent/spool" "$KVL_TMP/spool.err" \
    || kvl_fail "agent with an impossible spool folder: stderr lacks the reason: $(cat "$KVL_TMP/spool.err")"
kvl_log "ok: $(grep 'cannot create the spool folder' "$KVL_TMP/spool.err" | head -n 1)"

# ===================================================================== (b) and (c) =========

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
kvl_make_rate_device "$KVL_TMP/rec/ratedev.snmprec" "eth0:$IN_RATE:$OUT_RATE:1000"
kvl_free_port udp SNMP_PORT
kvl_free_port udp DEAD_PORT # nothing ever listens here

kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
kvl_agent_config "$KVL_TMP/agent.yaml" err-agent lab "$COL_PORT" "${INTERVAL}s" debug
kvl_agent_device "$KVL_TMP/agent.yaml" ratedev "$SNMP_PORT" ratedev
kvl_agent_device "$KVL_TMP/agent.yaml" deaddev "$DEAD_PORT" public
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
t_agent=$(date +%s)

F=$KVL_TMP/data/lab/ratedev/eth0.rrd
kvl_wait_until 30 "the archive $F" test -f "$F"
t_first=$(kvl_rrd_last_time "$F")
[ -n "$t_first" ] || kvl_fail "cannot read the last update of $F"

# The bad clients, all at once, in the background (the silent one takes the 10 s hello timeout).
"$KVL_PY" - kaaval-bad-clients "$COL_PORT" >"$KVL_TMP/bad-clients.out" 2>"$KVL_TMP/logs/bad-clients.log" <<'EOF' &
import socket, struct, sys, threading, time

port = int(sys.argv[2])
cases = {
    "garbage": b"GET / HTTP/1.0\r\nHost: kaaval\r\n\r\n",          # length 'GET ' = 1.2 GB
    "oversized": struct.pack(">I", 0x7FFFFFF0) + b"\x0a" * 64,
    "empty-frame": struct.pack(">I", 0),
    "undecodable": struct.pack(">I", 16) + b"\xff" * 16,
    "ack-first": struct.pack(">I", 4) + bytes([0x32, 0x02, 0x08, 0x01]),      # Envelope{ack{seq 1}}
    "batch-first": struct.pack(">I", 4) + bytes([0x2A, 0x02, 0x08, 0x01]),    # Envelope{batch{seq 1}}
    "cut-short": struct.pack(">I", 100) + b"\x0a" * 10,                       # then end of stream
    "silent": b"",
}
results = {}

def run(name, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    local = s.getsockname()[1]
    t0 = time.time()
    try:
        if data:
            s.sendall(data)
        if name == "cut-short":
            s.shutdown(socket.SHUT_WR)
        s.settimeout(15)
        closed = "open"
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = "closed"
                break
    except (ConnectionResetError, BrokenPipeError):
        closed = "closed"
    except socket.timeout:
        closed = "open"
    results[name] = (local, closed, time.time() - t0)
    s.close()

threads = [threading.Thread(target=run, args=(n, d)) for n, d in cases.items()]
for t in threads:
    t.start()
for t in threads:
    t.join(30)
for name in cases:
    local, closed, secs = results.get(name, (0, "no-result", 0))
    print(name, local, closed, "%.1f" % secs)
EOF
BAD=$!
kvl_track "$BAD" kaaval-bad-clients
_kvl_await_exec "$BAD" kaaval-bad-clients || kvl_fail "the bad clients did not start: $(cat "$KVL_TMP/logs/bad-clients.log")"
t_bad=$(date +%s)

# Meanwhile: watch the good device's archive for 16 s, noting every update time.
: >"$KVL_TMP/updates"
for ((i = 0; i < 80; i++)); do
    kvl_rrd_last_time "$F" >>"$KVL_TMP/updates"
    sleep 0.2
done
kvl_wait_until 30 "the bad clients to finish" eval '! kvl_is_ours "$BAD" kaaval-bad-clients'
wait "$BAD" 2>/dev/null
kvl_untrack "$BAD"
kvl_wait_until 20 "3 more polls" eval '[ "$(kvl_rrd_last_time "$F")" -ge $(($(date +%s) - 1)) ]'
t_last=$(kvl_rrd_last_time "$F")

kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died while bad clients talked to it"
kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent died"
kvl_is_ours "$SIM" snmpsimd || kvl_fail "snmpsim died"

# (b) every bad connection closed by the collector, with a log line naming it.
[ "$(wc -l <"$KVL_TMP/bad-clients.out")" -eq 8 ] || kvl_fail "the bad clients did not all report: $(cat "$KVL_TMP/bad-clients.out")"
while read -r name local closed secs; do
    [ "$closed" = closed ] || kvl_fail "bad client '$name' (port $local): the collector left the connection $closed after ${secs}s"
    line=$(grep -E "closing connection from 127\.0\.0\.1:$local: " "$KVL_TMP/logs/collector.log" | head -n 1)
    [ -n "$line" ] || kvl_fail "bad client '$name' (port $local): no log line 'closing connection from 127.0.0.1:$local: ...'"
    kvl_log "ok: $name closed after ${secs}s: ${line#*\] }"
done <"$KVL_TMP/bad-clients.out"

# ... while the real agent stayed connected and its samples kept being written.
n_conn=$(grep -c 'connected to collector' "$KVL_TMP/logs/agent.log")
[ "$n_conn" -eq 1 ] || kvl_fail "the agent connected $n_conn times (its connection was disturbed)"
if grep -E "closing connection from .*|agent disconnected" "$KVL_TMP/logs/collector.log" | grep -q "err-agent"; then
    kvl_fail "the collector closed the real agent's connection: $(grep err-agent "$KVL_TMP/logs/collector.log" | tail -n 3)"
fi
step=$(kvl_rrd_step "$F")
kvl_rrd_rows "$F" AVERAGE in_octets $((t_first - step)) $((t_last + step)) >"$KVL_TMP/rows" \
    || kvl_fail "rrdtool fetch failed on $F"
awk -v step="$step" -v first="$t_first" -v last="$t_last" -v bad="$t_bad" -v rate="$IN_RATE" \
    -v mtol="$KVL_MEAN_TOL" -v stol="$KVL_STEP_TOL" '
    $1 - step > first && $1 <= last {
        n++; if ($1 >= bad) during++
        if ($2 == "nan" || $2 < rate * (1 - stol) || $2 > rate * (1 + stol)) off = off " " $1 ":" $2
        else { sum += $2; k++ }
    }
    END {
        if (off != "") { print "ratedev rows unknown or off the rate while bad clients talked:" off; exit 1 }
        if (during < 6) { print "only " during " rows of ratedev written after the bad clients started"; exit 1 }
        if (sum / k < rate * (1 - mtol) || sum / k > rate * (1 + mtol)) { print "ratedev rows average " sum / k ", not within 1 % of " rate; exit 1 }
        print n " rows of ratedev, " during " of them while bad clients talked, all known and right"
    }' "$KVL_TMP/rows" >"$KVL_TMP/verdict" || kvl_fail "$(cat "$KVL_TMP/verdict")"
kvl_log "$(cat "$KVL_TMP/verdict")"

# (c) the unreachable device: logged once, archived as unreachable ...
elapsed=$(($(date +%s) - t_agent))
[ "$elapsed" -ge $((5 * INTERVAL)) ] || kvl_fail "test bug: only ${elapsed}s of polling"
grep -E '(WARN|ERROR) .*deaddev' "$KVL_TMP/logs/agent.log" >"$KVL_TMP/dead-lines" || true
n_dead=$(wc -l <"$KVL_TMP/dead-lines")
[ "$n_dead" -eq 1 ] || kvl_fail "deaddev: $n_dead warning/error lines in ${elapsed}s ($((elapsed / INTERVAL)) intervals), expected exactly 1: $(cat "$KVL_TMP/dead-lines")"
grep -qi 'not answering' "$KVL_TMP/dead-lines" || kvl_fail "deaddev: the line does not say it is not answering: $(cat "$KVL_TMP/dead-lines")"
kvl_log "ok: logged once in ${elapsed}s: $(sed 's/^[^ ]* //' "$KVL_TMP/dead-lines")"
D=$KVL_TMP/data/lab/deaddev.rrd
[ -f "$D" ] || kvl_fail "deaddev: no device archive $D (a device that does not answer is reported down)"
read -r _ reach < <(kvl_rrd_last "$D" reachable) || kvl_fail "cannot read $D"
awk -v r="$reach" 'BEGIN { exit !(r == 0) }' || kvl_fail "deaddev: reachable is $reach, expected 0"

# ... and the good device polled on time: its archive updated every interval while watched.
sort -un "$KVL_TMP/updates" | awk -v iv="$INTERVAL" '
    NF { t[n++] = $1 }
    END {
        if (n < 6) { print "ratedev: only " n " updates in 16 s of watching"; exit 1 }
        for (i = 1; i < n; i++) if (t[i] - t[i - 1] > iv + 1) late = late " " t[i - 1] "->" t[i]
        mean = (t[n - 1] - t[0]) / (n - 1)
        if (late != "" || mean > iv * 1.1) {
            printf "ratedev: polls late (mean gap %.2f s, interval %d s):%s\n", mean, iv, late; exit 1 }
        printf "ratedev: %d updates in 16 s, mean gap %.2f s (interval %d s)\n", n, mean, iv
    }' >"$KVL_TMP/verdict" || kvl_fail "$(cat "$KVL_TMP/verdict")"
kvl_log "$(cat "$KVL_TMP/verdict")"
grep -E '\[snmp ratedev\] poll done' "$KVL_TMP/logs/agent.log" | awk -v iv="$INTERVAL" '
    { split(substr($1, 12, 12), hms, ":"); t = hms[1] * 3600 + hms[2] * 60 + hms[3]
      g = t - p; if (g < 0) g += 86400 # past midnight
      # From the third poll on: the first comes at once after the start, the second one
      # interval later, the third joins the phase of the device (0.5 to 1.5 intervals later).
      if (n++ >= 3 && (g > iv + 0.5 || g < iv - 0.5)) late = late sprintf(" %.3f", g); p = t }
    END { if (late != "") { print "ratedev: gaps between logged polls off the interval:" late; exit 1 } }
' >"$KVL_TMP/verdict" || kvl_fail "$(cat "$KVL_TMP/verdict")"

kvl_pass "config errors at file:line:column; 8 bad clients closed and logged; dead device logged once; good device on time"
