/*
 * noxs-sysctl-back: the backend of the sysctl device (shutdown requests).
 *
 * One process serves the sysctl devices of every guest: it registers with
 * noxsd for NOXS_DEV_SYSCTL, and libnoxs hands it a noxs_dev per device.
 * libnoxs walks the states (xenbus style, noxs.h) and watches the
 * frontend's liveness page; a session has nothing to set up, so connect
 * only accepts and disconnect ends the session's request.
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
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>
#include <noxs/io/sysctl.h>

#include "common/backend.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/parse.h"

struct reason {
    const char *name;
    uint64_t feature;
};

static const struct reason reasons[] = {
    {NOXS_SYSCTL_REASON_POWEROFF, NOXS_SYSCTL_POWEROFF},
    {NOXS_SYSCTL_REASON_REBOOT, NOXS_SYSCTL_REBOOT},
    {NOXS_SYSCTL_REASON_SUSPEND, NOXS_SYSCTL_SUSPEND},
    {NOXS_SYSCTL_REASON_CRASH, NOXS_SYSCTL_CRASH},
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

/* Per device, hung on the noxs_dev's user pointer. */
struct sysdev {
    noxs_dev *dev;
    const struct reason *pending; /* request waiting for the guest */
    uint32_t request;
    int64_t deadline_ms;
    struct sysdev *prev, *next;         /* in the pending FIFO */
    struct sysdev *all_prev, *all_next; /* in devs: every device we serve */
};

/*
 * Every device's bookkeeping, so that an exit that keeps the devices for
 * our next run (noxs_backend_close of a resumable backend calls no
 * remove) still frees it.
 */
static struct sysdev *devs;

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

/* ---- the device ---- */

static bool acknowledged(noxs_dev *d, const struct reason *r)
{
    char ack[32];

    return noxs_dev_peer_kv(d, NOXS_SYSCTL_KEY_SHUTDOWN_ACK, ack, sizeof(ack)) >= 0 &&
           strcmp(ack, r->name) == 0;
}

static struct sysdev *attach(noxs_dev *d)
{
    struct sysdev *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->dev = d;
    s->all_next = devs;
    if (devs != NULL)
        devs->all_prev = s;
    devs = s;
    noxs_dev_set_user(d, s);
    return s;
}

static void detach(struct sysdev *s)
{
    if (s->all_prev != NULL)
        s->all_prev->all_next = s->all_next;
    else
        devs = s->all_next;
    if (s->all_next != NULL)
        s->all_next->all_prev = s->all_prev;
    noxs_dev_set_user(s->dev, NULL);
    free(s);
}

static int sysctl_create(noxs_backend *b, noxs_dev *d,
                         const struct noxs_kv *params, size_t nparams,
                         void *arg)
{
    static const char *const known[] = {NULL};
    const char *unknown = params_unknown(params, nparams, known);

    if (unknown != NULL) {
        log_warnx("domain %u: sysctl device %u refused: unknown parameter "
                  "%s= (it takes none)",
                  noxs_dev_frontend_domid(d),
                  noxs_dev_id(d), unknown);
        return -EINVAL;
    }
    if (attach(d) == NULL)
        return -ENOMEM;
    log_info("domain %u: sysctl device %u created",
             noxs_dev_frontend_domid(d), noxs_dev_id(d));
    return 0; /* the library publishes InitWait */
}

/* The frontend's acknowledgement answers the request. */
static void sysctl_changed(noxs_backend *b, noxs_dev *d, void *arg)
{
    struct sysdev *s = noxs_dev_user(d);

    if (s != NULL && s->pending != NULL && acknowledged(d, s->pending))
        answer(s, 0);
}

/* A session has nothing to set up: the library publishes Connected. */
static int sysctl_connect(noxs_backend *b, noxs_dev *d, const char **why,
                          void *arg)
{
    log_info("domain %u: sysctl device %u connected",
             noxs_dev_frontend_domid(d), noxs_dev_id(d));
    return 0;
}

/* The session ends: its request with it, whatever ended it. */
static void sysctl_disconnect(noxs_backend *b, noxs_dev *d, int why,
                              void *arg)
{
    struct sysdev *s = noxs_dev_user(d);

    if (s != NULL)
        answer(s, why == ENODEV ? ENODEV : ECONNRESET);
    noxs_dev_del_kv(d, NOXS_SYSCTL_KEY_SHUTDOWN);
    log_info("domain %u: sysctl device %u %s", noxs_dev_frontend_domid(d),
             noxs_dev_id(d), why == ECONNRESET ? "closed: the frontend died" : "closed");
}

