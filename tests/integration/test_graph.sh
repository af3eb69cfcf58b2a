#!/bin/bash
# test_graph.sh — GET /api/v1/graph (collector/graph/graph.h) against a real collector fed
# by a real agent: a simulated device (snmpsim) polled every 2 s with a metric group over its
# interface table, and a STAMP link to the agent's own reflector (clock sync assumed, so the
# one-way delays are archived too). Then:
#   1. every kind (traffic, errors, packets, availability, latency, owd, mos, group) in png,
#      svg and json: the PNG's magic and IHDR width/height equal to what rrd_graph_v reported
#      (json's image_width/image_height), the JSON's image a PNG of that size, the SVG an XML
#      document whose width is the same; a wider width= gives a wider image;
#   2. 400 with a sentence for a bad kind, width=99999, from after to, agent=../x; 404 for an
#      unknown interface and an unknown agent; 401 without credentials;
#   3. a second identical request is served from the cache (GET /api/v1/graph/stats: one
#      more hit, no more draws); 20 viewers asking at once for a new graph cost one draw.
#
#   bash tests/integration/test_graph.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
kvl_make_rate_device "$T/rec/gdev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port udp REFLECTOR
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT

kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
kvl_add_token "$T/collector.yaml" wall viewer
TOKEN=$KVL_TOKEN
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
kvl_start_snmpsim "$T/rec" "$SNMP"
kvl_agent_config "$T/agent.yaml" graph-agent gsite "$COL_PORT" 2s
# the agent's own reflector on a free port, probed over STAMP every 2 s
sed -i "s|^  reflector: {enabled: false}.*|  reflector: {enabled: true, port: $REFLECTOR}\n  interval: 2s\n  count: 5\n  clock: {sync: assumed, error: 100us}\n  targets:\n    - {name: self, address: 127.0.0.1, type: stamp, port: $REFLECTOR}|" \
    "$T/agent.yaml"
kvl_agent_device "$T/agent.yaml" gdev "$SNMP" gdev
cat >>"$T/agent.yaml" <<'YAML'
    metric_groups: [ifg]
metric_groups:
  - name: ifg
    table: .1.3.6.1.2.1.2.2
    instance: .1.3.6.1.2.1.2.2.1.2
    metrics:
      - {name: mtu, oid: .1.3.6.1.2.1.2.2.1.4, kind: gauge}
      - {name: speed, oid: .1.3.6.1.2.1.2.2.1.5, kind: gauge}
YAML
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID

D=$T/data/gsite
kvl_wait_until 30 "the archive of gdev's eth0" test -f "$D/gdev/eth0.rrd"
kvl_wait_until 30 "the archive of gdev" test -f "$D/gdev.rrd"
kvl_wait_until 30 "the archive of the STAMP link" test -f "$D/_links/graph-agent/self.rrd"
group_file() { compgen -G "$D/gdev/_ifg/*.rrd" >/dev/null; }
kvl_wait_until 30 "the archive of the metric group" group_file
rrdtool info "$D/_links/graph-agent/self.rrd" >"$T/link.info" 2>&1
grep -q 'ds\[owd_fwd_median_ms\]' "$T/link.info" ||
    kvl_fail "the STAMP link's archive has no one-way delays"
