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
 * Change detection: each device keeps the flattened view (path -> value)
 * it last reported; when the peer's generation moves, when noxsd creates
 * or removes the device, or after a local write, the view is recomputed
 * and every difference fires the matching watches. A notification
 * carries no data, so there is nothing else to trust.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "private.h"

pthread_mutex_t cxs_lock = PTHREAD_MUTEX_INITIALIZER;
/* Contexts hashed by domain id (a process may act as thousands). */
#define CTX_BUCKETS 1024u
static struct cxs_ctx *contexts[CTX_BUCKETS];

void cxs_log(const char *fmt, ...)
{
    va_list ap;
    const char *quiet = getenv("COMPAT_XS_QUIET");

    /* Set and non-empty (other than "0") silences the log. */
    if (quiet && *quiet && strcmp(quiet, "0") != 0)
        return;
    fputs("compat-xs: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- key/value lists ---- */

void cxs_kvlist_clear(struct cxs_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->e[i].key);
        free(l->e[i].value);
    }
    free(l->e);
    memset(l, 0, sizeof(*l));
}

struct cxs_kv *cxs_kvlist_find(const struct cxs_kvlist *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].key, key) == 0)
            return &l->e[i];
    return NULL;
}

int cxs_kvlist_set(struct cxs_kvlist *l, const char *key, const char *value,
                   unsigned int len)
{
    struct cxs_kv *e = cxs_kvlist_find(l, key);
    char *v = malloc(len + 1);

    if (!v)
        return -ENOMEM;
    memcpy(v, value, len);
    v[len] = '\0';
    if (e) {
        free(e->value);
        e->value = v;
        e->len = len;
        return 0;
    }
    if (cxs_grow(&l->e, &l->cap, l->n, sizeof(*l->e)) < 0) {
        free(v);
        return -ENOMEM;
    }
    e = &l->e[l->n];
    e->key = strdup(key);
    if (!e->key) {
        free(v);
        return -ENOMEM;
    }
    e->value = v;
    e->len = len;
    l->n++;
    return 0;
}

int cxs_kvlist_del(struct cxs_kvlist *l, const char *key)
{
    struct cxs_kv *e = cxs_kvlist_find(l, key);

    if (!e)
        return -ENOENT;
    free(e->key);
    free(e->value);
    *e = l->e[--l->n];
    return 0;
}

/* ---- device halves ---- */

/* d has something to report: queue it for the next flush (once). */
static void dev_queue(struct cxs_dev *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->dirty_next = d->ctx->dirty;
    d->ctx->dirty = d;
}

/* d's view may have changed: recompute it at the next flush. */
static void dev_mark(struct cxs_dev *d)
{
    d->dirty = true;
    dev_queue(d);
}

/* libnoxs dropped d (removed or detached): its nodes go at the flush. */
static void dev_gone(struct cxs_dev *d)
{
    d->dev = NULL;
    d->gone = true;
    dev_queue(d);
}

static bool own_half(const struct cxs_dev *d, int half)
{
    return (d->role == CXS_ROLE_FRONT) == (half == CXS_HALF_FRONT);
}

/* The peer's record key into *out; -ENOENT if absent. */
static int peer_get(struct cxs_dev *d, const char *key, char **out,
                    unsigned int *len)
{
    char buf[NOXS_CTRL_VALUE_MAX + 1];
    int n;

    if (!d->dev)
        return -ENOENT;
    n = noxs_dev_peer_kv(d->dev, key, buf, sizeof(buf));
    if (n < 0)
        return -errno;
    *out = malloc((size_t)n + 1);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, buf, (size_t)n + 1);
    *len = (unsigned int)n;
    return 0;
}

static int half_get(struct cxs_dev *d, int half, const char *key, char **out,
                    unsigned int *len)
{
    if (own_half(d, half)) {
        struct cxs_kv *e = cxs_kvlist_find(&d->own, key);
        if (!e)
            return -ENOENT;
        *out = strdup(e->value);
        if (!*out)
            return -ENOMEM;
        *len = e->len;
        return 0;
    }
    return peer_get(d, key, out, len);
}

