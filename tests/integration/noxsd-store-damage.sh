#!/bin/bash
# A damaged or missing store must not cost running guests their device
# pages. Five domains with a device each are compacted (SIGHUP) into
# state.snap and the worker is stopped; then the snapshot is cut short,
# replaced by garbage, deleted (the log says there should be one), has one
# byte flipped, or is replaced by a directory. Each time the worker must
# refuse to start (exit 1, the file and its defect in the log) and leave
# every guest's page and the store's files as they were. noxsd
# --rebuild-store then rebuilds the store from the keeper's pages: all
# five domains and devices are back, pages unchanged, and work goes on.
# Last, with no pages in a new keeper, a damaged store is set aside and
# the worker starts empty.
. "$(dirname "$0")/../lib.sh"

NDOM=5
SNAP=$NX_STATE/state.snap
LOG=$NX_STATE/state.log

nx_start_noxsd
nx_start_testbe be --types 1,3
declare -A boot
for d in $(seq 1 $NDOM); do
	boot[$d]=$(nx_domain "$d")
	noxsctl dev-add "$d" blk 0 >/dev/null || nx_fail "dev-add $d blk 0"
done
kp=$(nx_keeper_pid)
# Compacted: the log holds only its EPOCH record (8 + 40 bytes).
compacted() { [ "$(stat -c %s "$LOG")" -eq 48 ]; }
kill -HUP "$NX_NOXSD"
nx_wait 200 "the compaction" compacted
nx_stop_noxsd
for d in $(seq 1 $NDOM); do
	nx_page "$d" "${boot[$d]}" >"$NX_DIR/page-$d.txt" || nx_fail "page of $d"
	grep -q '^3 0 ' "$NX_DIR/page-$d.txt" || nx_fail "domain $d: no device in its page"
done
cp "$SNAP" "$NX_DIR/saved-snap.bin"
cp "$LOG" "$NX_DIR/saved-log.bin"

pages_intact() {
	local d
	nx_alive "$kp" || nx_fail "$1: the keeper is gone"
	[ "$(nx_keeper_pid)" = "$kp" ] || nx_fail "$1: another keeper"
	for d in $(seq 1 $NDOM); do
		nx_page "$d" "${boot[$d]}" >"$NX_DIR/now.txt" ||
			nx_fail "$1: page of domain $d is gone"
		cmp -s "$NX_DIR/now.txt" "$NX_DIR/page-$d.txt" ||
			nx_fail "$1: page of domain $d changed: $(cat "$NX_DIR/now.txt")"
	done
}

# start_worker NAME: run a worker; 0 if it started (then stopped again),
# else its exit status. Bounded: it must do one or the other.
start_worker() {
	local name=$1 pid i
	"$NX_BIN/noxsd" -d -v --state-dir "$NX_STATE" >"$NX_DIR/$name.log" 2>&1 &
	pid=$!
	NX_PIDS+=("$pid")
	for ((i = 0; i < 600; i++)); do
		if ! nx_alive "$pid"; then
			wait "$pid"
			return $?
		fi
		if noxsctl status >/dev/null 2>&1; then
			kill -TERM "$pid"
			wait "$pid"
			return 0
		fi
		sleep 0.05
	done
	nx_fail "$name: the worker neither started nor exited"
}

# The state directory's files (name, kind, size, mtime), the pidfile aside.
listing() {
	find "$NX_STATE" -mindepth 1 -maxdepth 1 ! -name noxsd.pid \
		-printf '%f %y %s %T@\n' | sort
}

damage() {
	case $1 in
	truncate) truncate -s 150 "$SNAP" ;;
	garbage) yes 'not a store record' | head -c 400 >"$SNAP" ;;
	delete) rm "$SNAP" ;;
	flipbyte) printf '\xff' | dd of="$SNAP" bs=1 seek=100 conv=notrunc 2>/dev/null ;;
	dirfile) rm "$SNAP" && mkdir "$SNAP" ;;
	esac
}

