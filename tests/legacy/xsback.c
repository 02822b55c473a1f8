/*
 * legacy-back: the backend half of the legacy pair, netback-style, through
 * the xs_* API only.
 *
 *   legacy-back [-d DOMID] [-c CLASS] [-n COUNT] [-p PINGDOM]
 *
 * Watches /local/domain/<DOMID>/backend/<CLASS> (default 0 and "vif").
 * Like Linux's xenbus, it looks only at the device an event path names
 * (the initial event, on the directory itself, rescans everything), so a
 * handshake costs the same however many devices exist. For each device:
 * on Initialising it publishes its features and goes InitWait and watches
 * the frontend's state; when the frontend is Initialised or Connected it
 * reads the ring refs and event channel and goes Connected; it follows
 * the frontend through Closing and Closed, and forgets the device when
 * the toolstack removes its directory. Prints one line per transition
 * ("ready", "initwait FE/ID", "connected FE/ID", "closed FE/ID",
 * "removed FE/ID"); exits after the toolstack removed COUNT devices
 * (default: never; SIGTERM ends it). It does not exit earlier, on the
 * last Closed: on compat-xs a device's nodes live in its backend's pages,
 * so a backend that exits takes them along while the frontend may still
 * be reading the Closed state (docs/COMPAT.md). With -p, devices of frontend domain
 * PINGDOM also answer a write of <frontend>/ping by copying the value to
 * <backend>/pong: bench/compat's watch round trip.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "legacy.h"

struct device {
    unsigned int fe, id;
    int state; /* ours, as last written */
    char frontend[LEGACY_PATH_MAX];
    char token[48];
    int watching;
};

static struct xs_handle *xs;
static unsigned int self;
static const char *cls = "vif";
static char root[LEGACY_PATH_MAX]; /* /local/domain/<self>/backend/<cls> */
static struct device *devs;
static size_t ndevs, capdevs;
static long done, want_done = -1;
static long ping_dom = -1;
static int stop;

static struct device *find(unsigned int fe, unsigned int id)
{
    for (size_t i = 0; i < ndevs; i++)
        if (devs[i].fe == fe && devs[i].id == id)
            return &devs[i];
    return NULL;
}

static void forget(struct device *d)
{
    if (d->watching) {
        char path[2 * LEGACY_PATH_MAX];
        snprintf(path, sizeof(path), "%s/state", d->frontend);
        xs_unwatch(xs, path, d->token);
    }
    *d = devs[--ndevs];
}

static int set_state(struct device *d, const char *dir, int state)
{
    char path[2 * LEGACY_PATH_MAX];

    snprintf(path, sizeof(path), "%s/state", dir);
    if (legacy_write_int(xs, XBT_NULL, path, state) < 0)
        return -1;
    d->state = state;
    return 0;
}

static void count_done(void)
{
    done++;
    if (want_done >= 0 && done >= want_done)
        stop = 1;
}

static void check_device(unsigned int fe, unsigned int id)
{
    char dir[LEGACY_PATH_MAX + 32], path[2 * LEGACY_PATH_MAX];
    struct device *d = find(fe, id);
    int state, fe_state = 0, ring;

    snprintf(dir, sizeof(dir), "%s/%u/%u", root, fe, id);
    snprintf(path, sizeof(path), "%s/state", dir);
    if (legacy_read_int(xs, XBT_NULL, path, &state) < 0) {
        if (d && errno == ENOENT) {
            printf("removed %u/%u\n", fe, id);
            count_done();
            forget(d);
        }
        return;
    }
    if (!d) {
        unsigned int len;
        char *front;

        snprintf(path, sizeof(path), "%s/frontend", dir);
        front = xs_read(xs, XBT_NULL, path, &len);
        if (!front)
            return; /* not fully written yet: a later event brings it */
        if (ndevs == capdevs) {
            size_t cap = capdevs ? capdevs * 2 : 64;
            struct device *n = realloc(devs, cap * sizeof(*n));
            if (!n) {
                free(front);
                return;
            }
            devs = n;
            capdevs = cap;
        }
        d = &devs[ndevs++];
        memset(d, 0, sizeof(*d));
        d->fe = fe;
        d->id = id;
        snprintf(d->frontend, sizeof(d->frontend), "%s", front);
        free(front);
        snprintf(d->token, sizeof(d->token), "fe/%u/%u", fe, id);
        snprintf(path, sizeof(path), "%s/state", d->frontend);
        d->watching = xs_watch(xs, path, d->token);
        if ((long)fe == ping_dom) {
            char token[48];
            snprintf(token, sizeof(token), "ping/%u/%u", fe, id);
            snprintf(path, sizeof(path), "%s/ping", d->frontend);
            xs_watch(xs, path, token);
        }
    }
    d->state = state;
    if (d->state == LEGACY_INITIALISING) {
        if (legacy_back_features(xs, dir) < 0 ||
            set_state(d, dir, LEGACY_INITWAIT) < 0)
            return;
        printf("initwait %u/%u\n", fe, id);
    }
    snprintf(path, sizeof(path), "%s/state", d->frontend);
    if (legacy_read_int(xs, XBT_NULL, path, &fe_state) < 0)
        fe_state = 0;
    switch (fe_state) {
    case LEGACY_INITIALISED:
    case LEGACY_CONNECTED:
        if (d->state != LEGACY_INITWAIT)
            break;
        /* netback's connect(): the rings and the channel must be there. */
        snprintf(path, sizeof(path), "%s/tx-ring-ref", d->frontend);
        if (legacy_read_int(xs, XBT_NULL, path, &ring) < 0)
            break;
        snprintf(path, sizeof(path), "%s/rx-ring-ref", d->frontend);
        if (legacy_read_int(xs, XBT_NULL, path, &ring) < 0)
            break;
        snprintf(path, sizeof(path), "%s/event-channel", d->frontend);
        if (legacy_read_int(xs, XBT_NULL, path, &ring) < 0)
            break;
        if (set_state(d, dir, LEGACY_CONNECTED) == 0)
            printf("connected %u/%u\n", fe, id);
        break;
    case LEGACY_CLOSING:
        if (d->state < LEGACY_CLOSING)
            set_state(d, dir, LEGACY_CLOSING);
        break;
    case LEGACY_CLOSED:
        if (d->state != LEGACY_CLOSED && set_state(d, dir, LEGACY_CLOSED) == 0)
            printf("closed %u/%u\n", fe, id);
        break;
    default:
        break;
    }
}

