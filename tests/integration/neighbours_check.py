#!/usr/bin/env python3
"""neighbours_check.py — a device's LLDP/CDP neighbours in the collector's inventory API
(GET /api/v1/devices/<agent>/<device>, its `neighbours`) against what the recording says
(tests/snmprec/walkfile.py neighbours(): the rules of agent/snmp/nbrwalk.h).

  neighbours_check.py check URL TOKEN AGENT DEVICE RECORDING
      every neighbour of the recording current (not retired) with all its labels, and every
      other neighbour the API lists retired; exit 0, else 1 with the differences;
  neighbours_check.py save URL TOKEN AGENT DEVICE FILE
  neighbours_check.py same URL TOKEN AGENT DEVICE FILE
      the neighbours (instance, labels, first_seen, retired) as saved before.

Python 3 standard library only.
"""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "snmprec"))
import walkfile  # noqa: E402


def fetch(url, token, agent, device):
    req = urllib.request.Request("%s/api/v1/devices/%s/%s" % (url, agent, device),
                                 headers={"Authorization": "Bearer " + token})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=20) as r:
        return json.loads(r.read().decode("utf-8"))


def kept(nbrs):
    return {n["instance"]: {k: v for k, v in n.items() if k != "last_seen"} for n in nbrs}


def main(argv):
    if len(argv) != 6 or argv[0] not in ("check", "save", "same"):
        sys.stderr.write(__doc__)
        return 2
    cmd, url, token, agent, device, arg = argv
    try:
        dev = fetch(url, token, agent, device)
    except Exception as e:  # noqa: BLE001 (any failure to read is a difference)
        print("cannot read the device: %s" % e)
        return 1
    nbrs = dev.get("neighbours")
    if not isinstance(nbrs, list):
        print("no neighbours array in the answer")
        return 1
    if cmd == "save":
        with open(arg, "w") as f:
            json.dump(kept(nbrs), f, sort_keys=True)
        print("%d neighbours saved" % len(nbrs))
        return 0
    if cmd == "same":
        with open(arg) as f:
            before = json.load(f)
        now = kept(nbrs)
        if now != before:
            print("before: %s\nnow:    %s" % (json.dumps(before, sort_keys=True)[:1500],
                                              json.dumps(now, sort_keys=True)[:1500]))
            return 1
        print("%d neighbours the same" % len(now))
        return 0
    records, _ = walkfile.parse_snmprec(arg)
    want = walkfile.neighbours(records)
    got = {n["instance"]: n for n in nbrs}
    problems = []
    for inst, labels in sorted(want.items()):
        g = got.get(inst)
        if g is None:
            problems.append("%s: missing" % inst)
            continue
        if g.get("retired") is not None:
            problems.append("%s: retired (%s), expected current" % (inst, g.get("retired")))
        for k in walkfile.NBR_LABELS:
            if labels[k] is not walkfile.ANY and g.get(k) != labels[k]:
                problems.append("%s: %s: expected %r, got %r" % (inst, k, labels[k], g.get(k)))
    for inst in sorted(set(got) - set(want)):
        if got[inst].get("retired") is None:
            problems.append("%s: not in the recording but current" % inst)
    if problems:
        print("\n".join(problems[:50]))
        return 1
    print("%d neighbours as recorded (%d gone)" % (len(want), len(got) - len(want)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
