/*
 * Directory listings: xs_directory, and the child names of page paths
 * (cxs_dir_read), built from this process's own devices and, for a
 * process that is not the end of that tree, noxsd's device list
 * (cxs_gather). Where both stores hold a directory (R_BOTH), the generic
 * store's names come first and the pages add theirs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "handle.h"

/* A directory listing being built: names in order of first addition,
 * hashed so that adding is O(1) (listing every domain stays O(N)). */
struct name {
    struct cxs_hent hent;
    size_t len;
    char s[];
};
struct names {
    struct name **v;
    size_t n, cap;
    struct cxs_htab idx;
};

static int names_add(struct names *ns, const char *name, size_t len)
{
    uint64_t hash = cxs_hash_bytes(name, len);
    struct name *e;

    for (struct cxs_hent *x = cxs_htab_find(&ns->idx, hash); x;
         x = cxs_htab_next(x, hash)) {
        e = CXS_CONTAINER(x, struct name, hent);
        if (e->len == len && memcmp(e->s, name, len) == 0)
            return 0;
    }
    if (cxs_grow(&ns->v, &ns->cap, ns->n, sizeof(*ns->v)) < 0)
        return -ENOMEM;
    e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -ENOMEM;
    memcpy(e->s, name, len);
    e->s[len] = '\0';
    e->len = len;
    if (cxs_htab_add(&ns->idx, &e->hent, hash) < 0) {
        free(e);
        return -ENOMEM;
    }
    ns->v[ns->n++] = e;
    return 0;
}

static void names_clear(struct names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
    cxs_htab_free(&ns->idx);
}

/* libxenstore's layout: a vector and the strings in one allocation. */
static char **names_vector(struct names *ns, unsigned int *num)
{
    size_t total = (ns->n + 1) * sizeof(char *);
    char **v, *s;

    for (size_t i = 0; i < ns->n; i++)
        total += ns->v[i]->len + 1;
    v = malloc(total);
    if (!v)
        return NULL;
    s = (char *)(v + ns->n + 1);
    for (size_t i = 0; i < ns->n; i++) {
        size_t l = ns->v[i]->len + 1;
        v[i] = s;
        memcpy(s, ns->v[i]->s, l);
        s += l;
    }
    v[ns->n] = NULL;
    *num = (unsigned int)ns->n;
    return v;
}

/* Add the NUL-separated names of r[0..len) to ns; *used: bytes of names
 * (each with its NUL), *end: an empty name closed the list. */
static int gnames(struct names *ns, const char *r, uint32_t len,
                  uint32_t *used, bool *end)
{
    int rc = 0;

    *used = 0;
    *end = false;
    for (uint32_t i = 0; rc == 0 && i < len;) {
        size_t l = strnlen(r + i, len - i);
        if (l == 0) {
            *end = true;
            break;
        }
        rc = names_add(ns, r + i, l);
        i += (uint32_t)l + 1;
        *used = i;
    }
    return rc;
}

/*
 * A listing too long for one message (E2BIG: a directory of a thousand
 * domains) is read in parts, as libxenstore does: DIRECTORY_PART with a
 * byte offset answers the node's generation, then names, and an empty
 * name at the end; a generation that changes between parts starts over.
 */
static int gdir_parts(struct xs_handle *h, uint32_t gtx, const char *abs,
                      struct names *ns)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        char gen[32] = "";
        uint32_t off = 0;
        int rc = 0;

        names_clear(ns);
        *ns = (struct names){0};
        for (int part = 0; rc == 0 && part < 100000; part++) {
            struct cxs_buf b = {.len = 0};
            char num[16], *r = NULL;
            uint32_t len = 0, glen, used;
            bool end;

            snprintf(num, sizeof(num), "%u", off);
            if ((rc = cxs_buf_str(&b, abs)) == 0)
                rc = cxs_buf_str(&b, num);
            if (rc == 0)
                rc = cxs_gcall(h->g, XSW_DIRECTORY_PART, gtx, &b, &r, &len);
            if (rc < 0)
                return rc;
            glen = (uint32_t)strnlen(r, len);
            if (glen >= len || glen >= sizeof(gen)) {
                free(r);
                return -EIO;
            }
            if (part == 0) {
                memcpy(gen, r, glen + 1);
            } else if (strcmp(gen, r) != 0) {
                free(r);
                rc = -EAGAIN; /* changed meanwhile: start over */
                break;
            }
            rc = gnames(ns, r + glen + 1, len - glen - 1, &used, &end);
            free(r);
            if (rc < 0)
                return rc;
            if (end)
                return 0;
            if (used == 0)
                return -EIO; /* no progress and no end */
            off += used;
        }
        if (rc != -EAGAIN)
            return rc < 0 ? rc : -EIO;
    }
    return -EAGAIN;
}

