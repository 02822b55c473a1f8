/*
 * The toolstack's connection to noxsd: blocking request/reply over the
 * control socket (libnoxs/proto.h), each request bounded by the client's
 * timeout, and watches.
 *
 * Replies are matched by request id; anything else that arrives meanwhile
 * (events on a watching connection, a late answer to a request that timed
 * out) is skipped, so one slow reply never desynchronises the connection.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"
#include "proto.h"
#include "common/unixsock.h"

#define CLIENT_DEFAULT_TIMEOUT_MS 30000
/* Extra time we give noxsd beyond a control request's own timeout. */
#define CLIENT_CONTROL_SLACK_MS 2000

struct noxs_client {
    int fd;
    int timeout_ms;
    uint32_t next_request;
    struct noxs_proto_buf tx;
    uint8_t rx[NOXS_PROTO_MAX_MSG + 1];
    struct noxs_proto_msg msg;
};

NOXS_EXPORT noxs_client *noxs_client_open(const char *path)
{
    noxs_client *c;
    int e;

    if (!path)
        path = getenv("NOXS_SOCKET");
    if (!path || !*path)
        path = NOXS_DEFAULT_SOCKET;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    c->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
    if ((c->fd = unix_connect(path, SOCK_SEQPACKET)) < 0) {
        e = errno;
        free(c);
        errno = e;
        return NULL;
    }
    return c;
}

NOXS_EXPORT int noxs_client_close(noxs_client *c)
{
    if (!c)
        return 0;
    close(c->fd);
    free(c);
    return 0;
}

NOXS_EXPORT int noxs_client_fd(noxs_client *c)
{
    return c->fd;
}

