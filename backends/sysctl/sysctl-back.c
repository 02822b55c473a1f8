/*
 * noxs-sysctl-back: the backend of the sysctl device (shutdown requests).
 *
 * One process serves the sysctl devices of every guest: it registers with
 * noxsd for NOXS_DEV_SYSCTL, and libnoxs hands it a noxs_dev per device.
 * Per device it only follows the frontend's state (xenbus style):
 *
 *   frontend Initialising/Unknown  -> we (re)publish InitWait, clearing a
 *                                     request left from a previous session
 *   frontend Initialised/Connected -> we go Connected
 *   frontend Closing               -> we go Closing
 *   frontend Closed                -> we go Closed (a restarted frontend
 *                                     starts again at Initialising)
 *
 * A toolstack request (noxsd's control key "shutdown" = reason) is checked
 * against what the frontend advertised ("feature-<reason>" = "1" in its
 * half, or the NOXS_SYSCTL_* feature bit), written as our key "shutdown",
 * and answered later, when the frontend's "shutdown-ack" names the reason
 * (reply: the reason), or with an error: ENOTSUP (not advertised),
 * ENOTCONN (frontend not Connected), ECONNRESET (it closed without
 * acknowledging), ECANCELED (a newer request replaced it), ENODEV (the
 * device was removed) or ETIMEDOUT (no answer within --timeout).
 *
 * A frontend killed with -9 leaves its half saying Connected, and the
 * closing of its event channel leaves no mark on the page. So the
 * frontend shares a liveness page per session (its key "liveness-gref";
 * byte 0 = frontend alive, cleared by the grant layer when the share
 * ends) and we map it with an unmap notification on byte 1, which we set
 * (so the frontend sees our death the same way). Because nothing on the
 * control page changes when a frontend dies, the library has no change to
 * report; we look at the liveness bytes of all devices every
 * LIVENESS_MS instead (a read of one byte per device) and walk a dead
 * frontend's device to Closed, which noxsd then reports.
 *
 * Why a FIFO for deadlines: every request gets the same timeout, so
 * deadlines are ordered by arrival and the earliest is always at the head;
 * arming, answering and expiring are O(1) however many guests there are.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <xengnttab.h>

#include <noxs/noxs.h>
#include <noxs/io/sysctl.h>

#include "common/daemon.h"
#include "common/log.h"
#include "common/parse.h"

#define LIVENESS_MS 250

struct reason {
    const char *name;
    uint64_t feature;
};

static const struct reason reasons[] = {
    {"poweroff", NOXS_SYSCTL_POWEROFF},
    {"reboot", NOXS_SYSCTL_REBOOT},
    {"suspend", NOXS_SYSCTL_SUSPEND},
    {"crash", NOXS_SYSCTL_CRASH},
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

/* Per device, hung on the noxs_dev's user pointer. */
struct sysdev {
    noxs_dev *dev;
    const struct reason *pending; /* request waiting for the guest */
    uint32_t request;
    int64_t deadline_ms;
    struct sysdev *prev, *next; /* in the pending FIFO */
    struct sysdev *all_prev, *all_next; /* every device */
    volatile uint8_t *alive;    /* the frontend's liveness page */
    uint32_t alive_ref;
};

static struct sysdev *all_devs;
static xengnttab_handle *gnttab;

static struct {
    struct sysdev *head, *tail;
} fifo;

static int64_t timeout_ms = 60000;
static noxs_backend *backend;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct reason *reason_by_name(const char *name)
{
    for (size_t i = 0; i < NREASONS; i++)
        if (strcmp(reasons[i].name, name) == 0)
            return &reasons[i];
    return NULL;
}

/* ---- pending requests ---- */

static void unlink_pending(struct sysdev *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        fifo.head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        fifo.tail = s->prev;
    s->prev = s->next = NULL;
}

