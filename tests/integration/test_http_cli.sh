#!/usr/bin/env bash
# test_http_cli.sh — the collector's HTTP server with real users, tokens and clients.
#
# A collector with `http:` (plain HTTP on 127.0.0.1, a free port): users and tokens added
# with --add-user / --add-token before it starts (and one while it runs: the users file is
# read again), then `kaavalctl status` with a token and with a user, kaavalctl's exit codes
# (0 done, 1 refused by the server, 2 usage), and curl: 401 without or with wrong
# credentials, 403 for a viewer on an admin route, 200 with Basic, Bearer and a kiosk link,
# a browser session whose write without its CSRF token is refused, static files, traversal
# refused. A second collector serves HTTPS with its TLS certificate (curl and kaavalctl
# verify it against the CA; the session cookie is Secure). --check-config refuses plain
# HTTP on a non-loopback address and HTTPS without `tls:` (exit 2, with the reason).
# Last, kaavalctl's alerts, ack and silence commands against a stand-in of the alert book's
# API (python3): the tables it prints and the requests it sends (paths, bodies, token).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

CTL=$KVL_BUILD/kaavalctl
[ -x "$CTL" ] || kvl_fail "kaavalctl not built ($CTL)"
command -v curl >/dev/null 2>&1 || kvl_fail "'curl' not found"
export HOME=$KVL_TMP/home # no ~/.config/kaaval/token of the machine's user
mkdir -p "$HOME" "$KVL_TMP/data" "$KVL_TMP/data2"
unset KAAVAL_TOKEN KAAVAL_URL KAAVAL_PASSWORD KAAVAL_CACERT

kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data"
cat >>"$KVL_TMP/collector.yaml" <<EOC
http:
  listen: 127.0.0.1:$HTTP_PORT
  static_dir: $KVL_REPO/dashboards
EOC
COLLECTOR=$KVL_COLLECTOR
CFG=$KVL_TMP/collector.yaml

# --- configuration checks -------------------------------------------------------------------
"$COLLECTOR" -c "$CFG" --check-config >/dev/null 2>&1 || kvl_fail "the good configuration is refused"
sed "s/listen: 127.0.0.1:$HTTP_PORT/listen: 0.0.0.0:$HTTP_PORT/" "$CFG" >"$KVL_TMP/bad1.yaml"
rc=0
"$COLLECTOR" -c "$KVL_TMP/bad1.yaml" --check-config >"$KVL_TMP/logs/bad1.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || kvl_fail "plain HTTP on 0.0.0.0: --check-config exit $rc, expected 2"
grep -q "plain HTTP may listen on 127.0.0.1 or ::1 only" "$KVL_TMP/logs/bad1.out" \
    || kvl_fail "plain HTTP on 0.0.0.0: no clear reason: $(cat "$KVL_TMP/logs/bad1.out")"
grep -q "bad1.yaml:[0-9]*:[0-9]*:" "$KVL_TMP/logs/bad1.out" \
    || kvl_fail "plain HTTP on 0.0.0.0: the error names no file:line:column"
sed "s/  static_dir:/  tls: true\n  static_dir:/" "$CFG" >"$KVL_TMP/bad2.yaml"
rc=0
"$COLLECTOR" -c "$KVL_TMP/bad2.yaml" --check-config >"$KVL_TMP/logs/bad2.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || kvl_fail "HTTPS without tls: --check-config exit $rc, expected 2"
grep -q "HTTPS needs the collector's certificate" "$KVL_TMP/logs/bad2.out" \
    || kvl_fail "HTTPS without tls: no clear reason: $(cat "$KVL_TMP/logs/bad2.out")"

# --- users and tokens -----------------------------------------------------------------------
echo 'alice-password' | "$COLLECTOR" -c "$CFG" --add-user alice --role operator 2>>"$KVL_TMP/logs/add.log" \
    || kvl_fail "--add-user alice failed"
