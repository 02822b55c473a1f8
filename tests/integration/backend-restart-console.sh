#!/bin/bash
# The console backend restarts without closing its consoles: as
# backend-restart.sh for sysctl, noxs-console-back runs under
# noxsd-fdstore; after kill -9 and after SIGTERM and a new start, the
# guest's console stays Connected, its frontend keeps running without
# seeing the backend go, and echo through it still works.
. "$(dirname "$0")/../lib.sh"

export NOXS_CONSOLE_DIR=$NX_DIR/console
mkdir -p "$NOXS_CONSOLE_DIR"
nx_start_noxsd --backend-grace 5000
nx_svc_start console-back noxs-console-back --dir "$NOXS_CONSOLE_DIR"

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
nx_svc_kill9
sleep 0.5 # the frontend had its chance to react to the death
unchanged "after kill -9 of the backend"
echo_ok "after kill -9 of the backend" two
grep -q 'console 0: resumed' "$NX_DIR/console-back.log" ||
	nx_fail "the backend did not resume the console"
nx_log "kill -9 of the console backend: the console stayed connected"

# 2. SIGTERM and start again.
nx_svc_restart
sleep 0.5
unchanged "after a SIGTERM restart of the backend"
echo_ok "after a SIGTERM restart of the backend" three
want=$(printf 'one\ntwo\nthree\n')
[ "$(cat "$NX_DIR/in")" = "$want" ] || nx_fail "guest input: '$(cat "$NX_DIR/in")'"
nx_log PASS
