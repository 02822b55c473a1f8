#!/bin/bash
# The blk driver through the shared driver lifecycle
# (lifecycle-drv-lib.sh); the guest holds the disk, reading from it now
# and then, so that a backend that goes is noticed on the data path too.
DRV_TYPE=blk
DRV_SERVING='serving blk devices'
DRV_CONN='domain 1 blk 0: connected'
drv_back() {
	DRV_BACK=("$NX_BIN/noxs-blk-back" -d -v --socket "$NOXS_SOCKET")
}
drv_dev_add() {
	[ -f "$NX_DIR/disk.img" ] || truncate -s 4M "$NX_DIR/disk.img"
	noxsctl dev-add 1 blk 0 "path=$NX_DIR/disk.img"
}
drv_front() { nx_spawn 1 "$1" "$NX_TESTBIN/blk_stress" hold; }
. "$(dirname "$0")/lifecycle-drv-lib.sh"
