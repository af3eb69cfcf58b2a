#!/usr/bin/env python3
"""compare.py AGENT PCAP EXPECT.json CONFIG: kaaval-agent --capture-once on PCAP against
tshark's statistics on the same file and against what the script that made it put in.

tshark runs with IP reassembly off (see tshark() below).
- tshark -z io,stat,0: frames and bytes of the whole file = the agent's total;
- tshark -z conv,ip and conv,ipv6: every conversation the agent's list has, with the same
  frames; bytes exact against tshark's own per-frame fields (-T fields: addresses and
  frame.len, summed here), and against conv's figure in whole kB (cut down) where it uses kB;
- tshark -z endpoints,ip and endpoints,ipv6: every host with the same frames and bytes;
- EXPECT.json (make_pcap.py): frames and bytes by IP version, direction and transport, the
  malformed frames, retransmissions, resets, tagged frames, later fragments; handshake times
  per server port: count, min and max exact (to the pcap's microsecond), median and p95
  within the documented 2.2 % of the nearest-rank sample; nDPI's applications: DNS frames
  and bytes exact, HTTP and TLS at least their named session's frames and at most those plus
  the other connections to their ports (nDPI's guess by port at the close), every
  IP frame under an application, pending or unclassified; the names nDPI read (HTTP Host,
  TLS server name, DNS queries) with their connections.
Prints every difference; exits 1 when there is one."""
import json
import math
import os
import re
import subprocess
import sys
from collections import defaultdict

agent, pcap, expect_path, config = sys.argv[1:5]
problems = []


def check(ok, what):
    if not ok:
        problems.append(what)


def tshark(*args):
    # Reassembly off: with it, tshark's IPv6 tap sees a fragmented datagram once (in the frame
    # that completes it) while the agent, like tshark's IPv4 tap, counts every frame.
    r = subprocess.run(["tshark", "-n", "-o", "ip.defragment:FALSE", "-o",
                        "ipv6.defragment:FALSE", "-r", pcap, *args], capture_output=True,
                       text=True, timeout=50)
    if r.returncode != 0:
        sys.exit("tshark %s failed: %s" % (" ".join(args), r.stderr))
    return r.stdout


# KVL_CAPTURE_OUTPUT: the agent's figures already printed (a live capture of the same frames
# replayed onto an interface); the replay's pacing changes the gaps, so handshake times are
# then checked by count only.
live_output = os.environ.get("KVL_CAPTURE_OUTPUT")
if live_output:
    text = open(live_output).read()
else:
    out = subprocess.run([agent, "-c", config, "--capture-once", pcap], capture_output=True,
                         text=True, timeout=50)
    if out.returncode != 0:
        sys.exit("kaaval-agent --capture-once failed (%d): %s" % (out.returncode, out.stderr))
    text = out.stdout
ours = defaultdict(list)
for line in text.splitlines():
    kind, *fields = line.split(" ")
    kv = dict(f.split("=", 1) for f in fields if "=" in f)
    names = [f for f in fields if "=" not in f]
    if names:
        kv["name"] = names[0]
    ours[kind].append(kv)


def one(kind, name=None):
    for kv in ours[kind]:
        if name is None or kv.get("name") == name:
            return kv
    sys.exit("no '%s %s' line in the agent's output" % (kind, name or ""))


# io,stat
m = re.search(r"\|\s*[\d.]+\s*<>\s*[\d.]+\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", tshark("-q", "-z", "io,stat,0"))
check(m is not None, "no io,stat row")
total = one("total")
if m:
    check(int(total["packets"]) == int(m.group(1)),
          "frames: agent %s, tshark io,stat %s" % (total["packets"], m.group(1)))
    check(int(total["bytes"]) == int(m.group(2)),
          "bytes: agent %s, tshark io,stat %s" % (total["bytes"], m.group(2)))

