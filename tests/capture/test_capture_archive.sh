#!/usr/bin/env bash
# test_capture_archive.sh BUILD — the capture's figures from a real agent to a real
# collector's archive and its API. The agent reads a pcap that make_pcap.py writes (scapy) through
# `capture: file:` (read at its first interval's end, every 2 s); the collector files the
# family "capture" under <site>/_capture/<agent>/<file name>.rrd. Checks, with rrdtool fetch
# on a copy of the archive: the rates integrated over the rows give the frames and bytes the
# pcap holds (read from its records by this script), the IP bytes by transport add up to
# the IP bytes, the application classes to the IP bytes, and the drops are unknown (a file
# has no drop counters). Then GET /api/v1/capture: the interval's top hosts and
# conversations are those `kaaval-agent --capture-once` prints for the file (which
# capture_tshark checks against tshark), the first host's bytes tshark's (-z endpoints,ip)
# when tshark is there; bad parameters get 400, an unknown interface 404. Its own temp
# folder and ports; exits 77 without scapy.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
kvl_init "$@"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=""
for c in /usr/bin/python3 python3; do
    if "$c" -c "import scapy.all" 2>/dev/null; then
        py=$c
        break
    fi
done
[ -n "$py" ] || {
    echo "SKIP: python3-scapy not installed"
    exit 77
}
"$py" "$here/make_pcap.py" "$KVL_TMP/mix.pcap" "$KVL_TMP/mix.json" 2>"$KVL_TMP/make.log" ||
    kvl_fail "make_pcap.py failed: $(cat "$KVL_TMP/make.log")"

kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
DATA=$KVL_TMP/data
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$DATA"
kvl_http_config "$KVL_TMP/collector.yaml" "$HTTP_PORT"
kvl_add_token "$KVL_TMP/collector.yaml" viewer viewer
TOKEN=$KVL_TOKEN
kvl_start_http_collector collector "$KVL_TMP/collector.yaml" "$HTTP_PORT"
COL=$KVL_LAST_PID

cat >"$KVL_TMP/agent.yaml" <<YAML
id: capqa
site: lab
collector: 127.0.0.1:$COL_PORT
insecure: true
log_level: info
flush_interval: 200ms
spool: {dir: $KVL_TMP/agent.spool, sync_interval: 1s}
traps: {listen: off}
capture:
  file: $KVL_TMP/mix.pcap
  local_networks: [10.1.0.0/16, 2001:db8:1::/48]
  interval: 2s
  top_n: 20
YAML
T_START=$(date +%s)
kvl_start_agent agent "$KVL_TMP/agent.yaml"
AGENT=$KVL_LAST_PID
RRD=$DATA/lab/_capture/capqa/mix.pcap.rrd

# The archive holds rows a few intervals after the file's (zeros at the start, the totals,
# then no change).
rows_after_file() {
    kvl_is_ours "$AGENT" kaaval-agent || kvl_fail "the agent exited: $(tail -5 "$KVL_TMP/logs/agent.log")"
    [ -f "$RRD" ] && [ "$(kvl_rrd_last_time "$RRD")" -ge $((T_START + 8)) ] 2>/dev/null
}
kvl_wait_until 40 "the capture archive $RRD to hold the file's figures" rows_after_file

snap=$(_kvl_snap "$RRD") || kvl_fail "cannot copy $RRD"
now=$(rrdtool last "$snap")
rrdtool fetch "$snap" AVERAGE -r 2 -s $((now - 600)) -e "$now" >"$KVL_TMP/fetch" ||
    kvl_fail "rrdtool fetch failed"
"$KVL_PY" - "$KVL_TMP/mix.pcap" "$KVL_TMP/fetch" <<'PY' || kvl_fail "archive figures wrong (above)"
import math, struct, sys
# The truth: the pcap's own records (frames and on-the-wire lengths).
data = open(sys.argv[1], "rb").read()
magic = struct.unpack("<I", data[:4])[0]
end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
off, frames, wire = 24, 0, 0
while off + 16 <= len(data):
    _, _, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
    off += 16 + incl
    frames += 1
    wire += orig
lines = [l.split() for l in open(sys.argv[2]) if l.strip()]
names = lines[0]
sums = {n: 0.0 for n in names}
known = {n: 0 for n in names}
step = 2
for row in lines[1:]:
    for n, x in zip(names, row[1:]):
        v = float(x)
        if not math.isnan(v):
            sums[n] += v * step
            known[n] += 1
def near(a, b):
    return abs(a - b) <= max(1.0, 0.001 * b)
bad = []
if not near(sums["packets_total"], frames):
    bad.append(f"packets_total {sums['packets_total']:.1f} != {frames} frames in the pcap")
if not near(sums["bytes_total"], wire):
    bad.append(f"bytes_total {sums['bytes_total']:.1f} != {wire} bytes in the pcap")
ip = sums["bytes_ipv4"] + sums["bytes_ipv6"]
if not near(sums["bytes_non_ip"] + ip, sums["bytes_total"]):
    bad.append("IP and non-IP bytes do not add up to the total")
l4 = sum(sums[n] for n in ("bytes_tcp", "bytes_udp", "bytes_icmp", "bytes_other_l4"))
if not near(l4, ip):
    bad.append(f"bytes by transport {l4:.1f} != IP bytes {ip:.1f}")
