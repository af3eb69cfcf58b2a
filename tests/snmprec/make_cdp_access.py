#!/usr/bin/env python3
"""make_cdp_access.py — writes the project's own test device `cdp_access.snmprec` into a folder.

    python3 tests/snmprec/make_cdp_access.py OUT_DIR

None of the recorded walks in ../shared/testdata/snmprec has CDP, so the tests describe a
small access switch here, in code, with invented names and documentation addresses
(192.0.2.0/24): four interfaces (one down, one VLAN), three cdpCacheTable rows (a
distribution switch with its IPv4 address, a phone, an access point whose address is of an
unknown type), an LLDP neighbour whose local port is found by its lldpLocPortDesc, and the
switch's own LLDP chassis id and system name. Written at test time (the snmprec tests and
tests/integration/test_neighbours.sh), never committed as a walk.
"""
import os
import sys

# ifIndex: (ifDescr, ifName, ifType, oper status, ifAlias)
IFACES = {
    1: ("GigabitEthernet0/1", "Gi0/1", 6, 1, "uplink to dist-1"),
    2: ("GigabitEthernet0/2", "Gi0/2", 6, 2, ""),
    3: ("GigabitEthernet0/3", "Gi0/3", 6, 1, "phone"),
    4: ("Vlan1", "Vl1", 53, 1, ""),
}
# (ifIndex, device index): (address type, address hex, device id, port, platform)
CDP = {
    (1, 1): (1, "c0000201", "dist-1.example.net", "GigabitEthernet1/0/24", "Example DIST-48"),
    (3, 5): (1, "c0000242", "SEP00AA11BB22CC", "Port 1", "Example IP Phone"),
    (3, 6): (20, "0a0b", "ap-7", "GigabitEthernet0", "Example AP"),
}


def rows():
    r = {
        # the switch's own LLDP identity: chassis id subtype 4 (MAC), the MAC, system name
        "1.0.8802.1.1.2.1.3.1.0": "2|4",
        "1.0.8802.1.1.2.1.3.2.0": "4x|020000a11ce5",
        "1.0.8802.1.1.2.1.3.3.0": "4|cdp-access-1.example.net",
        # local port 101: id subtype 7 (local), id "101", description "Gi0/1" (= ifName 1)
        "1.0.8802.1.1.2.1.3.7.1.2.101": "2|7",
        "1.0.8802.1.1.2.1.3.7.1.3.101": "4|101",
        "1.0.8802.1.1.2.1.3.7.1.4.101": "4|Gi0/1",
        "1.3.6.1.2.1.1.1.0": "4|Example switch software, test recording",
        "1.3.6.1.2.1.1.2.0": "6|1.3.6.1.4.1.9.1.1",
        "1.3.6.1.2.1.1.3.0": "67|123456",
        "1.3.6.1.2.1.1.5.0": "4|cdp-access-1",
        "1.3.6.1.2.1.1.6.0": "4|test rack",
        "1.3.6.1.2.1.2.1.0": "2|%d" % len(IFACES),
    }
    # the LLDP neighbour on local port 101 (TimeMark 500, remote index 3)
    rem = "1.0.8802.1.1.2.1.4.1.1.%d.500.101.3"
    for col, val in ((4, "2|4"), (5, "4x|020000c0ffee"), (6, "2|5"), (7, "4|Gi1/0/24"),
                     (8, "4|to access-1"), (9, "4|dist-1.example.net"),
                     (10, "4|Example OS 1.0")):
        r[rem % col] = val
    r["1.0.8802.1.1.2.1.4.2.1.3.500.101.3.1.4.192.0.2.1"] = "2|2"
    if_, ifx = "1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1."
    for i, (descr, name, typ, oper, alias) in IFACES.items():
        r[if_ + "1.%d" % i] = "2|%d" % i
        r[if_ + "2.%d" % i] = "4|" + descr
        r[if_ + "3.%d" % i] = "2|%d" % typ
        r[if_ + "5.%d" % i] = "66|1000000000"
        r[if_ + "7.%d" % i] = "2|1"
        r[if_ + "8.%d" % i] = "2|%d" % oper
        r[if_ + "10.%d" % i] = "65|%d" % (1000 * i)
        r[if_ + "16.%d" % i] = "65|%d" % (2000 * i)
        r[ifx + "1.%d" % i] = "4|" + name
        r[ifx + "18.%d" % i] = "4|" + alias
    cdp = "1.3.6.1.4.1.9.9.23.1.2.1.1.%d.%d.%d"
    for (ifindex, idx), (atype, addr, dev, port, platform) in CDP.items():
        r[cdp % (3, ifindex, idx)] = "2|%d" % atype
        r[cdp % (4, ifindex, idx)] = "4x|" + addr
        r[cdp % (6, ifindex, idx)] = "4|" + dev
        r[cdp % (7, ifindex, idx)] = "4|" + port
        r[cdp % (8, ifindex, idx)] = "4|" + platform
    return r


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_cdp_access.py OUT_DIR")
    os.makedirs(sys.argv[1], exist_ok=True)
    r = rows()
    key = lambda oid: tuple(int(p) for p in oid.split("."))
    path = os.path.join(sys.argv[1], "cdp_access.snmprec")
    with open(path + ".tmp", "w") as f:
        for oid in sorted(r, key=key):
            f.write("%s|%s\n" % (oid, r[oid]))
    os.chmod(path + ".tmp", 0o644)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
