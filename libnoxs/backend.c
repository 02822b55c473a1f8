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

#define BACKEND_IO_TIMEOUT_MS 5000
#define BACKEND_RETRY_MIN_MS 50
#define BACKEND_RETRY_MAX_MS 2000
#define BACKEND_CLOSE_TIMEOUT_MS 2000
#define BACKEND_HASH 1024u
#define BACKEND_EVENTS_PER_DISPATCH 256
/* Back-off for a torn frontend half (doubling). */
#define BACKEND_TORN_MIN_MS 1
#define BACKEND_TORN_MAX_MS 1000
/* State reports per device: a burst, then one per interval. */
#define BACKEND_REPORT_BURST 4
#define BACKEND_REPORT_INTERVAL_MS 25
/* Queued answers before we stop reading noxsd's requests. */
#define BACKEND_TXQ_MAX 64u

struct bdev {
    noxs_dev *d;
    struct bdev *hnext;        /* (domid, type, devid) hash chain */
    struct bdev *next, *prev;  /* all devices */
    struct bdev *dirty_next;
    struct bdev *cnext;        /* closing list */
    int dirty;
    int closing;               /* removed: walking Closing -> Closed */
    int has_req;               /* noxsd waits for the remove answer */
    uint32_t remove_req, remove_session;
    int64_t close_deadline;    /* noxs_i_now_ms() */
    uint8_t reported_be, reported_fe; /* last states handed to report() */
    /* Torn frontend half: no read before torn_until (torn_ms > 0). */
    struct bdev *tnext;        /* torn list */
    int torn_ms;
    int64_t torn_until;
    int masked;                /* its port left masked while deferred */
    /* A state report waiting for room or for the rate limit. */
    struct bdev *rnext;        /* pending-report list */
    int report_pending;
    int tokens;                /* reports allowed right now */
    int64_t tokens_ms;         /* when the bucket last refilled */
    struct brec *rec;          /* fd store: the device's record */
};

/*
 * The state file (a memfd in the fd store): a header, then one record per
 * device slot. Sparse: only slots in use cost memory. A record is written
 * step by step (CREATING with the page's index, then the port, then LIVE)
 * so that a backend killed half-way leaves what the next one undoes.
 */
#define BSTORE_MAGIC 0x6e786273u
#define BSTORE_VERSION 1u
#define BSTORE_MAX 16384u
#define BSTORE_RECS_OFF 4096u
#define BSTORE_NFDS 3
static const char *const bstore_names[BSTORE_NFDS] = {
    "noxs-backend-gntalloc", "noxs-backend-evtchn", "noxs-backend-state"};

enum { BREC_FREE, BREC_CREATING, BREC_LIVE };

struct bstore_hdr {
    uint32_t magic, version;
    uint16_t domid, pad;
    uint32_t nrec;
};

struct brec {
    uint32_t state; /* BREC_* */
    uint16_t domid;
    uint16_t type;
    uint32_t devid;
    uint32_t gref;
    uint32_t port;  /* 0 until bound */
    uint32_t pad;
    uint64_t index; /* gntalloc mmap offset */
    struct noxs_ctrl_half own; /* our half as last published */
};


/* Handles of a closed backend whose files live on in the fd store. */
static xenevtchn_handle *volatile kept_xce;
static xengntshr_handle *volatile kept_gs;

/* An answer to noxsd that did not fit into the socket yet. */
struct txmsg {
    struct txmsg *next;
    size_t len;
    uint8_t data[];
};

struct pending_control {
    struct pending_control *next;
    uint32_t local;   /* given to ops->control */
    uint32_t request; /* noxsd's request id */
    uint32_t session; /* connection it came on */
    int answered;
};

struct noxs_backend {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const struct noxs_backend_ops *ops;
    void *arg;
    uint16_t domid;
    uint16_t types[NOXS_PROTO_MAX_TYPES];
    size_t ntypes;
    xengntshr_handle *gs;
    xenevtchn_handle *xce;
    int sock;      /* -1 while disconnected */
    uint32_t session;
    int epfd, timerfd, strayfd, closefd, tornfd, reportfd;
    int retry_ms;
    uint32_t next_request;
    uint32_t next_local;
    struct bdev *hash[BACKEND_HASH];
    struct bdev *all;          /* live devices (not closing) */
    struct bdev *closing;      /* devices walking to Closed */
    struct bdev **by_port;
    size_t nports;
    struct bdev *dirty;
    struct bdev *torn;         /* devices waiting out a torn half */
    struct bdev *reports;      /* devices with a pending report */
    struct txmsg *txq, **txq_tail;
    size_t txq_len;
    uint32_t sock_events;      /* as registered with epoll; 0: not yet */
    int congested;             /* the socket was full: logged once */
    int reports_blocked;       /* a report found the socket full */
    int64_t report_due;        /* the report timer, -1 when disarmed */
    struct pending_control *controls;
    struct noxs_proto_buf tx;
    struct noxs_proto_buf rtx; /* state reports */
    uint8_t rx[NOXS_PROTO_MAX_MSG + 1];
    struct noxs_proto_msg msg;
    /* fd store (0: none; 1: files stored; 2: and devices adopted) */
    int fdstore;
    int gfd;                   /* the gntalloc file */
    int sfd;                   /* the state memfd */
    void *smap;
    struct brec *recs;
    uint32_t rec_hint;
    noxs_i_gntalloc_ioctl_fn *gntalloc_ioctl;
};

/* epoll tags */
static int tag_sock, tag_evtchn, tag_timer, tag_stray, tag_close, tag_torn,
    tag_report;

/* ---------------------------------------------------------------- */
/* Device bookkeeping                                                */

static unsigned int hash_key(uint16_t domid, unsigned int type, uint32_t devid)
{
    uint32_t h = (uint32_t)domid * 2654435761u ^ type * 40503u ^
                 devid * 2246822519u;
    return (h ^ (h >> 15)) % BACKEND_HASH;
}

static struct bdev *find_dev(noxs_backend *b, uint16_t domid,
                             unsigned int type, uint32_t devid)
{
    struct bdev *x;

    for (x = b->hash[hash_key(domid, type, devid)]; x; x = x->hnext)
        if (noxs_dev_frontend_domid(x->d) == domid &&
            noxs_dev_type(x->d) == type && noxs_dev_id(x->d) == devid)
            return x;
    return NULL;
}