NOXS_EXPORT void noxs_client_set_timeout(noxs_client *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

static int send_tx(noxs_client *c)
{
    int len = noxs_proto_finish(&c->tx);
    ssize_t n;

    if (len < 0)
        return len;
    do
        n = send(c->fd, c->tx.data, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == len ? 0 : -EIO;
}

static uint32_t begin(noxs_client *c, unsigned int type)
{
    uint32_t req = ++c->next_request;

    if (req == 0)
        req = ++c->next_request;
    noxs_proto_begin(&c->tx, type, req, 0);
    return req;
}

/*
 * Wait for one message on the noxsd socket fd until deadline (ms on
 * noxs_i_now_ms()'s clock; <0: no deadline), read it into buf and decode
 * it into *m. Shared by the toolstack client and the backend. Returns
 * noxs_proto_decode()'s result (0, -EPROTO, -EINVAL), -ETIMEDOUT,
 * -ECONNRESET when noxsd went away, or -errno.
 */
int noxs_i_recv_msg(int fd, void *buf, size_t len, int64_t deadline,
                    struct noxs_proto_msg *m)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;
    int rc, wait;

    for (;;) {
        wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - noxs_i_now_ms();
            wait = left > 0 ? (int)left : 0;
        }
        rc = poll(&p, 1, wait);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (rc == 0)
            return -ETIMEDOUT;
        n = recv(fd, buf, len, MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        return noxs_proto_decode(buf, (size_t)n, m);
    }
}

/* Receive and decode one message before deadline (<0: none). */
static int recv_msg(noxs_client *c, int64_t deadline)
{
    int rc = noxs_i_recv_msg(c->fd, c->rx, sizeof(c->rx), deadline, &c->msg);

    if (rc == -EPROTO || rc == -EINVAL) {
        noxs_i_warn("noxs: malformed message from noxsd");
        return -EPROTO;
    }
    return rc;
}

static int64_t deadline_for(const noxs_client *c, int extra_ms)
{
    if (c->timeout_ms < 0)
        return -1;
    return noxs_i_now_ms() + c->timeout_ms + extra_ms;
}

/*
 * Wait for the answer to req: 0 with c->msg holding reply_type (or an
 * item/END for lists), or -errno (the daemon's error or our own).
 */
static int await(noxs_client *c, uint32_t req, int64_t deadline)
{
    int rc;

    for (;;) {
        if ((rc = recv_msg(c, deadline)) < 0)
            return rc;
        if (c->msg.hdr.request != req || c->msg.hdr.type == NOXS_MSG_EVENT)
            continue;
        if (c->msg.hdr.type == NOXS_MSG_ERROR)
            return -c->msg.hdr.error;
        return 0;
    }
}

static int transact(noxs_client *c, uint32_t req, unsigned int type,
                    int64_t deadline)
{
    int rc;

    if ((rc = send_tx(c)) < 0)
        return rc;
    if ((rc = await(c, req, deadline)) < 0)
        return rc;
    if (c->msg.hdr.type != (type | NOXS_MSG_REPLY))
        return -EPROTO;
    return 0;
}

static int fail(int rc)
{
    errno = -rc;
    return -1;
}

/* A request whose body is one domain id, answered by a plain reply. */
static int transact_domid(noxs_client *c, unsigned int type, uint16_t domid)
{
    struct noxs_msg_domid d = {.domid = domid};
    uint32_t req = begin(c, type);

    noxs_proto_put(&c->tx, &d, sizeof(d));
    return transact(c, req, type, deadline_for(c, 0));
}

NOXS_EXPORT int noxs_domain_create(noxs_client *c, uint16_t domid,
                                   struct noxs_boot *boot)
{
    int rc = transact_domid(c, NOXS_MSG_DOMAIN_CREATE, domid);

    if (rc < 0)
        return fail(rc);
    if (boot) {
        boot->owner_domid = c->msg.u.domain.owner_domid;
        boot->gref = c->msg.u.domain.gref;
        boot->port = c->msg.u.domain.port;
    }
    if (c->msg.hdr.error == EEXIST)
        return fail(-EEXIST);
    return 0;
}

NOXS_EXPORT int noxs_domain_destroy(noxs_client *c, uint16_t domid)
{
    int rc = transact_domid(c, NOXS_MSG_DOMAIN_DESTROY, domid);

    return rc < 0 ? fail(rc) : 0;
}

NOXS_EXPORT int noxs_dev_add(noxs_client *c, uint16_t domid, unsigned int type,
                             uint32_t devid, uint16_t backend_domid,
                             const struct noxs_kv *params, size_t nparams)
{
    struct noxs_msg_dev_add a = {.domid = domid,
                                 .type = (uint16_t)type,
                                 .devid = devid,
                                 .backend_domid = backend_domid,
                                 .nparams = (uint16_t)nparams};
    uint32_t req;
    size_t i;
    int rc;

    if (nparams > NOXS_PROTO_MAX_PARAMS || (nparams && !params) ||
        type > 0xffff)
        return fail(-EINVAL);
    req = begin(c, NOXS_MSG_DEV_ADD);
    noxs_proto_put(&c->tx, &a, sizeof(a));
    for (i = 0; i < nparams; i++)
        if ((rc = noxs_proto_put_param(&c->tx, params[i].key,
                                       params[i].value)) < 0)
            return fail(rc);
    rc = transact(c, req, NOXS_MSG_DEV_ADD, deadline_for(c, 0));
    return rc < 0 ? fail(rc) : 0;
}

NOXS_EXPORT int noxs_dev_remove(noxs_client *c, uint16_t domid,
                                unsigned int type, uint32_t devid)
{
    struct noxs_msg_dev_id id = {domid, (uint16_t)type, devid};
    uint32_t req = begin(c, NOXS_MSG_DEV_REMOVE);
    int rc;

    noxs_proto_put(&c->tx, &id, sizeof(id));
    rc = transact(c, req, NOXS_MSG_DEV_REMOVE, deadline_for(c, 0));
    return rc < 0 ? fail(rc) : 0;
}

static void dev_info(const struct noxs_msg_dev *m, struct noxs_dev_info *d)
{
    d->domid = m->domid;
    d->type = m->type;
    d->devid = m->devid;
    d->backend_domid = m->backend_domid;
    d->control_gref = m->control_gref;
    d->backend_port = m->backend_port;
    d->backend_state = m->backend_state;
    d->frontend_state = m->frontend_state;
}

/* Collect ITEM messages of item_type until END into a malloc'd array. */
static int list(noxs_client *c, uint32_t req, unsigned int item_type,
                size_t item_size, void **out, size_t *count)
{
    int64_t deadline = deadline_for(c, 0);
    size_t n = 0, cap = 0;
    uint8_t *items = NULL;
    int rc;

    *out = NULL;
    *count = 0;
    if ((rc = send_tx(c)) < 0)
        return rc;
    for (;;) {
        if ((rc = await(c, req, deadline)) < 0)
            goto fail;
        if (c->msg.hdr.type == NOXS_MSG_END)
            break;
        if (c->msg.hdr.type != item_type) {
            rc = -EPROTO;
            goto fail;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            void *x = realloc(items, ncap * item_size);
            if (!x) {
                rc = -ENOMEM;
                goto fail;
            }
            items = x;
            cap = ncap;
        }
        if (item_type == NOXS_MSG_DEV_ITEM) {
            dev_info(&c->msg.u.dev,
                     (struct noxs_dev_info *)(items + n * item_size));
        } else {
            struct noxs_domain_info *d =
                (struct noxs_domain_info *)(items + n * item_size);
            d->domid = c->msg.u.domain.domid;
            d->owner_domid = c->msg.u.domain.owner_domid;
            d->gref = c->msg.u.domain.gref;
            d->port = c->msg.u.domain.port;
            d->ndevices = c->msg.u.domain.ndevices;
        }
        n++;
    }
    *out = items;
    *count = n;
    return 0;
fail:
    free(items);
    return rc;
}

NOXS_EXPORT int noxs_dev_list(noxs_client *c, uint16_t domid,
                              struct noxs_dev_info **out, size_t *count)
{
    struct noxs_msg_domid d = {.domid = domid};
    uint32_t req = begin(c, NOXS_MSG_DEV_LIST);
    int rc;

    noxs_proto_put(&c->tx, &d, sizeof(d));
    rc = list(c, req, NOXS_MSG_DEV_ITEM, sizeof(**out), (void **)out, count);
    return rc < 0 ? fail(rc) : 0;
}

NOXS_EXPORT int noxs_domain_list(noxs_client *c, struct noxs_domain_info **out,
                                 size_t *count)
{
    uint32_t req = begin(c, NOXS_MSG_DOMAIN_LIST);
    int rc;

    rc = list(c, req, NOXS_MSG_DOMAIN_ITEM, sizeof(**out), (void **)out,
              count);
    return rc < 0 ? fail(rc) : 0;
}

NOXS_EXPORT int noxs_status_get(noxs_client *c, struct noxs_status *out)
{
    uint32_t req = begin(c, NOXS_MSG_STATUS);
    const struct noxs_msg_status *s = &c->msg.u.status;
    int rc;

    rc = transact(c, req, NOXS_MSG_STATUS, deadline_for(c, 0));
    if (rc < 0)
        return fail(rc);
    memset(out, 0, sizeof(*out));
    out->version = s->version;
    out->pid = s->pid;
    out->keeper_pid = s->keeper_pid;
    out->ndomains = s->ndomains;
    out->ndevices = s->ndevices;
    out->nbackends = s->nbackends;
    out->uptime_ms = s->uptime_ms;
    out->rss_bytes = s->rss_bytes;
    out->restarts = s->restarts;
    out->heap_kib = s->heap_kib;
    return 0;
}

NOXS_EXPORT int noxs_dev_control(noxs_client *c, uint16_t domid,
                                 unsigned int type, uint32_t devid,
                                 const char *key, const char *value,
                                 int timeout_ms, char *reply,
                                 size_t reply_len)
{
    struct noxs_msg_control ctl = {.domid = domid,
                                   .type = (uint16_t)type,
                                   .devid = devid};
    size_t kl, vl;
    int64_t deadline;
    uint32_t req;
    int rc;

    if (!key || !value || type > 0xffff)
        return fail(-EINVAL);
    kl = strlen(key);
    vl = strlen(value);
    if ((rc = noxs_proto_check_key(key, kl)) < 0 ||
        (rc = noxs_proto_check_value(value, vl)) < 0)
        return fail(rc);
    ctl.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
    ctl.key_len = (uint16_t)kl;
    ctl.value_len = (uint16_t)vl;
    req = begin(c, NOXS_MSG_DEV_CONTROL);
    noxs_proto_put(&c->tx, &ctl, sizeof(ctl));
    noxs_proto_put(&c->tx, key, kl);
    noxs_proto_put(&c->tx, value, vl);
    /* noxsd enforces timeout_ms towards the backend; we only add slack. */
    deadline = timeout_ms > 0 ? noxs_i_now_ms() + timeout_ms +
                                    CLIENT_CONTROL_SLACK_MS
                              : deadline_for(c, 0);
    rc = transact(c, req, NOXS_MSG_DEV_CONTROL, deadline);
    if (rc < 0)
        return fail(rc);
    if (reply && reply_len) {
        size_t n = c->msg.u.control_reply.len;
        if (n >= reply_len)
            return fail(-ENOSPC);
        memcpy(reply, c->msg.value, n);
        reply[n] = '\0';
    }
    return 0;
}

NOXS_EXPORT int noxs_watch(noxs_client *c, uint16_t domid)
{
    int rc = transact_domid(c, NOXS_MSG_WATCH, domid);

    return rc < 0 ? fail(rc) : 0;
}

NOXS_EXPORT int noxs_watch_next(noxs_client *c, struct noxs_event *ev,
                                int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : noxs_i_now_ms() + timeout_ms;
    int rc;

    for (;;) {
        if ((rc = recv_msg(c, deadline)) < 0)
            return fail(rc);
        if (c->msg.hdr.type != NOXS_MSG_EVENT)
            continue;
        memset(ev, 0, sizeof(*ev));
        ev->kind = c->msg.u.event.kind;
        dev_info(&c->msg.u.event.dev, &ev->dev);
        return 0;
    }
}
