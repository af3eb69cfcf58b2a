#!/usr/bin/env python3
"""check_man_options.py MAN_DIR PAGE=COMMAND...: each command's help against its man page.

For every PAGE=COMMAND pair (PAGE a scdoc source in MAN_DIR such as kaaval-agent.8.scd,
COMMAND the program and its arguments that print the help, separated by commas), every long
option (--name) the help prints must appear in the page, and every long option the page
names must be one the help prints. The help is what the command writes to stdout and stderr
(kaaval-certs prints its usage on stderr and exits 2); commands of kaavalctl are covered
because its help lists their options too. Prints what is missing on either side and exits 1
when anything is; prints `man_options: N options checked` and exits 0 otherwise."""
import os
import re
import subprocess
import sys

LONG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def page_options(path):
    text = open(path, encoding="utf-8").read()
    # scdoc escapes (\_) are not part of a name; literal examples count as named too.
    return set(LONG.findall(text.replace("\\", "")))


def help_options(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20,
                       stdin=subprocess.DEVNULL)
    text = (r.stdout + r.stderr).decode("utf-8", "replace")
    if r.returncode not in (0, 2) or not text.strip():
        print(f"man_options: '{' '.join(cmd)}' printed no usage (exit {r.returncode})")
        return None
    return set(LONG.findall(text))


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: check_man_options.py MAN_DIR PAGE=COMMAND...\n")
        return 2
    man_dir, pairs = sys.argv[1], sys.argv[2:]
    bad, checked = False, 0
    for pair in pairs:
        page, _, cmd = pair.partition("=")
        in_help = help_options(cmd.split(","))
        if in_help is None or not in_help:
            bad = True
            continue
        in_page = page_options(os.path.join(man_dir, page))
        prog = " ".join(os.path.basename(a) for a in cmd.split(","))
        for o in sorted(in_help - in_page):
            print(f"man_options: --{o} is in the help of {prog} but not in {page}")
        for o in sorted(in_page - in_help):
            print(f"man_options: --{o} is in {page} but not in the help of {prog}")
        bad = bad or in_help != in_page
        checked += len(in_help)
    if bad:
        return 1
    print(f"man_options: {checked} options checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
