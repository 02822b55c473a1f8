/*
 * /local/domain/<d>/control/shutdown and control/feature-* on the sysctl
 * device (NOXS_DEV_SYSCTL, devid 0; docs/DRIVERS.md "sysctl").
 *
 * Guest side (a process acting as domain d, d != 0, on its own control
 * tree): once the guest watches or writes a control node, its context
 * becomes the frontend of sysctl device 0, behaving as
 * noxs-sysctl-front does: Initialising (or straight Connected when the
 * backend already waits in InitWait), Connected on InitWait, and the
 * guest's acknowledgement (it clears control/shutdown, as Linux does)
 * becomes "shutdown-ack" = the pending reason, then Closing -> Closed.
 * control/feature-<reason> writes are the frontend half's
 * "feature-<reason>" keys plus the NOXS_SYSCTL_* bits (the backend
 * accepts either). control/shutdown reads the backend half's "shutdown"
 * while both halves are Connected and the guest has not acknowledged it,
 * else "" (the node the toolstack created empty). A process that only
 * reads does not attach (two frontends would fight over one half), so
 * it reads "".
 *
 * Once both halves are Connected the context shares the library's
 * liveness page (noxs_dev_liveness_start), as noxs-sysctl-front does, so
 * the backend sees a guest killed without closing; a backend that dies
 * (noxs_dev_peer_gone) ends the session as a backend that closes does.
 * compat-xs publishes Closed when the last handle of the context closes.
 *
 * Toolstack side (any other process): a write of a reason to
 * control/shutdown is noxs_dev_control(d, sysctl, 0, "shutdown", reason)
 * with a short deadline (CXS_SHUTDOWN_DELIVER_MS): an answer within it
 * (the guest's acknowledgement, or the backend's immediate refusal:
 * ENOTCONN, ENOTSUP, EINVAL; ENOENT without a sysctl device) is returned;
 * ETIMEDOUT means noxsd handed the request to the backend, which wrote it
 * on the page and now waits for the guest, so the write succeeds, as
 * xenstored's returns once the node is written. Reads return the reason
 * this process requested while the guest's half is still Connected
 * (noxsd's device list), else "".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <noxs/io/sysctl.h>

#include "private.h"

#define CXS_SHUTDOWN_DELIVER_MS 300

static const struct {
    const char *name;
    uint64_t bit;
} reasons[] = {
    {NOXS_SYSCTL_REASON_POWEROFF, NOXS_SYSCTL_POWEROFF},
    {NOXS_SYSCTL_REASON_REBOOT, NOXS_SYSCTL_REBOOT},
    {NOXS_SYSCTL_REASON_SUSPEND, NOXS_SYSCTL_SUSPEND},
    {NOXS_SYSCTL_REASON_CRASH, NOXS_SYSCTL_CRASH},
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

static uint64_t reason_bit(const char *name)
{
    for (size_t i = 0; i < NREASONS; i++)
        if (strcmp(reasons[i].name, name) == 0)
            return reasons[i].bit;
    return 0;
}

static bool guest_side(const struct cxs_ctx *ctx, const struct cxs_path *p)
{
    return ctx->domid != 0 && p->domid == ctx->domid;
}

static int dup_out(const char *s, char **out, unsigned int *len)
{
    *out = strdup(s);
    if (!*out)
        return -ENOMEM;
    *len = (unsigned int)strlen(s);
    return 0;
}

static void ctl_path(char *buf, size_t len, unsigned int domid,
                     const char *key)
{
    snprintf(buf, len, "/local/domain/%u/control/%s", domid, key);
}

/* ---- guest side ---- */

