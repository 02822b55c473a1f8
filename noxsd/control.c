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
 * Closing a connection is never done inside a handler. Closing a backend's
 * connection fails its pending work and frees broker state (pendings, its
 * sync state) that the handler which found the connection broken may still
 * be using: a send to a peer that hung up, a queue over its bound, a failed
 * allocation or flush, or a close after the last reply only mark the
 * connection failed and put it on a list. The loop closes failed
 * connections, and only then tells the broker, at the top level: after
 * each event and before it computes the next timeout. A failed connection
 * is no longer read from, sent to (conn_send() returns -EPIPE), found by
 * conn_find() or given events.
 *
 * Limits, so that a local user who may only list and watch (a control
 * socket of mode 0666) cannot take memory or file descriptors from the
 * toolstack and the backends (docs/NOXSD.md, "Limits"):
 *   - back-pressure: an unprivileged connection is not read while more
 *     than CONTROL_READ_PAUSE bytes of replies wait for it;
 *   - queued bytes (counted with their bookkeeping) per connection, for
 *     unprivileged connections together and for all together;
 *   - unprivileged connections per uid, and in total so many that
 *     CONTROL_PRIV_FDS descriptors stay free for privileged clients;
 *   - a reserve descriptor lets one more connection in when the process is
 *     out of descriptors: a privileged client is served, anyone else is
 *     turned away, and the listening socket does not stay readable (which
 *     was a busy loop); without the reserve, listening pauses briefly;
 *   - messages a peer can provoke at will are rate-limited.
 *
 * A connection that is closed while events for it are still in the batch
 * returned by epoll_wait is only marked dead and unlinked; it is freed
 * after the batch, so no event ever touches freed memory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "noxsd.h"
#include "proto.h"

#define CONTROL_BATCH 32 /* messages per connection per wakeup */
/* Connections accepted per wakeup: a client that reconnects as fast as it
 * is turned away must not keep the loop from everyone else. */
#define CONTROL_ACCEPT_BATCH 64

/*
 * Queued replies and events, in bytes counted as OUTBUF_COST (payload,
 * header and malloc's share): per connection (a watcher that stopped
 * reading is dropped there), for unprivileged connections together, and
 * for all together. Half the total is kept for privileged connections.
 */
#define CONTROL_MAX_QUEUE (8u << 20)
#define CONTROL_MAX_QUEUED_UNPRIV (32u << 20)
#define CONTROL_MAX_QUEUED (64u << 20)
/* An unprivileged connection is not read while more than this waits. */
#define CONTROL_READ_PAUSE (64u << 10)
/* Unprivileged connections per uid. */
#define CONTROL_MAX_CONNS_PER_UID 32u
/* Descriptors (of RLIMIT_NOFILE) unprivileged connections leave free. */
#define CONTROL_PRIV_FDS 64
/* Out of descriptors and no reserve left: stop listening this long. */
#define CONTROL_ACCEPT_PAUSE_MS 250
/* Rate-limited messages: at most this many per window. */
#define RATELIMIT_BURST 10
#define RATELIMIT_WINDOW_MS 10000

struct outbuf {
    struct outbuf *next;
    size_t len;
    uint8_t data[];
};

#define OUTBUF_COST(len) (sizeof(struct outbuf) + (len) + 2 * sizeof(size_t))

struct ratelimit {
    uint64_t start;
    unsigned int n;
    unsigned long suppressed;
};

/* Unprivileged connections of one uid. */
struct uid_count {
    uid_t uid;
    unsigned int n;
};

struct conn {
    struct conn *next;
    uint64_t id;
    int fd;
    uid_t uid;
    pid_t pid;
    int privileged;
    int dead;
    int failed;             /* on C.failed, to be closed by the loop */
    struct conn *fail_next; /* C.failed list */
    int close_after_flush;
    int refusal_logged; /* one "refusing" line per connection */
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
    struct conn *failed; /* failed, not yet closed (conn_fail) */
    struct conn *graveyard;
    size_t queued;        /* OUTBUF_COST of every queue */
    size_t queued_unpriv; /* of unprivileged connections' queues */
    unsigned int nunpriv; /* unprivileged connections */
    struct uid_count *uids;
    size_t nuids, uids_cap;
    int base_fds;                 /* descriptors open before any connection */
    int reserve_fd;               /* given up to accept at EMFILE; -1 if in use */
    uint64_t listen_paused_until; /* 0: listening */
    struct ratelimit rl_accept, rl_refuse, rl_drop, rl_request, rl_malformed;
    uint64_t next_id;
    uint8_t *rx;
    struct noxs_proto_msg *msg;
    struct noxs_proto_buf *tx;
} C = {.epfd = -1, .listen_fd = -1, .signal_fd = -1, .reserve_fd = -1};

