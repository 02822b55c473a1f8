/*
 * The requests any client may send (see the access column of the message
 * table in libnoxs/proto.c): lists, status, watches. Nothing here changes
 * the registry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noxsd.h"
#include "proto.h"

static void send_dev_items(struct conn *c, uint32_t req,
                           const struct reg_domain_info *info)
{
    struct noxs_msg_dev out;
    uint32_t i;

    for (i = 0; i < info->ndevs; i++) {
        dev_to_msg(info->domid, &info->devs[i], &out);
        noxs_proto_begin(broker.buf, NOXS_MSG_DEV_ITEM, req, 0);
        noxs_proto_put(broker.buf, &out, sizeof(out));
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

    noxs_proto_begin(broker.buf, NOXS_MSG_DOMAIN_ITEM, a->req, 0);
    noxs_proto_put(broker.buf, &d, sizeof(d));
    send_buf(a->c);
    return 0;
}

void dev_list(struct conn *c, const struct noxs_proto_msg *m)
{
    struct list_arg a = {c, m->hdr.request};

    if (m->u.domid.domid == NOXS_DOMID_ANY) {
        registry_domain_foreach(broker.reg, list_devs_fn, &a);
    } else if (registry_domain_get(broker.reg, m->u.domid.domid, broker.info) ==
               0) {
        send_dev_items(c, m->hdr.request, broker.info);
    } else {
        conn_reply_error(c, m->hdr.request, ENOENT);
        return;
    }
    noxs_proto_simple(broker.buf, NOXS_MSG_END, m->hdr.request, 0);
    send_buf(c);
}

void domain_list(struct conn *c, const struct noxs_proto_msg *m)
{
    struct list_arg a = {c, m->hdr.request};

    registry_domain_foreach(broker.reg, list_domains_fn, &a);
    noxs_proto_simple(broker.buf, NOXS_MSG_END, m->hdr.request, 0);
    send_buf(c);
}

void status_request(struct conn *c, const struct noxs_proto_msg *m)
{
    struct noxs_msg_status st = {0};
    struct keeper_msg *k = malloc(sizeof(*k));
    uint64_t heap;
    int rc;

    st.version = NOXS_PROTO_VERSION;
    st.pid = (uint32_t)getpid();
    st.ndomains = (uint32_t)registry_ndomains(broker.reg);
    st.ndevices = (uint32_t)registry_ndevices(broker.reg);
    st.nbackends = (uint32_t)registry_nbackends(broker.reg);
    st.uptime_ms = now_ms() - broker.start_ms;
    st.rss_bytes = noxsd_rss_bytes();
    heap = noxsd_heap_bytes();
    if (k && (rc = keeper_status(broker.keeper, k)) == 0) {
        st.keeper_pid = k->pid;
        st.rss_bytes += k->rss_bytes;
        heap += k->heap_bytes;
        st.restarts = k->restarts;
    } else if (k && rc == -EPIPE) {
        keeper_lost(rc);
    }
    free(k);
    st.heap_kib = (uint32_t)((heap + 1023) / 1024);
    noxs_proto_begin(broker.buf, NOXS_MSG_STATUS | NOXS_MSG_REPLY,
                     m->hdr.request, 0);
    noxs_proto_put(broker.buf, &st, sizeof(st));
    send_buf(c);
}

void watch_request(struct conn *c, const struct noxs_proto_msg *m)
{
    conn_set_watch(c, m->u.domid.domid);
    conn_reply_empty(c, NOXS_MSG_WATCH, m->hdr.request);
}
