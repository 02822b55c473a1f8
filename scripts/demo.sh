#!/bin/bash
# make demo: the noxs device path end to end on the simulated hypervisor.
#
#   1. start noxsd (the registry) and noxs-sysctl-back (the backend of the
#      sysctl device) in a temporary directory, with their own simulator
#      state (NOXS_SIM_DIR) and control socket;
#   2. create 100 guest domains, played by ONE noxs-sysctl-front process
#      acting as all of them, and add a sysctl device to each, one after
#      another, timing dev-add -> both halves Connected (bench/handshake
#      does the domain-create and dev-add calls through libnoxs, exactly
#      as noxsctl would, and reads the guests' Connected times);
#   3. print the figures and noxsd's memory (noxsctl status --json);
#   4. shut every guest down through its sysctl device with
#      `noxsctl shutdown DOMID --reason R`, rotating the four reasons, and
#      check that every guest acknowledged;
#   5. clean up: every process is stopped by pid and the temporary
#      directory removed, also on Ctrl-C or an error.
#
# Environment: NOXS_BUILD (set by make) is the build directory;
# NOXS_DEMO_DOMAINS changes the number of domains (default 100).
set -euo pipefail

build=${NOXS_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
n=${NOXS_DEMO_DOMAINS:-100}
bin=$build/bin
tmp=$(mktemp -d "${TMPDIR:-/tmp}/noxs-demo.XXXXXX")
pids=()

say() { printf '%s\n' "$*"; }
fail() {
	say "demo: FAILED: $*" >&2
	for f in noxsd backend handshake; do
		[ -s "$tmp/$f.log" ] && { say "--- $f.log (last lines)" >&2; tail -n 15 "$tmp/$f.log" >&2; }
	done
	exit 1
}

cleanup() {
	local keeper
	trap - EXIT INT TERM
	# noxsd's page keeper outlives the worker by design: stop it by pid too.
	keeper=$(cat "$tmp/state/keeper.pid" 2>/dev/null || true)
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
	done
	[ -n "$keeper" ] && kill "$keeper" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say; say "demo: interrupted, cleaning up"; exit 130' INT TERM

for p in noxsd noxsctl noxs-sysctl-back noxs-sysctl-front; do
	[ -x "$bin/$p" ] || fail "$bin/$p is missing (run make first)"
done
[ -x "$build/bench/handshake" ] || fail "$build/bench/handshake is missing"

export NOXS_SIM_DIR=$tmp/sim NOXS_SOCKET=$tmp/noxsd.sock
mkdir -p "$NOXS_SIM_DIR" "$tmp/state"
noxsctl() { "$bin/noxsctl" "$@"; }

# Wait (bounded) until a command succeeds.
wait_for() {
	local what=$1 tries=$2
	shift 2
	for ((i = 0; i < tries; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	fail "timed out waiting for $what"
}

say "noxs demo: $n guest domains on the simulated hypervisor"
say "  work dir $tmp"
say
say "[1/4] starting noxsd and the sysctl backend"
"$bin/noxsd" -d --socket "$NOXS_SOCKET" --state-dir "$tmp/state" \
	>"$tmp/noxsd.log" 2>&1 &
pids+=($!)
wait_for "noxsd's socket" 200 noxsctl status
noxsctl status --json >"$tmp/status.json"
"$bin/noxs-sysctl-back" -d --socket "$NOXS_SOCKET" >"$tmp/backend.log" 2>&1 &
pids+=($!)

say "[2/4] creating $n domains (one frontend process plays them all) and"
say "      adding a sysctl device to each, one after another"
"$build/bench/handshake" --socket "$NOXS_SOCKET" --keep "$n" \
	>"$tmp/handshake.out" 2>"$tmp/handshake.log" &
hs=$!
pids+=($hs)
for ((i = 0; i < 1200; i++)); do
	grep -q '^ready' "$tmp/handshake.out" && break
	kill -0 "$hs" 2>/dev/null || { cat "$tmp/handshake.out" >&2; fail "handshake exited early"; }
	sleep 0.05
done
grep -q '^ready' "$tmp/handshake.out" || fail "domains did not all connect within 60 s"

noxsctl status --json >"$tmp/status.json"
json() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" "$tmp/status.json" | head -n 1; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$tmp/handshake.out" | head -n 1; }
connected=$(noxsctl dev-list --json 2>/dev/null | grep -o '"Connected"' | wc -l || true)
rss=$(json rss_bytes)

say
say "[3/4] all $n sysctl devices Connected"
say
printf '  %-34s %s\n' "domains" "$n"
printf '  %-34s %s\n' "devices (noxsd)" "$(json devices)"
printf '  %-34s %s us\n' "dev-add -> Connected, median" "$(field median_us)"
printf '  %-34s %s us\n' "dev-add -> Connected, p99" "$(field p99_us)"
printf '  %-34s %s us\n' "registry lookup (dev-list), median" \
	"$(sed -n 's/^lookup .*op=dev_list median_us=\([0-9.]*\).*/\1/p' "$tmp/handshake.out" | tail -n 1)"
printf '  %-34s %s KiB\n' "noxsd memory (worker + keeper RSS)" "$(( ${rss:-0} / 1024 ))"
say

say "[4/4] shutting every guest down through its sysctl device"
reasons=(poweroff reboot suspend crash)
declare -A asked=()
bad=0
for ((d = 1; d <= n; d++)); do
	r=${reasons[$(((d - 1) % 4))]}
	if reply=$(noxsctl shutdown "$d" --reason "$r" --wait 5 2>&1); then
		asked[$r]=$((${asked[$r]:-0} + 1))
	else
		say "  domain $d: shutdown $r failed: $reply"
		bad=$((bad + 1))
	fi
done
for ((i = 0; i < 400; i++)); do
	kill -0 "$hs" 2>/dev/null || break
	sleep 0.05
done
hs_rc=0
wait "$hs" || hs_rc=$?
summary=$(grep '^acknowledged' "$tmp/handshake.out" || true)
say "  requests acknowledged by noxsctl: poweroff=${asked[poweroff]:-0}" \
	"reboot=${asked[reboot]:-0} suspend=${asked[suspend]:-0} crash=${asked[crash]:-0}"
say "  guests' own view: ${summary:-none}"
[ "$bad" -eq 0 ] && [ "$hs_rc" -eq 0 ] || fail "$bad shutdown(s) failed; handshake exit $hs_rc"
say
say "demo: OK ($n domains created, connected, shut down; cleaned up)"