static struct bdev *by_port(noxs_backend *b, uint32_t port)
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
    struct bdev *x = by_port(b, port);

    if (x)
        mark_dirty(b, x);
}

static int add_dev(noxs_backend *b, noxs_dev *d)
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
static void unlink_report(noxs_backend *b, struct bdev *x)
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

static void del_dev(noxs_backend *b, struct bdev *x)
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
    unlink_report(b, x);
    if (!x->closing) {
        unlink_live(b, x);
    } else {
        for (pp = &b->closing; *pp; pp = &(*pp)->cnext)
            if (*pp == x) {
                *pp = x->cnext;
                break;
            }
    }
    if (by_port(b, noxs_dev_port(x->d)) == x)
        b->by_port[noxs_dev_port(x->d)] = NULL;
    free(x);
}

/* ---------------------------------------------------------------- */
/* The fd store                                                      */

/*
 * Our files from $LISTEN_FDS (fds 3.., named in $LISTEN_FDNAMES,
 * sd_listen_fds(3)); others are left alone. Returns how many of ours.
 */
static int take_listen_fds(int fds[BSTORE_NFDS])
{
    const char *spid = getenv("LISTEN_PID"), *sn = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char *copy, *name, *save = NULL;
    uint64_t pid, n, i;
    int j, found = 0;

    for (j = 0; j < BSTORE_NFDS; j++)
        fds[j] = -1;
    if (!spid || !sn || !names)
        return 0;
    if (parse_u64(spid, 1, INT32_MAX, &pid) < 0 || (pid_t)pid != getpid())
        return 0;
    if (parse_u64(sn, 0, 1000, &n) < 0 || (copy = strdup(names)) == NULL)
        return 0;
    name = strtok_r(copy, ":", &save);
    for (i = 0; i < n && name; i++) {
        for (j = 0; j < BSTORE_NFDS; j++)
            if (strcmp(name, bstore_names[j]) == 0 && fds[j] < 0) {
                fds[j] = (int)(3 + i);
                fcntl(fds[j], F_SETFD, FD_CLOEXEC);
                found++;
            }
        name = strtok_r(NULL, ":", &save);
    }
    free(copy);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return found;
}

static int bstore_map(noxs_backend *b)
{
    size_t size = BSTORE_RECS_OFF + (size_t)BSTORE_MAX * sizeof(struct brec);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, b->sfd, 0);

    if (p == MAP_FAILED)
        return -errno;
    b->smap = p;
    b->recs = (struct brec *)((char *)p + BSTORE_RECS_OFF);
    return 0;
}

static void gnt_dealloc(noxs_backend *b, uint64_t index)
{
    struct ioctl_gntalloc_dealloc_gref op = {.index = index, .count = 1};

    if (b->gntalloc_ioctl(b->gfd, IOCTL_GNTALLOC_DEALLOC_GREF, &op) < 0)
        noxs_i_warn("noxs backend: gntalloc dealloc at %llu: %s",
                    (unsigned long long)index, strerror(errno));
}

static void rec_free(noxs_backend *b, struct brec *r)
{
    if (!r)
        return;
    __atomic_store_n(&r->state, BREC_CREATING, __ATOMIC_RELEASE);
    gnt_dealloc(b, r->index);
    memset(r, 0, sizeof(*r));
    __atomic_store_n(&r->state, BREC_FREE, __ATOMIC_RELEASE);
}

/*
 * Open the grant and event-channel handles: for a driver that can resume
 * devices (NOXS_BACKEND_RESUMABLE) under an fd store, from its files if it
 * gave us ours back, else fresh and then stored. Sets b->fdstore.
 */