/* The pending request, or "" (see the top). */
static const char *guest_shutdown(struct cxs_ctx *ctx, char *buf, size_t len)
{
    const char *ack;

    buf[0] = '\0';
    if (!ctx->sys || noxs_dev_state(ctx->sys) != NOXS_STATE_CONNECTED ||
        noxs_dev_peer_state(ctx->sys) != NOXS_STATE_CONNECTED)
        return buf;
    if (noxs_dev_peer_kv(ctx->sys, NOXS_SYSCTL_KEY_SHUTDOWN, buf, len) < 0 ||
        !reason_bit(buf)) {
        buf[0] = '\0';
        return buf;
    }
    ack = noxs_dev_get_own_kv(ctx->sys, NOXS_SYSCTL_KEY_SHUTDOWN_ACK);
    if (ack && strcmp(ack, buf) == 0)
        buf[0] = '\0';
    return buf;
}

/* The guest's control view: path -> value, for watch events. */
static int guest_view(struct cxs_ctx *ctx, struct cxs_kvlist *out)
{
    char path[CXS_ABS_PATH_MAX], v[NOXS_CTRL_VALUE_MAX + 1];
    int rc;

    ctl_path(path, sizeof(path), ctx->domid, "shutdown");
    guest_shutdown(ctx, v, sizeof(v));
    rc = cxs_kvlist_set(out, path, v, (unsigned int)strlen(v));
    for (size_t i = 0; rc == 0 && i < ctx->sys_keys.n; i++) {
        ctl_path(path, sizeof(path), ctx->domid, ctx->sys_keys.e[i].key);
        rc = cxs_kvlist_set(out, path, ctx->sys_keys.e[i].value,
                            ctx->sys_keys.e[i].len);
    }
    return rc;
}

static void guest_flush(struct cxs_ctx *ctx)
{
    struct cxs_kvlist view = {0};

    if (guest_view(ctx, &view) < 0) {
        cxs_kvlist_clear(&view);
        return;
    }
    for (size_t i = 0; i < view.n; i++) {
        struct cxs_kv *o = cxs_kvlist_find(&ctx->sys_last, view.e[i].key);
        if (!o || o->len != view.e[i].len ||
            memcmp(o->value, view.e[i].value, o->len) != 0)
            cxs_fire(ctx, view.e[i].key, false);
    }
    for (size_t i = 0; i < ctx->sys_last.n; i++)
        if (!cxs_kvlist_find(&view, ctx->sys_last.e[i].key))
            cxs_fire(ctx, ctx->sys_last.e[i].key, true);
    cxs_kvlist_clear(&ctx->sys_last);
    ctx->sys_last = view;
}

/* Stage the guest's feature nodes in our half. */
static int guest_stage_features(struct cxs_ctx *ctx)
{
    uint64_t bits = NOXS_FEATURE_KV;

    for (size_t i = 0; i < ctx->sys_keys.n; i++) {
        const struct cxs_kv *e = &ctx->sys_keys.e[i];
        uint64_t bit = reason_bit(e->key + 8);

        if (noxs_dev_set_kv(ctx->sys, e->key, e->value) < 0)
            return -errno;
        if (bit && strcmp(e->value, "1") == 0)
            bits |= bit;
    }
    noxs_dev_set_features(ctx->sys, bits);
    return 0;
}

static void guest_detach(struct cxs_ctx *ctx)
{
    if (!ctx->sys)
        return;
    if (noxs_dev_state(ctx->sys) != NOXS_STATE_CLOSED &&
        noxs_dev_state(ctx->sys) != NOXS_STATE_INITIALISING)
        noxs_dev_switch_state(ctx->sys, NOXS_STATE_CLOSING);
    noxs_dev_detach(ctx->sys); /* publishes Closed */
    ctx->sys = NULL;
}

