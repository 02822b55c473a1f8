#!/bin/bash
# A guest flipping its state as fast as it can (valid halves) must not
# turn into one event per flip through noxsd to every watcher: the
# backend reports each device's state at most 40 times a second (after a
# burst of 4), yet the final state is always delivered. The bound checked
# is that rate over the time the guest took (measured generously: a slow
# machine only raises it), so the check does not depend on the speed of
# the machine the way a count of flips would.
. "$(dirname "$0")/sysctl-lib.sh"

PROBE=$T_BUILD/tests/hostile-front
FLIPS=${FLIPS:-5000}
t_start_noxsd
t_start_backend

"$T_BIN/noxsctl" watch 1 >"$T_DIR/watch.out" 2>"$T_DIR/watch.err" &
watcher=$!
T_PIDS+=("$watcher")
boot=$(t_domain 1)
noxsctl dev-add 1 sysctl 0 >/dev/null || t_fail "dev-add 1"
t_wait 200 "the watcher to see the device" grep -q '^dev-added 1 ' "$T_DIR/watch.out"

# Flip up to FLIPS times (at most 60 s), then settle on Connected (4). A
# short pause between flips lets the backend see each one (flips faster
# than it reads merge on the page), as a guest pacing itself would.
NOXS_SIM_DOMID=1 NOXS_BOOT=$boot HOSTILE_SLEEP_US=${HOSTILE_SLEEP_US:-100} \
	"$PROBE" 1 0 flip 60 "$FLIPS" 4 120 \
	>"$T_DIR/flip.log" 2>&1 &
T_PIDS+=("$!")
t_wait 1800 "the flipping guest to finish" grep -q '^flips:' "$T_DIR/flip.log"
flips=$(sed -n 's/^flips: \([0-9]*\) .*/\1/p' "$T_DIR/flip.log")

# The final state reaches noxsd and the watcher.
t_wait 400 "noxsd to show the final states" t_connected 1
last_is_final() {
	[ "$(grep '^dev-state 1 ' "$T_DIR/watch.out" | tail -n 1 |
		sed 's/.* state //')" = "Connected/Connected" ]
}
t_wait 400 "the watcher to get the final states" last_is_final
kill -0 "$watcher" 2>/dev/null || t_fail "the watcher was dropped"

events=$(grep -c '^dev-state 1 ' "$T_DIR/watch.out")
secs=$(sed -n 's/^flips: .* seconds: \([0-9.]*\)$/\1/p' "$T_DIR/flip.log")
# 4 + 40/s, plus a quarter and 10 events for the final report and slack.
max=$(awk -v s="$secs" 'BEGIN { printf "%d", 10 + (4 + 40 * s) * 1.25 }')
t_log "$flips flips in $secs s, $events dev-state events (at most $max)"
[ "$flips" -ge 500 ] || t_fail "only $flips flips: the guest did not flip"
[ "$events" -le "$max" ] ||
	t_fail "$events dev-state events for $flips flips in $secs s: not rate-limited"
