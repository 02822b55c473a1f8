# The noxs-only dom0 (sourced by init-dom0 when dom0's kernel command
# line says noxs_lane=noxs-only): no xenstored process at any time. Every
# dom0 program that links libxenstore.so.4 runs on compat-xs in local
# mode (the generic tree in the local store, /etc/noxs/compat-xs.conf);
# noxs-xsringd answers dom0's kernel connection (blkback, /dev/xen/xenbus)
# and each guest's store ring from that store; noxsd holds VIRQ_DOM_EXC
# and the noxs devices. Then the xl stages (xl-stages.sh) run as on the
# mixed dom0: a stock guest (its kernel's blkfront to dom0's kernel
# blkback, balloon, shutdown, reboot, console) and a noxs guest, both
# created by unmodified xl.
#
# The checks read XenStore with Debian's own tools on Debian's library,
# which, finding no xenstored socket, go through /dev/xen/xenbus: dom0's
# kernel, its ring, noxs-xsringd. A library that hid a leftover from
# itself could not pass.
# Uses pass/fail/stage/wait_for/finish from init-dom0, noxsd_start and
# noxs_start_data_backends from noxs-dom0.sh, xl_cfg and xl_stages from
# xl-stages.sh.

NOXS_XS_DIR=/var/lib/noxs/xenstore
RINGD_LOG=/tmp/xsringd.log

xenstored_absent() { ! pidof xenstored > /dev/null 2>&1 && [ ! -S /var/run/xenstored/socket ]; }

ringd_start() {
	noxs-xsringd > /dev/null 2>> $RINGD_LOG &
	ringd_pid=$!
	ringd_serving() { grep -q 'serving .* rings' $RINGD_LOG; }
	wait_for 30 ringd_serving
}

# Debian's xenstore-read, on Debian's library (the kernel's connection).
deb_read() { env -u LD_LIBRARY_PATH xenstore-read "$@"; }

noxs_only_main() {
	stage "noxs-only-dom0"
	if xenstored_absent; then pass "noxs-only.no-xenstored"; else fail "noxs-only.no-xenstored: $(pidof xenstored)"; fi
	# compat-xs in local mode, chosen by its configuration file.
	mkdir -p /etc/noxs $NOXS_XS_DIR
	printf '# the lane: no xenstored on this dom0\nmode = local\n' > /etc/noxs/compat-xs.conf

	mkdir -p $NOXS_STATE
	if noxsd_start; then pass noxs-only.noxsd-up; else fail noxs-only.noxsd-up; tail -n 20 /tmp/noxsd.log; finish; fi
	grep -q 'watching domain deaths through VIRQ_DOM_EXC' /tmp/noxsd.log &&
		pass "noxs-only.noxsd-holds-virq-dom-exc" ||
		fail "noxs-only.noxsd-holds-virq-dom-exc: $(grep -i virq /tmp/noxsd.log | tail -n 1)"

	# xen-init-dom0 on compat-xs writes dom0's name, domid and the pool
	# into the local store (read back below, once the ring service runs).
	stage "noxs-only-init-dom0"
	timeout 300 env LD_LIBRARY_PATH=$CXS_DIR xen-init-dom0 > /tmp/init-dom0.out 2>&1 ||
		fail "noxs-only.xen-init-dom0: $(tail -n 5 /tmp/init-dom0.out | tr '\n' ' ')"

	# Before the ring service: a guest that needs a store ring is
	# refused at create, with a message, rather than left hanging.
	stage "noxs-only-refusal"
	xl_cfg refused "" ""
	if timeout 300 env LD_LIBRARY_PATH=$CXS_DIR xl create /etc/xen/refused.cfg > /tmp/xl-refused.out 2>&1; then
		fail "noxs-only.ring-guest-refused-without-service: xl create succeeded"
		env LD_LIBRARY_PATH=$CXS_DIR xl destroy refused > /dev/null 2>&1
	elif grep -q noxs-xsringd /tmp/xl-refused.out; then
		pass "noxs-only.ring-guest-refused-without-service - $(grep -m 1 noxs-xsringd /tmp/xl-refused.out | cut -c1-160)"
	else
		fail "noxs-only.ring-guest-refused-without-service: $(tail -n 4 /tmp/xl-refused.out | tr '\n' ' ')"
	fi
	no_refused() { ! env LD_LIBRARY_PATH=$CXS_DIR xl domid refused > /dev/null 2>&1; }
	wait_for 60 no_refused || fail "noxs-only.refused-guest-gone: $(env LD_LIBRARY_PATH=$CXS_DIR xl list 2>&1 | tr '\n' ' ')"

	stage "noxs-only-xsringd"
	if ringd_start; then
		pass "noxs-only.xsringd-up - $(grep -m 1 'serving' $RINGD_LOG)"
	else
		fail "noxs-only.xsringd-up: $(tail -n 5 $RINGD_LOG | tr '\n' ' ')"; finish
	fi
	if grep -q "serving dom0's kernel connection" $RINGD_LOG; then
		pass "noxs-only.dom0-kernel-connection - $(grep -m 1 "kernel connection" $RINGD_LOG)"
	else
		fail "noxs-only.dom0-kernel-connection: $(tail -n 5 $RINGD_LOG | tr '\n' ' ')"
	fi

	# Debian's xenstore-read reads what xen-init-dom0 wrote, through
	# dom0's kernel and the ring service.
	if [ "$(deb_read /local/domain/0/name 2>/dev/null)" = Domain-0 ] &&
		[ "$(deb_read /local/pool/0/name 2>/dev/null)" = Pool-0 ]; then
		pass "noxs-only.xen-init-dom0 - read back by Debian's xenstore-read through dom0's kernel"
	else
		fail "noxs-only.xen-init-dom0: name '$(deb_read /local/domain/0/name 2>&1)' pool '$(deb_read /local/pool/0/name 2>&1)'"
	fi
	LD_LIBRARY_PATH=$CXS_DIR xenconsoled --pid-file=/run/xenconsoled.pid --log=guest \
		--log-dir=/var/log/xen/console || fail "noxs-only.xenconsoled"

	nocaps noxs-sysctl-back -d -v --socket $NOXS_SOCKET >> /tmp/sysctl-back.log 2>&1 &
	sysctl_back_pid=$!
	noxs_start_data_backends

	# The xl stages, as on the mixed dom0; no xenstored to trace.
	XS_TRACE=0 XL_BOOT_TMO=300
	xl_stages

	stage "noxs-only-end"
	if xenstored_absent; then pass "noxs-only.still-no-xenstored"; else fail "noxs-only.still-no-xenstored"; fi
	if kill -0 $ringd_pid 2> /dev/null; then
		pass noxs-only.xsringd-alive
	else
		fail "noxs-only.xsringd-alive: $(tail -n 5 $RINGD_LOG | tr '\n' ' ')"
	fi
	sed 's/^/INFO xsringd: /' $RINGD_LOG | tail -n 15
}
