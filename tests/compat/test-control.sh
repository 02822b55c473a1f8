#!/bin/bash
# control/shutdown and control/feature-* (the sysctl device on noxs): the
# same legacy guest agent (xsguest, xs_* only) against the real xenstored
# and on compat-xs with noxsd + noxs-sysctl-back; the toolstack is
# Debian's xenstore-write / xenstore-read. The guest advertises its
# reasons, acknowledges the request by clearing the node and exits with
# the status naming the reason (poweroff 0, reboot 10, as
# noxs-sysctl-front); reading the node back then gives "".
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools
G=$COMPAT_DIR/xsguest

# Agents run under timeout(1), so every wait is bounded.
G="timeout -s KILL 20 $G"

# guest_status PID LOG: wait for the agent; its exit status in $st. (Not
# in a subshell: only this shell can reap it.)
guest_status() {
	st=0
	wait "$1" || st=$?
	[ $st -lt 128 ] || nx_fail "guest agent did not exit: $(cat "$2")"
}

nx_log "xenstored"
xsd_start xenstored xenstored
for dom in 1 2; do
	reason=poweroff want=0
	[ $dom = 2 ] && reason=reboot want=10
	# libxl creates the node empty, writable by the guest.
	xenstore-write /local/domain/$dom/control/shutdown "" || nx_fail "mknod $dom"
	log=$NX_DIR/xsd-guest.$dom
	$G $dom >"$log" 2>&1 &
	g=$!
	nx_at_exit "kill $g"
	nx_wait_line "$log" '^ready'
	nx_expect_eq "xenstored feature $dom" \
		"$(xenstore-read /local/domain/$dom/control/feature-$reason)" 1
	xenstore-write /local/domain/$dom/control/shutdown $reason ||
		nx_fail "xenstored: write $reason"
	guest_status $g "$log"
	nx_expect_eq "xenstored guest $dom status" $st $want
	nx_expect_eq "xenstored guest $dom output" "$(tail -n 1 "$log")" \
		"shutdown $reason"
	nx_expect_eq "xenstored read-back $dom" \
		"$(xenstore-read /local/domain/$dom/control/shutdown)" ""
done
xsd_stop xenstored

nx_log "compat-xs"
expect_compat "$COMPAT_DIR/xsguest" "$(command -v xenstore-write)" "$(command -v xenstore-read)"
nx_start_noxsd
sim_env() {
	env LD_LIBRARY_PATH=$NOXS_BUILD/sim:$NOXS_BUILD/lib NOXS_SIM_DOMID=0 "$@"
}
# exec in the background subshell, so that $! is the backend itself and
# nx_at_exit's kill reaches it (a plain function call would leave it running).
(exec env LD_LIBRARY_PATH="$NOXS_BUILD/sim:$NOXS_BUILD/lib" NOXS_SIM_DOMID=0 \
	"$NX_BIN/noxs-sysctl-back" -d -v --timeout 5 >"$NX_DIR/sysctl-back.log" 2>&1) &
sb=$!
nx_at_exit "kill $sb"
nx_wait_line "$NX_DIR/sysctl-back.log" "serving sysctl devices"

# xenstore-write: retried while the guest is not Connected yet (ENOTCONN,
# where xenstored would just store the node).
ts_write() {
	i=0
	until with_compat xenstore-write "$1" "$2" 2>"$NX_DIR/ts.err"; do
		i=$((i + 1))
		[ $i -gt 200 ] && nx_fail "xenstore-write $1 $2: $(cat "$NX_DIR/ts.err")"
		sleep 0.05
	done
}

for dom in 1 2; do
	reason=poweroff want=0
	[ $dom = 2 ] && reason=reboot want=10
	with_compat "$NX_BIN/legacy-toolstack" introduce $dom || nx_fail "introduce $dom"
	sim_env "$NX_BIN/noxsctl" dev-add $dom sysctl 0 >/dev/null || nx_fail "dev-add $dom"
	with_compat xenstore-write /local/domain/$dom/control/shutdown "" ||
		nx_fail "compat-xs: mknod $dom"
	log=$NX_DIR/noxs-guest.$dom
	compat_exec $dom $G $dom >"$log" 2>&1 &
	g=$!
	nx_at_exit "kill $g"
	nx_wait_line "$log" '^ready'
	ts_write /local/domain/$dom/control/shutdown $reason
	guest_status $g "$log"
	nx_expect_eq "compat-xs guest $dom status" $st $want
	nx_expect_eq "compat-xs guest $dom output" "$(tail -n 1 "$log")" \
		"shutdown $reason"
	nx_wait_line "$NX_DIR/sysctl-back.log" "domain $dom: shutdown $reason acknowledged"
	nx_expect_eq "compat-xs read-back $dom" \
		"$(with_compat xenstore-read /local/domain/$dom/control/shutdown)" ""
	sim_env "$NX_BIN/noxsctl" dev-list $dom | grep -q "Closed *Closed" ||
		nx_fail "device states: $(sim_env "$NX_BIN/noxsctl" dev-list $dom)"
