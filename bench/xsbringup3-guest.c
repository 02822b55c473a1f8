/*
 * xs-bringup3's guests: the frontends of one domain, over its store ring,
 * in the order Linux's drivers take their steps (xen-blkfront, hvc_xen's
 * xenbus console, and the legacy pair's netfront-like vif). All three are
 * driven by one event loop, as xenbus drives them from its watch thread:
 * each watches its backend's state and acts when it changes.
 *   vbd: on the backend's InitWait read its ring limits, grant the ring
 *     page, allocate the channel, write ring-ref, event-channel,
 *     protocol and feature-persistent and go Initialised in one
 *     transaction; on Connected read sectors, info, sector-size and the
 *     other connect keys and go Connected.
 *   console: at once grant the page, allocate the channel and write
 *     ring-ref, port and Initialised in one transaction; on the
 *     backend's Connected go Connected.
 *   vif: the legacy frontend (xsrc_front_publish) on InitWait.
 */
#include "xsbringup3.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <noxs/noxs.h>

#include "../tests/legacy/legacy.h"

const struct x3_class x3_classes[X3_NDEV] = {
    [X3_VBD] = {"vbd", X3_VBD_DEVID},
    [X3_CONSOLE] = {"console", 0},
    [X3_VIF] = {"vif", 0},
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int x3_guest_open(struct x3_guest *g, unsigned int domid)
{
    int prev = -1, saved;

    memset(g, 0, sizeof(*g));
    g->domid = domid;
    if (xsrc_open(&g->c, domid, XSRC_STORE_GFN) < 0)
        return -1;
    /* The data path's handles act as the guest too. */
    if (noxs_open_as((int)domid, &prev) < 0)
        return -1;
    g->xce = xenevtchn_open(NULL, 0);
    g->gs = xengntshr_open(NULL, 0);
    saved = errno;
    noxs_open_as(prev, NULL);
    if (!g->xce || !g->gs) {
        errno = saved;
        return -1;
    }
    for (int i = 0; i < X3_NDEV; i++)
        snprintf(g->dev[i].dir, sizeof(g->dev[i].dir),
                 "/local/domain/%u/device/%s/%u", domid, x3_classes[i].cls,
                 x3_classes[i].devid);
    return 0;
}

void x3_guest_close(struct x3_guest *g)
{
    for (int i = 0; i < X3_NDEV; i++) {
        struct x3_gdev *d = &g->dev[i];

        if (d->ring)
            xengntshr_unshare(g->gs, d->ring, 1);
        if (d->data)
            xengntshr_unshare(g->gs, d->data, 1);
        if (d->port)
            xenevtchn_unbind(g->xce, d->port);
        d->ring = d->data = NULL;
        d->port = 0;
    }
    if (g->gs)
        xengntshr_close(g->gs);
    if (g->xce)
        xenevtchn_close(g->xce);
    g->gs = NULL;
    g->xce = NULL;
    xsrc_close(&g->c);
}

/* Grant a page to domain 0 (*ref) and, for a ring, allocate a channel. */
static void *share(struct x3_guest *g, uint32_t *ref)
{
    void *p = xengntshr_share_pages(g->gs, 0, 1, ref, 1);

    if (p)
        memset(p, 0, 4096);
    return p;
}

static int ring_up(struct x3_guest *g, struct x3_gdev *d)
{
    xenevtchn_port_or_error_t p;

    if (!d->ring && !(d->ring = share(g, &d->ref)))
        return -1;
    if (!d->port) {
        if ((p = xenevtchn_bind_unbound_port(g->xce, 0)) < 0)
            return -1;
        d->port = (evtchn_port_t)p;
    }
    return 0;
}

static int read_key(struct x3_guest *g, const char *dir, const char *key,
                    int *out)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xsrc_read_int(&g->c, 0, path, out);
}

