#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Python peer of bench_executor: concurrent.futures.ThreadPoolExecutor
(max_workers=2) as impl "python-threadpool". Fire-and-forget submits of an
empty task, the same with every future waited on, and the submit-then-wait
round trip on a warm pool; fewer tasks than the C programs (the rate is
what is compared). Prints RESULT lines in the suite's format and exits
non-zero when a task was lost, ran twice or returned the wrong value."""

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

IMPL = "python-threadpool"
WORKERS = 2
WARM_TRIPS = 100
DEFAULTS = {"submit": 100000, "submit-future": 100000, "roundtrip": 20000}


def mark(hits, i):
    # Each task has its own slot, so no two tasks touch the same one.
    hits[i] += 1


def echo(v):
    return v


def fail(msg):
    sys.stdout.flush()
    sys.stderr.write("bench: FAILED: %s\n" % msg)
    sys.exit(1)


def check_marks(bench, hits):
    for i, h in enumerate(hits):
        if h != 1:
            fail("%s %s: task %d ran %d times" % (bench, IMPL, i, h))


def warm_pool():
    ex = ThreadPoolExecutor(max_workers=WORKERS)
    for i in range(WARM_TRIPS):
        if ex.submit(echo, i).result() != i:
            fail("warm-up: wrong result")
    return ex


def submits(n):
    """n fire-and-forget submits (the futures are dropped), then
    shutdown(wait=True), which returns when every task has run."""
    hits = [0] * n
    ex = warm_pool()
    submit = ex.submit
    start = time.perf_counter()
    for i in range(n):
        submit(mark, hits, i)
    ex.shutdown(wait=True)
    secs = time.perf_counter() - start
    check_marks("submit", hits)
    return n / secs


def submits_with_futures(n):
    """n submits, then every future waited on."""
    hits = [0] * n
    ex = warm_pool()
    submit = ex.submit
    start = time.perf_counter()
    futures = [submit(mark, hits, i) for i in range(n)]
    for f in futures:
        f.result()
    secs = time.perf_counter() - start
    ex.shutdown(wait=True)
    check_marks("submit-future", hits)
    return n / secs


def round_trips(n):
    """Median microseconds of ex.submit(echo, i).result()."""
    ex = warm_pool()
    us = []
    clock = time.perf_counter
    for i in range(n):
        start = clock()
        got = ex.submit(echo, i).result()
        us.append((clock() - start) * 1e6)
        if got != i:
            fail("roundtrip %s: got %r, expected %d" % (IMPL, got, i))
    ex.shutdown(wait=True)
    return statistics.median(us)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-b", choices=sorted(DEFAULTS),
                    help="run only this benchmark (default: all)")
    ap.add_argument("-n", type=int, help="tasks or round trips")
    ap.add_argument("-r", type=int, default=0,
                    help="repetition number (one implementation here)")
    args = ap.parse_args()
    if args.n is not None and args.n <= 0:
        ap.error("-n must be positive")
    params = "workers=%d" % WORKERS
    for bench in ("submit", "submit-future", "roundtrip"):
        if args.b not in (None, bench):
            continue
        n = args.n or DEFAULTS[bench]
        if bench == "submit":
            line = "tasks_per_s=%.6g" % submits(n)
        elif bench == "submit-future":
            line = "tasks_per_s=%.6g" % submits_with_futures(n)
        else:
            line = "us_per_rt=%.6g" % round_trips(n)
        print("RESULT %s %s %s %s" % (bench, IMPL, params, line), flush=True)


if __name__ == "__main__":
    main()
