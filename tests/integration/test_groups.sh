#!/usr/bin/env bash
# test_groups.sh — metric groups against Debian's snmpd, which implements HOST-RESOURCES-MIB
# and UCD-SNMP-MIB itself. One snmpd on 127.0.0.1 (a free port, its own configuration and
# persistent folder, stopped by pid), then `kaaval-agent --poll-once` with the built-in
# groups (host-resources, ucd), a user group by numeric OID, user groups by MIB name (from
# tests/mibs/groups), and a group snmpd lacks; every value is checked against what snmpget
# and snmpwalk read from the same snmpd. Once over SNMPv2c, once over SNMPv1. Also: an
# unknown MIB name fails --check-config with exit status 2, naming the name and the folders.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

SNMPD=$(command -v snmpd || echo /usr/sbin/snmpd)
[ -x "$SNMPD" ] || kvl_fail "snmpd not found: run packaging/install-deps.sh (Debian package snmpd)"
command -v snmpwalk >/dev/null || kvl_fail "snmpwalk not found (Debian package snmp)"

kvl_free_port udp SNMPD_PORT
S=$KVL_TMP/snmpd
mkdir -p "$S/persist"
cat >"$S/snmpd.conf" <<EOF
agentAddress udp:127.0.0.1:$SNMPD_PORT
rocommunity kvl-groups 127.0.0.1
sysLocation test_groups
EOF
SNMP_PERSISTENT_DIR=$S/persist MIBDIRS=$S/nomibs MIBS= \
    "$SNMPD" -f -Lo -C -c "$S/snmpd.conf" >"$KVL_TMP/logs/snmpd.log" 2>&1 &
SNMPD_PID=$!
kvl_track "$SNMPD_PID" snmpd
kvl_log "snmpd pid $SNMPD_PID on 127.0.0.1:$SNMPD_PORT"

SNMP_ARGS=(-v2c -c kvl-groups -r 1 -t 2 -On "127.0.0.1:$SNMPD_PORT")
export MIBDIRS=$S/nomibs MIBS= # the tools print numeric OIDs and read no MIB
_snmpd_answers() {
    kvl_is_ours "$SNMPD_PID" snmpd || kvl_fail "snmpd exited at start-up"
    snmpget "${SNMP_ARGS[@]}" .1.3.6.1.2.1.1.3.0 >/dev/null 2>&1
}
kvl_wait_until 20 "snmpd to answer" _snmpd_answers

# What snmpd says, read with net-snmp's tools (numeric OIDs, values after the type).
snmpwalk "${SNMP_ARGS[@]}" .1.3.6.1.2.1.25.2.3.1 >"$KVL_TMP/hrstorage.walk" 2>&1 \
    || kvl_fail "snmpwalk of hrStorageTable failed: $(cat "$KVL_TMP/hrstorage.walk")"
snmpget "${SNMP_ARGS[@]}" .1.3.6.1.4.1.2021.4.5.0 .1.3.6.1.4.1.2021.4.3.0 .1.3.6.1.2.1.25.2.2.0 \
    .1.3.6.1.4.1.2021.10.1.5.3 >"$KVL_TMP/scalars.get" 2>&1 || kvl_fail "snmpget failed"
grep -q 'No Such' "$KVL_TMP/scalars.get" && kvl_fail "snmpd lacks UCD or HR scalars: $(cat "$KVL_TMP/scalars.get")"

write_config() { # FILE VERSION
    cat >"$1" <<EOF
id: groups-agent
site: lab
collector: 127.0.0.1:9
insecure: true
probes: {reflector: {enabled: false}}   # many agents on one host
traps: {listen: off}                     # likewise
log_level: info
mib_path: [$KVL_REPO/tests/mibs/base, $KVL_REPO/tests/mibs/groups]
metric_groups:
  - name: hrs-numeric
    table: .1.3.6.1.2.1.25.2.3
    instance: .1.3.6.1.2.1.25.2.3.1.3
    metrics:
      - {name: blocks, oid: .1.3.6.1.2.1.25.2.3.1.5, kind: gauge}
  - name: by-name
    metrics:
      - {name: procs, oid: KAAVAL-TEST-MIB::kvtProcessCount}
  - name: disks-by-name
    table: KAAVAL-TEST-MIB::kvtDiskEntry
    instance: kvtDiskLabel
    metrics:
      - {name: size, oid: kvtDiskBlocks, scale_by: kvtDiskBlock}
  - name: missing
    metrics:
      - {name: nothing, oid: .1.3.6.1.4.1.99999.77.1.0}
devices:
  - name: srv
    address: 127.0.0.1
    port: $SNMPD_PORT
    version: $2
    community: kvl-groups
    timeout: 2s
    interfaces: {include: [lo]}
    metric_groups: [host-resources, ucd, hrs-numeric, by-name, disks-by-name, missing]
EOF
}

