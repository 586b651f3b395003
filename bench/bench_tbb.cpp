/* SPDX-License-Identifier: MIT */
/*
 * The oneTBB peer (Debian libtbb-dev): fib(n) with one task_group::run per
 * call on 1 and 2 threads (impl "tbb"), empty tasks enqueued into an arena
 * from outside ("tbb"), the submit-then-wait round trip ("tbb-enqueue" and
 * "tbb-execute"), parallel_reduce / parallel_for over a blocked_range
 * on 1 and 2 threads ("tbb"), and parallel_pipeline on 2 threads ("tbb").
 * Same work and checks as weft's.
 */
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <atomic>
#include <cinttypes>
#include <cstdarg>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "bench_work.h"

/*
 * How threads are counted: tbb::global_control caps the threads TBB runs
 * (workers plus the threads that join an arena) and a task_arena(N) has N
 * slots. For fork-join the calling thread joins the arena (execute), so N
 * threads work, as on weft's N workers. For the executor benchmarks the
 * calling thread stays outside, as with weft's pool: the arena has
 * WORK_WORKERS slots none of which is reserved for it, and the cap is
 * WORK_WORKERS + 1.
 *
 * Round trips: "tbb-enqueue" enqueues a task made by task_group::defer and
 * waits with task_group::wait from outside the arena (TBB spins, then
 * sleeps): a cross-thread hand-off like weft's. "tbb-execute" joins the
 * arena with execute, then task_group::run and wait: the caller usually
 * runs the task itself, so this is a lower bound, not a hand-off.
 */

namespace
{

using Range = tbb::blocked_range<std::size_t>;
constexpr int kThreadCounts[] = {1, 2};

[[noreturn]] __attribute__((format(printf, 1, 2))) void
fail(const char *fmt, ...)
{
    std::va_list ap;

    std::fflush(stdout);
    std::fputs("bench: FAILED: ", stderr);
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::exit(1);
}

void
result(const char *bench, const char *impl, const char *params,
       const char *metric, double value)
{
    std::printf("RESULT %s %s %s %s=%.6g\n", bench, impl, params, metric,
                value);
    std::fflush(stdout);
}

double
ms_since(std::uint64_t start)
{
    return (double)(work_now_ns() - start) * 1e-6;
}

// ------------------------------------------------------------------ fib

std::uint64_t
fib_tbb(int n)
{
    if (n < 2) {
        return (std::uint64_t)n;
    }
    std::uint64_t x = 0;
    tbb::task_group g;
    g.run([&x, n] { x = fib_tbb(n - 1); });
    std::uint64_t y = fib_tbb(n - 2);
    g.wait();
    return x + y;
}

double
fib_ms(int n, int threads)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           (std::size_t)threads);
    tbb::task_arena arena(threads);
    double ms[WORK_INNER];

    for (int k = -1; k < WORK_INNER; k++) { // k == -1: warm-up
        int m = k < 0 && n > 20 ? 20 : n;
        std::uint64_t got = 0;
        std::uint64_t start = work_now_ns();
        arena.execute([&got, m] { got = fib_tbb(m); });
        double t = ms_since(start);
        if (k >= 0) {
            if (got != work_fib_expected(n)) {
                fail("fib tbb: fib(%d) = %" PRIu64 ", expected %" PRIu64, n,
                     got, work_fib_expected(n));
            }
            ms[k] = t;
        }
    }
    return work_median(ms, WORK_INNER);
}

double
fib_serial_ms(int n)
{
    double ms[WORK_INNER];

    (void)work_fib_opaque(n < 20 ? n : 20);
    for (int k = 0; k < WORK_INNER; k++) {
        std::uint64_t start = work_now_ns();
        if (work_fib_opaque(n) != work_fib_expected(n)) {
            fail("fib serial: wrong answer");
        }
        ms[k] = ms_since(start);
    }
    return work_median(ms, WORK_INNER);
}

void
fib_bench(int n)
{
    double serial = fib_serial_ms(n);
    double ms[2];
    char params[64];

    for (int c = 0; c < 2; c++) {
        ms[c] = fib_ms(n, kThreadCounts[c]);
        std::snprintf(params, sizeof(params), "n=%d,workers=%d", n,
                      kThreadCounts[c]);
        result("fib", "tbb", params, "ms", ms[c]);
    }
    double over = (ms[0] - serial) * 1e6 / (double)work_fib_spawns(n);
    std::snprintf(params, sizeof(params), "n=%d", n);
    result("fib", "tbb", params, "spawn_ns", over > 0 ? over : 0);
    result("fib", "tbb", params, "speedup", ms[0] / ms[1]);
    std::fprintf(stderr, "bench: fib(%d) serial in this process: %.3g ms\n", n,
                 serial);
}

