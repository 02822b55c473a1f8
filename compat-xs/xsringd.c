/*
 * noxs-xsringd: answers guests' XenStore rings on a noxs-only dom0 (no
 * xenstored) from compat-xs's local store (docs/XSRINGD.md).
 *
 * The domains to serve are the local store's introduced domains that
 * have a store ring (compat-xs's xs_introduce_domain records the frame
 * and port there); the service watches @introduceDomain/@releaseDomain
 * on its own dom0 connection and compares. Per domain: the ring page
 * (grant table's reserved xenstore entry, else a foreign map of the
 * frame), the store event channel, and one local-store connection that
 * runs the domain's requests with its identity and permissions. The
 * watch events of every connection come from one fd: the store's bell,
 * which the service polls once for all (cxs_lstore_bell_fd), so a guest
 * costs no fd of its own for its watches.
 *
 * dom0's own kernel is served the same way when no xenstored holds its
 * connection: the page and event channel Linux sets up in dom0 for a
 * local store (/proc/xen/xsd_kva, /proc/xen/xsd_port), which is where
 * dom0's kernel backends (blkback, netback) and /dev/xen/xenbus speak
 * XenStore. Its requests run as domain 0.
 *
 * What must survive a kill -9 lives outside this process: the tree in
 * the store, the ring indexes in the page (a request is consumed only
 * after its reply is written), and each domain's watches under
 * /tool/xsringd/<domid>/, registered again at start (which fires each
 * once, so a guest re-reads what may have changed meanwhile).
 *
 * With --socket it also listens where Xen's xenstored does, for dom0
 * tools that speak the wire protocol themselves (xsringd_sock.c).
 *
 * This file: options, set-up and the loop that gives every connection
 * its turn.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "xsringd.h"
#include "xsringd_int.h"

const char *store_dir;
xenevtchn_handle *xce;
xengnttab_handle *xgt;
xenforeignmemory_handle *xfm;
struct cxs_gconn *ctl;
int epfd;
struct conn **doms;
size_t ndoms, capdoms;
/*
 * Transaction ids the peers see start from a value drawn at each start
 * of the service: an id a guest holds from before a restart (its
 * transaction is gone with the store connection) then names nothing
 * rather than a transaction it starts afterwards.
 */
uint32_t tx_base;

static volatile sig_atomic_t stopping;
static int verbose;
static int bellfd = -1, evtfd = -1, lsock = -1;
/* The bell's generation when the service last looked at its events. */
static uint64_t bell_gen;

struct opts {
    const char *kva, *kport;
    const char *sock; /* NULL: no socket */
    bool kernel;
};

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-xsringd [-v] [--store DIR] [--no-kernel]\n"
            "                    [--xsd-kva FILE] [--xsd-port FILE]\n"
            "                    [--socket[=PATH]]\n"
            "Answers guests' XenStore rings, and dom0's kernel connection,\n"
            "from compat-xs's local store.\n"
            "  -s, --store DIR  the local store (default $NOXS_XS_DIR, else\n"
            "                   /var/lib/noxs/xenstore)\n"
            "  --xsd-kva FILE   dom0's kernel ring page (default\n"
            "                   /proc/xen/xsd_kva)\n"
            "  --xsd-port FILE  its event channel (default /proc/xen/xsd_port)\n"
            "  --no-kernel      serve guests' rings only\n"
            "  --socket[=PATH]  also listen on xenstored's Unix socket (default\n"
            "                   $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket,\n"
            "                   else /var/run/xenstored/socket)\n"
            "  -v               log each request too\n"
            "  -V, --version    print the version\n"
            "  -h, --help       this text\n");
}

