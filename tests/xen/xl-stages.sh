# The xl stages (sourced by init-dom0 when the images were built with
# them): unmodified xl 4.17 drives guests on this mixed dom0 (xenstored
# and noxsd both run; on the lane's second boot, the noxs-only dom0 of
# noxs-only.sh, with no xenstored), every xl command and everything it starts (hotplug
# scripts, xenconsole, its monitoring child) on the libxenstore.so.4 that
# XL_LIB names:
#
#   compat   compat-xs (/usr/lib/noxs/compat-xs, first on LD_LIBRARY_PATH)
#   debian   Debian's own library (the baseline the stages are checked on)
#
# What the checks look at afterwards (the XenStore tree, blkback's
# devices) is read with Debian's tools on Debian's library, so a library
# that hides a leftover from itself cannot pass. Every check prints
# "PASS name" or "FAIL name: detail" (expect-xl, expect-xl-noxs).
# Uses pass/fail/stage/wait_for/up from init-dom0 and, for the noxs guest,
# noxs_released from noxs-reap.sh and the backends' logs of noxs-dom0.sh.
# The network stage is in xl-net.sh.
. /etc/xl-net.sh

CXS_DIR=/usr/lib/noxs/compat-xs
XL_CONDIR=/var/log/xen/console
XL_GUEST=xlguest
# Liveness bound of one xl command (s); TCG is slow, this is no timing.
XL_TMO=600
# The vdev numbers of xvda and xvdb (202 << 8 | 16 * index).
VDEV_XVDA=51712
VDEV_XVDB=51728

case $XL_LIB in
compat) XL_ENV="LD_LIBRARY_PATH=$CXS_DIR" ;;
*) XL_ENV="" ;;
esac

info() { echo "INFO $*"; }

# lib CMD...: CMD on the chosen library, bounded by XL_TMO.
# shellcheck disable=SC2086
lib() { timeout $XL_TMO env $XL_ENV "$@"; }
# xlc LABEL ARGS...: xl ARGS on the chosen library, its output in
# /tmp/xl-LABEL.out; xl's status. xlout LABEL: that output, for a FAIL line.
xlc() { l=$1; shift; lib xl "$@" > /tmp/xl-$l.out 2>&1; }
xlout() { tail -n 6 /tmp/xl-$1.out | tr '\n' ' '; }
domid_of() { lib xl domid "$1" 2>/dev/null; }
gone() { ! lib xl domid "$1" > /dev/null 2>&1; }

# The guest's console as xenconsoled logs it: guest-NAME.log, appended to
# by every domain of that name. mark NAME: its length in lines; said NAME
# MARK EVENT: the guest printed "XLG EVENT..." after line MARK.
conlog() { echo $XL_CONDIR/guest-$1.log; }
mark() { tr -d '\r' < "$(conlog "$1")" 2>/dev/null | wc -l; }
said() { tr -d '\r' < "$(conlog "$1")" 2>/dev/null | tail -n +$(($2 + 1)) | grep -q "^XLG $3"; }
heard() { tr -d '\r' < "$(conlog "$1")" 2>/dev/null | tail -n +$(($2 + 1)) | grep "^XLG $3" | head -n 1; }

# xl_cfg NAME EXTRA DISK [VIF]: /etc/xen/NAME.cfg.
xl_cfg() {
	sed -e "s|@NAME@|$1|" -e "s|@EXTRA@|$2|" -e "s|@DISK@|$3|" -e "s|@VIF@|${4:-}|" \
		/etc/xen/xl-guest.cfg.in > /etc/xen/$1.cfg
}
disk() { # FILE-INDEX VDEV: an xl disk spec on /dev/loopN
	echo "phy:/dev/loop$1,$2,w,script=/etc/xen/scripts/lane-block"
}

