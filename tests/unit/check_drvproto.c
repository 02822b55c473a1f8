/*
 * check_drvproto: the driver protocol of libnoxs on the simulator: typed
 * reads of hostile keys, the backend's state walk (connect, a frontend
 * that starts over, one that dies, a connect that fails) and the
 * liveness page both ways.
 *
 * The test process acts as domain 0 and drives the walk directly
 * (bk_walk on a backend structure of its own, no noxsd); a forked child
 * is the guest and uses only the public frontend API. Linked with
 * libnoxs's objects, as check_dev is, for the internal calls.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include "check_main.h"
#include "simchild.h"
#include "../../libnoxs/backend.h"

#define GUEST 1
#define TMO 10000 /* ms: generous, only to end a broken test */

/* Domain 0 with a device page for GUEST listing one sysctl device. */
static noxs_dev *env_setup(struct env *e)
{
    noxs_dev *d;

    env_open(e);
    env_add_domain(e, GUEST, GUEST);
    d = noxs_i_dev_backend_new(e->gs, e->xce, 0, GUEST, NOXS_DEV_SYSCTL, 0);
    ck_assert_ptr_nonnull(d);
    noxs_dev_set_state(d, NOXS_STATE_INITWAIT);
    ck_assert_int_eq(noxs_dev_publish(d), 0);
    env_list(e, d, 0);
    return d;
}
static void env_end(struct env *e, noxs_dev *d)
{
    noxs_i_dev_free(d);
    env_close(e);
}

/* The guest process's frontend (one a process). */
static noxs_frontend *guest_f;

static noxs_dev *guest_attach(struct env *e)
{
    noxs_dev *d;

    guest_f = noxs_frontend_open(&e->boot);
    CHILD_CHECK(guest_f != NULL);
    d = noxs_frontend_attach_wait(guest_f, NOXS_DEV_SYSCTL, 0, TMO);
    CHILD_CHECK(d != NULL);
    return d;
}

static void guest_detach(noxs_dev *d)
{
    noxs_dev_detach(d);
    noxs_frontend_close(guest_f);
}

/* Wait for the peer's half to change, then return its state. */
static unsigned int next_state(noxs_dev *d)
{
    ck_assert_int_eq(noxs_dev_wait(d, TMO), 1);
    return noxs_dev_peer_state(d);
}

/* ------------------------------------------------------------------ */
/* Typed reads                                                         */

static const char *const hostile[][2] = {
    {"ok", "42"},
    {"zero", "0"},
    {"neg", "-1"},
    {"lead", "010"},
    {"plus", "+5"},
    {"space", " 5"},
    {"trail", "5 "},
    {"alpha", "12a"},
    {"hex", "0x10"},
    {"empty", ""},
    {"u32max", "4294967295"},
    {"u32over", "4294967296"},
    {"u64max", "18446744073709551615"},
    {"u64over", "18446744073709551616"},
    {"huge", "999999999999999999999999999999"},
    {"gref7", "7"},
    {"gref8", "8"},
    {"port0", "0"},
    {"portmax", "131071"},
    {"portover", "131072"},
};
#define NHOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static void guest_hostile(struct env *e)
{
    noxs_dev *d = guest_attach(e);

    for (size_t i = 0; i < NHOSTILE; i++)
        CHILD_CHECK(noxs_dev_set_kv(d, hostile[i][0], hostile[i][1]) == 0);
    noxs_dev_set_state(d, NOXS_STATE_INITIALISED);
    CHILD_CHECK(noxs_dev_publish(d) == 0);
    CHILD_CHECK(noxs_dev_wait_state(d, NOXS_STATE_CLOSED, TMO) ==
                NOXS_STATE_CLOSED);
    guest_detach(d);
}

/* errno of a failed read, 0 for success (then *v holds the value). */
static int u32(noxs_dev *d, const char *key, uint32_t min, uint32_t max,
               uint32_t *v)
{
    *v = 0xdeadbeef;
    if (noxs_dev_peer_u32(d, key, min, max, v) == 0)
        return 0;
    ck_assert_uint_eq(*v, 0xdeadbeef); /* untouched on failure */
    return errno;
}