/* One listing of the generic store, added to ns; ENOENT is no names. */
static int gdir(struct xs_handle *h, uint32_t gtx, const char *abs,
                struct names *ns, bool *exists)
{
    char *r = NULL;
    uint32_t len = 0, used;
    bool end;
    int rc = cxs_gpath(h->g, XSW_DIRECTORY, gtx, abs, &r, &len);

    if (rc == -ENOENT)
        return 0;
    if (rc == -E2BIG) {
        rc = gdir_parts(h, gtx, abs, ns);
        if (rc == -ENOENT)
            return 0;
        if (rc == 0)
            *exists = true;
        return rc;
    }
    if (rc < 0)
        return rc;
    *exists = true;
    rc = gnames(ns, r, len, &used, &end);
    free(r);
    return rc;
}

/* Class of a listed device: well-known codes decode; others are asked
 * of the backend. */
static int listed_class(struct xs_handle *h, const struct noxs_dev_info *di,
                        char *cls)
{
    const char *known = cxs_devid_class(di->devid);
    struct cxs_path p = {.kind = CXS_BACKEND, .fe = di->domid, .domid = di->backend_domid};
    char reply[NOXS_CTRL_VALUE_MAX + 1];
    noxs_client *c;

    if (known) {
        snprintf(cls, CXS_CLASS_MAX + 1, "%s", known);
        return 0;
    }
    c = cxs_ctx_client(h->ctx);
    if (!c || noxs_dev_control(c, di->domid, NOXS_DEV_LEGACY, di->devid,
                               "xs-read", "b" CXS_KEY_CLASS, PROXY_TIMEOUT_MS,
                               reply, sizeof(reply)) < 0)
        return -1;
    (void)p;
    snprintf(cls, CXS_CLASS_MAX + 1, "%.31s", reply);
    return 0;
}

/*
 * Every legacy device relevant to p: this process's own devices, and
 * when it is not the end of that tree, noxsd's list (toolstack view).
 */
int cxs_gather(struct xs_handle *h, const struct cxs_path *p,
               struct devref **out, size_t *count)
{
    struct cxs_ctx *ctx = h->ctx;
    struct devref *v = NULL;
    size_t n = 0, cap = 0;
    bool backend_tree = p->kind >= CXS_BACKEND_ROOT && p->kind <= CXS_BACKEND_KEY;
    bool local_only;

    if (!backend_tree && p->domid == ctx->domid && ctx->domid != 0)
        cxs_ctx_frontend(ctx);
    if (ctx->front || ctx->back)
        cxs_ctx_poll(ctx);
    local_only = backend_tree ? (ctx->back && p->domid == ctx->domid)
                              : (ctx->front && p->domid == ctx->domid);
    /* Paths naming one frontend domain only need its devices (a backend
     * may serve thousands of domains); the callers filter on fe anyway. */
    int fe = p->kind == CXS_DEVICE_ROOT || p->kind == CXS_DEVICE_CLASS
                 ? p->domid
             : p->kind == CXS_BACKEND_FE ? p->fe
                                         : -1;
    for (struct cxs_dev *d = fe < 0 ? ctx->devs
                                    : cxs_ctx_fe_first(ctx, (uint16_t)fe);
         d; d = fe < 0 ? d->next : cxs_ctx_fe_next(d)) {
        if (d->gone)
            continue;
        if (cxs_grow(&v, &cap, n, sizeof(*v)) < 0)
            return free(v), -ENOMEM;
        v[n].fe = d->fe;
        v[n].be = d->be;
        v[n].id = d->id;
        memcpy(v[n].cls, d->cls, sizeof(v[n].cls));
        n++;
    }
    if (!local_only && cxs_ctx_client(ctx)) {
        struct noxs_dev_info *di = NULL;
        size_t nd = 0;
        uint16_t which = backend_tree || p->kind < CXS_DOMAIN
                             ? NOXS_DOMID_ANY
                             : p->domid;

        if (noxs_dev_list(ctx->client, which, &di, &nd) == 0) {
            for (size_t i = 0; i < nd; i++) {
                if (di[i].type != NOXS_DEV_LEGACY)
                    continue;
                if (cxs_grow(&v, &cap, n, sizeof(*v)) < 0) {
                    free(di);
                    free(v);
                    return -ENOMEM;
                }
                if (listed_class(h, &di[i], v[n].cls) < 0)
                    continue;
                v[n].fe = di[i].domid;
                v[n].be = di[i].backend_domid;
                v[n].id = cxs_devid_id(di[i].devid);
                n++;
            }
            free(di);
        }
    }
    *out = v;
    *count = n;
    return 0;
}

