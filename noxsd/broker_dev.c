/*
 * Devices: add, remove and control requests from the toolstack, and what
 * happens when the backend answers (or does not).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noxsd.h"
#include "proto.h"

#define CONTROL_MAX_TIMEOUT_MS (10 * 60 * 1000)

/* Send BACKEND_REMOVE for a device; the pending answers client (or not). */
struct pending *send_backend_remove(struct conn *be, uint16_t domid,
                                    uint16_t type, uint32_t devid,
                                    uint64_t client, uint32_t req)
{
    struct noxs_msg_dev_id id = {domid, type, devid};
    struct pending *p;

    p = new_pending(P_REMOVE, conn_id(be), broker.o->backend_timeout_ms);
    if (!p)
        return NULL;
    p->domid = domid;
    p->type = type;
    p->devid = devid;
    p->backend_domid = conn_backend_domid(be);
    p->client = client;
    p->client_req = req;
    noxs_proto_begin(broker.buf, NOXS_MSG_BACKEND_REMOVE, p->id, 0);
    noxs_proto_put(broker.buf, &id, sizeof(id));
    send_buf(be);
    return p;
}

/* A device as the registry holds a live one (states unknown yet). */
struct reg_dev live_dev(uint16_t type, uint32_t devid, uint16_t backend_domid,
                        uint32_t gref, uint32_t port)
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
int drop_dev(uint16_t domid, uint16_t type, uint32_t devid)
{
    struct reg_dev d;
    int rc;

    if (registry_dev_get(broker.reg, domid, type, devid, &d) < 0)
        return 0;
    if ((rc = store_dev(STORE_DEV_DEL, domid, &d)) < 0) {
        log_warnx("domain %u: removal of device %u/%u not stored (%s); it "
                  "stays until a retry",
                  domid, type, devid, strerror(-rc));
        return rc;
    }
    registry_dev_remove(broker.reg, domid, type, devid);
    write_page(domid);
    tell_watchers(NOXS_EVENT_DEV_REMOVED, domid, &d);
    log_debug("domain %u: device %u/%u removed", domid, type, devid);
    return 0;
}

/* A BACKEND_REMOVE finished (answer, error, timeout or backend gone). */
void remove_done(struct pending *p, int err)
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

