#!/bin/sh
# install-deps.sh — installs the Debian 12 packages kaaval needs to build, test and run
# its demo. Run as root (or through sudo). Safe to run again: apt-get skips what is there.
#
#   packaging/install-deps.sh          build + run + test dependencies
#
# Every package here is from Debian's own archive; nothing is downloaded from elsewhere.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo "$0" "$@"
    fi
    echo "install-deps.sh: run as root (apt-get needs it)" >&2
    exit 1
fi

# Build toolchain and the libraries the daemons link; clang-format for the format check and
# libtsan2 (gcc's ThreadSanitizer runtime, for -DKVL_TSAN=ON) that .ci/run needs; scdoc, which
# makes the man pages from docs/man/*.scd and docs/configuration.md at every build.
build="build-essential cmake pkg-config clang clang-format libtsan2 scdoc
       libuv1-dev libsnmp-dev librrd-dev libprotobuf-c-dev protobuf-c-compiler
       libyaml-dev libcmocka-dev libssl-dev libcurl4-openssl-dev libjansson-dev
       libmicrohttpd-dev libcrypt-dev libsystemd-dev libsnappy-dev libndpi-dev libpcap-dev"
# Programs the tests and the demo start: SNMP simulator and tools, Debian's snmpd, RRDtool;
# nftables (imposed loss), ping (the reference) and setpriv (unprivileged runs) for the
# link measurement tests in tests/netns/; the alert receivers the tests deliver to
# (Alertmanager, an SMTP sink, snmptrapd as the upstream manager); headless Chromium with
# its WebDriver and Selenium for the board's browser test (tests/browser/); systemd for
# systemd-analyze (the units' checks, tests/integration/test_systemd.sh; nothing is started);
# Prometheus and VictoriaMetrics, the remote-write receivers the collector is tested
# against; tshark (the truth for counts), tcpreplay and scapy (test traffic), pmacct and
# softflowd (the capture benchmark's peers) for the agent's traffic capture.
run="snmpsim snmp snmpd rrdtool rrdcached iproute2 procps python3 smitools openssl
     nftables iputils-ping util-linux prometheus-alertmanager python3-aiosmtpd snmptrapd
     chromium chromium-driver python3-selenium systemd prometheus victoria-metrics
     tshark tcpreplay python3-scapy pmacct softflowd"
# Building and checking the Debian packages (packaging/build-debs.sh, lintian, and
# tests/packaging/test_packages.sh, which installs them): debhelper, dpkg-dev, fakeroot,
# lintian; adduser for the packages' kaaval user.
pkg="debhelper dpkg-dev fakeroot lintian adduser"

export DEBIAN_FRONTEND=noninteractive
# An apt-get update only when the lists are missing or older than a day keeps reruns fast.
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
    apt-get update -q
fi
# shellcheck disable=SC2086  # word splitting of the package lists is intended
apt-get install -y -q --no-install-recommends $build $run $pkg
