#!/bin/bash
# The console backend restarts without closing its consoles: as
# backend-restart.sh for sysctl, noxs-console-back runs under
# noxsd-fdstore; after kill -9 and after SIGTERM and a new start, the
# guest's console stays Connected, its frontend keeps running without
# seeing the backend go, and echo through it still works.
. "$(dirname "$0")/lib.sh"

export NOXS_CONSOLE_DIR=$NX_DIR/console
mkdir -p "$NOXS_CONSOLE_DIR"
nx_start_noxsd --backend-grace 5000
ns=$NX_DIR/be-notify.sock
"$NX_TESTBIN/noxsd-fdstore" "$ns" -- "$NX_BIN/noxs-console-back" -d -v \
	--socket "$NOXS_SOCKET" --dir "$NOXS_CONSOLE_DIR" \
	>"$NX_DIR/svc.out" 2>>"$NX_DIR/console-back.log" &
svc=$!
NX_PIDS+=("$svc")
nx_wait 200 "the console backend to register" nx_has_backends 1
starts() { grep -c '^started ' "$NX_DIR/svc.out"; }
be_pid() { sed -n 's/^started //p' "$NX_DIR/svc.out" | tail -n 1; }
# The player's last backend outlives a kill of the player itself.
be_cleanup() {
	kill -9 "$svc" 2>/dev/null
	kill -9 "$(be_pid)" 2>/dev/null
	nx_cleanup
}
trap be_cleanup EXIT
registrations() { grep -c 'registered for' "$NX_DIR/noxsd.log"; }

boot=$(nx_domain 1)
noxsctl dev-add 1 console 0 >/dev/null || nx_fail "dev-add 1 console 0"
# An echo guest (tee also records its input).
NOXS_SIM_DOMID=1 NOXS_BOOT=$boot "$NX_BIN/noxs-console-front" -- \
	tee "$NX_DIR/in" >"$NX_DIR/front.log" 2>&1 &
fe=$!
NX_PIDS+=("$fe")
nx_wait 400 "the console to connect" nx_dev_connected 1
echo_ok() {
	local what=$1 word=$2 out
	out=$(printf '%s\n' "$word" | timeout 20 "$NX_BIN/noxs-console" -n $((${#word} + 1)) 1 0) ||
		nx_fail "$what: attach"
	[ "$out" = "$word" ] || nx_fail "$what: echoed '$out', want '$word'"
}
echo_ok "before the restarts" one

unchanged() {
	local what=$1
	nx_dev_connected 1 || nx_fail "$what: the console is $(nx_dev_states 1)"
	nx_alive "$fe" || nx_fail "$what: the guest's frontend exited: $(cat "$NX_DIR/front.log")"
	grep -q 'dropping' "$NX_DIR/noxsd.log" && nx_fail "$what: noxsd dropped devices"
	return 0
}

# 1. kill -9.
kill -9 "$(be_pid)"
nx_wait 200 "the service manager to restart the backend" eval '[ "$(starts)" -ge 2 ]'
nx_wait 200 "the backend to register again" eval '[ "$(registrations)" -ge 2 ]'
sleep 0.5 # the frontend had its chance to react to the death
unchanged "after kill -9 of the backend"
echo_ok "after kill -9 of the backend" two
grep -q 'console 0: resumed' "$NX_DIR/console-back.log" ||
	nx_fail "the backend did not resume the console"
nx_log "kill -9 of the console backend: the console stayed connected"

# 2. SIGTERM and start again.
bp=$(be_pid)
kill -TERM "$bp"
nx_wait 200 "the backend to exit" grep -q "^exited $bp 0$" "$NX_DIR/svc.out"
kill -USR1 "$svc"
nx_wait 200 "the backend to start again" eval '[ "$(starts)" -ge 3 ]'
nx_wait 200 "the backend to register again" eval '[ "$(registrations)" -ge 3 ]'
sleep 0.5
unchanged "after a SIGTERM restart of the backend"
echo_ok "after a SIGTERM restart of the backend" three
want=$(printf 'one\ntwo\nthree\n')
[ "$(cat "$NX_DIR/in")" = "$want" ] || nx_fail "guest input: '$(cat "$NX_DIR/in")'"
nx_log PASS
