#!/bin/bash
# Crash of either side mid-transfer: every write acknowledged (and flushed)
# before the crash is in the file; a killed frontend's device reconnects;
# a killed backend makes the frontend's requests fail instead of hang;
# dev-rm with requests in flight ends them cleanly.
. "$(dirname "$0")/../lib.sh"

S=$NX_TESTBIN/blk_stress
nx_start_noxsd
nx_start_blk_back
boot=$(nx_domain 1)
g() { nx_guest 1 "$boot" "$@"; }
acks() { grep -c '^acked' "$1" 2>/dev/null || echo 0; }
acks_ge() { [ "$(acks "$1")" -ge "$2" ]; }
last_ack() { sed -n 's/^acked //p' "$1" | tail -n 1; }

# Large enough that the writers are still writing when they are killed.
truncate -s 256M "$NX_DIR/a.img"
noxsctl dev-add 1 blk 0 "path=$NX_DIR/a.img" >/dev/null || nx_fail "dev-add"

# 1. kill -9 of the frontend in the middle of a stream of writes.
nx_spawn 1 "$boot" "$S" crashwriter 11 >"$NX_DIR/w1.out" 2>"$NX_DIR/w1.log"
w=$NX_PID
nx_wait 400 "writes to be acknowledged" acks_ge "$NX_DIR/w1.out" 20
kill -9 "$w"
wait "$w" 2>/dev/null
n=$(last_ack "$NX_DIR/w1.out")
"$S" verify-file "$NX_DIR/a.img" 11 "$n" || nx_fail "acknowledged writes lost after a frontend crash"
nx_wait 200 "the backend to see the frontend die" grep -q 'frontend gone' "$NX_DIR/blk-back.log"
g "$S" expect read 0 4096 OK || nx_fail "reconnect after a frontend crash"
nx_log "frontend crash: blocks 0..$n intact, reconnected"

# 2. kill -9 of the backend: in-flight requests fail, no hang.
nx_spawn 1 "$boot" "$S" crashwriter 12 >"$NX_DIR/w2.out" 2>"$NX_DIR/w2.log"
w=$NX_PID
nx_wait 400 "writes to be acknowledged" acks_ge "$NX_DIR/w2.out" 20
kill -9 "$NX_BLKBACK"
nx_exit_status "$w" 600
st=$NX_STATUS
[ "$st" = 3 ] || nx_fail "frontend after backend crash: status $st, want 3"
n=$(last_ack "$NX_DIR/w2.out")
"$S" verify-file "$NX_DIR/a.img" 12 "$n" || nx_fail "acknowledged writes lost after a backend crash"
nx_log "backend crash: frontend failed its requests ($(tail -n 1 "$NX_DIR/w2.log")), blocks 0..$n intact"

# 3. dev-rm with requests in flight.
noxsctl dev-rm 1 blk 0 >/dev/null 2>&1 # the dead backend's device
nx_start_blk_back
truncate -s 256M "$NX_DIR/b.img"
noxsctl dev-add 1 blk 1 "path=$NX_DIR/b.img" >/dev/null || nx_fail "dev-add after restart"
nx_spawn 1 "$boot" "$S" -d 1 crashwriter 13 >"$NX_DIR/w3.out" 2>"$NX_DIR/w3.log"
w=$NX_PID
nx_wait 400 "writes to be acknowledged" acks_ge "$NX_DIR/w3.out" 10
noxsctl dev-rm 1 blk 1 >/dev/null || nx_fail "dev-rm"
nx_exit_status "$w" 600
st=$NX_STATUS
[ "$st" = 3 ] || [ "$st" = 0 ] || nx_fail "frontend after dev-rm: status $st"
n=$(last_ack "$NX_DIR/w3.out")
"$S" verify-file "$NX_DIR/b.img" 13 "$n" || nx_fail "acknowledged writes lost at dev-rm"
nx_alive "$NX_BLKBACK" || nx_fail "the backend died at dev-rm"
nx_log "dev-rm in flight: frontend ended (status $st), blocks 0..$n intact"
