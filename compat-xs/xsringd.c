/*
 * noxs-xsringd: answers guests' XenStore rings on a noxs-only dom0 (no
 * xenstored) from compat-xs's local store (docs/XSRINGD.md).
 *
 * The domains to serve are the local store's introduced domains that
 * have a store ring (compat-xs's xs_introduce_domain records the frame
 * and port there); the service watches @introduceDomain/@releaseDomain
 * on its own dom0 connection and compares. Per domain: the ring page
 * (grant table's reserved xenstore entry, else a foreign map of the
 * frame), the store event channel, and one local-store connection that
 * runs the domain's requests with its identity and permissions.
 *
 * dom0's own kernel is served the same way when no xenstored holds its
 * connection: the page and event channel Linux sets up in dom0 for a
 * local store (/proc/xen/xsd_kva, /proc/xen/xsd_port), which is where
 * dom0's kernel backends (blkback, netback) and /dev/xen/xenbus speak
 * XenStore. Its requests run as domain 0.
 *
 * What must survive a kill -9 lives outside this process: the tree in
 * the store, the ring indexes in the page (a request is consumed only
 * after its reply is written), and each domain's watches under
 * /tool/xsringd/<domid>/, registered again at start (which fires each
 * once, so a guest re-reads what may have changed meanwhile).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xengnttab.h>

#include "common/log.h"
#include "common/parse.h"
#include "gstore.h"
#include "xsringd.h"
#include "xsringd_ring.h"

#ifndef GNTTAB_RESERVED_XENSTORE
#define GNTTAB_RESERVED_XENSTORE 1
#endif
/* Requests served per domain per loop turn: one guest's flood waits its
 * turn behind every other domain's. */
#define BUDGET 8
/* Events moved from the store to a ring per turn. */
#define EV_BUDGET 16
/* Bytes queued for a guest that does not read its ring. */
#define OUT_CAP (64u * 1024u)
/* dom0 kernel ring page (xsd_kva): one page. */
#define XSR_PAGE 4096u
#define REC_ROOT "/tool/xsringd"
/* Open transactions per domain (the store allows 10). */
#define TX_MAX 16
/* A watch record carries the WATCH payload below a ~32-byte path. */
#define WATCH_REC_MAX (XSW_PAYLOAD_MAX - 64)

struct pwatch {
    uint32_t id;
    uint32_t len;
    char *payload; /* "path\0token\0" as the guest sent it */
};

struct dom {
    unsigned int domid;
    uint64_t mfn;
    uint32_t port;
    struct xsr_intf *ring;
    bool by_grant;
    bool kernel; /* dom0's own kernel: ring mapped from xsd_kva */
    int lport; /* -1: not bound */
    struct cxs_gconn *g;
    int evfd; /* g's event fd once it has watches, else -1 */
    struct xsr_in in;
    struct xsr_out out;
    bool broken; /* protocol error: not read until it reconnects */
    bool busy;
    bool seen;
    uint32_t wseq;
    struct pwatch *pw;
    size_t npw;
    unsigned long dropped; /* events dropped: guest not reading */
    /* Open transactions: the id the guest sees, the store's. */
    struct {
        uint32_t guest, local;
    } tx[TX_MAX];
    unsigned int ntx;
    uint32_t txnext;
};

static const char *store_dir;
static int verbose;
static volatile sig_atomic_t stopping;
static xenevtchn_handle *xce;
static xengnttab_handle *xgt;
static xenforeignmemory_handle *xfm;
static struct cxs_gconn *ctl;
static int epfd;
static struct dom **doms;
static size_t ndoms, capdoms;
static struct dom **byport;
static size_t nbyport;
/*
 * Transaction ids the guests see start from a value drawn at each start
 * of the service: an id a guest holds from before a restart (its
 * transaction is gone with the store connection) then names nothing
 * rather than a transaction it starts afterwards.
 */
static uint32_t tx_base;


/* One request on a connection; the reply's type, its payload (malloc'd). */
static int call(struct cxs_gconn *g, uint32_t type, const void *p, uint32_t len,
                uint32_t *rtype, char **reply, uint32_t *rlen)
{
    return g->ops->request(g, type, 0, p, len, rtype, reply, rlen);
}

