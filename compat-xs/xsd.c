/*
 * The generic store on a mixed host: a client of the real xenstored
 * (docs/misc/xenstore.txt), over its Unix socket or, in a guest, the
 * kernel's xenbus device.
 *
 * Threads. A handle is shared between threads (libxl does), so a
 * request may be in flight in one thread while another polls event_fd
 * and calls next_event. There is no reader thread: whichever thread
 * needs bytes from the daemon takes the reader role (conn.reading), reads
 * without holding the state lock, and files what it read under it:
 * replies to the waiting request, WATCH_EVENTs on the event queue. A
 * request's thread reads until its reply is filed; next_event reads only
 * what is there already and never waits, so it never blocks on a request
 * in flight. Without a thread the library forks cleanly (libxl's
 * children reopen their handles) and costs nothing for a handle that
 * never watches; libxenstore's reader thread exists for the same job.
 *
 * Requests are serialised per connection (req_lock), as libxenstore
 * does: xenstored answers in order anyway. Each carries its own request
 * id and a reply must echo it.
 *
 * event_fd is an epoll fd over the daemon's fd and an eventfd that is
 * non-zero while events are queued, so it is readable while either
 * holds something: events read while a request waited for its reply are
 * never hidden behind an fd that has gone quiet. While a request is in
 * flight the daemon's fd is left out of the set: its thread reads every
 * byte and queues the events, and a poller in another thread would
 * otherwise see the reply's bytes as readiness and spin until that
 * thread has read them.
 *
 * Every header from the daemon is checked (known type, payload <= 4096,
 * a reply of the request's type or ERROR with our id, an event of two
 * strings); anything else fails the connection with -EIO for good, as
 * EOF does with -ECONNRESET. Waits are for the daemon: a live one always
 * answers, a dead one closes the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gstore.h"
#include "xsdframe.h"
#include "common/unixsock.h"

#define XSD_DEV "/dev/xen/xenbus"
/* Debian builds its library and daemon with /var/run/xenstored (where
 * /var/run is a link to /run, the same directory). */
#define XSD_RUNDIR "/var/run/xenstored"

struct xsd_event {
    struct xsd_event *next;
    uint32_t len;
    char payload[]; /* len bytes + NUL */
};

struct xsd_conn {
    struct cxs_gconn base;
    int fd;
    bool sock;
    int efd;                  /* eventfd: 1 while events are queued */
    int pfd;                  /* epoll over fd and efd: the event fd */
    pthread_mutex_t req_lock; /* one request in flight */
    pthread_mutex_t lock;     /* everything below */
    pthread_cond_t cond;
    bool reading; /* a thread holds the reader role (owns rd) */
    int err;      /* 0, or the -errno the connection failed with */
    uint32_t next_id;
    /* The request in flight, and its reply once read. */
    bool waiting;
    uint32_t want_id, want_type;
    bool replied;
    uint32_t rtype, rlen;
    char *rbody;
    struct xsd_event *ev_head, **ev_tail;
    struct cxs_xsd_reader rd;
};

/* ------------------------------------------------------------------ */
/* Frames (pure; fuzzed by tests/fuzz/fuzz_xsdframe.c)                  */

bool cxs_xsd_type_ok(uint32_t type)
{
    /* 20 (XS_RESTRICT) was withdrawn; no daemon sends it. */
    return type < XSW_TYPE_COUNT && type != 20;
}

void cxs_xsd_reader_init(struct cxs_xsd_reader *r)
{
    r->have = 0;
    r->head = 0;
}

unsigned char *cxs_xsd_reader_space(struct cxs_xsd_reader *r, size_t *room)
{
    if (r->head) {
        /* Drop consumed frames so a whole one always fits. */
        memmove(r->buf, r->buf + r->head, r->have - r->head);
        r->have -= r->head;
        r->head = 0;
    }
    *room = sizeof(r->buf) - r->have;
    return r->buf + r->have;
}

void cxs_xsd_reader_filled(struct cxs_xsd_reader *r, size_t n)
{
    r->have += n;
}

