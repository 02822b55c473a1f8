#!/bin/bash
# Transactions of many writes. As the toolstack (xssem -t): one key
# rewritten 130 times, ten keys written ten times over, seventy distinct
# keys of one existing device; the results and the values read back are
# the same as with Debian's libxenstore + xenstored. compat-xs only: a
# transaction that creates a device with more nodes than one device add
# carries fails with E2BIG and creates nothing; a guest that writes to
# 65 of its devices in one transaction publishes every one (dom0 reads
# each back through the backend).
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools

legacy_xenstored_vif
"$COMPAT_DIR/xssem" -t 1 >"$NX_DIR/xenstored.out" 2>&1 ||
	nx_fail "xssem -t (xenstored): $(cat "$NX_DIR/xenstored.out")"

legacy_compat_start "$NX_BIN/legacy-back" "$NX_BIN/legacy-toolstack" \
	"$COMPAT_DIR/xssem"
for dom in 1 2; do
	with_compat "$NX_BIN/legacy-toolstack" introduce $dom || nx_fail "introduce $dom"
done
with_compat "$NX_BIN/legacy-toolstack" add 1 vif 0 || nx_fail "toolstack add (compat-xs)"
nx_wait_line "$NX_DIR/back.noxs" '^initwait 1/0'
with_compat "$COMPAT_DIR/xssem" -t 1 >"$NX_DIR/compat.out" 2>&1 ||
	nx_fail "xssem -t (compat-xs): $(cat "$NX_DIR/compat.out")"
diff -u "$NX_DIR/xenstored.out" "$NX_DIR/compat.out" || nx_fail "compat-xs differs from xenstored"

# One device add carries the class and at most 31 nodes: beyond, the
# transaction fails whole and no device appears.
b=/local/domain/0/backend/vif/2
out=$(with_compat "$COMPAT_DIR/xssem" -x $b/0 40 2>&1)
nx_expect_eq "40-node device add" "$out" "tx 40 keys: Argument list too long"
out=$(with_compat "$COMPAT_DIR/xssem" -r $b/0/n0 2>&1)
nx_expect_eq "after the refused add" "$out" "read $b/0/n0: No such file or directory"
out=$(with_compat "$COMPAT_DIR/xssem" -x $b/1 32 2>&1)
nx_expect_eq "32-node device add" "$out" "tx 32 keys: Argument list too long"
out=$(with_compat "$COMPAT_DIR/xssem" -x $b/2 31 2>&1)
nx_expect_eq "31-node device add" "$out" "tx 31 keys: ok"
out=$(with_compat "$COMPAT_DIR/xssem" -r $b/2/n30 2>&1)
nx_expect_eq "after the add" "$out" "read $b/2/n30: x30"

# A guest with 65 devices writes to all of them in one transaction.
N=65
for id in $(seq 1 $((N - 1))); do
	with_compat "$NX_BIN/legacy-toolstack" add 1 vif $id || nx_fail "add 1/$id"
done
nx_wait_line "$NX_DIR/back.noxs" "^initwait 1/$((N - 1))"
out=$(with_compat 1 "$COMPAT_DIR/xssem" -T 1 $N 2>&1)
nx_expect_eq "guest transaction" "$out" "tx of $N devices: ok
read back by dom0: $N of $N"
echo ok
