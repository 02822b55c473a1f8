# shellcheck shell=bash
# The compat tests' add-on to tests/lib.sh (sourced): Debian's real
# XenStore daemons and tools, and compat-xs's environment. The tests run
# from $NOXS_BUILD/tests/compat, where make copies them with this file,
# tests/lib.sh (as lib.sh) and what they use. Unlike an integration
# test, a compat test ends at its first failing command (set -e), and a
# pipeline's status is its last command's: the tests are written so.

COMPAT_DIR=$(cd "$(dirname "$0")" && pwd)
NOXS_BUILD=${NOXS_BUILD:-$(cd "$COMPAT_DIR/../.." && pwd)}
. "$COMPAT_DIR/lib.sh"
set -e +o pipefail
XEN_BIN=${XEN_BIN:-/usr/lib/xen-4.17/bin}
export XSSHIM=$COMPAT_DIR/xsshim.so
# Only a test that starts noxsd (nx_start_noxsd) points its clients at it.
unset NOXS_SOCKET

# Tests that need Debian's daemons skip (exit 77 -> reported as a
# failure by run-tests.sh only if the tools could not be installed).
need_xen_tools() {
	[ -x "$XEN_BIN/xenstored" ] && command -v xenstore-read >/dev/null ||
		nx_fail "Debian's xen-utils-4.17 / xenstore-utils missing (scripts/deps.sh compat)"
}

# xsd_start xenstored|oxenstored NAME: start a real daemon in $NX_DIR/NAME
# and export XENSTORED_PATH for the clients that follow.
xsd_start() {
	d=$NX_DIR/$2
	mkdir -p "$d"
	line=$("$COMPAT_DIR/xsd.sh" start "$1" "$d") || nx_fail "cannot start $1"
	export "${line?}"
	nx_at_exit "'$COMPAT_DIR/xsd.sh' stop '$d'"
}

# xsd_stop NAME: stop the daemon of xsd_start ... NAME now; clients that
# follow can no longer reach it.
xsd_stop() {
	"$COMPAT_DIR/xsd.sh" stop "$NX_DIR/$1"
	unset XENSTORED_PATH
}

# Under SAN=address the library needs the ASan runtime first in the
# process: Debian's (uninstrumented) tools get it preloaded, with leak
# checking left to our own instrumented programs.
_wc_asan=$(ldd "$NOXS_BUILD/lib/compat-xs/libxenstore.so.4" 2>/dev/null |
	awk '$1 ~ /^libasan\.so/ {print $3}')
