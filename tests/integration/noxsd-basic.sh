#!/bin/bash
# noxsd end to end with the minimal test backend: start, status, domains,
# brokered device add/remove (entry in the guest's page), control relay,
# watch events, errors named by noxsctl, clean stop of worker and keeper.
. "$(dirname "$0")/../lib.sh"

"$NX_BIN/noxsd" --version | grep -q '^noxsd ' || nx_fail "noxsd --version"
"$NX_BIN/noxsctl" --help | grep -q 'domain-create' || nx_fail "noxsctl --help"
noxsctl bogus >/dev/null 2>&1
[ $? = 2 ] || nx_fail "unknown command: want exit 2"
noxsctl status >/dev/null 2>&1
[ $? = 3 ] || nx_fail "no noxsd: want exit 3"

nx_start_noxsd
[ -S "$NOXS_SOCKET" ] || nx_fail "no control socket"
[ "$(stat -c %a "$NOXS_SOCKET")" = 660 ] || nx_fail "socket mode $(stat -c %a "$NOXS_SOCKET")"
kp=$(nx_keeper_pid)
nx_alive "$kp" || nx_fail "no keeper"

noxsctl watch all >"$NX_DIR/watch.out" 2>"$NX_DIR/watch.log" &
NX_PIDS+=($!)
sleep 0.2

boot=$(nx_domain 3)
[[ $boot =~ ^noxs=0:[0-9]+:[0-9]+$ ]] || nx_fail "bootstrap '$boot'"
again=$(noxsctl domain-create 3 2>/dev/null)
[ $? = 1 ] || nx_fail "second domain-create: want exit 1"
[ "$again" = "$boot" ] || nx_fail "EEXIST should still print the bootstrap"

err=$(noxsctl dev-add 3 sysctl 0 2>&1)
[ $? = 1 ] && [[ $err == *"domain 3 sysctl 0: No such device: no backend for sysctl"* ]] ||
	nx_fail "dev-add without backend: $err"
err=$(noxsctl dev-add 9 sysctl 0 2>&1)
[ $? = 1 ] && [[ $err == *"domain 9 sysctl 0: no such domain"* ]] ||
	nx_fail "dev-add to unknown domain: $err"

nx_start_testbe be --types 1,3
nx_wait 100 "backend in status" nx_has_backends 2
noxsctl dev-add 3 sysctl 0 mode=test || nx_fail "dev-add sysctl"
noxsctl dev-add 3 blk 51712 path=/dev/null || nx_fail "dev-add blk"
err=$(noxsctl dev-add 3 blk 51712 2>&1)
[ $? = 1 ] && [[ $err == *"exists"* ]] || nx_fail "duplicate dev-add: $err"
grep -q '^create 3 3 51712' "$NX_DIR/be.log" || nx_fail "backend not asked"

page=$(nx_page 3 "$boot") || nx_fail "read the device page"
[ "$(echo "$page" | wc -l)" = 2 ] || nx_fail "page entries: $page"
echo "$page" | grep -q '^3 51712 ' || nx_fail "blk entry missing: $page"
list=$(noxsctl dev-list 3 --json)
[[ $list == *'"devid":51712'* ]] || nx_fail "dev-list: $list"
noxsctl domain-list | grep -Eq '^3 +0 +[0-9]+ +[0-9]+ +2$' || nx_fail "domain-list"

ack=$(noxsctl shutdown 3 --reason reboot --wait 2) || nx_fail "control relay"
[ "$ack" = "echo:shutdown=reboot" ] || nx_fail "control reply '$ack'"

noxsctl dev-rm 3 blk 51712 || nx_fail "dev-rm"
grep -q '^remove 3 3 51712' "$NX_DIR/be.log" || nx_fail "backend not told to remove"
[ "$(nx_page 3 "$boot" | wc -l)" = 1 ] || nx_fail "entry still in the page"
noxsctl dev-rm 3 blk 51712 2>/dev/null
[ $? = 1 ] || nx_fail "second dev-rm: want exit 1"

noxsctl domain-destroy 3 || nx_fail "domain-destroy"
grep -q '^remove 3 1 0' "$NX_DIR/be.log" || nx_fail "destroy did not remove sysctl 0"
[ "$(noxsctl domain-list --json)" = "[]" ] || nx_fail "domain still listed"
noxsctl domain-destroy 3 2>/dev/null
[ $? = 1 ] || nx_fail "second destroy: want exit 1"

sleep 0.2
for ev in "domain-created 3" "dev-added 3 sysctl 0" "dev-added 3 blk 51712" \
	"dev-removed 3 blk 51712" "dev-removed 3 sysctl 0" "domain-destroyed 3"; do
	grep -q "^$ev" "$NX_DIR/watch.out" || nx_fail "watch: no '$ev'"
done

nx_stop_noxsd || nx_fail "noxsd exit status on SIGTERM"
nx_alive "$kp" || nx_fail "keeper went with the worker"
"$NX_BIN/noxsd" --stop --state-dir "$NX_STATE" || nx_fail "noxsd --stop"
nx_alive "$kp" || nx_fail "noxsd --stop ended the keeper"
"$NX_BIN/noxsd" --stop --teardown --state-dir "$NX_STATE" ||
	nx_fail "noxsd --stop --teardown"
sleep 0.2
nx_alive "$kp" && nx_fail "keeper still running after --stop --teardown"
nx_log PASS
