#!/bin/bash
# make check-deb: noxs's Debian packages, built and used as an operator
# would on a fresh Debian 12.
#   1. make deb's build (scripts/mkdeb.sh) of this tree, and of the same
#      tree as a newer version to upgrade to;
#   2. lintian: no error or warning (the justified ones are overridden in
#      debian/*.lintian-overrides);
#   3. in a minimal Debian 12 chroot (debootstrap, from this machine's
#      apt sources; the base is kept in the work directory and copied for
#      each run): Debian's libxenstore4 and logrotate first, then the packages, with
#      their dependencies from apt; what lands where; the programs start;
#      an upgrade to the newer version, a reinstall, a remove, a purge;
#      nothing of noxs is left.
# systemd does not run in a chroot: the units are checked as installed
# and enabled (or not), not started; tests/install-check.sh verifies
# them with systemd-analyze. The packages' maintainer scripts do not
# start anything there (no /run/systemd/system).
#
#   NOXS_DEB_CHECK=WORKDIR tests/deb-check.sh   (as root: debootstrap, chroot)
# Each problem is a FAIL line; the exit status is 1 if there was any.
set -u

work=${NOXS_DEB_CHECK:?usage: NOXS_DEB_CHECK=WORKDIR deb-check.sh}
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)

. "$src/tests/tally.sh"
step() { echo "deb-check: $*"; }
finish() {
	echo "deb-check: $checks checks, $failures failed"
	[ $failures -eq 0 ]
	exit
}
# A fatal problem: report, count, stop.
die() {
	fail "$*"
	finish
}

if [ "$(id -u)" -ne 0 ]; then
	die "needs root (debootstrap, chroot, dpkg in the chroot)"
fi
for t in dpkg-buildpackage lintian debootstrap; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing (scripts/deps.sh deb)"
done

version=$(cd "$src" && dpkg-parsechangelog -S Version)
# One version number: the packages carry the one every program prints.
[ "$version" = "$(cat "$src/VERSION")" ] ||
	die "debian/changelog says $version, VERSION says $(cat "$src/VERSION")"
newer=$version+upgrade1
arch=$(dpkg --print-architecture)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

# ---- 1. build ----
step "building $version and $newer (dpkg-buildpackage, in $work)"
rm -rf "$work/v1" "$work/v2"
"$src/scripts/mkdeb.sh" "$work/v1" >"$work/v1.log" 2>&1 ||
	{ cat "$work/v1.log"; die "make deb failed for $version"; }
"$src/scripts/mkdeb.sh" "$work/v2" "$newer" >"$work/v2.log" 2>&1 ||
	{ cat "$work/v2.log"; die "make deb failed for $newer"; }
pkgs="libnoxs1 libnoxs-dev noxs noxs-guest noxs-compat-xs"
for p in $pkgs; do
	for d in "$work/v1/${p}_${version}_$arch.deb" "$work/v2/${p}_${newer}_$arch.deb"; do
		if [ -f "$d" ]; then ok; else fail "$(basename "$d") was not built"; fi
	done
done

# ---- 2. lintian ----
step "lintian"
lintian --fail-on error,warning "$work/v1/noxs_${version}_${arch}.changes" \
	>"$work/lintian.out" 2>&1
rc=$?
if [ $rc -ne 0 ] || grep -Eq '^[EW]:' "$work/lintian.out"; then
	fail "lintian (exit $rc):"
	sed 's/^/    | /' "$work/lintian.out" | head -n 40
else
	ok
fi

# ---- 3. a Debian 12 chroot ----
# The mirror and the sources are this machine's own apt configuration.
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources \
	2>/dev/null | grep -v security | head -n 1)
if [ -z "$mirror" ]; then
	mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { print $i; exit } }' \
		/etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1)
fi
[ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources"

base=$work/base-bookworm
if [ ! -f "$base/.complete" ]; then
	step "debootstrap --variant=minbase bookworm (once; kept in $base)"
	rm -rf "$base"
	debootstrap --variant=minbase bookworm "$base" "$mirror" \
		>"$work/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$work/debootstrap.log"; die "debootstrap failed"; }
	touch "$base/.complete"
