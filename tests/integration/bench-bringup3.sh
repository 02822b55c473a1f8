#!/bin/bash
# The three-device bring-up benchmark still runs (a smoke test, no timing
# is checked): bringup3 brings up 10 domains with a sysctl, console and
# blk device each on its own noxsd and backends, reads sector 0 and a
# console byte for each, tears them down, and prints one complete line
# whose figures are sane.
. "$(dirname "$0")/../lib.sh"

B3=$NX_BUILD/bench/bringup3
[ -x "$B3" ] || nx_fail "no $B3 (make $B3)"
out=$NX_DIR/out
NOXS_BENCH_TMPDIR=$NX_DIR BENCH_REP=2 timeout 300 "$B3" 10 >"$out" \
	2>"$NX_DIR/bringup3.log" || nx_fail "bringup3 exit $?: $(tail -n 5 "$NX_DIR/bringup3.log")"
[ "$(wc -l <"$out")" = 1 ] || nx_fail "not one line: $(cat "$out")"
line=$(cat "$out")
# field KEY: the value of KEY=... in the line
field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
case $line in "bringup3 impl=noxs n=10 rep=2 "*) ;;
*) nx_fail "unexpected line: $line" ;;
esac
pos() { awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }'; }
for k in connect_median_us connect_p99_us byte_median_us byte_p99_us \
	total_s daemon_rss_per_domain_kb teardown_s; do
	v=$(field $k)
	[ -n "$v" ] || nx_fail "no $k in: $line"
	pos "$v" || nx_fail "$k=$v is not positive: $line"
done
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
le "$(field connect_median_us)" "$(field connect_p99_us)" || nx_fail "median above p99: $line"
le "$(field connect_median_us)" "$(field byte_median_us)" ||
	nx_fail "connected after the first byte: $line"
# Every domain came up and went away: what the daemons logged.
for d in 1 10; do
	grep -q "domain $d blk 0: disconnected (1 requests" "$NX_DIR/bringup3.log" ||
		nx_fail "domain $d: not one blk request: $(tail -n 5 "$NX_DIR/bringup3.log")"
done
[ "$(grep -c 'noxsd: domain [0-9]*: destroyed' "$NX_DIR/bringup3.log")" = 10 ] ||
	nx_fail "not 10 domains destroyed"
for d in "$NX_DIR"/noxs-bringup3.*; do
	[ ! -e "$d" ] || nx_fail "temporary directory left behind: $d"
done
nx_log "$line"
