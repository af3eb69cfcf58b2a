#!/usr/bin/env bash
# test_rules_check.sh — kaaval-collector --check-config loads the alert rules `rules:` names.
#
# Valid rules (a file, a folder of files, none: the built-in rules alone) pass and are
# counted. Broken ones exit with status 2 and `<file>:<line>:<column>: <what>` on stderr,
# the position being that of the offending text (worked out here from the file itself):
# a value of the wrong type, an unknown metric, a bad glob, a rule without a condition, a
# name defined twice (in two files of a folder: both places named), a clearing event that
# is a pattern; a rules path that does not exist names the path. The collector's own new
# keys (late_after, web_url) are checked the same way. Nothing is started: no daemon, no port.
#
#   bash tests/integration/test_rules_check.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

C=$KVL_TMP/cfg
mkdir -p "$C"

collector_yaml() { # FILE RULES_LINE [EXTRA_LINE]
    cat >"$1" <<EOF
listen: 127.0.0.1:1
data_dir: $KVL_TMP/data
insecure: true
$2
${3:-}
EOF
}

check() { # FILE: runs --check-config, leaves the status in $rc, output in cfg.out/cfg.err
    timeout 20 "$KVL_COLLECTOR" -c "$1" --check-config >"$KVL_TMP/cfg.out" 2>"$KVL_TMP/cfg.err"
    rc=$?
}

expect_ok() { # FILE RULES_EXPECTED
    check "$1"
    [ "$rc" -eq 0 ] || kvl_fail "--check-config rejects the valid $1 (status $rc): $(cat "$KVL_TMP/cfg.err")"
    grep -qF "($2 alert rules)" "$KVL_TMP/cfg.out" \
        || kvl_fail "$1: expected $2 alert rules, got: $(cat "$KVL_TMP/cfg.out")"
}

# expect_error CONFIG FILE LINE_REGEX TOKEN FRAGMENT: the error names FILE at the line
# LINE_REGEX picks and the column where TOKEN starts on it, and contains FRAGMENT.
expect_error() {
    local cfg=$1 file=$2 re=$3 token=$4 frag=$5 line col want
    line=$(grep -n -E -m1 -- "$re" "$file" | cut -d: -f1)
    [ -n "$line" ] || kvl_fail "test bug: /$re/ not in $file"
    col=$(sed -n "${line}p" "$file" | awk -v t="$token" '{ print index($0, t) }')
    [ "$col" -gt 0 ] || kvl_fail "test bug: '$token' not on line $line of $file"
    want="$file:$line:$col: "
    check "$cfg"
    [ "$rc" -eq 2 ] || kvl_fail "$cfg: exit status $rc, expected 2; stderr: $(cat "$KVL_TMP/cfg.err")"
    grep -qF -- "$want" "$KVL_TMP/cfg.err" \
        || kvl_fail "$cfg: stderr lacks '$want': $(cat "$KVL_TMP/cfg.err")"
    grep -qF -- "$frag" "$KVL_TMP/cfg.err" \
        || kvl_fail "$cfg: stderr lacks '$frag': $(cat "$KVL_TMP/cfg.err")"
    kvl_log "refused as expected: $(head -c 200 "$KVL_TMP/cfg.err")"
}

# --- valid ---------------------------------------------------------------------------------
collector_yaml "$C/none.yaml" ""
check "$C/none.yaml"
[ "$rc" -eq 0 ] || kvl_fail "no rules: status $rc: $(cat "$KVL_TMP/cfg.err")"
n_builtin=$(sed -n 's/.*(\([0-9]*\) alert rules).*/\1/p' "$KVL_TMP/cfg.out")
if [ -z "$n_builtin" ] || [ "$n_builtin" -lt 12 ]; then
    kvl_fail "the built-in rules alone: expected at least the 12 the issue lists, got: $(cat "$KVL_TMP/cfg.out")"
fi

cat >"$C/good.yaml" <<'EOF'
disable: [mos_low]
rules:
  - name: core_util
    severity: major
    select: {device: 'core-*', interface: '!Lo*'}
    threshold: {derived: utilisation_pct, above: 90, clear: 80, for: 10m}
    summary: '{{interface}} on {{device}} at {{value}} %'
  - name: bgp_down
    severity: critical
    event: {name: bgpBackwardTransition, clear: bgpEstablished}
