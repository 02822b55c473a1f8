#!/bin/bash
# The blk backend restarts without closing its disks: as
# backend-restart.sh for sysctl, noxs-blk-back runs under noxsd-fdstore;
# besides libnoxs's files it stores, per disk, its image and a memfd with
# the ring's state and a copy of every request taken off the ring and not
# yet answered. Under a guest workload:
#   1. a stream of writes, each flushed (blk_stress crashwriter), across
#      a kill -9 of the backend, a SIGTERM restart and an upgrade (a new
#      binary file): the writer never sees an error and runs to the end
#      of the disk, and every block is in the image;
#   2. 32 random writes in flight, then everything read back and
#      compared (blk_stress random), across up to five kill -9s: no error, the
#      guest reads what it wrote, and the image is its shadow copy;
# and each time the disk stays Connected, the guest never reconnects and
# noxsd drops nothing. Then a disk removed while the backend is away
# takes its stored files out of the store at the next start; and guests
# that scribble on their rings and keys while the backend is away lose
# their own disks (Closing with an error), nobody else's.
. "$(dirname "$0")/../lib.sh"

S=$NX_TESTBIN/blk_stress
nx_start_noxsd --backend-grace 10000
# Run from a copy, so that the upgrade below can replace the file.
mkdir -p "$NX_DIR/sbin"
cp "$NX_BIN/noxs-blk-back" "$NX_DIR/sbin/noxs-blk-back"
nx_svc_start blk-back "$NX_DIR/sbin/noxs-blk-back"

boot=$(nx_domain 1)
g() { NOXS_SIM_DOMID=1 NOXS_BOOT=$boot "$@"; }
# a.img large enough that the writer is still writing after the restarts.
truncate -s 256M "$NX_DIR/a.img"
truncate -s 16M "$NX_DIR/b.img" "$NX_DIR/c.img"
noxsctl dev-add 1 blk 0 "path=$NX_DIR/a.img" >/dev/null || nx_fail "dev-add 1 blk 0"
noxsctl dev-add 1 blk 1 "path=$NX_DIR/b.img" >/dev/null || nx_fail "dev-add 1 blk 1"
# Not fatal here: a backend that stores nothing fails below, on what the
# guest sees.
for ((i = 0; i < 100; i++)); do
	nx_svc_stored noxs-blk-state-1-1 && break
	sleep 0.05
done

states() { noxsctl dev-list 1 --json 2>/dev/null | tr -d ' \n' | sed 's/},{/}\n{/g' |
	grep "\"devid\":$1[,}]" |
	sed -n 's/.*"backend_state":"\([A-Za-z]*\)".*"frontend_state":"\([A-Za-z]*\)".*/\1 \2/p'; }
unchanged() {
	local what=$1 dev
	for dev in "${@:2}"; do
		[ "$(states "$dev")" = "Connected Connected" ] ||
			nx_fail "$what: disk $dev is $(states "$dev")"
	done
	grep -q 'dropping' "$NX_DIR/noxsd.log" && nx_fail "$what: noxsd dropped devices"
	return 0
}
acks() { grep -c '^acked' "$NX_DIR/w.out" 2>/dev/null; }
acks_ge() { [ "$(acks)" -ge "$1" ]; }
# st PID: the exit status of a child, or "running" (bounded wait).
wait_exit() {
	local i
	for ((i = 0; i < 1200; i++)); do
		nx_alive "$1" || break
		sleep 0.05
	done
	nx_alive "$1" && nx_fail "$2: the guest's workload hangs"
	wait "$1"
}

