/*
 * noxs-console-back: the backend of the console device for every guest.
 *
 * One single-threaded epoll loop serves all consoles: consoles carry
 * little data and non-blocking I/O everywhere means a slow client or a
 * silent guest never holds up another console. Per console we keep:
 *
 *   - a Unix socket DIR/console-<domid>.<devid>.sock that noxs-console
 *     attaches to (one client at a time; a second one is told "busy");
 *   - an output buffer (--buffer, 64 KiB) between the guest's "out" ring
 *     and the client, so a guest can write while nobody is attached and
 *     a client that attaches later gets everything since;
 *   - optionally a log file LOGDIR/console-<domid>.<devid>.log with every
 *     byte the guest wrote.
 *
 * Back-pressure, never loss: we take bytes off the out ring only while
 * the output buffer has room, so a full buffer (no client, or a slow one)
 * leaves the ring full and stops the guest's writer; we read from the
 * client only while the "in" ring has room, so a guest that does not read
 * stops the client's writer through its socket.
 *
 * libnoxs walks the device's states and watches the frontend's liveness
 * page (noxs.h): a session is the rings, mapped by cons_connect when the
 * frontend is Initialised and dropped by cons_disconnect (after taking
 * what a dead frontend left in the out ring). The client stays attached
 * across guest reconnects.
 *
 * Our own restarts. Under a service manager's fd store libnoxs keeps our
 * control pages and ports (NOXS_BACKEND_RESUMABLE, docs/DRIVERS.md) and
 * calls cons_connect again for a console that was Connected: we map the
 * rings again, bind the guest's ring channel again and take the ring
 * indices from the header.
 *
 * A wake-up costs what fired, not the number of consoles. Each console's
 * fds (listening socket, client, ring channel) sit in one epoll set from
 * the moment they are opened until just before they are closed, and a
 * wake-up visits only the consoles whose fds fired or whose state noxsd's
 * requests changed (the "visit" list). Nothing else needs a visit: every
 * wait is on an fd, since after a visit the only work left is a full
 * ring (its "wanted" word makes the guest notify our channel), output
 * the client cannot take yet (EPOLLOUT) or output nobody is attached for
 * (the next client's connect).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/noxs.h>
#include <noxs/io/consif.h>

#include "common/backend.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/parse.h"

#define DEFAULT_DIR "/run/noxs/console"
#define MAX_DATA_PAGES (2u << NOXS_CONS_MAX_RING_ORDER)

/* One fd of a console in the epoll set: what it is and what it waits for. */
enum {
    W_LISTEN, /* the console's socket */
    W_CLIENT, /* the attached client */
    W_EVTCHN, /* the guest's ring channel */
    W_COUNT
};
struct watch {
    struct console *c; /* NULL: noxsd's or the signal fd */
    int fd;            /* in the set, or -1 */
    uint32_t events;
};

struct console {
    noxs_dev *dev;
    uint16_t fe_domid;
    uint32_t devid;
    int listen_fd;
    int client_fd;
    bool client_hup; /* hung up with input we cannot take yet */
    int log_fd;
    char *sock_path;
    /* guest output not yet sent to a client */
    uint8_t *buf;
    uint32_t buf_head, buf_len;

    bool connected;
    xenevtchn_handle *xce;
    xengnttab_handle *xgt;
    uint32_t port;
    struct noxs_cons_header *hdr;
    uint8_t *data; /* out ring, then in ring */
    unsigned int data_pages;
    uint32_t ring_bytes;
    uint32_t out_cons, in_prod; /* our private indices */

    struct watch w[W_COUNT];
    bool queued; /* on the visit list */
    struct console *qnext;
    struct console *next;
};

static noxs_backend *backend;
static struct console *consoles;
static const char *sock_dir = DEFAULT_DIR;
static const char *log_dir;
static uint32_t buf_size = 64 * 1024;
static int epfd = -1;
static struct console *visit_head;
/* Wake-ups and console visits, logged at exit (tests compare them). */
static uint64_t n_wakeups, n_visits;

/* ---- the epoll set ---- */

