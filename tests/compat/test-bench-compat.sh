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

nx_log "compat-xs, three guests"
out=$NX_DIR/small.out
with_compat timeout 120 "$CB" compat-xs 1 3 >"$out" 2>"$NX_DIR/small.err" ||
	nx_fail "compat-xs: exit $?: $(cat "$NX_DIR/small.err")"
for op in handshake read write directory watch_rtt; do
	grep -q "^compat daemon=compat-xs op=$op n=3 samples=[1-9]" "$out" ||
		nx_fail "compat-xs: no $op at n=3: $(cat "$out")"
done

# 200 guests under a limit of 700 descriptors: at 5 a guest the first
# hundred fit, all two hundred do not.
nx_log "compat-xs, a largest N that does not fit the descriptor limit"
out=$NX_DIR/big.out err=$NX_DIR/big.err
rc=0
(ulimit -n 700 && BENCH_LAT=0 NOXS_SIM_DOMID=0 exec env \
	LD_LIBRARY_PATH="$NOXS_BUILD/lib/compat-xs:$NOXS_BUILD/sim:$NOXS_BUILD/lib" \
	timeout 300 "$CB" compat-xs 200 >"$out" 2>"$err") || rc=$?
[ $rc -ne 0 ] || nx_fail "200 guests under 700 descriptors succeeded: $(cat "$out")"
[ $rc -ne 124 ] || nx_fail "compat-bench hung"
grep -q "compat-bench compat-xs: N=200 needs about [0-9]* fds in this process (.* per guest), RLIMIT_NOFILE is 700" "$err" ||
	nx_fail "no early refusal with the figures (exit $rc): $(tail -3 "$err")"
line=$(grep "^compat daemon=compat-xs op=bench_fds n=100 " "$out") ||
	nx_fail "no measured cost per guest: $(cat "$out")"
per=$(field "$line" per_guest)
awk -v p="$per" 'BEGIN { exit !(p >= 1 && p <= 20) }' ||
	nx_fail "implausible cost per guest: $line"
grep -q "op=handshake " "$out" && nx_fail "handshakes reported after the refusal: $(cat "$out")"
echo "PASS: bench-compat"