# 1. Flushed writes across kill -9, SIGTERM and an upgrade.
g "$S" -d 0 crashwriter 21 >"$NX_DIR/w.out" 2>"$NX_DIR/w.log" &
w=$!
NX_PIDS+=("$w")
nx_wait 600 "writes to be acknowledged" acks_ge 20
nx_alive "$w" || nx_fail "the writer ended before the backend was killed"
nx_svc_kill9
unchanged "after kill -9 during writes" 0
n=$(acks)
nx_wait 600 "writes after the kill -9" acks_ge $((n + 20))
nx_svc_restart
unchanged "after a SIGTERM restart during writes" 0
n=$(acks)
nx_wait 600 "writes after the SIGTERM restart" acks_ge $((n + 20))
cp "$NX_BIN/noxs-blk-back" "$NX_DIR/sbin/noxs-blk-back.new"
mv "$NX_DIR/sbin/noxs-blk-back.new" "$NX_DIR/sbin/noxs-blk-back"
nx_svc_restart
unchanged "after an upgrade during writes" 0
wait_exit "$w" "writes"
st=$?
[ "$st" = 0 ] || nx_fail "the writer failed (status $st): $(tail -n 2 "$NX_DIR/w.log")"
last=$(( $(stat -c %s "$NX_DIR/a.img") / 65536 - 1 ))
[ "$(sed -n 's/^acked //p' "$NX_DIR/w.out" | tail -n 1)" = "$last" ] ||
	nx_fail "the writer stopped before the end of the disk"
"$S" verify-file "$NX_DIR/a.img" 21 "$last" >/dev/null ||
	nx_fail "acknowledged writes are not in the image"
nx_log "flushed writes across kill -9, SIGTERM and an upgrade: all $((last + 1)) blocks in the image"

# 2. Random writes, 32 in flight, then a read-back, across kill -9s.
g "$S" -d 1 random 22 200000 "$NX_DIR/shadow" >"$NX_DIR/r.out" 2>"$NX_DIR/r.log" &
r=$!
NX_PIDS+=("$r")
nx_wait 600 "disk 1 to connect" eval '[ "$(states 1)" = "Connected Connected" ]'
for k in 1 2 3 4 5; do
	sleep 0.2
	nx_alive "$r" || break
	nx_svc_kill9
	unchanged "after kill -9 number $k during random I/O" 1
	kills=$k
done
[ "${kills:-0}" -ge 1 ] || nx_fail "the random workload ended before the backend was killed"
wait_exit "$r" "random I/O"
st=$?
[ "$st" = 0 ] || nx_fail "random I/O failed (status $st): $(tail -n 2 "$NX_DIR/r.log")"
cmp -s "$NX_DIR/shadow" "$NX_DIR/b.img" || nx_fail "the image differs from the guest's shadow copy"
# Each instance redid exactly what it found taken and not answered.
grep -Eq 'not kept|inconsistent|violation|cannot resume' "$NX_DIR/blk-back.log" &&
	nx_fail "a restart lost track of requests: $(grep -E 'not kept|inconsistent|violation|cannot resume' "$NX_DIR/blk-back.log")"
nx_log "random I/O across $kills kill -9s: read back as written, image = shadow" \
	"($(grep -c 'redoing' "$NX_DIR/blk-back.log") restarts redid requests)"

# 3. A disk removed while the backend is away: its files leave the store.
noxsctl dev-add 1 blk 2 "path=$NX_DIR/c.img" >/dev/null || nx_fail "dev-add 1 blk 2"
nx_wait 200 "noxs-blk-img-1-2 to be stored" nx_svc_stored noxs-blk-img-1-2
bp=$(nx_svc_pid)
kill -STOP "$bp"
noxsctl dev-rm 1 blk 2 >/dev/null 2>&1 &
rm_pid=$!
s=$(nx_svc_starts)
r=$(nx_registrations)
kill -9 "$bp"
nx_svc_wait_back $((s + 1)) $((r + 1))
nx_wait 400 "dev-rm 1 blk 2 to return" eval "! nx_alive $rm_pid"
wait "$rm_pid"
nx_wait 200 "the removed disk's files to leave the store" \
	eval 'grep -q "^removed noxs-blk-img-1-2$" "$NX_SVC_OUT" && grep -q "^removed noxs-blk-state-1-2$" "$NX_SVC_OUT"'
