#!/bin/sh
# Many domains through compat-xs: one legacy-back serves every domain's
# device, one process acts as twelve guests (xssem -m), and events for one
# domain reach that domain's handle only: its writes, removals, an
# unwatch and the toolstack removing its device leave the other eleven
# handles silent. Then the remaining domains' legacy-front handshakes run
# at once against the same backend.
. "$(dirname "$0")/lib.sh"

N=12
K=5
expect_compat "$BIN/legacy-back" "$BIN/legacy-front" "$BIN/legacy-toolstack" \
	"$COMPAT_DIR/xssem"
noxs_start
log=$WORK/back.log
compat_exec "$BIN/legacy-back" -n $N >"$log" 2>&1 &
back=$!
at_exit "kill $back"
wait_line "$log" '^ready'
for dom in $(seq $N); do
	with_compat "$BIN/legacy-toolstack" introduce $dom || fail "introduce $dom"
	with_compat "$BIN/legacy-toolstack" add $dom vif 0 || fail "add $dom"
done
for dom in $(seq $N); do wait_line "$log" "^initwait $dom/0"; done

with_compat 1 "$COMPAT_DIR/xssem" -m 1 $N $K >"$WORK/many.out" 2>&1 ||
	fail "xssem -m: $(cat "$WORK/many.out")"
# Sorted per step, /local/domain/<K>/ shown as /local/domain/D/. The
# frontend's view of its device fires once when the device appears (below
# the watched directory), and goes when the toolstack removes it; a watch
# below a removed directory fires with its own path.
view='  device/vif/0/backend dir
  device/vif/0/backend-id dir
  device/vif/0/handle dir
  device/vif/0/mac dir
  device/vif/0/state dir'
cat >"$WORK/many.want" <<END
initial:
  /local/domain/D/device/vif/0/k key
  /local/domain/D/device/vif/0/k key2
  device/vif/0 dir
  device/vif/0 dir
$view
  the same for $N of $N domains
write: ok
events:
  /local/domain/D/device/vif/0/k key
  /local/domain/D/device/vif/0/k key2
  device/vif/0/k dir
  others: none
rm: ok
events:
  /local/domain/D/device/vif/0/k key
  /local/domain/D/device/vif/0/k key2
  device/vif/0/k dir
  others: none
unwatch key: ok
write: ok
events:
  /local/domain/D/device/vif/0/k key2
  device/vif/0/k dir
  others: none
toolstack rm: ok
events:
  /local/domain/D/device/vif/0/k key2
  /local/domain/D/device/vif/0/k key2
  device/vif/0 dir
  device/vif/0/backend dir
  device/vif/0/backend-id dir
  device/vif/0/handle dir
  device/vif/0/k dir
  device/vif/0/mac dir
  device/vif/0/state dir
  others: none
END
diff -u "$WORK/many.want" "$WORK/many.out" >&2 || fail "xssem -m differs"
wait_line "$log" "^removed $K/0"

# Every other domain's handshake, concurrently, on the same backend.
pids=
for dom in $(seq $N); do
	[ $dom = $K ] && continue
	with_compat $dom "$BIN/legacy-front" $dom vif 0 >"$WORK/front.$dom" 2>&1 &
	pids="$pids $!"
done
for p in $pids; do wait $p || fail "legacy-front: $(cat "$WORK"/front.*)"; done
for dom in $(seq $N); do
	[ $dom = $K ] && continue
	expect_eq "front $dom" "$(cat "$WORK/front.$dom")" \
		"connected /local/domain/0/backend/vif/$dom/0
closed"
	wait_line "$log" "^closed $dom/0"
	with_compat "$BIN/legacy-toolstack" rm $dom vif 0 || fail "rm $dom"
done
wait $back || fail "legacy-back exit status: $(cat "$log")"
[ "$(grep -c '^removed' "$log")" = $N ] || fail "backend log: $(cat "$log")"
echo ok
