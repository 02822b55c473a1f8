/*
 * noxs-sysctl-front: the guest side of the sysctl device.
 *
 * A guest attaches to sysctl device 0 listed in its device page,
 * advertises the shutdown reasons it supports (frontend-half keys
 * "feature-<reason>" = "1" and the NOXS_SYSCTL_* feature bits), goes to
 * Connected once the backend waits for it (InitWait), and then waits for
 * the backend-half key "shutdown". It acknowledges a supported reason by
 * writing "shutdown-ack" = <reason>, walks Closing -> Closed, and exits
 * with a status that names the reason (see usage()).
 *
 * One process may also act as many guest domains (--domains): the
 * simulator takes the domain id of every *_open from the thread's
 * noxs_open_as() setting, so each domain gets its own frontend handle,
 * opened as that domain. Thousands of domains are served by one epoll loop over the
 * frontends' event-channel fds: a domain's state machine only ever runs
 * when its fd was readable (or just after it was opened), never on a
 * timer. Why step after consuming events rather than before: events are
 * consumed first and the page is read afterwards, so a change the
 * backend publishes after our read notifies us again and cannot be lost.
 *
 * Liveness. A process killed with -9 cannot say Closed, so each session,
 * once connected, also shares the library's liveness page
 * (noxs_dev_liveness_start): the backend's library sees our death on it,
 * and noxs_dev_peer_gone() shows us the backend's.
 *
 * Bootstrap lines for --domains are "DOMID noxs=OWNER:GREF:PORT"; they
 * are read from a file or a pipe as they arrive, so a driver program may
 * stream domains in one at a time. With --report the program prints one
 * line per event on stdout, with CLOCK_MONOTONIC timestamps in ns:
 *   opened DOMID NS           the domain's device page is mapped
 *   connected DOMID NS        both halves Connected (backend seen)
 *   shutdown DOMID REASON NS  acknowledged a request and closed
 *   closed DOMID              the backend closed or removed the device
 *   error DOMID MESSAGE       this domain failed (others go on)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>
#include <noxs/io/sysctl.h>

#include "common/daemon.h"
#include "common/parse.h"

#define SYSCTL_DEVID 0u

/* Exit statuses: the reason a single guest was asked to stop. */
#define EXIT_POWEROFF 0
#define EXIT_FAILURE_ 1
#define EXIT_GONE 3
#define EXIT_REBOOT 10
#define EXIT_SUSPEND 11
#define EXIT_CRASH 12

struct reason {
    const char *name;
    uint64_t feature;
    int exit_status;
};

