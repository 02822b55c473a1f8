#!/bin/bash
# Many domains through compat-xs: one legacy-back serves every domain's
# device, one process acts as twelve guests (xssem -m), and events for one
# domain reach that domain's handle only: its writes, removals, an
# unwatch and the toolstack removing its device leave the other eleven
# handles silent. Then the remaining domains' legacy-front handshakes run
# at once against the same backend.
. "$(dirname "$0")/lib-compat.sh"

N=12
K=5
expect_compat "$NX_BIN/legacy-back" "$NX_BIN/legacy-front" "$NX_BIN/legacy-toolstack" \
	"$COMPAT_DIR/xssem"
nx_start_noxsd
log=$NX_DIR/back.log
legacy_back "$log" --compat -n $N
back=$LEGACY_BACK
for dom in $(seq $N); do
	with_compat "$NX_BIN/legacy-toolstack" introduce $dom || nx_fail "introduce $dom"
	with_compat "$NX_BIN/legacy-toolstack" add $dom vif 0 || nx_fail "add $dom"
done
for dom in $(seq $N); do nx_wait_line "$log" "^initwait $dom/0"; done

with_compat 1 "$COMPAT_DIR/xssem" -m 1 $N $K >"$NX_DIR/many.out" 2>&1 ||
	nx_fail "xssem -m: $(cat "$NX_DIR/many.out")"
# Sorted per step, /local/domain/<K>/ shown as /local/domain/D/. The
# frontend's view of its device fires once when the device appears (below
# the watched directory), and goes when the toolstack removes it; a watch
# below a removed directory fires with its own path.
view='  device/vif/0/backend dir
  device/vif/0/backend-id dir
  device/vif/0/handle dir
  device/vif/0/mac dir
  device/vif/0/state dir'
# A write below k and its removal: each watch of k fires once.
k_events='events:
  /local/domain/D/device/vif/0/k key
  /local/domain/D/device/vif/0/k key2
  device/vif/0/k dir
  others: none'
cat >"$NX_DIR/many.want" <<END
initial:
  /local/domain/D/device/vif/0/k key
  /local/domain/D/device/vif/0/k key2
  device/vif/0 dir
  device/vif/0 dir
$view
  the same for $N of $N domains
write: ok
$k_events
rm: ok
$k_events
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
diff -u "$NX_DIR/many.want" "$NX_DIR/many.out" >&2 || nx_fail "xssem -m differs"
nx_wait_line "$log" "^removed $K/0"

# Every other domain's handshake, concurrently, on the same backend.
pids=
for dom in $(seq $N); do
	[ $dom = $K ] && continue
	with_compat $dom "$NX_BIN/legacy-front" $dom vif 0 >"$NX_DIR/front.$dom" 2>&1 &
	pids="$pids $!"
done
for p in $pids; do wait $p || nx_fail "legacy-front: $(cat "$NX_DIR"/front.*)"; done
for dom in $(seq $N); do
	[ $dom = $K ] && continue
	nx_expect_eq "front $dom" "$(cat "$NX_DIR/front.$dom")" \
		"connected /local/domain/0/backend/vif/$dom/0
closed"
	nx_wait_line "$log" "^closed $dom/0"
	with_compat "$NX_BIN/legacy-toolstack" rm $dom vif 0 || nx_fail "rm $dom"
done
wait $back || nx_fail "legacy-back exit status: $(cat "$log")"
[ "$(grep -c '^removed' "$log")" = $N ] || nx_fail "backend log: $(cat "$log")"
echo ok
