#!/usr/bin/env python3
"""bench/lib/report.py: turn bench/run's raw measurements into the report.

Reads the long-format CSV (variant,kind,rep,key,value) that bench/run writes,
takes the median over the repetitions of every number, computes the ratios
that SPEC section 7 sets targets for, prints the report as markdown and, with
--out, writes it to a file.
"""
import argparse
import csv
import datetime
import math
import os
import statistics
import subprocess
from collections import defaultdict

TARGET_TIME = 1.1
TARGET_WAL = 1.2
TARGET_RESTRICT = 1.5
TARGET_P99 = 2.0
TARGET_RSS_MB = 100
TARGET_SMALL_MS = 15


def load(path):
    data = defaultdict(lambda: defaultdict(list))  # (variant, kind) -> key -> [values]
    with open(path) as f:
        for r in csv.DictReader(f):
            data[(r["variant"], r["kind"])][r["key"]].append(r["value"])
    return data


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def med(data, variant, kind, key):
    vals = [num(v) for v in data.get((variant, kind), {}).get(key, [])]
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    return statistics.median(vals) if vals else None


def maxof(data, variant, kind, key):
    vals = [num(v) for v in data.get((variant, kind), {}).get(key, [])]
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    return max(vals) if vals else None


def texts(data, variant, kind, key):
    return data.get((variant, kind), {}).get(key, [])


def fmt(x, spec="%.3f"):
    return "—" if x is None else spec % x


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


# the id-list variants (issue 12) are held to their own targets (time, WAL)
VARIANT_TARGETS = {"upload": (1.5, 1.15), "records": (1.3, 1.2)}


def verdict(r, target):
    if r is None:
        return "—"
    return "%.2f %s" % (r, "ok" if r <= target else "**over %.1f**" % target)