# What is left of domain D (VM is its /vm path) in XenStore, blkback and
# netback (its vifD.N interfaces): nothing, or the list of leftovers.
leftovers() { # D VM
	left=""
	for p in /local/domain/$1 /libxl/$1 $2; do
		xenstore-ls "$p" > /dev/null 2>&1 && left="$left $p"
	done
	for c in $(xenstore-list /local/domain/0/backend 2>/dev/null); do
		xenstore-ls /local/domain/0/backend/$c/$1 > /dev/null 2>&1 &&
			left="$left /local/domain/0/backend/$c/$1"
	done
	for b in $(ls /sys/bus/xen-backend/devices 2>/dev/null | grep "^vbd-$1-"); do
		left="$left blkback:$b"
	done
	for v in $(ls /sys/class/net 2>/dev/null | grep "^vif$1\\."); do
		left="$left netback:$v"
	done
	echo $left
}
nothing_left() { [ -z "$(leftovers "$1" "$2")" ]; }
check_clean() { # NAME D VM
	if wait_for 120 nothing_left "$2" "$3"; then
		pass "$1 - no /local/domain/$2, /libxl/$2,${3:+ $3,} backend/*/$2, blkback device, vif$2.*"
	else
		fail "$1: left behind:$(leftovers "$2" "$3")"
	fi
}

# The domain's /vm path, read (Debian's tools) while it exists.
vm_of() { xenstore-read /local/domain/$1/vm 2>/dev/null; }

# Loop devices for the disks; blkback for the backend half. The first
# bytes of disk N are "xl-lane-disk-N", which the guest reports.
xl_setup() {
	stage "xl-setup"
	info "xl stages: library $XL_LIB${XL_ENV:+ ($XL_ENV)}"
	mkdir -p /var/lock /var/lib/xen
	km=/lib/modules/$(uname -r)/kernel/drivers/block
	for m in loop xen-blkback/xen-blkback; do
		insmod $km/$m.ko || fail "dom0.xl-insmod-${m##*/}"
	done
	wait_for 10 test -b /dev/loop1
	for i in 0 1; do
		dd if=/dev/zero of=/tmp/xl-disk$i.img bs=1M count=4 2> /dev/null
		printf 'xl-lane-disk-%d' $i | dd of=/tmp/xl-disk$i.img conv=notrunc 2> /dev/null
		losetup /dev/loop$i /tmp/xl-disk$i.img || fail "dom0.xl-losetup-$i"
	done
	xl_net_setup
	# Relay the guest's console to ours (prefixed, so no PASS line of
	# the guest's is counted: dom0 decides).
	: > "$(conlog $XL_GUEST)"
	sh -c 'echo $$ > /tmp/xl-relay.pid; exec tail -n 0 -f "$0"' "$(conlog $XL_GUEST)" |
		tr -d '\r' | while IFS= read -r line; do echo "$XL_GUEST| $line"; done &
}

# xen-init-dom0 (run at boot with Debian's library) again on this one:
# it reads and writes dom0's name and domid and the pool's name.
xl_init_dom0() {
	if lib xen-init-dom0 > /tmp/xl-init-dom0.out 2>&1 &&
		[ "$(xenstore-read /local/domain/0/name 2>/dev/null)" = Domain-0 ] &&
		[ "$(xenstore-read /local/pool/0/name 2>/dev/null)" = Pool-0 ]; then
		pass "dom0.xl-init-dom0 - $XL_LIB"
	else
		fail "dom0.xl-init-dom0: $(tail -n 5 /tmp/xl-init-dom0.out | tr '\n' ' ')"
	fi
}

# The xenstored requests of one `xl create`, from its start to its
# return, by connection: those opened meanwhile (xl and the tools its
# hotplug scripts run), the guest's kernel (the connection xenstored opens
# for the INTRODUCE), and the ones that were there before (xenconsoled,
# dom0's kernel with blkback). xenstored traces to a file from
# `xenstore-control logfile` to `log off`; the control requests themselves
# are not counted.
# XS_TRACE=0 (a dom0 without xenstored): nothing to trace.
trace_start() { [ "${XS_TRACE:-1}" = 1 ] && xenstore-control logfile "$1" > /dev/null 2>&1; }
trace_stop() { [ "${XS_TRACE:-1}" = 1 ] && xenstore-control log off > /dev/null 2>&1; }
trace_count() {
	awk '$1 == "IN" && $5 != "CONTROL" { n++; c[$2]++; if ($5 == "INTRODUCE") intro = 1; next }
		$1 == "CREATE" && $2 == "connection" { if (intro && guest == "") guest = $3; else fresh[$3] = 1 }
		END { for (k in c) { if (k == guest) g += c[k]; else if (k in fresh) t += c[k]; else o += c[k] }
			printf "total=%d xl+scripts=%d guest-kernel=%d others=%d\n", n, t, g, o }' "$1"
}