/* The name device d adds to the listing of p, if any. */
static int dev_name(const struct cxs_path *p, const struct devref *d,
                    struct names *ns)
{
    char buf[16];
    int rc = 0;

    switch (p->kind) {
    case CXS_LOCAL_DOMAIN:
        snprintf(buf, sizeof(buf), "%u", d->fe);
        rc = names_add(ns, buf, strlen(buf));
        snprintf(buf, sizeof(buf), "%u", d->be);
        if (rc == 0)
            rc = names_add(ns, buf, strlen(buf));
        break;
    case CXS_DOMAIN:
        if (d->fe == p->domid)
            rc = names_add(ns, "device", 6);
        if (rc == 0 && d->be == p->domid)
            rc = names_add(ns, "backend", 7);
        break;
    case CXS_DEVICE_ROOT:
        if (d->fe == p->domid)
            rc = names_add(ns, d->cls, strlen(d->cls));
        break;
    case CXS_DEVICE_CLASS:
        if (d->fe == p->domid && strcmp(d->cls, p->cls) == 0) {
            snprintf(buf, sizeof(buf), "%u", d->id);
            rc = names_add(ns, buf, strlen(buf));
        }
        break;
    case CXS_BACKEND_ROOT:
        if (d->be == p->domid)
            rc = names_add(ns, d->cls, strlen(d->cls));
        break;
    case CXS_BACKEND_CLASS:
        if (d->be == p->domid && strcmp(d->cls, p->cls) == 0) {
            snprintf(buf, sizeof(buf), "%u", d->fe);
            rc = names_add(ns, buf, strlen(buf));
        }
        break;
    case CXS_BACKEND_FE:
        if (d->be == p->domid && d->fe == p->fe &&
            strcmp(d->cls, p->cls) == 0) {
            snprintf(buf, sizeof(buf), "%u", d->id);
            rc = names_add(ns, buf, strlen(buf));
        }
        break;
    default:
        break;
    }
    return rc;
}