check_dump() { # NAME DUMP LOG
    "$KVL_PY" - "$KVL_TMP/hrstorage.walk" "$KVL_TMP/scalars.get" "$2" <<'PYEOF' || kvl_fail "$1: the dump does not match snmpd (above)"
import re, sys
walk_f, get_f, dump_f = sys.argv[1:4]
def vals(path):
    out = {}
    for line in open(path):
        m = re.match(r'^(\.[0-9.]+) = (\w+[\w-]*): ?(.*)$', line.strip())
        if m:
            v = m.group(3)
            if m.group(2) == 'STRING':
                v = v.strip('"')
            out[m.group(1)] = v
    return out
walk, get = vals(walk_f), vals(get_f)
E = '.1.3.6.1.2.1.25.2.3.1.'
idx = sorted({int(o[len(E):].split('.')[1]) for o in walk if o.startswith(E)})
descr = {i: walk.get(E + '3.%d' % i) for i in idx}
# instance -> {metric: value}, for the lines of device srv
rows = {}
for line in open(dump_f):
    m = re.match(r'^\S+ srv (?:group \S+|\S+) "((?:[^"\\]|\\.)*)"(.*)$', line.rstrip('\n'))
    if not m:
        continue
    kv = dict(re.findall(r' ([a-z0-9_]+)=([^ "]+)', m.group(2)))
    rows.setdefault(m.group(1), {}).update(kv)
def row_with(metric, inst):
    r = rows.get(inst, {})
    if metric not in r:
        sys.exit('no %s for instance "%s" in the dump' % (metric, inst))
    return r[metric]
bad = []
def same(what, got, want):
    print('%-45s agent %-16s snmpd %s' % (what, got, want))
    if str(got) != str(want):
        bad.append(what)
# ucd: KB scalars times 1024, load averages as reals
same('ucd mem_total_bytes', row_with('mem_total_bytes', ''), int(get['.1.3.6.1.4.1.2021.4.5.0']) * 1024)
same('ucd swap_total_bytes', row_with('swap_total_bytes', ''), int(get['.1.3.6.1.4.1.2021.4.3.0']) * 1024)
for m in ('load1', 'load5', 'load15', 'mem_avail_bytes', 'cpu_user', 'cpu_system', 'cpu_idle'):
    v = row_with(m, '')
    if v == 'U' or float(v) < 0:
        bad.append(m)
l15 = float(row_with('load15', ''))
want15 = int(get['.1.3.6.1.4.1.2021.10.1.5.3']) / 100.0
print('%-45s agent %-16s snmpd %s' % ('ucd load15 (close)', l15, want15))
if abs(l15 - want15) > 0.5:
    bad.append('load15')
# hr-system
same('hr-system memory_bytes', row_with('memory_bytes', ''), int(get['.1.3.6.1.2.1.25.2.2.0']) * 1024)
if not row_with('processes', '').isdigit():
    bad.append('processes')
# hr-storage rows by description (names given twice get "#<index>": left out here). Sizes
# compared exactly only where they hold still: ram(2), virtualMemory(3), fixedDisk(4) (the
# sizes of cached or available memory move between snmpwalk's reading and the agent's).
names = [descr[i] for i in idx]
steady = {'.1.3.6.1.2.1.25.2.1.%d' % t for t in (2, 3, 4)}
checked = 0
for i in idx:
    d = descr[i]
    if d is None or names.count(d) > 1 or d == '' or walk.get(E + '2.%d' % i) not in steady:
        continue
    units, size = int(walk[E + '4.%d' % i]), int(walk[E + '5.%d' % i])
    same('hr-storage "%s" size_bytes' % d, row_with('size_bytes', d), size * units)
    same('numeric group "%s" blocks' % d, row_with('blocks', d), size)
    same('named group "%s" size' % d, row_with('size', d), size * units)
    if row_with('used_bytes', d) == 'U':
        bad.append('used_bytes ' + d)
    checked += 1
if checked < 2:
    bad.append('fewer than 2 storage rows checked')
if not row_with('procs', '').isdigit():
    bad.append('procs (by MIB name)')
if any('nothing' in r for r in rows.values()):
    bad.append('the missing group was reported')
if bad:
    sys.exit('mismatch: ' + ', '.join(bad))
PYEOF
}