void dev_add(struct conn *c, const struct noxs_proto_msg *m)
{
    const struct noxs_msg_dev_add *a = &m->u.dev_add;
    struct pending *p;
    struct reg_dev d;
    struct conn *be;
    uint64_t id;
    size_t i;

    if (registry_domain_get(broker.reg, a->domid, broker.info) < 0 ||
        find_destroy(a->domid)) {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    if (registry_dev_get(broker.reg, a->domid, a->type, a->devid, &d) == 0 ||
        find_pending_dev(a->domid, a->type, a->devid, P_CREATE)) {
        conn_reply_error(c, m->hdr.request, EEXIST);
        return;
    }
    if (find_pending_dev(a->domid, a->type, a->devid, P_REMOVE)) {
        conn_reply_error(c, m->hdr.request, EBUSY);
        return;
    }
    if (broker.info->ndevs + pending_creates(a->domid) >=
        NOXS_DEVPAGE_MAX_ENTRIES) {
        conn_reply_error(c, m->hdr.request, ENOSPC);
        return;
    }
    if (registry_backend_get(broker.reg, a->backend_domid, a->type, &id) < 0 ||
        (be = conn_find(id)) == NULL) {
        conn_reply_error(c, m->hdr.request, ENODEV);
        return;
    }
    if ((p = new_pending(P_CREATE, id, broker.o->backend_timeout_ms)) == NULL) {
        conn_reply_error(c, m->hdr.request, ENOMEM);
        return;
    }
    p->client = conn_id(c);
    p->client_req = m->hdr.request;
    p->domid = a->domid;
    p->type = a->type;
    p->devid = a->devid;
    p->backend_domid = a->backend_domid;
    noxs_proto_begin(broker.buf, NOXS_MSG_BACKEND_CREATE, p->id, 0);
    noxs_proto_put(broker.buf, a, sizeof(*a));
    for (i = 0; i < m->nparams; i++)
        noxs_proto_put_param(broker.buf, m->params[i].key, m->params[i].value);
    send_buf(be);
}

void create_done(struct pending *p, const struct noxs_proto_msg *m)
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
    } else if (!err &&
               (p->zombie ||
                registry_domain_get(broker.reg, p->domid, broker.info) < 0 ||
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
    d = live_dev(p->type, p->devid, p->backend_domid, m->u.dev_ref.control_gref,
                 m->u.dev_ref.backend_port);
    d.backend_state = NOXS_STATE_INITWAIT;
    if ((rc = store_dev(STORE_DEV_ADD, p->domid, &d)) < 0 ||
        (rc = registry_dev_put(broker.reg, p->domid, &d)) < 0) {
        if (be)
            send_backend_remove(be, p->domid, p->type, p->devid, 0, 0);
        reply_error(p->client, p->client_req, -rc);
        return;
    }
    write_page(p->domid);
    if ((c = conn_find(p->client)) != NULL) {
        dev_to_msg(p->domid, &d, &out);
        noxs_proto_begin(broker.buf, NOXS_MSG_DEV_ADD | NOXS_MSG_REPLY,
                         p->client_req, 0);
        noxs_proto_put(broker.buf, &out, sizeof(out));
        send_buf(c);
    }
    log_debug("domain %u: device %u/%u added (gref %u port %u)", p->domid,
              d.type, d.devid, d.control_gref, d.backend_port);
    tell_watchers(NOXS_EVENT_DEV_ADDED, p->domid, &d);
}

void dev_remove(struct conn *c, const struct noxs_proto_msg *m)
{
    const struct noxs_msg_dev_id *id = &m->u.dev_id;
    struct reg_dev d;
    struct conn *be;
    uint64_t bid;
    int rc;

    if (registry_dev_get(broker.reg, id->domid, id->type, id->devid, &d) < 0) {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    if (find_destroy(id->domid) ||
        find_pending_dev(id->domid, id->type, id->devid, P_REMOVE)) {
        conn_reply_error(c, m->hdr.request, EBUSY);
        return;
    }
    registry_dev_set_flags(broker.reg, id->domid, id->type, id->devid,
                           NOXS_DEVPAGE_ENTRY_VALID |
                               NOXS_DEVPAGE_ENTRY_CLOSING);
    write_page(id->domid);
    if (registry_backend_get(broker.reg, d.backend_domid, d.type, &bid) == 0 &&
        (be = conn_find(bid)) != NULL &&
        send_backend_remove(be, id->domid, id->type, id->devid, conn_id(c),
                            m->hdr.request) != NULL)
        return;
    if ((rc = drop_dev(id->domid, id->type, id->devid)) < 0)
        conn_reply_error(c, m->hdr.request, -rc);
    else
        conn_reply_empty(c, NOXS_MSG_DEV_REMOVE, m->hdr.request);
}

void dev_control(struct conn *c, const struct noxs_proto_msg *m)
{
    struct noxs_msg_control ctl = m->u.control;
    struct reg_dev d;
    struct pending *p;
    struct conn *be;
    uint64_t id;
    int timeout;

    if (registry_dev_get(broker.reg, ctl.domid, ctl.type, ctl.devid, &d) < 0) {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    if (registry_backend_get(broker.reg, d.backend_domid, d.type, &id) < 0 ||
        (be = conn_find(id)) == NULL) {
        conn_reply_error(c, m->hdr.request, ENODEV);
        return;
    }
    timeout = ctl.timeout_ms == 0                       ? broker.o->backend_timeout_ms
              : ctl.timeout_ms > CONTROL_MAX_TIMEOUT_MS ? CONTROL_MAX_TIMEOUT_MS
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
    noxs_proto_begin(broker.buf, NOXS_MSG_BACKEND_CONTROL, p->id, 0);
    noxs_proto_put(broker.buf, &ctl, sizeof(ctl));
    noxs_proto_put(broker.buf, m->key, ctl.key_len);
    noxs_proto_put(broker.buf, m->value, ctl.value_len);
    send_buf(be);
}

void control_done(struct pending *p, const struct noxs_proto_msg *m)
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
    noxs_proto_begin(broker.buf, NOXS_MSG_DEV_CONTROL | NOXS_MSG_REPLY,
                     p->client_req, 0);
    noxs_proto_put(broker.buf, &r, sizeof(r));
    noxs_proto_put(broker.buf, m->value, r.len);
    send_buf(c);
}