def git_head():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "-C", here, "rev-parse", "--short",
                               "HEAD"],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out")
    ap.add_argument("--engine-note", default="")
    ap.add_argument("--settings", default="")
    ap.add_argument("--rows", default="")
    ap.add_argument("--repeat", default="")
    ap.add_argument("--pgbench", default="")
    ap.add_argument("--batch-time-ms", type=float)
    a = ap.parse_args()
    d = load(a.raw)
    variants = []
    for (v, _k) in d:
        # the small variant has a section of its own
        if v not in variants and v != "small":
            variants.append(v)
    has_job = any(k == "job" for (_v, k) in d)
    has_oltp = any(k.startswith("oltp_") for (_v, k) in d)

    L = []
    L.append("# bulkdelete benchmark results")
    L.append("")
    L.append("- date: %s, commit %s" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), git_head()))
    L.append("- dataset: %s contacts, candidates `status = 'closed' AND "
             "created_at < '2021-08-23'` (48%%), medians of %s runs, each on a "
             "fresh copy, prewarmed, after a CHECKPOINT" % (a.rows, a.repeat))
    L.append("- server: %s" % a.settings)
    L.append("- %s" % a.engine_note)
    if has_oltp:
        L.append("- pgbench: %s (sql/oltp.pgbench); latency and TPS counted "
                 "over the transactions that completed while the delete ran "
                 "(the whole run after the lead for \"alone\")" % a.pgbench)
    L.append("")

    # --- time and WAL --------------------------------------------------
    L.append("## Wall time and WAL")
    L.append("")
    L.append("Job time is from `submit` until `wait` returns. For `restrict` "
             "the plain DELETE deletes only the candidates without a "
             "restricting child (`AND NOT EXISTS (...)`), the rows a job can "
             "delete; a plain DELETE of every candidate fails as a whole. "
             "The restrict job is held to %.1f× the no-failure job on the same "
             "schema (`restrict0`: same foreign key, no candidate blocked); "
             "its ratio to the `base` job (no foreign key, so no RI check per "
             "row) is shown for information. The id-list variants are held "
             "to their own targets: `upload` (an upload job of the ids "
             "against DELETE ... = ANY in chunks of 10,000) %.1f× time and "
             "%.2f× WAL, `records` (delete_records of 500 ids against one "
             "DELETE ... = ANY, 40 calls) %.1f× time."
             % (TARGET_RESTRICT, VARIANT_TARGETS["upload"][0],
                VARIANT_TARGETS["upload"][1], VARIANT_TARGETS["records"][0]))
    L.append("")
    L.append("| variant | what | median s | WAL MB | job/plain time (≤%.1f) "
             "| job/plain WAL (≤%.1f) | job/no-failure job time (≤%.1f) "
             "| job/base job time |"
             % (TARGET_TIME, TARGET_WAL, TARGET_RESTRICT))
    L.append("|---|---|---|---|---|---|---|---|")
    base_job = med(d, "base", "job", "seconds")
    nofail_job = med(d, "restrict0", "job", "seconds")
    for v in variants:
        ps = med(d, v, "plain", "seconds")
        pw = med(d, v, "plain", "wal_bytes")
        L.append("| %s | plain DELETE | %s | %s | | | | |"
                 % (v, fmt(ps), fmt(pw and pw / 1e6, "%.1f")))
        if v == "restrict" and texts(d, v, "plain_all", "outcome"):
            L.append("| %s | plain DELETE of all candidates | %s | | | | | "
                     "fails: %s |"
                     % (v, fmt(med(d, v, "plain_all", "seconds")),
                        texts(d, v, "plain_all", "outcome")[0]))
        if has_job:
            js = med(d, v, "job", "seconds")
            jw = med(d, v, "job", "wal_bytes")
            rn = verdict(ratio(js, nofail_job), TARGET_RESTRICT) \
                if v == "restrict" else ""
            rb = fmt(ratio(js, base_job), "%.2f") if v != "base" else ""
            tt, tw = VARIANT_TARGETS.get(v, (TARGET_TIME, TARGET_WAL))
            L.append("| %s | job | %s | %s | %s | %s | %s | %s |"
                     % (v, fmt(js), fmt(jw and jw / 1e6, "%.1f"),
                        verdict(ratio(js, ps), tt),
                        verdict(ratio(jw, pw), tw), rn, rb))
        else:
            L.append("| %s | job | %s | | | | | |" % (v, a.engine_note))
    L.append("")

    # --- the job rows ----------------------------------------------------
    if has_job:
        L.append("## Jobs")
        L.append("")
        L.append("Counters from `bulkdelete.operation` (median; the check "
                 "column compares every run with the data: failures = "
                 "candidates with a restricting child, success = the rest, "
                 "candidates left = failures). Peak RSS is the worker's "
                 "VmHWM, which counts the shared buffers it touched; private "
                 "is the highest RssAnon sampled, the memory that must stay "
                 "under %d MB. Longest transaction is sampled from "
                 "`pg_stat_activity` every 0.1 s." % TARGET_RSS_MB)
        L.append("")
        L.append("| variant | state | candidates | success | failure | skipped "
                 "| cascade | batches | peak RSS MB | private MB | longest xact s "
                 "| check |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for v in variants:
            g = lambda key: med(d, v, "job", key)
            states = sorted(set(texts(d, v, "job", "state")))
            ok = True
            notes = []
            runs = list(zip(texts(d, v, "job", "state"),
                            texts(d, v, "job", "candidates"),
                            texts(d, v, "job", "blocked"),
                            texts(d, v, "job", "success_count"),
                            texts(d, v, "job", "failure_count"),
                            texts(d, v, "job", "candidate_count"),
                            texts(d, v, "job", "left"),
                            texts(d, v, "job", "total_before"),
                            texts(d, v, "job", "total_after")))
            if not runs:
                ok = False
                notes.append("no completed job: %s" % "; ".join(
                    texts(d, v, "job", "error"))[:200])
            for st, cands, blocked, succ, fail, cc, left, tb, ta in runs:
                c, b = int(cands), int(blocked)
                if st != "succeeded":
                    ok = False
                    notes.append("state %s" % st)
                if int(cc) != c:
                    ok = False
                    notes.append("candidate_count %s, expected %d" % (cc, c))
                if int(fail) != b or int(succ) != c - b or int(left) != b:
                    ok = False
                    notes.append("success %s failure %s left %s, expected "
                                 "%d/%d/%d" % (succ, fail, left, c - b, b, b))
                if int(ta) != int(tb) - int(succ):
                    ok = False
                    notes.append("%s rows before, %s after, %s deleted: rows "
                                 "outside the candidates were deleted" % (tb, ta, succ))
            errs = [e for e in texts(d, v, "job", "error") if e not in ("-", "")]
            if errs:
                notes.append("error: %s" % errs[0].replace("_", " "))
            hwm = maxof(d, v, "job", "vm_hwm_kb")
            anon = maxof(d, v, "job", "rss_anon_peak_kb")
            longest = maxof(d, v, "job", "longest_xact_s")
            if not maxof(d, v, "job", "samples"):
                # the worker came and went between two polls
                hwm = anon = longest = None
                notes.append("worker never sampled")
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                     % (v, "/".join(states), fmt(g("candidate_count"), "%.0f"),
                        fmt(g("success_count"), "%.0f"),
                        fmt(g("failure_count"), "%.0f"),
                        fmt(g("skipped_count"), "%.0f"),
                        fmt(g("cascade_count"), "%.0f"),
                        fmt(g("batches"), "%.0f"),
                        fmt(hwm and hwm / 1024, "%.0f"),
                        fmt(anon and anon / 1024, "%.0f") + (
                            "" if anon is None or anon / 1024 < TARGET_RSS_MB
                            else " **over**"),
                        fmt(longest, "%.2f") + (
                            "" if a.batch_time_ms is None or longest is None
                            or longest * 1000 <= 2 * a.batch_time_ms
                            else " **over 2×batch_time**"),
                        "ok" if ok else "**" + "; ".join(notes) + "**"))
        if a.batch_time_ms is not None:
            L.append("")
            L.append("`bulkdelete.batch_time` = %g ms; the longest batch "
                     "transaction must stay under twice that." % a.batch_time_ms)
        L.append("")

    # --- CSV upload against COPY (variant upload) ------------------------------
    if ("upload", "upload_csv") in d:
        cs, cw = med(d, "upload", "copy", "seconds"), med(d, "upload", "copy", "wal_bytes")
        us, uw = (med(d, "upload", "upload_csv", "seconds"),
                  med(d, "upload", "upload_csv", "wal_bytes"))
        L.append("## CSV upload against COPY")
        L.append("")
        L.append("The ids of the `upload` variant as a CSV file with a header: "
                 "`COPY` into a new one-column table against "
                 "`bulkdelete.upload(job, pg_read_file(...))` to a new job, "
                 "on one fresh copy (medians).")
        L.append("")
        L.append("| what | rows | median s | WAL MB | upload/COPY time |")
        L.append("|---|---|---|---|---|")
        L.append("| COPY | %s | %s | %s | |" % (
            texts(d, "upload", "copy", "rows")[0], fmt(cs), fmt(cw and cw / 1e6, "%.1f")))
        L.append("| upload (CSV) | %s | %s | %s | %s |" % (
            texts(d, "upload", "upload_csv", "rows")[0], fmt(us),
            fmt(uw and uw / 1e6, "%.1f"), fmt(ratio(us, cs), "%.2f")))
        L.append("")

    # --- OLTP ----------------------------------------------------------------
    if has_oltp:
        L.append("## Concurrent OLTP")
        L.append("")
        L.append("| variant | pgbench | delete s | TPS | p50 ms | p99 ms "
                 "| p99 / alone (≤%.1f) | max ms | longest job xact s |"
                 % TARGET_P99)
        L.append("|---|---|---|---|---|---|---|---|---|")
        for v in variants:
            idle = med(d, v, "oltp_alone", "p99_ms")
            for mode, label in (("alone", "alone"), ("plain", "with plain DELETE"),
                                ("job", "with job")):
                k = "oltp_" + mode
                if (v, k) not in d:
                    if mode == "job":
                        L.append("| %s | %s | %s | | | | | | |"
                                 % (v, label, a.engine_note))
                    continue
                p99 = med(d, v, k, "p99_ms")
                short = sum(1 for c in texts(d, v, k, "covered") if c == "0")
                if short:
                    label += " (pgbench ended before the delete in %d run%s)" % (
                        short, "" if short == 1 else "s")
                L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                         % (v, label,
                            "" if mode == "alone" else fmt(med(d, v, k, "op_seconds")),
                            fmt(med(d, v, k, "tps"), "%.0f"),
                            fmt(med(d, v, k, "p50_ms"), "%.2f"),
                            fmt(p99, "%.2f"),
                            "" if mode == "alone" else
                            verdict(ratio(p99, idle), TARGET_P99),
                            fmt(med(d, v, k, "max_ms"), "%.1f"),
                            fmt(maxof(d, v, k, "longest_xact_s"), "%.2f")
                            if mode == "job" else ""))
        L.append("")

    # --- the small job -------------------------------------------------------
    if ("small", "small_job") in d:
        jm = med(d, "small", "small_job", "ms")
        pm = med(d, "small", "small_plain", "ms")
        jb = med(d, "small", "small_job", "blocks")
        pb = med(d, "small", "small_plain", "blocks")
        n = len(texts(d, "small", "small_job", "ms"))
        states = sorted(set(texts(d, "small", "small_job", "state")))
        dels = sorted(set(texts(d, "small", "small_job", "deleted")))
        L.append("## Small job")
        L.append("")
        L.append("A job deleting 10 rows of `contact` through its primary key "
                 "(`id > n AND id <= n + 10`), %d times on one copy, each time "
                 "followed by the plain DELETE of 10 other rows; times are "
                 "taken in the submitting session, which stays connected. "
                 "Blocks are what each read of `contact` and its indexes "
                 "(`pg_statio_user_tables`: heap and index blocks, hit or read). "
                 "Job states %s, rows deleted per job %s."
                 % (n, ", ".join(states), ", ".join(dels)))
        L.append("")
        L.append("| what | median ms | min ms | max ms | median blocks "
                 "| submit → wait ≤ %g ms |" % TARGET_SMALL_MS)
        L.append("|---|---|---|---|---|---|")
        for kind, label in (("small_job", "job, submit → wait returns"),
                            ("small_plain", "plain DELETE")):
            vals = [num(x) for x in texts(d, "small", kind, "ms")]
            vals = [x for x in vals if x is not None]
            L.append("| %s | %s | %s | %s | %s | %s |"
                     % (label, fmt(med(d, "small", kind, "ms"), "%.2f"),
                        fmt(min(vals) if vals else None, "%.2f"),
                        fmt(max(vals) if vals else None, "%.2f"),
                        fmt(med(d, "small", kind, "blocks"), "%.0f"),
                        ("ok" if jm is not None and jm <= TARGET_SMALL_MS
                         else "**over**") if kind == "small_job" else ""))
        L.append("")
        L.append("job/plain blocks: %s (the job reads the plain DELETE's "
                 "blocks twice: once to fix its candidates through the index "
                 "at its start, once to delete them by TID)"
                 % fmt(ratio(jb, pb), "%.2f"))
        L.append("")

    text = "\n".join(L)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
