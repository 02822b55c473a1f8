#!/bin/bash
# "Which domain am I" has one answer and one rule: a $NOXS_DOMID or
# $NOXS_SIM_DOMID that is not a decimal domain id without a leading zero
# ("010", "0x10") is refused by every program, never read as 8 or 16
# and never taken for dom0. The libraries that programs of any shape
# load (compat-xs's libxenstore, the simulator) never write the
# environment: a process that plays several domains says so per thread
# (noxs_open_as).
. "$(dirname "$0")/../lib.sh"

BIN=$NX_BIN
CXS_LIB=$NX_BUILD/lib/compat-xs
mkdir -p "$NX_DIR/xs"
# No noxsd: nothing should get as far as needing it.
export NOXS_SOCKET=$NX_DIR/nobody.sock

# refused VAR VALUE PATTERN CMD...: CMD fails at once (no timeout) and
# says PATTERN.
refused() {
	local var=$1 val=$2 pat=$3 out rc
	shift 3
	out=$(env "$var=$val" timeout 10 "$@" 2>&1 </dev/null)
	rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] ||
		nx_fail "$var=$val $*: rc $rc, want a refusal ($out)"
	[[ $out == $pat ]] || nx_fail "$var=$val $*: says '$out', want '$pat'"
}

# compat-xs in local mode needs no noxsd: with a valid domain it runs.
xsw=$NX_DIR/xsw
cat >"$xsw" <<EOS
#!/bin/sh
exec env LD_LIBRARY_PATH="$CXS_LIB:$LD_LIBRARY_PATH" NOXS_COMPAT_MODE=local \
	NOXS_XS_DIR="$NX_DIR/xs" "$NX_TESTBIN/xswatch" @releaseDomain t
EOS
chmod +x "$xsw"
out=$(NOXS_SIM_DOMID=3 timeout 2 "$xsw" 2>&1)
[ $? = 124 ] || nx_fail "xswatch as domain 3 did not run: $out"

export NOXS_BOOT=noxs=0:8:1
# The simulator's own libraries refuse a bad $NOXS_SIM_DOMID at the
# first Xen handle, with EINVAL, which may come before libnoxs says why.
shopt -s extglob
for var in NOXS_DOMID NOXS_SIM_DOMID; do
	why="*not a domain id*"
	[ "$var" = NOXS_SIM_DOMID ] && why="@(*not a domain id*|*Invalid argument*)"
	for v in 010 0x10 ' 16' 16x 32752; do
		refused "$var" "$v" "*not a domain id*" \
			"$NX_BIN/noxsd" -d --state-dir "$NX_DIR/st"
		for p in noxs-sysctl-back noxs-console-back noxs-blk-back \
			noxs-sysctl-front; do
			refused "$var" "$v" "$why" "$NX_BIN/$p"
		done
		refused "$var" "$v" "*Invalid argument*" "$NX_BIN/noxs-console-front" -- true
		refused "$var" "$v" "*xs_open: Invalid argument*" "$xsw"
	done
done
nx_log "a domain id that is not decimal is refused by every program"

# Libraries loaded by threaded programs never write the environment.
for lib in "$CXS_LIB/libxenstore.so.4" "$NX_BUILD"/sim/*.so*; do
	w=$(nm -D --undefined-only "$lib" |
		grep -wE 'setenv|unsetenv|putenv|clearenv')
	[ -z "$w" ] || nx_fail "$(basename "$lib") writes the environment: $w"
done
# libnoxs only drops systemd's LISTEN_* once it took the fds (as
# sd_listen_fds does); it never sets a variable.
w=$(nm -D --undefined-only "$NX_BUILD/lib/libnoxs.so" |
	grep -wE 'setenv|putenv|clearenv')
[ -z "$w" ] || nx_fail "libnoxs.so writes the environment: $w"
nx_log "PASS (no library writes the environment)"
