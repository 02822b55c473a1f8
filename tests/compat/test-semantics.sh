#!/bin/sh
# Watches (initial event, order, unwatch), transactions (conflict ->
# EAGAIN, abort, commit) and error cases (missing key, bad transaction
# id, oversize value, bad path) through compat-xs + noxsd give the same
# results as Debian's libxenstore + xenstored: xssem prints one line per
# result, run once against each, outputs diffed.
. "$(dirname "$0")/lib.sh"
need_xen_tools

note xenstored
xsd_start xenstored xenstored
"$BIN/legacy-back" >"$WORK/back.xs" 2>&1 &
at_exit "kill $!"
wait_line "$WORK/back.xs" '^ready'
"$BIN/legacy-toolstack" add 1 vif 0 || fail "toolstack add (xenstored)"
wait_line "$WORK/back.xs" '^initwait 1/0'
"$COMPAT_DIR/xssem" 1 >"$WORK/xenstored.out" 2>&1 || fail "xssem (xenstored): $(cat "$WORK/xenstored.out")"

note compat-xs
xsd_stop xenstored
expect_compat "$BIN/legacy-back" "$BIN/legacy-front" "$BIN/legacy-toolstack" \
	"$COMPAT_DIR/xssem" $(command -v xenstore-read xenstore-write xenstore-ls \
	xenstore-list xenstore-exists xenstore-rm xenstore-watch xenstore-chmod)
noxs_start
compat_exec "$BIN/legacy-back" >"$WORK/back.noxs" 2>&1 &
at_exit "kill $!"
wait_line "$WORK/back.noxs" '^ready'
with_compat "$BIN/legacy-toolstack" introduce 1 || fail "introduce (compat-xs)"
with_compat "$BIN/legacy-toolstack" add 1 vif 0 || fail "toolstack add (compat-xs)"
wait_line "$WORK/back.noxs" '^initwait 1/0'
with_compat 1 "$COMPAT_DIR/xssem" 1 >"$WORK/compat.out" 2>&1 || fail "xssem (compat-xs): $(cat "$WORK/compat.out")"

diff -u "$WORK/xenstored.out" "$WORK/compat.out" || fail "compat-xs differs from xenstored"

# compat-xs only: unsupported paths fail with EACCES and one log line,
# values beyond a page half's limit with E2BIG, never truncated.
out=$(with_compat 1 xenstore-read /vm/abc 2>&1) && fail "read of /vm/abc succeeded"
echo "$out" | grep -q 'compat-xs: read /vm/abc: not a device' || fail "no log line: $out"
[ "$(echo "$out" | grep -c 'compat-xs:')" -eq 1 ] || fail "not one log line: $out"
out=$(COMPAT_XS_QUIET=1 with_compat 1 "$COMPAT_DIR/xssem" -r /vm/abc 2>&1)
expect_eq "read /vm/abc" "$out" "read /vm/abc: Permission denied"
out=$(with_compat 1 "$COMPAT_DIR/xssem" -w /local/domain/1/device/vif/0/big 1500 2>&1)
expect_eq "1500-byte value" "$out" \
	"write /local/domain/1/device/vif/0/big: Argument list too long"
out=$(with_compat 1 "$COMPAT_DIR/xssem" -r /local/domain/1/device/vif/0/big 2>&1)
expect_eq "after the refused write" "$out" \
	"read /local/domain/1/device/vif/0/big: No such file or directory"
v=$(head -c 1500 /dev/zero | tr '\0' v)
with_compat 1 xenstore-write /local/domain/1/device/vif/0/big "$v" 2>/dev/null &&
	fail "1500-byte value accepted by xenstore-write"
echo ok
