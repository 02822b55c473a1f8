#!/bin/bash
# Console byte stream: 10 MB each way at the same time, byte for byte
# (guest output to an attached client and to the backend's log file,
# client input to the guest), through rings much smaller than the data.
. "$(dirname "$0")/blk-lib.sh"

t_start_noxsd
t_start_console_back --log-dir "$T_DIR"
boot=$(t_domain 1)
N=$((10 << 20))
head -c $N /dev/urandom >"$T_DIR/guest-out"
head -c $N /dev/urandom >"$T_DIR/client-in"

noxsctl dev-add 1 console 0 >/dev/null || t_fail "dev-add console"
# The guest writes guest-out and reads exactly N bytes of input.
t_spawn 1 "$boot" "$T_BIN/noxs-console-front" -- sh -c \
	"cat '$T_DIR/guest-out' & head -c $N >'$T_DIR/guest-in'; wait" \
	>"$T_DIR/front.log" 2>&1
fe=$T_PID
t_wait 400 "the console socket" test -S "$NOXS_CONSOLE_DIR/console-1.0.sock"
"$T_BIN/noxs-console" -n $N 1 <"$T_DIR/client-in" >"$T_DIR/client-out" ||
	t_fail "client"
t_exit_status "$fe" 1200
st=$T_STATUS
[ "$st" = 0 ] || t_fail "frontend exit status $st"
cmp "$T_DIR/guest-out" "$T_DIR/client-out" || t_fail "guest -> client stream differs"
cmp "$T_DIR/client-in" "$T_DIR/guest-in" || t_fail "client -> guest stream differs"
t_wait 200 "the log to hold everything" test "$(stat -c %s "$T_DIR/console-1.0.log")" -ge $N
cmp "$T_DIR/guest-out" "$T_DIR/console-1.0.log" || t_fail "log file differs"
t_log "10 MB each way byte for byte, log file identical"

# Log rotation: logrotate moves the log away and sends SIGHUP; the
# backend reopens it (a new, empty file) and the next output goes there.
mv "$T_DIR/console-1.0.log" "$T_DIR/console-1.0.log.1"
kill -HUP "$T_CONSBACK"
t_wait 200 "the backend to reopen its logs" \
	grep -q 'SIGHUP: reopened 1 console log' "$T_DIR/console-back.log"
[ -f "$T_DIR/console-1.0.log" ] || t_fail "no new log file after SIGHUP"
t_spawn 1 "$boot" "$T_BIN/noxs-console-front" -- sh -c 'echo after-rotate' \
	>"$T_DIR/front2.log" 2>&1
t_exit_status "$T_PID" 400
[ "$T_STATUS" = 0 ] || t_fail "second frontend exit status $T_STATUS"
t_wait 200 "the new output in the new log" grep -q after-rotate "$T_DIR/console-1.0.log"
cmp -s "$T_DIR/guest-out" "$T_DIR/console-1.0.log.1" || t_fail "the rotated log changed"
t_alive "$T_CONSBACK" || t_fail "the backend died of SIGHUP"
t_log "SIGHUP reopened the log: new output in the new file, the old one intact"
