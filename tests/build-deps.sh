#!/bin/bash
# A plain "make" needs no test-only package: Check only for the unit
# tests (make check), clang only for the fuzz targets (make fuzz).
# The build runs, in a fresh build directory, on a machine where those
# look absent: dpkg-query says Check, clang and libclang-rt are not
# installed (so scripts/deps.sh would install them: apt-get is a stand-in
# that records and fails); <check.h> and -lcheck are poisoned (an #error
# header and a broken libcheck.so searched first); pkg-config knows no
# check; clang and FUZZ_CC fail. Then the same trick must stop a unit
# test's build, or it proves nothing.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=${NOXS_TEST_DIR:-$(mktemp -d)}
fake=$tmp/fake
mkdir -p "$fake/bin" "$fake/include" "$fake/lib"
log=$tmp/apt-get.log
: >"$log"

real_dq=$(command -v dpkg-query)
real_pc=$(command -v "${PKG_CONFIG:-pkg-config}")
cat >"$fake/bin/dpkg-query" <<EOS
#!/bin/sh
# The last argument is the package.
for p; do :; done
case "\$p" in
check | clang | libclang-rt-14-dev) exit 1 ;;
esac
exec "$real_dq" "\$@"
EOS
cat >"$fake/bin/apt-get" <<EOS
#!/bin/sh
echo "apt-get \$*" >>"$log"
exit 1
EOS
cat >"$fake/bin/pkg-config" <<EOS
#!/bin/sh
for a; do [ "\$a" = check ] && exit 1; done
exec "$real_pc" "\$@"
EOS
printf '#!/bin/sh\necho "clang is test-only" >&2\nexit 1\n' >"$fake/bin/clang"
chmod +x "$fake"/bin/*
echo '#error "check.h is for the unit tests only"' >"$fake/include/check.h"
echo 'INPUT(-lcheck-is-for-the-unit-tests-only)' >"$fake/lib/libcheck.so"

fail=0
b=$tmp/build
run_make() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL PATH="$fake/bin:$PATH" \
		make -C "$src" --no-print-directory -j2 BUILD="$b" \
		CC="${CC:-gcc} -I$fake/include" LDFLAGS="-L$fake/lib" \
		PKG_CONFIG="$fake/bin/pkg-config" FUZZ_CC="$fake/bin/clang" "$@"
}

if run_make all >"$tmp/all.log" 2>&1; then
	echo "ok: make all built without Check or clang"
else
	echo "FAIL: make all needs a test-only package:"
	tail -n 25 "$tmp/all.log" | sed 's/^/    | /'
	fail=1
fi
if [ -s "$log" ] || grep -q 'missing Debian packages' "$tmp/all.log"; then
	echo "FAIL: make all asked for packages:"
	grep 'missing Debian packages' "$tmp/all.log" | sed 's/^/    | /'
	sed 's/^/    | /' "$log"
	fail=1
fi

# The trick holds: a unit test's build does reach Check.
: >"$log"
if run_make "$b/tests/check_proto" >"$tmp/unit.log" 2>&1; then
	echo "FAIL: a unit test built with Check hidden: this test proves nothing"
	fail=1
elif grep -q 'missing Debian packages:.* check' "$tmp/unit.log"; then
	echo "ok: a unit test asks for Check (scripts/deps.sh test)"
else
	echo "FAIL: a unit test's build did not ask for Check:"
	tail -n 10 "$tmp/unit.log" | sed 's/^/    | /'
	fail=1
fi
exit $fail
