#!/usr/bin/env python3
"""metrics_check.py — checks Prometheus text exposition (format 0.0.4) as the collector serves
it on GET /metrics, and the Grafana dashboard over it.

    metrics_check.py parse FILE            every line valid, HELP and TYPE before each family's
                                           samples, histograms whole; prints the samples count
    metrics_check.py grow FILE1 FILE2 NAME...   each named counter is larger in FILE2
    metrics_check.py grafana JSON FILE     the dashboard is Grafana JSON whose every panel's
                                           expr names only metrics FILE exports
Exits 1 with a sentence on the first problem.
"""
import json
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s)(?:,(?:%s))*\})? (\S+)( -?\d+)?$" % (NAME, LABEL, LABEL))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def fail(msg):
    sys.exit("metrics_check: " + msg)


def value(text, lineno):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    try:
        return float(text)
    except ValueError:
        fail("line %d: value %r is not a number" % (lineno, text))


def parse(path):
    """{family: {"type", "help", "samples": [(name, labels dict, value)]}}"""
    fams = {}
    text = open(path, encoding="utf-8").read()
    if not text.endswith("\n"):
        fail("%s does not end with a line feed" % path)
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            fail("line %d: empty line" % n)
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME, line)
            if not m:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    fail("line %d: malformed %r" % (n, line))
                continue
            kind, name, rest = m.groups()
            f = fams.setdefault(name, {"type": None, "help": None, "samples": []})
            if f["samples"]:
                fail("line %d: %s of %s after its samples" % (n, kind, name))
            if kind == "TYPE":
                if rest not in TYPES:
                    fail("line %d: unknown type %r" % (n, rest))
                if f["type"] is not None:
                    fail("line %d: second TYPE for %s" % (n, name))
                f["type"] = rest
            else:
                if f["help"] is not None:
                    fail("line %d: second HELP for %s" % (n, name))
                f["help"] = rest
            continue
        m = SAMPLE.match(line)
        if not m:
            fail("line %d: not valid exposition syntax: %r" % (n, line))
        name, labels, v = m.group(1), m.group(2) or "", m.group(3)
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in fams and fams[base]["type"] in ("histogram",
                                                                                 "summary"):
                fam = base
        if fam not in fams or fams[fam]["type"] is None or fams[fam]["help"] is None:
            fail("line %d: %s has no HELP and TYPE before it" % (n, name))
        lab = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
        fams[fam]["samples"].append((name, lab, value(v, n)))
    for name, f in fams.items():
        if f["type"] is None or f["help"] is None:
            fail("%s lacks HELP or TYPE" % name)
        if f["type"] == "counter":
            for s in f["samples"]:
                if s[2] < 0 or math.isnan(s[2]):
                    fail("counter %s is %r" % (name, s[2]))
        if f["type"] == "histogram":
            series = {}
            for s, lab, v in f["samples"]:
                key = tuple(sorted((k, x) for k, x in lab.items() if k != "le"))
                series.setdefault(key, {"buckets": [], "count": None})
                if s.endswith("_bucket"):
                    series[key]["buckets"].append((float(lab["le"].replace("Inf", "inf")), v))
                elif s.endswith("_count"):
                    series[key]["count"] = v
            for key, h in series.items():
                b = h["buckets"]
                if not b or b[-1][0] != math.inf:
                    fail("histogram %s%s has no +Inf bucket" % (name, key))
                if any(b[i][1] > b[i + 1][1] or b[i][0] >= b[i + 1][0] for i in range(len(b) - 1)):
                    fail("histogram %s%s: buckets not cumulative" % (name, key))
                if h["count"] != b[-1][1]:
                    fail("histogram %s%s: _count differs from the +Inf bucket" % (name, key))
    return fams


def total(fams, name):
    f = fams.get(name)
    if f is None:
        fail("no metric %s" % name)
    return sum(v for s, _, v in f["samples"] if s == name or s == name + "_count")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "parse":
        fams = parse(sys.argv[2])
        print("%d families, %d samples" % (len(fams), sum(len(f["samples"]) for f in fams.values())))
    elif len(sys.argv) >= 5 and sys.argv[1] == "grow":
        a, b = parse(sys.argv[2]), parse(sys.argv[3])
        for name in sys.argv[4:]:
            x, y = total(a, name), total(b, name)
            if not y > x:
                fail("%s did not grow between the scrapes (%r, then %r)" % (name, x, y))
            print("%s %g -> %g" % (name, x, y))
    elif len(sys.argv) == 4 and sys.argv[1] == "grafana":
        dash = json.load(open(sys.argv[2]))
        fams = parse(sys.argv[3])
        exported = set()
        for name, f in fams.items():
            exported.add(name)
            for s, _, _ in f["samples"]:
                exported.add(s)
        for key in ("schemaVersion", "panels", "title", "uid"):
            if key not in dash:
                fail("the dashboard has no %s" % key)
        if not any(v.get("name") == "DS_PROMETHEUS" for v in dash.get("__inputs", [])):
            fail("the dashboard declares no DS_PROMETHEUS input")
        n = 0
        for p in dash["panels"]:
            if p.get("type") == "row":
                continue
            for key in ("id", "title", "type", "gridPos", "targets", "datasource"):
                if key not in p:
                    fail("panel %r has no %s" % (p.get("title"), key))
            if p["datasource"].get("uid") != "${DS_PROMETHEUS}":
                fail("panel %r does not use ${DS_PROMETHEUS}" % p["title"])
            for t in p["targets"]:
                expr = t.get("expr", "")
                names = [w for w in re.findall(NAME, re.sub(r'"[^"]*"|\{[^}]*\}|\[[^]]*\]', "", expr))
                         if w.startswith("kaaval_") or w.startswith("process_")]
                if not names:
                    fail("panel %r: expr %r names no kaaval metric" % (p["title"], expr))
                for w in names:
                    if w not in exported:
                        fail("panel %r: %s is not exported by the collector" % (p["title"], w))
                n += 1
        print("%d panel queries, all over exported metrics" % n)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
