#!/usr/bin/env python3
"""doc/engine-study/summarize.py: median per measurement of run.sh's CSV, as a
markdown table with ratios to plain DELETE (A, or the A_<variant> of the
same dataset).  Usage: summarize.py results.csv [...]"""
import csv
import statistics
import sys
from collections import defaultdict

rows = defaultdict(list)
order = []
for path in sys.argv[1:]:
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["name"] not in rows:
                order.append(r["name"])
            rows[r["name"]].append(r)


def med(name, key):
    return statistics.median(float(r[key]) for r in rows[name])


def base_of(name):
    if name.startswith("A"):
        return None
    for suffix, base in (("_cascade", "A_cascade"), ("_restrict0", "A_restrict0"),
                         ("_restrict_", "A_restrict0")):
        if suffix in name and base in rows:
            return base
    return "A"


print("| variant | n | median s (min–max) | × A | WAL MB | × A WAL | outcome |")
print("|---|---|---|---|---|---|---|")
for name in order:
    secs = [float(r["seconds"]) for r in rows[name]]
    s = statistics.median(secs)
    w = med(name, "wal_bytes") / 1e6
    b = base_of(name)
    ref = name if b is None else b
    rs = s / med(ref, "seconds")
    rw = med(name, "wal_bytes") / med(ref, "wal_bytes")
    last = rows[name][-1]
    outcome = "left %s, failures %s, %s" % (last["candidates_left"], last["failures"], last["job"])
    print("| %s | %d | %.3f (%.3f–%.3f) | %.2f | %.1f | %.3f | %s |"
          % (name, len(secs), s, min(secs), max(secs), rs, w, rw, outcome))