/* epoll tags for the non-connection fds. */
static int tag_listen, tag_signal, tag_keeper, tag_domwatch;

uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * 1 if a message of this kind may be logged now: at most RATELIMIT_BURST
 * per window. The first one of a new window says how many the last window
 * left out.
 */
static int ratelimit(struct ratelimit *r, const char *what)
{
    uint64_t now = now_ms();

    if (r->start == 0 || now - r->start >= RATELIMIT_WINDOW_MS) {
        if (r->suppressed)
            log_warnx("%lu more %s not logged", r->suppressed, what);
        r->start = now;
        r->n = 0;
        r->suppressed = 0;
    }
    if (r->n < RATELIMIT_BURST) {
        r->n++;
        return 1;
    }
    r->suppressed++;
    return 0;
}

int conn_log_refusal(struct conn *c)
{
    if (c->refusal_logged)
        return 0;
    c->refusal_logged = 1;
    return ratelimit(&C.rl_request, "refused requests");
}

static struct uid_count *uid_slot(uid_t uid)
{
    size_t i;

    for (i = 0; i < C.nuids; i++)
        if (C.uids[i].uid == uid)
            return &C.uids[i];
    return NULL;
}

/* Count an unprivileged connection of uid; -1 if the table cannot grow. */
static int uid_get(uid_t uid)
{
    struct uid_count *u = uid_slot(uid);

    if (u == NULL) {
        if (C.nuids == C.uids_cap) {
            size_t cap = C.uids_cap ? C.uids_cap * 2 : 16;
            void *x = realloc(C.uids, cap * sizeof(*C.uids));
            if (x == NULL)
                return -1;
            C.uids = x;
            C.uids_cap = cap;
        }
        u = &C.uids[C.nuids++];
        u->uid = uid;
        u->n = 0;
    }
    u->n++;
    C.nunpriv++;
    return 0;
}

static void uid_put(uid_t uid)
{
    struct uid_count *u = uid_slot(uid);

    if (u == NULL)
        return;
    C.nunpriv--;
    if (--u->n == 0)
        *u = C.uids[--C.nuids];
}

/*
 * Unprivileged connections allowed in all: what RLIMIT_NOFILE (read each
 * time: prlimit may change it) leaves after the descriptors noxsd had
 * before any connection and CONTROL_PRIV_FDS for privileged clients.
 */
static unsigned int unpriv_max(void)
{
    struct rlimit rl;
    long n;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > INT_MAX)
        n = INT_MAX;
    else
        n = (long)rl.rlim_cur;
    n -= C.base_fds + CONTROL_PRIV_FDS;
    return n > 0 ? (unsigned int)n : 0;
}

static void reserve_fd_open(void)
{
    if (C.reserve_fd < 0)
        C.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void listen_pause(void)
{
    struct epoll_event ev = {.events = 0, .data.ptr = &tag_listen};

    if (C.listen_paused_until == 0)
        epoll_ctl(C.epfd, EPOLL_CTL_MOD, C.listen_fd, &ev);
    C.listen_paused_until = now_ms() + CONTROL_ACCEPT_PAUSE_MS;
}

static void listen_resume(void)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_listen};

    if (C.listen_paused_until == 0)
        return;
    C.listen_paused_until = 0;
    epoll_ctl(C.epfd, EPOLL_CTL_MOD, C.listen_fd, &ev);
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
        if (c->id == id && !c->dead && !c->failed)
            return c;
    return NULL;
}

