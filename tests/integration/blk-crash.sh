#!/bin/bash
# Crash of either side mid-transfer: every write acknowledged (and flushed)
# before the crash is in the file; a killed frontend's device reconnects;
# a killed backend makes the frontend's requests fail instead of hang;
# dev-rm with requests in flight ends them cleanly.
. "$(dirname "$0")/blk-lib.sh"

S=$T_HELPERS/blk_stress
t_start_noxsd
t_start_blk_back
boot=$(t_domain 1)
g() { t_guest 1 "$boot" "$@"; }
acks() { grep -c '^acked' "$1" 2>/dev/null || echo 0; }
acks_ge() { [ "$(acks "$1")" -ge "$2" ]; }
last_ack() { sed -n 's/^acked //p' "$1" | tail -n 1; }

# Large enough that the writers are still writing when they are killed.
truncate -s 256M "$T_DIR/a.img"
noxsctl dev-add 1 blk 0 "path=$T_DIR/a.img" >/dev/null || t_fail "dev-add"

# 1. kill -9 of the frontend in the middle of a stream of writes.
t_spawn 1 "$boot" "$S" crashwriter 11 >"$T_DIR/w1.out" 2>"$T_DIR/w1.log"
w=$T_PID
t_wait 400 "writes to be acknowledged" acks_ge "$T_DIR/w1.out" 20
kill -9 "$w"
wait "$w" 2>/dev/null
n=$(last_ack "$T_DIR/w1.out")
"$S" verify-file "$T_DIR/a.img" 11 "$n" || t_fail "acknowledged writes lost after a frontend crash"
t_wait 200 "the backend to see the frontend die" grep -q 'frontend gone' "$T_DIR/blk-back.log"
g "$S" expect read 0 4096 OK || t_fail "reconnect after a frontend crash"
t_log "frontend crash: blocks 0..$n intact, reconnected"

# 2. kill -9 of the backend: in-flight requests fail, no hang.
t_spawn 1 "$boot" "$S" crashwriter 12 >"$T_DIR/w2.out" 2>"$T_DIR/w2.log"
w=$T_PID
t_wait 400 "writes to be acknowledged" acks_ge "$T_DIR/w2.out" 20
kill -9 "$T_BLKBACK"
t_exit_status "$w" 600
st=$T_STATUS
[ "$st" = 3 ] || t_fail "frontend after backend crash: status $st, want 3"
n=$(last_ack "$T_DIR/w2.out")
"$S" verify-file "$T_DIR/a.img" 12 "$n" || t_fail "acknowledged writes lost after a backend crash"
t_log "backend crash: frontend failed its requests ($(tail -n 1 "$T_DIR/w2.log")), blocks 0..$n intact"

# 3. dev-rm with requests in flight.
noxsctl dev-rm 1 blk 0 >/dev/null 2>&1 # the dead backend's device
t_start_blk_back
truncate -s 256M "$T_DIR/b.img"
noxsctl dev-add 1 blk 1 "path=$T_DIR/b.img" >/dev/null || t_fail "dev-add after restart"
t_spawn 1 "$boot" "$S" -d 1 crashwriter 13 >"$T_DIR/w3.out" 2>"$T_DIR/w3.log"
w=$T_PID
t_wait 400 "writes to be acknowledged" acks_ge "$T_DIR/w3.out" 10
noxsctl dev-rm 1 blk 1 >/dev/null || t_fail "dev-rm"
t_exit_status "$w" 600
st=$T_STATUS
[ "$st" = 3 ] || [ "$st" = 0 ] || t_fail "frontend after dev-rm: status $st"
n=$(last_ack "$T_DIR/w3.out")
"$S" verify-file "$T_DIR/b.img" 13 "$n" || t_fail "acknowledged writes lost at dev-rm"
t_alive "$T_BLKBACK" || t_fail "the backend died at dev-rm"
t_log "dev-rm in flight: frontend ended (status $st), blocks 0..$n intact"
