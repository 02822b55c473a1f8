#!/bin/bash
# Peers dying: kill -9 of the backend -> the guest sees its device closed
# or removed and exits 3; kill -9 of a guest's frontend -> the backend
# notices (liveness page) and closes its half, which noxsd reports.
. "$(dirname "$0")/sysctl-lib.sh"

t_start_noxsd
t_start_backend
boot=$(t_domain 1)
t_front 1 "$boot"
fe=$T_FRONT
noxsctl dev-add 1 sysctl 0 >/dev/null || t_fail "dev-add 1"
t_wait 200 "domain 1 Connected" t_connected 1
kill -9 "$T_BACKEND"
t_exit_status "$fe" 400
st=$T_STATUS
[ "$st" = 3 ] || t_fail "guest 1 after the backend died: exit $st, want 3 (device gone)"
t_log "backend killed: the guest saw its device go (exit 3)"

t_start_backend
boot=$(t_domain 2)
t_front 2 "$boot"
fe=$T_FRONT
noxsctl dev-add 2 sysctl 0 >/dev/null || t_fail "dev-add 2"
t_wait 200 "domain 2 Connected" t_connected 2
kill -9 "$fe"
wait "$fe" 2>/dev/null
# The frontend's own half still says Connected (it died mid-sentence);
# the backend notices through the liveness page and closes its half.
t_wait 400 "the backend to close guest 2's device" t_backend_closed 2
t_log "frontend killed: the backend reported $(t_states 2)"
kill -0 "$T_BACKEND" || t_fail "the backend died with its guest"
t_log "PASS"
