# The noxs part of dom0's /init (sourced by init-dom0 when the images were
# built with noxs). Uses pass/fail/stage/wait_for/finish and GUEST_DOMID
# from init-dom0; adds the bootstrap word to $extra.

NOXS_STATE=/run/noxs
export NOXS_SOCKET=$NOXS_STATE/noxsd.sock

# The daemons run as root with no capabilities at all (an empty bounding
# set), as the systemd units run them: what they need on real Xen, the
# permissions of /dev/xen/* give. Only ever run in the background
# ("nocaps CMD &"): the subshell execs setpriv, which execs CMD, so $! is
# CMD's pid.
nocaps() {
	if command -v ul-setpriv > /dev/null; then
		exec ul-setpriv --bounding-set=-all --inh-caps=-all --no-new-privs "$@"
	fi
	exec "$@"
}
# CapEff of a process, in hex.
capeff() { sed -n 's/^CapEff:[[:space:]]*//p' /proc/$1/status 2>/dev/null; }

# There is no systemd here: noxsd-fdstore plays it (the notification
# socket, the fd store that holds the page keeper's files, and
# Restart=on-failure), as in tests/integration/noxsd-keeper.sh. noxsd runs
# in the foreground (-d) under it; the worker forks the page keeper on
# first start and reattaches to it later. noxsd_pid is the worker's pid.
noxsd_start() {
	nocaps noxsd-fdstore $NOXS_STATE/notify.sock -- \
		noxsd -d --socket $NOXS_SOCKET --state-dir $NOXS_STATE \
		> /tmp/noxsd-svc.out 2>> /tmp/noxsd.log &
	svc_pid=$!
	wait_for 30 noxsctl status > /dev/null 2>&1 || return 1
	noxsd_pid=$(status_field pid)
}
svc_starts() { grep -c '^started ' /tmp/noxsd-svc.out; }
# The worker answers, with a pid other than $1 and a keeper.
new_worker() {
	p=$(status_field pid)
	[ -n "$p" ] && [ "$p" != "$1" ] && [ -n "$(status_field keeper_pid)" ]
}

# A field of `noxsctl status --json` ("name": N).
status_field() {
	noxsctl status --json 2>/dev/null | tr ',{}' '\n\n\n' |
		sed -n "s/^ *\"$1\" *: *\([0-9]*\).*/\1/p" | head -n 1
}

# A process's resident memory in KiB (VmRSS), or "?".
# mem_kib PID: its RSS in KiB and what that is made of: anonymous
# (heap, stacks: what the process itself holds), file (its code and
# libraries as they are first run) and shared memory (grant mappings).
mem_kib() {
	awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 }
		/^RssShmem:/ { s = $2 }
		END { if (r == "") print "?"; else printf "%s(anon=%s,file=%s,shmem=%s)", r, a, f, s }' \
		"/proc/${1:-none}/status" 2>/dev/null || echo "?"
}

# noxsd's memory now: worker and keeper RSS and the worker's heap in use.
noxsd_mem() {
	echo "worker=$(mem_kib "$(status_field pid)") keeper=$(mem_kib "$(status_field keeper_pid)") heap=$(status_field heap_kib)"
}

dev_state_line() { noxsctl dev-list $GUEST_DOMID 2>/dev/null | grep -i sysctl | head -n 1; }
dev_connected() { dev_state_line | grep -q 'Connected.*Connected'; }

noxs_before_guest() {
	stage "noxsd"
	mkdir -p $NOXS_STATE
	if noxsd_start; then pass dom0.noxsd-up; else fail "dom0.noxsd-up"; tail -n 20 /tmp/noxsd.log; return; fi
	nocaps noxs-sysctl-back -d -v --socket $NOXS_SOCKET >> /tmp/sysctl-back.log 2>&1 &
	sysctl_back_pid=$!
	noxs_start_data_backends
	caps="" bad=""
	for kv in noxsd=$noxsd_pid keeper=$(status_field keeper_pid) \
		sysctl-back=$sysctl_back_pid blk-back=$blk_back_pid console-back=$console_back_pid; do
		[ -n "${kv#*=}" ] || continue
		c=$(capeff "${kv#*=}")
		caps="$caps ${kv%%=*}=$c"
		case $c in "" | *[!0]*) bad="$bad ${kv%%=*}=${c:-gone}" ;; esac
	done
	if [ -z "$bad" ]; then pass "dom0.noxs-no-capabilities -$caps"; else fail "dom0.noxs-no-capabilities:$bad"; fi
	mem_before=$(noxsd_mem)
	boot=$(noxsctl domain-create $GUEST_DOMID 2>/tmp/domain-create.err)
	case $boot in
	noxs=*:*:*) pass "dom0.noxs-domain-create - $boot"; extra="$extra $boot" ;;
	*) fail "dom0.noxs-domain-create: '$boot' $(cat /tmp/domain-create.err)" ;;
	esac
	# A request for a domain noxsd does not know must fail cleanly.
	if noxsctl dev-add 77 sysctl 0 > /tmp/bad.out 2>&1; then
		fail "dom0.noxs-unknown-domain-refused: dev-add 77 succeeded"
	else
		pass "dom0.noxs-unknown-domain-refused - $(head -n 1 /tmp/bad.out)"
	fi
}