/* Answer s's pending request with err (0: acknowledged). */
static void answer(struct sysdev *s, int err)
{
    const struct reason *r = s->pending;

    if (r == NULL)
        return;
    s->pending = NULL;
    unlink_pending(s);
    if (err == 0)
        log_info("domain %u: shutdown %s acknowledged",
                 noxs_dev_frontend_domid(s->dev), r->name);
    else
        log_info("domain %u: shutdown %s failed: %s",
                 noxs_dev_frontend_domid(s->dev), r->name, strerror(err));
    if (noxs_backend_control_reply(backend, s->request, err,
                                   err == 0 ? r->name : NULL) < 0)
        log_warnx("domain %u: cannot answer request %u: %s",
                  noxs_dev_frontend_domid(s->dev), s->request,
                  strerror(errno));
}

static void expire(int64_t now)
{
    while (fifo.head != NULL && fifo.head->deadline_ms <= now)
        answer(fifo.head, ETIMEDOUT);
}

/* ---- the device's state machine ---- */

static void set_state(noxs_dev *d, unsigned int state)
{
    if (noxs_dev_state(d) == state)
        return;
    noxs_dev_set_state(d, state);
    if (noxs_dev_publish(d) < 0)
        log_warnx("domain %u: publish %s: %s", noxs_dev_frontend_domid(d),
                  noxs_state_name(state), strerror(errno));
    else if (state == NOXS_STATE_CONNECTED || state == NOXS_STATE_CLOSED)
        /* One line per connect and close at the default verbosity. */
        log_info("domain %u: sysctl device %u %s",
                 noxs_dev_frontend_domid(d), noxs_dev_id(d),
                 state == NOXS_STATE_CONNECTED ? "connected" : "closed");
    else
        log_debug("domain %u: sysctl device %u %s",
                  noxs_dev_frontend_domid(d), noxs_dev_id(d),
                  noxs_state_name(state));
    noxs_backend_report(backend, d);
}

static void liveness_unmap(struct sysdev *s)
{
    if (s->alive != NULL) {
        xengnttab_unmap(gnttab, (void *)s->alive, 1); /* clears byte 1 */
        s->alive = NULL;
        s->alive_ref = 0;
    }
}

/* Follow the frontend's "liveness-gref": map the page of this session. */
static void liveness_sync(struct sysdev *s)
{
    char buf[16];
    char *end;
    unsigned long ref;

    if (noxs_dev_peer_kv(s->dev, "liveness-gref", buf, sizeof(buf)) < 0) {
        liveness_unmap(s);
        return;
    }
    ref = strtoul(buf, &end, 10);
    if (*end != '\0' || ref < NOXS_GREF_MIN || ref > UINT32_MAX) {
        liveness_unmap(s);
        return;
    }
    if (s->alive != NULL && s->alive_ref == ref)
        return;
    liveness_unmap(s);
    /*
     * Devices that outlive us (fd store) must not tell the frontend we
     * died when we merely restart: no unmap notification then; byte 1
     * stays set and the next instance maps the page again.
     */
    if (noxs_backend_restartable(backend))
        s->alive = xengnttab_map_grant_ref(
            gnttab, noxs_dev_frontend_domid(s->dev), (uint32_t)ref,
            PROT_READ | PROT_WRITE);
    else
        s->alive = xengnttab_map_grant_ref_notify(
            gnttab, noxs_dev_frontend_domid(s->dev), (uint32_t)ref,
            PROT_READ | PROT_WRITE, 1, noxs_dev_port(s->dev));
    if (s->alive == NULL) {
        log_warnx("domain %u: cannot map liveness page %lu: %s",
                  noxs_dev_frontend_domid(s->dev), ref, strerror(errno));
        return;
    }
    s->alive_ref = (uint32_t)ref;
    __atomic_store_n(&s->alive[1], 1, __ATOMIC_RELEASE);
}

static void sysctl_changed(noxs_backend *b, noxs_dev *d, void *arg);