g "$S" -d 1 expect read 0 4096 OK || nx_fail "disk 1 after the last restart"
nx_log "a disk removed while the backend was away left the store"

# 4. Hostile guests scribble while the backend is away (stopped, then
# killed): garbage ring indices (-K), a new ring-ref key (-C). The
# backend that comes back closes those two disks with an error instead
# of serving them, and the honest guest's random I/O on the same backend
# goes through the restart unharmed.
boot2=$(nx_domain 2)
boot3=$(nx_domain 3) # one frontend process per domain
truncate -s 4M "$NX_DIR/k.img" "$NX_DIR/c2.img"
noxsctl dev-add 2 blk 0 "path=$NX_DIR/k.img" >/dev/null || nx_fail "dev-add 2 blk 0"
noxsctl dev-add 3 blk 0 "path=$NX_DIR/c2.img" >/dev/null || nx_fail "dev-add 3 blk 0"
NOXS_SIM_DOMID=2 NOXS_BOOT=$boot2 "$NX_TESTBIN/blk_hostile" -K "$NX_DIR/go" \
	>"$NX_DIR/hk.out" 2>"$NX_DIR/hk.log" &
hk=$!
NX_PIDS+=("$hk")
NOXS_SIM_DOMID=3 NOXS_BOOT=$boot3 "$NX_TESTBIN/blk_hostile" -C "$NX_DIR/go" \
	>"$NX_DIR/hc.out" 2>"$NX_DIR/hc.log" &
hc=$!
NX_PIDS+=("$hc")
nx_wait 400 "the hostile guests to connect" \
	eval 'grep -q "^ready" "$NX_DIR/hk.out" && grep -q "^ready" "$NX_DIR/hc.out"'
g "$S" -d 1 random 23 200000 "$NX_DIR/shadow2" >"$NX_DIR/r2.out" 2>"$NX_DIR/r2.log" &
r=$!
NX_PIDS+=("$r")
nx_wait 600 "disk 1 to connect again" eval '[ "$(states 1)" = "Connected Connected" ]'
bp=$(nx_svc_pid)
kill -STOP "$bp"
touch "$NX_DIR/go"
nx_wait 400 "the hostile guests to scribble" \
	eval 'grep -q "^scribbled" "$NX_DIR/hk.out" && grep -q "^scribbled" "$NX_DIR/hc.out"'
s=$(nx_svc_starts)
r0=$(nx_registrations)
kill -9 "$bp"
nx_svc_wait_back $((s + 1)) $((r0 + 1))
for p in "$hk:garbage indices:hk" "$hc:a new ring-ref:hc"; do
	IFS=: read -r pid what log <<<"$p"
	wait_exit "$pid" "the hostile guest with $what"
	st=$?
	[ "$st" = 0 ] || nx_fail "$what: $(tail -n 2 "$NX_DIR/$log.log")"
done
wait_exit "$r" "random I/O beside the hostile guests"
st=$?
[ "$st" = 0 ] || nx_fail "random I/O beside the hostile guests failed (status $st): $(tail -n 2 "$NX_DIR/r2.log")"
cmp -s "$NX_DIR/shadow2" "$NX_DIR/b.img" || nx_fail "disk 1's image differs from the shadow after the hostile restart"
[ "$(nx_svc_starts)" = $((s + 1)) ] || nx_fail "the backend died after the restart"
nx_alive "$(nx_svc_pid)" || nx_fail "the backend died after the restart"
nx_log "scribbling guests lost their own disks ($(sed -n 's/^ok: scribbled.*(\(.*\))$/\1/p' "$NX_DIR/hk.out"); $(sed -n 's/^ok: scribbled.*(\(.*\))$/\1/p' "$NX_DIR/hc.out")), the honest guest's I/O went on"
nx_log PASS
