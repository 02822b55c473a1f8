#!/bin/bash
# The sysctl driver through the shared driver lifecycle
# (lifecycle-drv-lib.sh); lifecycle-sysctl.sh checks its own details.
DRV_TYPE=sysctl
DRV_SERVING='serving sysctl devices'
DRV_CONN='domain 1: sysctl device 0 connected'
drv_back() { DRV_BACK=("$NX_BIN/noxs-sysctl-back" -d -v --socket "$NOXS_SOCKET"); }
drv_front() { nx_spawn 1 "$1" "$NX_BIN/noxs-sysctl-front" -v; }
. "$(dirname "$0")/lifecycle-drv-lib.sh"
