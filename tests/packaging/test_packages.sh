#!/bin/bash
# test_packages.sh — the Debian packages as an operator meets them, on this machine:
#   1. the .debs built by packaging/build-debs.sh from the committed tree (or the
#      kaaval-*.deb files in KAAVAL_DEBS_DIR, to save the build); lintian on their .changes
#      finds nothing but the overrides debian/ explains;
#   2. `dpkg -i` (then `apt-get install -f` if a dependency is missing); the binaries, the
#      units (their ExecStart= exists), the conffiles (dpkg lists them; root:kaaval 0640),
#      the man pages (when the tree has docs/man/), the dashboards, the MIB, the examples,
#      the kaaval user and /var/lib/kaaval/{agent,collector} owned by it are where they
#      belong, and both installed configurations pass --check-config as they are;
#   3. a CA, the collector's and the agent's certificates made by the installed
#      kaaval-certs in /etc/kaaval (keys given to the kaaval group, as packaging/README.md
#      says), and the installed configurations switched from `insecure` to mutual TLS. The
#      test changes their ports to free ones (the collector's 5140 and 8080) and points
#      the agent's one device (localhost, 127.0.0.1) at a snmpsim of its own on a free port:
#      the machine is shared. The STAMP reflector (862) and the trap receiver (162) stay as
#      they are: started without capabilities, the agent says in one line each that it
#      cannot bind them and runs on (under systemd the unit grants CAP_NET_BIND_SERVICE);
#   4. both daemons started from /usr/bin as the kaaval user (setpriv, no capability, umask
#      0027 as the units); a batch arrives: the device's archives appear under
#      /var/lib/kaaval/collector/<site>/localhost/, the HTTP API (with a token made by the
#      installed collector) lists the agent, the installed kaavalctl counts it and its
#      device, and the board is served from /usr/share/kaaval/dashboards;
#   5. the daemons stopped, the packages installed again over themselves (dpkg's upgrade
#      path: the edited conffiles, their modes, the certificates and the archives stay),
#      `dpkg --purge` of the three packages, and nothing left of
#      them: no /etc/kaaval, /var/lib/kaaval, /usr/share/kaaval, binaries, units, enable
#      links, docs, dpkg records. The kaaval user stays (Debian policy: a purge keeps
#      system users); the test then removes it when it made it, so the machine is left as
#      it was found.
# Needs root (dpkg). It refuses to start when kaaval packages, /etc/kaaval or
# /var/lib/kaaval are already on the machine (nothing of an operator's is ever touched).
# A test killed outright (ctest's timeout) stops its daemons but cannot purge: run
# `dpkg --purge kaaval-agent kaaval-collector kaaval-common` then.
#
#   sudo bash tests/packaging/test_packages.sh        (KAAVAL_DEBS_DIR=DIR: take those .debs)
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

KVL_TEST=test_packages
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PKGS=(kaaval-agent kaaval-collector kaaval-common)
PKG_TMP=""
INSTALLED=0 # 1 once dpkg -i ran: the clean-up purges
USER_MADE=0 # 1 when the kaaval user did not exist before: the clean-up removes it
STARTED=0   # 1 once the checks found no kaaval on the machine

[ "$(id -u)" -eq 0 ] ||
    kvl_fail "needs root: it installs the packages with dpkg -i on this machine and purges them (run it as root, e.g. sudo ctest --test-dir build -L package)"
for t in dpkg dpkg-query apt-get setpriv openssl curl; do
    command -v "$t" >/dev/null 2>&1 || kvl_fail "'$t' not found: run packaging/install-deps.sh"
done
for p in "${PKGS[@]}"; do
    s=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$s" in "" | un*) ;; *) kvl_fail "$p is already on this machine (dpkg: '$s'); the test installs and purges it, so it will not run here" ;; esac
done
for d in /etc/kaaval /var/lib/kaaval /usr/share/kaaval; do
    [ ! -e "$d" ] || kvl_fail "$d already exists; the test would purge it, so it will not run here"
done
getent passwd kaaval >/dev/null || USER_MADE=1
STARTED=1 # the machine is as the test expects: from here on, the clean-up restores it

