#!/bin/sh
# The legacy driver pair (xs_* only) against Debian's real xenstored and
# oxenstored: toolstack writes the nodes in one transaction, backend goes
# InitWait, frontend publishes rings in a transaction and goes Connected,
# backend connects, both walk Closing -> Closed, the toolstack removes
# the device and the backend forgets it. Several devices, one after
# another, with the backend kept running.
. "$(dirname "$0")/lib.sh"
need_xen_tools

for daemon in xenstored oxenstored; do
	note "$daemon"
	xsd_start $daemon $daemon
	log=$WORK/back.$daemon
	"$BIN/legacy-back" -n 3 >"$log" 2>&1 &
	back=$!
	at_exit "kill $back"
	wait_line "$log" '^ready'
	for dom in 1 2 3; do
		"$BIN/legacy-toolstack" introduce $dom || fail "introduce $dom"
		"$BIN/legacy-toolstack" add $dom vif 0 || fail "add $dom"
		out=$("$BIN/legacy-front" $dom vif 0) || fail "front $dom: $out"
		expect_eq "front $dom" "$out" "connected /local/domain/0/backend/vif/$dom/0
closed"
		wait_line "$log" "^closed $dom/0"
		expect_eq "backend state" \
			"$(xenstore-read /local/domain/0/backend/vif/$dom/0/state)" 6
		expect_eq "ring ref" \
			"$(xenstore-read /local/domain/$dom/device/vif/0/tx-ring-ref)" 8
		"$BIN/legacy-toolstack" rm $dom vif 0 || fail "rm $dom"
		xenstore-exists /local/domain/$dom/device/vif/0 && fail "rm left the node"
	done
	wait $back || fail "legacy-back exit status"
	for dom in 1 2 3; do
		grep -q "^initwait $dom/0" "$log" && grep -q "^connected $dom/0" "$log" ||
			fail "backend log: $(cat "$log")"
	done
	"$COMPAT_DIR/xsd.sh" stop "$WORK/$daemon"
done
echo ok
