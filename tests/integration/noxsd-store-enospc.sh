#!/bin/bash
# A removal is acknowledged only once the store holds it. The state
# directory is a 64 KiB tmpfs, filled up: dev-rm and domain-destroy then
# fail with ENOSPC, the device and the domain stay (and the domain's page
# with them). With space again, the same dev-rm and domain-destroy
# succeed. After kill -9 of the worker, nothing acknowledged as removed
# is back, every acknowledged device is there, and the store and every
# page agree.
. "$(dirname "$0")/../lib.sh"

mkdir -p "$NX_STATE"
if ! mount -t tmpfs -o size=64k,mode=0711 noxs-enospc "$NX_STATE" 2>"$NX_DIR/mount.err"; then
	nx_log "SKIP: cannot mount a tmpfs (needs root): $(cat "$NX_DIR/mount.err")"
	exit 0
fi
enospc_cleanup() {
	nx_cleanup
	umount "$NX_STATE" 2>/dev/null || umount -l "$NX_STATE" 2>/dev/null
	[ -n "${NX_OWN_DIR:-}" ] && rm -rf "$NX_DIR"
	return 0
}
trap enospc_cleanup EXIT

nx_start_noxsd
nx_start_testbe be --types 1,3
declare -A boot
for d in 1 2 3; do
	boot[$d]=$(nx_domain "$d")
	for i in 0 1; do
		noxsctl dev-add "$d" blk "$i" >/dev/null || nx_fail "dev-add $d blk $i"
		echo "$d $i" >>"$NX_DIR/acked.txt"
	done
done

# Fill the file system, then the log's last page (acknowledged adds):
# appends fail from there on.
next=100
fill_up() {
	local d out full=
	dd if=/dev/zero of="$NX_STATE/fill" bs=4k 2>/dev/null
	for ((; next < 1000; next++)); do
		d=$((next % 3 + 1))
		[ -n "${skip_dom:-}" ] && [ "$d" = "$skip_dom" ] && continue
		if out=$(noxsctl dev-add "$d" blk "$next" 2>&1); then
			echo "$d $next" >>"$NX_DIR/acked.txt"
		else
			case $out in
			*"No space left"*) full=1; next=$((next + 1)); break ;;
			*) nx_fail "dev-add $d blk $next: $out" ;;
			esac
		fi
	done
	[ -n "$full" ] || nx_fail "the store never filled up"
}
fill_up
nx_log "store full after $(wc -l <"$NX_DIR/acked.txt") acknowledged devices"

# Removals cannot be stored: refused, and nothing is gone.
out=$(noxsctl dev-rm 2 blk 0 2>&1) && nx_fail "dev-rm acknowledged with a full store"
case $out in *"No space left"*) ;; *) nx_fail "dev-rm 2 blk 0: $out" ;; esac
out=$(noxsctl domain-destroy 3 2>&1) && nx_fail "domain-destroy acknowledged with a full store"
case $out in *"No space left"*) ;; *) nx_fail "domain-destroy 3: $out" ;; esac
noxsctl dev-list 2 | awk '$2 == "blk" && $3 == 0' | grep -q . ||
	nx_fail "device 2/0 gone although its removal failed"
noxsctl domain-list | awk '$1 == 3' | grep -q . ||
	nx_fail "domain 3 gone although its destroy failed"
nx_page 3 "${boot[3]}" >/dev/null || nx_fail "domain 3's page gone although its destroy failed"
# Retried while still full: the same answer, no harm.
noxsctl dev-rm 2 blk 0 >/dev/null 2>&1 && nx_fail "dev-rm retried while full acknowledged"
noxsctl domain-destroy 3 >/dev/null 2>&1 && nx_fail "domain-destroy retried while full acknowledged"

# Space again: the retries go through (the backend already let the
# devices go and answers the second remove at once).
rm -f "$NX_STATE/fill"
noxsctl dev-rm 2 blk 0 || nx_fail "dev-rm 2 blk 0 retried with space"
noxsctl domain-destroy 3 || nx_fail "domain-destroy 3 retried with space"
echo "2 0" >"$NX_DIR/removed.txt"
# A removal still waiting while full (1/1), left for the restart to settle.
skip_dom=3
fill_up
noxsctl dev-rm 1 blk 1 >/dev/null 2>&1 && nx_fail "dev-rm 1 blk 1 acknowledged with a full store"

nx_kill_noxsd
rm -f "$NX_STATE/fill"
nx_start_noxsd
nx_wait 200 "the backend to reconnect" nx_has_backends 1
nx_wait 200 "the backend's re-sync" grep -q 'synchronised' "$NX_DIR/noxsd.log"

noxsctl domain-list >"$NX_DIR/domains.txt"
awk '$1 == 3' "$NX_DIR/domains.txt" | grep -q . && nx_fail "destroyed domain 3 is back"
nx_page 3 "${boot[3]}" >/dev/null 2>&1 && nx_fail "destroyed domain 3's page is back"
noxsctl dev-list all >"$NX_DIR/list.txt"
awk '$1 == 2 && $2 == "blk" && $3 == 0' "$NX_DIR/list.txt" | grep -q . &&
	nx_fail "removed device 2/0 is back"
while read -r d i; do
	[ "$d" = 3 ] && continue
	[ "$d $i" = "2 0" ] && continue
	[ "$d $i" = "1 1" ] && continue # not acknowledged either way
	awk -v d="$d" -v i="$i" '$1 == d && $2 == "blk" && $3 == i' "$NX_DIR/list.txt" |
		grep -q . || nx_fail "acknowledged device $d/$i lost"
done <"$NX_DIR/acked.txt"
for d in 1 2; do
	nx_page "$d" "${boot[$d]}" >"$NX_DIR/page-$d.txt" || nx_fail "page of domain $d"
	a=$(awk -v d="$d" '$1 == d && $2 == "blk" {print $3}' "$NX_DIR/list.txt" | sort -n)
	b=$(awk '$1 == 3 {print $2}' "$NX_DIR/page-$d.txt" | sort -n)
	[ "$a" = "$b" ] || nx_fail "domain $d: store and page differ"
done
noxsctl dev-add 1 blk 999 >/dev/null || nx_fail "dev-add after the restart"
nx_log PASS
