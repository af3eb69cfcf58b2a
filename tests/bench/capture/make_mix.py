#!/usr/bin/env python3
"""make_mix.py OUT.pcap FRAMES: an enterprise-like traffic mix for tests/bench/capture, written
with struct (fast: about a million frames in a few seconds), deterministic (seeded).

Sessions between 2,000 local clients (10.20.0.0/16) and 500 servers outside, by share of
sessions: HTTPS 40 % (handshake, a TLS ClientHello with a server name, responses of 1,448
bytes, FIN), HTTP 15 % (GET, a few responses), DNS 20 % (query and answer over UDP),
QUIC 10 % (UDP 443, datagrams of 1,200 bytes), SMB and RDP 15 % (TCP 445 and 3389, mixed
sizes). Frames carry no checksums (no tool here checks them)."""
import random
import struct
import sys

out, want = sys.argv[1], int(sys.argv[2])
rng = random.Random(4242)
ETH = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
clients = [0x0A140000 + i for i in range(1, 2001)]
servers = [0xC6336400 + (i % 250) if i < 250 else 0xCB007100 + (i % 250) for i in range(500)]


def ip(src, dst, proto, payload):
    return struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, src,
                       dst) + payload


def tcp(sp, dp, seq, ack, flags, data=b""):
    return struct.pack("!HHIIBBHHH", sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags,
                       65535, 0, 0) + data


def udp(sp, dp, data):
    return struct.pack("!HHHH", sp, dp, 8 + len(data), 0) + data


def client_hello(name):
    sni = name.encode()
    ext_sni = struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    exts = ext_sni + struct.pack("!HH", 0x000b, 2) + b"\x01\x00"
    body = b"\x03\x03" + bytes(rng.getrandbits(8) for _ in range(32)) + b"\x00" + \
        struct.pack("!H", 4) + b"\x13\x01\x13\x02" + b"\x01\x00" + struct.pack("!H", len(exts)) + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def dns(qid, name, answer=False):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"
    if not answer:
        return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q
    return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q + \
        b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([198, 51, 100, 7])


frames = []


def tcp_session(c, s, cp, sp, first, replies):
    cs, ss = rng.getrandbits(32), rng.getrandbits(32)
    frames.append(ip(c, s, 6, tcp(cp, sp, cs, 0, 0x02)))
    frames.append(ip(s, c, 6, tcp(sp, cp, ss, cs + 1, 0x12)))
    frames.append(ip(c, s, 6, tcp(cp, sp, cs + 1, ss + 1, 0x10)))
    frames.append(ip(c, s, 6, tcp(cp, sp, cs + 1, ss + 1, 0x18, first)))
    cs += 1 + len(first)
    ss += 1
    for size in replies:
        frames.append(ip(s, c, 6, tcp(sp, cp, ss, cs, 0x10, bytes(size))))
        ss += size
    frames.append(ip(c, s, 6, tcp(cp, sp, cs, ss, 0x11)))
    frames.append(ip(s, c, 6, tcp(sp, cp, ss, cs + 1, 0x11)))


port = 20000
while len(frames) < want:
    c, s = rng.choice(clients), rng.choice(servers)
    port = port + 1 if port < 65000 else 20000
    r = rng.random()
    if r < 0.40:
        tcp_session(c, s, port, 443, client_hello("app%d.example.gov.in" % rng.randrange(300)),
                    [1448] * rng.randrange(2, 8))
    elif r < 0.55:
        get = b"GET /p/%d HTTP/1.1\r\nHost: portal%d.example.gov.in\r\n\r\n" % (
            rng.randrange(10000), rng.randrange(50))
        tcp_session(c, s, port, 80, get, [1448] * rng.randrange(1, 5))
    elif r < 0.75:
        name = "h%d.example.gov.in" % rng.randrange(5000)
        qid = rng.getrandbits(16)
        frames.append(ip(c, s, 17, udp(port, 53, dns(qid, name))))
        frames.append(ip(s, c, 17, udp(53, port, dns(qid, name, True))))
    elif r < 0.85:
        for _ in range(rng.randrange(3, 10)):
            frames.append(ip(c, s, 17, udp(port, 443, b"\xc3\x00\x00\x00\x01" + bytes(1195))))
            frames.append(ip(s, c, 17, udp(443, port, b"\x40" + bytes(1199))))
    else:
        sp = 445 if rng.random() < 0.5 else 3389
        tcp_session(c, s, port, sp, bytes(rng.randrange(60, 400)),
                    [rng.choice([100, 600, 1448]) for _ in range(rng.randrange(2, 6))])

with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for k, fr in enumerate(frames[:want]):
        frame = ETH + fr
        f.write(struct.pack("<IIII", 1700000000 + k // 100000, (k % 100000) * 10, len(frame),
                            len(frame)))
        f.write(frame)