have() { command -v "$1" > /dev/null 2>&1; }

# Optional drivers (present when the build has them): blk serves a file,
# console carries text both ways.
BLK_IMG=/tmp/disk.img
CONS_DIR=$NOXS_STATE/console
CONS_LOG=/tmp/conlog/console-$GUEST_DOMID.0.log
noxs_start_data_backends() {
	if have noxs-blk-back; then
		dd if=/dev/zero of=$BLK_IMG bs=1M count=4 2>/dev/null
		printf 'noxs-blk-marker-from-dom0' | dd of=$BLK_IMG conv=notrunc 2>/dev/null
		nocaps noxs-blk-back -d -v --socket $NOXS_SOCKET >> /tmp/blk-back.log 2>&1 &
		blk_back_pid=$!
	fi
	if have noxs-console-back; then
		mkdir -p $CONS_DIR /tmp/conlog
		nocaps noxs-console-back -d -v --socket $NOXS_SOCKET --dir $CONS_DIR \
			--log-dir /tmp/conlog >> /tmp/console-back.log 2>&1 &
		console_back_pid=$!
	fi
	nb=$(( 1 + $(have noxs-blk-back && echo 1 || echo 0) + $(have noxs-console-back && echo 1 || echo 0) ))
	backends_up() { [ "$(status_field backends)" -ge $nb ] 2>/dev/null; }
	if wait_for 30 backends_up; then pass "dom0.noxs-backends-registered - $nb"; else fail "dom0.noxs-backends-registered: $(status_field backends) of $nb"; fi
}

dev_add() { # NAME ARGS...
	name=$1; shift
	if noxsctl dev-add "$@" > /tmp/dev-add.out 2>&1; then
		pass "$name - dev-add $*"
	else
		fail "$name: dev-add $*: $(cat /tmp/dev-add.out)"
	fi
}

noxs_console_exchange() {
	hello() { grep -q 'noxs-console-hello-from-guest' $CONS_LOG 2>/dev/null; }
	if ! wait_for 240 hello; then
		fail "dom0.noxs-console-guest-output: nothing in $CONS_LOG"; return
	fi
	pass dom0.noxs-console-guest-output
	(echo ping-from-dom0; sleep 30) | noxs-console --dir $CONS_DIR -e none $GUEST_DOMID 0 > /tmp/con-client.out 2>&1 &
	client=$!
	got() { grep -q 'guest-got:ping-from-dom0' $CONS_LOG; }
	if wait_for 60 got; then pass dom0.noxs-console-input-echoed; else fail "dom0.noxs-console-input-echoed: $(tail -c 300 $CONS_LOG)"; fi
	kill $client 2>/dev/null
}

