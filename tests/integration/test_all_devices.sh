#!/bin/bash
# test_all_devices.sh — proves that every recorded real device is polled and archived,
# every one of its interfaces under the right file name.
#
# snmpsim serves every *.snmprec in the recordings folder (shared/testdata/snmprec, or
# KAAVAL_SNMPREC_DIR); two agents split the devices between them (two sites) and stream to
# one collector. What is expected is worked out from the recordings themselves, never from
# the agent's code: a device's interfaces and their names are what tests/snmprec/walkfile.py
# says (the one reader of recorded walks, shared with tests/snmprec/check_device.py: rows of
# the walked ifTable/ifXTable columns, named by ifName, else ifDescr, else "if<ifIndex>",
# "#<ifIndex>" on shared names); names are made file-safe (%XX). The per-device counts are checked
# against the recordings' README table where it lists the device (635 interfaces for the
# twelve it describes). Then, for every device:
#   - <data>/<site>/<device>.rrd exists and its last update (a poll after every file was
#     there) says reachable=1 and the expected number of interfaces;
#   - every expected interface has <data>/<site>/<device>/<name>.rrd with an update made
#     during this test, and there is no other interface file.
# A new .snmprec dropped into the folder is picked up with no change here.
#
#   bash tests/integration/test_all_devices.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

INTERVAL=10
EXPECT=$KVL_TMP/expected.tsv # site, device, device file part, interface file part
DATA=$KVL_TMP/data
mkdir -p "$DATA"
t_start=$(date +%s)