void conn_foreach(void (*fn)(struct conn *c, void *arg), void *arg)
{
    struct conn *c, *next;

    for (c = C.conns; c; c = next) {
        next = c->next;
        if (!c->dead && !c->failed)
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

/*
 * Back-pressure applies to unprivileged connections only: those only make
 * requests and read replies. A backend answers our requests with blocking
 * sends; not reading it while it waits to send could stall both.
 */
static int conn_paused(const struct conn *c)
{
    return c->close_after_flush ||
           (!c->privileged && c->queued > CONTROL_READ_PAUSE);
}

/* Read unless paused; write while something is queued. */
static void update_events(struct conn *c)
{
    uint32_t events = (conn_paused(c) ? 0 : EPOLLIN) |
                      (c->outq ? EPOLLOUT : 0);
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (c->events == events || c->dead || c->failed)
        return;
    if (epoll_ctl(C.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

static void outbuf_free(struct conn *c, struct outbuf *o)
{
    size_t cost = OUTBUF_COST(o->len);

    c->queued -= cost;
    C.queued -= cost;
    if (!c->privileged)
        C.queued_unpriv -= cost;
    free(o);
}

/*
 * Mark c failed: the loop closes it (conn_close) once the current event
 * is handled. Safe anywhere, also inside broker callbacks.
 */
static void conn_fail(struct conn *c)
{
    if (c->dead || c->failed)
        return;
    c->failed = 1;
    c->fail_next = C.failed;
    C.failed = c;
}

/* Only from the loop's top level (reap_failed) or at exit. */
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
    reserve_fd_open();
    if (!c->privileged)
        uid_put(c->uid);
    while ((o = c->outq) != NULL) {
        c->outq = o->next;
        outbuf_free(c, o);
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
            conn_fail(c);
            return;
        }
        c->outq = o->next;
        outbuf_free(c, o);
    }
    if (!c->outq) {
        c->outq_tail = NULL;
        if (c->close_after_flush) {
            conn_fail(c);
            return;
        }
    }
    update_events(c);
}

/* Drop c because its queue would go over a bound (which: what). */
static int conn_drop(struct conn *c, const char *what)
{
    if (ratelimit(&C.rl_drop, "dropped connections"))
        log_warnx("connection %llu (pid %d uid %u) does not read: %s would "
                  "go over its bound; dropping it",
                  (unsigned long long)c->id, (int)c->pid,
                  (unsigned int)c->uid, what);
    conn_fail(c);
    return -ENOBUFS;
}

int conn_send(struct conn *c, const void *buf, size_t len)
{
    size_t cost = OUTBUF_COST(len);
    struct outbuf *o;
    ssize_t n;

    if (c->dead || c->failed)
        return -EPIPE;
    if (!c->outq) {
        do
            n = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)len)
            return 0;
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            conn_fail(c);
            return -EPIPE;
        }
    }
    if (c->queued + cost > CONTROL_MAX_QUEUE)
        return conn_drop(c, "its queue");
    if (!c->privileged && C.queued_unpriv + cost > CONTROL_MAX_QUEUED_UNPRIV)
        return conn_drop(c, "what unprivileged connections queue");
    if (C.queued + cost > CONTROL_MAX_QUEUED)
        return conn_drop(c, "what all connections queue");
    if ((o = malloc(sizeof(*o) + len)) == NULL) {
        conn_fail(c);
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
    c->queued += cost;
    C.queued += cost;
    if (!c->privileged)
        C.queued_unpriv += cost;
    update_events(c);
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
    if (c->dead || c->failed)
        return;
    c->close_after_flush = 1;
    /* Stop reading; flush() closes once the queue is empty. */
    flush(c);
}

/*
 * A new connection on fd. An unprivileged peer is turned away (fd closed)
 * when its uid has CONTROL_MAX_CONNS_PER_UID connections, when all
 * unprivileged connections together reach unpriv_max(), or when fd is the
 * reserve descriptor's slot (at_limit): that one is kept for privileged
 * clients.
 */
static void new_conn(int fd, int at_limit)
{
    struct epoll_event ev;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct uid_count *u;
    const char *why = NULL;
    struct conn *c;
    int privileged;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        if (ratelimit(&C.rl_accept, "accept errors"))
            log_warn("SO_PEERCRED");
        close(fd);
        return;
    }
    privileged = cred.uid == 0 || cred.uid == geteuid() ||
                 (C.o->toolstack_uid != (uid_t)-1 &&
                  cred.uid == C.o->toolstack_uid);
    if (!privileged) {
        u = uid_slot(cred.uid);
        if (at_limit)
            why = "out of file descriptors";
        else if (u && u->n >= CONTROL_MAX_CONNS_PER_UID)
            why = "too many connections from this uid";
        else if (C.nunpriv >= unpriv_max())
            why = "too many unprivileged connections";
        else if (uid_get(cred.uid) < 0)
            why = "out of memory";
    }
    if (why != NULL) {
        if (ratelimit(&C.rl_refuse, "refused connections"))
            log_warnx("refusing a connection from pid %d uid %u: %s",
                      (int)cred.pid, (unsigned int)cred.uid, why);
        close(fd);
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        if (!privileged)
            uid_put(cred.uid);
        close(fd);
        return;
    }
    c->id = ++C.next_id;
    c->fd = fd;
    c->uid = cred.uid;
    c->pid = cred.pid;
    c->privileged = privileged;
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(C.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_warn("epoll_ctl");
        if (!privileged)
            uid_put(cred.uid);
        close(fd);
        free(c);
        return;
    }
    c->events = EPOLLIN;
    c->next = C.conns;
    C.conns = c;
    log_debug("connection %llu from pid %d uid %u%s",
              (unsigned long long)c->id, (int)c->pid, (unsigned int)c->uid,
              c->privileged ? " (privileged)" : "");
}

