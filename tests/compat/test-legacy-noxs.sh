#!/bin/bash
# The same legacy binaries as test-legacy-xenstored.sh, unmodified, on
# compat-xs + noxsd: LD_LIBRARY_PATH is the only difference.
. "$(dirname "$0")/lib-compat.sh"

expect_compat "$NX_BIN/legacy-back" "$NX_BIN/legacy-front" "$NX_BIN/legacy-toolstack"
nx_start_noxsd
log=$NX_DIR/back.log
legacy_back "$log" --compat -n 3
back=$LEGACY_BACK
for dom in 1 2 3; do
	with_compat "$NX_BIN/legacy-toolstack" introduce $dom || nx_fail "introduce $dom"
	with_compat "$NX_BIN/legacy-toolstack" add $dom vif 0 || nx_fail "add $dom"
	out=$(with_compat $dom "$NX_BIN/legacy-front" $dom vif 0) || nx_fail "front $dom: $out"
	nx_expect_eq "front $dom" "$out" "connected /local/domain/0/backend/vif/$dom/0
closed"
	nx_wait_line "$log" "^closed $dom/0"
	with_compat "$NX_BIN/legacy-toolstack" rm $dom vif 0 || nx_fail "rm $dom"
done
wait $back || nx_fail "legacy-back exit status: $(cat "$log")"
for dom in 1 2 3; do
	grep -q "^initwait $dom/0" "$log" && grep -q "^connected $dom/0" "$log" ||
		nx_fail "backend log: $(cat "$log")"
done
echo ok
