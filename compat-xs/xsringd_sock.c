/*
 * xenstored's Unix socket (noxs-xsringd --socket; docs/XSRINGD.md "The
 * Unix socket"): dom0 tools that speak the wire protocol themselves, and
 * Debian's libxenstore, which tries the socket before /dev/xen/xenbus.
 *
 * The path is the one Xen 4.17's xenstored and libxenstore agree on
 * (cxs_xsd_default_socket, which compat-xs's client uses too):
 * $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else
 * /var/run/xenstored/socket. Xen 4.17 has no read-only socket any more
 * (its xs_daemon_socket_ro names the same path), so neither has this.
 * As xenstored, the socket is root's (mode 0600) and a client is
 * domain 0: its requests run through the same request path as a ring's,
 * on a local-store connection of its own, whose watches and
 * transactions end with the client's connection.
 *
 * A frame whose length is over the protocol's limit leaves nothing to
 * resynchronise on: it gets an EINVAL error and the connection is
 * closed (xenstored closes it without a word). Nothing a client sends
 * stops the others from being served.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "xsringd_int.h"

/* Socket clients at once; more are closed as they come (logged once). */
#define SOCK_MAX 512
/* Connections taken per readiness of the listening socket. */
#define ACCEPT_BUDGET 16

static size_t nsock;
static bool said_full;

/*
 * A socket file at path: 0 if nobody listens there any more (removed),
 * -1 (logged) if someone does or it cannot tell.
 */
static int clear_stale(const struct sockaddr_un *sa)
{
    const char *path = sa->sun_path;
    struct stat st;
    int fd, rc, e;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(st.st_mode)) {
        log_warnx("%s exists and is not a socket: not starting", path);
        return -1;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                     0)) < 0)
        return -1;
    rc = connect((fd), (const struct sockaddr *)sa, sizeof(*sa));
    e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
        log_warnx("%s: a XenStore daemon (xenstored, or another "
                  "noxs-xsringd) already listens there: not starting",
                  path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        log_warnx("%s: cannot tell whether a XenStore daemon listens "
                  "there: %s",
                  path, strerror(e));
        return -1;
    }
    /* Left by a daemon that died without removing it. */
    log_info("%s: nobody listens there: stale socket removed", path);
    if (unlink(path) < 0 && errno != ENOENT) {
        log_warnx("%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int sock_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char dir[PATH_MAX], *slash;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_warnx("%s: socket path too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    if (clear_stale(&sa) < 0)
        return -1;
    /* xenstored's run directory, if nothing (systemd, tmpfiles) made it. */
    snprintf(dir, sizeof(dir), "%s", path);
    if ((slash = strrchr(dir, '/')) && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            log_warnx("%s: %s", dir, strerror(errno));
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
        log_warnx("cannot listen on %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    log_info("listening on %s", path);
    return fd;
}

static void sock_add(int fd)
{
    struct epoll_event ev = {.events = EPOLLIN};
    struct conn *d;

    if (nsock >= SOCK_MAX) {
        if (!said_full)
            log_warnx("%d socket clients already: more are closed",
                      SOCK_MAX);
        said_full = true;
        close(fd);
        return;
    }
    if (!(d = conn_new(0, 0))) {
        close(fd);
        return;
    }
    d->sfd = fd;
    ev.data.ptr = d;
    if (!(d->g = cxs_lstore_open(store_dir, 0)) ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 || conns_add(d) < 0) {
        log_warnx("socket client: cannot serve it: %s", strerror(errno));
        conn_free(d);
        return;
    }
    nsock++;
    d->busy = true;
    log_debug("socket client %d: connected", fd);
}

void sock_accept(int lfd)
{
    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warnx("accept: %s", strerror(errno));
            return;
        }
        sock_add(fd);
    }
}

/* The client is done (or broke the protocol): freed after this turn. */
static void sock_gone(struct conn *d, const char *why)
{
    log_debug("socket client %d: %s: closed (%zu watches, %u transactions "
              "dropped)",
              d->sfd, why, d->npw, d->ntx);
    d->gone = true;
    nsock--;
    said_full = false;
}

/*
 * Read toward one request. 1: whole, header in *h and payload at
 * d->in.buf + sizeof(*h), NUL-terminated; 0: not yet; -1: the client
 * closed or the socket failed; -2: a length over the protocol's limit.
 */
static int sock_get(struct conn *d, struct xsw_hdr *h)
{
    struct xsr_in *in = &d->in;

    for (;;) {
        uint32_t want = sizeof(*h);
        ssize_t n;

        if (in->have >= sizeof(*h)) {
            memcpy(h, in->buf, sizeof(*h));
            if (h->len > XSW_PAYLOAD_MAX)
                return -2;
            want += h->len;
            if (in->have == want) {
                in->buf[want] = '\0';
                return 1;
            }
        }
        n = read(d->sfd, in->buf + in->have, want - in->have);
        if (n > 0)
            in->have += (uint32_t)n;
        else if (n == 0)
            return -1;
        else if (errno == EAGAIN)
            return 0;
        else if (errno != EINTR)
            return -1;
    }
}

/* Write what the socket takes; -1 if the client is gone. */
static int sock_flush(struct conn *d)
{
    struct xsr_out *o = &d->out;

    while (o->len > o->off) {
        ssize_t n = send(d->sfd, o->buf + o->off, o->len - o->off,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        o->off += (size_t)n;
    }
    o->off = o->len = 0;
    return 0;
}

/* Poll for room to write only while replies wait for it. */
static void sock_poll_out(struct conn *d)
{
    bool want = out_pending(d);
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.ptr = d};

    if (want != d->wpoll && epoll_ctl(epfd, EPOLL_CTL_MOD, d->sfd, &ev) == 0)
        d->wpoll = want;
}

/* One turn for a socket client, as serve() for a ring. */
bool sock_serve(struct conn *d)
{
    struct xsw_hdr h;
    bool more = false;

    serve_events(d, &more);
    for (int i = 0; i < BUDGET; i++) {
        int rc;

        if (sock_flush(d) < 0) {
            sock_gone(d, "write failed");
            return false;
        }
        /* A reply waits for room: the client reads first. */
        if (out_pending(d))
            break;
        if ((rc = sock_get(d, &h)) == 0)
            break;
        if (rc == -1) {
            sock_gone(d, "end of connection");
            return false;
        }
        if (rc == -2) {
            log_warnx("socket client %d: message length %u over %u: "
                      "connection closed",
                      d->sfd, h.len, XSW_PAYLOAD_MAX);
            queue_error(d, &h, EINVAL);
            sock_flush(d);
            sock_gone(d, "bad length");
            return false;
        }
        handle(d, &h, (const char *)d->in.buf + sizeof(h));
        d->in.have = 0;
        if (i + 1 == BUDGET)
            more = true;
    }
    if (sock_flush(d) < 0) {
        sock_gone(d, "write failed");
        return false;
    }
    sock_poll_out(d);
    return more || events_due(d);
}

void sock_close_all(void)
{
    for (size_t i = ndoms; i-- > 0;)
        if (doms[i]->sfd >= 0) {
            struct conn *d = doms[i];
            conn_remove(i);
            conn_free(d);
        }
    nsock = 0;
}
