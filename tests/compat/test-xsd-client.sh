#!/bin/sh
# compat-xs's xenstored client (compat-xs/xsd.c) against Debian's
# xenstored and oxenstored: every request kind, transactions, watches
# while another thread's request is in flight, domain introduction, and
# the daemon killed in mid-session (every call then fails ECONNRESET,
# none hangs).
. "$(dirname "$0")/lib.sh"
need_xen_tools
client=$COMPAT_DIR/xsdclient

note "streams no daemon sends"
"$client" broken >"$WORK/broken" 2>&1 || fail "$(cat "$WORK/broken")"

for daemon in xenstored oxenstored; do
	note "$daemon"
	xsd_start $daemon $daemon
	"$client" all >"$WORK/all.$daemon" 2>&1 ||
		fail "$daemon: $(cat "$WORK/all.$daemon")"

	note "$daemon killed in mid-session"
	pid=$(cat "$WORK/$daemon/daemon.pid")
	out=$WORK/die.$daemon
	"$client" die "$WORK/go.$daemon" >"$out" 2>&1 &
	cpid=$!
	wait_line "$out" '^ready'
	# Stopped first, so the request below is in flight when it dies.
	kill -STOP "$pid"
	touch "$WORK/go.$daemon"
	wait_line "$out" '^sent'
	kill -9 "$pid"
	kill -CONT "$pid" 2>/dev/null || true
	wait "$cpid" || fail "$daemon: $(cat "$out")"
	grep -q '^ok' "$out" || fail "$daemon: $(cat "$out")"
	xsd_stop $daemon
done
echo ok
