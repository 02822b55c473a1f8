#!/bin/bash
# A guest flipping its state as fast as it can (valid halves) must not
# turn into one event per flip through noxsd to every watcher: the
# backend reports each device's state at most 40 times a second (after a
# burst of 4), yet the final state is always delivered. The bound checked
# is that rate over the time the guest took (measured generously: a slow
# machine only raises it), so the check does not depend on the speed of
# the machine the way a count of flips would.
. "$(dirname "$0")/../lib.sh"

PROBE=$NX_BUILD/tests/hostile-front
FLIPS=${FLIPS:-5000}
nx_start_noxsd
nx_start_sysctl_back

"$NX_BIN/noxsctl" watch 1 >"$NX_DIR/watch.out" 2>"$NX_DIR/watch.err" &
watcher=$!
NX_PIDS+=("$watcher")
boot=$(nx_domain 1)
noxsctl dev-add 1 sysctl 0 >/dev/null || nx_fail "dev-add 1"
nx_wait 200 "the watcher to see the device" grep -q '^dev-added 1 ' "$NX_DIR/watch.out"

# Flip up to FLIPS times (at most 60 s), then settle on Connected (4). A
# short pause between flips lets the backend see each one (flips faster
# than it reads merge on the page), as a guest pacing itself would.
NOXS_SIM_DOMID=1 NOXS_BOOT=$boot HOSTILE_SLEEP_US=${HOSTILE_SLEEP_US:-100} \
	"$PROBE" 1 0 flip 60 "$FLIPS" 4 120 \
	>"$NX_DIR/flip.log" 2>&1 &
NX_PIDS+=("$!")
nx_wait 1800 "the flipping guest to finish" grep -q '^flips:' "$NX_DIR/flip.log"
flips=$(sed -n 's/^flips: \([0-9]*\) .*/\1/p' "$NX_DIR/flip.log")

# The final state reaches noxsd and the watcher.
nx_wait 400 "noxsd to show the final states" nx_dev_connected 1
last_is_final() {
	[ "$(grep '^dev-state 1 ' "$NX_DIR/watch.out" | tail -n 1 |
		sed 's/.* state //')" = "Connected/Connected" ]
}
nx_wait 400 "the watcher to get the final states" last_is_final
kill -0 "$watcher" 2>/dev/null || nx_fail "the watcher was dropped"

events=$(grep -c '^dev-state 1 ' "$NX_DIR/watch.out")
secs=$(sed -n 's/^flips: .* seconds: \([0-9.]*\)$/\1/p' "$NX_DIR/flip.log")
# 4 + 40/s, plus a quarter and 10 events for the final report and slack.
max=$(awk -v s="$secs" 'BEGIN { printf "%d", 10 + (4 + 40 * s) * 1.25 }')
nx_log "$flips flips in $secs s, $events dev-state events (at most $max)"
[ "$flips" -ge 500 ] || nx_fail "only $flips flips: the guest did not flip"
[ "$events" -le "$max" ] ||
	nx_fail "$events dev-state events for $flips flips in $secs s: not rate-limited"
