/*
 * noxs blk ring protocol: what a blk frontend and backend share (device
 * type NOXS_DEV_BLK). Installed, so that a driver written elsewhere, in C
 * or C++, needs nothing else; docs/DRIVERS.md describes the keys.
 *
 * The frontend shares 2^ring-page-order pages (the "shared ring") with the
 * backend's domain, read-write. The ring starts with a 64-byte header of
 * four free-running 32-bit indices and then holds a power-of-two number
 * of 112-byte slots; a slot carries a request (frontend -> backend) and is
 * later overwritten by its response (backend -> frontend), as in Xen's
 * io/ring.h, whose layout this follows (our own macros, same idea):
 *
 *   req_prod   frontend: requests published (release store)
 *   req_event  backend: "notify me when req_prod passes this"
 *   rsp_prod   backend: responses published (release store)
 *   rsp_event  frontend: "notify me when rsp_prod passes this"
 *
 * Each side keeps a private consumer index; the backend's "produced
 * responses" index always trails its consumed-requests index, and a
 * response goes into the slot of an already consumed request, so slots
 * are never written by both sides at once.
 *
 * Sectors are 512-byte units everywhere on the ring (sector_number,
 * first_sect/last_sect, discard length), whatever the device's logical
 * sector size ("sector-size"); a 4096-byte device requires every range to
 * be 4096-aligned. Data travels in granted 4 KiB pages named by grant
 * refs in the segments; a frontend may re-use the same refs for every
 * request ("feature-persistent"), which lets the backend keep them mapped.
 *
 * Nothing read from the ring is trusted by the backend: a request is
 * copied out of its slot once and only the copy is validated and used.
 */
#ifndef NOXS_IO_BLKIF_H
#define NOXS_IO_BLKIF_H

#include <stdint.h>

#include <noxs/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NOXS_BLK_PAGE_SIZE 4096u
#define NOXS_BLK_SECTOR_SHIFT 9
#define NOXS_BLK_SECTORS_PER_PAGE (NOXS_BLK_PAGE_SIZE >> NOXS_BLK_SECTOR_SHIFT)
#define NOXS_BLK_MAX_SEGMENTS 11u
#define NOXS_BLK_MAX_RING_ORDER 4u

/* Operations. */
#define NOXS_BLK_OP_READ 0u
#define NOXS_BLK_OP_WRITE 1u
#define NOXS_BLK_OP_FLUSH 3u   /* BLKIF_OP_FLUSH_DISKCACHE */
#define NOXS_BLK_OP_DISCARD 5u /* BLKIF_OP_DISCARD */

/* Response status (int16). 0 and -1/-2 are blkif's; the rest are ours. */
#define NOXS_BLK_RSP_OKAY 0
#define NOXS_BLK_RSP_ERROR (-1)    /* I/O error (EIO) */
#define NOXS_BLK_RSP_NOTSUPP (-2)  /* operation not supported */
#define NOXS_BLK_RSP_RANGE (-3)    /* beyond the end of the device */
#define NOXS_BLK_RSP_READONLY (-4) /* write/discard on a r/o device */
#define NOXS_BLK_RSP_INVALID (-5)  /* malformed request */
#define NOXS_BLK_RSP_BADGREF (-6)  /* a data grant could not be mapped */

/* "info" key bits (VDISK_* in blkif.h). */
#define NOXS_BLK_INFO_READONLY 0x4u

struct noxs_blk_segment {
    uint32_t gref;      /* granted data page */
    uint8_t first_sect; /* first 512-byte sector of the page, 0..7 */
    uint8_t last_sect;  /* last one, first_sect..7 (inclusive) */
    uint16_t reserved;
};

struct noxs_blk_request {
    uint8_t operation;   /* NOXS_BLK_OP_* */
    uint8_t nr_segments; /* read/write: 1..NOXS_BLK_MAX_SEGMENTS */
    uint16_t reserved0;
    uint32_t reserved1;
    uint64_t id;            /* echoed in the response */
    uint64_t sector_number; /* start, 512-byte units */
    union {
        struct noxs_blk_segment seg[NOXS_BLK_MAX_SEGMENTS];
        struct {
            uint64_t nr_sectors; /* discard length, 512-byte units */
        } discard;
    } u;
};

struct noxs_blk_response {
    uint64_t id;
    uint8_t operation;
    uint8_t reserved0;
    int16_t status; /* NOXS_BLK_RSP_* */
    uint32_t reserved1;
};

union noxs_blk_slot {
    struct noxs_blk_request req;
    struct noxs_blk_response rsp;
};

struct noxs_blk_sring {
    uint32_t req_prod;
    uint32_t req_event;
    uint32_t rsp_prod;
    uint32_t rsp_event;
    uint8_t pad[48];
#ifndef __cplusplus
    union noxs_blk_slot slot[]; /* C only: C++ has no flexible arrays */
#endif
};

NOXS_STATIC_ASSERT(sizeof(struct noxs_blk_segment) == 8, "blk segment");
NOXS_STATIC_ASSERT(sizeof(struct noxs_blk_request) == 112, "blk request");
NOXS_STATIC_ASSERT(sizeof(struct noxs_blk_response) == 16, "blk response");
NOXS_STATIC_ASSERT(sizeof(union noxs_blk_slot) == 112, "blk slot");
NOXS_STATIC_ASSERT(sizeof(struct noxs_blk_sring) == 64, "blk sring header");

/* Slot i of the ring that starts at s (the same as s->slot[i] in C). */
static inline union noxs_blk_slot *noxs_blk_slot_at(struct noxs_blk_sring *s,
                                                    uint32_t i)
{
    return (union noxs_blk_slot *)(void *)((uint8_t *)s + sizeof(*s)) + i;
}

/*
 * Peer death is not part of this protocol: the frontend shares the
 * library's liveness page (<noxs/abi.h>, NOXS_LIVENESS_KEY), as every
 * driver does.
 */

/* Slots in a ring of 2^order pages: the largest power of two that fits. */
static inline uint32_t noxs_blk_ring_size(unsigned int order)
{
    uint32_t fit = (uint32_t)(((NOXS_BLK_PAGE_SIZE << order) -
                               sizeof(struct noxs_blk_sring)) /
                              sizeof(union noxs_blk_slot));
    uint32_t n = 1;
    while (n * 2 <= fit)
        n *= 2;
    return n;
}

/*
 * Index access. Indices are free-running; a slot is index & (size - 1).
 * Loads of the peer's index are acquire, stores of ours are release, so
 * slot contents written before a store are visible after the matching
 * load. noxs_blk_ring_mb() is the full barrier between publishing an
 * index and reading the peer's event index (and between arming our event
 * index and re-checking the peer's producer), without which both sides
 * could decide not to notify and sleep forever.
 */
#define noxs_blk_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define noxs_blk_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define noxs_blk_ring_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/*
 * After moving a producer index from old to new: must the peer be
 * notified? True if the peer's event index lies in (old, new].
 */
static inline int noxs_blk_need_notify(uint32_t old, uint32_t new_prod,
                                       uint32_t event)
{
    return (uint32_t)(new_prod - event) < (uint32_t)(new_prod - old);
}

#ifdef __cplusplus
}
#endif

#endif /* NOXS_IO_BLKIF_H */
