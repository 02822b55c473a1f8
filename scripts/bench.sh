#!/bin/sh
# scripts/bench.sh short|full: the benchmark report (docs/BENCHMARKS.md).
#
# Run by `make bench` / `make bench-full` (with LD_LIBRARY_PATH and
# NOXS_BUILD set by the Makefile's RUN_ENV). In one session, on this
# machine, it measures Debian's real xenstored and oxenstored (as domain 0
# of the simulator, tests/compat/xsd.sh with XSD_SIM=1, guests on their
# store rings), compat-xs + noxsd with the
# legacy xs_* driver pair, and native libnoxs; every measurement is
# repeated REPS times, the repetitions interleaved (rep 1 of everything,
# then rep 2, ...) so that the machine's background load hits every
# implementation alike. Raw output goes to $NOXS_BUILD/bench/results/raw/,
# CSV files to $NOXS_BUILD/bench/results/, and bench/report.py rewrites
# docs/BENCHMARKS.md and docs/bench/*.png from them (gnuplot).
#
#   short: handshake at N = 10 100 300 1000 (Debian's daemons: up to 300,
#          see below); K = 1 2 8 toolstack clients bringing up 200
#          domains (K = 1 is also the bring-up, memory and CPU figure);
#          3 repetitions; about 5 minutes on 2 cores (a few more with
#          the per-domain-socket configuration)
#          generic paths (bench/generic.sh) at N = 10 1000 in every
#          configuration, in the first repetition only (about 6 minutes
#          more)
#          bring-up with three devices per domain (build/bench/bringup3)
#          at N = 10 100 1000 (Debian's daemons: 10 100)
#          (both modes, each repetition) the simulator's floor and the
#          native handshake at N = 10 100 1000 again under a fixed
#          background load: one CPU hog per core (stress-ng --cpu)
#   full:  handshake at N = 10 ... 10000 (Debian's daemons: up to 1000;
#          compat-xs: up to what its fd limit allows, see below); the
#          bring-up, memory and CPU figure at 1000 domains (K = 1); K = 1 2
#          8 at 300 domains; generic paths at N = 10 1000 in every
#          repetition; bring-up with three devices per domain at
#          N = 10 100 1000 10000 (Debian's daemons: 10 100 1000; noxs:
#          capped by what its backends may hold, see below);
#          3 repetitions; about an hour on 2 cores (the
#          per-domain-socket configuration adds about 20 minutes)
# Debian's daemons run as domain 0 of the simulator (tests/compat/xsd.sh
# with XSD_SIM=1): every guest's frontend talks to them over its own
# store ring and event channel, as on Xen (compat-bench --ring, the
# configuration of every headline ratio). The second configuration,
# "xl with per-domain monitors" (compat-bench --sockets, labelled
# xenstored-sockets / oxenstored-sockets), gives every guest a dom0 Unix
# socket too, kept open and carrying its requests, as on a host where xl
# leaves a monitor process per domain (BENCH_SOCKETS=0 skips it). Both
# daemons do per-connection work on every main-loop pass (C xenstored
# 4.17 also walks its list of domains for every unprivileged connection
# on every fired watch; oxenstored matches watches through a trie): their
# handshake grows with N, so the time to reach N grows faster than N
# (1000 domains: minutes per daemon and repetition, against seconds for
# 300). So the short run stops them at 300, the full run at 1000, and
# their concurrency runs use 300 domains in the full run.
#
# compat-bench impersonates every guest in one process: with compat-xs
# each guest costs that process 5 fds (its handle's epoll set, the pipe
# and stop eventfd of xs_fileno(), which a xenbus-like frontend polls,
# and its frontend's event-channel handle; docs/COMPAT.md), so
# compat-xs's largest N is capped at (hard RLIMIT_NOFILE - 64) / 5,
# rounded down to 100 (3900 with a hard limit of 20000); meta.txt records
# the cap, and compat-bench itself measures the cost per guest and stops
# early if its largest N would not fit.
#
# Environment (development only; `make bench` sets none of these):
# BENCH_SOCKETS=0 skips the per-domain-socket configuration; BENCH_REPS, BENCH_NS, BENCH_NS_XS, BENCH_BRING_N, BENCH_CONC_N override
# the sizes; BENCH_BASE_BRING_REPS the number of repetitions of Debian's
# daemons' bring-up at BRING_N (full mode, when it differs from CONC_N);
# BENCH_NO_DOCS=1 writes the report under the results directory instead
# of docs/. BENCH_BRING3_NS and BENCH_BRING3_NS_XS override the sizes of
# the three-device bring-up (noxs, Debian's daemons).
set -eu

