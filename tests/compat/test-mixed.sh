#!/bin/bash
# A mixed host: Debian's real xenstored and noxsd side by side, every
# client on compat-xs in mixed mode. Generic paths behave exactly as on
# Debian's library (same tools, same output), a stock domain's devices
# stay in xenstored, a domain whose command line says "noxs" gets a
# device page when it is introduced and its devices on pages, a
# transaction over both stores commits whole or not at all, and
# @releaseDomain reaches every watcher whoever released the domain.
. "$(dirname "$0")/lib-compat.sh"

need_xen_tools
xsd_start xenstored xsd
nx_start_noxsd
mixed_exec() { mode_exec mixed "$@"; }
mixed() { (mixed_exec "$@"); }

xenstore_parity mixed "compat-xs (mixed)"

nx_log "a stock domain's devices stay in xenstored"
debian xenstore-write /local/domain/5/device/vif/0/state 1
nx_expect_eq "stock device via compat-xs" \
	"$(mixed xenstore-read /local/domain/5/device/vif/0/state)" 1
mixed xenstore-write /local/domain/0/backend/vif/5/0/state 2
nx_expect_eq "stock backend via Debian's" \
	"$(debian xenstore-read /local/domain/0/backend/vif/5/0/state)" 2

nx_log "introduce: a guest marked noxs gets a device page"
"$NX_BIN/noxs-sysctl-back" -d --socket "$NOXS_SOCKET" >"$NX_DIR/sysctl.log" 2>&1 &
nx_at_exit "kill $!"
nx_wait_line "$NX_DIR/noxsd.log" 'registered'
log=$NX_DIR/back.log
mixed_exec "$NX_BIN/legacy-back" -n 100 >"$log" 2>&1 &
nx_at_exit "kill $!"
nx_wait_line "$log" '^ready'
debian xenstore-write /local/domain/7/vm /vm/u7 \
	/vm/u7/image/cmdline "console=hvc0 noxs" \
	/local/domain/8/vm /vm/u8 /vm/u8/image/cmdline "console=hvc0"
mixed "$NX_BIN/legacy-toolstack" introduce 7 || nx_fail "introduce 7"
mixed "$NX_BIN/legacy-toolstack" introduce 8 || nx_fail "introduce 8"
"$NX_BIN/noxsctl" domain-list >"$NX_DIR/doms"
grep -q '^7\b\|domid 7\b\|"domid": *7' "$NX_DIR/doms" ||
	awk '{print $1}' "$NX_DIR/doms" | grep -qx 7 || nx_fail "no page for domain 7: $(cat "$NX_DIR/doms")"
awk '{print $1}' "$NX_DIR/doms" | grep -qx 8 && nx_fail "domain 8 is not marked noxs, has a page"
boot=$(debian xenstore-read /local/domain/7/noxs) || nx_fail "no /local/domain/7/noxs"
case "$boot" in noxs=*:*:*) ;; *) nx_fail "bootstrap '$boot'" ;; esac
debian xenstore-exists /local/domain/8/noxs && nx_fail "domain 8 has a bootstrap"

nx_log "the same legacy backend serves a noxs guest and a stock one"
for d in 7 8; do
	mixed "$NX_BIN/legacy-toolstack" add $d vif 0 || nx_fail "add $d"
	out=$(mixed $d "$NX_BIN/legacy-front" $d vif 0) || nx_fail "front $d: $out"
	nx_expect_eq "front $d" "$out" "connected /local/domain/0/backend/vif/$d/0
closed"
	nx_wait_line "$log" "^closed $d/0"
done
# Domain 7's device lived on its page, domain 8's in xenstored.
debian xenstore-exists /local/domain/7/device/vif/0/state &&
	nx_fail "domain 7's device is in xenstored"
debian xenstore-exists /local/domain/8/device/vif/0/state ||
	nx_fail "domain 8's device is not in xenstored"
for d in 7 8; do mixed "$NX_BIN/legacy-toolstack" rm $d vif 0 || nx_fail "rm $d"; done

nx_log "one transaction over both stores"
mixed "$NOXS_BUILD/tests/compat/xsmixed" add 7 1 || nx_fail "xsmixed add 7 1"
nx_expect_eq "record" "$(debian xenstore-read /libxl/7/device/vif/1/backend)" \
	/local/domain/0/backend/vif/7/1
