# Shared settings for the check-xen lane; sourced by the other scripts.
# XEN_DIR (default build/xen) holds the download cache, the extracted
# packages, the initramfs images and the logs. Nothing outside it is written
# except Debian packages installed on the host (as root) by fetch.sh.

XEN_DIR=${XEN_DIR:-build/xen}
case $XEN_DIR in /*) ;; *) XEN_DIR=$(pwd)/$XEN_DIR ;; esac
XEN_SRC=$(cd "$(dirname "$0")" && pwd)   # tests/xen
XEN_DEBS=$XEN_DIR/debs                  # apt-get download cache
XEN_ROOT=$XEN_DIR/root                  # dpkg -x of the boot packages
XEN_OUT=$XEN_DIR/out                    # xen image, initramfs images
XEN_LOGS=$XEN_DIR/logs

# Debian's Xen hypervisor package whose userland matches libxen-dev.
XEN_HV_PKG=xen-hypervisor-4.17-amd64
XEN_UTILS_PKGS="xen-utils-4.17 xen-utils-common xenstore-utils"

msg() { printf 'check-xen: %s\n' "$*" >&2; }
die() { msg "error: $*"; exit 2; }

# The kernel flavour linux-image-amd64 depends on, e.g. 6.1.0-56-amd64.
# Remembered in $XEN_DIR/kver so that later runs need no apt metadata.
kernel_version() {
	if [ -s "$XEN_DIR/kver" ]; then cat "$XEN_DIR/kver"; return; fi
	kv=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/.*Depends: linux-image-\([0-9][^ ]*-amd64\)$/\1/p' | head -n 1)
	[ -n "$kv" ] || return 1
	mkdir -p "$XEN_DIR" && echo "$kv" > "$XEN_DIR/kver" && echo "$kv"
}
