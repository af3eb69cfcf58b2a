#!/bin/sh
# test_tcp_http.sh — kaaval's TCP connect and HTTP(S) probes against real servers in the
# test's own network namespaces (ctest label netns; root).
#
#   A (agent, 10.80.0.1) --veth-- S (servers, 10.80.0.2)
#
# In S: a TCP listener on 7000 (python3), nothing on 7001, python3's http.server on 8080
# (ok.html -> 200, anything else -> 404), and the same behind TLS on 8443 with a
# self-signed certificate made by openssl at test time, valid for 30 days. Checks, each from
# `kaaval-agent --probe-once`:
#   tcp       10 connects to 7000: all established, connect_median_ms a positive figure
#             below 5 ms (veth), taken from the kernel (user_timed 0)
#   refused   10 connects to 7001: lost 100 %, refused 10
#   status    http 200 and 404 reported as status; a 404 with expect_status 200 counts as
#             bad_status and lost
#   https     status 200 with ca_file = the test's certificate; cert_days within 0.01 of the
#             30 days the test set; ttfb and total times present, ttfb <= total
# KEEP=1 keeps the work folder. Exit 77 (skipped) without root or tools.
set -eu

AGENT=${KVL_AGENT:-build/kaaval-agent}
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: needs root (network namespaces)"
    exit 77
fi
for t in ip python3 openssl; do
    command -v "$t" >/dev/null 2>&1 || { echo "SKIP: $t missing (packaging/install-deps.sh)"; exit 77; }
done

P=kvlt$$
NA=${P}a
NS=${P}s
W=$(mktemp -d /tmp/kvl-tcp.XXXXXX)
chmod 755 "$W"
PIDS=
FAIL=0

cleanup() {
    for p in $PIDS; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    for n in "$NA" "$NS"; do
        ip netns del "$n" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "work folder kept: $W"
    else
        rm -rf "$W"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

check() { # check NAME CONDITION-RESULT(0/1) MESSAGE
    if [ "$2" = 0 ]; then
        echo "PASS $1: $3"
    else
        echo "FAIL $1: $3"
        FAIL=1
    fi
}

ip netns add "$NA"
ip netns add "$NS"
ip link add a0 netns "$NA" type veth peer name s0 netns "$NS"
for n in "$NA" "$NS"; do ip -n "$n" link set lo up; done
ip -n "$NA" addr add 10.80.0.1/24 dev a0
ip -n "$NS" addr add 10.80.0.2/24 dev s0
ip -n "$NA" link set a0 up
ip -n "$NS" link set s0 up

# Servers.
mkdir -p "$W/www"
echo ok >"$W/www/ok.html"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=10.80.0.2 \
    -addext subjectAltName=IP:10.80.0.2 -keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
chmod 644 "$W/cert.pem"
ip netns exec "$NS" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.80.0.2", 7000)); s.listen(128)
while True: s.accept()[0].close()' &
PIDS="$PIDS $!"
ip netns exec "$NS" python3 -m http.server 8080 --bind 10.80.0.2 --directory "$W/www" \
    >"$W/http.log" 2>&1 &
PIDS="$PIDS $!"
ip netns exec "$NS" python3 - "$W/www" "$W/cert.pem" "$W/key.pem" >"$W/https.log" 2>&1 <<'PY' &
import functools, http.server, ssl, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("10.80.0.2", 8443), h)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
PIDS="$PIDS $!"
i=0
until ip netns exec "$NA" python3 -c '
import socket
for p in (7000, 8080, 8443): socket.create_connection(("10.80.0.2", p), 1).close()' 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 50 ] || { echo "FAIL: servers did not start"; cat "$W/http.log" "$W/https.log"; exit 1; }
    sleep 0.1
done

cat >"$W/agent.yaml" <<CFG
id: agent-a
site: test
collector: 127.0.0.1:5140
insecure: true
log_level: warn
probes:
  interval: 3s
  count: 10
  reflector: {enabled: false}
  targets:
    - {name: tcp-open, address: 10.80.0.2, type: tcp, port: 7000}
    - {name: tcp-closed, address: 10.80.0.2, type: tcp, port: 7001}
    - {name: http-ok, url: "http://10.80.0.2:8080/ok.html", type: http, expect_status: 200}
    - {name: http-404, url: "http://10.80.0.2:8080/missing", type: http, count: 2}
    - {name: http-404-bad, url: "http://10.80.0.2:8080/missing", type: http, expect_status: 200}
    - {name: https-ok, url: "https://10.80.0.2:8443/ok.html", type: https, ca_file: "$W/cert.pem"}
CFG
chmod 644 "$W/agent.yaml"
ip netns exec "$NA" "$AGENT" -c "$W/agent.yaml" --probe-once --probe-verbose >"$W/out" 2>"$W/err" || true
cat "$W/out"

# field TARGET KEY: a figure of interval 0
field() {
    awk -v t="$1" -v k="$2" '
        $1 == "probe" && $2 == t { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$W/out"
}

R=$(field tcp-open received)
M=$(field tcp-open connect_median_ms)
U=$(field tcp-open user_timed)
r=0; { [ "$R" = 10 ] && [ "$U" = 0 ] && python3 -c "import sys; sys.exit(0 if 0 < float('$M') < 5 else 1)"; } || r=1
check tcp $r "received $R of 10, connect median $M ms, user-timed $U"

L=$(field tcp-closed lost_pct)
F=$(field tcp-closed refused)
r=0; { [ "$L" = 100.0000 ] && [ "$F" = 10 ]; } || r=1
check refused $r "lost $L %, refused $F"

S1=$(field http-ok status)
R1=$(field http-ok received)
S2=$(field http-404 status)
R2=$(field http-404 received)
S3=$(field http-404-bad status)
B3=$(field http-404-bad bad_status)
L3=$(field http-404-bad lost_pct)
r=0
{ [ "$S1" = 200 ] && [ "$R1" = 1 ] && [ "$S2" = 404 ] && [ "$R2" = 2 ] && [ "$S3" = 404 ] &&
    [ "$B3" = 1 ] && [ "$L3" = 100.0000 ]; } || r=1
check status $r "ok.html: status $S1 received $R1; missing: status $S2 received $R2 of 2; missing expecting 200: status $S3, bad_status $B3, lost $L3 %"

S=$(field https-ok status)
D=$(field https-ok cert_days)
T=$(field https-ok total_median_ms)
B=$(field https-ok ttfb_median_ms)
r=0
{ [ "$S" = 200 ] && python3 -c "import sys; sys.exit(0 if abs(float('$D') - 30) < 0.01 and 0 < float('$B') <= float('$T') else 1)"; } || r=1
check https $r "status $S, certificate expires in $D days (set: 30), ttfb $B ms, total $T ms"

exit $FAIL