# What a failed create leaves to look at.
xl_diag() { # D
	info "xl list: $(lib xl list 2>&1 | tr '\n' ' ')"
	info "xenconsoled: $(pidof xenconsoled) logs: $(ls /var/log/xen/console 2>&1 | tr '\n' ' ')"
	info "console log: $(tail -c 400 "$(conlog $XL_GUEST)" 2>&1 | tr '\n\r' '  ')"
	[ -n "$1" ] && info "store: $(xenstore-ls -f /local/domain/$1 2>&1 | grep -E 'console|device/vbd/[0-9]*/state|/vbd/.*/state' | tr '\n' ' ' | cut -c1-900)"
	info "backends: $(ls /sys/bus/xen-backend/devices 2>&1 | tr '\n' ' ')"
	for f in /var/log/xen/xl-$XL_GUEST.log /var/log/xen/xen-hotplug.log /tmp/xsringd.log; do
		[ -s "$f" ] && tail -n 12 "$f" | sed "s|^|INFO ${f##*/}: |"
	done
	return 0
}

xl_create_guest() { # LABEL: create $XL_GUEST (xvda on loop0); sets d, vm
	m=$(mark $XL_GUEST)
	if ! xlc "$1" create /etc/xen/$XL_GUEST.cfg; then
		fail "dom0.$1: $(xlout "$1")"; return 1
	fi
	d=$(domid_of $XL_GUEST)
	vm=$(vm_of "$d")
	if [ -n "$d" ] && wait_for ${XL_BOOT_TMO:-600} said $XL_GUEST "$m" "disk xvda xl-lane-disk-0"; then
		pass "dom0.$1 - domain $d, the guest reads xvda: $(heard $XL_GUEST "$m" start | cut -c1-60)"
	else
		fail "dom0.$1: domain '$d', guest: $(heard $XL_GUEST "$m" start | cut -c1-80)"
		xl_diag "$d"
		return 1
	fi
}