static int bstore_open(noxs_backend *b, unsigned int flags)
{
    const char *env = getenv("NOXS_BACKEND_FDSTORE");
    struct bstore_hdr *h;
    int fds[BSTORE_NFDS], found, i, rc;

    found = take_listen_fds(fds);
    if (!(flags & NOXS_BACKEND_RESUMABLE) || !getenv("NOTIFY_SOCKET") ||
        (env && strcmp(env, "0") == 0)) {
        for (i = 0; i < BSTORE_NFDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        b->fdstore = 0;
        if ((b->gs = xengntshr_open(NULL, 0)) == NULL ||
            (b->xce = xenevtchn_open(NULL, 0)) == NULL)
            return -(errno ? errno : EIO);
        return 0;
    }
    b->gntalloc_ioctl = noxs_i_gntalloc_ioctl();
    if (found == BSTORE_NFDS) {
        b->gfd = fds[0];
        b->sfd = fds[2];
        h = NULL;
        if (bstore_map(b) == 0)
            h = b->smap;
        if (h && h->magic == BSTORE_MAGIC && h->version == BSTORE_VERSION &&
            h->domid == b->domid &&
            (b->xce = xenevtchn_fdopen(NULL, fds[1], 0)) != NULL) {
            b->fdstore = 2;
            return 0;
        }
        noxs_i_warn("noxs backend: the stored files are not usable; "
                    "starting afresh");
        if (b->smap)
            munmap(b->smap, BSTORE_RECS_OFF +
                                (size_t)BSTORE_MAX * sizeof(struct brec));
        b->smap = NULL;
        b->recs = NULL;
        close(fds[1]);
        close(b->gfd);
        close(b->sfd);
        b->gfd = b->sfd = -1;
    } else {
        for (i = 0; i < BSTORE_NFDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
    }
    if ((b->gs = xengntshr_open(NULL, 0)) == NULL ||
        (b->xce = xenevtchn_open(NULL, 0)) == NULL)
        return -(errno ? errno : EIO);
    if ((b->gfd = xengntshr_fd(b->gs)) < 0)
        return -(errno ? errno : EIO);
    if ((b->sfd = memfd_create("noxs-backend-state", MFD_CLOEXEC)) < 0)
        return -errno;
    if (ftruncate(b->sfd, BSTORE_RECS_OFF +
                              (off_t)BSTORE_MAX * sizeof(struct brec)) < 0)
        return -errno;
    if ((rc = bstore_map(b)) < 0)
        return rc;
    h = b->smap;
    h->version = BSTORE_VERSION;
    h->domid = b->domid;
    h->nrec = BSTORE_MAX;
    h->magic = BSTORE_MAGIC;
    fds[0] = b->gfd;
    fds[1] = xenevtchn_fd(b->xce);
    fds[2] = b->sfd;
    b->fdstore = 1;
    for (i = 0; i < BSTORE_NFDS; i++) {
        if (noxs_i_fdstore_put(getenv("NOTIFY_SOCKET"), bstore_names[i],
                               fds[i]) < 0) {
            noxs_i_warn("noxs backend: cannot store %s: %s; devices will "
                        "close with this process",
                        bstore_names[i], strerror(errno));
            b->fdstore = 0;
        }
    }
    if (b->fdstore)
        noxs_i_info("noxs backend: devices survive restarts (files in the "
                    "service manager's fd store)");
    return 0;
}

/* A new device's page and port on our files (fd store). */
static noxs_dev *bstore_dev_new(noxs_backend *b, uint16_t domid,
                                unsigned int type, uint32_t devid,
                                struct brec **recp)
{
    struct ioctl_gntalloc_alloc_gref op = {.domid = domid,
                                           .flags = GNTALLOC_FLAG_WRITABLE,
                                           .count = 1};
    struct brec *r = NULL;
    noxs_dev *d;
    void *page;
    uint32_t i;
    int port, e;

    for (i = 0; i < BSTORE_MAX; i++) {
        uint32_t k = (b->rec_hint + i) % BSTORE_MAX;

        if (b->recs[k].state == BREC_FREE) {
            r = &b->recs[k];
            b->rec_hint = k + 1;
            break;
        }
    }
    if (!r) {
        errno = ENOSPC;
        return NULL;
    }
    if (b->gntalloc_ioctl(b->gfd, IOCTL_GNTALLOC_ALLOC_GREF, &op) < 0) {
        e = errno ? errno : EIO;
        noxs_i_err("noxs: sharing a control page with domain %u: %s", domid,
                   strerror(e));
        errno = e;
        return NULL;
    }
    r->index = op.index;
    r->gref = op.gref_ids[0];
    r->domid = domid;
    r->type = (uint16_t)type;
    r->devid = devid;
    r->port = 0;
    __atomic_store_n(&r->state, BREC_CREATING, __ATOMIC_RELEASE);
    page = mmap(NULL, NOXS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                b->gfd, (off_t)op.index);
    if (page == MAP_FAILED) {
        e = errno;
        rec_free(b, r);
        errno = e;
        return NULL;
    }
    memset(page, 0, NOXS_PAGE_SIZE);
    if ((port = xenevtchn_bind_unbound_port(b->xce, domid)) < 0) {
        e = errno;
        noxs_i_err("noxs: unbound port for domain %u: %s", domid, strerror(e));
        munmap(page, NOXS_PAGE_SIZE);
        rec_free(b, r);
        errno = e;
        return NULL;
    }
    r->port = (uint32_t)port;
    d = noxs_i_dev_backend_wrap(b->xce, page, r->gref, r->port, b->domid,
                                domid, type, devid, NULL);
    if (!d) {
        e = errno;
        xenevtchn_unbind(b->xce, r->port);
        munmap(page, NOXS_PAGE_SIZE);
        rec_free(b, r);
        errno = e;
        return NULL;
    }
    memcpy(&r->own, &d->own, sizeof(r->own));
    d->mirror = &r->own;
    __atomic_store_n(&r->state, BREC_LIVE, __ATOMIC_RELEASE);
    *recp = r;
    return d;
}

/*
 * Take back the devices of the previous instance: map every page again,
 * undo what a kill left half-made. Before registering, so that the sync
 * tells noxsd we still have them.
 */
static void bstore_adopt(noxs_backend *b)
{
    uint32_t i, n = 0;

    for (i = 0; i < BSTORE_MAX; i++) {
        struct brec *r = &b->recs[i];
        struct bdev *x;
        noxs_dev *d;
        void *page;

        if (r->state == BREC_FREE)
            continue;
        if (r->state != BREC_LIVE) {
            if (r->port)
                xenevtchn_unbind(b->xce, r->port);
            rec_free(b, r);
            continue;
        }
        page = mmap(NULL, NOXS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                    b->gfd, (off_t)r->index);
        if (page == MAP_FAILED) {
            noxs_i_warn("noxs backend: device %u/%u/%u: its page is gone: "
                        "%s", r->domid, r->type, r->devid, strerror(errno));
            xenevtchn_unbind(b->xce, r->port);
            rec_free(b, r);
            continue;
        }
        d = noxs_i_dev_backend_wrap(b->xce, page, r->gref, r->port, b->domid,
                                    r->domid, r->type, r->devid, &r->own);
        if (!d || add_dev(b, d) < 0) {
            /* Out of memory: leave it stored for the next start. */
            if (d)
                noxs_i_dev_forget(d);
            else
                munmap(page, NOXS_PAGE_SIZE);
            continue;
        }
        d->mirror = &r->own;
        x = by_port(b, r->port);
        x->rec = r;
        (void)noxs_dev_refresh(d);
        n++;
    }
    noxs_i_info("noxs backend: resumed %u device(s) from the fd store", n);
}

/* ---------------------------------------------------------------- */
/* Talking to noxsd                                                  */

static void arm_timer(int fd, int64_t at)
{
    struct itimerspec its = {0};

    if (at >= 0) {
        int64_t left = at - noxs_i_now_ms();

        if (left < 1)
            left = 1; /* 0 would disarm it */
        its.it_value.tv_sec = left / 1000;
        its.it_value.tv_nsec = (long)(left % 1000) * 1000000L;
    }
    timerfd_settime(fd, 0, &its, NULL);
}

/*
 * What we want from epoll on the socket: requests unless too many
 * answers wait, and room while anything waits to be sent.
 */
static void update_sock_events(noxs_backend *b)
{
    struct epoll_event ev = {.data.ptr = &tag_sock};

    if (b->sock < 0 || !b->sock_events)
        return; /* registered with the right events by connect_noxsd */
    ev.events = b->txq_len < BACKEND_TXQ_MAX ? EPOLLIN : 0;
    /* Only while something waits for room: EPOLLOUT is level-triggered,
     * and reports held back by the rate limit wait for their timer. */
    if (b->txq || b->reports_blocked)
        ev.events |= EPOLLOUT;
    /* EPOLLHUP and EPOLLERR are always reported; 0 stays registered. */
    ev.events |= EPOLLRDHUP;
    if (ev.events != b->sock_events &&
        epoll_ctl(b->epfd, EPOLL_CTL_MOD, b->sock, &ev) == 0)
        b->sock_events = ev.events;
}

/* One non-blocking send: 0, -EAGAIN (no room) or -errno. */
static int send_now(noxs_backend *b, const void *data, size_t len)
{
    ssize_t n;

    do
        n = send(b->sock, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EWOULDBLOCK)
            errno = EAGAIN;
        return -errno;
    }
    return (size_t)n == len ? 0 : -EIO;
}

static void congested(noxs_backend *b)
{
    if (!b->congested)
        noxs_i_info("noxs backend: noxsd is not reading; queueing answers "
                    "and coalescing state reports");
    b->congested = 1;
}

static void drop_txq(noxs_backend *b)
{
    struct txmsg *m;

    while ((m = b->txq) != NULL) {
        b->txq = m->next;
        free(m);
    }
    b->txq_tail = &b->txq;
    b->txq_len = 0;
}

/*
 * Send what is in b->tx, or queue it behind what waits already (answers
 * keep their order). 0 when sent or queued, -errno otherwise; a broken
 * connection shows up on the receiving side and is handled there.
 */
static int send_tx(noxs_backend *b)
{
    int len = noxs_proto_finish(&b->tx);
    struct txmsg *m;
    int rc;

    if (len < 0)
        return len;
    if (b->sock < 0)
        return -ENOTCONN;
    if (!b->txq) {
        rc = send_now(b, b->tx.data, (size_t)len);
        if (rc != -EAGAIN)
            return rc;
        congested(b);
    }
    if ((m = malloc(sizeof(*m) + (size_t)len)) == NULL) {
        noxs_i_err("noxs backend: out of memory; an answer to noxsd is "
                   "lost");
        return -ENOMEM;
    }
    m->next = NULL;
    m->len = (size_t)len;
    memcpy(m->data, b->tx.data, (size_t)len);
    if (!b->txq)
        b->txq_tail = &b->txq;
    *b->txq_tail = m;
    b->txq_tail = &m->next;
    b->txq_len++;
    update_sock_events(b);
    return 0;
}

static void disconnect(noxs_backend *b);

/* Take one report token of x at now: 1, or 0 and *due when one comes. */
static int take_token(struct bdev *x, int64_t now, int64_t *due)
{
    if (x->tokens < BACKEND_REPORT_BURST) {
        int64_t add = (now - x->tokens_ms) / BACKEND_REPORT_INTERVAL_MS;

        if (add >= BACKEND_REPORT_BURST - x->tokens) {
            x->tokens = BACKEND_REPORT_BURST;
            x->tokens_ms = now;
        } else if (add > 0) {
            x->tokens += (int)add;
            x->tokens_ms += add * BACKEND_REPORT_INTERVAL_MS;
        }
    }
    if (x->tokens == 0) {
        *due = x->tokens_ms + BACKEND_REPORT_INTERVAL_MS;
        return 0;
    }
    if (x->tokens-- == BACKEND_REPORT_BURST)
        x->tokens_ms = now; /* the refill clock starts with the first */
    return 1;
}

static void dev_msg(noxs_backend *b, noxs_dev *d, struct noxs_msg_dev *m);

static void arm_report(noxs_backend *b, int64_t due)
{
    if (due == b->report_due)
        return;
    b->report_due = due;
    arm_timer(b->reportfd, due);
}

/* Answers are for one noxsd only; the next sync carries the states. */
static void forget_session(noxs_backend *b)
{
    b->sock_events = 0;
    b->congested = 0;
    drop_txq(b);
    while (b->reports)
        unlink_report(b, b->reports);
    b->reports_blocked = 0;
    arm_report(b, -1);
}

/*
 * Send x's report (its states of now) if its rate limit allows: 1 sent
 * (or lost with the connection, which the next sync makes good), 0 held
 * back until *due, -EAGAIN no room.
 */
static int try_report(noxs_backend *b, struct bdev *x, int64_t now,
                      int64_t *due)
{
    struct noxs_msg_dev msg;
    int len, rc;

    if (!take_token(x, now, due))
        return 0;
    dev_msg(b, x->d, &msg);
    noxs_proto_begin(&b->rtx, NOXS_MSG_BACKEND_STATE, 0, 0);
    noxs_proto_put(&b->rtx, &msg, sizeof(msg));
    len = noxs_proto_finish(&b->rtx);
    rc = len < 0 ? len : send_now(b, b->rtx.data, (size_t)len);
    if (rc == -EAGAIN) {
        x->tokens++; /* not spent */
        return rc;
    }
    return 1;
}

static void congestion_over(noxs_backend *b)
{
    if (b->congested && !b->txq && !b->reports_blocked) {
        noxs_i_info("noxs backend: noxsd reads again; sent what waited");
        b->congested = 0;
    }
}

/*
 * Send what waits, as far as the socket takes it: queued answers first
 * (in order), then the pending reports whose rate limit allows, each with
 * its device's states of now. Re-arms the report timer and the socket's
 * epoll events.
 */
static void flush(noxs_backend *b)
{
    int64_t now, due = -1, next_due = -1;
    struct bdev *x, **pp;
    struct txmsg *m;
    int rc;

    if (b->sock < 0)
        return;
    while ((m = b->txq) != NULL) {
        if (send_now(b, m->data, m->len) == -EAGAIN)
            break;
        /* Sent, or the connection broke (recv will tell): done with it. */
        b->txq = m->next;
        if (!b->txq)
            b->txq_tail = &b->txq;
        b->txq_len--;
        free(m);
    }
    b->reports_blocked = 0;
    now = noxs_i_now_ms();
    for (pp = &b->reports; (x = *pp) != NULL && !b->txq;) {
        rc = try_report(b, x, now, &next_due);
        if (rc == -EAGAIN) {
            b->reports_blocked = 1;
            break;
        }
        if (rc == 0) {
            if (due < 0 || next_due < due)
                due = next_due;
            pp = &x->rnext;
            continue;
        }
        *pp = x->rnext;
        x->report_pending = 0;
    }
    if (b->txq || b->reports_blocked)
        congested(b);
    else
        congestion_over(b);
    /* Blocked reports go out on EPOLLOUT; a due time then is no help. */
    arm_report(b, b->reports_blocked ? -1 : due);
    update_sock_events(b);
}

/*
 * At connect time only (register and sync, which wait for their answers
 * anyway): send what is queued, waiting for room up to deadline.
 */
static int flush_wait(noxs_backend *b, int64_t deadline)
{
    while (b->txq && b->sock >= 0) {
        struct pollfd p = {.fd = b->sock, .events = POLLOUT};
        int64_t left = deadline - noxs_i_now_ms();
        int rc;

        if (left <= 0)
            return -ETIMEDOUT;
        rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno != EINTR)
            return -errno;
        if (rc > 0 && (p.revents & (POLLERR | POLLHUP)))
            return -ECONNRESET;
        flush(b);
    }
    return b->sock >= 0 ? 0 : -ECONNRESET;
}

