#!/usr/bin/env python3
"""check_man_keys.py ROOT PAGE.scd...: the configuration files' man pages, as md2scd.py made
them from docs/configuration.md, name every key the parsers' field tables accept ({"key",
KVL_CFG_...} entries under agent/, collector/ and common/), so a key cannot get lost on the
way from the reference to the pages. Prints each key missing and exits 1 when one is;
prints `man_keys: N keys in the pages` and exits 0 otherwise."""
import os
import re
import sys


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: check_man_keys.py ROOT PAGE.scd...\n")
        return 2
    root, pages = sys.argv[1], sys.argv[2:]
    keys = set()
    for top in ("agent", "collector", "common"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith(".c"):
                    with open(os.path.join(dirpath, f), encoding="utf-8",
                              errors="replace") as fh:
                        keys.update(re.findall(
                            r'\{\s*(?:\\\s*)?"([a-z_0-9]+)"\s*,\s*(?:\\\s*)?KVL_CFG_', fh.read()))
    words = set()
    for p in pages:
        with open(p, encoding="utf-8") as fh:
            words.update(re.findall(r"[a-z_0-9]+", fh.read().replace("\\", "")))
    missing = sorted(keys - words)
    for k in missing:
        print(f"man_keys: key '{k}' is accepted by a parser but named by no section 5 page")
    if missing or not keys:
        return 1
    print(f"man_keys: {len(keys)} keys in the pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
