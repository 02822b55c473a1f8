#!/bin/sh
# The same legacy binaries as test-legacy-xenstored.sh, unmodified, on
# compat-xs + noxsd: LD_LIBRARY_PATH is the only difference.
. "$(dirname "$0")/lib.sh"

expect_compat "$BIN/legacy-back" "$BIN/legacy-front" "$BIN/legacy-toolstack"
noxs_start
log=$WORK/back.log
compat_exec "$BIN/legacy-back" -n 3 >"$log" 2>&1 &
back=$!
at_exit "kill $back"
wait_line "$log" '^ready'
for dom in 1 2 3; do
	with_compat "$BIN/legacy-toolstack" introduce $dom || fail "introduce $dom"
	with_compat "$BIN/legacy-toolstack" add $dom vif 0 || fail "add $dom"
	out=$(with_compat $dom "$BIN/legacy-front" $dom vif 0) || fail "front $dom: $out"
	expect_eq "front $dom" "$out" "connected /local/domain/0/backend/vif/$dom/0
closed"
	wait_line "$log" "^closed $dom/0"
	with_compat "$BIN/legacy-toolstack" rm $dom vif 0 || fail "rm $dom"
done
wait $back || fail "legacy-back exit status: $(cat "$log")"
for dom in 1 2 3; do
	grep -q "^initwait $dom/0" "$log" && grep -q "^connected $dom/0" "$log" ||
		fail "backend log: $(cat "$log")"
done
echo ok
