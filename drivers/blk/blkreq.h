/*
 * Validation of blk ring requests, kept apart from the I/O so that unit
 * tests and the fuzzer exercise exactly the checks the backend runs.
 *
 * Everything here works on a private copy of a request: the caller copies
 * the slot out of the shared ring once, and nothing is read from shared
 * memory again.
 */
#ifndef NOXS_BLKREQ_H
#define NOXS_BLKREQ_H

#include <stdbool.h>
#include <stdint.h>

#include <noxs/io/blkif.h>

#include "common/spin.h"

/* What a device offers, fixed when it is created. */
struct blkreq_geometry {
    uint64_t sectors;     /* device size in 512-byte units */
    uint32_t sector_size; /* logical sector size: 512 or 4096 */
    bool readonly;
    bool discard; /* discard supported */
};

struct blkreq_segment {
    uint32_t gref;
    uint32_t offset; /* byte offset in the page */
    uint32_t length; /* bytes, a multiple of 512, > 0 */
};

/* A validated request. */
struct blkreq {
    uint64_t id;
    uint8_t operation;
    uint8_t nr_segments;
    uint64_t offset; /* byte offset on the device */
    uint64_t length; /* bytes (read/write: sum of segments; discard) */
    struct blkreq_segment seg[NOXS_BLK_MAX_SEGMENTS];
};

/*
 * Check req (a private copy) against g and fill out. Returns
 * NOXS_BLK_RSP_OKAY, or the status to answer with: NOTSUPP (unknown
 * operation, discard not offered), INVALID (segment count, sector bounds
 * inside a page, misalignment for a 4096-byte device, empty discard),
 * RANGE (any part beyond the end), READONLY (write/discard on a
 * read-only device). out->id and out->operation are set in every case.
 */
int blkreq_check(const struct noxs_blk_request *req,
                 const struct blkreq_geometry *g, struct blkreq *out);

/*
 * How many new requests may be consumed: req_prod is the frontend's
 * (untrusted) producer index, req_cons our consumer index and rsp_prod
 * our private response producer. Returns the count (0..size), or -1 if
 * req_prod claims more outstanding requests than the ring holds (a
 * garbage index: the ring must be abandoned).
 */
int64_t blkreq_ring_available(uint32_t req_prod, uint32_t req_cons,
                              uint32_t rsp_prod, uint32_t size);

#endif /* NOXS_BLKREQ_H */