echo 'root-password!' | "$COLLECTOR" -c "$CFG" --add-user root --role admin 2>>"$KVL_TMP/logs/add.log" \
    || kvl_fail "--add-user root failed"
OPS_TOKEN=$("$COLLECTOR" -c "$CFG" --add-token ops --role operator 2>>"$KVL_TMP/logs/add.log") \
    || kvl_fail "--add-token ops failed"
WALL_TOKEN=$("$COLLECTOR" -c "$CFG" --add-token wall --role viewer 2>>"$KVL_TMP/logs/add.log") \
    || kvl_fail "--add-token wall failed"
[ "${#OPS_TOKEN}" = 68 ] || kvl_fail "the token printed is not kvl_ + 64 hex: '$OPS_TOKEN'"
grep -q "$OPS_TOKEN" "$KVL_TMP/data/tokens" && kvl_fail "the token is stored in clear"
# shellcheck disable=SC2016  # a literal $y$
grep -q '^alice:operator:\$y\$' "$KVL_TMP/data/users" || kvl_fail "alice's line is not a yescrypt hash"
[ "$(stat -c %a "$KVL_TMP/data/users")" = 600 ] || kvl_fail "the users file is not mode 600"
rc=0
echo 'x' | "$COLLECTOR" -c "$CFG" --add-user bob --role viewer 2>/dev/null || rc=$?
[ "$rc" = 2 ] || kvl_fail "a too short password: exit $rc, expected 2"
rc=0
"$COLLECTOR" -c "$CFG" --add-token ops --role chief 2>/dev/null || rc=$?
[ "$rc" = 2 ] || kvl_fail "an unknown role: exit $rc, expected 2"

kvl_start_collector collector "$CFG"
COL=$KVL_LAST_PID
kvl_wait_until 10 "the HTTP server" grep -q "listening on 127.0.0.1 port $HTTP_PORT" \
    "$KVL_TMP/logs/collector.log"
URL=http://127.0.0.1:$HTTP_PORT

# a second collector wanting the same HTTP port stops at start with the reason
kvl_free_port tcp COL3_PORT
mkdir -p "$KVL_TMP/data3"
sed -e "s/^listen: 127.0.0.1:$COL_PORT/listen: 127.0.0.1:$COL3_PORT/" \
    -e "s|^data_dir: .*|data_dir: $KVL_TMP/data3|" "$CFG" >"$KVL_TMP/busy.yaml"
rc=0
timeout 30 "$COLLECTOR" -c "$KVL_TMP/busy.yaml" >"$KVL_TMP/logs/busy.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || kvl_fail "a collector whose HTTP port is taken: exit $rc, expected 1"
grep -q "cannot listen on 127.0.0.1 port $HTTP_PORT: Address already in use" \
    "$KVL_TMP/logs/busy.out" || kvl_fail "the HTTP port taken: no clear reason"

# code ARGS...: the HTTP status curl gets.
code() {
    curl -s --path-as-is --noproxy '*' -m 20 -o "$KVL_TMP/body" -w '%{http_code}' "$@"
}
expect() {
    local want=$1 what=$2 got
    shift 2
    got=$(code "$@")
    [ "$got" = "$want" ] || kvl_fail "$what: HTTP $got, expected $want ($(head -c 300 "$KVL_TMP/body"))"
}

# --- kaavalctl ------------------------------------------------------------------------------
"$CTL" --url "$URL" --token "$OPS_TOKEN" status >"$KVL_TMP/logs/ctl1.out" 2>&1 \
    || kvl_fail "kaavalctl status with a token failed: $(cat "$KVL_TMP/logs/ctl1.out")"
grep -q "collector  test-collector" "$KVL_TMP/logs/ctl1.out" || kvl_fail "kaavalctl status: no collector id"
grep -q "you        token:ops (operator)" "$KVL_TMP/logs/ctl1.out" || kvl_fail "kaavalctl status: who?"
KAAVAL_PASSWORD=alice-password "$CTL" --url "$URL" --user alice status >"$KVL_TMP/logs/ctl2.out" 2>&1 \
    || kvl_fail "kaavalctl status as alice failed: $(cat "$KVL_TMP/logs/ctl2.out")"
