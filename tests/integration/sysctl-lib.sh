# Helpers for the driver integration tests (sourced, not run).
#
# Each test runs in its own directory ($NOXS_TEST_DIR, else a new temp
# dir) with its own simulator state, noxsd state dir and control socket.
# Every wait is bounded; every process started here is stopped by pid on
# exit. NOXS_BUILD (set by make) is the build directory.

set -uo pipefail

T_BUILD=${NOXS_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
T_BIN=$T_BUILD/bin
if [ -n "${NOXS_TEST_DIR:-}" ]; then
	T_DIR=$NOXS_TEST_DIR
else
	T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/noxs-drvtest.XXXXXX")
	T_OWN_DIR=1
fi
export NOXS_SIM_DIR=${NOXS_SIM_DIR:-$T_DIR/sim}
export NOXS_SOCKET=$T_DIR/noxsd.sock
T_STATE=$T_DIR/state
mkdir -p "$NOXS_SIM_DIR" "$T_STATE"
T_PIDS=()
T_NOXSD=
T_BACKEND=

t_log() { printf '%s: %s\n' "$(basename "$0")" "$*"; }
t_fail() {
	printf '%s: FAIL: %s\n' "$(basename "$0")" "$*" >&2
	for f in "$T_DIR"/*.log; do
		[ -s "$f" ] || continue
		printf -- '--- %s (last lines)\n' "$(basename "$f")" >&2
		tail -n 20 "$f" >&2
	done
	exit 1
}

t_cleanup() {
	local keeper
	keeper=$(cat "$T_STATE/keeper.pid" 2>/dev/null || true)
	for ((i = ${#T_PIDS[@]} - 1; i >= 0; i--)); do
		kill -9 "${T_PIDS[i]}" 2>/dev/null || true
	done
	[ -n "$keeper" ] && kill -9 "$keeper" 2>/dev/null || true
	wait 2>/dev/null || true
	[ -n "${T_OWN_DIR:-}" ] && rm -rf "$T_DIR"
	return 0
}
trap t_cleanup EXIT

noxsctl() { "$T_BIN/noxsctl" "$@"; }

# t_wait TRIES(x50ms) WHAT CMD...: retry CMD until it succeeds.
t_wait() {
	local tries=$1 what=$2
	shift 2
	for ((i = 0; i < tries; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	t_fail "timed out waiting for $what"
}

t_start_noxsd() {
	"$T_BIN/noxsd" -d --socket "$NOXS_SOCKET" --state-dir "$T_STATE" "$@" \
		>>"$T_DIR/noxsd.log" 2>&1 &
	T_NOXSD=$!
	T_PIDS+=("$T_NOXSD")
	t_wait 200 "noxsd" noxsctl status
}

t_start_backend() {
	"$T_BIN/noxs-sysctl-back" -d -v --socket "$NOXS_SOCKET" "$@" \
		>>"$T_DIR/backend.log" 2>&1 &
	T_BACKEND=$!
	T_PIDS+=("$T_BACKEND")
	t_wait 200 "the sysctl backend to register" t_has_backend
}

t_has_backend() {
	noxsctl status --json | grep -Eq '"backends": *[1-9]'
}

# t_domain DOMID: create the domain, print its bootstrap string.
t_domain() {
	local out
	out=$(noxsctl domain-create "$1") || t_fail "domain-create $1: $out"
	printf '%s\n' "$out" | grep -o 'noxs=[0-9]*:[0-9]*:[0-9]*' | head -n 1
}

# t_front DOMID BOOT [ARGS...]: start a single-domain frontend; sets T_FRONT.
t_front() {
	local d=$1 boot=$2
	shift 2
	NOXS_SIM_DOMID=$d NOXS_BOOT=$boot "$T_BIN/noxs-sysctl-front" -v "$@" \
		>>"$T_DIR/front-$d.log" 2>&1 &
	T_FRONT=$!
	T_PIDS+=("$T_FRONT")
}

# t_state DOMID: "BACKEND_STATE FRONTEND_STATE" of sysctl 0, from dev-list.
t_states() {
	noxsctl dev-list "$1" --json 2>/dev/null | tr -d ' \n' |
		sed -n 's/.*"backend_state":"\([A-Za-z]*\)".*"frontend_state":"\([A-Za-z]*\)".*/\1 \2/p'
}

t_states_is() { [ "$(t_states "$1")" = "$2" ]; }
t_backend_closed() { case $(t_states "$1") in Closed*) return 0 ;; esac; return 1; }
t_connected() { t_states_is "$1" "Connected Connected"; }

# t_front_connections DOMID: how many connections the frontends of DOMID
# have logged so far (t_front runs them with -v, into front-DOMID.log).
t_front_connections() {
	local n
	n=$(grep -c "^noxs-sysctl-front: domain $1: connected\$" \
		"$T_DIR/front-$1.log" 2>/dev/null)
	echo "${n:-0}"
}

# t_new_connection DOMID N: a frontend of DOMID logged a connection beyond
# the first N, and dev-list agrees. After a frontend was killed, dev-list
# alone proves nothing: until the backend notices, it still shows the dead
# session's "Connected Connected".
t_new_connection() {
	[ "$(t_front_connections "$1")" -gt "$2" ] && t_connected "$1"
}

# t_exit_status PID TRIES: wait (bounded) for a child of this shell and
# set T_STATUS to its exit status, or "timeout". (Not in $(...): a
# subshell cannot wait for its parent's children.)
t_exit_status() {
	local pid=$1 tries=$2
	T_STATUS=timeout
	for ((i = 0; i < tries; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && return 0
	wait "$pid"
	T_STATUS=$?
	return 0
}