/* -1 to go on, else the exit status. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {"xsd-kva", required_argument, NULL, 'K'},
        {"xsd-port", required_argument, NULL, 'P'},
        {"no-kernel", no_argument, NULL, 'N'},
        {"socket", optional_argument, NULL, 'S'},
        OPT_HELP_VERSION,
    };
    int c;

    *o = (struct opts){"/proc/xen/xsd_kva", "/proc/xen/xsd_port", NULL, true};
    while ((c = getopt_long(argc, argv, "s:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 's': store_dir = optarg; break;
        case 'K': o->kva = optarg; break;
        case 'P': o->kport = optarg; break;
        case 'N': o->kernel = false; break;
        case 'S': o->sock = optarg ? optarg : cxs_xsd_default_socket(); break;
        case 'v': verbose++; break;
        default: return opt_other(c, "noxs-xsringd", usage);
        }
    }
    if (optind != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    return -1;
}

static int watch_fd(int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* The Xen devices, the service's dom0 connection and its watches. */
static int setup(void)
{
    xce = xenevtchn_open(NULL, 0);
    xfm = xenforeignmemory_open(NULL, 0);
    xgt = xengnttab_open(NULL, 0);
    if (!xce || !xfm) {
        log_warnx("cannot open the event channel or foreign memory device: "
                  "%s",
                  strerror(errno));
        return -1;
    }
    /* Without the bell no watch event would ever be delivered. */
    if ((bellfd = cxs_lstore_bell_fd(ctl)) < 0) {
        log_warnx("cannot follow the local store's commits (inotify): %s",
                  strerror(-bellfd));
        return -1;
    }
    if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (evtfd = xenevtchn_fd(xce)) < 0 || watch_fd(bellfd, &ctl) < 0 ||
        watch_fd(evtfd, &xce) < 0)
        return -1;
    /* Records readable by dom0 only. */
    if (ctl_call(XSW_MKDIR, REC_ROOT, sizeof(REC_ROOT), NULL, NULL) < 0 ||
        ctl_call(XSW_SET_PERMS, REC_ROOT "\0n0", sizeof(REC_ROOT "\0n0"),
                 NULL, NULL) < 0 ||
        ctl_call(XSW_WATCH, "@introduceDomain\0in", 20, NULL, NULL) < 0 ||
        ctl_call(XSW_WATCH, "@releaseDomain\0out", 19, NULL, NULL) < 0) {
        log_warnx("cannot set up in the local store");
        return -1;
    }
    return 0;
}

/*
 * The store's bell: if it rang since the last look (whoever drained it:
 * this, or a connection's next_event in the last turn), the service's
 * own events and every watching connection get a look. True if the
 * domain table may have changed.
 */
static bool bell_check(void)
{
    uint64_t gen = cxs_lstore_bell_drain(ctl);
    bool scan = false;
    char *p;
    uint32_t len;

    if (gen == bell_gen)
        return false;
    bell_gen = gen;
    /* @introduceDomain, @releaseDomain: one is enough to rescan. */
    for (int k = 0; k < 64 && ctl->ops->next_event(ctl, &p, &len) == 0;
         k++) {
        free(p);
        scan = true;
    }
    for (size_t i = 0; i < ndoms; i++)
        if (doms[i]->watching)
            doms[i]->busy = true;
    return scan;
}

/* What epoll reported; true if the domain table may have changed. */
static bool dispatch(const struct epoll_event *evs, int n)
{
    bool scan = false;

    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == &ctl) {
            /* The bell: bell_check, after every wake-up. */
        } else if (evs[i].data.ptr == &xce) {
            /* xenevtchn_pending blocks when nothing is pending: take
             * one port per readiness of its fd. */
            for (int k = 0; k < 4096; k++) {
                struct pollfd pfd = {.fd = evtfd, .events = POLLIN};
                xenevtchn_port_or_error_t p;
                if (k > 0 && poll(&pfd, 1, 0) != 1)
                    break;
                if ((p = xenevtchn_pending(xce)) < 0)
                    break;
                port_pending(p);
                xenevtchn_unmask(xce, (evtchn_port_t)p);
            }
        } else if (evs[i].data.ptr == &lsock) {
            sock_accept(lsock);
        } else {
            ((struct conn *)evs[i].data.ptr)->busy = true;
        }
    }
    return scan;
}

/*
 * One turn of every connection with work, in table order, each at most
 * BUDGET requests: a flood on one waits behind the others. True if any
 * has more right away; *partial if a ring holds a half-written request
 * (struct conn's partial).
 */