/* A dom0 request on the service's own connection; 0 or -errno. */
static int ctl_call(uint32_t type, const void *p, uint32_t len, char **reply,
                    uint32_t *rlen)
{
    uint32_t rt, rl;
    char *r = NULL;
    int rc = call(ctl, type, p, len, &rt, &r, &rl);

    if (rc == 0 && rt == XSW_ERROR)
        rc = -xsw_errno_parse(r);
    if (rc == 0 && reply) {
        *reply = r;
        if (rlen)
            *rlen = rl;
        return 0;
    }
    free(r);
    return rc;
}

static int ctl_write(const char *path, const void *val, uint32_t vlen)
{
    size_t pl = strlen(path) + 1;
    char *b = malloc(pl + vlen);
    int rc;

    if (!b)
        return -ENOMEM;
    memcpy(b, path, pl);
    memcpy(b + pl, val, vlen);
    rc = ctl_call(XSW_WRITE, b, (uint32_t)(pl + vlen), NULL, NULL);
    free(b);
    return rc;
}

static int ctl_rm(const char *path)
{
    int rc = ctl_call(XSW_RM, path, (uint32_t)strlen(path) + 1, NULL, NULL);

    return rc == -ENOENT ? 0 : rc;
}

/* ---- watch records --------------------------------------------------- */

static void rec_dir(const struct dom *d, char *b, size_t n)
{
    snprintf(b, n, REC_ROOT "/%u", d->domid);
}

static int pw_add(struct dom *d, uint32_t id, const char *p, uint32_t len)
{
    struct pwatch *v = realloc(d->pw, (d->npw + 1) * sizeof(*v));
    char *c = malloc(len);

    if (!v || !c) {
        free(c);
        if (v)
            d->pw = v;
        return -ENOMEM;
    }
    d->pw = v;
    memcpy(c, p, len);
    d->pw[d->npw++] = (struct pwatch){.id = id, .len = len, .payload = c};
    if (id >= d->wseq)
        d->wseq = id + 1;
    return 0;
}

static void pw_clear(struct dom *d)
{
    for (size_t i = 0; i < d->npw; i++)
        free(d->pw[i].payload);
    free(d->pw);
    d->pw = NULL;
    d->npw = 0;
}

/* A watch the guest set: recorded so a restarted service sets it again. */
static void rec_watch(struct dom *d, const char *p, uint32_t len)
{
    char path[96];
    uint32_t id = d->wseq;

    rec_dir(d, path, sizeof(path));
    snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%u", id);
    if (ctl_write(path, p, len) < 0 || pw_add(d, id, p, len) < 0)
        log_warnx("domain %u: cannot record a watch: it is lost if the "
                  "service restarts",
               d->domid);
}

static void rec_unwatch(struct dom *d, const char *p, uint32_t len)
{
    char path[96];

    for (size_t i = 0; i < d->npw; i++) {
        if (d->pw[i].len != len || memcmp(d->pw[i].payload, p, len) != 0)
            continue;
        rec_dir(d, path, sizeof(path));
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%u",
                 d->pw[i].id);
        ctl_rm(path);
        free(d->pw[i].payload);
        d->pw[i] = d->pw[--d->npw];
        return;
    }
}

/* Forget every watch record of d, and record which ring they belong to. */
static void rec_reset(struct dom *d)
{
    char path[64], tag[48];

    rec_dir(d, path, sizeof(path));
    ctl_rm(path);
    pw_clear(d);
    snprintf(tag, sizeof(tag), "%" PRIu64 ":%u", d->mfn, d->port);
    ctl_write(path, tag, (uint32_t)strlen(tag));
}

static int watch_fd_on(struct dom *d)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = d};
    int fd;

    if (d->evfd >= 0)
        return 0;
    if ((fd = d->g->ops->event_fd(d->g)) < 0)
        return fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    d->evfd = fd;
    return 0;
}

/*
 * Set again the watches recorded for d, if the records are of this ring
 * (the same frame and port); otherwise start d's records afresh.
 */
