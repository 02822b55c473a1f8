#!/bin/bash
# A hostile blk frontend (bad sector ranges, segment counts and bounds,
# bad grant refs, unknown ops, a request flood, garbage ring indices)
# against noxs-blk-back, while an honest guest uses another device of the
# same backend. The backend must answer every bad request with an error,
# keep serving the other guest, never touch the hostile guest's file, and
# take a normal frontend again afterwards.
. "$(dirname "$0")/blk-lib.sh"

S=$T_HELPERS/blk_stress
t_start_noxsd
t_start_blk_back
boot1=$(t_domain 1)
boot2=$(t_domain 2)

head -c 4194304 /dev/urandom >"$T_DIR/evil.img"
cp "$T_DIR/evil.img" "$T_DIR/evil.orig"
truncate -s 8M "$T_DIR/good.img"
noxsctl dev-add 1 blk 0 "path=$T_DIR/evil.img" >/dev/null || t_fail "dev-add 1"
noxsctl dev-add 2 blk 0 "path=$T_DIR/good.img" >/dev/null || t_fail "dev-add 2"

t_spawn 2 "$boot2" "$S" random 7 2000 "$T_DIR/shadow" >"$T_DIR/good.log" 2>&1
good=$T_PID
t_guest 1 "$boot1" "$T_HELPERS/blk_hostile" 3000 >"$T_DIR/hostile.log" 2>&1 ||
	t_fail "hostile frontend: $(tail -n 3 "$T_DIR/hostile.log")"
t_exit_status "$good" 1200
st=$T_STATUS
[ "$st" = 0 ] || t_fail "the honest guest failed during the attack (status $st)"
cmp -s "$T_DIR/good.img" "$T_DIR/shadow" || t_fail "honest guest's file differs"
t_alive "$T_BLKBACK" || t_fail "the backend died"
cmp -s "$T_DIR/evil.img" "$T_DIR/evil.orig" || t_fail "the hostile guest changed its file"
grep -q 'abandoning the ring' "$T_DIR/blk-back.log" || t_fail "no ring abandon logged"
t_log "$(grep -c '^ok:' "$T_DIR/hostile.log") hostile checks passed, honest guest unaffected"

# The device works again for a well-behaved frontend.
t_guest 1 "$boot1" "$T_BIN/noxs-blk" read 0 65536 "$T_DIR/head" || t_fail "reconnect after the attack"
head -c 65536 "$T_DIR/evil.orig" | cmp -s - "$T_DIR/head" || t_fail "read after reconnect differs"
t_log "normal frontend reconnected"
