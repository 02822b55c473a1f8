#!/bin/bash
# Several frontend processes in one guest: the device page's notify port
# can be bound by one of them only. With noxs-console-front holding it,
# noxs-blk in the same domain must still attach its disk, and a second
# noxs-blk waiting for a disk that does not exist yet must see it appear
# (it watches the page's generation instead of the port).
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_blk_back
nx_start_console_back
boot=$(nx_domain 1)
[ -n "$boot" ] || nx_fail "no bootstrap string"

noxsctl dev-add 1 console 0 >/dev/null || nx_fail "dev-add console 0"
nx_spawn 1 "$boot" "$NX_BIN/noxs-console-front" -w 60 -- sleep 60 \
	>"$NX_DIR/cons-front.log" 2>&1
nx_wait 200 "the console frontend to connect" nx_dev_states_is 1 console 0 "Connected Connected"

img=$NX_DIR/disk.img
truncate -s 1M "$img"
printf 'blk-beside-console' | dd of="$img" conv=notrunc 2>/dev/null
noxsctl dev-add 1 blk 0 "path=$img" mode=w >/dev/null || nx_fail "dev-add blk 0"
nx_guest 1 "$boot" "$NX_BIN/noxs-blk" -t 30 read 0 4096 "$NX_DIR/r0" 2>"$NX_DIR/blk.err" ||
	nx_fail "noxs-blk beside the console frontend: $(cat "$NX_DIR/blk.err")"
grep -q blk-beside-console "$NX_DIR/r0" || nx_fail "wrong data read"
nx_log "a second frontend process attached its disk"

# A disk added while the second process waits for it.
nx_spawn 1 "$boot" "$NX_BIN/noxs-blk" -d 1 -t 30 read 0 4096 "$NX_DIR/r1" \
	2>"$NX_DIR/blk1.err"
waiter=$NX_PID
sleep 0.3
noxsctl dev-add 1 blk 1 "path=$img" mode=r >/dev/null || nx_fail "dev-add blk 1"
nx_exit_status "$waiter" 600
[ "$NX_STATUS" = 0 ] || nx_fail "waiting noxs-blk: status $NX_STATUS: $(cat "$NX_DIR/blk1.err")"
grep -q blk-beside-console "$NX_DIR/r1" || nx_fail "wrong data read from disk 1"
nx_log "a disk added later reached the waiting process"
nx_alive "$(pgrep -f 'noxs-console-front -w 60' | head -n 1)" ||
	nx_fail "the console frontend died: $(cat "$NX_DIR/cons-front.log")"
echo ok
