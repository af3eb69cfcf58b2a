#!/usr/bin/env python3
"""check_device.py — one recorded real device, polled by kaaval-agent, checked value by value.

    check_device.py --agent BUILD/kaaval-agent --dir SNMPREC_DIR --community NAME
                    [--serve serve.sh] [--versions 2c,1] [--keep]

What it does, for the recording SNMPREC_DIR/NAME.snmprec:

1. Reads the walk file with walkfile.py (beside this script: the one reader of recorded walks
   the tests share, whose header gives the file format and the interfaces exactly as the
   agent defines them: which rows, their names, "#<ifIndex>" on shared names, how strings
   are cleaned) and works out, without any of the agent's code, what a poll must report:
     - the interfaces: walkfile.interfaces() (this test configures no filters);
     - per interface the labels ifIndex, ifName, ifDescr, ifAlias, ifType, and the values:
       in/out octets and unicast packets from the ifHC column when the interface has it,
       else the 32-bit ifTable column; multicast and broadcast from the ifHC column, else
       the 32-bit ifXTable one (2-5); errors and discards from ifTable; oper_status and
       admin_status as IF-MIB integers; speed_bps = ifHighSpeed x 1e6 when ifHighSpeed is
       there and ifSpeed is absent or 4294967295, else ifSpeed; a value the recording does
       not have must be absent from the output (never 0, never U);
     - the device group: reachable=1, uptime_s = sysUpTime.0 / 100 (absent when the
       recording has no sysUpTime.0), a response_ms, interfaces = the number above;
     - the LLDP/CDP neighbours: walkfile.neighbours() (the rules of agent/snmp/nbrwalk.h),
       each with its twelve labels field by field and present=1, none missing, none extra;
       the device's neighbour list (instance "": their instances in order, their count, the
       device's own LLDP chassis id and system name: walkfile.lldp_local()).
   With SNMPv1 (--versions 1) Counter64 objects cannot be read (RFC 3584), so the same
   rules apply to the walk without its Counter64 values, and the agent must fall back on
   the 32-bit columns (or report no value where the recording has none).
2. Serves that one file with snmpsim (serve.sh, on a free UDP port of 127.0.0.1, from a
   temp folder holding only a copy of it), writes an agent.yaml for it and runs
   `kaaval-agent -c agent.yaml --poll-once` once per SNMP version. The v1 poll reads a
   second copy without the Counter64 lines (community "v1_<community>"), i.e. what a
   v1-only device holds: snmpsim 0.4.5 skips Counter64 objects in a v1 GETNEXT, but so
   slowly (a first GETNEXT over the eight ifHC columns of vrp_5720 takes 18 s) that a v1
   walk of the full file measures the simulator, not the agent.
3. Compares the agent's stdout with the expectation field by field and prints every
   difference (interface, field, expected, got). Exit 0 when all agree, 1 on a mismatch or
   failure, 77 (ctest SKIP) when the recording is not in the folder.

KAAVAL_SNMPREC_DIR, when set, replaces --dir (so a test configured for one folder can run
against another). Only 127.0.0.1 is used; every wait is bounded; the only processes
stopped are the agent this script started and the snmpsimd whose pid serve.sh printed.
Python 3 standard library only.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from walkfile import (ANY, SYS_UPTIME, U32, Fail, num, parse_snmprec,  # noqa: E402
                      readme_count, text, write_without_counter64)
import walkfile  # noqa: E402

# (metric, 64-bit column, 32-bit column): a column is ("if", n) in ifTable, ("x", n) in ifXTable.
COUNTERS = [
    ("in_octets", ("x", 6), ("if", 10)),
    ("out_octets", ("x", 10), ("if", 16)),
    ("in_ucast_pkts", ("x", 7), ("if", 11)),
    ("out_ucast_pkts", ("x", 11), ("if", 17)),
    ("in_mcast_pkts", ("x", 8), ("x", 2)),
    ("out_mcast_pkts", ("x", 12), ("x", 4)),
    ("in_bcast_pkts", ("x", 9), ("x", 3)),
    ("out_bcast_pkts", ("x", 13), ("x", 5)),
    ("in_errors", None, ("if", 14)),
    ("out_errors", None, ("if", 20)),
    ("in_discards", None, ("if", 13)),
    ("out_discards", None, ("if", 19)),
]
IF_METRICS = [c[0] for c in COUNTERS] + ["oper_status", "admin_status", "speed_bps"]
DEV_METRICS = ["reachable", "uptime_s", "response_ms", "interfaces"]
LABELS = ["ifIndex", "ifName", "ifDescr", "ifAlias", "ifType"]


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------- the recording --


def expected_inventory(records, version):
    """What a poll of this recording must report: ({name: {labels, values}}, device values)."""
    ifaces = {}
    for i in walkfile.interfaces(records, version):
        idx, row, name = i.ifindex, i.row, i.name
        iftype = num(row, ("if", 3))
        labels = {
            "ifIndex": str(idx),
            "ifName": text(row, ("x", 1)) or "",
            "ifDescr": text(row, ("if", 2)) or "",
            "ifAlias": text(row, ("x", 18)) or "",
            "ifType": "" if iftype is None else (ANY if iftype is ANY else str(iftype)),
        }
        values = {}
        for metric, hc, lo in COUNTERS:
            v = num(row, hc) if hc else None
            if v is None:
                v = num(row, lo)
            if v is not None:
                values[metric] = v
        for metric, col in (("oper_status", ("if", 8)), ("admin_status", ("if", 7))):
            v = num(row, col)
            if v is not None:
                values[metric] = v
        high, speed = num(row, ("x", 15)), num(row, ("if", 5))
        if high is not None and (speed is None or speed == U32):
            values["speed_bps"] = ANY if high is ANY else high * 1000000
        elif speed is not None:
            values["speed_bps"] = speed
        if name in ifaces:
            raise Fail("two interfaces end up named %r" % name)
        ifaces[name] = {"labels": labels, "values": values}

    dev = {"reachable": 1, "response_ms": ANY, "interfaces": len(ifaces)}
    up = records.get(SYS_UPTIME)
    if up is not None and up.tag == "67" and up.num is not None:
        dev["uptime_s"] = ANY if up.num is ANY else up.num // 100
    return ifaces, dev


# --------------------------------------------------------------------------- the agent's output --

LINE_RE = re.compile(r'^(\d+)\.(\d{3}) (\S+) (if|device|neighbour) "')
METRIC_RE = re.compile(r"^[a-z_][a-z0-9_]*=(U|-?[0-9]+(\.[0-9]+)?)$")
LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="(.*?)"(?= [A-Za-z_][A-Za-z0-9_]*="| *$)')


def parse_output(text):
    """Returns (groups, events, junk). A group: {t, device, scope, instance, labels, values}."""
    groups, events, junk = [], [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("event "):
            events.append(line)
            continue
        m = LINE_RE.match(line)
        q = line.rfind('"')
        if not m or q < m.end() - 1:
            junk.append(line)
            continue
        head, tail = line[m.end():q + 1], line[q + 1:]
        # head: NAME" label="v" ...   tail: " metric=v metric=v"
        hm = re.match(r'(.*?)"(?=( [A-Za-z_][A-Za-z0-9_]*=")|$)', head)
        if hm is None:
            junk.append(line)
            continue
        instance = hm.group(1)
        labels = dict(LABEL_RE.findall(head[hm.end():].strip()))
        values, bad = {}, False
        for tok in tail.split():
            if not METRIC_RE.match(tok):
                bad = True
                break
            k, v = tok.split("=", 1)
            values[k] = v
        if bad:
            junk.append(line)
            continue
        groups.append({
            "t": int(m.group(1)) + int(m.group(2)) / 1000.0,
            "device": m.group(3),
            "scope": m.group(4),
            "instance": instance,
            "labels": labels,
            "values": values,
        })
    return groups, events, junk


def same(expected, got):
    """Compares an expected number (or ANY) with the agent's text."""
    if got is None or got == "U":
        return False
    if expected is ANY:
        return True
    try:
        if "." in got:
            return float(got) == float(expected)
        return int(got) == expected
    except ValueError:
        return False