static void handle_msg(noxs_backend *b);

/*
 * Receive one message (blocking up to deadline): 0 with b->msg decoded,
 * -ETIMEDOUT, or -errno/-ECONNRESET when the connection is gone.
 */
static int recv_one(noxs_backend *b, int64_t deadline)
{
    int rc;

    for (;;) {
        rc = noxs_i_recv_msg(b->sock, b->rx, sizeof(b->rx), deadline,
                             &b->msg);
        if (rc == -EPROTO) {
            noxs_i_warn("noxs backend: malformed message from noxsd");
            return -EPROTO;
        }
        if (rc == -EINVAL) {
            /* Well-formed but out of range: refuse that one request. */
            noxs_proto_simple(&b->tx, NOXS_MSG_ERROR, b->msg.hdr.request,
                              EINVAL);
            send_tx(b);
            continue;
        }
        return rc;
    }
}

/* Send what is in b->tx and wait for the answer to req, serving any
 * request noxsd sends meanwhile. */
static int call(noxs_backend *b, uint32_t req, unsigned int type)
{
    int64_t deadline = noxs_i_now_ms() + BACKEND_IO_TIMEOUT_MS;
    int rc;

    if ((rc = send_tx(b)) < 0 || (rc = flush_wait(b, deadline)) < 0)
        return rc;
    for (;;) {
        if ((rc = recv_one(b, deadline)) < 0)
            return rc;
        if (b->msg.hdr.request == req &&
            (b->msg.hdr.type == NOXS_MSG_ERROR ||
             b->msg.hdr.type == (type | NOXS_MSG_REPLY)))
            return b->msg.hdr.type == NOXS_MSG_ERROR ? -b->msg.hdr.error : 0;
        handle_msg(b);
        if (b->sock < 0)
            return -ECONNRESET;
    }
}

