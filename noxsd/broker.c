/*
 * Requests and brokering: what noxsd does with each message.
 *
 * Ordering rules that make `kill -9` at any point safe:
 *   - domain create: the keeper creates the page, then the store records
 *     it, then the toolstack is answered. A page without a store record is
 *     unacknowledged and is destroyed when a restarted worker reconciles.
 *   - device add: the backend creates the device, then the store records
 *     it, then the page gets the entry and the guest is notified (by the
 *     worker itself, in memory it shares with the keeper: keeper_pages.c),
 *     then the toolstack is answered. A restarted worker rewrites every page
 *     from the store, and a backend's device the store does not know is
 *     removed when that backend re-synchronises.
 *   - removals: the entry is marked Closing in the page, the backend walks
 *     its control page to Closed, then the store records the removal, the
 *     page drops the entry and the toolstack is answered. If the store
 *     cannot record it (ENOSPC), nothing else happens: the entry stays,
 *     marked Closing, the toolstack gets the error, and a retry (which the
 *     backend answers at once: removal is idempotent there) finishes it.
 *     A destroy is the same with DOMAIN_DEL: the page is destroyed only
 *     once the store holds the record.
 *   - only a store that replayed cleanly may destroy pages: a keeper page
 *     it does not know is an unacknowledged create only if the store is
 *     whole. A damaged store (or none, beside a keeper with pages) makes
 *     the worker refuse to start rather than act on a partial view
 *     (broker_init, docs/NOXSD.md "Damaged store").
 *
 * Nothing waits: a request that needs the backend becomes a `pending`
 * with a deadline (ETIMEDOUT for the toolstack if the backend is silent).
 * A create that timed out is kept a while as a zombie so that a late
 * answer still gets the device removed from the backend.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noxsd.h"
#include "proto.h"

#define STORE_COMPACT_BYTES (4u << 20)

struct broker_state broker;

/* ---------------------------------------------------------------- */
/* Helpers                                                           */

void send_buf(struct conn *c)
{
    int len = noxs_proto_finish(broker.buf);

    if (len < 0) {
        log_warnx("message too large to send");
        return;
    }
    conn_send(c, broker.buf->data, (size_t)len);
}

void reply_error(uint64_t client, uint32_t req, int error)
{
    struct conn *c = conn_find(client);

    if (c)
        conn_reply_error(c, req, error);
}

void reply_empty(uint64_t client, unsigned int type, uint32_t req)
{
    struct conn *c = conn_find(client);

    if (c)
        conn_reply_empty(c, type, req);
}

void dev_to_msg(uint16_t domid, const struct reg_dev *d, struct noxs_msg_dev *m)
{
    memset(m, 0, sizeof(*m));
    m->domid = domid;
    m->type = d->type;
    m->devid = d->devid;
    m->backend_domid = d->backend_domid;
    m->backend_state = d->backend_state;
    m->frontend_state = d->frontend_state;
    m->control_gref = d->control_gref;
    m->backend_port = d->backend_port;
    m->flags = d->flags;
}

struct event_arg {
    uint16_t domid;
    const uint8_t *data;
    size_t len;
};

static void event_to(struct conn *c, void *arg)
{
    struct event_arg *e = arg;

    if (conn_watches(c, e->domid))
        conn_send(c, e->data, e->len);
}

void tell_watchers(uint32_t kind, uint16_t domid, const struct reg_dev *d)
{
    struct noxs_msg_event ev = {.kind = kind};
    struct event_arg a;
    int len;

    if (d)
        dev_to_msg(domid, d, &ev.dev);
    else
        ev.dev.domid = domid;
    noxs_proto_begin(broker.buf, NOXS_MSG_EVENT, 0, 0);
    noxs_proto_put(broker.buf, &ev, sizeof(ev));
    if ((len = noxs_proto_finish(broker.buf)) < 0)
        return;
    a.domid = domid;
    a.data = broker.buf->data;
    a.len = (size_t)len;
    conn_foreach(event_to, &a);
}

void keeper_lost(int rc)
{
    fatalx("the page keeper is gone (%s): device pages are lost; exiting so "
           "that a restarted noxsd reconciles",
           strerror(-rc));
}

/* Rewrite domid's device page from the registry (and notify the guest). */
int write_page(uint16_t domid)
{
    struct noxs_devpage_entry e[NOXS_DEVPAGE_MAX_ENTRIES];
    uint32_t i;
    int rc;

    if (registry_domain_get(broker.reg, domid, broker.info) < 0)
        return -ENOENT;
    memset(e, 0, sizeof(e));
    for (i = 0; i < broker.info->ndevs; i++) {
        const struct reg_dev *d = &broker.info->devs[i];
        e[i].type = d->type;
        e[i].flags = (uint16_t)(d->flags | NOXS_DEVPAGE_ENTRY_VALID);
        e[i].devid = d->devid;
        e[i].backend_domid = d->backend_domid;
        e[i].control_gref = d->control_gref;
        e[i].backend_port = d->backend_port;
    }
    rc = keeper_page_write(broker.keeper, domid, e, broker.info->ndevs);
    if (rc == -EPIPE)
        keeper_lost(rc);
    if (rc < 0)
        log_warnx("keeper: write page of domain %u: %s", domid, strerror(-rc));
    return rc;
}