/*
 * Make the set hold fd for w with events; fd < 0 or no events: take w's
 * fd out. Called before any close of a watched fd, so the set never
 * holds a closed fd (a number the kernel may hand out again).
 * -1/errno when the kernel refuses to add it.
 */
static int watch_set(struct watch *w, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};

    if (fd < 0)
        events = 0;
    if (w->fd >= 0 && (w->fd != fd || events == 0)) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
        w->fd = -1;
    }
    if (events == 0 || (w->fd == fd && w->events == events))
        return 0;
    if (epoll_ctl(epfd, w->fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd,
                  &ev) < 0) {
        log_warnx("epoll_ctl: %s", strerror(errno));
        return -1;
    }
    w->fd = fd;
    w->events = events;
    return 0;
}

/* c needs a visit in this wake-up (pump, then its client's events). */
static void touch(struct console *c)
{
    if (c->queued)
        return;
    c->queued = true;
    c->qnext = visit_head;
    visit_head = c;
}

/* The list is short: the consoles of one wake-up. */
static void untouch(struct console *c)
{
    if (!c->queued)
        return;
    for (struct console **pp = &visit_head; *pp != NULL; pp = &(*pp)->qnext) {
        if (*pp == c) {
            *pp = c->qnext;
            break;
        }
    }
    c->queued = false;
}

/* ---- connection ---- */

static void disconnect(struct console *c)
{
    if (!c->connected)
        return;
    watch_set(&c->w[W_EVTCHN], -1, 0);
    if (c->data != NULL)
        xengnttab_unmap(c->xgt, c->data, c->data_pages);
    if (c->hdr != NULL)
        xengnttab_unmap(c->xgt, c->hdr, 1);
    if (c->port != 0)
        xenevtchn_unbind(c->xce, c->port);
    if (c->xce != NULL)
        xenevtchn_close(c->xce);
    if (c->xgt != NULL)
        xengnttab_close(c->xgt);
    c->data = NULL;
    c->hdr = NULL;
    c->port = 0;
    c->xce = NULL;
    c->xgt = NULL;
    c->connected = false;
    log_info("domain %u console %u: disconnected", c->fe_domid, c->devid);
}

static int connect_rings(struct console *c, const char **why, bool resume)
{
    noxs_dev *d = c->dev;
    uint32_t order = NOXS_CONS_DEFAULT_RING_ORDER, hdr_ref, port;
    uint32_t refs[MAX_DATA_PAGES];

    if (noxs_dev_peer_u32(d, "ring-page-order", 0, NOXS_CONS_MAX_RING_ORDER,
                          &order) < 0 &&
        errno != ENOENT) {
        *why = "bad ring-page-order";
        return -1;
    }
    c->data_pages = 2u << order;
    c->ring_bytes = noxs_cons_ring_bytes(order);
    if (noxs_dev_peer_gref(d, "ring-ref", &hdr_ref) < 0) {
        *why = "missing or bad ring-ref";
        return -1;
    }
    for (unsigned int i = 0; i < c->data_pages; i++) {
        char key[24];

        snprintf(key, sizeof(key), "data-ref%u", i);
        if (noxs_dev_peer_gref(d, key, &refs[i]) < 0) {
            *why = "missing or bad data-refN";
            return -1;
        }
    }
    if (noxs_dev_peer_port(d, "event-channel", &port) < 0) {
        *why = "missing or bad event-channel";
        return -1;
    }
    c->connected = true; /* disconnect() releases what we got */
    c->xgt = xengnttab_open(NULL, 0);
    c->xce = xenevtchn_open(NULL, 0);
    if (c->xgt == NULL || c->xce == NULL) {
        *why = "out of resources";
        return -1;
    }
    xenevtchn_port_or_error_t p =
        xenevtchn_bind_interdomain(c->xce, c->fe_domid, port);
    if (p < 0) {
        *why = "cannot bind the event channel";
        return -1;
    }
    c->port = (uint32_t)p;
    if (watch_set(&c->w[W_EVTCHN], xenevtchn_fd(c->xce), EPOLLIN) < 0) {
        *why = "out of resources";
        return -1;
    }
    c->hdr = xengnttab_map_grant_ref(c->xgt, c->fe_domid, hdr_ref,
                                     PROT_READ | PROT_WRITE);
    if (c->hdr == NULL) {
        *why = "cannot map the ring header";
        return -1;
    }
    c->data = xengnttab_map_domain_grant_refs(c->xgt, c->data_pages,
                                              c->fe_domid, refs,
                                              PROT_READ | PROT_WRITE);
    if (c->data == NULL) {
        *why = "cannot map the rings";
        return -1;
    }
    if (resume) {
        /* Where the last instance stopped: its indices are in the header
         * (a guest that scribbled them costs only its own console). */
        c->out_cons = noxs_cons_load(&c->hdr->out_cons);
        c->in_prod = noxs_cons_load(&c->hdr->in_prod);
    } else {
        c->out_cons = 0;
        c->in_prod = 0;
    }
    log_info("domain %u console %u: connected, %u-byte rings, port %u",
             c->fe_domid, c->devid, c->ring_bytes, c->port);
    return 0;
}