// ------------------------------------------------------------------ submits

// Counts tasks down; the last one wakes the waiter.
class Latch
{
  public:
    explicit Latch(std::uint64_t n) : left_(n)
    {
    }

    void
    count_down()
    {
        // acq_rel: the last decrement sees every task's marks (release
        // sequence), and the mutex hands them to the waiter.
        if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard<std::mutex> g(mu_);
            done_ = true;
            cv_.notify_one();
        }
    }

    void
    wait()
    {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [this] { return done_; });
    }

  private:
    std::atomic<std::uint64_t> left_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
};

// One enqueue round trip: a deferred task enqueued into the arena, waited
// for with task_group::wait from this (outside) thread. Returns ns.
std::uint64_t
enqueue_trip(tbb::task_arena &arena, tbb::task_group &tg, std::uintptr_t want)
{
    std::uintptr_t got = 0;
    std::uint64_t start = work_now_ns();
    arena.enqueue(tg.defer([&got, want] { got = want; }));
    tg.wait();
    std::uint64_t ns = work_now_ns() - start;
    if (got != want) {
        fail("roundtrip tbb-enqueue: got %" PRIuPTR ", expected %" PRIuPTR, got,
             want);
    }
    return ns;
}

// One execute round trip: join the arena, run the task, wait. Returns ns.
std::uint64_t
execute_trip(tbb::task_arena &arena, tbb::task_group &tg, std::uintptr_t want)
{
    std::uintptr_t got = 0;
    std::uint64_t start = work_now_ns();
    arena.execute([&] {
        tg.run([&got, want] { got = want; });
        tg.wait();
    });
    std::uint64_t ns = work_now_ns() - start;
    if (got != want) {
        fail("roundtrip tbb-execute: got %" PRIuPTR ", expected %" PRIuPTR, got,
             want);
    }
    return ns;
}

void
submits(std::uint64_t n)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           WORK_WORKERS + 1);
    tbb::task_arena arena((int)WORK_WORKERS, 0);
    tbb::task_group tg;
    std::vector<unsigned char> hits(n);
    Latch latch(n);

    for (std::uintptr_t i = 1; i <= WORK_WARM_TRIPS; i++) {
        enqueue_trip(arena, tg, i);
    }
    std::uint64_t start = work_now_ns();
    unsigned char *h = hits.data();
    for (std::uint64_t i = 0; i < n; i++) {
        arena.enqueue([h, i, &latch] {
            work_mark(&h[i]);
            latch.count_down();
        });
    }
    latch.wait();
    double secs = ms_since(start) * 1e-3;
    std::size_t bad = work_marks_check(h, n);
    if (bad != n) {
        fail("submit tbb: task %zu ran %u times", bad, (unsigned)h[bad]);
    }
    result("submit", "tbb", "workers=2", "tasks_per_s", (double)n / secs);
}

void
round_trips(std::uint64_t n, unsigned rep)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           WORK_WORKERS + 1);
    std::vector<double> us(n);

    for (unsigned k = 0; k < 2; k++) {
        bool enqueue = (k + rep) % 2 == 0;
        // enqueue: no slot for this thread; execute: one reserved for it.
        tbb::task_arena arena((int)WORK_WORKERS + (enqueue ? 0 : 1),
                              enqueue ? 0 : 1);
        tbb::task_group tg;

        for (std::uintptr_t i = 0; i < WORK_WARM_TRIPS + n; i++) {
            std::uint64_t ns = enqueue ? enqueue_trip(arena, tg, i + 1)
                                       : execute_trip(arena, tg, i + 1);
            if (i >= WORK_WARM_TRIPS) {
                us[i - WORK_WARM_TRIPS] = (double)ns * 1e-3;
            }
        }
        result("roundtrip", enqueue ? "tbb-enqueue" : "tbb-execute",
               "workers=2", "us_per_rt", work_median(us.data(), n));
    }
}

// ------------------------------------------------------------------ parallel