apps = sum(v for n, v in sums.items() if n.startswith("app_"))
if not near(apps, ip):
    bad.append(f"bytes by application {apps:.1f} != IP bytes {ip:.1f}")
if sums["app_dns"] <= 0 or sums["app_http"] <= 0:
    bad.append("no DNS or HTTP bytes classified")
if known["drops_kernel"] != 0:
    bad.append("drops known for a file")
if ip <= 0 or sums["bytes_in"] + sums["bytes_out"] <= 0:
    bad.append("no IP bytes or none in or out")
print(f"frames {frames} bytes {wire}; archive: packets {sums['packets_total']:.1f} "
      f"bytes {sums['bytes_total']:.1f} tcp {sums['bytes_tcp']:.0f} udp {sums['bytes_udp']:.0f} "
      f"dns {sums['app_dns']:.0f} http {sums['app_http']:.0f} tls {sums['app_tls']:.0f}")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
# The top lists through the API, against --capture-once on the same file and settings.
URL=http://127.0.0.1:$HTTP_PORT
api() { curl -s --noproxy '*' -m 10 -H "Authorization: Bearer $TOKEN" -o "$KVL_TMP/api.out" -w '%{http_code}' "$URL$1"; }
code=$(api "/api/v1/capture?agent=capqa&interface=mix.pcap&from=$((T_START - 60))")
[ "$code" = 200 ] || kvl_fail "GET /api/v1/capture: $code $(cat "$KVL_TMP/api.out")"
cp "$KVL_TMP/api.out" "$KVL_TMP/top.json"
"$KVL_AGENT" -c "$KVL_TMP/agent.yaml" --capture-once "$KVL_TMP/mix.pcap" >"$KVL_TMP/once.txt" \
    2>"$KVL_TMP/once.log" || kvl_fail "--capture-once failed: $(cat "$KVL_TMP/once.log")"
tshark_ep=""
if command -v tshark >/dev/null; then
    tshark -n -r "$KVL_TMP/mix.pcap" -q -z endpoints,ip >"$KVL_TMP/endpoints.txt" 2>/dev/null &&
        tshark_ep=$KVL_TMP/endpoints.txt
fi
"$KVL_PY" - "$KVL_TMP/top.json" "$KVL_TMP/once.txt" "$tshark_ep" <<'PY' || kvl_fail "top lists wrong (above)"
import json, re, sys
ans = json.load(open(sys.argv[1]))
bad = []
iv = [i for i in ans["intervals"] if i["hosts"]]
if len(iv) != 1:
    sys.exit(print(f"expected one interval with top lists, got {len(iv)}: {ans}") or 1)
iv = iv[0]
def kv(line):
    return dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
hosts, convs = [], []
for line in open(sys.argv[2]):
    if line.startswith("host "):
        hosts.append(kv(line))
    elif line.startswith("conv "):
        convs.append(kv(line))
hosts, convs = hosts[:20], convs[:20]
if len(iv["hosts"]) != len(hosts) or len(iv["convs"]) != len(convs):
    bad.append(f"{len(iv['hosts'])} hosts and {len(iv['convs'])} conversations, "
               f"--capture-once {len(hosts)} and {len(convs)}")
for got, want in zip(iv["hosts"], hosts):
    if (got["addr"], got["bytes"], got["error"], got["packets"]) != (
            want["addr"], int(want["bytes"]), int(want["error"]), int(want["packets"])):
        bad.append(f"host {got} != {want}")
for got, want in zip(iv["convs"], convs):
    if (got["a"], got["b"], got["bytes"], got["packets"]) != (
            want["a"], want["b"], int(want["bytes"]), int(want["packets"])):
        bad.append(f"conversation {got} != {want}")
if sys.argv[3]:
    ep = {}
    for line in open(sys.argv[3]):
        m = re.match(r"^(\d+\.\d+\.\d+\.\d+)\s+(\d+)\s+(\d+)", line)
        if m:
            ep[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    if not ep:
        bad.append("no endpoints read from tshark")
    first = iv["hosts"][0]
    if ":" not in first["addr"] and ep.get(first["addr"]) != (first["packets"], first["bytes"]):
        bad.append(f"first host {first}: tshark {ep.get(first['addr'])} (frames, bytes)")
print(f"{len(iv['hosts'])} hosts, {len(iv['convs'])} conversations; first host {iv['hosts'][0]}")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
for q in "?agent=capqa" "?interface=mix.pcap" "?agent=capqa&interface=mix.pcap&from=x" \
    "?agent=capqa&interface=mix.pcap&to=-5" "?agent=capqa&interface=mix.pcap&from=20&to=10"; do
    code=$(api "/api/v1/capture$q")
    [ "$code" = 400 ] || kvl_fail "GET /api/v1/capture$q: $code, expected 400"
    grep -q '"error"' "$KVL_TMP/api.out" || kvl_fail "GET /api/v1/capture$q: no sentence"
done
code=$(api "/api/v1/capture?agent=capqa&interface=eth9")
[ "$code" = 404 ] || kvl_fail "an unknown interface: $code, expected 404"
head -1 "$DATA/_capture/capqa/mix.pcap.top" | grep -qx "kaaval-captop 1" ||
    kvl_fail "the top file lacks its version line"

kvl_stop "$AGENT" || kvl_fail "the agent did not stop"
kvl_stop "$COL" || kvl_fail "the collector did not stop"
kvl_pass "the capture's figures archived and its top lists served; as the pcap holds"
