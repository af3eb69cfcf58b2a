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
grep -q "/api/v1/alerts" "$KVL_TMP/body" || kvl_fail "index.html does not link the alerts"
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

kvl_pass "users, tokens, sessions, roles, limits, static files, HTTPS and kaavalctl"
