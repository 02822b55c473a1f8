/*
 * The worker's side of the page keeper (keeper.c; docs/NOXSD.md): find
 * or start the keeper, and one request at a time over its socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <noxs/page.h>

#include "noxsd.h"
#include "svc.h"

#define KEEPER_IO_TIMEOUT_MS 5000

int keeper_socket_path(const char *dir, char *out, size_t len)
{
    struct sockaddr_un sun;

    if ((size_t)snprintf(out, len, "%s/%s", dir, NOXSD_KEEPER_SOCKET) >=
            len ||
        strlen(out) >= sizeof(sun.sun_path))
        return -ENAMETOOLONG;
    return 0;
}

void keeper_set_timeouts(int fd)
{
    struct timeval tv = {KEEPER_IO_TIMEOUT_MS / 1000,
                         (KEEPER_IO_TIMEOUT_MS % 1000) * 1000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* One whole message (a SOCK_SEQPACKET record). 0, or -1. */
int keeper_send(int fd, const struct keeper_msg *m)
{
    ssize_t n;

    do
        n = send(fd, m, sizeof(*m), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(*m) ? 0 : -1;
}

void keeper_fdmsg_init(struct keeper_fdmsg *f, struct keeper_msg *m)
{
    memset(f, 0, sizeof(*f));
    f->iov.iov_base = m;
    f->iov.iov_len = sizeof(*m);
    f->mh.msg_iov = &f->iov;
    f->mh.msg_iovlen = 1;
    f->mh.msg_control = f->u.buf;
    f->mh.msg_controllen = sizeof(f->u.buf);
}

struct keeper_conn {
    int fd;
    struct keeper_pages *pages; /* NULL: every page write goes to the keeper */
    pid_t pid;
    uint32_t restarts;
    uint32_t keepers;
    struct keeper_msg msg;
};

static int connect_keeper(const char *dir)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char path[PATH_MAX];
    int fd, e;

    if (keeper_socket_path(dir, path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        e = errno;
        close(fd);
        return -e;
    }
    keeper_set_timeouts(fd);
    return fd;
}

/*
 * fork, setsid, fork, exec: the keeper is nobody's child but init's. With
 * files to hand over (o->fds, from systemd's fd store), they go to fds
 * 3..5 and the keeper takes the pages over (--adopt 3).
 */
static int spawn_keeper(const struct keeper_opts *o, const char *self_exe)
{
    char domid[8];
    char *argv[12];
    int argc = 0, status, adopt = 1, high[KEEPER_NFDS], i;
    pid_t pid;

    for (i = 0; i < KEEPER_NFDS; i++)
        if (o->fds[i] < 0)
            adopt = 0;
    snprintf(domid, sizeof(domid), "%u", o->owner_domid);
    argv[argc++] = (char *)"noxsd";
    argv[argc++] = (char *)"--keeper";
    argv[argc++] = (char *)"--state-dir";
    argv[argc++] = (char *)o->state_dir;
    argv[argc++] = (char *)"--domid";
    argv[argc++] = domid;
    if (adopt) {
        argv[argc++] = (char *)"--adopt";
        argv[argc++] = (char *)"3";
    }
    if (o->foreground)
        argv[argc++] = (char *)"-d";
    if (o->verbose)
        argv[argc++] = (char *)"-v";
    argv[argc] = NULL;

    /* Out of the way of 3..5 before the fork: the child only dup2()s. */
    for (i = 0; adopt && i < KEEPER_NFDS; i++)
        if ((high[i] = fcntl(o->fds[i], F_DUPFD_CLOEXEC, 64)) < 0) {
            int e = errno;
            while (--i >= 0)
                close(high[i]);
            return -e;
        }
    if (adopt)
        log_info("starting the page keeper with the files of the last one");
    else
        log_info("starting the page keeper");
    pid = fork();
    if (pid < 0) {
        int e = errno;
        for (i = 0; adopt && i < KEEPER_NFDS; i++)
            close(high[i]);
        return -e;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here to exec. */
        int fd, first = 3;

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
        if (adopt) {
            for (i = 0; i < KEEPER_NFDS; i++)
                if (dup2(high[i], KEEPER_FD_GNTALLOC + i) < 0)
                    _exit(127);
            first = KEEPER_FD_GNTALLOC + KEEPER_NFDS;
        }
        for (fd = first; fd < 1024; fd++)
            close(fd);
        execv(self_exe, argv);
        _exit(127);
    }
    for (i = 0; adopt && i < KEEPER_NFDS; i++)
        close(high[i]);
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
    if (keeper_send(k->fd, &k->msg) < 0)
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

static int hello(struct keeper_conn *k, const char *self_exe, int *other)
{
    struct stat st;
    int rc;

    memset(&k->msg, 0, sizeof(k->msg));
    k->msg.pid = (uint32_t)getpid();
    if (stat(self_exe, &st) == 0) {
        k->msg.exe_dev = (uint64_t)st.st_dev;
        k->msg.exe_ino = (uint64_t)st.st_ino;
    }
    if ((rc = request(k, KEEPER_HELLO)) < 0)
        return rc;
    k->pid = (pid_t)k->msg.pid;
    k->restarts = k->msg.restarts;
    k->keepers = k->msg.keepers;
    *other = (k->msg.flags & KEEPER_F_OTHER_IMAGE) != 0;
    return 0;
}

/* Ask the keeper to become our binary: the pages stay (keeper.c). */
static int reexec_keeper(struct keeper_conn *k, const char *self_exe)
{
    if (strlen(self_exe) >= sizeof(k->msg.entries))
        return -ENAMETOOLONG;
    memset(&k->msg, 0, sizeof(k->msg));
    memcpy(k->msg.entries, self_exe, strlen(self_exe) + 1);
    return request(k, KEEPER_REEXEC);
}

/* KEEPER_FDS: the keeper's three files (KEEPER_FD_* order). 0, or -1. */
static int fetch_fds(struct keeper_conn *k, int fds[KEEPER_NFDS])
{
    struct keeper_fdmsg f;
    struct cmsghdr *c;
    ssize_t n;

    keeper_fdmsg_init(&f, &k->msg);
    memset(&k->msg, 0, sizeof(k->msg));
    k->msg.type = KEEPER_FDS;
    if (keeper_send(k->fd, &k->msg) < 0)
        return -1;
    do
        n = recvmsg(k->fd, &f.mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    c = n == (ssize_t)sizeof(k->msg) ? CMSG_FIRSTHDR(&f.mh) : NULL;
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(KEEPER_NFDS * sizeof(int)) ||
        k->msg.type != (KEEPER_FDS | KEEPER_REPLY))
        return -1;
    memcpy(fds, CMSG_DATA(c), KEEPER_NFDS * sizeof(int));
    return 0;
}

/*
 * Map the keeper's pages ourselves (keeper_pages.c). Without that (an
 * error), every page write goes through the keeper as before.
 */
static void attach_pages(struct keeper_conn *k)
{
    int fds[KEEPER_NFDS];

    if (fetch_fds(k, fds) < 0) {
        log_warnx("keeper: no files in its answer; it writes the pages");
        return;
    }
    close(fds[KEEPER_FD_STATE - KEEPER_FD_GNTALLOC]);
    k->pages = kpages_open(fds[0], fds[KEEPER_FD_EVTCHN - KEEPER_FD_GNTALLOC]);
    if (!k->pages)
        log_warn("keeper: cannot use its files; it writes the pages");
}

struct keeper_conn *keeper_connect(const struct keeper_opts *o,
                                   const char *self_exe)
{
    struct keeper_conn *k = calloc(1, sizeof(*k));
    int fd = -1, spawned = 0, reexeced = 0, tries, rc, other;

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
        rc = hello(k, self_exe, &other);
        if (rc == 0 && other && !reexeced && !spawned) {
            /*
             * A keeper of another binary (an upgrade): it replaces its
             * image with ours in place; we talk to the new one.
             */
            log_info("the page keeper (pid %d) runs another binary; "
                     "asking it to run %s",
                     (int)k->pid, self_exe);
            rc = reexec_keeper(k, self_exe);
            close(fd);
            if (rc < 0) {
                log_warnx("the keeper could not run %s: %s", self_exe,
                          strerror(-rc));
                fd = rc;
                break;
            }
            reexeced = 1;
            sleep_ms(10);
            continue;
        }
        if (rc == 0) {
            attach_pages(k);
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

uint32_t keeper_generations(const struct keeper_conn *k)
{
    return k->keepers;
}

/*
 * Put the keeper's files in systemd's fd store, under fixed names: if the
 * keeper dies, the restarted worker gets them back ($LISTEN_FDS) and
 * starts the next keeper with them. Old entries of those names (a keeper
 * that started afresh) are removed first.
 */
void keeper_store_fds(struct keeper_conn *k)
{
    static const char *const names[KEEPER_NFDS] = KEEPER_FDNAMES;
    int fds[KEEPER_NFDS], i, stored = 0;

    if (sd_notify_fd(NULL, -1) < 0)
        return; /* no notification socket: nobody to store them */
    if (fetch_fds(k, fds) < 0) {
        log_warnx("keeper: no files in its answer; not stored");
        return;
    }
    for (i = 0; i < KEEPER_NFDS; i++) {
        if (sd_fdstore(names[i], fds[i]) == 0)
            stored++;
        close(fds[i]);
    }
    if (stored == KEEPER_NFDS)
        log_info("the keeper's files are in the service manager's fd store");
    else
        log_warnx("stored %d of the keeper's %d files", stored, KEEPER_NFDS);
}

void keeper_disconnect(struct keeper_conn *k)
{
    if (!k)
        return;
    kpages_close(k->pages);
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
    if (k->pages &&
        (rc = kpages_map(k->pages, domid, k->msg.index, *port)) < 0)
        log_warnx("keeper: map the page of domain %u: %s; the keeper "
                  "writes it",
                  domid, strerror(-rc));
    return 0;
}

int keeper_page_write(struct keeper_conn *k, uint16_t domid,
                      const struct noxs_devpage_entry *entries,
                      uint32_t count)
{
    int rc;

    if (count > NOXS_DEVPAGE_MAX_ENTRIES)
        return -ENOSPC;
    /* Written here and visible when this returns, as through the keeper. */
    if (k->pages && (rc = kpages_write(k->pages, domid, entries, count)) !=
                        -ENOENT)
        return rc;
    memset(&k->msg, 0, sizeof(k->msg));
    k->msg.domid = domid;
    k->msg.count = count;
    memcpy(k->msg.entries, entries, count * sizeof(entries[0]));
    return request(k, KEEPER_PAGE_WRITE);
}

int keeper_page_destroy(struct keeper_conn *k, uint16_t domid)
{
    /* Our mapping would keep the page allocated past its DEALLOC. */
    if (k->pages)
        kpages_unmap(k->pages, domid);
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
    for (i = 0; i < n && rc == 0; i++) {
        if (k->pages && kpages_map(k->pages, items[i]->domid, items[i]->index,
                                   items[i]->port) < 0)
            log_warn("keeper: map the page of domain %u; the keeper writes "
                     "it",
                     items[i]->domid);
        rc = fn(items[i], arg);
    }
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
    k->keepers = k->msg.keepers;
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
