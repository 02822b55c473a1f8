/*
 * The backend side of libnoxs: registration with noxsd, device creation
 * and removal on noxsd's behalf, event dispatch, and surviving noxsd
 * restarts.
 *
 * One xengntshr handle (every control page) and one xenevtchn handle
 * (every device's port) per backend. noxs_backend_fd() is an epoll fd over
 *   - the noxsd socket (requests: BACKEND_CREATE/REMOVE/CONTROL),
 *   - the event channel fd (a frontend changed its half),
 *   - an eventfd raised when a wait inside a driver consumed an event
 *     meant for another of our devices ("stray" events, see noxs.h), and
 *   - a timerfd that paces reconnection attempts while noxsd is away,
 *   - a timerfd for the deadlines of devices being closed,
 *   - a timerfd for devices whose half was torn (see below), and
 *   - a timerfd for state reports held back by the rate limit.
 *
 * A removal never blocks the loop: the device publishes Closing and stays
 * on a closing list (its events still reach us) until the frontend
 * follows to Closing/Closed, its half turns unreadable, or the deadline
 * (BACKEND_CLOSE_TIMEOUT_MS) passes; then it publishes Closed and noxsd
 * gets its answer. A frontend that never closes costs its own removal
 * two seconds, not every other device of the backend.
 *
 * noxsd is not on the data path: when its socket drops, devices keep
 * working (their events are still dispatched) and we reconnect with
 * exponential backoff, re-register and send the list of live devices
 * (BACKEND_SYNC); noxsd keeps those it knows and asks us to remove the
 * rest. Control requests deferred by a driver carry a library-local id,
 * so a late answer from before a reconnection is dropped rather than
 * delivered to a new noxsd that may reuse the request id.
 *
 * Nor does the loop ever wait for noxsd: the socket is non-blocking. An
 * answer that does not fit is queued in order and sent when the socket
 * turns writable; while BACKEND_TXQ_MAX answers wait, we stop reading
 * requests, so the queue stays bounded by what noxsd asked for. State
 * reports are not queued as messages: a device that changed is marked,
 * and the mark is turned into one BACKEND_STATE with the device's state
 * of that moment when the socket has room (after the queued answers) and
 * the device's rate limit allows (a burst of BACKEND_REPORT_BURST, then
 * one per BACKEND_REPORT_INTERVAL_MS). Only the latest state of a device
 * matters to noxsd, so a guest flipping states as fast as it can costs
 * noxsd and its watchers a few dozen events a second, a stopped noxsd
 * costs at most one pending report per device, and the final state is
 * always delivered.
 *
 * A frontend half that does not settle (the seqlock read fails with
 * EBUSY) is not read again on its next notification: the device is
 * deferred to a timer with exponential back-off (BACKEND_TORN_MIN_MS up
 * to BACKEND_TORN_MAX_MS), and its event-channel port stays masked
 * until then, so a guest that leaves its half torn and notifies in a
 * loop costs one event and one bounded read attempt per back-off step,
 * not one per notification, and never delays the other devices. Its last valid
 * snapshot stays in force; a half torn for longer than the longest step
 * is logged once and then read once per BACKEND_TORN_MAX_MS until it
 * settles or the toolstack removes the device.
 *
 * Restarts of the backend itself. For a driver that opens with
 * NOXS_BACKEND_RESUMABLE, under a service manager with a file descriptor
 * store ($NOTIFY_SOCKET set, see "The fd store" below), the
 * control pages are allocated on the gntalloc file (as noxsd's keeper
 * does: IOCTL_GNTALLOC_ALLOC_GREF on xengntshr_fd(), never deallocated
 * while the device lives), so they live as long as that file, not as
 * long as this process. That file, the event-channel file (ports stay
 * bound while it is open) and a memfd describing every device are put in
 * the store; a backend started with them in $LISTEN_FDS maps the pages
 * again, rebuilds its event-channel handle with xenevtchn_fdopen() and
 * resumes every device in the state it was in, with our half as last
 * published. The frontend sees nothing. Without a store, the pages are
 * shared through libxengnttab and close with the process, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <xen/gntalloc.h>

#include "private.h"
#include "common/parse.h"
#include "proto.h"
#include "svc.h"

#include "backend.h"

/* Handles of a closed backend whose files live on in the fd store. */
static xenevtchn_handle *volatile kept_xce;
static xengntshr_handle *volatile kept_gs;