static int dup_str(const char *s, char **out, unsigned int *len)
{
    *out = strdup(s);
    if (!*out)
        return -ENOMEM;
    *len = (unsigned int)strlen(s);
    return 0;
}

static unsigned int half_state_word(struct cxs_dev *d, int half)
{
    if (!d->dev)
        return NOXS_STATE_CLOSED;
    return own_half(d, half) ? noxs_dev_state(d->dev)
                             : noxs_dev_peer_state(d->dev);
}

/*
 * Snapshot the peer's half. A change seen here marks the device dirty:
 * libnoxs reports a change to ops->changed() only once, to whichever
 * refresh sees it first, and cxs_ctx_flush() relies on those marks for
 * the devices we serve instead of re-reading every page on every poll.
 */
static int dev_refresh(struct cxs_dev *d)
{
    if (noxs_dev_refresh(d->dev) < 0)
        return -1;
    if (noxs_dev_peer_generation(d->dev) != d->seen_gen)
        dev_mark(d);
    return 0;
}

int cxs_dev_read(struct cxs_dev *d, int half, const char *key, char **out,
                 unsigned int *len)
{
    char buf[CXS_ABS_PATH_MAX];
    int rc;

    /* Synthesised from the device's identity (docs/COMPAT.md). */
    if (half == CXS_HALF_FRONT) {
        if (strcmp(key, "backend") == 0) {
            cxs_path_backend_dir(buf, sizeof(buf), d->be, d->fe, d->cls, d->id);
            return dup_str(buf, out, len);
        }
        if (strcmp(key, "backend-id") == 0) {
            snprintf(buf, sizeof(buf), "%u", d->be);
            return dup_str(buf, out, len);
        }
    } else {
        if (strcmp(key, "frontend") == 0) {
            cxs_path_device_dir(buf, sizeof(buf), d->fe, d->cls, d->id);
            return dup_str(buf, out, len);
        }
        if (strcmp(key, "frontend-id") == 0) {
            snprintf(buf, sizeof(buf), "%u", d->fe);
            return dup_str(buf, out, len);
        }
    }
    if (!own_half(d, half) && d->dev && dev_refresh(d) < 0)
        return -errno;
    rc = half_get(d, half, key, out, len);
    if (rc != -ENOENT || half != CXS_HALF_FRONT)
        goto state;
    /* The toolstack's frontend nodes travel in the backend half. */
    snprintf(buf, sizeof(buf), "%s%s", CXS_KEY_FRONT_PREFIX, key);
    rc = half_get(d, CXS_HALF_BACK, buf, out, len);
state:
    if (rc == -ENOENT && strcmp(key, CXS_KEY_STATE) == 0 && d->dev) {
        snprintf(buf, sizeof(buf), "%u", half_state_word(d, half));
        return dup_str(buf, out, len);
    }
    return rc;
}

struct collect {
    struct cxs_kvlist *out;
    const char *prefix; /* only keys with this prefix (stripped) */
    bool skip_hidden;
    const char *dir;
    int rc;
};

static int collect_one(const char *key, const char *value, size_t len,
                       void *arg)
{
    struct collect *c = arg;
    char path[CXS_ABS_PATH_MAX];
    size_t plen = c->prefix ? strlen(c->prefix) : 0;

    if (c->prefix) {
        if (strncmp(key, c->prefix, plen) != 0)
            return 0;
        key += plen;
    } else if (c->skip_hidden && key[0] == CXS_HIDDEN_PREFIX) {
        return 0;
    }
    snprintf(path, sizeof(path), "%s/%s", c->dir, key);
    /* The half's own record wins over the toolstack's copy. */
    if (c->prefix && cxs_kvlist_find(c->out, path))
        return 0;
    c->rc = cxs_kvlist_set(c->out, path, value, (unsigned int)len);
    return c->rc;
}