static void rec_restore(struct dom *d)
{
    char dir[64], tag[48], *v = NULL, *list = NULL;
    uint32_t vl = 0, ll = 0;

    rec_dir(d, dir, sizeof(dir));
    snprintf(tag, sizeof(tag), "%" PRIu64 ":%u", d->mfn, d->port);
    if (ctl_call(XSW_READ, dir, (uint32_t)strlen(dir) + 1, &v, &vl) < 0 ||
        vl != strlen(tag) || memcmp(v, tag, vl) != 0 ||
        ctl_call(XSW_DIRECTORY, dir, (uint32_t)strlen(dir) + 1, &list, &ll) <
            0) {
        free(v);
        rec_reset(d);
        return;
    }
    free(v);
    for (uint32_t o = 0; o < ll;) {
        const char *name = list + o;
        size_t nl = strnlen(name, ll - o);
        char path[96], *w = NULL;
        uint32_t wl = 0, rt, rl;
        char *r = NULL;

        o += (uint32_t)nl + 1;
        if (nl == 0 || nl > 10)
            continue;
        snprintf(path, sizeof(path), "%s/%.*s", dir, (int)nl, name);
        if (ctl_call(XSW_READ, path, (uint32_t)strlen(path) + 1, &w, &wl) < 0)
            continue;
        if (call(d->g, XSW_WATCH, w, wl, &rt, &r, &rl) == 0 &&
            rt == XSW_WATCH && pw_add(d, (uint32_t)strtoul(name, NULL, 10),
                                      w, wl) == 0)
            watch_fd_on(d);
        else
            ctl_rm(path);
        free(r);
        free(w);
    }
    free(list);
    log_info("domain %u: %zu watches set again", d->domid, d->npw);
}

/* ---- domains ----------------------------------------------------------- */

static void notify(struct dom *d)
{
    if (d->lport >= 0)
        xenevtchn_notify(xce, (evtchn_port_t)d->lport);
}

static void dom_free(struct dom *d)
{
    if (d->lport >= 0) {
        if ((size_t)d->lport < nbyport)
            byport[d->lport] = NULL;
        xenevtchn_unbind(xce, (evtchn_port_t)d->lport);
    }
    if (d->ring) {
        if (d->kernel)
            munmap(d->ring, XSR_PAGE);
        else if (d->by_grant)
            xengnttab_unmap(xgt, d->ring, 1);
        else
            xenforeignmemory_unmap(xfm, d->ring, 1);
    }
    if (d->evfd >= 0)
        epoll_ctl(epfd, EPOLL_CTL_DEL, d->evfd, NULL);
    if (d->g)
        d->g->ops->close(d->g);
    xsr_out_free(&d->out);
    pw_clear(d);
    free(d);
}

static int byport_set(int port, struct dom *d)
{
    if ((size_t)port >= nbyport) {
        size_t n = (size_t)port + 64;
        struct dom **v = realloc(byport, n * sizeof(*v));

        if (!v)
            return -ENOMEM;
        memset(v + nbyport, 0, (n - nbyport) * sizeof(*v));
        byport = v;
        nbyport = n;
    }
    byport[port] = d;
    return 0;
}

/*
 * Domains that could not be attached: tried again every second, logged
 * once (a toolstack's wrong frame would otherwise fill the log).
 */
#define QUIET_MAX 64
static unsigned int quiet[QUIET_MAX];
static size_t nquiet;

static bool quiet_has(unsigned int domid)
{
    for (size_t i = 0; i < nquiet; i++)
        if (quiet[i] == domid)
            return true;
    return false;
}

static void quiet_set(unsigned int domid, bool on)
{
    for (size_t i = 0; i < nquiet; i++)
        if (quiet[i] == domid) {
            if (!on)
                quiet[i] = quiet[--nquiet];
            return;
        }
    if (on && nquiet < QUIET_MAX)
        quiet[nquiet++] = domid;
}

#define alog(d, ...)                                                        \
    do {                                                                    \
        if (!quiet_has((d)->domid))                                         \
            log_warnx(__VA_ARGS__);                                         \
    } while (0)

/* A domain to serve on its store port, not yet mapped or bound. */
static struct dom *dom_new(unsigned int domid, uint32_t port)
{
    struct dom *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->domid = domid;
    d->port = port;
    d->lport = -1;
    d->evfd = -1;
    d->out.cap = OUT_CAP;
    d->txnext = tx_base;
    return d;
}

/*
 * d has its ring mapped and its port bound (lport): index the port, open
 * a store connection that runs d's requests as d, set the watches
 * recorded for it again and open the ring. 0, or -1 with errno.
 */