done

# A guest that supports poweroff only: reboot is refused at once (the
# backend checks the features; xenstored would store it unread), and the
# guest answers noxsctl shutdown as it answers noxs-sysctl-front's.
dom=3
with_compat "$NX_BIN/legacy-toolstack" introduce $dom || nx_fail "introduce $dom"
sim_env "$NX_BIN/noxsctl" dev-add $dom sysctl 0 >/dev/null || nx_fail "dev-add $dom"
log=$NX_DIR/noxs-guest.$dom
compat_exec $dom $G $dom poweroff >"$log" 2>&1 &
g=$!
nx_at_exit "kill $g"
nx_wait_line "$log" '^ready'
ts_write /local/domain/$dom/control/feature-poweroff ""  # libxl's mknod
i=0
until sim_env "$NX_BIN/noxsctl" dev-list $dom | grep -q "Connected *Connected"; do
	i=$((i + 1))
	[ $i -gt 500 ] && nx_fail "guest $dom not Connected"
	sleep 0.01
done
with_compat xenstore-write /local/domain/$dom/control/shutdown reboot 2>"$NX_DIR/reboot.err" &&
	nx_fail "reboot of a poweroff-only guest accepted"
grep -q "does not support shutdown reason 'reboot'" "$NX_DIR/reboot.err" ||
	nx_fail "no reason given for the refused reboot: $(cat "$NX_DIR/reboot.err")"
# What xl save writes first: refused at once, and the message says why.
with_compat xenstore-write /local/domain/$dom/control/shutdown suspend 2>"$NX_DIR/suspend.err" &&
	nx_fail "suspend of a poweroff-only guest accepted"
grep -q "does not support suspend: xl save" "$NX_DIR/suspend.err" ||
	nx_fail "no reason given for the refused suspend: $(cat "$NX_DIR/suspend.err")"
kill -0 $g || nx_fail "guest $dom died on a refused request"
out=$(sim_env "$NX_BIN/noxsctl" shutdown $dom --reason poweroff --wait 5) ||
	nx_fail "noxsctl shutdown: $out"
nx_expect_eq "noxsctl shutdown reply" "$out" poweroff
guest_status $g "$log"
nx_expect_eq "compat-xs guest $dom status" $st 0

# A guest agent killed with -9 leaves its half saying Connected: the
# backend learns of the death from the liveness page the context shared
# once Connected, and walks the device to Closed on its own.
dom=4
with_compat "$NX_BIN/legacy-toolstack" introduce $dom || nx_fail "introduce $dom"
sim_env "$NX_BIN/noxsctl" dev-add $dom sysctl 0 >/dev/null || nx_fail "dev-add $dom"
log=$NX_DIR/noxs-guest.$dom
compat_exec $dom "$COMPAT_DIR/xsguest" $dom >"$log" 2>&1 &
g=$!
nx_at_exit "kill -9 $g"
nx_wait_line "$log" '^ready'
# The backend's mapping of the page: one grant map of domain 0.
backend_maps() {
	sim_env "$NOXS_BUILD/sim/noxs-simstat" |
		sed -n 's/^domid=0 .*grant_maps=\([0-9]*\).*/\1/p'
}
i=0
until sim_env "$NX_BIN/noxsctl" dev-list $dom | grep -q "Connected *Connected" &&
	[ "$(backend_maps)" -ge 1 ]; do
	i=$((i + 1))
	[ $i -gt 500 ] && nx_fail "guest $dom not Connected with a liveness page" \
		"($(sim_env "$NX_BIN/noxsctl" dev-list $dom), maps $(backend_maps))"
	sleep 0.02
done
kill -9 $g
i=0
until sim_env "$NX_BIN/noxsctl" dev-list $dom | grep -q "Closed *Connected"; do
	i=$((i + 1))
	[ $i -gt 500 ] && nx_fail "the backend did not see guest $dom die:" \
		"$(sim_env "$NX_BIN/noxsctl" dev-list $dom)"
	sleep 0.02
done
echo ok
