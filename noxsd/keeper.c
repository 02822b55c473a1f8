/*
 * The page keeper, and the worker's side of talking to it.
 *
 * Why a separate process: a page shared with xengntshr_share_pages() lives
 * as long as the sharing handle, and no API rebuilds a gntshr handle from
 * an inherited descriptor. So the handle whose pages ARE the device pages
 * (and the event-channel handle holding each guest's notify port) must sit
 * in a process that does not crash when the worker does: this one. It is
 * deliberately dumb. It parses nothing from guests, accepts connections
 * only from its own uid (a 0600 socket, checked again with SO_PEERCRED),
 * serves one worker at a time, and every message is one fixed-size struct
 * keeper_msg whose size is checked exactly.
 *
 * Lifetime: started by the first worker (fork, setsid, exec of the same
 * binary with --keeper); it outlives workers, counts their restarts, and
 * exits on SIGTERM/SIGINT or KEEPER_EXIT (noxsd --stop). When it exits or
 * dies, every device page and notify port goes with it: guests keep their
 * connected devices (those live on the backends' control pages) but can no
 * longer learn of new ones. docs/NOXSD.md says what the worker does then.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/page.h>

#include "noxsd.h"

#define KEEPER_MAX_CLIENTS 4
#define KEEPER_IO_TIMEOUT_MS 5000

struct kpage {
    void *page;
    uint32_t gref;
    uint32_t port;
};

static struct {
    xengntshr_handle *gs;
    xenevtchn_handle *xce;
    uint16_t owner_domid;
    struct kpage *pages[NOXS_DOMID_MAX + 1];
    int listen_fd;
    int clients[KEEPER_MAX_CLIENTS];
    int worker; /* index in clients[] of the attached worker, or -1 */
    uint32_t workers_seen;
} K;

