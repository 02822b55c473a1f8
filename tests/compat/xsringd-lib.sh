# Helpers of the ring service's tests (sourced after lib-compat.sh): noxsd on
# the simulator and compat-xs in local mode with its store in
# $NX_DIR/xs, then functions that start noxs-xsringd, simulated guests
# that speak to it over their store rings (xsring), and what libxl
# writes for a new domain.
need_xen_tools
nx_start_noxsd
export NOXS_COMPAT_MODE=local NOXS_XS_DIR=$NX_DIR/xs
mkdir -p "$NOXS_XS_DIR"
T=$COMPAT_DIR
RINGD_LOG=$NX_DIR/xsringd.log

dom0() { with_compat 0 "$@"; }

# ringd_start COUNT: start the service (RINGD_WRAP: a command it runs
# under, e.g. unshare; RINGD_V, RINGD_ARGS: its options) and wait for
# its COUNTth "serving" line.
ringd_start() {
	env NOXS_SIM_DOMID=0 LD_LIBRARY_PATH=$NOXS_BUILD/sim:$NOXS_BUILD/lib \
		${RINGD_WRAP:-} "$NX_BIN/noxs-xsringd" ${RINGD_V--v} --store "$NOXS_XS_DIR" ${RINGD_ARGS:-} >>"$RINGD_LOG" 2>&1 &
	_ringd=$!
	nx_at_exit "kill -9 $_ringd"
	i=0
	until grep -q "serving .* rings" "$RINGD_LOG" 2>/dev/null &&
		[ "$(grep -c 'serving .* rings' "$RINGD_LOG")" -ge "$1" ]; do
		i=$((i + 1))
		[ $i -gt 2000 ] && nx_fail "noxs-xsringd did not start: $(cat "$RINGD_LOG")"
		kill -0 $_ringd 2>/dev/null || nx_fail "noxs-xsringd exited: $(cat "$RINGD_LOG")"
		sleep 0.01
	done
}

# guest_start NAME DOMID GFN: a guest on fds of its own; sets NAME_port.
guest_start() {
	mkfifo "$NX_DIR/$1.in" "$NX_DIR/$1.out"
	env NOXS_SIM_DOMID="$2" LD_LIBRARY_PATH=$NOXS_BUILD/sim:$NOXS_BUILD/lib \
		"$T/xsring" "$2" "$3" <"$NX_DIR/$1.in" >"$NX_DIR/$1.out" 2>>"$NX_DIR/$1.err" &
	nx_at_exit "kill -9 $!"
	eval "exec {${1}_w}>'$NX_DIR/$1.in' {${1}_r}<'$NX_DIR/$1.out'"
	local line
	eval "read -t 30 -r line <&\$${1}_r" || nx_fail "$1 did not start: $(cat "$NX_DIR/$1.err")"
	case "$line" in "port "*) eval "${1}_port=${line#port }" ;;
	*) nx_fail "$1: $line" ;; esac
}
# g NAME CMD...: one command, its answer in $R.
g_send() { eval "echo \"\${*:2}\" >&\$${1}_w"; }
g_recv() { eval "read -t 90 -r R <&\$${1}_r" || R=nothing; }
g() { g_send "$@"; g_recv "$1"; }
# expect NAME CMD WANT (a glob)
expect() {
	g "$1" "$2"
	# shellcheck disable=SC2254
	case "$R" in $3) ;; *) nx_fail "$1 $2: got '$R', want '$3' ($(cat "$NX_DIR/$1.err" 2>/dev/null))" ;; esac
}

# What libxl writes for a new domain (libxl__domain_make), with its
# permissions: the guest reads its directory, writes data/ and its
# control/ keys.
toolstack_make() {
	d=$1
	dom0 xenstore-write /local/domain/$d/name "guest$d" \
		/local/domain/$d/memory/target 98304 \
		/local/domain/$d/control/shutdown "" \
		/local/domain/$d/control/sysrq "" \
		/local/domain/$d/control/feature-poweroff "" \
		/local/domain/$d/data/x "private$d" ||
		nx_fail "toolstack writes for $d"
	dom0 xenstore-chmod /local/domain/$d n0 r$d
	dom0 xenstore-chmod -r /local/domain/$d/memory n0 r$d
	dom0 xenstore-chmod -r /local/domain/$d/name n0 r$d
	dom0 xenstore-chmod /local/domain/$d/control n0 r$d
	for k in shutdown sysrq feature-poweroff; do
		dom0 xenstore-chmod /local/domain/$d/control/$k n$d
	done
	dom0 xenstore-chmod -r /local/domain/$d/data n$d
}


# wait_exit PID WHAT: wait (bounded) for PID to end, else nx_fail with WHAT.
wait_exit() {
	local n=0
	while kill -0 "$1" 2>/dev/null; do
		n=$((n + 1))
		[ $n -gt 2000 ] && nx_fail "$2"
		sleep 0.01
	done
}

# guest_up NAME DOMID GFN: a guest made as libxl makes it, introduced
# with its ring (the service running), booted as Linux boots, its
# initial watch events read.
guest_up() {
	guest_start "$1" "$2" "$3"
	toolstack_make "$2"
	dom0 "$T/xsintro" introduce "$2" "$3" "$(eval echo "\$${1}_port")" ||
		nx_fail "introduce $2"
	expect "$1" boot ok
	for _ in 1 2 3; do g "$1" event; done
}
