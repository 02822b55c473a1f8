#!/bin/bash
# kill -9 of noxsd's worker at many points during a storm of dev-adds.
# After each restart: every acknowledged device is listed by noxsd and in
# its guest's device page; while the worker is down, connected devices
# stay connected (both halves Connected, read from the pages as the guest
# sees them); at the end new adds still work.
. "$(dirname "$0")/../lib.sh"

probe=$NX_BUILD/tests/crash-probe
[ -x "$probe" ] || nx_fail "$probe is missing"
N=${CRASH_DOMAINS:-300}
KILLS=${CRASH_KILLS:-8}

nx_start_noxsd
nx_start_sysctl_back
: >"$NX_DIR/boot.txt"
for ((d = 1; d <= N + 1; d++)); do
	echo "$d $(nx_domain $d)" >>"$NX_DIR/boot.txt"
done
# One process plays every guest (domain N+1 is for the final add).
"$NX_BIN/noxs-sysctl-front" --domains "$NX_DIR/boot.txt" --report \
	>"$NX_DIR/front.out" 2>"$NX_DIR/front.log" &
front=$!
NX_PIDS+=($front)
nx_wait 200 "the guests to open their pages" \
	bash -c "[ \$(grep -c '^opened' '$NX_DIR/front.out') -ge $((N + 1)) ]"

# The storm: add devices one after another, retrying (bounded) while
# noxsd is down; record what noxsd acknowledged.
storm() {
	local d tries out
	for ((d = 1; d <= N; d++)); do
		for ((tries = 0; tries < 400; tries++)); do
			if out=$("$NX_BIN/noxsctl" dev-add $d sysctl 0 2>&1); then
				echo $d >>"$NX_DIR/acked"
				break
			fi
			case $out in *xists*) echo $d >>"$NX_DIR/present"; break ;; esac
			sleep 0.02
		done
	done
}
: >"$NX_DIR/acked"
: >"$NX_DIR/present"
storm &
storm_pid=$!
NX_PIDS+=($storm_pid)

# check_pages: Connected devices (a random dozen of those in the last
# dev-list we saved, to keep noxsd's downtime short) are intact in the
# guest's pages: entry listed, both halves Connected.
check_pages() {
	local d gref boot n=0
	while read -r d gref; do
		boot=$(sed -n "s/^$d //p" "$NX_DIR/boot.txt")
		NOXS_SIM_DOMID=$d "$probe" $d "$boot" "$gref" ||
			nx_fail "domain $d's pages broke while noxsd was down"
		n=$((n + 1))
	done < <(shuf -n 12 "$NX_DIR/connected")
	echo $n
}
save_connected() {
	: >"$NX_DIR/connected"
	for d in $(grep '^connected' "$NX_DIR/front.out" | awk '{print $2}'); do
		gref=$(noxsctl dev-list $d --json 2>/dev/null | tr -d ' \n' |
			sed -n 's/.*"control_gref":\([0-9]*\).*/\1/p')
		[ -n "$gref" ] && echo "$d $gref" >>"$NX_DIR/connected"
	done
	return 0
}

# worker_sane: the restarted worker forgot no domain and is still up
# (a reconciliation that loses step with the keeper does both).
worker_sane() {
	local why=$1
	! grep -q 'forgetting the domain' "$NX_DIR/noxsd.log" ||
		nx_fail "$why: noxsd forgot a domain while the keeper lived"
	kill -0 "$NX_NOXSD" 2>/dev/null || nx_fail "$why: the worker exited on its own"
}

# Kill at random points (20-110 ms apart) for as long as the storm runs,
# and at least KILLS times.
for ((k = 1; k <= KILLS || $(kill -0 $storm_pid 2>/dev/null && echo 1 || echo 0); k++)); do
	[ $k -gt 200 ] && break
	sleep 0.0$((RANDOM % 10 + 2))
	save_connected
	kill -9 "$NX_NOXSD"
	wait "$NX_NOXSD" 2>/dev/null
	n=$(check_pages) || exit 1
	nx_start_noxsd
	worker_sane "kill $k"
	nx_log "kill $k: $n sampled connected device(s) intact while noxsd was down;" \
		"acked so far $(wc -l <"$NX_DIR/acked")"
done
for ((i = 0; i < 600; i++)); do kill -0 $storm_pid 2>/dev/null || break; sleep 0.05; done
kill -0 $storm_pid 2>/dev/null && nx_fail "the dev-add storm did not finish"
wait $storm_pid

# Everything acknowledged is there, and the guests connected to it.
for d in $(cat "$NX_DIR/acked" "$NX_DIR/present"); do
	noxsctl dev-list $d --json | grep -q '"control_gref"' ||
		nx_fail "acknowledged device of domain $d is missing after restarts"
	nx_wait 200 "domain $d's guest to connect" grep -q "^connected $d " "$NX_DIR/front.out"
done
nx_log "$(wc -l <"$NX_DIR/acked") acknowledged + $(wc -l <"$NX_DIR/present") already-present devices all listed and connected"

worker_sane "after the storm"

# A deterministic kill point: the worker dies while a page differs from
# the store (a dev-rm has marked its entry Closing and waits for the
# backend, which waits up to 2 s for the stopped guest), so the restarted
# worker rewrites that page in the middle of the keeper's dump. Every
# other domain must survive that, and the worker must stay up.
ndom=$(noxsctl domain-list | grep -c .)
for d in 1 $((N / 2)); do
	kill -STOP "$front"
	"$NX_BIN/noxsctl" dev-rm $d sysctl 0 >/dev/null 2>&1 &
	rm_pid=$!
	sleep 0.3
	kill -9 "$NX_NOXSD"
	wait "$NX_NOXSD" 2>/dev/null
	kill -CONT "$front"
	wait $rm_pid 2>/dev/null
	nx_start_noxsd
	sleep 0.3
	worker_sane "kill during the dev-rm of domain $d"
	[ "$(noxsctl domain-list | grep -c .)" = "$ndom" ] ||
		nx_fail "a domain is missing after the kill during dev-rm $d"
	# The device is gone or still there, but never half-way: the entry
	# the backend no longer has is dropped when it re-syncs.
	nx_wait 200 "domain $d's device to be dropped after the re-sync" \
		bash -c "! \"$NX_BIN/noxsctl\" dev-list $d --json | grep -q control_gref"
done
nx_log "kills during a dev-rm: every domain kept, the worker stayed up"

# New adds work.
d=$((N + 1))
noxsctl dev-add $d sysctl 0 >/dev/null || nx_fail "dev-add after the restarts"
nx_wait 200 "the new device to connect" grep -q "^connected $d " "$NX_DIR/front.out"
nx_log "PASS"