START_TEST(typed_reads)
{
    struct env e;
    noxs_dev *d = env_setup(&e);
    pid_t pid = spawn(&e, guest_hostile);
    uint64_t v64;
    uint32_t v;

    ck_assert_int_eq(noxs_dev_wait_state(d, NOXS_STATE_INITIALISED, TMO),
                     NOXS_STATE_INITIALISED);
    ck_assert_int_eq(u32(d, "ok", 0, 100, &v), 0);
    ck_assert_uint_eq(v, 42);
    ck_assert_int_eq(u32(d, "ok", 43, 100, &v), ERANGE);
    ck_assert_int_eq(u32(d, "ok", 0, 41, &v), ERANGE);
    ck_assert_int_eq(u32(d, "zero", 0, 1, &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(u32(d, "missing", 0, 1, &v), ENOENT);
    /* Not plain decimal: refused, never read as something else. */
    ck_assert_int_eq(u32(d, "neg", 0, UINT32_MAX, &v), EINVAL);
    ck_assert_int_eq(u32(d, "lead", 0, UINT32_MAX, &v), EINVAL);
    ck_assert_int_eq(u32(d, "plus", 0, UINT32_MAX, &v), EINVAL);
    ck_assert_int_eq(u32(d, "space", 0, UINT32_MAX, &v), EINVAL);
    ck_assert_int_eq(u32(d, "trail", 0, UINT32_MAX, &v), EINVAL);
    ck_assert_int_eq(u32(d, "alpha", 0, UINT32_MAX, &v), EINVAL);
    ck_assert_int_eq(u32(d, "hex", 0, UINT32_MAX, &v), EINVAL);
    ck_assert_int_eq(u32(d, "empty", 0, UINT32_MAX, &v), EINVAL);
    /* Overflow: 32 bits, 64 bits and beyond. */
    ck_assert_int_eq(u32(d, "u32max", 0, UINT32_MAX, &v), 0);
    ck_assert_uint_eq(v, UINT32_MAX);
    ck_assert_int_eq(u32(d, "u32over", 0, UINT32_MAX, &v), ERANGE);
    ck_assert_int_eq(u32(d, "u64over", 0, UINT32_MAX, &v), ERANGE);
    ck_assert_int_eq(u32(d, "huge", 0, UINT32_MAX, &v), ERANGE);
    ck_assert_int_eq(noxs_dev_peer_u64(d, "u64max", 0, UINT64_MAX, &v64), 0);
    ck_assert(v64 == UINT64_MAX);
    ck_assert_int_eq(noxs_dev_peer_u64(d, "u64over", 0, UINT64_MAX, &v64),
                     -1);
    ck_assert_int_eq(errno, ERANGE);
    /* An empty range is the caller's mistake. */
    ck_assert_int_eq(u32(d, "ok", 2, 1, &v), EINVAL);
    /* Grant refs and ports have their own bounds. */
    ck_assert_int_eq(noxs_dev_peer_gref(d, "gref7", &v), -1);
    ck_assert_int_eq(errno, ERANGE);
    ck_assert_int_eq(noxs_dev_peer_gref(d, "gref8", &v), 0);
    ck_assert_uint_eq(v, 8);
    ck_assert_int_eq(noxs_dev_peer_gref(d, "u32max", &v), 0);
    ck_assert_int_eq(noxs_dev_peer_port(d, "port0", &v), -1);
    ck_assert_int_eq(errno, ERANGE);
    ck_assert_int_eq(noxs_dev_peer_port(d, "portmax", &v), 0);
    ck_assert_uint_eq(v, NOXS_PORT_MAX);
    ck_assert_int_eq(noxs_dev_peer_port(d, "portover", &v), -1);
    ck_assert_int_eq(errno, ERANGE);
    ck_assert_int_eq(noxs_dev_peer_port(d, "lead", &v), -1);
    ck_assert_int_eq(errno, EINVAL);

    ck_assert_int_eq(noxs_dev_switch_state(d, NOXS_STATE_CLOSED), 0);
    reap(pid);
    env_end(&e, d);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The walk                                                            */

struct calls {
    int connects, disconnects, last_why, fail_connect;
    /* At the last disconnect, the frontend could still see us alive:
     * what a driver answers on its way out reaches a live peer. */
    int alive_at_disconnect;
};

static int t_connect(noxs_backend *b, noxs_dev *d, const char **why,
                     void *arg)
{
    struct calls *c = arg;

    c->connects++;
    if (c->fail_connect) {
        *why = "bad ring-ref";
        return -EPROTO;
    }
    return 0;
}

static void t_disconnect(noxs_backend *b, noxs_dev *d, int why, void *arg)
{
    struct calls *c = arg;

    c->disconnects++;
    c->last_why = why;
    c->alive_at_disconnect =
        d->alive != NULL && d->alive[NOXS_LIVENESS_BACKEND] == 1;
}

static const struct noxs_backend_ops walk_ops = {
    .connect = t_connect,
    .disconnect = t_disconnect,
};

/* The guest: wait (bounded) for the backend's key; 0 once it is there. */
static int wait_peer_key(noxs_dev *d, const char *key)
{
    int64_t deadline = noxs_i_now_ms() + TMO;
    char v[8];

    while (noxs_dev_peer_kv(d, key, v, sizeof(v)) < 0) {
        if (noxs_i_now_ms() > deadline)
            return -1;
        noxs_dev_wait(d, 100);
    }
    return 0;
}

/*
 * The guest: connect with a liveness page, close, start a new session
 * on a new attachment, connect straight away, then die with its half
 * saying Connected.
 */
static void guest_walk(struct env *e)
{
    noxs_dev *d = guest_attach(e);

    CHILD_CHECK(noxs_dev_wait_peer(d, NOXS_STATE_INITWAIT, TMO) == 0);
    CHILD_CHECK(noxs_dev_liveness_start(d, 0) == 0);
    CHILD_CHECK(noxs_dev_get_own_kv(d, NOXS_LIVENESS_KEY) != NULL);
    CHILD_CHECK(noxs_dev_switch_state(d, NOXS_STATE_INITIALISED) == 0);
    CHILD_CHECK(noxs_dev_wait_peer(d, NOXS_STATE_CONNECTED, TMO) == 0);
    CHILD_CHECK(!noxs_dev_peer_gone(d));
    CHILD_CHECK(d->peer_seen_alive); /* mapped before Connected */
    CHILD_CHECK(noxs_dev_switch_state(d, NOXS_STATE_CONNECTED) == 0);
    /* Not before the backend has looked at our byte. */
    CHILD_CHECK(wait_peer_key(d, "go") == 0);
    CHILD_CHECK(noxs_dev_detach(d) == 0); /* Closed */
    /* A new session starts at Initialising; the backend, Closed, comes
     * back to InitWait (a wait for InitWait is not refused by it). */
    d = noxs_frontend_attach(guest_f, NOXS_DEV_SYSCTL, 0);
    CHILD_CHECK(d != NULL);
    /* (Once the backend followed us to Closed, so that it sees each.) */
    CHILD_CHECK(noxs_dev_wait_peer(d, NOXS_STATE_CLOSED, TMO) == 0);
    CHILD_CHECK(noxs_dev_publish(d) == 0);
    CHILD_CHECK(noxs_dev_wait_peer(d, NOXS_STATE_INITWAIT, TMO) == 0);
    CHILD_CHECK(noxs_dev_liveness_start(d, 0) == 0);
    CHILD_CHECK(noxs_dev_switch_state(d, NOXS_STATE_CONNECTED) == 0);
    CHILD_CHECK(noxs_dev_wait_peer(d, NOXS_STATE_CONNECTED, TMO) == 0);
    /* Die without closing: the grant layer clears our byte. */
    _exit(0);
}

/* Walk every change of the frontend's half until it is in state. */
static void walk_to(noxs_backend *b, struct bdev *x, unsigned int state)
{
    do {
        ck_assert_int_eq(noxs_dev_wait(x->d, TMO), 1);
        bk_walk(b, x, 1);
    } while (noxs_dev_peer_state(x->d) != state);
}

/* A fake backend for bk_walk: what the walk reads of it. */
static noxs_backend *fake_backend(struct calls *c)
{
    noxs_backend *b = calloc(1, sizeof(*b));

    ck_assert_ptr_nonnull(b);
    b->ops = &walk_ops;
    b->arg = c;
    return b;
}

static void fake_backend_free(noxs_backend *b)
{
    if (b->gt)
        xengnttab_close(b->gt);
    free(b);
}

/* One walk test: the device, a fake backend and the guest process. */
struct walkfix {
    struct env e;
    struct calls c;
    noxs_backend *b;
    struct bdev x;
    pid_t pid;
};

static noxs_dev *walk_begin(struct walkfix *w, int fail_connect,
                            void (*guest)(struct env *))
{
    memset(w, 0, sizeof(*w));
    w->c.fail_connect = fail_connect;
    w->x.d = env_setup(&w->e);
    w->b = fake_backend(&w->c);
    w->pid = spawn(&w->e, guest);
    return w->x.d;
}

static void walk_end(struct walkfix *w)
{
    if (w->pid > 0)
        reap(w->pid);
    fake_backend_free(w->b);
    env_end(&w->e, w->x.d);
}

/* The guest says Initialised: one walk of it. */
static void walk_initialised(struct walkfix *w)
{
    ck_assert_uint_eq(next_state(w->x.d), NOXS_STATE_INITIALISED);
    bk_walk(w->b, &w->x, 1);
}

/* The walk ended at Closed. */
static void walk_end_closed(struct walkfix *w)
{
    ck_assert_uint_eq(noxs_dev_state(w->x.d), NOXS_STATE_CLOSED);
    walk_end(w);
}

START_TEST(walk)
{
    struct walkfix w;
    noxs_dev *d = walk_begin(&w, 0, guest_walk);
    int64_t deadline;

    /* Initialised: connect, Connected, the liveness page mapped. */
    walk_initialised(&w);
    ck_assert_int_eq(w.c.connects, 1);
    ck_assert_int_eq(w.x.connected, 1);
    ck_assert_uint_eq(noxs_dev_state(d), NOXS_STATE_CONNECTED);
    ck_assert(d->alive != NULL);
    ck_assert_uint_eq(d->alive[NOXS_LIVENESS_BACKEND], 1);
    ck_assert_uint_eq(d->alive[NOXS_LIVENESS_FRONTEND], 1);
    /* Its Connected seen first: a later snapshot is the Closed one, never
     * a Connected read after its byte cleared (a death). Then the guest
     * may close (it waited, so that its byte was set above). */
    walk_to(w.b, &w.x, NOXS_STATE_CONNECTED);
    ck_assert_int_eq(noxs_dev_set_kv(d, "go", "1"), 0);
    ck_assert_int_eq(noxs_dev_publish(d), 0);
    /* Closed (through Connected, maybe unseen): the session ends. */
    walk_to(w.b, &w.x, NOXS_STATE_CLOSED);
    ck_assert_int_eq(w.c.connects, 1);
    ck_assert_int_eq(w.c.disconnects, 1);
    ck_assert_int_eq(w.c.last_why, 0);
    ck_assert_int_eq(w.c.alive_at_disconnect, 1);
    ck_assert_int_eq(w.x.connected, 0);
    ck_assert(d->alive == NULL);
    ck_assert_uint_eq(noxs_dev_state(d), NOXS_STATE_CLOSED);
    /* Initialising: InitWait again. */
    walk_to(w.b, &w.x, NOXS_STATE_INITIALISING);
    ck_assert_uint_eq(noxs_dev_state(d), NOXS_STATE_INITWAIT);
    ck_assert_int_eq(w.c.disconnects, 1);
    /* Connected straight away (sysctl-style): connect again. */
    walk_to(w.b, &w.x, NOXS_STATE_CONNECTED);
    ck_assert_int_eq(w.c.connects, 2);
    ck_assert_uint_eq(noxs_dev_state(d), NOXS_STATE_CONNECTED);
    ck_assert(d->alive != NULL);
    /* The guest dies: its byte clears, its half still says Connected. */
    reap(w.pid);
    w.pid = 0;
    deadline = noxs_i_now_ms() + TMO;
    while (noxs_dev_state(d) != NOXS_STATE_CLOSED &&
           noxs_i_now_ms() < deadline) {
        noxs_i_evtchn_wait_one(d->xce, noxs_i_now_ms() + 100);
        bk_walk(w.b, &w.x, noxs_dev_refresh(d) == 1);
    }
    ck_assert_uint_eq(noxs_dev_peer_state(d), NOXS_STATE_CONNECTED);
    ck_assert_uint_eq(noxs_dev_state(d), NOXS_STATE_CLOSED);
    ck_assert_int_eq(w.c.disconnects, 2);
    ck_assert_int_eq(w.c.last_why, ECONNRESET);
    ck_assert(d->alive == NULL);
    /* A stale Connected is no new session: no connect from Closed. */
    bk_walk(w.b, &w.x, 1);
    ck_assert_int_eq(w.c.connects, 2);
    walk_end_closed(&w);
}
END_TEST

static void guest_initialised(struct env *e)
{
    noxs_dev *d = guest_attach(e);
    char why[64];

    CHILD_CHECK(noxs_dev_switch_state(d, NOXS_STATE_INITIALISED) == 0);
    /* The backend refuses: Closing with its reason, which ends a wait
     * for Connected. */
    CHILD_FAILS(noxs_dev_wait_peer(d, NOXS_STATE_CONNECTED, TMO), ECONNREFUSED);
    CHILD_CHECK(noxs_dev_peer_state(d) == NOXS_STATE_CLOSING);
    CHILD_CHECK(noxs_dev_peer_kv(d, "error", why, sizeof(why)) > 0);
    CHILD_CHECK(strcmp(why, "bad ring-ref") == 0);
    CHILD_CHECK(noxs_dev_peer_gone(d));
    CHILD_CHECK(noxs_dev_switch_state(d, NOXS_STATE_CLOSED) == 0);
    guest_detach(d);
}

START_TEST(walk_connect_fails)
{
    struct walkfix w;
    noxs_dev *d = walk_begin(&w, 1, guest_initialised);

    walk_initialised(&w);
    ck_assert_int_eq(w.c.connects, 1);
    ck_assert_int_eq(w.x.connected, 0);
    ck_assert_uint_eq(noxs_dev_state(d), NOXS_STATE_CLOSING);
    ck_assert_str_eq(noxs_dev_get_own_kv(d, "error"), "bad ring-ref");
    ck_assert_uint_eq(next_state(d), NOXS_STATE_CLOSED);
    bk_walk(w.b, &w.x, 1);
    ck_assert_int_eq(w.c.disconnects, 0); /* never connected */
    walk_end_closed(&w);
}
END_TEST

/* The frontend sees the backend die through the liveness page. */
static void guest_sees_death(struct env *e)
{
    noxs_dev *d = guest_attach(e);
    int i;

    CHILD_CHECK(noxs_dev_liveness_start(d, 0) == 0);
    CHILD_CHECK(noxs_dev_switch_state(d, NOXS_STATE_INITIALISED) == 0);
    CHILD_CHECK(noxs_dev_wait_peer(d, NOXS_STATE_CONNECTED, TMO) == 0);
    CHILD_CHECK(noxs_dev_switch_state(d, NOXS_STATE_CONNECTED) == 0);
    for (i = 0; i < TMO / 10 && !noxs_dev_peer_gone(d); i++)
        noxs_dev_wait(d, 10);
    CHILD_CHECK(noxs_dev_peer_gone(d));
    /* Its half still says Connected: only the page told us. */
    CHILD_CHECK(noxs_dev_peer_state(d) == NOXS_STATE_CONNECTED);
    CHILD_FAILS(noxs_dev_wait_peer(d, NOXS_STATE_CLOSED, 0), ECONNREFUSED);
    guest_detach(d);
}

START_TEST(frontend_sees_backend_death)
{
    struct walkfix w;
    noxs_dev *d = walk_begin(&w, 0, guest_sees_death);

    walk_initialised(&w);
    ck_assert(d->alive != NULL);
    ck_assert_uint_eq(next_state(d), NOXS_STATE_CONNECTED);
    /* Our mapping ends as at our death (an unmap notification). */
    noxs_i_liveness_end(d, false);
    walk_end(&w);
}
END_TEST

static Suite *drvproto_suite(void)
{
    return check_suite("drvproto", "sim", NULL, NULL, 120,
                       CHECK_TESTS(typed_reads, walk, walk_connect_fails,
                                   frontend_sees_backend_death));
}

CHECK_MAIN(drvproto_suite)
