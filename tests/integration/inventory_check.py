#!/usr/bin/env python3
"""inventory_check.py — what the collector's inventory API must say about recorded devices,
worked out from the recordings themselves (tests/snmprec/walkfile.py, the one reader of
recorded walks), for tests/integration/test_inventory.sh.

  inventory_check.py pick FOLDER N                  the N recordings with the fewest (but
                                                    some) interfaces, one name a line
  inventory_check.py check URL TOKEN AGENT SITE FOLDER DEVICE...
                                                    every device and interface with its
                                                    labels as the recording says; exit 1
                                                    with the differences otherwise
  inventory_check.py save URL TOKEN AGENT DEVICE... FILE   the devices' answers, kept
  inventory_check.py same URL TOKEN AGENT FILE      the answers again equal the saved ones
                                                    (last_seen aside)
  inventory_check.py retired URL TOKEN AGENT GONE KEPT...   GONE retired, KEPT not

Python 3 standard library only.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "snmprec"))
import walkfile  # noqa: E402

SYS = {"sysName": (1, 3, 6, 1, 2, 1, 1, 5, 0), "sysDescr": (1, 3, 6, 1, 2, 1, 1, 1, 0),
       "sysLocation": (1, 3, 6, 1, 2, 1, 1, 6, 0)}


def get(url, token, path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def dev_path(agent, dev):
    return "/api/v1/devices/%s/%s" % (urllib.parse.quote(agent, safe=""),
                                      urllib.parse.quote(dev, safe=""))


def sys_text(records, oid):
    v = records.get(oid)
    if v is None or v.tag != walkfile.OCTETS_TAG:
        return None
    return walkfile.as_text(v.raw)


ENT_CLASS = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 5)
ENT_LOOKED_AT = 16  # poller.c ENT_MAX_REQUESTS: entries looked at for the first chassis


def entity(records):
    """(model, serial) of the first chassis(3) entPhysicalEntry among the first
    ENT_LOOKED_AT, as the poller reads them at discovery; None for absent or empty."""
    rows = sorted(o for o in records if len(o) == len(ENT_CLASS) + 1 and o[:-1] == ENT_CLASS)
    for oid in rows[:ENT_LOOKED_AT]:
        v = records[oid]
        if v.tag == "2" and v.num == 3:
            idx = oid[-1]
            out = []
            for col in (13, 11):
                t = sys_text(records, ENT_CLASS[:-1] + (col, idx))
                out.append(t if t else None)
            return tuple(out)
    return None, None


def expected(folder, dev):
    records = walkfile.parse_snmprec(os.path.join(folder, dev + ".snmprec"))[0]
    want = {k: sys_text(records, oid) for k, oid in SYS.items()}
    want["model"], want["serial"] = entity(records)
    ifs = {}
    for i in walkfile.interfaces(records, "2c"):
        row = i.row
        t = walkfile.num(row, ("if", 3))
        mac = walkfile.mac(row)
        ifs[i.name] = {
            "ifIndex": i.ifindex,
            "ifName": walkfile.text(row, ("x", 1)) or "",
            "ifDescr": walkfile.text(row, ("if", 2)) or "",
            "ifAlias": walkfile.text(row, ("x", 18)) or "",
            "type": t,
            "speed": walkfile.speed(row),
            "mac": mac if mac else None,
        }
    return want, ifs


def check(url, token, agent, site, folder, devices):
    problems = []
    for dev in devices:
        want, want_ifs = expected(folder, dev)
        st, d = get(url, token, dev_path(agent, dev))
        if st != 200:
            problems.append("%s: HTTP %d %s" % (dev, st, d))
            continue
        if d.get("site") != site or d.get("agent") != agent:
            problems.append("%s: site/agent %r/%r" % (dev, d.get("site"), d.get("agent")))
        if d.get("address") != "127.0.0.1":
            problems.append("%s: address %r" % (dev, d.get("address")))
        for k, v in want.items():
            if v is not walkfile.ANY and d.get(k) != v:
                problems.append("%s: %s: expected %r, got %r" % (dev, k, v, d.get(k)))
        have = {i["name"]: i for i in d.get("interface_list", [])}
        if set(have) != set(want_ifs):
            problems.append("%s: interfaces: missing %s, unexpected %s" % (
                dev, sorted(set(want_ifs) - set(have))[:5], sorted(set(have) - set(want_ifs))[:5]))
        for name, w in want_ifs.items():
            h = have.get(name)
            if h is None:
                continue
            if h.get("retired") is not None:
                problems.append("%s %s: retired" % (dev, name))
            for k, v in w.items():
                if v is not walkfile.ANY and h.get(k) != v:
                    problems.append("%s %s: %s: expected %r, got %r" % (dev, name, k, v, h.get(k)))
        if d.get("interfaces") != len(want_ifs):
            problems.append("%s: %r interfaces counted, %d expected" % (dev, d.get("interfaces"),
                                                                       len(want_ifs)))
    # the list and the search agree
    st, lst = get(url, token, "/api/v1/devices?agent=" + urllib.parse.quote(agent))
    names = sorted(x["device"] for x in lst.get("devices", [])) if st == 200 else None
    if names != sorted(devices):
        problems.append("GET /api/v1/devices?agent=: %r" % names)
    for dev in devices:
        _, want_ifs = expected(folder, dev)
        alias = next((w["ifAlias"] for w in want_ifs.values()
                      if w["ifAlias"] and w["ifAlias"] is not walkfile.ANY), None)
        if alias is None:
            continue
        st, s = get(url, token, "/api/v1/search?limit=500&q=" + urllib.parse.quote(alias[:60]))
        hits = [(i["device"], i["ifAlias"]) for i in s.get("interfaces", [])] if st == 200 else []
        if (dev, alias) not in hits:
            problems.append("search for ifAlias %r of %s: not found (%d)" % (alias, dev, st))
    if problems:
        print("\n".join(problems[:40]))
        return 1
    print("%d devices (%d with a chassis model), %d interfaces as recorded" % (
        len(devices), sum(1 for d in devices if expected(folder, d)[0]["model"]),
        sum(len(expected(folder, d)[1]) for d in devices)))
    return 0


def answers(url, token, agent, devices):
    out = {}
    for dev in devices:
        st, d = get(url, token, dev_path(agent, dev))
        if st != 200:
            raise SystemExit("%s: HTTP %d %s" % (dev, st, d))
        d.pop("last_seen", None)
        for i in d.get("interface_list", []):
            i.pop("last_seen", None)
        out[dev] = d
    return out


def main(argv):
    cmd = argv[1]
    if cmd == "pick":
        folder, n = argv[2], int(argv[3])
        sizes = []
        for f in sorted(os.listdir(folder)):
            if f.endswith(".snmprec"):
                dev = f[:-len(".snmprec")]
                k = len(walkfile.interfaces(walkfile.parse_snmprec(os.path.join(folder, f))[0]))
                if k > 0:
                    sizes.append((k, dev))
        for _, dev in sorted(sizes)[:n]:
            print(dev)
        return 0
    url, token, agent = argv[2], argv[3], argv[4]
    if cmd == "check":
        return check(url, token, agent, argv[5], argv[6], argv[7:])
    if cmd == "save":
        with open(argv[-1], "w") as f:
            json.dump(answers(url, token, agent, argv[5:-1]), f)
        return 0
    if cmd == "same":
        with open(argv[5]) as f:
            saved = json.load(f)
        now = answers(url, token, agent, list(saved))
        if now != saved:
            for dev in saved:
                if now[dev] != saved[dev]:
                    print("%s differs:\n  before %s\n  after  %s" % (
                        dev, json.dumps(saved[dev])[:600], json.dumps(now[dev])[:600]))
            return 1
        return 0
    if cmd == "retired":
        gone, kept = argv[5], argv[6:]
        bad = []
        for dev in [gone] + kept:
            st, d = get(url, token, dev_path(agent, dev))
            if st != 200:
                bad.append("%s: HTTP %d" % (dev, st))
            elif (d.get("retired") is None) == (dev == gone):
                bad.append("%s: retired %r" % (dev, d.get("retired")))
        if bad:
            print("\n".join(bad))
            return 1
        return 0
    raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
