#!/bin/bash
# compat-xs's xenstored client (compat-xs/xsd.c) against Debian's
# xenstored and oxenstored: every request kind, transactions, watches
# while another thread's request is in flight, domain introduction, and
# the daemon killed in mid-session (every call then fails ECONNRESET,
# none hangs).
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools
client=$COMPAT_DIR/xsdclient

nx_log "streams no daemon sends"
"$client" broken >"$NX_DIR/broken" 2>&1 || nx_fail "$(cat "$NX_DIR/broken")"

for daemon in xenstored oxenstored; do
	nx_log "$daemon"
	xsd_start $daemon $daemon
	"$client" all >"$NX_DIR/all.$daemon" 2>&1 ||
		nx_fail "$daemon: $(cat "$NX_DIR/all.$daemon")"

	nx_log "$daemon killed in mid-session"
	pid=$(cat "$NX_DIR/$daemon/daemon.pid")
	out=$NX_DIR/die.$daemon
	"$client" die "$NX_DIR/go.$daemon" >"$out" 2>&1 &
	cpid=$!
	nx_wait_line "$out" '^ready'
	# Stopped first, so the request below is in flight when it dies.
	kill -STOP "$pid"
	touch "$NX_DIR/go.$daemon"
	nx_wait_line "$out" '^sent'
	kill -9 "$pid"
	kill -CONT "$pid" 2>/dev/null || true
	wait "$cpid" || nx_fail "$daemon: $(cat "$out")"
	grep -q '^ok' "$out" || nx_fail "$daemon: $(cat "$out")"
	xsd_stop $daemon
done
echo ok
