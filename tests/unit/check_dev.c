/*
 * check_dev: noxs_dev and noxs_frontend on the simulator.
 *
 * The test process acts as domain 0: it shares a device page read-only
 * with the guest (what noxsd does) and creates backend devices with the
 * library's internal constructor. A forked child acts as the guest
 * (NOXS_SIM_DOMID set before it opens any handle) and uses only the
 * public frontend API. The child reports failures on stderr and through
 * its exit status; the parent asserts on that.
 *
 * Linked with libnoxs's objects rather than libnoxs.so, because the
 * backend constructor is internal (hidden).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include "simchild.h"
#include "../../libnoxs/private.h"
#include "check_main.h"

#define GUEST 1
#define TMO 10000 /* ms: generous, only to end a broken test */

/* ------------------------------------------------------------------ */
/* Domain 0 side: the device page (simchild.h) plus a backend          */

static void env_setup(struct env *e)
{
    env_open(e);
    env_add_domain(e, GUEST, GUEST);
}

/* A backend device at InitWait with one feature key. */
static noxs_dev *env_backend(struct env *e, unsigned int type, uint32_t devid)
{
    noxs_dev *d = noxs_i_dev_backend_new(e->gs, e->xce, 0, e->guest, type,
                                         devid);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(noxs_dev_state(d), NOXS_STATE_INITIALISING);
    ck_assert_int_eq(noxs_dev_backend_domid(d), 0);
    ck_assert_int_eq(noxs_dev_frontend_domid(d), e->guest);
    ck_assert_uint_eq(noxs_dev_id(d), devid);
    ck_assert_uint_ge(noxs_dev_gref(d), NOXS_GREF_MIN);
    ck_assert_int_eq(noxs_dev_set_kv(d, "feature-a", "1"), 0);
    ck_assert_str_eq(noxs_dev_get_own_kv(d, "feature-a"), "1");
    noxs_dev_set_state(d, NOXS_STATE_INITWAIT);
    ck_assert_int_eq(noxs_dev_publish(d), 0);
    return d;
}

/* Console device 0 at InitWait, listed for the guest FN plays, which
 * runs as *PID. */
static noxs_dev *env_console(struct env *e, child_fn *fn, pid_t *pid)
{
    noxs_dev *d;

    env_setup(e);
    d = env_backend(e, NOXS_DEV_CONSOLE, 0);
    env_list(e, d, 0);
    *pid = spawn(e, fn);
    return d;
}

/* The guest said Initialised: the backend goes Connected. */
static void env_connect(noxs_dev *d)
{
    ck_assert_int_eq(noxs_dev_wait_state(d, NOXS_STATE_INITIALISED, TMO),
                     NOXS_STATE_INITIALISED);
    noxs_dev_set_state(d, NOXS_STATE_CONNECTED);
    ck_assert_int_eq(noxs_dev_publish(d), 0);
}

/* The guest PID passed every check; the device and domain 0 go. */
static void env_finish(struct env *e, noxs_dev *d, pid_t pid)
{
    reap(pid);
    noxs_i_dev_free(d);
    env_close(e);
}

/* ------------------------------------------------------------------ */
/* Guest side (child process)                                          */

static noxs_frontend *guest_open(struct env *e)
{
    noxs_frontend *f = noxs_frontend_open(&e->boot);

    CHILD_CHECK(f != NULL);
    CHILD_CHECK(noxs_frontend_domid(f) == e->guest);
    CHILD_CHECK(noxs_frontend_fd(f) >= 0);
    return f;
}

/* Console device 0 attached by F, its half published in STATE. */
static noxs_dev *guest_attach(noxs_frontend *f, unsigned int state)
{
    noxs_dev *d = noxs_frontend_attach(f, NOXS_DEV_CONSOLE, 0);

    CHILD_CHECK(d != NULL);
    noxs_dev_set_state(d, state);
    CHILD_CHECK(noxs_dev_publish(d) == 0);
    return d;
}

/* One half of D's control page, to scribble on as a hostile peer. */
static struct noxs_ctrl_half *half_of(noxs_dev *d, int which)
{
    struct noxs_ctrlpage *pg = d->page;

    return &pg->half[which];
}

/* Attached, Initialised, and the backend Connected. */
static noxs_dev *guest_connected(struct env *e)
{
    noxs_dev *d = guest_attach(guest_open(e), NOXS_STATE_INITIALISED);

    CHILD_CHECK(noxs_dev_wait_state(d, NOXS_STATE_CONNECTED, TMO) ==
                NOXS_STATE_CONNECTED);
    return d;
}

