#!/bin/bash
# What `systemctl restart noxsd` does (ExecStop=noxsd --stop, then a new
# worker, possibly of a new binary): the page keeper and with it every
# domain's device page, grant and notify port stay; the new worker knows
# every domain and device, and the guest reads the same page. Only
# `noxsd --stop --teardown` ends the keeper and the pages.
. "$(dirname "$0")/../lib.sh"

nx_start_noxsd
nx_start_testbe be --types 1,3
boot1=$(nx_domain 1)
boot2=$(nx_domain 2)
noxsctl dev-add 1 sysctl 0 >/dev/null || nx_fail "dev-add 1 sysctl 0"
noxsctl dev-add 1 blk 51712 >/dev/null || nx_fail "dev-add 1 blk 51712"
noxsctl dev-add 2 sysctl 0 >/dev/null || nx_fail "dev-add 2 sysctl 0"
nx_page 1 "$boot1" >"$NX_DIR/page1.before" || nx_fail "page of domain 1"
nx_page 2 "$boot2" >"$NX_DIR/page2.before" || nx_fail "page of domain 2"
[ "$(wc -l <"$NX_DIR/page1.before")" = 2 ] || nx_fail "domain 1's page: $(cat "$NX_DIR/page1.before")"
noxsctl domain-list >"$NX_DIR/domains.before"
noxsctl dev-list all | awk '{print $1, $2, $3}' >"$NX_DIR/devs.before"
kp=$(nx_keeper_pid)

# The unit's ExecStop.
"$NX_BIN/noxsd" --stop --state-dir "$NX_STATE" || nx_fail "noxsd --stop"
wait "$NX_NOXSD" 2>/dev/null
nx_alive "$kp" || nx_fail "noxsd --stop ended the page keeper (and every device page)"
nx_page 1 "$boot1" | cmp -s - "$NX_DIR/page1.before" ||
	nx_fail "domain 1's page changed while noxsd was stopped"

# The new worker (ExecStart).
nx_start_noxsd
[ "$(nx_keeper_pid)" = "$kp" ] || nx_fail "a new keeper was started"
grep -q 'forgetting the domain' "$NX_DIR/noxsd.log" &&
	nx_fail "the new worker forgot domains: $(grep forgetting "$NX_DIR/noxsd.log")"
noxsctl domain-list | cmp -s - "$NX_DIR/domains.before" ||
	nx_fail "domains after restart: $(noxsctl domain-list)"
noxsctl dev-list all | awk '{print $1, $2, $3}' | cmp -s - "$NX_DIR/devs.before" ||
	nx_fail "devices after restart: $(noxsctl dev-list all)"
nx_page 1 "$boot1" | cmp -s - "$NX_DIR/page1.before" || nx_fail "domain 1's page after restart"
nx_page 2 "$boot2" | cmp -s - "$NX_DIR/page2.before" || nx_fail "domain 2's page after restart"
nx_wait 200 "the backend to reconnect" nx_has_backends 1
noxsctl dev-add 2 blk 51713 >/dev/null || nx_fail "dev-add after restart"
nx_log "restart: keeper $kp kept, 2 domains and 3 devices unchanged"

# The explicit host-level teardown ends the keeper and the pages.
"$NX_BIN/noxsd" --stop --teardown --state-dir "$NX_STATE" ||
	nx_fail "noxsd --stop --teardown"
wait "$NX_NOXSD" 2>/dev/null
nx_wait 100 "the keeper to exit" eval "! nx_alive $kp"
nx_page 1 "$boot1" >/dev/null 2>&1 && nx_fail "domain 1's page outlived --teardown"
"$NX_BIN/noxsd" --teardown --state-dir "$NX_STATE" 2>/dev/null
[ $? = 2 ] || nx_fail "--teardown without --stop is not a usage error"
nx_log PASS
