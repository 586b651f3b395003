#!/bin/sh
# SPDX-License-Identifier: MIT
# Install weft into a temporary prefix, then build and run a small program
# against it: with CMake's find_package(weft) (shared and static targets) and
# with pkg-config.
# Usage: install_consumer.sh <source dir> <work dir>   (env: CMAKE, CC)
set -eu
src=$1
work=$2
cmake=${CMAKE:-cmake}
rm -rf "$work"
mkdir -p "$work/consumer"

# A plain build: the consumer must not need sanitizer runtimes.
env -u CFLAGS -u LDFLAGS "$cmake" -S "$src" -B "$work/build" \
    -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_EXAMPLES=OFF \
    -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
"$cmake" --build "$work/build" -j 2 >/dev/null
"$cmake" --install "$work/build" >/dev/null

cat >"$work/consumer/main.c" <<'C'
#include <stdio.h>
#include <weft/weft.h>
int main(void) {
    weft_mutex_t m = WEFT_MUTEX_INIT;
    if (weft_mutex_lock(&m) != WEFT_OK) return 1;
    weft_mutex_unlock(&m);
    weft_queue_t *q;
    if (weft_queue_create(NULL, &q) != WEFT_OK) return 1;
    weft_queue_destroy(q);
    printf("consumer ok: %s, %d cpus\n", weft_strerror(WEFT_ETIMEDOUT),
           weft_cpu_count());
    return 0;
}
C
cat >"$work/consumer/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(weft 0.1 REQUIRED)
add_executable(consumer_shared main.c)
target_link_libraries(consumer_shared PRIVATE weft::weft)
add_executable(consumer_static main.c)
target_link_libraries(consumer_static PRIVATE weft::weft_static)
C
"$cmake" -S "$work/consumer" -B "$work/consumer/build" \
    -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
"$cmake" --build "$work/consumer/build" >/dev/null
libpath="$work/prefix/lib:$work/prefix/lib64"
LD_LIBRARY_PATH="$libpath" "$work/consumer/build/consumer_shared"
"$work/consumer/build/consumer_static"

# pkg-config: the .pc file must give working flags.
pcdir=$(dirname "$(find "$work/prefix" -name weft.pc | head -n 1)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs weft)
# shellcheck disable=SC2086
${CC:-cc} "$work/consumer/main.c" -o "$work/consumer/pc" $flags -pthread
LD_LIBRARY_PATH="$libpath" "$work/consumer/pc"
echo "install_consumer: find_package and pkg-config both work"