shopt -s nullglob
recs=("$KVL_SNMPREC"/*.snmprec)
shopt -u nullglob
[ ${#recs[@]} -gt 0 ] || kvl_fail "no .snmprec files in $KVL_SNMPREC"

# --- what the recordings say ------------------------------------------------------------------
"$KVL_PY" - "$KVL_REPO/tests/snmprec" "$KVL_SNMPREC" "$EXPECT" site-a site-b \
    >"$KVL_TMP/derive.out" 2>&1 <<'EOF' \
    || kvl_fail "the recordings do not match their README (or cannot be read):
$(grep -Ev '^[^ ]+ +site-[ab] +[0-9]+ interfaces' "$KVL_TMP/derive.out")"
import glob, os, sys

oracle, folder, out, *sites = sys.argv[1:]
sys.path.insert(0, oracle)
import walkfile  # the one reader of recorded walks (tests/snmprec/walkfile.py)

OK = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

def file_safe(raw):
    s = "".join(chr(c) if c in OK and not (i == 0 and c in (0x2E, 0x5F)) else "%%%02X" % c
                for i, c in enumerate(raw))
    return s or "%00"

readme = walkfile.readme_counts(folder)
files = sorted(glob.glob(os.path.join(folder, "*.snmprec")))
total, listed_total, bad = 0, 0, []
with open(out, "w") as o:
    for n, path in enumerate(files):
        dev = os.path.basename(path)[: -len(".snmprec")]
        try:
            ifs = walkfile.interfaces(walkfile.parse_snmprec(path)[0], "2c")
        except walkfile.Fail as e:
            sys.exit("%s: %s" % (dev, e))
        site = sites[n % len(sites)]
        for i in ifs:
            o.write("%s\t%s\t%s\t%s\n" % (site, dev, file_safe(dev.encode()),
                    file_safe(i.name.encode("utf-8", "surrogateescape"))))
        total += len(ifs)
        if dev in readme:
            listed_total += readme[dev]
            if readme[dev] != len(ifs):
                bad.append("%s: %d interfaces in the file, %d in the README"
                           % (dev, len(ifs), readme[dev]))
        print("%-28s %-7s %4d interfaces%s" % (dev, site, len(ifs),
              "" if dev in readme else "  (not in the README: not cross-checked)"))
print("%d devices, %d interfaces; README lists %d of those devices with %d interfaces"
      % (len(files), total, len([d for d in readme if os.path.exists(os.path.join(folder, d + ".snmprec"))]),
         listed_total))
if bad:
    sys.exit("\n".join(bad))
EOF
sed 's/^/    /' "$KVL_TMP/derive.out" >&2
n_dev=$(cut -f2 "$EXPECT" | sort -u | wc -l)
n_if=$(wc -l <"$EXPECT")
[ "$n_dev" -eq ${#recs[@]} ] || kvl_fail "$((${#recs[@]} - n_dev)) recordings have no interfaces at all"

# --- the system -------------------------------------------------------------------------------
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_start_snmpsim "$KVL_SNMPREC" "$SNMP_PORT"
SIM=$KVL_LAST_PID
kvl_collector_config "$KVL_TMP/collector.yaml" "$COL_PORT" "$DATA"
kvl_start_collector collector "$KVL_TMP/collector.yaml"
COL=$KVL_LAST_PID

pids=()
for site in site-a site-b; do
    cfg=$KVL_TMP/agent-$site.yaml
    # One snmpsim answers ~3,000 varbinds/s for both agents: generous timeouts.
    kvl_agent_config "$cfg" "agent-$site" "$site" "$COL_PORT" "${INTERVAL}s"
    sed -i 's/^  timeout: .*/  timeout: 3s/' "$cfg"
    while IFS=$'\t' read -r s dev; do
        [ "$s" = "$site" ] && kvl_agent_device "$cfg" "$dev" "$SNMP_PORT" "$dev"
    done < <(cut -f1,2 "$EXPECT" | sort -u)
    kvl_start_agent "agent-$site" "$cfg"
    pids+=("$KVL_LAST_PID")
done

# --- wait for every file ----------------------------------------------------------------------
_missing() { # lists expected files not there yet
    local site dev dfile ifile
    while IFS=$'\t' read -r site dev dfile ifile; do
        [ -f "$DATA/$site/$dfile.rrd" ] || echo "$DATA/$site/$dfile.rrd"
        [ -f "$DATA/$site/$dfile/$ifile.rrd" ] || echo "$DATA/$site/$dfile/$ifile.rrd"
    done <"$EXPECT" | sort -u
}
_none_missing() {
    local p
    for p in "$SIM" "$COL" "${pids[@]}"; do
        kvl_is_ours "$p" "$(kvl_prog_of "$p")" || kvl_fail "$(kvl_prog_of "$p") (pid $p) died"
    done
    [ -z "$(_missing | head -n 1)" ]
}
deadline=$((SECONDS + 100))
while ! _none_missing; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        _missing >"$KVL_TMP/missing"
        kvl_fail "after 100 s, $(wc -l <"$KVL_TMP/missing") of $((n_if + n_dev)) archive files are missing, e.g.:
$(head -n 15 "$KVL_TMP/missing")"
    fi
    sleep 1
done
t_all=$(date +%s)
kvl_log "all $n_dev device and $n_if interface archives exist after $((t_all - t_start)) s"

# One more round of polls, so that what is checked is steady polling, not only the first.
_all_polled_again() {
    local site dfile t
    while IFS=$'\t' read -r site dfile; do
        t=$(kvl_rrd_last_time "$DATA/$site/$dfile.rrd")
        [ -n "$t" ] && [ "$t" -gt "$t_all" ] || return 1
    done < <(cut -f1,3 "$EXPECT" | sort -u)
}
kvl_wait_until $((3 * INTERVAL)) "a further poll of every device" _all_polled_again

# --- check them -------------------------------------------------------------------------------
problems=$KVL_TMP/problems
: >"$problems"
while IFS=$'\t' read -r site dev dfile; do
    f=$DATA/$site/$dfile.rrd
    want=$(awk -F'\t' -v d="$dev" '$2 == d' "$EXPECT" | wc -l)
    if ! read -r t reach < <(kvl_rrd_last "$f" reachable); then
        echo "$f: cannot read reachable" >>"$problems"
        continue
    fi
    read -r _ nif < <(kvl_rrd_last "$f" interfaces)
    awk -v r="$reach" 'BEGIN { exit !(r == 1) }' || echo "$f: reachable=$reach, expected 1" >>"$problems"
    awk -v n="$nif" -v w="$want" 'BEGIN { exit !(n == w) }' \
        || echo "$f: interfaces=$nif, expected $want (from the recording)" >>"$problems"
    [ "${t%%.*}" -ge "$t_start" ] || echo "$f: last update $t is older than this test" >>"$problems"
    # No interface file beyond those expected.
    for g in "$DATA/$site/$dfile"/*.rrd; do
        name=$(basename "$g" .rrd)
        awk -F'\t' -v d="$dev" -v n="$name" '$2 == d && $4 == n { found = 1 } END { exit !found }' "$EXPECT" \
            || echo "$g: not an interface of the recording $dev.snmprec" >>"$problems"
    done
done < <(cut -f1-3 "$EXPECT" | sort -u)

while IFS=$'\t' read -r site dev dfile ifile; do
    f=$DATA/$site/$dfile/$ifile.rrd
    t=$(kvl_rrd_last_time "$f")
    if [ -z "$t" ]; then
        echo "$f: no last update" >>"$problems"
    elif [ "$t" -lt "$t_start" ]; then
        echo "$f: last update $t is older than this test" >>"$problems"
    fi
done <"$EXPECT"

if [ -s "$problems" ]; then
    kvl_fail "$(wc -l <"$problems") problems, e.g.:
$(head -n 20 "$problems")"
fi
kvl_pass "$n_dev devices reachable=1, all $n_if interfaces archived under their names"