def show(v):
    if v is ANY:
        return "<any value>"
    if v is None:
        return "<absent>"
    return repr(v) if isinstance(v, str) else str(v)


def compare_neighbours(exp_nbrs, mine, exp_local=None):
    """The LLDP/CDP neighbours reported against walkfile.neighbours(), and the device's own
    LLDP identity against walkfile.lldp_local(): (problems, n_checked)."""
    problems, checked, seen = [], 0, {}
    # the device's list (instance ""): every neighbour's instance, in the agent's order
    lists = [g for g in mine if g["scope"] == "neighbour" and g["instance"] == ""]
    checked += 1
    if len(lists) != 1:
        problems.append("the neighbour list: expected exactly 1 line, got %d" % len(lists))
    else:
        want_list = " ".join(exp_nbrs)
        if lists[0]["labels"].get("neighbours") != want_list:
            problems.append("the neighbour list: expected %r, got %r"
                            % (want_list, lists[0]["labels"].get("neighbours")))
        if lists[0]["values"] != {"count": str(len(exp_nbrs))}:
            problems.append("the neighbour list: expected count=%d, got %r"
                            % (len(exp_nbrs), lists[0]["values"]))
        for k, want in sorted((exp_local or {}).items()):
            checked += 1
            if want is not ANY and lists[0]["labels"].get(k) != want:
                problems.append("the device's own LLDP identity: %s: expected %s, got %s"
                                % (k, show(want), show(lists[0]["labels"].get(k))))
    for g in mine:
        if g["scope"] != "neighbour" or g["instance"] == "":
            continue
        if g["instance"] in seen:
            problems.append("neighbour %r reported twice" % g["instance"])
        seen[g["instance"]] = g
    for inst in sorted(set(exp_nbrs) - set(seen)):
        problems.append("neighbour %r (%s): missing from the output"
                        % (inst, exp_nbrs[inst]["sys_name"] or exp_nbrs[inst]["chassis_id"]))
    for inst in sorted(set(seen) - set(exp_nbrs)):
        problems.append("neighbour %r: not a neighbour of the recording" % inst)
    for inst in sorted(set(exp_nbrs) & set(seen)):
        e, g = exp_nbrs[inst], seen[inst]
        for lab in walkfile.NBR_LABELS:
            want, have = e[lab], g["labels"].get(lab)
            checked += 1
            if want is not ANY and have != want:
                problems.append("neighbour %r: label %s: expected %s, got %s"
                                % (inst, lab, show(want), show(have)))
        checked += 1
        if g["values"] != {"present": "1"}:
            problems.append("neighbour %r: expected present=1, got %r" % (inst, g["values"]))
    return problems, checked


