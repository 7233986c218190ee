#!/usr/bin/env python3
"""bench/lib/pgbench_stats.py: TPS and latency percentiles from pgbench
per-transaction logs (pgbench -l), over a time window.

Usage: pgbench_stats.py --from EPOCH --to EPOCH LOGFILE...

A transaction belongs to the window when it completed inside it.  The log
line is "client xact_no latency_us script epoch_s epoch_us [lag_us]"; with
--rate the latency is measured from the scheduled start, so it includes the
time a transaction waited to start, as an application would see it.
Prints: count=... tps=... p50_ms=... p99_ms=... max_ms=...
"""
import argparse


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    # nearest rank
    k = max(0, min(len(sorted_vals) - 1, int(-(-q * len(sorted_vals) // 1)) - 1))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="t0", type=float, required=True)
    ap.add_argument("--to", dest="t1", type=float, required=True)
    ap.add_argument("logs", nargs="+")
    a = ap.parse_args()
    lat = []
    for path in a.logs:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) < 6 or p[2] == "skipped":
                    continue
                done = int(p[4]) + int(p[5]) / 1e6
                if a.t0 <= done <= a.t1:
                    lat.append(int(p[2]) / 1000.0)
    lat.sort()
    span = max(a.t1 - a.t0, 1e-9)
    print("count=%d tps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f"
          % (len(lat), len(lat) / span, percentile(lat, 0.50),
             percentile(lat, 0.99), lat[-1] if lat else float("nan")))


if __name__ == "__main__":
    main()
