/*
 * The page keeper process (the worker's side of talking to it is in
 * keeper_conn.c).
 *
 * Why a separate process: the device pages and each guest's notify port
 * must outlive the worker, which parses everything other processes send.
 * The keeper is deliberately dumb. It parses nothing from guests, accepts
 * connections only from its own uid (a 0600 socket, checked again with
 * SO_PEERCRED), serves one worker at a time, and every message is one
 * fixed-size struct keeper_msg whose size is checked exactly.
 *
 * Why the pages outlive the keeper too: xengntshr_share_pages() ties a
 * page to the process's mapping (libxengnttab deallocates the grant from
 * the gntalloc file right after mapping it, so only the mapping holds it)
 * and no API rebuilds a gntshr handle from a descriptor. So the keeper
 * allocates its pages with the gntalloc device's own interface on the
 * handle's descriptor (xengntshr_fd(), which the header offers for
 * "calling ioctls on directly"): IOCTL_GNTALLOC_ALLOC_GREF without the
 * DEALLOC, so that a page lives as long as that open file does, and can
 * be mapped again by whoever holds the file, at the index the ALLOC
 * returned. Event-channel ports are bound on the evtchn file and live as
 * long as it does (xenevtchn_fdopen() rebuilds the handle). What the
 * keeper knows (per domain: index, grant ref, port) is in a memfd of its
 * own. Those three files are the keeper's whole state: the worker puts
 * them in systemd's file-descriptor store, a new keeper started with them
 * (noxsd --keeper --adopt) maps the pages again, and a keeper replaces its
 * own program image in place (exec with the files inherited) when a worker
 * of a newer binary attaches. docs/DESIGN.md says why.
 *
 * The worker writes the pages' contents itself, through its own
 * descriptors of our gntalloc and evtchn files (KEEPER_FDS, then
 * keeper_pages.c); PAGE_WRITE remains for a page it could not map. We
 * create, keep and end the pages and ports, and tell the next worker of a
 * page left mid-write (KEEPER_F_TORN in DUMP).
 *
 * Lifetime: started by the first worker (fork, setsid, exec of the same
 * binary with --keeper); it outlives workers and counts their restarts.
 * KEEPER_EXIT (noxsd --stop --teardown) ends every page and port, then
 * the keeper exits. SIGTERM/SIGINT make it exit without ending anything:
 * the pages and ports then live exactly as long as another holder of its
 * files (the fd store) does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xen/gntalloc.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/page.h>

#include "noxsd.h"
#include "svc.h"

#define KEEPER_MAX_CLIENTS 4

/* The keeper's state file (a memfd), one record per domain. */
#define KSTATE_MAGIC 0x31305045454b584eull /* "NXKEEP01" */
#define KSTATE_VERSION 1u

#define KREC_FREE 0u
#define KREC_CREATING 1u /* allocated, maybe bound; not yet handed out */
#define KREC_LIVE 2u
#define KREC_DESTROYING 3u /* being ended */

struct krec {
    _Atomic uint32_t state;
    uint32_t gref;
    uint32_t port; /* 0: none bound yet */
    uint32_t reserved;
    uint64_t index; /* gntalloc mmap offset */
};

struct kstate {
    uint64_t magic;
    uint32_t version;
    uint16_t owner_domid;
    uint16_t reserved0;
    uint32_t workers_seen;
    uint32_t keepers; /* keeper processes and images that held this state */
    uint8_t reserved[40];
    struct krec rec[NOXS_DOMID_MAX + 1];
};


static struct {
    const struct keeper_opts *o;
    int gfd;               /* the gntalloc file: the pages */
    xenevtchn_handle *xce; /* on the evtchn file: the ports */
    int efd;
    int sfd; /* the memfd: st */
    struct kstate *st;
    noxs_i_gntalloc_ioctl_fn *gntalloc_ioctl;
    void *pages[NOXS_DOMID_MAX + 1]; /* our mapping of each live page */
    int listen_fd;
    int clients[KEEPER_MAX_CLIENTS];
    int worker; /* index in clients[] of the attached worker, or -1 */
} K;

