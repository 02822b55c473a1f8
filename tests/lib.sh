# shellcheck shell=bash disable=SC2034
# The library of the shell tests (sourced, not run). An integration test
# starts with
#
#     . "$(dirname "$0")/../lib.sh"
#
# and a compat test with tests/compat/lib-compat.sh, which sources this
# file and adds the real XenStore daemons and compat-xs's environment.
#
# Each test runs in a directory of its own, NX_DIR (below $NOXS_TEST_DIR
# from scripts/run-tests.sh, else a fresh temporary one), holding the
# simulator state, noxsd's state directory and control socket, and every
# log. Every wait is bounded. On exit every process a test started (by
# these helpers, or added to NX_PIDS by the test) is killed by pid, and
# the page keeper is torn down (noxsd --stop --teardown) or killed.
#
# Paths: NX_BUILD (the build, $NOXS_BUILD), NX_BIN (its programs),
# NX_TESTBIN (its test helpers), NX_DIR, NX_STATE (noxsd's state dir).
# Exported: NOXS_SIM_DIR, NOXS_SOCKET, NOXS_CONSOLE_DIR, LD_LIBRARY_PATH.
#
# General
#   nx_log MSG / nx_fail MSG       a line / a failure (with the logs' tails)
#   nx_wait TRIES WHAT CMD...      retry CMD every 50 ms, TRIES times
#   nx_wait_line FILE PATTERN      wait (up to 20 s) for a line in FILE
#   nx_expect_eq WHAT GOT WANT
#   nx_at_exit CMD                 run the shell command CMD on exit
#   nx_count PATTERN FILE          lines of FILE matching (0 if none)
#   nx_count_gt PATTERN FILE N     more than N of them
#   nx_alive PID                   running (a zombie is not)
#   nx_exit_status PID TRIES       wait for a child: NX_STATUS
# noxsd
#   nx_start_noxsd [ARGS...]       noxsd -d -v; waits until it answers;
#                                  NX_NOXSD is its pid
#   nx_stop_noxsd / nx_kill_noxsd  SIGTERM (and wait) / kill -9 the worker
#   nx_keeper_pid, nx_backends, nx_has_backends [N]
#   noxsctl ARGS...                the build's noxsctl
# Backends (each waits until it registered; its log is NAME.log)
#   nx_start_testbe NAME [ARGS]    the minimal test backend (noxsd-testbe)
#   nx_start_sysctl_back [ARGS]    NX_BACKEND, backend.log
#   nx_start_blk_back [ARGS]       NX_BLKBACK, blk-back.log
#   nx_start_console_back [ARGS]   NX_CONSBACK, console-back.log
#   nx_svc_start NAME BACKEND [ARGS]  a backend under the service manager
#                                  player, and the other nx_svc_* below
# Domains and guests
#   nx_domain DOMID                create it, print its bootstrap string
#   nx_guest DOMID BOOT CMD...     run CMD as the guest (foreground)
#   nx_spawn DOMID BOOT CMD...     the same in the background: NX_PID
#   nx_start_sysctl_front DOMID BOOT [ARGS]  NX_FRONT, front-DOMID.log
#   nx_sysctl_connect DOMID BOOT   that frontend, its device Connected
#   nx_sysctl_cycle WHAT DOMID BOOT LOG  a device added and removed
#   nx_front_connections DOMID, nx_new_connection DOMID N
#   nx_dev_states DOMID [TYPE DEVID]    "BACKEND FRONTEND" states
#   nx_dev_states_is DOMID [TYPE DEVID] WANT
#   nx_dev_connected DOMID, nx_backend_closed DOMID
#   nx_page DOMID BOOT             the guest's view of its device page

set -uo pipefail

