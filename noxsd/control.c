/*
 * The control socket and the worker's event loop.
 *
 * One thread, one epoll set: the listening socket, every connection, a
 * signalfd and the keeper's socket (readable only if the keeper dies).
 * Connections are SOCK_SEQPACKET, so each recv() is one whole message and
 * a message longer than NOXS_PROTO_MAX_MSG is seen as truncated. Nothing
 * here ever blocks on a peer: sends that would block are queued per
 * connection (EPOLLOUT drains them), and a peer that lets its queue grow
 * past a bound (a watcher that stopped reading) is disconnected. Requests
 * that wait on a backend are parked in broker.c with a deadline, which
 * bounds the epoll timeout.
 *
 * A connection that is closed while events for it are still in the batch
 * returned by epoll_wait is only marked dead and unlinked; it is freed
 * after the batch, so no event ever touches freed memory.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "noxsd.h"
#include "proto.h"

#define CONTROL_MAX_QUEUE (8u << 20) /* bytes queued before we give up */
#define CONTROL_BATCH 32             /* messages per connection per wakeup */

struct outbuf {
    struct outbuf *next;
    size_t len;
    uint8_t data[];
};

struct conn {
    struct conn *next;
    uint64_t id;
    int fd;
    uid_t uid;
    pid_t pid;
    int privileged;
    int dead;
    int close_after_flush;
    int watching;
    uint16_t watch_domid;
    int backend;
    uint16_t backend_domid;
    struct outbuf *outq, *outq_tail;
    size_t queued;
    uint32_t events; /* EPOLL* currently registered */
};

static struct {
    const struct noxsd_opts *o;
    int epfd;
    int listen_fd;
    int signal_fd;
    int quit;
    struct conn *conns;
    struct conn *graveyard;
    uint64_t next_id;
    uint8_t *rx;
    struct noxs_proto_msg *msg;
    struct noxs_proto_buf *tx;
} C = {.epfd = -1, .listen_fd = -1, .signal_fd = -1};

/* epoll tags for the non-connection fds. */
static int tag_listen, tag_signal, tag_keeper, tag_domwatch;

uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t conn_id(const struct conn *c)
{
    return c->id;
}

int conn_privileged(const struct conn *c)
{
    return c->privileged;
}

uint16_t conn_backend_domid(const struct conn *c)
{
    return c->backend_domid;
}

struct conn *conn_find(uint64_t id)
{
    struct conn *c;

    if (id == 0)
        return NULL;
    for (c = C.conns; c; c = c->next)
        if (c->id == id && !c->dead)
            return c;
    return NULL;
}

void conn_foreach(void (*fn)(struct conn *c, void *arg), void *arg)
{
    struct conn *c, *next;

    for (c = C.conns; c; c = next) {
        next = c->next;
        if (!c->dead)
            fn(c, arg);
    }
}

int conn_watches(const struct conn *c, uint16_t domid)
{
    return c->watching &&
           (c->watch_domid == NOXS_DOMID_ANY || c->watch_domid == domid);
}

void conn_set_watch(struct conn *c, uint16_t domid)
{
    c->watching = 1;
    c->watch_domid = domid;
}

void conn_set_backend(struct conn *c, uint16_t domid, const uint16_t *types,
                      size_t ntypes)
{
    (void)types;
    (void)ntypes;
    c->backend = 1;
    c->backend_domid = domid;
}

