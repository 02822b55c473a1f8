/*
 * xs-bringup3's dom0 backend: one process with one xs handle serving the
 * vbd, console and vif devices of every domain, as a dom0 driver domain
 * does (blkback, the console backend and netback behind one xenbus).
 * Like Linux's xenbus it watches backend/<class> and looks only at the
 * device an event names. Per device:
 *   Initialising: the class's probe keys (vbd: blkback's limits and the
 *     hotplug script's physical-device and hotplug-status; vif: the
 *     legacy backend's features), then InitWait;
 *   frontend Initialised or Connected: read its ring keys; vbd and
 *     console map the ring page and bind the channel; vbd writes
 *     blkback's connect keys (sectors, info, sector-size, ...) in one
 *     transaction; then Connected;
 *   directory removed: unmap, unbind, forget, and tell the parent.
 * Requests on a data ring are answered as they come (xsbringup3.h).
 */
#include "xsbringup3.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <noxs/noxs.h>

#include "../tests/legacy/legacy.h"

struct bdev {
    int k; /* X3_VBD, ... */
    unsigned int fe, id;
    int state;
    char dir[96], front[96];
    struct x3_ring *ring;
    evtchn_port_t lport; /* ours, bound to the frontend's port */
};

static struct xs_handle *xs;
static xenevtchn_handle *xce;
static xengnttab_handle *gt;
static struct bdev *devs;
static size_t ndevs, capdevs;
static int report = -1;

static struct bdev *find(int k, unsigned int fe, unsigned int id)
{
    for (size_t i = 0; i < ndevs; i++)
        if (devs[i].k == k && devs[i].fe == fe && devs[i].id == id)
            return &devs[i];
    return NULL;
}

static void let_go(struct bdev *d)
{
    char path[128], token[48];

    snprintf(path, sizeof(path), "%s/state", d->front);
    snprintf(token, sizeof(token), "fe/%d/%u/%u", d->k, d->fe, d->id);
    xs_unwatch(xs, path, token);
    if (d->ring)
        xengnttab_unmap(gt, d->ring, 1);
    if (d->lport)
        xenevtchn_unbind(xce, d->lport);
    if (write(report, "c", 1) != 1)
        exit(1); /* the parent is gone */
    *d = devs[--ndevs];
}

static int write_keys(xs_transaction_t t, const char *dir,
                      const char *const (*keys)[2], size_t n)
{
    char path[160];

    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, keys[i][0]);
        if (legacy_write_str(xs, t, path, keys[i][1]) < 0)
            return -1;
    }
    return 0;
}

/* blkback's probe, then what the block hotplug script writes. */
static const char *const vbd_probe[][2] = {
    {"feature-max-indirect-segments", "256"},
    {"multi-queue-max-queues", "2"},
    {"max-ring-page-order", "4"},
    {"physical-device", "7:0"},
    {"physical-device-path", "/dev/loop0"},
    {"hotplug-status", "connected"},
};

/* blkback's connect(): 8192 sectors of 512 bytes (4 MiB). */
static const char *const vbd_connect[][2] = {
    {"feature-flush-cache", "1"},
    {"discard-granularity", "4096"},
    {"discard-alignment", "0"},
    {"discard-secure", "0"},
    {"feature-discard", "1"},
    {"feature-barrier", "1"},
    {"feature-persistent", "1"},
    {"sectors", "8192"},
    {"info", "0"},
    {"sector-size", "512"},
    {"physical-sector-size", "512"},
};

struct keyset {
    const char *dir;
    const char *const (*keys)[2];
    size_t n;
};

static int keyset_once(struct xs_handle *h, xs_transaction_t t,
                       const void *arg)
{
    const struct keyset *k = arg;

    return write_keys(t, k->dir, k->keys, k->n);
}

/* The keys under dir in one transaction (retried on EAGAIN). */
static int write_set(const char *dir, const char *const (*keys)[2], size_t n)
{
    struct keyset k = {dir, keys, n};

    return legacy_in_transaction(xs, keyset_once, &k);
}

static int set_state(struct bdev *d, int state)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/state", d->dir);
    if (legacy_write_int(xs, XBT_NULL, path, state) < 0)
        return -1;
    d->state = state;
    return 0;
}

static int front_int(struct bdev *d, const char *key, int *out)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/%s", d->front, key);
    return legacy_read_int(xs, XBT_NULL, path, out);
}