# Stops what the test started, purges what it installed, removes the user it made; then
# lib.sh's clean-up (temp folder kept on failure).
pkg_cleanup() {
    local rc=$? i e
    trap - EXIT INT TERM
    for ((i = ${#KVL_PIDS[@]} - 1; i >= 0; i--)); do
        e=${KVL_PIDS[$i]}
        kvl_stop "${e%%:*}" >/dev/null 2>&1
    done
    if [ "$INSTALLED" = 1 ]; then
        dpkg --purge "${PKGS[@]}" >>"${KVL_TMP:-/tmp}/purge-at-exit.log" 2>&1 ||
            echo "$KVL_TEST: dpkg --purge ${PKGS[*]} failed at exit: purge them by hand" >&2
    fi
    # What a broken purge leaves (reported above) goes too: none of it was there before.
    [ "$STARTED" = 0 ] || rm -rf /etc/kaaval /var/lib/kaaval /usr/share/kaaval
    if [ "$USER_MADE" = 1 ] && getent passwd kaaval >/dev/null; then
        userdel kaaval 2>/dev/null
        ! getent group kaaval >/dev/null || groupdel kaaval 2>/dev/null
    fi
    [ -z "$PKG_TMP" ] || rm -rf "$PKG_TMP"
    if [ -n "$KVL_TMP" ]; then
        (exit "$rc")
        kvl_cleanup
    fi
    exit "$rc"
}
trap pkg_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ 1: the packages ----------
PKG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kaaval-test-debs.XXXXXX") || kvl_fail "cannot make a temp folder"
if [ -n "${KAAVAL_DEBS_DIR:-}" ]; then
    DEBS=$KAAVAL_DEBS_DIR
    kvl_log "packages from $DEBS"
else
    DEBS=$PKG_TMP/debs
    kvl_log "building the packages (packaging/build-debs.sh; minutes)"
    bash "$REPO/packaging/build-debs.sh" "$DEBS" >"$PKG_TMP/build-debs.out" 2>&1 ||
        kvl_fail "packaging/build-debs.sh failed: $(tail -n 30 "$PKG_TMP/build-debs.out")"
fi
FILES=()
for p in "${PKGS[@]}"; do
    f=$(ls "$DEBS"/"${p}"_*.deb 2>/dev/null | sort -V | tail -n 1)
    [ -n "$f" ] || kvl_fail "no ${p}_*.deb in $DEBS"
    FILES+=("$f")
done

# lintian, as the packaging README promises: no tag but the explained overrides.
CHANGES=$(ls "$DEBS"/kaaval_*.changes 2>/dev/null | sort -V | tail -n 1)
if [ -n "$CHANGES" ]; then
    command -v lintian >/dev/null 2>&1 || kvl_fail "'lintian' not found: run packaging/install-deps.sh"
    lintian --pedantic -I -E --fail-on error,warning,info,pedantic "$CHANGES" >"$PKG_TMP/lintian.out" 2>&1 ||
        kvl_fail "lintian on $(basename "$CHANGES"): $(grep -v '^N:' "$PKG_TMP/lintian.out" | head -n 20)"
    kvl_log "lintian: nothing to say about $(basename "$CHANGES")"
else
    kvl_log "no .changes in $DEBS: lintian not run"
fi

# ------------------------------------------------------------------ 2: installed -------------
INSTALLED=1
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -i "${FILES[@]}" >"$PKG_TMP/dpkg-i.out" 2>&1; then
    apt-get install -f -y -q >>"$PKG_TMP/dpkg-i.out" 2>&1 ||
        kvl_fail "dpkg -i, then apt-get install -f, failed: $(tail -n 30 "$PKG_TMP/dpkg-i.out")"
fi
for p in "${PKGS[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] ||
        kvl_fail "$p not installed: $(tail -n 30 "$PKG_TMP/dpkg-i.out")"
done
# lib.sh's set-up (temp folder, tools, snmpsim) with the installed binaries.
kvl_init /usr/bin
trap pkg_cleanup EXIT # (kvl_init set its own: this one purges, then calls it)
cp "$PKG_TMP/dpkg-i.out" "$KVL_TMP/logs/dpkg-i.log"
kvl_log "installed: $(basename -a "${FILES[@]}" | tr '\n' ' ')"

owner_mode() { stat -c '%U:%G %a' "$1"; }
for f in /usr/bin/kaaval-agent /usr/bin/kaaval-collector /usr/bin/kaavalctl /usr/bin/kaaval-certs; do
    [ -x "$f" ] || kvl_fail "$f missing or not executable"
done
for u in kaaval-agent kaaval-collector; do
    unit=/lib/systemd/system/$u.service
    [ -f "$unit" ] || kvl_fail "$unit missing"
    exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
    [ "$exe" = "/usr/bin/$u" ] && [ -x "$exe" ] || kvl_fail "$unit starts '$exe', not the installed /usr/bin/$u"
done
for c in agent collector; do
    dpkg-query -W -f='${Conffiles}\n' "kaaval-$c" | grep -q "^ /etc/kaaval/$c.yaml " ||
        kvl_fail "/etc/kaaval/$c.yaml is not a conffile of kaaval-$c"
    [ "$(owner_mode /etc/kaaval/$c.yaml)" = "root:kaaval 640" ] ||
        kvl_fail "/etc/kaaval/$c.yaml is $(owner_mode /etc/kaaval/$c.yaml), expected root:kaaval 640"
    [ -f "/usr/share/doc/kaaval-$c/examples/$c.yaml" ] || kvl_fail "no example $c.yaml in /usr/share/doc/kaaval-$c"
    [ "$(owner_mode /var/lib/kaaval/$c)" = "kaaval:kaaval 750" ] ||
        kvl_fail "/var/lib/kaaval/$c is $(owner_mode /var/lib/kaaval/$c), expected kaaval:kaaval 750"
done
[ "$(owner_mode /var/lib/kaaval)" = "kaaval:kaaval 750" ] ||
    kvl_fail "/var/lib/kaaval is $(owner_mode /var/lib/kaaval), expected kaaval:kaaval 750"
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd kaaval) || kvl_fail "no kaaval user after installing"
[ "$home" = /var/lib/kaaval ] || kvl_fail "the kaaval user's home is $home, expected /var/lib/kaaval"
case "$shell" in */nologin | */false) ;; *) kvl_fail "the kaaval user has the shell $shell" ;; esac
cmp -s "$REPO/dashboards/index.html" /usr/share/kaaval/dashboards/index.html ||
    kvl_fail "/usr/share/kaaval/dashboards/index.html missing or not the tree's"
