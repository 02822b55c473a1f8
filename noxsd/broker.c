/*
 * Requests and brokering: what noxsd does with each message.
 *
 * Ordering rules that make `kill -9` at any point safe:
 *   - domain create: the keeper creates the page, then the store records
 *     it, then the toolstack is answered. A page without a store record is
 *     unacknowledged and is destroyed when a restarted worker reconciles.
 *   - device add: the backend creates the device, then the store records
 *     it, then the keeper writes the entry (and notifies the guest), then
 *     the toolstack is answered. A restarted worker rewrites every page
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

#define P_CREATE 1
#define P_REMOVE 2
#define P_CONTROL 3

#define CONTROL_MAX_TIMEOUT_MS (10 * 60 * 1000)
#define STORE_COMPACT_BYTES (4u << 20)

struct destroy {
    struct destroy *next;
    uint16_t domid;
    uint64_t client;
    uint32_t client_req;
    unsigned int outstanding;
    int reaped; /* the hypervisor said the domain died (domwatch.c) */
};

struct pending {
    struct pending *next;
    uint32_t id; /* our request id towards the backend */
    int kind;
    uint64_t backend;
    uint64_t client; /* 0: nobody to answer */
    uint32_t client_req;
    uint16_t domid, type, backend_domid;
    uint32_t devid;
    uint64_t deadline;
    int zombie; /* create whose client already got ETIMEDOUT */
    struct destroy *destroy;
};

/* A backend's BACKEND_SYNC in progress: the devices it listed so far. */
struct sync_state {
    struct sync_state *next;
    uint64_t conn;
    uint16_t domid;
    uint16_t types[NOXS_PROTO_MAX_TYPES];
    size_t ntypes;
    struct noxs_msg_dev *seen;
    size_t nseen, cap;
    int registered;
    int synced;
    int keep;             /* NOXS_REGISTER_KEEP: devices outlive it */
    uint64_t grace_until; /* departed: its devices wait until then */
};

static struct {
    const struct noxsd_opts *o;
    struct registry *reg;
    struct store *store;
    struct keeper_conn *keeper;
    struct pending *pending;
    struct destroy *destroys;
    struct sync_state *backends;
    struct sync_state *departed; /* backends whose devices wait for them */
    uint32_t next_id;
    uint64_t start_ms;
    struct noxs_proto_buf *buf;
    struct reg_domain_info *info; /* scratch */
} B;

/* ---------------------------------------------------------------- */
/* Helpers                                                           */

static void send_buf(struct conn *c)
{
    int len = noxs_proto_finish(B.buf);

    if (len < 0) {
        log_warnx("message too large to send");
        return;
    }
    conn_send(c, B.buf->data, (size_t)len);
}

static void reply_error(uint64_t client, uint32_t req, int error)
{
    struct conn *c = conn_find(client);

    if (c)
        conn_reply_error(c, req, error);
}

static void reply_empty(uint64_t client, unsigned int type, uint32_t req)
{
    struct conn *c = conn_find(client);

    if (c)
        conn_reply_empty(c, type, req);
}

static void dev_to_msg(uint16_t domid, const struct reg_dev *d,
                       struct noxs_msg_dev *m)
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

static void event(uint32_t kind, uint16_t domid, const struct reg_dev *d)
{
    struct noxs_msg_event ev = {.kind = kind};
    struct event_arg a;
    int len;

    if (d)
        dev_to_msg(domid, d, &ev.dev);
    else
        ev.dev.domid = domid;
    noxs_proto_begin(B.buf, NOXS_MSG_EVENT, 0, 0);
    noxs_proto_put(B.buf, &ev, sizeof(ev));
    if ((len = noxs_proto_finish(B.buf)) < 0)
        return;
    a.domid = domid;
    a.data = B.buf->data;
    a.len = (size_t)len;
    conn_foreach(event_to, &a);
}

static void keeper_lost(int rc) __attribute__((noreturn));
static void keeper_lost(int rc)
{
    fatalx("the page keeper is gone (%s): device pages are lost; exiting so "
           "that a restarted noxsd reconciles",
           strerror(-rc));
}

/* Rewrite domid's device page from the registry (and notify the guest). */
static int write_page(uint16_t domid)
{
    struct noxs_devpage_entry e[NOXS_DEVPAGE_MAX_ENTRIES];
    uint32_t i;
    int rc;

    if (registry_domain_get(B.reg, domid, B.info) < 0)
        return -ENOENT;
    memset(e, 0, sizeof(e));
    for (i = 0; i < B.info->ndevs; i++) {
        const struct reg_dev *d = &B.info->devs[i];
        e[i].type = d->type;
        e[i].flags = (uint16_t)(d->flags | NOXS_DEVPAGE_ENTRY_VALID);
        e[i].devid = d->devid;
        e[i].backend_domid = d->backend_domid;
        e[i].control_gref = d->control_gref;
        e[i].backend_port = d->backend_port;
    }
    rc = keeper_page_write(B.keeper, domid, e, B.info->ndevs);
    if (rc == -EPIPE)
        keeper_lost(rc);
    if (rc < 0)
        log_warnx("keeper: write page of domain %u: %s", domid,
                  strerror(-rc));
    return rc;
}

static void maybe_compact(void)
{
    if (store_log_bytes(B.store) > STORE_COMPACT_BYTES)
        broker_compact();
}

static int store_rec(const struct store_rec *r)
{
    int rc = store_append(B.store, r);

    if (rc < 0)
        log_warnx("store: append: %s", strerror(-rc));
    else
        maybe_compact();
    return rc;
}

static int store_dev(uint16_t op, uint16_t domid, const struct reg_dev *d)
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

static struct destroy *find_destroy(uint16_t domid)
{
    struct destroy *d;

    for (d = B.destroys; d; d = d->next)
        if (d->domid == domid)
            return d;
    return NULL;
}

static struct pending *find_pending_dev(uint16_t domid, uint16_t type,
                                        uint32_t devid, int kind)
{
    struct pending *p;

    for (p = B.pending; p; p = p->next)
        if (p->kind == kind && !p->zombie && p->domid == domid &&
            p->type == type && p->devid == devid)
            return p;
    return NULL;
}

static unsigned int pending_creates(uint16_t domid)
{
    struct pending *p;
    unsigned int n = 0;

    for (p = B.pending; p; p = p->next)
        if (p->kind == P_CREATE && !p->zombie && p->domid == domid)
            n++;
    return n;
}

static struct pending *new_pending(int kind, uint64_t backend, int timeout_ms)
{
    struct pending *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->id = ++B.next_id;
    if (p->id == 0)
        p->id = ++B.next_id;
    p->kind = kind;
    p->backend = backend;
    p->deadline = now_ms() + (uint64_t)timeout_ms;
    p->next = B.pending;
    B.pending = p;
    return p;
}

