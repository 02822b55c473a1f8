/*
 * Transactions and batches. Operations on the pages are staged in the
 * transaction with the values each read returned; xs_transaction_end
 * re-reads those nodes and fails with EAGAIN if any changed (optimistic
 * validation, as xenstored does), then applies the staged operations,
 * one publish per page half, so each half changes atomically. A call
 * outside a transaction is a batch of one, applied at once. Devices this
 * process is not an end of go through noxsd (group.c stages them: one
 * device add, or writes relayed to the backend).
 *
 * Paths the generic store serves go straight to it, inside its own
 * transaction (started on first use). At the end the pages' part is
 * applied first, then the generic store commits; if that fails, the
 * devices the batch created are removed again (docs/COMPAT.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "handle.h"

/* Devices a batch created (so a failed commit can remove them again). */
struct cxs_adds {
    struct {
        uint16_t fe;
        uint32_t devid;
    } * v;
    size_t n, cap;
};

/* ---- a transaction's state ---- */

struct tx *cxs_find_tx(struct xs_handle *h, xs_transaction_t t)
{
    for (struct tx *x = h->txs; x; x = x->next)
        if (x->id == t)
            return x;
    return NULL;
}

/* The transaction's own last word on abs, if any: 1 value, 0 none,
 * -ENOENT removed. */
int cxs_tx_lookup(struct tx *t, const char *abs, char **out,
                  unsigned int *len)
{
    for (size_t i = t->nops; i-- > 0;) {
        struct op *o = &t->ops[i];
        if (o->kind == OP_RM && cxs_is_child(abs, o->path))
            return -ENOENT;
        if (strcmp(o->path, abs) == 0) {
            *out = malloc(o->len + 1);
            if (!*out)
                return -ENOMEM;
            memcpy(*out, o->value ? o->value : "", o->len);
            (*out)[o->len] = '\0';
            *len = o->len;
            return 1;
        }
    }
    return 0;
}

void cxs_tx_record(struct tx *t, const char *abs, int rc, const char *v,
                   unsigned int len)
{
    char buf[16];

    if (cxs_kvlist_find(&t->reads, abs))
        return;
    if (rc < 0) {
        snprintf(buf, sizeof(buf), "\1%d", -rc);
        cxs_kvlist_set(&t->reads, abs, buf, (unsigned int)strlen(buf));
    } else {
        cxs_kvlist_set(&t->reads, abs, v, len);
    }
}

void cxs_tx_free(struct tx *t)
{
    for (size_t i = 0; i < t->nops; i++) {
        free(t->ops[i].path);
        free(t->ops[i].value);
    }
    free(t->ops);
    cxs_kvlist_clear(&t->reads);
    free(t);
}

/* ---- applying a batch ---- */

/* Relay the group's writes, in batch order, to the device's backend;
 * *done: how many went through. */
