#!/bin/bash
# test_check_config.sh — `--check-config` refuses what start-up would refuse, with a sentence
# naming the file and the key, and exit 2; the same file, repaired, passes (exit 0):
#   agent:     a spool folder whose parent is missing; a certificate whose CN is not the
#              agent's id; a key that is not the certificate's; a certificate file missing;
#   collector: a `listen:` that is a host name (file:line:column); a data_dir whose parent is
#              missing; a key that is not the certificate's.
# And `--poll-once` needs no collector nor TLS: a file with neither polls a device that does
# not answer, says "1 devices, 0 answering" and exits 1.
#
#   bash tests/integration/test_check_config.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$KVL_TMP
C=$T/tls
mkdir -p "$C" "$T/state"
certs() { sh "$HERE/../../packaging/kaaval-certs.sh" -d "$C" "$@" >>"$T/logs/certs.log" 2>&1 ||
    kvl_fail "kaaval-certs.sh $*: $(tail -n 3 "$T/logs/certs.log")"; }
certs ca
certs agent agent-a
certs agent agent-b
certs collector 127.0.0.1

# refused FILE PROGRAM TEXT: --check-config exits 2 and says TEXT
refused() {
    local rc=0
    "$2" -c "$1" --check-config >"$T/out" 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || kvl_fail "$(basename "$2") --check-config $1: exit $rc, not 2: $(cat "$T/out")"
    grep -qF -- "$3" "$T/out" || kvl_fail "$(basename "$2") --check-config: not '$3' but: $(cat "$T/out")"
    kvl_log "refused: $(head -n 1 "$T/out")"
}
accepted() {
    "$2" -c "$1" --check-config >"$T/out" 2>&1 ||
        kvl_fail "$(basename "$2") --check-config $1 refused a good file: $(cat "$T/out")"
}

agent_file() { # SPOOL CERT KEY
    cat >"$T/agent.yaml" <<EOF
id: agent-a
site: lab
collector: 127.0.0.1:5140
spool: {dir: $1}
tls: {ca: $C/ca.crt, cert: $2, key: $3}
devices:
  - {name: r1, address: 127.0.0.1, port: 1}
EOF
}
agent_file "$T/nowhere/spool" "$C/agent-a.crt" "$C/agent-a.key"
refused "$T/agent.yaml" "$KVL_AGENT" "spool: dir: $T/nowhere/spool does not exist and cannot be made"
agent_file "$T/state/spool" "$C/agent-b.crt" "$C/agent-b.key"
refused "$T/agent.yaml" "$KVL_AGENT" "is for 'agent-b', not this agent's id 'agent-a'"
agent_file "$T/state/spool" "$C/agent-a.crt" "$C/agent-b.key"
refused "$T/agent.yaml" "$KVL_AGENT" "tls: "
agent_file "$T/state/spool" "$C/missing.crt" "$C/agent-a.key"
refused "$T/agent.yaml" "$KVL_AGENT" "missing.crt"
agent_file "$T/state/spool" "$C/agent-a.crt" "$C/agent-a.key"
accepted "$T/agent.yaml" "$KVL_AGENT"

collector_file() { # LISTEN DATA_DIR KEY
    cat >"$T/collector.yaml" <<EOF
id: col
listen: $1
data_dir: $2
tls: {ca: $C/ca.crt, cert: $C/collector.crt, key: $3}
EOF
}
collector_file localhost:5140 "$T/data" "$C/collector.key"
refused "$T/collector.yaml" "$KVL_COLLECTOR" "collector.yaml:2:9: expected a numeric address to listen on"
collector_file 127.0.0.1:5140 "$T/nowhere/data" "$C/collector.key"
refused "$T/collector.yaml" "$KVL_COLLECTOR" "data_dir: $T/nowhere/data does not exist and cannot be made"
collector_file 127.0.0.1:5140 "$T/data" "$C/agent-a.key"
refused "$T/collector.yaml" "$KVL_COLLECTOR" "tls: "
collector_file 127.0.0.1:5140 "$T/data" "$C/collector.key"
accepted "$T/collector.yaml" "$KVL_COLLECTOR"
echo "rrdcached: unix:run/rrdcached.sock" >>"$T/collector.yaml"
refused "$T/collector.yaml" "$KVL_COLLECTOR" "collector.yaml:5:12: a unix socket needs an absolute path"
collector_file 127.0.0.1:5140 "$T/data" "$C/collector.key"
echo "rrdcached: unix:$T/rrdcached.sock" >>"$T/collector.yaml"
accepted "$T/collector.yaml" "$KVL_COLLECTOR"

# --poll-once without collector or TLS: a silent device fails the run
kvl_free_port udp DEAD
cat >"$T/lone.yaml" <<EOF
id: lone
site: lab
devices:
  - {name: silent, address: 127.0.0.1, port: $DEAD, timeout: 300ms, retries: 0}
EOF
rc=0
timeout 30 "$KVL_AGENT" -c "$T/lone.yaml" --poll-once >"$T/lone.out" 2>"$T/lone.err" || rc=$?
[ "$rc" -eq 1 ] || kvl_fail "--poll-once with a silent device: exit $rc, not 1: $(tail -n 3 "$T/lone.err")"
grep -q '^kaaval-agent: 1 devices, 0 answering$' "$T/lone.err" ||
    kvl_fail "--poll-once: no summary line: $(tail -n 3 "$T/lone.err")"
kvl_pass "--check-config refuses what start-up would (spool, certificate's CN, key, file, listen, data_dir); --poll-once gates without a collector"
