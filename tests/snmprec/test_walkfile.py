#!/usr/bin/env python3
"""test_walkfile.py — walkfile.py (the one reader of recorded walks) against small
hand-written recordings whose interfaces are known: value types and hex encodings, which
rows the agent sees, names (ifName, ifDescr, "if<ifIndex>", "#<ifIndex>"), string cleaning,
SNMPv1 without Counter64, the device filters, and the command line.

    python3 tests/snmprec/test_walkfile.py        # ctest: snmprec_walkfile (labels unit, snmprec)

Python 3 standard library only.
"""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import walkfile  # noqa: E402
from walkfile import ANY, Fail, Filters  # noqa: E402

IF = "1.3.6.1.2.1.2.2.1."
IFX = "1.3.6.1.2.1.31.1.1.1."

# A switch with two named ports, three l2vlan interfaces (ifType 135) that have neither
# ifDescr nor ifName (as some devices record them), and rows the agent must not see.
SWITCH = "\n".join([
    "1.3.6.1.2.1.1.3.0|67|12345",
    IF + "2.1|4|GigabitEthernet1/0/1",
    IF + "2.2|4x|4769676162697445746865726e6574312f302f3200",  # ...1/0/2 then NUL
    IF + "2.7|64|10.0.0.1",                  # IpAddress in ifDescr: ignored, no row
    IF + "3.1|2|6",
    IF + "3.2|2|6",
    IF + "3.100|2|135",
    IF + "3.101|2|135",
    IF + "3.102|2|135",
    IF + "4.8|2|1500",                       # ifMtu is not walked: no row for 8
    IF + "7.1|2|1",
    IF + "7.2|2|2",
    IF + "7.100|2|1",
    IF + "7.101|2|1",
    IF + "7.102|2|2",
    IF + "8.9|2|-1",                         # a negative Integer: ignored, no row for 9
    IF + "10.100|65|77",
    IFX + "1.1|4|Gi1/0/1",
    IFX + "1.2|4|  Gi1/0/2\t",               # spaces trimmed, the tab becomes one
    IFX + "6.101|70|5000000000",
    IFX + "6.103|70|42",                     # only a Counter64: a row in v2c, none in v1
    "",
])


def write(tmp, text, name="dev.snmprec"):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class WalkfileTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="kvl-walkfile.")
        self.path = write(self.tmp.name, SWITCH)
        self.records, self.notes = walkfile.parse_snmprec(self.path)

    def tearDown(self):
        self.tmp.cleanup()

    def names(self, version="2c", filters=None):
        return [(i.ifindex, i.name) for i in walkfile.interfaces(self.records, version, filters)]

    def test_l2vlan_without_names_are_interfaces(self):
        self.assertEqual(self.names(), [(1, "Gi1/0/1"), (2, "Gi1/0/2"), (100, "if100"),
                                        (101, "if101"), (102, "if102"), (103, "if103")])
        self.assertEqual(self.notes, [])

    def test_v1_leaves_counter64_out(self):
        self.assertEqual([i for i, _ in self.names("1")], [1, 2, 100, 101, 102])
        row = {i.ifindex: i.row for i in walkfile.interfaces(self.records, "1")}[101]
        self.assertIsNone(walkfile.num(row, ("x", 6)))

    def test_values_and_encodings(self):
        r = self.records
        self.assertEqual(r[(1, 3, 6, 1, 2, 1, 1, 3, 0)].num, 12345)
        self.assertEqual(r[tuple(map(int, (IFX + "6.101").split(".")))].num, 5000000000)
        row = {i.ifindex: i.row for i in walkfile.interfaces(r)}[2]
        self.assertEqual(walkfile.text(row, ("if", 2)), "GigabitEthernet1/0/2")
        self.assertEqual(walkfile.num(row, ("if", 7)), 2)
        v = walkfile.parse_value("4x", "", "t")
        self.assertEqual(v.raw, b"")
        self.assertEqual(walkfile.parse_value("2x", "0100", "t").num, 256)
        self.assertIs(walkfile.parse_value("70:numeric", "rate=1", "t").num, ANY)
        for tag, text in (("2", "2147483648"), ("65", "-1"), ("4x", "zz"), ("x", "1")):
            with self.assertRaises(Fail):
                walkfile.parse_value(tag, text, "t")

    def test_strings_cleaned_as_the_agent_does(self):
        self.assertEqual(walkfile.as_text(b" a\x01b\x7f "), "a b")
        self.assertEqual(walkfile.as_text(b"ab\x00cd"), "ab")
        self.assertEqual(walkfile.as_text(b"\xffx\xc3\xa9"), "?x\u00e9")
        self.assertEqual(walkfile.as_text(b"x\xe2\x82"), "x??")  # cut short
        self.assertEqual(walkfile.as_text(b"   "), "")

    def test_shared_names_get_the_ifindex(self):
        path = write(self.tmp.name, "\n".join([
            IF + "2.3|4|lo", IF + "2.4|4|lo", IF + "2.5|4|LO", IFX + "1.6|4|", IF + "2.6|4|lo",
            ""]), "dup.snmprec")
        recs, _ = walkfile.parse_snmprec(path)
        got = [(i.ifindex, i.name, i.base) for i in walkfile.interfaces(recs)]
        self.assertEqual(got, [(3, "lo#3", "lo"), (4, "lo#4", "lo"), (5, "LO", "LO"),
                               (6, "lo#6", "lo")])

    def test_filters(self):
        f = Filters(include=["GI*", "if10?"], exclude=["*3"])
        self.assertEqual([i for i, _ in self.names(filters=f)], [1, 2, 100, 101, 102])
        f = Filters(include_types=[135])
        self.assertEqual([i for i, _ in self.names(filters=f)], [100, 101, 102])
        f = Filters(exclude_types=[135])
        self.assertEqual([i for i, _ in self.names(filters=f)], [1, 2, 103])
        f = Filters(skip_admin_down=True)
        self.assertEqual([i for i, _ in self.names(filters=f)], [1, 100, 101, 103])

    def test_a_variation_name_cannot_be_checked(self):
        path = write(self.tmp.name, IFX + "1.1|4:writecache|value=x\n", "var.snmprec")
        recs, _ = walkfile.parse_snmprec(path)
        with self.assertRaises(Fail):
            walkfile.interfaces(recs)

    def test_bad_lines_fail_and_disorder_is_noted(self):
        with self.assertRaises(Fail):
            walkfile.parse_snmprec(write(self.tmp.name, "1.3.6|4\n", "bad.snmprec"))
        _, notes = walkfile.parse_snmprec(
            write(self.tmp.name, "1.3.6.2|2|1\n1.3.6.1|2|1\n", "order.snmprec"))
        self.assertEqual(len(notes), 1)

    def test_command_line(self):
        out = subprocess.run([sys.executable, os.path.join(HERE, "walkfile.py"), "interfaces",
                              self.path, "--version", "1"], stdout=subprocess.PIPE, check=True)
        self.assertEqual(out.stdout.decode().splitlines(),
                         ["1\tGi1/0/1", "2\tGi1/0/2", "100\tif100", "101\tif101", "102\tif102"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
