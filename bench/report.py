#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns the RESULT lines bench/run collected into the report: per (bench,
params, metric, impl) the median and spread over the repetitions, and the
ratio of each weft implementation to each peer measured in the same
repetition; writes report.json, report.csv, report.md and report.png."""

import argparse
import csv
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
from collections import OrderedDict

RESULT_RE = re.compile(
    r"^RESULT (\S+) (\S+) (\S+) ([A-Za-z][A-Za-z0-9_]*)=(\S+)$")
REP_RE = re.compile(r"^# rep (\d+)")
BENCH_ORDER = ["queue", "lock", "event", "sem", "fib", "parallel-reduce",
               "parallel-for", "submit", "submit-future", "roundtrip", "idle",
               "pipeline"]
# Peers in the order a reader wants them: the hand-rolled floor first.
PEER_ORDER = ["mutex-ring", "moodycamel", "python-queue", "pthread",
              "pthread-cond", "posix-sem", "serial", "naive-pool",
              "thread-per-stage", "omp",
              "tbb", "tbb-enqueue", "tbb-execute", "python-threadpool"]

# Metrics where a larger figure is better; every other metric is a cost
# (time, CPU), where smaller is better. Rates end in _per_s.
HIGHER_IS_BETTER = {"speedup"}
LOWER_IS_BETTER = {"cpu_ms_per_idle_s"}
# Costs worth a panel of the plot too (rates and speedups always get one).
PLOT_COSTS = [("fib", "spawn_ns"), ("roundtrip", "us_per_rt"),
              ("idle", "cpu_ms_per_idle_s"), ("pipeline", "cpu_ns_per_item")]

# The figures weft is held to (from PERFORMANCE.md), checked on the medians.
# "params" may list alternatives: the first one measured is checked (the
# quick run uses smaller sizes).
FIB = ["n=35", "n=32", "n=30"]
PIPE_TRIVIAL = "work=trivial,workers=2,in_flight=8"
PIPE_SMALL = "work=small,workers=2,in_flight=8"
TARGETS = [
    {"what": "queue 2P2C bounded blocking: weft >= 20M items/s",
     "kind": "value", "bench": "queue", "params": "p=2,c=2,cap=1024",
     "metric": "items_per_s", "impl": "weft", "min": 20e6},
    {"what": "queue 2P2C: weft >= 3x mutex-ring, same run",
     "kind": "ratio", "bench": "queue", "params": "p=2,c=2,cap=1024",
     "metric": "items_per_s", "impl": "weft", "peer": "mutex-ring",
     "min": 3.0},
    {"what": "lock uncontended: weft ns per lock/unlock pair <= pthread's",
     "kind": "ratio", "bench": "lock", "params": "threads=1",
     "metric": "ns_per_pair", "impl": "weft", "peer": "pthread",
     "max": 1.0},
    {"what": "fib, 1 worker: weft overhead <= 5 ns per spawn",
     "kind": "value", "bench": "fib", "params": FIB, "metric": "spawn_ns",
     "impl": "weft", "max": 5.0},
    {"what": "fib: weft speedup on 2 workers >= 1.8x",
     "kind": "value", "bench": "fib", "params": FIB, "metric": "speedup",
     "impl": "weft", "min": 1.8},
    {"what": "parallel_reduce, 2 workers: weft time <= 1.1x OpenMP static",
     "kind": "ratio", "bench": "parallel-reduce", "params": "workers=2",
     "metric": "ms", "impl": "weft", "peer": "omp", "max": 1.1},
    {"what": "parallel_reduce: weft speedup on 2 workers >= 1.8x",
     "kind": "value", "bench": "parallel-reduce", "params": "workers=2",
     "metric": "speedup", "impl": "weft", "min": 1.8},
    {"what": "parallel_for, 2 workers: weft time <= 1.1x OpenMP static",
     "kind": "ratio", "bench": "parallel-for", "params": "workers=2",
     "metric": "ms", "impl": "weft", "peer": "omp", "max": 1.1},
    {"what": "parallel_for: weft speedup on 2 workers >= 1.8x",
     "kind": "value", "bench": "parallel-for", "params": "workers=2",
     "metric": "speedup", "impl": "weft", "min": 1.8},
    {"what": "submit from outside, fire-and-forget: weft >= 10M tasks/s",
     "kind": "value", "bench": "submit", "params": "workers=2",
     "metric": "tasks_per_s", "impl": "weft", "min": 10e6},
    {"what": "submit: weft >= 2.5x oneTBB arena enqueue, same run",
     "kind": "ratio", "bench": "submit", "params": "workers=2",
     "metric": "tasks_per_s", "impl": "weft", "peer": "tbb", "min": 2.5},
    {"what": "submit: weft >= 200x Python ThreadPoolExecutor, same run",
     "kind": "ratio", "bench": "submit", "params": "workers=2",
     "metric": "tasks_per_s", "impl": "weft", "peer": "python-threadpool",
     "min": 200.0},
    {"what": "submit with metrics on: >= 0.95x metrics off (<= 5% cost)",
     "kind": "ratio", "bench": "submit", "params": "workers=2",
     "metric": "tasks_per_s", "impl": "weft-metrics", "peer": "weft",
     "min": 0.95},
    {"what": "submit with a trace recording: its cost against everything "
             "off (reported, no target)",
     "kind": "ratio", "bench": "submit", "params": "workers=2",
     "metric": "tasks_per_s", "impl": "weft-trace", "peer": "weft"},
    {"what": "submit with a future each, all waited: weft >= 4M tasks/s",
     "kind": "value", "bench": "submit-future", "params": "workers=2",
     "metric": "tasks_per_s", "impl": "weft", "min": 4e6},
    {"what": "submit-then-wait round trip, warm pool: weft <= 1.5 µs",
     "kind": "value", "bench": "roundtrip", "params": "workers=2",
     "metric": "us_per_rt", "impl": "weft", "max": 1.5},
    {"what": "idle pool: weft <= 1 CPU ms per idle second (~0)",
     "kind": "value", "bench": "idle", "params": "workers=2",
     "metric": "cpu_ms_per_idle_s", "impl": "weft", "max": 1.0},
    {"what": "pipeline, ~1 µs stages: weft >= oneTBB parallel_pipeline, "
     "same run",
     "kind": "ratio", "bench": "pipeline", "params": PIPE_SMALL,
     "metric": "items_per_s", "impl": "weft", "peer": "tbb", "min": 1.0},
    {"what": "pipeline, trivial stages: weft >= 3x a thread per stage with "
     "mutex+condvar queues, same run",
     "kind": "ratio", "bench": "pipeline", "params": PIPE_TRIVIAL,
     "metric": "items_per_s", "impl": "weft", "peer": "thread-per-stage",
     "min": 3.0},
]


def is_weft(impl):
    return impl == "weft" or impl.startswith("weft-")


def higher_is_better(metric):
    if metric in HIGHER_IS_BETTER:
        return True
    return metric.endswith("_per_s") and metric not in LOWER_IS_BETTER


def parse_raw(path):
    """{(bench, params, metric): {impl: {rep: value}}}, in first-seen order."""
    data = OrderedDict()
    rep = 1
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            m = REP_RE.match(line)
            if m:
                rep = int(m.group(1))
                continue
            m = RESULT_RE.match(line)
            if not m:
                continue
            bench, impl, params, metric, value = m.groups()
            try:
                v = float(value)
            except ValueError:
                continue
            # Zero is a valid cost (an idle pool that used no CPU).
            if not math.isfinite(v) or v < 0:
                continue
            key = (bench, params, metric)
            data.setdefault(key, OrderedDict()).setdefault(impl, {})[rep] = v
    return data


def sort_keys(data):
    def order(key):
        bench = key[0]
        b = BENCH_ORDER.index(bench) if bench in BENCH_ORDER else 99
        return (b, bench)
    keys = list(data.keys())
    return sorted(keys, key=lambda k: (order(k), keys.index(k)))


def impl_order(impls):
    weft = [i for i in impls if is_weft(i)]
    weft.sort(key=lambda i: (i != "weft", i))
    peers = [i for i in impls if not is_weft(i)]
    peers.sort(key=lambda i: PEER_ORDER.index(i) if i in PEER_ORDER else 99)
    return weft + peers


def summarize(values):
    v = sorted(values)
    med = statistics.median(v)
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    else:
        q1 = q3 = v[0]
    return {
        "reps": len(v), "median": med, "min": v[0], "max": v[-1],
        "q1": q1, "q3": q3,
        "spread_pct": 100.0 * (v[-1] - v[0]) / med if med else None,
        "iqr_pct": 100.0 * (q3 - q1) / med if med else None,
        "values": values,
    }


def build(data):
    results, ratios = [], []
    for key in sort_keys(data):
        bench, params, metric = key
        per_impl = data[key]
        for impl in impl_order(per_impl.keys()):
            reps = per_impl[impl]
            s = summarize([reps[r] for r in sorted(reps)])
            s.update({"bench": bench, "params": params, "metric": metric,
                      "impl": impl,
                      "higher_is_better": higher_is_better(metric)})
            results.append(s)
        for w in impl_order(per_impl.keys()):
            if not is_weft(w):
                continue
            for p in per_impl:
                # Peers, and plain weft for its variants (weft-metrics,
                # weft-trace: the cost of an option, measured in the same
                # run).
                if is_weft(p) and (p != "weft" or w == "weft"):
                    continue
                # A peer's zero (an idle pool using no CPU) has no ratio.
                both = sorted(r for r in set(per_impl[w]) & set(per_impl[p])
                              if per_impl[p][r] > 0)
                if not both:
                    continue
                r = [per_impl[w][i] / per_impl[p][i] for i in both]
                ratios.append({
                    "bench": bench, "params": params, "metric": metric,
                    "weft": w, "peer": p, "reps": len(r),
                    "median": statistics.median(r), "min": min(r),
                    "max": max(r),
                    "higher_is_better": higher_is_better(metric)})
    return results, ratios


def find(rows, **kw):
    for row in rows:
        if all(row.get(k) == v for k, v in kw.items()):
            return row
    return None


def check_targets(results, ratios):
    out = []
    for t in TARGETS:
        params = t["params"]
        row = None
        for p in params if isinstance(params, list) else [params]:
            sel = {"bench": t["bench"], "params": p, "metric": t["metric"]}
            if t["kind"] == "value":
                row = find(results, impl=t["impl"], **sel)
            else:
                row = find(ratios, weft=t["impl"], peer=t["peer"], **sel)
            if row:
                break
        value = row["median"] if row else None
        if value is None:
            status = "not measured"
        elif "min" in t:
            status = "met" if value >= t["min"] else "not met"
        elif "max" in t:
            status = "met" if value <= t["max"] else "not met"
        else:
            status = "reported"
        out.append({"target": t["what"], "kind": t["kind"],
                    "value": value, "status": status})
    return out


def si(x):
    """3 significant digits with a k/M/G suffix: 21300000 -> '21.3 M'."""
    for div, suf in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(x) >= div:
            return "%.3g%s" % (x / div, suf)
    return "%.3g" % x


def unit(metric, bench=None):
    if metric == "speedup":
        return ("speedup, 2 workers over 1" if bench == "fib"
                else "speedup over serial")
    names = {"items_per_s": "items/s", "ops_per_s": "lock/unlock pairs/s",
             "ns_per_pair": "ns per lock/unlock pair",
             "rt_per_s": "round trips/s", "us_per_rt": "µs per round trip",
             "tasks_per_s": "tasks/s", "ms": "ms",
             "spawn_ns": "ns of overhead per spawn, 1 worker, vs serial",
             "cpu_ms_per_idle_s": "CPU ms per idle second",
             "cpu_ns_per_item": "CPU ns per item (every thread)"}
    return names.get(metric, metric)


def write_json(path, meta, results, ratios, targets):
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "results": results, "ratios": ratios,
                   "targets": targets}, f, indent=2)
        f.write("\n")


def write_csv(path, results, ratios):
    wefts = impl_order({r["weft"] for r in ratios})
    cols = ["bench", "params", "metric", "higher_is_better", "impl", "reps",
            "median", "min", "max", "q1", "q3", "spread_pct", "iqr_pct"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(cols + ["ratio_%s_over_impl" % w for w in wefts])
        for r in results:
            row = [r[c] for c in cols]
            for w in wefts:
                x = find(ratios, bench=r["bench"], params=r["params"],
                         metric=r["metric"], weft=w, peer=r["impl"])
                row.append("%.4g" % x["median"] if x else "")
            out.writerow(row)


def pct(x):
    return "—" if x is None else "%.0f%%" % x


def md_ratio(x):
    if x is None:
        return ""
    if x["reps"] == 1:
        return "%.3gx" % x["median"]
    return "%.3gx (%.3g–%.3g)" % (x["median"], x["min"], x["max"])


def md_table(lines, key, results, ratios):
    bench, metric = key
    rows = [r for r in results if r["bench"] == bench and r["metric"] == metric]
    wefts = impl_order({x["weft"] for x in ratios
                        if x["bench"] == bench and x["metric"] == metric})
    better = ("higher is better" if higher_is_better(metric)
              else "lower is better: a weft ÷ impl ratio below 1 favours "
              "weft")
    lines.append("### %s: %s (%s)" % (bench, unit(metric, bench), better))
    lines.append("")
    head = ["params", "impl", "median", "min .. max", "spread", "IQR"]
    head += ["%s ÷ impl" % w for w in wefts]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|---|" + "---:|" * (len(head) - 2))
    for r in rows:
        cells = [r["params"], r["impl"], si(r["median"])]
        if r["reps"] > 1:
            cells += ["%s .. %s" % (si(r["min"]), si(r["max"])),
                      pct(r["spread_pct"]), pct(r["iqr_pct"])]
        else:
            cells += ["—", "—", "—"]
        for w in wefts:
            cells.append(md_ratio(find(ratios, bench=bench,
                                       params=r["params"], metric=metric,
                                       weft=w, peer=r["impl"])))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")


def md_targets(lines, targets, meta):
    lines.append("## Targets")
    lines.append("")
    if meta.get("quick") == "1":
        lines.append("Quick run (small sizes, one repetition): the figures "
                     "only show that everything builds and runs.")
        lines.append("")
    lines.append("| target | median | status |")
    lines.append("|---|---:|---|")
    for t in targets:
        v = t["value"]
        if v is None:
            shown = "—"
        elif t["kind"] == "ratio":
            shown = "%.3gx" % v
        else:
            shown = si(v)
        lines.append("| %s | %s | %s |" % (t["target"], shown, t["status"]))
    lines.append("")


def write_md(path, meta, results, ratios, targets, failures):
    reps = meta.get("reps", "?")
    lines = ["# weft benchmark report", ""]
    lines.append("%s · %s · %s CPUs · %s · %s repetition(s)%s · commit %s"
                 % (meta.get("date", "?"), meta.get("host", "?"),
                    meta.get("cpus", "?"), meta.get("cc", "?"), reps,
                    " (quick sizes)" if meta.get("quick") == "1" else "",
                    meta.get("commit", "?")))
    lines.append("")
    if meta.get("only"):
        lines.append("Only the program runs matching \"%s\" were run."
                     % meta["only"])
        lines.append("")
    lines.append(
        "Every implementation ran in each repetition, interleaved (the order "
        "rotates from one repetition to the next). *median*, *min .. max* "
        "and *IQR* are over the repetitions; *spread* is (max − min) / "
        "median. *weft ÷ impl* is weft's figure divided by the peer's from "
        "the same repetition: the median of those ratios, with their range "
        "in parentheses. For rates and speedups, above 1 favours weft; for "
        "times and other costs (lower is better), below 1 does.")
    lines.append("")
    if failures:
        lines.append("**Failures:** " + "; ".join(failures))
        lines.append("")
    md_targets(lines, targets, meta)
    lines.append("## Results")
    lines.append("")
    seen = []
    for r in results:
        key = (r["bench"], r["metric"])
        if key not in seen:
            seen.append(key)
    # Rates first in each bench, then the per-operation times.
    benches = [b for b, _ in seen]
    seen.sort(key=lambda k: (benches.index(k[0]), not higher_is_better(k[1])))
    for key in seen:
        md_table(lines, key, results, ratios)
    if meta.get("skipped"):
        lines.append("Skipped: %s." % meta["skipped"])
        lines.append("")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def short_label(params):
    m = re.match(r"^p=(\d+),c=(\d+)", params)
    if m:
        return "%sP%sC" % m.groups()
    m = re.match(r"^work=(\w+),workers=(\d+)", params)
    if m:
        return "%s, %s workers" % m.groups()
    m = re.match(r"^(n=\d+,)?(threads|workers)=(\d+)$", params)
    if m:
        n, what, count = m.groups()
        if count == "1":
            what = what[:-1]
        return "%s%s %s" % (n.replace(",", ", ") if n else "", count, what)
    return params


def gnuplot_terminal(gp):
    try:
        out = subprocess.run([gp, "-e", "set terminal"], capture_output=True,
                             text=True, timeout=30)
        text = out.stdout + out.stderr
    except (OSError, subprocess.SubprocessError):
        return "png"
    return "pngcairo" if "pngcairo" in text else "png"


def plot_panel(script, datfile, bench, metric, rows):
    impls = impl_order(list(OrderedDict.fromkeys(r["impl"] for r in rows)))
    params = list(OrderedDict.fromkeys(r["params"] for r in rows))
    with open(datfile, "w", encoding="utf-8") as f:
        for p in params:
            cells = ['"%s"' % short_label(p)]
            for i in impls:
                r = find(rows, params=p, impl=i)
                cells += (["%g" % r["median"], "%g" % r["min"],
                           "%g" % r["max"]] if r else ["NaN"] * 3)
            f.write(" ".join(cells) + "\n")
    lo = min(r["min"] for r in rows)
    hi = max(r["max"] for r in rows)
    # A zero (an idle pool using no CPU) has no place on a log scale.
    log = lo > 0 and hi / lo > 20
    if hi <= 0:
        hi = 1.0
    script.append('set title "%s: %s (median; bars: min..max%s)"'
                  % (bench, unit(metric, bench), "" if higher_is_better(metric)
                     else "; lower is better"))
    script.append("set logscale y" if log else "unset logscale y")
    script.append("set yrange [%g:%g]" % ((lo / 2, hi * 20) if log
                                          else (0, hi * 1.4)))
    plots = []
    n = len(impls)
    for k, impl in enumerate(impls):
        plots.append("'%s' using %d:%d:%d:xtic(1) title '%s'"
                     % (datfile, 2 + 3 * k, 3 + 3 * k, 4 + 3 * k, impl))
    # The median above each bar's whisker: the bars of a cluster of n sit
    # 1/(n+1) apart (gap 1), centred on the row number.
    for k in range(n):
        plots.append("'%s' using ($0 + %g):($%d * %g):(gprintf('%%.1s%%c', "
                     "$%d)) with labels rotate left offset 0,0.4 "
                     "font ',8' notitle"
                     % (datfile, (k - (n - 1) / 2.0) / (n + 1), 4 + 3 * k,
                        1.15 if log else 1.0, 2 + 3 * k))
    script.append("plot " + ", ".join(plots))


def write_png(outdir, results):
    gp = shutil.which("gnuplot")
    if gp is None:
        print("bench: gnuplot not found: no report.png "
              "(apt-get install gnuplot-nox)", file=sys.stderr)
        return False
    panels = []
    for r in results:
        key = (r["bench"], r["metric"])
        if ((higher_is_better(r["metric"]) or key in PLOT_COSTS)
                and key not in panels):
            panels.append(key)
    if not panels:
        return False
    rows_n = (len(panels) + 1) // 2
    script = [
        "set terminal %s size 1400,%d font 'sans,10'"
        % (gnuplot_terminal(gp), 450 * rows_n),
        "set output '%s/report.png'" % outdir,
        "set style data histogram",
        "set style histogram errorbars gap 1 lw 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set grid ytics",
        "set key top left horizontal",
        "set format y '%.1s%c'",
        "set datafile missing 'NaN'",
        "set multiplot layout %d,2 title 'weft and its peers, same run'"
        % rows_n,
    ]
    for n, (bench, metric) in enumerate(panels):
        rows = [r for r in results
                if r["bench"] == bench and r["metric"] == metric]
        plot_panel(script, "%s/plot-%d.dat" % (outdir, n), bench, metric,
                   rows)
    script.append("unset multiplot")
    path = "%s/report.gp" % outdir
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(script) + "\n")
    res = subprocess.run([gp, path], capture_output=True, text=True)
    if res.returncode != 0:
        print("bench: gnuplot failed:\n" + res.stderr, file=sys.stderr)
        return False
    return True


def read_meta(path):
    meta = OrderedDict()
    if path:
        with open(path, encoding="utf-8") as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep:
                    meta[k] = v
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw", required=True, help="raw.txt from bench/run")
    ap.add_argument("--meta", help="key=value lines about the run")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--failure", action="append", default=[],
                    help="a failure to list in the report (repeatable)")
    args = ap.parse_args()

    meta = read_meta(args.meta)
    data = parse_raw(args.raw)
    if not data:
        print("bench: no RESULT lines in %s" % args.raw, file=sys.stderr)
        return 1
    results, ratios = build(data)
    targets = check_targets(results, ratios)
    write_json("%s/report.json" % args.out, meta, results, ratios, targets)
    write_csv("%s/report.csv" % args.out, results, ratios)
    write_md("%s/report.md" % args.out, meta, results, ratios, targets,
             args.failure)
    write_png(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
