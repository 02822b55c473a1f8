/*
 * noxs_dev: one side of a device's control page, for either role.
 *
 * Our half lives in d->own, the authoritative copy: setters stage changes
 * there and noxs_dev_publish() writes the whole half under its seqlock
 * and notifies the peer. We never read our own half back from the page,
 * because the peer maps the whole page writable (the backend owns the
 * memory, the frontend maps it read-write) and could scribble it.
 *
 * The peer's half is only ever used through d->peer, a snapshot that
 * noxs_dev_refresh() took under the seqlock and validated; a refresh that
 * fails (EBUSY, EPROTO) leaves the previous snapshot in place.
 *
 * Waiting. Measured on 2-core VMs, a cross-process wake-up through the
 * kernel costs ~25 us per round trip and spinning on a shared word ~0.6
 * us, and a handshake answer usually comes within a few microseconds. So
 * noxs_dev_wait() first checks the peer's generation word, then spins on
 * it for a bounded time (NOXS_SPIN_NS, yielding the CPU between batches
 * so a busy machine runs the peer instead of us, and skipping the spin
 * altogether while recent spins kept missing), then sleeps in poll() on
 * the event-channel fd, consuming and unmasking one event at a time and
 * re-checking the page after each, until the generation moves or the
 * monotonic deadline passes.
 *
 * Several devices of one domain share one xenevtchn handle (the
 * frontend's, or the backend's). A wait may therefore consume an event
 * meant for another port of the same handle. That is safe by design:
 * notifications carry no data and every waiter re-reads the page before
 * it blocks, so a consumed event can delay nobody who checks the page
 * first. Code that instead polls the shared fd and dispatches by port
 * (the backend loop) can ask to be told about such ports with
 * noxs_i_dev_set_stray().
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "private.h"
#include "common/parse.h"
#include "common/spin.h"

/* Spin budget before sleeping on the event channel. */
#define NOXS_SPIN_NS 30000
/* Pauses between clock reads / yields while spinning. */
#define NOXS_SPIN_BATCH 64
/* After this many fruitless spins in a row, only every SPIN_RETRY-th
 * wait spins (the peer is slow: a person, a disk, a descheduled vCPU). */
#define NOXS_SPIN_MISS_LIMIT 8u
#define NOXS_SPIN_RETRY 16u

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t noxs_i_now_ms(void)
{
    return now_ns() / 1000000;
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : noxs_i_now_ms() + timeout_ms;
}

