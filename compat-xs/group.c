/*
 * A batch's staged operations on devices this process is not an end of
 * (tx.c's apply_ops, for one transaction or one call): a toolstack
 * creating a device, which becomes one device add, or writing to one
 * that exists, each write then relayed to the device's backend. Pure
 * bookkeeping; tx.c sends the result.
 *
 * Everything here is sized by the batch, which has no bound of its own
 * (a transaction may rewrite one key a thousand times), so every table
 * grows. The one limit, how many nodes a device add carries, belongs to
 * the add and is checked when it is sent (cxs_group_add_params' caller),
 * so a batch either goes through whole or fails with an errno: nothing
 * is dropped on the way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

struct cxs_group *cxs_group_for(struct cxs_groups *gs,
                                const struct cxs_path *p)
{
    struct cxs_group *g;

    for (size_t i = 0; i < gs->n; i++)
        if (gs->v[i].fe == p->fe && gs->v[i].id == p->id &&
            strcmp(gs->v[i].cls, p->cls) == 0)
            return &gs->v[i];
    if (cxs_grow(&gs->v, &gs->cap, gs->n, sizeof(*gs->v)) < 0)
        return NULL;
    g = &gs->v[gs->n++];
    memset(g, 0, sizeof(*g));
    g->fe = p->fe;
    g->be = -1;
    g->id = p->id;
    memcpy(g->cls, p->cls, sizeof(g->cls));
    return g;
}

int cxs_group_write(struct cxs_group *g, size_t op)
{
    if (cxs_grow(&g->writes, &g->capwrites, g->nwrites, sizeof(*g->writes)) < 0)
        return -ENOMEM;
    g->writes[g->nwrites++] = op;
    return 0;
}

int cxs_group_param(struct cxs_group *g, const char *key, const char *value,
                    bool front)
{
    char k[NOXS_CTRL_KEY_MAX + 1];

    if (snprintf(k, sizeof(k), "%s%s", front ? CXS_KEY_FRONT_PREFIX : "",
                 key) >= (int)sizeof(k))
        return -E2BIG;
    return cxs_kvlist_set(&g->params, k, value, (unsigned int)strlen(value));
}

size_t cxs_group_add_params(const struct cxs_group *g, struct noxs_kv *all)
{
    size_t n = 0;

    all[n].key = CXS_KEY_CLASS;
    all[n++].value = g->cls;
    for (size_t i = 0; i < g->params.n && n < CXS_ADD_PARAMS_MAX; i++) {
        all[n].key = g->params.e[i].key;
        all[n++].value = g->params.e[i].value;
    }
    return n;
}

void cxs_groups_free(struct cxs_groups *gs)
{
    for (size_t i = 0; i < gs->n; i++) {
        cxs_kvlist_clear(&gs->v[i].params);
        free(gs->v[i].writes);
    }
    free(gs->v);
    memset(gs, 0, sizeof(*gs));
}
