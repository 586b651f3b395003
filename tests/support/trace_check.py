#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check a weft trace (Chrome Trace Event JSON) and summarise it.

Usage: trace_check.py TRACE.json

Exits 1 when the file is not valid JSON or not a trace. Otherwise prints one
fact per line, for the tests to compare with what they expect:
  valid 1
  threads N            threads with slices
  rows N               threads with slices or instants (rows of a view)
  dropped N            otherData.dropped
  bad_dur N            complete events with a negative or missing duration
  bad_nesting N        slices that overlap a sibling or outlive their parent
  unmatched N          B/E events without a partner on their thread
  unfinished N         slices flagged unfinished
  instant NAME N       instant events by name
  task LABEL ID PARENT UNFINISHED
                       one line per task slice (PARENT 0: none;
                       UNFINISHED 1 when closed by the writer)
  wait KIND IN_TASK    one line per wait slice; IN_TASK is the label of the
                       innermost task slice around it on its thread, or -
"""
import json
import sys
from collections import Counter, defaultdict

EPS = 0.0015  # us: timestamps are written to the ns, rounded


def main(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print("invalid %s" % e, file=sys.stderr)
        return 1
    if not isinstance(data, dict) or not isinstance(
            data.get("traceEvents"), list):
        print("invalid: no traceEvents list", file=sys.stderr)
        return 1
    if data.get("displayTimeUnit") != "ns":
        print("invalid: displayTimeUnit is not ns", file=sys.stderr)
        return 1
    slices = defaultdict(list)
    instants = Counter()
    rows = set()
    open_b = defaultdict(list)
    bad_dur = unmatched = 0
    for e in data["traceEvents"]:
        ph, tid = e.get("ph"), e.get("tid")
        if ph in ("X", "B", "E", "i", "I"):
            rows.add((e.get("pid"), tid))
        if ph == "X":
            dur = e.get("dur")
            if not isinstance(dur, (int, float)) or dur < 0:
                bad_dur += 1
                continue
            slices[tid].append((e["ts"], dur, e))
        elif ph == "B":
            open_b[tid].append(e)
        elif ph == "E":
            if open_b[tid]:
                b = open_b[tid].pop()
                slices[tid].append((b["ts"], e["ts"] - b["ts"], b))
            else:
                unmatched += 1
        elif ph in ("i", "I"):
            instants[e.get("name")] += 1
    unmatched += sum(len(v) for v in open_b.values())

    bad_nesting = unfinished = 0
    tasks, waits = [], []
    for tid, sl in slices.items():
        sl.sort(key=lambda s: (s[0], -s[1]))
        stack = []  # (end, event)
        for ts, dur, e in sl:
            while stack and stack[-1][0] <= ts + EPS:
                stack.pop()
            if stack and ts + dur > stack[-1][0] + EPS:
                bad_nesting += 1
            args = e.get("args", {})
            if args.get("unfinished"):
                unfinished += 1
            if e.get("cat") == "task":
                tasks.append((args.get("label", ""), args.get("id", 0),
                              args.get("parent", 0),
                              1 if args.get("unfinished") else 0))
            elif e.get("cat") == "wait":
                outer = "-"
                for _, o in reversed(stack):
                    if o.get("cat") == "task":
                        outer = o["args"].get("label") or "-"
                        break
                waits.append((e["name"][5:].replace(" ", "_"), outer))
            stack.append((ts + dur, e))

    print("valid 1")
    print("threads %d" % len(slices))
    print("rows %d" % len(rows))
    print("dropped %d" % data.get("otherData", {}).get("dropped", -1))
    print("bad_dur %d" % bad_dur)
    print("bad_nesting %d" % bad_nesting)
    print("unmatched %d" % unmatched)
    print("unfinished %d" % unfinished)
    for name, n in sorted(instants.items()):
        print("instant %s %d" % (name, n))
    for label, tid, parent, unf in tasks:
        print("task %s %s %s %d" % (label or "-", tid, parent, unf))
    for kind, outer in waits:
        print("wait %s %s" % (kind, outer))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