int cxs_xsd_reader_next(struct cxs_xsd_reader *r, struct xsw_hdr *h,
                        const unsigned char **payload)
{
    size_t avail = r->have - r->head;

    if (avail < sizeof(*h))
        return 0;
    memcpy(h, r->buf + r->head, sizeof(*h));
    if (h->len > XSW_PAYLOAD_MAX || !cxs_xsd_type_ok(h->type))
        return -EIO;
    if (avail < sizeof(*h) + h->len)
        return 0;
    *payload = r->buf + r->head + sizeof(*h);
    r->head += sizeof(*h) + h->len;
    return 1;
}

int cxs_xsd_event_ok(const unsigned char *p, uint32_t len)
{
    const unsigned char *nul;

    /* "path\0token\0": a non-empty path, a token, nothing after it. */
    if (len < 3 || p[len - 1] != '\0')
        return 0;
    nul = memchr(p, '\0', len);
    if (nul == p || nul == p + len - 1)
        return 0;
    return memchr(nul + 1, '\0', (size_t)(p + len - nul - 1)) == p + len - 1;
}

/* ------------------------------------------------------------------ */
/* The connection                                                      */

/* Whether the event fd watches the daemon's fd. Under c->lock. */
static void watch_daemon_fd(struct xsd_conn *c, bool on)
{
    struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.fd = c->fd};

    /* Cannot fail for an fd in the set; if it did, the fd would only
     * stay in (spurious readiness) or out until the next request. */
    (void)epoll_ctl(c->pfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void fail_locked(struct xsd_conn *c, int err)
{
    if (!c->err)
        c->err = err;
    pthread_cond_broadcast(&c->cond);
}

/* File one frame read from the daemon. Under c->lock. */
static int file_frame(struct xsd_conn *c, const struct xsw_hdr *h,
                      const unsigned char *p)
{
    if (h->type == XSW_WATCH_EVENT) {
        struct xsd_event *e;

        if (!cxs_xsd_event_ok(p, h->len))
            return -EIO;
        e = malloc(sizeof(*e) + h->len + 1);
        if (!e)
            return -ENOMEM;
        e->next = NULL;
        e->len = h->len;
        memcpy(e->payload, p, h->len);
        e->payload[h->len] = '\0';
        if (!c->ev_head) {
            uint64_t one = 1;
            if (write(c->efd, &one, sizeof(one)) != sizeof(one)) {
                free(e);
                return -EIO;
            }
        }
        *c->ev_tail = e;
        c->ev_tail = &e->next;
        return 0;
    }
    /* Anything else answers the request in flight, or nothing. */
    if (!c->waiting || c->replied || h->req_id != c->want_id ||
        (h->type != c->want_type && h->type != XSW_ERROR))
        return -EIO;
    if (h->type == XSW_ERROR &&
        (h->len < 2 || p[h->len - 1] != '\0' ||
         memchr(p, '\0', h->len) != p + h->len - 1))
        return -EIO;
    c->rbody = malloc((size_t)h->len + 1);
    if (!c->rbody)
        return -ENOMEM;
    memcpy(c->rbody, p, h->len);
    c->rbody[h->len] = '\0';
    c->rtype = h->type;
    c->rlen = h->len;
    c->replied = true;
    pthread_cond_broadcast(&c->cond);
    return 0;
}

/*
 * As the reader: one read() from the daemon (waiting for bytes if
 * block), then file every whole frame. Called and returns with c->lock
 * held and c->reading set by the caller.
 */
static int read_some(struct xsd_conn *c, bool block)
{
    struct xsw_hdr h;
    const unsigned char *p;
    unsigned char *space;
    size_t room;
    ssize_t n;
    int rc;

    space = cxs_xsd_reader_space(&c->rd, &room);
    if (room == 0)
        return -EIO; /* cannot happen: whole frames are always taken */
    pthread_mutex_unlock(&c->lock);
    for (;;) {
        n = read(c->fd, space, room);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n < 0 && errno == EAGAIN && block) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        /* No timeout: a live daemon answers, a dead one closes. */
        while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
            ;
        for (;;) {
            n = read(c->fd, space, room);
            if (n >= 0 || errno != EINTR)
                break;
        }
    }
    int saved = errno;
    pthread_mutex_lock(&c->lock);
    if (n == 0)
        return -ECONNRESET;
    if (n < 0)
        return saved == EAGAIN ? 0 : saved == EPIPE ? -ECONNRESET
                                                    : -saved;
    cxs_xsd_reader_filled(&c->rd, (size_t)n);
    while ((rc = cxs_xsd_reader_next(&c->rd, &h, &p)) > 0)
        if ((rc = file_frame(c, &h, p)) < 0)
            return rc;
    return rc;
}

