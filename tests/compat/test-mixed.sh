#!/bin/sh
# A mixed host: Debian's real xenstored and noxsd side by side, every
# client on compat-xs in mixed mode. Generic paths behave exactly as on
# Debian's library (same tools, same output), a stock domain's devices
# stay in xenstored, a domain whose command line says "noxs" gets a
# device page when it is introduced and its devices on pages, a
# transaction over both stores commits whole or not at all, and
# @releaseDomain reaches every watcher whoever released the domain.
. "$(dirname "$0")/lib.sh"

need_xen_tools
xsd_start xenstored xsd
noxs_start
mixed_exec() { mode_exec mixed "$@"; }
mixed() { (mixed_exec "$@"); }
# Debian's own library and tools, straight to xenstored.
debian() { env -u LD_LIBRARY_PATH -u LD_PRELOAD "$@"; }

note "generic paths: the same output as Debian's library"
for lib in debian mixed; do
	generic_ops $lib >"$WORK/out.$lib" 2>&1 || true
done
sed -i 's/^[a-z-]*: //' "$WORK/out.debian" "$WORK/out.mixed"
diff -u "$WORK/out.debian" "$WORK/out.mixed" || fail "compat-xs differs from Debian's library"

note "Debian's test-xenstore on compat-xs"
mixed "$XEN_BIN/test-xenstore" >"$WORK/txs.log" 2>&1 ||
	fail "test-xenstore: $(cat "$WORK/txs.log")"

note "a stock domain's devices stay in xenstored"
debian xenstore-write /local/domain/5/device/vif/0/state 1
expect_eq "stock device via compat-xs" \
	"$(mixed xenstore-read /local/domain/5/device/vif/0/state)" 1
mixed xenstore-write /local/domain/0/backend/vif/5/0/state 2
expect_eq "stock backend via Debian's" \
	"$(debian xenstore-read /local/domain/0/backend/vif/5/0/state)" 2

note "introduce: a guest marked noxs gets a device page"
"$BIN/noxs-sysctl-back" -d --socket "$NOXS_SOCKET" >"$WORK/sysctl.log" 2>&1 &
at_exit "kill $!"
wait_line "$WORK/noxsd.log" 'registered'
log=$WORK/back.log
mixed_exec "$BIN/legacy-back" -n 100 >"$log" 2>&1 &
at_exit "kill $!"
wait_line "$log" '^ready'
debian xenstore-write /local/domain/7/vm /vm/u7 \
	/vm/u7/image/cmdline "console=hvc0 noxs" \
	/local/domain/8/vm /vm/u8 /vm/u8/image/cmdline "console=hvc0"
mixed "$BIN/legacy-toolstack" introduce 7 || fail "introduce 7"
mixed "$BIN/legacy-toolstack" introduce 8 || fail "introduce 8"
"$BIN/noxsctl" domain-list >"$WORK/doms"
grep -q '^7\b\|domid 7\b\|"domid": *7' "$WORK/doms" ||
	awk '{print $1}' "$WORK/doms" | grep -qx 7 || fail "no page for domain 7: $(cat "$WORK/doms")"
awk '{print $1}' "$WORK/doms" | grep -qx 8 && fail "domain 8 is not marked noxs, has a page"
boot=$(debian xenstore-read /local/domain/7/noxs) || fail "no /local/domain/7/noxs"
case "$boot" in noxs=*:*:*) ;; *) fail "bootstrap '$boot'" ;; esac
debian xenstore-exists /local/domain/8/noxs && fail "domain 8 has a bootstrap"

note "the same legacy backend serves a noxs guest and a stock one"
for d in 7 8; do
	mixed "$BIN/legacy-toolstack" add $d vif 0 || fail "add $d"
	out=$(mixed $d "$BIN/legacy-front" $d vif 0) || fail "front $d: $out"
	expect_eq "front $d" "$out" "connected /local/domain/0/backend/vif/$d/0
closed"
	wait_line "$log" "^closed $d/0"
done
# Domain 7's device lived on its page, domain 8's in xenstored.
debian xenstore-exists /local/domain/7/device/vif/0/state &&
	fail "domain 7's device is in xenstored"
debian xenstore-exists /local/domain/8/device/vif/0/state ||
	fail "domain 8's device is not in xenstored"