static void free_pending(struct pending *p)
{
    struct pending **pp;

    for (pp = &B.pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    free(p);
}

static struct sync_state *backend_state(uint64_t conn)
{
    struct sync_state *s;

    for (s = B.backends; s; s = s->next)
        if (s->conn == conn)
            return s;
    return NULL;
}

static int backend_serves(const struct sync_state *s, uint16_t domid,
                          uint16_t type)
{
    size_t i;

    if (s->domid != domid)
        return 0;
    for (i = 0; i < s->ntypes; i++)
        if (s->types[i] == type)
            return 1;
    return 0;
}

/* Send BACKEND_REMOVE for a device; the pending answers client (or not). */
static struct pending *send_backend_remove(struct conn *be, uint16_t domid,
                                           uint16_t type, uint32_t devid,
                                           uint64_t client, uint32_t req)
{
    struct noxs_msg_dev_id id = {domid, type, devid};
    struct pending *p;

    p = new_pending(P_REMOVE, conn_id(be), B.o->backend_timeout_ms);
    if (!p)
        return NULL;
    p->domid = domid;
    p->type = type;
    p->devid = devid;
    p->backend_domid = conn_backend_domid(be);
    p->client = client;
    p->client_req = req;
    noxs_proto_begin(B.buf, NOXS_MSG_BACKEND_REMOVE, p->id, 0);
    noxs_proto_put(B.buf, &id, sizeof(id));
    send_buf(be);
    return p;
}

static void finish_destroy(struct destroy *d);

/* A device as the registry holds a live one (states unknown yet). */
static struct reg_dev live_dev(uint16_t type, uint32_t devid,
                               uint16_t backend_domid, uint32_t gref,
                               uint32_t port)
{
    struct reg_dev d = {.type = type,
                        .flags = NOXS_DEVPAGE_ENTRY_VALID,
                        .devid = devid,
                        .backend_domid = backend_domid,
                        .control_gref = gref,
                        .backend_port = port};

    return d;
}

/*
 * Drop a device: store, registry, page, watchers. 0, or -errno if the
 * store could not record it: then the device stays in the registry and
 * the page as it was (marked Closing if a removal is under way), so that
 * what is acknowledged and what is stored never differ.
 */
static int drop_dev(uint16_t domid, uint16_t type, uint32_t devid)
{
    struct reg_dev d;
    int rc;

    if (registry_dev_get(B.reg, domid, type, devid, &d) < 0)
        return 0;
    if ((rc = store_dev(STORE_DEV_DEL, domid, &d)) < 0) {
        log_warnx("domain %u: removal of device %u/%u not stored (%s); it "
                  "stays until a retry",
                  domid, type, devid, strerror(-rc));
        return rc;
    }
    registry_dev_remove(B.reg, domid, type, devid);
    write_page(domid);
    event(NOXS_EVENT_DEV_REMOVED, domid, &d);
    log_debug("domain %u: device %u/%u removed", domid, type, devid);
    return 0;
}

/* A BACKEND_REMOVE finished (answer, error, timeout or backend gone). */
static void remove_done(struct pending *p, int err)
{
    struct destroy *d = p->destroy;
    int rc;

    rc = drop_dev(p->domid, p->type, p->devid);
    if (p->client) {
        if (err && err != ETIMEDOUT)
            log_debug("backend answered remove with %s", strerror(err));
        if (rc < 0)
            reply_error(p->client, p->client_req, -rc);
        else
            reply_empty(p->client, NOXS_MSG_DEV_REMOVE, p->client_req);
    }
    /* A device left behind goes with the domain's DOMAIN_DEL, or stays
     * with the domain if that cannot be stored either (finish_destroy). */
    if (d && --d->outstanding == 0)
        finish_destroy(d);
}

/* ---------------------------------------------------------------- */
/* Toolstack requests                                                */

static int reap_if_dead(uint16_t domid);

static void domain_reply(struct conn *c, uint32_t req, int err,
                         const struct reg_domain_info *info)
{
    struct noxs_msg_domain d = {.domid = info->domid,
                                .owner_domid = info->owner_domid,
                                .gref = info->gref,
                                .port = info->port,
                                .ndevices = info->ndevs};

    noxs_proto_begin(B.buf, NOXS_MSG_DOMAIN_CREATE | NOXS_MSG_REPLY, req, err);
    noxs_proto_put(B.buf, &d, sizeof(d));
    send_buf(c);
}

static void domain_create(struct conn *c, const struct noxs_proto_msg *m)
{
    uint16_t domid = m->u.domid.domid;
    struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = domid};
    uint32_t gref, port;
    int rc;

    if (registry_domain_get(B.reg, domid, B.info) == 0 &&
        !reap_if_dead(domid)) {
        domain_reply(c, m->hdr.request, EEXIST, B.info);
        return;
    }
    /* A dead domain's page is never handed out for its reused domid: it
     * is being released (EBUSY), or was at once and we go on. */
    if (find_destroy(domid)) {
        conn_reply_error(c, m->hdr.request, EBUSY);
        return;
    }
    rc = keeper_page_create(B.keeper, domid, &gref, &port);
    if (rc == -EPIPE)
        keeper_lost(rc);
    if (rc < 0) {
        conn_reply_error(c, m->hdr.request, -rc);
        return;
    }
    r.owner_domid = B.o->domid;
    r.gref = gref;
    r.port = port;
    if ((rc = store_rec(&r)) < 0) {
        keeper_page_destroy(B.keeper, domid);
        conn_reply_error(c, m->hdr.request, -rc);
        return;
    }
    registry_domain_add(B.reg, domid, B.o->domid, gref, port);
    registry_domain_get(B.reg, domid, B.info);
    domain_reply(c, m->hdr.request, 0, B.info);
    log_info("domain %u: device page gref %u, notify port %u", domid, gref,
             port);
    event(NOXS_EVENT_DOMAIN_CREATED, domid, NULL);
    domwatch_registered(domid);
}

/*
 * Every device of a destroy is dropped (or could not be): record the
 * domain's end, then destroy its page. If the store cannot record it the
 * domain stays, with whatever devices could not be dropped marked
 * Closing, and the toolstack gets the error; a retry finishes the job.
 */