/* The frontend is Initialised or Connected: take its ring and channel. */
static int connect_dev(struct bdev *d)
{
    const char *port_key = d->k == X3_CONSOLE ? "port" : "event-channel";
    int ref, port;
    xenevtchn_port_or_error_t lp;

    if (d->k == X3_VIF)
        return front_int(d, "tx-ring-ref", &ref) < 0 ||
                       front_int(d, "rx-ring-ref", &ref) < 0 ||
                       front_int(d, "event-channel", &port) < 0
                   ? -1
                   : 0;
    if (front_int(d, "ring-ref", &ref) < 0 || front_int(d, port_key, &port) < 0)
        return -1;
    if (d->k == X3_VBD) {
        char path[160], *proto;
        unsigned int len;

        snprintf(path, sizeof(path), "%s/protocol", d->front);
        proto = xs_read(xs, XBT_NULL, path, &len);
        free(proto); /* one ABI here: its presence is enough */
        if (!proto)
            return -1;
    }
    d->ring = xengnttab_map_grant_ref(gt, d->fe, (uint32_t)ref,
                                      PROT_READ | PROT_WRITE);
    if (!d->ring)
        return -1;
    if ((lp = xenevtchn_bind_interdomain(xce, d->fe, (evtchn_port_t)port)) < 0)
        return -1;
    d->lport = (evtchn_port_t)lp;
    if (d->k == X3_VBD)
        return write_set(d->dir, vbd_connect,
                         sizeof(vbd_connect) / sizeof(vbd_connect[0]));
    return 0;
}

static struct bdev *add(int k, unsigned int fe, unsigned int id,
                        const char *dir)
{
    char path[128], token[48], *front;
    unsigned int len;
    struct bdev *d;

    snprintf(path, sizeof(path), "%s/frontend", dir);
    if (!(front = xs_read(xs, XBT_NULL, path, &len)))
        return NULL; /* not fully written yet: a later event brings it */
    if (ndevs == capdevs) {
        free(front); /* more than the parent said it would bring up */
        return NULL;
    }
    d = &devs[ndevs++];
    *d = (struct bdev){.k = k, .fe = fe, .id = id};
    snprintf(d->dir, sizeof(d->dir), "%s", dir);
    snprintf(d->front, sizeof(d->front), "%s", front);
    free(front);
    snprintf(path, sizeof(path), "%s/state", d->front);
    snprintf(token, sizeof(token), "fe/%d/%u/%u", k, fe, id);
    xs_watch(xs, path, token);
    return d;
}

static void check(int k, unsigned int fe, unsigned int id)
{
    char dir[96], path[128];
    struct bdev *d = find(k, fe, id);
    int state, fe_state;

    snprintf(dir, sizeof(dir), "/local/domain/0/backend/%s/%u/%u",
             x3_classes[k].cls, fe, id);
    snprintf(path, sizeof(path), "%s/state", dir);
    if (legacy_read_int(xs, XBT_NULL, path, &state) < 0) {
        if (d && errno == ENOENT)
            let_go(d);
        return;
    }
    if (!d && !(d = add(k, fe, id, dir)))
        return;
    d->state = state;
    if (state == LEGACY_INITIALISING) {
        if (k == X3_VBD &&
            write_set(dir, vbd_probe, sizeof(vbd_probe) / sizeof(vbd_probe[0])) < 0)
            return;
        if (k == X3_VIF && legacy_back_features(xs, dir) < 0)
            return;
        if (set_state(d, LEGACY_INITWAIT) < 0)
            return;
    }
    if (front_int(d, "state", &fe_state) < 0)
        return;
    if ((fe_state == LEGACY_INITIALISED || fe_state == LEGACY_CONNECTED) &&
        d->state == LEGACY_INITWAIT && connect_dev(d) == 0)
        set_state(d, LEGACY_CONNECTED);
    else if (fe_state >= LEGACY_CLOSING && d->state < fe_state)
        set_state(d, fe_state);
}

/* A frontend's device whose directory is gone lists nothing: look at the
 * ones we know of domain fe, and at those listed. */
static void rescan_fe(int k, unsigned int fe)
{
    char path[96];
    unsigned int n;
    char **ids;

    for (size_t i = 0; i < ndevs;) {
        size_t before = ndevs;

        if (devs[i].k == k && devs[i].fe == fe)
            check(k, fe, devs[i].id);
        if (ndevs == before)
            i++;
    }
    snprintf(path, sizeof(path), "/local/domain/0/backend/%s/%u",
             x3_classes[k].cls, fe);
    if (!(ids = xs_directory(xs, XBT_NULL, path, &n)))
        return;
    for (unsigned int j = 0; j < n; j++)
        check(k, fe, (unsigned int)atoi(ids[j]));
    free(ids);
}

