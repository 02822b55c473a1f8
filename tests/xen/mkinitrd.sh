#!/bin/sh
# check-xen, step 2: build the guest and dom0 initramfs images.
#
#   mkinitrd.sh PROGDIR [NOXS_BUILD]
#
# PROGDIR holds this lane's own test programs (xsmoke, xcross,
# xs-handshake, noxs-probe, noxs-handshake). NOXS_BUILD, if given, is a
# noxs build tree (bin/, lib/): its daemons, tools and drivers go in with
# the shared libraries they need, and the noxs checks are switched on.
# Output: $XEN_OUT/dom0-initrd, $XEN_OUT/guest-initrd, $XEN_OUT/expected.
#
# Env (with NOXS_BUILD): XL_STAGES (1, default: the xl stages of
# xl-stages.sh), XL_LIB (compat, default, or debian: the libxenstore.so.4
# those stages run xl on), XL_NOXS_GUEST (1, default: their noxs guest
# too, or 0).
set -eu
. "$(dirname "$0")/common.sh"
PROGDIR=$(cd "$1" && pwd)
NOXS_BUILD=${2:-}
[ -n "$NOXS_BUILD" ] && NOXS_BUILD=$(cd "$NOXS_BUILD" && pwd)
kv=$(kernel_version) || die "run fetch.sh first"
[ -f "$XEN_ROOT/.complete" ] || die "run fetch.sh first"
kmod_src=$XEN_ROOT/lib/modules/$kv/kernel/drivers/xen