xl_stages() {
	xl_setup
	stage "xl-init-dom0"
	xl_init_dom0

	stage "xl-create"
	xl_cfg $XL_GUEST "" "'$(disk 0 xvda)'"
	trace_start /tmp/xl-create.trace || info "xenstored trace not available"
	t0=$(up)
	xl_create_guest xl-create || { trace_stop; xl_end; return; }
	trace_stop
	# The guest's write to xvda reached the backing file through the
	# backend (kernel blkback on loop0).
	wrote() { dd if=/tmp/xl-disk0.img bs=512 skip=2048 count=1 2>/dev/null | grep -aq "xl-guest-wrote-xvda"; }
	if wait_for 120 said $XL_GUEST 0 "wrote xvda" && wrote; then
		pass "dom0.xl-guest-write - $(dd if=/tmp/xl-disk0.img bs=512 skip=2048 count=1 2>/dev/null | tr -dc 'a-z0-9-' | cut -c1-40) in the backing file"
	else
		fail "dom0.xl-guest-write: guest: $(heard $XL_GUEST 0 wrote) file: $(dd if=/tmp/xl-disk0.img bs=512 skip=2048 count=1 2>/dev/null | tr -dc 'a-z0-9-' | cut -c1-40)"
	fi
	if [ "${XS_TRACE:-1}" = 1 ]; then
		echo "RESULT xl-create-xenstored-requests lib=$XL_LIB $(trace_count /tmp/xl-create.trace) (xl create of a PV guest with a phy disk and console 0, $(awk "BEGIN { print $(up) - $t0 }") s)"
	else
		echo "RESULT xl-create-no-xenstored lib=$XL_LIB xenstored requests=0 (no xenstored on this dom0; xl create of a PV guest with a phy disk and console 0, $(awk "BEGIN { print $(up) - $t0 }") s)"
	fi

	stage "xl-list"
	if xlc list list && grep -q "^Domain-0 *0 " /tmp/xl-list.out &&
		grep -q "^$XL_GUEST *$d " /tmp/xl-list.out && ! grep -q null /tmp/xl-list.out; then
		pass "dom0.xl-list-names - $(awk 'NR > 1 { printf "%s=%s ", $1, $2 }' /tmp/xl-list.out)"
	else
		fail "dom0.xl-list-names: $(cat /tmp/xl-list.out | tr '\n' ' ')"
	fi
	if [ "$(domid_of $XL_GUEST)" = "$d" ] && gone no-such-guest; then
		pass "dom0.xl-domid-by-name - $XL_GUEST is $d"
	else
		fail "dom0.xl-domid-by-name: '$(lib xl domid $XL_GUEST 2>&1)', expected $d"
	fi

	# xl console, without a terminal: its input is a pipe nobody writes
	# (xenconsole ends at the end of its input), the capture ends by
	# timeout; the guest's heartbeats must have come through.
	stage "xl-console"
	rm -f /tmp/xl-con.in && mkfifo /tmp/xl-con.in
	sleep 600 > /tmp/xl-con.in &
	holder=$!
	# shellcheck disable=SC2086
	timeout 10 env $XL_ENV xl console $XL_GUEST < /tmp/xl-con.in > /tmp/xl-console.out 2>&1
	kill $holder
	if tr -d '\r' < /tmp/xl-console.out | grep -q '^XLG heartbeat'; then
		pass "dom0.xl-console - $(tr -d '\r' < /tmp/xl-console.out | grep -c '^XLG heartbeat') heartbeat(s) in 10 s"
	else
		fail "dom0.xl-console: $(tail -c 300 /tmp/xl-console.out | tr '\n\r' '  ')"
	fi

	# The balloon driver's target is what the guest was told through
	# memory/target.
	stage "xl-mem-set"
	m=$(mark $XL_GUEST)
	if xlc mem-set mem-set $XL_GUEST 112m && wait_for 300 said $XL_GUEST "$m" "mem target_kb=114688"; then
		pass "dom0.xl-mem-set - the guest's target is 112 MiB"
	else
		fail "dom0.xl-mem-set: $(xlout mem-set) guest: $(heard $XL_GUEST 0 mem | tail -n 1)"
	fi

	stage "xl-block"
	m=$(mark $XL_GUEST)
	if xlc block-attach block-attach $XL_GUEST "$(disk 1 xvdb)" &&
		wait_for 300 said $XL_GUEST "$m" "disk xvdb xl-lane-disk-1"; then
		xlc block-list block-list $XL_GUEST
		if grep -q "^$VDEV_XVDA " /tmp/xl-block-list.out && grep -q "^$VDEV_XVDB " /tmp/xl-block-list.out; then
			pass "dom0.xl-block-attach - the guest reads xvdb; block-list: $(awk 'NR > 1 { printf "%s ", $1 }' /tmp/xl-block-list.out)"
		else
			fail "dom0.xl-block-attach: block-list: $(cat /tmp/xl-block-list.out | tr '\n' ' ')"
		fi
	else
		fail "dom0.xl-block-attach: $(xlout block-attach) guest: $(heard $XL_GUEST "$m" disk)"
	fi
	m=$(mark $XL_GUEST)
	no_xvdb_back() { ! ls /sys/bus/xen-backend/devices 2>/dev/null | grep -q "^vbd-$d-$VDEV_XVDB\$"; }
	if xlc block-detach block-detach $XL_GUEST xvdb &&
		wait_for 300 said $XL_GUEST "$m" "disk-gone xvdb" && wait_for 120 no_xvdb_back; then
		pass "dom0.xl-block-detach - xvdb gone from the guest and from blkback"
	else
		fail "dom0.xl-block-detach: $(xlout block-detach) guest: $(heard $XL_GUEST "$m" disk) blkback: $(ls /sys/bus/xen-backend/devices | tr '\n' ' ')"
	fi

	stage "xl-pause"
	state() { lib xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }'; }
	if xlc pause pause $XL_GUEST && case $(state $XL_GUEST) in *p*) true ;; *) false ;; esac; then
		pass "dom0.xl-pause - state $(state $XL_GUEST)"
	else
		fail "dom0.xl-pause: $(xlout pause) state '$(state $XL_GUEST)'"
	fi
	m=$(mark $XL_GUEST)
	if xlc unpause unpause $XL_GUEST && case $(state $XL_GUEST) in *p*) false ;; *) true ;; esac &&
		wait_for 300 said $XL_GUEST "$m" heartbeat; then
		pass "dom0.xl-unpause - state $(state $XL_GUEST), heartbeats again"
	else
		fail "dom0.xl-unpause: $(xlout unpause) state '$(state $XL_GUEST)'"
	fi

	stage "xl-rename"
	if xlc rename rename $XL_GUEST xlrenamed && [ "$(domid_of xlrenamed)" = "$d" ] && gone $XL_GUEST &&
		[ "$(xenstore-read /local/domain/$d/name 2>/dev/null)" = xlrenamed ] &&
		xlc rename-back rename xlrenamed $XL_GUEST && [ "$(domid_of $XL_GUEST)" = "$d" ]; then
		pass "dom0.xl-rename - $XL_GUEST -> xlrenamed -> $XL_GUEST"
	else
		fail "dom0.xl-rename: $(xlout rename) $(xlout rename-back) name '$(xenstore-read /local/domain/$d/name 2>&1)'"
	fi

	# on_reboot = "restart": xl's monitoring child (started by create, on
	# the same library) destroys the domain and builds a new one.
	stage "xl-reboot"
	m=$(mark $XL_GUEST)
	old=$d old_vm=$vm
	rebooted() {
		n=$(domid_of $XL_GUEST)
		[ -n "$n" ] && [ "$n" != "$old" ] && said $XL_GUEST "$m" "disk xvda xl-lane-disk-0"
	}
	if xlc reboot reboot $XL_GUEST && wait_for 600 rebooted; then
		d=$(domid_of $XL_GUEST)
		vm=$(vm_of "$d")
		# The new domain may keep the old one's /vm (same uuid).
		[ "$old_vm" = "$vm" ] && old_vm=""
		pass "dom0.xl-reboot - domain $old -> $d, the guest started again and reads xvda"
	else
		fail "dom0.xl-reboot: $(xlout reboot) domid '$(domid_of $XL_GUEST)' guest: $(heard $XL_GUEST "$m" '[rs]' | tr '\n' ' ')"
		xl_diag "$(domid_of $XL_GUEST)"
	fi
	check_clean dom0.xl-reboot-old-domain-clean "$old" "$old_vm"

	stage "xl-shutdown"
	m=$(mark $XL_GUEST)
	# -w returns once the domain has shut down; xl's monitoring child
	# then destroys it (on_poweroff = "destroy").
	if xlc shutdown shutdown -w $XL_GUEST && wait_for 300 gone $XL_GUEST &&
		wait_for 60 said $XL_GUEST "$m" poweroff-request; then
		pass "dom0.xl-shutdown-wait - domain $d powered off and xl returned"
	else
		fail "dom0.xl-shutdown-wait: $(xlout shutdown) guest: $(heard $XL_GUEST "$m" poweroff)"
		xl_diag "$d"
	fi
	check_clean dom0.xl-shutdown-clean "$d" "$vm"

	stage "xl-destroy"
	if xl_create_guest xl-create-again; then
		if xlc destroy destroy $XL_GUEST && gone $XL_GUEST; then
			pass "dom0.xl-destroy - domain $d"
		else
			fail "dom0.xl-destroy: $(xlout destroy)"
		fi
		check_clean dom0.xl-destroy-clean "$d" "$vm"
	fi

	xl_net
	[ "$XL_NOXS_GUEST" = 1 ] && xl_noxs_guest
	xl_timings
	xl_end
}

