/* xsrclient: see xsrclient.h. */
#include "xsrclient.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Only the ring layout and the message header: the wire definitions. */
#include "../compat-xs/wire.h"
#include "../compat-xs/xsringd_ring.h"
#include "../sim/sim.h"
#include <noxs/noxs.h>
/* legacy_take_int: the legacy pair's reading of a node as an int. */
#include "../tests/legacy/legacy.h"

#define DEFAULT_TIMEOUT_MS 30000
/* A wait on the event channel is cut into slices this long, after each
 * of which the ring is looked at again (a liveness bound only: the
 * daemons notify on every reply). */
#define SLICE_MS 1000

unsigned long xsrc_slow_wakeups;

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t ld(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

int xsrc_open(struct xsrc *c, unsigned int domid, unsigned int gfn)
{
    const char *dir = getenv("NOXS_SIM_DIR");
    char path[4096];
    xenevtchn_port_or_error_t p;
    int fd, saved, prev = -1;

    memset(c, 0, sizeof(*c));
    c->domid = domid;
    c->next_id = 1;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!dir || !*dir) {
        errno = EINVAL;
        return -1;
    }
    /* The handle acts as the guest (the simulator's per-thread
     * identity; the environment is left alone). */
    if (noxs_open_as((int)domid, &prev) < 0)
        return -1;
    c->xce = xenevtchn_open(NULL, 0);
    saved = errno;
    noxs_open_as(prev, NULL);
    if (!c->xce) {
        errno = saved;
        return -1;
    }
    p = xenevtchn_bind_unbound_port(c->xce, 0);
    if (p < 0)
        goto fail;
    c->port = (evtchn_port_t)p;
    /* The guest's own memory is its domain file's memory region (the
     * handle above made the file). */
    snprintf(path, sizeof(path), "%s/dom-%u", dir, domid);
    if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
        goto fail;
    c->ring = mmap(NULL, SIM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, (off_t)(SIM_MEM_OFF + (uint64_t)gfn * SIM_PAGE_SIZE));
    saved = errno;
    close(fd);
    if (c->ring == MAP_FAILED) {
        c->ring = NULL;
        errno = saved;
        goto fail;
    }
    memset(c->ring, 0, sizeof(struct xsr_intf));
    return 0;
fail:
    saved = errno;
    xenevtchn_close(c->xce);
    c->xce = NULL;
    errno = saved;
    return -1;
}

void xsrc_close(struct xsrc *c)
{
    xsrc_drop_events(c);
    free(c->evq);
    c->evq = NULL;
    c->evcap = 0;
    if (c->ring)
        munmap(c->ring, SIM_PAGE_SIZE);
    c->ring = NULL;
    if (c->xce)
        xenevtchn_close(c->xce);
    c->xce = NULL;
}

static void kick(struct xsrc *c)
{
    xenevtchn_notify(c->xce, c->port);
}

/* Sleep until the store port fires or the deadline (or a slice) passes;
 * -1/ETIMEDOUT past the deadline. */
