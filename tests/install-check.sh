#!/bin/bash
# Check what "make install" installs (make check-install; make check runs it
# too). The Makefile has already installed the built tree twice:
#   $NOXS_INSTALL_CHECK/stage  PREFIX=/usr DESTDIR=stage, as a packager does
#   $NOXS_INSTALL_CHECK/root   PREFIX=root, no DESTDIR: the systemd units'
#                              ExecStart= paths exist, for systemd-analyze
#   $NOXS_INSTALL_CHECK/uninst installed, then uninstalled: must be empty
# This script only looks: it never runs make. Every problem is reported
# (FAIL lines), then the exit status is 1 if there was any.
#
# Environment (set by the Makefile): NOXS_INSTALL_CHECK, NOXS_BUILD, CC, CXX,
# PKG_CONFIG, NOXS_SAN_FLAGS (the build's -fsanitize flags: the test
# program links against the staged, possibly instrumented, libnoxs),
# NOXS_VERSION (libnoxs's version, expected in noxs.pc).
set -u

top=${NOXS_INSTALL_CHECK:?run through "make check-install"}
build=${NOXS_BUILD:?run through "make check-install"}
CC=${CC:-cc}
CXX=${CXX:-c++}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
san_flags=${NOXS_SAN_FLAGS:-}
version=${NOXS_VERSION:-}
src=$(cd "$(dirname "$0")/.." && pwd)

prefix=/usr
stage=$top/stage
root=$top/root
work=$top/work
sp=$stage$prefix # the staged prefix
libdir=$sp/lib
mandir=$sp/share/man
unitdir=$sp/lib/systemd/system
rm -rf "$work"
mkdir -p "$work"

# Programs built into $NOXS_BUILD/bin that are test drivers, not installed.
not_installed="legacy-back legacy-front legacy-toolstack"

. "$(dirname "$0")/tally.sh"
note() { echo "note: $*"; }
# Indented copy of a command's output under a FAIL line.
show() { sed 's/^/    | /' "$1" | head -n 20; }

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

[ -d "$sp" ] || { echo "FAIL: nothing staged in $sp"; exit 1; }
[ -d "$root" ] || { echo "FAIL: nothing installed in $root"; exit 1; }
echo "install-check: staged tree $stage (PREFIX=$prefix)"

