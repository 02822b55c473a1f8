#!/bin/bash
# A hostile blk frontend (bad sector ranges, segment counts and bounds,
# bad grant refs, unknown ops, a request flood, garbage ring indices)
# against noxs-blk-back, while an honest guest uses another device of the
# same backend. The backend must answer every bad request with an error,
# keep serving the other guest, never touch the hostile guest's file, and
# take a normal frontend again afterwards; and refuse a ring offered in
# a layout (protocol) it does not speak.
. "$(dirname "$0")/../lib.sh"

S=$NX_TESTBIN/blk_stress
nx_start_noxsd
nx_start_blk_back
boot1=$(nx_domain 1)
boot2=$(nx_domain 2)

head -c 4194304 /dev/urandom >"$NX_DIR/evil.img"
cp "$NX_DIR/evil.img" "$NX_DIR/evil.orig"
truncate -s 8M "$NX_DIR/good.img"
noxsctl dev-add 1 blk 0 "path=$NX_DIR/evil.img" >/dev/null || nx_fail "dev-add 1"
noxsctl dev-add 2 blk 0 "path=$NX_DIR/good.img" >/dev/null || nx_fail "dev-add 2"

nx_spawn 2 "$boot2" "$S" random 7 2000 "$NX_DIR/shadow" >"$NX_DIR/good.log" 2>&1
good=$NX_PID
nx_guest 1 "$boot1" "$NX_TESTBIN/blk_hostile" 3000 >"$NX_DIR/hostile.log" 2>&1 ||
	nx_fail "hostile frontend: $(tail -n 3 "$NX_DIR/hostile.log")"
nx_exit_status "$good" 1200
st=$NX_STATUS
[ "$st" = 0 ] || nx_fail "the honest guest failed during the attack (status $st)"
cmp -s "$NX_DIR/good.img" "$NX_DIR/shadow" || nx_fail "honest guest's file differs"
nx_alive "$NX_BLKBACK" || nx_fail "the backend died"
cmp -s "$NX_DIR/evil.img" "$NX_DIR/evil.orig" || nx_fail "the hostile guest changed its file"
grep -q 'abandoning the ring' "$NX_DIR/blk-back.log" || nx_fail "no ring abandon logged"
nx_log "$(grep -c '^ok:' "$NX_DIR/hostile.log") hostile checks passed, honest guest unaffected"

# The device works again for a well-behaved frontend.
nx_guest 1 "$boot1" "$NX_BIN/noxs-blk" read 0 65536 "$NX_DIR/head" || nx_fail "reconnect after the attack"
head -c 65536 "$NX_DIR/evil.orig" | cmp -s - "$NX_DIR/head" || nx_fail "read after reconnect differs"
nx_log "normal frontend reconnected"

# A ring offered in a layout the backend does not speak is refused
# (Closing with "error"), not served; the device then serves a
# well-behaved frontend again.
nx_guest 1 "$boot1" "$NX_TESTBIN/blk_hostile" -P x86_32-abi >"$NX_DIR/proto.log" 2>&1 ||
	nx_fail "foreign protocol: $(tail -n 3 "$NX_DIR/proto.log")"
grep -q 'unsupported protocol' "$NX_DIR/blk-back.log" || nx_fail "no refusal logged"
nx_guest 1 "$boot1" "$NX_BIN/noxs-blk" read 0 65536 "$NX_DIR/head2" || nx_fail "reconnect after the refusal"
cmp -s "$NX_DIR/head" "$NX_DIR/head2" || nx_fail "read after the refusal differs"
nx_log "foreign protocol refused, normal frontend reconnected"
