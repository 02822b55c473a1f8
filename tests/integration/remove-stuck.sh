#!/bin/bash
# A frontend that never follows Closing must cost only its own removal:
# with guest 1's frontend stopped (SIGSTOP), `dev-rm 1` waits for it (the
# library's bounded closing walk), and meanwhile the same backend still
# creates and connects guest 2's device and answers guest 3's removal.
# Then guest 1's removal finishes on its own: Closed, gone from dev-list.
# (Ordering only: guest 2 and 3 finish while dev-rm 1 is still waiting.)
. "$(dirname "$0")/sysctl-lib.sh"

t_start_noxsd
t_start_backend

for d in 1 3; do
	boot=$(t_domain $d)
	[ -n "$boot" ] || t_fail "domain-create $d printed no bootstrap string"
	t_front $d "$boot"
	eval "fe$d=\$T_FRONT"
	noxsctl dev-add $d sysctl 0 >/dev/null || t_fail "dev-add $d"
	t_wait 200 "guest $d connected" t_connected $d
done
boot2=$(t_domain 2)
t_front 2 "$boot2"
fe2=$T_FRONT

# Guest 1 stops answering; its removal starts and has to wait.
kill -STOP "$fe1"
noxsctl dev-rm 1 sysctl 0 >"$T_DIR/rm1.out" 2>&1 &
rm1=$!
T_PIDS+=("$rm1")
t_wait 200 "guest 1's backend half to say Closing" t_states_is 1 "Closing Connected"

# The same backend serves everyone else meanwhile.
noxsctl dev-add 2 sysctl 0 >/dev/null || t_fail "dev-add 2 while guest 1 closes"
t_wait 200 "guest 2 connected while guest 1 closes" t_connected 2
noxsctl dev-rm 3 sysctl 0 >/dev/null || t_fail "dev-rm 3 while guest 1 closes"
kill -0 "$rm1" 2>/dev/null ||
	t_fail "dev-rm 1 finished before the others: the backend waited for guest 1"
t_log "guest 2 connected and guest 3 removed while guest 1's removal waited"

# Guest 1's removal ends by itself (bounded), successfully.
t_exit_status "$rm1" 400
[ "$T_STATUS" = 0 ] || t_fail "dev-rm 1: exit $T_STATUS: $(cat "$T_DIR/rm1.out")"
n=$(noxsctl dev-list 1 --json | grep -c '"type"' || true)
[ "$n" = 0 ] || t_fail "dev-list 1 still shows $n device(s)"
kill -CONT "$fe1"
t_exit_status "$fe1" 200
[ "$T_STATUS" = 3 ] || t_fail "guest 1's frontend exit status $T_STATUS, want 3 (device gone)"
t_exit_status "$fe3" 200
[ "$T_STATUS" = 3 ] || t_fail "guest 3's frontend exit status $T_STATUS, want 3"
t_connected 2 || t_fail "guest 2 lost its connection: $(t_states 2)"
t_log "guest 1 removed after its closing walk timed out; guest 2 still Connected"
