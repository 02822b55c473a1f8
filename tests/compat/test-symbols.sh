#!/bin/bash
# compat-xs exports exactly what Debian's libxenstore.so.4 exports: the
# same soname, the VERS_4.0 node and the same symbol names in it.
. "$(dirname "$0")/lib-compat.sh"

ours=$NOXS_BUILD/lib/compat-xs/libxenstore.so.4
theirs=${DEBIAN_LIBXENSTORE:-/usr/lib/x86_64-linux-gnu/libxenstore.so.4}
[ -f "$theirs" ] || nx_fail "no $theirs (apt-get install libxenstore4)"
[ -f "$ours" ] || nx_fail "no $ours"

syms() {
	objdump -T "$1" | awk 'NF >= 2 && $0 !~ /\*UND\*/ && $(NF-1) ~ /VERS_/ {print $(NF-1), $NF}' |
		grep -v '^VERS_4.0 VERS_4.0$' | sort
}
syms "$theirs" >"$NX_DIR/theirs"
syms "$ours" >"$NX_DIR/ours"
[ -s "$NX_DIR/theirs" ] || nx_fail "no symbols read from $theirs"
diff -u "$NX_DIR/theirs" "$NX_DIR/ours" || nx_fail "symbol lists differ"
nx_expect_eq soname "$(objdump -p "$ours" | awk '/SONAME/ {print $2}')" libxenstore.so.4
objdump -p "$ours" | grep -q 'VERS_4.0' || nx_fail "no VERS_4.0 version definition"
echo "ok: $(wc -l <"$NX_DIR/ours") symbols"