nx_expect_eq "device state" \
	"$(mixed xenstore-read /local/domain/7/device/vif/1/state)" 1
rc=0
mixed "$NOXS_BUILD/tests/compat/xsmixed" add 7 2 conflict 2>"$NX_DIR/conflict.log" || rc=$?
nx_expect_eq "conflicting commit" "$rc" 3
debian xenstore-exists /libxl/7/device/vif/2 && nx_fail "record of the failed add kept"
mixed xenstore-exists /local/domain/7/device/vif/2 &&
	nx_fail "device of the failed add kept: $(mixed xenstore-ls /local/domain/7/device)"

nx_log "xenstored-classes: a noxs domain's vbd stays in xenstored"
NOXS_COMPAT_XENSTORED_CLASSES="vbd qdisk" mixed "$NX_BIN/legacy-toolstack" add 7 vbd 51712 ||
	nx_fail "add vbd to xenstored"
nx_expect_eq "vbd in xenstored" \
	"$(debian xenstore-read /local/domain/7/device/vbd/51712/state)" 1
# Without the setting, the class is on domain 7's pages, where it is not.
mixed xenstore-exists /local/domain/7/device/vbd/51712/state 2>/dev/null &&
	nx_fail "the vbd went to a page too"
NOXS_COMPAT_XENSTORED_CLASSES=vbd mixed "$NX_BIN/legacy-toolstack" rm 7 vbd 51712 ||
	nx_fail "rm vbd"

nx_log "@releaseDomain reaches a watcher, whoever released the domain"
mixed xenstore-watch -n 2 @releaseDomain >"$NX_DIR/watch.log" 2>&1 &
w=$!
nx_at_exit "kill $w"
nx_wait_line "$NX_DIR/watch.log" '@releaseDomain'
debian "$NX_BIN/legacy-toolstack" release 8 || nx_fail "release 8 (Debian's library)"
nx_exit_status $w 200
[ "$NX_STATUS" = timeout ] && nx_fail "no @releaseDomain event: $(cat "$NX_DIR/watch.log")"
nx_expect_eq "events" "$(grep -c @releaseDomain "$NX_DIR/watch.log")" 2

nx_log "removing a noxs domain's tree and releasing it leaves nothing"
mixed xenstore-rm /local/domain/7 /libxl/7
mixed "$NX_BIN/legacy-toolstack" release 7 || nx_fail "release 7"
"$NX_BIN/noxsctl" domain-list | awk '{print $1}' | grep -qx 7 &&
	nx_fail "domain 7's page is still there"
debian xenstore-exists /local/domain/7 && nx_fail "/local/domain/7 still in xenstored"

nx_log "the mode: automatic, from the configuration file, explicit"
auto() {
	env NOXS_SIM_DOMID=0 NOXS_COMPAT_CONF=$NX_DIR/none.conf \
		${_wc_asan:+LD_PRELOAD=$_wc_asan ASAN_OPTIONS=detect_leaks=0} \
		LD_LIBRARY_PATH=$NOXS_BUILD/lib/compat-xs:$NOXS_BUILD/sim:$NOXS_BUILD/lib "$@"
}
nx_expect_eq "auto with xenstored" "$(auto xenstore-read /local/pool/0/name)" Pool-0
echo "mode = noxs" >"$NX_DIR/noxs.conf"
auto env NOXS_COMPAT_CONF=$NX_DIR/noxs.conf xenstore-read /local/pool/0/name \
	>"$NX_DIR/conf.out" 2>&1 && nx_fail "mode = noxs still reads generic paths"
grep -q EACCES "$NX_DIR/conf.out" || nx_fail "noxs mode: $(cat "$NX_DIR/conf.out")"
xsd_stop xsd
auto env NOXS_COMPAT_MODE=mixed XENSTORED_PATH=$NX_DIR/xsd/socket \
	xenstore-read /local/pool/0/name >"$NX_DIR/down.out" 2>&1 &&
	nx_fail "mixed mode without xenstored succeeded"
grep -q "cannot reach xenstored" "$NX_DIR/down.out" ||
	nx_fail "no reason given: $(cat "$NX_DIR/down.out")"
echo ok