fi
root=$work/chroot
umount "$root/proc" 2>/dev/null
mountpoint -q "$root/proc" 2>/dev/null && die "$root/proc is still mounted"
rm -rf "$root"
cp -a "$base" "$root"
rm -f "$root/.complete"
# This machine's sources (updates and security too: the packages were
# built against its current libraries).
rm -f "$root/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && cp "$f" "$root$f"
done
# Nothing starts a service in here (deb-systemd-invoke honours it too).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/debs/v1" "$root/debs/v2"
for p in $pkgs; do
	cp "$work/v1/${p}_${version}_$arch.deb" "$root/debs/v1/"
	cp "$work/v2/${p}_${newer}_$arch.deb" "$root/debs/v2/"
done

in_root() { DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 chroot "$root" "$@"; }
apt_root() { in_root apt-get -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "$@"; }
# Run "$@" in the chroot, its output in $work/out; fail with it shown.
must() {
	local what=$1
	shift
	if in_root "$@" >"$work/out" 2>&1; then
		ok
	else
		fail "$what: $* (exit $?):"
		sed 's/^/    | /' "$work/out" | tail -n 30
		return 1
	fi
}
present() { [ -e "$root$1" ] || [ -L "$root$1" ]; }
owner() { in_root dpkg-query -S "$1" 2>/dev/null | sed 's/: .*//'; }
version_of() { in_root dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

# ---- noxsd on the simulator, from the packaged binary ----
# NOXS_SIM_LIBS (the build's sim/, Debian's Xen library sonames over a
# simulated hypervisor) is copied in; the chroot gets /proc. Every
# process whose root is this chroot was started by this test: those are
# killed at the end, by pid.
sim=${NOXS_SIM_LIBS:-}
simenv="LD_LIBRARY_PATH=/opt/noxs-sim NOXS_SIM_DIR=/tmp/noxs-sim"
mounted=
in_chroot_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
	done
}
noxsd_pids() {
	local p
	for p in $(in_chroot_pids); do
		case "$(readlink "/proc/$p/exe" 2>/dev/null)" in *noxsd*) echo "$p" ;; esac
	done
}
cleanup() {
	local p
	for p in $(in_chroot_pids); do kill -9 "$p" 2>/dev/null; done
	[ -n "$mounted" ] && umount "$root/proc" 2>/dev/null
}
trap cleanup EXIT
# Start the worker (ExecStart=noxsd -d) and wait for its socket.
start_noxsd() {
	# shellcheck disable=SC2086
	chroot "$root" env $simenv /usr/sbin/noxsd -d >>"$work/noxsd.log" 2>&1 &
	worker=$!
	for _ in $(seq 300); do
		[ -S "$root/run/noxs/noxsd.sock" ] && in_root env $simenv \
			/usr/bin/noxsctl status >/dev/null 2>&1 && return 0
		kill -0 "$worker" 2>/dev/null || break
		sleep 0.1
	done
	fail "noxsd did not start in the chroot:"
	sed 's/^/    | /' "$work/noxsd.log" | tail -n 20
	return 1
}
# Stop it as the unit's ExecStop= does; the keeper stays.
stop_noxsd() {
	must "noxsd --stop" /usr/sbin/noxsd --stop
	for _ in $(seq 100); do
		kill -0 "$worker" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$worker" 2>/dev/null; then fail "noxsd --stop left the worker running"; else ok; fi
	if [ -n "$(noxsd_pids)" ]; then ok; else fail "noxsd --stop ended the keeper"; fi
}

step "apt-get update; Debian's libxenstore4 (the compat-xs library must sit beside it), logrotate"
must "apt-get update" apt-get -q update || finish
must "Debian's libxenstore4 and logrotate" apt-get -y -q --no-install-recommends \
	install libxenstore4 logrotate || finish

# A listing of the chroot before noxs: after the purge, every file is
# either in it or belongs to a dependency apt brought in.
list_files() {
	(cd "$root" && find . -xdev \( -path ./proc -o -path ./debs -o -path ./var/cache \
		-o -path ./run -o -path ./opt/noxs-sim \
		-o -path ./var/lib/apt -o -path ./var/lib/dpkg -o -path ./var/log \
		-o -path ./tmp \) -prune -o ! -type d -print) | sort
}
list_files >"$work/files.before"

step "install $version"
# shellcheck disable=SC2046
must "install $version" apt-get -y -q --no-install-recommends install \
	$(for p in $pkgs; do echo "/debs/v1/${p}_${version}_$arch.deb"; done) || finish