mode=${1:-short}
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"
B=$(cd "${NOXS_BUILD:-$top/build}" && pwd)
export NOXS_BUILD=$B
case $mode in
short) NS="10 100 300 1000"; NS_XS="10 100 300"; BRING_N=200; CONC_N=200
	REPS=3; BASE_BRING_REPS=3; STEP_TIMEOUT=600; GEN_REPS=1 ;;
full) NS="10 100 300 1000 3000 10000"; NS_XS="10 100 300 1000"; BRING_N=1000
	CONC_N=300; REPS=3; BASE_BRING_REPS=3; STEP_TIMEOUT=2400; GEN_REPS=3 ;;
*) echo "usage: $0 short|full" >&2; exit 2 ;;
esac
# The three-device bring-up: every N from a fresh start in one step per
# implementation and repetition, so its timeout covers them all.
case $mode in
short) BRING3_NS="10 100 1000"; BRING3_NS_XS="10 100"; BRING3_TIMEOUT=1800 ;;
full) BRING3_NS="10 100 1000 10000"; BRING3_NS_XS="10 100 1000"
	BRING3_TIMEOUT=7200 ;;
esac
BRING3_NS=${BENCH_BRING3_NS:-$BRING3_NS}
BRING3_NS_XS=${BENCH_BRING3_NS_XS:-${BENCH_BRING3_NS:-$BRING3_NS_XS}}
REPS=${BENCH_REPS:-$REPS}
NS=${BENCH_NS:-$NS}
NS_XS=${BENCH_NS_XS:-${BENCH_NS:-$NS_XS}}
BRING_N=${BENCH_BRING_N:-$BRING_N}
CONC_N=${BENCH_CONC_N:-$CONC_N}
BASE_BRING_REPS=${BENCH_BASE_BRING_REPS:-$BASE_BRING_REPS}
[ "$BASE_BRING_REPS" -le "$REPS" ] || BASE_BRING_REPS=$REPS
KS="1 2 8"

# compat-xs's sizes: NS, capped by the fds one process may hold (above).
NOFILE=$(ulimit -Hn)
CX_FDS_PER_GUEST=5
CX_CAP=""
if [ "$NOFILE" != unlimited ]; then
	CX_CAP=$(((NOFILE - 64) / CX_FDS_PER_GUEST))
	[ "$CX_CAP" -lt 1000 ] || CX_CAP=$((CX_CAP / 100 * 100))
fi
NS_CX=""
for n in $NS; do
	if [ -n "$CX_CAP" ] && [ "$n" -gt "$CX_CAP" ]; then n=$CX_CAP; fi
	case " $NS_CX " in *" $n "*) ;; *) NS_CX="$NS_CX $n" ;; esac
done
NS_CX=${NS_CX# }
# The backends serve every device of their type from one process each:
# noxs-console-back holds 2 file descriptors per console (its socket and,
# on the simulator, its event channel's socket) and noxs-blk-back about
# 6 memory mappings per disk at the peak of a bring-up (ring and data
# pages, the thread and io_uring of a disk in use; measured at N=1000).
# So the three-device bring-up's largest N is capped by the hard
# RLIMIT_NOFILE and vm.max_map_count (9900 with 20000 and 65530), rounded
# down to 100; meta.txt records the cap where it bit. Domain 0's grant
# table bounds it too, as on Xen: a domain's device page and each of its
# devices' control pages are grants of domain 0 (4 here), and the table
# has 32768 entries (the simulator's, and Xen's default gnttab_max_frames
# of 64), so three-device domains stop at about 8100.
MAXMAP=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 65530)
B3_CAP=$(((MAXMAP - 1024) / 6))
if [ "$NOFILE" != unlimited ] && [ $(((NOFILE - 128) / 2)) -lt "$B3_CAP" ]; then
	B3_CAP=$(((NOFILE - 128) / 2))
