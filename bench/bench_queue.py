#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Python peer of bench_queue: queue.Queue(maxsize=1024) with threads,
1, 2 and 4 producers and as many consumers, fewer items than the C programs
(the rate is what is compared). Prints RESULT lines in the suite's format and
exits non-zero when the consumers' totals are wrong."""

import argparse
import queue
import sys
import threading
import time

CAPACITY = 1024
SHIFT = 40
SEQ_MASK = (1 << SHIFT) - 1


def producer(q, gate, pid, n):
    put = q.put
    base = pid << SHIFT
    gate.wait()
    for k in range(1, n + 1):
        put(base | k)


def consumer(q, gate, producers, out, idx):
    # Producer p puts (p << 40) | 1 .. n_p in order; a FIFO queue hands one
    # consumer each producer's items in increasing order.
    get = q.get
    last = [0] * producers
    total = count = 0
    ok = True
    gate.wait()
    while True:
        v = get()
        if v is None:
            break
        p, seq = v >> SHIFT, v & SEQ_MASK
        if p >= producers or seq <= last[p]:
            ok = False
            continue
        last[p] = seq
        total += v
        count += 1
    out[idx] = (total, count, ok)


def measure(np_, nc, items):
    q = queue.Queue(maxsize=CAPACITY)
    gate = threading.Barrier(np_ + nc + 1)
    shares = [items // np_ + (1 if i < items % np_ else 0) for i in range(np_)]
    out = [None] * nc
    prods = [threading.Thread(target=producer, args=(q, gate, i, shares[i]))
             for i in range(np_)]
    cons = [threading.Thread(target=consumer, args=(q, gate, np_, out, j))
            for j in range(nc)]
    for t in prods + cons:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in prods:
        t.join()
    # queue.Queue is one lock around a deque, so sentinels put after every
    # producer has finished come out after every item.
    for _ in range(nc):
        q.put(None)
    for t in cons:
        t.join()
    secs = time.perf_counter() - start
    want = sum(n * (p << SHIFT) + n * (n + 1) // 2
               for p, n in enumerate(shares))
    got = sum(o[0] for o in out)
    count = sum(o[1] for o in out)
    if not all(o[2] for o in out) or got != want or count != items:
        sys.stderr.write("bench: FAILED: python-queue p=%d c=%d: %d items, "
                         "sum %d, expected %d items, sum %d\n"
                         % (np_, nc, count, got, items, want))
        sys.exit(1)
    return items / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=200000, help="items per run")
    ap.add_argument("-r", type=int, default=0,
                    help="repetition number (one implementation here)")
    args = ap.parse_args()
    if args.n <= 0:
        ap.error("-n must be positive")
    for n in (1, 2, 4):
        rate = measure(n, n, args.n)
        print("RESULT queue python-queue p=%d,c=%d,cap=%d items_per_s=%.6g"
              % (n, n, CAPACITY, rate), flush=True)


if __name__ == "__main__":
    main()