declare -A why=(
	[truncate]="state.snap: record 4 at byte 144 is cut short"
	[garbage]="state.snap: record 1 at byte 0 has a bad length"
	[delete]="state.log is from epoch 2 but there is no state.snap"
	[flipbyte]="state.snap: record 3 at byte 96 has a bad CRC"
	[dirfile]="state.snap: not a regular file"
)
for mode in truncate garbage delete flipbyte dirfile; do
	rm -rf "$SNAP"
	cp "$NX_DIR/saved-snap.bin" "$SNAP"
	cp "$NX_DIR/saved-log.bin" "$LOG"
	damage "$mode"
	listing >"$NX_DIR/ls-before.txt"
	[ -d "$SNAP" ] || cp -p "$SNAP" "$NX_DIR/damaged.snap" 2>/dev/null
	start_worker "refused-$mode"
	rc=$?
	[ "$rc" -eq 1 ] || nx_fail "$mode: the worker did not refuse to start (status $rc)"
	grep -q "refusing to start" "$NX_DIR/refused-$mode.log" ||
		nx_fail "$mode: no refusal in the log"
	grep -qF "${why[$mode]}" "$NX_DIR/refused-$mode.log" ||
		nx_fail "$mode: the log does not say \"${why[$mode]}\""
	grep -q -- "--rebuild-store" "$NX_DIR/refused-$mode.log" ||
		nx_fail "$mode: the log does not say what to do"
	pages_intact "$mode"
	# The store's files are as they were found: nothing truncated,
	# compacted, created or set aside.
	listing >"$NX_DIR/ls-after.txt"
	cmp -s "$NX_DIR/ls-before.txt" "$NX_DIR/ls-after.txt" ||
		nx_fail "$mode: the state directory changed: $(diff "$NX_DIR/ls-before.txt" "$NX_DIR/ls-after.txt")"
	cmp -s "$LOG" "$NX_DIR/saved-log.bin" || nx_fail "$mode: state.log changed"
	[ -d "$SNAP" ] || [ ! -e "$SNAP" ] || cmp -s "$SNAP" "$NX_DIR/damaged.snap" ||
		nx_fail "$mode: state.snap changed"
	nx_log "$mode: refused, pages intact"
done

# The store was deleted altogether (a keeper with pages beside nothing).
rm -rf "$SNAP" "$LOG"
start_worker refused-missing
rc=$?
[ "$rc" -eq 1 ] || nx_fail "missing store: the worker did not refuse (status $rc)"
grep -q "store in .* is missing" "$NX_DIR/refused-missing.log" ||
	nx_fail "missing store: not said"
[ ! -e "$LOG" ] || nx_fail "missing store: an empty store was created"
pages_intact missing

# Rebuild from the keeper (over a flipped snapshot), then start.
cp "$NX_DIR/saved-snap.bin" "$SNAP"
cp "$NX_DIR/saved-log.bin" "$LOG"
damage flipbyte
"$NX_BIN/noxsd" --rebuild-store --state-dir "$NX_STATE" >"$NX_DIR/rebuild.log" 2>&1 ||
	nx_fail "noxsd --rebuild-store failed"
grep -q "rebuilt from the page keeper: $NDOM domain(s), $NDOM device(s)" "$NX_DIR/rebuild.log" ||
	nx_fail "rebuild: not the keeper's $NDOM domains and devices"
ls "$NX_STATE" | grep -q '^state\.snap\.damaged-' || nx_fail "damaged snapshot not kept"
pages_intact rebuild
nx_start_noxsd
nx_wait 200 "the backend to reconnect" nx_has_backends 1
[ "$(noxsctl domain-list | awk 'NR > 1' | wc -l)" -eq "$NDOM" ] ||
	nx_fail "domains after the rebuild: $(noxsctl domain-list)"
nx_wait 200 "the backend's re-sync" grep -q 'synchronised' "$NX_DIR/noxsd.log"
[ "$(noxsctl dev-list all | awk 'NR > 1' | wc -l)" -eq "$NDOM" ] ||
	nx_fail "devices after the rebuild: $(noxsctl dev-list all)"
pages_intact "after rebuild"
noxsctl dev-add 1 blk 7 >/dev/null || nx_fail "dev-add after the rebuild"
noxsctl domain-destroy "$NDOM" || nx_fail "domain-destroy after the rebuild"
nx_log "rebuilt from the keeper: $NDOM domains kept"

# Nothing to lose: no keeper (so a new one, with no pages), a damaged
# store. It is set aside and the worker starts empty.
nx_stop_noxsd
"$NX_BIN/noxsd" --stop --teardown --state-dir "$NX_STATE" >/dev/null 2>&1
nx_wait 200 "the keeper to exit" eval '! nx_alive '"$kp"
truncate -s 100 "$SNAP"
rm -f "$NX_STATE"/state.*.damaged-*
nx_start_noxsd
grep -q "The page keeper holds no device page" "$NX_DIR/noxsd.log" ||
	nx_fail "no pages: damage not reported"
ls "$NX_STATE" | grep -q '^state\.snap\.damaged-' || nx_fail "no pages: damaged snapshot not kept"
[ "$(noxsctl domain-list | awk 'NR > 1' | wc -l)" -eq 0 ] ||
	nx_fail "no pages: domains listed: $(noxsctl domain-list)"
nx_domain 9 >/dev/null
nx_log PASS