static int socket_path(const char *dir, char *out, size_t len)
{
    struct sockaddr_un sun;

    if ((size_t)snprintf(out, len, "%s/%s", dir, NOXSD_KEEPER_SOCKET) >=
            len ||
        strlen(out) >= sizeof(sun.sun_path))
        return -ENAMETOOLONG;
    return 0;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {KEEPER_IO_TIMEOUT_MS / 1000,
                         (KEEPER_IO_TIMEOUT_MS % 1000) * 1000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static uint64_t self_rss(void)
{
    unsigned long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    uint64_t rss = 0;

    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    return rss;
}

/* ---------------------------------------------------------------- */
/* The keeper process                                                */

static int page_create(uint16_t domid, struct keeper_msg *rep)
{
    struct kpage *p = K.pages[domid];
    uint32_t ref;
    int port;

    if (!p) {
        if ((p = calloc(1, sizeof(*p))) == NULL)
            return ENOMEM;
        p->page = xengntshr_share_pages(K.gs, domid, 1, &ref, 0);
        if (!p->page) {
            int e = errno ? errno : EIO;
            log_warn("keeper: share page with domain %u", domid);
            free(p);
            return e;
        }
        if ((port = xenevtchn_bind_unbound_port(K.xce, domid)) < 0) {
            int e = errno ? errno : EIO;
            log_warn("keeper: unbound port for domain %u", domid);
            xengntshr_unshare(K.gs, p->page, 1);
            free(p);
            return e;
        }
        p->gref = ref;
        p->port = (uint32_t)port;
        memset(p->page, 0, NOXS_PAGE_SIZE);
        noxs_devpage_init(p->page, domid, K.owner_domid, p->port);
        K.pages[domid] = p;
        log_debug("keeper: page of domain %u: gref %u port %u", domid,
                  p->gref, p->port);
    }
    rep->gref = p->gref;
    rep->port = p->port;
    return 0;
}

static int page_write(const struct keeper_msg *req)
{
    struct kpage *p = K.pages[req->domid];

    if (!p)
        return ENOENT;
    if (req->count > NOXS_DEVPAGE_MAX_ENTRIES)
        return ENOSPC;
    if (noxs_devpage_write(p->page, req->entries, req->count) < 0)
        return errno ? errno : EIO;
    if (xenevtchn_notify(K.xce, p->port) < 0)
        log_warn("keeper: notify domain %u", req->domid);
    return 0;
}

static void page_free(uint16_t domid)
{
    struct kpage *p = K.pages[domid];

    if (!p)
        return;
    xenevtchn_unbind(K.xce, p->port);
    xengntshr_unshare(K.gs, p->page, 1);
    free(p);
    K.pages[domid] = NULL;
}

static int send_msg(int fd, const struct keeper_msg *m)
{
    ssize_t n;

    do
        n = send(fd, m, sizeof(*m), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(*m) ? 0 : -1;
}

static int dump(int fd, uint32_t request_pid)
{
    static struct noxs_devpage copy;
    struct keeper_msg *m = calloc(1, sizeof(*m));
    unsigned int d;

    if (!m)
        return -1;
    for (d = 0; d <= NOXS_DOMID_MAX; d++) {
        struct kpage *p = K.pages[d];

        if (!p)
            continue;
        memset(m, 0, sizeof(*m));
        m->type = KEEPER_DUMP_ITEM;
        m->domid = (uint16_t)d;
        m->gref = p->gref;
        m->port = p->port;
        /* Our own page: we are its only writer, so this always settles. */
        if (noxs_devpage_snapshot(p->page, &copy, (uint16_t)d) == 0) {
            m->count = copy.hdr.entry_count;
            memcpy(m->entries, copy.entries,
                   m->count * sizeof(m->entries[0]));
        }
        if (send_msg(fd, m) < 0) {
            free(m);
            return -1;
        }
    }
    memset(m, 0, sizeof(*m));
    m->type = KEEPER_DUMP_END;
    m->pid = request_pid;
    d = (unsigned int)send_msg(fd, m);
    free(m);
    return (int)d;
}

static void drop_client(int i)
{
    close(K.clients[i]);
    K.clients[i] = -1;
    if (K.worker == i) {
        K.worker = -1;
        log_info("keeper: worker detached");
    }
}

/* Returns 1 if the keeper should exit. */
static int serve(int i, struct keeper_msg *req, struct keeper_msg *rep)
{
    int fd = K.clients[i];
    ssize_t n;

    n = recv(fd, req, sizeof(*req), MSG_TRUNC);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        drop_client(i);
        return 0;
    }
    if (n < 0)
        return 0;
    if (n != (ssize_t)sizeof(*req)) {
        log_warnx("keeper: message of %zd bytes; dropping the client", n);
        drop_client(i);
        return 0;
    }
    memset(rep, 0, sizeof(*rep));
    rep->type = (uint16_t)(req->type | KEEPER_REPLY);
    rep->domid = req->domid;
    if (req->type != KEEPER_HELLO && req->type != KEEPER_EXIT &&
        req->type != KEEPER_STATUS && req->domid > NOXS_DOMID_MAX &&
        req->type != KEEPER_DUMP) {
        rep->error = EINVAL;
        send_msg(fd, rep);
        return 0;
    }
    switch (req->type) {
    case KEEPER_HELLO:
        if (K.worker >= 0 && K.worker != i) {
            rep->error = EBUSY;
            break;
        }
        if (K.worker != i) {
            if (K.workers_seen++ > 0)
                log_info("keeper: worker %u attached (restart %u)",
                         req->pid, K.workers_seen - 1);
            else
                log_info("keeper: worker %u attached", req->pid);
        }
        K.worker = i;
        rep->pid = (uint32_t)getpid();
        rep->restarts = K.workers_seen ? K.workers_seen - 1 : 0;
        break;
    case KEEPER_PAGE_CREATE:
        rep->error = page_create(req->domid, rep);
        break;
    case KEEPER_PAGE_WRITE:
        rep->error = page_write(req);
        break;
    case KEEPER_PAGE_DESTROY:
        if (!K.pages[req->domid])
            rep->error = ENOENT;
        page_free(req->domid);
        break;
    case KEEPER_DUMP:
        if (dump(fd, req->pid) < 0)
            drop_client(i);
        return 0;
    case KEEPER_STATUS:
        rep->pid = (uint32_t)getpid();
        rep->restarts = K.workers_seen ? K.workers_seen - 1 : 0;
        rep->rss_bytes = self_rss();
        break;
    case KEEPER_EXIT:
        log_info("keeper: asked to exit");
        send_msg(fd, rep);
        return 1;
    default:
        rep->error = EINVAL;
        break;
    }
    if (send_msg(fd, rep) < 0)
        drop_client(i);
    return 0;
}

static void accept_client(void)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int fd, i;

    fd = accept4(K.listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
        cred.uid != geteuid()) {
        log_warnx("keeper: refusing a connection from uid %u",
                  (unsigned int)cred.uid);
        close(fd);
        return;
    }
    for (i = 0; i < KEEPER_MAX_CLIENTS; i++) {
        if (K.clients[i] < 0) {
            K.clients[i] = fd;
            set_timeouts(fd);
            return;
        }
    }
    log_warnx("keeper: too many clients");
    close(fd);
}

/* A guest may notify its notify port; we have nothing to read there. */
static void drain_events(void)
{
    struct pollfd p = {.fd = xenevtchn_fd(K.xce), .events = POLLIN};
    xenevtchn_port_or_error_t port;
    int n;

    /* pending() blocks when nothing is pending: poll before each call. */
    for (n = 0; n < 64 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN); n++) {
        if ((port = xenevtchn_pending(K.xce)) < 0)
            break;
        xenevtchn_unmask(K.xce, (evtchn_port_t)port);
    }
}

