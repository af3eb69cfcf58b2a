#!/usr/bin/env python3
"""walkfile.py — the one reader of recorded walks (snmpsim .snmprec files) for kaaval's tests.

Every test that works out from a recording what the agent must report asks this module, so
that there is one definition of a device's interfaces, not one per test:

  - tests/snmprec/check_device.py (one ctest per recording, field by field against
    `kaaval-agent --poll-once`) and tests/integration/test_all_devices.sh (every recording
    through agents and a collector into archives) import it;
  - tests/snmprec/test_walkfile.py checks it against small hand-written recordings;
  - by hand, `walkfile.py interfaces FILE.snmprec [--version 2c|1]` prints one line per
    interface the agent reports, "<ifIndex>\t<name>", in ifIndex order (names hold no tab
    or newline: control characters become spaces); `walkfile.py neighbours FILE.snmprec`
    one line per LLDP/CDP neighbour (neighbours(): the rules of agent/snmp/nbrwalk.h).

The file: lines "OID|TAG|VALUE", blank lines and "#" comments skipped; TAG 2 Integer,
4 OctetString, "4x" the same written in hex (any tag with "x": its value is hex bytes),
6 OID, 64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64; a tag with ":"
hands the OID to an snmpsim variation module, whose value is not fixed (ANY here).

The interfaces, exactly as the agent defines them (agent/snmp/ifwalk.c, agent/snmp/poller.c):
  - a row exists for an ifIndex when one of the columns the agent walks (WALKED below)
    holds a value the agent keeps: an OctetString in a string column (ifDescr, ifName,
    ifAlias), a non-negative Integer, Counter32, Gauge32, TimeTicks or Counter64 in a number
    column; a value of another type is ignored and makes no row. With SNMPv1 Counter64
    objects cannot be read (RFC 3584), so they are left out first;
  - strings are cleaned as the agent's clean_string does: cut at the first NUL, control
    characters (< 0x20, 0x7f) become spaces, a byte that does not start a well-formed UTF-8
    sequence (lead byte 0xc2-0xf4 followed by the right number of continuation bytes)
    becomes "?", leading and trailing spaces dropped; empty counts as absent;
  - the name is ifName, else ifDescr, else "if<ifIndex>"; a name several rows share (byte for
    byte) gets "#<ifIndex>" on each of them;
  - the device's `interfaces:` filters (all optional; see Filters) decide which are reported:
    include / exclude name globs (fnmatch, case-insensitive, on the name before "#"),
    include_types / exclude_types (ifType numbers; a row without ifType fails an include
    list and passes an exclude list), skip_admin_down (ifAdminStatus 2 left out).

Python 3 standard library only.
"""
import argparse
import fnmatch
import os
import re
import socket
import sys

IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)

NUMERIC_TAGS = {"2", "65", "66", "67", "70"}
OCTETS_TAG = "4"
U32 = 2**32 - 1
U64 = 2**64 - 1

# The columns the agent walks (agent/snmp/ifwalk.c, its `columns` table): ("if", n) in
# ifTable, ("x", n) in ifXTable. String columns: ifDescr, ifPhysAddress, ifName, ifAlias;
# every other one holds a number.
WALKED = {
    "if": {2, 3, 5, 6, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20},
    "x": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 18, 19},
}
STRING_COLUMNS = {("if", 2), ("if", 6), ("x", 1), ("x", 18)}

ANY = object()  # a value that exists but is not fixed (variation module, response time)


class Fail(Exception):
    """A recording that cannot be read, or cannot say what the agent must report."""


# --------------------------------------------------------------------------- reading --


class Value:
    """One recorded value: tag (without modifiers), the number or the bytes, or ANY."""

    __slots__ = ("tag", "num", "raw")

    def __init__(self, tag, num=None, raw=None):
        self.tag, self.num, self.raw = tag, num, raw


