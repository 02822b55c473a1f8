#!/bin/bash
# Peers dying: kill -9 of the backend -> the guest sees its device closed
# or removed and exits 3; kill -9 of a guest's frontend -> the backend
# notices (liveness page) and closes its half, which noxsd reports.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_sysctl_back
boot=$(nx_domain 1)
nx_sysctl_connect 1 "$boot"
fe=$NX_FRONT
kill -9 "$NX_BACKEND"
nx_exit_status "$fe" 400
st=$NX_STATUS
[ "$st" = 3 ] || nx_fail "guest 1 after the backend died: exit $st, want 3 (device gone)"
nx_log "backend killed: the guest saw its device go (exit 3)"

nx_start_sysctl_back
boot=$(nx_domain 2)
nx_sysctl_connect 2 "$boot"
fe=$NX_FRONT
kill -9 "$fe"
wait "$fe" 2>/dev/null
# The frontend's own half still says Connected (it died mid-sentence);
# the backend notices through the liveness page and closes its half.
nx_wait 400 "the backend to close guest 2's device" nx_backend_closed 2
nx_log "frontend killed: the backend reported $(nx_dev_states 2)"
kill -0 "$NX_BACKEND" || nx_fail "the backend died with its guest"
nx_log "PASS"
