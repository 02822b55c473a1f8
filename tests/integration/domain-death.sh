#!/bin/bash
# A guest domain dies without anyone running domain-destroy (noxs-simctl
# destroy, the simulator's `xl destroy`): noxsd notices (VIRQ_DOM_EXC, or
# polling the domain list) and reaps it: the backend removes its device,
# domain-list and dev-list no longer show it, `noxsctl watch` prints a
# domain-released line (text and --json), and a compat-xs client watching
# @releaseDomain gets the event. A domain noxsd never registered (a stock
# guest) that shuts down or dies is reported too (domain-exception), and
# compat-xs's local-store watcher gets @releaseDomain for it. The reused domid starts with an empty
# device page, and a dead domain's page is never handed out again.
. "$(dirname "$0")/../lib.sh"

SIMCTL=$NX_BUILD/sim/noxs-simctl

# nx_seen DOMID N: noxsd logged at least N times that it saw DOMID running.
nx_seen() {
	[ "$(grep -c "domain $1: the hypervisor lists it running" \
		"$NX_DIR/noxsd.log")" -ge "$2" ]
}
sim_lists() { "$SIMCTL" list | grep -q "^$1 "; }
sim_gone() { ! sim_lists "$1"; }
nx_no_domain() { ! noxsctl domain-list | grep -q "^$1 "; }
nx_lines() { [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "$3" ]; }

# front DOMID BOOT: the sysctl frontend as the guest DOMID; sets FRONT.
front() {
	NOXS_SIM_DOMID=$1 NOXS_BOOT=$2 "$NX_BIN/noxs-sysctl-front" -v \
		>>"$NX_DIR/front-$1.log" 2>&1 &
	FRONT=$!
	NX_PIDS+=("$FRONT")
}

# guest DOMID: domain-create, a sysctl device, its frontend connected,
# and noxsd has seen the domain running; prints nothing, sets BOOT.
guest() {
	local n
	n=$(grep -c "domain $1: the hypervisor lists it running" "$NX_DIR/noxsd.log")
	BOOT=$(nx_domain "$1")
	noxsctl dev-add "$1" sysctl 0 || nx_fail "dev-add $1 sysctl 0"
	front "$1" "$BOOT"
	nx_wait 300 "domain $1 connected" nx_dev_connected "$1"
	nx_wait 300 "noxsd to see domain $1 running" nx_seen "$1" $((n + 1))
}

nx_start_noxsd --domain-poll 100
grep -q 'watching domain deaths through VIRQ_DOM_EXC' "$NX_DIR/noxsd.log" ||
	nx_fail "noxsd did not bind VIRQ_DOM_EXC"
"$NX_BIN/noxs-sysctl-back" -d -v --socket "$NOXS_SOCKET" \
	>>"$NX_DIR/be.log" 2>&1 &
NX_PIDS+=($!)
nx_wait 200 "the sysctl backend" nx_has_backends 1

noxsctl watch all >"$NX_DIR/watch.out" 2>&1 &
NX_PIDS+=($!)
noxsctl watch all --json >"$NX_DIR/watch.json" 2>&1 &
NX_PIDS+=($!)
LD_LIBRARY_PATH=$NX_BUILD/lib/compat-xs:$LD_LIBRARY_PATH COMPAT_XS_QUIET=1 \
	NOXS_SIM_DOMID=0 "$NX_TESTBIN/xswatch" @releaseDomain rel \
	>"$NX_DIR/xs.out" 2>"$NX_DIR/xs.log" &
NX_PIDS+=($!)
# The same on compat-xs's local store (a host without xenstored): the
# store sees introductions and releases, noxsd the deaths.
LD_LIBRARY_PATH=$NX_BUILD/lib/compat-xs:$LD_LIBRARY_PATH COMPAT_XS_QUIET=1 \
	NOXS_SIM_DOMID=0 NOXS_COMPAT_MODE=local NOXS_XS_DIR=$NX_DIR/xs \
	"$NX_TESTBIN/xswatch" @releaseDomain rel >"$NX_DIR/xs-local.out" \
	2>"$NX_DIR/xs-local.log" &
