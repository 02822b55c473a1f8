#!/bin/sh
# compat-xs's local store answers as Debian's real xenstored does: the
# same script of requests (those of Debian's test-xenstore: read, write,
# directory, rm, transactions with EAGAIN; plus permissions, watches and
# error cases; tests/compat/lstore-ops.txt) through xenstored's socket
# and through the local store, outputs compared line by line.
. "$(dirname "$0")/lib.sh"
need_xen_tools

note xenstored
xsd_start xenstored xenstored
"$COMPAT_DIR/lstore-replay" xsd "$COMPAT_DIR/lstore-ops.txt" \
	>"$WORK/xenstored.out" || fail "replay against xenstored"
xsd_stop xenstored

note "local store"
"$COMPAT_DIR/lstore-replay" local "$WORK/lstore" "$COMPAT_DIR/lstore-ops.txt" \
	>"$WORK/local.out" || fail "replay against the local store"

if ! diff -u "$WORK/xenstored.out" "$WORK/local.out"; then
	fail "the local store answers differently from xenstored (above)"
fi
echo "PASS: $(grep -c . "$WORK/local.out") requests answered as xenstored does"
