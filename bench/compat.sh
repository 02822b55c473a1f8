#!/bin/sh
# bench/compat.sh [N ...]: bench/compat-bench against Debian's xenstored,
# oxenstored and compat-xs + noxsd, in one run (default N: 10 100 1000).
# Prints every result line, then the ratios the issue asks for:
#   compat ratio op=handshake n=1000 oxenstored/compat-xs=R
#   compat ratio op=read xenstored/compat-xs=R
# Needs: make (compat-bench, legacy-back, the shim, compat-xs, noxsd)
# and scripts/deps.sh compat. NOXS_BUILD names the build dir.
set -eu
B=$(cd "${NOXS_BUILD:-build}" && pwd)
export NOXS_BUILD=$B
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/noxs-compat-bench.XXXXXX")
out=$work/results
pids=""
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
	[ -f "$work/state/keeper.pid" ] && kill -9 "$(cat "$work/state/keeper.pid")" 2>/dev/null
	for d in xenstored oxenstored; do
		[ -d "$work/$d" ] && "$top/tests/compat/xsd.sh" stop "$work/$d"
	done
	rm -rf "$work"
}
trap cleanup EXIT
export XSSHIM=$B/tests/compat/xsshim.so

for d in xenstored oxenstored; do
	mkdir -p "$work/$d"
	env=$("$top/tests/compat/xsd.sh" start $d "$work/$d")
	env "$env" "$B/bench/compat-bench" $d "$@" | tee -a "$out"
	"$top/tests/compat/xsd.sh" stop "$work/$d"
done

export NOXS_SIM_DIR=$work/sim NOXS_SOCKET=$work/noxsd.sock
mkdir -p "$NOXS_SIM_DIR" "$work/state"
LD_LIBRARY_PATH=$B/sim:$B/lib "$B/bin/noxsd" -d --socket "$NOXS_SOCKET" \
	--state-dir "$work/state" >"$work/noxsd.log" 2>&1 &
pids="$pids $!"
i=0
until [ -S "$NOXS_SOCKET" ]; do
	i=$((i + 1)); [ $i -gt 1000 ] && { cat "$work/noxsd.log"; exit 1; }
	sleep 0.01
done
LD_LIBRARY_PATH=$B/lib/compat-xs:$B/sim:$B/lib COMPAT_XS_QUIET=1 \
	"$B/bench/compat-bench" compat-xs "$@" | tee -a "$out"

# Ratios of medians (the issue's targets: handshake at the largest N vs
# oxenstored >= 10, device-key read vs xenstored >= 30).
awk '
/ op=handshake / { split($0, f, " "); for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
	h[v["daemon"] "," v["n"]] = v["median_us"]; if (v["n"] + 0 > maxn) maxn = v["n"] + 0 }
/ op=(read|write|directory|watch_rtt) / { split($0, f, " "); for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
	l[v["daemon"] "," v["op"]] = v["median_us"] }
END {
	if (h["compat-xs," maxn] > 0)
		printf "compat ratio op=handshake n=%d xenstored/compat-xs=%.1f oxenstored/compat-xs=%.1f\n",
			maxn, h["xenstored," maxn] / h["compat-xs," maxn], h["oxenstored," maxn] / h["compat-xs," maxn]
	split("read write directory watch_rtt", ops, " ")
	for (i = 1; i <= 4; i++) if (l["compat-xs," ops[i]] > 0)
		printf "compat ratio op=%s xenstored/compat-xs=%.1f oxenstored/compat-xs=%.1f\n",
			ops[i], l["xenstored," ops[i]] / l["compat-xs," ops[i]], l["oxenstored," ops[i]] / l["compat-xs," ops[i]]
}' "$out"
