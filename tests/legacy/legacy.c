/*
 * The legacy pair's shared helpers, the frontend handshake and the
 * toolstack step. Only xs_* calls: see legacy.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "legacy.h"

int legacy_take_int(char *v, int *out)
{
    char *end;
    long n;

    if (!v)
        return -1;
    errno = 0;
    n = strtol(v, &end, 10);
    if (end == v || *end || errno || n < -0x7fffffffL || n > 0x7fffffffL) {
        free(v);
        errno = ERANGE;
        return -1;
    }
    free(v);
    *out = (int)n;
    return 0;
}

int legacy_read_int(struct xs_handle *xs, xs_transaction_t t,
                    const char *path, int *out)
{
    unsigned int len;

    return legacy_take_int(xs_read(xs, t, path, &len), out);
}

int legacy_write_str(struct xs_handle *xs, xs_transaction_t t,
                     const char *path, const char *value)
{
    return xs_write(xs, t, path, value, (unsigned int)strlen(value)) ? 0 : -1;
}

int legacy_write_int(struct xs_handle *xs, xs_transaction_t t,
                     const char *path, int value)
{
    char buf[16];

    snprintf(buf, sizeof(buf), "%d", value);
    return legacy_write_str(xs, t, path, buf);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int legacy_wait_state(struct xs_handle *xs, const char *path, int min,
                      bool accept_closing, int timeout_ms, int *out)
{
    long long deadline = now_ms() + timeout_ms;
    char token[32];
    int v = 0, rc = -1, saved;

    /* A token unique to this wait, so events of the caller's own watches
     * on the same handle are told apart. */
    snprintf(token, sizeof(token), "legacy-wait-%p", (void *)&v);
    if (!xs_watch(xs, path, token))
        return -1;
    for (;;) {
        struct pollfd p = {.fd = xs_fileno(xs), .events = POLLIN};
        char **ev;
        int left;

        /* Re-read on every wake-up: an event carries no data. A missing
         * node (ENOENT) just means "not yet". */
        if (legacy_read_int(xs, XBT_NULL, path, &v) == 0) {
            if (v == min || (v > min && (v < LEGACY_CLOSING || accept_closing))) {
                *out = v;
                rc = 0;
                break;
            }
            if (v >= LEGACY_CLOSING && min < LEGACY_CLOSING) {
                *out = v;
                errno = ECONNRESET;
                break;
            }
        }
        left = timeout_ms < 0 ? -1 : (int)(deadline - now_ms());
        if (timeout_ms >= 0 && left <= 0) {
            errno = ETIMEDOUT;
            break;
        }
        if (p.fd < 0)
            break;
        if (poll(&p, 1, left) < 0 && errno != EINTR)
            break;
        while ((ev = xs_check_watch(xs)) != NULL)
            free(ev);
    }
    saved = errno;
    xs_unwatch(xs, path, token);
    errno = saved;
    return rc;
}

/* ---- toolstack ---- */

static void dev_paths(char *fe_dir, char *be_dir, unsigned int fe,
                      const char *cls, unsigned int devid, unsigned int be)
{
    snprintf(fe_dir, LEGACY_PATH_MAX, "/local/domain/%u/device/%s/%u", fe,
             cls, devid);
    snprintf(be_dir, LEGACY_PATH_MAX, "/local/domain/%u/backend/%s/%u/%u", be,
             cls, fe, devid);
}