for version in 2c 1; do
    cfg=$KVL_TMP/agent-v$version.yaml
    write_config "$cfg" "$version"
    "$KVL_AGENT" -c "$cfg" --check-config >/dev/null 2>"$KVL_TMP/logs/check-v$version.log" \
        || kvl_fail "v$version: --check-config refused the configuration"
    rc=0
    timeout 30 "$KVL_AGENT" -c "$cfg" --poll-once >"$KVL_TMP/dump-v$version.txt" \
        2>"$KVL_TMP/logs/agent-v$version.log" || rc=$?
    [ $rc = 0 ] || kvl_fail "v$version: --poll-once exited with $rc"
    grep -E '^\S+ srv device "" reachable=1 ' "$KVL_TMP/dump-v$version.txt" >/dev/null \
        || kvl_fail "v$version: the device is not reported reachable"
    grep -E '^\S+ srv group ucd "" .*mem_total_bytes=[0-9]+' "$KVL_TMP/dump-v$version.txt" \
        >/dev/null || kvl_fail "v$version: no line of group ucd"
    grep -E '^\S+ srv group hr-storage "[^"]+" index="[0-9]+" type="[a-zA-Z]+" size_bytes=' \
        "$KVL_TMP/dump-v$version.txt" >/dev/null \
        || kvl_fail "v$version: no hr-storage row with its labels"
    check_dump "v$version" "$KVL_TMP/dump-v$version.txt" >"$KVL_TMP/logs/compare-v$version.txt"
    cat "$KVL_TMP/logs/compare-v$version.txt" >&2
    grep -E "INFO  \[groups srv\] metric group missing: not on this device" \
        "$KVL_TMP/logs/agent-v$version.log" >/dev/null \
        || kvl_fail "v$version: no info line about the group snmpd lacks"
    grep -E ' (WARN|ERROR) ' "$KVL_TMP/logs/agent-v$version.log" \
        && kvl_fail "v$version: warnings or errors in the agent's log"
    kvl_log "v$version: built-in, numeric and named groups match snmpd"
done

# An unknown MIB name: exit status 2, the name and the folders searched in the message.
bad=$KVL_TMP/agent-bad.yaml
sed 's/kvtProcessCount}/kvtNoSuchObject}/' "$KVL_TMP/agent-v2c.yaml" >"$bad"
rc=0
"$KVL_AGENT" -c "$bad" --check-config >/dev/null 2>"$KVL_TMP/bad.err" || rc=$?
[ $rc = 2 ] || kvl_fail "--check-config with an unknown MIB name exited $rc, expected 2"
grep -E "agent-bad.yaml:[0-9]+:[0-9]+: MIB name 'KAAVAL-TEST-MIB::kvtNoSuchObject' not found.*tests/mibs/groups" \
    "$KVL_TMP/bad.err" >/dev/null || kvl_fail "unexpected error text: $(cat "$KVL_TMP/bad.err")"
kvl_log "unknown MIB name: $(head -n 1 "$KVL_TMP/bad.err")"

# End to end: a real agent streams the groups to a real collector, which files them under
# _<group>/ with the group's metrics as data sources.
kvl_free_port tcp COL_PORT
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$KVL_TMP/archives"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
sed -e "s/^collector: .*/collector: 127.0.0.1:$COL_PORT/" -e 's/^    timeout: 2s/    timeout: 2s\n    interval: 10s/' \
    "$KVL_TMP/agent-v2c.yaml" >"$KVL_TMP/agent-e2e.yaml"
kvl_start_agent agent "$KVL_TMP/agent-e2e.yaml"
ucd_rrd=$KVL_TMP/archives/lab/srv/_ucd.rrd
storage_dir=$KVL_TMP/archives/lab/srv/_hr-storage
kvl_wait_until 30 "the ucd archive" test -s "$ucd_rrd"
kvl_wait_until 30 "hr-storage archives" sh -c "ls '$storage_dir'/*.rrd >/dev/null 2>&1"
rrdtool info "$ucd_rrd" >"$KVL_TMP/ucd.info"
for ds in mem_total_bytes load1 cpu_idle; do
    grep -q "^ds\[$ds\].type" "$KVL_TMP/ucd.info" || kvl_fail "_ucd.rrd lacks data source $ds"
done
grep -q '^ds\[cpu_idle\].type = "DERIVE"' "$KVL_TMP/ucd.info" \
    || kvl_fail "cpu_idle (a counter) is not DERIVE in _ucd.rrd"
grep -q '^ds\[in_octets\]' "$KVL_TMP/ucd.info" && kvl_fail "_ucd.rrd has interface data sources"
f=$(ls "$storage_dir"/*.rrd | head -n 1)
rrdtool info "$f" >"$KVL_TMP/storage.info"
grep -q '^ds\[used_bytes\].type = "GAUGE"' "$KVL_TMP/storage.info" || kvl_fail "$f lacks used_bytes"
kvl_wait_until 40 "a known mem_total_bytes in _ucd.rrd" sh -c \
    "rrdtool lastupdate '$ucd_rrd' | awk 'NR==1{for(i=1;i<=NF;i++) if(\$i==\"mem_total_bytes\") c=i} NR==3{ if (\$(c+1) != \"U\" && \$(c+1) > 0) ok=1 } END{exit !ok}'"
grep -E ' ERROR ' "$KVL_TMP/logs/collector.log" && kvl_fail "errors in the collector's log"
kvl_log "archives: $(cd "$KVL_TMP/archives/lab/srv" && find . -name '*.rrd' | grep '/_' | sort | tr '\n' ' ')"

kvl_pass "host-resources, ucd, numeric and MIB-named groups equal snmpd's values (v2c and v1), and are archived by the collector"
