#!/bin/bash
# noxs-xsringd serving hundreds of stock guests at once (docs/XSRINGD.md,
# "Limits"): every guest WATCHes a node of its own and gets the watch's
# first event, the toolstack then writes every guest's node and every
# guest gets that event; the service holds one inotify instance for the
# store whatever the number of guests, and its fds grow by less than one
# per guest (the guests' rings and event channels take none of their own
# on the simulator).
#
# Linux allows a user 128 inotify instances by default
# (fs.inotify.max_user_instances), a limit some hosts raise. So that the
# delivery check does not depend on the host's setting, the service runs
# in a user namespace of its own (unshare -Ur) whose limit
# (/proc/sys/user/max_inotify_instances, per user namespace) is lowered
# to a few instances: a service that needed one per guest could not
# serve them all there. Where unshare cannot do that, the service runs
# under the host's limit, said so, and the counts still show the design.
. "$(dirname "$0")/lib-compat.sh"
. "$(dirname "$0")/xsringd-lib.sh"

N=${MANY_N:-300}
LIMIT=16

cat >"$NX_DIR/lowlimit" <<EOF
#!/bin/sh
# Run "\$@" with at most $LIMIT inotify instances in this user namespace.
echo $LIMIT >/proc/sys/user/max_inotify_instances || exit 1
exec "\$@"
EOF
chmod +x "$NX_DIR/lowlimit"
if unshare -Ur "$NX_DIR/lowlimit" true 2>/dev/null; then
	nx_log "the service runs with at most $LIMIT inotify instances (unshare -Ur)"
	RINGD_WRAP="unshare -Ur $NX_DIR/lowlimit"
else
	nx_log "unshare -Ur cannot lower the inotify limit here: the service" \
		"runs under the host's ($(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo '?') per user)"
	RINGD_WRAP=
fi

RINGD_V= RINGD_ARGS=--no-kernel ringd_start 1
nx_log "$N guests on their rings, each watching a node of its own"
out=$NX_DIR/many.out
dom0 timeout 300 "$T/xsrmany" "$N" 1 "$_ringd" >"$out" 2>"$NX_DIR/many.err" ||
	nx_fail "xsrmany: exit $?: $(cat "$out" "$NX_DIR/many.err") $(tail "$RINGD_LOG")"
cat "$out"
read -r _ ok refused silent < <(grep '^watch ' "$out")
read -r _ f0 f1 f2 _ i0 i1 i2 < <(grep '^fds ' "$out")
read -r _ got _ n < <(grep '^events ' "$out")
kill -0 "$_ringd" || nx_fail "noxs-xsringd died: $(tail "$RINGD_LOG")"
echo "service fds: $f0 before the first guest, $f1 with $N guests watching, $f2 at the end; inotify instances: $i0 $i1 $i2"

nx_expect_eq "guests whose WATCH was answered OK" "$ok" "$N"
nx_expect_eq "guests whose WATCH was refused" "$refused" 0
nx_expect_eq "guests counted" "$n" "$N"
nx_expect_eq "guests whose first event never came" "$silent" 0
nx_expect_eq "guests that got the event of their node's write" "$got" "$N"
if [ "$i1" -gt 2 ] || [ "$i2" -gt 2 ]; then
	nx_fail "the service holds $i1 (then $i2) inotify instances for $N guests"
fi
[ $((f1 - f0)) -lt "$N" ] ||
	nx_fail "the service's fds grew by $((f1 - f0)) for $N guests"
grep -q "runtime error\|AddressSanitizer" "$RINGD_LOG" && nx_fail "sanitizer: $(cat "$RINGD_LOG")"
echo "PASS: xsringd-many"
