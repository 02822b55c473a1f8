#!/bin/bash
# compat-xs's local store answers as Debian's real xenstored does: the
# same script of requests (those of Debian's test-xenstore: read, write,
# directory, rm, transactions with EAGAIN; plus permissions, watches and
# error cases; tests/compat/lstore-ops.txt) through xenstored's socket
# and through the local store, outputs compared line by line.
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools

nx_log xenstored
xsd_start xenstored xenstored
"$COMPAT_DIR/lstore-replay" xsd "$COMPAT_DIR/lstore-ops.txt" \
	>"$NX_DIR/xenstored.out" || nx_fail "replay against xenstored"
xsd_stop xenstored

nx_log "local store"
"$COMPAT_DIR/lstore-replay" local "$NX_DIR/lstore" "$COMPAT_DIR/lstore-ops.txt" \
	>"$NX_DIR/local.out" || nx_fail "replay against the local store"

if ! diff -u "$NX_DIR/xenstored.out" "$NX_DIR/local.out"; then
	nx_fail "the local store answers differently from xenstored (above)"
fi
echo "PASS: $(grep -c . "$NX_DIR/local.out") requests answered as xenstored does"