noxs_with_guest() {
	stage "noxs-dev-add"
	dev_add dom0.noxs-dev-add $GUEST_DOMID sysctl 0
	have noxs-blk-back && dev_add dom0.noxs-blk-dev-add $GUEST_DOMID blk 0 path=$BLK_IMG mode=w
	have noxs-console-back && dev_add dom0.noxs-console-dev-add $GUEST_DOMID console 0
	have noxs-console-back && noxs_console_exchange
	# The guest runs its probes first, then its sysctl frontend connects.
	if wait_for 240 dev_connected; then
		pass "dom0.noxs-guest-connected - $(dev_state_line)"
		# On Xen, not the simulator: what one guest with its devices
		# costs noxsd (KiB; heap is the worker's malloc in use).
		echo "RESULT noxsd-memory-one-guest before: $mem_before; after domain-create, xl create and $(noxsctl dev-list $GUEST_DOMID 2>/dev/null | grep -c Connected) connected devices: $(noxsd_mem)"
	else
		fail "dom0.noxs-guest-connected: $(dev_state_line)"; noxsctl dev-list all
	fi
	stage "noxs-kill-worker"
	before=$(noxsctl dev-list all 2>&1)
	domains=$(noxsctl domain-list 2>&1)
	keeper=$(status_field keeper_pid)
	if [ "$(status_field pid)" = "$noxsd_pid" ] && kill -9 "$noxsd_pid"; then
		pass "dom0.noxsd-killed - kill -9 worker $noxsd_pid (keeper $keeper)"
	else
		fail "dom0.noxsd-killed: worker pid $noxsd_pid, status says $(status_field pid)"
		kill -9 "$noxsd_pid"
	fi
	# While the worker is down, the connected device lives on its pages;
	# the service manager (noxsd-fdstore) restarts it.
	if wait_for 60 new_worker "$noxsd_pid" && [ "$(status_field keeper_pid)" = "$keeper" ]; then
		noxsd_pid=$(status_field pid)
		pass "dom0.noxsd-restarted - worker $noxsd_pid, same keeper $keeper"
	else
		fail "dom0.noxsd-restarted: keeper now '$(status_field keeper_pid)', was $keeper"; tail -n 20 /tmp/noxsd.log
	fi
	# Right after the restart every acknowledged device is listed with the
	# same page references (from the store and the keeper); the states come
	# back once the backends have reconnected and re-synchronised.
	refs() { echo "$1" | awk '{ print $1, $2, $3, $4, $5, $6 }'; }
	after=$(noxsctl dev-list all 2>&1)
	if [ -n "$before" ] && [ "$(refs "$before")" = "$(refs "$after")" ]; then
		pass "dom0.noxs-restart-devices-listed - $(echo "$after" | tail -n +2 | wc -l) device(s)"
	else
		fail "dom0.noxs-restart-devices-listed: before: $before / after: $after"
	fi
	same_as_before() { [ "$(noxsctl dev-list all 2>&1)" = "$before" ]; }
	lost_nothing() { # NAME
		if wait_for 60 same_as_before && dev_connected &&
			[ "$(noxsctl domain-list 2>&1)" = "$domains" ]; then
			pass "$1 - $(dev_state_line)"
		else
			fail "$1: devices before: $before / now: $(noxsctl dev-list all 2>&1) / domains before: $domains / now: $(noxsctl domain-list 2>&1)"
		fi
	}
	lost_nothing dom0.noxs-restart-lost-nothing

	# The page keeper itself: kill -9. The worker exits, the service
	# manager restarts it with the keeper's files from its fd store, and
	# the next keeper maps the pages again: same grant refs, ports and
	# devices, and the guest's frontend never notices (it acknowledges the
	# shutdown below through the same device; it compares its page).
	stage "noxs-kill-keeper"
	if [ -n "$keeper" ] && kill -9 "$keeper"; then
		pass "dom0.noxs-keeper-killed - kill -9 keeper $keeper"
	else
		fail "dom0.noxs-keeper-killed: keeper '$keeper'"
	fi
	new_keeper() { k=$(status_field keeper_pid); [ -n "$k" ] && [ "$k" != "$keeper" ]; }
	if wait_for 60 new_worker "$noxsd_pid" && wait_for 30 new_keeper &&
		grep -q 'took over [1-9][0-9]* device page' /tmp/noxsd.log; then
		noxsd_pid=$(status_field pid); keeper=$(status_field keeper_pid)
		pass "dom0.noxs-keeper-took-over - worker $noxsd_pid, keeper $keeper: $(grep -o 'took over [0-9]* device page(s)' /tmp/noxsd.log | tail -n 1)"
	else
		fail "dom0.noxs-keeper-took-over: keeper '$(status_field keeper_pid)'"; tail -n 20 /tmp/noxsd.log
	fi
	lost_nothing dom0.noxs-keeper-kill-lost-nothing

	# systemctl restart after an upgrade: ExecStop (noxsd --stop) stops
	# the worker only, a new binary is installed at the same path (a new
	# file, as a package upgrade does), the service starts again; the new
	# worker has the keeper exec the new binary in place. Worker and
	# keeper now run the new program; pages and devices are unchanged.
	stage "noxs-restart-new-binary"
	cp /usr/bin/noxsd /usr/bin/noxsd.new && mv /usr/bin/noxsd.new /usr/bin/noxsd
	n=$(svc_starts)
	if noxsd --stop --state-dir $NOXS_STATE; then
		pass "dom0.noxs-stop-worker-only - keeper $keeper still running: $(kill -0 "$keeper" 2>&1 && echo yes)"
	else
		fail "dom0.noxs-stop-worker-only"
	fi
	kill -USR1 "$svc_pid"
	runs_new() { [ "$(readlink /proc/$keeper/exe)" = /usr/bin/noxsd ] && [ "$(readlink /proc/$(status_field pid)/exe)" = /usr/bin/noxsd ]; }
	if wait_for 60 new_worker "$noxsd_pid" && [ "$(svc_starts)" -gt "$n" ] &&
		[ "$(status_field keeper_pid)" = "$keeper" ] && wait_for 30 runs_new &&
		grep -q 'replacing its program image' /tmp/noxsd.log; then
		noxsd_pid=$(status_field pid)
		pass "dom0.noxs-restart-keeper-replaced - worker $noxsd_pid, keeper $keeper exec'd the new binary"
	else
		fail "dom0.noxs-restart-keeper-replaced: keeper '$(status_field keeper_pid)' exe '$(readlink /proc/$keeper/exe)'"; tail -n 20 /tmp/noxsd.log
	fi
	lost_nothing dom0.noxs-restart-new-binary-lost-nothing
	c=$(capeff "$keeper")
	case $c in "" | *[!0]*) fail "dom0.noxs-keeper-no-capabilities: $c" ;; *) pass "dom0.noxs-keeper-no-capabilities - $c" ;; esac
	noxsctl status --json | sed 's/^/note: status: /'
	stage "noxs-shutdown"
	if noxsctl shutdown $GUEST_DOMID --reason poweroff --wait 60 > /tmp/shutdown.out 2>&1; then
		pass "dom0.noxs-shutdown-acked - $(head -n 1 /tmp/shutdown.out)"
	else
		fail "dom0.noxs-shutdown-acked: $(cat /tmp/shutdown.out)"
	fi
}