static int dom_connect(struct dom *d, int lport)
{
    d->lport = lport;
    if (byport_set(lport, d) < 0) {
        errno = ENOMEM;
        return -1;
    }
    if (!(d->g = cxs_lstore_open(store_dir, d->domid)))
        return -1;
    rec_restore(d);
    d->ring->server_features = XSR_FEATURE_RECONNECTION | XSR_FEATURE_ERROR;
    d->busy = true;
    return 0;
}

/* Map, bind and connect one domain; NULL (logged) if it cannot be now. */
static struct dom *dom_attach(const struct cxs_ldom *l)
{
    struct dom *d = dom_new(l->domid, l->port);
    int port;

    if (!d)
        return NULL;
    d->mfn = l->mfn;
    /* As xenstored: the grant table's reserved entry, else the frame. */
    d->ring = xgt ? xengnttab_map_grant_ref(xgt, d->domid,
                                            GNTTAB_RESERVED_XENSTORE,
                                            PROT_READ | PROT_WRITE)
                  : NULL;
    d->by_grant = d->ring != NULL;
    if (!d->ring) {
        xen_pfn_t pfn = (xen_pfn_t)d->mfn;
        d->ring = xenforeignmemory_map(xfm, d->domid, PROT_READ | PROT_WRITE,
                                       1, &pfn, NULL);
    }
    if (!d->ring) {
        alog(d, "domain %u: cannot map its ring (frame %" PRIu64 "): %s",
             d->domid, d->mfn, strerror(errno));
        goto fail;
    }
    port = xenevtchn_bind_interdomain(xce, d->domid, d->port);
    if (port < 0) {
        alog(d, "domain %u: cannot bind its port %u: %s (tried again every "
                "second)",
             d->domid, d->port, strerror(errno));
        goto fail;
    }
    if (dom_connect(d, port) < 0) {
        alog(d, "domain %u: cannot connect it to the local store: %s",
             d->domid, strerror(errno));
        goto fail;
    }
    quiet_set(d->domid, false);
    log_info("domain %u: serving its ring (%s, port %u)", d->domid,
           d->by_grant ? "grant" : "frame", d->port);
    return d;
fail:
    quiet_set(d->domid, true);
    dom_free(d);
    return NULL;
}

/*
 * dom0's kernel connection: the ring page its xenbus allocated for a
 * local store (kva: /proc/xen/xsd_kva, mapped whole) and the unbound port
 * it listens on (portfile: /proc/xen/xsd_port, a decimal number), bound
 * as xenstored binds it. NULL if there is none (not dom0, or not Linux's
 * xenfs) or it cannot be served (logged: e.g. a xenstored holds it).
 */
static struct dom *kernel_attach(const char *kva, const char *portfile)
{
    struct dom *d;
    char buf[32];
    uint64_t port;
    ssize_t n;
    void *ring;
    int fd, lport;