# Wall time (dom0 uptime) of `xl create` until the guest's device is
# Connected on both ends, and of `xl destroy` until the domain is gone,
# ROUNDS times: one RESULT line a round. KIND stock: a stock guest
# (xvda, kernel blkfront and dom0's blkback; "Connected" is both vbd
# states 4); net: a stock guest with xvda and a vif on xenbr0 (both vbd
# and both vif states 4, and the guest said its eth0 is up); noxs: a noxs
# guest ("Connected" is its sysctl device on both halves). ENV: the
# library xl runs on (XL_ENV by default).
xl_time() { # LABEL NAME KIND ROUNDS [ENV]
	_l=$1 _n=$2 _k=$3 _r=$4
	_env=${5-$XL_ENV}
	_ok=0 _sum=""
	for _i in $(seq 1 "$_r"); do
		_m=$(mark $_n)
		_t0=$(up)
		# shellcheck disable=SC2086
		if ! timeout $XL_TMO env $_env xl create /etc/xen/$_n.cfg > /tmp/xl-time.out 2>&1; then
			fail "dom0.xl-timing-$_l: create: $(tail -n 3 /tmp/xl-time.out | tr '\n' ' ')"; return
		fi
		_d=$(domid_of $_n)
		_conn() {
			case $_k in
			noxs) noxsctl dev-list "$_d" 2>/dev/null | grep -i sysctl | grep -q 'Connected.*Connected' ;;
			net) vbd_connected "$_d" && vif_connected "$_d" 0 && said $_n "$_m" "net eth0 up" ;;
			*) vbd_connected "$_d" ;;
			esac
		}
		if ! wait_for 600 _conn; then
			fail "dom0.xl-timing-$_l: domain '$_d' never Connected"
			lib xl destroy $_n > /dev/null 2>&1; return
		fi
		_t1=$(up)
		# shellcheck disable=SC2086
		timeout $XL_TMO env $_env xl destroy $_n > /tmp/xl-time.out 2>&1 && wait_for 120 gone $_n ||
			{ fail "dom0.xl-timing-$_l: destroy: $(tail -n 3 /tmp/xl-time.out | tr '\n' ' ')"; return; }
		_t2=$(up)
		_c=$(awk "BEGIN { printf \"%.2f\", $_t1 - $_t0 }") _x=$(awk "BEGIN { printf \"%.2f\", $_t2 - $_t1 }")
		echo "RESULT xl-timing $_l round=$_i create-to-connected=${_c}s destroy=${_x}s"
		_sum="$_sum $_c/$_x"
		_ok=$((_ok + 1))
		# The noxs guest's domain must be released before the next round.
		[ "$_k" = noxs ] && wait_for 120 noxs_released "$_d"
	done
	pass "dom0.xl-timing-$_l - $_ok rounds (create-to-connected/destroy, s):$_sum"
}

