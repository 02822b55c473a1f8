#!/bin/sh
# bench/compat.sh [N ...]: bench/compat-bench against Debian's xenstored,
# oxenstored and compat-xs + noxsd, in one run (default N: 10 100 1000).
# Debian's daemons run as domain 0 of the simulator and their guests talk
# to them over store rings (compat-bench --ring); with BENCH_SOCKETS=1,
# also with a dom0 socket per guest (--sockets, labelled
# xenstored-sockets / oxenstored-sockets).
# Prints every result line, then the ratios of the medians for every op
# and N: compat ratio op=OP n=N xenstored/compat-xs=R oxenstored/compat-xs=R
# Needs: make (compat-bench, legacy-back, the shim, compat-xs, noxsd)
# and scripts/deps.sh compat. NOXS_BUILD names the build dir.
set -eu
sim=
B=$(cd "${NOXS_BUILD:-build}" && pwd)
export NOXS_BUILD=$B
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/noxs-compat-bench.XXXXXX")
out=$work/results
pids=""
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
	[ -f "$work/state/keeper.pid" ] && kill -9 "$(cat "$work/state/keeper.pid")" 2>/dev/null
	for d in xenstored oxenstored xenstored-sockets oxenstored-sockets; do
		[ -d "$work/$d" ] && "$top/tests/compat/xsd.sh" stop "$work/$d"
	done
	rm -rf "$work" ${sim:+"$sim"}
}
trap cleanup EXIT

configs="xenstored oxenstored"
[ "${BENCH_SOCKETS:-0}" = 0 ] || configs="$configs xenstored-sockets oxenstored-sockets"
for c in $configs; do
	d=${c%-sockets}
	guests=--ring
	[ "$c" = "$d" ] || guests=--sockets
	mkdir -p "$work/$c/sim"
	env=$(NOXS_SIM_DIR="$work/$c/sim" XSD_SIM=1 "$top/tests/compat/xsd.sh" start $d "$work/$c")
	env "$env" NOXS_SIM_DIR="$work/$c/sim" BENCH_DAEMON_PID="$(cat "$work/$c/daemon.pid")" \
		LD_LIBRARY_PATH="$B/sim:$B/lib" "$B/bench/compat-bench" $guests $c "$@" | tee -a "$out"
	"$top/tests/compat/xsd.sh" stop "$work/$c"
done

# The simulator's grant pages and tables are shared-memory files: on
# tmpfs, like its default and like the other benchmarks (on a disk-backed
# /tmp every page fault of a new domain's pages costs far more).
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=$work
sim=$(mktemp -d "$shm/noxs-compat-sim.XXXXXX")
export NOXS_SIM_DIR=$sim NOXS_SOCKET=$work/noxsd.sock
mkdir -p "$work/state"
LD_LIBRARY_PATH=$B/sim:$B/lib "$B/bin/noxsd" -d --socket "$NOXS_SOCKET" \
	--state-dir "$work/state" >"$work/noxsd.log" 2>&1 &
pids="$pids $!"
i=0
until [ -S "$NOXS_SOCKET" ]; do
	i=$((i + 1)); [ $i -gt 1000 ] && { cat "$work/noxsd.log"; exit 1; }
	sleep 0.01
done
LD_LIBRARY_PATH=$B/lib/compat-xs:$B/sim:$B/lib COMPAT_XS_QUIET=1 \
	"$B/bench/compat-bench" compat-xs "$@" | tee -a "$out"

# Ratios of medians, per op and N (the issue's targets: handshake at the
# largest N vs oxenstored >= 10, device-key read vs xenstored >= 30).
echo "compat load $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15-min load average at the end; 2 cores)"
awk '
/^compat daemon=/ {
	delete v
	for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	if (v["op"] == "handshake_total") next
	m[v["daemon"] "," v["op"] "," v["n"]] = v["median_us"]
	if (!((v["op"] "," v["n"]) in seen)) { seen[v["op"] "," v["n"]] = 1; order[++k] = v["op"] "," v["n"] }
}
END {
	for (i = 1; i <= k; i++) {
		split(order[i], on, ",")
		c = m["compat-xs," order[i]]
		if (c > 0)
			printf "compat ratio op=%s n=%s xenstored/compat-xs=%.1f oxenstored/compat-xs=%.1f\n",
				on[1], on[2], m["xenstored," order[i]] / c, m["oxenstored," order[i]] / c
	}
}' "$out"
