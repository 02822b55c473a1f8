#!/bin/bash
# A silent or refusing backend: dev-add fails with ETIMEDOUT (and the
# device the backend creates late is removed again), a backend's errno is
# relayed, a control request nobody answers times out, and the daemon
# keeps serving.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd --backend-timeout 300
nx_domain 1 >/dev/null
nx_start_testbe slow --types 1 --delay-ms 1500
err=$(noxsctl dev-add 1 sysctl 0 2>&1)
[ $? = 1 ] && [[ $err == *"timed out"* ]] || nx_fail "slow backend: $err"
# The late create is undone.
nx_wait 100 "the late device to be removed" grep -q '^remove 1 1 0' "$NX_DIR/slow.log"
[ "$(noxsctl dev-list 1 --json)" = "[]" ] || nx_fail "a timed-out device is listed"
kill "$NX_BACKEND"
nx_wait 100 "the slow backend to go" bash -c "[ \"\$('$NX_BIN/noxsctl' status --json | sed -n 's/.*\"backends\":\([0-9]*\).*/\1/p')\" = 0 ]"

nx_start_testbe refusing --types 1 --refuse 28
err=$(noxsctl dev-add 1 sysctl 0 2>&1)
[ $? = 1 ] && [[ $err == *"No space left"* ]] || nx_fail "refusal not relayed: $err"
kill "$NX_BACKEND"
nx_wait 100 "the refusing backend to go" bash -c "[ \"\$('$NX_BIN/noxsctl' status --json | sed -n 's/.*\"backends\":\([0-9]*\).*/\1/p')\" = 0 ]"

nx_start_testbe good --types 1
noxsctl dev-add 1 sysctl 0 || nx_fail "dev-add with a good backend"
# A second backend for the same type is refused.
"$NX_TESTBIN/noxsd-testbe" --types 1 >"$NX_DIR/dup.log" 2>&1
[ $? = 4 ] || nx_fail "a second backend for sysctl was accepted"
noxsctl status >/dev/null || nx_fail "noxsd died"
nx_log PASS
