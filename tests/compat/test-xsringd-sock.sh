#!/bin/bash
# noxs-xsringd --socket: xenstored's Unix socket on a noxs-only dom0.
# Debian's own xenstore-* tools on Debian's own libxenstore (not
# compat-xs: LD_LIBRARY_PATH unset), pointed at the socket with
# XENSTORED_PATH, read, write, list, watch and run transactions (every
# xenstore-write is one) as domain 0, in the same local store a guest's
# ring and compat-xs's dom0 tools see; a killed watcher's connection
# and watches go with it; a malformed frame gets an error and closes
# that connection only, a client stuck in mid-frame stops no one; a
# socket another daemon (Debian's xenstored) listens on is refused at
# start, a stale one is replaced.
. "$(dirname "$0")/lib-compat.sh"
. "$(dirname "$0")/xsringd-lib.sh"

SOCK=$NX_DIR/run/socket
# Debian's tools on Debian's library, through the socket only.
DEB=(env -u LD_LIBRARY_PATH -u LD_PRELOAD -u NOXS_SIM_DOMID XENSTORED_PATH=$SOCK)
deb() { "${DEB[@]}" "$@"; }
ringd_fds() { ls "/proc/$_ringd/fd" | wc -l; }

lib=$(deb ldd "$(command -v xenstore-read)" | grep libxenstore.so.4)
case "$lib" in *"$NOXS_BUILD"* | "") nx_fail "xenstore-read does not load Debian's libxenstore: $lib" ;; esac

nx_log "the socket is off by default (a noxs-only dom0's libxenstore then uses the kernel's xenbus)"
ringd_start 1
[ -e "$SOCK" ] && nx_fail "socket created without --socket"
kill $_ringd
wait $_ringd 2>/dev/null || true

nx_log "--socket: Debian's tools read, write, list as domain 0"
RINGD_ARGS="--socket=$SOCK" ringd_start 2
[ -S "$SOCK" ] || nx_fail "no socket at $SOCK: $(tail -n 3 "$RINGD_LOG")"
nx_expect_eq "socket mode" "$(stat -c %a "$SOCK")" 600
dom0 xenstore-write /local/domain/0/name Domain-0 /vm/secret s || nx_fail "dom0 writes"
nx_expect_eq "read a compat-xs write" "$(deb xenstore-read /vm/secret)" s
deb xenstore-write /tool/sock/a 1 /tool/sock/b 2 || nx_fail "xenstore-write on the socket"
nx_expect_eq "compat-xs reads the socket's write" "$(dom0 xenstore-read /tool/sock/b)" 2
nx_expect_eq "ls" "$(deb xenstore-ls /tool/sock | tr '\n' ' ')" 'a = "1" b = "2" '
nx_expect_eq "relative path (domain 0's home)" "$(deb xenstore-read name)" Domain-0
deb xenstore-rm /tool/sock/a || nx_fail "xenstore-rm"
deb xenstore-exists /tool/sock/a && nx_fail "removed node still there"
deb xenstore-chmod /tool/sock/b n0 r5 || nx_fail "xenstore-chmod"

nx_log "a guest's ring and the socket see one store"
guest_up g1 5 3
expect g1 "read /tool/sock/b" "ok 2"
deb xenstore-write /local/domain/5/memory/target 777 || nx_fail "write for the guest"
expect g1 event "event memory/target balloon"
expect g1 "read memory/target" "ok 777"
nx_expect_eq "the guest's boot write" "$(deb xenstore-read /local/domain/5/data/booted)" 1

nx_log "watch on the socket: the initial event, then each change"
"${DEB[@]}" xenstore-watch -n 2 /tool/sock/w >"$NX_DIR/watch.out" 2>&1 &
wpid=$!
nx_at_exit "kill -9 $wpid"
nx_wait_line "$NX_DIR/watch.out" "/tool/sock/w"
deb xenstore-write /tool/sock/w x || nx_fail "write under the watch"
wait_exit $wpid "xenstore-watch saw no change (its output: $NX_DIR/watch.out)"
nx_expect_eq "events" "$(grep -c /tool/sock/w "$NX_DIR/watch.out")" 2

nx_log "transactions: concurrent writers on the socket all commit (retried on EAGAIN)"
pids=""
for n in 1 2 3 4; do
	(for k in 1 2 3 4 5; do deb xenstore-write /tool/sock/t$n $k || exit 1; done) &
	pids="$pids $!"
