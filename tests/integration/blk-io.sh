#!/bin/bash
# blk data path: random write/read-back of a 64 MB file with up to 32
# requests in flight (the file must then equal the guest's shadow copy),
# the zero-copy buffer API (also on a 4k-sector device), big reads waited
# for oldest first while later ones are queued, discard, flush,
# the noxs-blk CLI, and every per-request error: out of range,
# misaligned, read-only, I/O errors on write and on read, and a device
# add without a path.
. "$(dirname "$0")/../lib.sh"

S=$NX_TESTBIN/blk_stress
nx_start_noxsd
nx_start_blk_back
boot=$(nx_domain 1)
[ -n "$boot" ] || nx_fail "no bootstrap string"
g() { nx_guest 1 "$boot" "$@"; }

img=$NX_DIR/disk.img
truncate -s 64M "$img"
noxsctl dev-add 1 blk 0 "path=$img" mode=w >/dev/null || nx_fail "dev-add blk 0"
g "$S" random 42 3000 "$NX_DIR/shadow" || nx_fail "random write/read-back"
cmp -s "$img" "$NX_DIR/shadow" || nx_fail "the file differs from what the guest wrote"
rm -f "$NX_DIR/shadow"
nx_log "64 MB random write/read-back verified, file matches"

# The zero-copy API (noxs_blkfront_buf_alloc/submit_buf): write 16 MB from
# granted buffers, read back via both APIs; the file must match too.
zc=$NX_DIR/zc.img
truncate -s 16M "$zc"
noxsctl dev-add 1 blk 6 "path=$zc" mode=w >/dev/null || nx_fail "dev-add blk 6"
g "$S" -d 6 zerocopy 7 "$NX_DIR/shadow" || nx_fail "zero-copy write/read-back"
cmp -s "$zc" "$NX_DIR/shadow" || nx_fail "the file differs from the zero-copy writes"
rm -f "$NX_DIR/shadow"
nx_log "16 MB zero-copy write, read back via both APIs, file matches"

# Reads big enough for the backend's workers, several in flight, the
# guest waiting for the oldest before it submits another (and flushing
# among them): answers must not wait for requests it has not sent.
g "$S" -d 6 oldest 11 || nx_fail "big reads answered while later ones are queued"
rm -f "$zc"
nx_log "256 KB reads, 8 in flight, each waited for oldest first: all answered and correct"

# Errors of single requests, and discard reading back as zeros.
size=$((64 << 20))
g "$S" expect read $size 4096 ERANGE || nx_fail "read past the end"
g "$S" expect write $((size - 512)) 4096 ERANGE || nx_fail "write across the end"
g "$S" expect read 100 512 EINVAL || nx_fail "misaligned read"
g "$S" expect flush 0 0 OK || nx_fail "flush"
g "$S" expect discard $((1 << 20)) $((1 << 20)) OK || nx_fail "discard"
g "$S" zeros $((1 << 20)) $((1 << 20)) || nx_fail "discarded range reads zeros"

# The CLI: copy in, copy out.
head -c 1000000 /dev/urandom >"$NX_DIR/in"
truncate -s 1000448 "$NX_DIR/in" # whole sectors
g "$NX_BIN/noxs-blk" -f write 4096 "$NX_DIR/in" || nx_fail "noxs-blk write"
g "$NX_BIN/noxs-blk" read 4096 1000448 "$NX_DIR/out" || nx_fail "noxs-blk read"
cmp -s "$NX_DIR/in" "$NX_DIR/out" || nx_fail "noxs-blk copy in/out differs"
g "$NX_BIN/noxs-blk" info | grep -q '^size 67108864$' || nx_fail "noxs-blk info"
nx_log "errors, discard, CLI ok"

# Read-only device.
ro=$NX_DIR/ro.img
head -c 1048576 /dev/urandom >"$ro"
cp "$ro" "$NX_DIR/ro.orig"
noxsctl dev-add 1 blk 1 "path=$ro" mode=r >/dev/null || nx_fail "dev-add blk 1 (r)"
g "$S" -d 1 expect write 0 4096 EROFS || nx_fail "write on read-only"
g "$S" -d 1 expect discard 0 4096 EROFS || nx_fail "discard on read-only"
g "$S" -d 1 expect read 0 65536 OK || nx_fail "read on read-only"
cmp -s "$ro" "$NX_DIR/ro.orig" || nx_fail "read-only file changed"

