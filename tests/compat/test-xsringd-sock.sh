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
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/xsringd-lib.sh"

SOCK=$WORK/run/socket
# Debian's tools on Debian's library, through the socket only.
DEB=(env -u LD_LIBRARY_PATH -u LD_PRELOAD -u NOXS_SIM_DOMID XENSTORED_PATH=$SOCK)
deb() { "${DEB[@]}" "$@"; }
ringd_fds() { ls "/proc/$_ringd/fd" | wc -l; }

lib=$(deb ldd "$(command -v xenstore-read)" | grep libxenstore.so.4)
case "$lib" in *"$NOXS_BUILD"* | "") fail "xenstore-read does not load Debian's libxenstore: $lib" ;; esac

note "the socket is off by default (a noxs-only dom0's libxenstore then uses the kernel's xenbus)"
ringd_start 1
[ -e "$SOCK" ] && fail "socket created without --socket"
kill $_ringd
wait $_ringd 2>/dev/null || true

note "--socket: Debian's tools read, write, list as domain 0"
RINGD_ARGS="--socket=$SOCK" ringd_start 2
[ -S "$SOCK" ] || fail "no socket at $SOCK: $(tail -n 3 "$RINGD_LOG")"
expect_eq "socket mode" "$(stat -c %a "$SOCK")" 600
dom0 xenstore-write /local/domain/0/name Domain-0 /vm/secret s || fail "dom0 writes"
expect_eq "read a compat-xs write" "$(deb xenstore-read /vm/secret)" s
deb xenstore-write /tool/sock/a 1 /tool/sock/b 2 || fail "xenstore-write on the socket"
expect_eq "compat-xs reads the socket's write" "$(dom0 xenstore-read /tool/sock/b)" 2
expect_eq "ls" "$(deb xenstore-ls /tool/sock | tr '\n' ' ')" 'a = "1" b = "2" '
expect_eq "relative path (domain 0's home)" "$(deb xenstore-read name)" Domain-0
deb xenstore-rm /tool/sock/a || fail "xenstore-rm"
deb xenstore-exists /tool/sock/a && fail "removed node still there"
deb xenstore-chmod /tool/sock/b n0 r5 || fail "xenstore-chmod"

note "a guest's ring and the socket see one store"
guest_up g1 5 3
expect g1 "read /tool/sock/b" "ok 2"
deb xenstore-write /local/domain/5/memory/target 777 || fail "write for the guest"
expect g1 event "event memory/target balloon"
expect g1 "read memory/target" "ok 777"
expect_eq "the guest's boot write" "$(deb xenstore-read /local/domain/5/data/booted)" 1

note "watch on the socket: the initial event, then each change"
"${DEB[@]}" xenstore-watch -n 2 /tool/sock/w >"$WORK/watch.out" 2>&1 &
wpid=$!
at_exit "kill -9 $wpid"
wait_line "$WORK/watch.out" "/tool/sock/w"
deb xenstore-write /tool/sock/w x || fail "write under the watch"
wait_exit $wpid "xenstore-watch saw no change (its output: $WORK/watch.out)"
expect_eq "events" "$(grep -c /tool/sock/w "$WORK/watch.out")" 2

note "transactions: concurrent writers on the socket all commit (retried on EAGAIN)"
pids=""
for n in 1 2 3 4; do
	(for k in 1 2 3 4 5; do deb xenstore-write /tool/sock/t$n $k || exit 1; done) &
	pids="$pids $!"
done
for p in $pids; do wait $p || fail "a transaction writer failed"; done
for n in 1 2 3 4; do expect_eq "t$n" "$(deb xenstore-read /tool/sock/t$n)" 5; done

note "a killed client's connection and watches go with it"
base=$(ringd_fds)
"${DEB[@]}" xenstore-watch /tool/sock/k >"$WORK/watch2.out" 2>&1 &
kpid=$!
at_exit "kill -9 $kpid"
wait_line "$WORK/watch2.out" "/tool/sock/k"
[ "$(ringd_fds)" -gt "$base" ] || fail "the watcher holds no descriptor in the service"
kill -9 $kpid
wait $kpid 2>/dev/null || true
i=0
until [ "$(ringd_fds)" -le "$base" ]; do
	i=$((i + 1))
	[ $i -gt 2000 ] && fail "the killed watcher's connection is still open: $(ls -l /proc/$_ringd/fd | grep -c socket) sockets"
	sleep 0.01
done
grep -q "socket client .*closed (1 watches" "$RINGD_LOG" ||
	fail "no closed connection with its watch: $(tail -n 5 "$RINGD_LOG")"
deb xenstore-write /tool/sock/k 1 || fail "write after the watcher died"

note "malformed frames: an error, that connection closed, the others served"
mkfifo "$WORK/half.in"
"$T/xsockraw" "$SOCK" half <"$WORK/half.in" >"$WORK/half.out" 2>&1 &
hpid=$!
at_exit "kill -9 $hpid"
exec {half_w}>"$WORK/half.in"
wait_line "$WORK/half.out" sent
expect_eq "bad length" "$("$T/xsockraw" "$SOCK" badlen | tr '\n' ' ')" "err EINVAL closed "
grep -q "message length 5000 over 4096" "$RINGD_LOG" || fail "bad length not logged"
case "$("$T/xsockraw" "$SOCK" badtype | tr '\n' ' ')" in
"err E"*" ok ") ;;
*) fail "unknown type: $("$T/xsockraw" "$SOCK" badtype)" ;;
esac
expect_eq "served beside a client stuck in mid-frame" "$(deb xenstore-read /tool/sock/b)" 2
expect g1 "read /tool/sock/b" "ok 2"
kill -9 $hpid
kill -0 $_ringd || fail "noxs-xsringd died: $(tail "$RINGD_LOG")"

note "a socket another XenStore daemon listens on: refused at start"
xsd_start xenstored real
other=$XENSTORED_PATH
unset XENSTORED_PATH
if env NOXS_SIM_DOMID=0 LD_LIBRARY_PATH=$NOXS_BUILD/sim:$NOXS_BUILD/lib \
	"$BIN/noxs-xsringd" --no-kernel --store "$WORK/xs2" --socket="$other" >"$WORK/refused.log" 2>&1; then
	fail "started on xenstored's socket"
fi
grep -q "already listens there: not starting" "$WORK/refused.log" ||
	fail "no clear message: $(cat "$WORK/refused.log")"
env -u LD_LIBRARY_PATH -u LD_PRELOAD XENSTORED_PATH=$other xenstore-write /still xenstored ||
	fail "xenstored's socket was taken over"
xsd_stop real

note "kill -9: the stale socket is replaced at the next start (path from XENSTORED_RUNDIR)"
kill -9 $_ringd
wait $_ringd 2>/dev/null || true
[ -S "$SOCK" ] || fail "the socket went with a kill -9?"
XENSTORED_RUNDIR=$WORK/run RINGD_ARGS="--socket" ringd_start 3
grep -q "stale socket removed" "$RINGD_LOG" || fail "stale socket not reported: $(tail -n 3 "$RINGD_LOG")"
expect_eq "served again" "$(deb xenstore-read /tool/sock/b)" 2
expect g1 "read /tool/sock/b" "ok 2"

note "SIGTERM: the socket is removed"
kill $_ringd
wait $_ringd 2>/dev/null || true
[ -e "$SOCK" ] && fail "socket left after a clean stop"
grep -q "runtime error\|AddressSanitizer" "$RINGD_LOG" && fail "sanitizer: $(cat "$RINGD_LOG")"
echo "PASS: xsringd-sock"
