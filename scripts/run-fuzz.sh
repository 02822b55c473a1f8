#!/bin/bash
# Run each libFuzzer target for a few seconds on its corpus.
#   scripts/run-fuzz.sh SECONDS TARGET...
# A crash fails the run and leaves the reproducer in build/fuzz/artifacts.
set -euo pipefail
secs=$1
shift
[ $# -eq 0 ] && { echo "no fuzz targets"; exit 0; }
failed=0
passed=0
for t in "$@"; do
	name=$(basename "$t")
	corpus_src="tests/fuzz/corpus/${name#fuzz_}"
	work=$(dirname "$t")/work/$name
	art=$(dirname "$t")/artifacts/
	mkdir -p "$work" "$art"
	[ -d "$corpus_src" ] && cp -n "$corpus_src"/* "$work"/ 2>/dev/null || true
	if "$t" -max_total_time="$secs" -artifact_prefix="$art" -print_final_stats=0 \
		"$work" >"$work.log" 2>&1; then
		echo "PASS fuzz $name ($(grep -c . "$work.log" >/dev/null; grep -o 'Done [0-9]* runs' "$work.log" | tail -1))"
		passed=$((passed + 1))
	else
		echo "FAIL fuzz $name"
		tail -n 40 "$work.log"
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
