#!/bin/bash
# test_collector_reload.sh — SIGHUP makes the collector take a new configuration without
# dropping its agents, and refuses one that does not parse or that changes a restart-only key.
#
# One simulated device polled every 2 s by one agent; the collector has a rules file with
# `reload_old` and `reload_kept` (both fire at once on the device's eth0), a webhook receiver
# whose address nobody listens on, a one-site tree and its HTTP API. Then, while it runs:
#   1. both fire (their pages wait in the outbox: the receiver is unreachable).
#   2. SIGHUP with reload_old removed and reload_new added, the webhook's address moved to a
#      real receiver (notify_webhook_rx.py), a site added, a user added: the log says what
#      changed; reload_new fires (GET /api/v1/alerts) and pages at the new address, where the
#      page queued for reload_old also arrives (nothing in flight lost); reload_old is
#      resolved; reload_kept goes on firing with the same start and pages once (at the new
#      address); the new user's password works; the new site is in /api/v1/topology; the
#      agent's TCP connection is the same one (same local port) and its archive keeps being
#      updated every poll.
#   3. SIGHUP with a syntax error in the file: refused with file:line:column and "keeping the
#      running configuration"; the collector runs on and reload_new keeps firing. Likewise a
#      rule with an unknown metric, named by the rules file's line and column.
#   4. SIGHUP with max_frame changed: refused naming max_frame ("needs a restart").
#   5. SIGHUP with the good file again: taken ("rules unchanged", the rule engine kept);
#      nothing pages again.
#
#   bash tests/integration/test_collector_reload.sh [BUILD_DIR]
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kvl_init "$@"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v ss >/dev/null 2>&1 || kvl_fail "'ss' not found (Debian package iproute2)"
T=$KVL_TMP
L=$T/logs
mkdir -p "$T/rec" "$T/data"
kvl_make_rate_device "$T/rec/reldev.snmprec" "eth0:1000:2000:1000"
kvl_free_port udp SNMP
kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
kvl_free_port tcp HOOK_PORT
kvl_free_port tcp DEAD_PORT # nobody listens there

rules() { # FILE RULE_NAME...: one threshold rule per name, true for eth0 of reldev
    local f=$1 name
    shift
    echo "rules:" >"$f"
    for name in "$@"; do
        cat >>"$f" <<YAML
  - name: $name
    severity: warning
    select: {device: reldev, interface: eth0}
    threshold: {value: speed_bps, above: 1}
    summary: '{{interface}} of {{device}}: $name'
YAML
    done
}

config() { # HOOK_PORT SITES_EXTRA [MAX_FRAME]
    kvl_collector_config "$T/collector.yaml" "$COL_PORT" "$T/data"
    [ -z "${3:-}" ] || sed -i "s/^max_frame: .*/max_frame: $3/" "$T/collector.yaml"
    cat >>"$T/collector.yaml" <<YAML
rules: $T/rules.yaml
receivers:
  - {name: hook, type: webhook, url: "http://127.0.0.1:$1/", secret: rel-s3cret, timeout: 2s}
alerts:
  group_by: [alertname]
  group_wait: 0s
  routes:
    - {receiver: hook}
sites:
  - {name: lab, kind: noc}
$2
YAML
    kvl_http_config "$T/collector.yaml" "$HTTP_PORT"
}

rules "$T/rules.yaml" reload_old reload_kept
config "$DEAD_PORT" ""
"$KVL_COLLECTOR" -c "$T/collector.yaml" --check-config >"$L/check.log" 2>&1 ||
    kvl_fail "--check-config refused the first configuration: $(cat "$L/check.log")"