NX_PIDS+=($!)
# libxenstore fires every watch once when it is set.
nx_wait 200 "xswatch's first event" nx_lines "$NX_DIR/xs.out" '^@releaseDomain rel$' 1
nx_wait 200 "xswatch's first event (local store)" \
	nx_lines "$NX_DIR/xs-local.out" '^@releaseDomain rel$' 1
sleep 0.2

# --- 1. death through VIRQ_DOM_EXC --------------------------------------
guest 5
"$SIMCTL" destroy 5 || nx_fail "noxs-simctl destroy 5"
nx_alive "$FRONT" && sleep 0.2
nx_alive "$FRONT" && nx_fail "the guest's process outlived its domain"
nx_wait 300 "noxsd to release domain 5" nx_no_domain 5
[ "$(noxsctl domain-list --json)" = "[]" ] || nx_fail "domain-list: $(noxsctl domain-list)"
[ "$(noxsctl dev-list all --json)" = "[]" ] || nx_fail "dev-list: $(noxsctl dev-list all)"
grep -q 'domain 5: sysctl device 0 removed' "$NX_DIR/be.log" ||
	nx_fail "the backend did not remove the dead domain's device"
nx_wait 100 "watch line" grep -q '^domain-released 5$' "$NX_DIR/watch.out"
grep -q '^domain-destroyed 5' "$NX_DIR/watch.out" &&
	nx_fail "a reap is not a domain-destroy"
grep -q '^dev-removed 5 sysctl 0 ' "$NX_DIR/watch.out" ||
	nx_fail "no dev-removed line"
nx_wait 100 "watch --json line" grep -q '^{"event":"domain-released","domid":5}$' \
	"$NX_DIR/watch.json"
nx_wait 200 "compat-xs @releaseDomain" nx_lines "$NX_DIR/xs.out" '^@releaseDomain rel$' 2
nx_wait 200 "compat-xs @releaseDomain (local store)" \
	nx_lines "$NX_DIR/xs-local.out" '^@releaseDomain rel$' 2

# --- 2. the domid is reused and starts clean ------------------------------
# Xen cannot build a domain on a domid until the old one is gone.
nx_wait 300 "domain 5 to be gone from the simulator" sim_gone 5
boot=$(nx_domain 5)
[ -z "$(nx_page 5 "$boot")" ] || nx_fail "reused domid: page not empty: $(nx_page 5 "$boot")"
noxsctl domain-list | grep -Eq '^5 +0 +[0-9]+ +[0-9]+ +0$' ||
	nx_fail "reused domid: $(noxsctl domain-list)"
noxsctl domain-destroy 5 || nx_fail "domain-destroy of the fresh registration"

# --- 3. domain-destroy while noxsd releases: it waits, it is not refused ---
guest 5
"$SIMCTL" destroy 5 || nx_fail "noxs-simctl destroy 5 (again)"
out=$(noxsctl domain-destroy 5 2>&1)
rc=$?
# (The release may also be over by then: a dead guest's devices are
# removed at once, without waiting for a frontend that cannot close.)
[ $rc = 0 ] || [[ $out == *"No such file"* ]] || [[ $out == *"no such domain"* ]] ||
	nx_fail "domain-destroy during the release: $out"
nx_wait 300 "domain 5 released again" nx_no_domain 5
nx_wait 300 "domain 5 gone again" sim_gone 5
nx_wait 200 "compat-xs @releaseDomain (2)" nx_lines "$NX_DIR/xs.out" '^@releaseDomain rel$' 3

# --- 4. a dead domain's page is not handed out for its domid -------------
guest 7
# The guest's process lives on, so the domain stays dying (Xen: a dying
# domain lingers while something holds its pages).
"$SIMCTL" destroy 7 --no-kill || nx_fail "noxs-simctl destroy 7 --no-kill"
for ((i = 0; i < 200; i++)); do
	out=$(noxsctl domain-create 7 2>&1)
	rc=$?
	[ $rc = 0 ] && break
	[[ $out == *"busy"* ]] || [ "$out" = "$BOOT" ] ||
		nx_fail "domain-create of a dead domain: $out"
	sleep 0.05
