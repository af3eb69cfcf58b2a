#!/usr/bin/env python3
"""make_pcap.py OUT.pcap OUT.json: writes a pcap of known traffic with scapy and, beside it,
what the test knows about it because it made it.

The traffic (Ethernet, timestamps set here): clients in 10.1.0.0/16 and 2001:db8:1::/48 (the
local networks) talking to servers outside; TCP sessions whose SYN -> SYN-ACK and
SYN-ACK -> ACK gaps are drawn here per server port; data segments, some re-sent
(retransmissions), some sessions ended by RST and a SYN refused with RST; DNS and NTP over
UDP; frames with an 802.1Q tag and with QinQ tags (802.1ad + 802.1Q); IPv6 with hop-by-hop and
destination-options headers; IPv4 and IPv6 fragments; ARP; traffic between two local hosts and
between two remote ones; and malformed frames (IPv4 IHL below 5, a TCP data offset below 5, a
TCP option of length 0, an IP length beyond the frame).

The JSON holds, from the frames as written: the frames and bytes by IP version, transport and
direction, the malformed frames, the retransmissions and resets, the tagged frames and the
later fragments, the handshake times put in per server port (seconds), and per application
nDPI should name (DNS: exact frames and bytes; HTTP and TLS: the named session's frames, and
beside them those of the other connections to ports 80 and 443, which nDPI may name by port
when they close), and the names nDPI should read (HTTP Host, TLS server name, DNS query) with
their connections."""
import ipaddress
import json
import random
import struct
import sys

from scapy.all import (ARP, DNS, DNSQR, DNSRR, IP, UDP, TCP, Dot1AD, Dot1Q, Ether, ICMP,
                       IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, Raw, fragment, fragment6,
                       IPv6ExtHdrFragment, ICMPv6EchoRequest, wrpcap)
from scapy.layers.tls.all import TLS, TLSClientHello
from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName

LOCAL = [ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("2001:db8:1::/48")]
rng = random.Random(17)
frames = []  # (time, scapy packet)
exp = {"total": [0, 0], "non_ip": [0, 0], "ipv4": [0, 0], "ipv6": [0, 0],
       "dir": {d: [0, 0] for d in ("in", "out", "internal", "external")},
       "transport": {t: [0, 0] for t in ("tcp", "udp", "icmp", "other")},
       "malformed": 0, "retransmissions": 0, "resets": 0, "tagged": 0, "later_fragments": 0,
       "handshakes": {}, "apps": {}, "apps_guess": {}, "names": {}}


def local(a):
    ip = ipaddress.ip_address(a)
    return any(ip in n for n in LOCAL)


def add(t, p, ip=True, malformed=False):
    """One frame at time t; ip: whether it counts as an IP frame (addresses usable)."""
    n = len(bytes(p))
    frames.append((t, p))
    exp["total"][0] += 1
    exp["total"][1] += n
    if malformed:
        exp["malformed"] += 1
    if p.haslayer(Dot1Q) or p.haslayer(Dot1AD):
        exp["tagged"] += 1
    if not ip:
        exp["non_ip"][0] += 1
        exp["non_ip"][1] += n
        return
    l3 = p[IP] if p.haslayer(IP) else p[IPv6]
    ver = "ipv4" if p.haslayer(IP) else "ipv6"
    exp[ver][0] += 1
    exp[ver][1] += n
    ls, ld = local(l3.src), local(l3.dst)
    d = "internal" if ls and ld else "out" if ls else "in" if ld else "external"
    exp["dir"][d][0] += 1
    exp["dir"][d][1] += n
    if ver == "ipv4":
        proto = l3.proto
        if l3.frag > 0:
            exp["later_fragments"] += 1
    else:
        proto = l3.nh
        h = l3.payload
        for _ in range(8):
            if isinstance(h, (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)):
                if isinstance(h, IPv6ExtHdrFragment) and h.offset > 0:
                    exp["later_fragments"] += 1
                proto = h.nh
                h = h.payload
    tr = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}.get(proto, "other")
    exp["transport"][tr][0] += 1
    exp["transport"][tr][1] += n


def eth0():
    return Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04")


def hs_record(port, srv, cli):
    h = exp["handshakes"].setdefault(str(port), {"server": [], "client": []})
    h["server"].append(srv)
    if cli is not None:
        h["client"].append(cli)


def l3(src, dst):
    return IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst, ttl=64)