kvl_add_token "$T/collector.yaml" ops operator
TOKEN=$KVL_TOKEN
kvl_start_collector collector "$T/collector.yaml"
COL=$KVL_LAST_PID
CLOG=$L/collector.log
kvl_start_snmpsim "$T/rec" "$SNMP"
kvl_agent_config "$T/agent.yaml" rel-agent lab "$COL_PORT" 2s
kvl_agent_device "$T/agent.yaml" reldev "$SNMP" reldev
kvl_start_agent agent "$T/agent.yaml"
AGENT=$KVL_LAST_PID
F=$T/data/lab/reldev/eth0.rrd
kvl_wait_until 30 "the archive of reldev's eth0" test -f "$F"
kvl_wait_until 20 "the archive's first update" kvl_rrd_updated_since "$F" 1
T_RATE=$(($(kvl_rrd_last_time "$F") + 4)) # the first rate needs two readings

api() { # PATH [CURL_ARGS...]: GET with the token, body on stdout
    local p=$1
    shift
    curl -sf --noproxy '*' -m 5 -H "Authorization: Bearer $TOKEN" "$@" "http://127.0.0.1:$HTTP_PORT$p"
}
starts() { # RULE: the starts_at of its active alerts
    api "/api/v1/alerts?rule=$1" | "$KVL_PY" -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("alerts", d) if isinstance(d, dict) else d
print(" ".join(sorted(str(a.get("starts_at")) for a in d if a.get("status") == "firing")))'
}
active() { # RULE: the number of active alerts of that rule
    api "/api/v1/alerts?rule=$1" | "$KVL_PY" -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("alerts", d) if isinstance(d, dict) else d
print(sum(1 for a in d if a.get("status") in ("firing", "pending")))'
}
firing() { [ "$(active "$1")" -ge 1 ]; }
not_active() { [ "$(active "$1")" -eq 0 ]; }
# the agent's end of its connection to the collector ("127.0.0.1:PORT"), one line per socket
agent_sockets() { ss -Htn state established "( dport = :$COL_PORT )" | awk '{ print $3 }' | sort; }
hooked() { grep -c "^ok .* $1/$2/" "$T/hook.out"; } # RULE STATUS
has_hook() { [ "$(hooked "$1" "$2")" -ge 1 ]; }
reloads_logged() { grep -c "$1" "$CLOG"; }
more_logged() { [ "$(reloads_logged "$1")" -gt "$2" ]; } # TEXT COUNT_BEFORE

# ------------------------------------------------------------------ 1: the first rules -----
kvl_wait_until 30 "reload_old firing" firing reload_old
kvl_wait_until 30 "reload_kept firing" firing reload_kept
KEPT_START=$(starts reload_kept)
[ -n "$KEPT_START" ] || kvl_fail "reload_kept fires without a start"
kvl_sleep_checking 3 "$AGENT" "$COL" # its page is tried and fails (nobody at DEAD_PORT)
kvl_wait_until 30 "4 rates before the reload" kvl_rrd_updated_since "$F" $((T_RATE + 6))
SOCK_BEFORE=$(agent_sockets)
[ "$(echo "$SOCK_BEFORE" | grep -c .)" -eq 1 ] ||
    kvl_fail "expected one agent connection before the reload: '$SOCK_BEFORE'"
kvl_log "agent connection before: $SOCK_BEFORE"

# ------------------------------------------------------------------ 2: a good reload ------
"$KVL_PY" "$HERE/notify_webhook_rx.py" "$HOOK_PORT" rel-s3cret "$T/hook.out" >>"$L/webhook.log" 2>&1 &
kvl_track $! notify_webhook_rx.py
touch "$T/hook.out"
rules "$T/rules.yaml" reload_kept reload_new
config "$HOOK_PORT" "  - {name: lab-east, parent: lab, kind: dhq}"
echo 'carol-pass-1' | "$KVL_COLLECTOR" -c "$T/collector.yaml" --add-user carol --role viewer \
    2>>"$L/add.log" || kvl_fail "--add-user carol failed: $(cat "$L/add.log")"
