#!/bin/bash
# The page keeper may die or be replaced without loss. noxsd runs under
# noxsd-fdstore, which plays systemd (notification socket, the fd store,
# Restart=on-failure) as noxsd-notify.sh plays the notification socket.
#   1. kill -9 of the keeper: the worker exits, the "service manager"
#      restarts it with the keeper's files from its fd store, the next
#      keeper maps the pages again;
#   2. kill -9 of worker and keeper together: the same;
#   3. restart with a new binary (noxsd --stop, a new file at the same
#      path, start): the keeper replaces its image in place;
# and each time the guest reads the same device page through its old
# bootstrap string, its sysctl device stays Connected without the
# frontend reconnecting, and a new device reaches a second guest.
# Only noxsd --stop --teardown ends the pages.
. "$(dirname "$0")/../lib.sh"

# The guest's device page as mapped from the grant in its bootstrap
# (header: owner, notify port, generation; then the entries).
mapped() { NOXS_SIM_DOMID=$1 "$NX_TESTBIN/noxsd-probe" mapped "$1" "$2"; }

ns=$NX_DIR/notify.sock
bin=$NX_DIR/bin
mkdir -p "$bin"
cp "$NX_BIN/noxsd" "$bin/noxsd"
"$NX_TESTBIN/noxsd-fdstore" "$ns" -- "$bin/noxsd" -d -v --state-dir "$NX_STATE" \
	>"$NX_DIR/svc.out" 2>>"$NX_DIR/noxsd.log" &
svc=$!
NX_PIDS+=("$svc")
nx_wait 200 "noxsd to answer" noxsctl status
stored() { [ "$(grep -c '^stored noxsd-keeper-' "$NX_DIR/svc.out")" -ge "$1" ]; }
nx_wait 200 "the keeper's 3 files in the fd store" stored 3
starts() { grep -c '^started ' "$NX_DIR/svc.out"; }

nx_start_sysctl_back

boot1=$(nx_domain 1)
boot2=$(nx_domain 2)
nx_sysctl_connect 1 "$boot1"
fe1=$NX_FRONT
connections() { grep -c 'connected$' "$NX_DIR/front-1.log"; }
mapped 1 "$boot1" >"$NX_DIR/page1" || nx_fail "domain 1's page"
mapped 2 "$boot2" >"$NX_DIR/page2" || nx_fail "domain 2's page"
c0=$(connections)

# Everything the guests see is as it was.
unchanged() {
	local what=$1
	mapped 1 "$boot1" | cmp -s - "$NX_DIR/page1" ||
		nx_fail "$what: domain 1's device page changed: $(mapped 1 "$boot1" 2>&1)"
	mapped 2 "$boot2" | cmp -s - "$NX_DIR/page2" ||
		nx_fail "$what: domain 2's device page changed"
	# dev-list shows the backend's state once the backend has synchronised
	# with the new worker; the frontend's log below shows it never dropped.
	nx_wait 200 "$what: domain 1's device listed Connected" nx_dev_connected 1
	nx_alive "$fe1" || nx_fail "$what: domain 1's frontend exited"
	[ "$(connections)" = "$c0" ] ||
		nx_fail "$what: domain 1's frontend had to connect again"
	grep -Eq 'closed|Closing' "$NX_DIR/front-1.log" &&
		nx_fail "$what: domain 1's frontend saw its device close"
	grep -q 'forgetting the domain' "$NX_DIR/noxsd.log" &&
		nx_fail "$what: noxsd forgot domains"
	[ "$(noxsctl domain-list | tail -n +2 | wc -l)" = 2 ] ||
		nx_fail "$what: domains: $(noxsctl domain-list)"
	return 0
}
# And the new keeper writes pages and notifies guests: a device for
# domain 2 reaches a frontend started now.
new_device() {
	nx_sysctl_cycle "$1" 2 "$boot2" "$NX_DIR/front-2.$2.log"
	mapped 2 "$boot2" >"$NX_DIR/page2" || nx_fail "$1: domain 2's page"
}

# 1. The keeper alone.
kp=$(nx_keeper_pid)
kill -9 "$kp"
nx_wait 200 "the service manager to restart noxsd" eval '[ "$(starts)" -ge 2 ]'
nx_wait 200 "noxsd to answer again" noxsctl status
nx_wait 200 "a new keeper" eval '[ -n "$(nx_keeper_pid)" ] && [ "$(nx_keeper_pid)" != "$kp" ]'
grep -q 'took over 2 device page(s)' "$NX_DIR/noxsd.log" ||
	nx_fail "the new keeper did not take over the pages"
unchanged "after kill -9 of the keeper"
new_device "after kill -9 of the keeper" 1
nx_log "kill -9 of the keeper: pages, ports and devices kept"

# 2. Worker and keeper at once.
kp=$(nx_keeper_pid)
wp=$(cat "$NX_STATE/noxsd.pid")
kill -9 "$wp" "$kp"
nx_wait 200 "the service manager to restart noxsd" eval '[ "$(starts)" -ge 3 ]'
nx_wait 200 "noxsd to answer again" noxsctl status
nx_wait 200 "a new keeper" eval '[ -n "$(nx_keeper_pid)" ] && [ "$(nx_keeper_pid)" != "$kp" ]'
unchanged "after kill -9 of worker and keeper"
new_device "after kill -9 of worker and keeper" 2
nx_log "kill -9 of worker and keeper: pages, ports and devices kept"

# 3. systemctl restart after an upgrade: a new file at the same path.
kp=$(nx_keeper_pid)
cp "$NX_BIN/noxsd" "$bin/noxsd.new" && mv "$bin/noxsd.new" "$bin/noxsd"
"$bin/noxsd" --stop --state-dir "$NX_STATE" || nx_fail "noxsd --stop"
nx_wait 200 "the worker to exit" grep -q '^exited .* 0$' "$NX_DIR/svc.out"
kill -USR1 "$svc"
nx_wait 200 "noxsd to start again" eval '[ "$(starts)" -ge 4 ]'
nx_wait 200 "noxsd to answer again" noxsctl status
[ "$(nx_keeper_pid)" = "$kp" ] || nx_fail "the keeper was not kept across the restart"
nx_wait 200 "the keeper to run the new binary" eval \
	'[ "$(readlink "/proc/$kp/exe")" = "$bin/noxsd" ]'
grep -q 'replacing its program image' "$NX_DIR/noxsd.log" ||
	nx_fail "the keeper did not replace its image"
unchanged "after a restart with a new binary"
new_device "after a restart with a new binary" 3
nx_log "restart with a new binary: the keeper runs it, pages and devices kept"

# The explicit teardown ends the pages, even with the files still stored.
"$bin/noxsd" --stop --teardown --state-dir "$NX_STATE" || nx_fail "--stop --teardown"
nx_wait 100 "the keeper to exit" eval "! nx_alive $kp"
mapped 2 "$boot2" >/dev/null 2>&1 && nx_fail "domain 2's page outlived --teardown"
nx_log PASS