/* Frontends that died without closing: walk their devices to Closed. */
static void liveness_scan(void)
{
    struct sysdev *next;

    for (struct sysdev *s = all_devs; s != NULL; s = next) {
        next = s->all_next;
        if (s->alive == NULL ||
            __atomic_load_n(&s->alive[0], __ATOMIC_ACQUIRE) != 0)
            continue;
        /*
         * A frontend that closes properly publishes Closed before its
         * share ends: look at its half first. A change we find here is
         * one the library will not report (we consumed it), so handle it
         * as the library would have.
         */
        int rc = noxs_dev_refresh(s->dev);
        unsigned int fs = noxs_dev_peer_state(s->dev);

        if (rc == 1)
            sysctl_changed(backend, s->dev, NULL);
        if (rc >= 0 && (fs == NOXS_STATE_CLOSING || fs == NOXS_STATE_CLOSED ||
                        s->alive == NULL))
            continue;
        log_info("domain %u: the frontend died",
                 noxs_dev_frontend_domid(s->dev));
        liveness_unmap(s);
        answer(s, ECONNRESET);
        set_state(s->dev, NOXS_STATE_CLOSING);
        set_state(s->dev, NOXS_STATE_CLOSED);
    }
}

static bool acknowledged(noxs_dev *d, const struct reason *r)
{
    char ack[32];

    return noxs_dev_peer_kv(d, "shutdown-ack", ack, sizeof(ack)) >= 0 &&
           strcmp(ack, r->name) == 0;
}

static struct sysdev *attach(noxs_dev *d)
{
    struct sysdev *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->dev = d;
    noxs_dev_set_user(d, s);
    s->all_next = all_devs;
    if (all_devs != NULL)
        all_devs->all_prev = s;
    all_devs = s;
    return s;
}

static int sysctl_create(noxs_backend *b, noxs_dev *d,
                         const struct noxs_kv *params, size_t nparams,
                         void *arg)
{
    static const char *const known[] = {NULL};
    const char *unknown = params_unknown(params, nparams, known);

    if (unknown != NULL) {
        log_warnx("domain %u: sysctl device %u refused: unknown parameter "
                  "%s= (it takes none)", noxs_dev_frontend_domid(d),
                  noxs_dev_id(d), unknown);
        return -EINVAL;
    }
    if (attach(d) == NULL)
        return -ENOMEM;
    log_info("domain %u: sysctl device %u created",
             noxs_dev_frontend_domid(d), noxs_dev_id(d));
    return 0; /* the library publishes InitWait */
}

static void sysctl_changed(noxs_backend *b, noxs_dev *d, void *arg)
{
    struct sysdev *s = noxs_dev_user(d);
    unsigned int fe = noxs_dev_peer_state(d);
    unsigned int own = noxs_dev_state(d);

    if (s == NULL)
        return;
    if (s->pending != NULL && acknowledged(d, s->pending))
        answer(s, 0);

    switch (fe) {
    case NOXS_STATE_UNKNOWN:
    case NOXS_STATE_INITIALISING:
        liveness_sync(s);
        if (own != NOXS_STATE_INITWAIT) {
            /* A new frontend session: forget the old request. */
            answer(s, ECONNRESET);
            noxs_dev_del_kv(d, "shutdown");
            set_state(d, NOXS_STATE_INITWAIT);
        }
        break;
    case NOXS_STATE_INITIALISED:
    case NOXS_STATE_CONNECTED:
        if (own == NOXS_STATE_INITWAIT || own == NOXS_STATE_INITIALISING)
            set_state(d, NOXS_STATE_CONNECTED);
        /* The frontend publishes its liveness page after it saw us
         * Connected (sharing is slow); map it when it shows up. */
        liveness_sync(s);
        break;
    case NOXS_STATE_CLOSING:
        liveness_unmap(s);
        answer(s, ECONNRESET);
        if (own != NOXS_STATE_CLOSED)
            set_state(d, NOXS_STATE_CLOSING);
        break;
    case NOXS_STATE_CLOSED:
        liveness_unmap(s);
        answer(s, ECONNRESET);
        set_state(d, NOXS_STATE_CLOSED);
        break;
    default:
        break;
    }
}