/* After our restart: our bookkeeping for a device we kept. */
static void sysctl_resume(noxs_backend *b, noxs_dev *d, void *arg)
{
    if (noxs_dev_user(d) == NULL && attach(d) != NULL)
        log_info("domain %u: sysctl device %u resumed (%s)",
                 noxs_dev_frontend_domid(d), noxs_dev_id(d),
                 noxs_state_name(noxs_dev_state(d)));
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
    if (strcmp(key, NOXS_SYSCTL_KEY_SHUTDOWN) != 0)
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
    snprintf(fkey, sizeof(fkey), NOXS_SYSCTL_KEY_FEATURE_PREFIX "%s", r->name);
    if (!(noxs_dev_peer_features(d) & r->feature) &&
        !(noxs_dev_peer_kv(d, fkey, flag, sizeof(flag)) >= 0 &&
          strcmp(flag, "1") == 0)) {
        log_info("domain %u: shutdown %s not supported by the guest",
                 noxs_dev_frontend_domid(d), r->name);
        return -ENOTSUP;
    }
    answer(s, ECANCELED);
    if (noxs_dev_set_kv(d, NOXS_SYSCTL_KEY_SHUTDOWN, r->name) < 0 ||
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
    log_info("domain %u: sysctl device %u removed", noxs_dev_frontend_domid(d),
             noxs_dev_id(d));
    detach(s);
}

static const struct noxs_backend_ops ops = {
    .create = sysctl_create,
    .changed = sysctl_changed,
    .control = sysctl_control,
    .remove = sysctl_remove,
    .connect = sysctl_connect,
    .disconnect = sysctl_disconnect,
    .resume = sysctl_resume,
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

/* The loop: noxsd's requests, the devices' events, deadlines, signals.
 * Returns the exit status. */
static int serve(int sfd)
{
    for (;;) {
        struct pollfd pfd[2] = {
            {.fd = noxs_backend_fd(backend), .events = POLLIN},
            {.fd = sfd, .events = POLLIN},
        };
        int64_t now = now_ms();
        int wait = -1;

        if (fifo.head != NULL) {
            int64_t left = fifo.head->deadline_ms - now;

            if (left < 0)
                left = 0;
            if (wait < 0 || left < wait)
                wait = (int)left;
        }
        if (poll(pfd, 2, wait) < 0 && errno != EINTR) {
            log_warnx("poll: %s", strerror(errno));
            return 1;
        }
        if (pfd[1].revents) {
            log_info("signal: exiting");
            return 0;
        }
        if (pfd[0].revents && noxs_backend_dispatch(backend, 0) < 0 &&
            errno != EAGAIN && errno != ETIMEDOUT && errno != EINTR) {
            log_warnx("lost noxsd: %s", strerror(errno));
            return 1;
        }
        expire(now_ms());
    }
}

/* --timeout, our one option besides the daemon's (OPT_DAEMON). */
static int option(int ch, const char *arg)
{
    char *end;
    double secs = strtod(arg, &end);

    (void)ch;
    if (*end != '\0' || !(secs > 0) || secs > 86400) {
        fprintf(stderr, "noxs-sysctl-back: --timeout %s: not a number of "
                        "seconds (more than 0, at most 86400)\n",
                arg);
        return EXIT_USAGE;
    }
    timeout_ms = (int64_t)(secs * 1000);
    return -1;
}

/* Static: its paths live as long as the process (no leak at exit). */
static struct opt_daemon opts = {
    .prog = "noxs-sysctl-back", .usage = usage, .own = option};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, 't'},
        OPT_DAEMON,
    };
    /* Each guest's device holds a grant and a port: backend_start raises
     * the fd limit. */
    int sfd = backend_start(argc, argv, longopts, &opts, 0), status;

    /* Registration before detaching: failing to, it says why and exits 1.
     * We resume our devices after a restart (sysctl_resume). */
    backend = backend_register(opts.socket, NOXS_DEV_SYSCTL, &ops);
    log_info("noxs-sysctl-back %s: serving sysctl devices", version_string());
    daemon_ready();

    status = serve(sfd);
    while (fifo.head != NULL)
        answer(fifo.head, ECANCELED);
    while (devs != NULL)
        detach(devs);
    noxs_backend_close(backend);
    return status;
}
