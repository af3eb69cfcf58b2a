#!/usr/bin/env python3
"""test_capture_sampling.py AGENT: `sampling: N` reports estimates of all the traffic.

Writes (plain struct) a pcap of FRAMES Ethernet/IPv4 frames of random sizes (60 to 1,514
bytes on the wire), TCP and UDP, in and out of 10.1.0.0/16, with five heavy local hosts
(weights 16, 8, 4, 2, 1 against a crowd of random others); the script keeps the truth. Then
runs `kaaval-agent --capture-once` on it twice, with `sampling: 1` and `sampling: 10`, and
checks:
- sampling 1: the totals are the script's exactly (the reference is right);
- sampling 10: the first line says `sampling=10 scaled=10`; frames_read is every frame (the
  reading is not sampled);
- the scaled totals (frames, bytes, IPv4, TCP, UDP, in, out, the applications' bytes summed)
  are within TOL of the true ones, and the first three hosts are the three heaviest with
  bytes within TOL_HOST.
The tolerances: 1 frame in 10 of FRAMES is 4,000 frames counted; a figure made of m frames
counted has a relative error of about sqrt(1 + cv^2) / sqrt(m) (cv ~ 0.6 for these sizes),
under 2 % at m = 4,000 and under 6 % for the third host (~600 frames counted); TOL and
TOL_HOST are over three times that. Without the scaling every figure is ~10 % of the truth,
so the test fails. Its own temp folder; no network."""
import os
import random
import struct
import subprocess
import sys
import tempfile

FRAMES = 40000
TOL = 0.06
TOL_HOST = 0.15

agent = sys.argv[1]
rng = random.Random(2017)
HEAVY = [(0x0A010000 + 10 + i, w) for i, w in enumerate((16, 8, 4, 2, 1))]


