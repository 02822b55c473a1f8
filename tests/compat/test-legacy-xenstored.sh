#!/bin/bash
# The legacy driver pair (xs_* only) against Debian's real xenstored and
# oxenstored: toolstack writes the nodes in one transaction, backend goes
# InitWait, frontend publishes rings in a transaction and goes Connected,
# backend connects, both walk Closing -> Closed, the toolstack removes
# the device and the backend forgets it. Several devices, one after
# another, with the backend kept running.
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools

for daemon in xenstored oxenstored; do
	nx_log "$daemon"
	xsd_start $daemon $daemon
	log=$NX_DIR/back.$daemon
	legacy_back "$log" -n 3
	back=$LEGACY_BACK
	for dom in 1 2 3; do
		"$NX_BIN/legacy-toolstack" introduce $dom || nx_fail "introduce $dom"
		"$NX_BIN/legacy-toolstack" add $dom vif 0 || nx_fail "add $dom"
		out=$("$NX_BIN/legacy-front" $dom vif 0) || nx_fail "front $dom: $out"
		nx_expect_eq "front $dom" "$out" "connected /local/domain/0/backend/vif/$dom/0
closed"
		nx_wait_line "$log" "^closed $dom/0"
		nx_expect_eq "backend state" \
			"$(xenstore-read /local/domain/0/backend/vif/$dom/0/state)" 6
		nx_expect_eq "ring ref" \
			"$(xenstore-read /local/domain/$dom/device/vif/0/tx-ring-ref)" 8
		"$NX_BIN/legacy-toolstack" rm $dom vif 0 || nx_fail "rm $dom"
		xenstore-exists /local/domain/$dom/device/vif/0 && nx_fail "rm left the node"
	done
	wait $back || nx_fail "legacy-back exit status"
	for dom in 1 2 3; do
		grep -q "^initwait $dom/0" "$log" && grep -q "^connected $dom/0" "$log" ||
			nx_fail "backend log: $(cat "$log")"
	done
	"$COMPAT_DIR/xsd.sh" stop "$NX_DIR/$daemon"
done
echo ok