static void set_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (c->events == events || c->dead)
        return;
    if (epoll_ctl(C.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

static void conn_close(struct conn *c)
{
    struct conn **pp;
    struct outbuf *o;

    if (c->dead)
        return;
    c->dead = 1;
    log_debug("connection %llu (pid %d) closed", (unsigned long long)c->id,
              (int)c->pid);
    /* At exit, connections go without consequences: backends keep their
     * devices and will re-sync with the next worker. */
    if (!C.quit)
        broker_conn_closed(c);
    epoll_ctl(C.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    while ((o = c->outq) != NULL) {
        c->outq = o->next;
        free(o);
    }
    for (pp = &C.conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->next = C.graveyard;
    C.graveyard = c;
}

static void flush(struct conn *c)
{
    struct outbuf *o;
    ssize_t n;

    while ((o = c->outq) != NULL) {
        n = send(c->fd, o->data, o->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            conn_close(c);
            return;
        }
        c->outq = o->next;
        c->queued -= o->len;
        free(o);
    }
    if (!c->outq) {
        c->outq_tail = NULL;
        if (c->close_after_flush) {
            conn_close(c);
            return;
        }
        set_events(c, EPOLLIN);
    } else {
        set_events(c, c->close_after_flush ? EPOLLOUT : EPOLLIN | EPOLLOUT);
    }
}

int conn_send(struct conn *c, const void *buf, size_t len)
{
    struct outbuf *o;
    ssize_t n;

    if (c->dead)
        return -EPIPE;
    if (!c->outq) {
        do
            n = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)len)
            return 0;
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            conn_close(c);
            return -EPIPE;
        }
    }
    if (c->queued + len > CONTROL_MAX_QUEUE) {
        log_warnx("connection %llu (pid %d) does not read; dropping it",
                  (unsigned long long)c->id, (int)c->pid);
        conn_close(c);
        return -ENOBUFS;
    }
    if ((o = malloc(sizeof(*o) + len)) == NULL) {
        conn_close(c);
        return -ENOMEM;
    }
    o->next = NULL;
    o->len = len;
    memcpy(o->data, buf, len);
    if (c->outq_tail)
        c->outq_tail->next = o;
    else
        c->outq = o;
    c->outq_tail = o;
    c->queued += len;
    set_events(c, c->close_after_flush ? EPOLLOUT : EPOLLIN | EPOLLOUT);
    return 0;
}

void conn_reply_error(struct conn *c, uint32_t request, int error)
{
    int len = noxs_proto_simple(C.tx, NOXS_MSG_ERROR, request, error);

    conn_send(c, C.tx->data, (size_t)len);
}

void conn_reply_empty(struct conn *c, unsigned int req_type, uint32_t request)
{
    int len =
        noxs_proto_simple(C.tx, req_type | NOXS_MSG_REPLY, request, 0);

    conn_send(c, C.tx->data, (size_t)len);
}

void conn_close_after_flush(struct conn *c)
{
    if (c->dead)
        return;
    c->close_after_flush = 1;
    /* Stop reading; flush() closes once the queue is empty. */
    flush(c);
}

static void accept_conn(void)
{
    struct epoll_event ev;
    struct ucred cred;
    socklen_t len;
    struct conn *c;
    int fd;

    for (;;) {
        fd = accept4(C.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("accept");
            return;
        }
        len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            log_warn("SO_PEERCRED");
            close(fd);
            continue;
        }
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            close(fd);
            continue;
        }
        c->id = ++C.next_id;
        c->fd = fd;
        c->uid = cred.uid;
        c->pid = cred.pid;
        c->privileged = cred.uid == 0 || cred.uid == geteuid() ||
                        (C.o->toolstack_uid != (uid_t)-1 &&
                         cred.uid == C.o->toolstack_uid);
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(C.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            log_warn("epoll_ctl");
            close(fd);
            free(c);
            continue;
        }
        c->events = EPOLLIN;
        c->next = C.conns;
        C.conns = c;
        log_debug("connection %llu from pid %d uid %u%s",
                  (unsigned long long)c->id, (int)c->pid,
                  (unsigned int)c->uid, c->privileged ? " (privileged)" : "");
    }
}

static void read_conn(struct conn *c)
{
    ssize_t n;
    int i, rc;

    for (i = 0; i < CONTROL_BATCH && !c->dead && !c->close_after_flush;
         i++) {
        n = recv(c->fd, C.rx, NOXS_PROTO_MAX_MSG + 1,
                 MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        rc = noxs_proto_decode(C.rx, (size_t)n, C.msg);
        if (rc == -EPROTO) {
            log_warnx("connection %llu (pid %d uid %u): malformed message "
                      "(%zd bytes, type %u); closing it",
                      (unsigned long long)c->id, (int)c->pid,
                      (unsigned int)c->uid, n, C.msg->hdr.type);
            conn_reply_error(c, C.msg->hdr.request, EPROTO);
            conn_close_after_flush(c);
            return;
        }
        if (rc == -EINVAL) {
            log_debug("connection %llu: invalid %s",
                      (unsigned long long)c->id,
                      noxs_proto_type_name(C.msg->hdr.type));
            conn_reply_error(c, C.msg->hdr.request, EINVAL);
            continue;
        }
        broker_handle(c, C.msg);
    }
}

static int bind_socket(const char *path, mode_t mode)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    mode_t old;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        log_warnx("socket path too long: %s", path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("socket");
        return -1;
    }
    /* We hold the pidfile lock, so a socket file left there is stale. */
    unlink(path);
    old = umask(0117);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        log_warn("bind %s", path);
        umask(old);
        close(fd);
        return -1;
    }
    umask(old);
    if (mode != 0660 && chmod(path, mode) < 0)
        log_warn("chmod %s", path);
    if (listen(fd, 128) < 0) {
        log_warn("listen");
        close(fd);
        return -1;
    }
    return fd;
}