fi
[ "$B3_CAP" -le $(((32768 - 256) / 4)) ] || B3_CAP=$(((32768 - 256) / 4))
B3_CAP=$((B3_CAP / 100 * 100))
B3_NS="" B3_CAPPED=""
for n in $BRING3_NS; do
	if [ "$n" -gt "$B3_CAP" ]; then n=$B3_CAP B3_CAPPED=$B3_CAP; fi
	case " $B3_NS " in *" $n "*) ;; *) B3_NS="$B3_NS $n" ;; esac
done
BRING3_NS=${B3_NS# }
FLOOR_N=20000
# The handshake under load: its sizes, and one CPU hog per core.
LOAD_NS=${BENCH_LOAD_NS:-"10 100 1000"}
NCPU=$(nproc)
HOG=""
IMPLS_XS="xenstored oxenstored"
# The second configuration of Debian's daemons (see above).
SOCK_XS=""
[ "${BENCH_SOCKETS:-1}" = 0 ] || SOCK_XS="xenstored-sockets oxenstored-sockets"
# Generic paths (bench/generic.sh): every configuration at 10 and 1000
# domains (about 6 minutes per repetition, most of it the daemons taking
# 1000 domains' records), in the first GEN_REPS repetitions.
GEN_NS=${BENCH_GEN_NS:-"10 1000"}
GEN_REPS=${BENCH_GEN_REPS:-$GEN_REPS}
[ "$GEN_REPS" -le "$REPS" ] || GEN_REPS=$REPS
GEN_IMPLS="compat-xs-local compat-xs-local-disk xenstored oxenstored compat-xs-mixed"
export BENCH_TXN_SIZES="${BENCH_TXN_SIZES-16 64}"

"$top/scripts/deps.sh" bench
command -v stress-ng >/dev/null || HOG=missing

res=$B/bench/results
rm -rf "$res"
mkdir -p "$res/raw" "$res/log"
# Everything (simulator state, noxsd's and the daemons' state) on tmpfs,
# as on a dom0 (/run, /var/lib/xenstored), not on the disk of /tmp.
base=${NOXS_BENCH_TMPDIR:-/dev/shm}
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/noxs-bench.XXXXXX")
export XSSHIM=$B/tests/compat/xsshim.so
export COMPAT_XS_QUIET=1
LIBS=$B/sim:$B/lib
started=$(date +%s)

# Daemons we started, stopped on exit whatever happens.
xsd_dirs=""
noxsd_pids=""
cleanup() {
	[ -z "$HOG" ] || [ "$HOG" = missing ] || kill "-$HOG" 2>/dev/null || true
	for d in $xsd_dirs; do "$top/tests/compat/xsd.sh" stop "$d" 2>/dev/null || true; done
	for p in $noxsd_pids; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "noxs bench: interrupted" >&2; kill_step; exit 130' INT TERM
# Kill what is left of the current step (its own session/process group).
kill_step() {
	pg=$(cat "$work/pgid" 2>/dev/null || echo)
	if [ -n "$pg" ]; then kill -9 "-$pg" 2>/dev/null || true; fi
	return 0
}

# ---- the machine, the versions, the commands ----
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }
{
	echo "mode=$mode"
	bench_meta "$top"
	echo "mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "xen_utils=$(pkgver xen-utils-4.17)"
	echo "xenstore_utils=$(pkgver xenstore-utils)"
	echo "libxenstore=$(pkgver libxenstore4)"
	echo "gnuplot=$(pkgver gnuplot-nox)"
	echo "gcc=$(gcc -dumpfullversion 2>/dev/null || echo ?)"
	echo "reps=$REPS"
	echo "ns=$NS"
	echo "ns_xenstored=$NS_XS"
	echo "ns_oxenstored=$NS_XS"
	echo "xs_guests=ring (compat-bench --ring)"
	echo "xs_second_config=$SOCK_XS"
	echo "ns_compat_xs=$NS_CX"
	echo "nofile_hard=$NOFILE"
	echo "compat_xs_cap=$CX_CAP"
	echo "bring_n=$BRING_N"
	echo "conc_n=$CONC_N"
	echo "base_bring_reps=$BASE_BRING_REPS"
	echo "ks=$KS"
	echo "floor_n=$FLOOR_N"
	echo "load_ns=$LOAD_NS"
	echo "load_hogs=stress-ng --cpu $NCPU --cpu-method loop (stress-ng $(pkgver stress-ng))"
	echo "bring3_ns=$BRING3_NS"
	echo "bring3_cap=$B3_CAPPED"
	echo "max_map_count=$MAXMAP"
	echo "bring3_ns_xs=$BRING3_NS_XS"
	echo "generic_ns=$GEN_NS"
	echo "generic_reps=$GEN_REPS"
	echo "generic_impls=$GEN_IMPLS"
	echo "generic_iter=${BENCH_ITER:-1000}"
	echo "generic_watch_iter=${BENCH_WATCH_ITER:-300}"
	echo "generic_budget_ms=${BENCH_BUDGET_MS:-3000}"
	echo "generic_txn_sizes=$BENCH_TXN_SIZES"
	echo "generic_disk=${BENCH_DISK_DIR:-/var/tmp} ($(df -T "${BENCH_DISK_DIR:-/var/tmp}" | awk 'NR == 2 { print $2 }'))"
} >"$res/meta.txt"

XS_BRING3=$B/bench/xs-bringup3
B3_STEPS=1
[ ! -x "$XS_BRING3" ] || B3_STEPS=3
nsteps=$((REPS * (1 + 1 + 2 + 3 + $(echo $SOCK_XS | wc -w) + 4 * 3 + B3_STEPS) + GEN_REPS * 5))
if [ "$CONC_N" != "$BRING_N" ]; then
	nsteps=$((nsteps + 2 * REPS + 2 * BASE_BRING_REPS))
fi
step=0
failures=0
load_max=0
own_load_until=0
rep=0
# ETA: from the second repetition on, the first one's duration (less its
# first-repetition-only steps) per repetition still to run.
rep_t0=$started rep1_s="" once_s=0 once=0
eta() {
	[ -n "$rep1_s" ] || return 0
	left=$(((REPS - rep + 1) * (rep1_s - once_s) - ($1 - rep_t0)))
	[ $left -ge 0 ] || left=0
	printf 'ETA %dm%02ds' $((left / 60)) $((left % 60))
}
# run NAME RAWFILE CMD...: one step, in its own process group (so that
# nothing it leaves behind survives it), with a timeout; output appended
# to RAWFILE, stderr kept in log/. A failed step is recorded, not fatal.
run() {
	name=$1 raw=$2
	shift 2
	step=$((step + 1))
	t0=$(date +%s)
	# The highest 1-minute load average seen at the start of a step, for
	# the report: a run disturbed by other jobs says so.
	# Not while our own CPU hogs run, nor while the 1-minute average
	# still carries them (own_load_until).
	l1=$(cut -d' ' -f1 /proc/loadavg)
	if [ "$t0" -ge "$own_load_until" ] &&
		awk -v a="$l1" -v b="$load_max" 'BEGIN { exit !(a > b) }'; then
		load_max=$l1
	fi
	printf '[%3d/%d %4ds %11s] %-44s ' "$step" "$nsteps" "$((t0 - started))" \
		"$(eta "$t0")" "$name"
	log=$res/log/$(echo "$name" | tr ' /=' '___').txt
	rc=0
	rm -f "$work/pgid"
	# In the background and waited for, so that ^C reaches the trap at once.
	setsid -w sh -c 'echo $$ >"$0"; exec timeout -k 10 "$@"' "$work/pgid" \
		"$STEP_TIMEOUT" "$@" >"$work/out" 2>"$log" </dev/null &
	wait $! || rc=$?
	kill_step
	cat "$work/out" >>"$res/raw/$raw"
	t1=$(date +%s)
	[ "$rep" -gt 1 ] || [ "$once" = 0 ] || once_s=$((once_s + t1 - t0))
	printf '%s\t%s\t%s\t%s\n' "$name" "$rep" "$((t1 - t0))" "$rc" >>"$res/steps.tsv"
	if [ $rc -ne 0 ]; then
		failures=$((failures + 1))
		echo "FAILED (exit $rc, $((t1 - t0))s; see $log)"
		printf '%s\trep=%s\texit=%s\t%s\n' "$name" "$rep" "$rc" \
			"$(tail -n 3 "$log" | tr '\t\n' '  ')" >>"$res/failures.tsv"
	else
		echo "ok ($((t1 - t0))s)"
	fi
	return 0
}

# Start Debian's daemon $1 as domain 0 of a fresh simulator directory,
# for ring-connected guests; sets XSENV, XSD_SIMDIR, DPIDS.
start_xsd_sim() {
	d=$work/xsd-$1-$step
	mkdir -p "$d/sim"
	XSD_SIMDIR=$d/sim
	XSENV=$(NOXS_SIM_DIR=$XSD_SIMDIR XSD_SIM=1 "$top/tests/compat/xsd.sh" start "$1" "$d")
	xsd_dirs="$xsd_dirs $d"
	DPIDS=$(cat "$d/daemon.pid")
	XSD_DIR=$d
}
stop_xsd() {
	"$top/tests/compat/xsd.sh" stop "$XSD_DIR" || true
}

# Start a fresh noxsd (own simulator directory); sets NOXS_* and DPIDS.
start_noxsd() {
	d=$work/noxsd-$step
	mkdir -p "$d/sim" "$d/state"
	NOXSD_DIR=$d
	NOXS_SIM_DIR=$d/sim NOXS_SOCKET=$d/noxsd.sock \
		LD_LIBRARY_PATH=$LIBS setsid "$B/bin/noxsd" -d --socket "$d/noxsd.sock" \
		--state-dir "$d/state" >"$d/noxsd.log" 2>&1 </dev/null &
	worker=$!
	noxsd_pids="$noxsd_pids $worker"
	bench_wait_noxsd "$d" || return 1
	keeper=$(cat "$d/state/keeper.pid")
	noxsd_pids="$noxsd_pids $keeper"
	DPIDS="$worker $keeper"
}
stop_noxsd() {
	for p in $DPIDS; do kill "$p" 2>/dev/null || true; done
}

# bring-up for IMPL with N domains and K clients
bringup() {
	impl=$1 n=$2 k=$3 raw=$4
	txn=0 # (c) 4-write transactions, in the one-client bring-up only
	[ "$k" = 1 ] && [ "$n" = "$BRING_N" ] && txn=1000
	case $impl in
	xenstored | oxenstored)
		start_xsd_sim "$impl"
		run "$impl bringup n=$n k=$k" "$raw" env "$XSENV" \
			NOXS_SIM_DIR="$XSD_SIMDIR" BENCH_GUESTS=ring \
			BENCH_DAEMON_PIDS="$DPIDS" BENCH_TXN=$txn "$B/bench/xs-bringup" "$impl" "$n" "$k"
		stop_xsd ;;
	compat-xs)
		start_noxsd
		run "$impl bringup n=$n k=$k" "$raw" env NOXS_SIM_DIR="$NOXSD_DIR/sim" \
			NOXS_SOCKET="$NOXSD_DIR/noxsd.sock" BENCH_DAEMON_PIDS="$DPIDS" \
			BENCH_TXN=$txn LD_LIBRARY_PATH="$B/lib/compat-xs:$LIBS" \
			"$B/bench/xs-bringup" "$impl" "$n" "$k"
		stop_noxsd ;;
	noxs)
		start_noxsd
		run "$impl bringup n=$n k=$k" "$raw" env NOXS_SIM_DIR="$NOXSD_DIR/sim" \
			NOXS_SOCKET="$NOXSD_DIR/noxsd.sock" BENCH_DAEMON_PIDS="$DPIDS" \
			LD_LIBRARY_PATH="$LIBS" "$B/bench/noxs-bringup" "$impl" "$n" "$k"
		stop_noxsd ;;
	esac
}

