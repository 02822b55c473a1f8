#!/bin/sh
# The harness itself: Debian's unmodified xenstored and oxenstored run
# here under xsshim.so, and Debian's unmodified clients talk to them.
. "$(dirname "$0")/lib.sh"
need_xen_tools

for daemon in xenstored oxenstored; do
	note "$daemon"
	xsd_start $daemon $daemon
	xenstore-write /local/domain/7/device/vif/0/state 1 /local/domain/7/name g7 ||
		fail "$daemon: xenstore-write"
	expect_eq "$daemon read" "$(xenstore-read /local/domain/7/device/vif/0/state)" 1
	expect_eq "$daemon ls" "$(xenstore-ls /local/domain/7 | tr '\n' '|')" \
		'device = ""| vif = ""|  0 = ""|   state = "1"|name = "g7"|'
	"$XEN_BIN/test-xenstore" -i 50 >"$WORK/test-xenstore.$daemon" 2>&1 ||
		fail "$daemon: test-xenstore: $(cat "$WORK/test-xenstore.$daemon")"
	grep -q '^ta rmw' "$WORK/test-xenstore.$daemon" || fail "$daemon: test-xenstore output"
	"$COMPAT_DIR/xsd.sh" stop "$WORK/$daemon"
done
echo ok