n0=$(reloads_logged 'reloaded: ')
T_HUP=$(date +%s)
kill -HUP "$COL"
kvl_wait_until 15 "the reload's summary line" more_logged 'reloaded: ' "$n0"
line=$(grep 'reloaded: ' "$CLOG" | tail -n 1)
kvl_log "$line"
echo "$line" | grep -q 'rules 1 added, 1 removed (' || kvl_fail "summary lacks the rules' change: $line"
echo "$line" | grep -q 'receivers 1 changed' || kvl_fail "summary lacks the receiver's change: $line"
echo "$line" | grep -q 'sites 1 added' || kvl_fail "summary lacks the site added: $line"
echo "$line" | grep -q 'users 1 (was 0)' || kvl_fail "summary lacks the user added: $line"
kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died on SIGHUP"

kvl_wait_until 20 "reload_new firing" firing reload_new
kvl_wait_until 10 "reload_old no longer active" not_active reload_old
kvl_wait_until 30 "reload_new paged at the new address" has_hook reload_new firing
kvl_wait_until 30 "reload_old's queued page delivered at the new address" has_hook reload_old firing
kvl_wait_until 30 "reload_old's resolution at the new address" has_hook reload_old resolved
kvl_wait_until 30 "reload_kept's queued page at the new address" has_hook reload_kept firing
[ "$(starts reload_kept)" = "$KEPT_START" ] ||
    kvl_fail "reload_kept started again over the reload: '$KEPT_START' -> '$(starts reload_kept)'"

code=$(curl -s --noproxy '*' -m 5 -o /dev/null -w '%{http_code}' -u carol:carol-pass-1 \
    "http://127.0.0.1:$HTTP_PORT/api/v1/status")
[ "$code" = 200 ] || kvl_fail "the new user's password: HTTP $code"
api /api/v1/topology | grep -q '"lab-east"' ||
    kvl_fail "the site added is not in /api/v1/topology: $(api /api/v1/topology | head -c 400)"

kvl_wait_until 30 "4 polls after the reload" kvl_rrd_updated_since "$F" $((T_HUP + 8))
T_LAST=$(kvl_rrd_last_time "$F")
SOCK_AFTER=$(agent_sockets)
[ "$SOCK_AFTER" = "$SOCK_BEFORE" ] ||
    kvl_fail "the agent's connection changed over the reload: '$SOCK_BEFORE' -> '$SOCK_AFTER'"
# no gap: every step of eth0's in_octets is known from its first rate to after the reload
FROM=$((T_RATE > T_HUP - 30 ? T_RATE : T_HUP - 30))
rrdtool fetch "$F" AVERAGE -r 2 -s "$FROM" -e $((T_LAST - 2)) >"$T/fetch.out" ||
    kvl_fail "rrdtool fetch failed"
rows=$(awk '/^[0-9]+:/ { n++ } END { print n + 0 }' "$T/fetch.out")
gaps=$(awk '/^[0-9]+:/ && $2 ~ /nan/ { n++ } END { print n + 0 }' "$T/fetch.out")
[ "$rows" -ge 6 ] || kvl_fail "only $rows rows around the reload: $(cat "$T/fetch.out")"
[ "$gaps" -eq 0 ] || kvl_fail "$gaps unknown in_octets rows around the reload: $(cat "$T/fetch.out")"
kvl_log "$rows rows of eth0 from $((T_HUP - FROM)) s before the reload, none unknown"

# ------------------------------------------------------------------ 3: a broken file ------
cp "$T/collector.yaml" "$T/good.yaml"
printf 'late_after: [unclosed\n' >>"$T/collector.yaml"
BAD_LINE=$(grep -n 'late_after: \[unclosed' "$T/collector.yaml" | cut -d: -f1)
n0=$(reloads_logged 'reload refused')
kill -HUP "$COL"
kvl_wait_until 15 "the refusal" more_logged 'reload refused' "$n0"
line=$(grep 'reload refused' "$CLOG" | tail -n 1)
kvl_log "$line"
echo "$line" | grep -qE "$T/collector.yaml:($BAD_LINE|$((BAD_LINE + 1))):[0-9]+" ||
    kvl_fail "the refusal does not name file:line:column (line $BAD_LINE): $line"
echo "$line" | grep -q 'keeping the running configuration' ||
    kvl_fail "the refusal does not say the running configuration is kept: $line"