static void accept_conn(void)
{
    int fd, err, i;

    for (i = 0; i < CONTROL_ACCEPT_BATCH; i++) {
        fd = accept4(C.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            new_conn(fd, 0);
            continue;
        }
        err = errno;
        if (err == EINTR || err == ECONNABORTED)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK)
            return;
        if ((err == EMFILE || err == ENFILE) && C.reserve_fd >= 0) {
            /*
             * Out of descriptors. Leaving the connection in the backlog
             * would keep the listening socket readable (a busy loop) and
             * keep everyone behind it waiting: give up the reserve for
             * it, serve it if privileged, else close it, and go on.
             */
            close(C.reserve_fd);
            C.reserve_fd = -1;
            fd = accept4(C.listen_fd, NULL, NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
            err = errno;
            if (fd >= 0)
                new_conn(fd, 1);
            reserve_fd_open();
            if (fd >= 0)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
        }
        /* Try again once something was closed, not at once. */
        errno = err;
        if (ratelimit(&C.rl_accept, "accept errors"))
            log_warn("accept (not accepting for %d ms)",
                     CONTROL_ACCEPT_PAUSE_MS);
        listen_pause();
        return;
    }
}

static void read_conn(struct conn *c)
{
    ssize_t n;
    int i, rc;

    for (i = 0; i < CONTROL_BATCH && !c->dead && !c->failed &&
                !conn_paused(c);
         i++) {
        n = recv(c->fd, C.rx, NOXS_PROTO_MAX_MSG + 1,
                 MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_fail(c);
            return;
        }
        rc = noxs_proto_decode(C.rx, (size_t)n, C.msg);
        if (rc == -EPROTO) {
            if (ratelimit(&C.rl_malformed, "malformed messages"))
                log_warnx("connection %llu (pid %d uid %u): malformed "
                          "message (%zd bytes, type %u); closing it",
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
    /* The socket gets its mode at bind: a chmod by name afterwards would
     * follow whatever was put at that name meanwhile. */
    old = umask(~mode & 0777);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        log_warn("bind %s", path);
        umask(old);
        close(fd);
        return -1;
    }
    umask(old);
    if (listen(fd, 128) < 0) {
        log_warn("listen");
        close(fd);
        return -1;
    }
    return fd;
}

/* Descriptors open now (0 if unknown). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
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
    reserve_fd_open();
    if (C.reserve_fd < 0)
        log_warn("reserve descriptor");
    C.base_fds = count_fds();
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

/*
 * Close every failed connection. broker_conn_closed() may fail others
 * (a watcher that does not read the events it sends): they join the list
 * and are closed in the same call.
 */
static void reap_failed(void)
{
    struct conn *c;

    while ((c = C.failed) != NULL) {
        C.failed = c->fail_next;
        c->fail_next = NULL;
        conn_close(c);
    }
}

int control_run(void)
{
    struct epoll_event evs[64];
    struct conn *c;
    uint64_t now;
    int n, i, timeout;

    while (!C.quit) {
        /* Expiring requests sends answers, which may fail connections. */
        do {
            reap_failed();
            timeout = broker_timeouts();
        } while (C.failed);
        if (C.listen_paused_until) {
            now = now_ms();
            if (now >= C.listen_paused_until) {
                listen_resume();
            } else {
                int left = (int)(C.listen_paused_until - now);
                if (timeout < 0 || left < timeout)
                    timeout = left;
            }
        }
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
                if (c->dead || c->failed)
                    continue;
                if (evs[i].events & EPOLLOUT)
                    flush(c);
                if (!c->failed && (evs[i].events & (EPOLLHUP | EPOLLERR)) &&
                    conn_paused(c))
                    conn_fail(c); /* gone, and we read no more from it */
                else if (!c->failed && (evs[i].events & (EPOLLIN |
                                                         EPOLLHUP |
                                                         EPOLLERR)))
                    read_conn(c);
                if (!c->failed && c->close_after_flush && !c->outq)
                    conn_fail(c);
            }
            reap_failed();
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

    C.failed = NULL; /* every connection is closed below */
    while (C.conns)
        conn_close(C.conns);
    free(C.uids);
    if (C.reserve_fd >= 0)
        close(C.reserve_fd);
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
