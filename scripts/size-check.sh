#!/bin/bash
# size-check.sh: fail when a C file of the product is too big to read.
#
#   scripts/size-check.sh [FILE...]
#
# Without arguments it checks the .c and .h files git tracks under the
# product folders (tests and benchmarks are not product). Each file may
# have at most MAX_FILE_LINES lines, each function at most MAX_FUNC_LINES
# lines, counted from the line of its opening brace to the line of its
# closing brace. Every offender is named (file:line: what), and the exit
# status is 1 if there is one, 0 otherwise. Splitting by concern is the
# way out; raising a limit is not.
#
# Functions are found by their braces, not by their layout: the scanner
# skips comments, string and character literals and preprocessor lines,
# keeps the brace depth, and takes a block opened at file scope for a
# function body when the text before it (since the last ';', '}' or
# preprocessor line) ends with ')'. So a signature may span several
# lines, and the brace may sit on a line of its own (the tree's style,
# .clang-format's BreakBeforeBraces: Linux) or end the signature's line
# (one-line functions); struct, enum and initializer blocks are not
# functions. A block opened under #if and closed under #else would
# unbalance the count: the tree has none.
set -u
cd "$(dirname "$0")/.." || exit 2

MAX_FILE_LINES=1000
MAX_FUNC_LINES=120
PRODUCT_DIRS="common libnoxs noxsd compat-xs drivers examples tools sim include"

# Files over a limit that are being split by concern right now: their
# offences are printed as warnings, not failures. Remove each entry when
# its split is merged (a listed file within the limits gets a warning
# saying so); the list is meant to be empty.
ALLOW_LIST=""

if [ $# -gt 0 ]; then
    files=("$@")
elif git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # shellcheck disable=SC2086 # the folder list is split on purpose
    mapfile -t files < <(git ls-files -- $PRODUCT_DIRS | grep -E '\.[ch]$')
else
    # shellcheck disable=SC2086
    mapfile -t files < <(find $PRODUCT_DIRS -name '*.[ch]' -type f 2>/dev/null | sort)
fi
if [ ${#files[@]} -eq 0 ]; then
    echo "size-check: no files to check" >&2
    exit 2
fi

awk -v maxfile="$MAX_FILE_LINES" -v maxfunc="$MAX_FUNC_LINES" \
    -v allowlist="$ALLOW_LIST" '
function report(file, where, what) {
    if (file in allowed) {
        printf "warning: %s%s: %s (allow-listed while it is split)\n", file, where, what
        offended[file] = 1
    } else {
        printf "%s%s: %s\n", file, where, what
        failures++
    }
}

# The name of the function whose signature is s: the identifier just
# before the first "(" that follows one.
function fname(s,    t) {
    t = s
    while (match(t, /[A-Za-z_][A-Za-z_0-9]*[ \t]*\(/)) {
        name = substr(t, RSTART, RLENGTH)
        sub(/[ \t]*\($/, "", name)
        if (name != "__attribute__" && name != "__declspec")
            return name
        t = substr(t, RSTART + RLENGTH)
    }
    return "?"
}

function end_file() {
    if (curfile == "")
        return
    if (lines > maxfile)
        report(curfile, "", lines " lines (over " maxfile ")")
    if (depth != 0)
        printf "warning: %s: braces do not balance (depth %d at the end)\n", curfile, depth
}

BEGIN {
    n = split(allowlist, a, /[ \t\n]+/)
    for (i = 1; i <= n; i++)
        if (a[i] != "")
            allowed[a[i]] = 1
}

FNR == 1 {
    end_file()
    curfile = FILENAME
    depth = 0; incomment = 0; inpp = 0; infn = 0; externc = 0
    seen[FILENAME] = 1
    sig = ""; sigline = 0
}

{
    lines = FNR
    line = $0
    # A preprocessor line (and its continuations) is no C text.
    if (inpp) {
        inpp = (line ~ /\\$/)
        next
    }
    if (!incomment && line ~ /^[ \t]*#/) {
        inpp = (line ~ /\\$/)
        next
    }
    len = length(line)
    for (i = 1; i <= len; i++) {
        c = substr(line, i, 1)
        if (incomment) {
            if (c == "*" && substr(line, i + 1, 1) == "/") {
                incomment = 0
                i++
            }
            continue
        }
        if (c == "/" && substr(line, i + 1, 1) == "*") {
            incomment = 1
            i++
            continue
        }
        if (c == "/" && substr(line, i + 1, 1) == "/")
            break
        if (c == "\"" || c == "'\''") {
            # A literal: skip to its closing quote, over escapes.
            for (i++; i <= len; i++) {
                d = substr(line, i, 1)
                if (d == "\\")
                    i++
                else if (d == c)
                    break
            }
            if (depth == 0)
                sig = sig c c
            continue
        }
        if (c == "{") {
            if (depth == 0) {
                t = sig
                gsub(/[ \t]+$/, "", t)
                # extern "C" { ... } only wraps file scope.
                if (t ~ /(^|[^A-Za-z_0-9])extern[ \t]*""$/) {
                    externc++
                    sig = ""
                    sigline = 0
                    continue
                }
                if (t ~ /\)$/) {
                    infn = 1
                    fnstart = FNR
                    fnline = sigline
                    fn = fname(t)
                }
            }
            depth++
            continue
        }
        if (c == "}") {
            if (depth == 0 && externc > 0) {
                externc--
                continue
            }
            if (depth > 0)
                depth--
            if (depth == 0) {
                if (infn) {
                    n = FNR - fnstart + 1
                    if (n > maxfunc)
                        report(curfile, ":" fnline, "function " fn ": " n " lines (over " maxfunc ")")
                    infn = 0
                }
                sig = ""
                sigline = 0
            }
            continue
        }
        if (depth == 0) {
            if (c == ";") {
                sig = ""
                sigline = 0
            } else {
                if (sigline == 0 && c !~ /[ \t]/)
                    sigline = FNR
                sig = sig c
            }
        }
    }
    if (depth == 0 && sigline != 0)
        sig = sig " "
}

END {
    end_file()
    for (f in allowed)
        if ((f in seen) && !(f in offended))
            printf "warning: %s is allow-listed but within the limits: remove it from the list in scripts/size-check.sh\n", f
    if (failures > 0) {
        printf "size-check: %d offender(s): files at most %d lines, functions at most %d\n", failures, maxfile, maxfunc
        exit 1
    }
}
' "${files[@]}"