grep -q "you        alice (operator)" "$KVL_TMP/logs/ctl2.out" || kvl_fail "kaavalctl --user: who?"
mkdir -p "$HOME/.config/kaaval" && echo "$WALL_TOKEN" >"$HOME/.config/kaaval/token"
KAAVAL_URL=$URL "$CTL" status >"$KVL_TMP/logs/ctl3.out" 2>&1 \
    || kvl_fail "kaavalctl with ~/.config/kaaval/token failed: $(cat "$KVL_TMP/logs/ctl3.out")"
grep -q "token:wall (viewer)" "$KVL_TMP/logs/ctl3.out" || kvl_fail "the token file was not used"
rm "$HOME/.config/kaaval/token"
rc=0
"$CTL" --url "$URL" status >"$KVL_TMP/logs/ctl4.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || kvl_fail "kaavalctl without credentials: exit $rc, expected 1"
grep -q "401" "$KVL_TMP/logs/ctl4.out" || kvl_fail "kaavalctl without credentials: no 401 said"
rc=0
KAAVAL_PASSWORD=wrong "$CTL" --url "$URL" --user alice status >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || kvl_fail "kaavalctl with a wrong password: exit $rc, expected 1"
for bad in "frobnicate" "silence add --for 2h" "silence add --match site --for 2h" \
    "silence add --match site=x --for soon" "ack" "ack NOT-HEX" "alerts --status maybe"; do
    rc=0
    # shellcheck disable=SC2086  # the words are the arguments
    "$CTL" --url "$URL" --token "$OPS_TOKEN" $bad >/dev/null 2>&1 || rc=$?
    [ "$rc" = 2 ] || kvl_fail "kaavalctl $bad: exit $rc, expected 2 (usage)"
done
rc=0
"$CTL" --url http://127.0.0.1:1 --token "$OPS_TOKEN" status >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || kvl_fail "kaavalctl to a closed port: exit $rc, expected 1"

# --- curl: authentication and roles ---------------------------------------------------------
expect 401 "no credentials" "$URL/api/v1/status"
expect 401 "a wrong password" -u alice:nope "$URL/api/v1/status"
expect 401 "an unknown token" -H "Authorization: Bearer kvl_0000" "$URL/api/v1/status"
expect 200 "Basic" -u alice:alice-password "$URL/api/v1/status"
grep -q '"collector":"test-collector"' "$KVL_TMP/body" || kvl_fail "status: $(cat "$KVL_TMP/body")"
expect 200 "Bearer" -H "Authorization: Bearer $WALL_TOKEN" "$URL/api/v1/whoami"
expect 200 "a kiosk link" "$URL/api/v1/whoami?kiosk=$WALL_TOKEN"
grep -q '"user":"kiosk:wall"' "$KVL_TMP/body" || kvl_fail "kiosk: $(cat "$KVL_TMP/body")"
expect 403 "a kiosk link with an operator token" "$URL/api/v1/whoami?kiosk=$OPS_TOKEN"
expect 403 "an operator on an admin route" -H "Authorization: Bearer $OPS_TOKEN" "$URL/api/v1/users"
expect 403 "a viewer on an admin route" -H "Authorization: Bearer $WALL_TOKEN" "$URL/api/v1/users"
expect 200 "an admin on an admin route" -u 'root:root-password!' "$URL/api/v1/users"
grep -q '"name":"ops","role":"operator","kind":"token"' "$KVL_TMP/body" \
    || kvl_fail "users: $(cat "$KVL_TMP/body")"