static int half_collect(struct cxs_dev *d, int half, struct collect *c)
{
    if (own_half(d, half)) {
        for (size_t i = 0; i < d->own.n; i++)
            if (collect_one(d->own.e[i].key, d->own.e[i].value,
                            d->own.e[i].len, c))
                return c->rc;
        return 0;
    }
    if (!d->dev)
        return 0;
    noxs_dev_peer_kv_foreach(d->dev, collect_one, c);
    return c->rc;
}

int cxs_dev_view(struct cxs_dev *d, struct cxs_kvlist *out)
{
    static const char *const synth_front[] = {"backend", "backend-id", "state"};
    static const char *const synth_back[] = {"frontend", "frontend-id", "state"};
    char fe_dir[CXS_ABS_PATH_MAX], be_dir[CXS_ABS_PATH_MAX];
    char path[CXS_ABS_PATH_MAX + 64];
    struct collect c = {.out = out, .skip_hidden = true};
    int rc;

    cxs_path_device_dir(fe_dir, sizeof(fe_dir), d->fe, d->cls, d->id);
    cxs_path_backend_dir(be_dir, sizeof(be_dir), d->be, d->fe, d->cls, d->id);
    if ((rc = cxs_kvlist_set(out, fe_dir, "", 0)) < 0 ||
        (rc = cxs_kvlist_set(out, be_dir, "", 0)) < 0)
        return rc;
    c.dir = fe_dir;
    if ((rc = half_collect(d, CXS_HALF_FRONT, &c)) < 0)
        return rc;
    c.prefix = CXS_KEY_FRONT_PREFIX;
    if ((rc = half_collect(d, CXS_HALF_BACK, &c)) < 0)
        return rc;
    c.prefix = NULL;
    c.dir = be_dir;
    if ((rc = half_collect(d, CXS_HALF_BACK, &c)) < 0)
        return rc;
    for (int half = CXS_HALF_FRONT; half <= CXS_HALF_BACK; half++) {
        const char *const *synth =
            half == CXS_HALF_FRONT ? synth_front : synth_back;
        for (int i = 0; i < 3; i++) {
            char *v;
            unsigned int len;

            snprintf(path, sizeof(path), "%s/%s",
                     half == CXS_HALF_FRONT ? fe_dir : be_dir, synth[i]);
            if (cxs_kvlist_find(out, path) && strcmp(synth[i], "state") == 0)
                continue;
            if (cxs_dev_read(d, half, synth[i], &v, &len) < 0)
                continue;
            rc = cxs_kvlist_set(out, path, v, len);
            free(v);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static bool synthesised(int half, const char *key)
{
    return half == CXS_HALF_FRONT
               ? strcmp(key, "backend") == 0 || strcmp(key, "backend-id") == 0
               : strcmp(key, "frontend") == 0 ||
                     strcmp(key, "frontend-id") == 0;
}

int cxs_value_cstr(char *buf, const char *value, unsigned int len)
{
    if (len > NOXS_CTRL_VALUE_MAX)
        return -E2BIG;
    /* Page records are strings to libnoxs: a value with a NUL byte
     * cannot round-trip, so refuse it rather than truncate it. */
    if (memchr(value, '\0', len))
        return -EINVAL;
    memcpy(buf, value, len);
    buf[len] = '\0';
    return 0;
}

int cxs_dev_write(struct cxs_dev *d, int half, const char *key,
                  const char *value, unsigned int len)
{
    char buf[NOXS_CTRL_VALUE_MAX + 1];
    int rc;

    if (!own_half(d, half) || synthesised(half, key))
        return -EACCES;
    if (!d->dev)
        return -ENOENT;
    if ((rc = cxs_value_cstr(buf, value, len)) < 0)
        return rc;
    if (noxs_dev_set_kv(d->dev, key, buf) < 0)
        return -errno;
    if (strcmp(key, CXS_KEY_STATE) == 0) {
        char *end;
        unsigned long s = strtoul(buf, &end, 10);
        if (end != buf && !*end && s >= 1 && s <= NOXS_STATE_MAX)
            noxs_dev_set_state(d->dev, (unsigned int)s);
    }
    dev_mark(d);
    return cxs_kvlist_set(&d->own, key, buf, len);
}

int cxs_dev_remove_key(struct cxs_dev *d, int half, const char *key)
{
    if (!own_half(d, half) || synthesised(half, key))
        return -EACCES;
    if (!d->dev)
        return -ENOENT;
    if (!cxs_kvlist_find(&d->own, key))
        return -ENOENT;
    if (noxs_dev_del_kv(d->dev, key) < 0 && errno != ENOENT)
        return -errno;
    dev_mark(d);
    return cxs_kvlist_del(&d->own, key);
}

int cxs_dev_publish(struct cxs_dev *d)
{
    if (!d->dev)
        return -ENOENT;
    return noxs_dev_publish(d->dev) < 0 ? -errno : 0;
}

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

static struct cxs_dev *dev_new(struct cxs_ctx *ctx, int role, noxs_dev *nd)
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
    dev_mark(d);
    return d;
}

/* Take d out of its context (it must not be queued) and free it. */
static void dev_delete(struct cxs_ctx *ctx, struct cxs_dev *d)
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
    d = dev_new(ctx, CXS_ROLE_BACK, nd);
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
            dev_gone(d);
            return rc;
        }
    }
    return 0;
}

