#!/bin/bash
# Data grants by direction: a frontend that grants the pages of a write
# read-only (all the backend needs to read them) gets its write done and
# the data on disk; a read into a read-only grant is refused (-6) and the
# backend keeps serving. Both with persistent grants (the backend keeps
# writable mappings cached, so a read-only page is mapped for its request
# only) and without.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_blk_back
boot1=$(nx_domain 1)

yes 'read-only grant' | head -c 4096 >"$NX_DIR/want"
for mode in persistent n; do
	id=$([ $mode = n ] && echo 1 || echo 0)
	truncate -s 1M "$NX_DIR/disk$id.img"
	noxsctl dev-add 1 blk $id "path=$NX_DIR/disk$id.img" >/dev/null ||
		nx_fail "dev-add 1 blk $id"
	flag=$([ $mode = n ] && echo -n || true)
	nx_guest 1 "$boot1" "$NX_TESTBIN/blk_hostile" -R $flag -d $id \
		>"$NX_DIR/ro$id.log" 2>&1 ||
		nx_fail "$mode: $(cat "$NX_DIR/ro$id.log")"
	head -c 4096 "$NX_DIR/disk$id.img" | cmp -s - "$NX_DIR/want" ||
		nx_fail "$mode: sector 0 does not hold the written data"
	nx_alive "$NX_BLKBACK" || nx_fail "the backend died"
	nx_log "$mode: $(grep -c '^ok:' "$NX_DIR/ro$id.log") checks passed"
done

# The backend still serves a normal frontend.
nx_guest 1 "$boot1" "$NX_BIN/noxs-blk" -d 0 read 0 4096 "$NX_DIR/head" ||
	nx_fail "normal frontend after the read-only grants"
cmp -s "$NX_DIR/head" "$NX_DIR/want" || nx_fail "normal read differs"
nx_log "normal frontend ok"