static void rescan(void)
{
    unsigned int nfe, nid;
    char **fes = xs_directory(xs, XBT_NULL, root, &nfe);
    char path[2 * LEGACY_PATH_MAX];

    for (size_t i = 0; i < ndevs;) {
        /* check_device may forget devs[i] and move the last one there */
        size_t before = ndevs;
        check_device(devs[i].fe, devs[i].id);
        if (ndevs == before)
            i++;
    }
    if (!fes)
        return;
    for (unsigned int i = 0; i < nfe; i++) {
        char **ids;

        snprintf(path, sizeof(path), "%s/%s", root, fes[i]);
        ids = xs_directory(xs, XBT_NULL, path, &nid);
        if (!ids)
            continue;
        for (unsigned int j = 0; j < nid; j++)
            check_device((unsigned)atoi(fes[i]), (unsigned)atoi(ids[j]));
        free(ids);
    }
    free(fes);
}

/* The devices of frontend domain fe: those listed, and those we know
 * (a removed directory lists nothing). */
static void rescan_fe(unsigned int fe)
{
    char path[2 * LEGACY_PATH_MAX];
    unsigned int nid;
    char **ids;

    for (size_t i = 0; i < ndevs;) {
        size_t before = ndevs;
        if (devs[i].fe == fe)
            check_device(devs[i].fe, devs[i].id);
        if (ndevs == before)
            i++;
    }
    snprintf(path, sizeof(path), "%s/%u", root, fe);
    ids = xs_directory(xs, XBT_NULL, path, &nid);
    if (!ids)
        return;
    for (unsigned int j = 0; j < nid; j++)
        check_device(fe, (unsigned)atoi(ids[j]));
    free(ids);
}

/* An event path names one device: <root>/<fe>/<id>[/...] */
static void handle_event(const char *path, const char *token)
{
    unsigned int fe, id;
    size_t n = strlen(root);

    if (strncmp(token, "ping/", 5) == 0) {
        struct device *d;
        unsigned int len;
        char *v;
        char p[2 * LEGACY_PATH_MAX];

        if (sscanf(token + 5, "%u/%u", &fe, &id) != 2 || !(d = find(fe, id)))
            return;
        v = xs_read(xs, XBT_NULL, path, &len);
        if (!v)
            return;
        snprintf(p, sizeof(p), "%s/%u/%u/pong", root, fe, id);
        xs_write(xs, XBT_NULL, p, v, len);
        free(v);
        return;
    }
    if (strncmp(token, "fe/", 3) == 0) {
        if (sscanf(token + 3, "%u/%u", &fe, &id) == 2)
            check_device(fe, id);
        return;
    }
    if (strncmp(path, root, n) == 0 && path[n] == '/') {
        int k = sscanf(path + n + 1, "%u/%u", &fe, &id);

        if (k == 2) {
            check_device(fe, id);
            return;
        }
        /* <root>/<fe>: the toolstack created (or removed) that domain's
         * directory. Only its devices can have changed; rescanning all
         * would cost O(devices) requests for every new domain (Linux's
         * xenbus ignores such shallow paths altogether). */
        if (k == 1) {
            rescan_fe(fe);
            return;
        }
    }
    rescan();
}

static void usage(void)
{
    fprintf(stderr, "usage: legacy-back [-d DOMID] [-c CLASS] [-n COUNT] "
                    "[-p PINGDOM]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int c;

    while ((c = getopt(argc, argv, "d:c:n:p:")) != -1) {
        switch (c) {
        case 'd': self = (unsigned)atoi(optarg); break;
        case 'c': cls = optarg; break;
        case 'n': want_done = atol(optarg); break;
        case 'p': ping_dom = atol(optarg); break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(root, sizeof(root), "/local/domain/%u/backend/%s", self, cls);
    xs = xs_open(0);
    if (!xs) {
        fprintf(stderr, "legacy-back: xs_open: %s\n", strerror(errno));
        return 1;
    }
    if (!xs_watch(xs, root, "backend")) {
        fprintf(stderr, "legacy-back: xs_watch %s: %s\n", root,
                strerror(errno));
        return 1;
    }
    printf("ready\n");
    while (!stop) {
        unsigned int n;
        char **ev = xs_read_watch(xs, &n);

        if (!ev) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "legacy-back: xs_read_watch: %s\n",
                    strerror(errno));
            return 1;
        }
        handle_event(ev[XS_WATCH_PATH], ev[XS_WATCH_TOKEN]);
        free(ev);
    }
    xs_close(xs);
    return 0;
}
