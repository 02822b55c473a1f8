/*
 * Domains: create, destroy, and the release of a domain the hypervisor
 * reported dead (domwatch.c tells, this file acts). The ordering rules
 * that keep a kill -9 safe are in broker.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noxsd.h"
#include "proto.h"

static int reap_if_dead(uint16_t domid);

static void domain_reply(struct conn *c, uint32_t req, int err,
                         const struct reg_domain_info *info)
{
    struct noxs_msg_domain d = {.domid = info->domid,
                                .owner_domid = info->owner_domid,
                                .gref = info->gref,
                                .port = info->port,
                                .ndevices = info->ndevs};

    noxs_proto_begin(broker.buf, NOXS_MSG_DOMAIN_CREATE | NOXS_MSG_REPLY, req,
                     err);
    noxs_proto_put(broker.buf, &d, sizeof(d));
    send_buf(c);
}

void domain_create(struct conn *c, const struct noxs_proto_msg *m)
{
    uint16_t domid = m->u.domid.domid;
    struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = domid};
    uint32_t gref, port;
    int rc;

    if (registry_domain_get(broker.reg, domid, broker.info) == 0 &&
        !reap_if_dead(domid)) {
        domain_reply(c, m->hdr.request, EEXIST, broker.info);
        return;
    }
    /* A dead domain's page is never handed out for its reused domid: it
     * is being released (EBUSY), or was at once and we go on. */
    if (find_destroy(domid)) {
        conn_reply_error(c, m->hdr.request, EBUSY);
        return;
    }
    rc = keeper_page_create(broker.keeper, domid, &gref, &port);
    if (rc == -EPIPE)
        keeper_lost(rc);
    if (rc < 0) {
        conn_reply_error(c, m->hdr.request, -rc);
        return;
    }
    r.owner_domid = broker.o->domid;
    r.gref = gref;
    r.port = port;
    if ((rc = store_rec(&r)) < 0) {
        keeper_page_destroy(broker.keeper, domid);
        conn_reply_error(c, m->hdr.request, -rc);
        return;
    }
    registry_domain_add(broker.reg, domid, broker.o->domid, gref, port);
    registry_domain_get(broker.reg, domid, broker.info);
    domain_reply(c, m->hdr.request, 0, broker.info);
    log_info("domain %u: device page gref %u, notify port %u", domid, gref,
             port);
    tell_watchers(NOXS_EVENT_DOMAIN_CREATED, domid, NULL);
    domwatch_registered(domid);
}

/*
 * Every device of a destroy is dropped (or could not be): record the
 * domain's end, then destroy its page. If the store cannot record it the
 * domain stays, with whatever devices could not be dropped marked
 * Closing, and the toolstack gets the error; a retry finishes the job.
 */
void finish_destroy(struct destroy *d)
{
    struct store_rec r = {.op = STORE_DOMAIN_DEL, .domid = d->domid};
    struct destroy **pp;
    int rc;

    for (pp = &broker.destroys; *pp; pp = &(*pp)->next) {
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
    registry_domain_remove(broker.reg, d->domid);
    rc = keeper_page_destroy(broker.keeper, d->domid);
    if (rc == -EPIPE)
        keeper_lost(rc);
    reply_empty(d->client, NOXS_MSG_DOMAIN_DESTROY, d->client_req);
    log_info("domain %u: %s", d->domid, d->reaped ? "released" : "destroyed");
    tell_watchers(d->reaped ? NOXS_EVENT_DOMAIN_RELEASED
                            : NOXS_EVENT_DOMAIN_DESTROYED,
                  d->domid, NULL);
    free(d);
}

/*
 * End domain domid (its devices are in broker.info): every device is marked
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
    *info = *broker.info;
    d->domid = domid;
    d->client = client;
    d->client_req = req;
    d->reaped = reaped;
    d->outstanding = 1; /* held until the loop below is done */
    d->next = broker.destroys;
    broker.destroys = d;

    for (i = 0; i < info->ndevs; i++)
        registry_dev_set_flags(
            broker.reg, domid, info->devs[i].type, info->devs[i].devid,
            NOXS_DEVPAGE_ENTRY_VALID | NOXS_DEVPAGE_ENTRY_CLOSING);
    if (info->ndevs)
        write_page(domid);
    for (i = 0; i < info->ndevs; i++) {
        const struct reg_dev *dev = &info->devs[i];
        struct pending *p;
        struct conn *be;
        uint64_t id;

        if (find_pending_dev(domid, dev->type, dev->devid, P_REMOVE))
            continue; /* its dev-rm drops it; we wait for nothing */
        if (registry_backend_get(broker.reg, dev->backend_domid, dev->type,
                                 &id) == 0 &&
            (be = conn_find(id)) != NULL &&
            (p = send_backend_remove(be, domid, dev->type, dev->devid, 0, 0)) !=
                NULL) {
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

void domain_destroy(struct conn *c, const struct noxs_proto_msg *m)
{
    uint16_t domid = m->u.domid.domid;
    struct destroy *d;

    if (registry_domain_get(broker.reg, domid, broker.info) < 0) {
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
    if (find_destroy(domid) ||
        registry_domain_get(broker.reg, domid, broker.info) < 0)
        return;
    log_info("domain %u %s: releasing its %u device(s) and its page", domid,
             why, broker.info->ndevs);
    if (start_destroy(domid, 0, 0, 1) < 0)
        log_warnx("domain %u %s, but out of memory to release it", domid, why);
}

/* What the hypervisor says of one registered domain means it died. */
static const char *died(uint16_t domid, unsigned int state,
                        const uint8_t handle[16])
{
    uint8_t seen_handle[16];
    int seen = registry_domain_seen(broker.reg, domid, seen_handle);

    if (seen < 0)
        return NULL;
    switch (state) {
    case DW_DYING:
        return "is dying";
    case DW_ALIVE:
        if (!seen) {
            registry_domain_set_seen(broker.reg, domid, handle);
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
    tell_watchers(NOXS_EVENT_DOMAIN_EXCEPTION, domid, NULL);
}

size_t broker_domains_check(const uint8_t *state, const uint8_t (*handle)[16])
{
    uint16_t *ids = malloc((NOXS_DOMID_MAX + 1) * sizeof(*ids));
    size_t n, i, unseen = 0;
    uint8_t h[16];
    const char *why;

    if (!ids)
        return 1; /* look again later */
    n = registry_domids(broker.reg, ids, NOXS_DOMID_MAX + 1);
    for (i = 0; i < n; i++) {
        if (find_destroy(ids[i]))
            continue;
        if ((why = died(ids[i], state[ids[i]], handle[ids[i]])) != NULL)
            reap_domain(ids[i], why);
        else if (registry_domain_seen(broker.reg, ids[i], h) == 0)
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
