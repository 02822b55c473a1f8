#!/bin/bash
# A guest that leaves its half of the control page torn (seq odd, a write
# that never ends) and notifies in a loop costs the backend no more than
# a well-behaved device: beside three such guests, honest guests still
# connect and shut down (generous liveness bounds only), and the backend
# defers each torn device once (logged) instead of re-reading it, with
# hundreds of yields, on every notification.
. "$(dirname "$0")/../lib.sh"

PROBE=$NX_BUILD/tests/hostile-front
nx_start_noxsd
nx_start_sysctl_back -v # -vv: the deferrals are logged at debug level

deferred() { [ "$(grep -c 'domain [123] device 1/0: half torn; deferring it' "$NX_DIR/backend.log")" -ge "$1" ]; }

for h in 1 2 3; do
	boot=$(nx_domain $h)
	noxsctl dev-add $h sysctl 0 >/dev/null || nx_fail "dev-add $h"
	NOXS_SIM_DOMID=$h NOXS_BOOT=$boot HOSTILE_SLEEP_US=${HOSTILE_SLEEP_US:-100} \
		"$PROBE" 1 0 torn 600 >"$NX_DIR/torn-$h.log" 2>&1 &
	NX_PIDS+=("$!")
	eval "torn$h=$!"
done
nx_wait 400 "the backend to defer the three torn devices" deferred 3

for d in 10 11 12; do
	boot=$(nx_domain $d)
	nx_start_sysctl_front $d "$boot"
	fe=$NX_FRONT
	out=$(noxsctl dev-add $d sysctl 0 2>&1) ||
		nx_fail "dev-add $d beside torn guests: $out"
	nx_wait 600 "domain $d Connected beside torn guests" nx_dev_connected $d
	out=$(noxsctl shutdown $d --reason poweroff --wait 20 2>&1) ||
		nx_fail "shutdown $d beside torn guests: $out"
	nx_exit_status "$fe" 600
	[ "$NX_STATUS" = 0 ] || nx_fail "guest $d exited $NX_STATUS after poweroff"
	nx_log "domain $d connected and shut down beside three torn guests"
done

for h in 1 2 3; do
	eval "p=\$torn$h"
	kill -0 "$p" 2>/dev/null || nx_fail "torn guest $h stopped early"
done
# Deferred once each: a torn half is not read again on every notification
# (a read that succeeds would end the deferral and a new one log again).
for h in 1 2 3; do
	n=$(grep -c "domain $h device 1/0: half torn; deferring it" "$NX_DIR/backend.log")
	[ "$n" = 1 ] || nx_fail "torn device of domain $h deferred $n times, want 1"
done
stays_torn() { [ "$(grep -c 'domain [123] device 1/0: the frontend keeps its half torn' "$NX_DIR/backend.log")" = 3 ]; }
nx_wait 400 "a warning for each half that stays torn" stays_torn
nx_log "three torn guests deferred once each; honest guests unaffected"
