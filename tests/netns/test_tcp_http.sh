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
. "$(dirname "$0")/lib.sh"
ns_init tcp ip python3 openssl

P=kvlt$$
NA=${P}a
NS=${P}s
ns_add "$NA" "$NS"
ns_pair "$NA" "$NS" 10.80.0

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
NS_PIDS="$NS_PIDS $!"
ip netns exec "$NS" python3 -m http.server 8080 --bind 10.80.0.2 --directory "$W/www" \
    >"$W/http.log" 2>&1 &
NS_PIDS="$NS_PIDS $!"
ip netns exec "$NS" python3 - "$W/www" "$W/cert.pem" "$W/key.pem" >"$W/https.log" 2>&1 <<'PY' &
import functools, http.server, ssl, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("10.80.0.2", 8443), h)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
NS_PIDS="$NS_PIDS $!"
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


R=$(field "$W/out" tcp-open 0 received)
M=$(field "$W/out" tcp-open 0 connect_median_ms)
U=$(field "$W/out" tcp-open 0 user_timed)
r=0; { [ "$R" = 10 ] && [ "$U" = 0 ] && python3 -c "import sys; sys.exit(0 if 0 < float('$M') < 5 else 1)"; } || r=1
check tcp $r "received $R of 10, connect median $M ms, user-timed $U"

L=$(field "$W/out" tcp-closed 0 lost_pct)
F=$(field "$W/out" tcp-closed 0 refused)
r=0; { [ "$L" = 100.0000 ] && [ "$F" = 10 ]; } || r=1
check refused $r "lost $L %, refused $F"

S1=$(field "$W/out" http-ok 0 status)
R1=$(field "$W/out" http-ok 0 received)
S2=$(field "$W/out" http-404 0 status)
R2=$(field "$W/out" http-404 0 received)
S3=$(field "$W/out" http-404-bad 0 status)
B3=$(field "$W/out" http-404-bad 0 bad_status)
L3=$(field "$W/out" http-404-bad 0 lost_pct)
r=0
{ [ "$S1" = 200 ] && [ "$R1" = 1 ] && [ "$S2" = 404 ] && [ "$R2" = 2 ] && [ "$S3" = 404 ] &&
    [ "$B3" = 1 ] && [ "$L3" = 100.0000 ]; } || r=1
check status $r "ok.html: status $S1 received $R1; missing: status $S2 received $R2 of 2; missing expecting 200: status $S3, bad_status $B3, lost $L3 %"

S=$(field "$W/out" https-ok 0 status)
D=$(field "$W/out" https-ok 0 cert_days)
T=$(field "$W/out" https-ok 0 total_median_ms)
B=$(field "$W/out" https-ok 0 ttfb_median_ms)
r=0
{ [ "$S" = 200 ] && python3 -c "import sys; sys.exit(0 if abs(float('$D') - 30) < 0.01 and 0 < float('$B') <= float('$T') else 1)"; } || r=1
check https $r "status $S, certificate expires in $D days (set: 30), ttfb $B ms, total $T ms"

exit $FAIL