    if ((fd = open(portfile, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno != ENOENT)
            log_warnx("dom0's kernel: %s: %s", portfile, strerror(errno));
        else
            log_info("dom0's kernel: no %s: not serving it", portfile);
        return NULL;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    if (n <= 0 || parse_u64n(buf, strcspn(buf, "\n"), 1, 0xfffff, &port) < 0) {
        log_warnx("dom0's kernel: %s: not a port number: '%.20s'", portfile,
               buf);
        return NULL;
    }
    if ((fd = open(kva, O_RDWR | O_CLOEXEC)) < 0) {
        log_warnx("dom0's kernel: %s: %s", kva, strerror(errno));
        return NULL;
    }
    ring = mmap(NULL, XSR_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (ring == MAP_FAILED) {
        log_warnx("dom0's kernel: mmap %s: %s", kva, strerror(errno));
        return NULL;
    }
    if (!(d = dom_new(0, (uint32_t)port))) {
        munmap(ring, XSR_PAGE);
        return NULL;
    }
    d->kernel = true;
    d->ring = ring;
    /* Xen refuses a second binding of the port: a running xenstored
     * (a mixed host) keeps its connection. */
    if ((lport = xenevtchn_bind_interdomain(xce, 0, d->port)) < 0) {
        log_warnx("dom0's kernel: cannot bind its port %u: %s%s", d->port,
               strerror(errno),
               errno == EINVAL || errno == EBUSY
                   ? " (does xenstored serve it? then this host is mixed "
                     "and needs no ring service for dom0)"
                   : "");
        dom_free(d);
        return NULL;
    }
    if (dom_connect(d, lport) < 0) {
        log_warnx("dom0's kernel: cannot connect it to the local store: %s",
               strerror(errno));
        dom_free(d);
        return NULL;
    }
    /* Linux's xenbus in dom0 probes its backends at the first event. */
    notify(d);
    log_info("serving dom0's kernel connection (port %u)", d->port);
    return d;
}

static struct dom *dom_find(unsigned int domid)
{
    for (size_t i = 0; i < ndoms; i++)
        if (doms[i]->domid == domid)
            return doms[i];
    return NULL;
}

static void dom_detach(size_t i, bool released)
{
    struct dom *d = doms[i];
    char path[64];

    log_info("domain %u: released", d->domid);
    if (released) {
        rec_dir(d, path, sizeof(path));
        ctl_rm(path);
    }
    dom_free(d);
    doms[i] = doms[--ndoms];
}

/* At start: drop the records of domains released while it was away. */
static void prune(const struct cxs_ldom *l, size_t n)
{
    char *list = NULL, path[64];
    uint32_t ll = 0;

    if (ctl_call(XSW_DIRECTORY, REC_ROOT, sizeof(REC_ROOT), &list, &ll) < 0)
        return;
    for (uint32_t o = 0; o < ll;) {
        const char *name = list + o;
        unsigned long id = strtoul(name, NULL, 10);
        bool keep = false;

        o += (uint32_t)strnlen(name, ll - o) + 1;
        for (size_t j = 0; j < n && !keep; j++)
            keep = l[j].domid == id && l[j].mfn != 0;
        if (id == 0 && *name == '0' && !name[1])
            keep = dom_find(0) != NULL; /* dom0's kernel */
        snprintf(path, sizeof(path), REC_ROOT "/%.20s", name);
        if (!keep && *name)
            ctl_rm(path);
    }
    free(list);
}

/*
 * Compare the store's introduced domains with those served; a domain
 * attached resumes the watches recorded for its ring. first: the service
 * is starting.
 */
static void rescan(bool first)
{
    struct cxs_ldom *l = NULL;
    size_t n = 0;
    int rc = cxs_lstore_domains(ctl, &l, &n);

    if (rc < 0) {
        log_warnx("cannot list domains: %s", strerror(-rc));
        return;
    }
    for (size_t i = 0; i < ndoms; i++)
        doms[i]->seen = doms[i]->kernel; /* never introduced */
    for (size_t j = 0; j < n; j++) {
        struct dom *d;

        if (l[j].mfn == 0 || l[j].domid == 0)
            continue;
        d = dom_find(l[j].domid);
        if (d && (d->mfn != l[j].mfn || d->port != l[j].port)) {
            /* Introduced again with another ring (restore, resume). */
            for (size_t i = 0; i < ndoms; i++)
                if (doms[i] == d)
                    dom_detach(i, false);
            d = NULL;
        }
        if (!d) {
            if (ndoms == capdoms) {
                size_t c = capdoms ? capdoms * 2 : 16;
                struct dom **v = realloc(doms, c * sizeof(*v));
                if (!v)
                    break;
                doms = v;
                capdoms = c;
            }
            if (!(d = dom_attach(&l[j])))
                continue; /* tried again at the next scan */
            doms[ndoms++] = d;
        }
        d->seen = true;
    }
    for (size_t i = ndoms; i-- > 0;)
        if (!doms[i]->seen)
            dom_detach(i, true);
    for (size_t q = nquiet; q-- > 0;) {
        bool there = false;
        for (size_t j = 0; j < n && !there; j++)
            there = l[j].domid == quiet[q] && l[j].mfn != 0;
        if (!there)
            quiet_set(quiet[q], false);
    }
    if (first)
        prune(l, n);
    free(l);
}

/* ---- serving ----------------------------------------------------------- */

static void queue_msg(struct dom *d, uint32_t type, uint32_t req_id,
                      uint32_t tx_id, const void *p, uint32_t len)
{
    struct xsw_hdr h = {type, req_id, tx_id, len};

    if (xsr_queue(&d->out, &h, p) < 0) {
        /* Only events get here: requests wait for room (serve). */
        if (d->dropped++ == 0)
            log_warnx("domain %u does not read its ring: events dropped",
                   d->domid);
    }
}

static void queue_error(struct dom *d, const struct xsw_hdr *h, int e)
{
    const char *name = xsw_errno_name(e);

    queue_msg(d, XSW_ERROR, h->req_id, h->tx_id, name,
              (uint32_t)strlen(name) + 1);
}

static uint32_t tx_local(const struct dom *d, uint32_t guest)
{
    if (guest == 0)
        return 0;
    for (unsigned int i = 0; i < d->ntx; i++)
        if (d->tx[i].guest == guest)
            return d->tx[i].local;
    return UINT32_MAX; /* no such transaction: the store says ENOENT */
}

static void tx_forget(struct dom *d, uint32_t guest)
{
    for (unsigned int i = 0; i < d->ntx; i++)
        if (d->tx[i].guest == guest) {
            d->tx[i] = d->tx[--d->ntx];
            return;
        }
}

static void handle(struct dom *d, const struct xsw_hdr *h, const char *p)
{
    uint32_t rtype, rlen;
    char *r = NULL, num[16];
    int rc;

    log_debug("domain %u: %s tx %u len %u", d->domid, xsw_type_name(h->type),
           h->tx_id, h->len);
    if (h->type == XSW_WATCH && h->len > WATCH_REC_MAX) {
        queue_error(d, h, E2BIG);
        return;
    }
    rc = d->g->ops->request(d->g, h->type, tx_local(d, h->tx_id), p, h->len,
                            &rtype, &r, &rlen);
    if (rc < 0) {
        queue_error(d, h, EIO);
        return;
    }
    if (rlen > XSW_PAYLOAD_MAX) {
        free(r);
        queue_error(d, h, E2BIG);
        return;
    }
    if (rtype == XSW_WATCH) {
        rec_watch(d, p, h->len);
        watch_fd_on(d);
    } else if (rtype == XSW_UNWATCH) {
        rec_unwatch(d, p, h->len);
    } else if (rtype == XSW_RESET_WATCHES) {
        rec_reset(d);
        d->ntx = 0;
    } else if (rtype == XSW_TRANSACTION_START) {
        if (d->ntx == TX_MAX) {
            /* Never with the store's quota below TX_MAX; but never lose
             * track of one either. */
            uint32_t id = (uint32_t)strtoul(r, NULL, 10);
            free(r);
            r = NULL;
            d->g->ops->request(d->g, XSW_TRANSACTION_END, id, "F", 2, &rtype,
                               &r, &rlen);
            free(r);
            queue_error(d, h, EAGAIN);
            return;
        }
        if (++d->txnext == 0)
            d->txnext = 1;
        d->tx[d->ntx].guest = d->txnext;
        d->tx[d->ntx++].local = (uint32_t)strtoul(r, NULL, 10);
        free(r);
        snprintf(num, sizeof(num), "%u", d->txnext);
        queue_msg(d, rtype, h->req_id, h->tx_id, num, (uint32_t)strlen(num) + 1);
        return;
    } else if (h->type == XSW_TRANSACTION_END &&
               !(rtype == XSW_ERROR && strcmp(r, "EINVAL") == 0)) {
        /* Committed, failed or aborted: the store has let it go. */
        tx_forget(d, h->tx_id);
    }
    queue_msg(d, rtype, h->req_id, h->tx_id, r, rlen);
    free(r);
}

static void broken(struct dom *d, uint32_t err)
{
    if (!d->broken)
        log_warnx("domain %u broke the ring protocol (%s): not served until "
                  "it reconnects",
               d->domid,
               err == XSR_ERROR_RINGIDX ? "ring index" : "message");
    d->broken = true;
    __atomic_store_n(&d->ring->error, err, __ATOMIC_RELEASE);
}

/* The guest asks for a fresh connection (xs_wire.h's reconnection). */
static void reconnect(struct dom *d)
{
    uint32_t rt, rl;
    char *r = NULL;

    call(d->g, XSW_RESET_WATCHES, "", 0, &rt, &r, &rl);
    free(r);
    rec_reset(d);
    d->ntx = 0;
    d->in.have = d->in.peeked = 0;
    d->out.len = d->out.off = 0;
    d->broken = false;
    d->ring->req_cons = d->ring->req_prod = 0;
    d->ring->rsp_cons = d->ring->rsp_prod = 0;
    d->ring->error = XSR_ERROR_NONE;
    __atomic_store_n(&d->ring->connection, XSR_CONNECTED, __ATOMIC_RELEASE);
    notify(d);
    log_info("domain %u reconnected", d->domid);
}

static bool out_pending(const struct dom *d)
{
    return d->out.len > d->out.off;
}

/* One turn for d: true if it has more to do right away. */
static bool serve(struct dom *d)
{
    struct xsw_hdr h;
    uint32_t err;
    bool kick = false, more = false;
    long w;

    if (__atomic_load_n(&d->ring->connection, __ATOMIC_ACQUIRE) ==
        XSR_RECONNECT)
        reconnect(d);
    if (d->broken)
        return false;
    /* Watch events, while there is room for them and a reply. */
    for (int i = 0; d->evfd >= 0 && i < EV_BUDGET; i++) {
        char *ev = NULL;
        uint32_t len = 0;

        /* Full: the guest is not reading; its notification resumes. */
        if (d->out.len - d->out.off + 2 * XSR_MSG_MAX > d->out.cap)
            break;
        if (d->g->ops->next_event(d->g, &ev, &len) < 0)
            break;
        if (len <= XSW_PAYLOAD_MAX)
            queue_msg(d, XSW_WATCH_EVENT, 0, 0, ev, len);
        free(ev);
        more = i + 1 == EV_BUDGET;
    }
    for (int i = 0; i < BUDGET; i++) {
        if ((w = xsr_flush(d->ring, &d->out, &err)) < 0) {
            broken(d, err);
            return false;
        }
        kick |= w > 0;
        /* A reply waits for room: the guest reads its ring first. */
        if (out_pending(d))
            break;
        int rc = xsr_get(d->ring, &d->in, &h, &err);
        if (rc < 0) {
            broken(d, err);
            notify(d);
            return false;
        }
        if (rc == 0)
            break;
        handle(d, &h, (const char *)d->in.buf + sizeof(h));
        if ((w = xsr_flush(d->ring, &d->out, &err)) < 0) {
            broken(d, err);
            return false;
        }
        xsr_done(d->ring, &d->in);
        kick = true;
        if (i + 1 == BUDGET)
            more = true;
    }
    if (kick)
        notify(d);
    return more;
}

/* ---- main -------------------------------------------------------------- */

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-xsringd [-v] [--store DIR] [--no-kernel]\n"
            "                    [--xsd-kva FILE] [--xsd-port FILE]\n"
            "Answers guests' XenStore rings, and dom0's kernel connection,\n"
            "from compat-xs's local store.\n"
            "  -s, --store DIR  the local store (default $NOXS_XS_DIR, else\n"
            "                   /var/lib/noxs/xenstore)\n"
            "  --xsd-kva FILE   dom0's kernel ring page (default\n"
            "                   /proc/xen/xsd_kva)\n"
            "  --xsd-port FILE  its event channel (default /proc/xen/xsd_port)\n"
            "  --no-kernel      serve guests' rings only\n"
            "  -v               log each request too\n"
            "  -V, --version    print the version\n"
            "  -h, --help       this text\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"xsd-kva", required_argument, NULL, 'K'},
        {"xsd-port", required_argument, NULL, 'P'},
        {"no-kernel", no_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct epoll_event ev;
    struct rlimit rl;
    int c, lockfd, ctlfd, evtfd;
    bool busy = true, kernel = true;
    long last_sweep = now_ms();
    const char *kva = "/proc/xen/xsd_kva", *kport = "/proc/xen/xsd_port";

    while ((c = getopt_long(argc, argv, "s:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 's': store_dir = optarg; break;
        case 'K': kva = optarg; break;
        case 'P': kport = optarg; break;
        case 'N': kernel = false; break;
        case 'v': verbose++; break;
        case 'h': usage(stdout); return 0;
        case 'V': print_version("noxs-xsringd"); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    /* One line per domain served, released or broken; -v: each request. */
    log_init("noxs-xsringd", verbose);
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        tx_base = (uint32_t)ts.tv_sec * 2654435761u ^ (uint32_t)ts.tv_nsec ^
                  (uint32_t)getpid() << 16;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    /* A store connection and an event fd per domain. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (!(ctl = cxs_lstore_open(store_dir, 0))) {
        log_warnx("cannot open the local store: %s", strerror(errno));
        return 1;
    }
    if ((lockfd = cxs_ringd_lock(store_dir)) < 0) {
        log_warnx("%s", lockfd == -EBUSY
                            ? "another noxs-xsringd serves this store"
                            : strerror(-lockfd));
        return 1;
    }
    xce = xenevtchn_open(NULL, 0);
    xfm = xenforeignmemory_open(NULL, 0);
    xgt = xengnttab_open(NULL, 0);
    if (!xce || !xfm) {
        log_warnx("cannot open the event channel or foreign memory device: "
                  "%s",
               strerror(errno));
        return 1;
    }
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (ctlfd = ctl->ops->event_fd(ctl)) < 0 || (evtfd = xenevtchn_fd(xce)) < 0)
        return 1;
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &ctl};
    epoll_ctl(epfd, EPOLL_CTL_ADD, ctlfd, &ev);
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = &xce};
    epoll_ctl(epfd, EPOLL_CTL_ADD, evtfd, &ev);
    /* Records readable by dom0 only. */
    if (ctl_call(XSW_MKDIR, REC_ROOT, sizeof(REC_ROOT), NULL, NULL) < 0 ||
        ctl_call(XSW_SET_PERMS, REC_ROOT "\0n0", sizeof(REC_ROOT "\0n0"),
                 NULL, NULL) < 0 ||
        ctl_call(XSW_WATCH, "@introduceDomain\0in", 20, NULL, NULL) < 0 ||
        ctl_call(XSW_WATCH, "@releaseDomain\0out", 19, NULL, NULL) < 0) {
        log_warnx("cannot set up in the local store");
        return 1;
    }
    if (kernel) {
        struct dom *k = kernel_attach(kva, kport);
        if (k) {
            if (!(doms = calloc(16, sizeof(*doms))))
                return 1;
            capdoms = 16;
            doms[ndoms++] = k;
        }
    }
    rescan(true);
    log_info("serving %zu rings", ndoms);

    while (!stopping) {
        struct epoll_event evs[64];
        bool scan = false;
        int n = epoll_wait(epfd, evs, 64, busy ? 0 : 1000);

        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &ctl) {
                char *p;
                uint32_t len;
                for (int k = 0; k < 64 &&
                                ctl->ops->next_event(ctl, &p, &len) == 0;
                     k++) {
                    free(p);
                    scan = true;
                }
            } else if (evs[i].data.ptr == &xce) {
                /* xenevtchn_pending blocks when nothing is pending: take
                 * one port per readiness of its fd. */
                for (int k = 0; k < 4096; k++) {
                    struct pollfd pfd = {.fd = evtfd, .events = POLLIN};
                    xenevtchn_port_or_error_t p;
                    if (k > 0 && poll(&pfd, 1, 0) != 1)
                        break;
                    if ((p = xenevtchn_pending(xce)) < 0)
                        break;
                    if ((size_t)p < nbyport && byport[p])
                        byport[p]->busy = true;
                    xenevtchn_unmask(xce, (evtchn_port_t)p);
                }
            } else {
                ((struct dom *)evs[i].data.ptr)->busy = true;
            }
        }
        if (now_ms() - last_sweep >= 1000) {
            /* Every second, however busy: look at every ring (a lost
             * notification, a domain that could not be attached). */
            last_sweep = now_ms();
            scan = true;
            for (size_t i = 0; i < ndoms; i++)
                doms[i]->busy = true;
        }
        if (scan)
            rescan(false);
        busy = false;
        for (size_t i = 0; i < ndoms; i++) {
            struct dom *d = doms[i];
            if (d->busy)
                busy |= d->busy = serve(d);
        }
    }
    log_info("stopping");
    while (ndoms)
        dom_detach(ndoms - 1, false);
    ctl->ops->close(ctl);
    free(doms);
    free(byport);
    xenevtchn_close(xce);
    xenforeignmemory_close(xfm);
    if (xgt)
        xengnttab_close(xgt);
    close(lockfd);
    return 0;
}
