#!/bin/bash
# The README's "Running on the simulator by hand" block works when pasted:
# it is taken from README.md between its markers, so this test breaks when
# the README drifts, and run as it stands (only `make` is a no-op here: the
# harness built the tree, perhaps elsewhere, which build/ points to). It
# must finish, print the guest's acknowledgement, and leave no process and
# no file behind.
. "$(dirname "$0")/../lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
# Whatever the block left running (it failed, or this test did) is ended
# by pid: every such process names our directory on its command line.
end_left() {
	local pid
	for pid in $(pgrep -f -- "$NX_DIR/tmp"); do
		kill -9 "$pid" 2>/dev/null
	done
	return 0
}
trap 'end_left; nx_cleanup' EXIT
block=$(sed -n '/^<!-- by-hand: begin/,/^<!-- by-hand: end/p' "$SRC/README.md" |
	sed -e '1,/^```sh$/d' -e '/^```$/,$d')
[ -n "$block" ] || nx_fail "README.md has no by-hand block between its markers"
grep -q '^make$' <<<"$block" || nx_fail "the block does not build first"

work=$NX_DIR/paste
mkdir -p "$work" "$NX_DIR/tmp"
ln -s "$NX_BUILD" "$work/build"
{
	echo 'make() { :; }'
	printf '%s\n' "$block"
} >"$NX_DIR/block.sh"

# A fresh shell, none of this harness's variables; its mktemp -d lands in
# our directory, so that what it leaves behind can be seen.
(cd "$work" && env -u NOXS_SOCKET -u NOXS_SIM_DIR -u LD_LIBRARY_PATH \
	TMPDIR="$NX_DIR/tmp" timeout 120 bash -eu "$NX_DIR/block.sh") \
	>"$NX_DIR/out.log" 2>&1
rc=$?
[ $rc = 0 ] || nx_fail "the README block failed (rc $rc): $(cat "$NX_DIR/out.log")"
grep -qx poweroff "$NX_DIR/out.log" ||
	nx_fail "no acknowledgement printed: $(cat "$NX_DIR/out.log")"

# Nothing left: no process started from it (their command lines and the
# simulator's guardians name its directories), no file in its TMPDIR.
left() { pgrep -f -- "$NX_DIR/tmp" >/dev/null; }
for ((i = 0; i < 100; i++)); do
	left || break
	sleep 0.05
done
if left; then
	ps -o pid,args -p "$(pgrep -d, -f -- "$NX_DIR/tmp")" >&2
	nx_fail "the README block left processes behind"
fi
[ -z "$(ls -A "$NX_DIR/tmp")" ] ||
	nx_fail "the README block left files behind: $(ls -A "$NX_DIR/tmp")"
nx_log "the README's by-hand block runs as pasted and cleans up"
exit 0
