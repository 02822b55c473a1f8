#!/bin/bash
# A device's whole life: domain create, dev add, connect, reconnect after
# the frontend restarts (cleanly and after kill -9), dev remove walking
# Closing -> Closed on both halves, domain destroy; afterwards the
# simulator must show every grant, mapping and port released.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_sysctl_back
# The watcher starts in the background: before domain 1 exists, make sure
# it is subscribed (create and destroy a probe domain until it reports
# one), or it may miss the first events.
noxsctl watch all >"$NX_DIR/watch.log" 2>&1 &
NX_PIDS+=($!)
watcher_ready() {
	noxsctl domain-create 9 >/dev/null && noxsctl domain-destroy 9 >/dev/null &&
		grep -q '^domain-destroyed 9$' "$NX_DIR/watch.log"
}
nx_wait 200 "the watcher to subscribe" watcher_ready

boot=$(nx_domain 1)
[ -n "$boot" ] || nx_fail "domain-create printed no bootstrap string"
nx_start_sysctl_front 1 "$boot"
noxsctl dev-add 1 sysctl 0 >/dev/null || nx_fail "dev-add"
# (The frontend's own word too, so that the counts below start from it.)
nx_wait 200 "first connection" nx_new_connection 1 0
nx_log "connected: $(nx_dev_states 1)"

# Clean restart: SIGTERM closes the device, the backend follows to Closed.
n=$(nx_front_connections 1)
kill -TERM "$NX_FRONT"
nx_exit_status "$NX_FRONT" 200
nx_wait 200 "both halves Closed after the frontend closed" nx_dev_states_is 1 "Closed Closed"
nx_start_sysctl_front 1 "$boot"
nx_wait 200 "reconnection after a clean restart" nx_new_connection 1 "$n"
nx_log "reconnected after a clean restart"

# Crash restart: the old half still says Connected; the new frontend
# starts at Initialising and the backend must start over. Until the
# backend notices either, dev-list still shows the dead session's
# "Connected Connected": only one more connection in the frontends' log
# is the new frontend's.
n=$(nx_front_connections 1)
kill -9 "$NX_FRONT"
wait "$NX_FRONT" 2>/dev/null
nx_start_sysctl_front 1 "$boot"
fe=$NX_FRONT
nx_wait 200 "reconnection after kill -9" nx_new_connection 1 "$n"
nx_log "reconnected after kill -9 of the frontend"

# Remove: both halves walk Closing -> Closed; the guest sees its device
# go away and exits 3. The backend is held (SIGSTOP) meanwhile, so that
# the entry stays marked closing on the device page: a frontend that
# starts then, too late for the device, must also exit 3 rather than wait
# for it for ever.
kill -STOP "$NX_BACKEND"
noxsctl dev-rm 1 sysctl 0 >"$NX_DIR/rm.out" 2>&1 &
rm=$!
NX_PIDS+=("$rm")
nx_exit_status "$fe" 200
st=$NX_STATUS
[ "$st" = 3 ] || nx_fail "frontend exit status after dev-rm: $st, want 3 (device gone)"
nx_start_sysctl_front 1 "$boot"
nx_exit_status "$NX_FRONT" 200
st=$NX_STATUS
[ "$st" = 3 ] || nx_fail "a frontend started during dev-rm: exit $st, want 3 (device gone)"
kill -CONT "$NX_BACKEND"
nx_exit_status "$rm" 400
[ "$NX_STATUS" = 0 ] || nx_fail "dev-rm: exit $NX_STATUS: $(cat "$NX_DIR/rm.out")"
grep -q 'device closed by the backend' "$NX_DIR/front-1.log" ||
	nx_fail "the frontend did not see the backend close"
grep -q 'removed' "$NX_DIR/backend.log" || nx_fail "the backend did not log the removal"
n=$(noxsctl dev-list 1 --json | grep -c '"type"' || true)
[ "$n" = 0 ] || nx_fail "dev-list still shows $n device(s) after dev-rm"
nx_log "removed: frontend exited 3, dev-list empty"

noxsctl domain-destroy 1 >/dev/null || nx_fail "domain-destroy"

# What a toolstack watching the domain saw: three connections, then the
# removal.
nx_wait 100 "the watcher to see the domain destroyed" grep -q '^domain-destroyed 1$' "$NX_DIR/watch.log"
n=$(grep -c '^dev-state 1 sysctl 0 .*state Connected/Connected$' "$NX_DIR/watch.log")
[ "$n" -ge 3 ] || nx_fail "watch saw $n connections, want 3"
# (The event carries the states the backend last reported, which may
# predate the library's closing walk; the walk itself shows in the
# frontend's exit status 3 above: it saw the backend close and published
# Closing -> Closed.)
grep -q '^dev-removed 1 sysctl 0 ' "$NX_DIR/watch.log" ||
	nx_fail "watch did not see the device removed"

# The simulator's accounting (noxs-simstat reaps dead owners first): no
# port, grant or mapping is left anywhere; only the evtchn handles of the
# still-running noxsd keeper and backend remain.
stat=$NX_BUILD/sim/noxs-simstat
[ -x "$stat" ] || nx_fail "no simulator stat tool ($stat)"
sim_clean() {
	local total k
	total=$("$stat" | grep '^total') || return 1
	for k in ports_unbound ports_interdomain grants_active grants_ending grant_maps; do
		case " $total " in *" $k=0 "*) ;; *) return 1 ;; esac
	done
}
nx_wait 100 "every port, grant and mapping to be released" sim_clean
nx_log "simulator: $("$stat" | grep '^total')"
nx_log "PASS"