static void finish_destroy(struct destroy *d)
{
    struct store_rec r = {.op = STORE_DOMAIN_DEL, .domid = d->domid};
    struct destroy **pp;
    int rc;

    for (pp = &B.destroys; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    if ((rc = store_rec(&r)) < 0) {
        log_warnx("domain %u: destroy not stored (%s); the domain stays "
                  "until a retry",
                  d->domid, strerror(-rc));
        reply_error(d->client, d->client_req, -rc);
        free(d);
        return;
    }
    registry_domain_remove(B.reg, d->domid);
    rc = keeper_page_destroy(B.keeper, d->domid);
    if (rc == -EPIPE)
        keeper_lost(rc);
    reply_empty(d->client, NOXS_MSG_DOMAIN_DESTROY, d->client_req);
    log_info("domain %u: %s", d->domid, d->reaped ? "released" : "destroyed");
    event(d->reaped ? NOXS_EVENT_DOMAIN_RELEASED : NOXS_EVENT_DOMAIN_DESTROYED,
          d->domid, NULL);
    free(d);
}

/*
 * End domain domid (its devices are in B.info): every device is marked
 * Closing, removed through its backend (which releases everything it
 * holds for the domain) or dropped at once when its backend is gone, and
 * finish_destroy() records the end and destroys the page when the last
 * answer is in. client (0: nobody) is answered then. 0, or -ENOMEM.
 */
static int start_destroy(uint16_t domid, uint64_t client, uint32_t req,
                         int reaped)
{
    struct reg_domain_info *info;
    struct destroy *d;
    uint32_t i;

    if ((d = calloc(1, sizeof(*d))) == NULL ||
        (info = malloc(sizeof(*info))) == NULL) {
        free(d);
        return -ENOMEM;
    }
    *info = *B.info;
    d->domid = domid;
    d->client = client;
    d->client_req = req;
    d->reaped = reaped;
    d->outstanding = 1; /* held until the loop below is done */
    d->next = B.destroys;
    B.destroys = d;

    for (i = 0; i < info->ndevs; i++)
        registry_dev_set_flags(B.reg, domid, info->devs[i].type,
                               info->devs[i].devid,
                               NOXS_DEVPAGE_ENTRY_VALID |
                                   NOXS_DEVPAGE_ENTRY_CLOSING);
    if (info->ndevs)
        write_page(domid);
    for (i = 0; i < info->ndevs; i++) {
        const struct reg_dev *dev = &info->devs[i];
        struct pending *p;
        struct conn *be;
        uint64_t id;

        if (find_pending_dev(domid, dev->type, dev->devid, P_REMOVE))
            continue; /* its dev-rm drops it; we wait for nothing */
        if (registry_backend_get(B.reg, dev->backend_domid, dev->type,
                                 &id) == 0 &&
            (be = conn_find(id)) != NULL &&
            (p = send_backend_remove(be, domid, dev->type, dev->devid, 0,
                                     0)) != NULL) {
            p->destroy = d;
            d->outstanding++;
        } else {
            drop_dev(domid, dev->type, dev->devid);
        }
    }
    free(info);
    if (--d->outstanding == 0)
        finish_destroy(d);
    return 0;
}

static void domain_destroy(struct conn *c, const struct noxs_proto_msg *m)
{
    uint16_t domid = m->u.domid.domid;
    struct destroy *d;

    if (registry_domain_get(B.reg, domid, B.info) < 0) {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    if ((d = find_destroy(domid)) != NULL) {
        /* The toolstack's destroy after the domain died: wait for ours. */
        if (d->reaped && d->client == 0) {
            d->client = conn_id(c);
            d->client_req = m->hdr.request;
        } else {
            conn_reply_error(c, m->hdr.request, EBUSY);
        }
        return;
    }
    if (start_destroy(domid, conn_id(c), m->hdr.request, 0) < 0)
        conn_reply_error(c, m->hdr.request, ENOMEM);
}

/* ---------------------------------------------------------------- */
/* Domain death (the hypervisor's word, from domwatch.c)             */

/*
 * The domain died: end it as domain-destroy does, with nobody to answer
 * (a domain-destroy that comes meanwhile joins it) and a DOMAIN_RELEASED
 * event at the end.
 */
static void reap_domain(uint16_t domid, const char *why)
{
    if (find_destroy(domid) || registry_domain_get(B.reg, domid, B.info) < 0)
        return;
    log_info("domain %u %s: releasing its %u device(s) and its page", domid,
             why, B.info->ndevs);
    if (start_destroy(domid, 0, 0, 1) < 0)
        log_warnx("domain %u %s, but out of memory to release it", domid,
                  why);
}

/* What the hypervisor says of one registered domain means it died. */
static const char *died(uint16_t domid, unsigned int state,
                        const uint8_t handle[16])
{
    uint8_t seen_handle[16];
    int seen = registry_domain_seen(B.reg, domid, seen_handle);

    if (seen < 0)
        return NULL;
    switch (state) {
    case DW_DYING:
        return "is dying";
    case DW_ALIVE:
        if (!seen) {
            registry_domain_set_seen(B.reg, domid, handle);
            log_debug("domain %u: the hypervisor lists it running", domid);
            return NULL;
        }
        return memcmp(seen_handle, handle, 16) ? "was replaced by another "
                                                 "domain with its id"
                                               : NULL;
    default:
        /* Not listed: gone if it ran, else not built yet. */
        return seen ? "is gone" : NULL;
    }
}

void broker_domain_exception(uint16_t domid)
{
    log_debug("domain %u: shut down, dying or gone", domid);
    event(NOXS_EVENT_DOMAIN_EXCEPTION, domid, NULL);
}

size_t broker_domains_check(const uint8_t *state, const uint8_t (*handle)[16])
{
    uint16_t *ids = malloc((NOXS_DOMID_MAX + 1) * sizeof(*ids));
    size_t n, i, unseen = 0;
    uint8_t h[16];
    const char *why;

    if (!ids)
        return 1; /* look again later */
    n = registry_domids(B.reg, ids, NOXS_DOMID_MAX + 1);
    for (i = 0; i < n; i++) {
        if (find_destroy(ids[i]))
            continue;
        if ((why = died(ids[i], state[ids[i]], handle[ids[i]])) != NULL)
            reap_domain(ids[i], why);
        else if (registry_domain_seen(B.reg, ids[i], h) == 0)
            unseen++;
    }
    free(ids);
    return unseen;
}

/* domid is registered: if its domain died, start releasing it (1). */
static int reap_if_dead(uint16_t domid)
{
    uint8_t handle[16];
    const char *why;
    int state;

    if (find_destroy(domid))
        return 1;
    if ((state = domwatch_query(domid, handle)) < 0 ||
        (why = died(domid, (unsigned int)state, handle)) == NULL)
        return 0;
    reap_domain(domid, why);
    return 1;
}

static void dev_add(struct conn *c, const struct noxs_proto_msg *m)
{
    const struct noxs_msg_dev_add *a = &m->u.dev_add;
    struct pending *p;
    struct reg_dev d;
    struct conn *be;
    uint64_t id;
    size_t i;

    if (registry_domain_get(B.reg, a->domid, B.info) < 0 ||
        find_destroy(a->domid)) {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    if (registry_dev_get(B.reg, a->domid, a->type, a->devid, &d) == 0 ||
        find_pending_dev(a->domid, a->type, a->devid, P_CREATE)) {
        conn_reply_error(c, m->hdr.request, EEXIST);
        return;
    }
    if (find_pending_dev(a->domid, a->type, a->devid, P_REMOVE)) {
        conn_reply_error(c, m->hdr.request, EBUSY);
        return;
    }
    if (B.info->ndevs + pending_creates(a->domid) >=
        NOXS_DEVPAGE_MAX_ENTRIES) {
        conn_reply_error(c, m->hdr.request, ENOSPC);
        return;
    }
    if (registry_backend_get(B.reg, a->backend_domid, a->type, &id) < 0 ||
        (be = conn_find(id)) == NULL) {
        conn_reply_error(c, m->hdr.request, ENODEV);
        return;
    }
    if ((p = new_pending(P_CREATE, id, B.o->backend_timeout_ms)) == NULL) {
        conn_reply_error(c, m->hdr.request, ENOMEM);
        return;
    }
    p->client = conn_id(c);
    p->client_req = m->hdr.request;
    p->domid = a->domid;
    p->type = a->type;
    p->devid = a->devid;
    p->backend_domid = a->backend_domid;
    noxs_proto_begin(B.buf, NOXS_MSG_BACKEND_CREATE, p->id, 0);
    noxs_proto_put(B.buf, a, sizeof(*a));
    for (i = 0; i < m->nparams; i++)
        noxs_proto_put_param(B.buf, m->params[i].key, m->params[i].value);
    send_buf(be);
}

static void create_done(struct pending *p, const struct noxs_proto_msg *m)
{
    struct reg_dev d = {0};
    struct noxs_msg_dev out;
    struct conn *be = conn_find(p->backend), *c;
    int err = m->hdr.type == NOXS_MSG_ERROR ? m->hdr.error : 0;
    int rc;

    if (!err && (m->u.dev_ref.control_gref < NOXS_GREF_MIN ||
                 m->u.dev_ref.backend_port == 0 ||
                 m->u.dev_ref.backend_port > NOXS_PORT_MAX)) {
        log_warnx("backend %u answered create with gref %u port %u; "
                  "refusing",
                  p->backend_domid, m->u.dev_ref.control_gref,
                  m->u.dev_ref.backend_port);
        err = EPROTO;
        if (be)
            send_backend_remove(be, p->domid, p->type, p->devid, 0, 0);
    } else if (!err && (p->zombie ||
                        registry_domain_get(B.reg, p->domid, B.info) < 0 ||
                        find_destroy(p->domid))) {
        /* Too late, or the domain went away meanwhile. */
        err = p->zombie ? ETIMEDOUT : ENOENT;
        if (be)
            send_backend_remove(be, p->domid, p->type, p->devid, 0, 0);
    }
    if (p->zombie)
        return;
    if (err) {
        reply_error(p->client, p->client_req, err);
        return;
    }
    d = live_dev(p->type, p->devid, p->backend_domid,
                 m->u.dev_ref.control_gref, m->u.dev_ref.backend_port);
    d.backend_state = NOXS_STATE_INITWAIT;
    if ((rc = store_dev(STORE_DEV_ADD, p->domid, &d)) < 0 ||
        (rc = registry_dev_put(B.reg, p->domid, &d)) < 0) {
        if (be)
            send_backend_remove(be, p->domid, p->type, p->devid, 0, 0);
        reply_error(p->client, p->client_req, -rc);
        return;
    }
    write_page(p->domid);
    if ((c = conn_find(p->client)) != NULL) {
        dev_to_msg(p->domid, &d, &out);
        noxs_proto_begin(B.buf, NOXS_MSG_DEV_ADD | NOXS_MSG_REPLY,
                         p->client_req, 0);
        noxs_proto_put(B.buf, &out, sizeof(out));
        send_buf(c);
    }
    log_debug("domain %u: device %u/%u added (gref %u port %u)", p->domid,
              d.type, d.devid, d.control_gref, d.backend_port);
    event(NOXS_EVENT_DEV_ADDED, p->domid, &d);
}

static void dev_remove(struct conn *c, const struct noxs_proto_msg *m)
{
    const struct noxs_msg_dev_id *id = &m->u.dev_id;
    struct reg_dev d;
    struct conn *be;
    uint64_t bid;
    int rc;

    if (registry_dev_get(B.reg, id->domid, id->type, id->devid, &d) < 0) {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    if (find_destroy(id->domid) ||
        find_pending_dev(id->domid, id->type, id->devid, P_REMOVE)) {
        conn_reply_error(c, m->hdr.request, EBUSY);
        return;
    }
    registry_dev_set_flags(B.reg, id->domid, id->type, id->devid,
                           NOXS_DEVPAGE_ENTRY_VALID |
                               NOXS_DEVPAGE_ENTRY_CLOSING);
    write_page(id->domid);
    if (registry_backend_get(B.reg, d.backend_domid, d.type, &bid) == 0 &&
        (be = conn_find(bid)) != NULL &&
        send_backend_remove(be, id->domid, id->type, id->devid, conn_id(c),
                            m->hdr.request) != NULL)
        return;
    if ((rc = drop_dev(id->domid, id->type, id->devid)) < 0)
        conn_reply_error(c, m->hdr.request, -rc);
    else
        conn_reply_empty(c, NOXS_MSG_DEV_REMOVE, m->hdr.request);
}

static void send_dev_items(struct conn *c, uint32_t req,
                           const struct reg_domain_info *info)
{
    struct noxs_msg_dev out;
    uint32_t i;

    for (i = 0; i < info->ndevs; i++) {
        dev_to_msg(info->domid, &info->devs[i], &out);
        noxs_proto_begin(B.buf, NOXS_MSG_DEV_ITEM, req, 0);
        noxs_proto_put(B.buf, &out, sizeof(out));
        send_buf(c);
    }
}

struct list_arg {
    struct conn *c;
    uint32_t req;
};

static int list_devs_fn(const struct reg_domain_info *info, void *arg)
{
    struct list_arg *a = arg;

    send_dev_items(a->c, a->req, info);
    return 0;
}

static int list_domains_fn(const struct reg_domain_info *info, void *arg)
{
    struct list_arg *a = arg;
    struct noxs_msg_domain d = {.domid = info->domid,
                                .owner_domid = info->owner_domid,
                                .gref = info->gref,
                                .port = info->port,
                                .ndevices = info->ndevs};

    noxs_proto_begin(B.buf, NOXS_MSG_DOMAIN_ITEM, a->req, 0);
    noxs_proto_put(B.buf, &d, sizeof(d));
    send_buf(a->c);
    return 0;
}

static void dev_list(struct conn *c, const struct noxs_proto_msg *m)
{
    struct list_arg a = {c, m->hdr.request};

    if (m->u.domid.domid == NOXS_DOMID_ANY) {
        registry_domain_foreach(B.reg, list_devs_fn, &a);
    } else if (registry_domain_get(B.reg, m->u.domid.domid, B.info) == 0) {
        send_dev_items(c, m->hdr.request, B.info);
    } else {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    noxs_proto_simple(B.buf, NOXS_MSG_END, m->hdr.request, 0);
    send_buf(c);
}

static void domain_list(struct conn *c, const struct noxs_proto_msg *m)
{
    struct list_arg a = {c, m->hdr.request};

    registry_domain_foreach(B.reg, list_domains_fn, &a);
    noxs_proto_simple(B.buf, NOXS_MSG_END, m->hdr.request, 0);
    send_buf(c);
}

static uint64_t self_rss(void)
{
    unsigned long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    uint64_t rss = 0;

    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    return rss;
}

static void status(struct conn *c, const struct noxs_proto_msg *m)
{
    struct noxs_msg_status st = {0};
    struct keeper_msg *k = malloc(sizeof(*k));
    int rc;

    st.version = NOXS_PROTO_VERSION;
    st.pid = (uint32_t)getpid();
    st.ndomains = (uint32_t)registry_ndomains(B.reg);
    st.ndevices = (uint32_t)registry_ndevices(B.reg);
    st.nbackends = (uint32_t)registry_nbackends(B.reg);
    st.uptime_ms = now_ms() - B.start_ms;
    st.rss_bytes = self_rss();
    if (k && (rc = keeper_status(B.keeper, k)) == 0) {
        st.keeper_pid = k->pid;
        st.rss_bytes += k->rss_bytes;
        st.restarts = k->restarts;
    } else if (k && rc == -EPIPE) {
        keeper_lost(rc);
    }
    free(k);
    noxs_proto_begin(B.buf, NOXS_MSG_STATUS | NOXS_MSG_REPLY, m->hdr.request,
                     0);
    noxs_proto_put(B.buf, &st, sizeof(st));
    send_buf(c);
}

static void dev_control(struct conn *c, const struct noxs_proto_msg *m)
{
    struct noxs_msg_control ctl = m->u.control;
    struct reg_dev d;
    struct pending *p;
    struct conn *be;
    uint64_t id;
    int timeout;

    if (registry_dev_get(B.reg, ctl.domid, ctl.type, ctl.devid, &d) < 0) {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    if (registry_backend_get(B.reg, d.backend_domid, d.type, &id) < 0 ||
        (be = conn_find(id)) == NULL) {
        conn_reply_error(c, m->hdr.request, ENODEV);
        return;
    }
    timeout = ctl.timeout_ms == 0 ? B.o->backend_timeout_ms
              : ctl.timeout_ms > CONTROL_MAX_TIMEOUT_MS
                  ? CONTROL_MAX_TIMEOUT_MS
                  : (int)ctl.timeout_ms;
    if ((p = new_pending(P_CONTROL, id, timeout)) == NULL) {
        conn_reply_error(c, m->hdr.request, ENOMEM);
        return;
    }
    p->client = conn_id(c);
    p->client_req = m->hdr.request;
    p->domid = ctl.domid;
    p->type = ctl.type;
    p->devid = ctl.devid;
    ctl.timeout_ms = (uint32_t)timeout;
    noxs_proto_begin(B.buf, NOXS_MSG_BACKEND_CONTROL, p->id, 0);
    noxs_proto_put(B.buf, &ctl, sizeof(ctl));
    noxs_proto_put(B.buf, m->key, ctl.key_len);
    noxs_proto_put(B.buf, m->value, ctl.value_len);
    send_buf(be);
}

static void control_done(struct pending *p, const struct noxs_proto_msg *m)
{
    struct noxs_msg_control_reply r = {0};
    struct conn *c = conn_find(p->client);

    if (!c)
        return;
    if (m->hdr.type == NOXS_MSG_ERROR) {
        conn_reply_error(c, p->client_req, m->hdr.error);
        return;
    }
    r.len = m->u.control_reply.len;
    noxs_proto_begin(B.buf, NOXS_MSG_DEV_CONTROL | NOXS_MSG_REPLY,
                     p->client_req, 0);
    noxs_proto_put(B.buf, &r, sizeof(r));
    noxs_proto_put(B.buf, m->value, r.len);
    send_buf(c);
}

/* ---------------------------------------------------------------- */
/* Backends                                                          */

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

    for (sp = &B.departed; (s = *sp) != NULL;) {
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
        log_info("backend %u is back; its devices are its own again",
                 s->domid);
        free(s);
    }
}

static void backend_register(struct conn *c, const struct noxs_proto_msg *m)
{
    struct sync_state *s;
    size_t i, j;
    int rc;

    if (backend_state(conn_id(c))) {
        conn_reply_error(c, m->hdr.request, EALREADY);
        return;
    }
    for (i = 0; i < m->u.reg.ntypes; i++) {
        rc = registry_backend_add(B.reg, m->u.reg.domid, m->types[i],
                                  conn_id(c));
        if (rc < 0) {
            for (j = 0; j < i; j++)
                registry_backend_remove(B.reg, m->u.reg.domid, m->types[j],
                                        conn_id(c));
            conn_reply_error(c, m->hdr.request, -rc);
            return;
        }
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        for (j = 0; j < m->u.reg.ntypes; j++)
            registry_backend_remove(B.reg, m->u.reg.domid, m->types[j],
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
    s->next = B.backends;
    B.backends = s;
    conn_set_backend(c, s->domid, s->types, s->ntypes);
    conn_reply_empty(c, NOXS_MSG_BACKEND_REGISTER, m->hdr.request);
    {
        char names[128] = "";
        size_t k, used = 0;

        for (k = 0; k < s->ntypes && used < sizeof(names); k++) {
            const char *n = noxs_type_name(s->types[k]);
            int w = n ? snprintf(names + used, sizeof(names) - used, "%s%s",
                                 k ? ", " : "", n)
                      : snprintf(names + used, sizeof(names) - used,
                                 "%stype %u", k ? ", " : "",
                                 (unsigned int)s->types[k]);

            if (w < 0)
                break;
            used += (size_t)w;
        }
        log_info("backend in domain %u registered for %s (connection %llu)",
                 s->domid, names, (unsigned long long)s->conn);
    }
}

struct stale_arg {
    struct sync_state *s;
    uint16_t *domids;
    uint16_t *types;
    uint32_t *devids;
    size_t n, cap;
};

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

static int stale_fn(const struct reg_domain_info *info, void *arg)
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
        registry_dev_get(B.reg, it->domid, it->type, it->devid, &d) < 0 ||
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
            registry_dev_put(B.reg, it->domid, &d) == 0)
            write_page(it->domid);
    }
    registry_dev_set_state(B.reg, it->domid, it->type, it->devid,
                           it->backend_state, it->frontend_state);
}

static void backend_sync(struct conn *c, const struct noxs_proto_msg *m)
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
        registry_domain_foreach(B.reg, stale_fn, &a);
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

static void backend_state_report(struct conn *c,
                                 const struct noxs_proto_msg *m)
{
    struct sync_state *s = backend_state(conn_id(c));
    const struct noxs_msg_dev *it = &m->u.dev;
    struct reg_dev d;

    if (!s || !backend_serves(s, it->backend_domid, it->type) ||
        registry_dev_get(B.reg, it->domid, it->type, it->devid, &d) < 0 ||
        d.backend_domid != it->backend_domid)
        return; /* one-way: nothing to answer */
    if (d.backend_state == it->backend_state &&
        d.frontend_state == it->frontend_state)
        return;
    registry_dev_set_state(B.reg, it->domid, it->type, it->devid,
                           it->backend_state, it->frontend_state);
    d.backend_state = it->backend_state;
    d.frontend_state = it->frontend_state;
    event(NOXS_EVENT_DEV_STATE, it->domid, &d);
}

/* A reply or error from a backend to one of our requests. */
static void backend_answer(struct conn *c, const struct noxs_proto_msg *m)
{
    unsigned int req = m->hdr.type & ~NOXS_MSG_REPLY;
    struct pending *p;

    for (p = B.pending; p; p = p->next)
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

/* ---------------------------------------------------------------- */
/* Entry points                                                      */

static void watch(struct conn *c, const struct noxs_proto_msg *m)
{
    conn_set_watch(c, m->u.domid.domid);
    conn_reply_empty(c, NOXS_MSG_WATCH, m->hdr.request);
}

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
    {NOXS_MSG_STATUS, status},
    {NOXS_MSG_DEV_CONTROL, dev_control},
    {NOXS_MSG_WATCH, watch},
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

    for (p = B.pending; p; p = p->next)
        if (p->client == id)
            p->client = 0;
    for (sp = &B.backends; *sp; sp = &(*sp)->next)
        if ((*sp)->conn == id)
            break;
    if ((s = *sp) == NULL)
        return;
    *sp = s->next;
    for (i = 0; i < s->ntypes; i++)
        registry_backend_remove(B.reg, s->domid, s->types[i], id);
    for (p = B.pending; p; p = next) {
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
    registry_domain_foreach(B.reg, stale_fn, &a);
    if (a.n && s->keep && B.o->backend_grace_ms > 0) {
        /*
         * A backend under a service manager's fd store keeps its control
         * pages and ports across its own restarts; its devices wait for
         * it, unchanged, for the grace period. A backend without one
         * took its pages with it: its devices go now.
         */
        log_info("backend %u went away: its %zu device(s) wait for it "
                 "(%d ms)",
                 s->domid, a.n, B.o->backend_grace_ms);
        s->conn = 0;
        s->grace_until = now_ms() + (uint64_t)B.o->backend_grace_ms;
        s->next = B.departed;
        B.departed = s;
        free(a.domids);
        free(a.types);
        free(a.devids);
        return;
    }
    /* Its control pages died with it: drop its devices. */
    if (a.n)
        log_info("backend %u went away: dropping its %zu device(s)",
                 s->domid, a.n);
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

/* Departed backends that did not come back in time: drop their devices. */
static void expire_departed(uint64_t now, uint64_t *next)
{
    struct sync_state **sp, *s;
    size_t i;

    for (sp = &B.departed; (s = *sp) != NULL;) {
        struct stale_arg a = {0};

        if (s->grace_until > now) {
            if (s->grace_until < *next)
                *next = s->grace_until;
            sp = &s->next;
            continue;
        }
        *sp = s->next;
        a.s = s;
        registry_domain_foreach(B.reg, stale_fn, &a);
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

int broker_timeouts(void)
{
    uint64_t now = now_ms(), next = UINT64_MAX;
    struct pending *p, *n;

    expire_departed(now, &next);

    for (p = B.pending; p; p = n) {
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
            p->deadline = now + 10u * (uint64_t)B.o->backend_timeout_ms;
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
        n = B.pending;
    }
    if (next == UINT64_MAX)
        return -1;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

int broker_compact(void)
{
    struct reg_domain_info *info = malloc(sizeof(*info));
    uint16_t *ids = malloc((NOXS_DOMID_MAX + 1) * sizeof(*ids));
    size_t n, i;
    uint32_t j;
    int rc = -ENOMEM;

    if (!info || !ids || (rc = store_compact_begin(B.store)) < 0) {
        log_warnx("store: cannot start compaction: %s", strerror(-rc));
        goto out;
    }
    n = registry_domids(B.reg, ids, NOXS_DOMID_MAX + 1);
    for (i = 0; i < n; i++) {
        struct store_rec r = {.op = STORE_DOMAIN_ADD};

        if (registry_domain_get(B.reg, ids[i], info) < 0)
            continue;
        r.domid = info->domid;
        r.owner_domid = info->owner_domid;
        r.gref = info->gref;
        r.port = info->port;
        if ((rc = store_compact_put(B.store, &r)) < 0)
            goto fail;
        for (j = 0; j < info->ndevs; j++) {
            const struct reg_dev *d = &info->devs[j];
            struct store_rec v = {.op = STORE_DEV_ADD,
                                  .domid = info->domid,
                                  .type = d->type,
                                  .devid = d->devid,
                                  .backend_domid = d->backend_domid,
                                  .gref = d->control_gref,
                                  .port = d->backend_port};
            if ((rc = store_compact_put(B.store, &v)) < 0)
                goto fail;
        }
    }
    if ((rc = store_compact_end(B.store)) < 0)
        goto fail;
    log_debug("store: compacted (%zu domains)", n);
    goto out;
fail:
    log_warnx("store: compaction failed: %s", strerror(-rc));
    store_compact_abort(B.store);
out:
    free(info);
    free(ids);
    return rc;
}

void broker_keeper_event(void)
{
    keeper_lost(-EPIPE);
}

int broker_keeper_fd(void)
{
    return keeper_fd(B.keeper);
}

/* ---------------------------------------------------------------- */
/* Start-up: replay the store, reconcile with the keeper             */

/*
 * One replayed record (its fields already checked by the store). A record
 * that cannot be applied to what precedes it is damage: the store stops
 * there and says so (broker_init then decides).
 */
static int apply(const struct store_rec *r, void *arg)
{
    struct reg_dev d = {0};
    int rc;

    (void)arg;
    switch (r->op) {
    case STORE_DOMAIN_ADD:
        registry_domain_remove(B.reg, r->domid);
        return registry_domain_add(B.reg, r->domid, r->owner_domid, r->gref,
                                   r->port);
    case STORE_DOMAIN_DEL:
        registry_domain_remove(B.reg, r->domid);
        return 0;
    case STORE_DEV_ADD:
        d = live_dev(r->type, r->devid, r->backend_domid, r->gref, r->port);
        /* -ENOENT: no such domain; -ENOSPC: its page is full. */
        return registry_dev_put(B.reg, r->domid, &d);
    case STORE_DEV_DEL:
        rc = registry_dev_remove(B.reg, r->domid, r->type, r->devid);
        return rc == -ENOENT ? 0 : rc; /* removing what is gone is no harm */
    default:
        return -EINVAL;
    }
}

struct reconcile {
    uint8_t *alive; /* per domid */
    unsigned int rewritten, orphans, recreated;
};

static int reconcile_fn(const struct keeper_msg *page, void *arg)
{
    struct reconcile *rc = arg;
    uint32_t i;
    int same;

    if (registry_domain_get(B.reg, page->domid, B.info) < 0 ||
        B.info->gref != page->gref || B.info->port != page->port) {
        /* Created but never acknowledged: nobody knows its bootstrap. */
        log_info("keeper has an unacknowledged page for domain %u; "
                 "destroying it",
                 page->domid);
        if (keeper_page_destroy(B.keeper, page->domid) == -EPIPE)
            keeper_lost(-EPIPE);
        rc->orphans++;
        return 0;
    }
    rc->alive[page->domid] = 1;
    same = page->count == B.info->ndevs;
    for (i = 0; same && i < page->count; i++) {
        const struct noxs_devpage_entry *e = &page->entries[i];
        const struct reg_dev *d = &B.info->devs[i];
        same = e->type == d->type && e->devid == d->devid &&
               e->backend_domid == d->backend_domid &&
               e->control_gref == d->control_gref &&
               e->backend_port == d->backend_port &&
               e->flags == NOXS_DEVPAGE_ENTRY_VALID;
    }
    if (!same) {
        write_page(page->domid);
        rc->rewritten++;
    }
    return 0;
}

/*
 * The store knows domid but the keeper, which has served earlier workers,
 * has no page for it. The ordering rules make that impossible (the page is
 * created before the store records the domain and destroyed after it
 * records the removal), so this is a defence, not a path we expect: a
 * domain acknowledged to the toolstack is not forgotten while the keeper
 * lives. It gets a new page (new reference: the toolstack reads it with
 * DOMAIN_CREATE/EEXIST or DOMAIN_LIST), recorded as DOMAIN_ADD followed by
 * its devices so that a replay rebuilds it even before the next compaction.
 */
static int recreate_page(uint16_t domid)
{
    struct reg_domain_info *info = malloc(sizeof(*info));
    struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = domid};
    uint32_t gref, port, j;
    int rc;

    if (!info || registry_domain_get(B.reg, domid, info) < 0) {
        free(info);
        return -ENOMEM;
    }
    rc = keeper_page_create(B.keeper, domid, &gref, &port);
    if (rc == -EPIPE)
        keeper_lost(rc);
    if (rc < 0)
        goto out;
    log_warnx("domain %u: the keeper (which outlived the last worker) has "
              "no page for it; recreated it (gref %u, port %u)",
              domid, gref, port);
    r.owner_domid = info->owner_domid;
    r.gref = gref;
    r.port = port;
    if ((rc = store_append(B.store, &r)) < 0)
        goto out;
    for (j = 0; j < info->ndevs && rc == 0; j++)
        rc = store_dev(STORE_DEV_ADD, domid, &info->devs[j]);
    if (rc < 0)
        goto out;
    registry_domain_remove(B.reg, domid);
    registry_domain_add(B.reg, domid, info->owner_domid, gref, port);
    for (j = 0; j < info->ndevs; j++)
        registry_dev_put(B.reg, domid, &info->devs[j]);
    if (info->ndevs)
        write_page(domid);
out:
    free(info);
    return rc;
}

/*
 * The keeper's pages, counted, or (take) made the registry: the keeper is
 * the other copy of what the guests have, and the one their pages are.
 */
struct census {
    int take;
    unsigned int pages, devices, skipped;
};

static int census_fn(const struct keeper_msg *page, void *arg)
{
    struct census *c = arg;
    struct reg_dev d;
    uint32_t i;
    int rc;

    c->pages++;
    if (!c->take)
        return 0;
    /* What the store will be asked to hold must pass its own checks. */
    if (page->domid > NOXS_DOMID_MAX || page->gref < NOXS_GREF_MIN ||
        page->port == 0 || page->port > NOXS_PORT_MAX) {
        log_warnx("keeper: page of domain %u has gref %u port %u; cannot "
                  "keep it",
                  page->domid, page->gref, page->port);
        return -EPROTO;
    }
    if ((rc = registry_domain_add(B.reg, page->domid, B.o->domid, page->gref,
                                  page->port)) < 0)
        return rc;
    for (i = 0; i < page->count; i++) {
        const struct noxs_devpage_entry *e = &page->entries[i];

        if (!(e->flags & NOXS_DEVPAGE_ENTRY_VALID) || e->type < 1 ||
            e->type > NOXS_DEV_TYPE_MAX ||
            e->backend_domid > NOXS_DOMID_MAX ||
            e->control_gref < NOXS_GREF_MIN || e->backend_port == 0 ||
            e->backend_port > NOXS_PORT_MAX) {
            log_warnx("keeper: domain %u: skipping entry %u (type %u, devid "
                      "%u)",
                      page->domid, i, e->type, e->devid);
            c->skipped++;
            continue;
        }
        /* A removal that was under way is taken back: as after a crash,
         * the backend's next re-sync says whether the device is still
         * there. */
        d = live_dev(e->type, e->devid, e->backend_domid, e->control_gref,
                     e->backend_port);
        if ((rc = registry_dev_put(B.reg, page->domid, &d)) < 0)
            return rc;
        c->devices++;
    }
    return 0;
}

static void broker_alloc(const struct noxsd_opts *o)
{
    B.o = o;
    B.start_ms = now_ms();
    B.buf = malloc(sizeof(*B.buf));
    B.info = malloc(sizeof(*B.info));
    if (!B.buf || !B.info)
        fatalx("out of memory");
    registry_thread_online();
    if ((B.reg = registry_new()) == NULL)
        fatal("registry");
}

static void connect_keeper(const struct noxsd_opts *o)
{
    struct keeper_opts ko = {.state_dir = o->state_dir,
                             .owner_domid = o->domid,
                             .foreground = o->foreground,
                             .verbose = o->verbose};

    memcpy(ko.fds, o->keeper_fds, sizeof(ko.fds));
    if ((B.keeper = keeper_connect(&ko, o->self_exe)) == NULL)
        fatal("cannot reach or start the page keeper");
    log_info("page keeper pid %d (worker restarts %u, keepers %u)",
             (int)keeper_pid(B.keeper), keeper_restarts(B.keeper),
             keeper_generations(B.keeper));
    keeper_store_fds(B.keeper);
}

/*
 * A damaged store, or none at all: is there anything it could hurt? The
 * reconciliation below destroys every keeper page the store does not
 * know and rewrites every page whose entries differ, which is right
 * only if the store is whole. So with pages in the keeper we stop here,
 * touching neither the pages nor the store's files; the operator looks
 * at the file and rebuilds the store from the keeper (noxsd
 * --rebuild-store), which loses nothing. Without pages there is nothing
 * to lose (a keeper started afresh forgets every domain anyway): the
 * damaged files are set aside and the worker starts empty. Starting
 * read-only instead would leave backends unsynchronised and every
 * mutation refused for as long as nobody looks, which is the same
 * outage with less said about it.
 */
static void check_unsafe_store(const struct noxsd_opts *o)
{
    const char *damage = store_damage(B.store);
    struct census c = {0};
    int err;

    if (!damage && !store_is_new(B.store))
        return;
    if ((err = keeper_dump(B.keeper, census_fn, &c)) < 0)
        fatalx("keeper dump: %s", strerror(-err));
    if (c.pages > 0 && damage)
        fatalx("store in %s is damaged: %s. The page keeper holds %u device "
               "page(s) of running guests, which reconciling with this "
               "store could destroy or rewrite: refusing to start (pages and "
               "store left untouched). Keep a copy of the file, then run "
               "'noxsd --rebuild-store --state-dir %s' to rebuild the store "
               "from the keeper's pages, and start noxsd again",
               o->state_dir, damage, c.pages, o->state_dir);
    if (c.pages > 0)
        fatalx("store in %s is missing (no state.snap or state.log), but the "
               "page keeper holds %u device page(s) of running guests, "
               "which reconciling with an empty store would destroy: "
               "refusing to start (pages left untouched). Run 'noxsd "
               "--rebuild-store --state-dir %s' to rebuild the store from "
               "the keeper's pages, and start noxsd again",
               o->state_dir, c.pages, o->state_dir);
    if (damage) {
        log_warnx("store in %s is damaged: %s. The page keeper holds no "
                  "device page, so nothing that still exists is lost: "
                  "starting with an empty registry",
                  o->state_dir, damage);
        /* Drop what was replayed before the damage was found. */
        registry_free(B.reg);
        if ((B.reg = registry_new()) == NULL)
            fatal("registry");
    }
    if ((err = store_reset(B.store)) < 0)
        fatalx("store in %s: cannot start a new store: %s", o->state_dir,
               strerror(-err));
}

int broker_init(const struct noxsd_opts *o)
{
    struct reconcile rc = {0};
    uint16_t *ids;
    size_t n, i;
    int err, fresh;

    broker_alloc(o);
    rc.alive = calloc(NOXS_DOMID_MAX + 1, 1);
    ids = malloc((NOXS_DOMID_MAX + 1) * sizeof(*ids));
    if (!rc.alive || !ids)
        fatalx("out of memory");
    if ((B.store = store_open(o->state_dir, apply, NULL)) == NULL)
        fatal("store in %s", o->state_dir);
    if (!store_damage(B.store))
        log_info("store: %llu records replayed: %zu domains, %zu devices",
                 (unsigned long long)store_records_replayed(B.store),
                 registry_ndomains(B.reg), registry_ndevices(B.reg));

    connect_keeper(o);
    check_unsafe_store(o);
    if ((err = keeper_dump(B.keeper, reconcile_fn, &rc)) < 0)
        fatalx("keeper dump: %s", strerror(-err));
    fresh = keeper_restarts(B.keeper) == 0;
    n = registry_domids(B.reg, ids, NOXS_DOMID_MAX + 1);
    for (i = 0; i < n; i++) {
        struct store_rec r = {.op = STORE_DOMAIN_DEL, .domid = ids[i]};

        if (rc.alive[ids[i]])
            continue;
        if (!fresh && recreate_page(ids[i]) == 0) {
            rc.recreated++;
            continue;
        }
        log_warnx("domain %u: its device page is gone (the keeper was "
                  "restarted); forgetting the domain",
                  ids[i]);
        store_append(B.store, &r);
        registry_domain_remove(B.reg, ids[i]);
    }
    if (rc.rewritten || rc.orphans || rc.recreated)
        log_info("reconciled: %u page(s) rewritten, %u orphan(s) destroyed, "
                 "%u recreated",
                 rc.rewritten, rc.orphans, rc.recreated);
    free(rc.alive);
    free(ids);
    broker_compact();
    return 0;
}

int broker_rebuild_store(const struct noxsd_opts *o)
{
    struct census c = {.take = 1};
    const char *damage;
    int err;

    broker_alloc(o);
    /* Only checked (no apply): the keeper is the source here. */
    if ((B.store = store_open(o->state_dir, NULL, NULL)) == NULL) {
        log_warn("store in %s", o->state_dir);
        return -1;
    }
    if ((damage = store_damage(B.store)) != NULL)
        log_warnx("store in %s is damaged: %s", o->state_dir, damage);
    else
        log_info("store in %s: no damage found; rebuilding it as asked",
                 o->state_dir);
    connect_keeper(o);
    if ((err = keeper_dump(B.keeper, census_fn, &c)) < 0) {
        log_warnx("keeper dump: %s", strerror(-err));
        return -1;
    }
    if ((err = store_reset(B.store)) < 0) {
        log_warnx("store in %s: cannot start a new store: %s", o->state_dir,
                  strerror(-err));
        return -1;
    }
    if (broker_compact() < 0)
        return -1;
    log_info("store in %s rebuilt from the page keeper: %u domain(s), %u "
             "device(s)%s",
             o->state_dir, c.pages, c.devices,
             c.skipped ? " (some entries skipped, see above)" : "");
    return 0;
}

void broker_cleanup(void)
{
    struct pending *p;
    struct destroy *d;
    struct sync_state *s;

    while ((p = B.pending) != NULL) {
        B.pending = p->next;
        free(p);
    }
    while ((d = B.destroys) != NULL) {
        B.destroys = d->next;
        free(d);
    }
    while ((s = B.backends) != NULL) {
        B.backends = s->next;
        free(s->seen);
        free(s);
    }
    while ((s = B.departed) != NULL) {
        B.departed = s->next;
        free(s);
    }
    store_close(B.store);
    keeper_disconnect(B.keeper);
    registry_free(B.reg);
    free(B.buf);
    free(B.info);
}
