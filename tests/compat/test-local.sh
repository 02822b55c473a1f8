#!/bin/sh
# A noxs-only host: no xenstored, every client on compat-xs in local mode
# (the local store, no daemon on its path). Debian's tools and
# test-xenstore behave as on xenstored (the same output as Debian's
# library against the real daemon), domains introduced without a ring
# are noxs domains, and @introduceDomain/@releaseDomain reach a watcher
# in another process. xs_fileno() is readable only when an event is there
# (another process's commits elsewhere do not wake a poller into a
# blocking xs_read_watch), on this store and on xenstored.
. "$(dirname "$0")/lib.sh"

need_xen_tools
xsd_start xenstored xsd
noxs_start
export NOXS_XS_DIR=$WORK/xs
local_exec() { mode_exec local "$@"; }
loc() { (local_exec "$@"); }
debian() { env -u LD_LIBRARY_PATH -u LD_PRELOAD "$@"; }

note "generic paths: the same output as Debian's library on xenstored"
for lib in debian loc; do
	generic_ops $lib >"$WORK/out.$lib" 2>&1 || true
done
sed -i 's/^[a-z-]*: //' "$WORK/out.debian" "$WORK/out.loc"
diff -u "$WORK/out.debian" "$WORK/out.loc" || fail "the local store differs from xenstored"

note "Debian's test-xenstore on the local store"
loc "$XEN_BIN/test-xenstore" >"$WORK/txs.log" 2>&1 ||
	fail "test-xenstore: $(cat "$WORK/txs.log")"

note "domains: introduce without a ring makes a noxs domain, events reach other processes"
loc xenstore-watch -n 3 @introduceDomain >"$WORK/intro.log" 2>&1 &
wi=$!
at_exit "kill $wi"
loc xenstore-watch -n 2 @releaseDomain >"$WORK/rel.log" 2>&1 &
wr=$!
at_exit "kill $wr"
wait_line "$WORK/intro.log" '@introduceDomain'
wait_line "$WORK/rel.log" '@releaseDomain'
loc "$BIN/legacy-toolstack" introduce 9 || fail "introduce 9"
"$BIN/noxsctl" domain-list | awk '{print $1}' | grep -qx 9 || fail "no page for domain 9"
loc "$BIN/legacy-toolstack" release 9 || fail "release 9"
i=0
while kill -0 $wr 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 1000 ] && fail "no @releaseDomain: $(cat "$WORK/rel.log")"
	sleep 0.01
done
grep -q '@introduceDomain' "$WORK/intro.log" || fail "no @introduceDomain"
"$BIN/noxsctl" domain-list | awk '{print $1}' | grep -qx 9 && fail "domain 9's page left"
note "xs_fileno: readable exactly when an event is queued"
fileno_check() { # LIB-WRAPPER
	$1 "$T/xsfileno" /local/domain/0/fileno/watched 1 >"$WORK/fileno.$1" 2>&1 &
	fp=$!
	wait_line "$WORK/fileno.$1" ready
	# Commits to paths it does not watch, from other processes.
	for i in 1 2 3 4 5 6 7 8; do
		$1 xenstore-write /local/domain/0/fileno/other/$i $i
	done
	sleep 0.3
	$1 xenstore-write /local/domain/0/fileno/watched yes
	wait $fp || fail "xs_fileno ($1): $(cat "$WORK/fileno.$1")"
	grep -qx "event /local/domain/0/fileno/watched" "$WORK/fileno.$1" ||
		fail "xs_fileno ($1): $(cat "$WORK/fileno.$1")"
}
T=$COMPAT_DIR
fileno_check loc
fileno_check debian

# ThreadSanitizer does not follow a multi-threaded program through
# fork() (it refuses, or loses track of, the child's threads): these two
# run in the normal and ASan builds, the TSan build checks the thread
# beside the caller's calls above.
case $NOXS_BUILD in
*san-thread*) note "fork checks skipped under ThreadSanitizer" ;;
*)
	note "fork (as xl's monitoring child) while the xs_fileno thread drains events"
	loc "$T/xsfileno" /local/domain/0/fileno forks 150 >"$WORK/forks.out" 2>&1 &
	fp=$!
	wait_line "$WORK/forks.out" ready
	( for i in $(seq 1 400); do loc xenstore-write /local/domain/0/fileno/w $i || break; done ) &
	wp=$!
	wait $fp || fail "fork with the fileno thread: $(cat "$WORK/forks.out")"
	kill $wp 2>/dev/null
	wait $wp 2>/dev/null || true

	note "a child of fork keeps using its parent's handle and xs_fileno fd"
	loc "$T/xsfileno" /local/domain/0/fileno inherit 20 >"$WORK/inherit.out" 2>&1 ||
		fail "watches in a child on its parent's handle: $(cat "$WORK/inherit.out")"
	;;
esac
echo ok
