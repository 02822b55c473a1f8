/*
 * A guest's XenStore ring as the service sees it: the shared page's
 * layout (Xen's public/io/xs_wire.h, struct xenstore_domain_interface;
 * the layout and numbers are Xen's, the names ours) and the parsing of
 * what the guest writes there. Pure: no system calls, so it is a fuzz
 * target (tests/fuzz/fuzz_xsring.c).
 *
 * The guest owns req_prod and rsp_cons, the service req_cons and
 * rsp_prod. Everything the guest writes is hostile input: every index is
 * read once into a local, prod - cons must stay within the ring, a
 * header's length within XSW_PAYLOAD_MAX; anything else is a protocol
 * error and the service stops reading that ring.
 */
#ifndef COMPAT_XS_XSRINGD_RING_H
#define COMPAT_XS_XSRINGD_RING_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define XSR_RING_SIZE 1024u

struct xsr_intf {
    char req[XSR_RING_SIZE]; /* guest -> service */
    char rsp[XSR_RING_SIZE]; /* service -> guest: replies, watch events */
    uint32_t req_cons, req_prod;
    uint32_t rsp_cons, rsp_prod;
    uint32_t server_features;
    uint32_t connection;
    uint32_t error;
};

/* server_features */
#define XSR_FEATURE_RECONNECTION 1u
#define XSR_FEATURE_ERROR 2u
/* connection */
#define XSR_CONNECTED 0u
#define XSR_RECONNECT 1u
/* error */
#define XSR_ERROR_NONE 0u
#define XSR_ERROR_COMM 1u
#define XSR_ERROR_RINGIDX 2u
#define XSR_ERROR_PROTO 3u

#define XSR_MSG_MAX (sizeof(struct xsw_hdr) + XSW_PAYLOAD_MAX)

/*
 * A request being read. A message that is whole in the ring is parsed
 * where it lies and consumed only after its reply is written (so a
 * service killed meanwhile answers it when it comes back); one larger
 * than the ring is consumed piece by piece into buf as the guest writes
 * it.
 */
struct xsr_in {
    uint32_t have;   /* bytes of the message already consumed into buf */
    uint32_t peeked; /* bytes of the ready message still in the ring */
    unsigned char buf[XSR_MSG_MAX + 1];
};

/*
 * Look for one whole request. 1: a message is ready, *h its header and
 * its payload at in->buf + sizeof(*h), NUL-terminated one byte past its
 * length; call xsr_done once it is answered. 0: not yet. -1: the guest
 * broke the protocol; *err is the XSR_ERROR_* to report.
 */
int xsr_get(struct xsr_intf *r, struct xsr_in *in, struct xsw_hdr *h,
            uint32_t *err);
/* The ready message is answered: consume what is left of it. */
void xsr_done(struct xsr_intf *r, struct xsr_in *in);

/*
 * Bytes queued for the guest (replies and events), written as the guest
 * frees room. cap bounds it: xsr_queue refuses (-1) what would pass it.
 */
struct xsr_out {
    char *buf;
    size_t len, off, cap;
};
int xsr_queue(struct xsr_out *o, const struct xsw_hdr *h, const void *payload);
/*
 * Write what fits into the ring. Returns the bytes written (0: the ring
 * is full or nothing is queued), -1 if the guest's rsp_cons is out of
 * range (*err set as for xsr_get).
 */
long xsr_flush(struct xsr_intf *r, struct xsr_out *o, uint32_t *err);
void xsr_out_free(struct xsr_out *o);

/* Bytes of requests waiting in the ring, 0 if the indexes are corrupt. */
uint32_t xsr_req_avail(const struct xsr_intf *r);

#endif /* COMPAT_XS_XSRINGD_RING_H */
