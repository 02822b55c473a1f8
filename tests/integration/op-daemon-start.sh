#!/bin/bash
# Daemons fail loudly: each does its set-up (pidfile, socket, registration)
# before it detaches, so that the command that started it exits non-zero
# with the reason on stderr when it cannot run, and 0 only once it serves.
# Logs: "<N>" syslog priorities when stderr is the journal, and one line
# per device created and removed with no -v.
. "$(dirname "$0")/../lib.sh"

BIN=$NX_BIN
# Every daemon of ours runs with a path under $NX_DIR on its command line:
# that is how the detached ones are found again, to be ended by pid.
ours() {
	local pid
	for pid in $(pgrep -f -- "$NX_DIR"); do
		[[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$1"* ]] &&
			echo "$pid"
	done
	return 0
}
end_ours() {
	local pid
	for pid in $(ours "$1"); do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in $(ours "$1"); do
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null
	done
	return 0
}
trap 'end_ours noxs-; nx_cleanup' EXIT

# --- a backend that cannot register: rc 1 and the reason, detached or not
bad=$NX_DIR/no-such-noxsd.sock
for prog in noxs-sysctl-back noxs-blk-back noxs-console-back; do
	extra=()
	[ $prog = noxs-console-back ] && extra=(--dir "$NX_DIR/con")
	for fg in "" -d; do
		err=$(timeout 20 "$BIN/$prog" $fg --socket "$bad" "${extra[@]}" 2>&1)
		rc=$?
		[ $rc = 1 ] || nx_fail "$prog $fg with no noxsd: rc $rc, want 1 ($err)"
		[[ $err == *"cannot register with noxsd at $bad"* ]] ||
			nx_fail "$prog $fg with no noxsd says: '$err'"
	done
done
nx_log "backends that cannot register exit 1 and say why"

# --- noxsd detached: rc 0 only once it listens; a second one fails
out=$(timeout 20 "$BIN/noxsd" --state-dir "$NX_STATE" 2>&1)
rc=$?
[ $rc = 0 ] || nx_fail "noxsd (detached): rc $rc: $out"
[ -z "$out" ] || nx_fail "noxsd (detached) printed on success: $out"
# No wait: the socket is there when the command returns.
noxsctl status >/dev/null || nx_fail "noxsd returned before it answers"
out=$(timeout 20 "$BIN/noxsd" --state-dir "$NX_STATE" 2>&1)
rc=$?
[ $rc = 1 ] || nx_fail "second noxsd (detached): rc $rc, want 1"
[[ $out == *"another noxsd"*"is running"* ]] || nx_fail "second noxsd says: '$out'"
out=$(timeout 20 "$BIN/noxsd" -d --state-dir "$NX_STATE" 2>&1)
[ $? = 1 ] || nx_fail "second noxsd -d: want rc 1"
nx_log "noxsd detaches once it listens; a second one exits 1 and says why"

# --- backends detached: registered when the command returns
for prog in noxs-sysctl-back noxs-console-back noxs-blk-back; do
	extra=()
	[ $prog = noxs-console-back ] && extra=(--dir "$NX_DIR/con")
	out=$(timeout 20 "$BIN/$prog" --socket "$NOXS_SOCKET" "${extra[@]}" 2>&1)
	rc=$?
	[ $rc = 0 ] || nx_fail "$prog (detached): rc $rc: $out"
	[ -z "$out" ] || nx_fail "$prog (detached) printed on success: $out"
done
[ "$(nx_backends)" = 3 ] || nx_fail "backends registered when their commands returned: $(nx_backends), want 3"
end_ours noxs-sysctl-back
end_ours noxs-console-back
end_ours noxs-blk-back
nx_log "backends detach once registered"

# --- the journal: "<N>" priorities, no ident of our own
jlog=$NX_DIR/journal.log
: >"$jlog"
out=$(exec 2>>"$jlog"; JOURNAL_STREAM=$(stat -c '%d:%i' "$jlog") \
	timeout 20 "$BIN/noxs-sysctl-back" -d --socket "$bad"; echo $?)
[ "$out" = 1 ] || nx_fail "journal: rc $out"
grep -q '^<3>cannot register with noxsd at ' "$jlog" ||
	nx_fail "journal: no '<3>' error line: $(cat "$jlog")"
! grep -q 'noxs-sysctl-back' "$jlog" || nx_fail "journal: ident in the line: $(cat "$jlog")"
# A stream that is not stderr's own is not the journal.
out=$(JOURNAL_STREAM=1:1 timeout 20 "$BIN/noxs-sysctl-back" -d --socket "$bad" 2>&1)
[[ $out == "noxs-sysctl-back: cannot register"* ]] || nx_fail "not the journal: '$out'"
nx_log "journal lines carry <N> priorities"

# --- one line per device created and removed, with no -v
"$BIN/noxs-sysctl-back" -d >"$NX_DIR/sysctl.log" 2>&1 &
NX_PIDS+=($!)
"$BIN/noxs-console-back" -d --dir "$NX_DIR/con" >"$NX_DIR/console.log" 2>&1 &
NX_PIDS+=($!)
truncate -s 1M "$NX_DIR/disk.img"
"$BIN/noxs-blk-back" -d >"$NX_DIR/blk.log" 2>&1 &
NX_PIDS+=($!)
nx_wait 200 "3 backends" nx_has_backends 3
noxsctl domain-create 4 >/dev/null || nx_fail "domain-create"
noxsctl dev-add 4 sysctl 0 || nx_fail "dev-add sysctl"
noxsctl dev-add 4 console 0 || nx_fail "dev-add console"
noxsctl dev-add 4 blk 0 path="$NX_DIR/disk.img" || nx_fail "dev-add blk"
noxsctl domain-destroy 4 || nx_fail "domain-destroy"
for b in sysctl console blk; do
	nx_wait 100 "$b: a line for the device's creation" \
		grep -Eq "domain 4:? $b (device )?0:? created|domain 4 $b 0: .*(sectors|created)" "$NX_DIR/$b.log"
	nx_wait 100 "$b: a line for the device's removal" \
		grep -Eq "domain 4:? $b (device )?0:? removed" "$NX_DIR/$b.log"
done
nx_log "backends log each device's creation and removal by default"
exit 0