/* ---------------------------------------------------------------- */
/* The keeper process                                                */

static int gnt_alloc(uint16_t domid, uint64_t *index, uint32_t *gref)
{
    struct ioctl_gntalloc_alloc_gref op = {.domid = domid,
                                           .flags = 0, /* read-only */
                                           .count = 1};

    if (K.gntalloc_ioctl(K.gfd, IOCTL_GNTALLOC_ALLOC_GREF, &op) < 0)
        return -1;
    *index = op.index;
    *gref = op.gref_ids[0];
    return 0;
}

static void gnt_dealloc(uint64_t index)
{
    struct ioctl_gntalloc_dealloc_gref op = {.index = index, .count = 1};

    if (K.gntalloc_ioctl(K.gfd, IOCTL_GNTALLOC_DEALLOC_GREF, &op) < 0)
        log_warn("keeper: gntalloc dealloc at %llu",
                 (unsigned long long)index);
}

static void *gnt_map(uint64_t index)
{
    void *p = mmap(NULL, NOXS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                   K.gfd, (off_t)index);

    return p == MAP_FAILED ? NULL : p;
}

static void rec_clear(struct krec *r)
{
    atomic_store(&r->state, KREC_DESTROYING);
    r->gref = 0;
    r->port = 0;
    r->index = 0;
    atomic_store(&r->state, KREC_FREE);
}

/*
 * Every step is recorded before the next one, so that a keeper killed
 * anywhere leaves a record the next one can finish or undo (adopt()).
 * Only a kill between the ALLOC ioctl's return and the record leaks one
 * page (in the gntalloc file, ended with it).
 */
static int page_create(uint16_t domid, struct keeper_msg *rep)
{
    struct krec *r = &K.st->rec[domid];
    uint64_t index;
    uint32_t gref;
    void *page;
    int port, e;

    if (!K.pages[domid]) {
        if (gnt_alloc(domid, &index, &gref) < 0) {
            e = errno ? errno : EIO;
            log_warn("keeper: share a page with domain %u", domid);
            return e;
        }
        r->index = index;
        r->gref = gref;
        r->port = 0;
        atomic_store(&r->state, KREC_CREATING);
        if ((page = gnt_map(index)) == NULL) {
            e = errno ? errno : EIO;
            log_warn("keeper: map the page of domain %u", domid);
            gnt_dealloc(index);
            rec_clear(r);
            return e;
        }
        if ((port = xenevtchn_bind_unbound_port(K.xce, domid)) < 0) {
            e = errno ? errno : EIO;
            log_warn("keeper: unbound port for domain %u", domid);
            munmap(page, NOXS_PAGE_SIZE);
            gnt_dealloc(index);
            rec_clear(r);
            return e;
        }
        r->port = (uint32_t)port;
        memset(page, 0, NOXS_PAGE_SIZE);
        noxs_devpage_init(page, domid, K.o->owner_domid, r->port);
        K.pages[domid] = page;
        atomic_store(&r->state, KREC_LIVE);
        log_debug("keeper: page of domain %u: gref %u port %u", domid,
                  r->gref, r->port);
    }
    rep->gref = r->gref;
    rep->port = r->port;
    rep->index = r->index;
    return 0;
}

static int page_write(const struct keeper_msg *req)
{
    void *page = K.pages[req->domid];

    if (!page)
        return ENOENT;
    if (req->count > NOXS_DEVPAGE_MAX_ENTRIES)
        return ENOSPC;
    if (noxs_devpage_write(page, req->entries, req->count) < 0)
        return errno ? errno : EIO;
    if (xenevtchn_notify(K.xce, K.st->rec[req->domid].port) < 0)
        log_warn("keeper: notify domain %u", req->domid);
    return 0;
}

/* End a page and its port: the guest's mapping stays until it unmaps. */
static void page_free(uint16_t domid)
{
    struct krec *r = &K.st->rec[domid];

    if (atomic_load(&r->state) == KREC_FREE)
        return;
    atomic_store(&r->state, KREC_DESTROYING);
    if (r->port)
        xenevtchn_unbind(K.xce, r->port);
    if (K.pages[domid])
        munmap(K.pages[domid], NOXS_PAGE_SIZE);
    K.pages[domid] = NULL;
    gnt_dealloc(r->index);
    rec_clear(r);
}