static bool turn(bool *partial)
{
    bool busy = false;

    *partial = false;
    for (size_t i = 0; i < ndoms; i++) {
        struct conn *d = doms[i];
        if (d->busy || d->partial)
            busy |= d->busy = d->sfd >= 0 ? sock_serve(d) : serve(d);
        *partial |= d->partial;
    }
    for (size_t i = ndoms; i-- > 0;)
        if (doms[i]->gone) {
            struct conn *d = doms[i];
            conn_remove(i);
            conn_free(d);
        }
    return busy;
}

/*
 * How often every ring is looked at whatever it was told (ms): 1 s, or
 * $NOXS_XSRINGD_SWEEP_MS, which the tests set long to show that a guest
 * is answered without the sweep's help.
 */
static long sweep_interval(void)
{
    const char *e = getenv("NOXS_XSRINGD_SWEEP_MS");
    uint64_t v;

    if (!e)
        return 1000;
    if (parse_u64(e, 10, 3600000, &v) < 0) {
        log_warnx("NOXS_XSRINGD_SWEEP_MS=%s: not 10..3600000, 1000 used", e);
        return 1000;
    }
    return (long)v;
}

static void loop(void)
{
    long last_sweep = now_ms(), sweep = sweep_interval();
    bool busy = true, partial = false;

    while (!stopping) {
        struct epoll_event evs[64];
        bool scan;
        /* A guest writing a request gets 1 ms wake-ups, not a spin: one
         * that stops after a header costs a look at its ring each. */
        int n = epoll_wait(epfd, evs, 64,
                           busy ? 0 : partial ? 1
                                              : (int)sweep);

        if (n < 0 && errno != EINTR)
            break;
        scan = dispatch(evs, n < 0 ? 0 : n);
        scan |= bell_check();
        if (now_ms() - last_sweep >= sweep) {
            /* Every second, however busy: look at every ring (a lost
             * notification, a domain that could not be attached). */
            last_sweep = now_ms();
            scan = true;
            for (size_t i = 0; i < ndoms; i++)
                doms[i]->busy = true;
        }
        if (scan)
            rescan(false);
        busy = turn(&partial);
        /* A connection's next_event in that turn may have drained the
         * bell: its fd no longer wakes the loop, so look again now. */
        busy |= cxs_lstore_bell_drain(ctl) != bell_gen;
    }
}

static void teardown(const char *sock, int lockfd)
{
    log_info("stopping");
    sock_close_all();
    while (ndoms)
        dom_detach(ndoms - 1, false);
    if (lsock >= 0) {
        close(lsock);
        unlink(sock);
    }
    ctl->ops->close(ctl);
    free(doms);
    ports_free();
    xenevtchn_close(xce);
    xenforeignmemory_close(xfm);
    if (xgt)
        xengnttab_close(xgt);
    close(lockfd);
}

int main(int argc, char **argv)
{
    struct opts o;
    struct rlimit rl;
    struct timespec ts;
    int rc, lockfd;

    if ((rc = parse_opts(argc, argv, &o)) >= 0)
        return rc;
    /* One line per domain served, released or broken; -v: each request. */
    log_init("noxs-xsringd", verbose);
    clock_gettime(CLOCK_REALTIME, &ts);
    tx_base = (uint32_t)ts.tv_sec * 2654435761u ^ (uint32_t)ts.tv_nsec ^
              (uint32_t)getpid() << 16;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    /* Socket clients (up to SOCK_MAX) take an fd each; rings none. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (!(ctl = cxs_lstore_open(store_dir, 0))) {
        log_warnx("cannot open the local store: %s", strerror(errno));
        return 1;
    }
    if ((lockfd = cxs_ringd_lock(store_dir)) < 0) {
        log_warnx("%s", lockfd == -EBUSY
                            ? "another noxs-xsringd serves this store"
                            : strerror(-lockfd));
        return 1;
    }
    if (setup() < 0)
        return 1;
    if (o.sock && ((lsock = sock_listen(o.sock)) < 0 ||
                   watch_fd(lsock, &lsock) < 0))
        return 1; /* sock_listen said why */
    if (o.kernel) {
        struct conn *k = kernel_attach(o.kva, o.kport);
        if (k && conns_add(k) < 0)
            return 1;
    }
    rescan(true);
    log_info("serving %zu rings", ndoms);
    loop();
    teardown(o.sock, lockfd);
    return 0;
}
