#!/bin/bash
# A guest's bootstrap from its own XenStore directory: with no
# $NOXS_BOOT and no noxs= word on the command line, libnoxs reads the
# key "noxs" (relative: /local/domain/<self>/noxs) with one READ through
# the xenbus device, here $NOXS_XENBUS_PATH on Debian's xenstored and
# oxenstored (the socket serves dom0, so the key is /local/domain/0/noxs).
# The command line still wins when it has the word; a missing device or
# key, a daemon that does not answer, or a malformed value is a clean
# error, not a hang.
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools
boot=$COMPAT_DIR/xsdboot
unset NOXS_BOOT

# find CMDLINE: xsdboot's output with /proc/cmdline reading CMDLINE (a
# private mount namespace, so the host's line does not matter). Bounded.
find_boot() {
	printf '%s\n' "$1" >"$NX_DIR/cmdline"
	timeout 60 unshare --mount --propagation private sh -c \
		"mount --bind '$NX_DIR/cmdline' /proc/cmdline && exec '$boot'" || true
}

for daemon in xenstored oxenstored; do
	nx_log "$daemon"
	xsd_start $daemon $daemon
	export NOXS_XENBUS_PATH=$XENSTORED_PATH
	nx_expect_eq "$daemon: no key" "$(find_boot 'ro quiet')" ENOENT
	xenstore-write /local/domain/0/noxs noxs=0:8:5
	nx_expect_eq "$daemon: key" "$(find_boot 'ro quiet')" noxs=0:8:5
	nx_expect_eq "$daemon: command line wins" \
		"$(find_boot 'ro noxs=0:9:6 quiet')" noxs=0:9:6
	nx_expect_eq "$daemon: \$NOXS_BOOT wins" \
		"$(NOXS_BOOT=noxs=3:10:7 find_boot 'ro noxs=0:9:6')" noxs=3:10:7
	xenstore-write /local/domain/0/noxs 0:12:4
	nx_expect_eq "$daemon: bare triple" "$(find_boot 'ro quiet')" noxs=0:12:4
	xenstore-write /local/domain/0/noxs 'noxs=0:1:x'
	nx_expect_eq "$daemon: malformed" "$(find_boot 'ro quiet')" EINVAL
	xenstore-rm /local/domain/0/noxs
	nx_expect_eq "$daemon: removed" "$(find_boot 'ro quiet')" ENOENT

	# A daemon that never answers: bounded by the 5 s wait.
	xenstore-write /local/domain/0/noxs noxs=0:8:5
	pid=$(cat "$NX_DIR/$daemon/daemon.pid")
	kill -STOP "$pid"
	got=$(find_boot 'ro quiet')
	kill -CONT "$pid"
	nx_expect_eq "$daemon: stopped daemon" "$got" ETIMEDOUT
	nx_expect_eq "$daemon: after" "$(find_boot 'ro quiet')" noxs=0:8:5
	xsd_stop $daemon
done

nx_log "no device"
export NOXS_XENBUS_PATH=$NX_DIR/none
nx_expect_eq "no device" "$(find_boot 'ro quiet')" ENOENT
nx_log "a device that is not a daemon"
: >"$NX_DIR/plain"
export NOXS_XENBUS_PATH=$NX_DIR/plain
nx_expect_eq "plain file" "$(find_boot 'ro quiet')" ENOENT
echo ok
