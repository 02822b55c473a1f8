#!/bin/bash
# bench/compat.c on compat-xs still runs (a smoke test, no timing is
# checked), and its check of the descriptors it will need: the program
# plays every guest in one process, each guest's handle and frontend stay
# open, so a largest N that cannot fit RLIMIT_NOFILE must be refused
# early, with the cost it measured, instead of failing after minutes of
# handshakes with "Too many open files".
. "$(dirname "$0")/lib-compat.sh"

CB=$NOXS_BUILD/bench/compat-bench
export BENCH_ITER=5 COMPAT_XS_QUIET=1
export NOXS_SIM_DIR=$NX_DIR/sim
mkdir -p "$NOXS_SIM_DIR"
nx_start_noxsd

# field LINE KEY: the value of KEY=... in LINE
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

nx_log "compat-xs, 40 guests"
out=$NX_DIR/small.out
with_compat timeout 120 "$CB" compat-xs 3 40 >"$out" 2>"$NX_DIR/small.err" ||
	nx_fail "compat-xs: exit $?: $(cat "$NX_DIR/small.err")"
for op in handshake read write directory watch_rtt; do
	grep -q "^compat daemon=compat-xs op=$op n=3 samples=[1-9]" "$out" ||
		nx_fail "compat-xs: no $op at n=3: $(cat "$out")"
done
# The cost it measured between the 10th and the 20th guest.
line=$(grep "^compat daemon=compat-xs op=bench_fds n=20 " "$out") ||
	nx_fail "no measured cost per guest at 40 guests: $(cat "$out")"
fds20=$(field "$line" fds) per=$(field "$line" per_guest)
awk -v p="$per" 'BEGIN { exit !(p >= 1 && p <= 20) }' ||
	nx_fail "implausible cost per guest: $line"

# 200 guests under a descriptor limit that the first hundred fit (what
# the 20th guest held, 80 more guests at the cost measured, a margin)
# and all two hundred do not.
limit=$(awk -v f="$fds20" -v p="$per" 'BEGIN { printf "%d", f + 80 * p + 60 }')
nx_log "compat-xs, 200 guests under a limit of $limit descriptors"
out=$NX_DIR/big.out err=$NX_DIR/big.err
rc=0
# (It exits with every guest still open on purpose: no leak check there,
# which near the descriptor limit could not even run.)
(ulimit -n "$limit" && BENCH_LAT=0 ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	compat_exec timeout 300 "$CB" compat-xs 200 >"$out" 2>"$err") || rc=$?
[ $rc -ne 0 ] || nx_fail "200 guests under 700 descriptors succeeded: $(cat "$out")"
[ $rc -ne 124 ] || nx_fail "compat-bench hung"
grep -q "compat-bench compat-xs: N=200 needs about [0-9]* fds in this process (.* per guest), RLIMIT_NOFILE is $limit" "$err" ||
	nx_fail "no early refusal with the figures (exit $rc): $(tail -3 "$err")"
grep -q "^compat daemon=compat-xs op=bench_fds n=100 " "$out" ||
	nx_fail "no measured cost per guest at the 100th: $(cat "$out")"
grep -q "op=handshake " "$out" && nx_fail "handshakes reported after the refusal: $(cat "$out")"
echo "PASS: bench-compat"
