#!/bin/sh
# bench/generic.sh: bench/generic.c (xs_* on generic paths at N domains)
# in each configuration, each with fresh daemons and a fresh store.
#
#   bench/generic.sh one IMPL N...     one configuration, results on stdout
#   bench/generic.sh run OUT REPS N... every configuration REPS times,
#                                      repetitions interleaved; raw output
#                                      in OUT/raw/generic.<rep>, machine
#                                      and load in OUT/meta.txt
#
# IMPL (BENCH_GENERIC_IMPLS, default all of them, in this order):
#   compat-xs-local       compat-xs, NOXS_COMPAT_MODE=local, a fresh LMDB
#                         store on tmpfs (NOXS_XS_DIR), noxsd running (it
#                         takes xs_introduce_domain's device pages)
#   compat-xs-local-disk  the same with the store on the disk filesystem
#                         of $BENCH_DISK_DIR (default /var/tmp), as
#                         /var/lib/noxs/xenstore is on a dom0
#   xenstored             Debian's libxenstore, Debian's xenstored
#   oxenstored            Debian's libxenstore, Debian's oxenstored
#   compat-xs-mixed       compat-xs, NOXS_COMPAT_MODE=mixed, in front of
#                         xenstored (every path here is generic, so this
#                         is compat-xs's own cost on a mixed host)
# Debian's daemons run under tests/compat/xsd.sh (LD_PRELOAD shim).
# Needs: make all build/bench/generic-bench build/tests/compat/xsshim.so,
# scripts/deps.sh compat. NOXS_BUILD names the build directory.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
B=$(cd "${NOXS_BUILD:-$top/build}" && pwd)
export NOXS_BUILD=$B
export XSSHIM=${XSSHIM:-$B/tests/compat/xsshim.so}
LIBS=$B/sim:$B/lib
ALL="compat-xs-local compat-xs-local-disk xenstored oxenstored compat-xs-mixed"

# tmpfs for the daemons' state and the simulator, like the other
# benchmarks (and /run, /var/lib/xenstored on a dom0).
base=${NOXS_BENCH_TMPDIR:-/dev/shm}
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}

one() {
	impl=$1
	shift
	work=$(mktemp -d "$base/noxs-generic.XXXXXX")
	disk=""
	xsd=""
	noxsd=""
	trap 'one_cleanup' EXIT
	trap 'exit 130' INT TERM
	case $impl in
	xenstored | oxenstored)
		start_xsd "$impl"
		env "$XSENV" "$B/bench/generic-bench" "$impl" "$@" ;;
	compat-xs-local | compat-xs-local-disk)
		start_noxsd
		xs=$work/xs
		if [ "$impl" = compat-xs-local-disk ]; then
			disk=$(mktemp -d "${BENCH_DISK_DIR:-/var/tmp}/noxs-generic.XXXXXX")
			xs=$disk/xs
		fi
		mkdir -p "$xs"
		env -u XENSTORED_PATH NOXS_COMPAT_MODE=local NOXS_XS_DIR="$xs" \
			NOXS_SIM_DIR="$work/sim" NOXS_SOCKET="$work/noxsd.sock" \
			COMPAT_XS_QUIET=1 LD_LIBRARY_PATH="$B/lib/compat-xs:$LIBS" \
			"$B/bench/generic-bench" "$impl" "$@" ;;
	compat-xs-mixed)
		start_xsd xenstored
		start_noxsd
		env "$XSENV" NOXS_COMPAT_MODE=mixed \
			NOXS_SIM_DIR="$work/sim" NOXS_SOCKET="$work/noxsd.sock" \
			COMPAT_XS_QUIET=1 LD_LIBRARY_PATH="$B/lib/compat-xs:$LIBS" \
			"$B/bench/generic-bench" "$impl" "$@" ;;
	*) echo "generic.sh: unknown configuration $impl" >&2; exit 2 ;;
	esac
}

one_cleanup() {
	[ -z "$xsd" ] || "$top/tests/compat/xsd.sh" stop "$xsd" 2>/dev/null || true
	for p in $noxsd; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$work" ${disk:+"$disk"}
}

start_xsd() {
	xsd=$work/$1
	mkdir -p "$xsd"
	XSENV=$("$top/tests/compat/xsd.sh" start "$1" "$xsd")
}

start_noxsd() {
	mkdir -p "$work/sim" "$work/state"
	NOXS_SIM_DIR=$work/sim LD_LIBRARY_PATH=$LIBS "$B/bin/noxsd" -d \
		--socket "$work/noxsd.sock" --state-dir "$work/state" \
		>"$work/noxsd.log" 2>&1 </dev/null &
	noxsd=$!
	bench_wait_noxsd "$work" || exit 1
	noxsd="$noxsd $(cat "$work/state/keeper.pid")"
}

case "${1:-}" in
one)
	[ $# -ge 3 ] || { echo "usage: generic.sh one IMPL N..." >&2; exit 2; }
	shift
	one "$@"
	;;
run)
	[ $# -ge 4 ] || { echo "usage: generic.sh run OUT REPS N..." >&2; exit 2; }
	out=$2 reps=$3
	shift 3
	mkdir -p "$out/raw"
	impls=${BENCH_GENERIC_IMPLS:-$ALL}
	# How a transaction's cost grows with its size (libxl's domain
	# creation writes about 30 nodes in one).
	export BENCH_TXN_SIZES="${BENCH_TXN_SIZES-16 64}"
	{
		bench_meta "$top"
		echo "libxenstore=$(dpkg-query -W -f='${Version}' libxenstore4 2>/dev/null || echo ?)"
		echo "lmdb=$(dpkg-query -W -f='${Version}' liblmdb0 2>/dev/null || echo ?)"
		echo "generic_reps=$reps"
		echo "generic_ns=$*"
		echo "generic_impls=$impls"
		echo "generic_iter=${BENCH_ITER:-1000}"
		echo "generic_watch_iter=${BENCH_WATCH_ITER:-300}"
		echo "generic_budget_ms=${BENCH_BUDGET_MS:-3000}"
		echo "generic_txn_sizes=$BENCH_TXN_SIZES"
		echo "generic_tmpfs=$base"
		echo "generic_disk=${BENCH_DISK_DIR:-/var/tmp} ($(df -T "${BENCH_DISK_DIR:-/var/tmp}" | awk 'NR == 2 { print $2 }'))"
	} >"$out/meta.txt"
	started=$(date +%s)
	rep=0
	while [ $rep -lt "$reps" ]; do
		rep=$((rep + 1))
		for impl in $impls; do
			echo "generic.sh: rep $rep, $impl, load $(cut -d' ' -f1 /proc/loadavg)" >&2
			"$0" one "$impl" "$@" >>"$out/raw/generic.$rep" ||
				echo "generic.sh: $impl failed (rep $rep)" >&2
		done
	done
	{
		echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
		echo "generic_elapsed_s=$(($(date +%s) - started))"
	} >>"$out/meta.txt"
	;;
*)
	echo "usage: generic.sh one IMPL N... | run OUT REPS N..." >&2
	exit 2
	;;
esac
