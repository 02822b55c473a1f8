/*
 * Backends: registration, the device census a backend sends when it
 * (re)connects, its state reports and its answers to our requests, and
 * the grace period of a backend that went away with its devices.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noxsd.h"
#include "proto.h"

/*
 * A backend of (domid, one of types) registers: the devices of a departed
 * one are its to claim now. Its sync says which it still has; noxsd drops
 * the rest at the final part, as for any sync.
 */
static void forget_departed(uint16_t domid, const uint16_t *types,
                            size_t ntypes)
{
    struct sync_state **sp, *s;
    size_t i, j;

    for (sp = &broker.departed; (s = *sp) != NULL;) {
        int hit = 0;

        for (i = 0; s->domid == domid && i < s->ntypes; i++)
            for (j = 0; j < ntypes; j++)
                if (s->types[i] == types[j])
                    hit = 1;
        if (!hit) {
            sp = &s->next;
            continue;
        }
        *sp = s->next;
        log_info("backend %u is back; its devices are its own again", s->domid);
        free(s);
    }
}

void backend_register(struct conn *c, const struct noxs_proto_msg *m)
{
    struct sync_state *s;
    size_t i, j;
    int rc;

    if (backend_state(conn_id(c))) {
        conn_reply_error(c, m->hdr.request, EALREADY);
        return;
    }
    for (i = 0; i < m->u.reg.ntypes; i++) {
        rc = registry_backend_add(broker.reg, m->u.reg.domid, m->types[i],
                                  conn_id(c));
        if (rc < 0) {
            for (j = 0; j < i; j++)
                registry_backend_remove(broker.reg, m->u.reg.domid, m->types[j],
                                        conn_id(c));
            conn_reply_error(c, m->hdr.request, -rc);
            return;
        }
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        for (j = 0; j < m->u.reg.ntypes; j++)
            registry_backend_remove(broker.reg, m->u.reg.domid, m->types[j],
                                    conn_id(c));
        conn_reply_error(c, m->hdr.request, ENOMEM);
        return;
    }
    forget_departed(m->u.reg.domid, m->types, m->u.reg.ntypes);
    s->conn = conn_id(c);
    s->domid = m->u.reg.domid;
    s->ntypes = m->u.reg.ntypes;
    s->keep = (m->reg_flags & NOXS_REGISTER_KEEP) != 0;
    memcpy(s->types, m->types, s->ntypes * sizeof(s->types[0]));
    s->registered = 1;
    s->next = broker.backends;
    broker.backends = s;
    conn_set_backend(c, s->domid, s->types, s->ntypes);
    conn_reply_empty(c, NOXS_MSG_BACKEND_REGISTER, m->hdr.request);
    {
        char names[128] = "";
        size_t k, used = 0;

        for (k = 0; k < s->ntypes && used < sizeof(names); k++) {
            const char *n = noxs_type_name(s->types[k]);
            int w =
                n ? snprintf(names + used, sizeof(names) - used, "%s%s",
                             k ? ", " : "", n)
                  : snprintf(names + used, sizeof(names) - used, "%stype %u",
                             k ? ", " : "", (unsigned int)s->types[k]);

            if (w < 0)
                break;
            used += (size_t)w;
        }
        log_info("backend in domain %u registered for %s (connection %llu)",
                 s->domid, names, (unsigned long long)s->conn);
    }
}

static int seen(const struct sync_state *s, uint16_t domid, uint16_t type,
                uint32_t devid)
{
    size_t i;

    for (i = 0; i < s->nseen; i++)
        if (s->seen[i].domid == domid && s->seen[i].type == type &&
            s->seen[i].devid == devid)
            return 1;
    return 0;
}

int stale_fn(const struct reg_domain_info *info, void *arg)
{
    struct stale_arg *a = arg;
    uint32_t i;

    for (i = 0; i < info->ndevs; i++) {
        const struct reg_dev *d = &info->devs[i];

        if (!backend_serves(a->s, d->backend_domid, d->type) ||
            seen(a->s, info->domid, d->type, d->devid))
            continue;
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 64;
            void *x = realloc(a->domids, cap * sizeof(*a->domids));
            void *y = realloc(a->types, cap * sizeof(*a->types));
            void *z = realloc(a->devids, cap * sizeof(*a->devids));
            if (x)
                a->domids = x;
            if (y)
                a->types = y;
            if (z)
                a->devids = z;
            if (!x || !y || !z)
                return -ENOMEM;
            a->cap = cap;
        }
        a->domids[a->n] = info->domid;
        a->types[a->n] = d->type;
        a->devids[a->n] = d->devid;
        a->n++;
    }
    return 0;
}

static void sync_item(struct conn *c, struct sync_state *s,
                      const struct noxs_msg_dev *it)
{
    struct reg_dev d;

    if (!backend_serves(s, it->backend_domid, it->type) ||
        registry_dev_get(broker.reg, it->domid, it->type, it->devid, &d) < 0 ||
        d.backend_domid != it->backend_domid || find_destroy(it->domid)) {
        log_info("backend %u: device %u/%u/%u is unknown; asking it to drop "
                 "it",
                 s->domid, it->domid, it->type, it->devid);
        send_backend_remove(c, it->domid, it->type, it->devid, 0, 0);
        return;
    }
    if (s->nseen == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        void *x = realloc(s->seen, cap * sizeof(*s->seen));
        if (!x)
            return;
        s->seen = x;
        s->cap = cap;
    }
    s->seen[s->nseen++] = *it;
    if (d.control_gref != it->control_gref ||
        d.backend_port != it->backend_port) {
        /* The backend's control page is the truth. */
        d.control_gref = it->control_gref;
        d.backend_port = it->backend_port;
        if (store_dev(STORE_DEV_ADD, it->domid, &d) == 0 &&
            registry_dev_put(broker.reg, it->domid, &d) == 0)
            write_page(it->domid);
    }
    registry_dev_set_state(broker.reg, it->domid, it->type, it->devid,
                           it->backend_state, it->frontend_state);
}

