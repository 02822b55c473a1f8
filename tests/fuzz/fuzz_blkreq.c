/*
 * libFuzzer target: noxs-blk-back's request validation and ring-index
 * check on arbitrary bytes. An accepted request must stay inside the
 * device and inside its pages, whatever the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blkreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct noxs_blk_request req;
    struct blkreq out;
    struct blkreq_geometry g = {.sectors = 1u << 20, .sector_size = 512, .readonly = false, .discard = true};
    uint32_t idx[4] = {0};

    if (size < sizeof(req) + 1)
        return 0;
    memcpy(&req, data, sizeof(req));
    g.sector_size = (data[sizeof(req)] & 1) ? 4096 : 512;
    g.readonly = (data[sizeof(req)] & 2) != 0;
    g.sectors = (data[sizeof(req)] & 4) ? 8 : g.sectors;
    if (blkreq_check(&req, &g, &out) == NOXS_BLK_RSP_OKAY) {
        if (out.offset + out.length > g.sectors * 512 ||
            out.offset + out.length < out.offset)
            abort();
        for (unsigned int i = 0; i < out.nr_segments; i++)
            if (out.seg[i].offset + out.seg[i].length > 4096)
                abort();
    }
    memcpy(idx, data + sizeof(req) + 1,
           size - sizeof(req) - 1 < sizeof(idx) ? size - sizeof(req) - 1
                                                : sizeof(idx));
    int64_t n = blkreq_ring_available(idx[0], idx[1], idx[1] - (idx[2] & 63), 32);
    if (n > 32)
        abort();
    return 0;
}