# ---- programs ----
progs=()
for d in bin sbin; do
	for f in "$sp/$d"/*; do
		[ -e "$f" ] && progs+=("$d/$(basename "$f")")
	done
done
[ ${#progs[@]} -gt 0 ] || fail "no programs in $sp/bin or $sp/sbin"

# Every program the build makes is installed (or listed above as a test driver).
for f in "$build"/bin/*; do
	[ -f "$f" ] || continue
	name=$(basename "$f")
	case " $not_installed " in *" $name "*) continue ;; esac
	if [ -e "$sp/bin/$name" ] || [ -e "$sp/sbin/$name" ]; then
		ok
	else
		fail "$name is built ($build/bin) but no install rule installs it"
	fi
done

help_opt() { echo --help; }

for p in "${progs[@]}"; do
	f=$sp/$p
	name=$(basename "$p")
	if [ ! -f "$f" ] || [ ! -x "$f" ]; then
		fail "$prefix/$p is not an executable file"
		continue
	fi
	ok
	if is_elf "$f"; then
		# No run path: the installed program must load the installed
		# libnoxs, not the build tree's it was linked against.
		rp=$(readelf -d "$f" 2>/dev/null | grep -E '\((RPATH|RUNPATH)\)')
		if [ -n "$rp" ]; then
			fail "$prefix/$p has a run path: $rp"
		else
			ok
		fi
		LD_LIBRARY_PATH=$libdir ldd "$f" >"$work/ldd" 2>&1
		if grep -q 'not found' "$work/ldd"; then
			fail "$prefix/$p: libraries not found (LD_LIBRARY_PATH=$libdir):"
			show "$work/ldd"
		elif grep -q 'libnoxs\.so' "$work/ldd" &&
			! grep -q "libnoxs\.so\.1 => $libdir/libnoxs\.so\.1" "$work/ldd"; then
			fail "$prefix/$p does not load the staged libnoxs.so.1:"
			show "$work/ldd"
		else
			ok
		fi
	fi
	# --help: exit 0 and a usage line naming the program.
	opt=$(help_opt "$name")
	[ "$opt" = --help ] || note "$name does not take --help; checked $opt"
	LD_LIBRARY_PATH=$libdir timeout 60 "$f" "$opt" </dev/null >"$work/out" 2>"$work/err"
	rc=$?
	if [ $rc -ne 0 ]; then
		fail "$prefix/$p $opt exited $rc"
		show "$work/err"
	elif ! grep -Eqi "^usage: +$name( |\$)" "$work/out"; then
		fail "$prefix/$p $opt printed no \"usage: $name\" line on stdout"
		show "$work/out"
	else
		ok
	fi
	# A man page for every installed program.
	pages=$(ls "$mandir"/man[1-9]/"$name".[1-9] 2>/dev/null)
	if [ -z "$pages" ]; then
		fail "$prefix/$p has no man page in $prefix/share/man/man[1-9]"
	else
		ok
	fi
done

# ---- man pages render without warnings ----
if command -v man >/dev/null 2>&1; then
	n=0
	for m in "$mandir"/man[1-9]/*; do
		[ -f "$m" ] || continue
		n=$((n + 1))
		# man exits 0 on groff warnings; they go to standard error.
		LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat \
			man --warnings -E UTF-8 -l "$m" >/dev/null 2>"$work/man"
		rc=$?
		if [ $rc -ne 0 ] || [ -s "$work/man" ]; then
			fail "man page ${m#"$stage"} (exit $rc):"
			show "$work/man"
		else
			ok
		fi
	done
	[ $n -gt 0 ] || fail "no man pages in $prefix/share/man"
else
	note "man is not installed: man pages not rendered"
fi

# ---- libraries ----
soname() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }

if [ -f "$libdir/libnoxs.so.1" ] && [ "$(soname "$libdir/libnoxs.so.1")" = libnoxs.so.1 ]; then
	ok
else
	fail "$prefix/lib/libnoxs.so.1 missing or its SONAME is not libnoxs.so.1"
fi
if [ -L "$libdir/libnoxs.so" ] && [ "$(readlink "$libdir/libnoxs.so")" = libnoxs.so.1 ]; then
	ok
else
	fail "$prefix/lib/libnoxs.so is not a symlink to libnoxs.so.1 (needed by -lnoxs)"
fi

# compat-xs: where docs/COMPAT.md says, $(LIBDIR)/noxs/compat-xs/.
cxs=$libdir/noxs/compat-xs/libxenstore.so.4
if ! grep -q 'LIBDIR)/noxs/compat-xs/' "$src/docs/COMPAT.md"; then
	fail "docs/COMPAT.md no longer says \$(LIBDIR)/noxs/compat-xs/: update this check"
fi
if [ ! -f "$cxs" ]; then
	fail "compat-xs is not at $prefix/lib/noxs/compat-xs/libxenstore.so.4"
else
	if [ "$(soname "$cxs")" = libxenstore.so.4 ]; then
		ok
	else
		fail "compat-xs: SONAME is not libxenstore.so.4"
	fi
	if nm -D --defined-only "$cxs" 2>/dev/null | grep -q ' xs_open'; then
		ok
	else
		fail "compat-xs does not export xs_open"
	fi
	LD_LIBRARY_PATH=$libdir ldd "$cxs" >"$work/ldd" 2>&1
	if grep -q 'not found' "$work/ldd" ||
		! grep -q "libnoxs\.so\.1 => $libdir/libnoxs\.so\.1" "$work/ldd"; then
		fail "compat-xs does not resolve against the staged libnoxs:"
		show "$work/ldd"
	else
		ok
	fi
fi

# ---- pkg-config, headers, a program built against the staged tree ----
pc() { PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_PATH=$libdir/pkgconfig "$PKG_CONFIG" "$@"; }
if [ ! -f "$libdir/pkgconfig/noxs.pc" ]; then
	fail "$prefix/lib/pkgconfig/noxs.pc is missing"
elif ! pc --exists noxs 2>"$work/pc"; then
	fail "pkg-config does not accept the staged noxs.pc:"
	show "$work/pc"
else
	got=$(pc --modversion noxs)
	if [ -n "$version" ] && [ "$got" != "$version" ]; then
		fail "noxs.pc says version $got, libnoxs is $version"
	else
		ok
	fi
	cflags=$(pc --cflags noxs)
	libs=$(pc --libs noxs)
	if [[ " $cflags " == *" -I$sp/include "* ]]; then
		ok
	else
		fail "pkg-config --cflags noxs gives \"$cflags\", not -I$sp/include"
	fi
	if [[ " $libs " == *" -L$libdir "* && " $libs " == *" -lnoxs "* ]]; then
		ok
	else
		fail "pkg-config --libs noxs gives \"$libs\", not -L$libdir -lnoxs"
	fi

	# Every installed header (the device protocols in io/ included)
	# compiles on its own with only pkg-config's flags, as C and as C++
	# (extern "C", no C-only constructs), and all of them together.
	hdrs=()
	for h in "$sp"/include/noxs/*.h "$sp"/include/noxs/io/*.h; do
		[ -f "$h" ] && hdrs+=("noxs/${h#"$sp"/include/noxs/}")
	done
	for want in noxs/noxs.h noxs/io/blkif.h noxs/io/consif.h noxs/io/sysctl.h; do
		[ -f "$sp/include/$want" ] && ok || fail "<$want> is not installed"
	done
	for hn in "${hdrs[@]}" all; do
		if [ "$hn" = all ]; then
			printf '#include <%s>\n' "${hdrs[@]}"
		else
			printf '#include <%s>\n' "$hn"
		fi >"$work/hdr.h"
		# shellcheck disable=SC2086
		if "$CC" -std=c11 -Wall -Wextra -Werror $cflags -fsyntax-only \
			-x c "$work/hdr.h" >"$work/cc" 2>&1; then
			ok
		else
			fail "<$hn> does not compile as C:"
			show "$work/cc"
		fi
		# shellcheck disable=SC2086
		if "$CXX" -std=c++11 -Wall -Wextra -Wpedantic -Werror $cflags \
			-fsyntax-only -x c++ "$work/hdr.h" >"$work/cxx" 2>&1; then
			ok
		else
			fail "<$hn> does not compile as C++:"
			show "$work/cxx"
		fi
	done

	cat >"$work/use-noxs.c" <<'EOF'
#include <noxs/noxs.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    unsigned int t = noxs_type_from_name("blk");
    const char *name = noxs_type_name(t);

    if (name == NULL || strcmp(name, "blk") != 0) {
        fprintf(stderr, "type %u is named %s\n", t, name ? name : "(null)");
        return 1;
    }
    printf("noxs type blk = %u\n", t);
    return 0;
}
EOF
	# shellcheck disable=SC2086,SC2046
	if ! "$CC" -std=c11 -Wall -Wextra -Werror $san_flags -o "$work/use-noxs" \
		"$work/use-noxs.c" $(pc --cflags --libs noxs) >"$work/cc" 2>&1; then
		fail "a program using <noxs/noxs.h> does not build with pkg-config --cflags --libs noxs:"
		show "$work/cc"
	elif ! LD_LIBRARY_PATH=$libdir "$work/use-noxs" >"$work/out" 2>&1; then
		fail "a program linked against the staged libnoxs does not run:"
		show "$work/out"
	else
		ok
	fi
fi

# ---- installed files: nothing left of the build ----
# Text files (units, noxs.pc, headers, man pages) name neither the build
# tree nor an unreplaced @VARIABLE@.
while IFS= read -r -d '' f; do
	is_elf "$f" && continue
	rel=${f#"$stage"}
	if grep -q -e "$build" -e "$src/" "$f"; then
		fail "$rel names the build tree: $(grep -m1 -e "$build" -e "$src/" "$f")"
	elif grep -Eq '@[A-Z_]+@' "$f"; then
		fail "$rel has an unreplaced $(grep -Eom1 '@[A-Z_]+@' "$f")"
	else
		ok
	fi
done < <(find "$stage" -type f -print0)
# Nothing group- or world-writable.
ww=$(find "$stage" \( -type f -o -type d \) -perm /022 -printf '%P\n')
if [ -z "$ww" ]; then ok; else fail "group/world-writable: $ww"; fi

# ---- systemd units ----
units=()
for u in "$unitdir"/*.service; do
	[ -f "$u" ] && units+=("$u")
done
# One installed unit per unit template in the source.
while IFS= read -r t; do
	u=$(basename "$t" .in)
	if [ -f "$unitdir/$u" ]; then
		ok
	else
		fail "${t#"$src"/} is not installed as $prefix/lib/systemd/system/$u"
	fi
done < <(find "$src" \( -path "$src/build" -o -path "$src/.git" \) -prune -o \
	-name '*.service.in' -print)
for u in "${units[@]}"; do
	un=$(basename "$u")
	# Its programs are installed, and take the unit's options
	# (--help after them: the options are parsed, nothing runs).
	while read -r key cmd args; do
		# A system tool outside our prefix (ExecReload=/bin/kill ...) is
		# the system's: it must exist here, and is not run.
		case "$cmd" in
		"$prefix"/*) ;;
		*)
			if [ -x "$cmd" ]; then ok; else fail "$un: $key=$cmd does not exist"; fi
			continue
			;;
		esac
		if [ ! -x "$stage$cmd" ]; then
			fail "$un: $key=$cmd is not installed"
			continue
		fi
		# shellcheck disable=SC2086
		if LD_LIBRARY_PATH=$libdir timeout 60 "$stage$cmd" $args --help \
			</dev/null >"$work/out" 2>&1; then
			ok
		else
			fail "$un: $cmd does not accept the unit's options \"$args\":"
			show "$work/out"
		fi
	done < <(sed -n 's/^\(Exec[A-Za-z]*\)=[-@:+!]*\(\/[^ ]*\) *\(.*\)$/\1 \2 \3/p' "$u")
	# Its man pages are installed.
	# shellcheck disable=SC2013 # Documentation= is a list of words
	for ref in $(sed -n 's/^Documentation=//p' "$u"); do
		case "$ref" in
		man:*\(*\))
			page=${ref#man:}
			sec=${page#*\(}
			sec=${sec%\)}
			page=${page%%\(*}
			if [ -f "$mandir/man$sec/$page.$sec" ]; then
				ok
			else
				fail "$un: Documentation=$ref is not installed"
			fi
			;;
		esac
	done
	# The verified copy in root/ is this unit with root's prefix.
	ru=$root/lib/systemd/system/$un
	if [ ! -f "$ru" ]; then
		fail "$un is not in the second install ($root)"
	elif ! sed "s|$root/|$prefix/|g" "$ru" | cmp -s - "$u"; then
		fail "$un differs between the two installs beyond the prefix"
	else
		ok
	fi
done
[ ${#units[@]} -gt 0 ] || fail "no systemd units in $prefix/lib/systemd/system"

if command -v systemd-analyze >/dev/null 2>&1; then
	# The units in root/ name programs that exist; MANPATH lets the
	# Documentation=man: check find the installed pages.
	man_opt=--man=yes
	command -v man >/dev/null 2>&1 || {
		man_opt=--man=no
		note "man is not installed: systemd-analyze does not check Documentation="
	}
	rus=("$root"/lib/systemd/system/*.service)
	MANPATH=$root/share/man SYSTEMD_PAGER=cat \
		systemd-analyze verify "$man_opt" "${rus[@]}" >"$work/verify" 2>&1
	rc=$?
	# It exits 0 on unknown keys and bad values; any output is a problem.
	if [ $rc -ne 0 ] || [ -s "$work/verify" ]; then
		fail "systemd-analyze verify (exit $rc):"
		show "$work/verify"
	else
		ok
	fi
else
	note "systemd-analyze is not installed: units not verified"
fi

# ---- the host's files: kernel modules, log rotation ----
ml=$sp/lib/modules-load.d/noxs.conf
if [ ! -f "$ml" ]; then
	fail "$prefix/lib/modules-load.d/noxs.conf is not installed"
else
	for m in xen-gntalloc xen-gntdev xen-evtchn; do
		if grep -qx "$m" "$ml"; then ok; else fail "modules-load.d/noxs.conf does not load $m"; fi
	done
	# systemd-modules-load reads /usr/local/lib/modules-load.d too: the
	# default prefix's file must land there, not in /etc or /usr/lib.
	[ -f "$root/lib/modules-load.d/noxs.conf" ] && ok ||
		fail "PREFIX=$root did not install $root/lib/modules-load.d/noxs.conf"
fi
lr=$stage/etc/logrotate.d/noxs
if [ ! -f "$lr" ]; then
	fail "/etc/logrotate.d/noxs is not installed (SYSCONFDIR=/etc)"
else
	# It rotates the logs where the console backend's unit writes them.
	logdir=$(sed -n 's/^ExecStart=.*--log-dir \([^ ]*\).*/\1/p' \
		"$unitdir/noxs-console-back.service")
	if [ -z "$logdir" ]; then
		fail "noxs-console-back.service has no --log-dir: update this check"
	elif grep -q "^$logdir/\*\.log {" "$lr"; then
		ok
	else
		fail "/etc/logrotate.d/noxs does not rotate $logdir/*.log"
	fi
	# The backend reopens its logs on SIGHUP, its unit's ExecReload=:
	# the rotation reloads it rather than copying and truncating.
	if grep -q 'systemctl reload noxs-console-back' "$lr" &&
		grep -q '^ExecReload=.*kill -HUP' "$unitdir/noxs-console-back.service"; then
		ok
	else
		fail "/etc/logrotate.d/noxs does not reload noxs-console-back (SIGHUP)"
	fi
	if command -v logrotate >/dev/null 2>&1; then
		logrotate -d -s "$work/logrotate.state" "$lr" >"$work/lr" 2>&1
		if grep -qi 'error' "$work/lr"; then
			fail "logrotate -d /etc/logrotate.d/noxs:"
			show "$work/lr"
		else
			ok
		fi
	fi