static void guest_attach(struct cxs_ctx *ctx)
{
    struct noxs_devpage_entry e[NOXS_DEVPAGE_MAX_ENTRIES];
    uint32_t gen;
    int n = noxs_frontend_devices(ctx->front, e, NOXS_DEVPAGE_MAX_ENTRIES,
                                  &gen);
    bool listed = false;
    noxs_dev *d;

    for (int i = 0; i < n; i++)
        if (e[i].type == NOXS_DEV_SYSCTL && e[i].devid == 0 &&
            !(e[i].flags & NOXS_DEVPAGE_ENTRY_CLOSING))
            listed = true;
    if (!listed)
        return;
    d = noxs_frontend_attach(ctx->front, NOXS_DEV_SYSCTL, 0);
    if (!d)
        return; /* listed before its backend published: next time */
    ctx->sys = d;
    noxs_dev_del_kv(d, NOXS_SYSCTL_KEY_SHUTDOWN_ACK);
    if (guest_stage_features(ctx) < 0) {
        cxs_log("domain %u: control/feature-*: %s", ctx->domid,
                strerror(errno));
    }
    /* As noxs-sysctl-front: straight to Connected when the backend
     * waits for us, else a new session starts at Initialising (the
     * features go out with it either way). */
    noxs_dev_set_state(d, noxs_dev_refresh(d) >= 0 &&
                                  noxs_dev_peer_state(d) == NOXS_STATE_INITWAIT
                              ? NOXS_STATE_CONNECTED
                              : NOXS_STATE_INITIALISING);
    noxs_dev_publish(d);
}

static void guest_step(struct cxs_ctx *ctx)
{
    noxs_dev *d = ctx->sys;
    unsigned int peer, own;

    if (noxs_dev_refresh(d) < 0) {
        if (errno == EPIPE)
            guest_detach(ctx);
        return;
    }
    peer = noxs_dev_peer_state(d);
    own = noxs_dev_state(d);
    if (noxs_dev_peer_gone(d)) {
        /* A stale Closed before the backend saw our new session: it
         * resets to InitWait when it sees Initialising. */
        if (own != NOXS_STATE_INITIALISING)
            guest_detach(ctx); /* may attach again while listed */
        return;
    }
    if (own == NOXS_STATE_INITIALISING && peer == NOXS_STATE_INITWAIT)
        noxs_dev_switch_state(d, NOXS_STATE_CONNECTED);
    /* After the handshake: sharing a page costs more than all of it. */
    if (own == NOXS_STATE_CONNECTED && peer == NOXS_STATE_CONNECTED &&
        !noxs_dev_get_own_kv(d, NOXS_LIVENESS_KEY) &&
        noxs_dev_liveness_start(d, 0) == 0)
        noxs_dev_publish(d);
}

/* The guest touched its control tree: become the frontend. */
static void guest_want(struct cxs_ctx *ctx)
{
    if (ctx->sys_want)
        return;
    ctx->sys_want = true;
    /* The initial view fires nothing: xs_watch queues its own event. */
    guest_view(ctx, &ctx->sys_last);
    if (cxs_ctx_frontend(ctx))
        cxs_ctx_poll(ctx);
}

void cxs_ctl_poll(struct cxs_ctx *ctx)
{
    if (!ctx->sys_want || !ctx->front)
        return;
    if (!ctx->sys && !ctx->sys_done)
        guest_attach(ctx);
    if (ctx->sys)
        guest_step(ctx);
    guest_flush(ctx);
}

void cxs_ctl_close(struct cxs_ctx *ctx)
{
    guest_detach(ctx);
    cxs_kvlist_clear(&ctx->sys_keys);
    cxs_kvlist_clear(&ctx->sys_last);
    cxs_kvlist_clear(&ctx->sys_requests);
}

void cxs_ctl_watch(struct cxs_ctx *ctx, const struct cxs_path *p)
{
    if ((p->kind == CXS_CONTROL || p->kind == CXS_CONTROL_KEY) &&
        guest_side(ctx, p))
        guest_want(ctx);
}

/* The guest clears control/shutdown: acknowledge the pending reason. */
static int guest_ack(struct cxs_ctx *ctx)
{
    char r[NOXS_CTRL_VALUE_MAX + 1];

    guest_shutdown(ctx, r, sizeof(r));
    if (!r[0])
        return 0; /* nothing pending: clearing "" is a no-op */
    if (noxs_dev_set_kv(ctx->sys, NOXS_SYSCTL_KEY_SHUTDOWN_ACK, r) < 0 ||
        noxs_dev_publish(ctx->sys) < 0)
        return -errno;
    /* As noxs-sysctl-front: the guest acts on it, the device closes. */
    guest_detach(ctx);
    ctx->sys_done = true;
    return 0;
}