def compare(device, exp_ifaces, exp_dev, groups, events, junk, t0, t1, exp_nbrs=None,
            exp_local=None):
    """Returns (problems, notes, n_checked)."""
    problems, notes, checked = [], [], 0
    for line in junk:
        problems.append("unparsed output line: %r" % line[:200])
    for ev in events:
        problems.append("unexpected event: %s" % ev)
    mine = [g for g in groups if g["device"] == device]
    for g in groups:
        if g["device"] != device:
            problems.append("output for an unknown device %r" % g["device"])
    for g in mine:
        if not (t0 - 1.0 <= g["t"] <= t1 + 1.0):
            problems.append("%s %r: timestamp %.3f outside the run (%.3f .. %.3f)"
                            % (g["scope"], g["instance"], g["t"], t0, t1))

    # device group
    devs = [g for g in mine if g["scope"] == "device"]
    if len(devs) != 1:
        problems.append("device group: expected exactly 1 line, got %d" % len(devs))
    if devs:
        got = devs[0]["values"]
        for metric in DEV_METRICS:
            want = exp_dev.get(metric)
            have = got.get(metric)
            checked += 1
            if want is None:
                if have is not None:
                    problems.append("device: %s: expected %s (not in the recording), got %s"
                                    % (metric, show(None), have))
            elif not same(want, have):
                problems.append("device: %s: expected %s, got %s" % (metric, show(want), show(have)))
        for metric in sorted(set(got) - set(DEV_METRICS)):
            notes.append("device: field %s=%s is not checked by this test" % (metric, got[metric]))
        if devs[0]["instance"] != "":
            problems.append("device group instance: expected '', got %r" % devs[0]["instance"])

    # interfaces
    seen = {}
    for g in mine:
        if g["scope"] != "if":
            continue
        if g["instance"] in seen:
            problems.append("interface %r reported twice" % g["instance"])
        seen[g["instance"]] = g
    missing = sorted(set(exp_ifaces) - set(seen))
    extra = sorted(set(seen) - set(exp_ifaces))
    for name in missing:
        e = exp_ifaces[name]
        problems.append("interface %r (ifIndex %s): missing from the output"
                        % (name, e["labels"]["ifIndex"]))
    for name in extra:
        problems.append("interface %r (ifIndex %s): not an interface of the recording"
                        % (name, seen[name]["labels"].get("ifIndex", "?")))
    unknown_fields = set()
    for name in sorted(set(exp_ifaces) & set(seen)):
        e, g = exp_ifaces[name], seen[name]
        for lab in LABELS:
            want, have = e["labels"][lab], g["labels"].get(lab)
            checked += 1
            if want is ANY:
                continue
            if have != want:
                problems.append("interface %r: label %s: expected %s, got %s"
                                % (name, lab, show(want), show(have)))
        for metric in IF_METRICS:
            want, have = e["values"].get(metric), g["values"].get(metric)
            checked += 1
            if want is None:
                if have is not None:
                    problems.append("interface %r: %s: expected %s (the recording has no value), "
                                    "got %s" % (name, metric, show(None), have))
            elif not same(want, have):
                problems.append("interface %r: %s: expected %s, got %s"
                                % (name, metric, show(want), show(have)))
        unknown_fields |= set(g["values"]) - set(IF_METRICS)
    for f in sorted(unknown_fields):
        notes.append("interface field %s is not checked by this test" % f)
    nbr_problems, nbr_checked = compare_neighbours(exp_nbrs or {}, mine, exp_local)
    return problems + nbr_problems, notes, checked + nbr_checked