def write_pcap(path):
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    truth = {"frames": 0, "bytes": 0, "tcp": 0, "udp": 0, "in": 0, "out": 0, "hosts": {}}
    weights = [w for _, w in HEAVY] + [9]  # the last: the crowd
    t = 1700000000
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k in range(FRAMES):
            pick = rng.choices(range(len(weights)), weights)[0]
            local = HEAVY[pick][0] if pick < len(HEAVY) else 0x0A010000 + 100 + rng.randrange(200)
            remote = 0xC6336400 + rng.randrange(250)  # 198.51.100.0/24
            out = rng.random() < 0.5
            src, dst = (local, remote) if out else (remote, local)
            wire = rng.randrange(60, 1515)
            tcp = rng.random() < 0.6
            l4 = 20 if tcp else 8
            payload = wire - 14 - 20 - l4
            ip = struct.pack("!BBHHHBBHII", 0x45, 0, wire - 14, k & 0xFFFF, 0, 64, 6 if tcp else 17,
                             0, src, dst)
            sport, dport = (40000 + local % 1000, 443) if out else (443, 40000 + local % 1000)
            if tcp:
                seg = struct.pack("!HHIIBBHHH", sport, dport, 1000 + k * 1500, 1, 0x50, 0x10,
                                  65535, 0, 0)
            else:
                seg = struct.pack("!HHHH", sport, dport, 8 + payload, 0)
            frame = eth + ip + seg + bytes(payload)
            assert len(frame) == wire
            f.write(struct.pack("<IIII", t + k // 1000, (k % 1000) * 1000, wire, wire))
            f.write(frame)
            truth["frames"] += 1
            truth["bytes"] += wire
            truth["tcp" if tcp else "udp"] += wire
            truth["out" if out else "in"] += wire
            for a in (src, dst):
                truth["hosts"][a] = truth["hosts"].get(a, 0) + wire
    return truth


def kv(line):
    return dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)


def run(tmp, pcap, sampling):
    cfg = os.path.join(tmp, f"agent{sampling}.yaml")
    with open(cfg, "w") as f:
        f.write(f"id: sampling\nsite: lab\ncapture:\n  file: {pcap}\n  sampling: {sampling}\n"
                "  local_networks: [10.1.0.0/16]\n  top_n: 5\n")
    out = subprocess.run([agent, "-c", cfg, "--capture-once", pcap], capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"kaaval-agent (sampling {sampling}) failed: {out.stderr}")
    fig = {"hosts": [], "apps": 0}
    for line in out.stdout.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "capture":
            fig["capture"] = line
            fig.update({"frames_read": int(kv(line)["frames_read"])})
        elif w[0] in ("total", "ipv4") or (w[0] in ("transport", "dir") and len(w) > 1):
            name = w[0] if w[0] in ("total", "ipv4") else w[1]
            d = kv(line)
            fig[name] = (int(d["packets"]), int(d["bytes"]))
        elif w[0] == "host":
            d = kv(line)
            fig["hosts"].append((d["addr"], int(d["bytes"])))
        elif w[0] == "app":
            fig["apps"] += int(kv(line)["bytes"])
        elif w[0] == "apps":
            d = kv(line)
            fig["apps"] += int(d["pending_bytes"]) + int(d["unclassified_bytes"])
    return fig


def ip_text(a):
    return ".".join(str(b) for b in a.to_bytes(4, "big"))


def main():
    bad = []
    with tempfile.TemporaryDirectory(prefix="kvl-capture-sampling.") as tmp:
        pcap = os.path.join(tmp, "mix.pcap")
        truth = write_pcap(pcap)
        one = run(tmp, pcap, 1)
        ten = run(tmp, pcap, 10)
    want = {"total": (truth["frames"], truth["bytes"]), "ipv4": (truth["frames"], truth["bytes"]),
            "tcp": (None, truth["tcp"]), "udp": (None, truth["udp"]), "in": (None, truth["in"]),
            "out": (None, truth["out"])}
    for name, (frames, nbytes) in want.items():
        got = one.get(name, (0, 0))
        if got[1] != nbytes or (frames is not None and got[0] != frames):
            bad.append(f"sampling 1: {name} {got}, the pcap holds ({frames}, {nbytes})")
    if "sampling=10 scaled=10" not in ten.get("capture", ""):
        bad.append(f"sampling 10: the first line does not say it: {ten.get('capture')}")
    if ten.get("frames_read") != truth["frames"]:
        bad.append(f"sampling 10: frames_read {ten.get('frames_read')}, not {truth['frames']}")

    def near(what, got, true, tol):
        err = abs(got - true) / true
        print(f"{what}: estimated {got}, true {true} ({100 * err:.2f} % off, within "
              f"{100 * tol:.0f} %?)")
        if err > tol:
            bad.append(f"{what}: {got} is {100 * err:.1f} % off {true} (more than "
                       f"{100 * tol:.0f} %)")

    near("frames", ten.get("total", (0, 0))[0], truth["frames"], TOL)
    for name, (_, nbytes) in want.items():
        near(f"{name} bytes", ten.get(name, (0, 0))[1], nbytes, TOL)
    near("application bytes", ten["apps"], one["apps"], TOL)
    heaviest = sorted(truth["hosts"].items(), key=lambda x: -x[1])[:3]
    for rank, (addr, nbytes) in enumerate(heaviest):
        if rank >= len(ten["hosts"]) or ten["hosts"][rank][0] != ip_text(addr):
            bad.append(f"host {rank + 1}: {ten['hosts'][rank:rank + 1]}, the heaviest is "
                       f"{ip_text(addr)}")
            continue
        near(f"host {ip_text(addr)} bytes", ten["hosts"][rank][1], nbytes, TOL_HOST)
    for b in bad:
        print("FAIL:", b)
    if not bad:
        print("PASS: sampling 10 estimates the whole traffic within the stated tolerances")
    return 1 if bad else 0


sys.exit(main())