static int guest_write(struct cxs_ctx *ctx, const struct cxs_path *p,
                       int op, const char *value, unsigned int len)
{
    char buf[NOXS_CTRL_VALUE_MAX + 1];
    int rc;

    guest_want(ctx);
    if (p->kind == CXS_CONTROL)
        return op == CXS_CTL_RM ? -EACCES : 0;
    if (strcmp(p->key, "shutdown") == 0) {
        if (op == CXS_CTL_WRITE && len > 0)
            return -EACCES; /* the toolstack's request, not ours */
        rc = guest_ack(ctx);
        guest_flush(ctx);
        return rc;
    }
    /* control/feature-<x> */
    if (op == CXS_CTL_RM) {
        if (cxs_kvlist_del(&ctx->sys_keys, p->key) < 0)
            return 0;
        if (ctx->sys) {
            noxs_dev_del_kv(ctx->sys, p->key);
            if ((rc = guest_stage_features(ctx)) < 0 ||
                noxs_dev_publish(ctx->sys) < 0)
                return rc < 0 ? rc : -errno;
        }
        guest_flush(ctx);
        return 0;
    }
    if ((rc = cxs_value_cstr(buf, value, len)) < 0)
        return rc;
    if ((rc = cxs_kvlist_set(&ctx->sys_keys, p->key, buf, len)) < 0)
        return rc;
    if (ctx->sys) {
        if ((rc = guest_stage_features(ctx)) < 0) {
            cxs_kvlist_del(&ctx->sys_keys, p->key);
            noxs_dev_del_kv(ctx->sys, p->key);
            return rc;
        }
        if (noxs_dev_publish(ctx->sys) < 0)
            return -errno;
    }
    guest_flush(ctx);
    return 0;
}

/* ---- toolstack side ---- */

/* Frontend state of d's sysctl device 0 as noxsd knows it; -ENOENT if
 * there is none. */
static int sysctl_state(struct cxs_ctx *ctx, unsigned int domid)
{
    noxs_client *c = cxs_ctx_client(ctx);
    struct noxs_dev_info *di = NULL;
    size_t n = 0;
    int rc = -ENOENT;

    if (!c)
        return -ENOENT;
    if (noxs_dev_list(c, (uint16_t)domid, &di, &n) < 0)
        return -errno;
    for (size_t i = 0; i < n; i++)
        if (di[i].type == NOXS_DEV_SYSCTL && di[i].devid == 0)
            rc = di[i].frontend_state;
    free(di);
    return rc;
}