# (Variables set in these functions are global: names no caller uses.)
# compat_exec [DOMID] CMD...: replace the current (sub)shell with CMD in
# the compat-xs environment. For background programs, so that $! is the
# program itself and nx_at_exit's kill reaches it:
#     compat_exec 1 "$NX_BIN/legacy-front" ... &
compat_exec() {
	_wc_dom=0
	case "$1" in [0-9]*) _wc_dom=$1; shift ;; esac
	_wc_pre=
	if [ -n "$_wc_asan" ]; then
		case "$1" in
		"$NOXS_BUILD"/* | "$COMPAT_DIR"/*) ;;
		*) _wc_pre=$_wc_asan ;;
		esac
	fi
	# Mixed mode reaches xenstored through $XENSTORED_PATH; otherwise
	# the daemon a test started is only for Debian's library.
	_wc_unset="-u XENSTORED_PATH"
	[ "${_wc_mode:-}" = mixed ] && _wc_unset=
	exec env $_wc_unset NOXS_SIM_DOMID=$_wc_dom \
		${_wc_mode:+NOXS_COMPAT_MODE=$_wc_mode} \
		${_wc_pre:+LD_PRELOAD=$_wc_pre ASAN_OPTIONS=detect_leaks=0} \
		COMPAT_XS_QUIET=${COMPAT_XS_QUIET:-} \
		LD_LIBRARY_PATH=$NOXS_BUILD/lib/compat-xs:$NOXS_BUILD/sim:$NOXS_BUILD/lib \
		"$@"
}

# mode_exec MODE [DOMID] CMD...: compat_exec with compat-xs in MODE
# (mixed, local, noxs; docs/COMPAT.md "Modes").
mode_exec() { _wc_mode=$1; shift; compat_exec "$@"; }

# with_compat [DOMID] CMD...: run CMD in the compat-xs environment.
with_compat() { (compat_exec "$@"); }

# expect_compat PROGRAM...: each program, run through with_compat, loads
# compat-xs's libxenstore.so.4, not Debian's (so a test's compat-xs half
# cannot pass by reaching a real daemon).
expect_compat() {
	for p in "$@"; do
		lib=$(with_compat env LD_TRACE_LOADED_OBJECTS=1 "$p" |
			awk '$1 == "libxenstore.so.4" {print $3}')
		case "$lib" in
		"$NOXS_BUILD"/lib/compat-xs/libxenstore.so.4) ;;
		*) nx_fail "$p loads '$lib', not compat-xs" ;;
		esac
	done
}

# generic_ops RUNNER: Debian's tools on generic paths (names, /vm, a
# pool, permissions, listings, removals), each run through RUNNER (a
# function that runs its arguments with one library or the other). The
# tests compare the output with Debian's library on the real xenstored.
generic_ops() {
	$1 xenstore-write /local/pool/0/name Pool-0 /vm/u1/name g1 \
		/local/domain/5/name stock5 /local/domain/5/memory/target 98304
	$1 xenstore-read /local/pool/0/name /vm/u1/name
	$1 xenstore-ls -f /vm
	$1 xenstore-exists /vm/u1/name && echo exists
	$1 xenstore-exists /vm/nothing || echo "absent $?"
	$1 xenstore-read /vm/nothing 2>&1 || echo "read rc $?"
	$1 xenstore-chmod /vm/u1 n0 r5 && $1 xenstore-ls -p /vm/u1
	$1 xenstore-list /local/domain/5
	$1 xenstore-rm /vm/u1 && $1 xenstore-list /vm 2>&1
	$1 xenstore-rm /local/domain/5
	# A listing longer than one message (read in DIRECTORY_PART pieces).
	_go_args=""
	for _go_i in $(seq 100 499); do _go_args="$_go_args /big/child-name-$_go_i x"; done
	# shellcheck disable=SC2086
	$1 xenstore-write $_go_args
	$1 xenstore-list /big | wc -l
	$1 xenstore-list /big | sort | md5sum
	$1 xenstore-rm /big
	return 0
}

# Debian's own library and tools, straight to xenstored.
debian() { env -u LD_LIBRARY_PATH -u LD_PRELOAD "$@"; }

# xenstore_parity RUNNER WHAT: through RUNNER, generic_ops prints what it
# prints through Debian's library (the program's name aside), and Debian's
# test-xenstore passes. WHAT names the store RUNNER reaches.
xenstore_parity() {
	nx_log "generic paths: the same output as Debian's library, on $2"
	for _gp in debian "$1"; do
		generic_ops $_gp >"$NX_DIR/out.$_gp" 2>&1 || true
	done
	sed -i 's/^[a-z-]*: //' "$NX_DIR/out.debian" "$NX_DIR/out.$1"
	diff -u "$NX_DIR/out.debian" "$NX_DIR/out.$1" ||
		nx_fail "$2 differs from Debian's library on xenstored"
	nx_log "Debian's test-xenstore on $2"
	$1 "$XEN_BIN/test-xenstore" >"$NX_DIR/txs.log" 2>&1 ||
		nx_fail "test-xenstore: $(cat "$NX_DIR/txs.log")"
}

# legacy_back LOG [--compat] [ARGS...]: the legacy backend (legacy-back
# ARGS) on Debian's library, or with --compat on compat-xs, logging to
# LOG; waits until it is ready; killed on exit. LEGACY_BACK is its pid.
legacy_back() {
	_lb_log=$1
	shift
	if [ "${1:-}" = --compat ]; then
		shift
		compat_exec "$NX_BIN/legacy-back" "$@" >"$_lb_log" 2>&1 &
	else
		"$NX_BIN/legacy-back" "$@" >"$_lb_log" 2>&1 &
	fi
	LEGACY_BACK=$!
	nx_at_exit "kill $LEGACY_BACK"
	nx_wait_line "$_lb_log" '^ready'
}

# legacy_xenstored_vif: xenstored started, the legacy backend on it
# (logging to back.xs) and device vif 0 of domain 1 added by the legacy
# toolstack; waits for the backend's InitWait.
legacy_xenstored_vif() {
	nx_log xenstored
	xsd_start xenstored xenstored
	legacy_back "$NX_DIR/back.xs"
	"$NX_BIN/legacy-toolstack" add 1 vif 0 || nx_fail "toolstack add (xenstored)"
	nx_wait_line "$NX_DIR/back.xs" '^initwait 1/0'
}

# legacy_compat_start PROGRAM...: the second half of a comparison with
# xenstored: xenstored stopped, noxsd started and the legacy backend on
# compat-xs (logging to back.noxs); each PROGRAM must load compat-xs's
# libxenstore (expect_compat).
legacy_compat_start() {
	nx_log compat-xs
	xsd_stop xenstored
	expect_compat "$@"
	nx_start_noxsd
	legacy_back "$NX_DIR/back.noxs" --compat
}
