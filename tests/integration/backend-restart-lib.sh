# shellcheck shell=bash
# The restart sequence of the backend-restart*.sh tests (sourced after
# lib.sh): a backend under noxsd-fdstore, which plays systemd for its
# unit (notification socket, the fd store, Restart=on-failure).
#
#   nx_svc_start NAME BACKEND [ARGS...]
#       run "$NX_BIN/BACKEND -d -v --socket $NOXS_SOCKET ARGS" under the
#       player (BACKEND may also be a path); its log is NAME.log, the
#       player's events svc.out; waits until it registered. NX_SVC is
#       the player's pid. The backend the player last started is killed
#       on exit too (it outlives a kill of the player).
#   nx_svc_pid         the backend's pid (the last one started)
#   nx_svc_starts      how many times the player started it
#   nx_svc_stored NAME has the player stored a file called NAME?
#   nx_svc_kill9       kill -9 the backend; wait until the player started
#                      it again and it registered with noxsd again
#   nx_svc_restart     SIGTERM, a clean exit, a new start (systemctl
#                      restart); waits as nx_svc_kill9
#   nx_registrations   backend registrations noxsd logged so far

NX_SVC=
NX_SVC_OUT=$NX_DIR/svc.out

nx_svc_starts() { grep -c '^started ' "$NX_SVC_OUT"; }
nx_svc_pid() { sed -n 's/^started //p' "$NX_SVC_OUT" | tail -n 1; }
nx_svc_stored() { grep -q "^stored $1\$" "$NX_SVC_OUT"; }
nx_registrations() { grep -c 'registered for' "$NX_DIR/noxsd.log"; }

nx_svc_cleanup() {
	[ -n "$NX_SVC" ] && kill -9 "$NX_SVC" 2>/dev/null
	local bp
	bp=$(nx_svc_pid 2>/dev/null)
	[ -n "$bp" ] && kill -9 "$bp" 2>/dev/null
	nx_cleanup
}

nx_svc_start() {
	local name=$1 be=$2
	shift 2
	case "$be" in */*) ;; *) be=$NX_BIN/$be ;; esac
	"$NX_TESTBIN/noxsd-fdstore" "$NX_DIR/be-notify.sock" -- "$be" -d -v \
		--socket "$NOXS_SOCKET" "$@" >"$NX_SVC_OUT" 2>>"$NX_DIR/$name.log" &
	NX_SVC=$!
	NX_PIDS+=("$NX_SVC")
	trap nx_svc_cleanup EXIT
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
