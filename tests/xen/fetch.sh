#!/bin/sh
# check-xen, step 1: host tools and the Debian packages to boot.
#
# Host tools (qemu-system-x86, cpio, libxen-dev, gcc) are
# installed with apt-get when running as root; otherwise the missing ones
# are named and the script fails. The boot packages (Xen hypervisor, the
# kernel linux-image-amd64 depends on, busybox-static, xl and its daemons)
# are fetched with `apt-get download` into $XEN_DIR/debs and unpacked into
# $XEN_DIR/root; both are reused on later runs.
set -eu
. "$(dirname "$0")/common.sh"

# libxen-dev pulls in the shared libraries xl, xenstored and noxs link
# against; they are copied from the host into the images.
host_pkgs="qemu-system-x86 cpio libxen-dev gcc"
missing=""
for p in $host_pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
apt_fresh() {
	[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -120 2>/dev/null | head -n 1)" ]
}
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		die "missing host packages:$missing (install: sudo apt-get install$missing)"
	fi
	msg "installing host packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt_fresh || apt-get update -qq >&2
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >&2
fi

if [ -f "$XEN_ROOT/.complete" ]; then
	exit 0
fi

kv=$(kernel_version) || {
	[ "$(id -u)" -eq 0 ] && apt-get update -qq >&2
	kv=$(kernel_version)
} || die "cannot find which linux-image linux-image-amd64 depends on (apt-get update?)"
pkgs="$XEN_HV_PKG linux-image-$kv busybox-static $XEN_UTILS_PKGS"
mkdir -p "$XEN_DEBS"
need=""
for p in $pkgs; do
	ls "$XEN_DEBS/${p}"_*.deb >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
	msg "downloading:$need"
	# apt-get download runs as the _apt user when root; let it write here.
	chmod 0777 "$XEN_DEBS" 2>/dev/null || true
	# shellcheck disable=SC2086
	(cd "$XEN_DEBS" && apt-get download -q $need >&2) || {
		[ "$(id -u)" -eq 0 ] || die "apt-get download failed"
		apt-get update -qq >&2
		# shellcheck disable=SC2086
		(cd "$XEN_DEBS" && apt-get download -q $need >&2)
	} || die "apt-get download$need failed"
fi

rm -rf "$XEN_ROOT" && mkdir -p "$XEN_ROOT"
for p in $pkgs; do
	dpkg -x "$(ls "$XEN_DEBS/${p}"_*.deb | tail -n 1)" "$XEN_ROOT"
done
mkdir -p "$XEN_OUT"
# QEMU's multiboot loader wants the plain ELF image, not the gzip'ed one.
xz=$(ls "$XEN_ROOT"/boot/xen-4.17*.gz 2>/dev/null | head -n 1)
[ -n "$xz" ] || die "no /boot/xen-*.gz in $XEN_HV_PKG"
gunzip -c "$xz" > "$XEN_OUT/xen"
[ -f "$XEN_ROOT/boot/vmlinuz-$kv" ] || die "no vmlinuz-$kv in linux-image-$kv"
touch "$XEN_ROOT/.complete"
msg "packages ready in $XEN_ROOT (kernel $kv)"
