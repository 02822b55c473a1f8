/*
 * Parsing of a guest's XenStore ring (xsringd_ring.h). Index rules as in
 * Xen's xs_wire.h and Linux's xenbus_comms.c: read the peer's producer,
 * then the data (acquire); write the data, then the producer (release);
 * a consumer index moves only after the bytes it covers were copied.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xsringd_ring.h"

#define MASK(i) ((i) & (XSR_RING_SIZE - 1))

static uint32_t ld(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Copy n (<= XSR_RING_SIZE) bytes of the ring from index i. */
static void ring_out(const char *ring, uint32_t i, void *dst, uint32_t n)
{
    uint32_t o = MASK(i), first = XSR_RING_SIZE - o;

    if (first > n)
        first = n;
    memcpy(dst, ring + o, first);
    memcpy((char *)dst + first, ring, n - first);
}

static void ring_in(char *ring, uint32_t i, const void *src, uint32_t n)
{
    uint32_t o = MASK(i), first = XSR_RING_SIZE - o;

    if (first > n)
        first = n;
    memcpy(ring + o, src, first);
    memcpy(ring, (const char *)src + first, n - first);
}

uint32_t xsr_req_avail(const struct xsr_intf *r)
{
    uint32_t a = ld(&r->req_prod) - ld(&r->req_cons);

    return a > XSR_RING_SIZE ? 0 : a;
}

static void consume(struct xsr_intf *r, uint32_t cons, uint32_t n)
{
    /* The bytes were copied before the guest may overwrite them. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    st(&r->req_cons, cons + n);
}

int xsr_get(struct xsr_intf *r, struct xsr_in *in, struct xsw_hdr *h,
            uint32_t *err)
{
    uint32_t cons = ld(&r->req_cons), prod = ld(&r->req_prod);
    uint32_t avail = prod - cons, total, n;

    *err = XSR_ERROR_NONE;
    if (avail > XSR_RING_SIZE) {
        *err = XSR_ERROR_RINGIDX;
        return -1;
    }
    in->peeked = 0;
    if (in->have == 0) {
        if (avail < sizeof(*h))
            return 0;
        ring_out(r->req, cons, in->buf, sizeof(*h));
        memcpy(h, in->buf, sizeof(*h));
        if (h->len > XSW_PAYLOAD_MAX) {
            *err = XSR_ERROR_PROTO;
            return -1;
        }
        total = (uint32_t)sizeof(*h) + h->len;
        if (avail >= total) {
            /* Whole in the ring: parse in place, consume when answered. */
            ring_out(r->req, cons + sizeof(*h), in->buf + sizeof(*h), h->len);
            in->buf[total] = '\0';
            in->peeked = total;
            return 1;
        }
        if (total <= XSR_RING_SIZE)
            return 0; /* the guest has room to write the rest */
        /* Larger than the ring: take what is there, the guest goes on. */
        ring_out(r->req, cons, in->buf, avail);
        consume(r, cons, avail);
        in->have = avail;
        return 0;
    }
    memcpy(h, in->buf, sizeof(*h));
    if (in->have < sizeof(*h) || h->len > XSW_PAYLOAD_MAX) {
        /* Only a corrupt caller state gets here. */
        *err = XSR_ERROR_PROTO;
        return -1;
    }
    total = (uint32_t)sizeof(*h) + h->len;
    n = total - in->have;
    if (n > avail)
        n = avail;
    ring_out(r->req, cons, in->buf + in->have, n);
    consume(r, cons, n);
    in->have += n;
    if (in->have < total)
        return 0;
    in->buf[total] = '\0';
    return 1;
}

void xsr_done(struct xsr_intf *r, struct xsr_in *in)
{
    if (in->peeked)
        consume(r, ld(&r->req_cons), in->peeked);
    in->peeked = 0;
    in->have = 0;
}

int xsr_queue(struct xsr_out *o, const struct xsw_hdr *h, const void *payload)
{
    size_t n = sizeof(*h) + h->len;

    if (h->len > XSW_PAYLOAD_MAX)
        return -1;
    if (o->off) {
        memmove(o->buf, o->buf + o->off, o->len - o->off);
        o->len -= o->off;
        o->off = 0;
    }
    if (o->len + n > o->cap)
        return -1;
    if (!o->buf && !(o->buf = malloc(o->cap)))
        return -1;
    memcpy(o->buf + o->len, h, sizeof(*h));
    if (h->len)
        memcpy(o->buf + o->len + sizeof(*h), payload, h->len);
    o->len += n;
    return 0;
}

long xsr_flush(struct xsr_intf *r, struct xsr_out *o, uint32_t *err)
{
    uint32_t cons = ld(&r->rsp_cons), prod = ld(&r->rsp_prod);
    uint32_t used = prod - cons, n;

    *err = XSR_ERROR_NONE;
    if (used > XSR_RING_SIZE) {
        *err = XSR_ERROR_RINGIDX;
        return -1;
    }
    n = XSR_RING_SIZE - used;
    if (n > o->len - o->off)
        n = (uint32_t)(o->len - o->off);
    if (n == 0)
        return 0;
    ring_in(r->rsp, prod, o->buf + o->off, n);
    st(&r->rsp_prod, prod + n);
    o->off += n;
    if (o->off == o->len)
        o->off = o->len = 0;
    return n;
}

void xsr_out_free(struct xsr_out *o)
{
    free(o->buf);
    o->buf = NULL;
    o->len = o->off = 0;
}