int control_init(const struct noxsd_opts *o)
{
    struct epoll_event ev;
    sigset_t mask;

    C.o = o;
    C.rx = malloc(NOXS_PROTO_MAX_MSG + 1);
    C.msg = malloc(sizeof(*C.msg));
    C.tx = malloc(sizeof(*C.tx));
    if (!C.rx || !C.msg || !C.tx)
        return -1;
    if ((C.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        log_warn("epoll_create1");
        return -1;
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((C.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        log_warn("signalfd");
        return -1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &tag_signal;
    epoll_ctl(C.epfd, EPOLL_CTL_ADD, C.signal_fd, &ev);

    if ((C.listen_fd = bind_socket(o->socket_path, o->socket_mode)) < 0)
        return -1;
    ev.events = EPOLLIN;
    ev.data.ptr = &tag_listen;
    epoll_ctl(C.epfd, EPOLL_CTL_ADD, C.listen_fd, &ev);

    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = &tag_keeper;
    if (epoll_ctl(C.epfd, EPOLL_CTL_ADD, broker_keeper_fd(), &ev) < 0) {
        log_warn("epoll_ctl keeper");
        return -1;
    }
    domwatch_init(o);
    if (domwatch_fd() >= 0) {
        ev.events = EPOLLIN;
        ev.data.ptr = &tag_domwatch;
        if (epoll_ctl(C.epfd, EPOLL_CTL_ADD, domwatch_fd(), &ev) < 0)
            log_warn("epoll_ctl VIRQ_DOM_EXC");
    }
    log_info("listening on %s", o->socket_path);
    return 0;
}

static void handle_signals(void)
{
    struct signalfd_siginfo si;

    while (read(C.signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            log_info("signal %u: exiting", si.ssi_signo);
            C.quit = 1;
            break;
        case SIGHUP:
            log_info("SIGHUP: compacting the store");
            broker_compact();
            break;
        }
    }
}

int control_run(void)
{
    struct epoll_event evs[64];
    struct conn *c;
    int n, i, timeout;

    while (!C.quit) {
        timeout = broker_timeouts();
        n = domwatch_timeout();
        if (n >= 0 && (timeout < 0 || n < timeout))
            timeout = n;
        n = epoll_wait(C.epfd, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_warn("epoll_wait");
            return 1;
        }
        for (i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;

            if (p == &tag_signal) {
                handle_signals();
            } else if (p == &tag_listen) {
                accept_conn();
            } else if (p == &tag_keeper) {
                broker_keeper_event();
            } else if (p == &tag_domwatch) {
                domwatch_event();
            } else {
                c = p;
                if (c->dead)
                    continue;
                if (evs[i].events & EPOLLOUT)
                    flush(c);
                if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP |
                                                   EPOLLERR)))
                    read_conn(c);
                if (!c->dead && c->close_after_flush && !c->outq)
                    conn_close(c);
            }
        }
        while ((c = C.graveyard) != NULL) {
            C.graveyard = c->next;
            free(c);
        }
    }
    return 0;
}

void control_cleanup(void)
{
    struct conn *c;

    while (C.conns)
        conn_close(C.conns);
    while ((c = C.graveyard) != NULL) {
        C.graveyard = c->next;
        free(c);
    }
    if (C.listen_fd >= 0) {
        close(C.listen_fd);
        unlink(C.o->socket_path);
    }
    domwatch_cleanup();
    if (C.signal_fd >= 0)
        close(C.signal_fd);
    if (C.epfd >= 0)
        close(C.epfd);
    free(C.rx);
    free(C.msg);
    free(C.tx);
}