double
reduce_ms(const float *x, std::size_t n, tbb::task_arena &arena)
{
    double want = work_sumsq_expected(n);
    double ms[WORK_INNER];

    for (int k = -1; k < WORK_INNER; k++) { // k == -1: warm-up
        double s = 0.0;
        work_escape(x);
        std::uint64_t start = work_now_ns();
        arena.execute([&] {
            s = tbb::parallel_reduce(
                Range(0, n), 0.0,
                [x](const Range &r, double acc) {
                    return acc + work_sumsq(x, r.begin(), r.end());
                },
                std::plus<double>());
        });
        double t = ms_since(start);
        if (s != want) {
            fail("parallel-reduce tbb: sum %.17g, expected %.17g", s, want);
        }
        if (k >= 0) {
            ms[k] = t;
        }
    }
    return work_median(ms, WORK_INNER);
}

double
axpy_ms(const float *x, float *y, std::size_t n, tbb::task_arena &arena)
{
    double ms[WORK_INNER];
    unsigned passes = 0;

    work_reset_y(y, n);
    for (int k = -1; k < WORK_INNER; k++) { // k == -1: warm-up
        work_escape(y);
        std::uint64_t start = work_now_ns();
        arena.execute([&] {
            tbb::parallel_for(Range(0, n), [x, y](const Range &r) {
                work_axpy(WORK_AXPY_A, x, y, r.begin(), r.end());
            });
        });
        work_escape(y);
        double t = ms_since(start);
        passes++;
        if (k >= 0) {
            ms[k] = t;
        }
    }
    std::size_t bad = work_axpy_check(x, y, n, passes);
    if (bad != n) {
        fail("parallel-for tbb: y[%zu] = %g after %u passes", bad,
             (double)y[bad], passes);
    }
    return work_median(ms, WORK_INNER);
}

double
serial_ms(const float *x, float *y, std::size_t n, bool for_loop)
{
    double ms[WORK_INNER];

    for (int k = -1; k < WORK_INNER; k++) {
        work_escape(y);
        std::uint64_t start = work_now_ns();
        if (for_loop) {
            work_axpy(WORK_AXPY_A, x, y, 0, n);
        } else if (work_sumsq(x, 0, n) != work_sumsq_expected(n)) {
            fail("parallel-reduce serial: wrong sum");
        }
        work_escape(y);
        if (k >= 0) {
            ms[k] = ms_since(start);
        }
    }
    return work_median(ms, WORK_INNER);
}

void
parallel_bench(std::size_t n)
{
    float *x = work_alloc_x(n);
    std::vector<float> yv(n, 1.0f);
    float *y = yv.data();
    char params[64];

    if (x == nullptr) {
        fail("out of memory for %zu floats", n);
    }
    for (int f = 0; f < 2; f++) {
        const char *bench = f ? "parallel-for" : "parallel-reduce";
        double serial = serial_ms(x, y, n, f != 0);

        for (int t : kThreadCounts) {
            tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                                   (std::size_t)t);
            tbb::task_arena arena(t);
            double ms = f ? axpy_ms(x, y, n, arena) : reduce_ms(x, n, arena);

            std::snprintf(params, sizeof(params), "workers=%d", t);
            result(bench, "tbb", params, "ms", ms);
            result(bench, "tbb", params, "speedup", serial / ms);
        }
    }
    std::free(x);
}

// ------------------------------------------------------------------ pipeline

// n items through source -> A -> B -> C: filters serial_in_order, parallel,
// parallel, serial_in_order, WORK_PIPE_IN_FLIGHT tokens. Returns its times.
work_times_t
pipeline_run(tbb::task_arena &arena, std::uint64_t n, unsigned spins)
{
    std::uint64_t next = 0;
    std::uint64_t hash = WORK_PIPE_HASH0;
    std::uint64_t count = 0;
    using tbb::filter_mode;

    work_times_t tm;
    work_times_start(&tm);
    arena.execute([&] {
        tbb::parallel_pipeline(
            WORK_PIPE_IN_FLIGHT,
            tbb::make_filter<void, std::uint64_t>(
                filter_mode::serial_in_order,
                [&next, n](tbb::flow_control &fc) -> std::uint64_t {
                    if (next == n) {
                        fc.stop();
                        return 0;
                    }
                    return work_pipe_source(next++);
                }) &
                tbb::make_filter<std::uint64_t, std::uint64_t>(
                    filter_mode::parallel,
                    [spins](std::uint64_t x) {
                        return work_pipe_stage(x, WORK_PIPE_A, spins);
                    }) &
                tbb::make_filter<std::uint64_t, std::uint64_t>(
                    filter_mode::parallel,
                    [spins](std::uint64_t x) {
                        return work_pipe_stage(x, WORK_PIPE_B, spins);
                    }) &
                tbb::make_filter<std::uint64_t, void>(
                    filter_mode::serial_in_order,
                    [&hash, &count, spins](std::uint64_t x) {
                        x = work_pipe_stage(x, WORK_PIPE_C, spins);
                        hash = work_pipe_fold(hash, x);
                        count++;
                    }));
    });
    work_times_stop(&tm);
    std::uint64_t want = work_pipe_expected(n, spins);
    if (count != n || hash != want) {
        fail("pipeline tbb: the sink took %" PRIu64 " items, hash %#" PRIx64
             ", expected %" PRIu64 " items, hash %#" PRIx64,
             count, hash, n, want);
    }
    return tm;
}

