#!/bin/bash
# Several frontend processes in one guest: the device page's notify port
# can be bound by one of them only. With noxs-console-front holding it,
# noxs-blk in the same domain must still attach its disk, and a second
# noxs-blk waiting for a disk that does not exist yet must see it appear
# (it watches the page's generation instead of the port).
. "$(dirname "$0")/blk-lib.sh"

t_start_noxsd
t_start_blk_back
t_start_console_back
boot=$(t_domain 1)
[ -n "$boot" ] || t_fail "no bootstrap string"

noxsctl dev-add 1 console 0 >/dev/null || t_fail "dev-add console 0"
t_spawn 1 "$boot" "$T_BIN/noxs-console-front" -w 60 -- sleep 60 \
	>"$T_DIR/cons-front.log" 2>&1
t_wait 200 "the console frontend to connect" t_dev_states_is 1 console 0 "Connected Connected"

img=$T_DIR/disk.img
truncate -s 1M "$img"
printf 'blk-beside-console' | dd of="$img" conv=notrunc 2>/dev/null
noxsctl dev-add 1 blk 0 "path=$img" mode=w >/dev/null || t_fail "dev-add blk 0"
t_guest 1 "$boot" "$T_BIN/noxs-blk" -t 30 read 0 4096 "$T_DIR/r0" 2>"$T_DIR/blk.err" ||
	t_fail "noxs-blk beside the console frontend: $(cat "$T_DIR/blk.err")"
grep -q blk-beside-console "$T_DIR/r0" || t_fail "wrong data read"
t_log "a second frontend process attached its disk"

# A disk added while the second process waits for it.
t_spawn 1 "$boot" "$T_BIN/noxs-blk" -d 1 -t 30 read 0 4096 "$T_DIR/r1" \
	2>"$T_DIR/blk1.err"
waiter=$T_PID
sleep 0.3
noxsctl dev-add 1 blk 1 "path=$img" mode=r >/dev/null || t_fail "dev-add blk 1"
t_exit_status "$waiter" 600
[ "$T_STATUS" = 0 ] || t_fail "waiting noxs-blk: status $T_STATUS: $(cat "$T_DIR/blk1.err")"
grep -q blk-beside-console "$T_DIR/r1" || t_fail "wrong data read from disk 1"
t_log "a disk added later reached the waiting process"
t_alive "$(pgrep -f 'noxs-console-front -w 60' | head -n 1)" ||
	t_fail "the console frontend died: $(cat "$T_DIR/cons-front.log")"
echo ok
