#!/bin/bash
# noxsd refuses a state directory or a socket directory that is a symbolic
# link (someone may have planted it where the directory was expected) or
# is owned by another uid, with a message and exit status 1, and changes
# nothing where the link points.
. "$(dirname "$0")/../lib.sh"

# A sticky world-writable directory, like /tmp, where another user can
# plant things (the test directory itself is private).
pub=$(mktemp -d /tmp/noxsd-statedir.XXXXXX)
chmod 1777 "$pub"
cleanup() {
	local d k
	for d in "$pub"/*; do
		[ -d "$d" ] || continue
		k=$(cat "$d/keeper.pid" 2>/dev/null)
		"$NX_BIN/noxsd" --stop --teardown --state-dir "$d" >/dev/null 2>&1
		[ -n "$k" ] && kill -9 "$k" 2>/dev/null
	done
	rm -rf "$pub"
	nx_cleanup
}
trap cleanup EXIT
as_nobody() {
	if command -v setpriv >/dev/null; then
		setpriv --reuid 65534 --regid 65534 --clear-groups "$@"
	else
		"$@"
	fi
}

# refused WHAT PATTERN NOXSD-ARGS...: noxsd must exit 1 at once (a noxsd
# that started would run until the timeout) saying PATTERN.
refused() {
	local what=$1 pat=$2 rc
	shift 2
	timeout 10 "$NX_BIN/noxsd" -d "$@" >"$NX_DIR/out" 2>&1
	rc=$?
	cat "$NX_DIR/out" >>"$NX_DIR/noxsd.log"
	[ "$rc" = 1 ] || nx_fail "$what: exit status $rc, want 1"
	grep -q "$pat" "$NX_DIR/out" || nx_fail "$what: no '$pat' in: $(cat "$NX_DIR/out")"
	nx_log "ok: $what: $(head -n 1 "$NX_DIR/out")"
}

# The victim: a directory of root's that others may list.
mkdir -m 0755 "$pub/victim"
as_nobody ln -s "$pub/victim" "$pub/link"
refused "state dir symlink" "symbolic link" --state-dir "$pub/link"
refused "state dir symlink/" "symbolic link" --state-dir "$pub/link/"
[ "$(stat -c %a "$pub/victim")" = 755 ] || nx_fail "victim's mode changed to $(stat -c %a "$pub/victim")"
[ -z "$(ls -A "$pub/victim")" ] || nx_fail "noxsd wrote into the victim: $(ls -A "$pub/victim")"

# A dangling link: mkdir must not create its target.
as_nobody ln -s "$pub/nothere" "$pub/dangling"
refused "dangling symlink" "symbolic link" --state-dir "$pub/dangling"
[ ! -e "$pub/nothere" ] || nx_fail "noxsd created the dangling link's target"

# A directory someone else made first.
as_nobody mkdir -m 0777 "$pub/theirs"
if [ "$(stat -c %u "$pub/theirs")" != 0 ]; then
	refused "foreign state dir" "owned by uid" --state-dir "$pub/theirs"
	[ "$(stat -c %a "$pub/theirs")" = 777 ] || nx_fail "foreign dir's mode changed"
	refused "foreign socket dir" "owned by uid" --state-dir "$pub/own1" \
		--socket "$pub/theirs/noxsd.sock"
	[ ! -e "$pub/theirs/noxsd.sock" ] || nx_fail "socket created in a foreign dir"
fi

# --socket in a directory reached through a planted link.
refused "socket dir symlink" "symbolic link" --state-dir "$pub/own2" \
	--socket "$pub/link/noxsd.sock"
[ -z "$(ls -A "$pub/victim")" ] || nx_fail "noxsd wrote into the victim: $(ls -A "$pub/victim")"

# A not-a-directory.
: >"$pub/file"
refused "state dir is a file" "not a directory" --state-dir "$pub/file"

# The ordinary case still works, and the socket gets --socket-mode.
mkdir -m 0755 "$pub/sock"
export NOXS_SOCKET=$pub/sock/noxsd.sock
nx_start_noxsd --socket "$NOXS_SOCKET" --socket-mode 0666
[ "$(stat -c %a "$NX_STATE")" = 711 ] || nx_fail "state dir mode $(stat -c %a "$NX_STATE")"
[ "$(stat -c %a "$pub/sock/noxsd.sock")" = 666 ] || nx_fail "socket mode $(stat -c %a "$pub/sock/noxsd.sock")"
nx_log PASS