/* ------------------------------------------------------------------ */
/* The handshake, both directions, and the close walk                  */

static void guest_handshake(struct env *e)
{
    struct noxs_devpage_entry list[4];
    uint32_t gen = 0, refs[2] = {100, 101}, got[4];
    char buf[64];
    noxs_frontend *f = guest_open(e);
    noxs_dev *d;
    int rc;

    rc = noxs_frontend_devices(f, list, 4, &gen);
    CHILD_CHECK(rc == 1);
    CHILD_CHECK(list[0].type == NOXS_DEV_CONSOLE && list[0].devid == 0);
    CHILD_CHECK(gen >= 1);
    d = noxs_frontend_attach(f, NOXS_DEV_CONSOLE, 0);
    CHILD_CHECK(d != NULL);
    CHILD_CHECK(noxs_dev_type(d) == NOXS_DEV_CONSOLE);
    CHILD_CHECK(noxs_dev_frontend_domid(d) == e->guest);
    CHILD_CHECK(noxs_dev_state(d) == NOXS_STATE_INITIALISING);
    /* Attach snapshots the backend half. */
    CHILD_CHECK(noxs_dev_peer_state(d) == NOXS_STATE_INITWAIT);
    CHILD_CHECK(noxs_dev_peer_kv(d, "feature-a", buf, sizeof(buf)) == 1);
    CHILD_CHECK(strcmp(buf, "1") == 0);
    CHILD_CHECK(noxs_dev_peer_ports(d, got, 4) == 1);
    CHILD_CHECK(noxs_dev_peer_features(d) & NOXS_FEATURE_KV);
    /* Not attachable: wrong devid. */
    errno = 0;
    CHILD_CHECK(noxs_frontend_attach(f, NOXS_DEV_CONSOLE, 9) == NULL);
    CHILD_CHECK(errno == ENOENT);

    CHILD_CHECK(noxs_dev_set_refs(d, refs, 2) == 0);
    CHILD_CHECK(noxs_dev_set_kv(d, "ring-ref", "100") == 0);
    noxs_dev_set_state(d, NOXS_STATE_INITIALISED);
    CHILD_CHECK(noxs_dev_publish(d) == 0);

    rc = noxs_dev_wait_state(d, NOXS_STATE_CONNECTED, TMO);
    CHILD_CHECK(rc == NOXS_STATE_CONNECTED);
    CHILD_CHECK(noxs_dev_peer_kv(d, "sectors", buf, sizeof(buf)) == 4);
    CHILD_CHECK(strcmp(buf, "2048") == 0);
    noxs_dev_set_state(d, NOXS_STATE_CONNECTED);
    CHILD_CHECK(noxs_dev_publish(d) == 0);

    /* The backend asks us to close: Closing -> Closed. */
    rc = noxs_dev_wait_state(d, NOXS_STATE_CLOSING, TMO);
    CHILD_CHECK(rc == NOXS_STATE_CLOSING);
    noxs_dev_set_state(d, NOXS_STATE_CLOSING);
    CHILD_CHECK(noxs_dev_publish(d) == 0);
    rc = noxs_dev_wait_state(d, NOXS_STATE_CLOSED, TMO);
    CHILD_CHECK(rc == NOXS_STATE_CLOSED);
    CHILD_CHECK(noxs_dev_detach(d) == 0); /* publishes Closed */
    CHILD_CHECK(noxs_frontend_close(f) == 0);
}