kvl_sleep_checking 4 "$AGENT" "$COL"
firing reload_new || kvl_fail "reload_new no longer fires after a refused reload"
not_active reload_old || kvl_fail "reload_old came back after a refused reload"
T_LAST=$(kvl_rrd_last_time "$F")
kvl_wait_until 20 "the archive still updated" kvl_rrd_updated_since "$F" $((T_LAST + 2))

# a rules file that does not check is refused the same way, naming its own line and column
cp "$T/good.yaml" "$T/collector.yaml"
cp "$T/rules.yaml" "$T/rules.good"
printf '  - name: broken\n    severity: info\n    threshold: {rate: in_octetz, above: 1}\n' >>"$T/rules.yaml"
BAD_LINE=$(grep -n 'in_octetz' "$T/rules.yaml" | cut -d: -f1)
BAD_COL=$(sed -n "${BAD_LINE}p" "$T/rules.yaml" | awk '{ print index($0, "in_octetz") }')
n0=$(reloads_logged 'reload refused')
kill -HUP "$COL"
kvl_wait_until 15 "the refusal of the rules" more_logged 'reload refused' "$n0"
line=$(grep 'reload refused' "$CLOG" | tail -n 1)
kvl_log "$line"
echo "$line" | grep -qF "$T/rules.yaml:$BAD_LINE:$BAD_COL: " ||
    kvl_fail "the refusal does not name rules.yaml:$BAD_LINE:$BAD_COL: $line"
cp "$T/rules.good" "$T/rules.yaml"

# ------------------------------------------------------------------ 4: a restart-only key --
config "$HOOK_PORT" "  - {name: lab-east, parent: lab, kind: dhq}" 8388608
n0=$(reloads_logged 'reload refused')
kill -HUP "$COL"
kvl_wait_until 15 "the refusal of max_frame" more_logged 'reload refused' "$n0"
line=$(grep 'reload refused' "$CLOG" | tail -n 1)
kvl_log "$line"
echo "$line" | grep -q 'max_frame changed: needs a restart' ||
    kvl_fail "the refusal does not name max_frame: $line"
kvl_sleep_checking 3 "$AGENT" "$COL"
[ "$(agent_sockets)" = "$SOCK_BEFORE" ] || kvl_fail "the agent's connection changed at the end"

# ------------------------------------------------------------------ 5: the same again -----
cp "$T/good.yaml" "$T/collector.yaml"
n0=$(reloads_logged 'reloaded: ')
kill -HUP "$COL"
kvl_wait_until 15 "the unchanged reload's summary" more_logged 'reloaded: ' "$n0"
line=$(grep 'reloaded: ' "$CLOG" | tail -n 1)
kvl_log "$line"
echo "$line" | grep -q 'rules unchanged (.*rule engine kept), receivers unchanged, routes unchanged, sites unchanged' ||
    kvl_fail "an unchanged file reloaded as changed: $line"
kvl_sleep_checking 5 "$AGENT" "$COL"
firing reload_new && firing reload_kept || kvl_fail "the kept rules stopped firing"
[ "$(starts reload_kept)" = "$KEPT_START" ] || kvl_fail "reload_kept started again"
for r in reload_new reload_kept; do
    n=$(hooked "$r" firing)
    [ "$n" -eq 1 ] || kvl_fail "$r paged $n times (want 1: reloads must not page again)"
done
# a clean stop after the reloads (under ASan/UBSan builds: nothing reported)
kvl_stop "$AGENT" TERM || kvl_fail "could not stop the agent"
kvl_stop "$COL" TERM || kvl_fail "could not stop the collector"
if grep -qE 'Sanitizer|runtime error' "$CLOG"; then
    kvl_fail "the sanitizers report: $(grep -m 3 -E 'Sanitizer|runtime error' "$CLOG")"
fi
kvl_pass "reload applied rules, receiver, site and user on the same agent connection without a gap; a broken file and a max_frame change were refused and the old configuration kept running"