static void back_changed(noxs_backend *b, noxs_dev *nd, void *arg)
{
    struct cxs_dev *d = noxs_dev_user(nd);

    if (d)
        dev_mark(d);
}

static void back_remove(noxs_backend *b, noxs_dev *nd, void *arg)
{
    struct cxs_dev *d = noxs_dev_user(nd);

    if (d)
        dev_gone(d);
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

/* Attach new legacy entries of our device page, forget removed ones. */
static void front_sync(struct cxs_ctx *ctx)
{
    struct noxs_devpage_entry entries[NOXS_DEVPAGE_MAX_ENTRIES];
    uint32_t gen;
    int n;

    noxs_frontend_handle_events(ctx->front);
    n = noxs_frontend_devices(ctx->front, entries, NOXS_DEVPAGE_MAX_ENTRIES,
                              &gen);
    if (n < 0 || (ctx->devpage_seen && gen == ctx->devpage_gen))
        return;
    ctx->devpage_seen = true;
    ctx->devpage_gen = gen;
    for (struct cxs_dev *d = ctx->front_devs; d; d = d->front_next) {
        bool listed = false;
        if (d->gone)
            continue;
        for (int i = 0; i < n; i++)
            if (entries[i].type == NOXS_DEV_LEGACY &&
                entries[i].devid == d->devid)
                listed = true;
        if (!listed) {
            noxs_dev_detach(d->dev);
            dev_gone(d);
        }
    }
    for (int i = 0; i < n; i++) {
        char cls[CXS_CLASS_MAX + 1];
        struct cxs_dev *d;
        noxs_dev *nd;
        bool known = false;

        if (entries[i].type != NOXS_DEV_LEGACY)
            continue;
        for (d = ctx->front_devs; d; d = d->front_next)
            if (!d->gone && d->devid == entries[i].devid)
                known = true;
        if (known)
            continue;
        nd = noxs_frontend_attach(ctx->front, NOXS_DEV_LEGACY,
                                  entries[i].devid);
        if (!nd) {
            /* Listed before its backend published: retry next time. */
            ctx->devpage_seen = false;
            continue;
        }
        if (noxs_dev_refresh(nd) < 0 ||
            noxs_dev_peer_kv(nd, CXS_KEY_CLASS, cls, sizeof(cls)) < 0) {
            cxs_log("domain %u: legacy device %u has no class, ignored",
                    ctx->domid, entries[i].devid);
            noxs_dev_detach(nd);
            continue;
        }
        d = dev_new(ctx, CXS_ROLE_FRONT, nd);
        if (!d) {
            noxs_dev_detach(nd);
            continue;
        }
        snprintf(d->cls, sizeof(d->cls), "%s", cls);
    }
}

static void fire_diff(struct cxs_ctx *ctx, const struct cxs_kvlist *old,
                      const struct cxs_kvlist *new)
{
    for (size_t i = 0; i < new->n; i++) {
        struct cxs_kv *o = cxs_kvlist_find(old, new->e[i].key);
        if (!o || o->len != new->e[i].len ||
            memcmp(o->value, new->e[i].value, o->len) != 0)
            cxs_fire(ctx, new->e[i].key, false);
    }
    for (size_t i = 0; i < old->n; i++)
        if (!cxs_kvlist_find(new, old->e[i].key))
            cxs_fire(ctx, old->e[i].key, true);
}

static int newest_first(const void *a, const void *b)
{
    const struct cxs_dev *x = *(const struct cxs_dev *const *)a;
    const struct cxs_dev *y = *(const struct cxs_dev *const *)b;

    return x->seq < y->seq ? 1 : x->seq > y->seq ? -1
                                                 : 0;
}

/* Report one queued device: its removal, or the differences of its view. */
static void flush_one(struct cxs_ctx *ctx, struct cxs_dev *d)
{
    struct cxs_kvlist view = {0};

    d->queued = false;
    if (d->gone) {
        /* Every node of the device disappears at once. */
        fire_diff(ctx, &d->last, &view);
        dev_delete(ctx, d);
        return;
    }
    if (!d->dirty)
        return;
    if (d->dev)
        d->seen_gen = noxs_dev_peer_generation(d->dev);
    if (cxs_dev_view(d, &view) == 0) {
        fire_diff(ctx, &d->last, &view);
        cxs_kvlist_clear(&d->last);
        d->last = view;
        d->dirty = false;
    } else {
        cxs_kvlist_clear(&view);
        dev_queue(d); /* try again at the next flush */
    }
}

/*
 * Only queued devices are visited, so a flush costs O(changed devices)
 * however many the context has: a backend's devices are queued by the
 * event that names them (back_changed, back_remove), our own writes and
 * reads (dev_mark via cxs_dev_write / dev_refresh); a frontend's few
 * devices share its event channel, so each of them is refreshed here.
 * Devices are reported newest first, the order of ctx->devs, so watch
 * events come in the order a walk of every device would give.
 */
void cxs_ctx_flush(struct cxs_ctx *ctx)
{
    struct cxs_dev *stack[16], **v = stack, *d;
    size_t n = 0;

    for (d = ctx->front_devs; d; d = d->front_next)
        if (d->dev)
            dev_refresh(d);
    if (!ctx->dirty)
        return;
    for (d = ctx->dirty; d; d = d->dirty_next)
        n++;
    if (n > sizeof(stack) / sizeof(stack[0]) &&
        !(v = malloc(n * sizeof(*v)))) {
        /* No memory to sort: report in queue order rather than not. */
        struct cxs_dev *list = ctx->dirty;
        ctx->dirty = NULL;
        while ((d = list) != NULL) {
            list = d->dirty_next;
            flush_one(ctx, d);
        }
        return;
    }
    n = 0;
    for (d = ctx->dirty; d; d = d->dirty_next)
        v[n++] = d;
    ctx->dirty = NULL;
    qsort(v, n, sizeof(*v), newest_first);
    for (size_t i = 0; i < n; i++)
        flush_one(ctx, v[i]);
    if (v != stack)
        free(v);
}

void cxs_ctx_poll(struct cxs_ctx *ctx)
{
    if (ctx->back)
        while (noxs_backend_dispatch(ctx->back, 0) > 0)
            ;
    if (ctx->front)
        front_sync(ctx);
    cxs_ctx_flush(ctx);
    cxs_ctl_poll(ctx);
}
