#!/usr/bin/env python3
"""check_config_reference.py ROOT: the configuration reference (docs/configuration.md)
against the parsers' field tables.

Every key that a field table accepts ({"key", KVL_CFG_...} entries in the sources under
agent/, collector/ and common/) must appear as a key in one of the reference's YAML blocks,
and every key the YAML blocks show must be accepted by some table (or be one of the keys a
parser reads by hand, found as kvl_cfg_map_get(..., "key", ...)). Prints what is missing on
either side and exits 1 when anything is; prints `config_reference: N keys checked` and
exits 0 otherwise."""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "."
table_keys, hand_keys = set(), set()
for top in ("agent", "collector", "common"):
    for dirpath, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            if not f.endswith(".c"):
                continue
            text = open(os.path.join(dirpath, f), encoding="utf-8", errors="replace").read()
            table_keys.update(re.findall(r'\{\s*(?:\\\s*)?"([a-z_0-9]+)"\s*,\s*(?:\\\s*)?KVL_CFG_', text))
            hand_keys.update(re.findall(r'kvl_cfg_map_get\([^,]+,\s*"([a-z_0-9]+)"', text))

doc = open(os.path.join(root, "docs", "configuration.md"), encoding="utf-8").read()
doc_keys = set()
for block in re.findall(r"```yaml\n(.*?)```", doc, re.S):
    for line in block.split("\n"):
        code = line.split("#", 1)[0]
        # block keys ("key:" at the start, after an optional "- ") and flow keys ("{key: ")
        m = re.match(r"\s*(?:-\s+)?([a-z_0-9]+):(?:\s|$)", code)
        if m:
            doc_keys.add(m.group(1))
        doc_keys.update(re.findall(r"[{,]\s*([a-z_0-9]+):\s", code))

accepted = table_keys | hand_keys
missing_doc = sorted(table_keys - doc_keys)
unknown_doc = sorted(doc_keys - accepted)
for k in missing_doc:
    print(f"config_reference: key '{k}' is accepted by a field table but not documented in "
          "docs/configuration.md")
for k in unknown_doc:
    print(f"config_reference: key '{k}' is documented in docs/configuration.md but no parser "
          "accepts it")
if missing_doc or unknown_doc or not table_keys:
    sys.exit(1)
print(f"config_reference: {len(table_keys)} keys checked")
