#!/bin/bash
# blk grant cache eviction: a backend with a budget of 64 mapped data
# pages for all devices (--max-grants 64, 32 per device while two are
# connected) serves two devices at once, one with the copying API (random
# write/read-back, blkfront's pool is far more than 32 pages) and one with
# zero-copy buffers (16 MB from many granted buffers), from two guests;
# both files must match the guests' shadow copies and the backend must
# have evicted.
# Also: --max-grants 0 (no cache) still serves, bad values are refused.
. "$(dirname "$0")/../lib.sh"

S=$NX_TESTBIN/blk_stress
"$NX_BIN/noxs-blk-back" -d --max-grants -1 >/dev/null 2>&1 && nx_fail "--max-grants -1 accepted"
"$NX_BIN/noxs-blk-back" -d --max-grants 65537 >/dev/null 2>&1 && nx_fail "--max-grants 65537 accepted"
"$NX_BIN/noxs-blk-back" -d --max-grants x >/dev/null 2>&1 && nx_fail "--max-grants x accepted"

nx_start_noxsd
nx_start_blk_back --max-grants 64
boot=$(nx_domain 1)
boot2=$(nx_domain 2)
[ -n "$boot" ] && [ -n "$boot2" ] || nx_fail "no bootstrap string"
g() { nx_guest 1 "$boot" "$@"; }

a=$NX_DIR/a.img
z=$NX_DIR/z.img
truncate -s 16M "$a" "$z"
noxsctl dev-add 2 blk 0 "path=$a" mode=w >/dev/null || nx_fail "dev-add blk 0"
noxsctl dev-add 1 blk 1 "path=$z" mode=w >/dev/null || nx_fail "dev-add blk 1"
nx_spawn 2 "$boot2" "$S" -d 0 random 11 2000 "$NX_DIR/shadow-a" >"$NX_DIR/random.out" 2>&1
rpid=$NX_PID
g "$S" -d 1 zerocopy 5 "$NX_DIR/shadow-z" || nx_fail "zero-copy write/read-back under eviction"
nx_exit_status "$rpid" 2400
[ "$NX_STATUS" = 0 ] || { cat "$NX_DIR/random.out" >&2; nx_fail "random write/read-back under eviction: $NX_STATUS"; }
cmp -s "$a" "$NX_DIR/shadow-a" || nx_fail "device 0 differs from the guest's writes"
cmp -s "$z" "$NX_DIR/shadow-z" || nx_fail "device 1 differs from the zero-copy writes"
nx_wait 200 "both disconnects logged" \
	nx_count_gt 'disconnected (.* evictions' "$NX_DIR/blk-back.log" 1
ev=$(sed -n 's/.*disconnected (.* \([0-9]*\) evictions.*/\1/p' "$NX_DIR/blk-back.log" |
	awk '{ s += $1 } END { print s + 0 }')
[ "$ev" -gt 0 ] || nx_fail "no evictions with a 64-page budget"
nx_log "two devices on a 64-page budget: $ev evictions, both files match"

# No cache at all: every request maps and unmaps its pages.
kill -9 "$NX_BLKBACK"
noxsctl dev-rm 2 blk 0 >/dev/null 2>&1 # the dead backend's devices
noxsctl dev-rm 1 blk 1 >/dev/null 2>&1
nx_start_blk_back --max-grants 0
noxsctl dev-add 1 blk 2 "path=$z" mode=w >/dev/null || nx_fail "dev-add blk 2"
g "$S" -d 2 zerocopy 6 "$NX_DIR/shadow-z" || nx_fail "zero-copy with --max-grants 0"
cmp -s "$z" "$NX_DIR/shadow-z" || nx_fail "device 1 differs (--max-grants 0)"
nx_alive "$NX_BLKBACK" || nx_fail "the backend died"
nx_log "--max-grants 0 serves, bad values refused"