int cxs_dir_read(struct xs_handle *h, const struct cxs_path *p,
                 char ***names, unsigned int *num)
{
    struct names ns = {0};
    struct devref *devs = NULL;
    size_t ndevs = 0;
    char buf[CXS_ABS_PATH_MAX], reply[NOXS_CTRL_VALUE_MAX + 1];
    int rc = 0;

    switch (p->kind) {
    case CXS_ROOT:
        rc = names_add(&ns, "local", 5);
        goto done;
    case CXS_LOCAL:
        rc = names_add(&ns, "domain", 6);
        goto done;
    case CXS_DEVICE:
    case CXS_BACKEND: {
        struct cxs_dev *d = cxs_local_dev(h, p);
        if (d) {
            struct cxs_kvlist view = {0};
            size_t dl;

            if (p->kind == CXS_DEVICE)
                cxs_path_device_dir(buf, sizeof(buf), d->fe, d->cls, d->id);
            else
                cxs_path_backend_dir(buf, sizeof(buf), d->be, d->fe, d->cls,
                                     d->id);
            dl = strlen(buf);
            rc = cxs_dev_view(d, &view);
            for (size_t i = 0; rc == 0 && i < view.n; i++)
                if (strncmp(view.e[i].key, buf, dl) == 0 &&
                    view.e[i].key[dl] == '/')
                    rc = names_add(&ns, view.e[i].key + dl + 1,
                                   strlen(view.e[i].key + dl + 1));
            cxs_kvlist_clear(&view);
            goto done;
        }
        rc = cxs_proxy(h, p, "xs-dir", "", reply, sizeof(reply));
        if (rc == -ENODEV || rc == -ECONNREFUSED)
            rc = -ENOENT;
        for (char *s = reply, *nl; rc == 0 && (nl = strchr(s, '\n'));
             s = nl + 1)
            rc = names_add(&ns, s, (size_t)(nl - s));
        goto done;
    }
    case CXS_UNSUPPORTED:
        cxs_unsupported("directory", "");
        rc = -EACCES;
        goto done;
    case CXS_CONTROL: {
        struct cxs_kvlist l = {0};
        rc = cxs_ctl_list(h->ctx, p, &l);
        for (size_t i = 0; rc == 0 && i < l.n; i++)
            rc = names_add(&ns, l.e[i].key, strlen(l.e[i].key));
        cxs_kvlist_clear(&l);
        goto done;
    }
    case CXS_DEVICE_KEY:
    case CXS_BACKEND_KEY:
    case CXS_CONTROL_KEY:
    case CXS_SPECIAL:
        /* A key exists or not; it never has children. */
        goto done;
    default:
        break;
    }
    rc = cxs_gather(h, p, &devs, &ndevs);
    for (size_t i = 0; rc == 0 && i < ndevs; i++)
        rc = dev_name(p, &devs[i], &ns);
    free(devs);
done:
    if (rc == 0) {
        *names = names_vector(&ns, num);
        if (!*names)
            rc = -ENOMEM;
    }
    names_clear(&ns);
    return rc;
}

CXS_EXPORT char **xs_directory(struct xs_handle *h, xs_transaction_t t,
                               const char *path, unsigned int *num)
{
    char abs[CXS_ABS_PATH_MAX + 1], **names = NULL;
    struct cxs_path p;
    struct tx *x = NULL;
    int rc, r;

    if (!h || !num)
        return fail_ptr(EINVAL);
    cxs_enter();
    rc = cxs_parse_tx(h, t, path, abs, &p, &x);
    if (rc == 0 && (r = cxs_route(h, &p, OPK_DIR)) != R_NOXS) {
        struct names ns = {0};
        bool exists = false;
        uint32_t gtx;

        rc = cxs_gtx_of(h, x, &gtx);
        if (rc == 0)
            rc = gdir(h, gtx, abs, &ns, &exists);
        if (rc == 0 && r == R_BOTH) {
            char **more;
            unsigned int n;

            /* Pages add what the generic store does not list. */
            if (cxs_dir_read(h, &p, &more, &n) == 0) {
                for (unsigned int i = 0; rc == 0 && i < n; i++)
                    rc = names_add(&ns, more[i], strlen(more[i]));
                exists = exists || n > 0;
                free(more);
            }
        }
        if (rc == 0 && !exists)
            rc = -ENOENT;
        if (rc == 0 && !(names = names_vector(&ns, num)))
            rc = -ENOMEM;
        names_clear(&ns);
        cxs_leave();
        return rc < 0 ? fail_ptr(-rc) : names;
    }
    if (rc == 0 && p.kind == CXS_UNSUPPORTED) {
        cxs_unsupported("directory", abs);
        rc = -EACCES;
    }
    if (rc == 0)
        rc = cxs_dir_read(h, &p, &names, num);
    /* xenstored: a directory of a node that does not exist is ENOENT. */
    if (rc == 0 && *num == 0 && p.kind != CXS_ROOT && p.kind != CXS_DEVICE_KEY &&
        p.kind != CXS_BACKEND_KEY && p.kind != CXS_DEVICE &&
        p.kind != CXS_BACKEND) {
        free(names);
        names = NULL;
        rc = -ENOENT;
    }
    if (rc == 0 && (p.kind == CXS_DEVICE_KEY || p.kind == CXS_BACKEND_KEY)) {
        char *v;
        unsigned int l;
        int rr = cxs_node_read(h, abs, &p, &v, &l);
        if (rr < 0) {
            free(names);
            names = NULL;
            rc = rr;
        } else {
            free(v);
        }
    }
    cxs_leave();
    if (rc < 0)
        return fail_ptr(-rc);
    return names;
}