/* blkfront's talk_to_blkback. */
static int vbd_initialise(struct x3_guest *g, struct x3_gdev *d)
{
    char ref[16], port[16];
    int v;

    /* Optional limits: absent is fine. */
    read_key(g, d->be, "max-ring-page-order", &v);
    read_key(g, d->be, "multi-queue-max-queues", &v);
    if (ring_up(g, d) < 0 || (!d->data && !(d->data = share(g, &d->dref))))
        return -1;
    snprintf(ref, sizeof(ref), "%u", d->ref);
    snprintf(port, sizeof(port), "%u", d->port);
    const char *const keys[][2] = {
        {"ring-ref", ref},
        {"event-channel", port},
        {"protocol", "x86_64-abi"},
        {"feature-persistent", "1"},
        {"state", "3"},
    };
    return xsrc_write_keys(&g->c, d->dir, keys, sizeof(keys) / sizeof(keys[0]));
}

/* blkfront_connect: what it reads of the backend before going Connected. */
static int vbd_connect(struct x3_guest *g, struct x3_gdev *d)
{
    static const char *const need[] = {"sectors", "info", "sector-size"};
    static const char *const optional[] = {
        "physical-sector-size",
        "feature-flush-cache",
        "feature-barrier",
        "feature-discard",
        "feature-persistent",
        "feature-max-indirect-segments",
    };
    char path[160];
    int v;

    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (read_key(g, d->be, need[i], &v) < 0)
            return -1;
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
        read_key(g, d->be, optional[i], &v);
    snprintf(path, sizeof(path), "%s/state", d->dir);
    return xsrc_write(&g->c, 0, path, "4");
}

/* hvc_xen's xencons_connect_backend, at probe. */
static int console_initialise(struct x3_guest *g, struct x3_gdev *d)
{
    char ref[16], port[16];

    if (ring_up(g, d) < 0)
        return -1;
    snprintf(ref, sizeof(ref), "%u", d->ref);
    snprintf(port, sizeof(port), "%u", d->port);
    const char *const keys[][2] = {
        {"ring-ref", ref}, {"port", port}, {"state", "3"}};
    return xsrc_write_keys(&g->c, d->dir, keys, sizeof(keys) / sizeof(keys[0]));
}

/* One device's step on its backend's state; -1 on a failure. */
static int step(struct x3_guest *g, int i)
{
    struct x3_gdev *d = &g->dev[i];
    char path[160];
    int be;

    snprintf(path, sizeof(path), "%s/state", d->be);
    if (xsrc_read_int(&g->c, 0, path, &be) < 0)
        return errno == ENOENT ? 0 : -1;
    d->be_state = be;
    if (be >= LEGACY_CLOSING) {
        errno = ECONNRESET;
        return -1;
    }
    if (i == X3_VBD && be == LEGACY_INITWAIT &&
        d->fe_state < LEGACY_INITIALISED) {
        if (vbd_initialise(g, d) < 0)
            return -1;
        d->fe_state = LEGACY_INITIALISED;
    } else if (i == X3_VIF && be == LEGACY_INITWAIT &&
               d->fe_state < LEGACY_CONNECTED) {
        if (read_key(g, d->be, "feature-rx-copy", &be) < 0 || be != 1) {
            errno = EOPNOTSUPP;
            return -1;
        }
        if (xsrc_front_publish(&g->c, d->dir) < 0)
            return -1;
        d->fe_state = LEGACY_CONNECTED;
    } else if (be == LEGACY_CONNECTED && d->fe_state == LEGACY_INITIALISED) {
        if (i == X3_VBD && vbd_connect(g, d) < 0)
            return -1;
        snprintf(path, sizeof(path), "%s/state", d->dir);
        if (i == X3_CONSOLE && xsrc_write(&g->c, 0, path, "4") < 0)
            return -1;
        d->fe_state = LEGACY_CONNECTED;
    }
    return 0;
}

