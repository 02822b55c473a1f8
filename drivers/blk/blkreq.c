/*
 * Request validation for noxs-blk-back (see blkreq.h).
 */
#include <string.h>

#include "blkreq.h"

static int check_range(uint64_t start, uint64_t count,
                       const struct blkreq_geometry *g)
{
    /* Written to avoid overflow: start + count may wrap. */
    if (start > g->sectors || count > g->sectors - start)
        return NOXS_BLK_RSP_RANGE;
    return NOXS_BLK_RSP_OKAY;
}

static int check_alignment(uint64_t sectors, const struct blkreq_geometry *g)
{
    uint64_t per = g->sector_size >> NOXS_BLK_SECTOR_SHIFT;

    return per > 1 && sectors % per != 0 ? NOXS_BLK_RSP_INVALID
                                         : NOXS_BLK_RSP_OKAY;
}

static int check_rw(const struct noxs_blk_request *req,
                    const struct blkreq_geometry *g, struct blkreq *out)
{
    uint64_t total = 0;
    unsigned int n = req->nr_segments;

    if (n == 0 || n > NOXS_BLK_MAX_SEGMENTS)
        return NOXS_BLK_RSP_INVALID;
    for (unsigned int i = 0; i < n; i++) {
        const struct noxs_blk_segment *s = &req->u.seg[i];
        unsigned int first = s->first_sect, last = s->last_sect;

        if (first > last || last >= NOXS_BLK_SECTORS_PER_PAGE)
            return NOXS_BLK_RSP_INVALID;
        if (check_alignment(first, g) != 0 || check_alignment(last + 1, g) != 0)
            return NOXS_BLK_RSP_INVALID;
        out->seg[i].gref = s->gref;
        out->seg[i].offset = first << NOXS_BLK_SECTOR_SHIFT;
        out->seg[i].length = (last - first + 1) << NOXS_BLK_SECTOR_SHIFT;
        total += last - first + 1;
    }
    out->nr_segments = (uint8_t)n;
    if (check_alignment(req->sector_number, g) != 0)
        return NOXS_BLK_RSP_INVALID;
    if (check_range(req->sector_number, total, g) != 0)
        return NOXS_BLK_RSP_RANGE;
    if (req->operation == NOXS_BLK_OP_WRITE && g->readonly)
        return NOXS_BLK_RSP_READONLY;
    out->offset = req->sector_number << NOXS_BLK_SECTOR_SHIFT;
    out->length = total << NOXS_BLK_SECTOR_SHIFT;
    return NOXS_BLK_RSP_OKAY;
}

int blkreq_check(const struct noxs_blk_request *req,
                 const struct blkreq_geometry *g, struct blkreq *out)
{
    memset(out, 0, sizeof(*out));
    out->id = req->id;
    out->operation = req->operation;
    switch (req->operation) {
    case NOXS_BLK_OP_READ:
    case NOXS_BLK_OP_WRITE:
        return check_rw(req, g, out);
    case NOXS_BLK_OP_FLUSH:
        return NOXS_BLK_RSP_OKAY;
    case NOXS_BLK_OP_DISCARD: {
        uint64_t start = req->sector_number;
        uint64_t count = req->u.discard.nr_sectors;

        if (!g->discard)
            return NOXS_BLK_RSP_NOTSUPP;
        if (count == 0 || check_alignment(start, g) != 0 ||
            check_alignment(count, g) != 0)
            return NOXS_BLK_RSP_INVALID;
        if (check_range(start, count, g) != 0)
            return NOXS_BLK_RSP_RANGE;
        if (g->readonly)
            return NOXS_BLK_RSP_READONLY;
        out->offset = start << NOXS_BLK_SECTOR_SHIFT;
        out->length = count << NOXS_BLK_SECTOR_SHIFT;
        return NOXS_BLK_RSP_OKAY;
    }
    default:
        return NOXS_BLK_RSP_NOTSUPP;
    }
}

int64_t blkreq_ring_available(uint32_t req_prod, uint32_t req_cons,
                              uint32_t rsp_prod, uint32_t size)
{
    uint32_t unanswered = req_prod - rsp_prod;
    uint32_t unconsumed = req_prod - req_cons;

    /* Requests not yet answered can never exceed the ring, and the
     * producer can never be behind what we already consumed. */
    if (unanswered > size || unconsumed > unanswered)
        return -1;
    return unconsumed;
}
