#!/bin/bash
# test_capture_tshark.sh BUILD: kaaval-agent --capture-once against tshark's statistics on a
# pcap that make_pcap.py writes (scapy), and against the handshake times, retransmissions and
# other figures the script put in (compare.py says what is compared). Its own temp folder; no
# network. Exits 77 (skipped) when tshark or scapy is missing.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
command -v tshark >/dev/null || { echo "tshark not installed: skipped"; exit 77; }
# Debian's python3-scapy lives in the system python, which a PATH python may not see.
py=""
for c in /usr/bin/python3 python3; do
    if "$c" -c "import scapy.all" 2>/dev/null; then
        py=$c
        break
    fi
done
[ -n "$py" ] || { echo "python3-scapy not installed: skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvl-capture.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$py" "$here/make_pcap.py" "$tmp/mix.pcap" "$tmp/mix.json" 2>"$tmp/make.log" || {
    cat "$tmp/make.log" >&2
    exit 1
}
cat >"$tmp/agent.yaml" <<YAML
id: capture-test
site: lab
capture:
  file: $tmp/mix.pcap
  local_networks: [10.1.0.0/16, 2001:db8:1::/48]
  top_n: 1000
  sketch_size: 1024
YAML
"$py" "$here/compare.py" "$build/kaaval-agent" "$tmp/mix.pcap" "$tmp/mix.json" "$tmp/agent.yaml"