static uint32_t next_request(noxs_backend *b)
{
    if (++b->next_request == 0)
        ++b->next_request;
    return b->next_request;
}

static void dev_msg(noxs_backend *b, noxs_dev *d, struct noxs_msg_dev *m)
{
    memset(m, 0, sizeof(*m));
    m->domid = noxs_dev_frontend_domid(d);
    m->type = (uint16_t)noxs_dev_type(d);
    m->devid = noxs_dev_id(d);
    m->backend_domid = b->domid;
    m->backend_state = (uint8_t)noxs_dev_state(d);
    m->frontend_state = (uint8_t)noxs_dev_peer_state(d);
    m->control_gref = noxs_dev_gref(d);
    m->backend_port = noxs_dev_port(d);
}

/* Register for our types, then tell noxsd which devices we have. */
static int register_and_sync(noxs_backend *b)
{
    struct noxs_msg_register reg = {.domid = b->domid,
                                    .ntypes = (uint16_t)b->ntypes};
    struct noxs_msg_sync sync = {0};
    struct noxs_msg_dev item;
    struct bdev *x = b->all;
    uint32_t req;
    int rc;

    req = next_request(b);
    noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_REGISTER, req, 0);
    noxs_proto_put(&b->tx, &reg, sizeof(reg));
    noxs_proto_put(&b->tx, b->types, b->ntypes * sizeof(b->types[0]));
    if (b->fdstore) {
        uint32_t flags = NOXS_REGISTER_KEEP;

        noxs_proto_put(&b->tx, &flags, sizeof(flags));
    }
    if ((rc = call(b, req, NOXS_MSG_BACKEND_REGISTER)) < 0)
        return rc;
    do {
        size_t n = 0;
        struct bdev *start = x;

        while (x && n < NOXS_PROTO_MAX_SYNC) {
            x = x->next;
            n++;
        }
        sync.count = (uint32_t)n;
        sync.flags = x ? 0 : NOXS_SYNC_FINAL;
        req = next_request(b);
        noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_SYNC, req, 0);
        noxs_proto_put(&b->tx, &sync, sizeof(sync));
        for (x = start; n--; x = x->next) {
            dev_msg(b, x->d, &item);
            x->reported_be = item.backend_state;
            x->reported_fe = item.frontend_state;
            noxs_proto_put(&b->tx, &item, sizeof(item));
        }
        if ((rc = call(b, req, NOXS_MSG_BACKEND_SYNC)) < 0)
            return rc;
    } while (x);
    return 0;
}

static int connect_noxsd(noxs_backend *b)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                             .data.ptr = &tag_sock};
    int fd, rc;

    memcpy(sun.sun_path, b->path, sizeof(b->path));
    /* Non-blocking: the loop never waits for noxsd to read. */
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    b->sock = fd;
    b->session++;
    if ((rc = register_and_sync(b)) < 0) {
        if (b->sock >= 0) {
            close(b->sock);
            b->sock = -1;
        }
        forget_session(b);
        return rc;
    }
    if (b->txq)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->sock, &ev) < 0) {
        rc = -errno;
        close(b->sock);
        b->sock = -1;
        forget_session(b);
        return rc;
    }
    b->sock_events = ev.events;
    return 0;
}

