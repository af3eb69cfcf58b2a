#!/usr/bin/env bash
# test_tls.sh — mutual TLS between real agents and a real collector on 127.0.0.1.
#
# Certificates come from packaging/kaaval-certs.sh (through tests/tls/make-test-certs.sh,
# which adds another CA's agent and an expired agent), made fresh in the temp folder.
# One collector requires TLS. Then, each with a site of its own:
#   - a client with no certificate at all (openssl s_client),
#   - an agent whose certificate comes from another CA,
#   - an agent whose certificate expired in 2020,
#   - an agent with a2's certificate claiming to be a1,
#   - an agent speaking plain TCP (insecure: true) to the TLS collector,
#   - a TCP connection that never starts the handshake (closed after 10 s);
# each must be refused, the refusal logged by the collector (and by the agent, where it
# is one), and nothing written under its site. Meanwhile the good agent's archives appear.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

command -v openssl >/dev/null 2>&1 || kvl_fail "'openssl' not found: run packaging/install-deps.sh"
CERTS=$KVL_TMP/certs
sh "$KVL_REPO/tests/tls/make-test-certs.sh" "$CERTS" >"$KVL_TMP/logs/certs.out" 2>&1 \
    || kvl_fail "cannot make the test certificates: $(cat "$KVL_TMP/logs/certs.out")"
for k in "$CERTS"/*.key; do
    [ "$(stat -c %a "$k")" = 600 ] || kvl_fail "$k has mode $(stat -c %a "$k"), expected 600"
done

mkdir -p "$KVL_TMP/rec" "$KVL_TMP/data"
kvl_make_rate_device "$KVL_TMP/rec/ratedev.snmprec" "eth0:1000:2000"
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"

KVL_COLLECTOR_TLS="tls: {ca: $CERTS/ca.crt, cert: $CERTS/collector.crt, key: $CERTS/collector.key}" \
    kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/data"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID
COL_LOG=$KVL_TMP/logs/collector.log
grep -q 'mutual TLS as' "$COL_LOG" || kvl_fail "the collector does not say it uses TLS"

# agent NAME ID SITE TLS-LINE: an agent polling ratedev every 2 s.
agent() {
    KVL_AGENT_TLS=$4 kvl_agent_config "$KVL_TMP/$1.yaml" "$2" "$3" "$COL_PORT" 2s
    kvl_agent_device "$KVL_TMP/$1.yaml" ratedev "$SNMP_PORT" ratedev
    kvl_start_agent "$1" "$KVL_TMP/$1.yaml"
}
tls_line() { # CERT KEY
    echo "tls: {ca: $CERTS/ca.crt, cert: $1, key: $2}"
}

# A peer that connects and never starts the handshake: closed after 10 s.
exec 7<>"/dev/tcp/127.0.0.1/$COL_PORT" || kvl_fail "cannot connect to the collector"

# No certificate: what a port scanner or a misconfigured client does.
timeout 10 openssl s_client -connect "127.0.0.1:$COL_PORT" -CAfile "$CERTS/ca.crt" \
    </dev/null >"$KVL_TMP/logs/s_client.out" 2>&1 || true

agent other-ca a1 s-other-ca "$(tls_line "$CERTS/other/a1.crt" "$CERTS/other/a1.key")"
agent expired a1 s-expired "$(tls_line "$CERTS/expired/a1.crt" "$CERTS/expired/a1.key")"
agent spoof a1 s-spoof "$(tls_line "$CERTS/a2.crt" "$CERTS/a2.key")"
agent plain a1 s-plain "insecure: true"
agent good a1 good "$(tls_line "$CERTS/a1.crt" "$CERTS/a1.key")"

GOOD=$KVL_TMP/data/good/ratedev/eth0.rrd
kvl_wait_until 30 "the good agent's archive $GOOD" test -f "$GOOD"
grep -q 'TLS established (TLSv1.3' "$KVL_TMP/logs/good.log" \
    || kvl_fail "the good agent logged no TLS 1.3 session"
grep -q "\[ingest a1\] agent connected from .* (site good" "$COL_LOG" \
    || kvl_fail "the collector did not log the good agent"

kvl_wait_until 15 "the collector's log of every refusal" bash -c "
    grep -q 'the peer sent no certificate' '$COL_LOG' &&
    grep -q 'not signed by the configured CA' '$COL_LOG' &&
    grep -q 'certificate has expired' '$COL_LOG' &&
    grep -q \"agent id 'a1' does not match its certificate (CN 'a2')\" '$COL_LOG' &&
    grep -q 'does not speak TLS' '$COL_LOG'"
kvl_wait_until 15 "each refused agent's log of why" bash -c "
    grep -q \"alert 'unknown CA'\" '$KVL_TMP/logs/other-ca.log' &&
    grep -q \"alert 'certificate expired'\" '$KVL_TMP/logs/expired.log' &&
    grep -q 'collector refused this agent: agent id .a1. does not match' '$KVL_TMP/logs/spoof.log' &&
    grep -q 'plain TCP' '$KVL_TMP/logs/plain.log'"
for name in other-ca expired spoof plain; do
    kvl_log "$name: $(grep -m1 -E 'ERROR|WARN  \[uplink' "$KVL_TMP/logs/$name.log" | grep -v INSECURE)"
done
kvl_log "collector: $(grep -c 'closing connection' "$COL_LOG") connections refused"

# Give the refused agents a few more attempts, then: nothing of theirs on disk.
kvl_sleep_checking 4 "$COL"
for site in s-other-ca s-expired s-spoof s-plain; do
    [ ! -e "$KVL_TMP/data/$site" ] || kvl_fail "refused agent's data written under $KVL_TMP/data/$site"
done
# (the collector's own files aside: _journal, _alerts, _notify, _agents.state; a site's
# folder never starts with '_')
found=$(find "$KVL_TMP/data" -mindepth 1 -maxdepth 1 ! -name '_*' -printf '%f ')
[ "$found" = "good " ] || kvl_fail "the data folder holds '$found', expected only 'good'"
grep -q 'INSECURE' "$KVL_TMP/logs/plain.log" || kvl_fail "the insecure agent did not warn at start"
kvl_wait_until 15 "the collector to close the silent connection" \
    grep -q 'TLS handshake not finished within 10 s' "$COL_LOG"
exec 7>&-

kvl_pass "no certificate, another CA, expired, a claimed id, plain TCP and a silent peer refused and logged; the good agent's archives written"