/* Milliseconds left before deadline (-1: none), for poll(). */
static int remaining_ms(int64_t deadline_ms)
{
    int64_t left;

    if (deadline_ms < 0)
        return -1;
    left = deadline_ms - noxs_i_now_ms();
    if (left <= 0)
        return 0;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

int noxs_i_evtchn_wait_one(xenevtchn_handle *xce, int64_t deadline_ms)
{
    struct pollfd pfd;
    int rc, port;

    pfd.fd = xenevtchn_fd(xce);
    pfd.events = POLLIN;
    pfd.revents = 0;
    rc = poll(&pfd, 1, remaining_ms(deadline_ms));
    if (rc < 0)
        return errno == EINTR ? 0 : -1;
    if (rc == 0)
        return 0;
    if (!(pfd.revents & POLLIN)) {
        errno = EPIPE;
        return -1;
    }
    /* libxenevtchn: poll before every pending(), which may block. */
    port = xenevtchn_pending(xce);
    if (port < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    if (xenevtchn_unmask(xce, (evtchn_port_t)port) < 0)
        return -1;
    return port;
}

/* ------------------------------------------------------------------ */
/* Construction and teardown                                           */

static noxs_dev *dev_alloc(void)
{
    noxs_dev *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->own_value = malloc(NOXS_CTRL_VALUE_MAX + 1);
    if (!d->own_value) {
        free(d);
        errno = ENOMEM;
        return NULL;
    }
    return d;
}

static void backend_fill(noxs_dev *d, xenevtchn_handle *xce, uint32_t port,
                         uint32_t gref, uint16_t self_domid,
                         uint16_t frontend_domid, unsigned int type,
                         uint32_t devid)
{
    d->role = NOXS_I_ROLE_BACKEND;
    d->own_half = NOXS_CTRL_BACKEND;
    d->peer_half = NOXS_CTRL_FRONTEND;
    d->xce = xce;
    d->port = port;
    d->gref = gref;
    d->backend_domid = self_domid;
    d->frontend_domid = frontend_domid;
    d->type = type;
    d->devid = devid;
    d->own.magic = NOXS_CTRLPAGE_MAGIC;
    d->own.version = NOXS_ABI_VERSION;
    d->own.type = (uint16_t)type;
    d->own.devid = devid;
    d->own.backend_domid = self_domid;
    d->own.frontend_domid = frontend_domid;
    d->own.state = NOXS_STATE_INITIALISING;
    d->own.nr_ports = 1;
    d->own.ports[0] = port;
}

noxs_dev *noxs_i_dev_backend_new(xengntshr_handle *gs, xenevtchn_handle *xce,
                                 uint16_t self_domid, uint16_t frontend_domid,
                                 unsigned int type, uint32_t devid)
{
    noxs_dev *d;
    uint32_t gref = 0;
    int port, saved;

    if (!gs || !xce || type < 1 || type > NOXS_DEV_TYPE_MAX ||
        self_domid > NOXS_DOMID_MAX || frontend_domid > NOXS_DOMID_MAX) {
        errno = EINVAL;
        return NULL;
    }
    d = dev_alloc();
    if (!d)
        return NULL;
    d->page = xengntshr_share_pages(gs, frontend_domid, 1, &gref, 1);
    if (!d->page) {
        saved = errno;
        noxs_i_err("noxs: sharing a control page with domain %u: %s",
                   frontend_domid, strerror(saved));
        goto fail;
    }
    /* Not yet known to anyone: the frontend learns the ref only from the
     * device page entry written after we publish. */
    memset(d->page, 0, NOXS_PAGE_SIZE);
    port = xenevtchn_bind_unbound_port(xce, frontend_domid);
    if (port < 0) {
        saved = errno;
        noxs_i_err("noxs: unbound port for domain %u: %s", frontend_domid,
                   strerror(saved));
        xengntshr_unshare(gs, d->page, 1);
        goto fail;
    }
    d->gs = gs;
    backend_fill(d, xce, (uint32_t)port, gref, self_domid, frontend_domid,
                 type, devid);
    return d;

fail:
    free(d->own_value);
    free(d);
    errno = saved;
    return NULL;
}

noxs_dev *noxs_i_dev_backend_wrap(xenevtchn_handle *xce, void *page,
                                  uint32_t gref, uint32_t port,
                                  uint16_t self_domid, uint16_t frontend_domid,
                                  unsigned int type, uint32_t devid,
                                  const struct noxs_ctrl_half *own)
{
    noxs_dev *d;

    if (!xce || !page || type < 1 || type > NOXS_DEV_TYPE_MAX ||
        self_domid > NOXS_DOMID_MAX || frontend_domid > NOXS_DOMID_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if ((d = dev_alloc()) == NULL)
        return NULL;
    d->page = page;
    d->file_page = true;
    backend_fill(d, xce, port, gref, self_domid, frontend_domid, type, devid);
    if (own)
        d->own = *own;
    return d;
}

void noxs_i_dev_free(noxs_dev *d)
{
    int saved = errno;

    if (!d)
        return;
    if (d->frontend)
        noxs_i_frontend_forget(d->frontend, d);
    /* The liveness page first, while its notify port is still bound;
     * a backend that lets go says so on the page too. */
    noxs_i_liveness_end(d, true);
    if (d->port)
        xenevtchn_unbind(d->xce, d->port);
    if (d->page) {
        if (d->file_page)
            munmap(d->page, NOXS_PAGE_SIZE);
        else if (d->role == NOXS_I_ROLE_BACKEND)
            xengntshr_unshare(d->gs, d->page, 1);
        else
            xengnttab_unmap(d->gt, d->page, 1);
    }
    free(d->own_value);
    free(d);
    errno = saved;
}

void noxs_i_dev_forget(noxs_dev *d)
{
    int saved = errno;

    if (!d)
        return;
    /* Our liveness byte stays set: the next instance maps it again. */
    noxs_i_liveness_end(d, false);
    if (d->page && d->file_page)
        munmap(d->page, NOXS_PAGE_SIZE);
    free(d->own_value);
    free(d);
    errno = saved;
}

void noxs_i_dev_set_stray(noxs_dev *d, noxs_i_stray_fn *fn, void *arg)
{
    d->stray = fn;
    d->stray_arg = arg;
}

/* ------------------------------------------------------------------ */
/* Identity                                                            */

NOXS_EXPORT uint16_t noxs_dev_frontend_domid(const noxs_dev *d)
{
    return d->frontend_domid;
}

NOXS_EXPORT uint16_t noxs_dev_backend_domid(const noxs_dev *d)
{
    return d->backend_domid;
}

NOXS_EXPORT unsigned int noxs_dev_type(const noxs_dev *d)
{
    return d->type;
}

NOXS_EXPORT uint32_t noxs_dev_id(const noxs_dev *d)
{
    return d->devid;
}

NOXS_EXPORT uint32_t noxs_dev_port(const noxs_dev *d)
{
    return d->port;
}

NOXS_EXPORT uint32_t noxs_dev_gref(const noxs_dev *d)
{
    return d->gref;
}

NOXS_EXPORT void noxs_dev_set_user(noxs_dev *d, void *user)
{
    d->user = user;
}

NOXS_EXPORT void *noxs_dev_user(const noxs_dev *d)
{
    return d->user;
}

/* ------------------------------------------------------------------ */
/* Our half                                                            */

NOXS_EXPORT int noxs_dev_set_kv(noxs_dev *d, const char *key,
                                const char *value)
{
    size_t len;

    if (!value) {
        errno = EINVAL;
        return -1;
    }
    len = strnlen(value, NOXS_CTRL_VALUE_MAX + 1);
    if (len > NOXS_CTRL_VALUE_MAX) {
        errno = E2BIG;
        return -1;
    }
    if (noxs_kv_set(&d->own, key, value, len) < 0)
        return -1;
    d->own.features |= NOXS_FEATURE_KV;
    return 0;
}

NOXS_EXPORT int noxs_dev_del_kv(noxs_dev *d, const char *key)
{
    return noxs_kv_del(&d->own, key);
}

NOXS_EXPORT const char *noxs_dev_get_own_kv(const noxs_dev *d,
                                            const char *key)
{
    if (noxs_kv_get(&d->own, key, d->own_value, NOXS_CTRL_VALUE_MAX + 1) < 0)
        return NULL;
    return d->own_value;
}

/*
 * vals[0..n) into the array dst of cap entries (the rest zeroed) and n
 * into *count, each value in lo..hi: 0, or -1 with errno E2BIG (n > cap)
 * or EINVAL.
 */
static int set_u32s(uint32_t *dst, size_t cap, uint32_t *count,
                    const uint32_t *vals, unsigned int n, uint32_t lo,
                    uint32_t hi)
{
    if (n > cap) {
        errno = E2BIG;
        return -1;
    }
    for (unsigned int i = 0; i < n; i++) {
        if (vals[i] < lo || vals[i] > hi) {
            errno = EINVAL;
            return -1;
        }
    }
    memset(dst, 0, cap * sizeof(dst[0]));
    if (n)
        memcpy(dst, vals, n * sizeof(vals[0]));
    *count = n;
    return 0;
}

NOXS_EXPORT int noxs_dev_set_refs(noxs_dev *d, const uint32_t *refs,
                                  unsigned int n)
{
    return set_u32s(d->own.refs, NOXS_CTRL_MAX_REFS, &d->own.nr_refs, refs, n,
                    NOXS_GREF_MIN, UINT32_MAX);
}

NOXS_EXPORT int noxs_dev_set_ports(noxs_dev *d, const uint32_t *ports,
                                   unsigned int n)
{
    return set_u32s(d->own.ports, NOXS_CTRL_MAX_PORTS, &d->own.nr_ports,
                    ports, n, 1, NOXS_PORT_MAX);
}

NOXS_EXPORT void noxs_dev_set_features(noxs_dev *d, uint64_t features)
{
    d->own.features = features;
}

NOXS_EXPORT void noxs_dev_set_state(noxs_dev *d, unsigned int state)
{
    /* A published half must carry a state in 1..8; ignore anything else
     * rather than publish a half the peer would reject. */
    if (state < NOXS_STATE_INITIALISING || state > NOXS_STATE_MAX) {
        noxs_i_warn("noxs: ignoring invalid state %u", state);
        return;
    }
    d->own.state = state;
}

NOXS_EXPORT unsigned int noxs_dev_state(const noxs_dev *d)
{
    return d->own.state;
}

NOXS_EXPORT int noxs_dev_notify(noxs_dev *d)
{
    return xenevtchn_notify(d->xce, d->port);
}

NOXS_EXPORT int noxs_dev_publish(noxs_dev *d)
{
    noxs_ctrl_half_write(d->page, d->own_half, &d->own);
    /* What a restarted backend resumes from (never read back from the
     * page, which the peer can write). */
    if (d->mirror)
        memcpy(d->mirror, &d->own, sizeof(d->own));
    return noxs_dev_notify(d);
}

/* ------------------------------------------------------------------ */
/* The peer's half                                                     */

NOXS_EXPORT int noxs_dev_refresh(noxs_dev *d)
{
    struct noxs_ctrl_half snap;
    int changed;

    if (noxs_ctrl_half_snapshot(d->page, d->peer_half, &snap) < 0)
        return -1;
    /* The frontend re-checks the device identity on every snapshot: the
     * backend may not turn the page into another device under us. */
    if (d->role == NOXS_I_ROLE_FRONTEND &&
        (snap.type != d->type || snap.devid != d->devid ||
         snap.backend_domid != d->backend_domid ||
         snap.frontend_domid != d->frontend_domid)) {
        errno = EPROTO;
        return -1;
    }
    changed = snap.generation != d->peer_generation_seen;
    d->peer = snap;
    d->peer_valid = true;
    d->peer_generation_seen = snap.generation;
    return changed;
}

NOXS_EXPORT unsigned int noxs_dev_peer_state(const noxs_dev *d)
{
    return d->peer_valid ? d->peer.state : NOXS_STATE_UNKNOWN;
}

NOXS_EXPORT uint32_t noxs_dev_peer_generation(const noxs_dev *d)
{
    return d->peer_generation_seen;
}

NOXS_EXPORT uint64_t noxs_dev_peer_features(const noxs_dev *d)
{
    return d->peer_valid ? d->peer.features : 0;
}

NOXS_EXPORT int noxs_dev_peer_kv(const noxs_dev *d, const char *key,
                                 char *buf, size_t len)
{
    if (!d->peer_valid) {
        errno = ENOENT;
        return -1;
    }
    return noxs_kv_get(&d->peer, key, buf, len);
}

NOXS_EXPORT unsigned int noxs_dev_peer_refs(const noxs_dev *d, uint32_t *refs,
                                            unsigned int max)
{
    unsigned int n = d->peer_valid ? d->peer.nr_refs : 0;

    for (unsigned int i = 0; i < n && i < max; i++)
        refs[i] = d->peer.refs[i];
    return n;
}

NOXS_EXPORT unsigned int noxs_dev_peer_ports(const noxs_dev *d,
                                             uint32_t *ports, unsigned int max)
{
    unsigned int n = d->peer_valid ? d->peer.nr_ports : 0;

    for (unsigned int i = 0; i < n && i < max; i++)
        ports[i] = d->peer.ports[i];
    return n;
}

NOXS_EXPORT int noxs_dev_peer_kv_foreach(const noxs_dev *d,
                                         int (*fn)(const char *key,
                                                   const char *value,
                                                   size_t value_len,
                                                   void *arg),
                                         void *arg)
{
    if (!d->peer_valid)
        return 0;
    return noxs_kv_foreach(&d->peer, fn, arg);
}

/* ------------------------------------------------------------------ */
/* Waiting                                                             */

static bool peer_moved(const noxs_dev *d)
{
    return noxs_ctrl_half_peek_generation(d->page, d->peer_half) !=
           d->peer_generation_seen;
}

/*
 * Spin budget in ns: NOXS_SPIN_NS, or $NOXS_SPIN_US (0 disables spinning;
 * for measurements), read once.
 */
static int64_t spin_budget_ns(void)
{
    static int64_t budget = -1;
    int64_t b = __atomic_load_n(&budget, __ATOMIC_RELAXED);

    if (b < 0) {
        const char *env = getenv("NOXS_SPIN_US");
        int saved = errno;
        uint64_t us;

        b = NOXS_SPIN_NS;
        if (env && *env && parse_u64(env, 0, 1000000, &us) == 0)
            b = (int64_t)us * 1000;
        errno = saved;
        __atomic_store_n(&budget, b, __ATOMIC_RELAXED);
    }
    return b;
}

static long online_cpus(void)
{
    static long n;

    if (__atomic_load_n(&n, __ATOMIC_RELAXED) == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        __atomic_store_n(&n, c > 0 ? c : 1, __ATOMIC_RELAXED);
    }
    return __atomic_load_n(&n, __ATOMIC_RELAXED);
}

/*
 * Spin on the peer's generation word for at most NOXS_SPIN_NS. Returns
 * true if it moved. sched_yield() between batches hands the CPU to the
 * peer when both share it (a busy or single-CPU machine) and costs a
 * syscall only when the CPU is otherwise idle.
 */
static bool spin_for_change(noxs_dev *d)
{
    int64_t start, budget = spin_budget_ns();

    if (budget == 0 || online_cpus() < 2)
        return false;
    if (d->spin_misses >= NOXS_SPIN_MISS_LIMIT &&
        (d->spin_misses++ % NOXS_SPIN_RETRY) != 0)
        return false;
    start = now_ns();
    do {
        for (int i = 0; i < NOXS_SPIN_BATCH; i++) {
            if (peer_moved(d)) {
                d->spin_misses = 0;
                return true;
            }
            cpu_relax();
        }
        sched_yield();
    } while (now_ns() - start < budget);
    if (d->spin_misses < NOXS_SPIN_MISS_LIMIT)
        d->spin_misses++;
    return false;
}

/*
 * A peer half that does not settle (EBUSY) is read again only after a
 * back-off (NOXS_TORN_MIN_MS doubling to NOXS_TORN_MAX_MS), not on each
 * of its notifications: a peer that keeps it torn and notifies in a loop
 * costs one bounded read per step. The wait fails with EBUSY only if the
 * half is still torn at the deadline (or at once for timeout 0).
 */
#define NOXS_TORN_MIN_MS 1
#define NOXS_TORN_MAX_MS 64

NOXS_EXPORT int noxs_dev_wait(noxs_dev *d, int timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms), retry_at = -1, wake;
    int torn_ms = 0;
    bool spun = false;

    for (;;) {
        if (retry_at < 0 || noxs_i_now_ms() >= retry_at) {
            if (peer_moved(d)) {
                int rc = noxs_dev_refresh(d);

                if (rc < 0 && errno == EBUSY && timeout_ms != 0 &&
                    (deadline < 0 || noxs_i_now_ms() < deadline)) {
                    torn_ms = torn_ms ? torn_ms * 2 : NOXS_TORN_MIN_MS;
                    if (torn_ms > NOXS_TORN_MAX_MS)
                        torn_ms = NOXS_TORN_MAX_MS;
                    retry_at = noxs_i_now_ms() + torn_ms;
                    spun = true; /* spinning on a torn half is no use */
                } else if (rc != 0) {
                    return rc; /* 1 changed, -1 EBUSY/EPROTO */
                } else {
                    retry_at = -1;
                }
            } else {
                retry_at = -1;
            }
        }
        if (timeout_ms == 0)
            return 0;
        if (!spun) {
            spun = true;
            if (spin_for_change(d))
                continue;
        }
        if (deadline >= 0 && noxs_i_now_ms() >= deadline) {
            if (retry_at < 0)
                return 0;
            retry_at = -1;
            timeout_ms = 0; /* one last read decides: EBUSY or not */
            continue;
        }
        wake = deadline;
        if (retry_at >= 0 && (wake < 0 || retry_at < wake))
            wake = retry_at;
        int port = noxs_i_evtchn_wait_one(d->xce, wake);
        if (port < 0)
            return -1;
        if (port > 0 && (uint32_t)port != d->port && d->stray)
            d->stray(d->stray_arg, (uint32_t)port);
    }
}

NOXS_EXPORT int noxs_dev_wait_state(noxs_dev *d, unsigned int min_state,
                                    int timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms);

    for (;;) {
        if ((!d->peer_valid || peer_moved(d)) && noxs_dev_refresh(d) < 0) {
            /* A torn half: noxs_dev_wait() retries it after a back-off. */
            if (errno != EBUSY || remaining_ms(deadline) == 0)
                return -1;
        } else {
            unsigned int s = noxs_dev_peer_state(d);
            /* Closing and Closed end any wait, except that a wait for
             * Closed goes on through Closing (the normal way there). */
            if (s >= min_state || s == NOXS_STATE_CLOSED ||
                (s == NOXS_STATE_CLOSING && min_state != NOXS_STATE_CLOSED))
                return (int)s;
        }
        int left = remaining_ms(deadline);
        if (left == 0)
            return 0;
        int rc = noxs_dev_wait(d, left);
        if (rc <= 0)
            return rc;
    }
}

/* ------------------------------------------------------------------ */
/* Removal                                                             */

int noxs_i_dev_backend_close(noxs_dev *d, int timeout_ms)
{
    int rc = 0, saved = 0;

    noxs_dev_set_state(d, NOXS_STATE_CLOSING);
    if (noxs_dev_publish(d) < 0)
        return -1;
    /* A malformed or torn frontend half just means we do not wait. */
    if (noxs_dev_refresh(d) >= 0) {
        unsigned int fs = noxs_dev_peer_state(d);

        if (fs != NOXS_STATE_UNKNOWN && fs != NOXS_STATE_CLOSED) {
            int w = noxs_dev_wait_state(d, NOXS_STATE_CLOSING, timeout_ms);

            if (w == 0) {
                rc = -1;
                saved = ETIMEDOUT;
            }
        }
    }
    noxs_dev_set_state(d, NOXS_STATE_CLOSED);
    if (noxs_dev_publish(d) < 0)
        return -1;
    if (rc < 0)
        errno = saved;
    return rc;
}
