/*
 * libFuzzer target: the XenStore ring parser of noxs-xsringd
 * (compat-xs/xsringd_ring.c) against a guest that writes what it likes.
 * The input is the ring page as the guest left it, then a script of
 * moves: the service reads, answers, queues and flushes; the guest
 * moves its indexes and rewrites bytes between those steps. The parser
 * must never read or write outside its buffers (ASan), never hand out
 * a message longer than the protocol allows, never write more than the
 * ring holds, never queue past its cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xsringd_ring.h"

static struct xsr_intf ring;
static struct xsr_in in;

#define CHECK(c)     \
    do {             \
        if (!(c))    \
            abort(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xsr_out out = {.cap = 3 * XSR_MSG_MAX};
    static char payload[XSW_PAYLOAD_MAX];
    size_t n = size < sizeof(ring) ? size : sizeof(ring), i;
    struct xsw_hdr h;
    uint32_t err;

    memset(&ring, 0, sizeof(ring));
    memcpy(&ring, data, n);
    memset(&in, 0, sizeof(in));
    for (i = n; i + 3 <= size && i < n + 3 * 4096; i += 3) {
        uint16_t arg = (uint16_t)(data[i + 1] | data[i + 2] << 8);

        switch (data[i] % 7) {
        case 0: { /* the service reads, then answers */
            int rc = xsr_get(&ring, &in, &h, &err);
            if (rc < 0) {
                CHECK(err == XSR_ERROR_RINGIDX || err == XSR_ERROR_PROTO);
                memset(&in, 0, sizeof(in));
            } else if (rc == 1) {
                CHECK(h.len <= XSW_PAYLOAD_MAX);
                CHECK(in.buf[sizeof(h) + h.len] == '\0');
                xsr_done(&ring, &in);
            }
            CHECK(in.have <= XSR_MSG_MAX);
            break;
        }
        case 1: /* the guest produces (or lies) */
            ring.req_prod += arg;
            break;
        case 2: /* the guest moves the service's own index */
            ring.req_cons = arg;
            break;
        case 3: { /* a reply or an event is queued */
            struct xsw_hdr q = {XSW_READ, arg, 0, arg % (XSW_PAYLOAD_MAX + 2)};
            size_t before = out.len - out.off;
            int rc = xsr_queue(&out, &q, payload);
            CHECK(rc == 0 || rc == -1);
            CHECK(out.len <= out.cap);
            CHECK(rc < 0 || out.len - out.off == before + sizeof(q) + q.len);
            break;
        }
        case 4: { /* what fits is written */
            uint32_t before = ring.rsp_prod;
            long w = xsr_flush(&ring, &out, &err);
            CHECK(w <= (long)XSR_RING_SIZE);
            CHECK(w < 0 || ring.rsp_prod - before == (uint32_t)w);
            break;
        }
        case 5: /* the guest consumes replies (or lies) */
            ring.rsp_cons += arg;
            break;
        default: /* the guest rewrites a byte of its requests */
            ring.req[arg % XSR_RING_SIZE] = (char)(arg >> 8);
            break;
        }
        (void)xsr_req_avail(&ring);
    }
    xsr_out_free(&out);
    return 0;
}
