# Shared helpers for integration tests that need noxsd (sourced, not run).
#
#   . "$(dirname "$0")/lib.sh"
#   nx_start_noxsd [NOXSD-ARGS...]     noxsd -d in $NX_DIR; waits until it
#                                      answers; NX_NOXSD = its pid
#   nx_start_backend NAME [ARGS...]    the minimal test backend
#                                      (noxsd-testbe), output in NAME.log;
#                                      waits until registered; NX_BACKEND
#   nx_kill_noxsd / nx_stop_noxsd      kill -9 / SIGTERM the worker
#   nx_wait TRIES WHAT CMD...          retry CMD every 50 ms, bounded
#   nx_fail MSG / nx_log MSG
#   noxsctl ARGS...                    the build's noxsctl on our socket
#
# Each test gets its own directory ($NOXS_TEST_DIR from
# scripts/run-tests.sh, else a fresh temporary one) holding the simulator
# state, noxsd's state directory and control socket, and every log. On
# exit every process started here is killed by pid, and the page keeper
# is torn down (noxsd --stop --teardown) or killed.

set -uo pipefail

NX_BUILD=${NOXS_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
NX_BIN=$NX_BUILD/bin
NX_TESTBIN=$NX_BUILD/tests/integration
if [ -n "${NOXS_TEST_DIR:-}" ]; then
	NX_DIR=$(mktemp -d "$NOXS_TEST_DIR/nx.XXXXXX")
else
	NX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/noxs-test.XXXXXX")
	NX_OWN_DIR=1
fi
export NOXS_SIM_DIR=${NOXS_SIM_DIR:-$NX_DIR/sim}
NX_STATE=$NX_DIR/state
export NOXS_SOCKET=$NX_STATE/noxsd.sock
if [ -d "$NX_BUILD/sim" ]; then
	export LD_LIBRARY_PATH=$NX_BUILD/sim:$NX_BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
mkdir -p "$NOXS_SIM_DIR"
NX_PIDS=()
NX_NOXSD=
NX_BACKEND=

nx_log() { printf '%s: %s\n' "$(basename "$0")" "$*"; }

nx_fail() {
	printf '%s: FAIL: %s\n' "$(basename "$0")" "$*" >&2
	for f in "$NX_DIR"/*.log; do
		[ -s "$f" ] || continue
		printf -- '--- %s (last lines)\n' "$(basename "$f")" >&2
		tail -n 25 "$f" >&2
	done
	exit 1
}

nx_cleanup() {
	local keeper i
	for ((i = ${#NX_PIDS[@]} - 1; i >= 0; i--)); do
		kill -9 "${NX_PIDS[i]}" 2>/dev/null || true
	done
	keeper=$(cat "$NX_STATE/keeper.pid" 2>/dev/null || true)
	"$NX_BIN/noxsd" --stop --teardown --state-dir "$NX_STATE" >/dev/null 2>&1 || true
	[ -n "$keeper" ] && kill -9 "$keeper" 2>/dev/null || true
	wait 2>/dev/null || true
	[ -n "${NX_OWN_DIR:-}" ] && rm -rf "$NX_DIR"
	return 0
}
trap nx_cleanup EXIT

noxsctl() { "$NX_BIN/noxsctl" "$@"; }

nx_wait() {
	local tries=$1 what=$2 i
	shift 2
	for ((i = 0; i < tries; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	nx_fail "timed out waiting for $what"
}

nx_start_noxsd() {
	"$NX_BIN/noxsd" -d -v --state-dir "$NX_STATE" "$@" \
		>>"$NX_DIR/noxsd.log" 2>&1 &
	NX_NOXSD=$!
	NX_PIDS+=("$NX_NOXSD")
	nx_wait 200 "noxsd to answer" noxsctl status
}

nx_stop_noxsd() {
	kill -TERM "$NX_NOXSD" 2>/dev/null
	wait "$NX_NOXSD"
}

nx_kill_noxsd() {
	kill -9 "$NX_NOXSD" 2>/dev/null
	wait "$NX_NOXSD" 2>/dev/null
	return 0
}

# nx_alive PID: running (a zombie left to a non-reaping init is not).
nx_alive() {
	[ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

nx_keeper_pid() { cat "$NX_STATE/keeper.pid" 2>/dev/null; }

nx_backends() {
	noxsctl status --json | sed -n 's/.*"backends":\([0-9]*\).*/\1/p'
}
nx_has_backends() { [ "$(nx_backends)" -ge "${1:-1}" ]; }

# nx_start_backend NAME [noxsd-testbe args]
nx_start_backend() {
	local name=$1
	shift
	"$NX_TESTBIN/noxsd-testbe" "$@" >>"$NX_DIR/$name.log" 2>&1 &
	NX_BACKEND=$!
	NX_PIDS+=("$NX_BACKEND")
	nx_wait 200 "backend $name to register" grep -q '^registered' \
		"$NX_DIR/$name.log"
}

# nx_domain DOMID: create the domain, print its bootstrap string.
# nx_dev_states DOMID: "BACKEND FRONTEND" states of the domain's device
# (the first dev-list shows), empty if it has none.
nx_dev_states() {
	noxsctl dev-list "$1" --json 2>/dev/null | tr -d ' \n' |
		sed -n 's/.*"backend_state":"\([A-Za-z]*\)".*"frontend_state":"\([A-Za-z]*\)".*/\1 \2/p'
}
nx_dev_connected() { [ "$(nx_dev_states "$1")" = "Connected Connected" ]; }

nx_domain() {
	local out
	out=$(noxsctl domain-create "$1") || nx_fail "domain-create $1: $out"
	printf '%s\n' "$out"
}

# nx_page DOMID BOOT: the guest's view of its device page, one
# "TYPE DEVID GREF PORT" line per entry.
nx_page() {
	NOXS_SIM_DOMID=$1 "$NX_TESTBIN/noxsd-probe" page "$1" "$2"
}
