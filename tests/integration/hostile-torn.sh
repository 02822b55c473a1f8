#!/bin/bash
# A guest that leaves its half of the control page torn (seq odd, a write
# that never ends) and notifies in a loop costs the backend no more than
# a well-behaved device: beside three such guests, honest guests still
# connect and shut down (generous liveness bounds only), and the backend
# defers each torn device once (logged) instead of re-reading it, with
# hundreds of yields, on every notification.
. "$(dirname "$0")/sysctl-lib.sh"

PROBE=$T_BUILD/tests/hostile-front
t_start_noxsd
t_start_backend -v # -vv: the deferrals are logged at debug level

deferred() { [ "$(grep -c 'domain [123] device 1/0: half torn; deferring it' "$T_DIR/backend.log")" -ge "$1" ]; }

for h in 1 2 3; do
	boot=$(t_domain $h)
	noxsctl dev-add $h sysctl 0 >/dev/null || t_fail "dev-add $h"
	NOXS_SIM_DOMID=$h NOXS_BOOT=$boot HOSTILE_SLEEP_US=${HOSTILE_SLEEP_US:-100} \
		"$PROBE" 1 0 torn 600 >"$T_DIR/torn-$h.log" 2>&1 &
	T_PIDS+=("$!")
	eval "torn$h=$!"
done
t_wait 400 "the backend to defer the three torn devices" deferred 3

for d in 10 11 12; do
	boot=$(t_domain $d)
	t_front $d "$boot"
	fe=$T_FRONT
	out=$(noxsctl dev-add $d sysctl 0 2>&1) ||
		t_fail "dev-add $d beside torn guests: $out"
	t_wait 600 "domain $d Connected beside torn guests" t_connected $d
	out=$(noxsctl shutdown $d --reason poweroff --wait 20 2>&1) ||
		t_fail "shutdown $d beside torn guests: $out"
	t_exit_status "$fe" 600
	[ "$T_STATUS" = 0 ] || t_fail "guest $d exited $T_STATUS after poweroff"
	t_log "domain $d connected and shut down beside three torn guests"
done

for h in 1 2 3; do
	eval "p=\$torn$h"
	kill -0 "$p" 2>/dev/null || t_fail "torn guest $h stopped early"
done
# Deferred once each: a torn half is not read again on every notification
# (a read that succeeds would end the deferral and a new one log again).
for h in 1 2 3; do
	n=$(grep -c "domain $h device 1/0: half torn; deferring it" "$T_DIR/backend.log")
	[ "$n" = 1 ] || t_fail "torn device of domain $h deferred $n times, want 1"
done
stays_torn() { [ "$(grep -c 'domain [123] device 1/0: the frontend keeps its half torn' "$T_DIR/backend.log")" = 3 ]; }
t_wait 400 "a warning for each half that stays torn" stays_torn
t_log "three torn guests deferred once each; honest guests unaffected"
