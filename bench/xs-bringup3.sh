#!/bin/sh
# bench/xs-bringup3.sh IMPL N...: the three-device bring-up of
# build/bench/xs-bringup3 on Debian's IMPL (xenstored or oxenstored),
# each N from a fresh daemon: the daemon runs as domain 0 of a fresh
# simulator directory (tests/compat/xsd.sh with XSD_SIM=1, as
# scripts/bench.sh starts it for xs-bringup), the guests on their store
# rings, and is stopped after the N. Prints xs-bringup3's line per N.
# BENCH_REP is passed on (the rep= field). NOXS_BUILD names the build
# dir (default build). Needs: make, scripts/deps.sh compat.
set -eu
[ $# -ge 2 ] || { echo "usage: xs-bringup3.sh xenstored|oxenstored N..." >&2; exit 2; }
impl=$1
shift
case $impl in
xenstored | oxenstored) ;;
*) echo "xs-bringup3.sh: unknown daemon $impl" >&2; exit 2 ;;
esac
B=$(cd "${NOXS_BUILD:-build}" && pwd)
export NOXS_BUILD=$B
here=$(cd "$(dirname "$0")" && pwd)
# tests/compat/xsd.sh of the tree, or beside this script (where the
# compat tests copy both).
xsd=$here/../tests/compat/xsd.sh
[ -f "$xsd" ] || xsd=$here/xsd.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/noxs-xs-bringup3.XXXXXX")
d= run=
cleanup() {
	[ -n "$run" ] && kill "$run" 2>/dev/null
	[ -n "$d" ] && [ -f "$d/daemon.pid" ] && "$xsd" stop "$d"
	rm -rf "$work" /dev/shm/"$(basename "$work")"-*
}
trap cleanup EXIT
# A step timeout's signal stops the run in hand and the daemon too.
trap 'exit 143' TERM INT HUP

# The simulator's pages are shared-memory files: on tmpfs when there is
# one, as the other benchmarks have them.
simdir() {
	if [ -d /dev/shm ] && [ -w /dev/shm ]; then
		echo "/dev/shm/$(basename "$work")-$1"
	else
		echo "$work/$1/sim"
	fi
}

rc=0
for n in "$@"; do
	d=$work/$impl-$n
	sim=$(simdir "$impl-$n")
	mkdir -p "$d" "$sim"
	env=$(NOXS_SIM_DIR=$sim XSD_SIM=1 "$xsd" start "$impl" "$d")
	env "$env" NOXS_SIM_DIR="$sim" BENCH_DAEMON_PIDS="$(cat "$d/daemon.pid")" \
		LD_LIBRARY_PATH="$B/sim:$B/lib" "$B/bench/xs-bringup3" "$impl" "$n" &
	run=$!
	wait $run || rc=1
	run=
	"$xsd" stop "$d"
	rm -f "$d/daemon.pid"
	rm -rf "$sim"
	[ $rc = 0 ] || break
done
exit $rc
