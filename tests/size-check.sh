#!/bin/bash
# scripts/size-check.sh on files made to sit on either side of its
# limits (files of 1,000 lines, functions of 120), in the layouts the
# tree uses, with the braces it must not count; then on the tree itself
# (make check runs this, make size-check the tree's check alone).
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
check=$src/scripts/size-check.sh
tmp=${NOXS_TEST_DIR:-$(mktemp -d)}/size-check
rm -rf "$tmp"
mkdir -p "$tmp"
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# body N: N lines of statements (a function of N + 2 lines with braces).
body() {
    local i
    for ((i = 0; i < $1; i++)); do
        echo "    x += $i;"
    done
}

# expect FILE STATUS [PATTERN...]: the check on FILE exits STATUS and its
# output has a line matching each PATTERN; with no PATTERN, no line.
expect() {
    local f=$1 want=$2 out rc p
    shift 2
    out=$("$check" "$f" 2>&1)
    rc=$?
    [ "$rc" -eq "$want" ] || fail "$(basename "$f"): exit $rc, want $want: $out"
    if [ $# -eq 0 ]; then
        [ -z "$out" ] || fail "$(basename "$f"): unexpected output: $out"
    fi
    for p; do
        grep -qE -- "$p" <<<"$out" || fail "$(basename "$f"): no line /$p/ in: $out"
    done
}

# The tree's layout: brace on its own line, a signature over two lines.
{
    echo "static int"
    echo "long_one(int a,"
    echo "         int b)"
    echo "{"
    body 119
    echo "}"
    echo "int just_fits(void)"
    echo "{"
    body 118
    echo "}"
} >"$tmp/linux.c"
expect "$tmp/linux.c" 1 "linux.c:1: function long_one: 121 lines \(over 120\)"
"$check" "$tmp/linux.c" 2>&1 | grep -q just_fits && fail "just_fits (120 lines) reported"

# The brace on the signature's line, a one-line function before it.
{
    echo "static int tiny(void) { return 0; }"
    echo "int same_line(int a) {"
    body 119
    echo "}"
} >"$tmp/kr.c"
expect "$tmp/kr.c" 1 "kr.c:2: function same_line: 121 lines"

# Braces in comments, literals and macros, and blocks that are not
# functions: a function of 100 lines with all of them inside and around
# is 100 lines, and nothing here is over.
{
    echo '#define OPEN {'
    echo '#define BLOCK(x) \'
    echo '    do { \'
    echo '        x; \'
    echo '    } while (0)'
    echo '/* a comment { that opens'
    echo '   over lines { */'
    echo 'static const char *s = "}}}";'
    echo "static const char c = '}';"
    echo 'struct big {'
    body 150 | sed 's/x += \([0-9]*\);/int f\1;/'
    echo '};'
    echo 'static const int table[] = {'
    body 150 | sed 's/ *x += \([0-9]*\);/\1,/'
    echo '};'
    echo '#ifdef __cplusplus'
    echo 'extern "C" {'
    echo '#endif'
    echo 'static inline int braces(int x)'
    echo '{'
    echo '    const char *t = "{\"{"; /* { */ // {'
    echo "    char c = '{', d = '\\'';"
    body 96
    echo '}'
    echo '#ifdef __cplusplus'
    echo '}'
    echo '#endif'
} >"$tmp/noise.h"
expect "$tmp/noise.h" 0
# The same function with 25 more lines is over, found inside extern "C".
sed 's/^    x += 0;$/&\n'"$(body 25 | sed 's/$/\\n/' | tr -d '\n' | sed 's/\\n$//')"'/' \
    "$tmp/noise.h" >"$tmp/noise2.h"
expect "$tmp/noise2.h" 1 "function braces: 125 lines"

# Files: 1,000 lines pass, 1,001 do not.
body 1000 >"$tmp/thousand.c"
expect "$tmp/thousand.c" 0
body 1001 >"$tmp/over.c"
expect "$tmp/over.c" 1 "over.c: 1001 lines \(over 1000\)"

# Every offender is named, not just the first.
expect "$tmp/over.c" 1 "size-check: 1 offender"
cat "$tmp/linux.c" "$tmp/kr.c" >"$tmp/two.c"
expect "$tmp/two.c" 1 "function long_one" "function same_line" "size-check: 2 offender"

# The tree itself.
if ! out=$("$check" 2>&1); then
    fail "the tree: $out"
else
    echo "$out"
fi

[ "$fails" -eq 0 ] && echo "size-check: all cases pass"
[ "$fails" -eq 0 ]