static void maybe_compact(void)
{
    if (store_log_bytes(broker.store) > STORE_COMPACT_BYTES)
        broker_compact();
}

int store_rec(const struct store_rec *r)
{
    int rc = store_append(broker.store, r);

    if (rc < 0)
        log_warnx("store: append: %s", strerror(-rc));
    else
        maybe_compact();
    return rc;
}

int store_dev(uint16_t op, uint16_t domid, const struct reg_dev *d)
{
    struct store_rec r = {.op = op,
                          .domid = domid,
                          .type = d->type,
                          .devid = d->devid,
                          .backend_domid = d->backend_domid,
                          .gref = d->control_gref,
                          .port = d->backend_port};

    return store_rec(&r);
}

struct destroy *find_destroy(uint16_t domid)
{
    struct destroy *d;

    for (d = broker.destroys; d; d = d->next)
        if (d->domid == domid)
            return d;
    return NULL;
}

struct pending *find_pending_dev(uint16_t domid, uint16_t type, uint32_t devid,
                                 int kind)
{
    struct pending *p;

    for (p = broker.pending; p; p = p->next)
        if (p->kind == kind && !p->zombie && p->domid == domid &&
            p->type == type && p->devid == devid)
            return p;
    return NULL;
}

unsigned int pending_creates(uint16_t domid)
{
    struct pending *p;
    unsigned int n = 0;

    for (p = broker.pending; p; p = p->next)
        if (p->kind == P_CREATE && !p->zombie && p->domid == domid)
            n++;
    return n;
}

struct pending *new_pending(int kind, uint64_t backend, int timeout_ms)
{
    struct pending *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->id = ++broker.next_id;
    if (p->id == 0)
        p->id = ++broker.next_id;
    p->kind = kind;
    p->backend = backend;
    p->deadline = now_ms() + (uint64_t)timeout_ms;
    p->next = broker.pending;
    broker.pending = p;
    return p;
}