def parse_value(tag_text, text, where):
    """Returns the Value of one line's TAG|VALUE; raises Fail on a value of the wrong form."""
    variation = ":" in tag_text
    tag = tag_text.split(":", 1)[0]
    hexed = tag.endswith("x")
    if hexed:
        tag = tag[:-1]
    if not tag.isdigit():
        raise Fail("%s: tag %r is not a number" % (where, tag_text))
    if variation:
        return Value(tag, num=ANY if tag in NUMERIC_TAGS else None, raw=ANY)
    if hexed:
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise Fail("%s: %r is not hex" % (where, text))
    else:
        data = text.encode("utf-8", "surrogateescape")
    if tag not in NUMERIC_TAGS:
        return Value(tag, raw=data)
    if hexed:  # a number written as hex bytes: big-endian
        n = int.from_bytes(data, "big") if data else 0
    else:
        try:
            n = int(data.decode("ascii").strip())
        except ValueError:
            raise Fail("%s: %r is not a number (tag %s)" % (where, text, tag))
    lo, hi = {"2": (-(2**31), 2**31 - 1), "70": (0, U64)}.get(tag, (0, U32))
    if not lo <= n <= hi:
        raise Fail("%s: %d is out of range for tag %s" % (where, n, tag))
    return Value(tag, num=n)


def parse_snmprec(path):
    """Returns ({oid tuple: Value}, notes). Lines are 'OID|TAG|VALUE'; the value may hold '|'."""
    records, notes, prev = {}, [], None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split("|", 2)
            where = "%s:%d" % (os.path.basename(path), lineno)
            if len(parts) != 3 or not re.fullmatch(r"\.?[0-9]+(\.[0-9]+)*", parts[0]):
                raise Fail("%s: not an 'OID|TAG|VALUE' line: %r" % (where, line[:80]))
            oid = tuple(int(x) for x in parts[0].strip(".").split("."))
            if prev is not None and oid <= prev and not notes:
                notes.append("%s: OIDs not in increasing order (%s after %s): snmpsim will answer "
                             "GETNEXT out of order" % (where, parts[0], ".".join(map(str, prev))))
            prev = oid
            records[oid] = parse_value(parts[1], parts[2], where)
    return records, notes


def write_without_counter64(src, dst):
    """Copies a recording without its Counter64 (tag 70) lines: what a v1-only device holds."""
    with open(src, "rb") as f, open(dst, "wb") as o:
        for raw in f:
            parts = raw.split(b"|", 2)
            tag = parts[1].split(b":", 1)[0].rstrip(b"x") if len(parts) == 3 else b""
            if tag != b"70":
                o.write(raw)
    os.chmod(dst, 0o644)


def readme_count(folder, community):
    """The interface count the folder's README table gives for this recording, or None."""
    return readme_counts(folder).get(community)


def readme_counts(folder):
    """{community: interface count} from the README table: | `community` | ... | ... | N ..."""
    counts = {}
    try:
        with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r"\|\s*`([^`]+)`\s*\|([^|]*)\|([^|]*)\|\s*(\d+)\b", line)
                if m:
                    counts[m.group(1)] = int(m.group(4))
    except OSError:
        pass
    return counts


# --------------------------------------------------------------------------- strings --


def _utf8_len(b0):
    if b0 < 0x80:
        return 1
    if 0xC2 <= b0 <= 0xDF:
        return 2
    if 0xE0 <= b0 <= 0xEF:
        return 3
    if 0xF0 <= b0 <= 0xF4:
        return 4
    return 0


def as_text(data):
    """An OctetString as the agent shows it (its clean_string; see the file's header)."""
    if data is ANY:
        return ANY
    data = data.split(b"\0", 1)[0]
    out, i = bytearray(), 0
    while i < len(data):
        c = data[i]
        n = _utf8_len(c)
        ok = n > 0 and i + n <= len(data)
        ok = ok and all((data[i + k] & 0xC0) == 0x80 for k in range(1, n))
        if not ok:
            out += b"?"
            i += 1
        elif n == 1:
            out.append(0x20 if (c < 0x20 or c == 0x7F) else c)
            i += 1
        else:
            out += data[i:i + n]
            i += n
    return bytes(out).strip(b" ").decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- interfaces --


