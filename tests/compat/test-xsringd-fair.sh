#!/bin/bash
# Fairness of noxs-xsringd between guests: one guest floods its ring
# (reads as fast as the ring takes them, then writes to nodes it
# watches: a request flood plus a watch storm) while another runs a
# fixed workload (LAT_N requests, one at a time) and records each
# request's latency; the same workload with the flooder idle; rounds
# alternated. Asserts only that the workload completes and the
# flooder's quotas hold (no timing: the machine is shared); prints the
# median and 99th percentile both ways (docs/BENCHMARKS.md).
. "$(dirname "$0")/lib-compat.sh"
. "$(dirname "$0")/xsringd-lib.sh"

ROUNDS=${FAIR_ROUNDS:-4}
LAT_N=${FAIR_N:-200}

# Without -v: a log line per request would be measured too.
RINGD_V= ringd_start 1
guest_up fl 5 3
guest_up vi 6 4

nx_log "the flooder's quotas hold"
expect fl "watches 200" "ok * * E*"
n=$(echo "$R" | awk '{print $2}')
[ "$n" -le 128 ] || nx_fail "watches beyond the quota: $R"

# quantiles FILE: "median p99" of the samples in FILE (microseconds).
quantiles() {
	sort -n "$1" | awk '{v[NR] = $1} END {
		m = int(NR / 2) + 1; p = int(NR * 99 / 100) + 1; if (p > NR) p = NR
		print v[m], v[p] }'
}

for r in $(seq 1 "$ROUNDS"); do
	nx_log "round $r: flooder idle"
	expect vi "lat $LAT_N $NX_DIR/idle.us" "ok $LAT_N * *"
	echo "idle round $r: median/p99 us: ${R#ok $LAT_N }"

	nx_log "round $r: flooder flooding (reads, then writes under its 128 watches)"
	rm -f "$NX_DIR/stop"
	kind=flood
	[ $((r % 2)) -eq 0 ] && kind=wflood
	g_send fl "$kind 1000000 $NX_DIR/stop"
	# Let the flood fill the ring before the workload starts.
	sleep 0.2
	expect vi "lat $LAT_N $NX_DIR/flood.us" "ok $LAT_N * *"
	echo "flood ($kind) round $r: median/p99 us: ${R#ok $LAT_N }"
	touch "$NX_DIR/stop"
	g_recv fl
	case "$R" in "ok "*) ;; *) nx_fail "flooder: $R" ;; esac
	echo "flooder round $r: $R requests answered"
	kill -0 $_ringd || nx_fail "noxs-xsringd died: $(tail "$RINGD_LOG")"
done

expect fl "txs 30" "ok * * E*"
n=$(echo "$R" | awk '{print $2}')
[ "$n" -le 10 ] || nx_fail "open transactions beyond the quota: $R"
expect vi "read data/x" "ok private6"

read -r im ip <<<"$(quantiles "$NX_DIR/idle.us")"
read -r fm fp <<<"$(quantiles "$NX_DIR/flood.us")"
echo "RESULT xsringd-fairness rounds=$ROUNDS n=$LAT_N idle_median_us=$im idle_p99_us=$ip flood_median_us=$fm flood_p99_us=$fp"
grep -q "runtime error\|AddressSanitizer" "$RINGD_LOG" && nx_fail "sanitizer: $(cat "$RINGD_LOG")"
echo "PASS: xsringd-fair"
