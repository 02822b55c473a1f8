/*
 * Device views: one device's two page halves as XenStore nodes. Reads
 * of either half (the synthesised backend/frontend nodes, the
 * toolstack's frontend nodes kept in the backend half, the state word),
 * the flattened view (path -> value) that change detection compares,
 * and writes staged in this process's own half. A device with something
 * to report is queued on its context for the next flush (change.c).
 * Contexts and their roles are in ctx.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

pthread_mutex_t cxs_lock = PTHREAD_MUTEX_INITIALIZER;

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
void cxs_dev_queue(struct cxs_dev *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->dirty_next = d->ctx->dirty;
    d->ctx->dirty = d;
}

/* d's view may have changed: recompute it at the next flush. */
void cxs_dev_mark(struct cxs_dev *d)
{
    d->dirty = true;
    cxs_dev_queue(d);
}

/* libnoxs dropped d (removed or detached): its nodes go at the flush. */
void cxs_dev_gone(struct cxs_dev *d)
{
    d->dev = NULL;
    d->gone = true;
    cxs_dev_queue(d);
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
int cxs_dev_refresh(struct cxs_dev *d)
{
    if (noxs_dev_refresh(d->dev) < 0)
        return -1;
    if (noxs_dev_peer_generation(d->dev) != d->seen_gen)
        cxs_dev_mark(d);
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
    if (!own_half(d, half) && d->dev && cxs_dev_refresh(d) < 0)
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
    cxs_dev_mark(d);
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
    cxs_dev_mark(d);
    return cxs_kvlist_del(&d->own, key);
}

int cxs_dev_publish(struct cxs_dev *d)
{
    if (!d->dev)
        return -ENOENT;
    return noxs_dev_publish(d->dev) < 0 ? -errno : 0;
}