# 4096-byte sectors.
k4=$NX_DIR/4k.img
truncate -s 4M "$k4"
noxsctl dev-add 1 blk 2 "path=$k4" sector-size=4096 >/dev/null || nx_fail "dev-add blk 2"
g "$S" -d 2 expect write 512 512 EINVAL || nx_fail "512-byte write on a 4k device"
g "$S" -d 2 expect write 8192 8192 OK || nx_fail "4k write"
g "$NX_BIN/noxs-blk" -d 2 info | grep -q '^sector-size 4096$' || nx_fail "4k info"
g "$S" -d 2 zerocopy 9 "$NX_DIR/shadow4k" || nx_fail "zero-copy API on a 4k device"
cmp -s "$k4" "$NX_DIR/shadow4k" || nx_fail "4k file differs from the zero-copy writes"

# I/O errors: writes to /dev/full fail (ENOSPC), reads of our own unmapped
# low memory through /proc/self/mem fail (EIO).
noxsctl dev-add 1 blk 3 path=/dev/full sectors=2048 >/dev/null || nx_fail "dev-add blk 3"
g "$S" -d 3 expect write 0 4096 EIO || nx_fail "write I/O error"
noxsctl dev-add 1 blk 4 path=/proc/self/mem mode=r sectors=2048 >/dev/null ||
	nx_fail "dev-add blk 4"
g "$S" -d 4 expect read 0 4096 EIO || nx_fail "read I/O error"

# A device add the backend must refuse.
noxsctl dev-add 1 blk 5 mode=w >/dev/null 2>&1 && nx_fail "dev-add without path accepted"
noxsctl dev-add 1 blk 5 path=$NX_DIR/missing >/dev/null 2>&1 && nx_fail "dev-add of a missing file accepted"
nx_alive "$NX_BLKBACK" || nx_fail "the backend died"
nx_log "read-only, 4k sectors, I/O errors, refused adds ok"

# A file that shrinks under the device: reads past its new end are short
# reads, finished with preadv, and answer zeros.
sh=$NX_DIR/shrink.img
head -c $((8 << 20)) /dev/urandom >"$sh"
noxsctl dev-add 1 blk 8 "path=$sh" mode=w >/dev/null || nx_fail "dev-add blk 8"
truncate -s 1M "$sh"
g "$S" -d 8 zeros $((4 << 20)) 65536 || nx_fail "read past the new end of a shrunk file"
nx_alive "$NX_BLKBACK" || nx_fail "the backend died of a read past the end"
nx_log "file shrunk under the device: zeros past its end"

# Cold data (dropped from the page cache where the system lets us):
# reads that go to the disk read right.
cold=$NX_DIR/cold.img
head -c $((8 << 20)) /dev/urandom >"$cold"
sync "$cold"
dd if="$cold" iflag=nocache count=0 status=none 2>/dev/null || true
noxsctl dev-add 1 blk 9 "path=$cold" mode=r >/dev/null || nx_fail "dev-add blk 9"
g "$NX_BIN/noxs-blk" -d 9 read 0 $((8 << 20)) "$NX_DIR/cold.out" || nx_fail "cold read"
cmp -s "$cold" "$NX_DIR/cold.out" || nx_fail "cold read differs from the file"
nx_log "cold file: read right"

# The other read path, with the same write/read-back: preadv alone
# (--no-uring: what a kernel without io_uring gets).
if grep -q 'io_uring unavailable' "$NX_DIR/blk-back.log"; then
	nx_log "io_uring unavailable here: small reads use preadv"
elif [ "$(stat -f -c %T "$NX_DIR")" = tmpfs ]; then
	# An image in memory is read by the ring thread's own preadv.
	grep -q 'image in memory (tmpfs): reads by preadv' "$NX_DIR/blk-back.log" ||
		nx_fail "the backend batched reads of a tmpfs image through io_uring"
	! grep -q 'blk 0: reads batched through io_uring' "$NX_DIR/blk-back.log" ||
		nx_fail "io_uring for an image on tmpfs"
else
	grep -q 'reads batched through io_uring' "$NX_DIR/blk-back.log" ||
		nx_fail "the backend did not say how it does its reads"
fi
n=10
for opts in "--no-uring"; do
	kill "$NX_BLKBACK"
	nx_exit_status "$NX_BLKBACK" 200
	# shellcheck disable=SC2086
	nx_start_blk_back $opts
	img2=$NX_DIR/disk$n.img
	truncate -s 16M "$img2"
	noxsctl dev-add 1 blk $n "path=$img2" mode=w >/dev/null || nx_fail "dev-add blk $n"
	g "$S" -d $n random $n 1000 "$NX_DIR/shadow" || nx_fail "random write/read-back ($opts)"
	cmp -s "$img2" "$NX_DIR/shadow" || nx_fail "the file differs ($opts)"
	nx_log "random write/read-back with $opts verified"
	n=$((n + 1))
done
nx_log "PASS"
