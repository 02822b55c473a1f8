#!/bin/bash
# noxs-xsringd on a noxs-only dom0 (local mode, no xenstored): simulated
# guests with a store ring, introduced through compat-xs as libxl does,
# ask what Linux 6.1 asks at boot and are answered from the local store;
# dom0's writes reach them as watch events; they cannot read dom0's or
# each other's nodes; hostile rings (bad type, oversized length, bad
# indexes, a flood, a watch storm, transactions never ended, quotas) get
# errors or are cut off while another guest keeps being served; kill -9
# of the service: restarted, it answers a request left in the ring and
# keeps the guest's watches. dom0's own kernel connection (the page and
# port of /proc/xen/xsd_kva and xsd_port, played by a file) is served as
# domain 0 and keeps its watches across a kill -9.
. "$(dirname "$0")/lib-compat.sh"
. "$(dirname "$0")/xsringd-lib.sh"

dom0 xenstore-write /local/domain/0/name Domain-0 /vm/secret s ||
	nx_fail "dom0 writes"

nx_log "a ring domain is refused while no ring service runs"
guest_start g1 5 3
toolstack_make 5
if dom0 "$T/xsintro" introduce 5 3 "$g1_port" 2>"$NX_DIR/refused"; then
	nx_fail "introduced a ring domain with no ring service"
fi
grep -q "noxs-xsringd" "$NX_DIR/refused" || nx_fail "no clear message: $(cat "$NX_DIR/refused")"

nx_log "a domain without a ring is a noxs domain, introduced to both"
dom0 "$NX_BIN/legacy-toolstack" introduce 9 || nx_fail "introduce 9 (no ring)"
LD_LIBRARY_PATH=$NOXS_BUILD/sim:$NOXS_BUILD/lib "$NX_BIN/noxsctl" \
	--socket "$NOXS_SOCKET" domain-list >"$NX_DIR/doms" 2>&1
grep -qw 9 "$NX_DIR/doms" || nx_fail "domain 9 has no device page: $(cat "$NX_DIR/doms")"
# The store knows it too: its release is not ENOENT.
dom0 "$T/xsintro" release 9 || nx_fail "release 9"

nx_log "introduced with the service running, the guest boots as Linux does"
ringd_start 1
dom0 "$T/xsintro" introduce 5 3 "$g1_port" || nx_fail "introduce 5"
expect g1 boot ok
got=""
for _ in 1 2 3; do g g1 event; got="$got|$R"; done
for w in "memory/target balloon" "control/shutdown shutdown" "control/sysrq sysrq"; do
	case "$got" in *"event $w"*) ;; *) nx_fail "no initial event '$w': $got" ;; esac
done
nx_expect_eq "data/booted" "$(dom0 xenstore-read /local/domain/5/data/booted)" 1
nx_expect_eq "data/state (transaction)" "$(dom0 xenstore-read /local/domain/5/data/state)" 4
nx_expect_eq "feature-poweroff" \
	"$(dom0 xenstore-read /local/domain/5/control/feature-poweroff)" 1
expect g1 "read name" "ok guest5"
expect g1 "dir /local/domain/5/control" "ok *shutdown*"
expect g1 "read /local/domain/5/memory/target" "ok 98304"

nx_log "dom0's write reaches the guest as a watch event"
dom0 xenstore-write /local/domain/5/memory/target 65536
expect g1 event "event memory/target balloon"
expect g1 "read memory/target" "ok 65536"
dom0 xenstore-write /local/domain/5/control/shutdown poweroff
expect g1 event "event control/shutdown shutdown"
expect g1 "read control/shutdown" "ok poweroff"
expect g1 "write control/shutdown x" "ok*"
expect g1 "rm control/shutdown" "ok*"

nx_log "a second guest; neither reads dom0's nor the other's nodes"
guest_up g2 6 4
expect g1 "read /local/domain/0/name" "err EACCES"
expect g1 "read /vm/secret" "err EACCES"
expect g1 "read /local/domain/6/data/x" "err EACCES"
expect g1 "write /local/domain/6/data/y 1" "err EACCES"
expect g1 "read /tool/xsringd" "err EACCES"
expect g1 "write name evil" "err EACCES"
expect g2 "read /local/domain/5/data/x" "err EACCES"
expect g2 "read data/x" "ok private6"
expect g1 "txstart" "ok *"
expect g1 "read /local/domain/5/data/x" "ok private5"

nx_log "messages larger than the ring, both ways"
expect g1 "bigwrite data/big 2000" "ok 2000"

nx_log "quotas: watches and open transactions"
expect g1 "watches 200" "ok * * E*"
n=$(echo "$R" | awk '{print $2}')
[ "$n" -le 128 ] || nx_fail "watches beyond the quota: $R"
expect g1 "txs 30" "ok * * E*"
n=$(echo "$R" | awk '{print $2}')
[ "$n" -le 10 ] || nx_fail "open transactions beyond the quota: $R"
expect g2 "read data/x" "ok private6"

nx_log "a flood and a watch storm on one ring; the other is served meanwhile"
g_send g1 "flood 3000"
for i in $(seq 1 20); do
	expect g2 "write data/n$i $i" "ok*"
	expect g2 "read data/n$i" "ok $i"
done
args=()
for i in $(seq 0 99); do args+=(/local/domain/5/data/w$((i % 20)) "$i"); done
dom0 xenstore-write "${args[@]}"
expect g2 "read data/n20" "ok 20"
g_recv g1
case "$R" in "ok 3000") ;; *) nx_fail "flood: $R" ;; esac
expect g1 "read data/booted" "ok 1"

