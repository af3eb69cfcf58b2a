#!/usr/bin/env python3
"""test_capture_bound.py AGENT [HOSTS]: the capture's memory stays bounded however many hosts
appear, and the true top hosts are still found.

Writes (plain struct, no scapy: a million frames in seconds) a pcap of HOSTS (default
1,000,000) UDP frames, each between two addresses drawn at random (about 2 x HOSTS hosts and
HOSTS flows), with ten heavy hosts interleaved: heavy host i sends 2,000 + 100 i frames of
1,400 bytes to random peers. Then runs `kaaval-agent --capture-once` with the default bounds
(65,536 flows, 1,024 sketch counters, classification on) and checks:
- the ten hosts it ranks first are the ten heavy ones, heaviest first, each with
  bytes - error <= true bytes <= bytes and error <= total / 1,024 (the sketch's guarantee);
- the flow table stayed at its capacity and evicted the rest, counted;
- the agent's peak RSS (getrusage of the child) is within RSS_BOUND_MB, the bound README.md
  states for these settings, and within 8 MiB of a run over a pcap of 1,000 frames (the
  tables are allocated and touched at start, so traffic adds nearly nothing); not checked for
  an agent built with a sanitizer (its shadow memory is no measure of the agent's).
Exits 1 when any of these fails."""
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile

RSS_BOUND_MB = 48

agent = sys.argv[1]
hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
rng = random.Random(1717)


def write_pcap(path, n_small, heavy):
    """n_small random-pair frames and the heavy hosts' frames, interleaved; returns the true
    bytes of each heavy host (by address) and the total bytes."""
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    plan = [None] * n_small
    for i, (addr, count) in enumerate(heavy):
        plan += [addr] * count
    rng.shuffle(plan)
    truth = {addr: 0 for addr, _ in heavy}
    total = 0
    t = 1700000000
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k, who in enumerate(plan):
            src = who if who is not None else rng.getrandbits(32)
            dst = rng.getrandbits(32)
            payload = 1400 - 42 if who is not None else 18
            ip_len = 28 + payload
            ip = struct.pack("!BBHHHBBHII", 0x45, 0, ip_len, k & 0xFFFF, 0, 64, 17, 0, src, dst)
            udp = struct.pack("!HHHH", 1024 + (k % 60000), 53, 8 + payload, 0)
            frame = eth + ip + udp + bytes(payload)
            usec = k % 1000000
            f.write(struct.pack("<IIII", t + k // 1000000, usec, len(frame), len(frame)))
            f.write(frame)
            total += len(frame)
            if who is not None:
                truth[who] += len(frame)
    return truth, total


def run(pcap):
    """The agent's output and its peak RSS in KiB (ru_maxrss of this child alone)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([agent, "--capture-once", pcap], capture_output=True, text=True,
                         timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if out.returncode != 0:
        sys.exit("kaaval-agent failed: " + out.stderr)
    return out.stdout, max(before, after)


def ip_text(a):
    return ".".join(str(b) for b in a.to_bytes(4, "big"))


def main():
    problems = []
    with tempfile.TemporaryDirectory(prefix="kvl-capture-bound.") as tmp:
        small = os.path.join(tmp, "small.pcap")
        write_pcap(small, 1000, [])
        # the small run first: RUSAGE_CHILDREN keeps the largest child's peak
        _, rss_small = run(small)
        heavy = [(0x0A630000 + i, 2000 + 100 * i) for i in range(10)]
        big = os.path.join(tmp, "big.pcap")
        truth, total = write_pcap(big, hosts, heavy)
        text, rss_big = run(big)
    lines = [l.split(" ") for l in text.splitlines()]
    kv = lambda l: dict(f.split("=", 1) for f in l[1:] if "=" in f)
    top = [kv(l) for l in lines if l[0] == "host"][:10]
    want = [ip_text(a) for a, _ in sorted(heavy, key=lambda h: -h[1])]
    got = [h["addr"] for h in top]
    if got != want:
        problems.append("top 10 hosts %s, expected %s" % (got, want))
    for h in top:
        addr = int.from_bytes(bytes(int(x) for x in h["addr"].split(".")), "big")
        b, e = int(h["bytes"]), int(h["error"])
        if addr in truth and not (b - e <= truth[addr] <= b):
            problems.append("host %s: %d bytes (error %d), true %d" % (h["addr"], b, e,
                                                                     truth[addr]))
        if e > total // 1024:
            problems.append("host %s: error %d above total/1024 = %d" % (h["addr"], e,
                                                                         total // 1024))
    flows = kv(next(l for l in lines if l[0] == "flows"))
    if int(flows["now"]) > 65536 or int(flows["evicted"]) < hosts - 65536:
        problems.append("flows: %s" % flows)
    mb = rss_big / 1024
    with open(agent, "rb") as f:
        image = f.read()
    sanitized = b"__asan_init" in image or b"__tsan_init" in image
    if sanitized:
        print("capture_bound: a sanitizer build: peak RSS not judged")
    elif mb > RSS_BOUND_MB or (rss_big - rss_small) / 1024 > 8:
        problems.append("peak RSS %.1f MiB (small pcap: %.1f MiB), bound %d MiB"
                        % (mb, rss_small / 1024, RSS_BOUND_MB))
    for p in problems:
        print("capture_bound: " + p)
    print("capture_bound: %d frames, %d bytes; peak RSS %.1f MiB (1,000 frames: %.1f MiB); "
          "flows evicted %s; %d problems" % (hosts + sum(c for _, c in heavy), total, mb,
                                             rss_small / 1024, flows["evicted"], len(problems)))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
