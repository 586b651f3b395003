#!/bin/sh
# SPDX-License-Identifier: MIT
# weft's front door.
#   ./make.sh demo    build weft (release) and run `weft demo`
#   ./make.sh test    build release, ASan+UBSan and TSan; run every test in
#                     each (examples included), the release tests once more
#                     under the lock-order checker, the static checks
#                     (scripts/lint) and the benchmarks' quick run
#   ./make.sh bench   run the benchmark suite against its peers (bench/run)
# Each installs the Debian packages it needs first (scripts/install-deps).
set -eu
cd "$(dirname "$0")"
jobs=$(nproc 2>/dev/null || echo 2)

configure() { # dir, extra cmake args...
    dir=$1
    shift
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DWEFT_WERROR=ON "$@" >/dev/null
}

demo() {
    scripts/install-deps build
    configure build/release
    cmake --build build/release -j "$jobs"
    exec build/release/tools/weft demo
}

# One configuration: build, run its tests. Prints ctest's summary.
run_config() { # name, cmake args...
    name=$1
    shift
    # Called in an || list, where set -e is off: check each step.
    echo "=== $name: build"
    configure "build/$name" "$@" || return 1
    cmake --build "build/$name" -j "$jobs" || return 1
    echo "=== $name: test"
    ctest --test-dir "build/$name" -j "$jobs" --output-on-failure \
        --no-tests=error || return 1
}

# The release tests once more with the lock-order checker on: any report is
# a lock-order inversion somewhere in weft or its tests (the tests that plant
# inversions on purpose are left out).
lockorder_pass() {
    echo "=== release: tests under the lock-order checker"
    log=build/release/lockorder.log
    WEFT_LOCKORDER=1 ctest --test-dir build/release -j "$jobs" \
        -L 'unit|stress' -E 'test_lockorder|test_watchdog' -O "$log" \
        >/dev/null || return 1
    if grep -q "potential deadlock" "$log"; then
        grep -A4 "potential deadlock" "$log" | head -40
        return 1
    fi
    echo "no lock-order reports"
}

test_all() {
    scripts/install-deps build bench lint browser
    failed=""
    start=$(date +%s)
    # Read only by the sanitized builds' binaries.
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
    run_config release -DWEFT_BUILD_BENCH=ON || failed="$failed release"
    lockorder_pass || failed="$failed lockorder"
    run_config asan -DWEFT_SANITIZE=address || failed="$failed asan"
    run_config tsan -DWEFT_SANITIZE=thread || failed="$failed tsan"
    echo "=== lint"
    scripts/lint build/release || failed="$failed lint"
    if [ -x bench/run ]; then
        echo "=== benchmarks: quick run (builds and checks answers)"
        bench/run --quick || failed="$failed bench"
    fi
    echo "=== total $(($(date +%s) - start)) s"
    if [ -n "$failed" ]; then
        echo "FAILED:$failed"
        exit 1
    fi
    echo "all configurations passed"
}

case "${1:-}" in
demo) demo ;;
test) test_all ;;
bench) scripts/install-deps build bench; shift; exec bench/run "$@" ;;
*)
    echo "usage: $0 demo|test|bench" >&2
    exit 2
    ;;
esac
