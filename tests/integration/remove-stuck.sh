#!/bin/bash
# A frontend that never follows Closing must cost only its own removal:
# with guest 1's frontend stopped (SIGSTOP), `dev-rm 1` waits for it (the
# library's bounded closing walk), and meanwhile the same backend still
# creates and connects guest 2's device and answers guest 3's removal.
# Then guest 1's removal finishes on its own: Closed, gone from dev-list.
# (Ordering only: guest 2 and 3 finish while dev-rm 1 is still waiting.)
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_sysctl_back

for d in 1 3; do
	boot=$(nx_domain $d)
	[ -n "$boot" ] || nx_fail "domain-create $d printed no bootstrap string"
	nx_start_sysctl_front $d "$boot"
	eval "fe$d=\$NX_FRONT"
	noxsctl dev-add $d sysctl 0 >/dev/null || nx_fail "dev-add $d"
	nx_wait 200 "guest $d connected" nx_dev_connected $d
done
boot2=$(nx_domain 2)
nx_start_sysctl_front 2 "$boot2"
fe2=$NX_FRONT

# Guest 1 stops answering; its removal starts and has to wait.
kill -STOP "$fe1"
noxsctl dev-rm 1 sysctl 0 >"$NX_DIR/rm1.out" 2>&1 &
rm1=$!
NX_PIDS+=("$rm1")
nx_wait 200 "guest 1's backend half to say Closing" nx_dev_states_is 1 "Closing Connected"

# The same backend serves everyone else meanwhile.
noxsctl dev-add 2 sysctl 0 >/dev/null || nx_fail "dev-add 2 while guest 1 closes"
nx_wait 200 "guest 2 connected while guest 1 closes" nx_dev_connected 2
noxsctl dev-rm 3 sysctl 0 >/dev/null || nx_fail "dev-rm 3 while guest 1 closes"
kill -0 "$rm1" 2>/dev/null ||
	nx_fail "dev-rm 1 finished before the others: the backend waited for guest 1"
nx_log "guest 2 connected and guest 3 removed while guest 1's removal waited"

# Guest 1's removal ends by itself (bounded), successfully.
nx_exit_status "$rm1" 400
[ "$NX_STATUS" = 0 ] || nx_fail "dev-rm 1: exit $NX_STATUS: $(cat "$NX_DIR/rm1.out")"
n=$(noxsctl dev-list 1 --json | grep -c '"type"' || true)
[ "$n" = 0 ] || nx_fail "dev-list 1 still shows $n device(s)"
kill -CONT "$fe1"
nx_exit_status "$fe1" 200
[ "$NX_STATUS" = 3 ] || nx_fail "guest 1's frontend exit status $NX_STATUS, want 3 (device gone)"
nx_exit_status "$fe3" 200
[ "$NX_STATUS" = 3 ] || nx_fail "guest 3's frontend exit status $NX_STATUS, want 3"
nx_dev_connected 2 || nx_fail "guest 2 lost its connection: $(nx_dev_states 2)"
nx_log "guest 1 removed after its closing walk timed out; guest 2 still Connected"