static void fail_console(struct console *c, const char *why)
{
    log_warnx("domain %u console %u: %s", c->fe_domid, c->devid, why);
    disconnect(c);
    noxs_dev_set_kv(c->dev, "error", why);
    noxs_dev_switch_state(c->dev, NOXS_STATE_CLOSING);
}

/* ---- moving bytes ---- */

static void drop_client(struct console *c)
{
    if (c->client_fd < 0)
        return;
    watch_set(&c->w[W_CLIENT], -1, 0);
    close(c->client_fd);
    c->client_fd = -1;
    c->client_hup = false;
    log_info("domain %u console %u: client detached", c->fe_domid, c->devid);
}

static void write_log(struct console *c, const uint8_t *p, size_t n)
{
    while (c->log_fd >= 0 && n > 0) {
        ssize_t w = write(c->log_fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            log_warnx("domain %u console %u: log: %s; logging stops",
                      c->fe_domid, c->devid, strerror(errno));
            close(c->log_fd);
            c->log_fd = -1;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Guest output: out ring -> buffer (and log). -1: bad indices. */
static int take_output(struct console *c, bool *progress)
{
    struct noxs_cons_header *h = c->hdr;
    uint32_t avail = noxs_cons_load(&h->out_prod) - c->out_cons;

    if (avail > c->ring_bytes)
        return -1;
    while (avail > 0 && c->buf_len < buf_size) {
        uint32_t tail = (c->buf_head + c->buf_len) % buf_size;
        uint32_t room = buf_size - c->buf_len;
        uint32_t span = buf_size - tail < room ? buf_size - tail : room;
        uint32_t n = noxs_cons_read(c->data, c->ring_bytes, c->out_cons, avail,
                                    c->buf + tail, span);

        write_log(c, c->buf + tail, n);
        c->buf_len += n;
        c->out_cons += n;
        avail -= n;
        noxs_cons_store(&h->out_cons, c->out_cons);
        noxs_cons_mb();
        if (noxs_cons_load(&h->out_space_wanted))
            xenevtchn_notify(c->xce, c->port);
        *progress = true;
    }
    return 0;
}

/* Buffered output -> client. */
static void give_output(struct console *c, bool *progress)
{
    while (c->client_fd >= 0 && c->buf_len > 0) {
        uint32_t span = buf_size - c->buf_head < c->buf_len
                            ? buf_size - c->buf_head
                            : c->buf_len;
        ssize_t w = send(c->client_fd, c->buf + c->buf_head, span,
                         MSG_DONTWAIT | MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                drop_client(c);
            return;
        }
        c->buf_head = (c->buf_head + (uint32_t)w) % buf_size;
        c->buf_len -= (uint32_t)w;
        if (c->buf_len == 0)
            c->buf_head = 0;
        *progress = true;
    }
}

/* Client input -> in ring. -1: bad indices. */
static int take_input(struct console *c, bool *progress, bool *ring_full)
{
    struct noxs_cons_header *h = c->hdr;

    *ring_full = false;
    while (c->client_fd >= 0) {
        uint32_t used = c->in_prod - noxs_cons_load(&h->in_cons);
        uint32_t off = c->in_prod & (c->ring_bytes - 1);
        uint32_t space, span;
        ssize_t r;

        if (used > c->ring_bytes)
            return -1;
        space = c->ring_bytes - used;
        if (space == 0) {
            *ring_full = true;
            return 0;
        }
        span = c->ring_bytes - off < space ? c->ring_bytes - off : space;
        r = recv(c->client_fd, c->data + c->ring_bytes + off, span,
                 MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                drop_client(c);
            return 0;
        }
        if (r == 0) {
            drop_client(c);
            return 0;
        }
        c->in_prod += (uint32_t)r;
        noxs_cons_store(&h->in_prod, c->in_prod);
        noxs_cons_mb();
        if (noxs_cons_load(&h->in_data_wanted))
            xenevtchn_notify(c->xce, c->port);
        *progress = true;
    }
    return 0;
}

/* Move everything that can move; then arm the wanted words. */
static void pump(struct console *c)
{
    bool progress, ring_full = false;

    if (!c->connected) {
        bool ignored = false;

        give_output(c, &ignored);
        return;
    }
    noxs_cons_store(&c->hdr->out_data_wanted, 0);
    noxs_cons_store(&c->hdr->in_space_wanted, 0);
    for (;;) {
        do {
            progress = false;
            if (take_output(c, &progress) < 0 ||
                take_input(c, &progress, &ring_full) < 0) {
                fail_console(c, "ring indices out of range");
                return;
            }
            give_output(c, &progress);
        } while (progress);
        /* About to sleep: say what we wait for, then look again. */
        if (c->buf_len < buf_size)
            noxs_cons_store(&c->hdr->out_data_wanted, 1);
        if (ring_full)
            noxs_cons_store(&c->hdr->in_space_wanted, 1);
        noxs_cons_mb();
        if (c->buf_len < buf_size &&
            noxs_cons_load(&c->hdr->out_prod) != c->out_cons)
            continue;
        if (ring_full && c->in_prod - noxs_cons_load(&c->hdr->in_cons) <
                             c->ring_bytes)
            continue;
        break;
    }
    if (c->client_fd >= 0 && c->client_hup && !ring_full) {
        /* The hang-up left nothing more we could read. */
        drop_client(c);
    }
}

static void accept_client(struct console *c)
{
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        return;
    if (c->client_fd >= 0) {
        static const char busy[] = "noxs-console: console busy\r\n";

        if (send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            /* it is going away anyway */
        }
        close(fd);
        return;
    }
    c->client_fd = fd;
    c->client_hup = false;
    log_info("domain %u console %u: client attached", c->fe_domid, c->devid);
}

static void handle_event(struct console *c)
{
    int port = xenevtchn_pending(c->xce);

    if (port >= 0)
        xenevtchn_unmask(c->xce, (evtchn_port_t)port);
}

/* ---- devices ---- */

static void free_console(struct console *c)
{
    struct console **pp;

    for (pp = &consoles; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    untouch(c);
    disconnect(c);
    drop_client(c);
    watch_set(&c->w[W_LISTEN], -1, 0);
    if (c->listen_fd >= 0)
        close(c->listen_fd);
    if (c->sock_path != NULL)
        unlink(c->sock_path);
    if (c->log_fd >= 0)
        close(c->log_fd);
    free(c->sock_path);
    free(c->buf);
    free(c);
}

static int open_socket(struct console *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path),
                     "%s/console-%u.%u.sock", sock_dir, c->fe_domid, c->devid);

    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    c->sock_path = strdup(sa.sun_path);
    if (c->sock_path == NULL)
        return -ENOMEM;
    unlink(sa.sun_path);
    c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->listen_fd < 0 ||
        bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(sa.sun_path, 0600) < 0 || listen(c->listen_fd, 4) < 0 ||
        watch_set(&c->w[W_LISTEN], c->listen_fd, EPOLLIN) < 0) {
        int err = errno;

        log_warnx("console socket %s: %s", sa.sun_path, strerror(err));
        return -err;
    }
    return 0;
}

/* (Re)open c's log file, --log-dir/console-DOMID.DEVID.log, appending. */
static int open_log(struct console *c)
{
    char path[512];

    if (log_dir == NULL)
        return 0;
    if (c->log_fd >= 0)
        close(c->log_fd);
    snprintf(path, sizeof(path), "%s/console-%u.%u.log", log_dir, c->fe_domid,
             c->devid);
    c->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (c->log_fd < 0) {
        int err = errno;

        log_warnx("console log %s: %s", path, strerror(err));
        return -err;
    }
    return 0;
}

/*
 * SIGHUP: reopen every log file, as xenconsoled does, so that logrotate
 * can move a log away and signal us (or "systemctl reload") instead of
 * copying and truncating it. A log that cannot be reopened is off until
 * the next SIGHUP; the console itself goes on.
 */
static void reopen_logs(void)
{
    unsigned int n = 0, bad = 0;

    for (struct console *k = consoles; k != NULL; k = k->next, n++)
        if (open_log(k) < 0)
            bad++;
    log_info("SIGHUP: reopened %u console log(s)%s", n - bad,
             bad ? ", some failed" : "");
}

/* Our bookkeeping, socket and log for d. */
static int cons_attach(noxs_dev *d, struct console **out)
{
    struct console *c = calloc(1, sizeof(*c));
    int err;

    if (c == NULL)
        return -ENOMEM;
    c->dev = d;
    c->fe_domid = noxs_dev_frontend_domid(d);
    c->devid = noxs_dev_id(d);
    c->listen_fd = c->client_fd = c->log_fd = -1;
    for (int i = 0; i < W_COUNT; i++)
        c->w[i] = (struct watch){.c = c, .fd = -1};
    c->next = consoles;
    consoles = c;
    c->buf = malloc(buf_size);
    if (c->buf == NULL) {
        free_console(c);
        return -ENOMEM;
    }
    err = open_socket(c);
    if (err == 0)
        err = open_log(c);
    if (err != 0) {
        free_console(c);
        return err;
    }
    noxs_dev_set_user(d, c);
    *out = c;
    return 0;
}

static int cons_create(noxs_backend *b, noxs_dev *d,
                       const struct noxs_kv *params, size_t nparams, void *arg)
{
    static const char *const known[] = {NULL};
    const char *unknown = params_unknown(params, nparams, known);
    struct console *c;
    int err;

    if (unknown != NULL) {
        log_warnx("domain %u console %u: refused: unknown parameter %s= "
                  "(it takes none)",
                  noxs_dev_frontend_domid(d),
                  noxs_dev_id(d), unknown);
        return -EINVAL;
    }
    if ((err = cons_attach(d, &c)) != 0)
        return err;
    if (noxs_dev_set_kv(d, "max-ring-page-order", "3") < 0 ||
        noxs_dev_set_kv(d, "type", "noxs-ring") < 0) {
        err = -errno;
        noxs_dev_set_user(d, NULL);
        free_console(c);
        return err;
    }
    log_info("domain %u console %u: created, socket %s", c->fe_domid, c->devid,
             c->sock_path);
    return 0;
}

/* The frontend is ready, or we restarted while it was Connected. */
static int cons_connect(noxs_backend *b, noxs_dev *d, const char **why,
                        void *arg)
{
    struct console *c = noxs_dev_user(d);
    /* Connected already: we restarted, the rings hold the session. */
    bool resume = noxs_dev_state(d) == NOXS_STATE_CONNECTED;

    if (c == NULL) {
        *why = "no console";
        return -ENODEV;
    }
    if (connect_rings(c, why, resume) < 0) {
        disconnect(c);
        return -EPROTO;
    }
    pump(c);
    touch(c);
    return 0;
}

static void cons_disconnect(noxs_backend *b, noxs_dev *d, int why, void *arg)
{
    struct console *c = noxs_dev_user(d);

    if (c == NULL)
        return;
    if (c->connected && why != ENODEV) {
        /* The frontend closed or died: take what it left first. */
        bool ignored = false;

        take_output(c, &ignored);
    }
    if (why == ECONNRESET)
        log_info("domain %u console %u: frontend gone", c->fe_domid, c->devid);
    disconnect(c);
    touch(c); /* what it left goes to the client; no more input */
}

static void cons_remove(noxs_backend *b, noxs_dev *d, void *arg)
{
    struct console *c = noxs_dev_user(d);

    if (c == NULL)
        return;
    log_info("domain %u console %u: removed", c->fe_domid, c->devid);
    noxs_dev_set_user(d, NULL);
    free_console(c);
}

/*
 * Devices resumed from the fd store: a socket and log for each again, and
 * a Connected console gets its rings and channel back where the last
 * instance left them. Anything else follows the frontend as usual.
 */
/* After our restart: the socket and log of a console we kept. */
static void cons_resume(noxs_backend *b, noxs_dev *d, void *arg)
{
    struct console *c;

    if (noxs_dev_user(d) != NULL || cons_attach(d, &c) != 0)
        return;
    log_info("domain %u console %u: resumed (%s)", c->fe_domid, c->devid,
             noxs_state_name(noxs_dev_state(d)));
}

static const struct noxs_backend_ops ops = {
    .create = cons_create,
    .remove = cons_remove,
    .connect = cons_connect,
    .disconnect = cons_disconnect,
    .resume = cons_resume,
};

/* ---- setup ---- */

static int mkdirs(const char *path, mode_t mode)
{
    char tmp[512];

    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-console-back [-dv] [--socket PATH] [--dir DIR]\n"
            "                         [--log-dir DIR] [--buffer BYTES]\n"
            "\n"
            "Serve the console device of every guest.\n"
            "  -d, --foreground  stay in the foreground and log to stderr\n"
            "  -v                log debug messages too\n"
            "  --version         print the version and exit\n"
            "  --pidfile PATH    write the pid there (removed at exit)\n"
            "  --socket PATH     noxsd's control socket (default "
            "$NOXS_SOCKET,\n"
            "                    else " NOXS_DEFAULT_SOCKET ")\n"
            "  --dir DIR         where console-<domid>.<devid>.sock are made\n"
            "                    (default " DEFAULT_DIR ")\n"
            "  --log-dir DIR     also append each guest's output to\n"
            "                    DIR/console-<domid>.<devid>.log\n"
            "  --buffer BYTES    output kept for a client (default 65536)\n");
}

