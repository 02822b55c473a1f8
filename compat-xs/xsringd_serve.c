/*
 * The request path every connection shares (a guest's ring, dom0's
 * kernel ring, a socket client): a request runs on the connection's own
 * local-store connection, with its domain's identity; the reply and the
 * watch events are queued for the peer. Then the ring's turn: replies
 * and events written as the guest frees room, at most BUDGET requests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "xsringd_int.h"

static void queue_msg(struct conn *d, uint32_t type, uint32_t req_id,
                      uint32_t tx_id, const void *p, uint32_t len)
{
    struct xsw_hdr h = {type, req_id, tx_id, len};

    /* Only events are refused: requests wait for room (serve). */
    if (xsr_queue(&d->out, &h, p) == 0 || d->dropped++ > 0)
        return;
    if (d->sfd >= 0)
        log_warnx("socket client %d does not read its replies: events "
                  "dropped",
                  d->sfd);
    else
        log_warnx("domain %u does not read its ring: events dropped",
                  d->domid);
}

void queue_error(struct conn *d, const struct xsw_hdr *h, int e)
{
    const char *name = xsw_errno_name(e);

    queue_msg(d, XSW_ERROR, h->req_id, h->tx_id, name,
              (uint32_t)strlen(name) + 1);
}

static uint32_t tx_local(const struct conn *d, uint32_t guest)
{
    if (guest == 0)
        return 0;
    for (unsigned int i = 0; i < d->ntx; i++)
        if (d->tx[i].guest == guest)
            return d->tx[i].local;
    return UINT32_MAX; /* no such transaction: the store says ENOENT */
}

static void tx_forget(struct conn *d, uint32_t guest)
{
    for (unsigned int i = 0; i < d->ntx; i++)
        if (d->tx[i].guest == guest) {
            d->tx[i] = d->tx[--d->ntx];
            return;
        }
}

void handle(struct conn *d, const struct xsw_hdr *h, const char *p)
{
    uint32_t rtype, rlen;
    char *r = NULL, num[16];
    int rc;

    log_debug("%s %u: %s tx %u len %u", d->sfd >= 0 ? "socket" : "domain",
              d->sfd >= 0 ? (unsigned int)d->sfd : d->domid,
              xsw_type_name(h->type), h->tx_id, h->len);
    d->served++;
    /* A ring's watch must fit its record (a socket client's has none). */
    if (h->type == XSW_WATCH && h->len > WATCH_REC_MAX && d->sfd < 0) {
        queue_error(d, h, E2BIG);
        return;
    }
    rc = d->g->ops->request(d->g, h->type, tx_local(d, h->tx_id), p, h->len,
                            &rtype, &r, &rlen);
    if (rc < 0) {
        queue_error(d, h, EIO);
        return;
    }
    if (rlen > XSW_PAYLOAD_MAX) {
        free(r);
        queue_error(d, h, E2BIG);
        return;
    }
    if (rtype == XSW_WATCH) {
        rec_watch(d, p, h->len);
        /* Its first event waits in the store connection. */
        d->watching = d->evq = true;
    } else if (rtype == XSW_UNWATCH) {
        rec_unwatch(d, p, h->len);
    } else if (rtype == XSW_RESET_WATCHES) {
        rec_reset(d);
        d->watching = false;
        d->ntx = 0;
    } else if (rtype == XSW_TRANSACTION_START) {
        if (d->ntx == TX_MAX) {
            /* Never with the store's quota below TX_MAX; but never lose
             * track of one either. */
            uint32_t id = (uint32_t)strtoul(r, NULL, 10);
            free(r);
            r = NULL;
            d->g->ops->request(d->g, XSW_TRANSACTION_END, id, "F", 2, &rtype,
                               &r, &rlen);
            free(r);
            queue_error(d, h, EAGAIN);
            return;
        }
        if (++d->txnext == 0)
            d->txnext = 1;
        d->tx[d->ntx].guest = d->txnext;
        d->tx[d->ntx++].local = (uint32_t)strtoul(r, NULL, 10);
        free(r);
        snprintf(num, sizeof(num), "%u", d->txnext);
        queue_msg(d, rtype, h->req_id, h->tx_id, num, (uint32_t)strlen(num) + 1);
        return;
    } else if (h->type == XSW_TRANSACTION_END &&
               !(rtype == XSW_ERROR && strcmp(r, "EINVAL") == 0)) {
        /* Committed, failed or aborted: the store has let it go. */
        tx_forget(d, h->tx_id);
    }
    queue_msg(d, rtype, h->req_id, h->tx_id, r, rlen);
    free(r);
}

