# Helpers for the compat tests (sourced). Each test runs in its own
# temporary directory ($NOXS_TEST_DIR from scripts/run-tests.sh, else a
# fresh one) and stops whatever it started on exit.
set -eu

COMPAT_DIR=$(cd "$(dirname "$0")" && pwd)
NOXS_BUILD=${NOXS_BUILD:-$(cd "$COMPAT_DIR/../.." && pwd)}
BIN=$NOXS_BUILD/bin
XEN_BIN=${XEN_BIN:-/usr/lib/xen-4.17/bin}
export XSSHIM=$COMPAT_DIR/xsshim.so
WORK=${NOXS_TEST_DIR:-$(mktemp -d)}
WORK=$(mktemp -d "$WORK/compat.XXXXXX")
_cleanups=""

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "--- $*"; }
at_exit() { _cleanups="$*; $_cleanups"; }
_run_cleanups() { eval "$_cleanups" 2>/dev/null || true; }
trap _run_cleanups EXIT

# Tests that need Debian's daemons skip (exit 77 -> reported as a
# failure by run-tests.sh only if the tools could not be installed).
need_xen_tools() {
	[ -x "$XEN_BIN/xenstored" ] && command -v xenstore-read >/dev/null ||
		fail "Debian's xen-utils-4.17 / xenstore-utils missing (scripts/deps.sh compat)"
}

# xsd_start xenstored|oxenstored NAME: start a real daemon in $WORK/NAME
# and export XENSTORED_PATH for the clients that follow.
xsd_start() {
	d=$WORK/$2
	mkdir -p "$d"
	line=$("$COMPAT_DIR/xsd.sh" start "$1" "$d") || fail "cannot start $1"
	export "${line?}"
	at_exit "'$COMPAT_DIR/xsd.sh' stop '$d'"
}

# xsd_stop NAME: stop the daemon of xsd_start ... NAME now; clients that
# follow can no longer reach it.
xsd_stop() {
	"$COMPAT_DIR/xsd.sh" stop "$WORK/$1"
	unset XENSTORED_PATH
}

# expect_eq WHAT GOT WANT
expect_eq() {
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# wait_line FILE PATTERN: wait (up to 20 s) for a line in FILE.
wait_line() {
	i=0
	until grep -q -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 2000 ] && fail "no '$2' in $1: $(cat "$1")"
		sleep 0.01
	done
}

# noxs_start: noxsd on the simulator in $WORK (socket, state), and the
# environment that makes the legacy binaries and Debian's tools use
# compat-xs: run them through `with_compat [DOMID] CMD...`.
noxs_start() {
	export NOXS_SIM_DIR=${NOXS_SIM_DIR:-$WORK/sim}
	export NOXS_SOCKET=$WORK/noxsd.sock
	mkdir -p "$NOXS_SIM_DIR" "$WORK/state"
	LD_LIBRARY_PATH=$NOXS_BUILD/sim:$NOXS_BUILD/lib \
		"$BIN/noxsd" -d --socket "$NOXS_SOCKET" --state-dir "$WORK/state" \
		>>"$WORK/noxsd.log" 2>&1 &
	_noxsd=$!
	at_exit "kill -9 $_noxsd; [ -f '$WORK/state/keeper.pid' ] && kill -9 \$(cat '$WORK/state/keeper.pid')"
	i=0
	until [ -S "$NOXS_SOCKET" ]; do
		i=$((i + 1))
		[ $i -gt 1000 ] && fail "noxsd did not start: $(cat "$WORK/noxsd.log")"
		sleep 0.01
	done
}

# Under SAN=address the library needs the ASan runtime first in the
# process: Debian's (uninstrumented) tools get it preloaded, with leak
# checking left to our own instrumented programs.
_wc_asan=$(ldd "$NOXS_BUILD/lib/compat-xs/libxenstore.so.4" 2>/dev/null |
	awk '$1 ~ /^libasan\.so/ {print $3}')
# (Function variables are global in sh: use names no caller uses.)
# compat_exec [DOMID] CMD...: replace the current (sub)shell with CMD in
# the compat-xs environment. For background programs, so that $! is the
# program itself and at_exit's kill reaches it:
#     compat_exec 1 "$BIN/legacy-front" ... &
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
		*) fail "$p loads '$lib', not compat-xs" ;;
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