GROUP_INST=$("$KVL_PY" -c 'import sys, urllib.parse
n = sys.argv[1].rsplit("/", 1)[1][:-4]
print(urllib.parse.quote(urllib.parse.unquote(n), safe=""))' "$(compgen -G "$D/gdev/_ifg/*.rrd" | head -1)")
URL="http://127.0.0.1:$HTTP_PORT"
kvl_wait_until 20 "the HTTP API" curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/status" -o /dev/null
kvl_sleep_checking 8 "$AGENT" "$COL"

# get QUERY OUT: the status code; the body in OUT
get() { curl -s -o "$2" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL/api/v1/graph?$1"; }
stat_of() { curl -s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/graph/stats" |
    "$KVL_PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# ------------------------------------------------------------------ 1: every kind ---------
check_image() { # FORMAT FILE JSON: the image's size against the JSON's image_width/height
    "$KVL_PY" - "$@" <<'PY'
import base64, json, re, struct, sys
import xml.etree.ElementTree as ET
fmt, path, meta = sys.argv[1:4]
m = json.load(open(meta))
for k in ("start", "end", "graph_left", "graph_top", "graph_width", "graph_height",
          "image_width", "image_height"):
    assert isinstance(m.get(k), int), "json lacks %s: %s" % (k, list(m))
assert m["image"].startswith("data:image/png;base64,"), m["image"][:40]
def png_size(b):
    assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", "not a PNG: %r" % b[:16]
    return struct.unpack(">II", b[16:24])
jw, jh = png_size(base64.b64decode(m["image"].split(",", 1)[1]))
assert (jw, jh) == (m["image_width"], m["image_height"]), "json image %dx%d, info %dx%d" % (
    jw, jh, m["image_width"], m["image_height"])
assert m["graph_width"] == int(sys.argv[4]) and m["image_width"] > m["graph_width"], m
data = open(path, "rb").read()
if fmt == "png":
    w, h = png_size(data)
else:
    root = ET.fromstring(data)
    assert root.tag.endswith("svg"), root.tag
    w = int(re.match(r"\d+", root.get("width")).group(0))
    h = int(re.match(r"\d+", root.get("height")).group(0))
assert (w, h) == (m["image_width"], m["image_height"]), "%s %dx%d, rrd_graph_v said %dx%d" % (
    fmt, w, h, m["image_width"], m["image_height"])
print("%s %dx%d" % (fmt, w, h))
PY
}
IFQ="agent=graph-agent&device=gdev&interface=eth0"
LQ="agent=graph-agent&target=self"
declare -A Q=(
    [traffic]=$IFQ [errors]=$IFQ [packets]=$IFQ
    [availability]="agent=graph-agent&device=gdev"
    [latency]=$LQ [owd]=$LQ [mos]=$LQ
    [group]="agent=graph-agent&device=gdev&group=ifg&instance=$GROUP_INST"
)
for kind in traffic errors packets availability latency owd mos group; do
    q="kind=$kind&${Q[$kind]}&from=-1h&width=600&height=200"
    c=$(get "$q&format=json" "$T/$kind.json")
    [ "$c" = 200 ] || kvl_fail "$kind json: $c $(head -c 300 "$T/$kind.json")"
    for fmt in png svg; do
        c=$(get "$q&format=$fmt" "$T/$kind.$fmt")
        [ "$c" = 200 ] || kvl_fail "$kind $fmt: $c $(head -c 300 "$T/$kind.$fmt")"
        out=$(check_image "$fmt" "$T/$kind.$fmt" "$T/$kind.json" 600 2>&1) ||
            kvl_fail "$kind $fmt: $out"
        kvl_log "$kind: $out"
    done
done
c=$(get "kind=traffic&$IFQ&from=-1h&width=1000&format=json&theme=light" "$T/wide.json")
[ "$c" = 200 ] || kvl_fail "a wide graph: $c"
"$KVL_PY" - "$T/wide.json" "$T/traffic.json" <<'PY' || kvl_fail "width=1000 is not 400 pixels wider than width=600"
import json, sys
w, n = (json.load(open(p))["image_width"] for p in sys.argv[1:3])
assert w == n + 400, (w, n)
PY

# ------------------------------------------------------------------ 2: refusals -----------
refused() { # CODE QUERY WORDS
    local c
    c=$(get "$2" "$T/refused.out")
    [ "$c" = "$1" ] && grep -q "$3" "$T/refused.out" ||
        kvl_fail "$2: $c $(cat "$T/refused.out"), wanted $1 with '$3'"
}
refused 400 "kind=pie&$IFQ" "is not a graph"
refused 400 "kind=traffic&$IFQ&width=99999" "width=99999"
refused 400 "kind=traffic&$IFQ&from=-1h&to=-2h" "from= must be before to="
refused 400 "kind=traffic&agent=../x&device=gdev&interface=eth0" "agent= may not hold"
refused 400 "kind=traffic&agent=graph-agent&device=..%2F..%2Fetc&interface=eth0" "device= may not hold"
refused 404 "kind=traffic&agent=graph-agent&device=gdev&interface=nope" "does not exist"
refused 404 "kind=traffic&agent=nobody&device=gdev&interface=eth0" "not known"
refused 404 "kind=owd&agent=graph-agent&device=gdev&interface=eth0&target=nope" "does not exist"
c=$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/graph?kind=traffic&$IFQ")
[ "$c" = 401 ] || kvl_fail "without credentials: $c, not 401"

# ------------------------------------------------------------------ 3: the cache ----------
NOW=$(date +%s)
CQ="kind=traffic&$IFQ&from=$((NOW - 86400))&to=$NOW&width=700"
[ "$(get "$CQ" "$T/c1.png")" = 200 ] || kvl_fail "the first request: $(head -c 300 "$T/c1.png")"
H0=$(stat_of hits)
D0=$(stat_of draws)
[ "$(get "$CQ" "$T/c2.png")" = 200 ] || kvl_fail "the second request: $(head -c 300 "$T/c2.png")"
H1=$(stat_of hits)
D1=$(stat_of draws)
[ "$H1" -eq $((H0 + 1)) ] && [ "$D1" -eq "$D0" ] ||
    kvl_fail "the second request was drawn again: hits $H0 -> $H1, draws $D0 -> $D1"
cmp -s "$T/c1.png" "$T/c2.png" || kvl_fail "the cached image differs from the drawn one"
kvl_log "cache: hits $H0 -> $H1, draws $D0 -> $D1"

# 20 viewers asking at once for a graph nobody drew yet: one draw, 20 identical images
VQ="kind=latency&$LQ&from=$((NOW - 7200))&to=$NOW&width=650"
D0=$(stat_of draws)
C0=$(stat_of coalesced)
PIDS=()
for i in $(seq 1 20); do
    curl -s -o "$T/v$i.png" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        "$URL/api/v1/graph?$VQ" >"$T/v$i.code" &
    PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait "$p" || kvl_fail "a viewer's curl failed"; done
for i in $(seq 1 20); do
    [ "$(cat "$T/v$i.code")" = 200 ] || kvl_fail "viewer $i: $(cat "$T/v$i.code")"
    cmp -s "$T/v1.png" "$T/v$i.png" || kvl_fail "viewer $i got another image"
done
D1=$(stat_of draws)
C1=$(stat_of coalesced)
[ "$D1" -eq $((D0 + 1)) ] || kvl_fail "20 viewers of one graph cost $((D1 - D0)) draws, not 1"
kvl_log "20 viewers at once: 1 draw, $((C1 - C0)) waited for it, the rest from the cache"

kvl_pass "every kind in png, svg and json of the right size; refusals; the cache"
