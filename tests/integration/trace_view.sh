#!/bin/sh
# SPDX-License-Identifier: MIT
# The trace timeline end to end: a traced example writes a trace, a program
# traced only through WEFT_TRACE=<path> writes one at exit, `weft trace-view`
# turns the first into a page, and headless Chromium renders the page: its
# script must draw one row per thread of the trace (--dump-dom), and its
# screenshot must be a real picture (a PNG of several KB and many colours).
# Exit status 77 (skipped) only when Chromium is missing outside CI.
# Usage: trace_view.sh WEFT EX_TRACED_RUN EX_AS_COMPLETED PYTHON CHECKER WORKDIR
set -eu
[ $# -eq 6 ] || { echo "usage: $0 WEFT TRACED_RUN AS_COMPLETED PYTHON CHECKER DIR" >&2; exit 2; }
weft=$1 traced=$2 untraced=$3 python=$4 checker=$5 work=$6

fail() { echo "FAILED: $*" >&2; exit 1; }
fact() { # fact NAME FILE: the number trace_check.py printed for NAME
    awk -v k="$1" '$1 == k { print $2 }' "$2"
}

browser=""
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then
        browser=$(command -v "$b")
        break
    fi
done
if [ -z "$browser" ]; then
    [ -z "${CI:-}" ] || fail "chromium is missing (scripts/install-deps browser)"
    echo "SKIPPED: chromium is not installed (scripts/install-deps browser)"
    exit 77
fi

rm -rf "$work"
mkdir -p "$work"

echo "== a traced run"
"$traced" "$work/run.json"
"$python" "$checker" "$work/run.json" >"$work/run.txt" ||
    fail "run.json is not a valid trace"
for k in bad_dur bad_nesting unmatched; do
    [ "$(fact "$k" "$work/run.txt")" = 0 ] || fail "run.json: $k is not 0"
done
parse=$(grep -c '^task parse ' "$work/run.txt" || true)
render=$(grep -c '^task render ' "$work/run.txt" || true)
[ "$parse" -gt 0 ] && [ "$parse" = "$render" ] ||
    fail "run.json: $parse parse tasks, $render render tasks"
# Every render task names its parse task as parent.
orphans=$(awk '$1 == "task" && $2 == "render" && $4 == 0' "$work/run.txt" |
    wc -l)
[ "$orphans" -eq 0 ] || fail "$orphans render tasks without a parent"
echo "run.json: $(wc -c <"$work/run.json") bytes, $parse parse tasks"

echo "== WEFT_TRACE=<path> on a program that never calls the trace API"
# The as_completed example runs 11 tasks labelled "job" on a pool and waits
# on futures with a deadline that expires: both must be in the trace, however
# the threads were scheduled.
WEFT_TRACE="$work/env.json" "$untraced" >/dev/null
"$python" "$checker" "$work/env.json" >"$work/env.txt" ||
    fail "env.json is not a valid trace"
jobs=$(grep -c '^task job ' "$work/env.txt" || true)
[ "$jobs" = 11 ] || {
    cat "$work/env.txt" >&2
    fail "env.json has $jobs tasks labelled job, not 11"
}
grep -q '^wait future' "$work/env.txt" || fail "env.json has no future waits"
for k in bad_dur bad_nesting unmatched; do
    [ "$(fact "$k" "$work/env.txt")" = 0 ] || fail "env.json: $k is not 0"
done

echo "== weft trace-view"
"$weft" trace-view "$work/run.json" "$work/view.html"
if grep -Eiq '(src|href)="?(https?:)?//' "$work/view.html"; then
    fail "the page refers to an external asset"
fi

echo "== headless $browser"
rows=$(fact rows "$work/run.txt")
# A browser that hangs is killed after 25 s and tried once more, so the
# test ends within its 120 s however Chromium behaves.
run_browser() {
    for try in 1 2; do
        rm -rf "$work/profile"
        if timeout -k 5 25 "$browser" --headless --no-sandbox --disable-gpu \
            --no-first-run --user-data-dir="$work/profile" \
            --window-size=1200,800 "$@" "file://$work/view.html" \
            2>"$work/err.txt"; then
            return 0
        fi
        echo "chromium failed (try $try):" >&2
        tail -5 "$work/err.txt" >&2
    done
    return 1
}
run_browser --dump-dom >"$work/dom.html" || fail "chromium --dump-dom failed"
grep -q "data-rendered=\"yes\"" "$work/dom.html" ||
    fail "the page's script did not finish"
grep -q "data-threads=\"$rows\"" "$work/dom.html" ||
    fail "the page does not show $rows thread rows"
drawn=$(grep -o 'class="thread-row"' "$work/dom.html" | wc -l)
[ "$drawn" -eq "$rows" ] || fail "$drawn thread rows in the table, not $rows"
run_browser --screenshot="$work/view.png" >/dev/null ||
    fail "chromium --screenshot failed"
"$python" - "$work/view.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
assert len(data) > 5000, "only %d bytes" % len(data)
pos, idat, hdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        hdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
w, h, depth, ctype = hdr[:4]
assert depth == 8 and ctype in (2, 6), "unexpected PNG format %r" % (hdr,)
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, colours = bytearray(stride), set()
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + pr) & 255
    if y % 4 == 0:
        for x in range(0, stride, bpp * 2):
            colours.add(bytes(line[x:x + 3]))
    prev = line
assert len(colours) >= 8, "only %d colours: a blank page?" % len(colours)
print("screenshot %dx%d, %d bytes, %d colours sampled" % (w, h, len(data), len(colours)))
PY
echo "trace view: all checks passed ($rows thread rows)"
