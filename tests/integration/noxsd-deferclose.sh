#!/bin/bash
# A backend that hangs up while noxsd is still working on its message
# (noxsd-evilbe: create, sync, register, destroy) makes noxsd's answer to
# it fail. noxsd must survive each case, keep serving, and answer a
# destroy that was waiting on that backend. Each case gets a worker of its
# own, so that one case's crash does not hide another's.
. "$(dirname "$0")/../lib.sh"

failed=()
for c in create sync register destroy; do
	nx_start_noxsd
	if ! "$NX_TESTBIN/noxsd-evilbe" "$c" "$NOXS_SOCKET" "$NX_NOXSD" \
		>>"$NX_DIR/evilbe.log" 2>&1; then
		failed+=("$c (probe)")
	elif ! nx_alive "$NX_NOXSD" || ! noxsctl status >/dev/null 2>&1; then
		failed+=("$c (noxsd died)")
	elif [ "$(nx_backends)" != 0 ]; then
		failed+=("$c (the closed backend is still registered)")
	else
		nx_log "ok: $c"
	fi
	if nx_alive "$NX_NOXSD"; then
		nx_stop_noxsd
	else
		wait "$NX_NOXSD" 2>/dev/null
	fi
done
[ ${#failed[@]} -eq 0 ] || nx_fail "failed: ${failed[*]}"
grep -q AddressSanitizer "$NX_DIR/noxsd.log" && nx_fail "sanitizer report"
nx_log PASS
