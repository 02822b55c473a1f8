#!/bin/bash
# A request the guest writes in two parts, as Linux's xenbus may: the
# header (notified), then the payload after noxs-xsringd has seen the
# header alone, with no notification (xenbus notifies only when the
# service had taken everything before, and the service takes a request
# only once whole). The service must look at the ring again by itself:
# with its once-a-second sweep of every ring made longer than the
# guest's wait, the guest is still answered.
. "$(dirname "$0")/lib-compat.sh"
. "$(dirname "$0")/xsringd-lib.sh"

export NOXS_XSRINGD_SWEEP_MS=120000
ringd_start 1
guest_up g1 5 3
for i in 1 2 3; do
	nx_log "split request $i"
	expect g1 "split data/x" "ok private5"
done
expect g1 "read data/x" "ok private5"
echo "PASS: xsringd-split"