done
[ $rc = 0 ] || nx_fail "domain-create 7 never gave a fresh page: $out"
grep -q 'domain 7 is dying' "$NX_DIR/noxsd.log" || nx_fail "domain 7 not reaped"
[ "$(noxsctl dev-list 7 --json)" = "[]" ] || nx_fail "old devices on the new page"
kill -9 "$FRONT" 2>/dev/null # (it may have exited: its device went away)
nx_wait 300 "domain 7 gone" sim_gone 7
noxsctl domain-destroy 7 || nx_fail "domain-destroy 7"

# --- 5. a domain noxsd never registered (a stock guest) -------------------
# Its shutdown and its death reach every watcher: domain-exception lines,
# and @releaseDomain from compat-xs on both stores (what xenstored would
# fire; `xl shutdown -w` waits for it on a host without xenstored).
nrel=$(grep -c '^@releaseDomain rel$' "$NX_DIR/xs-local.out")
# As xl's monitoring child waits: polling xs_fileno (local store).
LD_LIBRARY_PATH=$NX_BUILD/lib/compat-xs:$LD_LIBRARY_PATH COMPAT_XS_QUIET=1 \
	NOXS_SIM_DOMID=0 NOXS_COMPAT_MODE=local NOXS_XS_DIR=$NX_DIR/xs \
	"$NX_BUILD/tests/compat/xsfileno" @releaseDomain 1 >"$NX_DIR/fileno.out" 2>&1 &
fpid=$!
NX_PIDS+=($fpid)
nx_wait 200 "the xs_fileno poller" grep -q ready "$NX_DIR/fileno.out"
"$SIMCTL" create 9 || nx_fail "noxs-simctl create 9"
"$SIMCTL" shutdown 9 poweroff || nx_fail "noxs-simctl shutdown 9"
nx_wait 200 "domain-exception 9 (shutdown)" nx_lines "$NX_DIR/watch.out" '^domain-exception 9$' 1
nx_wait 200 "@releaseDomain for a stock guest's shutdown (local store)" \
	nx_lines "$NX_DIR/xs-local.out" '^@releaseDomain rel$' $((nrel + 1))
wait $fpid || nx_fail "xs_fileno poller: $(cat "$NX_DIR/fileno.out")"
grep -qx 'event @releaseDomain' "$NX_DIR/fileno.out" || nx_fail "xs_fileno poller: $(cat "$NX_DIR/fileno.out")"
grep -q '^{"event":"domain-exception","domid":9}$' "$NX_DIR/watch.json" ||
	nx_wait 100 "watch --json domain-exception" \
		grep -q '^{"event":"domain-exception","domid":9}$' "$NX_DIR/watch.json"
"$SIMCTL" shutdown 9 reboot 2>/dev/null && nx_fail "a second shutdown was accepted"
nrel=$(grep -c '^@releaseDomain rel$' "$NX_DIR/xs-local.out")
"$SIMCTL" destroy 9 || nx_fail "noxs-simctl destroy 9"
nx_wait 300 "domain 9 gone" sim_gone 9
nx_wait 200 "domain-exception 9 (death)" nx_lines "$NX_DIR/watch.out" '^domain-exception 9$' 2
nx_wait 200 "@releaseDomain for a stock guest's death (local store)" \
	nx_lines "$NX_DIR/xs-local.out" '^@releaseDomain rel$' $((nrel + 1))
noxsctl domain-list | grep -q '^9 ' && nx_fail "noxsd registered a domain it only watched"

# --- 6. polling, when VIRQ_DOM_EXC is not ours ---------------------------
nx_stop_noxsd || nx_fail "noxsd exit status"
nx_start_noxsd --no-dom-exc --domain-poll 100
grep -q 'polling the domain list every 100 ms' "$NX_DIR/noxsd.log" ||
	nx_fail "noxsd does not say it polls"
nx_wait 200 "backend back" nx_has_backends 1
noxsctl watch all >"$NX_DIR/watch2.out" 2>&1 &
NX_PIDS+=($!)
sleep 0.2
guest 6
"$SIMCTL" destroy 6 || nx_fail "noxs-simctl destroy 6"
nx_wait 300 "noxsd to release domain 6 (polling)" nx_no_domain 6
nx_wait 100 "watch line (6)" grep -q '^domain-released 6$' "$NX_DIR/watch2.out"
nx_log PASS