static int sysctl_control(noxs_backend *b, noxs_dev *d, const char *key,
                          const char *value, uint32_t request, void *arg)
{
    struct sysdev *s = noxs_dev_user(d);
    const struct reason *r;
    char flag[8];
    char fkey[32];

    if (s == NULL)
        return -ENODEV;
    if (strcmp(key, "shutdown") != 0)
        return -EINVAL;
    r = reason_by_name(value);
    if (r == NULL)
        return -EINVAL;
    /* No refresh here: the library refreshes before changed(), and a
     * refresh of ours would swallow the change it is about to report. */
    if (noxs_dev_peer_state(d) != NOXS_STATE_CONNECTED) {
        log_info("domain %u: shutdown %s: frontend is %s",
                 noxs_dev_frontend_domid(d), r->name,
                 noxs_state_name(noxs_dev_peer_state(d)));
        return -ENOTCONN;
    }
    snprintf(fkey, sizeof(fkey), "feature-%s", r->name);
    if (!(noxs_dev_peer_features(d) & r->feature) &&
        !(noxs_dev_peer_kv(d, fkey, flag, sizeof(flag)) >= 0 &&
          strcmp(flag, "1") == 0)) {
        log_info("domain %u: shutdown %s not supported by the guest",
                 noxs_dev_frontend_domid(d), r->name);
        return -ENOTSUP;
    }
    answer(s, ECANCELED);
    if (noxs_dev_set_kv(d, "shutdown", r->name) < 0 ||
        noxs_dev_publish(d) < 0)
        return -errno;
    log_info("domain %u: shutdown %s requested", noxs_dev_frontend_domid(d),
             r->name);
    s->pending = r;
    s->request = request;
    s->deadline_ms = now_ms() + timeout_ms;
    s->prev = fifo.tail;
    s->next = NULL;
    if (fifo.tail != NULL)
        fifo.tail->next = s;
    else
        fifo.head = s;
    fifo.tail = s;
    return 1;
}

static void sysctl_remove(noxs_backend *b, noxs_dev *d, void *arg)
{
    struct sysdev *s = noxs_dev_user(d);

    if (s == NULL)
        return;
    answer(s, ENODEV);
    liveness_unmap(s);
    if (s->all_prev != NULL)
        s->all_prev->all_next = s->all_next;
    else
        all_devs = s->all_next;
    if (s->all_next != NULL)
        s->all_next->all_prev = s->all_prev;
    log_info("domain %u: sysctl device %u removed", noxs_dev_frontend_domid(d),
             noxs_dev_id(d));
    noxs_dev_set_user(d, NULL);
    free(s);
}