# After the guest is gone: what it wrote through blk is in the file.
noxs_after_guest() {
	if have noxs-blk-back; then
		if dd if=$BLK_IMG bs=4096 skip=2 count=1 2>/dev/null | grep -q noxs-blk-written-by-guest; then
			pass dom0.noxs-blk-guest-data-in-file
		else
			fail "dom0.noxs-blk-guest-data-in-file"
		fi
	fi
}

# Pooled median of the "SAMPLES name v1 v2 ..." lines in a file.
pooled_median() {
	awk -v name="$2" '$1 == "SAMPLES" && $2 == name { for (i = 3; i <= NF; i++) v[n++] = $i }
		END { if (n == 0) exit 1; m = 0
			# insertion sort: n is small
			for (i = 1; i < n; i++) { x = v[i]; for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
			print v[int(n / 2)] }' "$1"
}

# Rounds alternate (xenstored was timed once by init-dom0, then noxs,
# xenstored, noxs) so that slow drifts of the emulated machine hit both.
noxs_timing() {
	/bin/noxs-handshake "$HS_ITER" > /tmp/hs-noxs.out 2>&1
	/bin/xs-handshake "$HS_ITER" >> /tmp/hs-xs.out 2>&1
	/bin/noxs-handshake "$HS_ITER" >> /tmp/hs-noxs.out 2>&1
	grep -v '^SAMPLES' /tmp/hs-xs.out | tail -n +4
	grep -v '^SAMPLES' /tmp/hs-noxs.out
	stage "timing-done"
	xs=$(pooled_median /tmp/hs-xs.out xenstored)
	nx=$(pooled_median /tmp/hs-noxs.out noxs)
	if [ -n "$xs" ] && [ -n "$nx" ] && [ "$nx" -gt 0 ]; then
		echo "RATIO handshake xenstored/noxs = $(awk "BEGIN { printf \"%.1f\", $xs / $nx }") (pooled medians ${xs}us / ${nx}us, 2x$HS_ITER handshakes each, alternating rounds, same QEMU run)"
	else
		fail "dom0.handshake-ratio: no samples"
	fi
	echo "----- noxsd log -----"
	tail -n 30 /tmp/noxsd.log
	for l in sysctl-back blk-back console-back; do
		[ -s /tmp/$l.log ] || continue
		echo "----- $l log -----"; tail -n 30 /tmp/$l.log
	done
}
