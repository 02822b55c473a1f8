# Shell functions shared by scripts/bench.sh and bench/generic.sh.

# bench_meta TOP: the KEY=VALUE lines of meta.txt that describe the
# machine and the tree at TOP (each script adds its own settings and
# versions).
bench_meta() {
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "nproc=$(nproc)"
	echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "kernel=$(uname -sr)"
	echo "virt=$(bench_virt)"
	echo "cpuidle=$(bench_cpuidle)"
	echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	_rev=$(git -C "$1" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [ -n "$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		_rev="$_rev (with uncommitted changes)"
	fi
	echo "git=$_rev"
}

# bench_virt: what the machine runs on, in the kernel's own words where
# they are still in its log ("KVM", "PVM", "Xen HVM", "bare hardware"),
# else systemd-detect-virt's. Wake-ups, faults and system calls cost very
# differently on a KVM guest and on a PVM guest of the same CPU, so every
# figure carries it.
bench_virt() {
	_v=$(dmesg 2>/dev/null | sed -n 's/.*Booting paravirtualized kernel on //p' | head -n 1)
	[ -n "$_v" ] || _v=$(systemd-detect-virt --vm 2>/dev/null) || true
	echo "${_v:-unknown}"
}

# bench_cpuidle: the idle driver, and haltpoll's polling window (0: an
# idle vCPU halts at once, and waking it costs an exit to the host).
bench_cpuidle() {
	_d=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null) || _d=none
	if [ "$_d" = haltpoll ] && [ -r /sys/module/haltpoll/parameters/guest_halt_poll_ns ]; then
		_d="$_d (guest_halt_poll_ns=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns))"
	fi
	echo "$_d"
}

# bench_wait_noxsd DIR: wait (about 10 s at most) until the noxsd started
# in DIR listens on DIR/noxsd.sock and its keeper wrote
# DIR/state/keeper.pid; 1, after showing DIR/noxsd.log, if it does not.
bench_wait_noxsd() {
	_i=0
	until [ -S "$1/noxsd.sock" ] && [ -s "$1/state/keeper.pid" ]; do
		_i=$((_i + 1))
		if [ $_i -gt 1000 ]; then cat "$1/noxsd.log" >&2; return 1; fi
		sleep 0.01
	done
}