/* epoll tags */
int bk_tag_sock, bk_tag_evtchn, bk_tag_timer, bk_tag_stray, bk_tag_close,
    bk_tag_torn, bk_tag_report;

/* ---------------------------------------------------------------- */
/* Device bookkeeping                                                */

static unsigned int hash_key(uint16_t domid, unsigned int type, uint32_t devid)
{
    uint32_t h = (uint32_t)domid * 2654435761u ^ type * 40503u ^
                 devid * 2246822519u;
    return (h ^ (h >> 15)) % BACKEND_HASH;
}

struct bdev *bk_find_dev(noxs_backend *b, uint16_t domid,
                         unsigned int type, uint32_t devid)
{
    struct bdev *x;

    for (x = b->hash[hash_key(domid, type, devid)]; x; x = x->hnext)
        if (noxs_dev_frontend_domid(x->d) == domid &&
            noxs_dev_type(x->d) == type && noxs_dev_id(x->d) == devid)
            return x;
    return NULL;
}

struct bdev *bk_by_port(noxs_backend *b, uint32_t port)
{
    return port < b->nports ? b->by_port[port] : NULL;
}

static void mark_dirty(noxs_backend *b, struct bdev *x)
{
    uint64_t one = 1;

    if (x->dirty)
        return;
    x->dirty = 1;
    x->dirty_next = b->dirty;
    b->dirty = x;
    if (write(b->strayfd, &one, sizeof(one)) < 0) {
        /* The counter is saturated: it is readable anyway. */
    }
}

static void stray(void *arg, uint32_t port)
{
    noxs_backend *b = arg;
    struct bdev *x = bk_by_port(b, port);

    if (x)
        mark_dirty(b, x);
}

int bk_add_dev(noxs_backend *b, noxs_dev *d)
{
    uint32_t port = noxs_dev_port(d);
    struct bdev *x;
    unsigned int h;

    if (port >= b->nports) {
        size_t n = b->nports ? b->nports : 64;
        struct bdev **p;

        while (n <= port)
            n *= 2;
        if ((p = realloc(b->by_port, n * sizeof(*p))) == NULL)
            return -ENOMEM;
        memset(p + b->nports, 0, (n - b->nports) * sizeof(*p));
        b->by_port = p;
        b->nports = n;
    }
    if ((x = calloc(1, sizeof(*x))) == NULL)
        return -ENOMEM;
    x->d = d;
    x->tokens = BACKEND_REPORT_BURST;
    x->tokens_ms = noxs_i_now_ms();
    h = hash_key(noxs_dev_frontend_domid(d), noxs_dev_type(d), noxs_dev_id(d));
    x->hnext = b->hash[h];
    b->hash[h] = x;
    x->next = b->all;
    if (b->all)
        b->all->prev = x;
    b->all = x;
    b->by_port[port] = x;
    d->backend = b;
    noxs_i_dev_set_stray(d, stray, b);
    return 0;
}

/* Off the list of live devices. */
static void unlink_live(noxs_backend *b, struct bdev *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        b->all = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
}

/* Off the list of devices with events to look at. */
static void unlink_dirty(noxs_backend *b, struct bdev *x)
{
    struct bdev **pp;

    for (pp = &b->dirty; *pp; pp = &(*pp)->dirty_next)
        if (*pp == x) {
            *pp = x->dirty_next;
            break;
        }
    x->dirty = 0;
}

/* Off the list of devices waiting out a torn half. */
static void unlink_torn(noxs_backend *b, struct bdev *x)
{
    struct bdev **pp;

    if (x->masked) {
        x->masked = 0;
        xenevtchn_unmask(b->xce, (evtchn_port_t)noxs_dev_port(x->d));
    }
    if (!x->torn_ms)
        return;
    for (pp = &b->torn; *pp; pp = &(*pp)->tnext)
        if (*pp == x) {
            *pp = x->tnext;
            break;
        }
    x->torn_ms = 0;
    x->torn_until = 0;
}

/* Off the list of devices with a report to send. */
void bk_unlink_report(noxs_backend *b, struct bdev *x)
{
    struct bdev **pp;

    if (!x->report_pending)
        return;
    for (pp = &b->reports; *pp; pp = &(*pp)->rnext)
        if (*pp == x) {
            *pp = x->rnext;
            break;
        }
    x->report_pending = 0;
}

