/*
 * The rings the service answers: guests' store rings, found in the local
 * store's domain table, and dom0's kernel ring (docs/XSRINGD.md "How it
 * learns about domains", "dom0's kernel connection"); the connection
 * table every kind of connection lives in.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "xsringd_int.h"

#ifndef GNTTAB_RESERVED_XENSTORE
#define GNTTAB_RESERVED_XENSTORE 1
#endif
/* dom0 kernel ring page (xsd_kva): one page. */
#define XSR_PAGE 4096u

/* Local event channel port -> its ring. */
static struct conn **byport;
static size_t nbyport;
/* Domid -> its ring (rescan looks every introduced domain up at every
 * @introduceDomain and @releaseDomain: a scan of the table would make
 * that O(rings^2)). Made at the first ring; without it, the scan. */
#define BYDOM_MAX 0x7ff0u /* DOMID_FIRST_RESERVED */
static struct conn **bydom;

int conns_add(struct conn *d)
{
    if (ndoms == capdoms) {
        size_t c = capdoms ? capdoms * 2 : 16;
        struct conn **v = realloc(doms, c * sizeof(*v));

        if (!v)
            return -ENOMEM;
        doms = v;
        capdoms = c;
    }
    doms[ndoms++] = d;
    if (d->sfd < 0 && d->domid < BYDOM_MAX &&
        (bydom || (bydom = calloc(BYDOM_MAX, sizeof(*bydom)))))
        bydom[d->domid] = d;
    return 0;
}

/* Take connection i out of the table (not freed). */
void conn_remove(size_t i)
{
    struct conn *d = doms[i];

    if (bydom && d->domid < BYDOM_MAX && bydom[d->domid] == d)
        bydom[d->domid] = NULL;
    doms[i] = doms[--ndoms];
}

/* A notification on a local port: its ring has work. */
void port_pending(int port)
{
    if (port >= 0 && (size_t)port < nbyport && byport[port])
        byport[port]->busy = true;
}

void ports_free(void)
{
    free(byport);
    byport = NULL;
    nbyport = 0;
    free(bydom);
    bydom = NULL;
}

void notify(struct conn *d)
{
    if (d->lport >= 0)
        xenevtchn_notify(xce, (evtchn_port_t)d->lport);
}

void conn_free(struct conn *d)
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
    if (d->sfd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, d->sfd, NULL);
        close(d->sfd);
    }
    if (d->g)
        d->g->ops->close(d->g);
    xsr_out_free(&d->out);
    pw_clear(d);
    free(d);
}

static int byport_set(int port, struct conn *d)
{
    if ((size_t)port >= nbyport) {
        size_t n = (size_t)port + 64;
        struct conn **v = realloc(byport, n * sizeof(*v));

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

#define alog(d, ...)                \
    do {                            \
        if (!quiet_has((d)->domid)) \
            log_warnx(__VA_ARGS__); \
    } while (0)

/* A domain to serve on its store port, not yet mapped or bound. */
struct conn *conn_new(unsigned int domid, uint32_t port)
{
    struct conn *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->domid = domid;
    d->port = port;
    d->lport = -1;
    d->sfd = -1;
    d->out.cap = OUT_CAP;
    d->txnext = tx_base;
    return d;
}

/*
 * d has its ring mapped and its port bound (lport): index the port, open
 * a store connection that runs d's requests as d, set the watches
 * recorded for it again and open the ring. 0, or -1 with errno.
 */
static int dom_connect(struct conn *d, int lport)
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
static struct conn *dom_attach(const struct cxs_ldom *l)
{
    struct conn *d = conn_new(l->domid, l->port);
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
    conn_free(d);
    return NULL;
}

/*
 * dom0's kernel connection: the ring page its xenbus allocated for a
 * local store (kva: /proc/xen/xsd_kva, mapped whole) and the unbound port
 * it listens on (portfile: /proc/xen/xsd_port, a decimal number), bound
 * as xenstored binds it. NULL if there is none (not dom0, or not Linux's
 * xenfs) or it cannot be served (logged: e.g. a xenstored holds it).
 */
struct conn *kernel_attach(const char *kva, const char *portfile)
{
    struct conn *d;
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
    if (!(d = conn_new(0, (uint32_t)port))) {
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
        conn_free(d);
        return NULL;
    }
    if (dom_connect(d, lport) < 0) {
        log_warnx("dom0's kernel: cannot connect it to the local store: %s",
                  strerror(errno));
        conn_free(d);
        return NULL;
    }
    /* Linux's xenbus in dom0 probes its backends at the first event. */
    notify(d);
    log_info("serving dom0's kernel connection (port %u)", d->port);
    return d;
}

/* The ring of domid (a socket client runs as 0 but is no ring). */
static struct conn *dom_find(unsigned int domid)
{
    if (bydom && domid < BYDOM_MAX)
        return bydom[domid];
    for (size_t i = 0; i < ndoms; i++)
        if (doms[i]->domid == domid && doms[i]->sfd < 0)
            return doms[i];
    return NULL;
}

void dom_detach(size_t i, bool released)
{
    struct conn *d = doms[i];
    char path[64];

    log_info("domain %u: released", d->domid);
    if (released) {
        rec_dir(d, path, sizeof(path));
        ctl_rm(path);
    }
    conn_remove(i);
    conn_free(d);
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
void rescan(bool first)
{
    struct cxs_ldom *l = NULL;
    size_t n = 0;
    int rc = cxs_lstore_domains(ctl, &l, &n);

    if (rc < 0) {
        log_warnx("cannot list domains: %s", strerror(-rc));
        return;
    }
    for (size_t i = 0; i < ndoms; i++)
        /* dom0's kernel and socket clients are never introduced. */
        doms[i]->seen = doms[i]->kernel || doms[i]->sfd >= 0;
    for (size_t j = 0; j < n; j++) {
        struct conn *d;

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
            if (!(d = dom_attach(&l[j])))
                continue; /* tried again at the next scan */
            if (conns_add(d) < 0) {
                conn_free(d);
                break;
            }
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