def tcp_session(t, cli, srv, cport, sport, srv_s, cli_s, data=(), resend=(), end="fin",
                tag=None, app=None):
    """A TCP session from t; data: payload sizes (or bytes), client first then alternating;
    resend: indexes of data segments sent twice; app: the application name nDPI should give
    it (all its frames counted in exp["apps"][app]). Returns the time it ended."""
    first = exp["total"][0]
    def eth():
        e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        if tag == "vlan":
            e = e / Dot1Q(vlan=100)
        elif tag == "qinq":
            e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x88a8) / \
                Dot1AD(vlan=300) / Dot1Q(vlan=20)
        return e
    cseq, sseq = rng.randrange(1 << 32), rng.randrange(1 << 32)
    opts = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
    add(t, eth() / l3(cli, srv) / TCP(sport=cport, dport=sport, flags="S", seq=cseq,
                                      options=opts))
    t += srv_s
    add(t, eth() / l3(srv, cli) / TCP(sport=sport, dport=cport, flags="SA", seq=sseq,
                                      ack=cseq + 1, options=opts))
    t += cli_s
    cseq += 1
    sseq += 1
    add(t, eth() / l3(cli, srv) / TCP(sport=cport, dport=sport, flags="A", seq=cseq, ack=sseq))
    hs_record(sport, srv_s, cli_s)
    for i, size in enumerate(data):
        t += 0.001
        from_cli = i % 2 == 0
        a, b, pa, pb = (cli, srv, cport, sport) if from_cli else (srv, cli, sport, cport)
        seq, ack = (cseq, sseq) if from_cli else (sseq, cseq)
        payload = size if isinstance(size, bytes) else bytes(rng.randrange(256)
                                                             for _ in range(size))
        size = len(payload)
        p = eth() / l3(a, b) / TCP(sport=pa, dport=pb, flags="PA", seq=seq, ack=ack) / \
            Raw(payload)
        add(t, p)
        if i in resend:
            t += 0.2
            add(t, p.copy())
            exp["retransmissions"] += 1
        if from_cli:
            cseq = (cseq + size) % (1 << 32)
        else:
            sseq = (sseq + size) % (1 << 32)
    t += 0.001
    if end == "fin":
        add(t, eth() / l3(cli, srv) / TCP(sport=cport, dport=sport, flags="FA", seq=cseq,
                                          ack=sseq))
        add(t + 0.0005, eth() / l3(srv, cli) / TCP(sport=sport, dport=cport, flags="FA",
                                                   seq=sseq, ack=cseq + 1))
        add(t + 0.001, eth() / l3(cli, srv) / TCP(sport=cport, dport=sport, flags="A",
                                                  seq=cseq + 1, ack=sseq + 1))
    else:
        add(t, eth() / l3(srv, cli) / TCP(sport=sport, dport=cport, flags="RA", seq=sseq,
                                          ack=cseq))
        exp["resets"] += 1
    n = exp["total"][0] - first
    if app is not None:
        # the whole connection: its frames before the decision join it in the interval
        lo, hi = exp["apps"].setdefault(app, [0, 0])
        exp["apps"][app] = [lo + n, hi + n]
    elif sport in (80, 443):
        # nDPI decides an unnamed connection when it closes, by its port: one to 80 or 443
        # may count as HTTP or TLS, whole
        name = "HTTP" if sport == 80 else "TLS"
        exp["apps_guess"][name] = exp["apps_guess"].get(name, 0) + n
    return t + 0.002