# shellcheck disable=SC2016  # a literal $y$
grep -q '\$y\$' "$KVL_TMP/body" && kvl_fail "the users list shows hashes"
expect 400 "a bad query" -u alice:alice-password "$URL/api/v1/status?a=%zz"
expect 404 "no such API" -u alice:alice-password "$URL/api/v1/nothing"
# a user added while the collector runs can log in at once
echo 'carol-password' | "$COLLECTOR" -c "$CFG" --add-user carol --role viewer 2>>"$KVL_TMP/logs/add.log"
expect 200 "a user added while running" -u carol:carol-password "$URL/api/v1/whoami"

# --- a browser session ----------------------------------------------------------------------
expect 200 "login" -c "$KVL_TMP/jar" -H 'Content-Type: application/json' \
    -d '{"user":"alice","password":"alice-password"}' "$URL/api/v1/login"
CSRF=$(sed -n 's/.*"csrf_token":"\([0-9a-f]*\)".*/\1/p' "$KVL_TMP/body")
[ "${#CSRF}" = 64 ] || kvl_fail "login: no CSRF token in $(cat "$KVL_TMP/body")"
grep -q 'kaaval_session' "$KVL_TMP/jar" || kvl_fail "login: no session cookie"
expect 200 "a session's read" -b "$KVL_TMP/jar" "$URL/api/v1/whoami"
expect 403 "a session's write without X-CSRF-Token" -b "$KVL_TMP/jar" -X POST -d '{}' \
    "$URL/api/v1/whoami"
grep -q "X-CSRF-Token" "$KVL_TMP/body" || kvl_fail "no CSRF reason: $(cat "$KVL_TMP/body")"
expect 200 "logout" -b "$KVL_TMP/jar" -X POST "$URL/api/v1/logout"
expect 401 "a read after logout" -b "$KVL_TMP/jar" "$URL/api/v1/whoami"
expect 401 "a wrong login" -d '{"user":"alice","password":"guess"}' "$URL/api/v1/login"
grep -q "login refused for alice" "$KVL_TMP/logs/collector.log" || kvl_fail "a failed login is not logged"

# --- limits and static files ----------------------------------------------------------------
head -c 70000 /dev/zero | tr '\0' ' ' >"$KVL_TMP/big.json"
expect 413 "a 70 kB body" -u alice:alice-password -X POST --data-binary @"$KVL_TMP/big.json" \
    "$URL/api/v1/whoami"
expect 200 "the board's page" "$URL/"
grep -q "src=\"board.js\"" "$KVL_TMP/body" || kvl_fail "/ is not the NOC board (index.html with board.js)"
expect 400 "traversal with .." "$URL/../../etc/passwd"
expect 400 "traversal with %2e%2e" "$URL/%2e%2e/%2e%2e/etc/passwd"
expect 405 "a POST to a static file" -X POST -d x "$URL/index.html"
expect 404 "a missing file" "$URL/nothing.html"

kvl_stop "$COL" || kvl_fail "the collector did not stop on SIGTERM"
kvl_untrack "$COL"

# --- HTTPS with the collector's certificate ------------------------------------------------
command -v openssl >/dev/null 2>&1 || kvl_fail "'openssl' not found"
CERTS=$KVL_TMP/certs
sh "$KVL_REPO/tests/tls/make-test-certs.sh" "$CERTS" >"$KVL_TMP/logs/certs.out" 2>&1 \
    || kvl_fail "cannot make the test certificates: $(cat "$KVL_TMP/logs/certs.out")"
kvl_free_port tcp COL2_PORT
kvl_free_port tcp HTTPS_PORT
KVL_COLLECTOR_TLS="tls: {ca: $CERTS/ca.crt, cert: $CERTS/collector.crt, key: $CERTS/collector.key}" \
    kvl_collector_config "$KVL_TMP/tls.yaml" "$COL2_PORT" "$KVL_TMP/data2"
cat >>"$KVL_TMP/tls.yaml" <<EOC
http:
  listen: 127.0.0.1:$HTTPS_PORT
EOC
TOK2=$("$COLLECTOR" -c "$KVL_TMP/tls.yaml" --add-token ops --role operator 2>>"$KVL_TMP/logs/add.log") \
    || kvl_fail "--add-token (TLS collector) failed"