static void event(const char *path, const char *token)
{
    unsigned int fe, id;
    int k, got;

    if (sscanf(token, "fe/%d/%u/%u", &k, &fe, &id) == 3) {
        if (k >= 0 && k < X3_NDEV)
            check(k, fe, id);
        return;
    }
    for (k = 0; k < X3_NDEV; k++)
        if (strcmp(token, x3_classes[k].cls) == 0)
            break;
    if (k == X3_NDEV)
        return;
    got = sscanf(path + strlen("/local/domain/0/backend/") +
                     strlen(x3_classes[k].cls),
                 "/%u/%u", &fe, &id);
    if (got == 2)
        check(k, fe, id);
    else if (got == 1)
        rescan_fe(k, fe);
}

/* A request on a data ring: answer it. */
static void serve(evtchn_port_t lport)
{
    for (size_t i = 0; i < ndevs; i++) {
        struct bdev *d = &devs[i];
        struct x3_ring *r = d->ring;
        uint32_t req;

        if (d->lport != lport || !r)
            continue;
        req = __atomic_load_n(&r->req, __ATOMIC_ACQUIRE);
        if (req == 0 || req == r->rsp)
            return;
        if (d->k == X3_VBD && r->op == X3_OP_READ && r->sector == 0) {
            uint8_t *p = xengnttab_map_grant_ref(gt, d->fe, r->gref,
                                                 PROT_READ | PROT_WRITE);

            if (!p)
                return; /* no answer: the guest's wait is bounded */
            for (unsigned int j = 0; j < 4096; j++)
                p[j] = x3_sector0(d->fe, j);
            xengnttab_unmap(gt, p, 1);
        }
        /* A console byte (r->byte) is taken as it is: the answer says
         * dom0 has it. */
        __atomic_store_n(&r->rsp, req, __ATOMIC_RELEASE);
        xenevtchn_notify(xce, lport);
        return;
    }
}

/*
 * Serve every data ring whose channel fired. Called between any two
 * store events too: on a Xen dom0 the data path (blkback's ring thread,
 * xenconsoled's loop) does not wait behind the xenbus watch handling of
 * other devices, so a request here waits at most for the one store event
 * in hand.
 */
static void serve_pending(void)
{
    struct pollfd p = {.fd = xenevtchn_fd(xce), .events = POLLIN};

    while (poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) {
        xenevtchn_port_or_error_t port = xenevtchn_pending(xce);

        if (port < 0)
            return;
        xenevtchn_unmask(xce, (evtchn_port_t)port);
        serve((evtchn_port_t)port);
    }
}

static int loop(void)
{
    struct pollfd pfd[3] = {
        {.fd = xs_fileno(xs), .events = POLLIN},
        {.fd = xenevtchn_fd(xce), .events = POLLIN},
        {.fd = report, .events = 0}, /* POLLHUP/POLLERR: parent gone */
    };

    for (;;) {
        char **ev;

        if (poll(pfd, 3, 1000) < 0 && errno != EINTR)
            return 1;
        if (pfd[2].revents)
            return 0;
        serve_pending();
        while ((ev = xs_check_watch(xs)) != NULL) {
            event(ev[XS_WATCH_PATH], ev[XS_WATCH_TOKEN]);
            free(ev);
            serve_pending();
        }
    }
}

static int back_main(int fd)
{
    char path[96];

    report = fd;
    if (noxs_open_as(0, NULL) < 0 || !(xs = xs_open(0)) ||
        !(xce = xenevtchn_open(NULL, 0)) || !(gt = xengnttab_open(NULL, 0))) {
        fprintf(stderr, "xs-bringup3 backend: open: %s\n", strerror(errno));
        return 1;
    }
    for (int k = 0; k < X3_NDEV; k++) {
        snprintf(path, sizeof(path), "/local/domain/0/backend/%s",
                 x3_classes[k].cls);
        if (!xs_watch(xs, path, x3_classes[k].cls)) {
            fprintf(stderr, "xs-bringup3 backend: watch %s: %s\n", path,
                    strerror(errno));
            return 1;
        }
    }
    if (write(report, "r", 1) != 1)
        return 1;
    return loop();
}

int x3_back_start(int *events, size_t max_devices)
{
    int fds[2];
    pid_t pid;

    capdevs = max_devices;
    if (!(devs = calloc(max_devices, sizeof(*devs))) || pipe(fds) < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        signal(SIGPIPE, SIG_IGN);
        _exit(back_main(fds[1]));
    }
    close(fds[1]);
    *events = fds[0];
    return pid;
}
