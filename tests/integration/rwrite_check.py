#!/usr/bin/env python3
"""rwrite_check.py — PromQL checks of test_remote_write.sh (stdlib only, 127.0.0.1 only).

  rwrite_check.py series URL QUERY           prints how many series an instant query returns
  rwrite_check.py raw URL SELECTOR T RANGE   prints the raw samples "<t> <v>" of one series
                                             (SELECTOR[RANGE] at time T)
  rwrite_check.py rate URL SELECTOR T0 T1    mean counter rate over the raw samples in [T0, T1]
  rwrite_check.py last URL QUERY             the value of an instant query (one series)
  rwrite_check.py same URL_A URL_B SELECTOR T RANGE
                                             the raw samples of both receivers: exit 1 unless
                                             every timestamp both hold has the same value (to
                                             1e-9 relative: VictoriaMetrics keeps about 12
                                             significant digits) and each holds at least 3
  rwrite_check.py dashboards URL FILE...     every panel target's expr and every variable's
                                             query of the files run with the variables set
                                             to values Prometheus has: exit 1 when any
                                             returns no data

Exit status 1 with a sentence on stderr when something is wrong, 2 on a failed request."""
import json
import re
import sys
import urllib.parse
import urllib.request


def get(base, path, params):
    url = base + path + "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
    except Exception as e:  # noqa: BLE001 - any failure of the request is the same answer
        sys.stderr.write(f"{url}: {e}\n")
        sys.exit(2)
    if doc.get("status") != "success":
        sys.stderr.write(f"{url}: {doc}\n")
        sys.exit(2)
    return doc["data"]


def query(base, q, t=None):
    p = {"query": q}
    if t is not None:
        p["time"] = t
    return get(base, "/api/v1/query", p)


def raw(base, sel, t, rng):
    d = query(base, f"{sel}[{rng}]", t)
    res = d["result"]
    if len(res) != 1:
        sys.stderr.write(f"{sel}: {len(res)} series, expected 1\n")
        sys.exit(1)
    return [(float(ts), float(v)) for ts, v in res[0]["values"]]


def main():
    cmd, base = sys.argv[1], sys.argv[2]
    if cmd == "series":
        print(len(query(base, sys.argv[3])["result"]))
    elif cmd == "last":
        res = query(base, sys.argv[3])["result"]
        if len(res) != 1:
            sys.stderr.write(f"{sys.argv[3]}: {len(res)} series, expected 1\n")
            sys.exit(1)
        print(res[0]["value"][1])
    elif cmd == "raw":
        for ts, v in raw(base, sys.argv[3], sys.argv[4], sys.argv[5]):
            print(f"{ts:.3f} {v:.17g}")
    elif cmd == "rate":
        t0, t1 = float(sys.argv[4]), float(sys.argv[5])
        pts = [p for p in raw(base, sys.argv[3], t1, f"{int(t1 - t0) + 5}s") if t0 <= p[0] <= t1]
        if len(pts) < 3:
            sys.stderr.write(f"{sys.argv[3]}: {len(pts)} samples in [{t0}, {t1}]\n")
            sys.exit(1)
        print(f"{(pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]):.6f} {len(pts)}")
    elif cmd == "same":
        other, sel, t, rng = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
        a = dict(raw(base, sel, t, rng))
        b = dict(raw(other, sel, t, rng))
        common = sorted(set(a) & set(b))
        # VictoriaMetrics keeps about 12 significant decimal digits of a float
        bad = [ts for ts in common if abs(a[ts] - b[ts]) > 1e-9 * max(abs(a[ts]), abs(b[ts]))]
        if len(a) < 3 or len(b) < 3 or bad or not common:
            sys.stderr.write(f"{sel}: {len(a)} and {len(b)} samples, {len(common)} at the same "
                             f"times, {len(bad)} of those differ {bad[:3]}\n")
            sys.exit(1)
        print(f"{len(common)} samples equal")
    elif cmd == "dashboards":
        sys.exit(dashboards(base, sys.argv[3:]))
    else:
        sys.exit(f"unknown command {cmd}")


VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr, values):
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(name)
        return values[name]
    return VAR.sub(one, expr)


def label_values(base, q, values):
    """A Grafana label_values(...) variable query, run as the series API would."""
    m = re.fullmatch(r"\s*label_values\((?:(.*),\s*)?(\w+)\)\s*", q)
    if not m:
        raise ValueError(f"not a label_values query: {q}")
    match, label = m.group(1), m.group(2)
    params = {"match[]": substitute(match, values)} if match else {}
    return get(base, f"/api/v1/label/{label}/values", params)


def dashboards(base, files):
    import os
    if not files:
        sys.stderr.write("no dashboards given\n")
        return 1
    bad, n = 0, 0
    for f in files:
        doc = json.load(open(f, encoding="utf-8"))
        name = os.path.basename(f)
        values = {"__rate_interval": "1m", "__interval": "10s", "__range": "5m",
                  "DS_PROMETHEUS": "prometheus", "quantile": "0.95"}
        for v in doc.get("templating", {}).get("list", []):
            if v.get("type") == "datasource":
                continue
            if v.get("type") == "custom":
                values[v["name"]] = v["options"][0]["value"] if v.get("options") else \
                    v["query"].split(",")[0].strip()
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            n += 1
            got = label_values(base, q, values)
            if not got:
                print(f"{name}: variable {v['name']}: {q} returned nothing")
                bad += 1
                values[v["name"]] = "none"
                continue
            values[v["name"]] = got[0]  # the first value, as Grafana selects by default
        panels = list(doc.get("panels", []))
        for p in list(panels):
            panels.extend(p.get("panels", []))
        for p in panels:
            for t in p.get("targets", []):
                expr = t.get("expr")
                if not expr:
                    continue
                n += 1
                q = substitute(expr, values)
                res = query(base, q)["result"]
                if not res:
                    print(f"{name}: panel '{p.get('title')}': {q} returned no data")
                    bad += 1
    print(f"dashboards: {len(files)} files, {n} queries, {bad} without data")
    return 1 if bad or n == 0 else 0


if __name__ == "__main__":
    main()