# --------------------------------------------------------------------------- processes --


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def stop_pid(pid, must_contain):
    """Stops one process we started (TERM, then KILL after 5 s), if it still runs that program."""
    if pid is None or must_contain not in proc_cmdline(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        if must_contain not in proc_cmdline(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_snmpsim(serve, data_dir, state_dir):
    """Starts snmpsimd via serve.sh on a free port; returns (pid, port)."""
    last = ""
    for _attempt in range(3):
        port = free_udp_port()
        env = dict(os.environ, SNMPREC_DIR=data_dir, SNMPSIM_STATE="%s-%d" % (state_dir, port),
                   SNMPSIM_WAIT="30")
        try:
            p = subprocess.run(["bash", serve, str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
        except subprocess.TimeoutExpired:
            raise Fail("serve.sh did not return within 60 s")
        out = p.stdout.decode(errors="replace").split()
        if p.returncode == 0 and out and out[-1].isdigit():
            return int(out[-1]), port
        last = p.stderr.decode(errors="replace").strip()
        if "already in use" not in last:
            break
    raise Fail("snmpsim did not start: %s" % last)


def yaml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_agent(agent, tmp, name, community, port, version, timeout_s):
    """Runs kaaval-agent --poll-once for the one device; returns (stdout, stderr, t0, t1)."""
    cfg = os.path.join(tmp, "agent-v%s.yaml" % version)
    with open(cfg, "w") as f:
        f.write("id: snmprec-check\n"
                "site: snmprec\n"
                "collector: 127.0.0.1:9\n"  # never contacted in --poll-once mode
                "insecure: true\n"
                "log_level: info\n"
                "devices:\n"
                "  - name: %s\n"
                "    address: 127.0.0.1\n"
                "    port: %d\n"
                "    version: %s\n"
                "    community: %s\n"
                "    timeout: 5s\n"
                "    retries: 2\n" % (yaml_str(name), port, yaml_str(version),
                                       yaml_str(community)))
    t0 = time.time()
    p = subprocess.Popen([agent, "-c", cfg, "--poll-once"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        p.kill()  # our own child
        out, err = p.communicate(timeout=10)
        raise Fail("kaaval-agent --poll-once did not finish within %d s; its stderr:\n%s"
                   % (timeout_s, err.decode(errors="replace")[-3000:]))
    t1 = time.time()
    if p.returncode != 0:
        raise Fail("kaaval-agent exited with %d; its stderr:\n%s"
                   % (p.returncode, err.decode(errors="replace")[-3000:]))
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), t0, t1


# --------------------------------------------------------------------------- main --


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", required=True, help="the kaaval-agent binary")
    ap.add_argument("--dir", required=True, help="folder of .snmprec files "
                    "(KAAVAL_SNMPREC_DIR overrides it)")
    ap.add_argument("--community", required=True, help="recording = <dir>/<community>.snmprec")
    ap.add_argument("--serve", help="snmpsim start script (default <dir>/serve.sh, "
                    "else this path)")
    ap.add_argument("--versions", default="2c,1", help="SNMP versions to poll with (default 2c,1)")
    ap.add_argument("--agent-timeout", type=int, default=90, help="seconds per agent run")
    ap.add_argument("--max-lines", type=int, default=200, help="differences printed at most")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--own-dir", action="store_true", help="read --dir even when "
                    "KAAVAL_SNMPREC_DIR is set (the project's own recordings)")
    a = ap.parse_args()

    folder = a.dir if a.own_dir else (os.environ.get("KAAVAL_SNMPREC_DIR") or a.dir)
    folder = os.path.abspath(folder)
    rec = os.path.join(folder, a.community + ".snmprec")
    if not os.path.isfile(rec):
        log("SKIP: %s not found (the tests were generated from another folder; re-run cmake "
            "to generate them from %s)" % (rec, folder))
        return 77
    serve = os.path.join(folder, "serve.sh")
    if not os.path.isfile(serve):
        serve = a.serve
    if not serve or not os.path.isfile(serve):
        log("FAIL: no serve.sh in %s and none given with --serve" % folder)
        return 1
    if not os.access(a.agent, os.X_OK):
        log("FAIL: no agent binary at %s (build first)" % a.agent)
        return 1
    versions = [v.strip() for v in a.versions.split(",") if v.strip()]

    records, file_notes = parse_snmprec(rec)
    for n in file_notes:
        log("note: " + n)
    expected = {v: expected_inventory(records, v) for v in versions}
    exp_nbrs = {v: walkfile.neighbours(records, v) for v in versions}
    exp_local = {v: walkfile.lldp_local(records, v) for v in versions}
    want_ifs = len(expected[versions[0]][0]) if versions else 0
    listed = readme_count(folder, a.community)
    if "2c" in expected:
        n_v2 = len(expected["2c"][0])
        if listed is not None and listed != n_v2:
            log("FAIL: the recording has %d interfaces, its README lists %d: the parser here "
                "and the README disagree" % (n_v2, listed))
            return 1
    log("%s: %d records, %d interfaces%s" % (os.path.basename(rec), len(records), want_ifs,
        "" if listed is None else " (README agrees)"))

    tmp = tempfile.mkdtemp(prefix="kvl-snmprec-%s." % re.sub(r"[^A-Za-z0-9_.-]", "_",
                                                            a.community))
    sim_pid, failed = None, False
    try:
        # snmpsimd drops to `nobody` when started as root: what it reads must be readable.
        os.chmod(tmp, 0o755)
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        os.chmod(data, 0o755)
        shutil.copyfile(rec, os.path.join(data, os.path.basename(rec)))
        os.chmod(os.path.join(data, os.path.basename(rec)), 0o644)
        if "1" in versions:
            write_without_counter64(rec, os.path.join(data, "v1_" + os.path.basename(rec)))
        sim_pid, port = start_snmpsim(serve, data, os.path.join(tmp, "snmpsim"))
        log("snmpsim pid %d on 127.0.0.1:%d" % (sim_pid, port))

        for v in versions:
            exp_ifaces, exp_dev = expected[v]
            community = "v1_" + a.community if v == "1" else a.community
            out, err, t0, t1 = run_agent(a.agent, tmp, a.community, community, port, v,
                                         a.agent_timeout)
            with open(os.path.join(tmp, "agent-v%s.out" % v), "w") as f:
                f.write(out)
            groups, events, junk = parse_output(out)
            problems, notes, checked = compare(a.community, exp_ifaces, exp_dev, groups, events,
                                               junk, t0, t1, exp_nbrs[v], exp_local[v])
            for n in notes:
                log("note (v%s): %s" % (v, n))
            if problems:
                failed = True
                log("FAIL (SNMP v%s): %d differences between the recording and kaaval-agent's "
                    "poll (%d interfaces expected, %d reported):"
                    % (v, len(problems), len(exp_ifaces),
                       len([g for g in groups if g["scope"] == "if"])))
                for p in problems[:a.max_lines]:
                    log("  " + p)
                if len(problems) > a.max_lines:
                    log("  ... and %d more" % (len(problems) - a.max_lines))
                if err.strip():
                    log("agent stderr (last lines):")
                    for line in err.strip().splitlines()[-20:]:
                        log("  " + line)
            else:
                log("ok (SNMP v%s): %d interfaces, %d neighbours, %d fields agree, poll took "
                    "%.2f s" % (v, len(exp_ifaces), len(exp_nbrs[v]), checked, t1 - t0))
                for line in err.strip().splitlines():
                    if " WARN " in line or " ERROR " in line:
                        log("  agent said: " + line)
    except Fail as e:
        failed = True
        log("FAIL: %s" % e)
    finally:
        stop_pid(sim_pid, "snmpsimd")
        if failed or a.keep:
            log("temp folder kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        return 1
    log("PASS: %s" % a.community)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        log("FAIL: %s" % e)
        sys.exit(1)