void keeper_main(const struct keeper_opts *o)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct pollfd pfd[3 + KEEPER_MAX_CLIENTS];
    struct keeper_msg *req, *rep;
    char path[PATH_MAX], pidpath[PATH_MAX];
    sigset_t mask;
    mode_t old;
    int sfd, i, n, quit = 0;
    FILE *pf;

    log_init(o->foreground, o->verbose, "noxsd-keeper");
    K.owner_domid = o->owner_domid;
    K.worker = -1;
    for (i = 0; i < KEEPER_MAX_CLIENTS; i++)
        K.clients[i] = -1;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if ((sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0)
        fatal("keeper: signalfd");

    if ((K.gs = xengntshr_open(NULL, 0)) == NULL)
        fatal("keeper: xengntshr_open");
    if ((K.xce = xenevtchn_open(NULL, 0)) == NULL)
        fatal("keeper: xenevtchn_open");

    if (socket_path(o->state_dir, path, sizeof(path)) < 0)
        fatalx("keeper: state directory path too long");
    memcpy(sun.sun_path, path, strlen(path) + 1);
    K.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (K.listen_fd < 0)
        fatal("keeper: socket");
    /* A live keeper answers; a stale socket file does not. */
    if (connect(K.listen_fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        fatalx("keeper: another keeper is running on %s", path);
    close(K.listen_fd);
    K.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    unlink(path);
    old = umask(0177);
    if (bind(K.listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        fatal("keeper: bind %s", path);
    umask(old);
    if (listen(K.listen_fd, 4) < 0)
        fatal("keeper: listen");

    snprintf(pidpath, sizeof(pidpath), "%s/%s", o->state_dir,
             NOXSD_KEEPER_PIDFILE);
    if ((pf = fopen(pidpath, "w")) != NULL) {
        fprintf(pf, "%d\n", (int)getpid());
        fclose(pf);
    }
    log_info("keeper: started (pid %d, domain %u)", (int)getpid(),
             o->owner_domid);

    req = calloc(1, sizeof(*req));
    rep = calloc(1, sizeof(*rep));
    if (!req || !rep)
        fatalx("keeper: out of memory");

    while (!quit) {
        n = 0;
        pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = K.listen_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = xenevtchn_fd(K.xce), .events = POLLIN};
        for (i = 0; i < KEEPER_MAX_CLIENTS; i++)
            pfd[n++] = (struct pollfd){.fd = K.clients[i], .events = POLLIN};
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            fatal("keeper: poll");
        }
        if (pfd[0].revents) {
            log_info("keeper: signalled, exiting");
            break;
        }
        if (pfd[2].revents)
            drain_events();
        for (i = 0; i < KEEPER_MAX_CLIENTS && !quit; i++)
            if (K.clients[i] >= 0 && pfd[3 + i].revents)
                quit = serve(i, req, rep);
        if (pfd[1].revents)
            accept_client();
    }

    for (i = 0; i <= (int)NOXS_DOMID_MAX; i++)
        page_free((uint16_t)i);
    unlink(path);
    unlink(pidpath);
    xenevtchn_close(K.xce);
    xengntshr_close(K.gs);
    exit(0);
}

/* ---------------------------------------------------------------- */
/* The worker's side                                                 */

struct keeper_conn {
    int fd;
    pid_t pid;
    uint32_t restarts;
    struct keeper_msg msg;
};

static int connect_keeper(const char *dir)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char path[PATH_MAX];
    int fd, e;

    if (socket_path(dir, path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        e = errno;
        close(fd);
        return -e;
    }
    set_timeouts(fd);
    return fd;
}

/* fork, setsid, fork, exec: the keeper is nobody's child but init's. */
static int spawn_keeper(const struct keeper_opts *o, const char *self_exe)
{
    char domid[8];
    char *argv[10];
    int argc = 0, status;
    pid_t pid;

    snprintf(domid, sizeof(domid), "%u", o->owner_domid);
    argv[argc++] = (char *)"noxsd";
    argv[argc++] = (char *)"--keeper";
    argv[argc++] = (char *)"--state-dir";
    argv[argc++] = (char *)o->state_dir;
    argv[argc++] = (char *)"--domid";
    argv[argc++] = domid;
    if (o->foreground)
        argv[argc++] = (char *)"-d";
    if (o->verbose)
        argv[argc++] = (char *)"-v";
    argv[argc] = NULL;

    log_info("starting the page keeper");
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* Only async-signal-safe calls from here to exec. */
        int fd;

        setsid();
        if (fork() != 0)
            _exit(0);
        fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            if (!o->foreground) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
        }
        for (fd = 3; fd < 1024; fd++)
            close(fd);
        execv(self_exe, argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int request(struct keeper_conn *k, uint16_t type)
{
    ssize_t n;

    k->msg.type = type;
    if (send_msg(k->fd, &k->msg) < 0)
        return -EPIPE;
    do
        n = recv(k->fd, &k->msg, sizeof(k->msg), MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    /*
     * Only the answer to this request will do: a DUMP_ITEM or DUMP_END is
     * accepted only as the answer to DUMP. Anything else means the stream
     * is out of step, which we treat like a lost keeper.
     */
    if (n != (ssize_t)sizeof(k->msg))
        return -EPIPE;
    if (type == KEEPER_DUMP
            ? k->msg.type != KEEPER_DUMP_ITEM &&
                  k->msg.type != KEEPER_DUMP_END
            : k->msg.type != (type | KEEPER_REPLY))
        return -EPIPE;
    return k->msg.error ? -k->msg.error : 0;
}

struct keeper_conn *keeper_connect(const struct keeper_opts *o,
                                   const char *self_exe)
{
    struct keeper_conn *k = calloc(1, sizeof(*k));
    int fd = -1, spawned = 0, tries, rc;

    if (!k)
        return NULL;
    for (tries = 0; tries < 500; tries++) {
        fd = connect_keeper(o->state_dir);
        if (fd == -ENOENT || fd == -ECONNREFUSED) {
            if (!spawned) {
                if ((rc = spawn_keeper(o, self_exe)) < 0) {
                    errno = -rc;
                    free(k);
                    return NULL;
                }
                spawned = 1;
            }
            sleep_ms(10);
            continue;
        }
        if (fd < 0)
            break;
        k->fd = fd;
        memset(&k->msg, 0, sizeof(k->msg));
        k->msg.pid = (uint32_t)getpid();
        rc = request(k, KEEPER_HELLO);
        if (rc == 0) {
            k->pid = (pid_t)k->msg.pid;
            k->restarts = k->msg.restarts;
            return k;
        }
        close(fd);
        fd = rc;
        if (rc != -EBUSY && rc != -EPIPE)
            break;
        /* The previous worker's connection is not reaped yet. */
        sleep_ms(10);
    }
    free(k);
    errno = fd < 0 ? -fd : ETIMEDOUT;
    return NULL;
}

void keeper_disconnect(struct keeper_conn *k)
{
    if (!k)
        return;
    close(k->fd);
    free(k);
}

int keeper_fd(const struct keeper_conn *k)
{
    return k->fd;
}

pid_t keeper_pid(const struct keeper_conn *k)
{
    return k->pid;
}

uint32_t keeper_restarts(const struct keeper_conn *k)
{
    return k->restarts;
}

int keeper_page_create(struct keeper_conn *k, uint16_t domid, uint32_t *gref,
                       uint32_t *port)
{
    int rc;

    memset(&k->msg, 0, offsetof(struct keeper_msg, entries));
    k->msg.domid = domid;
    if ((rc = request(k, KEEPER_PAGE_CREATE)) < 0)
        return rc;
    *gref = k->msg.gref;
    *port = k->msg.port;
    return 0;
}

int keeper_page_write(struct keeper_conn *k, uint16_t domid,
                      const struct noxs_devpage_entry *entries,
                      uint32_t count)
{
    if (count > NOXS_DEVPAGE_MAX_ENTRIES)
        return -ENOSPC;
    memset(&k->msg, 0, sizeof(k->msg));
    k->msg.domid = domid;
    k->msg.count = count;
    memcpy(k->msg.entries, entries, count * sizeof(entries[0]));
    return request(k, KEEPER_PAGE_WRITE);
}

int keeper_page_destroy(struct keeper_conn *k, uint16_t domid)
{
    memset(&k->msg, 0, offsetof(struct keeper_msg, entries));
    k->msg.domid = domid;
    return request(k, KEEPER_PAGE_DESTROY);
}

/*
 * The keeper answers DUMP with every DUMP_ITEM and the DUMP_END in one go,
 * before it reads anything else from us. So the whole dump is read first
 * and fn (which may send the keeper requests: rewrite or destroy a page)
 * runs afterwards; a request sent while items are still queued would be
 * "answered" by the next item. (That was the bug behind a restarted worker
 * forgetting a live domain and then exiting on the stray reply.)
 */
int keeper_dump(struct keeper_conn *k,
                int (*fn)(const struct keeper_msg *page, void *arg), void *arg)
{
    const size_t head = offsetof(struct keeper_msg, entries);
    struct keeper_msg **items = NULL, **grown;
    size_t n = 0, cap = 0, i;
    ssize_t got;
    int rc;

    memset(&k->msg, 0, sizeof(k->msg));
    if ((rc = request(k, KEEPER_DUMP)) < 0)
        return rc;
    while (k->msg.type == KEEPER_DUMP_ITEM) {
        struct keeper_msg *copy;
        size_t len;

        if (k->msg.count > NOXS_DEVPAGE_MAX_ENTRIES) {
            rc = -EPIPE;
            goto out;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            if ((grown = realloc(items, cap * sizeof(*items))) == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            items = grown;
        }
        /* Only the entries in use: a dump of every domain stays small. */
        len = head + k->msg.count * sizeof(k->msg.entries[0]);
        if ((copy = malloc(len)) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(copy, &k->msg, len);
        items[n++] = copy;
        do
            got = recv(k->fd, &k->msg, sizeof(k->msg), MSG_TRUNC);
        while (got < 0 && errno == EINTR);
        if (got != (ssize_t)sizeof(k->msg)) {
            rc = -EPIPE;
            goto out;
        }
    }
    if (k->msg.type != KEEPER_DUMP_END) {
        rc = -EPIPE;
        goto out;
    }
    rc = 0;
    for (i = 0; i < n && rc == 0; i++)
        rc = fn(items[i], arg);
out:
    for (i = 0; i < n; i++)
        free(items[i]);
    free(items);
    return rc;
}

int keeper_status(struct keeper_conn *k, struct keeper_msg *out)
{
    int rc;

    memset(&k->msg, 0, offsetof(struct keeper_msg, entries));
    if ((rc = request(k, KEEPER_STATUS)) < 0)
        return rc;
    memcpy(out, &k->msg, offsetof(struct keeper_msg, entries));
    k->restarts = k->msg.restarts;
    return 0;
}

int keeper_stop(const char *state_dir, int timeout_ms)
{
    struct keeper_conn k = {0};
    char buf[16];
    int fd, rc;

    if ((fd = connect_keeper(state_dir)) < 0)
        return fd == -ENOENT || fd == -ECONNREFUSED ? 0 : fd;
    k.fd = fd;
    if ((rc = request(&k, KEEPER_EXIT)) < 0) {
        close(fd);
        return rc;
    }
    /* Wait for it to go: its end of the socket closes at exit. */
    {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) > 0)
            (void)recv(fd, buf, sizeof(buf), 0);
    }
    close(fd);
    return 0;
}
