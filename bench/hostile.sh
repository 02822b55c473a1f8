#!/bin/bash
# bench/hostile.sh [ATTACKERS [ROUNDS]]: what guests that keep their half
# of a control page torn cost the other devices of the same backend.
#
# Measures, on the simulator, an honest guest's sysctl handshake
# (dev-add to "connected" in the guest, then shutdown --wait) and the
# echo round trip of an honest guest's console, first with no hostile
# guest, then with ATTACKERS (default 3) guests per backend running
# tests/hostile-front in torn mode (seq left odd, a notification every
# $HOSTILE_SLEEP_US, default 200 us; 0 notifies without pausing). Prints
# medians and p90s per case, the CPU the two backends used meanwhile (% of
# one CPU) and the ratio attacked/idle. Needs a build
# (make; make build/tests/hostile-front) and python3 for the echo client.
#
#   make && make build/tests/hostile-front && bash bench/hostile.sh 3 20
set -uo pipefail

NA=${1:-3}
ROUNDS=${2:-20}
B=${NOXS_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
export LD_LIBRARY_PATH=$B/sim:$B/lib
W=$(mktemp -d "${TMPDIR:-/tmp}/noxs-hostile.XXXXXX")
export NOXS_SIM_DIR=$W/sim NOXS_SOCKET=$W/noxsd.sock
mkdir -p "$NOXS_SIM_DIR" "$W/cons"
PIDS=()
cleanup() {
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -9 "${PIDS[i]}" 2>/dev/null; done
	k=$(cat "$W/state/keeper.pid" 2>/dev/null) && kill -9 "$k" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
nx() { "$B/bin/noxsctl" "$@"; }
now_us() { echo $(($(date +%s%N) / 1000)); }
wait_for() { # TRIES(x10ms) CMD...
	local n=$1
	shift
	for ((j = 0; j < n; j++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.01; done
	return 1
}

"$B/bin/noxsd" -d --state-dir "$W/state" --socket "$NOXS_SOCKET" >>"$W/noxsd.log" 2>&1 &
PIDS+=($!)
wait_for 500 nx status || { echo "noxsd did not start"; exit 1; }
"$B/bin/noxs-sysctl-back" -d --socket "$NOXS_SOCKET" >>"$W/sysctl-back.log" 2>&1 &
SB=$!
PIDS+=($SB)
"$B/bin/noxs-console-back" -d -v --socket "$NOXS_SOCKET" --dir "$W/cons" \
	>>"$W/console-back.log" 2>&1 &
CB=$!
PIDS+=($CB)
# CPU time (clock ticks, user + system) of the two backends.
cpu_ticks() { awk '{ s += $14 + $15 } END { print s }' /proc/$SB/stat /proc/$CB/stat; }
wait_for 500 sh -c "\"$B/bin/noxsctl\" status --json | grep -Eq '\"backends\": *2'" ||
	{ echo "backends did not register"; exit 1; }

# The honest echo guest (domain 2, console 0).
boot=$(nx domain-create 2 | grep -o 'noxs=[0-9:]*')
nx dev-add 2 console 0 >/dev/null
NOXS_SIM_DOMID=2 NOXS_BOOT=$boot "$B/bin/noxs-console-front" -- cat >"$W/echo.log" 2>&1 &
PIDS+=($!)
wait_for 500 grep -q 'domain 2 console 0: connected' "$W/console-back.log" ||
	{ echo "echo guest did not connect"; exit 1; }

echo_rtt() { # ROUNDS: one line "median_ms p90_ms"
	python3 - "$W/cons/console-2.0.sock" "$1" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(10)
lat = []
for i in range(int(sys.argv[2])):
    msg = b"rtt %d\n" % i
    t = time.monotonic()
    s.sendall(msg)
    got = b""
    while not got.endswith(msg):
        got += s.recv(4096)
    lat.append((time.monotonic() - t) * 1000)
    time.sleep(0.02)
lat.sort()
print("%.2f %.2f" % (lat[len(lat) // 2], lat[int(len(lat) * 0.9)]))
EOF
}

# ROUNDS FIRST_DOMID: "connect_median connect_p90 shutdown_median
# shutdown_p90" (ms); run in a subshell, so the caller picks the domids.
handshakes() {
	local c=() s=() d t0 t1 t2 boot fe
	for ((r = 0; r < $1; r++)); do
		d=$(($2 + r))
		boot=$(nx domain-create $d | grep -o 'noxs=[0-9:]*')
		NOXS_SIM_DOMID=$d NOXS_BOOT=$boot "$B/bin/noxs-sysctl-front" -v \
			>"$W/front-$d.log" 2>&1 &
		fe=$!
		PIDS+=($fe)
		t0=$(now_us)
		nx dev-add $d sysctl 0 >/dev/null || echo "dev-add $d failed" >&2
		for ((j = 0; j < 30000; j++)); do
			grep -q ': connected$' "$W/front-$d.log" 2>/dev/null && break
			sleep 0.001
		done
		t1=$(now_us)
		nx shutdown $d --reason poweroff --wait 30 >/dev/null 2>&1 ||
			echo "shutdown $d failed" >&2
		t2=$(now_us)
		wait $fe 2>/dev/null
		c+=($((t1 - t0)))
		s+=($((t2 - t1)))
	done
	python3 -c '
import sys
def q(v, f): v = sorted(v); return v[int(len(v) * f)] / 1000
c = [int(x) for x in sys.argv[1].split()]; s = [int(x) for x in sys.argv[2].split()]
print("%.1f %.1f %.1f %.1f" % (q(c, .5), q(c, .9), q(s, .5), q(s, .9)))' "${c[*]}" "${s[*]}"
}

measure() { # LABEL FIRST_DOMID
	local c0 t0 c1 t1
	c0=$(cpu_ticks)
	t0=$(now_us)
	read -r em ep < <(echo_rtt $((ROUNDS * 5)))
	read -r cm cp sm sp < <(handshakes "$ROUNDS" "$2")
	c1=$(cpu_ticks)
	t1=$(now_us)
	printf '%-8s echo_rtt median %7.2f ms p90 %7.2f | connect median %7.1f ms p90 %7.1f | shutdown median %7.1f ms p90 %7.1f | backends cpu %3d%%\n' \
		"$1" "$em" "$ep" "$cm" "$cp" "$sm" "$sp" \
		$(((c1 - c0) * 1000000 * 100 / $(getconf CLK_TCK) / (t1 - t0)))
	eval "R_$1='$em $cm $sm'"
}

measure idle 1000
for ((a = 0; a < NA; a++)); do
	for t in 1 2; do # a torn guest on each backend: sysctl (1), console (2)
		e=$((200 + 10 * t + a))
		boot=$(nx domain-create $e | grep -o 'noxs=[0-9:]*')
		nx dev-add $e $([ $t = 1 ] && echo sysctl || echo console) 0 >/dev/null
		NOXS_SIM_DOMID=$e NOXS_BOOT=$boot HOSTILE_SLEEP_US=${HOSTILE_SLEEP_US:-200} \
			"$B/tests/hostile-front" $t 0 torn 100000 >/dev/null 2>&1 &
		PIDS+=($!)
	done
done
sleep 1
measure attacked 2000
read -r i1 i2 i3 <<<"$R_idle"
read -r a1 a2 a3 <<<"$R_attacked"
python3 -c 'import sys; a = [float(x) for x in sys.argv[1:]]
print("ratio attacked/idle (medians): echo %.2f, connect %.2f, shutdown %.2f" %
      (a[3] / a[0], a[4] / a[1], a[5] / a[2]))' "$i1" "$i2" "$i3" "$a1" "$a2" "$a3"
echo "($NA torn guests per backend, HOSTILE_SLEEP_US=${HOSTILE_SLEEP_US:-200}," \
	"$ROUNDS handshakes and $((ROUNDS * 5)) echoes per case)"
