#!/bin/sh
# check-xen, step 3: boot Xen + dom0 under QEMU (TCG, no KVM needed), wait
# for dom0's /init to finish, turn the serial log into PASS/FAIL lines and
# an exit status (0 all expected checks passed, 1 otherwise).
#
# Env: XEN_TIMEOUT (s, default 3600: a liveness bound only; a boot takes a
# few minutes on an idle 2-core machine, more than 30 under load), QEMU_CPU
# (default qemu64: -cpu max needs Xen's smap=0 smep=0), QEMU_SMP (default
# 2), XEN_ARGS (extra Xen command line), QEMU_ACCEL (default tcg; kvm
# where available), LANE (mixed, default: dom0 runs xenstored beside
# noxs; noxs-only: the same images booted with noxs_lane=noxs-only on
# dom0's command line, no xenstored, checked against expected-noxs-only;
# its logs are serial-noxs-only.*).
set -eu
. "$(dirname "$0")/common.sh"
kv=$(kernel_version) || die "run fetch.sh first"
LANE=${LANE:-mixed}
case $LANE in
mixed) sfx="" lane_arg="" ;;
noxs-only) sfx="-noxs-only" lane_arg=" noxs_lane=noxs-only" ;;
*) die "LANE must be mixed or noxs-only, not '$LANE'" ;;
esac
expected=$XEN_OUT/expected$sfx
for f in xen dom0-initrd expected$sfx; do [ -f "$XEN_OUT/$f" ] || die "missing $XEN_OUT/$f"; done
mkdir -p "$XEN_LOGS"
log=$XEN_LOGS/serial$sfx.log
results=$XEN_LOGS/results$sfx
missing=$XEN_LOGS/missing$sfx
txt=$XEN_LOGS/serial$sfx.txt
tmo=${XEN_TIMEOUT:-3600}

rm -f "$log" "$txt" "$results" "$missing"
start=$(date +%s)
# QEMU's multiboot -initrd takes "module cmdline,module2": the dom0 kernel
# command line must not contain a comma.
qemu-system-x86_64 -machine pc,accel="${QEMU_ACCEL:-tcg}" -cpu "${QEMU_CPU:-qemu64}" \
	-smp "${QEMU_SMP:-2}" -m 1536 -nographic -no-reboot -monitor none \
	-serial "file:$log" -display none -net none \
	-kernel "$XEN_OUT/xen" \
	-append "console=com1 com1=115200,8n1 dom0_mem=640M,max:640M dom0_max_vcpus=2 loglvl=warning guest_loglvl=warning ${XEN_ARGS:-}" \
	-initrd "$XEN_ROOT/boot/vmlinuz-$kv console=hvc0 earlyprintk=xen rdinit=/init quiet loglevel=4$lane_arg,$XEN_OUT/dom0-initrd" \
	</dev/null >"$XEN_LOGS/qemu$sfx.out" 2>&1 &
qpid=$!

# Wait for the end marker (then give dom0 a moment to power off), QEMU's
# own exit, or the timeout.
ended=""
while kill -0 $qpid 2>/dev/null; do
	now=$(date +%s)
	if [ -z "$ended" ] && grep -aq '^XEN-LANE-END' "$log" 2>/dev/null; then ended=$now; fi
	if [ -n "$ended" ] && [ $((now - ended)) -ge 5 ]; then break; fi
	if [ $((now - start)) -ge "$tmo" ]; then msg "timeout after ${tmo}s"; break; fi
	sleep 1
done
kill $qpid 2>/dev/null || true
wait $qpid 2>/dev/null || true
wall=$(($(date +%s) - start))

# Result lines, dom0's and the guest's ("guest| PASS ..."), without CRs.
tr -d '\r' < "$log" > "$txt"
grep -aE '^(guest\| )?(PASS|FAIL) ' "$txt" | sed 's/^guest| //' > "$results"
grep -aE '^(guest\| )?(RATIO|HANDSHAKE|STAGE|RESULT|INFO) ' "$txt" | sed 's/^guest| //' || true
cat "$results"

fails=0
grep -q '^FAIL ' "$results" && fails=1
grep -v '^#' "$expected" | while read -r name; do
	[ -n "$name" ] || continue
	grep -qE "^PASS $name( |\$)" "$results" || echo "FAIL $name: no PASS line (not run?)"
done > "$missing"
cat "$missing"
[ -s "$missing" ] && fails=1
grep -aq '^XEN-LANE-END' "$txt" || { echo "FAIL lane-complete: dom0 did not finish (timeout ${tmo}s or crash)"; fails=1; }

if [ $fails -ne 0 ]; then
	echo "----- relevant serial log (full log: $log) -----"
	grep -anE 'panic|Oops|BUG|Call Trace|segfault|crash|FATAL|\(XEN\).*(Panic|fault)' "$txt" | head -n 40 || true
	echo "..."
	tail -n 80 "$txt"
	echo "check-xen ($LANE): FAILED (wall ${wall}s)"
	exit 1
fi
echo "check-xen ($LANE): all $(grep -c '^PASS ' "$results") checks passed (wall ${wall}s)"
