#!/bin/bash
# The worker writes the guests' device pages itself, in memory it shares
# with the page keeper. What must hold, each checked here:
#   1. acknowledged = stored and visible: the moment dev-add answers, the
#      device is in dev-list (the store) and in the guest's device page;
#   2. a worker killed in the middle of a page write
#      (NOXSD_TEST_KILL_IN_PAGE_WRITE=DOMID:N makes it SIGKILL itself half
#      way through its Nth write of that page) leaves the keeper and the
#      pages: a reader sees a write in progress, never a torn table;
#   3. the restarted worker reconciles page and store: it rewrites the
#      torn page from its store, which closes the seqlock; also when the
#      torn write was a removal that left the domain no device at all (the
#      page's last settled table and the store then both look empty).
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_testbe be --types 1,3
boot1=$(nx_domain 1)
boot2=$(nx_domain 2)
kp=$(nx_keeper_pid)

in_store() { noxsctl dev-list "$1" | awk -v t="$2" -v i="$3" '$2 == t && $3 == i' | grep -q .; }
in_page() { nx_page "$1" "$2" | awk -v i="$3" '$1 == 3 && $2 == i' | grep -q .; }
agree() {
	local d=$1 boot=$2 a b
	a=$(noxsctl dev-list "$d" | awk '$2 == "blk" {print $3}' | sort -n | xargs)
	b=$(nx_page "$d" "$boot" | awk '$1 == 3 {print $2}' | sort -n | xargs) ||
		nx_fail "$3: domain $d's page does not read"
	[ "$a" = "$b" ] || nx_fail "$3: domain $d: store has [$a], page has [$b]"
}

# 1. Acknowledged = stored and visible, with no wait in between.
for i in 0 1 2; do
	noxsctl dev-add 1 blk "$i" >/dev/null || nx_fail "dev-add 1 blk $i"
	in_store 1 blk "$i" || nx_fail "acknowledged blk $i is not in the store"
	in_page 1 "$boot1" "$i" || nx_fail "acknowledged blk $i is not in the page"
done
grep -q "it writes the pages" "$NX_DIR/noxsd.log" &&
	nx_fail "the worker does not write the pages itself"

# Restart the worker with the knob; a clean stop leaves nothing to rewrite.
restart_killing() {
	nx_stop_noxsd
	NOXSD_TEST_KILL_IN_PAGE_WRITE=$1 nx_start_noxsd
	nx_wait 200 "the backend to reconnect" nx_has_backends 1
}
# The worker must have died (SIGKILL, 128 + 9), the keeper not.
died_mid_write() {
	local st=0
	nx_wait 200 "the worker to die" eval '! nx_alive "$NX_NOXSD"'
	wait "$NX_NOXSD" 2>/dev/null || st=$?
	[ "$st" = 137 ] || nx_fail "$1: the worker exited with $st, not SIGKILL"
	[ "$(nx_keeper_pid)" = "$kp" ] && nx_alive "$kp" ||
		nx_fail "$1: the keeper did not survive the worker"
	# Readers see a write in progress, not a torn table.
	nx_page 2 "$boot2" >"$NX_DIR/torn.out" 2>&1 &&
		nx_fail "$1: a half-written page reads as settled: $(cat "$NX_DIR/torn.out")"
	grep -q busy "$NX_DIR/torn.out" ||
		nx_fail "$1: reading the half-written page: $(cat "$NX_DIR/torn.out")"
	# The other domain's page is untouched.
	[ "$(nx_page 1 "$boot1" | awk '$1 == 3 {print $2}' | sort -n | xargs)" = "0 1 2" ] ||
		nx_fail "$1: domain 1's page changed"
}

# 2. Killed in the middle of an add (the store already holds the device:
#    it was appended first, but never acknowledged).
restart_killing 2:1
noxsctl dev-add 2 blk 7 >/dev/null 2>&1 && nx_fail "an add whose page write was killed was acknowledged"
died_mid_write "add"

# 3. The restarted worker rewrites the torn page from the store.
nx_start_noxsd
nx_wait 200 "the backend to reconnect" nx_has_backends 1
[ "$(nx_keeper_pid)" = "$kp" ] || nx_fail "a new keeper was started"
agree 1 "$boot1" "after the add"
agree 2 "$boot2" "after the add"
grep -q 'page of domain 2 does not read back settled' "$NX_DIR/noxsd.log" ||
	nx_fail "the keeper did not report the torn page"

# 2 and 3 again for a removal that leaves domain 2 without a device: its
#    writes are "mark Closing" (1) and "drop the entry" (2).
in_store 2 blk 7 || noxsctl dev-add 2 blk 7 >/dev/null || nx_fail "dev-add 2 blk 7"
restart_killing 2:2
noxsctl dev-rm 2 blk 7 >/dev/null 2>&1 && nx_fail "a removal whose page write was killed was acknowledged"
died_mid_write "removal"
nx_start_noxsd
nx_wait 200 "the backend to reconnect" nx_has_backends 1
agree 1 "$boot1" "after the removal"
agree 2 "$boot2" "after the removal"

# And the restarted worker writes pages as before.
noxsctl dev-add 2 blk 8 >/dev/null || nx_fail "dev-add 2 blk 8"
in_page 2 "$boot2" 8 || nx_fail "blk 8 is not in the page"
agree 2 "$boot2" "at the end"
nx_log "ok"
