/*
 * noxs console ring protocol: a byte stream in each direction.
 *
 * The frontend shares, read-write, with the backend's domain:
 *   - one header page ("ring-ref"), shared with an unshare notification
 *     that zeroes byte NOXS_CONS_ALIVE_FRONTEND; the backend maps it with
 *     an unmap notification that zeroes byte NOXS_CONS_ALIVE_BACKEND.
 *     Either side dying therefore zeroes its byte and wakes the other;
 *   - 2 * 2^ring-page-order data pages ("data-ref0".."data-refN-1"),
 *     the first half the "out" ring (guest output, frontend -> backend),
 *     the second half the "in" ring (guest input, backend -> frontend).
 * and one event channel ("event-channel", the frontend's unbound port).
 *
 * Indices are free-running byte counts; a ring of S bytes (a power of
 * two) holds prod - cons bytes (never more than S) at cons & (S - 1).
 * The producer writes bytes, then stores prod (release); the consumer
 * loads prod (acquire), reads, then stores cons (release).
 *
 * Notifications only when the other side may be waiting. A side about to
 * sleep for lack of data sets its *_data_wanted word, a producer blocked
 * on a full ring sets *_space_wanted, then each does a full barrier and
 * re-checks the indices before sleeping. The other side, after moving an
 * index, does a full barrier and notifies if the matching word is set.
 * (The barrier pairs are what make "both decide not to notify" impossible.)
 * The sleeper clears its word when it wakes up.
 *
 * A full ring is back-pressure: the producer stops and waits, nothing is
 * dropped or reordered. The backend trusts nothing: indices it reads are
 * checked (prod - cons <= S), and a violation abandons the connection.
 */
#ifndef NOXS_IO_CONSIF_H
#define NOXS_IO_CONSIF_H

#include <stdint.h>

#include <noxs/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NOXS_CONS_PAGE_SIZE 4096u
#define NOXS_CONS_MAX_RING_ORDER 3u
#define NOXS_CONS_DEFAULT_RING_ORDER 2u

struct noxs_cons_header {
    uint32_t out_prod;         /* frontend */
    uint32_t out_cons;         /* backend */
    uint32_t in_prod;          /* backend */
    uint32_t in_cons;          /* frontend */
    uint32_t out_data_wanted;  /* backend sleeps until out_prod moves */
    uint32_t out_space_wanted; /* frontend sleeps until out_cons moves */
    uint32_t in_data_wanted;   /* frontend sleeps until in_prod moves */
    uint32_t in_space_wanted;  /* backend sleeps until in_cons moves */
    uint8_t reserved[96];
    uint8_t frontend_alive; /* offset 128 */
    uint8_t pad0[63];
    uint8_t backend_alive; /* offset 192 */
    uint8_t pad1[63];
};

#define NOXS_CONS_ALIVE_FRONTEND 128u
#define NOXS_CONS_ALIVE_BACKEND 192u

NOXS_STATIC_ASSERT(sizeof(struct noxs_cons_header) == 256, "cons header");
NOXS_STATIC_ASSERT(__builtin_offsetof(struct noxs_cons_header,
                                      frontend_alive) ==
                       NOXS_CONS_ALIVE_FRONTEND,
                   "frontend_alive");
NOXS_STATIC_ASSERT(__builtin_offsetof(struct noxs_cons_header,
                                      backend_alive) ==
                       NOXS_CONS_ALIVE_BACKEND,
                   "backend_alive");

#define noxs_cons_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define noxs_cons_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define noxs_cons_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* Bytes of one ring for a ring-page-order. */
static inline uint32_t noxs_cons_ring_bytes(unsigned int order)
{
    return NOXS_CONS_PAGE_SIZE << order;
}

/*
 * Copy up to len bytes out of ring (size bytes) starting at index cons;
 * the caller has checked that avail = prod - cons bytes are there.
 */
static inline uint32_t noxs_cons_read(const uint8_t *ring, uint32_t size,
                                      uint32_t cons, uint32_t avail,
                                      uint8_t *dst, uint32_t len)
{
    uint32_t n = avail < len ? avail : len;
    uint32_t off = cons & (size - 1);
    uint32_t first = size - off < n ? size - off : n;

    __builtin_memcpy(dst, ring + off, first);
    __builtin_memcpy(dst + first, ring, n - first);
    return n;
}

/* Copy up to len bytes into ring at index prod, given space free bytes. */
static inline uint32_t noxs_cons_write(uint8_t *ring, uint32_t size,
                                       uint32_t prod, uint32_t space,
                                       const uint8_t *src, uint32_t len)
{
    uint32_t n = space < len ? space : len;
    uint32_t off = prod & (size - 1);
    uint32_t first = size - off < n ? size - off : n;

    __builtin_memcpy(ring + off, src, first);
    __builtin_memcpy(ring, src + first, n - first);
    return n;
}

#ifdef __cplusplus
}
#endif

#endif /* NOXS_IO_CONSIF_H */
