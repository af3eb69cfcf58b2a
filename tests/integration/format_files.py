#!/usr/bin/env python3
"""format_files.py — the daemons' files as the tests rewrite them: CRC-32C as the daemons
compute it, and the format version of a file read, removed (the layout before versions) or
set, for tests/integration/test_format_versions.sh (test_damaged_logs.sh imports crc32c).

  format_files.py version KIND FILE      prints the file's format version (0: none)
  format_files.py unversion KIND FILE    rewrites it as it was before versions were kept
  format_files.py set KIND FILE N        rewrites it with format version N

KIND: seg (a segment log's 16-byte header: magic, u32 version, u32 CRC-32C of the 12 before),
defs (series.defs: 8-byte magic, u32 version; before versions, the frames alone), head (lines
"<CRC-32C, 8 hex> <JSON>" whose first is a head record with "format"), json (a JSON object
with "format"). Python 3 standard library only.
"""
import json
import struct
import sys


def crc32c(data):
    """CRC-32C (Castagnoli), bitwise."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def version(kind, raw):
    if kind in ("seg", "defs"):
        return struct.unpack("<I", raw[8:12])[0]
    if kind == "head":
        return json.loads(raw.split(b"\n", 1)[0][9:]).get("format", 0)
    return json.loads(raw).get("format", 0)


def rewrite(kind, raw, v):
    """The bytes of the file with format version v (None: the layout before versions)."""
    if kind == "seg":
        h = raw[:8] + struct.pack("<I", v)
        return h + struct.pack("<I", crc32c(h)) + raw[16:]
    if kind == "defs":
        return raw[12:] if v is None else raw[:8] + struct.pack("<I", v) + raw[12:]
    if kind == "head":
        first, rest = raw.split(b"\n", 1)
        doc = json.loads(first[9:])
    else:
        doc = json.loads(raw)
    doc.pop("format", None)
    if v is not None:
        doc["format"] = v
    text = json.dumps(doc, separators=(",", ":")).encode()
    if kind == "head":
        return b"%08x " % crc32c(text) + text + b"\n" + rest
    return text


def main(argv):
    op, kind, path = argv[1], argv[2], argv[3]
    with open(path, "rb") as f:
        raw = f.read()
    if op == "version":
        print(version(kind, raw))
        return 0
    out = rewrite(kind, raw, None if op == "unversion" else int(argv[4]))
    with open(path, "wb") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
