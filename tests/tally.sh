# shellcheck shell=bash disable=SC2034
# The tally of the standalone check scripts (install-check.sh,
# deb-check.sh), sourced: "ok" counts a check that passed, "fail MSG" one
# that failed (a FAIL line); $checks and $failures hold the counts.
failures=0
checks=0
ok() { checks=$((checks + 1)); }
fail() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "FAIL: $*"
}
