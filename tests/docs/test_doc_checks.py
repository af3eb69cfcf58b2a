#!/usr/bin/env python3
"""test_doc_checks.py: the documentation checks fail when they should. Each case builds a
small tree in its own temporary folder (a field table, a reference, a header, a README, an
example; a man page and a command printing its help) and runs check_config_reference.py or
check_man_options.py on it, expecting exit 0 for the clean tree and 1 for each fault."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "check_config_reference.py")
MAN = os.path.join(HERE, "check_man_options.py")
KEYS = os.path.join(HERE, "check_man_keys.py")

CLEAN = {
    "agent/x_config.c": '{"alpha", KVL_CFG_INT, 0}, {"beta", KVL_CFG_STR, 0},\n',
    "agent/x_config.h": "/*\n * x_config.h — the x keys (docs/configuration.md).\n *\n"
                        " *   kvl_x_cfg_init: sets the defaults\n */\n",
    "docs/configuration.md": "# ref\n\n```yaml\nalpha: 1   # a number\nbeta: b\n```\n",
    "README.md": "Set `alpha: 2`.\n\n```yaml\nalpha: 3\n```\n",
    "packaging/examples/agent.yaml": "# an example\nalpha: 1\n# beta: x   # commented out\n",
}

FAULTS = {
    "an undocumented key": ("docs/configuration.md", "# ref\n\n```yaml\nalpha: 1\n```\n"),
    "a documented key no table has": ("docs/configuration.md",
                                      "```yaml\nalpha: 1\nbeta: 2\ngamma: 3\n```\n"),
    "a header describing a key": ("agent/x_config.h",
                                  "/*\n * x_config.h\n *\n *   alpha: 1   # a number\n */\n"),
    "a header with a list item": ("agent/x_config.h", "/* the keys:\n * - beta: b\n */\n"),
    "a README block with an unknown key": ("README.md", "```yaml\nalpha: 1\ndelta: 4\n```\n"),
    "a README snippet with an unknown key": ("README.md", "Set `delta: 4`.\n"),
    "an example's key no parser has": ("packaging/examples/agent.yaml", "alpha: 1\nomega: 2\n"),
    "an example's commented key": ("packaging/examples/agent.yaml", "alpha: 1\n#  omega: 2\n"),
}


def write_tree(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def run(args):
    return subprocess.run([sys.executable] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30).returncode


def main():
    failed = []
    with tempfile.TemporaryDirectory(prefix="kvl-doc-checks-") as tmp:
        clean = os.path.join(tmp, "clean")
        write_tree(clean, CLEAN)
        if run([REF, clean]) != 0:
            failed.append("config_reference refused the clean tree")
        for i, (what, (rel, text)) in enumerate(FAULTS.items()):
            root = os.path.join(tmp, f"fault{i}")
            write_tree(root, dict(CLEAN, **{rel: text}))
            if run([REF, root]) != 1:
                failed.append(f"config_reference passed {what}")

        # man pages against a command's help
        prog = os.path.join(tmp, "prog.py")
        with open(prog, "w", encoding="utf-8") as f:
            f.write("print('usage: prog [--one] [--two N]')\n")
        man = os.path.join(tmp, "man")
        os.makedirs(man)
        pages = {"good.1.scd": "*--one*, *--two* _n_\n", "short.1.scd": "*--one*\n",
                 "extra.1.scd": "*--one* *--two* *--three*\n"}
        write_tree(man, pages)
        cmd = f"{sys.executable},{prog}"
        for page, want in (("good.1.scd", 0), ("short.1.scd", 1), ("extra.1.scd", 1)):
            if run([MAN, man, f"{page}={cmd}"]) != want:
                failed.append(f"man_options on {page}: not exit {want}")
        # section 5 pages against the field tables
        write_tree(tmp, {"full.5.scd": "*alpha*: 1\n\n*beta*: b\n", "part.5.scd": "*alpha*\n"})
        for page, want in (("full.5.scd", 0), ("part.5.scd", 1)):
            if run([KEYS, clean, os.path.join(tmp, page)]) != want:
                failed.append(f"man_keys on {page}: not exit {want}")
    for f in failed:
        print(f"test_doc_checks: {f}")
    if failed:
        return 1
    print(f"test_doc_checks: {len(FAULTS) + 6} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
