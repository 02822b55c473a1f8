#!/bin/bash
# The benchmark's legacy baseline still runs (a smoke test, no timing is
# checked): Debian's xenstored and oxenstored as domain 0 of the
# simulator (xsd.sh with XSD_SIM=1), three guests each, in both of
# bench/compat.c's configurations. With --ring every guest's frontend
# talks to the daemon over its own store ring and event channel, so the
# daemon's descriptors do not grow with the guests; with --sockets every
# guest also holds a dom0 socket. Either way each handshake ends with
# both ends Connected and the frontend's nodes in the store. xs-bringup
# brings ring-connected guests up from two toolstack clients at once.
# Then the same ring guests through noxs-xsringd, with the toolstack and
# the backend on compat-xs in local mode (bench/ringd.sh's third daemon).
. "$(dirname "$0")/lib-compat.sh"
need_xen_tools

CB=$NOXS_BUILD/bench/compat-bench
export BENCH_ITER=20

# field LINE KEY: the value of KEY=... in LINE
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

for daemon in xenstored oxenstored; do
	for guests in ring sockets; do
		nx_log "$daemon, guests on $guests"
		d=$NX_DIR/$daemon-$guests
		mkdir -p "$d/sim"
		export NOXS_SIM_DIR=$d/sim
		line=$(XSD_SIM=1 "$COMPAT_DIR/xsd.sh" start $daemon "$d") ||
			nx_fail "cannot start $daemon on the simulator: $(cat "$d/daemon.log")"
		nx_at_exit "'$COMPAT_DIR/xsd.sh' stop '$d'"
		out=$d/out
		env "$line" BENCH_DAEMON_PID="$(cat "$d/daemon.pid")" \
			LD_LIBRARY_PATH="$NOXS_BUILD/sim:$NOXS_BUILD/lib" \
			timeout 120 "$CB" --$guests $daemon 1 3 >"$out" 2>"$d/err" ||
			nx_fail "$daemon $guests: exit $?: $(cat "$d/err")"
		for op in handshake read write directory watch_rtt; do
			grep -q "^compat daemon=$daemon op=$op n=3 samples=[1-9]" "$out" ||
				nx_fail "$daemon $guests: no $op at n=3: $(cat "$out")"
		done
		grep -q "^compat daemon=$daemon op=handshake n=3 samples=3 " "$out" ||
			nx_fail "$daemon $guests: not 3 handshakes: $(cat "$out")"
		f1=$(grep "op=daemon_fds n=1 " "$out") || nx_fail "no daemon fds: $(cat "$out")"
		f3=$(grep "op=daemon_fds n=3 " "$out") || nx_fail "no daemon fds: $(cat "$out")"
		nx_expect_eq "guests" "$(field "$f3" guests)" $guests
		n1=$(field "$f1" fds) n3=$(field "$f3" fds)
		if [ $guests = ring ]; then
			[ "$n3" -eq "$n1" ] ||
				nx_fail "$daemon: fds grew with ring guests: $n1 -> $n3"
		else
			[ "$n3" -ge $((n1 + 2)) ] ||
				nx_fail "$daemon: a socket per guest not seen: $n1 -> $n3"
		fi
		for dom in 1 2 3; do
			fe=/local/domain/$dom/device/vif/0 be=/local/domain/0/backend/vif/$dom/0
			nx_expect_eq "domain $dom frontend state" \
				"$(env "$line" xenstore-read $fe/state)" 4
			nx_expect_eq "domain $dom backend state" \
				"$(env "$line" xenstore-read $be/state)" 4
			nx_expect_eq "domain $dom ring ref" \
				"$(env "$line" xenstore-read $fe/tx-ring-ref)" 8
		done
		# oxenstored's access log names the connection: the frontends'
		# requests came over the guests' rings (D<domid>), or not.
		if [ $daemon = oxenstored ]; then
			acc=$d/xenstored-access.log
			if [ $guests = ring ]; then
				for dom in 1 2 3; do
					grep -q " D$dom .*watch .*/backend/vif/$dom/0/state" "$acc" ||
						nx_fail "domain $dom's frontend not on its ring: $(grep " D$dom " "$acc" | head)"
				done
			elif grep -q " D[123] .*watch " "$acc"; then
				nx_fail "a socket guest's request came over a ring"
			fi
		fi
		"$COMPAT_DIR/xsd.sh" stop "$d"
	done
	nx_log "$daemon, bring-up of ring-connected guests by two toolstack clients"
	d=$NX_DIR/$daemon-bringup
	mkdir -p "$d/sim"
	export NOXS_SIM_DIR=$d/sim
	line=$(XSD_SIM=1 "$COMPAT_DIR/xsd.sh" start $daemon "$d") ||
		nx_fail "cannot start $daemon on the simulator: $(cat "$d/daemon.log")"
	nx_at_exit "'$COMPAT_DIR/xsd.sh' stop '$d'"
	env "$line" BENCH_GUESTS=ring BENCH_TXN=5 BENCH_DAEMON_PIDS="$(cat "$d/daemon.pid")" \
		LD_LIBRARY_PATH="$NOXS_BUILD/sim:$NOXS_BUILD/lib" \
		timeout 120 "$NOXS_BUILD/bench/xs-bringup" $daemon 4 2 >"$d/out" 2>"$d/err" ||
		nx_fail "$daemon bring-up: exit $?: $(cat "$d/err")"
	grep -q "^bringup impl=$daemon n=4 k=2 " "$d/out" ||
		nx_fail "$daemon bring-up: $(cat "$d/out" "$d/err")"
	grep -q "^xsop impl=$daemon op=transaction4 samples=5 " "$d/out" ||
		nx_fail "$daemon bring-up: no transactions: $(cat "$d/out")"
	for dom in 1 2 3 4; do
		nx_expect_eq "bring-up domain $dom frontend state" \
			"$(env "$line" xenstore-read /local/domain/$dom/device/vif/0/state)" 4
	done
	"$COMPAT_DIR/xsd.sh" stop "$d"
