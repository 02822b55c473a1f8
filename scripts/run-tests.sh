#!/bin/bash
# Run test programs, each in a fresh simulator state dir and temp dir.
# Check suites are counted by their test cases, other programs (shell or C
# integration tests) as one test each. Ends with "N passed, N failed".
set -u
passed=0
failed=0
failed_names=()
top=$(mktemp -d "${TMPDIR:-/tmp}/noxs-tests.XXXXXX")
# The simulator's tables and grant pages are shared-memory files: keep them on
# tmpfs (page faults on a disk-backed file cost milliseconds per domain).
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=$top
simtop=$(mktemp -d "$shm/noxs-sim.XXXXXX")
trap 'rm -rf "$top" "$simtop"' EXIT

for t in "$@"; do
	name=$(basename "$t")
	dir=$(mktemp -d "$top/$name.XXXXXX")
	log="$dir/log"
	start=$(date +%s.%N)
	# The host's own compat-xs state (a local store in /var/lib/noxs, a
	# config in /etc/noxs) must not choose a test's mode: point both at
	# paths that do not exist unless the caller chose them.
	NOXS_SIM_DIR="$simtop/$name" NOXS_TEST_DIR="$dir" TMPDIR="$dir" \
		NOXS_XS_DIR="${NOXS_XS_DIR:-$dir/no-local-store}" \
		NOXS_COMPAT_CONF="${NOXS_COMPAT_CONF:-$dir/no-compat-xs.conf}" \
		CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-60}" \
		timeout --kill-after=10 "${NOXS_TEST_TIMEOUT:-600}" "$t" >"$log" 2>&1
	rc=$?
	secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
	# Check prints "NN%: Checks: C, Failures: F, Errors: E" per suite.
	checks=$(sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$log")
	if [ -n "$checks" ]; then
		while read -r c f e; do
			passed=$((passed + c - f - e))
			failed=$((failed + f + e))
		done <<<"$checks"
		[ "$rc" -ne 0 ] && [ "$(echo "$checks" | awk '{s+=$2+$3} END {print s}')" -eq 0 ] && failed=$((failed + 1))
	else
		if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
	fi
	if [ "$rc" -eq 0 ]; then
		printf 'PASS %-36s %6ss\n' "$name" "$secs"
	else
		printf 'FAIL %-36s %6ss (exit %d)\n' "$name" "$secs" "$rc"
		failed_names+=("$name")
		sed 's/^/    | /' "$log" | tail -n 60
	fi
	rm -rf "${simtop:?}/$name"
done
echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failed_names[@]} -eq 0 ]