static bool all_connected(const struct x3_guest *g)
{
    for (int i = 0; i < X3_NDEV; i++)
        if (g->dev[i].be_state != LEGACY_CONNECTED ||
            g->dev[i].fe_state != LEGACY_CONNECTED)
            return false;
    return true;
}

int x3_guest_connect(struct x3_guest *g, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    char path[160], token[8], *v;
    bool due[X3_NDEV];

    /* xenbus: the device appears, its backend path is read and the
     * backend's state watched for the device's life (the watches stay). */
    for (int i = 0; i < X3_NDEV; i++) {
        struct x3_gdev *d = &g->dev[i];
        uint32_t len;

        snprintf(path, sizeof(path), "%s/backend", d->dir);
        if (!(v = xsrc_read(&g->c, 0, path, &len)))
            return -1;
        snprintf(d->be, sizeof(d->be), "%s", v);
        free(v);
        d->fe_state = LEGACY_INITIALISING;
        snprintf(path, sizeof(path), "%s/state", d->be);
        snprintf(token, sizeof(token), "be%d", i);
        if (xsrc_watch(&g->c, path, token) < 0)
            return -1;
        due[i] = true;
    }
    if (console_initialise(g, &g->dev[X3_CONSOLE]) < 0)
        return -1;
    g->dev[X3_CONSOLE].fe_state = LEGACY_INITIALISED;
    while (!all_connected(g)) {
        struct xsrc_event ev;
        long long left;

        for (int i = 0; i < X3_NDEV; i++) {
            if (due[i] && step(g, i) < 0)
                return -1;
            due[i] = false;
        }
        if (all_connected(g))
            break;
        left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int got = xsrc_wait_event(&g->c, (int)left, &ev);
        if (got < 0)
            return -1;
        if (got == 0)
            continue;
        if (strncmp(ev.token, "be", 2) == 0 && ev.token[2] >= '0' &&
            ev.token[2] < '0' + X3_NDEV)
            due[ev.token[2] - '0'] = true;
        free(ev.path);
    }
    return 0;
}

/* Wait until both rings have an answer; every wait bounded. */
static int wait_answers(struct x3_guest *g, long long deadline)
{
    struct x3_ring *b = g->dev[X3_VBD].ring, *c = g->dev[X3_CONSOLE].ring;
    struct pollfd pfd = {.fd = xenevtchn_fd(g->xce), .events = POLLIN};

    while (__atomic_load_n(&b->rsp, __ATOMIC_ACQUIRE) != b->req ||
           __atomic_load_n(&c->rsp, __ATOMIC_ACQUIRE) != c->req) {
        long long left = deadline - now_ms();
        xenevtchn_port_or_error_t p;

        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        /* Slices: the answer is looked at again even if a notification
         * were lost. */
        if (poll(&pfd, 1, left < 1000 ? (int)left : 1000) > 0 &&
            (p = xenevtchn_pending(g->xce)) >= 0)
            xenevtchn_unmask(g->xce, (evtchn_port_t)p);
    }
    return 0;
}

int x3_guest_first_byte(struct x3_guest *g, int timeout_ms)
{
    struct x3_gdev *b = &g->dev[X3_VBD], *c = &g->dev[X3_CONSOLE];
    const uint8_t *data;

    b->ring->op = X3_OP_READ;
    b->ring->sector = 0;
    b->ring->gref = b->dref;
    __atomic_store_n(&b->ring->req, 1, __ATOMIC_RELEASE);
    xenevtchn_notify(g->xce, b->port);
    c->ring->byte = 'x';
    __atomic_store_n(&c->ring->req, 1, __ATOMIC_RELEASE);
    xenevtchn_notify(g->xce, c->port);
    if (wait_answers(g, now_ms() + timeout_ms) < 0)
        return -1;
    data = b->data;
    for (unsigned int i = 0; i < 4096; i++)
        if (data[i] != x3_sector0(g->domid, i)) {
            errno = EIO;
            return -1;
        }
    return 0;
}
