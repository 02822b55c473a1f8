#!/bin/bash
# Records whose CRC is right but whose contents are impossible are store
# damage, not something to replay. A store of a DOMAIN_ADD for domain
# 0xffff (past the domain table) and a device of type 9: with no pages in
# the keeper the worker sets it aside and starts empty, saying which
# record is wrong. Then, with live guests, a device of type 9 appended to
# the log: the worker refuses to start and the guests' pages stay as they
# were (a type-9 entry written into a page makes the guest reject it).
. "$(dirname "$0")/../lib.sh"

MKREC=$NX_TESTBIN/noxsd-mkrec
SNAP=$NX_STATE/state.snap
LOG=$NX_STATE/state.log
mkdir -p "$NX_STATE"
chmod 0711 "$NX_STATE"

"$MKREC" "$SNAP" op=1 epoch=5 &&
	"$MKREC" "$SNAP" op=2 domid=0xffff gref=8 port=1 &&
	"$MKREC" "$SNAP" op=2 domid=3 gref=9 port=2 &&
	"$MKREC" "$SNAP" op=4 domid=3 type=9 devid=1 gref=100 port=5 &&
	"$MKREC" "$LOG" op=1 epoch=5 || nx_fail "cannot write the store"
nx_start_noxsd
grep -q "state.snap: record 2 at byte 48: domain id 65535 out of range" "$NX_DIR/noxsd.log" ||
	nx_fail "the bad record is not named"
[ "$(noxsctl domain-list | awk 'NR > 1' | wc -l)" -eq 0 ] ||
	nx_fail "domains replayed from a bad store: $(noxsctl domain-list)"
ls "$NX_STATE" | grep -q '^state\.snap\.damaged-' || nx_fail "bad snapshot not kept"
nx_log "no pages: bad store set aside"

# Live guests, then a record of an unknown device type in the log.
nx_start_testbe be --types 1,3
declare -A boot
for d in 1 2; do
	boot[$d]=$(nx_domain "$d")
	noxsctl dev-add "$d" blk 0 >/dev/null || nx_fail "dev-add $d"
done
nx_stop_noxsd
for d in 1 2; do
	nx_page "$d" "${boot[$d]}" >"$NX_DIR/page-$d.txt" || nx_fail "page of $d"
done
"$MKREC" "$LOG" op=4 domid=1 type=9 devid=1 gref=100 port=5 backend=0 ||
	nx_fail "cannot append"
"$NX_BIN/noxsd" -d -v --state-dir "$NX_STATE" >"$NX_DIR/refused.log" 2>&1 &
pid=$!
NX_PIDS+=("$pid")
for ((i = 0; i < 600; i++)); do
	nx_alive "$pid" || break
	noxsctl status >/dev/null 2>&1 && nx_fail "the worker started on a store with a type-9 device"
	sleep 0.05
done
wait "$pid"
rc=$?
[ "$rc" -eq 1 ] || nx_fail "the worker did not refuse to start (status $rc)"
grep -q "unknown device type 9" "$NX_DIR/refused.log" || nx_fail "the bad record is not named"
grep -q "refusing to start" "$NX_DIR/refused.log" || nx_fail "no refusal"
for d in 1 2; do
	nx_page "$d" "${boot[$d]}" >"$NX_DIR/now.txt" || nx_fail "page of domain $d unreadable"
	cmp -s "$NX_DIR/now.txt" "$NX_DIR/page-$d.txt" || nx_fail "page of domain $d changed"
done
nx_log PASS
