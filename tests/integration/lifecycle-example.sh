#!/bin/bash
# The example driver (examples/) through the lifecycle every driver on
# libnoxs's driver protocol passes (lifecycle-drv-lib.sh).
DRV_TYPE=net
DRV_SERVING='serving net devices'
DRV_CONN='^domain 1: connected$'
drv_back() { DRV_BACK=("$NX_BUILD/examples/noxs-ping-back"); }
drv_front() { nx_spawn 1 "$1" "$NX_BUILD/examples/noxs-ping-front"; }
. "$(dirname "$0")/lifecycle-drv-lib.sh"
