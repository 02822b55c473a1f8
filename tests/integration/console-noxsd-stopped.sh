#!/bin/bash
# A stopped (not dead) noxsd must not freeze a backend. With noxsd
# SIGSTOPped while guests flip the states of their console devices, the
# state reports fill the backend's socket; the backend queues and
# coalesces them instead of blocking in send(), so an honest guest's
# console keeps echoing. Once noxsd runs again it gets the final state
# of every device.
. "$(dirname "$0")/../lib.sh"

PROBE=$NX_BUILD/tests/hostile-front
NFLIP=8
nx_start_noxsd
noxsd=${NX_PIDS[-1]}
nx_start_console_back

echo_ok() {
	local out
	out=$(printf 'ping %s\n' "$1" | timeout 20 "$NX_BIN/noxs-console" -n 7 1 0) ||
		nx_fail "echo $1: noxs-console failed"
	[ "$out" = "ping $1" ] || nx_fail "echo $1: got '$out'"
}

boot1=$(nx_domain 1)
noxsctl dev-add 1 console 0 >/dev/null || nx_fail "dev-add 1 console 0"
nx_spawn 1 "$boot1" "$NX_BIN/noxs-console-front" -- cat >"$NX_DIR/front1.log" 2>&1
nx_wait 400 "the echo console to connect" \
	grep -q 'domain 1 console 0: connected' "$NX_DIR/console-back.log"
echo_ok 1

boot2=$(nx_domain 2)
for ((i = 0; i < NFLIP; i++)); do
	noxsctl dev-add 2 console $i >/dev/null || nx_fail "dev-add 2 console $i"
done
kill -STOP "$noxsd"
# The guest flips its consoles for 6 s, then settles them on Initialising
# (1) and stays.
NOXS_SIM_DOMID=2 NOXS_BOOT=$boot2 HOSTILE_SLEEP_US=1000 \
	"$PROBE" 2 0-$((NFLIP - 1)) flip 6 100000000 1 300 >"$NX_DIR/flip.log" 2>&1 &
NX_PIDS+=("$!")
sleep 3 # not a timing assertion: lets the flips fill noxsd's socket
echo_ok 2
nx_wait 400 "the backend to find noxsd's socket full" \
	grep -q 'noxsd is not reading' "$NX_DIR/console-back.log"
echo_ok 3
nx_wait 600 "the flipping guest to finish" grep -q '^flips:' "$NX_DIR/flip.log"
echo_ok 4
nx_alive "$noxsd" || nx_fail "noxsd died"
[ "$(ps -o stat= -p "$noxsd" | cut -c1)" = T ] || nx_fail "noxsd is not stopped"
nx_log "noxsd stopped: the backend queued its reports and kept echoing"

kill -CONT "$noxsd"
nx_wait 400 "the backend to flush what waited" \
	grep -q 'noxsd reads again' "$NX_DIR/console-back.log"
final_states() {
	[ "$(noxsctl dev-list 2 | grep -Ec 'InitWait +Initialising$')" = $NFLIP ]
}
nx_wait 400 "noxsd to get the final state of every device" final_states
echo_ok 5
nx_log "noxsd resumed: final states of $NFLIP flipping devices delivered"