static int write_node(struct xs_handle *xs, xs_transaction_t t,
                      const char *dir, const char *key, const char *value)
{
    char path[2 * LEGACY_PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return legacy_write_str(xs, t, path, value);
}

int legacy_in_transaction(struct xs_handle *xs,
                          int (*body)(struct xs_handle *, xs_transaction_t,
                                      const void *),
                          const void *arg)
{
    for (;;) {
        xs_transaction_t t = xs_transaction_start(xs);

        if (t == XBT_NULL)
            return -1;
        if (body(xs, t, arg) < 0) {
            int saved = errno;

            xs_transaction_end(xs, t, true);
            errno = saved;
            return -1;
        }
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
}

/* One device, as the toolstack names it. */
struct legacy_dev {
    unsigned int fe, devid, be;
    const char *cls;
};

static int toolstack_add_once(struct xs_handle *xs, xs_transaction_t t,
                              const void *arg)
{
    const struct legacy_dev *d = arg;
    unsigned int fe = d->fe, devid = d->devid, be = d->be;
    const char *cls = d->cls;
    char fe_dir[LEGACY_PATH_MAX], be_dir[LEGACY_PATH_MAX], mac[32];
    char handle[16], fe_id[16], be_id[16];
    struct xs_permissions fe_perms[2] = {
        {.id = fe, .perms = XS_PERM_NONE}, {.id = be, .perms = XS_PERM_READ}};
    struct xs_permissions be_perms[2] = {
        {.id = be, .perms = XS_PERM_NONE}, {.id = fe, .perms = XS_PERM_READ}};

    dev_paths(fe_dir, be_dir, fe, cls, devid, be);
    snprintf(mac, sizeof(mac), "00:16:3e:%02x:%02x:%02x", (fe >> 8) & 0xff,
             fe & 0xff, devid & 0xff);
    snprintf(handle, sizeof(handle), "%u", devid);
    snprintf(fe_id, sizeof(fe_id), "%u", fe);
    snprintf(be_id, sizeof(be_id), "%u", be);

    /* libxl: the backend directory first, then the frontend's. */
    if (!xs_mkdir(xs, t, be_dir) ||
        !xs_set_permissions(xs, t, be_dir, be_perms, 2) ||
        write_node(xs, t, be_dir, "frontend", fe_dir) ||
        write_node(xs, t, be_dir, "frontend-id", fe_id) ||
        write_node(xs, t, be_dir, "online", "1") ||
        write_node(xs, t, be_dir, "state", "1") ||
        write_node(xs, t, be_dir, "handle", handle) ||
        write_node(xs, t, be_dir, "mac", mac) ||
        write_node(xs, t, be_dir, "bridge", "xenbr0") ||
        write_node(xs, t, be_dir, "script", "/etc/xen/scripts/vif-bridge"))
        return -1;
    if (!xs_mkdir(xs, t, fe_dir) ||
        !xs_set_permissions(xs, t, fe_dir, fe_perms, 2) ||
        write_node(xs, t, fe_dir, "backend", be_dir) ||
        write_node(xs, t, fe_dir, "backend-id", be_id) ||
        write_node(xs, t, fe_dir, "state", "1") ||
        write_node(xs, t, fe_dir, "handle", handle) ||
        write_node(xs, t, fe_dir, "mac", mac))
        return -1;
    return 0;
}

int legacy_toolstack_add(struct xs_handle *xs, unsigned int fe,
                         const char *cls, unsigned int devid, unsigned int be)
{
    struct legacy_dev d = {fe, devid, be, cls};

    return legacy_in_transaction(xs, toolstack_add_once, &d);
}

int legacy_toolstack_add_in(struct xs_handle *xs, xs_transaction_t t,
                            unsigned int fe, const char *cls,
                            unsigned int devid, unsigned int be)
{
    struct legacy_dev d = {fe, devid, be, cls};

    return toolstack_add_once(xs, t, &d);
}

static int toolstack_remove_once(struct xs_handle *xs, xs_transaction_t t,
                                 const void *arg)
{
    const struct legacy_dev *d = arg;
    char fe_dir[LEGACY_PATH_MAX], be_dir[LEGACY_PATH_MAX];

    dev_paths(fe_dir, be_dir, d->fe, d->cls, d->devid, d->be);
    return xs_rm(xs, t, be_dir) && xs_rm(xs, t, fe_dir) ? 0 : -1;
}

int legacy_toolstack_remove(struct xs_handle *xs, unsigned int fe,
                            const char *cls, unsigned int devid,
                            unsigned int be)
{
    struct legacy_dev d = {fe, devid, be, cls};

    return legacy_in_transaction(xs, toolstack_remove_once, &d);
}

/* ---- backend ---- */

static int back_features_once(struct xs_handle *xs, xs_transaction_t t,
                              const void *arg)
{
    static const char *const features[] = {
        "feature-sg",
        "feature-gso-tcpv4",
        "feature-gso-tcpv6",
        "feature-ipv6-csum-offload",
        "feature-rx-copy",
        "feature-split-event-channels",
    };
    const char *dir = arg;

    for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
        if (write_node(xs, t, dir, features[i], "1") < 0)
            return -1;
    /* What the hotplug script writes when the interface is up. */
    return write_node(xs, t, dir, "hotplug-status", "connected");
}

int legacy_back_features(struct xs_handle *xs, const char *dir)
{
    return legacy_in_transaction(xs, back_features_once, dir);
}

/* ---- frontend ---- */

static int front_rings_once(struct xs_handle *xs, xs_transaction_t t,
                            const void *arg)
{
    const struct legacy_front *f = arg;
    char path[2 * LEGACY_PATH_MAX];

    /* Ring refs and the channel would come from xengntshr/xenevtchn in a
     * real netfront; the values only have to round-trip. */
    if (write_node(xs, t, f->dir, "tx-ring-ref", "8") ||
        write_node(xs, t, f->dir, "rx-ring-ref", "9") ||
        write_node(xs, t, f->dir, "event-channel", "5") ||
        write_node(xs, t, f->dir, "request-rx-copy", "1") ||
        write_node(xs, t, f->dir, "feature-rx-notify", "1"))
        return -1;
    snprintf(path, sizeof(path), "%s/state", f->dir);
    return legacy_write_int(xs, t, path, LEGACY_CONNECTED);
}

static int front_publish_rings(struct legacy_front *f)
{
    return legacy_in_transaction(f->xs, front_rings_once, f);
}

int legacy_front_connect(struct legacy_front *f, struct xs_handle *xs,
                         unsigned int domid, const char *cls,
                         unsigned int devid, int timeout_ms)
{
    char path[2 * LEGACY_PATH_MAX];
    unsigned int len;
    char *be;
    int state, feature;

    memset(f, 0, sizeof(*f));
    f->xs = xs;
    f->domid = domid;
    snprintf(f->dir, sizeof(f->dir), "/local/domain/%u/device/%s/%u", domid,
             cls, devid);
    snprintf(path, sizeof(path), "%s/backend", f->dir);
    be = xs_read(xs, XBT_NULL, path, &len);
    if (!be)
        return -1;
    if (len >= sizeof(f->backend)) {
        free(be);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(f->backend, be, len + 1);
    free(be);
    snprintf(path, sizeof(path), "%s/backend-id", f->dir);
    if (legacy_read_int(xs, XBT_NULL, path, &f->backend_id) < 0)
        return -1;

    snprintf(path, sizeof(path), "%s/state", f->backend);
    if (legacy_wait_state(xs, path, LEGACY_INITWAIT, false, timeout_ms,
                          &state) < 0)
        return -1;
    /* netfront reads the backend's features before talking to it. */
    snprintf(path, sizeof(path), "%s/feature-rx-copy", f->backend);
    if (legacy_read_int(xs, XBT_NULL, path, &feature) < 0 || feature != 1) {
        errno = EOPNOTSUPP;
        return -1;
    }
    if (front_publish_rings(f) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/state", f->backend);
    return legacy_wait_state(xs, path, LEGACY_CONNECTED, false, timeout_ms,
                             &state);
}

int legacy_front_close(struct legacy_front *f, int timeout_ms)
{
    char path[2 * LEGACY_PATH_MAX], be_state[2 * LEGACY_PATH_MAX];
    int state;

    /* netfront's remove: Closing, wait for the backend to follow, Closed,
     * wait for the backend to be Closed too. */
    snprintf(path, sizeof(path), "%s/state", f->dir);
    snprintf(be_state, sizeof(be_state), "%s/state", f->backend);
    if (legacy_write_int(f->xs, XBT_NULL, path, LEGACY_CLOSING) < 0 ||
        legacy_wait_state(f->xs, be_state, LEGACY_CLOSING, true, timeout_ms,
                          &state) < 0 ||
        legacy_write_int(f->xs, XBT_NULL, path, LEGACY_CLOSED) < 0)
        return -1;
    return legacy_wait_state(f->xs, be_state, LEGACY_CLOSED, true, timeout_ms,
                             &state);
}