/*
 * Take the reader's turn (c->lock held, no other reader): read_some, then
 * wake the waiters, failing the connection on an error.
 */
static void read_turn(struct xsd_conn *c, bool block)
{
    int rc;

    c->reading = true;
    rc = read_some(c, block);
    c->reading = false;
    pthread_cond_broadcast(&c->cond);
    if (rc < 0)
        fail_locked(c, rc);
}

static int send_all(struct xsd_conn *c, const void *buf, size_t len)
{
    const char *p = buf;

    while (len) {
        ssize_t n = c->sock ? send(c->fd, p, len, MSG_NOSIGNAL)
                            : write(c->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
            while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
                ;
            continue;
        }
        if (n <= 0)
            return n == 0 || errno == EPIPE || errno == ECONNRESET
                       ? -ECONNRESET
                       : -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int xsd_request(struct cxs_gconn *g, uint32_t type, uint32_t tx,
                       const void *payload, uint32_t len, uint32_t *rtype,
                       char **reply, uint32_t *rlen)
{
    struct xsd_conn *c = (struct xsd_conn *)g;
    unsigned char msg[sizeof(struct xsw_hdr) + XSW_PAYLOAD_MAX];
    struct xsw_hdr h;
    int rc;

    if (len > XSW_PAYLOAD_MAX)
        return -E2BIG;
    if (!cxs_xsd_type_ok(type) || type == XSW_WATCH_EVENT ||
        type == XSW_ERROR)
        return -EINVAL;
    pthread_mutex_lock(&c->req_lock);
    pthread_mutex_lock(&c->lock);
    if (c->err) {
        rc = c->err;
        goto out;
    }
    h.type = type;
    h.req_id = c->next_id++;
    h.tx_id = tx;
    h.len = len;
    c->waiting = true;
    c->want_id = h.req_id;
    c->want_type = type;
    c->replied = false;
    watch_daemon_fd(c, false);
    pthread_mutex_unlock(&c->lock);

    /* One write: the xenbus device wants a message in one piece. */
    memcpy(msg, &h, sizeof(h));
    if (len)
        memcpy(msg + sizeof(h), payload, len);
    rc = send_all(c, msg, sizeof(h) + len);
    pthread_mutex_lock(&c->lock);
    if (rc < 0) {
        fail_locked(c, rc);
        goto done;
    }
    while (!c->replied && !c->err) {
        if (c->reading) {
            /* next_event is filing what is there; it will wake us. */
            pthread_cond_wait(&c->cond, &c->lock);
            continue;
        }
        read_turn(c, true);
    }
done:
    if (c->replied) {
        *rtype = c->rtype;
        *reply = c->rbody;
        *rlen = c->rlen;
        c->rbody = NULL;
        rc = 0;
    } else {
        rc = c->err;
    }
    c->waiting = false;
    c->replied = false;
    watch_daemon_fd(c, true);
out:
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->req_lock);
    return rc;
}

static int xsd_event_fd(struct cxs_gconn *g)
{
    return ((struct xsd_conn *)g)->pfd;
}

static int xsd_next_event(struct cxs_gconn *g, char **payload, uint32_t *len)
{
    struct xsd_conn *c = (struct xsd_conn *)g;
    struct xsd_event *e;
    int rc = 0;

    pthread_mutex_lock(&c->lock);
    if (!c->ev_head && !c->err && !c->reading) {
        /* Only what is there already: the fd is non-blocking. */
        read_turn(c, false);
    }
    e = c->ev_head;
    if (!e) {
        rc = c->err ? c->err : -EAGAIN;
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    c->ev_head = e->next;
    if (!c->ev_head) {
        uint64_t v;
        c->ev_tail = &c->ev_head;
        if (read(c->efd, &v, sizeof(v)) < 0) {
            /* Non-blocking eventfd already at zero: nothing to clear. */
        }
    }
    pthread_mutex_unlock(&c->lock);
    /* The event's own buffer is the caller's: payload moved to front. */
    *len = e->len;
    memmove(e, e->payload, (size_t)*len + 1);
    *payload = (char *)e;
    return 0;
}

static void xsd_close(struct cxs_gconn *g)
{
    struct xsd_conn *c = (struct xsd_conn *)g;
    struct xsd_event *e, *next;

    if (!c)
        return;
    for (e = c->ev_head; e; e = next) {
        next = e->next;
        free(e);
    }
    free(c->rbody);
    if (c->pfd >= 0)
        close(c->pfd);
    if (c->efd >= 0)
        close(c->efd);
    if (c->fd >= 0)
        close(c->fd);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->req_lock);
    free(c);
}

static const struct cxs_gstore_ops xsd_ops = {
    .name = "xenstored",
    .request = xsd_request,
    .event_fd = xsd_event_fd,
    .next_event = xsd_next_event,
    .close = xsd_close,
};

/* Wrap an fd already connected to a daemon (tests and fuzzing too). */
struct cxs_gconn *cxs_xsd_adopt(int fd, bool sock)
{
    struct xsd_conn *c = calloc(1, sizeof(*c));
    struct epoll_event ev = {.events = EPOLLIN};
    int fl, saved;

    if (!c) {
        close(fd);
        return NULL;
    }
    c->base.ops = &xsd_ops;
    c->fd = fd;
    c->sock = sock;
    c->efd = c->pfd = -1;
    c->next_id = 1;
    c->ev_tail = &c->ev_head;
    cxs_xsd_reader_init(&c->rd);
    pthread_mutex_init(&c->req_lock, NULL);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        goto fail;
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->pfd = epoll_create1(EPOLL_CLOEXEC);
    if (c->efd < 0 || c->pfd < 0)
        goto fail;
    ev.data.fd = fd;
    if (epoll_ctl(c->pfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        goto fail;
    ev.data.fd = c->efd;
    if (epoll_ctl(c->pfd, EPOLL_CTL_ADD, c->efd, &ev) < 0)
        goto fail;
    return &c->base;
fail:
    saved = errno;
    xsd_close(&c->base);
    errno = saved;
    return NULL;
}

static int connect_path(const char *path, bool *sock)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISSOCK(st.st_mode)) {
        /* The xenbus device: reads and writes are whole messages. */
        *sock = false;
        return open(path, O_RDWR | O_CLOEXEC);
    }
    *sock = true;
    return unix_connect(path, SOCK_STREAM);
}

const char *cxs_xsd_default_socket(void)
{
    static __thread char buf[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    const char *p = getenv("XENSTORED_PATH"), *dir;

    if (p && *p)
        return p;
    dir = getenv("XENSTORED_RUNDIR");
    if (!dir || !*dir)
        dir = XSD_RUNDIR;
    if ((size_t)snprintf(buf, sizeof(buf), "%s/socket", dir) >= sizeof(buf))
        return XSD_RUNDIR "/socket";
    return buf;
}

/*
 * readonly is accepted and ignored: xenstored 4.17 serves its _ro socket
 * like the other, and Debian's libxenstore opens the same one.
 */
struct cxs_gconn *cxs_xsd_open(const char *path, bool readonly)
{
    const char *env = getenv("XENSTORED_PATH");
    bool sock = false;
    int fd;

    (void)readonly;
    if (path)
        fd = connect_path(path, &sock);
    else {
        /* As libxenstore: the socket, else the device (which
         * $XENSTORED_PATH names too when it is set). */
        fd = connect_path(cxs_xsd_default_socket(), &sock);
        if (fd < 0 && !(env && *env))
            fd = connect_path(XSD_DEV, &sock);
    }
    if (fd < 0)
        return NULL;
    return cxs_xsd_adopt(fd, sock);
}