START_TEST(handshake)
{
    struct env e;
    noxs_dev *d;
    uint32_t refs[4];
    char buf[64];
    pid_t pid;
    int rc;

    env_setup(&e);
    d = env_backend(&e, NOXS_DEV_CONSOLE, 0);
    ck_assert_int_eq(noxs_dev_set_kv(d, "sectors", "2048"), 0);
    ck_assert_int_eq(noxs_dev_publish(d), 0);
    env_list(&e, d, 0);
    /* Nothing from the frontend yet. */
    ck_assert_int_eq(noxs_dev_refresh(d), 0);
    ck_assert_int_eq(noxs_dev_peer_state(d), NOXS_STATE_UNKNOWN);
    ck_assert_int_eq(noxs_dev_wait(d, 0), 0);

    pid = spawn(&e, guest_handshake);
    rc = noxs_dev_wait_state(d, NOXS_STATE_INITIALISED, TMO);
    ck_assert_int_eq(rc, NOXS_STATE_INITIALISED);
    ck_assert_int_eq(noxs_dev_peer_refs(d, refs, 4), 2);
    ck_assert_uint_eq(refs[0], 100);
    ck_assert_uint_eq(refs[1], 101);
    ck_assert_int_eq(noxs_dev_peer_kv(d, "ring-ref", buf, sizeof(buf)), 3);
    ck_assert_str_eq(buf, "100");
    ck_assert_uint_gt(noxs_dev_peer_generation(d), 0);
    noxs_dev_set_state(d, NOXS_STATE_CONNECTED);
    ck_assert_int_eq(noxs_dev_publish(d), 0);
    rc = noxs_dev_wait_state(d, NOXS_STATE_CONNECTED, TMO);
    ck_assert_int_eq(rc, NOXS_STATE_CONNECTED);

    /* Removal, backend side: Closing, wait for the frontend, Closed. */
    ck_assert_int_eq(noxs_i_dev_backend_close(d, TMO), 0);
    ck_assert_int_eq(noxs_dev_state(d), NOXS_STATE_CLOSED);
    rc = noxs_dev_wait_state(d, NOXS_STATE_CLOSED, TMO);
    ck_assert_int_eq(rc, NOXS_STATE_CLOSED);
    env_finish(&e, d, pid);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Ping-pong through noxs_dev_wait (spinning and blocking paths)       */

#define ROUNDS 200

static void guest_pingpong(struct env *e)
{
    noxs_frontend *f = guest_open(e);
    noxs_dev *d = noxs_frontend_attach_wait(f, NOXS_DEV_BLK, 5, TMO);
    char buf[16], want[16];

    CHILD_CHECK(d != NULL);
    for (int i = 0; i < ROUNDS; i++) {
        snprintf(want, sizeof(want), "%d", i);
        for (;;) {
            if (noxs_dev_peer_kv(d, "ping", buf, sizeof(buf)) > 0 &&
                strcmp(buf, want) == 0)
                break;
            CHILD_CHECK(noxs_dev_wait(d, TMO) == 1);
        }
        CHILD_CHECK(noxs_dev_set_kv(d, "pong", want) == 0);
        CHILD_CHECK(noxs_dev_publish(d) == 0);
        /* Every few rounds sleep, so the peer's spin gives up and it
         * blocks on the event channel. */
        if (i % 50 == 49)
            usleep(2000);
    }
    CHILD_CHECK(noxs_dev_detach(d) == 0);
    noxs_frontend_close(f);
}

START_TEST(pingpong)
{
    struct env e;
    noxs_dev *d;
    char buf[16], want[16];
    pid_t pid;

    env_setup(&e);
    /* The child starts waiting before the device exists. */
    pid = spawn(&e, guest_pingpong);
    usleep(50000);
    d = env_backend(&e, NOXS_DEV_BLK, 5);
    env_list(&e, d, 5);
    for (int i = 0; i < ROUNDS; i++) {
        snprintf(want, sizeof(want), "%d", i);
        ck_assert_int_eq(noxs_dev_set_kv(d, "ping", want), 0);
        ck_assert_int_eq(noxs_dev_publish(d), 0);
        for (;;) {
            if (noxs_dev_peer_kv(d, "pong", buf, sizeof(buf)) > 0 &&
                strcmp(buf, want) == 0)
                break;
            ck_assert_int_eq(noxs_dev_wait(d, TMO), 1);
        }
    }
    ck_assert_int_eq(noxs_dev_wait_state(d, NOXS_STATE_CLOSED, TMO),
                     NOXS_STATE_CLOSED);
    env_finish(&e, d, pid);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A hostile frontend                                                  */

static void guest_hostile(struct env *e)
{
    noxs_dev *d = guest_connected(e);

    /* Scribble over the backend's half and put garbage (with a settled
     * seq and a new generation) in our own, then notify. */
    struct noxs_ctrl_half *mine = half_of(d, NOXS_CTRL_FRONTEND);
    memset(half_of(d, NOXS_CTRL_BACKEND), 0x41, NOXS_CTRL_HALF_SIZE);
    memset(mine, 0x5a, NOXS_CTRL_HALF_SIZE);
    __atomic_store_n(&mine->seq, 0x100u, __ATOMIC_RELEASE);
    __atomic_store_n(&mine->generation, 0x777u, __ATOMIC_RELEASE);
    CHILD_CHECK(noxs_dev_notify(d) == 0);

    /* Now an odd seq that never settles. */
    usleep(100000);
    __atomic_store_n(&mine->seq, 0x101u, __ATOMIC_RELEASE);
    __atomic_store_n(&mine->generation, 0x778u, __ATOMIC_RELEASE);
    CHILD_CHECK(noxs_dev_notify(d) == 0);

    /* The backend republishes its half (Closing, then Closed at once,
     * as our half never settles): readable again for us. Until then our
     * refreshes fail (EBUSY: we scribbled an odd seq over its half). */
    int rc = -1;
    for (int i = 0; i < 1000 && rc < (int)NOXS_STATE_CLOSING; i++) {
        rc = noxs_dev_wait_state(d, NOXS_STATE_CLOSING, 100);
        if (rc < 0)
            usleep(10000);
    }
    CHILD_CHECK(rc >= (int)NOXS_STATE_CLOSING);
    _exit(0); /* die without cleaning up */
}

START_TEST(hostile_frontend)
{
    struct env e;
    noxs_dev *d;
    pid_t pid;
    int rc;

    d = env_console(&e, guest_hostile, &pid);
    env_connect(d);

    /* Garbage in the frontend half: EPROTO, old snapshot kept. */
    errno = 0;
    rc = noxs_dev_wait(d, TMO);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_int_eq(noxs_dev_peer_state(d), NOXS_STATE_INITIALISED);
    /* A seq that never settles: EBUSY, in bounded time. */
    for (int i = 0; i < 100; i++) {
        errno = 0;
        rc = noxs_dev_refresh(d);
        if (rc < 0 && errno == EBUSY)
            break;
        ck_assert_int_eq(rc, -1);
        ck_assert_int_eq(errno, EPROTO);
        usleep(10000);
    }
    ck_assert_int_eq(errno, EBUSY);
    ck_assert_int_eq(noxs_dev_peer_state(d), NOXS_STATE_INITIALISED);

    /* Our half is intact (local copy) and republishing repairs the page. */
    ck_assert_int_eq(noxs_dev_state(d), NOXS_STATE_CONNECTED);
    ck_assert_str_eq(noxs_dev_get_own_kv(d, "feature-a"), "1");
    struct noxs_ctrl_half snap;
    ck_assert_int_eq(noxs_ctrl_half_snapshot(d->page,
                                             NOXS_CTRL_BACKEND, &snap),
                     -1);
    /* Closing against a frontend stuck in EBUSY: no wait, still Closed. */
    noxs_i_dev_backend_close(d, 200);
    ck_assert_int_eq(noxs_ctrl_half_snapshot(d->page,
                                             NOXS_CTRL_BACKEND, &snap),
                     0);
    ck_assert_int_eq(snap.state, NOXS_STATE_CLOSED);
    ck_assert_int_eq(noxs_kv_get(&snap, "feature-a", (char[8]){0}, 8), 1);
    env_finish(&e, d, pid);
}
END_TEST

/*
 * A write that stalls mid-way (a writer preempted for a while): our half
 * stays torn for 300 ms, then the publish completes. A wait on it must
 * ride that out (back-off, retry) and return the change, not EBUSY.
 */
static void guest_slow_writer(struct env *e)
{
    noxs_dev *d = guest_connected(e);
    struct noxs_ctrl_half *mine = half_of(d, NOXS_CTRL_FRONTEND);

    __atomic_store_n(&mine->seq, 2 * mine->generation + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&mine->generation, mine->generation + 1,
                     __ATOMIC_RELEASE);
    CHILD_CHECK(noxs_dev_notify(d) == 0);
    usleep(300000);
    noxs_dev_set_state(d, NOXS_STATE_CONNECTED);
    CHILD_CHECK(noxs_dev_publish(d) == 0);
    CHILD_CHECK(noxs_dev_wait_state(d, NOXS_STATE_CLOSING, TMO) ==
                NOXS_STATE_CLOSING);
    _exit(0);
}

START_TEST(wait_rides_out_torn_half)
{
    struct env e;
    noxs_dev *d;
    pid_t pid;

    d = env_console(&e, guest_slow_writer, &pid);
    env_connect(d);
    /* Torn for 300 ms, then Connected: one wait sees it through. */
    errno = 0;
    ck_assert_int_eq(noxs_dev_wait_state(d, NOXS_STATE_CONNECTED, TMO),
                     NOXS_STATE_CONNECTED);
    noxs_i_dev_backend_close(d, TMO);
    env_finish(&e, d, pid);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The device page is read-only to the guest                           */

static void guest_readonly(struct env *e)
{
    xengnttab_handle *gt = xengnttab_open(NULL, 0);
    void *p;
    pid_t pid;
    int status;

    CHILD_CHECK(gt != NULL);
    errno = 0;
    p = xengnttab_map_grant_ref(gt, 0, e->devpage_gref, PROT_READ | PROT_WRITE);
    CHILD_CHECK(p == NULL);
    p = xengnttab_map_grant_ref(gt, 0, e->devpage_gref, PROT_READ);
    CHILD_CHECK(p != NULL);
    /* Writing the read-only mapping faults. */
    pid = fork();
    CHILD_CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        *(volatile uint32_t *)p = 0;
        _exit(0);
    }
    CHILD_CHECK(waitpid(pid, &status, 0) == pid);
    CHILD_CHECK(WIFSIGNALED(status));
    xengnttab_unmap(gt, p, 1);
    xengnttab_close(gt);
}

START_TEST(devpage_readonly)
{
    struct env e;

    env_setup(&e);
    reap(spawn(&e, guest_readonly));
    env_close(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Identity checks                                                     */

static void guest_identity(struct env *e)
{
    noxs_frontend *f = guest_open(e);

    /* The entry says devid 0, the backend half says devid 1. */
    errno = 0;
    CHILD_CHECK(noxs_frontend_attach(f, NOXS_DEV_CONSOLE, 0) == NULL);
    CHILD_CHECK(errno == EPROTO);
    noxs_frontend_close(f);
}

START_TEST(identity_mismatch)
{
    struct env e;
    noxs_dev *d;

    env_setup(&e);
    d = env_backend(&e, NOXS_DEV_CONSOLE, 1);
    env_list(&e, d, 0);
    reap(spawn(&e, guest_identity));
    noxs_i_dev_free(d);
    env_close(&e);
}
END_TEST

static void guest_wrong_page(struct env *e)
{
    errno = 0;
    CHILD_CHECK(noxs_frontend_open(&e->boot) == NULL);
    CHILD_CHECK(errno == EPROTO);
}

START_TEST(page_for_other_domain)
{
    struct env e;

    env_open(&e);
    /* Shared with domain 2 but describing domain 1. */
    env_add_domain(&e, 2, 1);
    reap(spawn(&e, guest_wrong_page));
    /* A bootstrap string whose port does not match the page. */
    xengntshr_unshare(e.gs, e.devpage, 1);
    env_add_domain(&e, 2, 2);
    e.boot.port = e.notify_port + 1;
    reap(spawn(&e, guest_wrong_page));
    env_close(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Timeouts                                                            */

static void guest_timeouts(struct env *e)
{
    noxs_frontend *f = guest_open(e);
    uint32_t gen;

    CHILD_CHECK(noxs_frontend_devices(f, NULL, 0, &gen) == 0);
    CHILD_CHECK(noxs_frontend_wait(f, gen, 0) == 0);
    CHILD_CHECK(noxs_frontend_wait(f, gen, 30) == 0);
    CHILD_CHECK(noxs_frontend_wait(f, gen + 1, 30) == 1);
    errno = 0;
    CHILD_CHECK(noxs_frontend_attach_wait(f, NOXS_DEV_BLK, 1, 50) == NULL);
    CHILD_CHECK(errno == ETIMEDOUT);
    CHILD_CHECK(noxs_frontend_handle_events(f) >= 0);
    noxs_frontend_close(f);
}

START_TEST(timeouts)
{
    struct env e;
    noxs_dev *d;

    env_setup(&e);
    d = env_backend(&e, NOXS_DEV_CONSOLE, 0);
    ck_assert_int_eq(noxs_dev_wait(d, 0), 0);
    ck_assert_int_eq(noxs_dev_wait(d, 20), 0);
    ck_assert_int_eq(noxs_dev_wait_state(d, NOXS_STATE_CONNECTED, 0), 0);
    ck_assert_int_eq(noxs_dev_wait_state(d, NOXS_STATE_CONNECTED, 20), 0);
    /* A frontend that never published: close does not wait for it. */
    ck_assert_int_eq(noxs_i_dev_backend_close(d, 50), 0);
    reap(spawn(&e, guest_timeouts));
    noxs_i_dev_free(d);
    env_close(&e);
}
END_TEST

static void guest_silent(struct env *e)
{
    noxs_frontend *f = guest_open(e);
    noxs_dev *d = guest_attach(f, NOXS_STATE_CONNECTED);

    /* Then ignore the backend's Closing until it gives up. */
    int rc = noxs_dev_wait_state(d, NOXS_STATE_CLOSED, TMO);
    CHILD_CHECK(rc == NOXS_STATE_CLOSING || rc == NOXS_STATE_CLOSED);
    for (int i = 0; i < 1000 && noxs_dev_peer_state(d) != NOXS_STATE_CLOSED;
         i++)
        noxs_dev_wait(d, 10);
    CHILD_CHECK(noxs_dev_peer_state(d) == NOXS_STATE_CLOSED);
    noxs_frontend_close(f);
}

START_TEST(close_times_out)
{
    struct env e;
    noxs_dev *d;
    pid_t pid;

    d = env_console(&e, guest_silent, &pid);
    ck_assert_int_eq(noxs_dev_wait_state(d, NOXS_STATE_CONNECTED, TMO),
                     NOXS_STATE_CONNECTED);
    errno = 0;
    ck_assert_int_eq(noxs_i_dev_backend_close(d, 100), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_int_eq(noxs_dev_state(d), NOXS_STATE_CLOSED);
    env_finish(&e, d, pid);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Many domains in one process                                         */

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;

    if (!dir)
        return -1;
    while (readdir(dir))
        n++;
    closedir(dir);
    return n;
}

#define MANY 100

static void guest_many(struct env *e)
{
    noxs_frontend *f[MANY];
    int before = count_fds();

    for (int i = 0; i < MANY; i++) {
        set_domid(10 + (unsigned int)i);
        f[i] = noxs_frontend_open(&e[i].boot);
        CHILD_CHECK(f[i] != NULL);
        CHILD_CHECK(noxs_frontend_domid(f[i]) == 10 + i);
        noxs_dev *d = noxs_frontend_attach(f[i], NOXS_DEV_SYSCTL, 0);
        CHILD_CHECK(d != NULL);
        noxs_dev_set_state(d, NOXS_STATE_CONNECTED);
        CHILD_CHECK(noxs_dev_publish(d) == 0);
    }
    int used = count_fds() - before;
    fprintf(stderr, "%d frontends: %d fds\n", MANY, used);
    CHILD_CHECK(used <= 2 * MANY);
    for (int i = 0; i < MANY; i++)
        CHILD_CHECK(noxs_frontend_close(f[i]) == 0);
    /* (The simulator may keep a descriptor or two per process.) */
    CHILD_CHECK(count_fds() <= before + 2);
}

START_TEST(many_domains_one_process)
{
    struct env *e = calloc(MANY, sizeof(*e));
    noxs_dev *d[MANY];
    pid_t pid;

    env_open(&e[0]);
    for (int i = 0; i < MANY; i++) {
        e[i].gs = e[0].gs;
        e[i].xce = e[0].xce;
        env_add_domain(&e[i], (uint16_t)(10 + i), (uint16_t)(10 + i));
        d[i] = env_backend(&e[i], NOXS_DEV_SYSCTL, 0);
        env_list(&e[i], d[i], 0);
    }
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        guest_many(e);
        _exit(0);
    }
    for (int i = 0; i < MANY; i++)
        ck_assert_int_eq(
            noxs_dev_wait_state(d[i], NOXS_STATE_CONNECTED, TMO) >=
                (int)NOXS_STATE_CONNECTED,
            1);
    reap(pid);
    for (int i = 0; i < MANY; i++) {
        noxs_i_dev_free(d[i]);
        xengntshr_unshare(e[i].gs, e[i].devpage, 1);
    }
    e[0].devpage = NULL;
    env_close(&e[0]);
    free(e);
}
END_TEST

static Suite *dev_suite(void)
{
    return check_suite("dev", "sim", NULL, NULL, 120,
                       CHECK_TESTS(handshake, pingpong, hostile_frontend,
                                   wait_rides_out_torn_half, devpage_readonly,
                                   identity_mismatch, page_for_other_domain,
                                   timeouts, close_times_out,
                                   many_domains_one_process));
}

CHECK_MAIN(dev_suite)
