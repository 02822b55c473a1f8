#!/bin/bash
# With a control socket everyone may reach (mode 0666), unprivileged users
# cannot take noxsd's memory or file descriptors from root, nor flood its
# log (docs/NOXSD.md, "Limits"):
#   memory   connections that send DOMAIN_LIST requests and never read:
#            noxsd's RSS grows by less than the unprivileged queue cap
#            (32 MiB) plus slack, and root is still served;
#   fds      with noxsd's descriptor limit lowered (prlimit), floods from
#            several uids get at most 32 connections per uid and leave
#            descriptors for root; then with no descriptor left at all,
#            root still gets in (the reserve descriptor), noxsd does not
#            spin on EMFILE (CPU time over 3 s of flood stays under 1 s,
#            a liveness bound) and logs a bounded number of lines;
#   log      thousands of refused requests log a bounded number of lines.
. "$(dirname "$0")/../lib.sh"

command -v prlimit >/dev/null || { nx_log "SKIP: no prlimit"; exit 0; }
pub=$(mktemp -d /tmp/noxsd-limits.XXXXXX)
chmod 0755 "$pub"
FLOOD=()
cleanup() {
	local p
	for p in "${FLOOD[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$pub"
	nx_cleanup
}
trap cleanup EXIT
export NOXS_SOCKET=$pub/noxsd.sock
nx_start_noxsd --socket-mode 0666 --socket "$NOXS_SOCKET"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
nfds() { ls "/proc/$1/fd" | wc -l; }
lowest_free() {
	local i=0
	while [ -e "/proc/$1/fd/$i" ]; do i=$((i + 1)); done
	echo "$i"
}
kill_floods() {
	local p
	for p in "${FLOOD[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	FLOOD=()
}
# flood NAME UID NCONN NREQ: a holding flood in the background.
flood() {
	"$NX_TESTBIN/noxsd-flood" hold "$NOXS_SOCKET" "$2" "$3" "$4" \
		>"$NX_DIR/$1.out" 2>&1 &
	FLOOD+=($!)
}
wait_ready() {
	local f
	for f in "$@"; do
		nx_wait 600 "flood $f to be ready" grep -q '^ready' "$NX_DIR/$f.out"
	done
}

# --- memory -------------------------------------------------------------
for i in $(seq 1 300); do
	noxsctl domain-create "$i" >/dev/null || nx_fail "domain-create $i"
done
rss0=$(rss_kb "$NX_NOXSD")
flood mem1 65534 48 100
flood mem2 65533 48 100
wait_ready mem1 mem2
max=$rss0
for i in $(seq 20); do
	r=$(rss_kb "$NX_NOXSD")
	[ "$r" -gt "$max" ] && max=$r
	sleep 0.05
done
timeout 10 "$NX_BIN/noxsctl" status >/dev/null || nx_fail "root not served during the memory flood"
grow=$((max - rss0))
nx_log "memory: RSS $rss0 kB, at most $max kB under the flood (+$grow kB); $(cat "$NX_DIR/mem1.out") $(cat "$NX_DIR/mem2.out")"
[ "$grow" -lt $(((32 + 16) * 1024)) ] || nx_fail "noxsd grew by $grow kB under an unprivileged flood"
kill_floods
nx_log "PASS (memory)"

# --- descriptors ----------------------------------------------------------
prlimit --pid "$NX_NOXSD" --nofile=200: || nx_fail "prlimit"
base=$(nfds "$NX_NOXSD")
for u in 65534 65533 65532 65531 65530; do
	flood "c$u" "$u" 40 1
done
wait_ready c65534 c65533 c65532 c65531 c65530
n=$(nfds "$NX_NOXSD")
nx_log "descriptors: $base before, $n with 5 uids x 40 connections (limit 200)"
[ $((n - base)) -le 160 ] || nx_fail "more than 32 connections per uid ($((n - base)) for 5 uids)"
[ "$n" -le $((200 - 64 + 1)) ] || nx_fail "unprivileged connections leave less than 64 descriptors ($n open)"
timeout 10 "$NX_BIN/noxsctl" status >/dev/null || nx_fail "root not served at the connection cap"

# No descriptor left: the limit is the lowest free descriptor number.
n=$(lowest_free "$NX_NOXSD")
prlimit --pid "$NX_NOXSD" --nofile="$n": || nx_fail "prlimit"
lines0=$(wc -l <"$NX_DIR/noxsd.log")
cpu0=$(cpu_ticks "$NX_NOXSD")
flood e1 65529 60 1
flood e2 65528 60 1
wait_ready e1 e2
sleep 3
timeout 10 "$NX_BIN/noxsctl" status >/dev/null || nx_fail "root locked out at EMFILE"
timeout 10 "$NX_BIN/noxsctl" status >/dev/null || nx_fail "root locked out at EMFILE (2nd)"
cpu=$(( $(cpu_ticks "$NX_NOXSD") - cpu0 ))
hz=$(getconf CLK_TCK)
lines=$(( $(wc -l <"$NX_DIR/noxsd.log") - lines0 ))
warn=$(tail -n +"$((lines0 + 1))" "$NX_DIR/noxsd.log" | grep -c -e 'refusing a connection' -e 'accept' || true)
nx_log "EMFILE: $cpu ticks of CPU ($hz/s), $lines log lines, $warn about refusals or accept"
[ "$cpu" -lt "$hz" ] || nx_fail "noxsd used $cpu/$hz s of CPU at EMFILE"
[ "$warn" -le 40 ] || nx_fail "$warn log lines about refused connections"
kill_floods
prlimit --pid "$NX_NOXSD" --nofile=1024: || nx_fail "prlimit"
nx_log "PASS (descriptors)"

# --- log ------------------------------------------------------------------
lines0=$(wc -l <"$NX_DIR/noxsd.log")
out=$("$NX_TESTBIN/noxsd-flood" refuse "$NOXS_SOCKET" 65534 20 500) || nx_fail "refuse flood"
[ "$out" = "refused 10000" ] || nx_fail "want 10000 refusals, got: $out"
n=$(tail -n +"$((lines0 + 1))" "$NX_DIR/noxsd.log" | grep -c 'refusing DOMAIN_CREATE' || true)
nx_log "log: $n lines for 10000 refused requests"
[ "$n" -le 20 ] || nx_fail "$n log lines for refused requests"
noxsctl status >/dev/null || nx_fail "noxsd died"
nx_log "PASS (log)"
