# shellcheck shell=bash disable=SC2034
# Helpers for the console and blk integration tests (sourced, not run).
#
# Each test runs in its own directory ($NOXS_TEST_DIR, else a new temp
# dir) with its own simulator state, noxsd state dir and control socket.
# Every wait is bounded; every process started here is killed by pid on
# exit. NOXS_BUILD (set by make) is the build directory.

set -uo pipefail

T_BUILD=${NOXS_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
T_BIN=$T_BUILD/bin
T_HELPERS=$T_BUILD/tests/integration
if [ -n "${NOXS_TEST_DIR:-}" ]; then
	T_DIR=$NOXS_TEST_DIR
else
	T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/noxs-datatest.XXXXXX")
	T_OWN_DIR=1
fi
export NOXS_SIM_DIR=${NOXS_SIM_DIR:-$T_DIR/sim}
export NOXS_SOCKET=$T_DIR/noxsd.sock
export NOXS_CONSOLE_DIR=$T_DIR/consoles
T_STATE=$T_DIR/state
mkdir -p "$NOXS_SIM_DIR" "$T_STATE" "$NOXS_CONSOLE_DIR"
T_PIDS=()

t_log() { printf '%s: %s\n' "$(basename "$0")" "$*"; }
t_fail() {
	printf '%s: FAIL: %s\n' "$(basename "$0")" "$*" >&2
	for f in "$T_DIR"/*.log; do
		[ -s "$f" ] || continue
		printf -- '--- %s (last lines)\n' "$(basename "$f")" >&2
		tail -n 15 "$f" >&2
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
	"$T_BIN/noxsd" -d --socket "$NOXS_SOCKET" --state-dir "$T_STATE" \
		>>"$T_DIR/noxsd.log" 2>&1 &
	T_PIDS+=("$!")
	t_wait 200 "noxsd" noxsctl status
}

# t_start_blk_back [ARGS]: sets T_BLKBACK. t_start_console_back [ARGS]: T_CONSBACK.
# Registered once the backend logs "serving" (after noxs_backend_open).
t_count() { grep -c "$1" "$2" 2>/dev/null || echo 0; }
t_count_gt() { [ "$(t_count "$1" "$2")" -gt "$3" ]; }

t_start_blk_back() {
	local before
	before=$(t_count 'serving blk devices' "$T_DIR/blk-back.log")
	"$T_BIN/noxs-blk-back" -d -v --socket "$NOXS_SOCKET" "$@" \
		>>"$T_DIR/blk-back.log" 2>&1 &
	T_BLKBACK=$!
	T_PIDS+=("$T_BLKBACK")
	t_wait 200 "the blk backend to register" \
		t_count_gt 'serving blk devices' "$T_DIR/blk-back.log" "$before"
}

t_start_console_back() {
	local before
	before=$(t_count 'serving console devices' "$T_DIR/console-back.log")
	"$T_BIN/noxs-console-back" -d -v --socket "$NOXS_SOCKET" \
		--dir "$NOXS_CONSOLE_DIR" "$@" >>"$T_DIR/console-back.log" 2>&1 &
	T_CONSBACK=$!
	T_PIDS+=("$T_CONSBACK")
	t_wait 200 "the console backend to register" \
		t_count_gt 'serving console devices' "$T_DIR/console-back.log" "$before"
}

# t_domain DOMID: create the domain, print its bootstrap string.
t_domain() {
	local out
	out=$(noxsctl domain-create "$1") || t_fail "domain-create $1: $out"
	printf '%s\n' "$out" | grep -o 'noxs=[0-9]*:[0-9]*:[0-9]*' | head -n 1
}

# t_guest DOMID BOOT CMD...: run CMD as domain DOMID (in the foreground).
t_guest() {
	local d=$1 boot=$2
	shift 2
	NOXS_SIM_DOMID=$d NOXS_BOOT=$boot "$@"
}

# t_spawn DOMID BOOT CMD...: start CMD as domain DOMID in the background
# (the call's redirections apply to it); T_PID is its pid. Not
# "t_guest ... &": that forks a subshell, and $! would be the subshell,
# so a kill -9 would leave the guest running.
t_spawn() {
	local d=$1 boot=$2
	shift 2
	NOXS_SIM_DOMID=$d NOXS_BOOT=$boot "$@" &
	T_PID=$!
	T_PIDS+=("$T_PID")
}

# t_alive PID: is the process still there (and not a zombie)?
t_alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	case "$st" in Z*) return 1 ;; esac
	return 0
}

# t_exit_status PID TRIES: wait (bounded) for a child of this shell; sets
# T_STATUS to its exit status, or "timeout". Call it directly, never in
# $(...): a subshell cannot wait for its parent's children.
t_exit_status() {
	local pid=$1 tries=$2 i
	for ((i = 0; i < tries; i++)); do
		t_alive "$pid" || break
		sleep 0.05
	done
	if t_alive "$pid"; then
		T_STATUS=timeout
		return
	fi
	wait "$pid"
	T_STATUS=$?
}

# t_dev_states DOMID TYPE DEVID: "BACKEND FRONTEND" states from dev-list.
t_dev_states() {
	noxsctl dev-list "$1" --json 2>/dev/null | tr -d ' \n' | sed 's/},{/}\n{/g' |
		grep "\"type\":\"$2\"" | grep "\"devid\":$3[,}]" |
		sed -n 's/.*"backend_state":"\([A-Za-z]*\)".*"frontend_state":"\([A-Za-z]*\)".*/\1 \2/p'
}
t_dev_states_is() { [ "$(t_dev_states "$1" "$2" "$3")" = "$4" ]; }
