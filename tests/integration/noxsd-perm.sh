#!/bin/bash
# A client that is neither root nor the toolstack uid gets EPERM for every
# change (domain create/destroy, dev add/remove) but may list; and noxsd's
# state directory keeps the store to itself.
. "$(dirname "$0")/lib.sh"

# 0666 so that uid 65534 can reach the socket at all: the credential
# check in noxsd is what must refuse it.
# The test directory is private, so the socket goes to a public one.
pub=$(mktemp -d /tmp/noxsd-perm.XXXXXX)
chmod 0755 "$pub"
trap 'rm -rf "$pub"; nx_cleanup' EXIT
export NOXS_SOCKET=$pub/noxsd.sock
nx_start_noxsd --socket-mode 0666 --socket "$NOXS_SOCKET"
nx_domain 1 >/dev/null
"$NX_TESTBIN/noxsd-probe" nonroot "$NOXS_SOCKET" || nx_fail "probe"
grep -q "refusing DOMAIN_CREATE from an unprivileged client" \
	"$NX_DIR/noxsd.log" || nx_fail "refusal not logged"
[ "$(stat -c %a "$NX_STATE")" = 711 ] || nx_fail "state dir mode $(stat -c %a "$NX_STATE")"
[ "$(stat -c %a "$NX_STATE/state.log")" = 600 ] || nx_fail "store mode"
[ "$(stat -c %a "$NX_STATE/keeper.sock")" = 600 ] || nx_fail "keeper socket mode"
nx_log PASS
