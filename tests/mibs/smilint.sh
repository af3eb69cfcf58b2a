#!/bin/sh
# smilint.sh — checks kaaval's own MIB module with both MIB parsers kaaval meets.
#
#   tests/mibs/smilint.sh smilint   mibs/KAAVAL-MIB.txt   libsmi's smilint -l 4 (smitools)
#   tests/mibs/smilint.sh netsnmp   mibs/KAAVAL-MIB.txt   net-snmp's parser (snmptranslate)
#
# Passes only when the tool prints nothing at all: smilint exits 0 even when it reports
# errors, so its exit status alone proves nothing. The IETF modules the MIB imports
# (SNMPv2-SMI, SNMPv2-TC, SNMPv2-CONF) come from base/ beside this script: Debian ships no
# IETF MIB modules (non-free), so these stand-ins hold just what KAAVAL-MIB imports.
set -eu

mode=$1
mib=$2
here=$(cd "$(dirname "$0")" && pwd)
base=$here/base
mibdir=$(cd "$(dirname "$mib")" && pwd)
module=$(basename "$mib" .txt)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "FAIL: $1 not found (Debian package $2; packaging/install-deps.sh installs it)" >&2
        exit 1
    fi
}

case $mode in
smilint)
    need smilint smitools
    # SMIPATH puts the stand-ins first; -s prints each message's severity level.
    rc=0
    SMIPATH=$base smilint -l 4 -s "$mib" >"$out" 2>&1 || rc=$?
    ;;
netsnmp)
    need snmptranslate snmp
    # -M and -m replace the default MIB path and module list, so only this module and the
    # stand-ins are read; every parse problem goes to stderr.
    rc=0
    oid=$(MIBS= MIBDIRS= snmptranslate -M "$base:$mibdir" -m "$module" -On -IR kaavalMIB 2>"$out") || rc=$?
    if [ "$rc" -eq 0 ] && [ "$oid" != ".1.3.6.1.4.1.99999" ]; then
        echo "kaavalMIB translated to '$oid', expected .1.3.6.1.4.1.99999" >>"$out"
    fi
    ;;
*)
    echo "usage: $0 smilint|netsnmp MIB-FILE" >&2
    exit 2
    ;;
esac

if [ -s "$out" ] || [ "$rc" -ne 0 ]; then
    echo "FAIL: $mode on $mib (exit $rc):" >&2
    cat "$out" >&2
    exit 1
fi
echo "ok: $mode: $mib is clean"
