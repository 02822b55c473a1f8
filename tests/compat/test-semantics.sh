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
noxs_start
with_compat "$BIN/legacy-back" >"$WORK/back.noxs" 2>&1 &
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
echo "$out" | grep -q 'Permission denied' || fail "not EACCES: $out"
v=$(head -c 1500 /dev/zero | tr '\0' v)
out=$(with_compat 1 xenstore-write /local/domain/1/device/vif/0/big "$v" 2>&1) &&
	fail "1500-byte value accepted"
echo "$out" | grep -q 'Argument list too long' || fail "not E2BIG: $out"
echo ok