// The calling thread joins the arena (execute), as in fork-join: 2 threads
// work, as on weft's 2 workers while weft's caller waits.
void
pipeline_bench(const work_pipe_kind_t *kind, std::uint64_t n)
{
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
                           WORK_WORKERS);
    tbb::task_arena arena((int)WORK_WORKERS);
    char params[64];

    pipeline_run(arena, n < WORK_PIPE_WARM ? n : WORK_PIPE_WARM, kind->spins);
    work_times_t tm = pipeline_run(arena, n, kind->spins);
    std::snprintf(params, sizeof(params), "work=%s,workers=%u,in_flight=%u",
                  kind->name, WORK_WORKERS, WORK_PIPE_IN_FLIGHT);
    result("pipeline", "tbb", params, "items_per_s", (double)n / tm.secs);
    result("pipeline", "tbb", params, "cpu_ns_per_item",
           tm.cpu * 1e9 / (double)n);
}

[[noreturn]] void
usage()
{
    std::fprintf(stderr, "usage: bench_tbb [-b fib|submit|roundtrip|parallel|"
                         "pipeline|pipeline-trivial|pipeline-small] "
                         "[-n SIZE] [-r REP] [-i IMPL]\n");
    std::exit(2);
}

std::uint64_t
parse_u64(const char *s)
{
    char *end = nullptr;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (end == s || *end != '\0' || v == 0) {
        usage();
    }
    return v;
}

} // namespace

int
main(int argc, char **argv)
{
    std::uint64_t n = 0;
    unsigned rep = 0;
    const char *bench = nullptr;
    const char *only = nullptr;

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            usage();
        } else if (std::strcmp(argv[i], "-n") == 0) {
            n = parse_u64(argv[++i]);
        } else if (std::strcmp(argv[i], "-r") == 0) {
            rep = (unsigned)parse_u64(argv[++i]);
        } else if (std::strcmp(argv[i], "-b") == 0) {
            bench = argv[++i];
        } else if (std::strcmp(argv[i], "-i") == 0) {
            only = argv[++i];
        } else {
            usage();
        }
    }
    auto wanted = [bench](const char *b) {
        return bench == nullptr || std::strcmp(bench, b) == 0;
    };
    if (only != nullptr && std::strncmp(only, "tbb", 3) != 0) {
        return 0;
    }
    int ran = 0;
    if (wanted("fib")) {
        std::uint64_t m = n != 0 ? n : WORK_DEFAULT_FIB;
        if (m > WORK_MAX_FIB) {
            usage();
        }
        fib_bench((int)m);
        ran++;
    }
    if (wanted("submit")) {
        submits(n != 0 ? n : WORK_DEFAULT_TASKS);
        ran++;
    }
    if (wanted("roundtrip")) {
        round_trips(n != 0 ? n : WORK_DEFAULT_TRIPS, rep);
        ran++;
    }
    if (wanted("parallel")) {
        parallel_bench(n != 0 ? (std::size_t)n : WORK_DEFAULT_ELEMS);
        ran++;
    }
    for (unsigned k = 0; k < WORK_PIPE_KINDS; k++) {
        const work_pipe_kind_t *kind = work_pipe_kind(k);
        std::string name = std::string("pipeline-") + kind->name;
        if (wanted(name.c_str()) || wanted("pipeline")) {
            pipeline_bench(kind, n != 0 ? n : kind->default_n);
            ran++;
        }
    }
    if (ran == 0) {
        usage();
    }
    return 0;
}
