#!/bin/bash
# Commands say what is wrong: exit statuses that each mean one thing,
# messages naming the domain, device, key or file at fault, unknown keys
# and unsafe sharing refused, one number parser (decimal ids, octal
# modes, users by name), options anywhere on noxsctl's line, --version
# everywhere with one version, man pages that render and list every
# option of --help.
. "$(dirname "$0")/../lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$NX_BIN
N=$BIN/noxsctl

# expect RC PATTERN CMD...: CMD exits RC and its stderr matches PATTERN.
expect() {
	local want=$1 pat=$2 out rc
	shift 2
	out=$("$@" 2>&1 >/dev/null)
	rc=$?
	[ "$rc" = "$want" ] || nx_fail "$*: rc $rc, want $want ($out)"
	[[ $out == $pat ]] || nx_fail "$*: says '$out', want '$pat'"
}

# --- one version, everywhere
want=$(cat "$SRC/VERSION")
for p in noxsd noxsctl noxs-sysctl-back noxs-sysctl-front noxs-blk-back \
	noxs-blk noxs-console-back noxs-console-front noxs-console; do
	v=$("$BIN/$p" --version 2>&1)
	[ "$v" = "$p $want" ] || nx_fail "$p --version: '$v', want '$p $want'"
done
nx_log "every program prints version $want"

# --- numbers: ids decimal, modes octal, users by name
expect 2 '*--domid 010: not a domain id*' "$BIN/noxsd" -d --domid 010 --state-dir "$NX_DIR/x"
expect 2 '*NOXS_DOMID*not a domain id*' env NOXS_DOMID=010 "$BIN/noxsd" -d --state-dir "$NX_DIR/x"
expect 2 '*--socket-mode 8*octal*' "$BIN/noxsd" -d --socket-mode 8 --state-dir "$NX_DIR/x"
expect 2 '*--toolstack-uid no-such-user-here*' "$BIN/noxsd" -d --toolstack-uid no-such-user-here --state-dir "$NX_DIR/x"
expect 2 '*--backend-timeout 1x*' "$BIN/noxsd" -d --backend-timeout 1x --state-dir "$NX_DIR/x"
expect 2 '*abc: not a domain id*' "$BIN/noxs-console" --dir "$NX_DIR" abc
expect 2 '*console 7y: not a device id*' "$BIN/noxs-console" --dir "$NX_DIR" 3 7y
expect 2 '*--max-grants 010*' "$BIN/noxs-blk-back" -d --max-grants 010
expect 2 '*unexpected argument: extra*' "$BIN/noxs-sysctl-back" -d extra
nx_start_noxsd --socket-mode 666 --toolstack-uid root
[ "$(stat -c %a "$NOXS_SOCKET")" = 666 ] ||
	nx_fail "--socket-mode 666 gave mode $(stat -c %a "$NOXS_SOCKET")"
nx_log "ids are decimal, modes octal, users names or numbers"

# --- noxsctl: options anywhere, help, usage errors that name the argument
"$N" help | grep -q '^usage: noxsctl' || nx_fail "noxsctl help"
"$N" --json status | grep -q '"version":"'"$want"'"' || nx_fail "--json before the command"
"$N" status --json | grep -q '"pid":' || nx_fail "--json after the command"
expect 3 "*cannot reach noxsd at $NX_DIR/none.sock*" "$N" status --socket "$NX_DIR/none.sock"
"$N" domain-list --socket "$NOXS_SOCKET" >/dev/null || nx_fail "--socket after the command"
expect 2 '*domain id 32752: out of range*' "$N" domain-create 32752
expect 2 '*domain id 010: not a domain id*' "$N" domain-create 010
expect 2 '*unknown device type foo (sysctl, console, blk*' "$N" dev-add 5 foo 0
expect 2 '*has no --json output*' "$N" domain-create 5 --json
nx_log "noxsctl takes options anywhere and names bad arguments"

# --- errors that name what is wrong; 3 only for noxsd itself
"$BIN/noxs-sysctl-back" -d >"$NX_DIR/sysctl.log" 2>&1 &
NX_PIDS+=($!)
"$BIN/noxs-blk-back" -d >"$NX_DIR/blk.log" 2>&1 &
NX_PIDS+=($!)
nx_wait 200 "2 backends" nx_has_backends 2
noxsctl domain-create 4 >/dev/null && noxsctl domain-create 5 >/dev/null ||
	nx_fail "domain-create"
noxsctl dev-add 4 sysctl 0 || nx_fail "dev-add sysctl"
expect 1 '*shutdown: domain 4: the guest*did not connect*' "$N" shutdown 4 --reason poweroff --wait 1
expect 1 '*dev-add: domain 99 sysctl 0: no such domain*' "$N" dev-add 99 sysctl 0
expect 1 '*dev-add: domain 5 net 0: No such device: no backend for net devices*' "$N" dev-add 5 net 0
expect 1 '*dev-add: domain 5 blk 0: the blk backend refused it: Invalid argument: no path= parameter*' "$N" dev-add 5 blk 0
grep -q 'domain 5 blk 0: refused: no path= parameter' "$NX_DIR/blk.log" ||
	nx_fail "blk-back does not name path="
