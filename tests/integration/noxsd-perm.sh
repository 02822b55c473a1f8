#!/bin/bash
# A client that is neither root nor the toolstack uid gets EPERM for every
# change (domain create/destroy, dev add/remove) but may list; and noxsd's
# state directory keeps the store to itself.
. "$(dirname "$0")/../lib.sh"

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
nx_log "PASS (unprivileged client)"

# --toolstack-uid: that uid may change the registry, any other still may
# not. A second noxsd (own socket and state) with --toolstack-uid 65534.
ts_state=$NX_DIR/state-ts
"$NX_BIN/noxsd" -d -v --state-dir "$ts_state" --socket "$pub/ts.sock" \
	--socket-mode 0666 --toolstack-uid 65534 >>"$NX_DIR/noxsd-ts.log" 2>&1 &
NX_PIDS+=($!)
nx_wait 200 "the second noxsd to answer" env NOXS_SOCKET="$pub/ts.sock" \
	"$NX_BIN/noxsctl" status
"$NX_TESTBIN/noxsd-probe" toolstack "$pub/ts.sock" || {
	kill -9 "$(cat "$ts_state/keeper.pid" 2>/dev/null)" 2>/dev/null
	nx_fail "toolstack-uid probe"
}
grep -q "refusing DOMAIN_CREATE from an unprivileged client" \
	"$NX_DIR/noxsd-ts.log" || nx_fail "uid 65533's refusal not logged"
"$NX_BIN/noxsd" --stop --teardown --state-dir "$ts_state" >/dev/null 2>&1 || true
kill -9 "$(cat "$ts_state/keeper.pid" 2>/dev/null)" 2>/dev/null || true
nx_log "PASS (toolstack uid)"