NX_BUILD=${NOXS_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
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
export NOXS_CONSOLE_DIR=$NX_DIR/consoles
if [ -d "$NX_BUILD/sim" ]; then
	export LD_LIBRARY_PATH=$NX_BUILD/sim:$NX_BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
mkdir -p "$NOXS_SIM_DIR" "$NOXS_CONSOLE_DIR"
NX_PIDS=()
NX_AT_EXIT=
NX_NOXSD=
NX_BACKEND=
NX_SVC=
NX_SVC_OUT=$NX_DIR/svc.out

# ---- general ----

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

# Commands given to nx_at_exit run last given, first run.
nx_at_exit() { NX_AT_EXIT="$*; $NX_AT_EXIT"; }

nx_cleanup() {
	local keeper i bp
	eval "$NX_AT_EXIT" >/dev/null 2>&1 || true
	# The backend the service manager player started last outlives a
	# kill of the player.
	bp=$(nx_svc_pid 2>/dev/null) || true
	for ((i = ${#NX_PIDS[@]} - 1; i >= 0; i--)); do
		kill -9 "${NX_PIDS[i]}" 2>/dev/null || true
	done
	[ -z "$bp" ] || kill -9 "$bp" 2>/dev/null || true
	keeper=$(nx_keeper_pid) || true
	"$NX_BIN/noxsd" --stop --teardown --state-dir "$NX_STATE" >/dev/null 2>&1 || true
	[ -z "$keeper" ] || kill -9 "$keeper" 2>/dev/null || true
	wait 2>/dev/null || true
	[ -z "${NX_OWN_DIR:-}" ] || rm -rf "$NX_DIR"
	return 0
}
trap nx_cleanup EXIT

nx_wait() {
	local tries=$1 what=$2 i
	shift 2
	for ((i = 0; i < tries; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	nx_fail "timed out waiting for $what"
}

nx_wait_line() {
	local i
	for ((i = 0; i < 400; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	nx_fail "no '$2' in $1: $(cat "$1" 2>/dev/null)"
}

nx_expect_eq() {
	[ "$2" = "$3" ] || nx_fail "$1: got '$2', want '$3'"
}

nx_count() { grep -c -- "$1" "$2" 2>/dev/null || echo 0; }
nx_count_gt() { [ "$(nx_count "$1" "$2")" -gt "$3" ]; }

nx_alive() {
	[ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

# nx_exit_status PID TRIES: wait (bounded, 50 ms a try) for a child of
# this shell; NX_STATUS is its exit status, or "timeout". Call it
# directly, never in $(...): a subshell cannot wait for its parent's
# children.
nx_exit_status() {
	local pid=$1 tries=$2 i
	for ((i = 0; i < tries; i++)); do
		nx_alive "$pid" || break
		sleep 0.05
	done
	if nx_alive "$pid"; then
		NX_STATUS=timeout
		return 0
	fi
	wait "$pid"
	NX_STATUS=$?
	return 0
}

# ---- noxsd ----

noxsctl() { "$NX_BIN/noxsctl" "$@"; }

# noxsd's socket is $NOXS_SOCKET: its default place in the state directory
# unless the test moved it.
nx_start_noxsd() {
	local sock=()

	export NOXS_SOCKET=${NOXS_SOCKET:-$NX_STATE/noxsd.sock}
	[ "$NOXS_SOCKET" = "$NX_STATE/noxsd.sock" ] || sock=(--socket "$NOXS_SOCKET")
	"$NX_BIN/noxsd" -d -v --state-dir "$NX_STATE" "${sock[@]}" "$@" \
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

nx_keeper_pid() { cat "$NX_STATE/keeper.pid" 2>/dev/null; }

nx_backends() {
	noxsctl status --json | sed -n 's/.*"backends": *\([0-9]*\).*/\1/p'
}
nx_has_backends() { [ "$(nx_backends)" -ge "${1:-1}" ]; }

# ---- backends ----

nx_start_testbe() {
	local name=$1
	shift
	"$NX_TESTBIN/noxsd-testbe" "$@" >>"$NX_DIR/$name.log" 2>&1 &
	NX_BACKEND=$!
	NX_PIDS+=("$NX_BACKEND")
	nx_wait 200 "backend $name to register" grep -q '^registered' \
		"$NX_DIR/$name.log"
}

nx_start_sysctl_back() {
	"$NX_BIN/noxs-sysctl-back" -d -v --socket "$NOXS_SOCKET" "$@" \
		>>"$NX_DIR/backend.log" 2>&1 &
	NX_BACKEND=$!
	NX_PIDS+=("$NX_BACKEND")
	nx_wait 200 "the sysctl backend to register" nx_has_backends 1
}

# The blk and console backends may be started again in one test: each
# start waits for one more "serving" line in the log.
nx_start_blk_back() {
	local before
	before=$(nx_count 'serving blk devices' "$NX_DIR/blk-back.log")
	"$NX_BIN/noxs-blk-back" -d -v --socket "$NOXS_SOCKET" "$@" \
		>>"$NX_DIR/blk-back.log" 2>&1 &
	NX_BLKBACK=$!
	NX_PIDS+=("$NX_BLKBACK")
	nx_wait 200 "the blk backend to register" \
		nx_count_gt 'serving blk devices' "$NX_DIR/blk-back.log" "$before"
}

nx_start_console_back() {
	local before
	before=$(nx_count 'serving console devices' "$NX_DIR/console-back.log")
	"$NX_BIN/noxs-console-back" -d -v --socket "$NOXS_SOCKET" \
		--dir "$NOXS_CONSOLE_DIR" "$@" \
		>>"$NX_DIR/console-back.log" 2>&1 &
	NX_CONSBACK=$!
	NX_PIDS+=("$NX_CONSBACK")
	nx_wait 200 "the console backend to register" \
		nx_count_gt 'serving console devices' "$NX_DIR/console-back.log" "$before"
}

# A backend under noxsd-fdstore, which plays systemd for its unit
# (notification socket, the fd store, Restart=on-failure):
#   nx_svc_start NAME BACKEND [ARGS...]
#       run "BACKEND -d -v ARGS" under the player (BACKEND is a program
#       of NX_BIN or a path); its log is NAME.log, the player's events
#       svc.out; waits until it registered. NX_SVC is the player's pid.
#   nx_svc_pid         the backend's pid (the last one started)
#   nx_svc_starts      how many times the player started it
#   nx_svc_stored NAME has the player stored a file called NAME?
#   nx_svc_kill9       kill -9 the backend; wait until the player started
#                      it again and it registered with noxsd again
#   nx_svc_restart     SIGTERM, a clean exit, a new start (systemctl
#                      restart); waits as nx_svc_kill9
#   nx_registrations   backend registrations noxsd logged so far
nx_svc_starts() { grep -c '^started ' "$NX_SVC_OUT"; }
nx_svc_pid() { sed -n 's/^started //p' "$NX_SVC_OUT" | tail -n 1; }
nx_svc_stored() { grep -q "^stored $1\$" "$NX_SVC_OUT"; }
nx_registrations() { grep -c 'registered for' "$NX_DIR/noxsd.log"; }

nx_svc_start() {
	local name=$1 be=$2
	shift 2
	case "$be" in */*) ;; *) be=$NX_BIN/$be ;; esac
	"$NX_TESTBIN/noxsd-fdstore" "$NX_DIR/be-notify.sock" -- "$be" -d -v \
		--socket "$NOXS_SOCKET" "$@" >"$NX_SVC_OUT" 2>>"$NX_DIR/$name.log" &
	NX_SVC=$!
	NX_PIDS+=("$NX_SVC")
	nx_wait 200 "backend $name to register" nx_has_backends 1
}

# Wait for start number $1 and registration number $2.
nx_svc_wait_back() {
	nx_wait 200 "the service manager to restart the backend" \
		eval "[ \"\$(nx_svc_starts)\" -ge $1 ]"
	nx_wait 200 "the backend to register again" \
		eval "[ \"\$(nx_registrations)\" -ge $2 ]"
}

nx_svc_kill9() {
	local s r
	s=$(nx_svc_starts)
	r=$(nx_registrations)
	kill -9 "$(nx_svc_pid)"
	nx_svc_wait_back $((s + 1)) $((r + 1))
}

nx_svc_restart() {
	local s r bp
	s=$(nx_svc_starts)
	r=$(nx_registrations)
	bp=$(nx_svc_pid)
	kill -TERM "$bp"
	nx_wait 200 "the backend to exit" grep -q "^exited $bp 0$" "$NX_SVC_OUT"
	kill -USR1 "$NX_SVC"
	nx_svc_wait_back $((s + 1)) $((r + 1))
}

# ---- domains and guests ----

nx_domain() {
	local out
	out=$(noxsctl domain-create "$1") || nx_fail "domain-create $1: $out"
	printf '%s\n' "$out" | grep -o 'noxs=[0-9]*:[0-9]*:[0-9]*' | head -n 1
}

nx_guest() {
	local d=$1 boot=$2
	shift 2
	NOXS_SIM_DOMID=$d NOXS_BOOT=$boot "$@"
}

# Not "nx_guest ... &": that forks a subshell, and $! would be the
# subshell, so a kill -9 would leave the guest running. The call's
# redirections apply to CMD.
nx_spawn() {
	local d=$1 boot=$2
	shift 2
	NOXS_SIM_DOMID=$d NOXS_BOOT=$boot "$@" &
	NX_PID=$!
	NX_PIDS+=("$NX_PID")
}

nx_start_sysctl_front() {
	local d=$1 boot=$2
	shift 2
	NOXS_SIM_DOMID=$d NOXS_BOOT=$boot "$NX_BIN/noxs-sysctl-front" -v "$@" \
		>>"$NX_DIR/front-$d.log" 2>&1 &
	NX_FRONT=$!
	NX_PIDS+=("$NX_FRONT")
}

# nx_sysctl_connect DOMID BOOT: a sysctl frontend for DOMID (as
# nx_start_sysctl_front), its device added, waited until Connected.
nx_sysctl_connect() {
	nx_start_sysctl_front "$1" "$2"
	noxsctl dev-add "$1" sysctl 0 >/dev/null || nx_fail "dev-add $1 sysctl 0"
	nx_wait 200 "domain $1's sysctl device to connect" nx_dev_connected "$1"
}

# nx_sysctl_cycle WHAT DOMID BOOT LOG: a sysctl device added now reaches
# a frontend of DOMID started now (its log LOG), and removing the device
# ends that frontend. WHAT says when, in a failure.
nx_sysctl_cycle() {
	local what=$1 d=$2 fe
	NOXS_SIM_DOMID=$d NOXS_BOOT=$3 "$NX_BIN/noxs-sysctl-front" -v \
		>>"$4" 2>&1 &
	fe=$!
	NX_PIDS+=("$fe")
	noxsctl dev-add "$d" sysctl 0 >/dev/null || nx_fail "$what: dev-add $d sysctl 0"
	nx_wait 200 "$what: domain $d's new device to connect" nx_dev_connected "$d"
	noxsctl dev-rm "$d" sysctl 0 >/dev/null || nx_fail "$what: dev-rm $d sysctl 0"
	nx_wait 200 "$what: domain $d's frontend to see its device go" eval "! nx_alive $fe"
	wait "$fe" 2>/dev/null
	return 0
}

# How many connections the sysctl frontends of DOMID have logged so far.
nx_front_connections() {
	local n
	n=$(grep -c "^noxs-sysctl-front: domain $1: connected\$" \
		"$NX_DIR/front-$1.log" 2>/dev/null)
	echo "${n:-0}"
}

# A frontend of DOMID logged a connection beyond the first N, and
# dev-list agrees. After a frontend was killed, dev-list alone proves
# nothing: until the backend notices, it still shows the dead session's
# "Connected Connected".
nx_new_connection() {
	[ "$(nx_front_connections "$1")" -gt "$2" ] && nx_dev_connected "$1"
}

# "BACKEND FRONTEND" states of the domain's device TYPE DEVID, or of the
# last device dev-list shows; empty if there is none.
nx_dev_states() {
	local states='s/.*"backend_state":"\([A-Za-z]*\)".*"frontend_state":"\([A-Za-z]*\)".*/\1 \2/p'

	if [ $# -lt 3 ]; then
		noxsctl dev-list "$1" --json 2>/dev/null | tr -d ' \n' | sed -n "$states"
		return
	fi
	noxsctl dev-list "$1" --json 2>/dev/null | tr -d ' \n' | sed 's/},{/}\n{/g' |
		grep "\"type\":\"$2\"" | grep "\"devid\":$3[,}]" | sed -n "$states"
}
nx_dev_states_is() {
	local want=${!#}
	[ "$(nx_dev_states "${@:1:$#-1}")" = "$want" ]
}
nx_dev_connected() { nx_dev_states_is "$1" "Connected Connected"; }
nx_backend_closed() { case $(nx_dev_states "$1") in Closed*) return 0 ;; esac; return 1; }

nx_page() {
	NOXS_SIM_DOMID=$1 "$NX_TESTBIN/noxsd-probe" page "$1" "$2"
}