void bk_del_dev(noxs_backend *b, struct bdev *x)
{
    struct bdev **pp;
    unsigned int h = hash_key(noxs_dev_frontend_domid(x->d),
                              noxs_dev_type(x->d), noxs_dev_id(x->d));

    for (pp = &b->hash[h]; *pp; pp = &(*pp)->hnext)
        if (*pp == x) {
            *pp = x->hnext;
            break;
        }
    unlink_dirty(b, x);
    unlink_torn(b, x);
    bk_unlink_report(b, x);
    if (!x->closing) {
        unlink_live(b, x);
    } else {
        for (pp = &b->closing; *pp; pp = &(*pp)->cnext)
            if (*pp == x) {
                *pp = x->cnext;
                break;
            }
    }
    if (bk_by_port(b, noxs_dev_port(x->d)) == x)
        b->by_port[noxs_dev_port(x->d)] = NULL;
    free(x);
}

/* Arm the close timer for the earliest deadline on the closing list. */
static void arm_close(noxs_backend *b)
{
    int64_t first = -1;
    struct bdev *x;

    for (x = b->closing; x; x = x->cnext)
        if (first < 0 || x->close_deadline < first)
            first = x->close_deadline;
    bk_arm_timer(b->closefd, first);
}

/* The end of a removal: Closed, the final states, the answer, free. */
void bk_finish_close(noxs_backend *b, struct bdev *x, int timed_out)
{
    noxs_dev *d = x->d;
    struct brec *rec;

    if (timed_out)
        noxs_i_info("noxs backend: domain %u did not close device %u/%u "
                    "in time",
                    noxs_dev_frontend_domid(d), noxs_dev_type(d),
                    noxs_dev_id(d));
    noxs_dev_set_state(d, NOXS_STATE_CLOSED);
    if (noxs_dev_publish(d) < 0)
        noxs_i_debug("noxs backend: domain %u device %u/%u: publish "
                     "Closed: %s",
                     noxs_dev_frontend_domid(d),
                     noxs_dev_type(d), noxs_dev_id(d), strerror(errno));
    /*
     * The final states (ours Closed, the frontend's as last read), before
     * the remove answer on the same socket: noxsd's dev-removed event then
     * carries them instead of the states of before the closing walk.
     */
    bk_unlink_report(b, x); /* superseded by the final states below */
    if (b->sock >= 0) {
        struct noxs_msg_dev m;

        (void)noxs_dev_refresh(d);
        bk_dev_msg(b, d, &m);
        noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_STATE, 0, 0);
        noxs_proto_put(&b->tx, &m, sizeof(m));
        bk_send_tx(b);
        /* A request of an earlier connection has no one waiting for it. */
        if (x->has_req && x->remove_session == b->session)
            bk_reply_empty(b, NOXS_MSG_BACKEND_REMOVE, x->remove_req);
    }
    noxs_i_dev_set_stray(d, NULL, NULL);
    rec = x->rec;
    bk_del_dev(b, x);
    noxs_i_dev_free(d);
    bk_rec_free(b, rec); /* after the munmap */
}

/* Has the frontend let go of a closing device (or is its half gone)? */
static int frontend_let_go(noxs_dev *d)
{
    unsigned int fs;

    if (noxs_dev_refresh(d) < 0)
        return 1; /* a malformed or torn half: we do not wait for it */
    fs = noxs_dev_peer_state(d);
    return fs == NOXS_STATE_UNKNOWN || fs >= NOXS_STATE_CLOSING;
}

/*
 * The driver's remove, then Closing for the frontend to follow. With
 * wait_ms 0 (we are closing down) the device is Closed at once;
 * otherwise it joins the closing list and finishes from the loop.
 */
