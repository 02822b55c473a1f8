#!/bin/bash
# Debian's unmodified xenstore-read/-write/-ls/-list/-exists/-rm/-watch/
# -chmod on the supported paths: the same output and exit codes through
# compat-xs + noxsd as through the real xenstored. The device is a vif
# of domain 1 brought to Connected by the legacy pair; the tools run in
# dom0 (the toolstack's view). Listings are compared sorted: xenstored
# lists in creation order, compat-xs in page order (docs/COMPAT.md).
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools

D=/local/domain/1/device/vif/0
B=/local/domain/0/backend/vif/1/0

# run NAME CMD...: one result line per command (output + exit code).
run() {
	name=$1
	shift
	out=$("$RUNNER" "$@" 2>&1) && rc=0 || rc=$?
	printf '== %s (exit %d)\n%s\n' "$name" "$rc" "$out"
}

# run_sorted NAME CMD...: the same, output lines sorted.
run_sorted() {
	name=$1
	shift
	"$RUNNER" "$@" >"$NX_DIR/sorted" 2>&1 && rc=0 || rc=$?
	printf '== %s (exit %d)\n%s\n' "$name" "$rc" "$(sort "$NX_DIR/sorted")"
}

scenario() {
	run read-fe-state xenstore-read $D/state
	run read-fe-mac xenstore-read $D/mac
	run read-fe-backend xenstore-read $D/backend
	run read-fe-backend-id xenstore-read $D/backend-id
	run read-fe-ring xenstore-read $D/tx-ring-ref
	run read-be-feature xenstore-read $B/feature-rx-copy
	run read-be-state xenstore-read $B/state
	run read-be-frontend xenstore-read $B/frontend
	run read-missing xenstore-read $D/no-such-key
	run exists xenstore-exists $D/state
	run exists-missing xenstore-exists $D/no-such-key
	run_sorted list-fe xenstore-list $D
	run_sorted ls-be xenstore-ls $B
	run list-be-class xenstore-list /local/domain/0/backend/vif
	run list-be-fe xenstore-list /local/domain/0/backend/vif/1
	run write-be xenstore-write $B/extra hello
	run read-back xenstore-read $B/extra
	run rm-be xenstore-rm $B/extra
	run exists-after-rm xenstore-exists $B/extra
	run chmod xenstore-chmod $D n1 r0
	run watch xenstore-watch -n 1 $D/state
}

plain() { "$@"; }

nx_log xenstored
xsd_start xenstored xenstored
legacy_back "$NX_DIR/back.xs"
"$NX_BIN/legacy-toolstack" introduce 1 && "$NX_BIN/legacy-toolstack" add 1 vif 0 ||
	nx_fail "toolstack (xenstored)"
mkfifo "$NX_DIR/hold.xs"
"$NX_BIN/legacy-front" -k 1 vif 0 <"$NX_DIR/hold.xs" >"$NX_DIR/front.xs" 2>&1 &
exec 7>"$NX_DIR/hold.xs"
nx_wait_line "$NX_DIR/front.xs" '^connected'
RUNNER=plain
scenario >"$NX_DIR/xenstored.out"
exec 7>&-

legacy_compat_start "$NX_BIN/legacy-back" "$NX_BIN/legacy-front" \
	"$NX_BIN/legacy-toolstack" "$COMPAT_DIR/xssem" $(command -v xenstore-read \
	xenstore-write xenstore-ls xenstore-list xenstore-exists xenstore-rm \
	xenstore-watch xenstore-chmod)
with_compat "$NX_BIN/legacy-toolstack" introduce 1 &&
	with_compat "$NX_BIN/legacy-toolstack" add 1 vif 0 || nx_fail "toolstack (compat-xs)"
mkfifo "$NX_DIR/hold.noxs"
compat_exec 1 "$NX_BIN/legacy-front" -k 1 vif 0 <"$NX_DIR/hold.noxs" >"$NX_DIR/front.noxs" 2>&1 &
exec 8>"$NX_DIR/hold.noxs"
nx_wait_line "$NX_DIR/front.noxs" '^connected'
with_dom0() { with_compat 0 "$@"; }
RUNNER=with_dom0
scenario >"$NX_DIR/compat.out"
exec 8>&-

diff -u "$NX_DIR/xenstored.out" "$NX_DIR/compat.out" || nx_fail "compat-xs differs from xenstored"
echo "ok: $(grep -c '^==' "$NX_DIR/compat.out") commands agree"
