#!/bin/bash
# test_rrd_evict.sh — packaging/storage-host/kaaval-rrd-evict, the storage host's timer job
# (docs/scale.md "A storage host for the archives"): archives made by rrdtool (as rrdcached's
# CREATE makes them) are in the page cache; the script drops the new ones, and only those:
#   1. two archives made and read: resident; the first run drops both and says 2;
#   2. one is read again (resident again) and a third made: the second run drops the third,
#      says 1, and leaves the known one resident;
#   3. --all drops every archive; a file that is not an archive is never touched;
#   4. bad command lines and a missing folder are refused with a usage line, exit 2 or 1.
# Residency is read with fincore (util-linux). On a tmpfs (pages are the storage, nothing
# to drop) the test is skipped (exit 77).
#
#   bash tests/integration/test_rrd_evict.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"
command -v fincore >/dev/null 2>&1 || kvl_fail "'fincore' not found (util-linux)"
EVICT=$KVL_REPO/packaging/storage-host/kaaval-rrd-evict
[ -x "$EVICT" ] || kvl_fail "$EVICT is not executable"
D=$KVL_TMP/rrd
mkdir -p "$D/s1/dev1"
if [ "$(stat -f -c %T "$D")" = tmpfs ]; then
    echo "SKIP: $D is on a tmpfs: its pages cannot be dropped" >&2
    exit 77
fi

make_rrd() { # FILE: an archive like an interface's, then read whole (in the page cache)
    rrdtool create "$1" --step 60 --start 1700000000 DS:in:DERIVE:120:0:U DS:out:DERIVE:120:0:U \
        RRA:AVERAGE:0.5:1:20000 RRA:MAX:0.5:1:20000 || kvl_fail "rrdtool create $1"
    cat "$1" >/dev/null
}
resident() { fincore -n -b -o RES "$1" | tr -d ' '; } # FILE: its bytes in the page cache
want_res() {                                          # FILE yes|no STEP
    local r
    r=$(resident "$1")
    case $2 in
    yes) [ "$r" -gt 0 ] || kvl_fail "$3: $1 not in the page cache ($r bytes)" ;;
    no) [ "$r" -eq 0 ] || kvl_fail "$3: $1 still has $r bytes in the page cache" ;;
    esac
}

# 1: two new archives dropped
make_rrd "$D/s1/dev1/wan0.rrd"
make_rrd "$D/s1/dev1/lan0.rrd"
echo "not an archive" >"$D/s1/notes.txt"
cat "$D/s1/notes.txt" >/dev/null
want_res "$D/s1/dev1/wan0.rrd" yes "before the first run"
out=$("$EVICT" "$D") || kvl_fail "the first run failed: $out"
kvl_log "$out"
[[ $out == *" 2 archives dropped"*"(2 known in $D)" ]] || kvl_fail "the first run said: $out"
want_res "$D/s1/dev1/wan0.rrd" no "after the first run"
want_res "$D/s1/dev1/lan0.rrd" no "after the first run"
want_res "$D/s1/notes.txt" yes "after the first run"

# 2: only the new one
cat "$D/s1/dev1/wan0.rrd" >/dev/null
mkdir -p "$D/s2/dev2"
make_rrd "$D/s2/dev2/wan0.rrd"
out=$("$EVICT" "$D") || kvl_fail "the second run failed: $out"
kvl_log "$out"
[[ $out == *" 1 archives dropped"*"(3 known in $D)" ]] || kvl_fail "the second run said: $out"
want_res "$D/s2/dev2/wan0.rrd" no "after the second run"
want_res "$D/s1/dev1/wan0.rrd" yes "after the second run (a known archive)"

# 3: --all
out=$("$EVICT" --all "$D") || kvl_fail "--all failed: $out"
kvl_log "$out"
[[ $out == *" 3 archives dropped"* ]] || kvl_fail "--all said: $out"
want_res "$D/s1/dev1/wan0.rrd" no "after --all"
want_res "$D/s1/notes.txt" yes "after --all (not an archive)"
rrdtool info "$D/s1/dev1/wan0.rrd" | grep -q '^step = 60$' || kvl_fail "an archive was damaged"

# 4: refusals
set +e
"$EVICT" >/dev/null 2>"$KVL_TMP/e1"
rc1=$?
"$EVICT" --bogus "$D" >/dev/null 2>"$KVL_TMP/e2"
rc2=$?
"$EVICT" "$KVL_TMP/missing" >/dev/null 2>"$KVL_TMP/e3"
rc3=$?
set -e
[ "$rc1" -eq 2 ] && grep -q '^usage: kaaval-rrd-evict' "$KVL_TMP/e1" || kvl_fail "no folder: exit $rc1, $(cat "$KVL_TMP/e1")"
[ "$rc2" -eq 2 ] || kvl_fail "--bogus: exit $rc2"
[ "$rc3" -eq 1 ] && grep -q 'not a folder' "$KVL_TMP/e3" || kvl_fail "a missing folder: exit $rc3, $(cat "$KVL_TMP/e3")"
kvl_pass "new archives dropped from the page cache, known ones left, --all, refusals"