void backend_sync(struct conn *c, const struct noxs_proto_msg *m)
{
    struct sync_state *s = backend_state(conn_id(c));
    struct stale_arg a = {0};
    struct noxs_msg_dev it;
    size_t i;

    if (!s) {
        conn_reply_error(c, m->hdr.request, EINVAL);
        return;
    }
    for (i = 0; i < m->u.sync.count; i++) {
        noxs_proto_sync_item(m, i, &it);
        if (it.control_gref < NOXS_GREF_MIN || it.backend_port == 0 ||
            it.backend_port > NOXS_PORT_MAX) {
            conn_reply_error(c, m->hdr.request, EINVAL);
            return;
        }
    }
    for (i = 0; i < m->u.sync.count; i++) {
        noxs_proto_sync_item(m, i, &it);
        sync_item(c, s, &it);
    }
    if (m->u.sync.flags & NOXS_SYNC_FINAL) {
        /* What we know of this backend that it no longer has is gone. */
        a.s = s;
        registry_domain_foreach(broker.reg, stale_fn, &a);
        for (i = 0; i < a.n; i++) {
            if (find_pending_dev(a.domids[i], a.types[i], a.devids[i],
                                 P_REMOVE))
                continue;
            log_info("backend %u no longer has device %u/%u/%u; dropping it",
                     s->domid, a.domids[i], a.types[i], a.devids[i]);
            drop_dev(a.domids[i], a.types[i], a.devids[i]);
        }
        free(a.domids);
        free(a.types);
        free(a.devids);
        free(s->seen);
        s->seen = NULL;
        s->nseen = s->cap = 0;
        s->synced = 1;
        log_info("backend %u synchronised", s->domid);
    }
    conn_reply_empty(c, NOXS_MSG_BACKEND_SYNC, m->hdr.request);
}

void backend_state_report(struct conn *c, const struct noxs_proto_msg *m)
{
    struct sync_state *s = backend_state(conn_id(c));
    const struct noxs_msg_dev *it = &m->u.dev;
    struct reg_dev d;

    if (!s || !backend_serves(s, it->backend_domid, it->type) ||
        registry_dev_get(broker.reg, it->domid, it->type, it->devid, &d) < 0 ||
        d.backend_domid != it->backend_domid)
        return; /* one-way: nothing to answer */
    if (d.backend_state == it->backend_state &&
        d.frontend_state == it->frontend_state)
        return;
    registry_dev_set_state(broker.reg, it->domid, it->type, it->devid,
                           it->backend_state, it->frontend_state);
    d.backend_state = it->backend_state;
    d.frontend_state = it->frontend_state;
    tell_watchers(NOXS_EVENT_DEV_STATE, it->domid, &d);
}

/* A reply or error from a backend to one of our requests. */
void backend_answer(struct conn *c, const struct noxs_proto_msg *m)
{
    unsigned int req = m->hdr.type & ~NOXS_MSG_REPLY;
    struct pending *p;

    for (p = broker.pending; p; p = p->next)
        if (p->id == m->hdr.request && p->backend == conn_id(c))
            break;
    if (!p) {
        log_debug("backend answer to unknown request %u", m->hdr.request);
        return;
    }
    if (m->hdr.type != NOXS_MSG_ERROR &&
        !((p->kind == P_CREATE && req == NOXS_MSG_BACKEND_CREATE) ||
          (p->kind == P_REMOVE && req == NOXS_MSG_BACKEND_REMOVE) ||
          (p->kind == P_CONTROL && req == NOXS_MSG_BACKEND_CONTROL))) {
        log_warnx("backend %u answered request %u with %s; ignoring",
                  conn_backend_domid(c), m->hdr.request,
                  noxs_proto_type_name(m->hdr.type));
        return;
    }
    switch (p->kind) {
    case P_CREATE:
        create_done(p, m);
        break;
    case P_REMOVE:
        remove_done(p, m->hdr.type == NOXS_MSG_ERROR ? m->hdr.error : 0);
        break;
    case P_CONTROL:
        control_done(p, m);
        break;
    }
    free_pending(p);
}

/* Departed backends that did not come back in time: drop their devices. */
void expire_departed(uint64_t now, uint64_t *next)
{
    struct sync_state **sp, *s;
    size_t i;

    for (sp = &broker.departed; (s = *sp) != NULL;) {
        struct stale_arg a = {0};

        if (s->grace_until > now) {
            if (s->grace_until < *next)
                *next = s->grace_until;
            sp = &s->next;
            continue;
        }
        *sp = s->next;
        a.s = s;
        registry_domain_foreach(broker.reg, stale_fn, &a);
        log_info("backend %u did not come back: dropping its %zu device(s)",
                 s->domid, a.n);
        for (i = 0; i < a.n; i++)
            drop_dev(a.domids[i], a.types[i], a.devids[i]);
        free(a.domids);
        free(a.types);
        free(a.devids);
        free(s);
    }
}