static int group_relay(struct xs_handle *h, struct cxs_group *g,
                       const struct op *ops, size_t *done)
{
    char reply[NOXS_CTRL_VALUE_MAX + 1];

    *done = 0;
    for (size_t i = 0; i < g->nwrites; i++, (*done)++) {
        const struct op *o = &ops[g->writes[i]];
        struct cxs_path p;
        char arg[NOXS_CTRL_VALUE_MAX + 1];
        int rc;

        if (cxs_path_parse(o->path, &p) < 0)
            continue;
        if (p.kind != CXS_DEVICE_KEY && p.kind != CXS_BACKEND_KEY)
            continue;
        if (o->kind == OP_RM)
            snprintf(arg, sizeof(arg), "%s", p.key);
        else if (snprintf(arg, sizeof(arg), "%s=%.*s", p.key, (int)o->len,
                          o->value) >= (int)sizeof(arg))
            return -E2BIG;
        rc = cxs_proxy(h, &p, o->kind == OP_RM ? "xs-rm" : "xs-write", arg,
                       reply, sizeof(reply));
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Apply a device add or relayed writes for a group (toolstack). */
static int group_apply(struct xs_handle *h, struct cxs_group *g,
                       const struct op *ops)
{
    noxs_client *c = cxs_ctx_client(h->ctx);
    uint32_t devid = cxs_devid(g->cls, g->id);
    size_t done;
    int rc;

    if (!c)
        return errno == ENOENT ? -ENOENT : -errno;
    if (g->remove) {
        if (noxs_dev_remove(c, g->fe, NOXS_DEV_LEGACY, devid) < 0 &&
            errno != ENOENT)
            return -errno;
        cxs_fire(h->ctx, "", false); /* nothing: remote removal */
        return 0;
    }
    if (g->be >= 0 && g->params.n <= CXS_ADD_NODES_MAX) {
        struct noxs_kv all[CXS_ADD_PARAMS_MAX];
        size_t n = cxs_group_add_params(g, all);

        if (noxs_dev_add(c, g->fe, NOXS_DEV_LEGACY, devid, (uint16_t)g->be,
                         all, n) == 0) {
            struct cxs_adds *a = h->adds;
            if (a && cxs_grow(&a->v, &a->cap, a->n, sizeof(*a->v)) == 0) {
                a->v[a->n].fe = g->fe;
                a->v[a->n++].devid = devid;
            }
            return 0;
        }
        if (errno != EEXIST)
            return -errno;
    }
    /*
     * The device exists (or, with more nodes than one add carries, may):
     * relay each write to its backend. A device that does not exist
     * fails the first relay, before anything changed; with too many
     * nodes to create it, that is the batch's error.
     */
    rc = group_relay(h, g, ops, &done);
    if (rc == -ENOENT && done == 0 && g->be >= 0 &&
        g->params.n > CXS_ADD_NODES_MAX)
        rc = -E2BIG;
    return rc;
}

/* A key of a device: staged in our own half (d joins *touched, to be
 * published once), or added to the group of a device we are not an end
 * of. */
static int batch_key(struct xs_handle *h, struct cxs_groups *gs,
                     struct cxs_dev **touched, const struct op *o, size_t i,
                     const struct cxs_path *p)
{
    struct cxs_dev *d;
    struct cxs_group *g;
    int half, rc = 0;

    if (o->kind != OP_RM && o->len > NOXS_CTRL_VALUE_MAX)
        return -E2BIG;
    half = p->kind == CXS_DEVICE_KEY ? CXS_HALF_FRONT : CXS_HALF_BACK;
    d = cxs_local_dev(h, p);
    if (d) {
        if (o->kind == OP_RM)
            rc = cxs_dev_remove_key(d, half, p->key);
        else if (o->kind == OP_WRITE)
            rc = cxs_dev_write(d, half, p->key, o->value, o->len);
        if (rc == -ENOENT && o->kind == OP_RM)
            rc = 0;
        /* Staged (or not): published once, below, either way. */
        if (!d->touched) {
            d->touched = true;
            d->touched_next = *touched;
            *touched = d;
        }
        return rc;
    }
    g = cxs_group_for(gs, p);
    if (!g || cxs_group_write(g, i) < 0)
        return -ENOMEM;
    if (p->kind == CXS_BACKEND_KEY)
        g->be = p->domid;
    if (o->kind == OP_WRITE) {
        char v[NOXS_CTRL_VALUE_MAX + 1];
        /* Synthesised nodes are not stored; backend-id names the
         * backend when only the frontend tree is written. */
        if (half == CXS_HALF_FRONT && strcmp(p->key, "backend-id") == 0) {
            if (g->be < 0 && o->len < 6) {
                memcpy(v, o->value, o->len);
                v[o->len] = '\0';
                g->be = atoi(v);
            }
            return 0;
        }
        if ((half == CXS_HALF_FRONT && strcmp(p->key, "backend") == 0) ||
            (half == CXS_HALF_BACK && (strcmp(p->key, "frontend") == 0 ||
                                       strcmp(p->key, "frontend-id") == 0)))
            return 0;
        if (memchr(o->value, '\0', o->len))
            return -EINVAL;
        memcpy(v, o->value, o->len);
        v[o->len] = '\0';
        rc = cxs_group_param(g, p->key, v, half == CXS_HALF_FRONT);
    }
    return rc;
}

/* rm of a directory above devices: remove every device below. */
static int batch_rm_below(struct xs_handle *h, struct cxs_groups *gs,
                          const struct op *o, const struct cxs_path *p)
{
    struct devref *devs;
    struct cxs_group *g;
    size_t n;
    int rc = cxs_gather(h, p, &devs, &n);

    for (size_t j = 0; rc == 0 && j < n; j++) {
        char dir[CXS_ABS_PATH_MAX];
        struct cxs_path q = {.kind = CXS_DEVICE, .fe = devs[j].fe, .domid = devs[j].fe, .id = devs[j].id};
        memcpy(q.cls, devs[j].cls, sizeof(q.cls));
        cxs_path_device_dir(dir, sizeof(dir), q.fe, q.cls, q.id);
        bool under = cxs_is_child(dir, o->path);
        cxs_path_backend_dir(dir, sizeof(dir), devs[j].be, q.fe, q.cls, q.id);
        if (!under && !cxs_is_child(dir, o->path))
            continue;
        g = cxs_group_for(gs, &q);
        if (g)
            g->remove = true;
    }
    if (rc == 0)
        free(devs);
    return rc;
}

/*
 * Apply a batch of operations (one transaction, or one call): every path
 * is checked before anything changes; local halves are staged and
 * published once each; other devices go through noxsd.
 */
static int apply_ops(struct xs_handle *h, struct op *ops, size_t nops)
{
    struct cxs_groups gs = {0};
    struct cxs_dev *touched = NULL, *next;
    int rc = 0;

    if (h->readonly && nops)
        return -EACCES;
    for (size_t i = 0; i < nops && rc == 0; i++) {
        struct op *o = &ops[i];
        struct cxs_path p;
        struct cxs_dev *d;
        struct cxs_group *g;

        rc = cxs_path_parse(o->path, &p);
        if (rc < 0)
            break;
        switch (p.kind) {
        case CXS_DEVICE_KEY:
        case CXS_BACKEND_KEY:
            rc = batch_key(h, &gs, &touched, o, i, &p);
            break;
        case CXS_DEVICE:
        case CXS_BACKEND:
            if (o->kind == OP_RM) {
                d = cxs_local_dev(h, &p);
                if (d) {
                    rc = -EACCES; /* only the toolstack removes devices */
                    break;
                }
                g = cxs_group_for(&gs, &p);
                if (g)
                    g->remove = true;
                else
                    rc = -ENOMEM;
            } else if (p.kind == CXS_BACKEND) {
                g = cxs_group_for(&gs, &p);
                if (g)
                    g->be = p.domid;
                else
                    rc = -ENOMEM;
            }
            break;
        case CXS_DEVICE_CLASS:
        case CXS_BACKEND_FE:
        case CXS_BACKEND_CLASS:
        case CXS_DEVICE_ROOT:
        case CXS_BACKEND_ROOT:
        case CXS_DOMAIN:
            if (o->kind == OP_RM)
                rc = batch_rm_below(h, &gs, o, &p);
            /* mkdir / write "" of a directory: nothing to store. */
            break;
        case CXS_ROOT:
        case CXS_LOCAL:
        case CXS_LOCAL_DOMAIN:
            if (o->kind == OP_RM)
                rc = -EACCES;
            break;
        case CXS_CONTROL:
        case CXS_CONTROL_KEY:
            rc = cxs_ctl_write(h->ctx, &p,
                               o->kind == OP_RM      ? CXS_CTL_RM
                               : o->kind == OP_MKDIR ? CXS_CTL_MKDIR
                                                     : CXS_CTL_WRITE,
                               o->value, o->len);
            break;
        case CXS_SPECIAL:
        case CXS_UNSUPPORTED:
            cxs_unsupported(o->kind == OP_RM ? "rm" : "write", o->path);
            rc = -EACCES;
            break;
        }
    }
    for (size_t i = 0; i < gs.n && rc == 0; i++)
        rc = group_apply(h, &gs.v[i], ops);
    cxs_groups_free(&gs);
    for (struct cxs_dev *d = touched; d; d = next) {
        int r = cxs_dev_publish(d);
        if (rc == 0 && r < 0)
            rc = r;
        next = d->touched_next;
        d->touched = false;
        d->touched_next = NULL;
    }
    if (touched)
        cxs_ctx_flush(h->ctx);
    return rc;
}

int cxs_stage(struct xs_handle *h, xs_transaction_t t, int kind,
              const char *path, const void *data, unsigned int len)
{
    char abs[CXS_ABS_PATH_MAX + 1];
    struct cxs_path p;
    struct op o = {.kind = kind, .len = len};
    struct tx *x;
    int r, rc = cxs_parse(h, path, abs, &p);

    if (rc < 0)
        return rc;
    if (len > CXS_PAYLOAD_MAX)
        return -E2BIG;
    if (h->readonly)
        return -EACCES;
    x = t == XBT_NULL ? NULL : cxs_find_tx(h, t);
    if (t != XBT_NULL && !x)
        return -ENOENT;
    r = cxs_route(h, &p, kind == OP_RM ? OPK_RM : OPK_WRITE);
    if (r != R_NOXS) {
        /* Straight to the generic store (inside its own transaction, if
         * any: it keeps xenstored's semantics for these paths). */
        uint32_t gtx;

        rc = cxs_gtx_of(h, x, &gtx);
        if (rc == 0 && kind == OP_WRITE)
            rc = cxs_gwrite(h->g, gtx, abs, data, len);
        else if (rc == 0)
            rc = cxs_gpath(h->g, kind == OP_MKDIR ? XSW_MKDIR : XSW_RM, gtx,
                           abs, NULL, NULL);
        if (r == R_GENERIC || (rc < 0 && rc != -ENOENT))
            return rc;
        /* R_BOTH (a removal): the pages' devices below go too. */
    }
    o.path = abs;
    o.value = (char *)data;
    if (!x)
        return apply_ops(h, &o, 1);
    if (p.kind == CXS_UNSUPPORTED) {
        cxs_unsupported("write", abs);
        return -EACCES;
    }
    if (cxs_grow(&x->ops, &x->capops, x->nops, sizeof(*x->ops)) < 0)
        return -ENOMEM;
    o.path = strdup(abs);
    o.value = malloc(len + 1);
    if (!o.path || !o.value) {
        free(o.path);
        free(o.value);
        return -ENOMEM;
    }
    if (len)
        memcpy(o.value, data, len);
    o.value[len] = '\0';
    x->ops[x->nops++] = o;
    return 0;
}

/* ---- transactions ---- */

CXS_EXPORT xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
    struct tx *t;

    if (!h) {
        errno = EINVAL;
        return XBT_NULL;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        errno = ENOMEM;
        return XBT_NULL;
    }
    cxs_enter();
    t->id = h->next_tx++;
    if (h->next_tx == XBT_NULL)
        h->next_tx = 1;
    t->next = h->txs;
    h->txs = t;
    cxs_leave();
    return t->id;
}

/* Re-read everything the transaction read: -EAGAIN if any changed. */
static int tx_validate(struct xs_handle *h, struct tx *t)
{
    for (size_t i = 0; i < t->reads.n; i++) {
        struct cxs_kv *r = &t->reads.e[i];
        struct cxs_path p;
        char *v = NULL, buf[16];
        unsigned int l = 0;
        int rc;

        if (cxs_path_parse(r->key, &p) < 0)
            continue;
        rc = cxs_node_read(h, r->key, &p, &v, &l);
        if (rc < 0) {
            snprintf(buf, sizeof(buf), "\1%d", -rc);
            rc = strcmp(buf, r->value) == 0 ? 0 : -EAGAIN;
        } else {
            rc = l == r->len && memcmp(v, r->value, l) == 0 ? 0 : -EAGAIN;
        }
        free(v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

CXS_EXPORT bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t,
                                   bool abort)
{
    struct tx **pp, *x = NULL;
    int rc = 0;

    if (!h)
        return fail(EINVAL);
    cxs_enter();
    for (pp = &h->txs; *pp; pp = &(*pp)->next)
        if ((*pp)->id == t) {
            x = *pp;
            *pp = x->next;
            break;
        }
    if (!x) {
        cxs_leave();
        return fail(ENOENT);
    }
    if (!abort) {
        struct cxs_adds adds = {0};

        /* Take in what others changed meanwhile before validating. */
        if (h->ctx->front || h->ctx->back)
            cxs_ctx_poll(h->ctx);
        rc = tx_validate(h, x);
        h->adds = &adds;
        if (rc == 0)
            rc = apply_ops(h, x->ops, x->nops);
        h->adds = NULL;
        /*
         * A transaction on both stores: the pages' part is applied
         * first (it can fail on a missing backend, a full page), then
         * the generic store commits. If that fails (EAGAIN: the caller
         * retries), the devices this batch created are removed again,
         * so neither store keeps half a device (docs/COMPAT.md).
         */
        if (x->gtx) {
            int grc = cxs_gtx_end(h->g, x->gtx, rc == 0);
            if (rc == 0 && grc < 0) {
                noxs_client *c = cxs_ctx_client(h->ctx);
                for (size_t i = 0; c && i < adds.n; i++)
                    noxs_dev_remove(c, adds.v[i].fe, NOXS_DEV_LEGACY,
                                    adds.v[i].devid);
                rc = grc;
            }
        }
        free(adds.v);
    } else if (x->gtx) {
        cxs_gtx_end(h->g, x->gtx, false);
    }
    cxs_tx_free(x);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}
