#!/bin/bash
# The harness itself: Debian's unmodified xenstored and oxenstored run
# here under xsshim.so, and Debian's unmodified clients talk to them.
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools

for daemon in xenstored oxenstored; do
	nx_log "$daemon"
	xsd_start $daemon $daemon
	xenstore-write /local/domain/7/device/vif/0/state 1 /local/domain/7/name g7 ||
		nx_fail "$daemon: xenstore-write"
	nx_expect_eq "$daemon read" "$(xenstore-read /local/domain/7/device/vif/0/state)" 1
	nx_expect_eq "$daemon ls" "$(xenstore-ls /local/domain/7 | tr '\n' '|')" \
		'device = ""| vif = ""|  0 = ""|   state = "1"|name = "g7"|'
	"$XEN_BIN/test-xenstore" -i 50 >"$NX_DIR/test-xenstore.$daemon" 2>&1 ||
		nx_fail "$daemon: test-xenstore: $(cat "$NX_DIR/test-xenstore.$daemon")"
	grep -q '^ta rmw' "$NX_DIR/test-xenstore.$daemon" || nx_fail "$daemon: test-xenstore output"
	"$COMPAT_DIR/xsd.sh" stop "$NX_DIR/$daemon"
done
echo ok
