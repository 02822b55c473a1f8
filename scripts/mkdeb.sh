#!/bin/bash
# Build noxs's Debian packages (make deb): a copy of the source tree
# (what is checked out, with its uncommitted changes; not build/ or .git)
# in OUT/src, dpkg-buildpackage -b there, the .debs and .changes in OUT.
# The developer's build/ is never cleaned or reused.
#   scripts/mkdeb.sh OUT [VERSION]
# VERSION (optional) adds a changelog entry first: check-deb builds a
# newer version to upgrade to.
set -euo pipefail
out=${1:?usage: mkdeb.sh OUT [VERSION]}
version=${2:-}
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
copy=$out/src/noxs
rm -rf "$out/src"
mkdir -p "$copy"
tar -C "$src" --exclude=./build --exclude=./.git -cf - . | tar -C "$copy" -xf -
if [ -n "$version" ]; then
	{
		printf 'noxs (%s) bookworm; urgency=medium\n\n' "$version"
		printf '  * Rebuilt as %s.\n\n' "$version"
		printf ' -- %s  %s\n\n' \
			"$(sed -n 's/^Maintainer: //p' "$copy/debian/control")" \
			"$(date -R -u)"
		cat "$copy/debian/changelog"
	} >"$copy/debian/changelog.new"
	mv "$copy/debian/changelog.new" "$copy/debian/changelog"
fi
jobs=$(nproc 2>/dev/null || echo 2)
# The .debs land in the parent of the tree, $out/src: moved to $out.
(cd "$copy" && dpkg-buildpackage -b -us -uc -j"$jobs") >"$out/build.log" 2>&1 || {
	tail -n 40 "$out/build.log" >&2
	echo "mkdeb: dpkg-buildpackage failed; the whole log: $out/build.log" >&2
	exit 1
}
v=$(cd "$copy" && dpkg-parsechangelog -S Version)
mv "$out"/src/*_"$v"_*.deb "$out"/src/*_"$v"_*.changes "$out"/src/*_"$v"_*.buildinfo "$out/"
rm -rf "$out/src"
ls "$out"/*_"$v"_*.deb