# What lands where.
lib=/usr/lib/$triplet
for f in /usr/sbin/noxsd /usr/sbin/noxs-sysctl-back /usr/sbin/noxs-blk-back \
	/usr/sbin/noxs-console-back /usr/bin/noxsctl /usr/bin/noxs-console \
	/usr/sbin/noxs-sysctl-front /usr/sbin/noxs-console-front /usr/bin/noxs-blk \
	$lib/libnoxs.so.1 $lib/libnoxs.so $lib/pkgconfig/noxs.pc \
	/usr/include/noxs/noxs.h $lib/noxs/compat-xs/libxenstore.so.4 \
	/usr/sbin/noxs-xsringd /usr/share/man/man8/noxsd.8.gz \
	/lib/systemd/system/noxsd.service /lib/systemd/system/noxs-xsringd.service \
	/usr/lib/modules-load.d/noxs.conf /etc/logrotate.d/noxs; do
	if present "$f"; then ok; else fail "$f is not installed"; fi
done
# compat-xs beside Debian's libxenstore.so.4, each its own package's.
o=$(owner "$lib/libxenstore.so.4")
case "$o" in libxenstore4*) ok ;; *) fail "$lib/libxenstore.so.4 belongs to \"$o\", not libxenstore4" ;; esac
o=$(owner "$lib/noxs/compat-xs/libxenstore.so.4")
[ "$o" = noxs-compat-xs ] && ok || fail "compat-xs's libxenstore.so.4 belongs to \"$o\""
# /etc/logrotate.d/noxs is a conffile.
if in_root dpkg-query -W -f='${Conffiles}\n' noxs | grep -q '/etc/logrotate.d/noxs '; then
	ok
else
	fail "/etc/logrotate.d/noxs is not a conffile of noxs"
fi

# The programs start: the loader finds libnoxs.so.1 (no LD_LIBRARY_PATH),
# every library they need came with the dependencies.
for p in /usr/sbin/noxsd /usr/bin/noxsctl /usr/sbin/noxs-sysctl-back \
	/usr/sbin/noxs-blk-back /usr/sbin/noxs-console-back /usr/bin/noxs-console \
	/usr/sbin/noxs-sysctl-front /usr/sbin/noxs-console-front /usr/bin/noxs-blk \
	/usr/sbin/noxs-xsringd; do
	must "$p --help in the chroot" "$p" --help
done
# compat-xs's library resolves there too (its libnoxs, lmdb, Xen's).
must "compat-xs's dependencies" sh -c \
	"ldd $lib/noxs/compat-xs/libxenstore.so.4 | grep -v 'not found' >/dev/null && ! ldd $lib/noxs/compat-xs/libxenstore.so.4 | grep -q 'not found'"

# noxsd starts, answers, and stops as its unit runs it.
running=
if [ -z "$sim" ] || [ ! -d "$sim" ]; then
	fail "NOXS_SIM_LIBS does not name the build's sim/ directory: noxsd not started"
else
	mkdir -p "$root/opt/noxs-sim"
	cp -a "$sim"/. "$root/opt/noxs-sim/"
	mount -t proc proc "$root/proc" && mounted=1
	step "start noxsd $version (on the simulator), create a domain, stop it"
	if start_noxsd; then
		running=1
		# shellcheck disable=SC2086
		must "noxsctl domain-create 7" env $simenv /usr/bin/noxsctl domain-create 7
		stop_noxsd
	fi
fi

# The console logs rotate with logrotate itself: moved away (the backend
# reopens on SIGHUP; its reload is skipped without systemd), not copied.
step "logrotate /etc/logrotate.d/noxs"
mkdir -p "$root/var/log/noxs/console"
echo "guest output" >"$root/var/log/noxs/console/console-3.0.log"
must "logrotate -f /etc/logrotate.d/noxs" logrotate -f -v -s /tmp/logrotate.state \
	/etc/logrotate.d/noxs
if grep -qs "guest output" "$root/var/log/noxs/console/console-3.0.log.1" &&
	[ ! -e "$root/var/log/noxs/console/console-3.0.log" ]; then
	ok
else
	fail "logrotate did not move console-3.0.log to console-3.0.log.1:"
	ls -l "$root/var/log/noxs/console" | sed 's/^/    | /'
fi

# Units: the daemons and backends enabled, noxs-xsringd (it conflicts
# with xenstored) not.
wants=/etc/systemd/system/multi-user.target.wants
for u in noxsd noxs-sysctl-back noxs-blk-back noxs-console-back; do
	if present "$wants/$u.service"; then ok; else fail "$u.service is not enabled"; fi
done
if present "$wants/noxs-xsringd.service"; then
	fail "noxs-xsringd.service is enabled: it would stop xenstored at boot"
else
	ok
fi

