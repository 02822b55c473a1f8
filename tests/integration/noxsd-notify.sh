#!/bin/bash
# noxsd under systemd (Type=notify): with $NOTIFY_SOCKET set it sends
# READY=1 once its control socket listens (a backend ordered after it
# can register at once), and without it nothing is sent.
. "$(dirname "$0")/../lib.sh"

ns=$NX_DIR/notify.sock
"$NX_TESTBIN/noxsd-probe" notify "$ns" >"$NX_DIR/notify.out" 2>&1 &
probe=$!
NX_PIDS+=("$probe")
nx_wait 200 "the notification socket" grep -q '^bound' "$NX_DIR/notify.out"

NOTIFY_SOCKET=$ns nx_start_noxsd
wait "$probe" || nx_fail "no notification: $(cat "$NX_DIR/notify.out")"
grep -q '^message READY=1' "$NX_DIR/notify.out" ||
	nx_fail "not READY=1: $(cat "$NX_DIR/notify.out")"
grep -q '^listening yes' "$NX_DIR/notify.out" ||
	nx_fail "READY=1 came before the control socket listened"
# The keeper (and anything else noxsd starts) must not inherit the socket.
kp=$(nx_keeper_pid)
[ -n "$kp" ] || nx_fail "no keeper"
tr '\0' '\n' <"/proc/$kp/environ" | grep -q '^NOXS_SOCKET=' ||
	nx_fail "cannot read the keeper's environment"
if tr '\0' '\n' <"/proc/$kp/environ" | grep -q '^NOTIFY_SOCKET='; then
	nx_fail "the keeper inherited NOTIFY_SOCKET"
fi
nx_stop_noxsd
nx_log "READY=1 after listen; the keeper did not inherit NOTIFY_SOCKET"

# A malformed address is reported and ignored: noxsd still runs.
NOTIFY_SOCKET=relative/path nx_start_noxsd
grep -q 'NOTIFY_SOCKET: not a socket address' "$NX_DIR/noxsd.log" ||
	nx_fail "a bad NOTIFY_SOCKET was not reported"
nx_stop_noxsd
nx_log "PASS"
