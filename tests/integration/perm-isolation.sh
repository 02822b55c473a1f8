#!/bin/bash
# Isolation between domains, through the simulator's grant rules: a guest
# cannot map another domain's device page or control page; its own device
# page is read-only to it (a write faults); a non-root toolstack client
# cannot change the registry.
. "$(dirname "$0")/../lib.sh"

probe=$NX_BUILD/tests/perm-probe
[ -x "$probe" ] || nx_fail "$probe is missing"

# The socket lives in a directory everyone may enter and is open to all
# (--socket-mode 0666), so that the non-root client really reaches noxsd
# and it is noxsd's credential check (SO_PEERCRED) that refuses it.
sockdir=$(mktemp -d /tmp/noxs-perm.XXXXXX)
chmod 0755 "$sockdir"
trap 'nx_cleanup; rm -rf "$sockdir"' EXIT
export NOXS_SOCKET=$sockdir/noxsd.sock
nx_start_noxsd --socket-mode 0666
nx_start_sysctl_back
boot1=$(nx_domain 1)
boot2=$(nx_domain 2)
nx_sysctl_connect 1 "$boot1"

IFS=: read -r owner devgref _ <<<"${boot1#noxs=}"
ctrlgref=$(noxsctl dev-list 1 --json | tr -d ' \n' |
	sed -n 's/.*"control_gref":\([0-9]*\).*/\1/p')
[ -n "$ctrlgref" ] || nx_fail "no control_gref in dev-list --json"

NOXS_SIM_DOMID=2 "$probe" map "$owner" "$devgref" ||
	nx_fail "domain 2 mapped domain 1's device page"
NOXS_SIM_DOMID=2 "$probe" map 0 "$ctrlgref" ||
	nx_fail "domain 2 mapped domain 1's control page"
NOXS_SIM_DOMID=1 "$probe" readonly "$owner" "$devgref" ||
	nx_fail "domain 1's device page is not read-only to it"
"$probe" nonroot-add 1 || nx_fail "a non-root client changed the registry"
nx_dev_connected 1 || nx_fail "domain 1 lost its connection during the probes"
nx_log "PASS"