step "upgrade to $newer"
# The console logs exist by then on a real host; the purge removes them.
mkdir -p "$root/var/log/noxs/console" "$root/var/lib/noxs/xenstore"
echo boot >"$root/var/log/noxs/console/console-1.0.log"
echo data >"$root/var/lib/noxs/xenstore/data.mdb"
# An operator's edit of a conffile survives the upgrade.
echo '# local edit' >>"$root/etc/logrotate.d/noxs"
# shellcheck disable=SC2046
must "upgrade to $newer" apt-get -y -q --no-install-recommends install \
	$(for p in $pkgs; do echo "/debs/v2/${p}_${newer}_$arch.deb"; done) || finish
for p in $pkgs; do
	v=$(version_of "$p")
	[ "$v" = "$newer" ] && ok || fail "$p is at \"$v\" after the upgrade, not $newer"
done
grep -q '^# local edit' "$root/etc/logrotate.d/noxs" && ok ||
	fail "the upgrade lost the edit of /etc/logrotate.d/noxs"
present "$wants/noxsd.service" && ok || fail "noxsd.service is no longer enabled after the upgrade"
must "noxsctl after the upgrade" /usr/bin/noxsctl --help
# The new noxsd takes the keeper over: the domain is still there.
if [ -n "$running" ]; then
	step "start noxsd $newer: the domain survived the upgrade"
	if start_noxsd; then
		# shellcheck disable=SC2086
		if in_root env $simenv /usr/bin/noxsctl domain-list 2>&1 | grep -qw 7; then
			ok
		else
			fail "domain 7 is gone after the upgrade: $(in_root env $simenv /usr/bin/noxsctl domain-list 2>&1)"
		fi
		stop_noxsd
	fi
fi

step "reinstall $newer"
# shellcheck disable=SC2046
must "reinstall $newer" dpkg -i $(for p in $pkgs; do echo "/debs/v2/${p}_${newer}_$arch.deb"; done)

step "remove"
must "remove" apt-get -y -q remove $pkgs || finish
for f in /usr/sbin/noxsd /usr/bin/noxsctl $lib/libnoxs.so.1 \
	$lib/noxs/compat-xs/libxenstore.so.4 /lib/systemd/system/noxsd.service \
	/usr/lib/modules-load.d/noxs.conf; do
	if present "$f"; then fail "$f is still there after remove"; else ok; fi
done
# Removed, not purged: the conffile and the logs stay.
present /etc/logrotate.d/noxs && ok || fail "remove took /etc/logrotate.d/noxs (a conffile: purge's)"
present /var/log/noxs/console/console-1.0.log && ok || fail "remove took the console logs (purge's)"
present "$lib/libxenstore.so.4" && ok || fail "removing noxs took Debian's libxenstore.so.4"
# The removal ended noxsd's keeper (noxs.prerm): no noxsd is left.
if [ -n "$running" ]; then
	for _ in $(seq 100); do
		[ -z "$(noxsd_pids)" ] && break
		sleep 0.1
	done
	if [ -z "$(noxsd_pids)" ]; then ok; else fail "noxsd's keeper runs on after remove: $(noxsd_pids)"; fi
fi

step "purge"
# dpkg: apt cannot name the packages remove took completely (no conffiles).
must "purge" dpkg --purge $pkgs || finish
for p in $pkgs; do
	st=$(in_root dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
	case "$st" in "" | not-installed) ok ;; *) fail "$p is \"$st\" after purge" ;; esac
done
# Nothing of noxs is left: every file is the base system's or a
# dependency's (owned by a package still installed).
list_files >"$work/files.after"
comm -13 "$work/files.before" "$work/files.after" >"$work/files.new"
left=
while IFS= read -r f; do
	f=${f#.}
	[ -n "$(owner "$f")" ] && continue
	left="$left $f"
done <"$work/files.new"
if [ -z "$left" ]; then
	ok
else
	fail "left after purge, owned by no package:$left"
fi
for d in /var/log/noxs /var/lib/noxs /etc/logrotate.d/noxs; do
	if present "$d"; then fail "$d is still there after purge"; else ok; fi
done
n=$(cd "$root" && find . -xdev \( -path ./debs -o -path ./opt/noxs-sim -o -path ./tmp/noxs-sim \
	-o -path ./run/noxs \) -prune -o -name '*noxs*' -print | grep -v '^./var/lib/dpkg/' | head -n 5)
[ -z "$n" ] && ok || fail "names with noxs left after purge: $n"
present "$lib/libxenstore.so.4" && ok || fail "the purge took Debian's libxenstore.so.4"

finish