done
for p in $pids; do wait $p || nx_fail "a transaction writer failed"; done
for n in 1 2 3 4; do nx_expect_eq "t$n" "$(deb xenstore-read /tool/sock/t$n)" 5; done

nx_log "a killed client's connection and watches go with it"
base=$(ringd_fds)
"${DEB[@]}" xenstore-watch /tool/sock/k >"$NX_DIR/watch2.out" 2>&1 &
kpid=$!
nx_at_exit "kill -9 $kpid"
nx_wait_line "$NX_DIR/watch2.out" "/tool/sock/k"
[ "$(ringd_fds)" -gt "$base" ] || nx_fail "the watcher holds no descriptor in the service"
kill -9 $kpid
wait $kpid 2>/dev/null || true
i=0
until [ "$(ringd_fds)" -le "$base" ]; do
	i=$((i + 1))
	[ $i -gt 2000 ] && nx_fail "the killed watcher's connection is still open: $(ls -l /proc/$_ringd/fd | grep -c socket) sockets"
	sleep 0.01
done
grep -q "socket client .*closed (1 watches" "$RINGD_LOG" ||
	nx_fail "no closed connection with its watch: $(tail -n 5 "$RINGD_LOG")"
deb xenstore-write /tool/sock/k 1 || nx_fail "write after the watcher died"

nx_log "malformed frames: an error, that connection closed, the others served"
mkfifo "$NX_DIR/half.in"
"$T/xsockraw" "$SOCK" half <"$NX_DIR/half.in" >"$NX_DIR/half.out" 2>&1 &
hpid=$!
nx_at_exit "kill -9 $hpid"
exec {half_w}>"$NX_DIR/half.in"
nx_wait_line "$NX_DIR/half.out" sent
nx_expect_eq "bad length" "$("$T/xsockraw" "$SOCK" badlen | tr '\n' ' ')" "err EINVAL closed "
grep -q "message length 5000 over 4096" "$RINGD_LOG" || nx_fail "bad length not logged"
case "$("$T/xsockraw" "$SOCK" badtype | tr '\n' ' ')" in
"err E"*" ok ") ;;
*) nx_fail "unknown type: $("$T/xsockraw" "$SOCK" badtype)" ;;
esac
nx_expect_eq "served beside a client stuck in mid-frame" "$(deb xenstore-read /tool/sock/b)" 2
expect g1 "read /tool/sock/b" "ok 2"
kill -9 $hpid
kill -0 $_ringd || nx_fail "noxs-xsringd died: $(tail "$RINGD_LOG")"

nx_log "a socket another XenStore daemon listens on: refused at start"
xsd_start xenstored real
other=$XENSTORED_PATH
unset XENSTORED_PATH
if env NOXS_SIM_DOMID=0 LD_LIBRARY_PATH=$NOXS_BUILD/sim:$NOXS_BUILD/lib \
	"$NX_BIN/noxs-xsringd" --no-kernel --store "$NX_DIR/xs2" --socket="$other" >"$NX_DIR/refused.log" 2>&1; then
	nx_fail "started on xenstored's socket"
fi
grep -q "already listens there: not starting" "$NX_DIR/refused.log" ||
	nx_fail "no clear message: $(cat "$NX_DIR/refused.log")"
env -u LD_LIBRARY_PATH -u LD_PRELOAD XENSTORED_PATH=$other xenstore-write /still xenstored ||
	nx_fail "xenstored's socket was taken over"
xsd_stop real

nx_log "kill -9: the stale socket is replaced at the next start (path from XENSTORED_RUNDIR)"
kill -9 $_ringd
wait $_ringd 2>/dev/null || true
[ -S "$SOCK" ] || nx_fail "the socket went with a kill -9?"
XENSTORED_RUNDIR=$NX_DIR/run RINGD_ARGS="--socket" ringd_start 3
grep -q "stale socket removed" "$RINGD_LOG" || nx_fail "stale socket not reported: $(tail -n 3 "$RINGD_LOG")"
nx_expect_eq "served again" "$(deb xenstore-read /tool/sock/b)" 2
expect g1 "read /tool/sock/b" "ok 2"

nx_log "SIGTERM: the socket is removed"
kill $_ringd
wait $_ringd 2>/dev/null || true
[ -e "$SOCK" ] && nx_fail "socket left after a clean stop"
grep -q "runtime error\|AddressSanitizer" "$RINGD_LOG" && nx_fail "sanitizer: $(cat "$RINGD_LOG")"
echo "PASS: xsringd-sock"
