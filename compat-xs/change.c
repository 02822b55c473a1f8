/*
 * Change detection: each device keeps the flattened view (path -> value)
 * it last reported; when the peer's generation moves, when noxsd creates
 * or removes the device, or after a local write, the view is recomputed
 * and every difference fires the matching watches. A notification
 * carries no data, so there is nothing else to trust.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

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
            cxs_dev_gone(d);
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
        d = cxs_dev_new(ctx, CXS_ROLE_FRONT, nd);
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
        cxs_dev_delete(ctx, d);
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
        cxs_dev_queue(d); /* try again at the next flush */
    }
}

/*
 * Only queued devices are visited, so a flush costs O(changed devices)
 * however many the context has: a backend's devices are queued by the
 * event that names them (back_changed, back_remove), our own writes and
 * reads (cxs_dev_mark via cxs_dev_write / cxs_dev_refresh); a frontend's few
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
            cxs_dev_refresh(d);
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