class Filters:
    """A device's `interfaces:` section (agent_config.h kvl_if_filter_t); empty by default."""

    def __init__(self, include=(), exclude=(), include_types=(), exclude_types=(),
                 skip_admin_down=False):
        self.include, self.exclude = list(include), list(exclude)
        self.include_types, self.exclude_types = list(include_types), list(exclude_types)
        self.skip_admin_down = skip_admin_down


class Interface:
    """One interface of a recording: ifindex, name (unique), base (name before "#"), row
    ({(table, column): Value}, only the values the agent keeps) and whether it is included."""

    __slots__ = ("ifindex", "name", "base", "row", "included")

    def __init__(self, ifindex, name, base, row, included):
        self.ifindex, self.name, self.base = ifindex, name, base
        self.row, self.included = row, included


def kept(table, col, val):
    """Whether the agent keeps this walked value (ifwalk.c kvl_ifrows_store)."""
    if (table, col) in STRING_COLUMNS:
        return val.tag == OCTETS_TAG
    if val.tag not in NUMERIC_TAGS or val.num is None:
        return False
    return val.num is ANY or val.num >= 0


def rows(records, version="2c"):
    """{ifIndex: {(table, column): Value}}: the rows a walk of this recording fills."""
    out = {}
    for oid, val in records.items():
        for table, entry in (("if", IF_ENTRY), ("x", IFX_ENTRY)):
            if len(oid) != len(entry) + 2 or oid[:len(entry)] != entry:
                continue
            col, idx = oid[-2], oid[-1]
            if col not in WALKED[table]:
                continue
            if version == "1" and val.tag == "70":
                continue  # Counter64: not readable with SNMPv1
            if kept(table, col, val):
                out.setdefault(idx, {})[(table, col)] = val
    return out


def num(row, col):
    """A number column's value (an int or ANY), or None when the row does not have it."""
    v = row.get(col)
    return None if v is None or v.tag not in NUMERIC_TAGS else v.num


def text(row, col):
    """A string column's cleaned text (or ANY), or None when absent or empty."""
    v = row.get(col)
    if v is None or v.tag != OCTETS_TAG:
        return None
    t = as_text(v.raw)
    return t if t is ANY or t else None


def mac(row):
    """ifPhysAddress as the agent reports it (label ifPhysAddress): lowercase hex bytes joined
    by ':' (at most 64 bytes), "" when the interface has none or an empty one; ANY from a
    variation module."""
    v = row.get(("if", 6))
    if v is None or v.tag != OCTETS_TAG:
        return ""
    if v.raw is ANY:
        return ANY
    return ":".join("%02x" % b for b in v.raw[:64])


def speed(row):
    """The speed label (ifSpeed in the agent's labels): ifHighSpeed x 10^6 when ifSpeed is
    absent or 4294967295, else ifSpeed (ifwalk.c kvl_ifrow_speed); None when neither."""
    high, low = num(row, ("x", 15)), num(row, ("if", 5))
    if high is not None and (low is None or low == U32):
        return high if high is ANY else high * 1000000
    return low


def _glob_in(globs, name):
    return any(fnmatch.fnmatchcase(name.lower(), g.lower()) for g in globs)


def _included(f, row, base):
    """ifwalk.c kvl_ifwalk_included(): whether the device's filters report this row."""
    iftype = num(row, ("if", 3))
    if f.include and not _glob_in(f.include, base):
        return False
    if _glob_in(f.exclude, base):
        return False
    if f.include_types and not (iftype is not None and iftype in f.include_types):
        return False
    if iftype is not None and iftype in f.exclude_types:
        return False
    if f.skip_admin_down and num(row, ("if", 7)) == 2:
        return False
    return True


