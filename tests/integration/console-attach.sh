#!/bin/bash
# Console back-pressure and attach/detach: a guest writing 1 MB with
# nobody attached blocks (ring and backend buffer are far smaller) and
# loses nothing: a client attaching later receives every byte in order.
# Then an echo guest: detach, reattach, a second client is turned away,
# the escape character detaches, and a frontend restart reconnects.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_console_back
boot=$(nx_domain 1)
noxsctl dev-add 1 console 0 >/dev/null || nx_fail "dev-add console 0"
noxsctl dev-add 1 console 1 >/dev/null || nx_fail "dev-add console 1"
N=$((1 << 20))
head -c $N /dev/urandom >"$NX_DIR/data"

# Back-pressure: 1 MB cannot fit in 16 KiB of ring + 64 KiB of buffer, so
# the guest's writer must still be blocked when we look, and must finish
# once a client drains the console.
nx_spawn 1 "$boot" "$NX_BIN/noxs-console-front" -- cat "$NX_DIR/data" \
	>"$NX_DIR/front0.log" 2>&1
fe=$NX_PID
nx_wait 400 "the console to connect" grep -q 'console 0: connected' "$NX_DIR/console-back.log"
sleep 0.5 # not a timing assertion: the writer cannot finish without a reader
nx_alive "$fe" || nx_fail "the guest finished writing 1 MB with nobody reading"
"$NX_BIN/noxs-console" -n $N 1 </dev/null >"$NX_DIR/got" || nx_fail "late client"
cmp "$NX_DIR/data" "$NX_DIR/got" || nx_fail "back-pressured stream differs"
nx_exit_status "$fe" 600
st=$NX_STATUS
[ "$st" = 0 ] || nx_fail "writer guest exit status $st"
nx_log "back-pressure: 1 MB held back, then delivered intact"

# Echo guest on console 1 (tee: it also records its input): attach,
# detach, reattach.
nx_spawn 1 "$boot" "$NX_BIN/noxs-console-front" -d 1 -- tee "$NX_DIR/in1" \
	>"$NX_DIR/front1.log" 2>&1
fe=$NX_PID
nx_wait 400 "console 1 to connect" grep -q 'console 1: connected' "$NX_DIR/console-back.log"
out=$(printf 'hello one\n' | "$NX_BIN/noxs-console" -n 10 1 1) || nx_fail "first attach"
[ "$out" = "hello one" ] || nx_fail "first attach echoed '$out'"
# Reattach through the toolstack's command (it runs noxs-console).
out=$(printf 'hello two\n' | noxsctl console 1 1 -n 10) || nx_fail "reattach (noxsctl console)"
[ "$out" = "hello two" ] || nx_fail "reattach echoed '$out'"

# A second client while one is attached is turned away.
mkfifo "$NX_DIR/hold"
n=$(nx_count 'console 1: client attached' "$NX_DIR/console-back.log")
"$NX_BIN/noxs-console" 1 1 <"$NX_DIR/hold" >/dev/null &
holder=$!
NX_PIDS+=("$holder")
exec 9>"$NX_DIR/hold"
nx_wait 200 "the first client to attach" \
	nx_count_gt 'console 1: client attached' "$NX_DIR/console-back.log" "$n"
busy=$("$NX_BIN/noxs-console" 1 1 </dev/null 2>&1)
rc=$?
case "$busy" in *busy*) ;; *) nx_fail "second client not refused: '$busy'" ;; esac
[ $rc = 1 ] || nx_fail "second client refused with rc $rc, want 1"
exec 9>&- # end of its stdin: the first client leaves
nx_exit_status "$holder" 200
[ "$NX_STATUS" = 0 ] || nx_fail "first client did not leave"

# The escape character detaches (forced with -e, as stdin is no tty): what
# was typed before it reaches the guest, nothing after it does. (Its echo
# may or may not reach this client before it leaves.)
printf 'abc\035def\n' | "$NX_BIN/noxs-console" -e '^]' -n 3 1 1 >/dev/null ||
	nx_fail "escape"
# This client stays until the guest's echo of Z came back, so that no
# earlier echo is left in the backend's buffer for the next client.
mkfifo "$NX_DIR/zin"
"$NX_BIN/noxs-console" 1 1 <"$NX_DIR/zin" >"$NX_DIR/zout" &
z=$!
NX_PIDS+=("$z")
exec 8>"$NX_DIR/zin"
printf 'Z\n' >&8
nx_wait 200 "the guest to echo Z" grep -q Z "$NX_DIR/zout"
exec 8>&-
nx_exit_status "$z" 200
[ "$NX_STATUS" = 0 ] || nx_fail "client after escape: status $NX_STATUS"
want=$(printf 'hello one\nhello two\nabcZ\n')
[ "$(cat "$NX_DIR/in1")" = "$want" ] || nx_fail "guest input after escape: '$(cat "$NX_DIR/in1")'"

# Frontend restart: kill -9, start again, the console works again.
kill -9 "$fe"
wait "$fe" 2>/dev/null
nx_wait 200 "the backend to see the frontend die" grep -q 'console 1: frontend gone' "$NX_DIR/console-back.log"
nx_spawn 1 "$boot" "$NX_BIN/noxs-console-front" -d 1 -- cat >>"$NX_DIR/front1.log" 2>&1
fe=$NX_PID
out=$(printf 'hello three\n' | "$NX_BIN/noxs-console" -n 12 1 1) || nx_fail "after restart"
[ "$out" = "hello three" ] || nx_fail "after restart echoed '$out'"
nx_alive "$NX_CONSBACK" || nx_fail "the backend died"
nx_log "detach/reattach, busy, escape, frontend restart ok"
