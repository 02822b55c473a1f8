#!/bin/bash
# noxsd's own memory per domain: the heap that the worker and the keeper
# have in use (malloc's count, from noxsctl status) grows by at most
# 1 KiB per domain with one device. A byte count, not a time: it does not
# depend on the machine's load. The device page itself (a grant, 4 KiB)
# is not heap; RSS, which also holds the simulator's per-domain mappings,
# is printed for information only (docs/BENCHMARKS.md, memory).
. "$(dirname "$0")/../lib.sh"

BOUND=1024 # bytes of heap per domain
WARM=20    # domains first, so one-time allocations are not counted
N=${NOXSD_MEMORY_N:-400}

nx_start_noxsd
nx_start_testbe be --types 1
probe() { "$NX_TESTBIN/noxsd-memprobe" "$NOXS_SOCKET" "$@"; }
field() { sed -n "s/.*$1 \([0-9]*\).*/\1/p"; }

warm=$(probe 1 $WARM) || nx_fail "warm-up domains"
heap0=$(echo "$warm" | field heap_kib)
rss0=$(echo "$warm" | field rss_kib)
# A sanitizer's allocator is not malloc's: its heap count means nothing.
case $NX_BUILD in
*/san-*) nx_log "SKIP: a sanitizer build (heap $heap0 KiB)"; exit 0 ;;
esac
[ "${heap0:-0}" -gt 0 ] || nx_fail "noxsd reports no heap count: $warm"
peak=$(probe $((WARM + 1)) "$N") || nx_fail "$N domains"
heap1=$(echo "$peak" | field heap_kib)
rss1=$(echo "$peak" | field rss_kib)
doms=$(echo "$peak" | field domains)
devs=$(echo "$peak" | field devices)
[ "$doms" = $((WARM + N)) ] && [ "$devs" = $((WARM + N)) ] ||
	nx_fail "want $((WARM + N)) domains and devices: $peak"

per=$(((heap1 - heap0) * 1024 / N))
nx_log "heap $heap0 -> $heap1 KiB: $per bytes per domain (bound $BOUND);" \
	"rss $rss0 -> $rss1 KiB: $(((rss1 - rss0) * 1024 / N)) bytes per domain"
[ "$per" -le "$BOUND" ] ||
	nx_fail "noxsd's heap grows by $per bytes per domain (bound $BOUND)"

# The heap comes back when the domains go: nothing is kept per domain
# that was ever registered.
for ((d = WARM + 1; d <= WARM + N; d++)); do
	echo "$d"
done | xargs -n 50 sh -c 'for d; do "$0" domain-destroy "$d" || exit 1; done' \
	"$NX_BIN/noxsctl" || nx_fail "domain-destroy"
after=$(probe 1 0) || nx_fail "status"
heap2=$(echo "$after" | field heap_kib)
nx_log "after destroying $N domains: heap $heap2 KiB"
[ $((heap2 - heap0)) -le $((N * BOUND / 1024 / 4)) ] ||
	nx_fail "heap after destroying $N domains: $heap2 KiB (before them $heap0 KiB)"
nx_log "ok"