void free_pending(struct pending *p)
{
    struct pending **pp;

    for (pp = &broker.pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    free(p);
}

struct sync_state *backend_state(uint64_t conn)
{
    struct sync_state *s;

    for (s = broker.backends; s; s = s->next)
        if (s->conn == conn)
            return s;
    return NULL;
}

int backend_serves(const struct sync_state *s, uint16_t domid, uint16_t type)
{
    size_t i;

    if (s->domid != domid)
        return 0;
    for (i = 0; i < s->ntypes; i++)
        if (s->types[i] == type)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- */
/* Entry points                                                      */

/*
 * What noxsd does with each request. Who may send it is not here but in
 * the message's row in libnoxs/proto.c (noxs_proto_desc), checked before
 * any handler runs.
 */
typedef void handler_fn(struct conn *c, const struct noxs_proto_msg *m);
static const struct {
    uint16_t type;
    handler_fn *fn;
} handlers[] = {
    {NOXS_MSG_DOMAIN_CREATE, domain_create},
    {NOXS_MSG_DOMAIN_DESTROY, domain_destroy},
    {NOXS_MSG_DOMAIN_LIST, domain_list},
    {NOXS_MSG_DEV_ADD, dev_add},
    {NOXS_MSG_DEV_REMOVE, dev_remove},
    {NOXS_MSG_DEV_LIST, dev_list},
    {NOXS_MSG_STATUS, status_request},
    {NOXS_MSG_DEV_CONTROL, dev_control},
    {NOXS_MSG_WATCH, watch_request},
    {NOXS_MSG_BACKEND_REGISTER, backend_register},
    {NOXS_MSG_BACKEND_SYNC, backend_sync},
    {NOXS_MSG_BACKEND_STATE, backend_state_report},
};

static handler_fn *handler(unsigned int type)
{
    size_t i;

    for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
        if (handlers[i].type == type)
            return handlers[i].fn;
    return NULL;
}

/* May c send d's request? An access value noxsd does not know is no. */
static int may_send(struct conn *c, const struct noxs_msg_desc *d)
{
    switch (d->access) {
    case NOXS_MSGA_ANYONE:
        return 1;
    case NOXS_MSGA_PRIVILEGED:
        return conn_privileged(c);
    case NOXS_MSGA_BACKEND:
        return backend_state(conn_id(c)) != NULL;
    default:
        return 0;
    }
}

static void refuse(struct conn *c, const struct noxs_proto_msg *m,
                   const struct noxs_msg_desc *d)
{
    if (conn_log_refusal(c))
        log_info("refusing %s from %s (connection %llu; further refusals "
                 "on it are not logged)",
                 d->name,
                 d->access == NOXS_MSGA_BACKEND
                     ? "a connection that registered no backend"
                     : "an unprivileged client",
                 (unsigned long long)conn_id(c));
    if (d->has_reply) /* a one-way message gets no answer, even this one */
        conn_reply_error(c, m->hdr.request, EPERM);
}

void broker_handle(struct conn *c, const struct noxs_proto_msg *m)
{
    unsigned int type = m->hdr.type;
    const struct noxs_msg_desc *d = noxs_proto_desc(type);
    handler_fn *fn = handler(type);

    if ((type & NOXS_MSG_REPLY) || type == NOXS_MSG_ERROR) {
        if (backend_state(conn_id(c)) != NULL) {
            backend_answer(c, m);
            return;
        }
    } else if (d && d->direction == NOXS_MSGD_TO_NOXSD && fn) {
        if (may_send(c, d))
            fn(c, m);
        else
            refuse(c, m, d);
        return;
    }
    if (conn_log_refusal(c))
        log_warnx("connection %llu sent %s, which noxsd does not accept; "
                  "closing it",
                  (unsigned long long)conn_id(c), noxs_proto_type_name(type));
    conn_reply_error(c, m->hdr.request, EPROTO);
    conn_close_after_flush(c);
}

void broker_conn_closed(struct conn *c)
{
    uint64_t id = conn_id(c);
    struct sync_state *s, **sp;
    struct pending *p, *next;
    struct stale_arg a = {0};
    size_t i;

    for (p = broker.pending; p; p = p->next)
        if (p->client == id)
            p->client = 0;
    for (sp = &broker.backends; *sp; sp = &(*sp)->next)
        if ((*sp)->conn == id)
            break;
    if ((s = *sp) == NULL)
        return;
    *sp = s->next;
    for (i = 0; i < s->ntypes; i++)
        registry_backend_remove(broker.reg, s->domid, s->types[i], id);
    for (p = broker.pending; p; p = next) {
        next = p->next;
        if (p->backend != id)
            continue;
        switch (p->kind) {
        case P_CREATE:
            if (!p->zombie)
                reply_error(p->client, p->client_req, ECONNRESET);
            break;
        case P_REMOVE:
            remove_done(p, ECONNRESET);
            break;
        case P_CONTROL:
            reply_error(p->client, p->client_req, EPIPE);
            break;
        }
        free_pending(p);
    }
    s->nseen = 0;
    free(s->seen);
    s->seen = NULL;
    s->cap = 0;
    a.s = s;
    registry_domain_foreach(broker.reg, stale_fn, &a);
    if (a.n && s->keep && broker.o->backend_grace_ms > 0) {
        /*
         * A backend under a service manager's fd store keeps its control
         * pages and ports across its own restarts; its devices wait for
         * it, unchanged, for the grace period. A backend without one
         * took its pages with it: its devices go now.
         */
        log_info("backend %u went away: its %zu device(s) wait for it "
                 "(%d ms)",
                 s->domid, a.n, broker.o->backend_grace_ms);
        s->conn = 0;
        s->grace_until = now_ms() + (uint64_t)broker.o->backend_grace_ms;
        s->next = broker.departed;
        broker.departed = s;
        free(a.domids);
        free(a.types);
        free(a.devids);
        return;
    }
    /* Its control pages died with it: drop its devices. */
    if (a.n)
        log_info("backend %u went away: dropping its %zu device(s)", s->domid,
                 a.n);
    else
        log_info("backend %u went away", s->domid);
    for (i = 0; i < a.n; i++)
        drop_dev(a.domids[i], a.types[i], a.devids[i]);
    free(a.domids);
    free(a.types);
    free(a.devids);
    free(s->seen);
    free(s);
}

int broker_timeouts(void)
{
    uint64_t now = now_ms(), next = UINT64_MAX;
    struct pending *p, *n;

    expire_departed(now, &next);

    for (p = broker.pending; p; p = n) {
        n = p->next;
        if (p->deadline > now) {
            if (p->deadline < next)
                next = p->deadline;
            continue;
        }
        if (p->zombie) {
            free_pending(p);
            continue;
        }
        switch (p->kind) {
        case P_CREATE:
            log_warnx("backend %u did not answer create of %u/%u/%u",
                      p->backend_domid, p->domid, p->type, p->devid);
            reply_error(p->client, p->client_req, ETIMEDOUT);
            p->zombie = 1;
            p->deadline = now + 10u * (uint64_t)broker.o->backend_timeout_ms;
            if (p->deadline < next)
                next = p->deadline;
            continue;
        case P_REMOVE:
            log_warnx("backend %u did not answer remove of %u/%u/%u; "
                      "dropping the entry",
                      p->backend_domid, p->domid, p->type, p->devid);
            remove_done(p, ETIMEDOUT);
            break;
        case P_CONTROL:
            reply_error(p->client, p->client_req, ETIMEDOUT);
            break;
        }
        /* remove_done may have freed others (no: it only adds): restart. */
        free_pending(p);
        n = broker.pending;
    }
    if (next == UINT64_MAX)
        return -1;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

void broker_keeper_event(void)
{
    keeper_lost(-EPIPE);
}

int broker_keeper_fd(void)
{
    return keeper_fd(broker.keeper);
}
