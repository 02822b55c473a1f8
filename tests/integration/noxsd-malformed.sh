#!/bin/bash
# Malformed messages (bad version, type, length, truncated, oversized,
# wrong direction) get an ERROR reply and a closed connection; an invalid
# value gets EINVAL and the connection stays; another client keeps working
# throughout and the daemon survives.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
"$NX_TESTBIN/noxsd-probe" malformed "$NOXS_SOCKET" || nx_fail "probe"
noxsctl status >/dev/null || nx_fail "noxsd died"
grep -q "malformed message" "$NX_DIR/noxsd.log" || nx_fail "nothing logged"
nx_log PASS
