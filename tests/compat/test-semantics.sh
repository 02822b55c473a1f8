#!/bin/bash
# Watches (initial event, order, unwatch), transactions (conflict ->
# EAGAIN, abort, commit) and error cases (missing key, bad transaction
# id, oversize value, bad path) through compat-xs + noxsd give the same
# results as Debian's libxenstore + xenstored: xssem prints one line per
# result, run once against each, outputs diffed.
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools

legacy_xenstored_vif
"$COMPAT_DIR/xssem" 1 >"$NX_DIR/xenstored.out" 2>&1 || nx_fail "xssem (xenstored): $(cat "$NX_DIR/xenstored.out")"

legacy_compat_start "$NX_BIN/legacy-back" "$NX_BIN/legacy-front" \
	"$NX_BIN/legacy-toolstack" "$COMPAT_DIR/xssem" $(command -v xenstore-read \
	xenstore-write xenstore-ls xenstore-list xenstore-exists xenstore-rm \
	xenstore-watch xenstore-chmod)
with_compat "$NX_BIN/legacy-toolstack" introduce 1 || nx_fail "introduce (compat-xs)"
with_compat "$NX_BIN/legacy-toolstack" add 1 vif 0 || nx_fail "toolstack add (compat-xs)"
nx_wait_line "$NX_DIR/back.noxs" '^initwait 1/0'
with_compat 1 "$COMPAT_DIR/xssem" 1 >"$NX_DIR/compat.out" 2>&1 || nx_fail "xssem (compat-xs): $(cat "$NX_DIR/compat.out")"

diff -u "$NX_DIR/xenstored.out" "$NX_DIR/compat.out" || nx_fail "compat-xs differs from xenstored"

# compat-xs only: unsupported paths fail with EACCES and one log line,
# values beyond a page half's limit with E2BIG, never truncated.
out=$(with_compat 1 xenstore-read /vm/abc 2>&1) && nx_fail "read of /vm/abc succeeded"
echo "$out" | grep -q 'compat-xs: read /vm/abc: not a device' || nx_fail "no log line: $out"
[ "$(echo "$out" | grep -c 'compat-xs:')" -eq 1 ] || nx_fail "not one log line: $out"
out=$(COMPAT_XS_QUIET=1 with_compat 1 "$COMPAT_DIR/xssem" -r /vm/abc 2>&1)
nx_expect_eq "read /vm/abc" "$out" "read /vm/abc: Permission denied"
out=$(with_compat 1 "$COMPAT_DIR/xssem" -w /local/domain/1/device/vif/0/big 1500 2>&1)
nx_expect_eq "1500-byte value" "$out" \
	"write /local/domain/1/device/vif/0/big: Argument list too long"
out=$(with_compat 1 "$COMPAT_DIR/xssem" -r /local/domain/1/device/vif/0/big 2>&1)
nx_expect_eq "after the refused write" "$out" \
	"read /local/domain/1/device/vif/0/big: No such file or directory"
v=$(head -c 1500 /dev/zero | tr '\0' v)
with_compat 1 xenstore-write /local/domain/1/device/vif/0/big "$v" 2>/dev/null &&
	nx_fail "1500-byte value accepted by xenstore-write"
echo ok