[ -f /usr/share/kaaval/mibs/KAAVAL-MIB.txt ] || kvl_fail "/usr/share/kaaval/mibs/KAAVAL-MIB.txt missing"
# Man pages: every page the tree's docs/man/ makes, in the package of its program.
if [ -d "$REPO/docs/man" ]; then
    for m in kaaval-agent:kaaval-agent.8 kaaval-agent:kaaval-agent.yaml.5 \
        kaaval-collector:kaaval-collector.8 kaaval-collector:kaaval-collector.yaml.5 \
        kaaval-collector:kaavalctl.1 kaaval-common:kaaval-certs.1; do
        p=${m%%:*} page=${m#*:}
        dpkg -L "$p" | grep -q "^/usr/share/man/man${page##*.}/$page.gz$" ||
            kvl_fail "$p has no man page $page"
    done
    kvl_log "man pages installed"
fi

as_kaaval() { setpriv --reuid=kaaval --regid=kaaval --init-groups "$@"; }
# As they are (the package's files, unedited): both must pass.
for c in agent collector; do
    as_kaaval "/usr/bin/kaaval-$c" -c "/etc/kaaval/$c.yaml" --check-config >"$KVL_TMP/logs/check-$c.log" 2>&1 ||
        kvl_fail "the installed /etc/kaaval/$c.yaml fails --check-config: $(cat "$KVL_TMP/logs/check-$c.log")"
done
kvl_log "the installed files are in place; both configurations check as installed"

# ------------------------------------------------------------------ 3: certificates, ports ---
AGENT_ID=$(sed -n 's/^id: *\([^ #]*\).*/\1/p' /etc/kaaval/agent.yaml)
SITE=$(sed -n 's/^site: *\([^ #]*\).*/\1/p' /etc/kaaval/agent.yaml)
[ -n "$AGENT_ID" ] && [ -n "$SITE" ] || kvl_fail "no id/site in /etc/kaaval/agent.yaml"
{
    kaaval-certs -d /etc/kaaval ca && kaaval-certs -d /etc/kaaval agent "$AGENT_ID" &&
        kaaval-certs -d /etc/kaaval collector 127.0.0.1
} >"$KVL_TMP/logs/certs.log" 2>&1 || kvl_fail "kaaval-certs failed: $(cat "$KVL_TMP/logs/certs.log")"
for k in "$AGENT_ID" collector; do
    chgrp kaaval "/etc/kaaval/$k.key" && chmod 0640 "/etc/kaaval/$k.key" || kvl_fail "cannot give /etc/kaaval/$k.key to the kaaval group"
done

kvl_free_port tcp COL_PORT
kvl_free_port tcp HTTP_PORT
kvl_free_port udp SNMP_PORT
# edit FILE FROM TO: replaces the one line FROM (a whole line, as installed) by TO.
edit() {
    grep -q "^$2\$" "$1" || kvl_fail "$1 has no line '$2' to change"
    sed -i "s|^$2\$|$3|" "$1"
}
C=/etc/kaaval/collector.yaml
A=/etc/kaaval/agent.yaml
edit "$C" 'listen: 127.0.0.1:5140 .*' "listen: 127.0.0.1:$COL_PORT"
edit "$C" 'insecure: true' "tls: {ca: /etc/kaaval/ca.crt, cert: /etc/kaaval/collector.crt, key: /etc/kaaval/collector.key}"
edit "$C" '  listen: 127.0.0.1:8080' "  listen: 127.0.0.1:$HTTP_PORT"
edit "$A" 'collector: 127.0.0.1:5140 .*' "collector: 127.0.0.1:$COL_PORT"
edit "$A" 'insecure: true' "tls: {ca: /etc/kaaval/ca.crt, cert: /etc/kaaval/$AGENT_ID.crt, key: /etc/kaaval/$AGENT_ID.key}"
edit "$A" '    address: 127.0.0.1 .*' "    address: 127.0.0.1\\n    port: $SNMP_PORT\\n    community: localhost"
mkdir -p "$KVL_TMP/rec"
kvl_make_rate_device "$KVL_TMP/rec/localhost.snmprec" "eth0:1000:2000"
kvl_start_snmpsim "$KVL_TMP/rec" "$SNMP_PORT"

# ------------------------------------------------------------------ 4: a batch arrives -------
start_as_kaaval() { # NAME
    (umask 0027 && exec setpriv --reuid=kaaval --regid=kaaval --init-groups \
        "/usr/bin/kaaval-$1" -c "/etc/kaaval/$1.yaml") >>"$KVL_TMP/logs/$1.out" 2>>"$KVL_TMP/logs/$1.log" &
    KVL_LAST_PID=$!
    kvl_track "$KVL_LAST_PID" "kaaval-$1"
    _kvl_await_exec "$KVL_LAST_PID" "kaaval-$1" || kvl_fail "$1 (pid $KVL_LAST_PID) exited at start-up"
    # (setpriv's command line names the daemon already: wait for the exec as kaaval)
    kvl_wait_until 10 "$1 (pid $KVL_LAST_PID) to run /usr/bin/kaaval-$1 as kaaval" \
        runs_as_kaaval "$KVL_LAST_PID" "/usr/bin/kaaval-$1"
}
runs_as_kaaval() { # PID EXE
    kill -0 "$1" 2>/dev/null || kvl_fail "pid $1 ($2) exited at start-up"
    [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$2" ] && [ "$(stat -c %U "/proc/$1")" = kaaval ]
}
start_as_kaaval collector
COL=$KVL_LAST_PID
kvl_wait_until 60 "the collector to listen" _kvl_listening "$COL" "$KVL_TMP/logs/collector.log" 0
grep -q 'mutual TLS' "$KVL_TMP/logs/collector.log" || kvl_fail "the collector does not say it uses mutual TLS"
start_as_kaaval agent
AGT=$KVL_LAST_PID

DEV_DIR=/var/lib/kaaval/collector/$SITE/localhost
have_rrd() {
    kvl_is_ours "$AGT" kaaval-agent || kvl_fail "the agent died"
    kvl_is_ours "$COL" kaaval-collector || kvl_fail "the collector died"
    [ -n "$(find "$DEV_DIR" -name '*.rrd' -size +0 2>/dev/null | head -n 1)" ]
}
kvl_wait_until 90 "archives of the agent's device under $DEV_DIR" have_rrd
RRD=$(find "$DEV_DIR" -name '*.rrd' | head -n 1)
kvl_log "a batch arrived: $RRD (owner $(stat -c %U "$RRD"))"
[ "$(stat -c %U "$RRD")" = kaaval ] || kvl_fail "$RRD is not the kaaval user's"
[ -d /var/lib/kaaval/agent/spool ] || kvl_fail "the agent made no spool in /var/lib/kaaval/agent/spool"

TOKEN=$(as_kaaval /usr/bin/kaaval-collector -c "$C" --add-token pkgtest-viewer --role viewer \
    2>"$KVL_TMP/logs/add-token.log") || kvl_fail "--add-token as kaaval failed: $(cat "$KVL_TMP/logs/add-token.log")"
listed() {
    curl -s --noproxy '*' -m 10 -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$HTTP_PORT/api/v1/agents" >"$KVL_TMP/logs/agents.json" 2>&1
    grep -q -- "\"$AGENT_ID\"" "$KVL_TMP/logs/agents.json"
}
kvl_wait_until 30 "/api/v1/agents to list agent $AGENT_ID" listed
kaavalctl --url "http://127.0.0.1:$HTTP_PORT" --token "$TOKEN" status >"$KVL_TMP/logs/status.out" 2>&1
grep -q ' 1 agent, 1 device' "$KVL_TMP/logs/status.out" ||
    kvl_fail "the installed kaavalctl status does not count the agent and its device: $(cat "$KVL_TMP/logs/status.out")"
curl -s --noproxy '*' -m 10 -o "$KVL_TMP/index.html" "http://127.0.0.1:$HTTP_PORT/" ||
    kvl_fail "the board's page cannot be fetched"
cmp -s "$KVL_TMP/index.html" /usr/share/kaaval/dashboards/index.html ||
    kvl_fail "/ is not /usr/share/kaaval/dashboards/index.html"
kvl_log "the API lists the agent; the board is served from /usr/share/kaaval/dashboards"

# ------------------------------------------------------------------ 5: purged ----------------
kvl_stop "$AGT" || kvl_fail "the agent did not stop"
kvl_stop "$COL" || kvl_fail "the collector did not stop"
# The same packages again: dpkg's upgrade path (prerm upgrade, postinst configure OLD). The
# edited configuration, the certificates and the archives stay as they are.
dpkg -i "${FILES[@]}" >"$KVL_TMP/logs/reinstall.log" 2>&1 || kvl_fail "dpkg -i over the installed packages failed"
grep -q "^    port: $SNMP_PORT\$" "$A" && grep -q "^listen: 127.0.0.1:$COL_PORT\$" "$C" ||
    kvl_fail "an upgrade lost the edits of /etc/kaaval/*.yaml"
for c in agent collector; do
    [ "$(owner_mode /etc/kaaval/$c.yaml)" = "root:kaaval 640" ] ||
        kvl_fail "after an upgrade /etc/kaaval/$c.yaml is $(owner_mode /etc/kaaval/$c.yaml)"
done
[ -f "$RRD" ] && [ -f /etc/kaaval/ca.key ] || kvl_fail "an upgrade lost the archives or the certificates"
kvl_log "upgraded in place: configuration edits, certificates and archives kept"

dpkg --purge "${PKGS[@]}" >"$KVL_TMP/logs/purge.log" 2>&1 || kvl_fail "dpkg --purge failed"
INSTALLED=0
for p in "${PKGS[@]}"; do
    s=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$s" in "" | un*) ;; *) kvl_fail "$p still known to dpkg after the purge: '$s'" ;; esac
done
left=$(ls -d /etc/kaaval /var/lib/kaaval /usr/share/kaaval /usr/bin/kaaval-agent \
    /usr/bin/kaaval-collector /usr/bin/kaavalctl /usr/bin/kaaval-certs \
    /lib/systemd/system/kaaval-*.service /etc/systemd/system/*/kaaval-*.service \
    /var/lib/systemd/deb-systemd-helper-enabled/kaaval-* \
    /var/lib/systemd/deb-systemd-helper-enabled/*/kaaval-* /usr/share/doc/kaaval-* \
    /usr/share/man/man*/kaaval* 2>/dev/null)
[ -z "$left" ] || kvl_fail "left after the purge: $(echo "$left" | tr '\n' ' ')"
getent passwd kaaval >/dev/null && kvl_log "after the purge the kaaval system user stays (Debian policy)"
kvl_pass "installed, a batch arrived from the installed agent as kaaval, purged without a trace"
