#!/bin/bash
# The three-device bring-up of Debian's daemons still runs (a smoke
# test, no timing is checked): bench/xs-bringup3.sh brings up ten ring
# guests with a vbd, a console and a vif each on xenstored and on
# oxenstored, and tears them down. Its line is complete, every figure a
# number, each domain's first byte after its connection; while every
# domain is up, the store holds the devices Connected at both ends with
# the keys of both halves of each handshake and libxl's permissions.
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools
[ -x "$XEN_BIN/oxenstored" ] || nx_fail "Debian's oxenstored missing (scripts/deps.sh compat)"

KEYS="connect_median_us connect_p99_us byte_median_us byte_p99_us total_s daemon_rss_per_domain_kb teardown_s"
# field LINE KEY: the value of KEY=... in LINE
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# node DUMP PATH: the value of PATH in a `xenstore-ls -f -p` dump
node() { sed -n "s|^$2 = \"\([^\"]*\)\".*|\1|p" "$1"; }
# perms DUMP PATH: its permissions, as (n0,r1)
perms() { sed -n "s|^$2 = .*\((.*)\)$|\1|p" "$1"; }

for daemon in xenstored oxenstored; do
	nx_log "$daemon, 10 domains"
	out=$NX_DIR/$daemon.out peak=$NX_DIR/$daemon.peak
	BENCH_REP=2 BENCH_AT_PEAK="xenstore-ls -f -p >'$peak'" NOXS_BUILD=$NOXS_BUILD \
		timeout 300 "$COMPAT_DIR/xs-bringup3.sh" $daemon 10 >"$out" 2>"$NX_DIR/$daemon.err" ||
		nx_fail "$daemon: exit $?: $(cat "$out" "$NX_DIR/$daemon.err")"
	[ "$(grep -c . "$out")" = 1 ] || nx_fail "$daemon: not one line: $(cat "$out")"
	line=$(cat "$out")
	case "$line" in
	"bringup3 impl=$daemon n=10 rep=2 "*) ;;
	*) nx_fail "$daemon: $line" ;;
	esac
	for k in $KEYS; do
		v=$(field "$line" $k)
		echo "$v" | grep -Eq '^-?[0-9]+(\.[0-9]+)?$' || nx_fail "$daemon: $k is '$v': $line"
	done
	for k in connect_median_us byte_median_us total_s teardown_s; do
		awk -v v="$(field "$line" $k)" 'BEGIN { exit !(v > 0) }' ||
			nx_fail "$daemon: $k not positive: $line"
	done
	# t_byte follows t_conn in every domain.
	awk -v c="$(field "$line" connect_median_us)" -v b="$(field "$line" byte_median_us)" \
		'BEGIN { exit !(b >= c) }' || nx_fail "$daemon: byte before connect: $line"
	for dom in 1 10; do
		be=/local/domain/0/backend fe=/local/domain/$dom/device
		for dev in vbd/$dom/51712 console/$dom/0 vif/$dom/0; do
			nx_expect_eq "$daemon $be/$dev state" "$(node "$peak" $be/$dev/state)" 4
		done
		for dev in vbd/51712 console/0 vif/0; do
			nx_expect_eq "$daemon $fe/$dev state" "$(node "$peak" $fe/$dev/state)" 4
		done
		nx_expect_eq "$daemon vbd sectors" "$(node "$peak" $be/vbd/$dom/51712/sectors)" 8192
		nx_expect_eq "$daemon vbd protocol" "$(node "$peak" $fe/vbd/51712/protocol)" x86_64-abi
		[ -n "$(node "$peak" $fe/vbd/51712/ring-ref)" ] &&
			[ -n "$(node "$peak" $fe/vbd/51712/event-channel)" ] &&
			[ -n "$(node "$peak" $fe/console/0/ring-ref)" ] &&
			[ -n "$(node "$peak" $fe/console/0/port)" ] ||
			nx_fail "$daemon domain $dom: a ring key missing: $(grep "$fe" "$peak")"
		nx_expect_eq "$daemon vbd frontend perms" "$(perms "$peak" $fe/vbd/51712)" "(n$dom,r0)"
		nx_expect_eq "$daemon vbd backend perms" "$(perms "$peak" $be/vbd/$dom/51712)" "(n0,r$dom)"
		nx_expect_eq "$daemon console limit perms" "$(perms "$peak" $fe/console/0/limit)" "(n0,r$dom)"
		nx_expect_eq "$daemon libxl record" "$(node "$peak" /libxl/$dom/device/vbd/51712/backend)" \
			$be/vbd/$dom/51712
	done
done
echo "PASS: bench-bringup3"
