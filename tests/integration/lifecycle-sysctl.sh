#!/bin/bash
# A device's whole life: domain create, dev add, connect, reconnect after
# the frontend restarts (cleanly and after kill -9), dev remove walking
# Closing -> Closed on both halves, domain destroy; afterwards the
# simulator must show every grant, mapping and port released.
. "$(dirname "$0")/sysctl-lib.sh"

t_start_noxsd
t_start_backend
# The watcher starts in the background: before domain 1 exists, make sure
# it is subscribed (create and destroy a probe domain until it reports
# one), or it may miss the first events.
noxsctl watch all >"$T_DIR/watch.log" 2>&1 &
T_PIDS+=($!)
watcher_ready() {
	noxsctl domain-create 9 >/dev/null && noxsctl domain-destroy 9 >/dev/null &&
		grep -q '^domain-destroyed 9$' "$T_DIR/watch.log"
}
t_wait 200 "the watcher to subscribe" watcher_ready

boot=$(t_domain 1)
[ -n "$boot" ] || t_fail "domain-create printed no bootstrap string"
t_front 1 "$boot"
noxsctl dev-add 1 sysctl 0 >/dev/null || t_fail "dev-add"
# (The frontend's own word too, so that the counts below start from it.)
t_wait 200 "first connection" t_new_connection 1 0
t_log "connected: $(t_states 1)"

# Clean restart: SIGTERM closes the device, the backend follows to Closed.
n=$(t_front_connections 1)
kill -TERM "$T_FRONT"
t_exit_status "$T_FRONT" 200
t_wait 200 "both halves Closed after the frontend closed" t_states_is 1 "Closed Closed"
t_front 1 "$boot"
t_wait 200 "reconnection after a clean restart" t_new_connection 1 "$n"
t_log "reconnected after a clean restart"

# Crash restart: the old half still says Connected; the new frontend
# starts at Initialising and the backend must start over. Until the
# backend notices either, dev-list still shows the dead session's
# "Connected Connected": only one more connection in the frontends' log
# is the new frontend's.
n=$(t_front_connections 1)
kill -9 "$T_FRONT"
wait "$T_FRONT" 2>/dev/null
t_front 1 "$boot"
fe=$T_FRONT
t_wait 200 "reconnection after kill -9" t_new_connection 1 "$n"
t_log "reconnected after kill -9 of the frontend"

# Remove: both halves walk Closing -> Closed; the guest sees its device
# go away and exits 3. The backend is held (SIGSTOP) meanwhile, so that
# the entry stays marked closing on the device page: a frontend that
# starts then, too late for the device, must also exit 3 rather than wait
# for it for ever.
kill -STOP "$T_BACKEND"
noxsctl dev-rm 1 sysctl 0 >"$T_DIR/rm.out" 2>&1 &
rm=$!
T_PIDS+=("$rm")
t_exit_status "$fe" 200
st=$T_STATUS
[ "$st" = 3 ] || t_fail "frontend exit status after dev-rm: $st, want 3 (device gone)"
t_front 1 "$boot"
t_exit_status "$T_FRONT" 200
st=$T_STATUS
[ "$st" = 3 ] || t_fail "a frontend started during dev-rm: exit $st, want 3 (device gone)"
kill -CONT "$T_BACKEND"
t_exit_status "$rm" 400
[ "$T_STATUS" = 0 ] || t_fail "dev-rm: exit $T_STATUS: $(cat "$T_DIR/rm.out")"
grep -q 'device closed by the backend' "$T_DIR/front-1.log" ||
	t_fail "the frontend did not see the backend close"
grep -q 'removed' "$T_DIR/backend.log" || t_fail "the backend did not log the removal"
n=$(noxsctl dev-list 1 --json | grep -c '"type"' || true)
[ "$n" = 0 ] || t_fail "dev-list still shows $n device(s) after dev-rm"
t_log "removed: frontend exited 3, dev-list empty"

noxsctl domain-destroy 1 >/dev/null || t_fail "domain-destroy"

# What a toolstack watching the domain saw: three connections, then the
# removal.
t_wait 100 "the watcher to see the domain destroyed" grep -q '^domain-destroyed 1$' "$T_DIR/watch.log"
n=$(grep -c '^dev-state 1 sysctl 0 .*state Connected/Connected$' "$T_DIR/watch.log")
[ "$n" -ge 3 ] || t_fail "watch saw $n connections, want 3"
# (The event carries the states the backend last reported, which may
# predate the library's closing walk; the walk itself shows in the
# frontend's exit status 3 above: it saw the backend close and published
# Closing -> Closed.)
grep -q '^dev-removed 1 sysctl 0 ' "$T_DIR/watch.log" ||
	t_fail "watch did not see the device removed"

# The simulator's accounting (noxs-simstat reaps dead owners first): no
# port, grant or mapping is left anywhere; only the evtchn handles of the
# still-running noxsd keeper and backend remain.
stat=$T_BUILD/sim/noxs-simstat
[ -x "$stat" ] || t_fail "no simulator stat tool ($stat)"
sim_clean() {
	local total k
	total=$("$stat" | grep '^total') || return 1
	for k in ports_unbound ports_interdomain grants_active grants_ending grant_maps; do
		case " $total " in *" $k=0 "*) ;; *) return 1 ;; esac
	done
}
t_wait 100 "every port, grant and mapping to be released" sim_clean
t_log "simulator: $("$stat" | grep '^total')"
t_log "PASS"
