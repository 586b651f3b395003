/* SPDX-License-Identifier: MIT */
/*
 * The C++ peer of bench_queue: moodycamel::BlockingConcurrentQueue moving
 * 8-byte items from 1, 2 and 4 producers to as many consumers, bounded to
 * 1024 items in flight, checked the same way. Prints RESULT lines as
 * impl "moodycamel".
 */
#include <pthread.h>

#include <blockingconcurrentqueue.h>
#include <lightweightsemaphore.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

/*
 * How it is bounded: BlockingConcurrentQueue grows without limit (its
 * constructor's capacity only pre-allocates), so a counting semaphore of
 * kCapacity permits, moodycamel's own LightweightSemaphore (spins briefly,
 * then sleeps), stands for the free slots: a producer takes a permit before
 * each enqueue and blocks while none is free; a consumer returns one after
 * each dequeue. At most kCapacity items are ever queued, and both sides
 * block, as with weft_queue_put / weft_queue_get. Producer and consumer
 * tokens, the queue's fastest path, are used.
 *
 * How it ends: the queue has no close and no FIFO order across producers (a
 * sentinel could overtake another producer's items), so each consumer takes
 * a fixed share of the items instead.
 */

namespace
{

constexpr unsigned kCapacity = 1024;
constexpr unsigned kShift = 40;
constexpr std::uint64_t kSeqMask = (std::uint64_t{1} << kShift) - 1;
constexpr unsigned kMaxThreads = 8;

using Queue = moodycamel::BlockingConcurrentQueue<std::uint64_t>;

[[noreturn]] void
fail(const char *what)
{
    std::fflush(stdout);
    std::fprintf(stderr, "bench: FAILED: %s\n", what);
    std::exit(1);
}

struct Run {
    Queue queue{kCapacity};
    moodycamel::LightweightSemaphore slots{kCapacity};
    pthread_barrier_t gate;
    unsigned producers = 0;
};

struct alignas(64) Worker {
    Run *run = nullptr;
    unsigned id = 0;
    std::uint64_t n = 0; // items to put, or to take
    std::uint64_t sum = 0;
    bool bad = false;
};

void
gate_wait(Run *run)
{
    int rc = pthread_barrier_wait(&run->gate);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) {
        fail("pthread_barrier_wait");
    }
}

void
producer(Worker *w)
{
    Queue::producer_token_t tok(w->run->queue);
    std::uint64_t base = std::uint64_t{w->id} << kShift;

    gate_wait(w->run);
    for (std::uint64_t k = 1; k <= w->n; k++) {
        w->run->slots.wait();
        if (!w->run->queue.enqueue(tok, base | k)) {
            w->bad = true;
            return;
        }
    }
}

void
consumer(Worker *w)
{
    Queue::consumer_token_t tok(w->run->queue);
    std::uint64_t last[kMaxThreads] = {};
    std::uint64_t sum = 0;
    bool bad = false;

    gate_wait(w->run);
    for (std::uint64_t i = 0; i < w->n; i++) {
        std::uint64_t v;
        w->run->queue.wait_dequeue(tok, v);
        w->run->slots.signal();
        std::uint64_t p = v >> kShift;
        std::uint64_t seq = v & kSeqMask;
        if (p >= w->run->producers || seq <= last[p]) {
            bad = true;
            continue;
        }
        last[p] = seq;
        sum += v;
    }
    w->sum = sum;
    w->bad = bad;
}

std::uint64_t
share(std::uint64_t items, unsigned parts, unsigned i)
{
    return items / parts + (i < items % parts ? 1 : 0);
}

void
verify(const std::vector<Worker> &w, unsigned np, std::uint64_t items)
{
    std::uint64_t sum = 0;
    std::uint64_t want = 0;

    for (const Worker &x : w) {
        if (x.bad) {
            fail("an item was lost, duplicated or out of per-producer order");
        }
        sum += x.sum;
    }
    for (unsigned p = 0; p < np; p++) {
        std::uint64_t n = w[p].n;
        want += n * (std::uint64_t{p} << kShift) + n * (n + 1) / 2;
    }
    if (sum != want) {
        std::fprintf(stderr,
                     "moodycamel: sum %" PRIu64 ", expected %" PRIu64
                     " over %" PRIu64 " items\n",
                     sum, want, items);
        fail("wrong sum");
    }
}

double
measure(unsigned np, unsigned nc, std::uint64_t items)
{
    Run run;
    std::vector<Worker> w(np + nc);
    std::vector<std::thread> t;

    run.producers = np;
    if (pthread_barrier_init(&run.gate, nullptr, np + nc + 1) != 0) {
        fail("pthread_barrier_init");
    }
    for (unsigned i = 0; i < np + nc; i++) {
        w[i].run = &run;
        w[i].id = i;
        w[i].n = i < np ? share(items, np, i) : share(items, nc, i - np);
        if (i < np) {
            t.emplace_back(producer, &w[i]);
        } else {
            t.emplace_back(consumer, &w[i]);
        }
    }
    gate_wait(&run);
    auto start = std::chrono::steady_clock::now();
    for (std::thread &x : t) {
        x.join();
    }
    std::chrono::duration<double> secs =
        std::chrono::steady_clock::now() - start;
    pthread_barrier_destroy(&run.gate);
    verify(w, np, items);
    return static_cast<double>(items) / secs.count();
}

std::uint64_t
parse_u64(const char *s)
{
    char *end = nullptr;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (end == s || *end != '\0' || v == 0) {
        std::fprintf(stderr, "usage: bench_queue_moodycamel [-n ITEMS] "
                             "[-r REP]\n");
        std::exit(2);
    }
    return v;
}

} // namespace

int
main(int argc, char **argv)
{
    std::uint64_t items = 10000000;

    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            items = parse_u64(argv[++i]);
        } else if (std::strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            ++i; // one implementation here: nothing to rotate
        } else {
            parse_u64(""); // prints usage
        }
    }
    for (unsigned n : {1u, 2u, 4u}) {
        char params[64];
        std::snprintf(params, sizeof(params), "p=%u,c=%u,cap=%u", n, n,
                      kCapacity);
        std::printf("RESULT queue moodycamel %s items_per_s=%.6g\n", params,
                    measure(n, n, items));
        std::fflush(stdout);
    }
    return 0;
}