# The legacy pair's handshake and xs_* latencies (bench/compat.c) for IMPL
# (what bench/compat.sh does, one daemon at a time so each gets its N).
compat() {
	impl=$1
	case $impl in
	xenstored | oxenstored)
		start_xsd_sim "$impl"
		run "$impl compat-bench $tag" "compat.$rep" env "$XSENV" \
			NOXS_SIM_DIR="$XSD_SIMDIR" BENCH_DAEMON_PID="$DPIDS" \
			"$B/bench/compat-bench" --ring "$impl" $NS_XS
		stop_xsd ;;
	xenstored-sockets | oxenstored-sockets)
		start_xsd_sim "${impl%-sockets}"
		run "$impl compat-bench $tag" "compat.$rep" env "$XSENV" \
			NOXS_SIM_DIR="$XSD_SIMDIR" BENCH_DAEMON_PID="$DPIDS" \
			"$B/bench/compat-bench" --sockets "$impl" $NS_XS
		stop_xsd ;;
	compat-xs)
		start_noxsd
		run "$impl compat-bench $tag" "compat.$rep" env NOXS_SIM_DIR="$NOXSD_DIR/sim" \
			NOXS_SOCKET="$NOXSD_DIR/noxsd.sock" \
			LD_LIBRARY_PATH="$B/lib/compat-xs:$LIBS" \
			"$B/bench/compat-bench" "$impl" $NS_CX
		stop_noxsd ;;
	esac
}