def all_interfaces(records, version="2c", filters=None):
    """Every interface of the recording, included or not, in ifIndex order."""
    f = filters or Filters()
    table = rows(records, version)
    names = {}
    for idx, row in table.items():
        names[idx] = text(row, ("x", 1)) or text(row, ("if", 2)) or "if%d" % idx
        if names[idx] is ANY:
            raise Fail("ifIndex %d: ifName/ifDescr comes from a variation module; "
                       "cannot name the interface" % idx)
    count = {}
    for n in names.values():
        count[n] = count.get(n, 0) + 1
    out = []
    for idx in sorted(table):
        base = names[idx]
        name = base if count[base] == 1 else "%s#%d" % (base, idx)
        out.append(Interface(idx, name, base, table[idx], _included(f, table[idx], base)))
    return out


def interfaces(records, version="2c", filters=None):
    """The interfaces the agent reports for this recording, in ifIndex order."""
    return [i for i in all_interfaces(records, version, filters) if i.included]


# --------------------------------------------------------------------------- neighbours --

# LLDP-MIB and CISCO-CDP-MIB tables the agent walks at discovery (agent/snmp/nbrwalk.h states
# the same rules; this is their second, independent reading).
LLDP_LOC_PORT = (1, 0, 8802, 1, 1, 2, 1, 3, 7, 1)
LLDP_REM = (1, 0, 8802, 1, 1, 2, 1, 4, 1, 1)
LLDP_MAN = (1, 0, 8802, 1, 1, 2, 1, 4, 2, 1)
CDP_CACHE = (1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 2, 1, 1)
NBR_MAX, NBR_PORTS_MAX, NBR_TEXT_MAX, NBR_DESC_MAX = 1024, 4096, 255, 128
NBR_LABELS = ("protocol", "local_port", "local_ifindex", "local_if", "chassis_id",
              "chassis_id_subtype", "sys_name", "port_id", "port_id_subtype", "port_desc",
              "mgmt_addr", "sys_desc")


def _cut(t, limit):
    """A cleaned text cut to `limit` bytes at a character boundary, trailing spaces dropped."""
    if t is ANY:
        return ANY
    b = t.encode("utf-8", "surrogateescape")
    if len(b) > limit:
        n = limit
        while n > 0 and (b[n] & 0xC0) == 0x80:
            n -= 1
        b = b[:n]
    return b.decode("utf-8", "surrogateescape").rstrip(" ")