/* ---- main loop ---- */

static bool in_room(const struct console *c)
{
    return c->connected &&
           c->in_prod - noxs_cons_load(&c->hdr->in_cons) < c->ring_bytes;
}

/*
 * What the client's fd waits for after a visit: input while the in ring
 * has room, room for output we hold, its hang-up. A hung-up client we
 * cannot read yet leaves the set (its EPOLLHUP, reported whatever we ask
 * for, would spin us) until the guest's notify of ring space brings us
 * back here.
 */
static void sync_client(struct console *c)
{
    bool room = in_room(c);
    uint32_t ev = EPOLLRDHUP; /* a client that half-closed leaves */

    if (room)
        ev |= EPOLLIN;
    if (c->buf_len > 0)
        ev |= EPOLLOUT;
    if (c->client_hup && !room)
        ev = 0;
    if (watch_set(&c->w[W_CLIENT], c->client_fd, ev) < 0)
        drop_client(c);
}

static void visit(struct console *c)
{
    n_visits++;
    pump(c);
    /*
     * pump() lets a hung-up client go once it has read all it could; with
     * no rings it does not read, so we let it go here. Not by looking at
     * the ring again: the guest may have made room since pump() found it
     * full, and the client's last input, still unread, would be lost.
     */
    if (c->client_hup && c->client_fd >= 0 && !c->connected)
        drop_client(c);
    sync_client(c);
}