# floor_handshake LABEL SUFFIX N...: the simulator's floor, then the native
# handshake at N..., as steps "sim-floor$LABEL" and "native
# handshake$LABEL" into raw/floor$SUFFIX.<rep> and raw/handshake$SUFFIX.<rep>.
floor_handshake() {
	label=$1 suffix=$2
	shift 2
	run "sim-floor$label $tag" "floor$suffix.$rep" env NOXS_SIM_DIR="$work/floor" \
		LD_LIBRARY_PATH="$LIBS" "$B/bench/sim-floor" $FLOOR_N
	rm -rf "$work/floor"
	run "native handshake$label $tag" "handshake$suffix.$rep" env \
		NOXS_BENCH_TMPDIR="$work" LD_LIBRARY_PATH="$LIBS" "$B/bench/handshake" "$@"
}

# (f') the floor and the native handshake again under a fixed background
# load: one CPU hog per core, at the benchmarks' own priority, for as long
# as the two steps take. The machine's load average then carries the hogs
# for a while, so it is not read for the report until 90 s after.
loaded() {
	if [ "$HOG" = missing ]; then
		echo "noxs bench: stress-ng is not installed: no run under load" >&2
		return 0
	fi
	own_load_until=2147483647
	setsid stress-ng --cpu "$NCPU" --cpu-method loop --timeout "$((2 * STEP_TIMEOUT))s" \
		--quiet </dev/null >/dev/null 2>&1 &
	HOG=$!
	sleep 2
	floor_handshake " loaded" "-load" $LOAD_NS
	kill "-$HOG" 2>/dev/null || kill "$HOG" 2>/dev/null || true
	wait "$HOG" 2>/dev/null || true
	HOG=""
	own_load_until=$(($(date +%s) + 90))
}

