#!/bin/bash
# A noxs-only host: no xenstored, every client on compat-xs in local mode
# (the local store, no daemon on its path). Debian's tools and
# test-xenstore behave as on xenstored (the same output as Debian's
# library against the real daemon), domains introduced without a ring
# are noxs domains, and @introduceDomain/@releaseDomain reach a watcher
# in another process. xs_fileno() is readable only when an event is there
# (another process's commits elsewhere do not wake a poller into a
# blocking xs_read_watch), on this store and on xenstored.
. "$(dirname "$0")/lib-compat.sh"

need_xen_tools
xsd_start xenstored xsd
nx_start_noxsd
export NOXS_XS_DIR=$NX_DIR/xs
local_exec() { mode_exec local "$@"; }
loc() { (local_exec "$@"); }

xenstore_parity loc "the local store"

nx_log "domains: introduce without a ring makes a noxs domain, events reach other processes"
loc xenstore-watch -n 3 @introduceDomain >"$NX_DIR/intro.log" 2>&1 &
wi=$!
nx_at_exit "kill $wi"
loc xenstore-watch -n 2 @releaseDomain >"$NX_DIR/rel.log" 2>&1 &
wr=$!
nx_at_exit "kill $wr"
nx_wait_line "$NX_DIR/intro.log" '@introduceDomain'
nx_wait_line "$NX_DIR/rel.log" '@releaseDomain'
loc "$NX_BIN/legacy-toolstack" introduce 9 || nx_fail "introduce 9"
"$NX_BIN/noxsctl" domain-list | awk '{print $1}' | grep -qx 9 || nx_fail "no page for domain 9"
loc "$NX_BIN/legacy-toolstack" release 9 || nx_fail "release 9"
nx_exit_status $wr 200
[ "$NX_STATUS" = timeout ] && nx_fail "no @releaseDomain: $(cat "$NX_DIR/rel.log")"
grep -q '@introduceDomain' "$NX_DIR/intro.log" || nx_fail "no @introduceDomain"
"$NX_BIN/noxsctl" domain-list | awk '{print $1}' | grep -qx 9 && nx_fail "domain 9's page left"
nx_log "xs_fileno: readable exactly when an event is queued"
fileno_check() { # LIB-WRAPPER
	$1 "$T/xsfileno" /local/domain/0/fileno/watched 1 >"$NX_DIR/fileno.$1" 2>&1 &
	fp=$!
	nx_wait_line "$NX_DIR/fileno.$1" ready
	# Commits to paths it does not watch, from other processes.
	for i in 1 2 3 4 5 6 7 8; do
		$1 xenstore-write /local/domain/0/fileno/other/$i $i
	done
	sleep 0.3
	$1 xenstore-write /local/domain/0/fileno/watched yes
	wait $fp || nx_fail "xs_fileno ($1): $(cat "$NX_DIR/fileno.$1")"
	grep -qx "event /local/domain/0/fileno/watched" "$NX_DIR/fileno.$1" ||
		nx_fail "xs_fileno ($1): $(cat "$NX_DIR/fileno.$1")"
}
T=$COMPAT_DIR
fileno_check loc
fileno_check debian

# ThreadSanitizer does not follow a multi-threaded program through
# fork() (it refuses, or loses track of, the child's threads): these two
# run in the normal and ASan builds, the TSan build checks the thread
# beside the caller's calls above.
case $NOXS_BUILD in
*san-thread*) nx_log "fork checks skipped under ThreadSanitizer" ;;
*)
	nx_log "fork (as xl's monitoring child) while the xs_fileno thread drains events"
	loc "$T/xsfileno" /local/domain/0/fileno forks 150 >"$NX_DIR/forks.out" 2>&1 &
	fp=$!
	nx_wait_line "$NX_DIR/forks.out" ready
	( for i in $(seq 1 400); do loc xenstore-write /local/domain/0/fileno/w $i || break; done ) &
	wp=$!
	wait $fp || nx_fail "fork with the fileno thread: $(cat "$NX_DIR/forks.out")"
	kill $wp 2>/dev/null || true # it may have written all 400 already
	wait $wp 2>/dev/null || true

	nx_log "a child of fork keeps using its parent's handle and xs_fileno fd"
	loc "$T/xsfileno" /local/domain/0/fileno inherit 20 >"$NX_DIR/inherit.out" 2>&1 ||
		nx_fail "watches in a child on its parent's handle: $(cat "$NX_DIR/inherit.out")"
	;;
esac
echo ok
