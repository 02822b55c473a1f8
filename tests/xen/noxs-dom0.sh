# The noxs part of dom0's /init (sourced by init-dom0 when the images were
# built with noxs). Uses pass/fail/stage/wait_for/finish and GUEST_DOMID
# from init-dom0; adds the bootstrap word to $extra.

NOXS_STATE=/run/noxs
export NOXS_SOCKET=$NOXS_STATE/noxsd.sock

# noxsd runs in the foreground (-d); the process we start is the worker,
# which forks the page keeper on first start and reattaches to it later.
noxsd_start() {
	noxsd -d --socket $NOXS_SOCKET --state-dir $NOXS_STATE >> /tmp/noxsd.log 2>&1 &
	noxsd_pid=$!
	wait_for 30 noxsctl status > /dev/null 2>&1
}

# A field of `noxsctl status --json` ("name": N).
status_field() {
	noxsctl status --json 2>/dev/null | tr ',{}' '\n\n\n' |
		sed -n "s/^ *\"$1\" *: *\([0-9]*\).*/\1/p" | head -n 1
}

dev_state_line() { noxsctl dev-list 2>/dev/null | grep -i sysctl | head -n 1; }
dev_connected() { dev_state_line | grep -q 'Connected.*Connected'; }

noxs_before_guest() {
	stage "noxsd"
	mkdir -p $NOXS_STATE
	if noxsd_start; then pass dom0.noxsd-up; else fail "dom0.noxsd-up"; tail -n 20 /tmp/noxsd.log; return; fi
	noxs-sysctl-back -d -v --socket $NOXS_SOCKET >> /tmp/sysctl-back.log 2>&1 &
	sysctl_back_pid=$!
	boot=$(noxsctl domain-create $GUEST_DOMID 2>/tmp/domain-create.err)
	case $boot in
	noxs=*:*:*) pass "dom0.noxs-domain-create - $boot"; extra="$extra $boot" ;;
	*) fail "dom0.noxs-domain-create: '$boot' $(cat /tmp/domain-create.err)" ;;
	esac
	# A request for a domain noxsd does not know must fail cleanly.
	if noxsctl dev-add 77 sysctl 0 > /tmp/bad.out 2>&1; then
		fail "dom0.noxs-unknown-domain-refused: dev-add 77 succeeded"
	else
		pass "dom0.noxs-unknown-domain-refused - $(head -n 1 /tmp/bad.out)"
	fi
}

noxs_with_guest() {
	stage "noxs-dev-add"
	if noxsctl dev-add $GUEST_DOMID sysctl 0 > /tmp/dev-add.out 2>&1; then
		pass dom0.noxs-dev-add
	else
		fail "dom0.noxs-dev-add: $(cat /tmp/dev-add.out)"
	fi
	# The guest runs its probes first, then its sysctl frontend connects.
	if wait_for 240 dev_connected; then
		pass "dom0.noxs-guest-connected - $(dev_state_line)"
	else
		fail "dom0.noxs-guest-connected: $(dev_state_line)"; noxsctl dev-list
	fi
	stage "noxs-kill-worker"
	before=$(noxsctl dev-list 2>&1)
	keeper=$(status_field keeper_pid)
	if [ "$(status_field pid)" = "$noxsd_pid" ] && kill -9 "$noxsd_pid"; then
		pass "dom0.noxsd-killed - kill -9 worker $noxsd_pid (keeper $keeper)"
	else
		fail "dom0.noxsd-killed: worker pid $noxsd_pid, status says $(status_field pid)"
		kill -9 "$noxsd_pid"
	fi
	wait "$noxsd_pid" 2>/dev/null
	# While the worker is down, the connected device lives on its pages.
	sleep 1
	if noxsd_start && [ "$(status_field keeper_pid)" = "$keeper" ]; then
		pass "dom0.noxsd-restarted - worker $noxsd_pid, same keeper $keeper"
	else
		fail "dom0.noxsd-restarted: keeper now '$(status_field keeper_pid)', was $keeper"; tail -n 20 /tmp/noxsd.log
	fi
	after=$(noxsctl dev-list 2>&1)
	if [ "$before" = "$after" ] && dev_connected; then
		pass "dom0.noxs-restart-lost-nothing - $(dev_state_line)"
	else
		fail "dom0.noxs-restart-lost-nothing: before: $before / after: $after"
	fi
	noxsctl status --json | sed 's/^/note: status: /'
	stage "noxs-shutdown"
	if noxsctl shutdown $GUEST_DOMID --reason poweroff --wait 60 > /tmp/shutdown.out 2>&1; then
		pass "dom0.noxs-shutdown-acked - $(head -n 1 /tmp/shutdown.out)"
	else
		fail "dom0.noxs-shutdown-acked: $(cat /tmp/shutdown.out)"
	fi
}

noxs_timing() {
	/bin/noxs-handshake "$HS_ITER" > /tmp/hs-noxs.out 2>&1
	cat /tmp/hs-noxs.out
	xs=$(sed -n 's/^HANDSHAKE xenstored median_us=\([0-9]*\).*/\1/p' /tmp/hs-xs.out)
	nx=$(sed -n 's/^HANDSHAKE noxs median_us=\([0-9]*\).*/\1/p' /tmp/hs-noxs.out)
	if [ -n "$xs" ] && [ -n "$nx" ] && [ "$nx" -gt 0 ]; then
		echo "RATIO handshake xenstored/noxs = $(awk "BEGIN { printf \"%.1f\", $xs / $nx }") (medians ${xs}us / ${nx}us, n=$HS_ITER, same QEMU run)"
	fi
	echo "----- noxsd log -----"
	tail -n 30 /tmp/noxsd.log
	echo "----- sysctl-back log -----"
	tail -n 30 /tmp/sysctl-back.log
}