vbd_connected() { # D: xvda Connected on both ends
	[ "$(xenstore-read /local/domain/0/backend/vbd/$1/$VDEV_XVDA/state 2>/dev/null)" = 4 ] &&
		[ "$(xenstore-read /local/domain/$1/device/vbd/$VDEV_XVDA/state 2>/dev/null)" = 4 ]
}

# Rounds alternated, so that a slow spell of the machine hits all.
XL_TIME_ROUNDS=${XL_TIME_ROUNDS:-3}
xl_timings() {
	stage "xl-timing"
	for _j in $(seq 1 $XL_TIME_ROUNDS); do
		xl_cfg $XL_GUEST "" "'$(disk 0 xvda)'"
		if [ "${XS_TRACE:-1}" = 1 ]; then
			# This dom0 runs xenstored: the baseline, a stock guest
			# with xl on Debian's library.
			xl_time stock-xenstored $XL_GUEST stock 1 ""
		else
			xl_time stock-noxs-only $XL_GUEST stock 1
			[ "$XL_NOXS_GUEST" = 1 ] && xl_time noxs-noxs-only $XL_NOXS noxs 1
		fi
		# The same guest with a vif: create to xvda and eth0 up.
		xl_cfg $XL_GUEST "" "'$(disk 0 xvda)'" "'$XL_VIF0'"
		if [ "${XS_TRACE:-1}" = 1 ]; then
			xl_time net-xenstored $XL_GUEST net 1 ""
		else
			xl_time net-noxs-only $XL_GUEST net 1
		fi
	done
}