# (h) bring-up with three devices per domain, and the teardown
bringup3() {
	saved=$STEP_TIMEOUT
	STEP_TIMEOUT=$BRING3_TIMEOUT
	# bringup3 starts its own noxsd and backends in $work (tmpfs).
	run "noxs bringup3 $tag" "bringup3.$rep" env NOXS_BENCH_TMPDIR="$work" \
		LD_LIBRARY_PATH="$LIBS" "$B/bench/bringup3" $BRING3_NS
	# ---- Debian's daemons: bench/xs-bringup3.sh IMPL N... ----
	# The same figures for xenstored and oxenstored: the script starts
	# each daemon afresh for every N as domain 0 of its own simulator
	# directory (guests on their store rings) and prints bringup3's line
	# with impl=IMPL (rep= from BENCH_REP). Skipped while xs-bringup3 is
	# not built.
	if [ -x "$XS_BRING3" ]; then
		for impl in $IMPLS_XS; do
			run "$impl bringup3 $tag" "bringup3.$rep" env \
				TMPDIR="$work" "$top/bench/xs-bringup3.sh" \
				"$impl" $BRING3_NS_XS
		done
	fi
	STEP_TIMEOUT=$saved
}

echo "noxs bench ($mode): $REPS repetitions, N = $NS (Debian's daemons: $NS_XS;" \
	"compat-xs: $NS_CX); bring-up $BRING_N, K = $KS at $CONC_N; results in $res"