/*
 * A new keeper (or a new image of this one) takes over the files: map
 * every live page again, finish what a killed keeper left half done.
 */
static unsigned int adopt(void)
{
    unsigned int d, n = 0;

    for (d = 0; d <= NOXS_DOMID_MAX; d++) {
        struct krec *r = &K.st->rec[d];
        uint32_t state = atomic_load(&r->state);

        if (state == KREC_FREE)
            continue;
        if (state == KREC_LIVE && (K.pages[d] = gnt_map(r->index)) != NULL) {
            /* An event a killed keeper took but did not unmask. */
            xenevtchn_unmask(K.xce, r->port);
            n++;
            continue;
        }
        if (state == KREC_LIVE)
            log_warn("keeper: cannot map the page of domain %u again "
                     "(gref %u); dropping it",
                     d, r->gref);
        else
            log_info("keeper: finishing the half-%s page of domain %u",
                     state == KREC_CREATING ? "created" : "destroyed", d);
        page_free((uint16_t)d);
    }
    return n;
}

static int state_map(int fd, int fresh)
{
    struct stat st;
    void *p;

    if (fresh && ftruncate(fd, (off_t)sizeof(struct kstate)) < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        return -1;
    if ((size_t)st.st_size != sizeof(struct kstate)) {
        errno = EINVAL;
        return -1;
    }
    p = mmap(NULL, sizeof(struct kstate), PROT_READ | PROT_WRITE, MAP_SHARED,
             fd, 0);
    if (p == MAP_FAILED)
        return -1;
    K.st = p;
    if (fresh) {
        K.st->version = KSTATE_VERSION;
        K.st->owner_domid = K.o->owner_domid;
        K.st->magic = KSTATE_MAGIC;
    } else if (K.st->magic != KSTATE_MAGIC ||
               K.st->version != KSTATE_VERSION) {
        munmap(p, sizeof(struct kstate));
        K.st = NULL;
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* Files handed over at fds 3, 4, 5: gntalloc, evtchn, state. */
static int open_adopted(void)
{
    int fd;

    for (fd = KEEPER_FD_GNTALLOC; fd <= KEEPER_FD_STATE; fd++)
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
            return -1;
    if (state_map(KEEPER_FD_STATE, 0) < 0) {
        log_warn("keeper: the state file handed over is not ours");
        return -1;
    }
    if ((K.xce = xenevtchn_fdopen(NULL, KEEPER_FD_EVTCHN, 0)) == NULL) {
        log_warn("keeper: xenevtchn_fdopen");
        munmap(K.st, sizeof(struct kstate));
        K.st = NULL;
        return -1;
    }
    K.gfd = KEEPER_FD_GNTALLOC;
    K.efd = KEEPER_FD_EVTCHN;
    K.sfd = KEEPER_FD_STATE;
    return 0;
}

static void open_fresh(void)
{
    xengntshr_handle *gs;

    /* The library opens the device; we keep its file. */
    if ((gs = xengntshr_open(NULL, 0)) == NULL)
        fatal("keeper: xengntshr_open");
    K.gfd = fcntl(xengntshr_fd(gs), F_DUPFD_CLOEXEC, 3);
    if (K.gfd < 0)
        fatal("keeper: gntalloc file");
    xengntshr_close(gs);
    if ((K.xce = xenevtchn_open(NULL, 0)) == NULL)
        fatal("keeper: xenevtchn_open");
    K.efd = xenevtchn_fd(K.xce);
    if ((K.sfd = memfd_create("noxsd-keeper-state", MFD_CLOEXEC)) < 0)
        fatal("keeper: memfd_create");
    if (state_map(K.sfd, 1) < 0)
        fatal("keeper: state file");
}

/* The reply to KEEPER_FDS, with our three files attached. */
static int send_fds(int fd, struct keeper_msg *m)
{
    int fds[KEEPER_NFDS] = {K.gfd, K.efd, K.sfd};
    struct keeper_fdmsg f;
    struct cmsghdr *c;
    ssize_t n;

    keeper_fdmsg_init(&f, m);
    c = CMSG_FIRSTHDR(&f.mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    do
        n = sendmsg(fd, &f.mh, MSG_NOSIGNAL);
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
        void *page = K.pages[d];

        if (!page)
            continue;
        memset(m, 0, sizeof(*m));
        m->type = KEEPER_DUMP_ITEM;
        m->domid = (uint16_t)d;
        m->gref = K.st->rec[d].gref;
        m->port = K.st->rec[d].port;
        m->index = K.st->rec[d].index;
        /*
         * The worker that asked is blocked on this dump, and it writes the
         * pages only while attached, so a page that does not settle now
         * never will: a writer died mid-write. Say so; the worker
         * rewrites it from its store.
         */
        if (noxs_devpage_snapshot(page, &copy, (uint16_t)d) == 0) {
            m->count = copy.hdr.entry_count;
            memcpy(m->entries, copy.entries,
                   m->count * sizeof(m->entries[0]));
        } else {
            m->flags |= KEEPER_F_TORN;
            log_info("keeper: the page of domain %u does not read back "
                     "settled (a write left unfinished?)",
                     d);
        }
        if (keeper_send(fd, m) < 0) {
            free(m);
            return -1;
        }
    }
    memset(m, 0, sizeof(*m));
    m->type = KEEPER_DUMP_END;
    m->pid = request_pid;
    d = (unsigned int)keeper_send(fd, m);
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

static int same_image(const struct keeper_msg *req)
{
    struct stat st;

    if (stat("/proc/self/exe", &st) < 0)
        return 1; /* cannot tell: stay */
    return req->exe_dev == (uint64_t)st.st_dev &&
           req->exe_ino == (uint64_t)st.st_ino;
}

/*
 * Replace our program image with path, keeping the files: the pages, the
 * ports, the state and the listening socket (workers that connect
 * meanwhile wait in its backlog). Returns only if exec failed.
 */
static void reexec(const char *path)
{
    const int want[4] = {K.gfd, K.efd, K.sfd, K.listen_fd};
    int high[4], i;
    char domid[8];
    char *argv[12];
    int argc = 0;

    snprintf(domid, sizeof(domid), "%u", K.o->owner_domid);
    argv[argc++] = (char *)"noxsd";
    argv[argc++] = (char *)"--keeper";
    argv[argc++] = (char *)"--state-dir";
    argv[argc++] = (char *)K.o->state_dir;
    argv[argc++] = (char *)"--domid";
    argv[argc++] = domid;
    argv[argc++] = (char *)"--adopt";
    argv[argc++] = (char *)"4";
    if (K.o->foreground)
        argv[argc++] = (char *)"-d";
    if (K.o->verbose)
        argv[argc++] = (char *)"-v";
    argv[argc] = NULL;

    /* Out of the way first (the targets may be taken), then into place. */
    for (i = 0; i < 4; i++)
        if ((high[i] = fcntl(want[i], F_DUPFD_CLOEXEC, 64)) < 0) {
            log_warn("keeper: re-exec: dup");
            while (--i >= 0)
                close(high[i]);
            return;
        }
    log_info("keeper: replacing its program image with %s", path);
    for (i = 0; i < 4; i++)
        dup2(high[i], KEEPER_FD_GNTALLOC + i); /* without close-on-exec */
    execv(path, argv);
    log_warn("keeper: exec %s", path);
    /* The files are at 3..6 now: the image we run can still take them. */
    execv("/proc/self/exe", argv);
    fatal("keeper: exec of its own image");
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
    if ((req->type == KEEPER_PAGE_CREATE || req->type == KEEPER_PAGE_WRITE ||
         req->type == KEEPER_PAGE_DESTROY) &&
        req->domid > NOXS_DOMID_MAX) {
        rep->error = EINVAL;
        keeper_send(fd, rep);
        return 0;
    }
    switch (req->type) {
    case KEEPER_HELLO:
        if (K.worker >= 0 && K.worker != i) {
            rep->error = EBUSY;
            break;
        }
        if (K.worker != i) {
            if (K.st->workers_seen++ > 0)
                log_info("keeper: worker %u attached (restart %u)",
                         req->pid, K.st->workers_seen - 1);
            else
                log_info("keeper: worker %u attached", req->pid);
        }
        K.worker = i;
        rep->pid = (uint32_t)getpid();
        rep->restarts = K.st->workers_seen ? K.st->workers_seen - 1 : 0;
        rep->keepers = K.st->keepers;
        if (!same_image(req))
            rep->flags |= KEEPER_F_OTHER_IMAGE;
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
        rep->restarts = K.st->workers_seen ? K.st->workers_seen - 1 : 0;
        rep->keepers = K.st->keepers;
        rep->rss_bytes = noxsd_rss_bytes();
        rep->heap_bytes = noxsd_heap_bytes();
        break;
    case KEEPER_FDS:
        if (send_fds(fd, rep) < 0)
            drop_client(i);
        return 0;
    case KEEPER_REEXEC: {
        char *path = (char *)req->entries;

        path[sizeof(req->entries) - 1] = '\0';
        if (K.worker != i || path[0] != '/' || access(path, X_OK) < 0) {
            rep->error = K.worker != i ? EPERM : errno ? errno
                                                       : EINVAL;
            break;
        }
        keeper_send(fd, rep);
        reexec(path);
        return 1; /* not reached */
    }
    case KEEPER_EXIT:
        log_info("keeper: asked to end every page and exit");
        keeper_send(fd, rep);
        return 2;
    default:
        rep->error = EINVAL;
        break;
    }
    if (keeper_send(fd, rep) < 0)
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
            keeper_set_timeouts(fd);
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

static void listen_socket(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    mode_t old;

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
}

void keeper_main(const struct keeper_opts *o)
{
    struct pollfd pfd[3 + KEEPER_MAX_CLIENTS];
    struct keeper_msg *req, *rep;
    char path[PATH_MAX], pidpath[PATH_MAX];
    sigset_t mask;
    int sfd, i, n, quit = 0, adopted = 0;
    unsigned int npages = 0;
    FILE *pf;

    log_init("noxsd-keeper", o->verbose);
    if (!o->foreground)
        log_detach(); /* its stderr is /dev/null (spawn_keeper) */
    K.o = o;
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
    K.gntalloc_ioctl = noxs_i_gntalloc_ioctl();

    if (keeper_socket_path(o->state_dir, path, sizeof(path)) < 0)
        fatalx("keeper: state directory path too long");
    if (o->adopt >= 4) {
        /* Our own earlier image: the listening socket comes along. */
        K.listen_fd = KEEPER_FD_LISTEN;
        fcntl(K.listen_fd, F_SETFD, FD_CLOEXEC);
    } else {
        listen_socket(path);
    }
    if (o->adopt >= 3 && open_adopted() == 0) {
        adopted = 1;
        npages = adopt();
    } else {
        if (o->adopt >= 3) {
            log_warnx("keeper: starting afresh; the files handed over are "
                      "closed");
            for (i = KEEPER_FD_GNTALLOC; i <= KEEPER_FD_STATE; i++)
                close(i);
        }
        open_fresh();
    }
    K.st->keepers++;

    snprintf(pidpath, sizeof(pidpath), "%s/%s", o->state_dir,
             NOXSD_KEEPER_PIDFILE);
    if ((pf = fopen(pidpath, "w")) != NULL) {
        fprintf(pf, "%d\n", (int)getpid());
        fclose(pf);
    }
    if (adopted)
        log_info("keeper: started (pid %d, domain %u), took over %u device "
                 "page(s) from keeper %u",
                 (int)getpid(), o->owner_domid, npages, K.st->keepers - 1);
    else
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
            log_info("keeper: signalled, exiting; the pages live on with "
                     "whoever holds its files");
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

    if (quit == 2) {
        /* Teardown: nothing is left for another keeper to take over. */
        for (i = 0; i <= (int)NOXS_DOMID_MAX; i++)
            page_free((uint16_t)i);
        K.st->workers_seen = 0;
        unlink(path);
    }
    unlink(pidpath);
    exit(0);
}
