#!/bin/bash
# test_if_rename.sh — an interface renamed on its device (same ifIndex, same MAC, new name)
# continues its archive under the new name, with a real agent, snmpsim and collector.
#
# The recording with the fewest named interfaces that has an interface with a MAC (chosen
# from the folder, not named here) is copied into the test's folder and served by snmpsim;
# the agent polls it every 5 s with rediscovery at every poll. Once the interface's archive
# holds a few updates, the copy is edited (that interface's ifName and ifDescr changed, its
# ifIndex and ifPhysAddress kept) and snmpsim restarted on the same port. Then:
#   - the collector logs "interface renamed: <agent>/<device> <old> -> <new> (ifIndex N),
#     archive moved", once;
#   - the old file is gone, the new one is the same file (inode) and holds the samples
#     written before the rename (a known value older than it), and new ones after it;
#   - /api/v1/devices/<agent>/<device> lists the interface under its new name with
#     aliases [<old>] and not under the old one; /api/v1/search finds it by its old name;
#   - after a collector restart the same, and no second rename line (the move was settled);
#   - renamed again to a name whose archive already exists (a copy put there by the test):
#     both files kept, a warning, the alias recorded, nothing moved.
#
#   bash tests/integration/test_if_rename.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
command -v curl >/dev/null 2>&1 || kvl_fail "'curl' not found"

REC=$KVL_TMP/rec
mkdir -p "$REC"
chmod 755 "$REC"
# pick: "<file> <ifIndex> <ifName>" of the smallest recording with a named interface with a MAC
PICK=$("$KVL_PY" - "$KVL_SNMPREC" <<'EOF'
import os, re, sys
best = None
for f in sorted(os.listdir(sys.argv[1])):
    if not f.endswith(".snmprec"):
        continue
    names, macs = {}, set()
    with open(os.path.join(sys.argv[1], f), errors="replace") as fh:
        for line in fh:
            m = re.match(r"1\.3\.6\.1\.2\.1\.31\.1\.1\.1\.1\.(\d+)\|4\|(\S+)$", line.strip())
            if m:
                names[int(m.group(1))] = m.group(2)
            m = re.match(r"1\.3\.6\.1\.2\.1\.2\.2\.1\.6\.(\d+)\|4x\|([0-9A-Fa-f]{12})$", line.strip())
            if m and m.group(2).strip("0"):
                macs.add(int(m.group(1)))
    ok = [i for i in sorted(names) if i in macs and re.match(r"^[A-Za-z0-9/._-]+$", names[i])]
    if ok and (best is None or len(names) < best[0]):
        best = (len(names), f, ok[0], names[ok[0]])
if best is None:
    sys.exit("no recording with a named interface with a MAC")
print(best[1], best[2], best[3])
EOF
) || kvl_fail "no usable recording in $KVL_SNMPREC"
read -r FILE IFX OLD <<<"$PICK"
DEV=rdev
cp "$KVL_SNMPREC/$FILE" "$REC/$DEV.snmprec"
chmod 644 "$REC/$DEV.snmprec"
NEW=kvl-renamed-$IFX
THIRD=kvl-third-$IFX
kvl_log "recording $FILE: interface $OLD (ifIndex $IFX) to be renamed $NEW"

# rename_in_recording FROM TO: ifName and ifDescr of ifIndex $IFX, nothing else
rename_in_recording() {
    "$KVL_PY" - "$REC/$DEV.snmprec" "$IFX" "$2" <<'EOF' || kvl_fail "cannot edit the recording"
import sys
path, idx, new = sys.argv[1], sys.argv[2], sys.argv[3]
keys = ("1.3.6.1.2.1.31.1.1.1.1." + idx + "|", "1.3.6.1.2.1.2.2.1.2." + idx + "|")
out, n = [], 0
for line in open(path, errors="surrogateescape"):
    if line.startswith(keys):
        oid, typ, _ = line.rstrip("\n").split("|", 2)
        line = "%s|4|%s\n" % (oid, new)
        n += 1
    out.append(line)
if n != 2:
    sys.exit("ifName/ifDescr of ifIndex %s: %d rows found" % (idx, n))
with open(path + ".tmp", "w", errors="surrogateescape") as f:
    f.writelines(out)
import os
os.replace(path + ".tmp", path)
EOF
}

