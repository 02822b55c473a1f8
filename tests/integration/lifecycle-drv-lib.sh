# shellcheck shell=bash
# One device lifecycle, run against any driver on libnoxs's driver
# protocol (sourced by lifecycle-example.sh, lifecycle-console.sh,
# lifecycle-blk.sh and lifecycle-sysctl-walk.sh, which set the DRV_*
# variables and functions):
#   connect; restart the frontend (SIGTERM) and reconnect; kill -9 the
#   frontend: the backend walks to Closed on its own, a new frontend
#   reconnects; kill -9 the backend: the frontend sees it go, noxsd drops
#   the device, a new backend serves a new one; restart the backend
#   (SIGTERM): the frontend sees Closing; remove the device while a
#   frontend is connecting: both sides let go; and at the end the
#   simulator holds no grant, mapping or port of the device.
# The driver's script provides:
#   DRV_TYPE          noxsctl's type name
#   DRV_CONN          a line the backend logs per connection of domain 1
#   drv_back          set DRV_BACK to the backend's command (an array:
#                     run directly, never in a subshell, so that its pid
#                     is the backend's)
#   drv_front BOOT    start a frontend of domain 1 (nx_spawn; front.log)
#   drv_dev_add       (optional) add device 1/TYPE/0 with the driver's
#                     parameters; without it, a plain noxsctl dev-add
. "$(dirname "$0")/../lib.sh"

T_BACK=
# How many lines of back.log match (one number, also for none).
count() {
	local n
	n=$(grep -c "$1" "$NX_DIR/back.log" 2>/dev/null)
	echo "${n:-0}"
}
count_gt() { [ "$(count "$1")" -gt "$2" ]; }
conns() { count "$DRV_CONN"; }
new_conn() {
	[ "$(conns)" -gt "$1" ] && nx_dev_states_is 1 "$DRV_TYPE" 0 "Connected Connected"
}

start_back() {
	local n
	n=$(count "$DRV_SERVING")
	drv_back
	"${DRV_BACK[@]}" >>"$NX_DIR/back.log" 2>&1 &
	T_BACK=$!
	NX_PIDS+=("$T_BACK")
	nx_wait 200 "the backend to register" count_gt "$DRV_SERVING" "$n"
}
start_front() {
	drv_front "$boot" >>"$NX_DIR/front.log" 2>&1
	NX_FRONT=$NX_PID
}
no_device() { [ -z "$(nx_dev_states 1 "$DRV_TYPE" 0)" ]; }
add_and_connect() {
	local n
	n=$(conns)
	if declare -F drv_dev_add >/dev/null; then
		drv_dev_add >/dev/null || nx_fail "dev-add"
	else
		noxsctl dev-add 1 "$DRV_TYPE" 0 >/dev/null || nx_fail "dev-add"
	fi
	start_front
	nx_wait 400 "$1" new_conn "$n"
}

nx_start_noxsd
start_back
boot=$(nx_domain 1)
[ -n "$boot" ] || nx_fail "no bootstrap string"
add_and_connect "the first connection"
nx_log "connected"

# The frontend restarts cleanly: Closing -> Closed, then a new session.
n=$(conns)
kill -TERM "$NX_FRONT"
nx_exit_status "$NX_FRONT" 200
[ "$NX_STATUS" != timeout ] || nx_fail "the frontend did not stop on SIGTERM"
nx_wait 200 "the backend to follow the frontend to Closed" \
	nx_dev_states_is 1 "$DRV_TYPE" 0 "Closed Closed"
start_front
nx_wait 400 "a reconnection after a clean restart" new_conn "$n"
nx_log "frontend restart: reconnected"

# kill -9 of the frontend: its half still says Connected; the backend
# learns of the death from the liveness page and walks to Closed alone.
# (A watch of noxsd's events, set up once it has reported one: a spare
# domain is created and destroyed until it has.)
noxsctl watch all >"$NX_DIR/watch.out" 2>&1 &
NX_PIDS+=($!)
watch_up() {
	noxsctl domain-create 9 >/dev/null 2>&1
	noxsctl domain-destroy 9 >/dev/null 2>&1
	grep -q '^domain-created 9$' "$NX_DIR/watch.out"
}
nx_wait 200 "the watch to be set up" watch_up
n=$(conns)
kill -9 "$NX_FRONT"
wait "$NX_FRONT" 2>/dev/null
nx_wait 200 "the backend to see the frontend die" \
	nx_dev_states_is 1 "$DRV_TYPE" 0 "Closed Connected"
start_front
nx_wait 400 "a reconnection after kill -9 of the frontend" new_conn "$n"
nx_log "frontend kill -9: the backend closed on its own, reconnected"

