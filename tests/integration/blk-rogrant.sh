#!/bin/bash
# Data grants by direction: a frontend that grants the pages of a write
# read-only (all the backend needs to read them) gets its write done and
# the data on disk; a read into a read-only grant is refused (-6) and the
# backend keeps serving. Both with persistent grants (the backend keeps
# writable mappings cached, so a read-only page is mapped for its request
# only) and without.
. "$(dirname "$0")/blk-lib.sh"

t_start_noxsd
t_start_blk_back
boot1=$(t_domain 1)

yes 'read-only grant' | head -c 4096 >"$T_DIR/want"
for mode in persistent n; do
	id=$([ $mode = n ] && echo 1 || echo 0)
	truncate -s 1M "$T_DIR/disk$id.img"
	noxsctl dev-add 1 blk $id "path=$T_DIR/disk$id.img" >/dev/null ||
		t_fail "dev-add 1 blk $id"
	flag=$([ $mode = n ] && echo -n || true)
	t_guest 1 "$boot1" "$T_HELPERS/blk_hostile" -R $flag -d $id \
		>"$T_DIR/ro$id.log" 2>&1 ||
		t_fail "$mode: $(cat "$T_DIR/ro$id.log")"
	head -c 4096 "$T_DIR/disk$id.img" | cmp -s - "$T_DIR/want" ||
		t_fail "$mode: sector 0 does not hold the written data"
	t_alive "$T_BLKBACK" || t_fail "the backend died"
	t_log "$mode: $(grep -c '^ok:' "$T_DIR/ro$id.log") checks passed"
done

# The backend still serves a normal frontend.
t_guest 1 "$boot1" "$T_BIN/noxs-blk" -d 0 read 0 4096 "$T_DIR/head" ||
	t_fail "normal frontend after the read-only grants"
cmp -s "$T_DIR/head" "$T_DIR/want" || t_fail "normal read differs"
t_log "normal frontend ok"