EOF
collector_yaml "$C/file.yaml" "rules: $C/good.yaml" "late_after: 5m"
expect_ok "$C/file.yaml" $((n_builtin - 1 + 2))

mkdir -p "$C/rules.d"
cp "$C/good.yaml" "$C/rules.d/10-good.yaml"
cat >"$C/rules.d/20-more.yaml" <<'EOF'
rules:
  - name: feed_gone
    severity: warning
    no_data: {intervals: 4}
EOF
echo "not: yaml: read" >"$C/rules.d/README"
collector_yaml "$C/dir.yaml" "rules: $C/rules.d" "web_url: https://noc.example/kaaval"
expect_ok "$C/dir.yaml" $((n_builtin - 1 + 3))

# --- broken rules ----------------------------------------------------------------------------
bad() { # NAME TEXT: a rules file and a collector file naming it
    printf '%s' "$2" >"$C/$1.rules.yaml"
    collector_yaml "$C/$1.yaml" "rules: $C/$1.rules.yaml"
}

bad wrongtype 'rules:
  - name: x
    severity: critical
    threshold: {value: lost_pct, above: lots}
'
expect_error "$C/wrongtype.yaml" "$C/wrongtype.rules.yaml" 'above: lots' 'lots' "expected a number"

bad metric 'rules:
  - name: x
    severity: critical
    threshold: {rate: in_octetz, above: 1}
'
expect_error "$C/metric.yaml" "$C/metric.rules.yaml" 'in_octetz' 'in_octetz' "unknown metric 'in_octetz'"

bad glob 'rules:
  - name: x
    severity: critical
    select: {device: "core-[z-a]"}
    state: device_unreachable
'
expect_error "$C/glob.yaml" "$C/glob.rules.yaml" 'core-' '"core-' "range z-a is backwards"

bad nocond 'rules:
  - name: lonely
    severity: critical
'
expect_error "$C/nocond.yaml" "$C/nocond.rules.yaml" 'name: lonely' 'name' "needs a condition"

bad clearglob 'rules:
  - name: x
    severity: info
    event: {name: linkDown, clear: "link*"}
'
expect_error "$C/clearglob.yaml" "$C/clearglob.rules.yaml" 'clear:' '"link*"' "a name, not a pattern"

bad severity 'rules:
  - name: x
    severity: 5
    state: device_unreachable
'
expect_error "$C/severity.yaml" "$C/severity.rules.yaml" 'severity: 5' '5' "critical"

mkdir -p "$C/dup.d"
cp "$C/good.yaml" "$C/dup.d/a.yaml"
cat >"$C/dup.d/b.yaml" <<'EOF'
rules:
  - name: core_util
    severity: minor
    state: oper_down_admin_up
EOF
collector_yaml "$C/dup.yaml" "rules: $C/dup.d"
expect_error "$C/dup.yaml" "$C/dup.d/b.yaml" 'name: core_util' 'core_util' \
    "rule 'core_util' is already defined at $C/dup.d/a.yaml:3:"

collector_yaml "$C/missing.yaml" "rules: $C/no-such-rules.yaml"
check "$C/missing.yaml"
[ "$rc" -eq 2 ] || kvl_fail "a missing rules file: status $rc, expected 2"
grep -qF "$C/no-such-rules.yaml: cannot read the rules" "$KVL_TMP/cfg.err" \
    || kvl_fail "a missing rules file: $(cat "$KVL_TMP/cfg.err")"

# --- the collector's keys ----------------------------------------------------------------------
collector_yaml "$C/late.yaml" "" "late_after: 10ms"
expect_error "$C/late.yaml" "$C/late.yaml" 'late_after' '10ms' "out of range"
collector_yaml "$C/url.yaml" "" "web_url: ftp://noc"
expect_error "$C/url.yaml" "$C/url.yaml" 'web_url' 'ftp' "expected the collector's web address"

kvl_pass "rules files checked: valid ones counted, broken ones refused at file:line:column"