# The frontend that reconnected is alive: removing its device walks
# Closing with it, so the frontend's half in the dev-removed event is
# Closing or Closed, never the Connected of a frontend not waited for.
noxsctl dev-rm 1 "$DRV_TYPE" 0 >"$NX_DIR/rm.out" 2>&1 ||
	nx_fail "dev-rm after a reconnection: $(cat "$NX_DIR/rm.out")"
nx_wait 200 "the dev-removed event" grep -q '^dev-removed 1 ' "$NX_DIR/watch.out"
grep '^dev-removed 1 ' "$NX_DIR/watch.out" | grep -Eq 'state [A-Za-z]+/Clos(ing|ed)$' ||
	nx_fail "the removal did not wait for the live frontend: $(grep '^dev-removed 1 ' "$NX_DIR/watch.out")"
nx_exit_status "$NX_FRONT" 400
add_and_connect "a new device after the removal"

# Removal after the frontend died: it will never follow to Closing, and
# the backend knows it, so the removal ends at once instead of at the
# close deadline ("did not close ... in time").
late=$(count "did not close device")
kill -9 "$NX_FRONT"
wait "$NX_FRONT" 2>/dev/null
nx_wait 200 "the backend to see the frontend die" \
	nx_dev_states_is 1 "$DRV_TYPE" 0 "Closed Connected"
noxsctl dev-rm 1 "$DRV_TYPE" 0 >"$NX_DIR/rm.out" 2>&1 ||
	nx_fail "dev-rm after the frontend died: $(cat "$NX_DIR/rm.out")"
no_device || nx_fail "dev-list still shows the device after dev-rm"
[ "$(count "did not close device")" = "$late" ] ||
	nx_fail "the removal waited out the close deadline for a dead frontend"
add_and_connect "a new device after the removal"
nx_log "removal after the frontend died: no wait"

# kill -9 of the backend: the frontend sees it go (not a hang), and noxsd
# drops the device of a backend that does not resume its devices.
kill -9 "$T_BACK"
wait "$T_BACK" 2>/dev/null
nx_exit_status "$NX_FRONT" 400
[ "$NX_STATUS" != timeout ] || nx_fail "the frontend did not notice the backend's death"
[ "$NX_STATUS" != 0 ] || nx_fail "the frontend exited 0 after the backend's death"
nx_wait 400 "noxsd to drop the dead backend's device" no_device
start_back
add_and_connect "a connection to a new backend"
nx_log "backend kill -9: the frontend exited $NX_STATUS, a new backend serves"

# The backend restarts cleanly: it closes its devices on the way out.
kill -TERM "$T_BACK"
nx_exit_status "$T_BACK" 400
[ "$NX_STATUS" = 0 ] || nx_fail "the backend exited $NX_STATUS on SIGTERM"
nx_exit_status "$NX_FRONT" 400
[ "$NX_STATUS" != timeout ] || nx_fail "the frontend did not see the backend close"
nx_wait 400 "noxsd to drop the closed backend's device" no_device
start_back
add_and_connect "a connection after the backend's restart"
nx_log "backend restart: the frontend exited $NX_STATUS, reconnected"

# Remove while connecting: the backend is held (SIGSTOP) while a new
# frontend starts its session, and the removal is asked for meanwhile.
kill -TERM "$NX_FRONT"
nx_exit_status "$NX_FRONT" 200
kill -STOP "$T_BACK"
start_front
sleep 0.2 # not a timing assertion: lets the frontend publish first
noxsctl dev-rm 1 "$DRV_TYPE" 0 >"$NX_DIR/rm.out" 2>&1 &
rm=$!
NX_PIDS+=("$rm")
kill -CONT "$T_BACK"
nx_exit_status "$rm" 400
[ "$NX_STATUS" = 0 ] || nx_fail "dev-rm while connecting: exit $NX_STATUS: $(cat "$NX_DIR/rm.out")"
nx_exit_status "$NX_FRONT" 400
[ "$NX_STATUS" != timeout ] || nx_fail "the frontend did not let go of a removed device"
no_device || nx_fail "dev-list still shows the device after dev-rm"
nx_log "remove while connecting: the frontend exited $NX_STATUS"

noxsctl domain-destroy 1 >/dev/null || nx_fail "domain-destroy"
stat=$NX_BUILD/sim/noxs-simstat
sim_clean() {
	local total k
	total=$("$stat" | grep '^total') || return 1
	for k in ports_interdomain grants_active grants_ending grant_maps; do
		case " $total " in *" $k=0 "*) ;; *) return 1 ;; esac
	done
}
nx_wait 200 "every grant, mapping and interdomain port to be released" sim_clean
nx_log "simulator: $("$stat" | grep '^total')"
nx_log "PASS"