static int tool_write(struct cxs_ctx *ctx, const struct cxs_path *p, int op,
                      const char *value, unsigned int len)
{
    char key[16], buf[NOXS_CTRL_VALUE_MAX + 1], reply[NOXS_CTRL_VALUE_MAX + 1];
    noxs_client *c;

    if (p->kind == CXS_CONTROL)
        return 0; /* mkdir, write "", rm: nothing is stored */
    snprintf(key, sizeof(key), "%u", p->domid);
    if (op != CXS_CTL_WRITE || len == 0) {
        /* libxl creates the nodes empty; clearing forgets our record
         * (a request already delivered stays with the backend). */
        if (strcmp(p->key, "shutdown") == 0)
            cxs_kvlist_del(&ctx->sys_requests, key);
        return 0;
    }
    if (strcmp(p->key, "shutdown") != 0)
        return -EACCES; /* feature-*: the guest's nodes */
    if (len >= sizeof(buf) || memchr(value, '\0', len))
        return -EINVAL;
    memcpy(buf, value, len);
    buf[len] = '\0';
    c = cxs_ctx_client(ctx);
    if (!c)
        return -ENOENT;
    if (noxs_dev_control(c, p->domid, NOXS_DEV_SYSCTL, 0, NOXS_SYSCTL_KEY_SHUTDOWN, buf,
                         CXS_SHUTDOWN_DELIVER_MS, reply, sizeof(reply)) == 0) {
        cxs_kvlist_del(&ctx->sys_requests, key); /* acknowledged already */
        return 0;
    }
    if (errno == ENOTSUP && strcmp(buf, NOXS_SYSCTL_REASON_SUSPEND) == 0) {
        /* xl save / migrate: say what is missing rather than let the
         * toolstack wait for a suspend that cannot come. */
        cxs_log("domain %u is a noxs guest whose sysctl frontend does not "
                "support suspend: xl save, restore and migrate are not "
                "available for it (its kernel would have to suspend, and "
                "its frontends to attach to the new domain's device page "
                "after restore)",
                p->domid);
        return -ENOTSUP;
    }
    if (errno == ENOTSUP) {
        cxs_log("domain %u: the guest does not support shutdown reason "
                "'%s' (its sysctl frontend does not offer it)",
                p->domid, buf);
        return -ENOTSUP;
    }
    if (errno != ETIMEDOUT)
        return -errno;
    return cxs_kvlist_set(&ctx->sys_requests, key, buf, len);
}

static int tool_read(struct cxs_ctx *ctx, const struct cxs_path *p,
                     char **out, unsigned int *len)
{
    char key[16];
    struct cxs_kv *e;
    int st = sysctl_state(ctx, p->domid);

    if (st < 0)
        return st;
    if (p->kind == CXS_CONTROL)
        return dup_out("", out, len);
    if (strcmp(p->key, "shutdown") != 0)
        return -ENOENT; /* the guest's features: not visible to dom0 */
    snprintf(key, sizeof(key), "%u", p->domid);
    e = cxs_kvlist_find(&ctx->sys_requests, key);
    if (e && st != NOXS_STATE_CONNECTED) {
        cxs_kvlist_del(&ctx->sys_requests, key); /* the guest closed */
        e = NULL;
    }
    return dup_out(e ? e->value : "", out, len);
}

/* ---- entry points ---- */

int cxs_ctl_read(struct cxs_ctx *ctx, const struct cxs_path *p, char **out,
                 unsigned int *len)
{
    char buf[NOXS_CTRL_VALUE_MAX + 1];
    struct cxs_kv *e;

    if (!guest_side(ctx, p))
        return tool_read(ctx, p, out, len);
    if (ctx->sys_want && ctx->front)
        cxs_ctx_poll(ctx);
    if (p->kind == CXS_CONTROL)
        return dup_out("", out, len);
    if (strcmp(p->key, "shutdown") == 0)
        return dup_out(guest_shutdown(ctx, buf, sizeof(buf)), out, len);
    e = cxs_kvlist_find(&ctx->sys_keys, p->key);
    return e ? dup_out(e->value, out, len) : -ENOENT;
}

int cxs_ctl_write(struct cxs_ctx *ctx, const struct cxs_path *p, int op,
                  const char *value, unsigned int len)
{
    if (guest_side(ctx, p))
        return guest_write(ctx, p, op, value, len);
    return tool_write(ctx, p, op, value, len);
}

int cxs_ctl_list(struct cxs_ctx *ctx, const struct cxs_path *p,
                 struct cxs_kvlist *names)
{
    int rc;

    if (p->kind != CXS_CONTROL)
        return 0;
    if (!guest_side(ctx, p)) {
        rc = sysctl_state(ctx, p->domid);
        return rc < 0 ? rc : cxs_kvlist_set(names, "shutdown", "", 0);
    }
    rc = cxs_kvlist_set(names, "shutdown", "", 0);
    for (size_t i = 0; rc == 0 && i < ctx->sys_keys.n; i++)
        rc = cxs_kvlist_set(names, ctx->sys_keys.e[i].key, "", 0);
    return rc;
}