static void arm_retry(noxs_backend *b)
{
    struct itimerspec its = {0};

    its.it_value.tv_sec = b->retry_ms / 1000;
    its.it_value.tv_nsec = (long)(b->retry_ms % 1000) * 1000000L;
    timerfd_settime(b->timerfd, 0, &its, NULL);
}

static void disconnect(noxs_backend *b)
{
    struct pending_control *pc;

    if (b->sock < 0)
        return;
    epoll_ctl(b->epfd, EPOLL_CTL_DEL, b->sock, NULL);
    close(b->sock);
    b->sock = -1;
    forget_session(b);
    /* Deferred controls of that session can no longer be answered. */
    while ((pc = b->controls) != NULL) {
        b->controls = pc->next;
        free(pc);
    }
    noxs_i_warn("noxs backend: lost noxsd; devices keep working, "
                "reconnecting");
    b->retry_ms = BACKEND_RETRY_MIN_MS;
    arm_retry(b);
}

static void try_reconnect(noxs_backend *b)
{
    uint64_t expirations;
    int rc;

    if (read(b->timerfd, &expirations, sizeof(expirations)) < 0) {
        /* Spurious wakeup: the timer did not fire. */
    }
    if (b->sock >= 0)
        return;
    rc = connect_noxsd(b);
    if (rc == 0) {
        noxs_i_info("noxs backend: reconnected to noxsd");
        return;
    }
    noxs_i_debug("noxs backend: reconnect: %s", strerror(-rc));
    b->retry_ms = b->retry_ms * 2 > BACKEND_RETRY_MAX_MS ? BACKEND_RETRY_MAX_MS
                                                         : b->retry_ms * 2;
    arm_retry(b);
}

/* ---------------------------------------------------------------- */
/* Requests from noxsd                                               */

static void reply_error(noxs_backend *b, uint32_t req, int err)
{
    noxs_proto_simple(&b->tx, NOXS_MSG_ERROR, req, err > 0 ? err : EIO);
    send_tx(b);
}

static void reply_empty(noxs_backend *b, unsigned int type, uint32_t req)
{
    noxs_proto_simple(&b->tx, type | NOXS_MSG_REPLY, req, 0);
    send_tx(b);
}

/* Tell noxsd x's states: at once if room and rate allow, else later. */
static void report(noxs_backend *b, struct bdev *x)
{
    int64_t due = -1;
    int rc;

    x->reported_be = (uint8_t)noxs_dev_state(x->d);
    x->reported_fe = (uint8_t)noxs_dev_peer_state(x->d);
    if (b->sock < 0)
        return; /* the next sync carries it */
    if (x->report_pending)
        return; /* flush() sends the states of the moment it can */
    x->report_pending = 1;
    x->rnext = b->reports;
    b->reports = x;
    if (b->txq || b->reports_blocked)
        return; /* after what waits for room, on EPOLLOUT */
    rc = try_report(b, x, noxs_i_now_ms(), &due);
    if (rc == 1) {
        b->reports = x->rnext; /* x was linked first just above */
        x->report_pending = 0;
    } else if (rc == 0) {
        if (b->report_due < 0 || due < b->report_due)
            arm_report(b, due);
    } else {
        b->reports_blocked = 1;
        congested(b);
        update_sock_events(b);
    }
}

static void report_if_changed(noxs_backend *b, struct bdev *x)
{
    if (x->reported_be != noxs_dev_state(x->d) ||
        x->reported_fe != noxs_dev_peer_state(x->d))
        report(b, x);
}

static void do_create(noxs_backend *b)
{
    const struct noxs_msg_dev_add *a = &b->msg.u.dev_add;
    uint32_t req = b->msg.hdr.request;
    struct noxs_msg_dev_ref ref;
    struct brec *rec = NULL;
    struct bdev *x;
    noxs_dev *d;
    int rc;

    if (a->backend_domid != b->domid) {
        reply_error(b, req, EINVAL);
        return;
    }
    if (find_dev(b, a->domid, a->type, a->devid)) {
        reply_error(b, req, EEXIST);
        return;
    }
    if (b->fdstore)
        d = bstore_dev_new(b, a->domid, a->type, a->devid, &rec);
    else
        d = noxs_i_dev_backend_new(b->gs, b->xce, b->domid, a->domid,
                                   a->type, a->devid);
    if (!d) {
        reply_error(b, req, errno);
        return;
    }
    if ((rc = add_dev(b, d)) < 0) {
        noxs_i_dev_free(d);
        rec_free(b, rec);
        reply_error(b, req, -rc);
        return;
    }
    x = by_port(b, noxs_dev_port(d));
    x->rec = rec;
    rc = b->ops->create
             ? b->ops->create(b, d, b->msg.params, b->msg.nparams, b->arg)
             : 0;
    if (rc == 0) {
        noxs_dev_set_state(d, NOXS_STATE_INITWAIT);
        if (noxs_dev_publish(d) < 0) {
            rc = -(errno ? errno : EIO);
            if (b->ops->remove)
                b->ops->remove(b, d, b->arg);
        }
    }
    if (rc < 0) {
        del_dev(b, x);
        noxs_i_dev_free(d);
        rec_free(b, rec);
        reply_error(b, req, rc < 0 ? -rc : EIO);
        return;
    }
    x->reported_be = NOXS_STATE_INITWAIT;
    x->reported_fe = NOXS_STATE_UNKNOWN;
    ref.control_gref = noxs_dev_gref(d);
    ref.backend_port = noxs_dev_port(d);
    noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_CREATE | NOXS_MSG_REPLY, req, 0);
    noxs_proto_put(&b->tx, &ref, sizeof(ref));
    send_tx(b);
}

/* Arm the close timer for the earliest deadline on the closing list. */
static void arm_close(noxs_backend *b)
{
    int64_t first = -1;
    struct bdev *x;

    for (x = b->closing; x; x = x->cnext)
        if (first < 0 || x->close_deadline < first)
            first = x->close_deadline;
    arm_timer(b->closefd, first);
}