UNIT = {"bytes": 1, "kB": 1000, "MB": 1000000, "GB": 1000000000}
ROW = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+" + r"\s+".join([r"(\d+)\s+(\d+)\s+(bytes|kB|MB|GB)"] * 3))

# exact per-pair bytes from tshark's own fields
exact = defaultdict(int)
for line in tshark("-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e",
                   "ipv6.dst", "-e", "frame.len").splitlines():
    f = line.split("\t")
    if len(f) < 5:
        continue
    src, dst = (f[0], f[1]) if f[0] else (f[2], f[3])
    if src and dst:
        exact[frozenset((src, dst))] += int(f[4])

# tshark's IPv6 tap (4.0) leaves out the fragments after the first even with reassembly off,
# though every frame carries the addresses: they are added to its conv and endpoint figures
# from its own fields (-Y on the fragment header's offset).
late6 = defaultdict(lambda: [0, 0])
for line in tshark("-Y", "ipv6.fraghdr.offset > 0", "-T", "fields", "-e", "ipv6.src", "-e",
                   "ipv6.dst", "-e", "frame.len").splitlines():
    f = line.split("\t")
    if len(f) == 3 and f[0] and f[1]:
        for k in (frozenset((f[0], f[1])), f[0], f[1]):
            late6[k][0] += 1
            late6[k][1] += int(f[2])

convs = {frozenset((c["a"], c["b"])): c for c in ours["conv"]}
n_tshark = 0
for proto in ("ip", "ipv6"):
    for line in tshark("-q", "-z", "conv," + proto).splitlines():
        r = ROW.match(line)
        if not r:
            continue
        n_tshark += 1
        key = frozenset((r.group(1), r.group(2)))
        frames, shown, unit = int(r.group(9)), int(r.group(10)), r.group(11)
        frames += late6[key][0]
        c = convs.get(key)
        check(c is not None, "conversation %s <-> %s: tshark has it, the agent not"
              % (r.group(1), r.group(2)))
        if c is None:
            continue
        check(int(c["packets"]) == frames and c["error"] == "0",
              "conversation %s: frames agent %s, tshark %d" % (sorted(key), c["packets"], frames))
        b = int(c["bytes"])
        check(b == exact[key], "conversation %s: bytes agent %d, tshark fields %d"
              % (sorted(key), b, exact[key]))
        # conv prints whole units, cut down (14,772 bytes: "14 kB")
        check(0 <= b - late6[key][1] - shown * UNIT[unit] < UNIT[unit],
              "conversation %s: bytes agent %d, tshark conv %d %s" % (sorted(key), b, shown, unit))
check(n_tshark == len(convs), "conversations: agent %d, tshark %d" % (len(convs), n_tshark))

hosts = {h["addr"]: h for h in ours["host"]}
n_ep = 0
EP = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s+\d+\s+\d+\s*$")
for proto in ("ip", "ipv6"):
    for line in tshark("-q", "-z", "endpoints," + proto).splitlines():
        r = EP.match(line)
        if not r:
            continue
        n_ep += 1
        h = hosts.get(r.group(1))
        check(h is not None, "host %s: tshark has it, the agent not" % r.group(1))
        if h is None:
            continue
        frames = int(r.group(2)) + late6[r.group(1)][0]
        nbytes = int(r.group(3)) + late6[r.group(1)][1]
        check(int(h["packets"]) == frames and int(h["bytes"]) == nbytes,
              "host %s: agent %s frames %s bytes, tshark %d frames %d bytes"
              % (r.group(1), h["packets"], h["bytes"], frames, nbytes))
check(n_ep == len(hosts), "hosts: agent %d, tshark %d" % (len(hosts), n_ep))

# what the script put in
exp = json.load(open(expect_path))
for key in ("non_ip", "ipv4", "ipv6"):
    kv = one(key)
    check([int(kv["packets"]), int(kv["bytes"])] == exp[key],
          "%s: agent %s/%s, made %s" % (key, kv["packets"], kv["bytes"], exp[key]))
