#!/bin/bash
# The sysctl device end to end: every shutdown reason is acknowledged and
# the guest exits with the status naming it; a reason the guest did not
# advertise is refused (ENOTSUP) and the guest keeps running; a guest that
# does not answer (stopped) or is dead makes `noxsctl shutdown --wait`
# fail instead of hanging.
. "$(dirname "$0")/sysctl-lib.sh"

t_start_noxsd
t_start_backend --timeout 3

declare -A want_status=([poweroff]=0 [reboot]=10 [suspend]=11 [crash]=12)
d=1
for r in poweroff reboot suspend crash; do
	boot=$(t_domain $d)
	t_front $d "$boot"
	fe=$T_FRONT
	noxsctl dev-add $d sysctl 0 >/dev/null || t_fail "dev-add $d"
	t_wait 200 "domain $d Connected" t_connected $d
	out=$(noxsctl shutdown $d --reason $r --wait 5 2>&1) ||
		t_fail "shutdown $d --reason $r: $out"
	t_exit_status "$fe" 200
	st=$T_STATUS
	[ "$st" = "${want_status[$r]}" ] ||
		t_fail "guest $d asked to $r exited with $st, want ${want_status[$r]}"
	t_log "reason $r: acknowledged, guest exited $st"
	d=$((d + 1))
done

# A guest that supports poweroff only.
boot=$(t_domain $d)
t_front $d "$boot" --support poweroff
fe=$T_FRONT
noxsctl dev-add $d sysctl 0 >/dev/null || t_fail "dev-add $d"
t_wait 200 "domain $d Connected" t_connected $d
if out=$(noxsctl shutdown $d --reason reboot --wait 5 2>&1); then
	t_fail "reboot of a poweroff-only guest succeeded: $out"
fi
printf '%s\n' "$out" | grep -qiE 'not supported|ENOTSUP|operation not supported' ||
	t_fail "unsupported reason: unexpected message: $out"
kill -0 "$fe" 2>/dev/null || t_fail "guest $d died after an unsupported request"
t_log "unsupported reason refused: $out"
noxsctl shutdown $d --reason poweroff --wait 5 >/dev/null ||
	t_fail "poweroff after a refused reboot"
t_exit_status "$fe" 200
st=$T_STATUS
[ "$st" = 0 ] || t_fail "guest $d exited $st after poweroff"
d=$((d + 1))

# A guest that does not answer: stopped, then killed.
boot=$(t_domain $d)
t_front $d "$boot"
fe=$T_FRONT
noxsctl dev-add $d sysctl 0 >/dev/null || t_fail "dev-add $d"
t_wait 200 "domain $d Connected" t_connected $d
kill -STOP "$fe"
start=$SECONDS
if out=$(timeout 30 "$T_BIN/noxsctl" shutdown $d --reason poweroff --wait 1 2>&1); then
	t_fail "shutdown of a stopped guest succeeded: $out"
fi
[ $((SECONDS - start)) -lt 25 ] || t_fail "shutdown of a stopped guest did not give up"
t_log "stopped guest: $out"
kill -9 "$fe"
kill -CONT "$fe" 2>/dev/null
wait "$fe" 2>/dev/null
if out=$(timeout 30 "$T_BIN/noxsctl" shutdown $d --reason poweroff --wait 1 2>&1); then
	t_fail "shutdown of a dead guest succeeded: $out"
fi
t_log "dead guest: $out"
kill -0 "$T_BACKEND" || t_fail "the backend died"
t_log "PASS"
