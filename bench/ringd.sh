#!/bin/sh
# bench/ringd.sh [N ...]: the xenbus device handshake of guests that speak
# the store ring protocol as Linux's xenbus does (bench/xsrclient.c), each
# on its own store ring and event channel, through three daemons at the
# same N (default 10 100 1000): Debian's xenstored and oxenstored as
# domain 0 of the simulator (tests/compat/xsd.sh with XSD_SIM=1, as
# bench/compat.sh runs them) and noxs-xsringd, the ring service of a
# noxs-only dom0 (docs/XSRINGD.md). With noxs-xsringd the toolstack
# (compat-bench's xs_* calls) and the backend (legacy-back) use
# compat-xs in local mode, as xl and dom0's tools do on such a dom0: the
# local store directly, no daemon on their path; no noxsd runs (these
# guests have no noxs devices). The same binary, guests and handshake
# steps in all three (bench/compat.c --ring, latency runs off unless
# BENCH_LAT is set).
#
# Prints compat-bench's lines, then one line per daemon and N:
#   ring daemon=D n=N handshake_us=MEDIAN [MIN-MAX] rss_kib=R per_domain_b=P
# (the handshakes of the ten domains before N; the daemon's VmRSS at N
# and its growth since before the first domain, per domain), the machine
# and the load average at the start and the end.
#
# An N is skipped, with a message, when the fd limit cannot hold it
# (one fd per guest in the bench's own process: the guest's
# event-channel handle on the simulator; none in noxs-xsringd) or, for
# Debian's daemons, above BENCH_RING_XSD_MAX (default 1000: their
# handshake grows with N, so 10000 would take hours).
# Needs: make, scripts/deps.sh compat. NOXS_BUILD names the build dir.
set -eu
B=$(cd "${NOXS_BUILD:-build}" && pwd)
export NOXS_BUILD=$B
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/noxs-ringd-bench.XXXXXX")
out=$work/results
ringd=
cleanup() {
	[ -n "$ringd" ] && kill "$ringd" 2>/dev/null
	for d in xenstored oxenstored; do
		[ -f "$work/$d/daemon.pid" ] && "$top/tests/compat/xsd.sh" stop "$work/$d"
	done
	rm -rf "$work" /dev/shm/"$(basename "$work")"-*
}
trap cleanup EXIT
[ $# -gt 0 ] || set -- 10 100 1000
xsd_max=${BENCH_RING_XSD_MAX:-1000}
fdmax=$(ulimit -Hn)
[ "$fdmax" = unlimited ] && fdmax=1048576
export BENCH_LAT=${BENCH_LAT:-0}

# sizes DAEMON N...: the Ns this daemon runs, a message for the others.
sizes() {
	_d=$1
	shift
	for _n in "$@"; do
		if [ $((_n + 200)) -gt "$fdmax" ]; then
			echo "ring skip daemon=$_d n=$_n: $((_n + 200)) fds needed, hard limit $fdmax" >&2
		elif [ "$_d" != noxs-xsringd ] && [ "$_n" -gt "$xsd_max" ]; then
			echo "ring skip daemon=$_d n=$_n: above BENCH_RING_XSD_MAX=$xsd_max (hours)" >&2
		else
			printf '%s ' "$_n"
		fi
	done
}

# The simulator's pages are shared-memory files: on tmpfs, as the
# other benchmarks have them.
simdir() {
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then
		echo "/dev/shm/$(basename "$work")-$1"
	else
		echo "$work/$1/sim"
	fi
}

echo "ring machine cpu=\"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)\" cores=$(nproc) git=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo none)"
echo "ring load start $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15-min)"

for d in xenstored oxenstored; do
	ns=$(sizes $d "$@")
	[ -n "$ns" ] || continue
	sim=$(simdir $d)
	mkdir -p "$work/$d" "$sim"
	env=$(NOXS_SIM_DIR=$sim XSD_SIM=1 "$top/tests/compat/xsd.sh" start $d "$work/$d")
	# shellcheck disable=SC2086
	env "$env" NOXS_SIM_DIR="$sim" BENCH_DAEMON_PID="$(cat "$work/$d/daemon.pid")" \
		LD_LIBRARY_PATH="$B/sim:$B/lib" "$B/bench/compat-bench" --ring $d $ns | tee -a "$out"
	"$top/tests/compat/xsd.sh" stop "$work/$d"
	rm -f "$work/$d/daemon.pid"
done

ns=$(sizes noxs-xsringd "$@")
if [ -n "$ns" ]; then
	sim=$(simdir noxs-xsringd)
	mkdir -p "$work/xs" "$sim"
	# No noxsd: its socket is a path nobody listens on, so no other
	# run's noxsd is reached.
	export NOXS_SIM_DIR=$sim NOXS_COMPAT_MODE=local NOXS_XS_DIR=$work/xs \
		NOXS_SOCKET=$work/no-noxsd.sock COMPAT_XS_QUIET=1
	env NOXS_SIM_DOMID=0 LD_LIBRARY_PATH="$B/sim:$B/lib" "$B/bin/noxs-xsringd" \
		--no-kernel --store "$work/xs" >"$work/xsringd.log" 2>&1 &
	ringd=$!
	i=0
	until grep -q "serving .* rings" "$work/xsringd.log"; do
		i=$((i + 1))
		if [ $i -gt 1000 ] || ! kill -0 $ringd 2>/dev/null; then
			cat "$work/xsringd.log" >&2
			exit 1
		fi
		sleep 0.01
	done
	# shellcheck disable=SC2086
	BENCH_DAEMON_PID=$ringd LD_LIBRARY_PATH="$B/lib/compat-xs:$B/sim:$B/lib" \
		"$B/bench/compat-bench" --ring noxs-xsringd $ns | tee -a "$out"
	kill $ringd
	wait $ringd || true
	ringd=
fi

echo "ring load end $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15-min)"
awk '
/^compat daemon=/ {
	delete v
	for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	k = v["daemon"] " " v["n"]
	if (v["op"] == "handshake") {
		hs[k] = sprintf("%.0f [%.0f-%.0f]", v["median_us"], v["min_us"], v["max_us"])
		order[++nk] = k
	}
	if (v["op"] == "daemon_rss") { rss[k] = v["rss_kib"]; per[k] = v["per_domain_b"] }
}
END {
	for (i = 1; i <= nk; i++) {
		split(order[i], dn, " ")
		printf "ring daemon=%s n=%s handshake_us=%s rss_kib=%s per_domain_b=%s\n",
			dn[1], dn[2], hs[order[i]], rss[order[i]], per[order[i]]
	}
}' "$out"
