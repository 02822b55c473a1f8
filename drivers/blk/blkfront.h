/*
 * blkfront: a small C API for the guest side of a noxs blk device.
 *
 * A handle connects to one blk device listed in the guest's device page,
 * does the xenbus-style handshake on its control page, and then moves
 * data through a shared ring (<noxs/io/blkif.h>) and a pool of data
 * pages granted to the backend as requests first need them, 4 slots of
 * 11 pages at a time, and kept till close ("feature-persistent"): the API
 * copies user buffers into and out of those pages, so user buffers need
 * no alignment. Offsets and lengths must be multiples of the device's
 * sector size. For large I/O there is also a zero-copy path (below):
 * buffers that are themselves granted pages, which the backend reads and
 * writes directly.
 *
 * Conventions as in libnoxs: -1/NULL and errno; a handle is not
 * thread-safe (one thread at a time); every wait is bounded by the
 * handle's timeout (noxs_blkfront_set_timeout), so a dead or silent
 * backend fails requests with ETIMEDOUT or ENOTCONN instead of hanging.
 *
 * Errors of a request: ERANGE (beyond the end), EROFS (read-only device),
 * EINVAL (misaligned or malformed), EOPNOTSUPP (operation not offered),
 * EFAULT (the backend could not map a data page), EIO (I/O error on the
 * backend), ENOTCONN (the backend closed or died), ETIMEDOUT.
 */
#ifndef NOXS_BLKFRONT_H
#define NOXS_BLKFRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <noxs/noxs.h>

typedef struct noxs_blkfront noxs_blkfront;

struct noxs_blkfront_info {
    uint64_t size;        /* bytes */
    uint32_t sector_size; /* 512 or 4096 */
    bool readonly;
    bool flush;   /* feature-flush-cache */
    bool discard; /* feature-discard */
    unsigned int ring_order;
    unsigned int queue_depth; /* ring requests that may be in flight */
};

/*
 * Attach to blk device devid of frontend f (waiting up to timeout_ms for
 * it to appear) and connect with a ring of 2^ring_order pages (0..4).
 * f must outlive the handle. Errors: ENOENT (no such device), ETIMEDOUT,
 * ECONNREFUSED (the backend refused the connection; its "error" key is
 * logged through libnoxs's logger), EPROTO (bad backend keys), and those
 * of the grant and event-channel calls.
 */
noxs_blkfront *noxs_blkfront_open(noxs_frontend *f, uint32_t devid,
                                  unsigned int ring_order, int timeout_ms);
/*
 * Wait (bounded) for requests in flight, walk Closing -> Closed and free
 * the handle. Returns 0, or -1 with the first error of the shutdown (the
 * handle is freed anyway).
 */
int noxs_blkfront_close(noxs_blkfront *b);
void noxs_blkfront_get_info(const noxs_blkfront *b,
                            struct noxs_blkfront_info *out);
/* Bound on every wait for the backend, in ms (default 30000). */
void noxs_blkfront_set_timeout(noxs_blkfront *b, int timeout_ms);

/* ---- asynchronous requests ---- */

#define NOXS_BLKFRONT_READ 0u
#define NOXS_BLKFRONT_WRITE 1u
#define NOXS_BLKFRONT_FLUSH 2u
#define NOXS_BLKFRONT_DISCARD 3u

struct noxs_blkfront_io;
/* err: 0 or an errno value. Called from submit/poll/close. */
typedef void noxs_blkfront_done_fn(struct noxs_blkfront_io *io, int err);

struct noxs_blkfront_io {
    unsigned int op; /* NOXS_BLKFRONT_* */
    void *buf;       /* read: filled; write: source (not needed after
                          submit returns) */
    size_t len;      /* bytes (read/write/discard) */
    uint64_t offset; /* bytes */
    noxs_blkfront_done_fn *done;
    void *user;
    /* private to blkfront */
    unsigned int pending;
    int err;
    bool submitting;
};

/*
 * Queue io (it must stay valid until done is called). Large reads and
 * writes are split into ring requests of up to 44 KiB; if the ring is
 * full, submit processes completions until there is room. Returns 0
 * (done will be called exactly once, possibly before submit returns),
 * or -1 with errno and done not called (EINVAL, ENOTCONN, ...).
 */
int noxs_blkfront_submit(noxs_blkfront *b, struct noxs_blkfront_io *io);
/*
 * Process completions, waiting up to timeout_ms (<0: the handle's
 * timeout) for at least one if requests are in flight. Returns how many
 * ring requests completed (0: none within the timeout), -1 with errno
 * ENOTCONN if the connection is gone (every request in flight has then
 * been failed with ENOTCONN).
 */
int noxs_blkfront_poll(noxs_blkfront *b, int timeout_ms);
/* Ring requests in flight. */
unsigned int noxs_blkfront_inflight(const noxs_blkfront *b);

/* ---- zero-copy buffers ---- */

/*
 * A buffer of at least bytes bytes (whole 4 KiB pages, page-aligned)
 * whose pages are granted to the backend, read-write, for the lifetime
 * of the handle. Requests submitted with noxs_blkfront_submit_buf (or
 * read_buf/write_buf) on memory inside such a buffer are not copied:
 * the backend's preadv/pwritev goes straight to these pages. So the
 * buffer must not be touched while a request on it is in flight (a read
 * fills it in place; a write's data must stay put until done is called,
 * unlike noxs_blkfront_submit). Errors: EINVAL (bytes is 0 or too
 * large), ENOTCONN/ETIMEDOUT (dead handle), and those of the grant calls
 * (e.g. ENOSPC when the domain is out of grant refs).
 *
 * buf_free puts the buffer on the handle's free list, where the next
 * buf_alloc of at most its size re-uses it: its grant refs stay shared
 * (the backend may keep them mapped) until close, which releases every
 * buffer, freed or not; no buffer may be used after close. Freeing with
 * a request in flight on the buffer is the caller's bug.
 */
void *noxs_blkfront_buf_alloc(noxs_blkfront *b, size_t bytes);
void noxs_blkfront_buf_free(noxs_blkfront *b, void *buf);
/*
 * As noxs_blkfront_submit, but io->buf .. io->buf + io->len must lie in
 * one buffer from noxs_blkfront_buf_alloc (not freed), starting at a
 * multiple of the sector size from the buffer's start; else EINVAL.
 * Flush and discard behave as with noxs_blkfront_submit.
 */
int noxs_blkfront_submit_buf(noxs_blkfront *b, struct noxs_blkfront_io *io);

/* ---- synchronous requests (0 or -1 with errno) ---- */

int noxs_blkfront_read(noxs_blkfront *b, void *buf, size_t len,
                       uint64_t offset);
int noxs_blkfront_write(noxs_blkfront *b, const void *buf, size_t len,
                        uint64_t offset);
/* Zero-copy variants: buf as for noxs_blkfront_submit_buf. */
int noxs_blkfront_read_buf(noxs_blkfront *b, void *buf, size_t len,
                           uint64_t offset);
int noxs_blkfront_write_buf(noxs_blkfront *b, const void *buf, size_t len,
                            uint64_t offset);
int noxs_blkfront_flush(noxs_blkfront *b);
int noxs_blkfront_discard(noxs_blkfront *b, uint64_t offset, uint64_t len);

#endif /* NOXS_BLKFRONT_H */
