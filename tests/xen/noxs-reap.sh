# Domain death on real Xen (sourced by init-dom0 after noxs-dom0.sh when
# the images were built with noxs): noxsd releases a domain Xen destroyed,
# nobody running `noxsctl domain-destroy`. With xenstored holding
# VIRQ_DOM_EXC (it binds it first), noxsd polls the domain list.
# Uses pass/fail/stage/wait_for, GUEST_DOMID and the logs of noxs-dom0.sh.

# How noxsd watches for deaths (its log says which).
noxs_death_watch() {
	how=$(grep -m 1 -E 'VIRQ_DOM_EXC|polling the domain list|death detection is off' /tmp/noxsd.log)
	case $how in
	*"is off"* | "") fail "dom0.noxs-death-watch: ${how:-nothing in the log}" ;;
	*) pass "dom0.noxs-death-watch - ${how#*: }" ;;
	esac
}

# dom0 domain D is no longer registered with noxsd.
noxs_released() { ! noxsctl domain-list 2>/dev/null | grep -q "^$1 "; }

# After the first guest powered off (xl destroyed it: on_poweroff).
noxs_reap_after_poweroff() {
	stage "noxs-release-after-poweroff"
	noxs_death_watch
	if wait_for 60 noxs_released $GUEST_DOMID; then
		pass "dom0.noxs-poweroff-released - $(grep -m 1 "domain $GUEST_DOMID .*releasing" /tmp/noxsd.log | sed 's/^[^:]*: //')"
	else
		fail "dom0.noxs-poweroff-released: $(noxsctl domain-list 2>&1 | tr '\n' ' ')"
	fi
	if grep -q "domain $GUEST_DOMID: sysctl device 0 removed" /tmp/sysctl-back.log; then
		pass dom0.noxs-poweroff-backend-released
	else
		fail "dom0.noxs-poweroff-backend-released: $(tail -n 5 /tmp/sysctl-back.log | tr '\n' ' ')"
	fi
}

# A second guest that only connects its sysctl device, destroyed with
# `xl destroy`: noxsd releases it, the backend removes its device, a
# watcher gets domain-released, and the domid starts clean.
REAP_DOMID=2
REAP_GUEST=noxsguest2
reap_connected() {
	noxsctl dev-list $REAP_DOMID 2>/dev/null | grep -i sysctl | grep -q 'Connected.*Connected'
}
noxs_reap_xl_destroy() {
	stage "noxs-xl-destroy"
	noxsctl watch all > /tmp/noxs-watch.out 2>&1 &
	watch_pid=$!
	boot=$(noxsctl domain-create $REAP_DOMID 2>&1)
	case $boot in
	noxs=*:*:*) ;;
	*) fail "dom0.noxs-guest2-connected: domain-create $REAP_DOMID: $boot"; kill $watch_pid; return ;;
	esac
	sed -e "s|@EXTRA@|$boot noxs-idle|" -e "s|^name = .*|name = \"$REAP_GUEST\"|" \
		/etc/xen/guest.cfg.in > /etc/xen/guest2.cfg
	if ! xl create /etc/xen/guest2.cfg > /tmp/xl-create2.log 2>&1 ||
		[ "$(xl domid $REAP_GUEST 2>/dev/null)" != $REAP_DOMID ]; then
		fail "dom0.noxs-guest2-connected: xl create: domid '$(xl domid $REAP_GUEST 2>&1)' $(tail -n 5 /tmp/xl-create2.log)"
		xl destroy $REAP_GUEST 2>/dev/null; kill $watch_pid; return
	fi
	noxsctl dev-add $REAP_DOMID sysctl 0 > /tmp/dev-add2.out 2>&1 || fail "dom0.noxs-guest2-connected: $(cat /tmp/dev-add2.out)"
	if wait_for 240 reap_connected; then
		pass "dom0.noxs-guest2-connected - domain $REAP_DOMID"
	else
		fail "dom0.noxs-guest2-connected: $(noxsctl dev-list $REAP_DOMID 2>&1 | tr '\n' ' ')"
	fi
	if xl destroy $REAP_GUEST > /tmp/xl-destroy.log 2>&1; then
		pass "dom0.noxs-xl-destroy - no noxsctl domain-destroy"
	else
		fail "dom0.noxs-xl-destroy: $(cat /tmp/xl-destroy.log)"
	fi
	if wait_for 60 noxs_released $REAP_DOMID; then
		pass "dom0.noxs-destroyed-domain-released - $(grep -m 1 "domain $REAP_DOMID .*releasing" /tmp/noxsd.log | sed 's/^[^:]*: //')"
	else
		fail "dom0.noxs-destroyed-domain-released: $(noxsctl domain-list 2>&1 | tr '\n' ' ')"
	fi
	if grep -q "domain $REAP_DOMID: sysctl device 0 removed" /tmp/sysctl-back.log; then
		pass dom0.noxs-destroyed-domain-backend-released
	else
		fail "dom0.noxs-destroyed-domain-backend-released: $(tail -n 5 /tmp/sysctl-back.log | tr '\n' ' ')"
	fi
	if wait_for 10 grep -q "^domain-released $REAP_DOMID\$" /tmp/noxs-watch.out; then
		pass "dom0.noxs-release-event - domain-released $REAP_DOMID"
	else
		fail "dom0.noxs-release-event: $(tr '\n' ' ' < /tmp/noxs-watch.out)"
	fi
	kill $watch_pid 2>/dev/null
	# The domid starts clean: a new registration has no device.
	if noxsctl domain-create $REAP_DOMID > /dev/null 2>&1 &&
		noxsctl domain-list | grep -Eq "^$REAP_DOMID +[0-9]+ +[0-9]+ +[0-9]+ +0\$"; then
		pass dom0.noxs-reused-domid-clean
	else
		fail "dom0.noxs-reused-domid-clean: $(noxsctl domain-list 2>&1 | tr '\n' ' ')"
	fi
	noxsctl domain-destroy $REAP_DOMID > /dev/null 2>&1
}