static const struct reason reasons[] = {
    {NOXS_SYSCTL_REASON_POWEROFF, NOXS_SYSCTL_POWEROFF, EXIT_POWEROFF},
    {NOXS_SYSCTL_REASON_REBOOT, NOXS_SYSCTL_REBOOT, EXIT_REBOOT},
    {NOXS_SYSCTL_REASON_SUSPEND, NOXS_SYSCTL_SUSPEND, EXIT_SUSPEND},
    {NOXS_SYSCTL_REASON_CRASH, NOXS_SYSCTL_CRASH, EXIT_CRASH},
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

enum phase {
    PHASE_WAIT_DEVICE,    /* device not (yet) in the device page */
    PHASE_WAIT_INITWAIT,  /* published Initialising, backend not ready */
    PHASE_WAIT_CONNECTED, /* published Connected, backend not yet */
    PHASE_RUNNING,        /* both Connected: waiting for a request */
    PHASE_DONE,           /* shut down, closed or failed */
};

struct guest {
    uint16_t domid;
    noxs_frontend *fe;
    noxs_dev *dev;
    enum phase phase;
    int exit_status;
    char boot[NOXS_BOOT_MAXLEN + 1];
};

static bool report;
static bool verbose;
static bool reattach;
static bool many;          /* --domains: one process, many domains */
static uint64_t supported; /* NOXS_SYSCTL_* bits */
static int epfd = -1;
static size_t nactive;   /* guests not yet DONE */
static int worst_status; /* many-domain mode: 0 or 1 */

static void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx_(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("noxs-sysctl-front: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void library_log(int priority, const char *fmt, va_list ap)
{
    if (priority > NOXS_LOG_WARNING && !verbose)
        return;
    fputs("noxs-sysctl-front: libnoxs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const struct reason *reason_by_name(const char *name)
{
    for (size_t i = 0; i < NREASONS; i++)
        if (strcmp(reasons[i].name, name) == 0)
            return &reasons[i];
    return NULL;
}

/* The simulator takes the domain of each *_open from the thread's
 * noxs_open_as setting, which also outranks NOXS_DOMID. */
static void become(uint16_t domid)
{
    if (noxs_open_as(domid, NULL) < 0)
        warnx_("acting as domain %u: %s", domid, strerror(errno));
}

/* Detach (publishing Closed, ending the liveness share). */
static void drop_device(struct guest *g)
{
    if (g->dev != NULL) {
        noxs_dev_detach(g->dev);
        g->dev = NULL;
    }
}

static void finish(struct guest *g, int status)
{
    if (g->phase == PHASE_DONE)
        return;
    g->phase = PHASE_DONE;
    g->exit_status = status;
    if (status != EXIT_POWEROFF && status != EXIT_REBOOT &&
        status != EXIT_SUSPEND && status != EXIT_CRASH)
        worst_status = EXIT_FAILURE_;
    nactive--;
}

static void fail(struct guest *g, const char *what)
{
    int saved = errno;

    warnx_("domain %u: %s: %s", g->domid, what, strerror(saved));
    if (report)
        printf("error %u %s: %s\n", g->domid, what, strerror(saved));
    drop_device(g);
    finish(g, EXIT_FAILURE_);
}

/* Publish our half: the supported reasons, and state. */
static int publish_state(struct guest *g, unsigned int state)
{
    noxs_dev_set_state(g->dev, state);
    return noxs_dev_publish(g->dev);
}

/* Our entry on the device page: what it says about the device. */
enum entry { ENTRY_ABSENT,
             ENTRY_LISTED,
             ENTRY_CLOSING,
             ENTRY_UNREADABLE };

static enum entry sysctl_entry(struct guest *g)
{
    struct noxs_devpage_entry e[NOXS_DEVPAGE_MAX_ENTRIES];
    int n = noxs_frontend_devices(g->fe, e, NOXS_DEVPAGE_MAX_ENTRIES, NULL);

    enum entry st = ENTRY_ABSENT;

    if (n < 0)
        return ENTRY_UNREADABLE;
    for (int i = 0; i < n; i++) {
        if (e[i].type != NOXS_DEV_SYSCTL || e[i].devid != SYSCTL_DEVID)
            continue;
        if (!(e[i].flags & NOXS_DEVPAGE_ENTRY_CLOSING))
            return ENTRY_LISTED; /* a live entry wins over a closing one */
        st = ENTRY_CLOSING;
    }
    return st;
}

/* 1 attached, 0 not listed (wait), 2 being removed (gone), -1 error. */
static int attach(struct guest *g)
{
    noxs_dev *d = noxs_frontend_attach(g->fe, NOXS_DEV_SYSCTL, SYSCTL_DEVID);

    if (d == NULL) {
        if (errno != ENOENT)
            return -1;
        /*
         * Not listed yet: wait for the page to change. But an entry
         * already marked closing is a removal we came too late for (a
         * guest restarted just before a dev-rm): once it is gone the
         * page looks exactly as before the dev-add, and we would wait
         * for ever. Without --reattach that is the end of the device,
         * as if we had attached and seen it go.
         */
        return !reattach && sysctl_entry(g) == ENTRY_CLOSING ? 2 : 0;
    }
    g->dev = d;
    for (size_t i = 0; i < NREASONS; i++) {
        char key[32];

        snprintf(key, sizeof(key), NOXS_SYSCTL_KEY_FEATURE_PREFIX "%s", reasons[i].name);
        if ((supported & reasons[i].feature) &&
            noxs_dev_set_kv(d, key, "1") < 0)
            return -1;
    }
    noxs_dev_del_kv(d, NOXS_SYSCTL_KEY_SHUTDOWN_ACK);
    noxs_dev_set_features(d, NOXS_FEATURE_KV | supported);
    /*
     * On a first connection the backend is already waiting for us: go
     * straight to Connected (one publish, one wake-up of the backend, the
     * floor of the handshake). Otherwise announce a new session with
     * Initialising and let step() wait for the backend to start over.
     */
    if (noxs_dev_refresh(d) >= 0 &&
        noxs_dev_peer_state(d) == NOXS_STATE_INITWAIT) {
        if (publish_state(g, NOXS_STATE_CONNECTED) < 0)
            return -1;
        g->phase = PHASE_WAIT_CONNECTED;
        return 1;
    }
    if (publish_state(g, NOXS_STATE_INITIALISING) < 0)
        return -1;
    g->phase = PHASE_WAIT_INITWAIT;
    return 1;
}

/* Our device vanished from the page, or the backend closed it. */
static void device_gone(struct guest *g)
{
    if (g->dev != NULL && noxs_dev_state(g->dev) != NOXS_STATE_CLOSED)
        publish_state(g, NOXS_STATE_CLOSING);
    drop_device(g); /* publishes Closed */
    if (report)
        printf("closed %u\n", g->domid);
    if (verbose)
        warnx_("domain %u: device closed by the backend", g->domid);
    if (reattach)
        g->phase = PHASE_WAIT_DEVICE;
    else
        finish(g, EXIT_GONE);
}

static bool listed(struct guest *g)
{
    enum entry st = sysctl_entry(g);

    /* A page we cannot read says nothing about the device. */
    return st == ENTRY_LISTED || st == ENTRY_UNREADABLE;
}

static void acknowledge(struct guest *g, const struct reason *r)
{
    if (noxs_dev_set_kv(g->dev, NOXS_SYSCTL_KEY_SHUTDOWN_ACK, r->name) < 0 ||
        noxs_dev_publish(g->dev) < 0) {
        fail(g, "acknowledge");
        return;
    }
    publish_state(g, NOXS_STATE_CLOSING);
    drop_device(g); /* publishes Closed */
    if (report)
        printf("shutdown %u %s %lld\n", g->domid, r->name, now_ns());
    if (verbose)
        warnx_("domain %u: shutdown %s acknowledged", g->domid, r->name);
    finish(g, r->exit_status);
}

/* Run g's state machine as far as the pages allow. */
static void step(struct guest *g)
{
    for (;;) {
        if (g->phase == PHASE_DONE)
            return;
        if (g->phase == PHASE_WAIT_DEVICE) {
            int rc = attach(g);

            if (rc < 0) {
                fail(g, "attach sysctl device 0");
                return;
            }
            if (rc == 0)
                return;
            if (rc == 2)
                device_gone(g);
            continue;
        }

        int rc = noxs_dev_wait(g->dev, 0);

        if (rc < 0) {
            if (errno == EPIPE) {
                device_gone(g);
                continue;
            }
            fail(g, "read the control page");
            return;
        }
        if (!listed(g)) {
            device_gone(g);
            continue;
        }

        unsigned int peer = noxs_dev_peer_state(g->dev);

        if (g->phase == PHASE_RUNNING && noxs_dev_peer_gone(g->dev) &&
            peer != NOXS_STATE_CLOSING && peer != NOXS_STATE_CLOSED) {
            warnx_("domain %u: the backend died", g->domid);
            device_gone(g);
            continue;
        }

        if (peer == NOXS_STATE_CLOSING || peer == NOXS_STATE_CLOSED) {
            /* Closed by a backend we already saw Connected or waiting
             * for us; a stale Closed from a previous session before we
             * ever saw InitWait is the backend's cue to reset. */
            if (g->phase != PHASE_WAIT_INITWAIT) {
                device_gone(g);
                continue;
            }
            return;
        }

        switch (g->phase) {
        case PHASE_WAIT_INITWAIT:
            if (peer != NOXS_STATE_INITWAIT)
                return;
            if (publish_state(g, NOXS_STATE_CONNECTED) < 0) {
                fail(g, "publish Connected");
                return;
            }
            g->phase = PHASE_WAIT_CONNECTED;
            continue;
        case PHASE_WAIT_CONNECTED:
            if (peer == NOXS_STATE_INITWAIT)
                return;
            if (peer != NOXS_STATE_CONNECTED)
                return;
            g->phase = PHASE_RUNNING;
            if (report)
                printf("connected %u %lld\n", g->domid, now_ns());
            /* Sharing a page costs more than the rest of the handshake
             * (milliseconds on the simulator), so the liveness page comes
             * after Connected, in a second publish. */
            if (noxs_dev_liveness_start(g->dev, 0) < 0)
                warnx_("domain %u: no liveness page (%s): a dead backend "
                       "will go unnoticed",
                       g->domid, strerror(errno));
            else if (noxs_dev_publish(g->dev) < 0) {
                fail(g, "publish the liveness page");
                return;
            }
            if (verbose)
                warnx_("domain %u: connected", g->domid);
            continue;
        case PHASE_RUNNING: {
            char value[64];
            const struct reason *r;

            if (noxs_dev_peer_kv(g->dev, NOXS_SYSCTL_KEY_SHUTDOWN, value, sizeof(value)) < 0)
                return;
            r = reason_by_name(value);
            if (r == NULL || !(supported & r->feature)) {
                /* The backend checks our features first; ignore
                 * anything else rather than act on it. */
                if (verbose)
                    warnx_("domain %u: ignoring shutdown \"%s\"", g->domid,
                           value);
                return;
            }
            acknowledge(g, r);
            return;
        }
        default:
            return;
        }
    }
}

static int watch_fd(int fd, void *ptr)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ptr};

    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static struct guest *guest_open(uint16_t domid, const struct noxs_boot *boot)
{
    struct guest *g = calloc(1, sizeof(*g));

    if (g == NULL)
        return NULL;
    g->domid = domid;
    g->phase = PHASE_WAIT_DEVICE;
    nactive++;
    if (many)
        become(domid);
    g->fe = noxs_frontend_open(boot);
    if (g->fe == NULL) {
        fail(g, "open the device page");
        return g;
    }
    if (!many)
        g->domid = noxs_frontend_domid(g->fe);
    /*
     * Non-blocking, so that consuming events can never block: a wake-up
     * whose port was closed meanwhile leaves the fd readable with nothing
     * pending (the simulator's pending() then blocks like read(2)).
     */
    fcntl(noxs_frontend_fd(g->fe), F_SETFL,
          fcntl(noxs_frontend_fd(g->fe), F_GETFL) | O_NONBLOCK);
    if (watch_fd(noxs_frontend_fd(g->fe), g) < 0) {
        fail(g, "epoll");
        return g;
    }
    if (report && many)
        printf("opened %u %lld\n", domid, now_ns());
    step(g);
    return g;
}

/* ---- the stream of bootstrap lines (many-domain mode) ---- */

struct line_reader {
    int fd;
    bool eof;
    size_t used;
    char buf[4096];
};

static struct guest **guests;
static size_t nguests, guests_cap;

static int add_line(char *line)
{
    char *end;
    uint64_t domid;
    struct noxs_boot boot;
    struct guest *g;

    while (*line == ' ' || *line == '\t')
        line++;
    if (*line == '\0' || *line == '#')
        return 0;
    for (end = line; *end >= '0' && *end <= '9'; end++)
        ;
    if (parse_u64n(line, (size_t)(end - line), 1, NOXS_DOMID_MAX, &domid) <
            0 ||
        noxs_boot_parse(end, &boot) < 0) {
        warnx_("bad domain line \"%s\" (want \"DOMID noxs=O:G:P\")", line);
        return -1;
    }
    if (nguests == guests_cap) {
        size_t cap = guests_cap ? guests_cap * 2 : 64;
        struct guest **n = realloc(guests, cap * sizeof(*n));

        if (n == NULL)
            return -1;
        guests = n;
        guests_cap = cap;
    }
    g = guest_open((uint16_t)domid, &boot);
    if (g == NULL)
        return -1;
    guests[nguests++] = g;
    return 0;
}

/* Read what is there; returns -1 on a malformed line. */
static int read_lines(struct line_reader *lr)
{
    ssize_t n = read(lr->fd, lr->buf + lr->used, sizeof(lr->buf) - lr->used - 1);

    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    if (n == 0) {
        lr->eof = true;
        if (lr->used > 0) {
            lr->buf[lr->used] = '\0';
            lr->used = 0;
            return add_line(lr->buf);
        }
        return 0;
    }
    lr->used += (size_t)n;
    for (;;) {
        char *nl = memchr(lr->buf, '\n', lr->used);
        size_t len;

        if (nl == NULL)
            break;
        *nl = '\0';
        if (add_line(lr->buf) < 0)
            return -1;
        len = (size_t)(nl - lr->buf) + 1;
        memmove(lr->buf, nl + 1, lr->used - len);
        lr->used -= len;
    }
    if (lr->used == sizeof(lr->buf) - 1) {
        warnx_("domain line too long");
        return -1;
    }
    return 0;
}

static int parse_support(const char *list)
{
    char *copy = strdup(list), *save = NULL;

    if (copy == NULL)
        return -1;
    supported = 0;
    for (char *w = strtok_r(copy, ",", &save); w != NULL;
         w = strtok_r(NULL, ",", &save)) {
        const struct reason *r = reason_by_name(w);

        if (r == NULL) {
            warnx_("unknown reason \"%s\" (poweroff, reboot, suspend, crash)",
                   w);
            free(copy);
            return -1;
        }
        supported |= r->feature;
    }
    free(copy);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-sysctl-front [-v] [--support LIST] [--report] [--reattach]\n"
            "                         [--boot noxs=O:G:P | --domains FILE|-]\n"
            "\n"
            "The guest side of the noxs sysctl device: attach to sysctl device 0,\n"
            "advertise the shutdown reasons in LIST (default\n"
            "poweroff,reboot,suspend,crash), connect, wait for a shutdown request,\n"
            "acknowledge it and close.\n"
            "\n"
            "  --boot STR      bootstrap string (default $NOXS_BOOT, else /proc/cmdline)\n"
            "  --domains FILE  act as many domains: lines \"DOMID noxs=O:G:P\" from\n"
            "                  FILE or - (stdin), read as they arrive\n"
            "  --report        print connected/shutdown/closed/error lines on stdout\n"
            "  --reattach      when the backend closes the device, wait for it again\n"
            "  -v              verbose\n"
            "  --version       print the version and exit\n"
            "\n"
            "Exit status (one domain): 0 poweroff, 10 reboot, 11 suspend, 12 crash,\n"
            "3 the backend closed or removed the device, 1 error, 2 usage. With\n"
            "--domains: 0 once every domain was shut down by request, else 1.\n");
}

/*
 * The loop: every guest's events, new domains from lr, the signal fd
 * (its epoll tag is sig_tag). 0 when done or told to stop, -1 if epoll
 * fails.
 */
static int serve(const int *sig_tag, struct line_reader *lr,
                 const char *domains)
{
    for (;;) {
        struct epoll_event evs[256];
        int n;

        if (nactive == 0 && (domains == NULL || lr->eof))
            return 0;
        n = epoll_wait(epfd, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            warnx_("epoll_wait: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;

            if (p == sig_tag) {
                if (verbose)
                    warnx_("signal: closing %zu domain(s)", nactive);
                return 0;
            }
            if (p == lr) {
                if (read_lines(lr) < 0)
                    return 0;
                if (lr->eof)
                    epoll_ctl(epfd, EPOLL_CTL_DEL, lr->fd, NULL);
                continue;
            }
            struct guest *g = p;

            if (g->phase == PHASE_DONE) {
                /* Closed already: just drain its channel. */
                if (g->fe != NULL)
                    noxs_frontend_handle_events(g->fe);
                continue;
            }
            if (noxs_frontend_handle_events(g->fe) < 0 && errno != EAGAIN) {
                fail(g, "event channel");
                continue;
            }
            step(g);
        }
    }
}

/* Close what is still open so the backends see Closed; the exit status. */
static int close_all(struct guest *single)
{
    /* Close what is still open so the backends see Closed. */
    for (size_t i = 0; i < nguests; i++) {
        struct guest *g = guests[i];

        drop_device(g);
        if (g->fe != NULL)
            noxs_frontend_close(g->fe);
        free(g);
    }
    free(guests);
    if (single != NULL) {
        int status = single->phase == PHASE_DONE ? single->exit_status : 1;

        drop_device(single);
        if (single->fe != NULL)
            noxs_frontend_close(single->fe);
        free(single);
        return status;
    }
    return nactive == 0 ? worst_status : 1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"support", required_argument, NULL, 's'},
        {"boot", required_argument, NULL, 'b'},
        {"domains", required_argument, NULL, 'D'},
        {"report", no_argument, NULL, 'r'},
        {"reattach", no_argument, NULL, 'a'},
        OPT_HELP_VERSION,
    };
    const char *boot_str = NULL, *domains = NULL;
    struct line_reader lr = {.fd = -1};
    struct guest *single = NULL;
    int sfd, c;

    supported = NOXS_SYSCTL_POWEROFF | NOXS_SYSCTL_REBOOT |
                NOXS_SYSCTL_SUSPEND | NOXS_SYSCTL_CRASH;
    while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (parse_support(optarg) < 0)
                return EXIT_USAGE;
            break;
        case 'b': boot_str = optarg; break;
        case 'D': domains = optarg; break;
        case 'r': report = true; break;
        case 'a': reattach = true; break;
        case 'v': verbose = true; break;
        default: return opt_other(c, "noxs-sysctl-front", usage);
        }
    }
    if (optind != argc || (boot_str && domains)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    noxs_set_logger(library_log);
    raise_fd_limit();

    epfd = epoll_create1(EPOLL_CLOEXEC);
    sfd = daemon_signals(0);
    if (epfd < 0 || watch_fd(sfd, &sfd) < 0) {
        warnx_("epoll/signalfd: %s", strerror(errno));
        return 1;
    }

    if (domains != NULL) {
        many = true;
        lr.fd = strcmp(domains, "-") == 0 ? STDIN_FILENO
                                          : open(domains, O_RDONLY | O_CLOEXEC);
        if (lr.fd < 0) {
            warnx_("%s: %s", domains, strerror(errno));
            return 1;
        }
        /* Regular files cannot be epolled: drain them now. */
        if (watch_fd(lr.fd, &lr) < 0) {
            if (errno != EPERM)
                return 1;
            while (!lr.eof)
                if (read_lines(&lr) < 0)
                    return 1;
        } else {
            fcntl(lr.fd, F_SETFL, fcntl(lr.fd, F_GETFL) | O_NONBLOCK);
        }
    } else {
        struct noxs_boot boot;

        if ((boot_str ? noxs_boot_parse(boot_str, &boot)
                      : noxs_boot_find(&boot)) < 0) {
            warnx_("no bootstrap string (%s): set NOXS_BOOT or --boot",
                   strerror(errno));
            return 1;
        }
        single = guest_open(0, &boot);
        if (single == NULL)
            return 1;
    }

    /* An epoll failure ends the run at once, with 1. */
    if (serve(&sfd, &lr, domains) < 0)
        return 1;
    return close_all(single);
}
