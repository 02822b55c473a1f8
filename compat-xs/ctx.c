/*
 * Domain contexts: what one process sees of the device tree as one
 * domain, built on libnoxs.
 *
 * A process may act as several domains (one per xs_open under a
 * different identity on the simulator: NOXS_SIM_DOMID or
 * noxs_open_as), so state is kept per
 * (process, domain) in a cxs_ctx shared by every handle opened as that
 * domain; two handles of one domain therefore write the same staged half
 * and see each other's writes, as two xenstored connections would.
 *
 * Roles, each opened on first use:
 *   frontend  the domain's device page; every NOXS_DEV_LEGACY entry is
 *             attached, its class read from the backend half's "@class";
 *   backend   registered with noxsd for NOXS_DEV_LEGACY when the process
 *             first watches its own backend tree; noxsd's create
 *             requests carry the toolstack's nodes as parameters;
 *   toolstack a noxsd client (device add/remove, domain create/destroy,
 *             and reads of devices this process is neither end of,
 *             answered by the device's backend through noxsd).
 *
 * Each device's view is in view.c, change detection in change.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "private.h"

/* Contexts hashed by domain id (a process may act as thousands). */
#define CTX_BUCKETS 1024u
static struct cxs_ctx *contexts[CTX_BUCKETS];

/* ---- contexts ---- */

struct cxs_ctx *cxs_ctx_get(unsigned int domid)
{
    struct cxs_ctx *c;

    for (c = contexts[domid % CTX_BUCKETS]; c; c = c->next)
        if (c->domid == domid) {
            c->refs++;
            return c;
        }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->domid = domid;
    c->refs = 1;
    c->next = contexts[domid % CTX_BUCKETS];
    contexts[domid % CTX_BUCKETS] = c;
    return c;
}

static void dev_free(struct cxs_dev *d)
{
    cxs_kvlist_clear(&d->own);
    cxs_kvlist_clear(&d->last);
    free(d);
}

/*
 * Contexts live as long as a handle uses them. The roles close with the
 * last handle: a frontend leaves its half as it is (closing the process
 * closes its channels, which tells the backend), a backend unregisters.
 */
void cxs_ctx_put(struct cxs_ctx *ctx)
{
    struct cxs_ctx **pp;

    if (--ctx->refs > 0)
        return;
    for (pp = &contexts[ctx->domid % CTX_BUCKETS]; *pp; pp = &(*pp)->next)
        if (*pp == ctx) {
            *pp = ctx->next;
            break;
        }
    cxs_ctl_close(ctx);
    while (ctx->devs) {
        struct cxs_dev *d = ctx->devs;
        ctx->devs = d->next;
        dev_free(d);
    }
    cxs_htab_free(&ctx->dev_by_fe);
    cxs_watches_free(ctx);
    if (ctx->back)
        noxs_backend_close(ctx->back);
    if (ctx->front)
        noxs_frontend_close(ctx->front);
    if (ctx->client)
        noxs_client_close(ctx->client);
    free(ctx);
}

/*
 * A context's roles open lazily, possibly long after xs_open() and
 * after the program switched to acting as another domain (a process
 * playing several domains on the simulator, like bench/compat), so the
 * simulator is told the context's domain around the open
 * (noxs_open_as: per thread, the environment is left alone). On Xen it
 * fails with ENOTSUP and nothing is needed: the process is one domain.
 * Returns what as_ctx_leave restores. Called under cxs_lock.
 */
static int as_ctx_enter(const struct cxs_ctx *ctx)
{
    int prev = -1;

    return noxs_open_as((int)ctx->domid, &prev) == 0 ? prev : -2;
}

static void as_ctx_leave(int prev)
{
    int saved_errno = errno;

    if (prev >= -1)
        noxs_open_as(prev, NULL);
    errno = saved_errno;
}

/*
 * Bootstraps (device page references) of domains this process knows:
 * those it introduced (xs_introduce_domain) and those of the last domain
 * list it fetched from noxsd. Saves a frontend without noxs= a list
 * request of every domain (O(domains) at noxsd) when the process has it.
 */
struct boot_ent {
    struct boot_ent *next;
    unsigned int domid;
    struct noxs_boot boot;
};
static struct boot_ent *boots[CTX_BUCKETS];

void cxs_boot_remember(unsigned int domid, const struct noxs_boot *b)
{
    struct boot_ent *e;

    for (e = boots[domid % CTX_BUCKETS]; e; e = e->next)
        if (e->domid == domid)
            break;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return; /* only a cache */
        e->domid = domid;
        e->next = boots[domid % CTX_BUCKETS];
        boots[domid % CTX_BUCKETS] = e;
    }
    e->boot = *b;
}