/* The end of a removal: Closed, the final states, the answer, free. */
static void finish_close(noxs_backend *b, struct bdev *x, int timed_out)
{
    noxs_dev *d = x->d;
    struct brec *rec;

    if (timed_out)
        noxs_i_debug("noxs backend: domain %u did not close device %u/%u",
                     noxs_dev_frontend_domid(d), noxs_dev_type(d),
                     noxs_dev_id(d));
    noxs_dev_set_state(d, NOXS_STATE_CLOSED);
    if (noxs_dev_publish(d) < 0)
        noxs_i_debug("noxs backend: domain %u device %u/%u: publish "
                     "Closed: %s", noxs_dev_frontend_domid(d),
                     noxs_dev_type(d), noxs_dev_id(d), strerror(errno));
    /*
     * The final states (ours Closed, the frontend's as last read), before
     * the remove answer on the same socket: noxsd's dev-removed event then
     * carries them instead of the states of before the closing walk.
     */
    unlink_report(b, x); /* superseded by the final states below */
    if (b->sock >= 0) {
        struct noxs_msg_dev m;

        (void)noxs_dev_refresh(d);
        dev_msg(b, d, &m);
        noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_STATE, 0, 0);
        noxs_proto_put(&b->tx, &m, sizeof(m));
        send_tx(b);
        /* A request of an earlier connection has no one waiting for it. */
        if (x->has_req && x->remove_session == b->session)
            reply_empty(b, NOXS_MSG_BACKEND_REMOVE, x->remove_req);
    }
    noxs_i_dev_set_stray(d, NULL, NULL);
    rec = x->rec;
    del_dev(b, x);
    noxs_i_dev_free(d);
    rec_free(b, rec); /* after the munmap */
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
static void begin_close(noxs_backend *b, struct bdev *x, int wait_ms,
                        int has_req, uint32_t req)
{
    noxs_dev *d = x->d;

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
    if (noxs_dev_publish(d) < 0 || wait_ms <= 0 || frontend_let_go(d)) {
        finish_close(b, x, 0);
        return;
    }
    x->close_deadline = noxs_i_now_ms() + wait_ms;
    arm_close(b);
    report(b, x); /* dev-list shows Closing while we wait */
}

/* A closing device had an event: is the frontend done? */
static void closing_event(noxs_backend *b, struct bdev *x)
{
    if (frontend_let_go(x->d)) {
        finish_close(b, x, 0);
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
            finish_close(b, x, !frontend_let_go(x->d));
        }
    }
    arm_close(b);
}

static void do_remove(noxs_backend *b)
{
    const struct noxs_msg_dev_id *id = &b->msg.u.dev_id;
    uint32_t req = b->msg.hdr.request;
    struct bdev *x = find_dev(b, id->domid, id->type, id->devid);

    if (x && !x->closing) {
        begin_close(b, x, BACKEND_CLOSE_TIMEOUT_MS, 1, req);
        return; /* answered by finish_close() */
    }
    if (x && !x->has_req) {
        /* Closing without anyone waiting: this request waits. */
        x->has_req = 1;
        x->remove_req = req;
        x->remove_session = b->session;
        return;
    }
    /* Gone (or already answered for): removal is idempotent. */
    reply_empty(b, NOXS_MSG_BACKEND_REMOVE, req);
}

static struct pending_control *find_control(noxs_backend *b, uint32_t local)
{
    struct pending_control *pc;

    for (pc = b->controls; pc; pc = pc->next)
        if (pc->local == local)
            return pc;
    return NULL;
}

static void drop_control(noxs_backend *b, struct pending_control *pc)
{
    struct pending_control **pp;

    for (pp = &b->controls; *pp; pp = &(*pp)->next)
        if (*pp == pc) {
            *pp = pc->next;
            break;
        }
    free(pc);
}

static void do_control(noxs_backend *b)
{
    const struct noxs_msg_control *ctl = &b->msg.u.control;
    uint32_t req = b->msg.hdr.request;
    struct pending_control *pc;
    struct bdev *x = find_dev(b, ctl->domid, ctl->type, ctl->devid);
    char key[NOXS_CTRL_KEY_MAX + 1], *value;
    uint32_t local;
    int rc;

    if (!x || x->closing) {
        reply_error(b, req, ENODEV);
        return;
    }
    if (!b->ops->control) {
        reply_error(b, req, ENOTSUP);
        return;
    }
    if ((pc = calloc(1, sizeof(*pc))) == NULL) {
        reply_error(b, req, ENOMEM);
        return;
    }
    /* ops may send messages (reports) that reuse our buffers. */
    if ((value = strdup(b->msg.value)) == NULL) {
        free(pc);
        reply_error(b, req, ENOMEM);
        return;
    }
    memcpy(key, b->msg.key, strlen(b->msg.key) + 1);
    if (++b->next_local == 0)
        ++b->next_local;
    pc->local = b->next_local;
    pc->request = req;
    pc->session = b->session;
    pc->next = b->controls;
    b->controls = pc;
    local = pc->local;
    rc = b->ops->control(b, x->d, key, value, local, b->arg);
    free(value);
    if ((pc = find_control(b, local)) == NULL)
        return; /* answered from inside the callback */
    if (rc == 1)
        return; /* the driver answers later */
    drop_control(b, pc);
    if (rc < 0) {
        reply_error(b, req, -rc);
    } else {
        struct noxs_msg_control_reply r = {0};

        noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_CONTROL | NOXS_MSG_REPLY,
                         req, 0);
        noxs_proto_put(&b->tx, &r, sizeof(r));
        send_tx(b);
    }
}

/* Something noxsd sent outside a call(): a request of ours is never
 * outstanding here, so a reply is stale and ignored. */
static void handle_msg(noxs_backend *b)
{
    switch (b->msg.hdr.type) {
    case NOXS_MSG_BACKEND_CREATE:
        do_create(b);
        break;
    case NOXS_MSG_BACKEND_REMOVE:
        do_remove(b);
        break;
    case NOXS_MSG_BACKEND_CONTROL:
        do_control(b);
        break;
    default:
        if (!(b->msg.hdr.type & NOXS_MSG_REPLY) &&
            b->msg.hdr.type != NOXS_MSG_ERROR) {
            noxs_i_warn("noxs backend: unexpected %s from noxsd",
                        noxs_proto_type_name(b->msg.hdr.type));
            reply_error(b, b->msg.hdr.request, EPROTO);
        }
        break;
    }
}