echo 'alice-password' | "$COLLECTOR" -c "$KVL_TMP/tls.yaml" --add-user alice --role operator \
    2>>"$KVL_TMP/logs/add.log" || kvl_fail "--add-user (TLS collector) failed"
kvl_start_collector collector-tls "$KVL_TMP/tls.yaml"
kvl_wait_until 10 "the HTTPS server" grep -q "listening on 127.0.0.1 port $HTTPS_PORT (HTTPS)" \
    "$KVL_TMP/logs/collector-tls.log"
SURL=https://127.0.0.1:$HTTPS_PORT
expect 200 "HTTPS with a token" --cacert "$CERTS/ca.crt" -H "Authorization: Bearer $TOK2" \
    "$SURL/api/v1/status"
expect 000 "plain HTTP to the HTTPS port" -H "Authorization: Bearer $TOK2" \
    "http://127.0.0.1:$HTTPS_PORT/api/v1/status"
curl -s --noproxy '*' -m 20 --cacert "$CERTS/ca.crt" -D "$KVL_TMP/hdr" -o /dev/null \
    -d '{"user":"alice","password":"alice-password"}' "$SURL/api/v1/login"
grep -qi '^Set-Cookie: kaaval_session=.*HttpOnly; SameSite=Strict.*; Secure' "$KVL_TMP/hdr" \
    || kvl_fail "HTTPS login: the cookie is not Secure: $(grep -i set-cookie "$KVL_TMP/hdr")"
"$CTL" --url "$SURL" --cacert "$CERTS/ca.crt" --token "$TOK2" status >"$KVL_TMP/logs/ctl5.out" 2>&1 \
    || kvl_fail "kaavalctl over HTTPS failed: $(cat "$KVL_TMP/logs/ctl5.out")"
rc=0
"$CTL" --url "$SURL" --token "$TOK2" status >"$KVL_TMP/logs/ctl6.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || kvl_fail "kaavalctl without the CA: exit $rc, expected 1 (unverified)"

# --- kaavalctl's alerts and silences against the alert book's API -----------------------------
# A stand-in for the book's handlers (GET /api/v1/alerts, POST .../<fp>/ack, GET/POST
# /api/v1/silences, DELETE /api/v1/silences/<id>) that records what kaavalctl sends.
kvl_free_port tcp FAKE_PORT
cat >"$KVL_TMP/fake_api.py" <<'EOP'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, log = int(sys.argv[1]), sys.argv[2]
ALERT = {"fingerprint": "00c0ffee12345678", "status": "firing", "rule": "device_down",
         "severity": "critical", "labels": {"site": "dhq-tvm", "device": "rtr1"},
         "summary": "rtr1 is down", "starts_at": "2026-12-05T14:33:00.000Z", "ack": None}
SIL = {"id": "s-1", "matchers": [{"name": "site", "value": "dhq-tvm", "op": "="}],
       "starts_at": "2026-12-05T14:00:00.000Z", "ends_at": "2026-12-05T16:00:00.000Z",
       "author": "token:ops", "comment": "planned work"}