xl_end() {
	gone $XL_GUEST || lib xl destroy $XL_GUEST > /dev/null 2>&1
	sleep 1
	[ -s /tmp/xl-relay.pid ] && kill "$(cat /tmp/xl-relay.pid)" 2> /dev/null
	[ -s /tmp/hotplug.log ] && sed 's/^/INFO hotplug: /' /tmp/hotplug.log | tail -n 20
	[ -s /var/log/xen/xen-hotplug.log ] && sed 's/^/INFO xen-hotplug: /' /var/log/xen/xen-hotplug.log | tail -n 20
	stage "xl-done"
}

# A noxs guest created by unmodified xl: the word "noxs" on its command
# line marks it; nothing predicts its domid or writes its bootstrap by
# hand. compat-xs gives it a device page when libxl introduces the
# domain and writes the bootstrap to /local/domain/<d>/noxs, where the
# guest's frontends read it; `xl shutdown -w` goes through its sysctl
# device. Needs XL_LIB=compat and compat-xs's mixed-host routing.
XL_NOXS=xlnoxs
xl_noxs_guest() {
	stage "xl-noxs-guest"
	xl_cfg $XL_NOXS noxs ""
	: > "$(conlog $XL_NOXS)"
	sh -c 'echo $$ > /tmp/xl-relay2.pid; exec tail -n 0 -f "$0"' "$(conlog $XL_NOXS)" |
		tr -d '\r' | while IFS= read -r line; do echo "$XL_NOXS| $line"; done &
	if ! xlc noxs-create create /etc/xen/$XL_NOXS.cfg || [ -z "$(domid_of $XL_NOXS)" ]; then
		fail "dom0.xl-noxs-create: $(xlout noxs-create)"
		kill "$(cat /tmp/xl-relay2.pid)" 2> /dev/null
		return
	fi
	nd=$(domid_of $XL_NOXS)
	nvm=$(vm_of "$nd")
	pass "dom0.xl-noxs-create - domain $nd"
	bootstrap() {
		noxsctl domain-list 2>/dev/null | grep -q "^$nd " &&
			boot=$(xenstore-read /local/domain/$nd/noxs 2>/dev/null) && [ -n "$boot" ]
	}
	boot=""
	if wait_for 120 bootstrap; then
		pass "dom0.xl-noxs-bootstrap - /local/domain/$nd/noxs = $boot"
	else
		# Without it the guest's frontends have nothing to connect to.
		fail "dom0.xl-noxs-bootstrap: noxs key '$boot', noxsd: $(noxsctl domain-list 2>&1 | tr '\n' ' ')"
		lib xl destroy $XL_NOXS > /dev/null 2>&1
		kill "$(cat /tmp/xl-relay2.pid)" 2> /dev/null
		return
	fi
	# The data devices, added as the lane's first guest gets them; the
	# sysctl device, if the library did not add it at introduction.
	has_sysctl() { noxsctl dev-list "$nd" 2>/dev/null | grep -qi sysctl; }
	if ! wait_for 30 has_sysctl; then
		info "no sysctl device for domain $nd after introduction: added by the lane"
		noxsctl dev-add "$nd" sysctl 0 > /dev/null 2>&1
	fi
	if command -v noxs-blk-back > /dev/null; then
		dd if=/dev/zero of=/tmp/xl-noxs-disk.img bs=1M count=1 2> /dev/null
		printf 'xl-lane-noxs-disk' | dd of=/tmp/xl-noxs-disk.img conv=notrunc 2> /dev/null
		noxsctl dev-add "$nd" blk 0 path=/tmp/xl-noxs-disk.img mode=w > /dev/null 2>&1
	fi
	command -v noxs-console-back > /dev/null && noxsctl dev-add "$nd" console 0 > /dev/null 2>&1
	sysctl_connected() { noxsctl dev-list "$nd" 2>/dev/null | grep -i sysctl | grep -q 'Connected.*Connected'; }
	if wait_for 600 sysctl_connected; then
		pass "dom0.xl-noxs-sysctl-connected - $(noxsctl dev-list "$nd" 2>/dev/null | grep -i sysctl)"
	else
		fail "dom0.xl-noxs-sysctl-connected: $(noxsctl dev-list "$nd" 2>&1 | tr '\n' ' ') guest: $(heard $XL_NOXS 0 noxs | tr '\n' ' ')"
	fi
	if command -v noxs-blk-back > /dev/null; then
		if wait_for 300 said $XL_NOXS 0 "noxs-blk-read xl-lane-noxs-disk"; then
			pass dom0.xl-noxs-blk-read
		else
			fail "dom0.xl-noxs-blk-read: $(heard $XL_NOXS 0 noxs-blk)"
		fi
	fi
	if command -v noxs-console-back > /dev/null; then
		hello() { grep -q noxs-console-hello-from-xlguest /tmp/conlog/console-$nd.0.log 2>/dev/null; }
		if wait_for 300 hello; then
			pass dom0.xl-noxs-console-output
		else
			fail "dom0.xl-noxs-console-output: $(heard $XL_NOXS 0 noxs-console)"
		fi
	fi
	# xl save: the guest's frontend does not offer suspend, so the
	# request is refused and xl says why; the guest runs on.
	if xlc noxs-save save $XL_NOXS /tmp/xl-noxs.save; then
		fail "dom0.xl-noxs-save-refused: xl save succeeded"
	elif grep -q "does not support suspend" /tmp/xl-noxs-save.out &&
		[ "$(domid_of $XL_NOXS)" = "$nd" ] && sysctl_connected; then
		pass "dom0.xl-noxs-save-refused - $(grep -m 1 -o 'is a noxs guest whose.*suspend' /tmp/xl-noxs-save.out)"
	else
		fail "dom0.xl-noxs-save-refused: $(xlout noxs-save) domid '$(domid_of $XL_NOXS)' $(noxsctl dev-list "$nd" 2>&1 | grep -i sysctl)"
	fi
	if xlc noxs-shutdown shutdown -w $XL_NOXS && wait_for 300 gone $XL_NOXS &&
		wait_for 60 said $XL_NOXS 0 noxs-sysctl-poweroff &&
		grep -q "domain $nd: shutdown poweroff acknowledged" /tmp/sysctl-back.log; then
		pass "dom0.xl-noxs-shutdown-wait - through the sysctl device, xl returned"
	else
		fail "dom0.xl-noxs-shutdown-wait: $(xlout noxs-shutdown) guest: $(heard $XL_NOXS 0 noxs-sysctl | tr '\n' ' ') sysctl-back: $(grep "domain $nd:" /tmp/sysctl-back.log | tail -n 2 | tr '\n' ' ')"
	fi
	check_clean dom0.xl-noxs-clean "$nd" "$nvm"
	if wait_for 120 noxs_released "$nd"; then
		pass "dom0.xl-noxs-released - noxsd let domain $nd go"
	else
		fail "dom0.xl-noxs-released: $(noxsctl domain-list 2>&1 | tr '\n' ' ')"
	fi
	gone $XL_NOXS || lib xl destroy $XL_NOXS > /dev/null 2>&1
	kill "$(cat /tmp/xl-relay2.pid)" 2> /dev/null
}