void bk_begin_close(noxs_backend *b, struct bdev *x, int wait_ms,
                    int has_req, uint32_t req)
{
    noxs_dev *d = x->d;
    /*
     * A frontend that died (the walk saw its liveness byte cleared, or it
     * is clear now) never follows to Closing: waiting the deadline for it
     * cost each removal of a dead guest's device two seconds. Asked
     * before the walk ends the session and its liveness mapping.
     */
    int dead = x->peer_died || !noxs_i_liveness_peer_alive(d);

    bk_walk_remove(b, x);
    if (b->ops->remove)
        b->ops->remove(b, d, b->arg);
    /* Off the live list (sync, close) onto the closing list. */
    unlink_live(b, x);
    unlink_dirty(b, x);
    x->closing = 1;
    x->has_req = has_req;
    x->remove_req = req;
    x->remove_session = b->session;
    x->cnext = b->closing;
    b->closing = x;
    noxs_dev_set_state(d, NOXS_STATE_CLOSING);
    if (noxs_dev_publish(d) < 0 || wait_ms <= 0 || dead ||
        frontend_let_go(d)) {
        bk_finish_close(b, x, 0);
        return;
    }
    x->close_deadline = noxs_i_now_ms() + wait_ms;
    arm_close(b);
    bk_report(b, x); /* dev-list shows Closing while we wait */
}

/* A closing device had an event: is the frontend done? */
static void closing_event(noxs_backend *b, struct bdev *x)
{
    if (frontend_let_go(x->d)) {
        bk_finish_close(b, x, 0);
        arm_close(b);
    }
}

static void close_timer(noxs_backend *b)
{
    uint64_t expirations;
    int64_t now = noxs_i_now_ms();
    struct bdev *x, *next;

    if (read(b->closefd, &expirations, sizeof(expirations)) < 0) {
        /* Spurious wakeup: the timer did not fire. */
    }
    for (x = b->closing; x; x = next) {
        next = x->cnext;
        if (x->close_deadline <= now) {
            bk_finish_close(b, x, !frontend_let_go(x->d));
        }
    }
    arm_close(b);
}


/*
 * x's half did not settle: no read before the back-off passes, whatever
 * the frontend notifies meanwhile.
 */
static void defer_torn(noxs_backend *b, struct bdev *x)
{
    if (!x->torn_ms) {
        x->torn_ms = BACKEND_TORN_MIN_MS;
        x->tnext = b->torn;
        b->torn = x;
        noxs_i_debug("noxs backend: domain %u device %u/%u: half torn; "
                     "deferring it",
                     noxs_dev_frontend_domid(x->d),
                     noxs_dev_type(x->d), noxs_dev_id(x->d));
    } else if (x->torn_ms < BACKEND_TORN_MAX_MS) {
        x->torn_ms *= 2;
        if (x->torn_ms >= BACKEND_TORN_MAX_MS) {
            x->torn_ms = BACKEND_TORN_MAX_MS;
            noxs_i_warn("noxs backend: domain %u device %u/%u: the "
                        "frontend keeps its half torn; reading it once a "
                        "second",
                        noxs_dev_frontend_domid(x->d),
                        noxs_dev_type(x->d), noxs_dev_id(x->d));
        }
    }
    x->torn_until = noxs_i_now_ms() + x->torn_ms;
}

static void arm_torn(noxs_backend *b)
{
    int64_t first = -1;
    struct bdev *x;

    for (x = b->torn; x; x = x->tnext)
        if (first < 0 || x->torn_until < first)
            first = x->torn_until;
    bk_arm_timer(b->tornfd, first);
}

/* The frontend's half of x may have changed. */
static void refresh(noxs_backend *b, struct bdev *x)
{
    int rc;

    if (x->torn_ms && noxs_i_now_ms() < x->torn_until)
        return; /* deferred: torn_timer() reads it */
    if (x->closing) {
        closing_event(b, x);
        return;
    }
    rc = noxs_dev_refresh(x->d);

    if (rc < 0) {
        if (errno == EBUSY) {
            defer_torn(b, x);
            arm_torn(b);
            return;
        }
        noxs_i_debug("noxs backend: domain %u device %u/%u: %s",
                     noxs_dev_frontend_domid(x->d), noxs_dev_type(x->d),
                     noxs_dev_id(x->d), strerror(errno));
        return;
    }
    if (x->torn_ms) {
        unlink_torn(b, x);
        arm_torn(b);
    }
    if (rc == 1 && b->ops->changed)
        b->ops->changed(b, x->d, b->arg);
    /* The walk also looks at the liveness byte: a frontend's death
     * notifies us without changing its half. */
    bk_walk(b, x, rc == 1);
    /* changed() may have removed nothing: x is still ours here (drivers
     * never free devices themselves). */
    bk_report_if_changed(b, x);
}

