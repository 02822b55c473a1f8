#!/bin/sh
# Make sure the Debian packages noxs needs are installed.
#   scripts/deps.sh build    what `make` (and `make install`, `make demo`) need
#   scripts/deps.sh test     plus Check, for the unit tests (`make check`)
#   scripts/deps.sh fuzz     plus clang and its libFuzzer runtime (`make fuzz`)
#   scripts/deps.sh format   clang-format (`make format`, `make format-check`)
#   scripts/deps.sh compat   plus Check, Debian's xenstored and xenstore tools
#   scripts/deps.sh bench    plus gnuplot for the plots and stress-ng for
#                            the runs under load
#   scripts/deps.sh deb      plus Debian's packaging tools (`make deb`,
#                            `make check-deb`)
# Test-only packages are asked for only by the targets that use them, so
# that a plain `make` needs no more than the libraries noxs links with.
# `make DEPS=no ...` skips this gate (another distribution, or a packager
# whose build dependencies are checked already).
# As root, missing packages are installed with apt-get; otherwise the
# script names them and fails.
set -eu

build_pkgs="gcc make pkg-config libxen-dev liburcu-dev liburing-dev liblmdb-dev"
test_pkgs="check"
fuzz_pkgs="clang libclang-rt-14-dev"
format_pkgs="clang-format git"
deb_pkgs="dpkg-dev debhelper fakeroot lintian debootstrap"
compat_pkgs="xen-utils-4.17 xenstore-utils"
bench_pkgs="gnuplot-nox python3 stress-ng"

case "${1:-build}" in
build) want="$build_pkgs" ;;
test) want="$build_pkgs $test_pkgs" ;;
fuzz) want="$build_pkgs $fuzz_pkgs" ;;
format) want="$format_pkgs" ;;
compat) want="$build_pkgs $test_pkgs $compat_pkgs" ;;
bench) want="$build_pkgs $test_pkgs $compat_pkgs $bench_pkgs" ;;
deb) want="$build_pkgs $deb_pkgs" ;;
*) echo "usage: $0 build|test|fuzz|format|compat|bench|deb" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "noxs: missing Debian packages:$missing" >&2
	echo "noxs: install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "noxs: installing missing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once per hour at most.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null | head -n 1)" ]; then
	apt-get update -qq >&2
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
