#!/bin/bash
# Many blk devices from one noxs-blk-back: NX_MANY (default 300) devices
# of a few domains connected at once, each read, with the backend's hard
# RLIMIT_NOFILE lowered to twice that plus room for its own files (the
# per-device cost must stay well under two file descriptors: an idle
# device holds its image, nothing else); then, once the devices are idle,
# the backend's file descriptors and threads per device, counted from
# /proc/PID/fd and /proc/PID/task, are checked (the image; no io_uring,
# no I/O workers, no ring thread), and its memory mappings logged. The
# guests then read every device again: each idle device's next event
# starts its ring thread again. Every device is read again afterwards.
. "$(dirname "$0")/../lib.sh"

N=${NX_MANY:-300}
LIMIT=${NX_MANY_LIMIT:-$((2 * N + 64))}
S=$NX_TESTBIN/blk_stress

nx_start_noxsd
# nx_start_blk_back with a lowered limit: the subshell becomes the
# backend (exec), so $! is its pid.
(ulimit -n "$LIMIT" && exec "$NX_BIN/noxs-blk-back" -d -v \
	--socket "$NOXS_SOCKET") >>"$NX_DIR/blk-back.log" 2>&1 &
NX_BLKBACK=$!
NX_PIDS+=("$NX_BLKBACK")
nx_wait 200 "the blk backend to register" \
	nx_count_gt 'serving blk devices' "$NX_DIR/blk-back.log" 0
grep -q "^Max open files *$LIMIT *$LIMIT " "/proc/$NX_BLKBACK/limits" ||
	nx_fail "the backend's limit is not $LIMIT"

count() { find "/proc/$NX_BLKBACK/$1" -mindepth 1 -maxdepth 1 | wc -l; }
fd0=$(count fd) th0=$(count task) map0=$(wc -l <"/proc/$NX_BLKBACK/maps")

img=$NX_DIR/disk.img
truncate -s 1M "$img"
# A domain's grant table holds blkfront's buffers of about 90 devices:
# PER devices a domain, one guest each.
PER=75
D=$(((N + PER - 1) / PER))
guests=()
for ((d = 1; d <= D; d++)); do
	boot=$(nx_domain "$d")
	[ -n "$boot" ] || nx_fail "no bootstrap string"
	k=$((N - (d - 1) * PER))
	[ "$k" -le "$PER" ] || k=$PER
	for ((i = 0; i < k; i++)); do
		noxsctl dev-add "$d" blk "$i" "path=$img" mode=r >/dev/null ||
			nx_fail "dev-add $d blk $i"
	done
	nx_spawn "$d" "$boot" "$S" many "$k" >"$NX_DIR/many-$d.out" 2>"$NX_DIR/many-$d.log"
	guests+=("$NX_PID:$k:$d")
done
# Connecting is one device after another: a generous bound.
for g in "${guests[@]}"; do
	IFS=: read -r pid k d <<<"$g"
	for ((i = 0; i < 12000; i++)); do
		grep -q "^connected $k\$" "$NX_DIR/many-$d.out" && break
		nx_alive "$pid" || nx_fail "guest $d failed to connect its $k devices"
		sleep 0.05
	done
	grep -q "^connected $k\$" "$NX_DIR/many-$d.out" ||
		nx_fail "timed out waiting for guest $d's $k devices"
done
nx_alive "$NX_BLKBACK" || nx_fail "the backend died"

# Idle for a while, a device gives up its io_uring, I/O workers and ring
# thread (the next event starts one again).
idle() { [ "$(count fd)" -le $((fd0 + N + 16)) ] && [ "$(count task)" -le $((th0 + 4)) ]; }
nx_wait 1200 "the devices to go idle" idle
fd1=$(count fd) th1=$(count task) map1=$(wc -l <"/proc/$NX_BLKBACK/maps")
[ -z "${NX_MANY_MAPS:-}" ] || cp "/proc/$NX_BLKBACK/maps" "$NX_MANY_MAPS"
per() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / n }'; }
nx_log "$N idle devices: per device $(per "$fd0" "$fd1") fds," \
	"$(per "$th0" "$th1") threads, $(per "$map0" "$map1") mappings" \
	"(fds $fd0 -> $fd1, threads $th0 -> $th1, mappings $map0 -> $map1)"
# The image, and no more than a few shared ones besides.
[ $((fd1 - fd0)) -le $((N + 16)) ] ||
	nx_fail "$((fd1 - fd0)) file descriptors for $N idle devices"
# No thread per idle device, a few shared ones.
[ $((th1 - th0)) -le 4 ] ||
	nx_fail "$((th1 - th0)) threads for $N idle devices"

for g in "${guests[@]}"; do
	kill -TERM "${g%%:*}"
done
for g in "${guests[@]}"; do
	IFS=: read -r pid k d <<<"$g"
	nx_exit_status "$pid" 2400
	[ "$NX_STATUS" = 0 ] || nx_fail "guest $d: $NX_STATUS"
done
nx_alive "$NX_BLKBACK" || nx_fail "the backend died"
nx_log "$N devices connected, read, read again and closed under a limit of $LIMIT fds"
