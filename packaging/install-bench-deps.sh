#!/bin/sh
# install-bench-deps.sh — installs the Debian 12 packages that tests/bench/snmp-poll,
# tests/bench/probe, tests/bench/alert-latency and tests/bench/capture need on top of packaging/install-deps.sh: the peers it measures kaaval-agent against and the
# tools it drives them with. Not run by the test suite (the benchmark is not a ctest).
#
#   packaging/install-bench-deps.sh
#
#   collectd-core             collectd with its snmp plugin (peer 1), run in the foreground
#   prometheus-snmp-exporter  snmp_exporter (peer 2), fed ../shared/testdata/peers' if_mib
#   snmpd snmp                Debian's SNMP agent serving the simulated devices; snmpget/walk
#   iproute2                  `ip netns` and dummy interfaces for the devices' 49 interfaces
#   curl                      scrapes the exporter
#   procps python3            /proc readers and the benchmark's small helpers
#   fping                     the peer of tests/bench/probe (ICMP to 1,000 targets)
#   prometheus prometheus-alertmanager prometheus-blackbox-exporter
#                             the peer stack of tests/bench/alert-latency (with snmp_exporter)
#   nftables                  alert-latency's link cuts
#   tcpdump                   tests/bench/capture's live baseline (its own drop report on a
#                             veth); that benchmark's peers pmacct and softflowd, tcpreplay
#                             and tshark come with packaging/install-deps.sh
#
# Every package is from Debian's own archive; nothing is downloaded from elsewhere. The
# packaged services are stopped and disabled right after installation: the benchmark starts
# its own instances on 127.0.0.1 inside a network namespace it makes and removes.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo "$0" "$@"
    fi
    echo "install-bench-deps.sh: run as root (apt-get needs it)" >&2
    exit 1
fi

pkgs="collectd-core prometheus-snmp-exporter snmpd snmp iproute2 curl procps python3 fping
      prometheus prometheus-alertmanager prometheus-blackbox-exporter nftables tcpdump"

export DEBIAN_FRONTEND=noninteractive
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
    apt-get update -q
fi
# policy-rc.d keeps the packages' own daemons from starting during installation (on a
# machine without systemd invoke-rc.d would otherwise start them from their init scripts).
prc=/usr/sbin/policy-rc.d
made_prc=no
if [ ! -e "$prc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 755 "$prc" && made_prc=yes
fi
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y -q --no-install-recommends $pkgs || {
    [ "$made_prc" = yes ] && rm -f "$prc"
    exit 1
}
[ "$made_prc" = yes ] && rm -f "$prc"

# The benchmark runs its own instances; the packaged services must not hold the ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for s in snmpd prometheus-snmp-exporter collectd prometheus prometheus-alertmanager \
        prometheus-blackbox-exporter; do
        systemctl disable --now "$s" >/dev/null 2>&1 || true
    done
fi

for b in collectd prometheus-snmp-exporter snmpd snmpget ip curl fping prometheus \
    prometheus-alertmanager prometheus-blackbox-exporter nft tcpdump; do
    command -v "$b" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
    command -v "$b" >/dev/null 2>&1 || { echo "install-bench-deps.sh: $b missing after install" >&2; exit 1; }
done
echo "install-bench-deps.sh: benchmark dependencies installed"
