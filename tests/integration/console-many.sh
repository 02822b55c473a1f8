#!/bin/bash
# One busy console among many idle ones: the backend's wake-ups visit the
# consoles whose fds fired, not every console. The backend logs at exit
# how many wake-ups it had and how many console visits they made; with
# 40 idle consoles (some Connected, some never connected) and 1 MB
# streamed through one other, the visits stay near one per wake-up
# where a loop over every console makes over 40. Also: a console removed
# while a client is attached lets the client go and leaves the others
# working.
. "$(dirname "$0")/../lib.sh"

IDLE=40
CONNECTED=4 # idle consoles with a frontend (devids 1..CONNECTED)
nx_start_noxsd
nx_start_console_back
boot=$(nx_domain 1)
for ((i = 0; i <= IDLE; i++)); do
	noxsctl dev-add 1 console $i >/dev/null || nx_fail "dev-add console $i"
done
# Idle guests: cat reads console input that never comes. (Their output
# files are not *.log: a failure then shows the backend's last lines,
# which end with its counts.)
for ((i = 1; i <= CONNECTED; i++)); do
	nx_spawn 1 "$boot" "$NX_BIN/noxs-console-front" -d $i -- cat \
		>"$NX_DIR/front$i.out" 2>&1
	nx_wait 400 "console $i to connect" \
		grep -q "console $i: connected" "$NX_DIR/console-back.log"
done

# Removal with a client attached: the client sees the end, the backend
# goes on (its fds leave the set before they are closed).
mkfifo "$NX_DIR/hold"
"$NX_BIN/noxs-console" 1 1 <"$NX_DIR/hold" >/dev/null 2>&1 &
client=$!
NX_PIDS+=("$client")
exec 9>"$NX_DIR/hold"
nx_wait 200 "the client to attach" \
	grep -q 'console 1: client attached' "$NX_DIR/console-back.log"
noxsctl dev-rm 1 console 1 >"$NX_DIR/rm.out" 2>&1 ||
	nx_fail "dev-rm with a client attached: $(cat "$NX_DIR/rm.out")"
nx_exit_status "$client" 400
[ "$NX_STATUS" != timeout ] || nx_fail "the client of a removed console stayed"
exec 9>&-
nx_alive "$NX_CONSBACK" || nx_fail "the backend died removing a console"
nx_log "console removed with a client attached: the client left"

# The busy console: 1 MB of guest output through a 16 KiB ring and the
# 64 KiB buffer, so it takes many wake-ups.
N=$((1 << 20))
head -c $N /dev/urandom >"$NX_DIR/data"
nx_spawn 1 "$boot" "$NX_BIN/noxs-console-front" -- cat "$NX_DIR/data" \
	>"$NX_DIR/front0.out" 2>&1
fe=$NX_PID
"$NX_BIN/noxs-console" -n $N 1 </dev/null >"$NX_DIR/got" || nx_fail "client"
cmp "$NX_DIR/data" "$NX_DIR/got" || nx_fail "the busy console's stream differs"
nx_exit_status "$fe" 600
[ "$NX_STATUS" = 0 ] || nx_fail "busy guest exit status $NX_STATUS"

kill -TERM "$NX_CONSBACK"
nx_exit_status "$NX_CONSBACK" 400
[ "$NX_STATUS" = 0 ] || nx_fail "backend exit status $NX_STATUS"
line=$(grep -o '[0-9]* wake-ups, [0-9]* console visits' "$NX_DIR/console-back.log")
[ -n "$line" ] || nx_fail "the backend did not count its wake-ups and visits"
read -r wakeups _ visits _ <<<"$line"
nx_log "$wakeups wake-ups, $visits console visits, $((IDLE + 1)) consoles"
[ "$wakeups" -ge 16 ] || nx_fail "only $wakeups wake-ups for 1 MB through 64 KiB"
# Counts, not times: a visit per console and wake-up would be over 40.
[ "$visits" -le $((2 * wakeups)) ] ||
	nx_fail "$visits visits in $wakeups wake-ups: idle consoles were visited"
nx_log "wake-ups visit only the consoles that fired"