DATA=$KVL_TMP/data
mkdir -p "$DATA"
kvl_free_port udp SNMP_PORT
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
CFG=$KVL_TMP/collector.yaml
kvl_collector_config "$CFG" "$COL_PORT" "$DATA"
kvl_http_config "$CFG" "$HTTP_PORT"
kvl_add_token "$CFG" wall viewer
VIEW=$KVL_TOKEN
URL=http://127.0.0.1:$HTTP_PORT
LOG=$KVL_TMP/logs/collector.log

start_collector() { # the collector, and its HTTP server answering
    kvl_start_http_collector collector "$CFG" "$HTTP_PORT"
    COL=$KVL_LAST_PID
}
api() { # PATH: the body, or failure
    curl -sf --noproxy '*' -m 20 -H "Authorization: Bearer $VIEW" "$URL$1"
}

kvl_start_snmpsim "$REC" "$SNMP_PORT"
SIM=$KVL_LAST_PID
start_collector
AGENT_CFG=$KVL_TMP/agent.yaml
kvl_agent_config "$AGENT_CFG" rn-agent dhq-rename "$COL_PORT" 5s
sed -i 's/^  timeout: .*/  timeout: 2s/' "$AGENT_CFG"
kvl_agent_device "$AGENT_CFG" "$DEV" "$SNMP_PORT" "$DEV"
echo "    rediscover: 0" >>"$AGENT_CFG"
kvl_start_agent agent "$AGENT_CFG"
AG=$KVL_LAST_PID

F_OLD=$DATA/$(kvl_file_safe dhq-rename)/$(kvl_file_safe "$DEV")/$(kvl_file_safe "$OLD").rrd
F_NEW=$DATA/$(kvl_file_safe dhq-rename)/$(kvl_file_safe "$DEV")/$(kvl_file_safe "$NEW").rrd
F_THIRD=$DATA/$(kvl_file_safe dhq-rename)/$(kvl_file_safe "$DEV")/$(kvl_file_safe "$THIRD").rrd

# --- history under the old name -------------------------------------------------------------
_known_rows() { # FILE BEFORE: a known in_octets value in a row before BEFORE (epoch s)
    local t v
    while read -r t v; do
        [ "$t" -lt "$2" ] && [ "$v" != nan ] && return 0
    done < <(kvl_rrd_rows "$1" AVERAGE in_octets $(($2 - 600)) "$2")
    return 1
}
_old_history() {
    kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
    [ -f "$F_OLD" ] && _known_rows "$F_OLD" "$(date +%s)"
}
kvl_wait_until 120 "a known value in $F_OLD" _old_history
INODE=$(stat -c %i "$F_OLD")
T_RENAME=$(date +%s)
kvl_log "the old archive has history (inode $INODE); renaming at $T_RENAME"
sleep 1

# --- the rename on the device ---------------------------------------------------------------
kvl_stop "$SIM" || kvl_fail "snmpsim did not stop"
rename_in_recording "$OLD" "$NEW"
kvl_start_snmpsim "$REC" "$SNMP_PORT"
SIM=$KVL_LAST_PID
LINE="interface renamed: rn-agent/$DEV $OLD -> $NEW (ifIndex $IFX), archive moved"
_renamed() {
    kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
    grep -qF "$LINE" "$LOG"
}
kvl_wait_until 120 "the log line '$LINE'" _renamed
[ ! -e "$F_OLD" ] || kvl_fail "the old archive is still there: $F_OLD"
[ -f "$F_NEW" ] || kvl_fail "no archive under the new name: $F_NEW"
[ "$(stat -c %i "$F_NEW")" = "$INODE" ] || kvl_fail "the new name's archive is not the moved file"
_known_rows "$F_NEW" "$T_RENAME" || kvl_fail "the new archive lacks the history before the rename"
_new_rows() {
    kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
    kvl_rrd_updated_since "$F_NEW" $((T_RENAME + 2))
}
kvl_wait_until 60 "updates of $F_NEW after the rename" _new_rows
ls "$(dirname "$F_NEW")" >"$KVL_TMP/files.out"
kvl_log "archive moved, history kept, written on: $(tr '\n' ' ' <"$KVL_TMP/files.out")"

