#!/bin/bash
# A backend restarts without closing its devices. noxs-sysctl-back runs
# under noxsd-fdstore, which plays systemd for its unit (notification
# socket, the fd store, Restart=on-failure): its control pages live on
# its gntalloc file, which with its event-channel file and the memfd
# describing its devices is in the store.
#   1. kill -9 of the backend: the "service manager" restarts it with the
#      stored files; it maps the pages again and resumes the device;
#   2. SIGTERM, then a start (systemctl restart): the same;
# and each time the guest's device stays Connected (noxsd's view and the
# frontend's), the frontend neither reconnects nor sees Closing nor the
# backend's death, a new device reaches a second guest, and at the end a
# shutdown request still reaches the first guest. Last, a backend that
# does not come back (its stored files closed) loses its devices when
# noxsd's grace period ends, and the guest sees its device go.
. "$(dirname "$0")/../lib.sh"

# A grace period long enough for a restart on a loaded machine, short
# enough to see it end below.
nx_start_noxsd --backend-grace 5000
nx_svc_start sysctl-back noxs-sysctl-back
stored() { [ "$(grep -c '^stored noxs-backend-' "$NX_SVC_OUT")" -ge 3 ]; }
# Not fatal here: a backend that stores nothing fails below, on what the
# guest sees.
for ((i = 0; i < 100; i++)); do stored && break; sleep 0.05; done

boot1=$(nx_domain 1)
boot2=$(nx_domain 2)
nx_sysctl_connect 1 "$boot1"
fe1=$NX_FRONT
connections() { grep -c 'connected$' "$NX_DIR/front-1.log"; }
c0=$(connections)
# The frontend shares its liveness page after Connected; give the
# backend a moment to map it, so that the restart has to map it again.
sleep 1

unchanged() {
	local what=$1
	nx_dev_connected 1 || nx_fail "$what: domain 1's device is $(nx_dev_states 1)"
	nx_alive "$fe1" || nx_fail "$what: domain 1's frontend exited"
	[ "$(connections)" = "$c0" ] ||
		nx_fail "$what: domain 1's frontend had to connect again"
	grep -Eq 'closed|Closing|backend died' "$NX_DIR/front-1.log" &&
		nx_fail "$what: domain 1's frontend saw its device close"
	grep -q 'dropping' "$NX_DIR/noxsd.log" &&
		nx_fail "$what: noxsd dropped devices"
	return 0
}
new_device() {
	nx_sysctl_cycle "$1" 2 "$boot2" "$NX_DIR/front-2.$2.log"
}

# 1. kill -9.
nx_svc_kill9
sleep 0.5 # the frontend had its chance to react to the death
unchanged "after kill -9 of the backend"
grep -q 'resumed 1 device' "$NX_DIR/sysctl-back.log" ||
	nx_fail "the backend did not resume the device"
grep -q 'is back' "$NX_DIR/noxsd.log" || nx_fail "noxsd did not see the backend come back"
new_device "after kill -9 of the backend" 1
nx_log "kill -9 of the backend: the device stayed connected"

# 2. SIGTERM and start again.
nx_svc_restart
sleep 0.5
unchanged "after a SIGTERM restart of the backend"
[ "$(grep -c 'resumed 1 device' "$NX_DIR/sysctl-back.log")" -ge 2 ] ||
	nx_fail "the backend did not resume the device after SIGTERM"
new_device "after a SIGTERM restart of the backend" 2
nx_log "SIGTERM restart of the backend: the device stayed connected"

# The restarted backend still serves the guest.
out=$(noxsctl shutdown 1 --reason poweroff --wait 5 2>&1) ||
	nx_fail "shutdown 1 after the restarts: $out"
nx_wait 200 "domain 1's frontend to act on the shutdown" eval "! nx_alive $fe1"
nx_log "a shutdown request reached the guest after both restarts"

# 3. The backend goes for good: the "service manager" first (the stored
# files close with it), then the backend.
NOXS_SIM_DOMID=2 NOXS_BOOT=$boot2 "$NX_BIN/noxs-sysctl-front" -v \
	>>"$NX_DIR/front-2.last.log" 2>&1 &
fe2=$!
NX_PIDS+=("$fe2")
noxsctl dev-add 2 sysctl 0 >/dev/null || nx_fail "dev-add 2 sysctl 0"
nx_wait 200 "domain 2's device to connect" nx_dev_connected 2
bp=$(nx_svc_pid)
kill -9 "$NX_SVC"
kill -9 "$bp"
nx_wait 400 "noxsd to drop the devices of a backend that did not come back" \
	grep -q 'did not come back' "$NX_DIR/noxsd.log"
nx_wait 200 "domain 2's frontend to see its device go" eval "! nx_alive $fe2"
[ -z "$(nx_dev_states 2)" ] || nx_fail "domain 2's device is still listed: $(nx_dev_states 2)"
nx_log PASS