static const struct noxs_backend_ops ops = {
    .create = sysctl_create,
    .changed = sysctl_changed,
    .control = sysctl_control,
    .remove = sysctl_remove,
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: noxs-sysctl-back [-dv] [--socket PATH] [--timeout SECONDS]\n"
        "\n"
        "Serve the sysctl device (shutdown requests) of every guest.\n"
        "  -d, --foreground  stay in the foreground and log to stderr\n"
        "  -v                log debug messages too\n"
        "  --version         print the version and exit\n"
        "  --pidfile PATH    write the pid there (removed at exit)\n"
        "  --socket PATH     noxsd's control socket (default $NOXS_SOCKET,\n"
        "                    else " NOXS_DEFAULT_SOCKET ")\n"
        "  --timeout SECONDS how long a guest may take to acknowledge (60)\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"foreground", no_argument, NULL, 'd'},
        {"socket", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"pidfile", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    const unsigned int types[] = {NOXS_DEV_SYSCTL};
    bool foreground = false;
    int verbosity = 0;
    /* Static: they live as long as the process (no leak at exit). */
    static const char *socket_path, *pidfile;
    struct rlimit rl;
    sigset_t mask;
    int sfd, c, status = 0;
    int64_t last_scan = 0;

    while ((c = getopt_long(argc, argv, "dvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': foreground = true; break;
        case 'v': verbosity++; break;
        case 's': socket_path = opt_path("socket", optarg); break;
        case 't': {
            char *end;
            double secs = strtod(optarg, &end);

            if (*end != '\0' || !(secs > 0) || secs > 86400) {
                fprintf(stderr, "noxs-sysctl-back: --timeout %s: not a "
                                "number of seconds (more than 0, at most "
                                "86400)\n", optarg);
                return EXIT_USAGE;
            }
            timeout_ms = (int64_t)(secs * 1000);
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': print_version("noxs-sysctl-back"); return 0;
        case 'p': pidfile = opt_path("pidfile", optarg); break;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "noxs-sysctl-back: unexpected argument: %s\n",
                argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    log_init("noxs-sysctl-back", verbosity);
    noxs_set_logger(log_library);
    /* Registration before detaching: failing to, it says why and exits 1. */
    daemon_start(foreground);
    daemon_pidfile(pidfile);
    /* Each guest's device holds a grant and a port; allow thousands. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        log_warnx("signalfd: %s", strerror(errno));
        return 1;
    }

    gnttab = xengnttab_open(NULL, 0);
    if (gnttab == NULL) {
        log_warnx("xengnttab_open: %s", strerror(errno));
        return 1;
    }
    /* We resume our devices after a restart (see the loop below). */
    backend = noxs_backend_open_flags(socket_path, types, 1, &ops, NULL,
                                      NOXS_BACKEND_RESUMABLE);
    if (backend == NULL) {
        log_warnx("cannot register with noxsd at %s: %s",
                  socket_path ? socket_path
                  : getenv("NOXS_SOCKET") ? getenv("NOXS_SOCKET")
                                          : NOXS_DEFAULT_SOCKET,
                  strerror(errno));
        return 1;
    }
    if (noxs_backend_restartable(backend) == 2) {
        /*
         * Devices resumed from the fd store: they keep their states; we
         * map the frontends' liveness pages again and follow whatever
         * changed while we were away.
         */
        for (noxs_dev *d = noxs_backend_next_dev(backend, NULL); d != NULL;
             d = noxs_backend_next_dev(backend, d)) {
            if (noxs_dev_user(d) != NULL || attach(d) == NULL)
                continue;
            log_info("domain %u: sysctl device %u resumed (%s)",
                     noxs_dev_frontend_domid(d), noxs_dev_id(d),
                     noxs_state_name(noxs_dev_state(d)));
            /* A half we could not read (torn just now) is no reason to
             * start the device over: its next event reads it again. */
            if (noxs_dev_peer_state(d) != NOXS_STATE_UNKNOWN)
                sysctl_changed(backend, d, NULL);
        }
    }
    log_info("noxs-sysctl-back %s: serving sysctl devices", version_string());
    daemon_ready();

    for (;;) {
        struct pollfd pfd[2] = {
            {.fd = noxs_backend_fd(backend), .events = POLLIN},
            {.fd = sfd, .events = POLLIN},
        };
        int64_t now = now_ms();
        int wait = all_devs != NULL ? LIVENESS_MS : -1;

        if (fifo.head != NULL) {
            int64_t left = fifo.head->deadline_ms - now;

            if (left < 0)
                left = 0;
            if (wait < 0 || left < wait)
                wait = (int)left;
        }
        if (poll(pfd, 2, wait) < 0 && errno != EINTR) {
            log_warnx("poll: %s", strerror(errno));
            status = 1;
            break;
        }
        if (pfd[1].revents) {
            log_info("signal: exiting");
            break;
        }
        if (pfd[0].revents && noxs_backend_dispatch(backend, 0) < 0 &&
            errno != EAGAIN && errno != ETIMEDOUT && errno != EINTR) {
            log_warnx("lost noxsd: %s", strerror(errno));
            status = 1;
            break;
        }
        now = now_ms();
        expire(now);
        if (now - last_scan >= LIVENESS_MS) {
            liveness_scan();
            last_scan = now;
        }
    }
    while (fifo.head != NULL)
        answer(fifo.head, ECANCELED);
    for (struct sysdev *s = all_devs; s != NULL; s = s->all_next)
        liveness_unmap(s);
    noxs_backend_close(backend);
    xengnttab_close(gnttab);
    return status;
}
