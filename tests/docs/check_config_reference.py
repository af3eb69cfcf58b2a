#!/usr/bin/env python3
"""check_config_reference.py ROOT: the configuration reference (docs/configuration.md)
against the parsers' field tables, and no key described or used anywhere else.

Every key that a field table accepts ({"key", KVL_CFG_...} entries in the sources under
agent/, collector/ and common/) must appear as a key in one of the reference's YAML blocks,
and every key the YAML blocks show must be accepted by some table (or be one of the keys a
parser reads by hand, found as kvl_cfg_map_get(..., "key", ...)).

The reference is the only place keys are described:
- a *_config.h header (agent/, collector/, common/) says what its C API does and points to
  docs/configuration.md; a comment line that looks like YAML (an indented `key:` or
  `- key:` line, or `key: value  # what it means`) is an error;
- README.md's YAML blocks and its inline `key: ...` snippets, and every key of
  packaging/examples/*.yaml, commented out or not, must be keys a parser accepts.

Prints what is wrong and exits 1 when anything is; prints `config_reference: N keys checked`
and exits 0 otherwise."""
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
problems = len(missing_doc) + len(unknown_doc)

BLOCK_KEY = re.compile(r"\s*(?:-\s+)?([a-z_0-9]+):(?:\s|$)")
FLOW_KEY = re.compile(r"[{,]\s*([a-z_0-9]+):\s")


def yaml_keys(code):
    """The keys a line of YAML (its comment removed) names."""
    keys = []
    m = BLOCK_KEY.match(code)
    if m:
        keys.append(m.group(1))
    keys.extend(FLOW_KEY.findall(code))
    return keys


def uncomment(line):
    """A YAML line without its trailing comment ('#' at the start or after a blank)."""
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0]


def unknown_keys(where, lineno, keys):
    global problems
    for k in keys:
        if k not in accepted:
            print(f"config_reference: {where}:{lineno}: key '{k}' is accepted by no parser")
            problems += 1


# Headers: C API only, no YAML in their comments.
# A YAML-looking comment line: an indented `key:` or a `- key:` line naming a key a parser
# accepts, or any `name: value  # comment` line.
YAML_KEY_LINE = re.compile(r"(?:\s{2,}|\s*-\s+)([a-z_0-9]+):(?:\s|$)")
YAML_ANNOTATED = re.compile(r"\s*(?:-\s+)?[a-z_0-9]+:\s+\S.*\s#\s")


def yaml_comment(body):
    m = YAML_KEY_LINE.match(body)
    return (m is not None and m.group(1) in accepted) or YAML_ANNOTATED.match(body) is not None


for top in ("agent", "collector", "common"):
    for dirpath, _, files in os.walk(os.path.join(root, top)):
        for f in sorted(files):
            if not f.endswith("_config.h"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            in_comment = False
            with open(os.path.join(dirpath, f), encoding="utf-8", errors="replace") as fh:
                for n, line in enumerate(fh, 1):
                    stripped = line.strip()
                    starts = stripped.startswith("/*")
                    if in_comment or starts:
                        body = re.sub(r"^\s*(?:/\*+|\*(?!/))", "", line.rstrip("\n"))
                        body = body[1:] if body.startswith(" ") else body
                        if yaml_comment(body):
                            print(f"config_reference: {rel}:{n}: a header describes a YAML "
                                  "key; say it in docs/configuration.md and point there")
                            problems += 1
                    if starts:
                        in_comment = True
                    if "*/" in stripped:
                        in_comment = False

# README.md: its YAML blocks and inline `key: ...` snippets. Snippets of other things that
# look the same (a JSON field, a log line) are named here, each with what it is.
NOT_KEYS = {
    "cached": "a field of the capacity API's answer",
    "replay": "the module a collector's log line names",
}
# README.md: its YAML blocks and inline `key: ...` snippets.
readme = os.path.join(root, "README.md")
if os.path.exists(readme):
    lines = open(readme, encoding="utf-8").read().split("\n")
    fence = None
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence == "yaml":
            unknown_keys("README.md", n, yaml_keys(uncomment(line)))
        elif fence is None:
            for span in re.findall(r"`([^`]+)`", line):
                keys = yaml_keys(span) if BLOCK_KEY.match(span) else []
                unknown_keys("README.md", n, [k for k in keys if k not in NOT_KEYS])

# packaging/examples/*.yaml: every key, commented out or not.
examples = os.path.join(root, "packaging", "examples")
for f in sorted(os.listdir(examples)) if os.path.isdir(examples) else []:
    if not f.endswith(".yaml"):
        continue
    with open(os.path.join(examples, f), encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            code = re.sub(r"^(\s*)#\s?", r"\1", line.rstrip("\n"), count=1)
            unknown_keys(f"packaging/examples/{f}", n, yaml_keys(uncomment(code)))

if problems or not table_keys:
    sys.exit(1)
print(f"config_reference: {len(table_keys)} keys checked")