void cxs_boot_forget(unsigned int domid)
{
    for (struct boot_ent **pp = &boots[domid % CTX_BUCKETS]; *pp;
         pp = &(*pp)->next)
        if ((*pp)->domid == domid) {
            struct boot_ent *e = *pp;
            *pp = e->next;
            free(e);
            return;
        }
}

static bool boot_lookup(unsigned int domid, struct noxs_boot *out)
{
    for (struct boot_ent *e = boots[domid % CTX_BUCKETS]; e; e = e->next)
        if (e->domid == domid) {
            *out = e->boot;
            return true;
        }
    return false;
}

/* Fetch noxsd's domain list into the cache. */
/* Remember every domain of noxsd's list. 0, or -1 (no list). */
static int boots_load(noxs_client *c)
{
    struct noxs_domain_info *doms = NULL;
    size_t n = 0;

    if (!c || noxs_domain_list(c, &doms, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct noxs_boot b = {.owner_domid = doms[i].owner_domid,
                              .gref = doms[i].gref,
                              .port = doms[i].port};
        cxs_boot_remember(doms[i].domid, &b);
    }
    free(doms);
    return 0;
}

static int boot_fetch(struct cxs_ctx *ctx)
{
    int rc = boots_load(cxs_ctx_client(ctx));

    /* A frontend has no other use for the connection: a process acting
     * as many domains should not hold one per domain. */
    if (ctx->client) {
        noxs_client_close(ctx->client);
        ctx->client = NULL;
    }
    return rc;
}

/*
 * Is domid a noxs domain? Yes if this process serves or uses one of its
 * devices, or knows its bootstrap. For any other, noxsd's domain list is
 * fetched again, at most once a second per domain (the list costs
 * O(domains) at noxsd; a stock guest's device paths ask this on every
 * call, and a domain introduced by another process must be seen at once).
 */
int cxs_noxs_domain(struct cxs_ctx *ctx, unsigned int domid)
{
    static uint32_t *next_fetch; /* per domain: ms since first use */
    static struct timespec epoch;
    struct noxs_boot b;
    struct timespec ts;
    uint32_t now;

    if (domid > NOXS_DOMID_MAX)
        return 0;
    if (boot_lookup(domid, &b) || cxs_ctx_fe_first(ctx, (uint16_t)domid))
        return 1;
    if (!next_fetch) {
        next_fetch = calloc(NOXS_DOMID_MAX + 1, sizeof(*next_fetch));
        clock_gettime(CLOCK_MONOTONIC, &epoch);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (uint32_t)((ts.tv_sec - epoch.tv_sec) * 1000 +
                     (ts.tv_nsec - epoch.tv_nsec) / 1000000) +
          1;
    if (next_fetch && next_fetch[domid] && now < next_fetch[domid])
        return 0;
    if (boots_load(cxs_ctx_client(ctx)) < 0) {
        /* noxsd gone: reconnect on the next lookup. */
        if (ctx->client) {
            noxs_client_close(ctx->client);
            ctx->client = NULL;
        }
        ctx->client_err = 0;
        if (next_fetch)
            next_fetch[domid] = now + 1000;
        return 0;
    }
    if (boot_lookup(domid, &b))
        return 1;
    if (next_fetch)
        next_fetch[domid] = now + 1000;
    return 0;
}

noxs_client *cxs_ctx_client(struct cxs_ctx *ctx)
{
    if (ctx->client || ctx->client_err) {
        errno = ctx->client_err;
        return ctx->client;
    }
    ctx->client = noxs_client_open(NULL);
    if (!ctx->client)
        ctx->client_err = errno ? errno : ECONNREFUSED;
    return ctx->client;
}

noxs_frontend *cxs_ctx_frontend(struct cxs_ctx *ctx)
{
    struct noxs_boot boot;

    if (ctx->front || ctx->front_err) {
        errno = ctx->front_err;
        return ctx->front;
    }
    bool cached = false;
    if (noxs_boot_find(&boot) < 0) {
        /* No bootstrap given (the simulator, or a domain started by a
         * toolstack that does not pass noxs=): ask noxsd where our
         * device page is, unless this process knows already. */
        cached = boot_lookup(ctx->domid, &boot);
        if (!cached && (boot_fetch(ctx) < 0 ||
                        !boot_lookup(ctx->domid, &boot))) {
            ctx->front_err = ENOENT;
            errno = ENOENT;
            return NULL;
        }
    }
    int prev = as_ctx_enter(ctx);
    ctx->front = noxs_frontend_open(&boot);
    if (!ctx->front && cached) {
        /* Stale (the domain was recreated elsewhere): ask noxsd. */
        cxs_boot_forget(ctx->domid);
        if (boot_fetch(ctx) == 0 && boot_lookup(ctx->domid, &boot))
            ctx->front = noxs_frontend_open(&boot);
    }
    as_ctx_leave(prev);
    if (!ctx->front) {
        ctx->front_err = errno ? errno : ENODEV;
        return NULL;
    }
    cxs_ctx_add_fd(ctx, noxs_frontend_fd(ctx->front));
    return ctx->front;
}

struct cxs_dev *cxs_dev_new(struct cxs_ctx *ctx, int role, noxs_dev *nd)
{
    static uint64_t seq;
    struct cxs_dev *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->ctx = ctx;
    d->seq = ++seq;
    d->role = role;
    d->dev = nd;
    d->fe = noxs_dev_frontend_domid(nd);
    d->be = noxs_dev_backend_domid(nd);
    d->devid = noxs_dev_id(nd);
    d->id = cxs_devid_id(d->devid);
    if (cxs_htab_add(&ctx->dev_by_fe, &d->by_fe, cxs_hash_u64(d->fe)) < 0) {
        free(d);
        return NULL;
    }
    d->next = ctx->devs;
    if (d->next)
        d->next->prev = d;
    ctx->devs = d;
    if (role == CXS_ROLE_FRONT) {
        d->front_next = ctx->front_devs;
        if (d->front_next)
            d->front_next->front_pprev = &d->front_next;
        d->front_pprev = &ctx->front_devs;
        ctx->front_devs = d;
    }
    cxs_dev_mark(d);
    return d;
}

/* Take d out of its context (it must not be queued) and free it. */
void cxs_dev_delete(struct cxs_ctx *ctx, struct cxs_dev *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        ctx->devs = d->next;
    if (d->next)
        d->next->prev = d->prev;
    cxs_htab_del(&ctx->dev_by_fe, &d->by_fe);
    if (d->front_pprev) {
        *d->front_pprev = d->front_next;
        if (d->front_next)
            d->front_next->front_pprev = d->front_pprev;
    }
    dev_free(d);
}

static int back_create(noxs_backend *b, noxs_dev *nd,
                       const struct noxs_kv *params, size_t nparams, void *arg)
{
    struct cxs_ctx *ctx = arg;
    struct cxs_dev *d;
    const char *cls = NULL;

    for (size_t i = 0; i < nparams; i++)
        if (strcmp(params[i].key, CXS_KEY_CLASS) == 0)
            cls = params[i].value;
    if (!cls || strlen(cls) > CXS_CLASS_MAX)
        return -EINVAL;
    d = cxs_dev_new(ctx, CXS_ROLE_BACK, nd);
    if (!d)
        return -ENOMEM;
    snprintf(d->cls, sizeof(d->cls), "%s", cls);
    noxs_dev_set_user(nd, d);
    for (size_t i = 0; i < nparams; i++) {
        int rc = 0;
        if (noxs_dev_set_kv(nd, params[i].key, params[i].value) < 0)
            rc = -(errno ? errno : EIO);
        else if (cxs_kvlist_set(&d->own, params[i].key, params[i].value,
                                (unsigned int)strlen(params[i].value)) < 0)
            rc = -ENOMEM;
        if (rc < 0) {
            /* libnoxs frees nd without a remove callback: let go of it
             * now, the next flush drops d. */
            noxs_dev_set_user(nd, NULL);
            cxs_dev_gone(d);
            return rc;
        }
    }
    return 0;
}

static void back_changed(noxs_backend *b, noxs_dev *nd, void *arg)
{
    struct cxs_dev *d = noxs_dev_user(nd);

    if (d)
        cxs_dev_mark(d);
}

static void back_remove(noxs_backend *b, noxs_dev *nd, void *arg)
{
    struct cxs_dev *d = noxs_dev_user(nd);

    if (d)
        cxs_dev_gone(d);
}

/*
 * Requests from other dom0 processes (tools reading or writing a device
 * this process serves), relayed by noxsd. key: "xs-read", "xs-write",
 * "xs-rm", "xs-dir"; value: "<f|b><key>[=<value>]" ("xs-dir": "f"/"b").
 */
static int back_control(noxs_backend *b, noxs_dev *nd, const char *key,
                        const char *value, uint32_t request, void *arg)
{
    struct cxs_dev *d = noxs_dev_user(nd);
    char reply[NOXS_CTRL_VALUE_MAX + 1] = "";
    int half, rc = 0;

    /* We always answer right away, through control_reply, and return 1
     * so the library does not answer a second time. */
    if (!d || !value || (value[0] != 'f' && value[0] != 'b')) {
        noxs_backend_control_reply(b, request, EINVAL, "");
        return 1;
    }
    half = value[0] == 'f' ? CXS_HALF_FRONT : CXS_HALF_BACK;
    if (strcmp(key, "xs-read") == 0) {
        char *v;
        unsigned int len;
        rc = cxs_dev_read(d, half, value + 1, &v, &len);
        if (rc == 0) {
            snprintf(reply, sizeof(reply), "%s", v);
            free(v);
        }
    } else if (strcmp(key, "xs-write") == 0 || strcmp(key, "xs-rm") == 0) {
        char k[NOXS_CTRL_KEY_MAX + 1];
        const char *eq = strchr(value + 1, '=');
        size_t kl = eq ? (size_t)(eq - value - 1) : strlen(value + 1);

        if (kl == 0 || kl > NOXS_CTRL_KEY_MAX) {
            rc = -EINVAL;
        } else {
            memcpy(k, value + 1, kl);
            k[kl] = '\0';
            if (key[3] == 'w')
                rc = eq ? cxs_dev_write(d, half, k, eq + 1,
                                        (unsigned int)strlen(eq + 1))
                        : -EINVAL;
            else if ((rc = cxs_dev_remove_key(d, half, k)) == -ENOENT)
                rc = 0; /* as xenstored: removing a missing key is fine */
            if (rc == 0)
                rc = cxs_dev_publish(d);
        }
    } else if (strcmp(key, "xs-dir") == 0) {
        struct cxs_kvlist view = {0};
        char dir[CXS_ABS_PATH_MAX];
        size_t used = 0, dl;

        if (half == CXS_HALF_FRONT)
            cxs_path_device_dir(dir, sizeof(dir), d->fe, d->cls, d->id);
        else
            cxs_path_backend_dir(dir, sizeof(dir), d->be, d->fe, d->cls, d->id);
        dl = strlen(dir);
        rc = cxs_dev_view(d, &view);
        for (size_t i = 0; rc == 0 && i < view.n; i++) {
            const char *p = view.e[i].key;
            if (strncmp(p, dir, dl) != 0 || p[dl] != '/')
                continue;
            size_t l = strlen(p + dl + 1);
            if (used + l + 2 > sizeof(reply)) {
                rc = -E2BIG;
                break;
            }
            memcpy(reply + used, p + dl + 1, l);
            used += l;
            reply[used++] = '\n';
            reply[used] = '\0';
        }
        cxs_kvlist_clear(&view);
    } else {
        rc = -EOPNOTSUPP;
    }
    noxs_backend_control_reply(b, request, rc < 0 ? -rc : 0, reply);
    return 1;
}

static const struct noxs_backend_ops back_ops = {
    .create = back_create,
    .changed = back_changed,
    .control = back_control,
    .remove = back_remove,
};

noxs_backend *cxs_ctx_backend(struct cxs_ctx *ctx)
{
    static const unsigned int types[] = {NOXS_DEV_LEGACY};

    if (ctx->back || ctx->back_err) {
        errno = ctx->back_err;
        return ctx->back;
    }
    int prev = as_ctx_enter(ctx);
    ctx->back = noxs_backend_open(NULL, types, 1, &back_ops, ctx);
    as_ctx_leave(prev);
    if (!ctx->back) {
        ctx->back_err = errno ? errno : ECONNREFUSED;
        return NULL;
    }
    cxs_ctx_add_fd(ctx, noxs_backend_fd(ctx->back));
    return ctx->back;
}

struct cxs_dev *cxs_ctx_fe_first(struct cxs_ctx *ctx, uint16_t fe)
{
    uint64_t h = cxs_hash_u64(fe);

    for (struct cxs_hent *e = cxs_htab_find(&ctx->dev_by_fe, h); e;
         e = cxs_htab_next(e, h)) {
        struct cxs_dev *d = CXS_CONTAINER(e, struct cxs_dev, by_fe);
        if (d->fe == fe)
            return d;
    }
    return NULL;
}

struct cxs_dev *cxs_ctx_fe_next(struct cxs_dev *d)
{
    uint64_t h = d->by_fe.hash;

    for (struct cxs_hent *e = cxs_htab_next(&d->by_fe, h); e;
         e = cxs_htab_next(e, h)) {
        struct cxs_dev *n = CXS_CONTAINER(e, struct cxs_dev, by_fe);
        if (n->fe == d->fe)
            return n;
    }
    return NULL;
}

/* The newest live device with that name: O(devices of frontend fe), a
 * device page's worth at most per role, however many domains exist. */
struct cxs_dev *cxs_ctx_find(struct cxs_ctx *ctx, uint16_t fe, const char *cls,
                             uint32_t id)
{
    for (struct cxs_dev *d = cxs_ctx_fe_first(ctx, fe); d;
         d = cxs_ctx_fe_next(d))
        if (!d->gone && d->id == id && strcmp(d->cls, cls) == 0)
            return d;
    return NULL;
}