static int handle_events(noxs_backend *b)
{
    struct pollfd p = {.fd = xenevtchn_fd(b->xce), .events = POLLIN};
    xenevtchn_port_or_error_t port;
    struct bdev *x;
    int n = 0;

    /* libxenevtchn's pending() blocks when nothing is pending: poll
     * before each call. */
    while (n < BACKEND_EVENTS_PER_DISPATCH && poll(&p, 1, 0) > 0 &&
           (p.revents & POLLIN)) {
        port = xenevtchn_pending(b->xce);
        if (port < 0)
            break;
        n++;
        if ((x = bk_by_port(b, (uint32_t)port)) != NULL)
            refresh(b, x);
        /*
         * Unmask after the read: what the peer notified meanwhile stays
         * pending and is delivered then. A deferred device's port stays
         * masked until torn_timer(), so its notifications do not even
         * wake us. (Looked up again: a closing device may be gone.)
         */
        if ((x = bk_by_port(b, (uint32_t)port)) != NULL && x->torn_ms &&
            noxs_i_now_ms() < x->torn_until) {
            x->masked = 1;
            continue;
        }
        xenevtchn_unmask(b->xce, (evtchn_port_t)port);
    }
    return n;
}

/* Deferred devices whose back-off passed: read them again. */
static int torn_timer(noxs_backend *b)
{
    uint64_t expirations;
    int64_t now = noxs_i_now_ms();
    struct bdev *x, *next;
    int n = 0;

    if (read(b->tornfd, &expirations, sizeof(expirations)) < 0) {
        /* Spurious wakeup: the timer did not fire. */
    }
    for (x = b->torn; x; x = next) {
        next = x->tnext;
        if (x->torn_until <= now) {
            x->torn_until = 0; /* let refresh() read it */
            if (x->masked) {
                /* Its next notification may wake us again. */
                x->masked = 0;
                xenevtchn_unmask(b->xce, (evtchn_port_t)noxs_dev_port(x->d));
            }
            refresh(b, x); /* may free x (closing), never next */
            n++;
        }
    }
    arm_torn(b);
    return n;
}

static int handle_dirty(noxs_backend *b)
{
    uint64_t count;
    struct bdev *x;
    int n = 0;

    if (read(b->strayfd, &count, sizeof(count)) < 0) {
        /* Nothing to read: a previous round took it. */
    }
    while ((x = b->dirty) != NULL) {
        b->dirty = x->dirty_next;
        x->dirty = 0;
        refresh(b, x);
        n++;
    }
    return n;
}

/* ---------------------------------------------------------------- */
/* Public API                                                        */

NOXS_EXPORT noxs_backend *noxs_backend_open(const char *path,
                                            const unsigned int *types,
                                            size_t ntypes,
                                            const struct noxs_backend_ops *ops,
                                            void *arg)
{
    return noxs_backend_open_flags(path, types, ntypes, ops, arg, 0);
}

/*
 * The epoll set, the timers and the eventfd of a new backend, each fd in
 * the set with the tag dispatch knows it by: 0 or -errno.
 */