for group in ("dir", "transport"):
    for name, want in exp[group].items():
        kv = one(group, name)
        check([int(kv["packets"]), int(kv["bytes"])] == want,
              "%s %s: agent %s/%s, made %s" % (group, name, kv["packets"], kv["bytes"], want))
dec = one("decode")
tcp = one("tcp")
for ours_v, want, what in ((dec["malformed"], exp["malformed"], "malformed"),
                           (dec["tagged"], exp["tagged"], "tagged"),
                           (dec["later_fragments"], exp["later_fragments"], "later fragments"),
                           (tcp["retransmissions"], exp["retransmissions"], "retransmissions"),
                           (tcp["resets"], exp["resets"], "resets")):
    check(int(ours_v) == want, "%s: agent %s, made %d" % (what, ours_v, want))

US = 0.002  # ms: the pcap keeps microseconds, each end of a gap rounded
hs = {h["port"]: h for h in ours["handshake"]}
check(sorted(hs) == sorted(exp["handshakes"]),
      "handshake ports: agent %s, made %s" % (sorted(hs), sorted(exp["handshakes"])))
for port, sides in exp["handshakes"].items():
    h = hs.get(port)
    if h is None:
        continue
    for side, vals in sides.items():
        ms = sorted(v * 1000 for v in vals)
        n = len(ms)
        check(int(h[side + "_n"]) == n, "port %s %s: n agent %s, made %d" % (port, side, h[side + "_n"], n))
        if live_output:
            continue
        for stat, want, tol in (("min", ms[0], US), ("max", ms[-1], US),
                                ("median", ms[max(0, math.ceil(0.5 * n) - 1)], 0.022),
                                ("p95", ms[max(0, math.ceil(0.95 * n) - 1)], 0.022)):
            got = float(h["%s_%s_ms" % (side, stat)])
            lim = tol if stat in ("min", "max") else want * tol + US
            check(abs(got - want) <= lim, "port %s %s %s: agent %.3f ms, made %.3f ms"
                  % (port, side, stat, got, want))

# applications (nDPI): DNS exact, the HTTP and TLS sessions within their frame ranges
apps = {a["name"]: a for a in ours["app"]}
for name, want in exp.get("apps", {}).items():
    a = apps.get(name)
    check(a is not None, "application %s: none in the agent's figures" % name)
    if a is None:
        continue
    if name == "DNS":
        check([int(a["packets"]), int(a["bytes"])] == want,
              "application DNS: agent %s/%s, made %s" % (a["packets"], a["bytes"], want))
    else:
        hi = want[1] + exp.get("apps_guess", {}).get(name, 0)
        check(want[0] <= int(a["packets"]) <= hi,
              "application %s: agent %s frames, made %d to %d" % (name, a["packets"], want[0], hi))
if ours["apps"]:
    # every IP frame is under an application, pending, or unclassified
    tot = sum(int(a["packets"]) for a in ours["app"]) + int(ours["apps"][0]["pending_packets"]) + \
        int(ours["apps"][0]["unclassified_packets"])
    ipf = int(one("ipv4")["packets"]) + int(one("ipv6")["packets"])
    check(tot == ipf, "applications: %d frames, IP frames %d" % (tot, ipf))

# the names nDPI read, by connections
names = {n["name"]: n for n in ours["name"]}
for name, want in exp.get("names", {}).items():
    n = names.get(name)
    check(n is not None and int(n["connections"]) == want and n["error"] == "0",
          "name %s: agent %s, made %d connections" % (name, n and n["connections"], want))

for p in problems:
    print("capture_tshark: " + p)
print("capture_tshark: %d frames, %d conversations, %d hosts, %d handshake ports checked; "
      "%d differences" % (int(total["packets"]), len(convs), len(hosts), len(hs), len(problems)))
sys.exit(1 if problems else 0)