expect 1 '*dev-add: domain 5 blk 0: the blk backend refused*' "$N" dev-add 5 blk 0 path=/dev/null mode=x
grep -q 'domain 5 blk 0: refused: mode=x (r, ro, w or rw)' "$NX_DIR/blk.log" ||
	nx_fail "blk-back does not name mode="
expect 1 '*dev-rm: domain 99 sysctl 9: no such domain*' "$N" dev-rm 99 sysctl 9
expect 1 '*dev-rm: domain 5 sysctl 9: no such device*' "$N" dev-rm 5 sysctl 9
truncate -s 1M "$NX_DIR/disk.img"
expect 1 '*domain 5 blk 1: the blk backend refused*' "$N" dev-add 5 blk 1 path="$NX_DIR/disk.img" bogus=1
grep -q 'domain 5 blk 1: refused: unknown parameter bogus=' "$NX_DIR/blk.log" ||
	nx_fail "blk-back does not name bogus="
expect 1 '*domain 4 sysctl 1: the sysctl backend refused*' "$N" dev-add 4 sysctl 1 bogus=1
expect 1 '*domain 5 blk 2: the blk backend refused*' "$N" dev-add 5 blk 2 path="$NX_DIR/disk.img" sectors=999999999999
expect 1 "*domain 5 blk 2: the blk backend cannot use path=$NX_DIR/none.img: No such file*" \
	"$N" dev-add 5 blk 2 path="$NX_DIR/none.img"
# A relative path is the caller's.
(cd "$NX_DIR" && "$N" dev-add 5 blk 3 path=disk.img) ||
	nx_fail "relative path= not taken from the caller's directory"
grep -q "domain 5 blk 3: $NX_DIR/disk.img," "$NX_DIR/blk.log" || nx_fail "blk 3 not on $NX_DIR/disk.img"
nx_log "errors name the domain, device, key and file"

# --- one image is never attached read-write twice (nor rw beside ro)
expect 1 '*domain 4 blk 0: the blk backend refused*busy*' "$N" dev-add 4 blk 0 path="$NX_DIR/disk.img"
grep -q "domain 4 blk 0: refused: $NX_DIR/disk.img is attached read-write as domain 5 blk 3" \
	"$NX_DIR/blk.log" || nx_fail "blk-back does not name the other device"
expect 1 '*domain 4 blk 0: the blk backend refused*' "$N" dev-add 4 blk 0 path="$NX_DIR/disk.img" mode=r
noxsctl dev-rm 5 blk 3 || nx_fail "dev-rm blk 3"
noxsctl dev-add 4 blk 0 path="$NX_DIR/disk.img" mode=r || nx_fail "read-only once"
noxsctl dev-add 5 blk 0 path="$NX_DIR/disk.img" mode=r || nx_fail "read-only twice"
expect 1 '*domain 5 blk 4: the blk backend refused*' "$N" dev-add 5 blk 4 path="$NX_DIR/disk.img"
nx_log "blk refuses to share an image read-write"

# --- man pages: render without warnings, list every option of --help
for pair in noxsd:noxsd/noxsd.8 noxsctl:tools/noxsctl.8 \
	noxs-sysctl-back:drivers/sysctl/noxs-sysctl-back.8 \
	noxs-sysctl-front:drivers/sysctl/noxs-sysctl-front.8 \
	noxs-blk-back:drivers/blk/noxs-blk-back.8 noxs-blk:drivers/blk/noxs-blk.1 \
	noxs-console-back:drivers/console/noxs-console-back.8 \
	noxs-console-front:drivers/console/noxs-console-front.8 \
	noxs-console:drivers/console/noxs-console.1; do
	p=${pair%%:*}
	m=$SRC/${pair#*:}
	w=$(LC_ALL=C groff -mandoc -ww -z "$m" 2>&1)
	[ -z "$w" ] || nx_fail "$m: groff warns: $w"
	text=$(LC_ALL=C MANWIDTH=200 man -l "$m" 2>/dev/null | col -b)
	[[ $text == *"BSD System Manager"* || $text == *"such device"* ]] &&
		nx_fail "$m renders a BSD header or a mangled .Dq"
	for o in $("$BIN/$p" --help 2>&1 | grep -oE -- '(^|[[ ])--?[a-zA-Z][a-zA-Z-]*' |
		sed 's/^[[ ]*//' | sort -u); do
		grep -qF -- "$o" <<<"$text" || nx_fail "$m does not list $o"
	done
done
nx_log "man pages render and list every option"
exit 0
