#!/bin/bash
# Console byte stream: 10 MB each way at the same time, byte for byte
# (guest output to an attached client and to the backend's log file,
# client input to the guest), through rings much smaller than the data.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_console_back --log-dir "$NX_DIR"
boot=$(nx_domain 1)
N=$((10 << 20))
head -c $N /dev/urandom >"$NX_DIR/guest-out"
head -c $N /dev/urandom >"$NX_DIR/client-in"

noxsctl dev-add 1 console 0 >/dev/null || nx_fail "dev-add console"
# The guest writes guest-out and reads exactly N bytes of input.
nx_spawn 1 "$boot" "$NX_BIN/noxs-console-front" -- sh -c \
	"cat '$NX_DIR/guest-out' & head -c $N >'$NX_DIR/guest-in'; wait" \
	>"$NX_DIR/front.log" 2>&1
fe=$NX_PID
nx_wait 400 "the console socket" test -S "$NOXS_CONSOLE_DIR/console-1.0.sock"
"$NX_BIN/noxs-console" -n $N 1 <"$NX_DIR/client-in" >"$NX_DIR/client-out" ||
	nx_fail "client"
nx_exit_status "$fe" 1200
st=$NX_STATUS
[ "$st" = 0 ] || nx_fail "frontend exit status $st"
cmp "$NX_DIR/guest-out" "$NX_DIR/client-out" || nx_fail "guest -> client stream differs"
cmp "$NX_DIR/client-in" "$NX_DIR/guest-in" || nx_fail "client -> guest stream differs"
nx_wait 200 "the log to hold everything" test "$(stat -c %s "$NX_DIR/console-1.0.log")" -ge $N
cmp "$NX_DIR/guest-out" "$NX_DIR/console-1.0.log" || nx_fail "log file differs"
nx_log "10 MB each way byte for byte, log file identical"

# Log rotation: logrotate moves the log away and sends SIGHUP; the
# backend reopens it (a new, empty file) and the next output goes there.
mv "$NX_DIR/console-1.0.log" "$NX_DIR/console-1.0.log.1"
kill -HUP "$NX_CONSBACK"
nx_wait 200 "the backend to reopen its logs" \
	grep -q 'SIGHUP: reopened 1 console log' "$NX_DIR/console-back.log"
[ -f "$NX_DIR/console-1.0.log" ] || nx_fail "no new log file after SIGHUP"
nx_spawn 1 "$boot" "$NX_BIN/noxs-console-front" -- sh -c 'echo after-rotate' \
	>"$NX_DIR/front2.log" 2>&1
nx_exit_status "$NX_PID" 400
[ "$NX_STATUS" = 0 ] || nx_fail "second frontend exit status $NX_STATUS"
nx_wait 200 "the new output in the new log" grep -q after-rotate "$NX_DIR/console-1.0.log"
cmp -s "$NX_DIR/guest-out" "$NX_DIR/console-1.0.log.1" || nx_fail "the rotated log changed"
nx_alive "$NX_CONSBACK" || nx_fail "the backend died of SIGHUP"
nx_log "SIGHUP reopened the log: new output in the new file, the old one intact"