nx_log "a guest that never reads its replies is not read either; the other is served"
expect g1 stall "ok *"
nx_log "$R requests written"
n=${R#ok }
[ "$n" -lt 500 ] || nx_fail "the service read $n requests of a guest that reads no reply"
expect g2 "read data/x" "ok private6"
expect g1 reconnect ok
expect g1 "read data/booted" "ok 1"

nx_log "hostile messages: an unknown type is answered, a bad length or index cuts the ring off"
expect g1 badtype "err ENOSYS"
expect g1 badlen "ok error=3"
expect g2 "read data/x" "ok private6"
expect g1 reconnect ok
expect g1 "read data/booted" "ok 1"
expect g1 badidx "ok error=2"
expect g2 "read data/x" "ok private6"
expect g1 reconnect ok
expect g1 "watch memory/target balloon" "ok OK"
expect g1 event "event memory/target balloon"
kill -0 $_ringd || nx_fail "noxs-xsringd died: $(tail "$RINGD_LOG")"

nx_log "kill -9 of the service: a request left in the ring is answered after the restart, watches kept"
expect g2 txstart "ok *"
oldtx=${R#ok }
expect g2 "txwrite $oldtx data/t 1" "ok*"
kill -9 $_ringd
wait $_ringd 2>/dev/null || true
dom0 xenstore-write /local/domain/6/memory/target 4242
g_send g2 "read memory/target"
ringd_start 2
g_recv g2
nx_expect_eq "read across the restart" "$R" "ok 4242"
# Each watch set again fires once (memory/target among them); then
# dom0's next write is seen.
got=""
for _ in 1 2 3; do g g2 event; got="$got|$R"; done
case "$got" in *"event memory/target balloon"*) ;;
*) nx_fail "watches not set again: $got" ;; esac
dom0 xenstore-write /local/domain/6/memory/target 4343
expect g2 event "event memory/target balloon"
expect g2 "read memory/target" "ok 4343"
expect g1 "read memory/target" "ok 65536"
# A transaction open across the restart is gone, and its id names no
# transaction started afterwards.
expect g2 txstart "ok *"
newtx=${R#ok }
[ "$newtx" != "$oldtx" ] || nx_fail "transaction id $oldtx reused"
expect g2 "txwrite $oldtx data/t 2" "err ENOENT"
expect g2 "txwrite $newtx data/t 3" "ok*"
expect g2 "txend $newtx T" "ok*"
expect g2 "read data/t" "ok 3"

nx_log "release: the service lets the ring go"
dom0 "$T/xsintro" release 5 || nx_fail "release 5"
nx_wait_line "$RINGD_LOG" "domain 5: released"
dom0 xenstore-exists /tool/xsringd/5 && nx_fail "records of domain 5 kept"
expect g2 "read data/x" "ok private6"
kill -0 $_ringd || nx_fail "noxs-xsringd died: $(tail "$RINGD_LOG")"

nx_log "dom0's kernel connection (xsd_kva, xsd_port): served as domain 0, its watches kept across a kill -9"
guest_start k0 0 "file:$NX_DIR/xsd_kva"
echo "$k0_port" >"$NX_DIR/xsd_port"
kill -9 $_ringd
wait $_ringd 2>/dev/null || true
export RINGD_ARGS="--xsd-kva $NX_DIR/xsd_kva --xsd-port $NX_DIR/xsd_port"
ringd_start 3
grep -q "serving dom0's kernel connection" "$RINGD_LOG" ||
	nx_fail "dom0's kernel connection not served: $(tail -n 5 "$RINGD_LOG")"
# What blkback does in dom0: relative paths are under /local/domain/0.
expect k0 "write backend/vbd/6/51712/state 2" "ok*"
nx_expect_eq "the kernel's write, read by a dom0 tool" \
	"$(dom0 xenstore-read /local/domain/0/backend/vbd/6/51712/state)" 2
expect k0 "read /vm/secret" "ok s"
expect k0 "read /local/domain/6/data/x" "ok private6"
expect k0 "watch backend/vbd be" "ok OK"
expect k0 event "event backend/vbd be"
dom0 xenstore-write /local/domain/0/backend/vbd/6/51712/frontend /local/domain/6/device/vbd/51712
expect k0 event "event backend/vbd/6/51712/frontend be"
expect g2 "read data/x" "ok private6"
g_send k0 "read backend/vbd/6/51712/state"
kill -9 $_ringd
wait $_ringd 2>/dev/null || true
ringd_start 4
g_recv k0
nx_expect_eq "the kernel's request across the restart" "$R" "ok 2"
expect k0 event "event backend/vbd be"
dom0 xenstore-write /local/domain/0/backend/vbd/6/51712/online 1
expect k0 event "event backend/vbd/6/51712/online be"
dom0 xenstore-exists /tool/xsringd/0 || nx_fail "the kernel's watch records were pruned"

nx_log "a port file that is not a number: no kernel connection, guests still served"
echo "junk" >"$NX_DIR/xsd_port"
kill -9 $_ringd
wait $_ringd 2>/dev/null || true
ringd_start 5
grep -q "not a port number" "$RINGD_LOG" || nx_fail "no message for a bad xsd_port: $(tail -n 3 "$RINGD_LOG")"
expect g2 "read data/x" "ok private6"
grep -q "runtime error\|AddressSanitizer" "$RINGD_LOG" && nx_fail "sanitizer: $(cat "$RINGD_LOG")"
echo "PASS: xsringd"
