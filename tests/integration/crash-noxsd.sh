#!/bin/bash
# kill -9 of noxsd's worker at many points during a storm of dev-adds.
# After each restart: every acknowledged device is listed by noxsd and in
# its guest's device page; while the worker is down, connected devices
# stay connected (both halves Connected, read from the pages as the guest
# sees them); at the end new adds still work.
. "$(dirname "$0")/sysctl-lib.sh"

probe=$T_BUILD/tests/crash-probe
[ -x "$probe" ] || t_fail "$probe is missing"
N=${CRASH_DOMAINS:-300}
KILLS=${CRASH_KILLS:-8}

t_start_noxsd
t_start_backend
: >"$T_DIR/boot.txt"
for ((d = 1; d <= N + 1; d++)); do
	echo "$d $(t_domain $d)" >>"$T_DIR/boot.txt"
done
# One process plays every guest (domain N+1 is for the final add).
"$T_BIN/noxs-sysctl-front" --domains "$T_DIR/boot.txt" --report \
	>"$T_DIR/front.out" 2>"$T_DIR/front.log" &
front=$!
T_PIDS+=($front)
t_wait 200 "the guests to open their pages" \
	bash -c "[ \$(grep -c '^opened' '$T_DIR/front.out') -ge $((N + 1)) ]"

# The storm: add devices one after another, retrying (bounded) while
# noxsd is down; record what noxsd acknowledged.
storm() {
	local d tries out
	for ((d = 1; d <= N; d++)); do
		for ((tries = 0; tries < 400; tries++)); do
			if out=$("$T_BIN/noxsctl" dev-add $d sysctl 0 2>&1); then
				echo $d >>"$T_DIR/acked"
				break
			fi
			case $out in *xists*) echo $d >>"$T_DIR/present"; break ;; esac
			sleep 0.02
		done
	done
}
: >"$T_DIR/acked"
: >"$T_DIR/present"
storm &
storm_pid=$!
T_PIDS+=($storm_pid)

# t_check_pages: Connected devices (a random dozen of those in the last
# dev-list we saved, to keep noxsd's downtime short) are intact in the
# guest's pages: entry listed, both halves Connected.
t_check_pages() {
	local d gref boot n=0
	while read -r d gref; do
		boot=$(sed -n "s/^$d //p" "$T_DIR/boot.txt")
		NOXS_SIM_DOMID=$d "$probe" $d "$boot" "$gref" ||
			t_fail "domain $d's pages broke while noxsd was down"
		n=$((n + 1))
	done < <(shuf -n 12 "$T_DIR/connected")
	echo $n
}
save_connected() {
	: >"$T_DIR/connected"
	for d in $(grep '^connected' "$T_DIR/front.out" | awk '{print $2}'); do
		gref=$(noxsctl dev-list $d --json 2>/dev/null | tr -d ' \n' |
			sed -n 's/.*"control_gref":\([0-9]*\).*/\1/p')
		[ -n "$gref" ] && echo "$d $gref" >>"$T_DIR/connected"
	done
	return 0
}

# t_worker_sane: the restarted worker forgot no domain and is still up
# (a reconciliation that loses step with the keeper does both).
t_worker_sane() {
	local why=$1
	! grep -q 'forgetting the domain' "$T_DIR/noxsd.log" ||
		t_fail "$why: noxsd forgot a domain while the keeper lived"
	kill -0 "$T_NOXSD" 2>/dev/null || t_fail "$why: the worker exited on its own"
}

# Kill at random points (20-110 ms apart) for as long as the storm runs,
# and at least KILLS times.
for ((k = 1; k <= KILLS || $(kill -0 $storm_pid 2>/dev/null && echo 1 || echo 0); k++)); do
	[ $k -gt 200 ] && break
	sleep 0.0$((RANDOM % 10 + 2))
	save_connected
	kill -9 "$T_NOXSD"
	wait "$T_NOXSD" 2>/dev/null
	n=$(t_check_pages) || exit 1
	t_start_noxsd
	t_worker_sane "kill $k"
	t_log "kill $k: $n sampled connected device(s) intact while noxsd was down;" \
		"acked so far $(wc -l <"$T_DIR/acked")"
done
for ((i = 0; i < 600; i++)); do kill -0 $storm_pid 2>/dev/null || break; sleep 0.05; done
kill -0 $storm_pid 2>/dev/null && t_fail "the dev-add storm did not finish"
wait $storm_pid

# Everything acknowledged is there, and the guests connected to it.
for d in $(cat "$T_DIR/acked" "$T_DIR/present"); do
	noxsctl dev-list $d --json | grep -q '"control_gref"' ||
		t_fail "acknowledged device of domain $d is missing after restarts"
	t_wait 200 "domain $d's guest to connect" grep -q "^connected $d " "$T_DIR/front.out"
done
t_log "$(wc -l <"$T_DIR/acked") acknowledged + $(wc -l <"$T_DIR/present") already-present devices all listed and connected"

t_worker_sane "after the storm"

# A deterministic kill point: the worker dies while a page differs from
# the store (a dev-rm has marked its entry Closing and waits for the
# backend, which waits up to 2 s for the stopped guest), so the restarted
# worker rewrites that page in the middle of the keeper's dump. Every
# other domain must survive that, and the worker must stay up.
ndom=$(noxsctl domain-list | grep -c .)
for d in 1 $((N / 2)); do
	kill -STOP "$front"
	"$T_BIN/noxsctl" dev-rm $d sysctl 0 >/dev/null 2>&1 &
	rm_pid=$!
	sleep 0.3
	kill -9 "$T_NOXSD"
	wait "$T_NOXSD" 2>/dev/null
	kill -CONT "$front"
	wait $rm_pid 2>/dev/null
	t_start_noxsd
	sleep 0.3
	t_worker_sane "kill during the dev-rm of domain $d"
	[ "$(noxsctl domain-list | grep -c .)" = "$ndom" ] ||
		t_fail "a domain is missing after the kill during dev-rm $d"
	# The device is gone or still there, but never half-way: the entry
	# the backend no longer has is dropped when it re-syncs.
	t_wait 200 "domain $d's device to be dropped after the re-sync" \
		bash -c "! \"$T_BIN/noxsctl\" dev-list $d --json | grep -q control_gref"
done
t_log "kills during a dev-rm: every domain kept, the worker stayed up"

# New adds work.
d=$((N + 1))
noxsctl dev-add $d sysctl 0 >/dev/null || t_fail "dev-add after the restarts"
t_wait 200 "the new device to connect" grep -q "^connected $d " "$T_DIR/front.out"
t_log "PASS"
