#!/bin/bash
# The sysctl device end to end: every shutdown reason is acknowledged and
# the guest exits with the status naming it; a reason the guest did not
# advertise is refused (ENOTSUP) and the guest keeps running; a guest that
# does not answer (stopped) or is dead makes `noxsctl shutdown --wait`
# fail instead of hanging.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_sysctl_back --timeout 3

declare -A want_status=([poweroff]=0 [reboot]=10 [suspend]=11 [crash]=12)
d=1
for r in poweroff reboot suspend crash; do
	boot=$(nx_domain $d)
	nx_sysctl_connect $d "$boot"
	fe=$NX_FRONT
	out=$(noxsctl shutdown $d --reason $r --wait 5 2>&1) ||
		nx_fail "shutdown $d --reason $r: $out"
	nx_exit_status "$fe" 200
	st=$NX_STATUS
	[ "$st" = "${want_status[$r]}" ] ||
		nx_fail "guest $d asked to $r exited with $st, want ${want_status[$r]}"
	nx_log "reason $r: acknowledged, guest exited $st"
	d=$((d + 1))
done

# A guest that supports poweroff only.
boot=$(nx_domain $d)
nx_start_sysctl_front $d "$boot" --support poweroff
fe=$NX_FRONT
noxsctl dev-add $d sysctl 0 >/dev/null || nx_fail "dev-add $d"
nx_wait 200 "domain $d Connected" nx_dev_connected $d
if out=$(noxsctl shutdown $d --reason reboot --wait 5 2>&1); then
	nx_fail "reboot of a poweroff-only guest succeeded: $out"
fi
printf '%s\n' "$out" | grep -qiE 'not supported|ENOTSUP|operation not supported' ||
	nx_fail "unsupported reason: unexpected message: $out"
kill -0 "$fe" 2>/dev/null || nx_fail "guest $d died after an unsupported request"
nx_log "unsupported reason refused: $out"
noxsctl shutdown $d --reason poweroff --wait 5 >/dev/null ||
	nx_fail "poweroff after a refused reboot"
nx_exit_status "$fe" 200
st=$NX_STATUS
[ "$st" = 0 ] || nx_fail "guest $d exited $st after poweroff"
d=$((d + 1))

# A guest that does not answer: stopped, then killed.
boot=$(nx_domain $d)
nx_sysctl_connect $d "$boot"
fe=$NX_FRONT
kill -STOP "$fe"
start=$SECONDS
if out=$(timeout 30 "$NX_BIN/noxsctl" shutdown $d --reason poweroff --wait 1 2>&1); then
	nx_fail "shutdown of a stopped guest succeeded: $out"
fi
[ $((SECONDS - start)) -lt 25 ] || nx_fail "shutdown of a stopped guest did not give up"
nx_log "stopped guest: $out"
kill -9 "$fe"
kill -CONT "$fe" 2>/dev/null
wait "$fe" 2>/dev/null
if out=$(timeout 30 "$NX_BIN/noxsctl" shutdown $d --reason poweroff --wait 1 2>&1); then
	nx_fail "shutdown of a dead guest succeeded: $out"
fi
nx_log "dead guest: $out"
kill -0 "$NX_BACKEND" || nx_fail "the backend died"
nx_log "PASS"