static void broken(struct conn *d, uint32_t err)
{
    if (!d->broken)
        log_warnx("domain %u broke the ring protocol (%s): not served until "
                  "it reconnects",
                  d->domid,
                  err == XSR_ERROR_RINGIDX ? "ring index" : "message");
    d->broken = true;
    __atomic_store_n(&d->ring->error, err, __ATOMIC_RELEASE);
}

/* The guest asks for a fresh connection (xs_wire.h's reconnection). */
static void reconnect(struct conn *d)
{
    uint32_t rt, rl;
    char *r = NULL;

    call(d->g, XSW_RESET_WATCHES, "", 0, &rt, &r, &rl);
    free(r);
    rec_reset(d);
    d->watching = false;
    d->ntx = 0;
    d->in.have = d->in.peeked = 0;
    d->out.len = d->out.off = 0;
    d->broken = false;
    d->ring->req_cons = d->ring->req_prod = 0;
    d->ring->rsp_cons = d->ring->rsp_prod = 0;
    d->ring->error = XSR_ERROR_NONE;
    __atomic_store_n(&d->ring->connection, XSR_CONNECTED, __ATOMIC_RELEASE);
    notify(d);
    log_info("domain %u reconnected", d->domid);
}

bool out_pending(const struct conn *d)
{
    return d->out.len > d->out.off;
}

/* No room for an event and a reply: the peer is not reading. */
static bool out_full(const struct conn *d)
{
    return d->out.len - d->out.off + 2 * XSR_MSG_MAX > d->out.cap;
}

/*
 * Watch events of d's store connection into its queue, at most EV_BUDGET
 * and while there is room for them and a reply; *more is set if the
 * budget ran out. The number queued. A full queue waits for the peer to
 * read (its notification, or the sweep), not for a busy loop.
 */
int serve_events(struct conn *d, bool *more)
{
    int i;

    for (i = 0; (d->watching || d->evq) && i < EV_BUDGET; i++) {
        char *ev = NULL;
        uint32_t len = 0;

        if (out_full(d))
            break;
        if (d->g->ops->next_event(d->g, &ev, &len) < 0) {
            d->evq = false;
            break;
        }
        if (len <= XSW_PAYLOAD_MAX)
            queue_msg(d, XSW_WATCH_EVENT, 0, 0, ev, len);
        free(ev);
        if (i + 1 == EV_BUDGET)
            *more = d->evq = true;
    }
    return i;
}

/* Events may wait in d's store connection and the peer has room. */
bool events_due(const struct conn *d)
{
    return d->evq && !out_full(d);
}

/* One turn for d: true if it has more to do right away. */
bool serve(struct conn *d)
{
    struct xsw_hdr h;
    uint32_t err;
    bool kick = false, more = false;
    long w;

    d->partial = false;
    if (__atomic_load_n(&d->ring->connection, __ATOMIC_ACQUIRE) ==
        XSR_RECONNECT)
        reconnect(d);
    if (d->broken)
        return false;
    serve_events(d, &more);
    for (int i = 0; i < BUDGET; i++) {
        if ((w = xsr_flush(d->ring, &d->out, &err)) < 0) {
            broken(d, err);
            return false;
        }
        kick |= w > 0;
        /* A reply waits for room: the guest reads its ring first. */
        if (out_pending(d))
            break;
        int rc = xsr_get(d->ring, &d->in, &h, &err);
        if (rc < 0) {
            broken(d, err);
            notify(d);
            return false;
        }
        if (rc == 0) {
            d->partial = d->in.have == 0 && xsr_req_avail(d->ring) > 0;
            break;
        }
        handle(d, &h, (const char *)d->in.buf + sizeof(h));
        if ((w = xsr_flush(d->ring, &d->out, &err)) < 0) {
            broken(d, err);
            return false;
        }
        xsr_done(d->ring, &d->in);
        kick = true;
        if (i + 1 == BUDGET)
            more = true;
    }
    if (kick)
        notify(d);
    return more || events_due(d);
}