static void visit_touched(void)
{
    struct console *c;

    while ((c = visit_head) != NULL) {
        visit_head = c->qnext;
        c->queued = false;
        visit(c);
    }
}

/* One of a console's fds fired: note what, visit it later. */
static void console_event(struct watch *w, uint32_t events)
{
    struct console *c = w->c;

    if (w == &c->w[W_LISTEN] && (events & EPOLLIN))
        accept_client(c);
    else if (w == &c->w[W_CLIENT] && c->client_fd == w->fd &&
             (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
        c->client_hup = true;
    else if (w == &c->w[W_EVTCHN] && c->connected && (events & EPOLLIN))
        handle_event(c);
    touch(c);
}

/* The signalfd is readable: false if we are to quit. */
static bool take_signals(int sfd)
{
    struct signalfd_siginfo si;
    bool quit = false;

    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP)
            reopen_logs();
        else
            quit = true;
    }
    return !quit;
}

/* The loop: signals, clients, the guests' rings and noxsd's requests.
 * Returns the exit status. */
static int serve(int sfd)
{
    static struct watch be_w = {.fd = -1}, sig_w = {.fd = -1};
    struct epoll_event evs[64];
    int status = 0;

    if (watch_set(&be_w, noxs_backend_fd(backend), EPOLLIN) < 0 ||
        watch_set(&sig_w, sfd, EPOLLIN) < 0)
        fatalx("cannot watch noxsd's connection and signals");
    visit_touched(); /* consoles resumed while we registered */
    for (;;) {
        bool be_ready = false, sig_ready = false;
        int n = epoll_wait(epfd, evs, (int)(sizeof(evs) / sizeof(evs[0])), -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            fatalx("epoll_wait: %s", strerror(errno));
        }
        n_wakeups++;
        for (int i = 0; i < n; i++) {
            struct watch *w = evs[i].data.ptr;

            if (w == &be_w)
                be_ready = true;
            else if (w == &sig_w)
                sig_ready = true;
        }
        if (sig_ready && !take_signals(sfd)) {
            log_info("terminating");
            break;
        }
        for (int i = 0; i < n; i++) {
            struct watch *w = evs[i].data.ptr;

            if (w->c != NULL)
                console_event(w, evs[i].events);
        }
        visit_touched();
        if (be_ready) {
            if (noxs_backend_dispatch(backend, 0) < 0 && errno != EAGAIN &&
                errno != EINTR && errno != ETIMEDOUT) {
                log_warnx("noxsd connection: %s", strerror(errno));
                status = 1;
                break;
            }
            /* The consoles noxsd's requests connected or disconnected. */
            visit_touched();
        }
    }
    watch_set(&be_w, -1, 0);
    watch_set(&sig_w, -1, 0);
    return status;
}