def main():
    out_pcap, out_json = sys.argv[1], sys.argv[2]
    t = 1700000000.0
    clients = ["10.1.0.%d" % i for i in range(10, 16)]
    servers = {443: "192.0.2.10", 80: "198.51.100.20", 22: "203.0.113.5", 8443: "192.0.2.11"}
    # Handshake times per port, in milliseconds, drawn once: the server side slower.
    port_ms = {443: (8, 40), 80: (2, 15), 22: (30, 90), 8443: (1, 4)}
    cport = 40000
    for n in range(40):
        port = [443, 80, 22, 8443][n % 4]
        lo, hi = port_ms[port]
        srv_s = round(rng.uniform(lo, hi)) / 1000.0
        cli_s = round(rng.uniform(0.1, 3.0), 4) / 1000.0
        data = [rng.choice([80, 300, 1200, 1448]) for _ in range(rng.randrange(2, 8))]
        resend = {1} if n % 5 == 0 else set()
        tag = "vlan" if n % 7 == 3 else "qinq" if n % 7 == 5 else None
        t = tcp_session(t, clients[n % len(clients)], servers[port], cport, port, srv_s,
                        cli_s, data, resend, "rst" if n % 6 == 1 else "fin", tag)
        cport += 1
        t += 0.01
    # IPv6 sessions with their own port.
    for n in range(6):
        srv_s = (5 + 3 * n) / 1000.0
        t = tcp_session(t, "2001:db8:1::%x" % (16 + n), "2001:db8:99::1", 50000 + n, 993,
                        srv_s, 0.0005, [200, 900])
    # Sessions nDPI can name: an HTTP GET and a TLS ClientHello with a server name.
    get = b"GET /services HTTP/1.1\r\nHost: portal.kerala.gov.in\r\nUser-Agent: test\r\n\r\n"
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"
    t = tcp_session(t, "10.1.0.14", "198.51.100.20", 46000, 80, 0.004, 0.0003, [get, ok],
                    app="HTTP")
    hello = bytes(TLS(msg=[TLSClientHello(ext=[TLS_Ext_ServerName(
        servernames=[ServerName(servername=b"portal.kerala.gov.in")])])]))
    t = tcp_session(t, "10.1.0.15", "192.0.2.10", 46001, 443, 0.009, 0.0004, [hello, 600],
                    app="TLS")
    exp["names"]["portal.kerala.gov.in"] = 2  # the HTTP Host and the TLS server name
    # A SYN refused: RST from the server, no handshake.
    add(t, eth0() / IP(src="10.1.0.10", dst="192.0.2.10") / TCP(sport=45000, dport=25,
                                                                  flags="S", seq=1))
    add(t + 0.003, eth0() / IP(src="192.0.2.10", dst="10.1.0.10") /
        TCP(sport=25, dport=45000, flags="RA", seq=0, ack=2))
    exp["resets"] += 1
    t += 0.01
    # DNS and NTP.
    dns = exp["apps"].setdefault("DNS", [0, 0])
    for n in range(10):
        q = eth0() / IP(src=clients[n % 6], dst="192.0.2.53") / UDP(sport=53000 + n, dport=53) / \
            DNS(id=n, rd=1, qd=DNSQR(qname="host%d.example.gov.in" % n))
        add(t, q)
        r = eth0() / IP(src="192.0.2.53", dst=clients[n % 6]) / UDP(sport=53, dport=53000 + n) / \
            DNS(id=n, qr=1, qd=DNSQR(qname="host%d.example.gov.in" % n),
                an=DNSRR(rrname="host%d.example.gov.in" % n, rdata="192.0.2.%d" % (100 + n)))
        add(t + 0.004, r)
        exp["names"]["host%d.example.gov.in" % n] = 1  # a query and its answer: one flow
        for f in (q, r):
            dns[0] += 1
            dns[1] += len(bytes(f))
        t += 0.02
    for n in range(4):
        add(t, eth0() / Dot1Q(vlan=5) / IP(src="10.1.0.2", dst="203.0.113.123") /
            UDP(sport=123, dport=123) / Raw(b"\x23" + b"\0" * 47))
        t += 0.01
    # IPv6 with hop-by-hop and destination options, UDP; an ICMPv6 echo.
    for n in range(3):
        add(t, eth0() / IPv6(src="2001:db8:1::20", dst="2001:db8:99::53") / IPv6ExtHdrHopByHop() /
            IPv6ExtHdrDestOpt() / UDP(sport=5000 + n, dport=53) / Raw(b"x" * 30))
        t += 0.01
    add(t, eth0() / IPv6(src="2001:db8:99::53", dst="2001:db8:1::20") / ICMPv6EchoRequest())
    # Fragments: a large UDP datagram in IPv4 and in IPv6.
    big = IP(src="10.1.0.11", dst="198.51.100.77", id=4242) / UDP(sport=7000, dport=2049) / \
        Raw(b"f" * 3000)
    for fr in fragment(big, fragsize=1200):
        add(t, eth0() / fr)
        t += 0.001
    big6 = IPv6(src="2001:db8:1::21", dst="2001:db8:99::2") / IPv6ExtHdrFragment(id=77) / \
        UDP(sport=7001, dport=2049) / Raw(b"g" * 2600)
    for fr in fragment6(big6, 1280):
        add(t, eth0() / fr)
        t += 0.001
    # ICMP, between local hosts, between remote hosts, and ARP.
    for n in range(3):
        add(t, eth0() / IP(src="10.1.0.10", dst="10.1.0.11") / ICMP(type=8, id=1, seq=n))
        add(t, eth0() / IP(src="10.1.0.11", dst="10.1.0.10") / ICMP(type=0, id=1, seq=n))
        add(t, eth0() / IP(src="192.0.2.200", dst="198.51.100.200") / UDP(sport=1, dport=2))
        t += 0.01
    add(t, Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.1.0.1", pdst="10.1.0.10"), ip=False)
    # GRE with an IPv4 inside: counted by both tshark (as two conversations) and kaaval
    # (the inner one): left out here, covered by the decoder's unit tests.
    # Malformed frames.
    hdr = bytes(Ether(src="02:00:00:00:00:09", dst="02:00:00:00:00:02", type=0x0800))
    good = bytes(IP(src="10.1.0.12", dst="192.0.2.10") / TCP(sport=41000, dport=443, flags="A"))
    ihl3 = bytearray(good)
    ihl3[0] = 0x43
    add(t, Ether(hdr + bytes(ihl3)), ip=False, malformed=True)
    off2 = bytearray(good)
    off2[20 + 12] = 0x20
    add(t + 0.001, Ether(hdr + bytes(off2)), malformed=True)
    loop = bytes(IP(src="10.1.0.12", dst="192.0.2.10") /
                 TCP(sport=41001, dport=443, flags="A", options=[("NOP", None)] * 4))
    loop = bytearray(loop)
    loop[20 + 20:20 + 24] = bytes([5, 0, 1, 1])
    add(t + 0.002, Ether(hdr + bytes(loop)), malformed=True)
    long_ip = bytearray(good)
    long_ip[2:4] = struct.pack("!H", 400)
    add(t + 0.003, Ether(hdr + bytes(long_ip)), malformed=True)
    frames.sort(key=lambda f: f[0])
    pkts = []
    for tm, p in frames:
        p.time = tm
        pkts.append(p)
    wrpcap(out_pcap, pkts)
    with open(out_json, "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
