#!/bin/bash
# Console back-pressure and attach/detach: a guest writing 1 MB with
# nobody attached blocks (ring and backend buffer are far smaller) and
# loses nothing: a client attaching later receives every byte in order.
# Then an echo guest: detach, reattach, a second client is turned away,
# the escape character detaches, and a frontend restart reconnects.
. "$(dirname "$0")/blk-lib.sh"

t_start_noxsd
t_start_console_back
boot=$(t_domain 1)
noxsctl dev-add 1 console 0 >/dev/null || t_fail "dev-add console 0"
noxsctl dev-add 1 console 1 >/dev/null || t_fail "dev-add console 1"
N=$((1 << 20))
head -c $N /dev/urandom >"$T_DIR/data"

# Back-pressure: 1 MB cannot fit in 16 KiB of ring + 64 KiB of buffer, so
# the guest's writer must still be blocked when we look, and must finish
# once a client drains the console.
t_spawn 1 "$boot" "$T_BIN/noxs-console-front" -- cat "$T_DIR/data" \
	>"$T_DIR/front0.log" 2>&1
fe=$T_PID
t_wait 400 "the console to connect" grep -q 'console 0: connected' "$T_DIR/console-back.log"
sleep 0.5 # not a timing assertion: the writer cannot finish without a reader
t_alive "$fe" || t_fail "the guest finished writing 1 MB with nobody reading"
"$T_BIN/noxs-console" -n $N 1 </dev/null >"$T_DIR/got" || t_fail "late client"
cmp "$T_DIR/data" "$T_DIR/got" || t_fail "back-pressured stream differs"
t_exit_status "$fe" 600
st=$T_STATUS
[ "$st" = 0 ] || t_fail "writer guest exit status $st"
t_log "back-pressure: 1 MB held back, then delivered intact"

# Echo guest on console 1 (tee: it also records its input): attach,
# detach, reattach.
t_spawn 1 "$boot" "$T_BIN/noxs-console-front" -d 1 -- tee "$T_DIR/in1" \
	>"$T_DIR/front1.log" 2>&1
fe=$T_PID
t_wait 400 "console 1 to connect" grep -q 'console 1: connected' "$T_DIR/console-back.log"
out=$(printf 'hello one\n' | "$T_BIN/noxs-console" -n 10 1 1) || t_fail "first attach"
[ "$out" = "hello one" ] || t_fail "first attach echoed '$out'"
# Reattach through the toolstack's command (it runs noxs-console).
out=$(printf 'hello two\n' | noxsctl console 1 1 -n 10) || t_fail "reattach (noxsctl console)"
[ "$out" = "hello two" ] || t_fail "reattach echoed '$out'"

# A second client while one is attached is turned away.
mkfifo "$T_DIR/hold"
n=$(t_count 'console 1: client attached' "$T_DIR/console-back.log")
"$T_BIN/noxs-console" 1 1 <"$T_DIR/hold" >/dev/null &
holder=$!
T_PIDS+=("$holder")
exec 9>"$T_DIR/hold"
t_wait 200 "the first client to attach" \
	t_count_gt 'console 1: client attached' "$T_DIR/console-back.log" "$n"
busy=$("$T_BIN/noxs-console" 1 1 </dev/null 2>&1)
rc=$?
case "$busy" in *busy*) ;; *) t_fail "second client not refused: '$busy'" ;; esac
[ $rc = 1 ] || t_fail "second client refused with rc $rc, want 1"
exec 9>&- # end of its stdin: the first client leaves
t_exit_status "$holder" 200
[ "$T_STATUS" = 0 ] || t_fail "first client did not leave"

# The escape character detaches (forced with -e, as stdin is no tty): what
# was typed before it reaches the guest, nothing after it does. (Its echo
# may or may not reach this client before it leaves.)
printf 'abc\035def\n' | "$T_BIN/noxs-console" -e '^]' -n 3 1 1 >/dev/null ||
	t_fail "escape"
# This client stays until the guest's echo of Z came back, so that no
# earlier echo is left in the backend's buffer for the next client.
mkfifo "$T_DIR/zin"
"$T_BIN/noxs-console" 1 1 <"$T_DIR/zin" >"$T_DIR/zout" &
z=$!
T_PIDS+=("$z")
exec 8>"$T_DIR/zin"
printf 'Z\n' >&8
t_wait 200 "the guest to echo Z" grep -q Z "$T_DIR/zout"
exec 8>&-
t_exit_status "$z" 200
[ "$T_STATUS" = 0 ] || t_fail "client after escape: status $T_STATUS"
want=$(printf 'hello one\nhello two\nabcZ\n')
[ "$(cat "$T_DIR/in1")" = "$want" ] || t_fail "guest input after escape: '$(cat "$T_DIR/in1")'"

# Frontend restart: kill -9, start again, the console works again.
kill -9 "$fe"
wait "$fe" 2>/dev/null
t_wait 200 "the backend to see the frontend die" grep -q 'console 1: frontend gone' "$T_DIR/console-back.log"
t_spawn 1 "$boot" "$T_BIN/noxs-console-front" -d 1 -- cat >>"$T_DIR/front1.log" 2>&1
fe=$T_PID
out=$(printf 'hello three\n' | "$T_BIN/noxs-console" -n 12 1 1) || t_fail "after restart"
[ "$out" = "hello three" ] || t_fail "after restart echoed '$out'"
t_alive "$T_CONSBACK" || t_fail "the backend died"
t_log "detach/reattach, busy, escape, frontend restart ok"