while [ $rep -lt "$REPS" ]; do
	rep=$((rep + 1))
	tag="rep=$rep"
	now=$(date +%s)
	if [ $rep = 2 ]; then rep1_s=$((now - rep_t0)); fi
	rep_t0=$now
	export BENCH_REP=$rep
	# (f) the simulator's notify floor, (a) native handshake per device
	# as N grows; (f') both again under load
	floor_handshake "" "" $NS
	loaded
	# (a)(c) legacy pair handshake and xs_* latencies
	for impl in $IMPLS_XS $SOCK_XS compat-xs; do
		compat "$impl"
	done
	# generic paths: compat-xs's local store against the daemons
	if [ $rep -le "$GEN_REPS" ]; then
		once=$((GEN_REPS < REPS))
		for impl in $GEN_IMPLS; do
			run "$impl generic $tag" "generic.$rep" env NOXS_BENCH_TMPDIR="$work" \
				"$top/bench/generic.sh" one "$impl" $GEN_NS
		done
		once=0
	fi
	# (b)(d)(e) one client bringing up BRING_N domains, when that is not
	# the K = 1 run below; (g) K toolstack clients at once
	for impl in $IMPLS_XS compat-xs noxs; do
		if [ "$CONC_N" != "$BRING_N" ]; then
			case $impl in
			xenstored | oxenstored)
				if [ $rep -le "$BASE_BRING_REPS" ]; then
					once=$((BASE_BRING_REPS < REPS))
					bringup "$impl" "$BRING_N" 1 "bringup.$rep"
					once=0
				fi ;;
			*) bringup "$impl" "$BRING_N" 1 "bringup.$rep" ;;
			esac
		fi
		for k in $KS; do
			bringup "$impl" "$CONC_N" "$k" "conc.$rep"
		done
	done
	bringup3
done

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$res/meta.txt"
echo "loadavg_max=$load_max" >>"$res/meta.txt"
echo "elapsed_s=$(($(date +%s) - started))" >>"$res/meta.txt"
echo "failures=$failures" >>"$res/meta.txt"

# ---- report and plots ----
docs=$top/docs readme=$top/README.md
if [ "${BENCH_NO_DOCS:-}" = 1 ]; then
	docs=$res/docs readme=$res/docs/README.md
	mkdir -p "$docs" && cp "$top/README.md" "$readme"
fi
mkdir -p "$docs/bench"
python3 "$top/bench/report.py" "$res" "$docs" "$readme"
gnuplot -e "res='$res'; out='$docs/bench'" "$top/bench/plot.gp"
echo "noxs bench: $(($(date +%s) - started))s, $failures failed steps;" \
	"CSV in $res, report in $docs/BENCHMARKS.md"