# --- the API --------------------------------------------------------------------------------
# check_api NAME ALIASES...: the interface NAME with exactly these aliases, none named like them
check_api() {
    api "/api/v1/devices/rn-agent/$DEV" >"$KVL_TMP/dev.json" || kvl_fail "GET the device failed"
    "$KVL_PY" - "$KVL_TMP/dev.json" "$@" <<'EOF' || kvl_fail "the API's interface list is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
name, aliases = sys.argv[2], sys.argv[3:]
ifs = {i["name"]: i for i in d["interface_list"]}
if name not in ifs:
    sys.exit("no interface %s in %s" % (name, sorted(ifs)))
if ifs[name]["aliases"] != aliases:
    sys.exit("%s: aliases %s, expected %s" % (name, ifs[name]["aliases"], aliases))
for a in aliases:
    if a in ifs:
        sys.exit("the former name %s is still listed" % a)
if ifs[name]["retired"] is not None:
    sys.exit("%s is retired" % name)
EOF
}
check_api "$NEW" "$OLD"
api "/api/v1/search?q=$OLD" >"$KVL_TMP/search.json" || kvl_fail "GET /api/v1/search failed"
"$KVL_PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
names = [i["name"] for i in r["interfaces"] if i["device"] == sys.argv[2]]
sys.exit(0 if sys.argv[3] in names else "search by %s found %s" % (sys.argv[4], names))
' "$KVL_TMP/search.json" "$DEV" "$NEW" "$OLD" || kvl_fail "the search by the old name"
kvl_log "the API shows $NEW with alias $OLD; the search finds it by $OLD"
# a graph asked by the former name (a link made before the rename) draws the moved archive
# (one fixed range ending 2 minutes ago, whose data no longer changes; the new name asked
# first, twice: the graph API learns the archive's step, by which it rounds the range, at
# its first draw of a file; then both names must give the same image)
T_TO=$(($(date +%s) - 120))
for n in "$NEW" "$NEW" "$OLD"; do
    api "/api/v1/graph?kind=traffic&agent=rn-agent&device=$DEV&interface=$n&format=json&from=$((T_TO - 3600))&to=$T_TO" \
        >"$KVL_TMP/graph-$n.json" || kvl_fail "GET the graph of $n failed"
done
"$KVL_PY" -c '
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
sys.exit(0 if a["image"] == b["image"] and a["image"].startswith("data:image/png;base64,")
         else "the graphs by the old and the new name differ: %s"
         % [(k, a[k], b[k]) for k in a if k != "image" and a[k] != b[k]])
' "$KVL_TMP/graph-$OLD.json" "$KVL_TMP/graph-$NEW.json" || kvl_fail "the graph by the old name"
kvl_log "the graph by the old name $OLD is the moved archive's"

# --- a collector restart: the same, the move settled ------------------------------------------
kvl_stop "$COL" || kvl_fail "the collector did not stop"
start_collector
check_api "$NEW" "$OLD"
kvl_wait_until 60 "updates of $F_NEW after the collector's restart" kvl_rrd_updated_since \
    "$F_NEW" "$(date +%s)"
n=$(grep -cF "interface renamed: rn-agent/$DEV" "$LOG")
[ "$n" = 1 ] || kvl_fail "$n rename lines after the collector's restart (expected 1)"
[ ! -e "$F_OLD" ] || kvl_fail "the old archive came back"

# --- renamed to a name that has an archive already: both kept --------------------------------
cp "$F_NEW" "$F_THIRD"
INODE3=$(stat -c %i "$F_THIRD")
kvl_stop "$SIM" || kvl_fail "snmpsim did not stop"
rename_in_recording "$NEW" "$THIRD"
kvl_start_snmpsim "$REC" "$SNMP_PORT"
SIM=$KVL_LAST_PID
WARN="interface renamed: rn-agent/$DEV $NEW -> $THIRD (ifIndex $IFX), both names have an archive"
kvl_wait_until 120 "the warning '$WARN'" grep -qF "$WARN" "$LOG"
grep -F "$WARN" "$LOG" | grep -q WARN || kvl_fail "not a warning: $(grep -F "$WARN" "$LOG")"
[ -f "$F_NEW" ] && [ "$(stat -c %i "$F_NEW")" = "$INODE" ] || kvl_fail "the second name's file moved"
[ "$(stat -c %i "$F_THIRD")" = "$INODE3" ] || kvl_fail "the third name's file was replaced"
kvl_wait_until 60 "updates of $F_THIRD" kvl_rrd_updated_since "$F_THIRD" "$(date +%s)"
check_api "$THIRD" "$OLD" "$NEW"
kvl_log "both archives kept, the aliases $OLD $NEW recorded"

kvl_stop "$AG" || kvl_fail "the agent did not stop"
kvl_stop "$COL" || kvl_fail "the collector did not stop"
grep -E "ERROR" "$LOG" >"$KVL_TMP/errors.out" && kvl_fail "errors logged: $(head -5 "$KVL_TMP/errors.out")"
kvl_pass