static int open_fds(noxs_backend *b)
{
    struct epoll_event ev = {.events = EPOLLIN};

    if ((b->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (b->timerfd = timerfd_create(CLOCK_MONOTONIC,
                                     TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
        (b->strayfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        (b->closefd = timerfd_create(CLOCK_MONOTONIC,
                                     TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
        (b->tornfd = timerfd_create(CLOCK_MONOTONIC,
                                    TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
        (b->reportfd = timerfd_create(CLOCK_MONOTONIC,
                                      TFD_NONBLOCK | TFD_CLOEXEC)) < 0)
        return -errno;

    const struct {
        int fd;
        void *tag;
    } watched[] = {
        {xenevtchn_fd(b->xce), &bk_tag_evtchn},
        {b->timerfd, &bk_tag_timer},
        {b->strayfd, &bk_tag_stray},
        {b->closefd, &bk_tag_close},
        {b->tornfd, &bk_tag_torn},
        {b->reportfd, &bk_tag_report},
    };

    for (size_t i = 0; i < sizeof(watched) / sizeof(watched[0]); i++) {
        ev.data.ptr = watched[i].tag;
        if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, watched[i].fd, &ev) < 0)
            return -errno;
    }
    return 0;
}

static void close_fds(noxs_backend *b)
{
    const int fds[] = {b->strayfd, b->timerfd, b->closefd,
                       b->tornfd, b->reportfd, b->epfd};

    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

NOXS_EXPORT noxs_backend *
noxs_backend_open_flags(const char *path, const unsigned int *types,
                        size_t ntypes, const struct noxs_backend_ops *ops,
                        void *arg, unsigned int flags)
{
    noxs_backend *b;
    uint16_t self;
    size_t i, j;
    int rc;

    if (!types || ntypes == 0 || ntypes > NOXS_PROTO_MAX_TYPES || !ops ||
        (flags & ~NOXS_BACKEND_RESUMABLE)) {
        errno = EINVAL;
        return NULL;
    }
    for (i = 0; i < ntypes; i++) {
        if (types[i] < 1 || types[i] > NOXS_DEV_TYPE_MAX) {
            errno = EINVAL;
            return NULL;
        }
        for (j = 0; j < i; j++)
            if (types[j] == types[i]) {
                errno = EINVAL;
                return NULL;
            }
    }
    if (!path)
        path = getenv("NOXS_SOCKET");
    if (!path || !*path)
        path = NOXS_DEFAULT_SOCKET;
    if (strlen(path) >= sizeof(b->path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    if (noxs_self_domid(&self) < 0)
        return NULL;
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return NULL;
    memcpy(b->path, path, strlen(path) + 1);
    b->ops = ops;
    b->arg = arg;
    b->domid = self;
    b->ntypes = ntypes;
    for (i = 0; i < ntypes; i++)
        b->types[i] = (uint16_t)types[i];
    b->sock = b->epfd = b->timerfd = b->strayfd = b->closefd = -1;
    b->tornfd = b->reportfd = -1;
    b->gfd = b->sfd = -1;
    b->txq_tail = &b->txq;
    b->report_due = -1;
    b->retry_ms = BACKEND_RETRY_MIN_MS;

    if ((rc = bk_bstore_open(b, flags)) < 0)
        goto fail;
    if ((rc = open_fds(b)) < 0)
        goto fail;
    if (b->fdstore == 2)
        bk_bstore_adopt(b);
    if ((rc = bk_connect_noxsd(b)) < 0)
        goto fail;
    if (b->fdstore == 2)
        bk_walk_resume(b);
    return b;

fail:
    noxs_backend_close(b);
    errno = -rc;
    return NULL;
}

NOXS_EXPORT int noxs_backend_close(noxs_backend *b)
{
    struct pending_control *pc;

    if (!b)
        return 0;
    /* Removals under way end now. */
    while (b->closing)
        bk_finish_close(b, b->closing, 0);
    if (b->fdstore) {
        /*
         * Our devices live on in the stored files: the next instance
         * resumes them. Pages are only unmapped, ports stay bound.
         */
        while (b->all) {
            struct bdev *x = b->all;
            noxs_dev *d = x->d;

            bk_del_dev(b, x);
            noxs_i_dev_forget(d);
        }
    }
    /* Without a store our devices go with us: Closed without waiting. */
    while (b->all)
        bk_begin_close(b, b->all, 0, 0, 0);
    /* One last try for what waits; noxsd resyncs whatever is lost. */
    bk_flush(b);
    bk_drop_txq(b);
    if (b->sock >= 0)
        close(b->sock);
    while ((pc = b->controls) != NULL) {
        b->controls = pc->next;
        free(pc);
    }
    close_fds(b);
    if (b->fdstore) {
        /*
         * Not xenevtchn_close(): it may unbind the ports explicitly (the
         * simulator's does), and they must stay bound for the next
         * instance. The handles stay reachable for leak checkers.
         */
        kept_xce = b->xce;
        kept_gs = b->gs;
        if (b->gs == NULL && b->gfd >= 0)
            close(b->gfd);
        munmap(b->smap,
               BSTORE_RECS_OFF + (size_t)BSTORE_MAX * sizeof(struct brec));
        close(b->sfd);
    } else {
        if (b->smap)
            munmap(b->smap, BSTORE_RECS_OFF +
                                (size_t)BSTORE_MAX * sizeof(struct brec));
        if (b->sfd >= 0)
            close(b->sfd);
        if (b->xce)
            xenevtchn_close(b->xce);
        if (b->gs)
            xengntshr_close(b->gs);
    }
    /* After the devices: their liveness pages were mapped with it. */
    if (b->gt)
        xengnttab_close(b->gt);
    free(b->by_port);
    free(b);
    return 0;
}

NOXS_EXPORT int noxs_backend_restartable(noxs_backend *b)
{
    return b->fdstore;
}

NOXS_EXPORT noxs_dev *noxs_backend_next_dev(noxs_backend *b, noxs_dev *prev)
{
    struct bdev *x;

    if (!prev)
        x = b->all;
    else if ((x = bk_by_port(b, noxs_dev_port(prev))) == NULL || x->d != prev)
        return NULL;
    else
        x = x->next;
    return x ? x->d : NULL;
}

NOXS_EXPORT int noxs_backend_fd(noxs_backend *b)
{
    return b->epfd;
}

NOXS_EXPORT int noxs_backend_dispatch(noxs_backend *b, int timeout_ms)
{
    struct epoll_event evs[8];
    int n, i, handled = 0;

    do
        n = epoll_wait(b->epfd, evs, 8, timeout_ms);
    while (n < 0 && errno == EINTR && timeout_ms < 0);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (i = 0; i < n; i++) {
        void *tag = evs[i].data.ptr;

        if (tag == &bk_tag_sock) {
            uint32_t e = evs[i].events;

            if ((e & EPOLLOUT) && b->sock >= 0)
                bk_flush(b);
            /* Gone while we did not read (too many answers waiting):
             * nobody will take them, and the hangup would keep firing. */
            if ((e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
                b->txq_len >= BACKEND_TXQ_MAX)
                bk_disconnect(b);
            else if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                handled += bk_handle_socket(b);
        } else if (tag == &bk_tag_torn)
            handled += torn_timer(b);
        else if (tag == &bk_tag_report) {
            uint64_t expirations;

            if (read(b->reportfd, &expirations, sizeof(expirations)) < 0) {
                /* Spurious wakeup: the timer did not fire. */
            }
            b->report_due = -1; /* a one-shot timer: disarmed now */
            bk_flush(b);
        } else if (tag == &bk_tag_evtchn)
            handled += handle_events(b);
        else if (tag == &bk_tag_stray)
            handled += handle_dirty(b);
        else if (tag == &bk_tag_timer)
            bk_try_reconnect(b);
        else if (tag == &bk_tag_close)
            close_timer(b);
    }
    /* Waits inside the callbacks above may have left work behind. */
    if (b->dirty)
        handled += handle_dirty(b);
    return handled;
}

NOXS_EXPORT int noxs_backend_control_reply(noxs_backend *b, uint32_t request,
                                           int err, const char *reply)
{
    struct pending_control *pc = bk_find_control(b, request);
    struct noxs_msg_control_reply r = {0};
    size_t len = reply ? strlen(reply) : 0;
    uint32_t req;
    int rc;

    if (!pc) {
        errno = ENOENT;
        return -1;
    }
    if (!err && (len > NOXS_PROTO_MAX_REPLY || memchr(reply, 0, len))) {
        errno = E2BIG;
        return -1;
    }
    req = pc->request;
    rc = pc->session == b->session && b->sock >= 0;
    bk_drop_control(b, pc);
    if (!rc)
        return 0; /* that noxsd is gone; nobody waits for this */
    if (err) {
        noxs_proto_simple(&b->tx, NOXS_MSG_ERROR, req, err < 0 ? -err : err);
    } else {
        r.len = (uint16_t)len;
        noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_CONTROL | NOXS_MSG_REPLY,
                         req, 0);
        noxs_proto_put(&b->tx, &r, sizeof(r));
        noxs_proto_put(&b->tx, reply, len);
    }
    if ((rc = bk_send_tx(b)) < 0 && rc != -ENOTCONN) {
        errno = -rc;
        return -1;
    }
    return 0;
}

void noxs_i_backend_report(noxs_backend *b, noxs_dev *d)
{
    struct bdev *x = bk_by_port(b, noxs_dev_port(d));

    if (x && x->d == d)
        bk_report(b, x);
}

NOXS_EXPORT int noxs_backend_report(noxs_backend *b, noxs_dev *d)
{
    struct bdev *x = bk_by_port(b, noxs_dev_port(d));

    if (!x || x->d != d) {
        errno = ENOENT;
        return -1;
    }
    bk_report(b, x);
    return 0;
}
