#!/bin/bash
# The console driver through the shared driver lifecycle
# (lifecycle-drv-lib.sh); the guest runs cat on its console.
DRV_TYPE=console
DRV_SERVING='serving console devices'
DRV_CONN='domain 1 console 0: connected'
drv_back() {
	DRV_BACK=("$NX_BIN/noxs-console-back" -d -v --socket "$NOXS_SOCKET"
		--dir "$NOXS_CONSOLE_DIR")
}
drv_front() { nx_spawn 1 "$1" "$NX_BIN/noxs-console-front" -- cat; }
. "$(dirname "$0")/lifecycle-drv-lib.sh"