/* Our options besides the daemon's (OPT_DAEMON). */
static int option(int ch, const char *arg)
{
    switch (ch) {
    /* Paths are used after detaching, which leaves the current
     * directory: made absolute here. */
    case 'D': sock_dir = opt_path("dir", arg); break;
    case 'L': log_dir = opt_path("log-dir", arg); break;
    case 'b':
        buf_size = (uint32_t)opt_u64("buffer", arg, 4096, 64u << 20);
        break;
    }
    return -1;
}

/* Static: its paths live as long as the process (no leak at exit). */
static struct opt_daemon opts = {
    .prog = "noxs-console-back", .usage = usage, .own = option};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'D'},
        {"log-dir", required_argument, NULL, 'L'},
        {"buffer", required_argument, NULL, 'b'},
        OPT_DAEMON,
    };
    /* Registration before detaching: failing to, it says why and exits 1. */
    int sfd = backend_start(argc, argv, longopts, &opts, 1), status;

    if (mkdirs(sock_dir, 0700) < 0)
        fatal("console socket directory %s", sock_dir);
    /* Before registering: libnoxs hands us (resumed) consoles at once. */
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        fatal("epoll_create1");
    backend = backend_register(opts.socket, NOXS_DEV_CONSOLE, &ops);
    log_info("noxs-console-back %s: serving console devices, sockets in %s",
             version_string(), sock_dir);
    daemon_ready();

    status = serve(sfd);
    /*
     * Without an fd store the library closes every console (disconnect,
     * remove); with one the consoles are the next instance's, and what
     * is left here is only ours to free.
     */
    noxs_backend_close(backend);
    while (consoles != NULL)
        free_console(consoles);
    close(epfd);
    /* Last, so that it ends the log. */
    log_info("exiting: %" PRIu64 " wake-ups, %" PRIu64 " console visits",
             n_wakeups, n_visits);
    return status;
}
