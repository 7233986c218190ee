#!/usr/bin/env python3
"""bench/lib/poll_worker.py: watch the bulkdelete worker while a job runs.

Runs one psql that re-runs a pg_stat_activity query every --interval seconds
(\\watch), and for every bulkdelete worker it sees reads /proc/<pid>/status.
On SIGTERM or SIGINT it prints one line of key=value pairs:

  samples            number of polls that saw a worker
  workers            distinct worker pids seen
  vm_hwm_kb          highest VmHWM (peak RSS, shared buffers included)
  rss_anon_peak_kb   highest RssAnon sampled (private memory, the figure
                     that must stay flat)
  longest_xact_s     longest worker transaction: last time a given
                     (pid, xact_start) was seen minus its xact_start; an
                     underestimate by at most one interval
  xacts              distinct worker transactions seen

Usage: poll_worker.py --interval 0.1 [--ready FILE] -- psql <connection options>
(--ready: a file created once the first poll has returned)
"""
import argparse
import signal
import subprocess
import sys

# One line per poll even when no worker runs (pid empty then), so that the
# first line tells the caller that polling has begun.
QUERY = ("SELECT extract(epoch FROM clock_timestamp()), coalesce(a.pid, 0), "
         "coalesce(extract(epoch FROM a.xact_start)::text, '') "
         "FROM (SELECT 1) AS one LEFT JOIN pg_stat_activity AS a "
         "ON a.backend_type = 'bulkdelete worker'")


def proc_status(pid):
    vals = {}
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "RssAnon"):
                    vals[key] = int(rest.split()[0])
    except OSError:
        pass
    return vals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--ready")
    ap.add_argument("psql", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = [a for a in args.psql if a != "--"]
    st = {"samples": 0, "vm_hwm_kb": 0, "rss_anon_peak_kb": 0}
    pids = set()
    xacts = {}                  # (pid, xact_start) -> last seen

    def finish(*_):
        longest = max((last - float(x[1]) for x, last in xacts.items()),
                      default=0.0)
        out = dict(st, workers=len(pids), xacts=len(xacts),
                   longest_xact_s="%.3f" % longest)
        print(" ".join("%s=%s" % kv for kv in sorted(out.items())), flush=True)
        p.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    p = subprocess.Popen(cmd + ["-X", "-q", "-A", "-t", "-F", " "],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    p.stdin.write("%s \\watch %s\n" % (QUERY, args.interval))
    p.stdin.flush()
    ready = False
    for line in p.stdout:
        parts = line.split()
        if len(parts) < 2:
            continue
        if not ready and args.ready:
            open(args.ready, "w").close()
            ready = True
        now, pid = float(parts[0]), parts[1]
        if pid == "0":
            continue
        st["samples"] += 1
        pids.add(pid)
        vals = proc_status(pid)
        st["vm_hwm_kb"] = max(st["vm_hwm_kb"], vals.get("VmHWM", 0))
        st["rss_anon_peak_kb"] = max(st["rss_anon_peak_kb"],
                                     vals.get("RssAnon", 0))
        if len(parts) > 2 and parts[2]:
            xacts[(pid, parts[2])] = now
    finish()


if __name__ == "__main__":
    main()