static int wait_io(struct xsrc *c, long long deadline)
{
    struct pollfd pfd = {.fd = xenevtchn_fd(c->xce), .events = POLLIN};
    long long left = deadline - now_ms();

    if (left <= 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    int slice = (int)(left < SLICE_MS ? left : SLICE_MS), rc;

    rc = poll(&pfd, 1, slice);
    if (rc > 0) {
        xenevtchn_port_or_error_t p = xenevtchn_pending(c->xce);
        if (p >= 0)
            xenevtchn_unmask(c->xce, (evtchn_port_t)p);
    } else if (rc == 0 && slice == SLICE_MS) {
        xsrc_slow_wakeups++;
    }
    return 0;
}

static int ring_put(struct xsrc *c, const void *buf, uint32_t len,
                    long long deadline)
{
    struct xsr_intf *r = c->ring;
    const char *b = buf;

    while (len) {
        uint32_t prod = r->req_prod, cons = ld(&r->req_cons);
        uint32_t room = XSR_RING_SIZE - (prod - cons), n, o;

        if (room == 0 || room > XSR_RING_SIZE) {
            if (wait_io(c, deadline) < 0)
                return -1;
            continue;
        }
        n = room < len ? room : len;
        o = prod & (XSR_RING_SIZE - 1);
        if (n > XSR_RING_SIZE - o)
            n = XSR_RING_SIZE - o;
        memcpy(r->req + o, b, n);
        st(&r->req_prod, prod + n);
        /* As xenbus: notify when the daemon had taken everything before
         * (it may be idle); otherwise it is still reading and sees the
         * new producer index. */
        if (prod == ld(&r->req_cons))
            kick(c);
        b += n;
        len -= n;
    }
    return 0;
}

static int ring_get(struct xsrc *c, void *buf, uint32_t len,
                    long long deadline)
{
    struct xsr_intf *r = c->ring;
    char *b = buf;

    while (len) {
        uint32_t cons = r->rsp_cons, prod = ld(&r->rsp_prod);
        uint32_t avail = prod - cons, n, o;

        if (avail == 0) {
            if (wait_io(c, deadline) < 0)
                return -1;
            continue;
        }
        if (avail > XSR_RING_SIZE) {
            errno = EPROTO;
            return -1;
        }
        n = avail < len ? avail : len;
        o = cons & (XSR_RING_SIZE - 1);
        if (n > XSR_RING_SIZE - o)
            n = XSR_RING_SIZE - o;
        memcpy(b, r->rsp + o, n);
        st(&r->rsp_cons, cons + n);
        /* As xenbus: the daemon waits for room only when it was full. */
        if (avail >= XSR_RING_SIZE)
            kick(c);
        b += n;
        len -= n;
    }
    return 0;
}

struct msg {
    struct xsw_hdr h;
    char *p;
};

static int get_msg(struct xsrc *c, struct msg *m, long long deadline)
{
    if (ring_get(c, &m->h, sizeof(m->h), deadline) < 0)
        return -1;
    if (m->h.len > XSW_PAYLOAD_MAX) {
        errno = EPROTO;
        return -1;
    }
    if (!(m->p = malloc(m->h.len + 1)))
        return -1;
    if (ring_get(c, m->p, m->h.len, deadline) < 0) {
        free(m->p);
        return -1;
    }
    m->p[m->h.len] = '\0';
    return 0;
}

static void queue_event(struct xsrc *c, struct msg *m)
{
    size_t plen = strnlen(m->p, m->h.len);

    if (c->nev == c->evcap) {
        size_t cap = c->evcap ? c->evcap * 2 : 8;
        struct xsrc_event *q = realloc(c->evq, cap * sizeof(*q));
        if (!q) {
            free(m->p);
            return;
        }
        c->evq = q;
        c->evcap = cap;
    }
    c->evq[c->nev].path = m->p;
    c->evq[c->nev].token = plen < m->h.len ? m->p + plen + 1 : m->p + plen;
    c->nev++;
}

static const struct {
    const char *name;
    int e;
} errs[] = {
    {"EINVAL", EINVAL},
    {"EACCES", EACCES},
    {"EEXIST", EEXIST},
    {"EISDIR", EISDIR},
    {"ENOENT", ENOENT},
    {"ENOMEM", ENOMEM},
    {"ENOSPC", ENOSPC},
    {"EIO", EIO},
    {"ENOTEMPTY", ENOTEMPTY},
    {"ENOSYS", ENOSYS},
    {"EROFS", EROFS},
    {"EBUSY", EBUSY},
    {"EAGAIN", EAGAIN},
    {"EISCONN", EISCONN},
    {"E2BIG", E2BIG},
    {"EPERM", EPERM},
    {"EQUOTA", EDQUOT},
    {"ENOTCONN", ENOTCONN},
};

static int err_of(const char *name)
{
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        if (strcmp(name, errs[i].name) == 0)
            return errs[i].e;
    return EIO;
}

int xsrc_request(struct xsrc *c, uint32_t type, uint32_t tx,
                 const void *payload, uint32_t len, char **reply,
                 uint32_t *rlen)
{
    long long deadline = now_ms() + c->timeout_ms;
    struct xsw_hdr h = {type, c->next_id++, tx, len};
    struct msg m;

    if (len > XSW_PAYLOAD_MAX) {
        errno = E2BIG;
        return -1;
    }
    if (ring_put(c, &h, sizeof(h), deadline) < 0 ||
        ring_put(c, payload, len, deadline) < 0)
        return -1;
    for (;;) {
        if (get_msg(c, &m, deadline) < 0)
            return -1;
        if (m.h.type == XSW_WATCH_EVENT) {
            queue_event(c, &m);
            continue;
        }
        if (m.h.req_id != h.req_id) {
            free(m.p); /* a reply to nothing we wait for */
            continue;
        }
        break;
    }
    if (m.h.type == XSW_ERROR) {
        int e = err_of(m.p);
        free(m.p);
        errno = e;
        return -1;
    }
    if (rlen)
        *rlen = m.h.len;
    if (reply)
        *reply = m.p;
    else
        free(m.p);
    return 0;
}

/* "a\0" + b (+ "\0" if trail); 0 if it does not fit. */
static uint32_t args(char *buf, size_t n, const char *a, const char *b,
                     bool trail)
{
    size_t la = strlen(a) + 1, lb = b ? strlen(b) + (trail ? 1 : 0) : 0;

    if (la + lb > n)
        return 0;
    memcpy(buf, a, la);
    if (b)
        memcpy(buf + la, b, lb);
    return (uint32_t)(la + lb);
}

/*
 * A request of arguments a and b (as args() lays them out); toolong: the
 * errno when they do not fit a message. Reply as xsrc_request.
 */
static int request_args(struct xsrc *c, uint32_t type, uint32_t tx,
                        const char *a, const char *b, bool trail, int toolong,
                        char **reply, uint32_t *rlen)
{
    char buf[XSW_PAYLOAD_MAX];
    uint32_t n = args(buf, sizeof(buf), a, b, trail);

    if (n == 0) {
        errno = toolong;
        return -1;
    }
    return xsrc_request(c, type, tx, buf, n, reply, rlen);
}

char *xsrc_read(struct xsrc *c, uint32_t tx, const char *path, uint32_t *len)
{
    char *v;

    if (request_args(c, XSW_READ, tx, path, NULL, false, ENAMETOOLONG, &v,
                     len) < 0)
        return NULL;
    return v;
}

int xsrc_read_int(struct xsrc *c, uint32_t tx, const char *path, int *out)
{
    return legacy_take_int(xsrc_read(c, tx, path, NULL), out);
}

struct xs_handle *xsrc_xs_open_as(unsigned int domid)
{
    struct xs_handle *h;

    if (noxs_open_as((int)domid, NULL) < 0)
        return NULL;
    h = xs_open(0);
    noxs_open_as(0, NULL);
    return h;
}

int xsrc_write(struct xsrc *c, uint32_t tx, const char *path,
               const char *value)
{
    return request_args(c, XSW_WRITE, tx, path, value, false, E2BIG, NULL,
                        NULL);
}

int xsrc_directory(struct xsrc *c, uint32_t tx, const char *path)
{
    char *v;
    uint32_t rlen;
    int count = 0;

    if (request_args(c, XSW_DIRECTORY, tx, path, NULL, false, ENAMETOOLONG,
                     &v, &rlen) < 0)
        return -1;
    for (uint32_t i = 0; i < rlen; i++)
        if (v[i] == '\0')
            count++;
    free(v);
    return count;
}

static int watch_op(struct xsrc *c, uint32_t type, const char *path,
                    const char *token)
{
    return request_args(c, type, 0, path, token, true, E2BIG, NULL, NULL);
}

int xsrc_watch(struct xsrc *c, const char *path, const char *token)
{
    return watch_op(c, XSW_WATCH, path, token);
}

int xsrc_unwatch(struct xsrc *c, const char *path, const char *token)
{
    return watch_op(c, XSW_UNWATCH, path, token);
}

int xsrc_tx_start(struct xsrc *c, uint32_t *tx)
{
    char *v, *end;
    unsigned long id;

    if (xsrc_request(c, XSW_TRANSACTION_START, 0, "", 1, &v, NULL) < 0)
        return -1;
    errno = 0;
    id = strtoul(v, &end, 10);
    if (end == v || *end || errno || id == 0 || id > UINT32_MAX) {
        free(v);
        errno = EPROTO;
        return -1;
    }
    free(v);
    *tx = (uint32_t)id;
    return 0;
}

int xsrc_tx_end(struct xsrc *c, uint32_t tx, bool abort)
{
    return xsrc_request(c, XSW_TRANSACTION_END, tx, abort ? "F" : "T", 2,
                        NULL, NULL);
}

int xsrc_wait_event(struct xsrc *c, int timeout_ms, struct xsrc_event *ev)
{
    long long deadline = now_ms() + timeout_ms;
    struct msg m;

    while (c->nev == 0) {
        struct xsr_intf *r = c->ring;

        if (ld(&r->rsp_prod) == r->rsp_cons) {
            if (wait_io(c, deadline) < 0)
                return 0;
            continue;
        }
        if (get_msg(c, &m, deadline) < 0)
            return errno == ETIMEDOUT ? 0 : -1;
        if (m.h.type == XSW_WATCH_EVENT)
            queue_event(c, &m);
        else
            free(m.p);
    }
    if (ev)
        *ev = c->evq[0];
    else
        free(c->evq[0].path);
    memmove(c->evq, c->evq + 1, --c->nev * sizeof(c->evq[0]));
    return 1;
}

void xsrc_drop_events(struct xsrc *c)
{
    for (size_t i = 0; i < c->nev; i++)
        free(c->evq[i].path);
    c->nev = 0;
}

/* ---- the legacy frontend's handshake ---- */

#define ST_INITWAIT 2
#define ST_CONNECTED 4
#define ST_CLOSING 5

/* legacy_wait_state over the ring: watch path, re-read it on every
 * event until it reaches want, unwatch. */
static int wait_state(struct xsrc *c, const char *path, int want,
                      int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    char token[32];
    int v, rc = -1, saved;

    snprintf(token, sizeof(token), "ring-wait-%p", (void *)&v);
    if (xsrc_watch(c, path, token) < 0)
        return -1;
    for (;;) {
        long long left;

        if (xsrc_read_int(c, 0, path, &v) == 0) {
            if (v == want || (v > want && v < ST_CLOSING)) {
                rc = 0;
                break;
            }
            if (v >= ST_CLOSING) {
                errno = ECONNRESET;
                break;
            }
        }
        left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            break;
        }
        if (c->nev == 0 && xsrc_wait_event(c, (int)left, NULL) < 0)
            break;
        xsrc_drop_events(c);
    }
    saved = errno;
    xsrc_unwatch(c, path, token);
    xsrc_drop_events(c);
    errno = saved;
    return rc;
}

