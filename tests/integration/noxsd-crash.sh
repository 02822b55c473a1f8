#!/bin/bash
# kill -9 of the worker in the middle of a storm of dev-adds: the keeper
# and every device page survive; a restarted worker replays its store and
# reconciles with the keeper; every device that was acknowledged is both
# in the store (dev-list) and in its guest's device page; the backend
# reconnects by itself and adds work again.
. "$(dirname "$0")/../lib.sh"

NDOM=4
nx_start_noxsd
nx_start_testbe be --types 1,3
declare -A boot
for d in $(seq 1 $NDOM); do boot[$d]=$(nx_domain "$d"); done
kp=$(nx_keeper_pid)

# The storm: acknowledged devices go to acked.txt.
(
	for i in $(seq 0 400); do
		d=$((i % NDOM + 1))
		"$NX_BIN/noxsctl" dev-add "$d" blk "$i" >/dev/null 2>&1 &&
			echo "$d $i" >>"$NX_DIR/acked.txt"
	done
) &
storm=$!
NX_PIDS+=("$storm")
nx_wait 200 "some acknowledged devices" test -s "$NX_DIR/acked.txt"
nx_kill_noxsd
wait "$storm" 2>/dev/null
nacked=$(wc -l <"$NX_DIR/acked.txt")
nx_log "worker killed after $nacked acknowledged dev-adds"
nx_alive "$kp" || nx_fail "the keeper died with the worker"

# While noxsd is down, the guests' pages are still there and readable.
for d in $(seq 1 $NDOM); do
	nx_page "$d" "${boot[$d]}" >/dev/null || nx_fail "page of domain $d gone while noxsd is down"
done

nx_start_noxsd
[ "$(nx_keeper_pid)" = "$kp" ] || nx_fail "a new keeper was started"
noxsctl status --json | grep -q '"restarts":1' || nx_fail "restart not counted: $(noxsctl status --json)"
nx_wait 200 "the backend to reconnect" nx_has_backends 2

noxsctl dev-list all >"$NX_DIR/list.txt"
for d in $(seq 1 $NDOM); do
	nx_page "$d" "${boot[$d]}" >"$NX_DIR/page-$d.txt" || nx_fail "page of domain $d"
	# Store (dev-list) and page agree exactly.
	a=$(awk -v d="$d" '$1 == d && $2 == "blk" {print $3}' "$NX_DIR/list.txt" | sort -n)
	b=$(awk '$1 == 3 {print $2}' "$NX_DIR/page-$d.txt" | sort -n)
	[ "$a" = "$b" ] || nx_fail "domain $d: store and page differ"
done
while read -r d i; do
	grep -q "^$d blk *$i " <(awk '{print $1, $2, $3, $4}' "$NX_DIR/list.txt") ||
		nx_fail "acknowledged device $d/$i missing from the store"
	grep -q "^3 $i " "$NX_DIR/page-$d.txt" ||
		nx_fail "acknowledged device $d/$i missing from domain $d's page"
done <"$NX_DIR/acked.txt"

# After the re-sync the backend and noxsd agree: every device the backend
# has is one noxsd lists (unknown ones were removed).
nx_wait 100 "work after restart" noxsctl dev-add 1 blk 9999
noxsctl dev-rm 1 blk 9999 || nx_fail "dev-rm after restart"
nx_log "PASS: $nacked acknowledged devices all present after kill -9"
