#!/bin/sh
# Run Debian's real, unmodified XenStore daemon on a host without Xen.
#
#   xsd.sh start xenstored|oxenstored DIR   start it with its state in DIR
#                                           and print XENSTORED_PATH=...
#   xsd.sh stop DIR                         stop the daemon started in DIR
#
# The daemon runs with tests/compat/xsshim.so preloaded (see xsshim.c for
# what it fakes). The C daemon takes its socket directory from
# XENSTORED_RUNDIR; oxenstored's socket path is compiled in
# (/run/xenstored/socket), so it runs in a private mount namespace with
# DIR bound on /run. Either way clients reach it with
# XENSTORED_PATH=DIR/.../socket, which this script prints.
#
# The shim is found at $XSSHIM, else $NOXS_BUILD/tests/compat/xsshim.so.
#
# With XSD_SIM=1 the daemon runs as domain 0 of the simulator instead
# ($NOXS_SIM_DIR): bench/xsdsim.so ($XSDSIM, else
# $NOXS_BUILD/bench/xsdsim.so) and the simulator's libxenevtchn,
# libxengnttab and libxenforeignmemory are preloaded, so introduced
# guests' rings and event channels are real simulator pages and ports
# (bench/xsdsim.c says what is still faked).
set -eu

XEN_BIN=${XEN_BIN:-/usr/lib/xen-4.17/bin}
shim=${XSSHIM:-${NOXS_BUILD:-build}/tests/compat/xsshim.so}

die() { echo "xsd.sh: $*" >&2; exit 1; }

wait_socket() {
	i=0
	while [ ! -S "$1" ]; do
		i=$((i + 1))
		[ $i -gt 500 ] && die "daemon did not create $1 (see $2)"
		kill -0 "$3" 2>/dev/null || die "daemon exited (see $2)"
		sleep 0.01
	done
}

case "${1:-}" in
start)
	[ $# -eq 3 ] || die "usage: xsd.sh start xenstored|oxenstored DIR"
	kind=$2
	dir=$(cd "$3" && pwd)
	if [ "${XSD_SIM:-}" = 1 ]; then
		shim=${XSDSIM:-${NOXS_BUILD:-build}/bench/xsdsim.so}
		[ -n "${NOXS_SIM_DIR:-}" ] || die "XSD_SIM=1 needs NOXS_SIM_DIR"
	fi
	[ -f "$shim" ] || die "no shim at $shim (make it first)"
	shim=$(cd "$(dirname "$shim")" && pwd)/$(basename "$shim")
	if [ "${XSD_SIM:-}" = 1 ]; then
		# Preloaded by path, the simulator's libraries stand in for
		# Debian's of the same soname; Debian's libxenctrl stays.
		simdir=$(cd "$(dirname "$shim")/../sim" && pwd)
		for l in libxenevtchn.so.1 libxengnttab.so.1 libxenforeignmemory.so.1; do
			[ -f "$simdir/$l" ] || die "no $simdir/$l (make it first)"
			shim="$shim $simdir/$l"
		done
		# A sanitizer build of the simulator needs its runtime first
		# in the (uninstrumented) daemon.
		asan=$(ldd "$simdir/libnoxs-sim.so.0" 2>/dev/null |
			awk '$1 ~ /^libasan\.so/ {print $3}')
		if [ -n "$asan" ]; then
			shim="$asan $shim"
			export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
		fi
	fi
	case "$kind" in
	xenstored)
		env -u LD_LIBRARY_PATH -u NOXS_SIM_DOMID XENSTORED_RUNDIR="$dir" LD_PRELOAD="$shim" \
			"$XEN_BIN/xenstored" -N -F "$dir/xenstored.pid" \
			>"$dir/daemon.log" 2>&1 &
		pid=$!
		sock=$dir/socket
		;;
	oxenstored)
		cat >"$dir/oxenstored.conf" <<-CONF
		pid-file = /run/xenstored.pid
		persistent = false
		xenstored-log-file = /run/xenstored.log
		access-log-file = /run/xenstored-access.log
		xenstored-kva = /proc/xen/xsd_kva
		xenstored-port = /proc/xen/xsd_port
		CONF
		# unshare and sh exec, so $! ends up being oxenstored itself.
		unshare --mount --propagation private sh -c "
			mount --bind '$dir' /run && mkdir -p /run/xenstored &&
			exec env -u LD_LIBRARY_PATH -u NOXS_SIM_DOMID LD_PRELOAD='$shim' '$XEN_BIN/oxenstored' \
				--no-fork --config-file /run/oxenstored.conf" \
			>"$dir/daemon.log" 2>&1 &
		pid=$!
		sock=$dir/xenstored/socket
		;;
	*) die "unknown daemon '$kind'" ;;
	esac
	echo "$pid" >"$dir/daemon.pid"
	wait_socket "$sock" "$dir/daemon.log" "$pid"
	echo "XENSTORED_PATH=$sock"
	;;
stop)
	[ $# -eq 2 ] || die "usage: xsd.sh stop DIR"
	[ -f "$2/daemon.pid" ] || exit 0
	pid=$(cat "$2/daemon.pid")
	kill "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do
		i=$((i + 1)); sleep 0.01
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$2/daemon.pid"
	;;
*) die "usage: xsd.sh start|stop ..." ;;
esac