def _hex(raw):
    return ":".join("%02x" % c for c in raw[:(NBR_TEXT_MAX + 1) // 3])


def render_id(chassis, subtype, raw):
    """An LLDP chassis id (chassis True) or port id by its subtype: MAC (chassis 4, port 3)
    of 6 bytes as aa:bb:..; network address (chassis 5, port 4) of family 1 + 4 bytes or 2 +
    16 bytes as IPv4/IPv6; else the text when every byte is printable ASCII, else hex."""
    if raw is ANY:
        return ANY
    mac_st, net_st = (4, 5) if chassis else (3, 4)
    if subtype == mac_st and len(raw) == 6:
        return _hex(raw)
    if subtype == net_st and len(raw) == 5 and raw[0] == 1:
        return socket.inet_ntop(socket.AF_INET, raw[1:])
    if subtype == net_st and len(raw) == 17 and raw[0] == 2:
        return socket.inet_ntop(socket.AF_INET6, raw[1:])
    if all(0x20 <= c <= 0x7E for c in raw):
        return _cut(as_text(raw), NBR_TEXT_MAX)
    return _hex(raw)


def _small_int(v):
    if v.tag in ("2", "65", "66") and v.num is not ANY and v.num is not None and \
            0 <= v.num <= 255:
        return v.num
    return -1


def _table(records, entry):
    """(column, index tuple, Value) of a table, in OID order (the walk's order)."""
    n = len(entry)
    for oid in sorted(o for o in records if len(o) >= n + 2 and o[:n] == entry):
        yield oid[n], oid[n + 1:], records[oid]


LLDP_LOC_SYS = (1, 0, 8802, 1, 1, 2, 1, 3)  # lldpLocalSystemData: .1.0, .2.0, .3.0


def lldp_local(records, version="2c"):
    """The device's own LLDP identity as the agent reports it (labels of its neighbour list):
    lldp_chassis_id (rendered like a neighbour's), lldp_chassis_id_subtype, lldp_sys_name;
    "" for what is missing. One GET of the three: with SNMPv1 a missing one fails it whole."""
    vals = [records.get(LLDP_LOC_SYS + (i, 0)) for i in (1, 2, 3)]
    out = {"lldp_chassis_id": "", "lldp_chassis_id_subtype": "", "lldp_sys_name": ""}
    if version == "1" and any(v is None for v in vals):
        return out
    st = _small_int(vals[0]) if vals[0] is not None else -1
    if st >= 0:
        out["lldp_chassis_id_subtype"] = str(st)
    if vals[1] is not None and _octets(vals[1]):
        out["lldp_chassis_id"] = render_id(True, st, vals[1].raw)
    if vals[2] is not None and _octets(vals[2]):
        out["lldp_sys_name"] = _cut(as_text(vals[2].raw), NBR_TEXT_MAX)
    return out


def _octets(v):
    return v.tag == OCTETS_TAG


def neighbours(records, version="2c"):
    """The neighbours the agent reports for this recording: {instance: {label: value}}, as
    agent/snmp/nbrwalk.h defines them (instance "lldp.<port>.<RemIndex>" / "cdp.<ifIndex>.
    <DeviceIndex>"; labels NBR_LABELS; values cleaned and cut; local interface by PortId,
    then PortDesc against ifName, ifDescr, ifAlias, else the port number as ifIndex)."""
    ports = {}
    for col, idx, v in _table(records, LLDP_LOC_PORT):
        if len(idx) != 1 or not 2 <= col <= 4:
            continue
        if idx[0] not in ports:
            if len(ports) >= NBR_PORTS_MAX:
                continue
            ports[idx[0]] = {"st": -1, "id": None, "desc": None}
        p = ports[idx[0]]
        if col == 2:
            p["st"] = _small_int(v)
        elif _octets(v) and col == 3:
            p["id"] = render_id(False, p["st"], v.raw)
        elif _octets(v):
            p["desc"] = _cut(as_text(v.raw), NBR_TEXT_MAX)

    rows_ = {}

    def row(proto, port, rem):
        key = (proto, port, rem)
        if key not in rows_:
            if len(rows_) >= NBR_MAX:
                return None
            rows_[key] = {"cst": -1, "pst": -1, "chassis_id": "", "port_id": "", "port_desc": "",
                          "sys_name": "", "sys_desc": "", "mgmt_addr": "", "fam": 0}
        return rows_[key]

    for col, idx, v in _table(records, LLDP_REM):
        if not 4 <= col <= 10:
            continue
        r = row(1, idx[1] if len(idx) == 3 else 0, idx[-1])
        if r is None:
            continue
        if col in (4, 6):
            r["cst" if col == 4 else "pst"] = _small_int(v)
        elif not _octets(v):
            continue
        elif col == 5:
            r["chassis_id"] = render_id(True, r["cst"], v.raw)
        elif col == 7:
            r["port_id"] = render_id(False, r["pst"], v.raw)
        elif col == 10:
            r["sys_desc"] = _cut(as_text(v.raw), NBR_DESC_MAX)
        else:
            r["port_desc" if col == 8 else "sys_name"] = _cut(as_text(v.raw), NBR_TEXT_MAX)
    for col, idx, v in _table(records, LLDP_MAN):
        n = len(idx)
        if n < 5 or idx[4] != n - 5 or n - 5 > 32 or any(b > 255 for b in idx[5:]):
            continue
        sub, addr = idx[3], bytes(idx[5:])
        if not ((sub == 1 and len(addr) == 4) or (sub == 2 and len(addr) == 16)):
            continue
        r = rows_.get((1, idx[1], idx[2]))
        if r is None:
            continue
        if r["fam"] == 0 or (r["fam"] == 2 and sub == 1):
            r["mgmt_addr"] = socket.inet_ntop(socket.AF_INET if sub == 1 else socket.AF_INET6,
                                              addr)
            r["fam"] = sub
    for col, idx, v in _table(records, CDP_CACHE):
        if len(idx) != 2 or col not in (3, 4, 6, 7, 8):
            continue
        r = row(2, idx[0], idx[1])
        if r is None:
            continue
        if col == 3:
            r["fam"] = 1 if _small_int(v) == 1 else 0xFF
            if r["fam"] != 1:
                r["mgmt_addr"] = ""
        elif not _octets(v):
            continue
        elif col == 4:
            if r["fam"] == 1 and v.raw is not ANY and len(v.raw) == 4:
                r["mgmt_addr"] = socket.inet_ntop(socket.AF_INET, v.raw)
        elif col == 6:
            r["chassis_id"] = r["sys_name"] = _cut(as_text(v.raw), NBR_TEXT_MAX)
        elif col == 7:
            r["port_id"] = _cut(as_text(v.raw), NBR_TEXT_MAX)
        else:
            r["sys_desc"] = _cut(as_text(v.raw), NBR_DESC_MAX)

    ifs = all_interfaces(records, version)
    by_index = {i.ifindex: i for i in ifs}

    def local(proto, port):
        if port == 0:
            return None
        if proto == 1 and port in ports:
            for key in (ports[port]["id"], ports[port]["desc"]):
                if not key or key is ANY:
                    continue
                for c in (("x", 1), ("if", 2), ("x", 18)):
                    for i in ifs:  # ifIndex order: the lowest first
                        if text(i.row, c) == key:
                            return i
        return by_index.get(port)

    out = {}
    for (proto, port, rem), r in sorted(rows_.items()):
        name = "lldp" if proto == 1 else "cdp"
        i = local(proto, port)
        out["%s.%d.%d" % (name, port, rem)] = {
            "protocol": name,
            "local_port": str(port) if port else "",
            "local_ifindex": str(i.ifindex) if i else "",
            "local_if": i.name if i else "",
            "chassis_id": r["chassis_id"],
            "chassis_id_subtype": str(r["cst"]) if r["cst"] >= 0 else "",
            "sys_name": r["sys_name"],
            "port_id": r["port_id"],
            "port_id_subtype": str(r["pst"]) if r["pst"] >= 0 else "",
            "port_desc": r["port_desc"],
            "mgmt_addr": r["mgmt_addr"],
            "sys_desc": r["sys_desc"],
        }
    return out


# --------------------------------------------------------------------------- command line --


def main(argv):
    ap = argparse.ArgumentParser(description="Reads a recorded walk as kaaval's tests do.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("interfaces", help="the interfaces the agent reports: <ifIndex>\\t<name>")
    p.add_argument("file")
    p.add_argument("--version", default="2c", choices=["1", "2c", "3"])
    p = sub.add_parser("neighbours", help="the LLDP/CDP neighbours the agent reports: "
                       "<instance>\t<label>=<value>... (tab-separated)")
    p.add_argument("file")
    p.add_argument("--version", default="2c", choices=["1", "2c", "3"])
    a = ap.parse_args(argv)
    try:
        records, _notes = parse_snmprec(a.file)
        if a.cmd == "neighbours":
            nbrs = neighbours(records, a.version)
        else:
            ifs = interfaces(records, a.version)
    except (Fail, OSError) as e:
        sys.stderr.write("walkfile.py: %s\n" % e)
        return 1
    out = sys.stdout.buffer
    if a.cmd == "neighbours":
        for inst, labels in nbrs.items():
            out.write(("%s\t%s\n" % (inst, "\t".join("%s=%s" % (k, labels[k])
                                                     for k in NBR_LABELS))).encode(
                "utf-8", "surrogateescape"))
        return 0
    for i in ifs:
        out.write(b"%d\t%s\n" % (i.ifindex, i.name.encode("utf-8", "surrogateescape")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
