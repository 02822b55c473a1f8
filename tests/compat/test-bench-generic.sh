#!/bin/bash
# bench/generic.c still runs (a smoke test, no timing is checked): a few
# iterations of every op at 2 and 3 domains through compat-xs's local
# store, Debian's xenstored and oxenstored, and compat-xs in mixed mode.
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools

GB=$NOXS_BUILD/bench/generic-bench
export BENCH_ITER=3 BENCH_WATCH_ITER=3 BENCH_TXN_SIZES=5 BENCH_BUDGET_MS=1000

# check LABEL FILE: one line per op and N, and each domain introduced.
check() {
	for n in 2 3; do
		for op in read write txn4 txn5 watch; do
			grep -q "^generic impl=$1 op=$op n=$n samples=[1-9]" "$2" ||
				nx_fail "$1: no $op at n=$n: $(cat "$2")"
		done
		grep -q "^generic impl=$1 op=populate n=$n .*introduced=yes" "$2" ||
			nx_fail "$1: no populate line at n=$n: $(cat "$2")"
	done
}

nx_start_noxsd
for daemon in xenstored oxenstored; do
	nx_log "$daemon"
	xsd_start $daemon $daemon
	"$GB" $daemon 2 3 >"$NX_DIR/$daemon.out" || nx_fail "$daemon: exit $?"
	check $daemon "$NX_DIR/$daemon.out"
	grep -q "introduce_failed=0" "$NX_DIR/$daemon.out" ||
		nx_fail "$daemon: introductions failed: $(cat "$NX_DIR/$daemon.out")"
	if [ $daemon = xenstored ]; then
		nx_log "compat-xs mixed"
		with_compat env XENSTORED_PATH="$XENSTORED_PATH" NOXS_COMPAT_MODE=mixed \
			"$GB" mixed 2 3 >"$NX_DIR/mixed.out" || nx_fail "mixed: exit $?"
		check mixed "$NX_DIR/mixed.out"
	fi
	xsd_stop $daemon
done

nx_log "compat-xs local"
mkdir -p "$NX_DIR/xs"
with_compat env NOXS_COMPAT_MODE=local NOXS_XS_DIR="$NX_DIR/xs" \
	"$GB" local 2 3 >"$NX_DIR/local.out" || nx_fail "local: exit $?"
check local "$NX_DIR/local.out"
echo ok