# copy_elf ROOT FILE DEST: FILE into ROOT/DEST, plus the shared libraries
# it needs (resolved on the host, noxs's own from its build tree).
copy_elf() {
	mkdir -p "$1$(dirname "$3")"
	cp -L "$2" "$1$3"
	if LD_LIBRARY_PATH=${NOXS_BUILD:+$NOXS_BUILD/lib} ldd "$2" 2>/dev/null | grep -q 'not found'; then
		die "$2 needs libraries this host lacks: $(ldd "$2" | grep 'not found' | tr -s ' \n' ' ')"
	fi
	LD_LIBRARY_PATH=${NOXS_BUILD:+$NOXS_BUILD/lib} ldd "$2" 2>/dev/null |
		awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }' |
		while read -r lib; do
			dest=$lib
			case $lib in "$NOXS_BUILD"/lib/*) dest=/usr/lib/$(basename "$lib") ;; esac
			[ -e "$1$dest" ] && continue
			mkdir -p "$1$(dirname "$dest")"
			cp -L "$lib" "$1$dest"
		done
}

skeleton() {
	rm -rf "$1" && mkdir -p "$1"
	(cd "$1" && mkdir -p bin sbin usr/bin usr/sbin usr/lib etc proc sys dev tmp run var lib64)
	cp "$XEN_ROOT/bin/busybox" "$1/bin/busybox"
	"$XEN_ROOT/bin/busybox" --list-full | while read -r app; do
		[ -e "$1/$app" ] || ln -s /bin/busybox "$1/$app"
	done
	for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs/xenfs; do
		mkdir -p "$1/lib/modules/$kv/kernel/drivers/xen/$(dirname "$m")"
		cp "$kmod_src/$m.ko" "$1/lib/modules/$kv/kernel/drivers/xen/$m.ko"
	done
}

pack() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$2"; }

noxs() { [ -n "$NOXS_BUILD" ]; }
XL_STAGES=${XL_STAGES:-1}
XL_LIB=${XL_LIB:-compat}
XL_NOXS_GUEST=${XL_NOXS_GUEST:-1}
case $XL_LIB in compat | debian) ;; *) die "XL_LIB must be compat or debian, not '$XL_LIB'" ;; esac
# The xl stages: unmodified xl on this build's compat-xs (or Debian's
# library) beside noxsd.
xl_stages() { noxs && [ "$XL_STAGES" = 1 ]; }
built() { for b; do [ -x "$NOXS_BUILD/bin/$b" ] || return 1; done; }
# The data drivers are optional: in when the build has both ends.
has_blk() { noxs && built noxs-blk-back noxs-blk; }
has_console() { noxs && built noxs-console-back noxs-console noxs-console-front; }

# ---------------------------------------------------------------- guest
G=$XEN_DIR/guest-root
skeleton "$G"
cp "$XEN_SRC/init-guest" "$G/init" && chmod 755 "$G/init"
# The xl stages' guests: their program, and the kernel's block and
# network frontends (modules in Debian's kernel).
cp "$XEN_SRC/xl-guest" "$G/xl-guest" && chmod 755 "$G/xl-guest"
for m in block/xen-blkfront net/xen-netfront; do
	mkdir -p "$G/lib/modules/$kv/kernel/drivers/$(dirname "$m")"
	cp "$XEN_ROOT/lib/modules/$kv/kernel/drivers/$m.ko" "$G/lib/modules/$kv/kernel/drivers/$m.ko"
done
cp "$PROGDIR/xcross" "$G/bin/"
if noxs; then
	copy_elf "$G" "$NOXS_BUILD/bin/noxs-sysctl-front" /usr/bin/noxs-sysctl-front
	copy_elf "$G" "$PROGDIR/noxs-probe" /bin/noxs-probe
	# Optional data drivers: in when the build has them.
	has_blk && copy_elf "$G" "$NOXS_BUILD/bin/noxs-blk" /usr/bin/noxs-blk
	has_console && copy_elf "$G" "$NOXS_BUILD/bin/noxs-console-front" /usr/bin/noxs-console-front
fi
mkdir -p "$XEN_OUT"
pack "$G" "$XEN_OUT/guest-initrd"

# ----------------------------------------------------------------- dom0
D=$XEN_DIR/dom0-root
skeleton "$D"
cp "$XEN_SRC/init-dom0" "$D/init" && chmod 755 "$D/init"
for p in xsmoke xcross; do cp "$PROGDIR/$p" "$D/bin/"; done
copy_elf "$D" "$PROGDIR/xs-handshake" /bin/xs-handshake
xb=/usr/lib/xen-4.17/bin
for b in xl xenstored xenconsoled xen-init-dom0; do
	copy_elf "$D" "$XEN_ROOT$xb/$b" "$xb/$b"
done
copy_elf "$D" "$XEN_ROOT/usr/bin/xenstore" /usr/bin/xenstore
for b in read write ls list rm; do ln -s xenstore "$D/usr/bin/xenstore-$b"; done
# glibc dlopen()s libgcc_s for pthread_cancel; xl aborts without it.
gcc_s=$(gcc -print-file-name=libgcc_s.so.1)
mkdir -p "$D/lib/x86_64-linux-gnu" && cp -L "$gcc_s" "$D/lib/x86_64-linux-gnu/"
mkdir -p "$D/etc/xen" "$D/boot"
cp "$XEN_ROOT/etc/xen/xl.conf" "$D/etc/xen/" 2>/dev/null || : > "$D/etc/xen/xl.conf"
cp "$XEN_SRC/guest.cfg.in" "$D/etc/xen/guest.cfg.in"
cp "$XEN_ROOT/boot/vmlinuz-$kv" "$D/boot/vmlinuz"
cp "$XEN_OUT/guest-initrd" "$D/boot/guest-initrd"
{
	echo "NOXS=$(noxs && echo 1 || echo 0)"
	echo "HS_ITER=${HS_ITER:-30}"
} > "$D/etc/xen-lane.conf"
cp "$XEN_SRC/expect-base" "$XEN_OUT/expected"
if noxs; then
	for b in noxsd noxsctl noxs-sysctl-back; do
		copy_elf "$D" "$NOXS_BUILD/bin/$b" "/usr/bin/$b"
	done
	# Plays systemd's notification socket, fd store and restart for noxsd.
	copy_elf "$D" "$NOXS_BUILD/tests/integration/noxsd-fdstore" /usr/bin/noxsd-fdstore
	copy_elf "$D" "$PROGDIR/noxs-handshake" /bin/noxs-handshake
	# The daemons run without capabilities (noxs-dom0.sh's nocaps): util-
	# linux's setpriv, under its own name (busybox's has no --bounding-set).
	copy_elf "$D" "$(command -v setpriv)" /usr/bin/ul-setpriv
	if has_blk; then
		copy_elf "$D" "$NOXS_BUILD/bin/noxs-blk-back" /usr/bin/noxs-blk-back
		cat "$XEN_SRC/expect-blk" >> "$XEN_OUT/expected"
	fi
	if has_console; then
		copy_elf "$D" "$NOXS_BUILD/bin/noxs-console-back" /usr/bin/noxs-console-back
		copy_elf "$D" "$NOXS_BUILD/bin/noxs-console" /usr/bin/noxs-console
		cat "$XEN_SRC/expect-console" >> "$XEN_OUT/expected"
	fi
	cp "$XEN_SRC/noxs-dom0.sh" "$D/etc/noxs-dom0.sh"
	cat "$XEN_SRC/expect-noxs" >> "$XEN_OUT/expected"
	# Domain death: its own stage and checks (noxs-reap.sh).
	cp "$XEN_SRC/noxs-reap.sh" "$D/etc/noxs-reap.sh"
	cat "$XEN_SRC/expect-reap" >> "$XEN_OUT/expected"
fi
if xl_stages; then
	# xl console runs xenconsole; the stages trace xenstored with
	# xenstore-control, give blkback loop devices, and run the hotplug
	# stand-in lane-block.
	copy_elf "$D" "$XEN_ROOT$xb/xenconsole" "$xb/xenconsole"
	# xl save runs it (the noxs guest's save is refused, but xl starts
	# the helper first).
	copy_elf "$D" "$XEN_ROOT$xb/libxl-save-helper" "$xb/libxl-save-helper"
	copy_elf "$D" "$XEN_ROOT$xb/xenstore-control" /usr/bin/xenstore-control
	copy_elf "$D" "$NOXS_BUILD/lib/compat-xs/libxenstore.so.4" /usr/lib/noxs/compat-xs/libxenstore.so.4
	for m in loop xen-blkback/xen-blkback; do
		mkdir -p "$D/lib/modules/$kv/kernel/drivers/block/$(dirname "$m")"
		cp "$XEN_ROOT/lib/modules/$kv/kernel/drivers/block/$m.ko" "$D/lib/modules/$kv/kernel/drivers/block/$m.ko"
	done
	# The network stage: netback, the bridge, and Xen's own vif-bridge
	# hotplug script (unchanged, from xen-utils-common) with what it
	# runs: bash, iproute2's ip (busybox gives brctl, logger, expr).
	for m in drivers/net/xen-netback/xen-netback net/llc/llc net/802/stp net/bridge/bridge; do
		mkdir -p "$D/lib/modules/$kv/kernel/$(dirname "$m")"
		cp "$XEN_ROOT/lib/modules/$kv/kernel/$m.ko" "$D/lib/modules/$kv/kernel/$m.ko"
	done
	copy_elf "$D" "$(command -v bash)" /bin/bash
	copy_elf "$D" "$(command -v ip)" /usr/sbin/ip
	mkdir -p "$D/etc/xen/scripts"
	for f in vif-bridge vif-common.sh xen-hotplug-common.sh xen-network-common.sh \
		xen-script-common.sh logging.sh locking.sh hotplugpath.sh; do
		cp "$XEN_ROOT/etc/xen/scripts/$f" "$D/etc/xen/scripts/$f"
	done
	cp "$XEN_SRC/lane-block" "$D/etc/xen/scripts/lane-block"
	cp "$XEN_SRC/xl-guest.cfg.in" "$D/etc/xen/xl-guest.cfg.in"
	cp "$XEN_SRC/xl-stages.sh" "$D/etc/xl-stages.sh"
	cp "$XEN_SRC/xl-net.sh" "$D/etc/xl-net.sh"
	{
		echo "XL_STAGES=1"
		echo "XL_LIB=$XL_LIB"
		echo "XL_NOXS_GUEST=$XL_NOXS_GUEST"
	} >> "$D/etc/xen-lane.conf"
	cat "$XEN_SRC/expect-xl" >> "$XEN_OUT/expected"
	printf '%s\n' dom0.xl-timing-stock-xenstored dom0.xl-timing-net-xenstored >> "$XEN_OUT/expected"
	[ "$XL_NOXS_GUEST" = 1 ] && cat "$XEN_SRC/expect-xl-noxs" >> "$XEN_OUT/expected"
	# The second boot (boot.sh LANE=noxs-only): the same stages on a dom0
	# with no xenstored, compat-xs in local mode, noxs-xsringd.
	rm -f "$XEN_OUT/expected-noxs-only"
	if [ "$XL_LIB" = compat ] && built noxs-xsringd; then
		copy_elf "$D" "$NOXS_BUILD/bin/noxs-xsringd" /usr/bin/noxs-xsringd
		cp "$XEN_SRC/noxs-only.sh" "$D/etc/noxs-only.sh"
		{
			cat "$XEN_SRC/expect-noxs-only"
			grep -v '^dom0.xl-create-xenstored' "$XEN_SRC/expect-xl"
			echo dom0.xl-timing-stock-noxs-only
			echo dom0.xl-timing-net-noxs-only
			if [ "$XL_NOXS_GUEST" = 1 ]; then
				cat "$XEN_SRC/expect-xl-noxs"
				echo dom0.xl-timing-noxs-noxs-only
			fi
		} > "$XEN_OUT/expected-noxs-only"
	fi
else
	echo "XL_STAGES=0" >> "$D/etc/xen-lane.conf"
fi
pack "$D" "$XEN_OUT/dom0-initrd"
msg "initramfs: dom0 $(du -k "$XEN_OUT/dom0-initrd" | cut -f1) KiB, guest $(du -k "$XEN_OUT/guest-initrd" | cut -f1) KiB$(noxs && echo ", with noxs" || echo ", without noxs")$(xl_stages && echo ", xl stages on $XL_LIB's libxenstore")"