for d in 7 8; do mixed "$BIN/legacy-toolstack" rm $d vif 0 || fail "rm $d"; done

note "one transaction over both stores"
mixed "$NOXS_BUILD/tests/compat/xsmixed" add 7 1 || fail "xsmixed add 7 1"
expect_eq "record" "$(debian xenstore-read /libxl/7/device/vif/1/backend)" \
	/local/domain/0/backend/vif/7/1
expect_eq "device state" \
	"$(mixed xenstore-read /local/domain/7/device/vif/1/state)" 1
rc=0
mixed "$NOXS_BUILD/tests/compat/xsmixed" add 7 2 conflict 2>"$WORK/conflict.log" || rc=$?
expect_eq "conflicting commit" "$rc" 3
debian xenstore-exists /libxl/7/device/vif/2 && fail "record of the failed add kept"
mixed xenstore-exists /local/domain/7/device/vif/2 &&
	fail "device of the failed add kept: $(mixed xenstore-ls /local/domain/7/device)"

note "xenstored-classes: a noxs domain's vbd stays in xenstored"
NOXS_COMPAT_XENSTORED_CLASSES="vbd qdisk" mixed "$BIN/legacy-toolstack" add 7 vbd 51712 ||
	fail "add vbd to xenstored"
expect_eq "vbd in xenstored" \
	"$(debian xenstore-read /local/domain/7/device/vbd/51712/state)" 1
# Without the setting, the class is on domain 7's pages, where it is not.
mixed xenstore-exists /local/domain/7/device/vbd/51712/state 2>/dev/null &&
	fail "the vbd went to a page too"
NOXS_COMPAT_XENSTORED_CLASSES=vbd mixed "$BIN/legacy-toolstack" rm 7 vbd 51712 ||
	fail "rm vbd"

note "@releaseDomain reaches a watcher, whoever released the domain"
mixed xenstore-watch -n 2 @releaseDomain >"$WORK/watch.log" 2>&1 &
w=$!
at_exit "kill $w"
wait_line "$WORK/watch.log" '@releaseDomain'
debian "$BIN/legacy-toolstack" release 8 || fail "release 8 (Debian's library)"
i=0
while kill -0 $w 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 1000 ] && fail "no @releaseDomain event: $(cat "$WORK/watch.log")"
	sleep 0.01
done
expect_eq "events" "$(grep -c @releaseDomain "$WORK/watch.log")" 2

note "removing a noxs domain's tree and releasing it leaves nothing"
mixed xenstore-rm /local/domain/7 /libxl/7
mixed "$BIN/legacy-toolstack" release 7 || fail "release 7"
"$BIN/noxsctl" domain-list | awk '{print $1}' | grep -qx 7 &&
	fail "domain 7's page is still there"
debian xenstore-exists /local/domain/7 && fail "/local/domain/7 still in xenstored"

note "the mode: automatic, from the configuration file, explicit"
auto() {
	env NOXS_SIM_DOMID=0 NOXS_COMPAT_CONF=$WORK/none.conf \
		${_wc_asan:+LD_PRELOAD=$_wc_asan ASAN_OPTIONS=detect_leaks=0} \
		LD_LIBRARY_PATH=$NOXS_BUILD/lib/compat-xs:$NOXS_BUILD/sim:$NOXS_BUILD/lib "$@"
}
expect_eq "auto with xenstored" "$(auto xenstore-read /local/pool/0/name)" Pool-0
echo "mode = noxs" >"$WORK/noxs.conf"
auto env NOXS_COMPAT_CONF=$WORK/noxs.conf xenstore-read /local/pool/0/name \
	>"$WORK/conf.out" 2>&1 && fail "mode = noxs still reads generic paths"
grep -q EACCES "$WORK/conf.out" || fail "noxs mode: $(cat "$WORK/conf.out")"
xsd_stop xsd
auto env NOXS_COMPAT_MODE=mixed XENSTORED_PATH=$WORK/xsd/socket \
	xenstore-read /local/pool/0/name >"$WORK/down.out" 2>&1 &&
	fail "mixed mode without xenstored succeeded"
grep -q "cannot reach xenstored" "$WORK/down.out" ||
	fail "no reason given: $(cat "$WORK/down.out")"
echo ok