static int handle_socket(noxs_backend *b)
{
    int n = 0, rc;

    /* Requests wait in the socket while too many answers wait here. */
    while (b->sock >= 0 && n < BACKEND_EVENTS_PER_DISPATCH &&
           b->txq_len < BACKEND_TXQ_MAX) {
        rc = recv_one(b, 0);
        if (rc == -ETIMEDOUT)
            break;
        if (rc < 0) {
            disconnect(b);
            break;
        }
        handle_msg(b);
        n++;
    }
    return n;
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
                     "deferring it", noxs_dev_frontend_domid(x->d),
                     noxs_dev_type(x->d), noxs_dev_id(x->d));
    } else if (x->torn_ms < BACKEND_TORN_MAX_MS) {
        x->torn_ms *= 2;
        if (x->torn_ms >= BACKEND_TORN_MAX_MS) {
            x->torn_ms = BACKEND_TORN_MAX_MS;
            noxs_i_warn("noxs backend: domain %u device %u/%u: the "
                        "frontend keeps its half torn; reading it once a "
                        "second", noxs_dev_frontend_domid(x->d),
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
    arm_timer(b->tornfd, first);
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
    /* changed() may have removed nothing: x is still ours here (drivers
     * never free devices themselves). */
    report_if_changed(b, x);
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
        if ((x = by_port(b, (uint32_t)port)) != NULL)
            refresh(b, x);
        /*
         * Unmask after the read: what the peer notified meanwhile stays
         * pending and is delivered then. A deferred device's port stays
         * masked until torn_timer(), so its notifications do not even
         * wake us. (Looked up again: a closing device may be gone.)
         */
        if ((x = by_port(b, (uint32_t)port)) != NULL && x->torn_ms &&
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

NOXS_EXPORT noxs_backend *
noxs_backend_open_flags(const char *path, const unsigned int *types,
                        size_t ntypes, const struct noxs_backend_ops *ops,
                        void *arg, unsigned int flags)
{
    struct epoll_event ev = {.events = EPOLLIN};
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

    if ((rc = bstore_open(b, flags)) < 0)
        goto fail;
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
        goto fail_errno;
    ev.data.ptr = &tag_evtchn;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, xenevtchn_fd(b->xce), &ev) < 0)
        goto fail_errno;
    ev.data.ptr = &tag_timer;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->timerfd, &ev) < 0)
        goto fail_errno;
    ev.data.ptr = &tag_stray;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->strayfd, &ev) < 0)
        goto fail_errno;
    ev.data.ptr = &tag_close;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->closefd, &ev) < 0)
        goto fail_errno;
    ev.data.ptr = &tag_torn;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->tornfd, &ev) < 0)
        goto fail_errno;
    ev.data.ptr = &tag_report;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->reportfd, &ev) < 0)
        goto fail_errno;
    if (b->fdstore == 2)
        bstore_adopt(b);
    if ((rc = connect_noxsd(b)) < 0)
        goto fail;
    return b;

fail_errno:
    rc = -(errno ? errno : EIO);
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
        finish_close(b, b->closing, 0);
    if (b->fdstore) {
        /*
         * Our devices live on in the stored files: the next instance
         * resumes them. Pages are only unmapped, ports stay bound.
         */
        while (b->all) {
            struct bdev *x = b->all;
            noxs_dev *d = x->d;

            del_dev(b, x);
            noxs_i_dev_forget(d);
        }
    }
    /* Without a store our devices go with us: Closed without waiting. */
    while (b->all)
        begin_close(b, b->all, 0, 0, 0);
    /* One last try for what waits; noxsd resyncs whatever is lost. */
    flush(b);
    drop_txq(b);
    if (b->sock >= 0)
        close(b->sock);
    while ((pc = b->controls) != NULL) {
        b->controls = pc->next;
        free(pc);
    }
    if (b->strayfd >= 0)
        close(b->strayfd);
    if (b->timerfd >= 0)
        close(b->timerfd);
    if (b->closefd >= 0)
        close(b->closefd);
    if (b->tornfd >= 0)
        close(b->tornfd);
    if (b->reportfd >= 0)
        close(b->reportfd);
    if (b->epfd >= 0)
        close(b->epfd);
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
    else if ((x = by_port(b, noxs_dev_port(prev))) == NULL || x->d != prev)
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

        if (tag == &tag_sock) {
            uint32_t e = evs[i].events;

            if ((e & EPOLLOUT) && b->sock >= 0)
                flush(b);
            /* Gone while we did not read (too many answers waiting):
             * nobody will take them, and the hangup would keep firing. */
            if ((e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
                b->txq_len >= BACKEND_TXQ_MAX)
                disconnect(b);
            else if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                handled += handle_socket(b);
        } else if (tag == &tag_torn)
            handled += torn_timer(b);
        else if (tag == &tag_report) {
            uint64_t expirations;

            if (read(b->reportfd, &expirations, sizeof(expirations)) < 0) {
                /* Spurious wakeup: the timer did not fire. */
            }
            b->report_due = -1; /* a one-shot timer: disarmed now */
            flush(b);
        } else if (tag == &tag_evtchn)
            handled += handle_events(b);
        else if (tag == &tag_stray)
            handled += handle_dirty(b);
        else if (tag == &tag_timer)
            try_reconnect(b);
        else if (tag == &tag_close)
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
    struct pending_control *pc = find_control(b, request);
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
    drop_control(b, pc);
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
    if ((rc = send_tx(b)) < 0 && rc != -ENOTCONN) {
        errno = -rc;
        return -1;
    }
    return 0;
}

NOXS_EXPORT int noxs_backend_report(noxs_backend *b, noxs_dev *d)
{
    struct bdev *x = by_port(b, noxs_dev_port(d));

    if (!x || x->d != d) {
        errno = ENOENT;
        return -1;
    }
    report(b, x);
    return 0;
}
