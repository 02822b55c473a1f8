#!/bin/bash
# A device's whole life: domain create, dev add, connect, reconnect after
# the frontend restarts (cleanly and after kill -9), dev remove walking
# Closing -> Closed on both halves, domain destroy; afterwards the
# simulator must show every grant, mapping and port released.
. "$(dirname "$0")/sysctl-lib.sh"

t_start_noxsd
t_start_backend
noxsctl watch 1 >"$T_DIR/watch.log" 2>&1 &
T_PIDS+=($!)

boot=$(t_domain 1)
[ -n "$boot" ] || t_fail "domain-create printed no bootstrap string"
t_front 1 "$boot"
noxsctl dev-add 1 sysctl 0 >/dev/null || t_fail "dev-add"
t_wait 200 "first connection" t_connected 1
t_log "connected: $(t_states 1)"

# Clean restart: SIGTERM closes the device, the backend follows to Closed.
kill -TERM "$T_FRONT"
t_exit_status "$T_FRONT" 200
t_wait 200 "both halves Closed after the frontend closed" t_states_is 1 "Closed Closed"
t_front 1 "$boot"
t_wait 200 "reconnection after a clean restart" t_connected 1
t_log "reconnected after a clean restart"

# Crash restart: the old half still says Connected; the new frontend
# starts at Initialising and the backend must start over.
kill -9 "$T_FRONT"
wait "$T_FRONT" 2>/dev/null
t_front 1 "$boot"
fe=$T_FRONT
t_wait 200 "reconnection after kill -9" t_connected 1
t_log "reconnected after kill -9 of the frontend"

# Remove: both halves walk Closing -> Closed; the guest sees its device
# go away and exits 3.
noxsctl dev-rm 1 sysctl 0 >/dev/null || t_fail "dev-rm"
t_exit_status "$fe" 200
st=$T_STATUS
[ "$st" = 3 ] || t_fail "frontend exit status after dev-rm: $st, want 3 (device gone)"
grep -q 'device closed by the backend' "$T_DIR/front-1.log" ||
	t_fail "the frontend did not see the backend close"
grep -q 'removed' "$T_DIR/backend.log" || t_fail "the backend did not log the removal"
n=$(noxsctl dev-list 1 --json | grep -c '"type"' || true)
[ "$n" = 0 ] || t_fail "dev-list still shows $n device(s) after dev-rm"
t_log "removed: frontend exited 3, dev-list empty"

noxsctl domain-destroy 1 >/dev/null || t_fail "domain-destroy"

# What a toolstack watching the domain saw: three connections, then the
# removal.
t_wait 100 "the watcher to see the domain destroyed" grep -q '^domain-destroyed 1' "$T_DIR/watch.log"
n=$(grep -c 'state Connected/Connected' "$T_DIR/watch.log")
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