int xsrc_write_keys(struct xsrc *c, const char *dir,
                    const char *const (*keys)[2], size_t n)
{
    char path[512];

    for (;;) {
        uint32_t tx;
        size_t i;

        if (xsrc_tx_start(c, &tx) < 0)
            return -1;
        for (i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, keys[i][0]);
            if (xsrc_write(c, tx, path, keys[i][1]) < 0)
                break;
        }
        if (i < n) {
            int saved = errno;
            xsrc_tx_end(c, tx, true);
            errno = saved;
            return -1;
        }
        if (xsrc_tx_end(c, tx, false) == 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
}

int xsrc_front_publish(struct xsrc *c, const char *dir)
{
    static const char *const keys[][2] = {
        {"tx-ring-ref", "8"},
        {"rx-ring-ref", "9"},
        {"event-channel", "5"},
        {"request-rx-copy", "1"},
        {"feature-rx-notify", "1"},
        {"state", "4"},
    };

    return xsrc_write_keys(c, dir, keys, sizeof(keys) / sizeof(keys[0]));
}

int xsrc_front_connect(struct xsrc *c, const char *cls, unsigned int devid,
                       int timeout_ms)
{
    char dir[256], path[512], be[256], *v;
    uint32_t len;
    int beid, feature;

    snprintf(dir, sizeof(dir), "/local/domain/%u/device/%s/%u", c->domid,
             cls, devid);
    snprintf(path, sizeof(path), "%s/backend", dir);
    if (!(v = xsrc_read(c, 0, path, &len)))
        return -1;
    if (len >= sizeof(be)) {
        free(v);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(be, v, len + 1);
    free(v);
    snprintf(path, sizeof(path), "%s/backend-id", dir);
    if (xsrc_read_int(c, 0, path, &beid) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/state", be);
    if (wait_state(c, path, ST_INITWAIT, timeout_ms) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/feature-rx-copy", be);
    if (xsrc_read_int(c, 0, path, &feature) < 0 || feature != 1) {
        errno = EOPNOTSUPP;
        return -1;
    }
    if (xsrc_front_publish(c, dir) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/state", be);
    return wait_state(c, path, ST_CONNECTED, timeout_ms);
}