class H(BaseHTTPRequestHandler):
    def answer(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def record(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        with open(log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path, "body": body,
                                "auth": self.headers.get("Authorization", "")}) + "\n")
    def do_GET(self):
        self.record()
        if self.path == "/api/v1/alerts?status=firing":
            self.answer(200, [ALERT])
        elif self.path == "/api/v1/silences":
            self.answer(200, {"silences": [SIL]})
        else:
            self.answer(404, {"error": "no such API: " + self.path})
    def do_POST(self):
        self.record()
        if self.path == "/api/v1/alerts/00c0ffee12345678/ack":
            self.answer(200, {"acknowledged": True})
        elif self.path == "/api/v1/silences":
            self.answer(201, {"id": "s-2"})
        else:
            self.answer(400, {"error": "bad request to " + self.path})
    def do_DELETE(self):
        self.record()
        self.answer(200 if self.path == "/api/v1/silences/s-1" else 404, {})
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", port), H).serve_forever()
EOP
"$KVL_PY" "$KVL_TMP/fake_api.py" "$FAKE_PORT" "$KVL_TMP/fake.log" 2>"$KVL_TMP/logs/fake_api.log" &
FAKE=$!
kvl_track "$FAKE" fake_api.py
kvl_wait_until 10 "the stand-in API" curl -s --noproxy '*' -o /dev/null "http://127.0.0.1:$FAKE_PORT/"
FURL=http://127.0.0.1:$FAKE_PORT
ctl() { "$CTL" --url "$FURL" --token "$OPS_TOKEN" "$@"; }
ctl alerts --status firing >"$KVL_TMP/logs/ctl_alerts.out" 2>&1 || kvl_fail "kaavalctl alerts failed"
grep -q '^FINGERPRINT .*SEVERITY' "$KVL_TMP/logs/ctl_alerts.out" || kvl_fail "alerts: no table header"
grep -Eq '^00c0ffee12345678 +firing +critical +device_down +dhq-tvm +rtr1 .*12-05 14:33 +no +rtr1 is down' \
    "$KVL_TMP/logs/ctl_alerts.out" || kvl_fail "alerts: $(cat "$KVL_TMP/logs/ctl_alerts.out")"
ctl ack 00c0ffee12345678 -m "on it" >/dev/null 2>&1 || kvl_fail "kaavalctl ack failed"
ctl silence add --match site=dhq-tvm 'device=~rtr.*' --for 1h30m -m "planned work" \
    >"$KVL_TMP/logs/ctl_sil.out" 2>&1 || kvl_fail "kaavalctl silence add failed"
grep -q "silence s-2 until" "$KVL_TMP/logs/ctl_sil.out" || kvl_fail "silence add: $(cat "$KVL_TMP/logs/ctl_sil.out")"
ctl silence list >"$KVL_TMP/logs/ctl_sl.out" 2>&1 || kvl_fail "kaavalctl silence list failed"
grep -Eq '^s-1 +12-05 16:00 +site=dhq-tvm +token:ops +planned work' "$KVL_TMP/logs/ctl_sl.out" \
    || kvl_fail "silence list: $(cat "$KVL_TMP/logs/ctl_sl.out")"
ctl silence rm s-1 >/dev/null 2>&1 || kvl_fail "kaavalctl silence rm failed"
rc=0
ctl silence rm s-9 >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || kvl_fail "kaavalctl silence rm of an unknown id: exit $rc, expected 1"
"$KVL_PY" - "$KVL_TMP/fake.log" "$OPS_TOKEN" <<'EOP' || kvl_fail "kaavalctl's requests: see above"
import json, sys, datetime
reqs = [r for r in map(json.loads, open(sys.argv[1])) if r["path"] != "/"]  # not the wait
want_auth = "Bearer " + sys.argv[2]
assert all(r["auth"] == want_auth for r in reqs), "a request without the token"
by = {(r["method"], r["path"].split("?")[0]): r for r in reqs}
ack = json.loads(by[("POST", "/api/v1/alerts/00c0ffee12345678/ack")]["body"])
assert ack == {"comment": "on it"}, ack
sil = json.loads(by[("POST", "/api/v1/silences")]["body"])
assert sil["matchers"] == [{"name": "site", "value": "dhq-tvm", "op": "="},
                           {"name": "device", "value": "rtr.*", "op": "=~"}], sil
assert sil["comment"] == "planned work", sil
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
assert (t(sil["ends_at"]) - t(sil["starts_at"])).total_seconds() == 5400, sil
assert ("DELETE", "/api/v1/silences/s-1") in by
EOP
kvl_stop "$FAKE" || kvl_fail "the stand-in API did not stop"
kvl_untrack "$FAKE"

kvl_pass "users, tokens, sessions, roles, limits, static files, HTTPS and kaavalctl"