fi

# ---- the loader finds libnoxs after an install into the real root ----
# The Makefile gave install a stand-in ldconfig that logs each call: run
# once, for root/ (no DESTDIR), and only as root; never for a DESTDIR.
calls=$(cat "$top/ldconfig.log" 2>/dev/null | wc -l)
want=0
[ "$(id -u)" -eq 0 ] && want=1
if [ "$calls" -eq "$want" ]; then
	ok
else
	fail "make install ran ldconfig $calls time(s), expected $want (DESTDIR empty and root only)"
fi
# root/lib is not in the loader's path: the install must have said so.
if env -u LD_LIBRARY_PATH "$root/bin/noxsctl" --help >/dev/null 2>&1; then
	note "the loader finds a libnoxs.so.1 for $root/bin/noxsctl elsewhere"
elif grep -q "do not find $root/lib/libnoxs.so.1" "$top/root.out"; then
	ok
else
	fail "make install PREFIX=$root left programs the loader cannot start, silently:"
	show "$top/root.out"
fi

# ---- uninstall removes everything install put there ----
before=$(cat "$top/uninst.before" 2>/dev/null || echo 0)
left=$(find "$top/uninst" ! -type d 2>/dev/null)
if [ "$before" -eq 0 ]; then
	fail "the install for the uninstall check installed nothing"
elif [ -n "$left" ]; then
	fail "make uninstall left $(echo "$left" | wc -l) of $before files:"
	echo "$left" | sed "s|^$top/uninst|    | |" | head -n 20
else
	ok
fi
# noxs's own directories go too; shared ones (usr/bin, ...) may stay.
for d in usr/include/noxs usr/lib/noxs; do
	if [ -e "$top/uninst/$d" ]; then fail "make uninstall left /$d"; else ok; fi
done

echo "install-check: $checks checks, $failures failed"
[ $failures -eq 0 ]