done

nx_log "noxs-xsringd, guests on ring (compat-xs in local mode)"
unset XENSTORED_PATH
export NOXS_SIM_DIR=$NX_DIR/ringd-sim
mkdir -p "$NOXS_SIM_DIR"
. "$COMPAT_DIR/xsringd-lib.sh"
RINGD_V= RINGD_ARGS=--no-kernel ringd_start 1
out=$NX_DIR/ringd.out
BENCH_LAT=0 BENCH_DAEMON_PID=$_ringd COMPAT_XS_QUIET=1 \
	LD_LIBRARY_PATH="$NOXS_BUILD/lib/compat-xs:$NOXS_BUILD/sim:$NOXS_BUILD/lib" \
	timeout 120 "$CB" --ring noxs-xsringd 1 3 >"$out" 2>"$NX_DIR/ringd.err" ||
	nx_fail "noxs-xsringd: exit $?: $(cat "$NX_DIR/ringd.err" "$RINGD_LOG")"
grep -q "^compat daemon=noxs-xsringd op=handshake n=3 samples=3 .* min_us=.* max_us=" "$out" ||
	nx_fail "noxs-xsringd: not 3 handshakes: $(cat "$out")"
grep -q "^compat daemon=noxs-xsringd op=daemon_rss n=3 rss_kib=[1-9]" "$out" ||
	nx_fail "noxs-xsringd: no daemon memory: $(cat "$out")"
grep -q "op=read" "$out" && nx_fail "BENCH_LAT=0 still ran the latencies: $(cat "$out")"
for dom in 1 2 3; do
	fe=/local/domain/$dom/device/vif/0 be=/local/domain/0/backend/vif/$dom/0
	nx_expect_eq "noxs-xsringd domain $dom frontend state" "$(dom0 xenstore-read $fe/state)" 4
	nx_expect_eq "noxs-xsringd domain $dom backend state" "$(dom0 xenstore-read $be/state)" 4
	nx_expect_eq "noxs-xsringd domain $dom ring ref" "$(dom0 xenstore-read $fe/tx-ring-ref)" 8
	# The frontend's requests came over its ring, served by the service.
	grep -q "domain $dom: serving its ring" "$RINGD_LOG" || nx_fail "domain $dom not on a ring: $(cat "$RINGD_LOG")"
done
echo "PASS: bench-ring"
