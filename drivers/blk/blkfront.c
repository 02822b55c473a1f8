/*
 * blkfront: the guest side of a noxs blk device (see blkfront.h).
 *
 * Layout. With a ring of S slots we use Q = min(S, MAX_QUEUE) of them
 * (all of them: MAX_QUEUE is the largest ring's size). The first
 * P = min(Q, POOL_SLOTS) slots each own NOXS_BLK_MAX_SEGMENTS consecutive
 * pages of a data pool that is shared with the backend POOL_CHUNK slots
 * at a time, as requests first need them, and kept till close, so the
 * backend can keep every data page mapped (feature-persistent), as
 * Linux's blkfront grants its persistent pages on first use: sharing the
 * whole pool at connect (352 pages with a one-page ring) was most of a
 * connect's time. The copying API uses only those slots, zero-copy
 * requests (whose pages are the caller's) take the others first. A
 * bigger ring therefore lets more zero-copy data be in flight without
 * growing the pool. A request's id is its slot number, which makes a
 * response's slot an O(1) lookup and a bogus id from a broken backend
 * easy to reject.
 *
 * Waiting. Submitting publishes req_prod and notifies only if the
 * backend's req_event says it may be asleep; completions are consumed
 * after a short bounded spin on rsp_prod (only while little data is in
 * flight: with SPIN_MAX_BYTES or more outstanding, an answer is far off
 * and the spin would take a core from the backend's copying), then by
 * arming rsp_event and sleeping on our event
 * channel and the control page's (the domain's fd) in slices of
 * SLICE_MS, checking the control page and the liveness page (libnoxs's,
 * see noxs.h) after each wake-up. That is how a backend that closes
 * (Closing/Closed) or dies (its unmap notification zeroes its byte of
 * the liveness page and notifies the control page's channel) is seen:
 * every request in flight then fails with ENOTCONN, and a request that
 * gets no answer within the handle's timeout fails with ETIMEDOUT. After
 * either, the handle is dead (its data pages may still be in the
 * backend's hands, so they are never reused) and only close() is left.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/io/blkif.h>

#include "blkfront.h"
#include "common/spin.h"

#define MAX_QUEUE 512u  /* slots of an order-4 ring */
#define POOL_SLOTS 128u /* slots with pages of the copying pool */
#define POOL_CHUNK 4u   /* pool slots shared at a time (44 pages) */
#define SLOT_BYTES (NOXS_BLK_MAX_SEGMENTS * NOXS_BLK_PAGE_SIZE)
#define SLICE_MS 100
#define SPIN_NS 20000
#define SPIN_MAX_BYTES (256u * 1024)
#define CLOSE_TIMEOUT_MS 5000

struct slot {
    struct noxs_blkfront_io *io;
    size_t buf_off;
    uint32_t len;
    uint8_t op;
    bool busy;
    bool zerocopy; /* data in the caller's granted buffer: nothing to copy */
};

/*
 * A zero-copy buffer (noxs_blkfront_buf_alloc): pages shared with the
 * backend once and kept shared until close, even after buf_free (then
 * they wait on the free list for the next buf_alloc): the backend may
 * keep their grant refs mapped (feature-persistent), so a ref must never
 * be revoked and then handed out again for another page while it runs.
 */
struct zbuf {
    uint8_t *addr;
    uint32_t *refs;
    size_t npages;
    bool in_use;
    struct zbuf *next;
};

struct noxs_blkfront {
    noxs_frontend *frontend;
    noxs_dev *dev;
    uint16_t backend_domid;
    xengntshr_handle *xgs;
    xenevtchn_handle *xce;
    uint32_t port;
    struct noxs_blk_sring *sring;
    unsigned int ring_order;
    uint32_t ring_size;
    uint32_t ring_refs[1u << NOXS_BLK_MAX_RING_ORDER];
    uint8_t **pool_chunks; /* [c]: pages of the POOL_CHUNK slots from c * POOL_CHUNK */
    uint32_t *pool_refs;
    unsigned int nslots;
    unsigned int npool;       /* slots [0, npool) have pool pages */
    unsigned int pool_shared; /* those of slots [0, pool_shared) are shared */
    struct slot *slots;
    unsigned int *free_pool; /* free slots below npool */
    unsigned int nfree_pool;
    unsigned int *free_bare; /* free slots from npool on */
    unsigned int nfree_bare;
    uint64_t inflight_bytes; /* data of the requests in flight */
    bool single_cpu;         /* spins yield the CPU: it may be the backend's */
    uint32_t req_prod_pvt, req_pushed, rsp_cons;
    struct noxs_blkfront_info info;
    int timeout_ms;
    int dead; /* errno once the connection is gone, else 0 */
    struct zbuf *zbufs;
};

/* Slot i's pool pages (i below pool_shared). */
static uint8_t *pool_slot(const noxs_blkfront *b, unsigned int i)
{
    return b->pool_chunks[i / POOL_CHUNK] + (size_t)(i % POOL_CHUNK) * SLOT_BYTES;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int status_errno(int status)
{
    switch (status) {
    case NOXS_BLK_RSP_OKAY: return 0;
    case NOXS_BLK_RSP_NOTSUPP: return EOPNOTSUPP;
    case NOXS_BLK_RSP_RANGE: return ERANGE;
    case NOXS_BLK_RSP_READONLY: return EROFS;
    case NOXS_BLK_RSP_INVALID: return EINVAL;
    case NOXS_BLK_RSP_BADGREF: return EFAULT;
    default: return EIO;
    }
}

/* ---- completions ---- */

static void complete_slot(noxs_blkfront *b, unsigned int i, int err)
{
    struct slot *s = &b->slots[i];
    struct noxs_blkfront_io *io = s->io;

    s->busy = false;
    s->io = NULL;
    b->inflight_bytes -= s->len;
    if (i < b->npool)
        b->free_pool[b->nfree_pool++] = i;
    else
        b->free_bare[b->nfree_bare++] = i;
    if (err != 0 && io->err == 0)
        io->err = err;
    if (--io->pending == 0 && !io->submitting)
        io->done(io, io->err);
}

/* The connection is gone: fail everything in flight, refuse the rest. */
static void kill_connection(noxs_blkfront *b, int err)
{
    if (b->dead == 0)
        b->dead = err;
    for (unsigned int i = 0; i < b->nslots; i++)
        if (b->slots[i].busy)
            complete_slot(b, i, b->dead);
}

/* Consume published responses; returns how many, -1 if the ring is bad. */
static int process_responses(noxs_blkfront *b)
{
    struct noxs_blk_sring *s = b->sring;
    uint32_t mask = b->ring_size - 1;
    int n = 0;

    for (;;) {
        uint32_t prod = noxs_blk_load(&s->rsp_prod);

        if ((uint32_t)(prod - b->rsp_cons) >
            (uint32_t)(b->req_pushed - b->rsp_cons)) {
            kill_connection(b, EPROTO);
            return -1;
        }
        while (b->rsp_cons != prod) {
            struct noxs_blk_response rsp;
            struct slot *sl;
            int err;

            memcpy(&rsp, &s->slot[b->rsp_cons & mask].rsp, sizeof(rsp));
            __asm__ __volatile__("" ::
                                     : "memory");
            b->rsp_cons++;
            if (rsp.id >= b->nslots || !b->slots[rsp.id].busy) {
                kill_connection(b, EPROTO);
                return -1;
            }
            sl = &b->slots[rsp.id];
            err = status_errno(rsp.status);
            if (err == 0 && sl->op == NOXS_BLK_OP_READ && !sl->zerocopy)
                memcpy((uint8_t *)sl->io->buf + sl->buf_off,
                       pool_slot(b, rsp.id), sl->len);
            complete_slot(b, (unsigned int)rsp.id, err);
            n++;
        }
        /* rsp_event is armed only before sleeping (noxs_blkfront_poll):
         * while we run, the backend's pushes need no notification. */
        if (noxs_blk_load(&s->rsp_prod) == b->rsp_cons)
            return n;
    }
}

static void push_requests(noxs_blkfront *b)
{
    uint32_t old = b->req_pushed, now = b->req_prod_pvt;

    if (old == now)
        return;
    noxs_blk_store(&b->sring->req_prod, now);
    b->req_pushed = now;
    noxs_blk_ring_mb();
    if (noxs_blk_need_notify(old, now, noxs_blk_load(&b->sring->req_event)))
        xenevtchn_notify(b->xce, b->port);
}

/* Is the backend still there and Connected? Fails the connection if not. */
static void check_backend(noxs_blkfront *b)
{
    unsigned int state;

    if ((noxs_dev_wait(b->dev, 0) < 0 && errno == EPIPE) ||
        noxs_dev_peer_gone(b->dev)) {
        process_responses(b);
        kill_connection(b, ENOTCONN);
        return;
    }
    state = noxs_dev_peer_state(b->dev);
    if (state != NOXS_STATE_CONNECTED) {
        /* A closing backend answers what it consumed before it closes. */
        process_responses(b);
        kill_connection(b, ENOTCONN);
    }
}

static bool spin_for_responses(noxs_blkfront *b)
{
    struct noxs_blk_spin sp;

    noxs_blk_spin_start(&sp, SPIN_NS, b->single_cpu);
    while (noxs_blk_load(&b->sring->rsp_prod) == b->rsp_cons)
        if (!noxs_blk_spin_step(&sp))
            return false;
    return true;
}

int noxs_blkfront_poll(noxs_blkfront *b, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms < 0 ? b->timeout_ms : timeout_ms);

    for (;;) {
        int n;

        if (b->dead != 0) {
            errno = b->dead;
            return -1;
        }
        n = process_responses(b);
        if (n != 0)
            return n < 0 ? (errno = b->dead, -1) : n;
        if (noxs_blkfront_inflight(b) == 0)
            return 0;
        if (b->inflight_bytes < SPIN_MAX_BYTES && spin_for_responses(b))
            continue;

        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        /* About to sleep: ask for a notification, then look again. */
        noxs_blk_store(&b->sring->rsp_event, b->rsp_cons + 1);
        noxs_blk_ring_mb();
        if (noxs_blk_load(&b->sring->rsp_prod) != b->rsp_cons)
            continue;
        struct pollfd p[2] = {
            {.fd = xenevtchn_fd(b->xce), .events = POLLIN},
            {.fd = noxs_frontend_fd(b->frontend), .events = POLLIN},
        };
        int r = poll(p, 2, left < SLICE_MS ? (int)left : SLICE_MS);

        if (r < 0 && errno != EINTR) {
            kill_connection(b, errno);
            continue;
        }
        if (r > 0 && (p[0].revents & POLLIN)) {
            int port = xenevtchn_pending(b->xce);

            if (port >= 0)
                xenevtchn_unmask(b->xce, (evtchn_port_t)port);
        }
        /* The control page's channel: the backend closing or dying (the
         * library's notification) wakes us there at once. */
        if (r > 0 && (p[1].revents & POLLIN))
            noxs_frontend_handle_events(b->frontend);
        if (noxs_blk_load(&b->sring->rsp_prod) == b->rsp_cons)
            check_backend(b);
    }
}

unsigned int noxs_blkfront_inflight(const noxs_blkfront *b)
{
    return b->nslots - (b->npool - b->pool_shared) - b->nfree_pool -
           b->nfree_bare;
}

/* Share the pages of the next POOL_CHUNK pool slots (some must be left
 * unshared) and free the slots. -1 with errno if the share fails. */
static int pool_grow(noxs_blkfront *b)
{
    unsigned int first = b->pool_shared;
    unsigned int n = b->npool - first < POOL_CHUNK ? b->npool - first : POOL_CHUNK;
    uint8_t *p = xengntshr_share_pages(b->xgs, b->backend_domid,
                                       (int)(n * NOXS_BLK_MAX_SEGMENTS),
                                       &b->pool_refs[(size_t)first * NOXS_BLK_MAX_SEGMENTS], 1);
    if (p == NULL)
        return -1;
    b->pool_chunks[first / POOL_CHUNK] = p;
    b->pool_shared = first + n;
    /* Lowest first off the stack. */
    for (unsigned int i = first + n; i-- > first;)
        b->free_pool[b->nfree_pool++] = i;
    return 0;
}

/*
 * A free slot (one with pool pages if pool), processing completions while
 * there is none.
 */
static int get_slot(noxs_blkfront *b, unsigned int *out, bool pool)
{
    int64_t deadline = now_ms() + b->timeout_ms;

    while (b->nfree_pool + (pool ? 0 : b->nfree_bare) == 0) {
        /* More of the pool, while some is still unshared. */
        if (b->dead == 0 && b->pool_shared < b->npool) {
            if (pool_grow(b) == 0)
                break;
            if (noxs_blkfront_inflight(b) == 0)
                return -1; /* nothing to wait for: the share's errno */
        }
        push_requests(b);
        if (noxs_blkfront_poll(b, (int)(deadline - now_ms())) < 0)
            return -1;
        if (b->nfree_pool + (pool ? 0 : b->nfree_bare) == 0 &&
            now_ms() >= deadline) {
            kill_connection(b, ETIMEDOUT);
            errno = ETIMEDOUT;
            return -1;
        }
    }
    if (b->dead != 0) {
        errno = b->dead;
        return -1;
    }
    if (!pool && b->nfree_bare > 0)
        *out = b->free_bare[--b->nfree_bare];
    else
        *out = b->free_pool[--b->nfree_pool];
    return 0;
}

static struct noxs_blk_request *claim(noxs_blkfront *b, unsigned int i,
                                      struct noxs_blkfront_io *io, uint8_t op)
{
    struct noxs_blk_request *req =
        &b->sring->slot[b->req_prod_pvt & (b->ring_size - 1)].req;

    memset(req, 0, sizeof(*req));
    req->operation = op;
    req->id = i;
    b->slots[i].busy = true;
    b->slots[i].io = io;
    b->slots[i].op = op;
    b->slots[i].len = 0;
    b->slots[i].zerocopy = false;
    io->pending++;
    return req;
}

/* The zero-copy buffer that holds [p, p + len), or NULL. */
static struct zbuf *find_zbuf(noxs_blkfront *b, const void *p, size_t len)
{
    uintptr_t a = (uintptr_t)p;

    for (struct zbuf *z = b->zbufs; z != NULL; z = z->next) {
        uintptr_t start = (uintptr_t)z->addr;
        size_t size = z->npages * NOXS_BLK_PAGE_SIZE;

        if (z->in_use && a >= start && a - start <= size &&
            len <= size - (a - start))
            return z;
    }
    return NULL;
}

/*
 * Fill the segments of one ring request with the pages of z from byte
 * pos on, at most *chunk bytes; *chunk becomes what the request covers.
 */
static unsigned int zc_segments(const struct zbuf *z, size_t pos,
                                size_t *chunk, struct noxs_blk_request *req)
{
    size_t want = *chunk, got = 0;
    unsigned int n = 0;

    while (got < want && n < NOXS_BLK_MAX_SEGMENTS) {
        size_t at = pos + got, in_page = at % NOXS_BLK_PAGE_SIZE;
        size_t bytes = NOXS_BLK_PAGE_SIZE - in_page;

        if (bytes > want - got)
            bytes = want - got;
        req->u.seg[n].gref = z->refs[at / NOXS_BLK_PAGE_SIZE];
        req->u.seg[n].first_sect = (uint8_t)(in_page >> NOXS_BLK_SECTOR_SHIFT);
        req->u.seg[n].last_sect =
            (uint8_t)(((in_page + bytes) >> NOXS_BLK_SECTOR_SHIFT) - 1);
        got += bytes;
        n++;
    }
    *chunk = got;
    return n;
}

static int submit_common(noxs_blkfront *b, struct noxs_blkfront_io *io,
                         bool zerocopy)
{
    uint32_t ss = b->info.sector_size;
    unsigned int i;
    struct zbuf *z = NULL;
    size_t zpos = 0;

    if (b->dead != 0) {
        errno = b->dead;
        return -1;
    }
    if (io->done == NULL || io->op > NOXS_BLKFRONT_DISCARD ||
        (io->op != NOXS_BLKFRONT_FLUSH &&
         (io->offset % ss != 0 || io->len % ss != 0 ||
          (io->len > 0 && io->buf == NULL && io->op != NOXS_BLKFRONT_DISCARD)))) {
        errno = EINVAL;
        return -1;
    }
    if (zerocopy && (io->op == NOXS_BLKFRONT_READ || io->op == NOXS_BLKFRONT_WRITE) && io->len > 0) {
        z = find_zbuf(b, io->buf, io->len);
        if (z == NULL) {
            errno = EINVAL;
            return -1;
        }
        zpos = (size_t)((uint8_t *)io->buf - z->addr);
        if (zpos % ss != 0) {
            errno = EINVAL;
            return -1;
        }
    }
    if ((io->op == NOXS_BLKFRONT_FLUSH && !b->info.flush) ||
        (io->op == NOXS_BLKFRONT_DISCARD && !b->info.discard)) {
        errno = EOPNOTSUPP;
        return -1;
    }
    io->pending = 0;
    io->err = 0;
    io->submitting = true;

    if (io->op == NOXS_BLKFRONT_FLUSH || io->op == NOXS_BLKFRONT_DISCARD) {
        struct noxs_blk_request *req;

        if (get_slot(b, &i, false) < 0) {
            io->submitting = false;
            return -1;
        }
        if (io->op == NOXS_BLKFRONT_FLUSH) {
            req = claim(b, i, io, NOXS_BLK_OP_FLUSH);
        } else {
            req = claim(b, i, io, NOXS_BLK_OP_DISCARD);
            req->sector_number = io->offset >> NOXS_BLK_SECTOR_SHIFT;
            req->u.discard.nr_sectors = io->len >> NOXS_BLK_SECTOR_SHIFT;
        }
        b->req_prod_pvt++;
    } else {
        bool write = io->op == NOXS_BLKFRONT_WRITE;

        for (size_t off = 0; off < io->len;) {
            size_t chunk = io->len - off < SLOT_BYTES ? io->len - off : SLOT_BYTES;
            struct noxs_blk_request *req;
            unsigned int nseg = (unsigned int)((chunk + NOXS_BLK_PAGE_SIZE - 1) /
                                               NOXS_BLK_PAGE_SIZE);

            if (get_slot(b, &i, z == NULL) < 0) {
                if (io->pending == 0) {
                    io->submitting = false;
                    return -1;
                }
                if (io->err == 0)
                    io->err = errno;
                break;
            }
            req = claim(b, i, io, write ? NOXS_BLK_OP_WRITE : NOXS_BLK_OP_READ);
            req->sector_number = (io->offset + off) >> NOXS_BLK_SECTOR_SHIFT;
            if (z != NULL) {
                /* Zero-copy: the segments name the caller's own pages. */
                req->nr_segments =
                    (uint8_t)zc_segments(z, zpos + off, &chunk, req);
                b->slots[i].zerocopy = true;
                b->slots[i].buf_off = off;
                b->slots[i].len = (uint32_t)chunk;
                b->inflight_bytes += chunk;
                b->req_prod_pvt++;
                off += chunk;
                continue;
            }
            b->slots[i].buf_off = off;
            b->slots[i].len = (uint32_t)chunk;
            b->inflight_bytes += chunk;
            if (write)
                memcpy(pool_slot(b, i), (const uint8_t *)io->buf + off, chunk);
            req->nr_segments = (uint8_t)nseg;
            for (unsigned int j = 0; j < nseg; j++) {
                size_t left = chunk - (size_t)j * NOXS_BLK_PAGE_SIZE;
                size_t bytes = left < NOXS_BLK_PAGE_SIZE ? left : NOXS_BLK_PAGE_SIZE;

                req->u.seg[j].gref = b->pool_refs[i * NOXS_BLK_MAX_SEGMENTS + j];
                req->u.seg[j].first_sect = 0;
                req->u.seg[j].last_sect =
                    (uint8_t)((bytes >> NOXS_BLK_SECTOR_SHIFT) - 1);
            }
            b->req_prod_pvt++;
            off += chunk;
        }
    }
    push_requests(b);
    io->submitting = false;
    if (io->pending == 0)
        io->done(io, io->err);
    return 0;
}

int noxs_blkfront_submit(noxs_blkfront *b, struct noxs_blkfront_io *io)
{
    return submit_common(b, io, false);
}

int noxs_blkfront_submit_buf(noxs_blkfront *b, struct noxs_blkfront_io *io)
{
    return submit_common(b, io, true);
}

/* ---- zero-copy buffers ---- */

void *noxs_blkfront_buf_alloc(noxs_blkfront *b, size_t bytes)
{
    size_t npages = (bytes + NOXS_BLK_PAGE_SIZE - 1) / NOXS_BLK_PAGE_SIZE;
    struct zbuf *z, *best = NULL;

    if (b->dead != 0) {
        errno = b->dead;
        return NULL;
    }
    if (bytes == 0 || npages > INT32_MAX / NOXS_BLK_PAGE_SIZE) {
        errno = EINVAL;
        return NULL;
    }
    /* Re-use the smallest free buffer that is large enough: its refs are
     * already shared (and perhaps mapped by the backend). */
    for (z = b->zbufs; z != NULL; z = z->next)
        if (!z->in_use && z->npages >= npages &&
            (best == NULL || z->npages < best->npages))
            best = z;
    if (best != NULL) {
        best->in_use = true;
        return best->addr;
    }
    z = calloc(1, sizeof(*z));
    if (z == NULL)
        return NULL;
    z->refs = calloc(npages, sizeof(*z->refs));
    if (z->refs == NULL) {
        free(z);
        return NULL;
    }
    z->addr = xengntshr_share_pages(b->xgs, b->backend_domid, (int)npages,
                                    z->refs, 1);
    if (z->addr == NULL) {
        int saved = errno;

        free(z->refs);
        free(z);
        errno = saved;
        return NULL;
    }
    z->npages = npages;
    z->in_use = true;
    z->next = b->zbufs;
    b->zbufs = z;
    return z->addr;
}

void noxs_blkfront_buf_free(noxs_blkfront *b, void *buf)
{
    if (buf == NULL)
        return;
    for (struct zbuf *z = b->zbufs; z != NULL; z = z->next) {
        if (z->addr == buf && z->in_use) {
            z->in_use = false;
            return;
        }
    }
}

/* ---- synchronous wrappers ---- */

static void sync_done(struct noxs_blkfront_io *io, int err)
{
    int *result = io->user;

    *result = err;
}

static int run_sync(noxs_blkfront *b, unsigned int op, void *buf, size_t len,
                    uint64_t offset, bool zerocopy)
{
    int result = -1;
    struct noxs_blkfront_io io = {
        .op = op,
        .buf = buf,
        .len = len,
        .offset = offset,
        .done = sync_done,
        .user = &result,
    };
    int64_t deadline;

    if (submit_common(b, &io, zerocopy) < 0)
        return -1;
    deadline = now_ms() + b->timeout_ms;
    while (result < 0) {
        int64_t left = deadline - now_ms();

        if (left <= 0) {
            kill_connection(b, ETIMEDOUT);
            break;
        }
        if (noxs_blkfront_poll(b, (int)left) < 0 && result < 0)
            kill_connection(b, errno);
    }
    if (result != 0) {
        errno = result;
        return -1;
    }
    return 0;
}

int noxs_blkfront_read(noxs_blkfront *b, void *buf, size_t len,
                       uint64_t offset)
{
    return run_sync(b, NOXS_BLKFRONT_READ, buf, len, offset, false);
}

int noxs_blkfront_write(noxs_blkfront *b, const void *buf, size_t len,
                        uint64_t offset)
{
    return run_sync(b, NOXS_BLKFRONT_WRITE, (void *)buf, len, offset, false);
}

int noxs_blkfront_read_buf(noxs_blkfront *b, void *buf, size_t len,
                           uint64_t offset)
{
    return run_sync(b, NOXS_BLKFRONT_READ, buf, len, offset, true);
}

int noxs_blkfront_write_buf(noxs_blkfront *b, const void *buf, size_t len,
                            uint64_t offset)
{
    return run_sync(b, NOXS_BLKFRONT_WRITE, (void *)buf, len, offset, true);
}

int noxs_blkfront_flush(noxs_blkfront *b)
{
    return run_sync(b, NOXS_BLKFRONT_FLUSH, NULL, 0, 0, false);
}

int noxs_blkfront_discard(noxs_blkfront *b, uint64_t offset, uint64_t len)
{
    return run_sync(b, NOXS_BLKFRONT_DISCARD, NULL, (size_t)len, offset, false);
}

/* ---- connection ---- */

/* The backend's key, dflt when it has none; EPROTO when it is no number. */
static int backend_u64(noxs_dev *d, const char *key, uint64_t *out,
                       uint64_t dflt)
{
    if (noxs_dev_peer_u64(d, key, 0, UINT64_MAX, out) == 0)
        return 0;
    if (errno != ENOENT) {
        errno = EPROTO;
        return -1;
    }
    *out = dflt;
    return 0;
}

/* What is left of deadline, never "forever" (< 0) for a late caller. */
static int left_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();

    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX
                                           : (int)left;
}

static int read_backend_keys(noxs_blkfront *b, unsigned int ring_order)
{
    uint64_t sectors, ss, info, flush, discard, max_order;

    if (backend_u64(b->dev, "sectors", &sectors, UINT64_MAX) < 0 ||
        backend_u64(b->dev, "sector-size", &ss, 512) < 0 ||
        backend_u64(b->dev, "info", &info, 0) < 0 ||
        backend_u64(b->dev, "feature-flush-cache", &flush, 0) < 0 ||
        backend_u64(b->dev, "feature-discard", &discard, 0) < 0 ||
        backend_u64(b->dev, "max-ring-page-order", &max_order, 0) < 0)
        return -1;
    if (sectors > (UINT64_MAX >> 10) || (ss != 512 && ss != 4096)) {
        errno = EPROTO;
        return -1;
    }
    b->info.size = sectors << NOXS_BLK_SECTOR_SHIFT;
    b->info.sector_size = (uint32_t)ss;
    b->info.readonly = (info & NOXS_BLK_INFO_READONLY) != 0;
    b->info.flush = flush == 1;
    b->info.discard = discard == 1;
    if (max_order > NOXS_BLK_MAX_RING_ORDER)
        max_order = NOXS_BLK_MAX_RING_ORDER;
    b->ring_order = ring_order < max_order ? ring_order : (unsigned int)max_order;
    return 0;
}

static int setup_ring(noxs_blkfront *b)
{
    unsigned int pages = 1u << b->ring_order;
    size_t npool;

    b->xgs = xengntshr_open(NULL, 0);
    b->xce = xenevtchn_open(NULL, 0);
    if (b->xgs == NULL || b->xce == NULL)
        return -1;
    xenevtchn_port_or_error_t port =
        xenevtchn_bind_unbound_port(b->xce, b->backend_domid);
    if (port < 0)
        return -1;
    b->port = (uint32_t)port;
    /* Our death is signalled on the device's channel, where the backend
     * library watches for it. */
    if (noxs_dev_liveness_start(b->dev, 0) < 0)
        return -1;
    b->sring = xengntshr_share_pages(b->xgs, b->backend_domid, pages,
                                     b->ring_refs, 1);
    if (b->sring == NULL)
        return -1;
    memset(b->sring, 0, (size_t)pages * NOXS_BLK_PAGE_SIZE);
    /* Both sides want to hear about the first entry (SHARED_RING_INIT). */
    b->sring->req_event = 1;
    b->sring->rsp_event = 1;
    b->ring_size = noxs_blk_ring_size(b->ring_order);
    b->nslots = b->ring_size < MAX_QUEUE ? b->ring_size : MAX_QUEUE;
    b->npool = b->nslots < POOL_SLOTS ? b->nslots : POOL_SLOTS;
    npool = (size_t)b->npool * NOXS_BLK_MAX_SEGMENTS;
    b->slots = calloc(b->nslots, sizeof(*b->slots));
    b->free_pool = calloc(b->npool, sizeof(*b->free_pool));
    b->free_bare = calloc(b->nslots - b->npool + 1, sizeof(*b->free_bare));
    b->pool_refs = calloc(npool, sizeof(*b->pool_refs));
    b->pool_chunks = calloc((b->npool + POOL_CHUNK - 1) / POOL_CHUNK,
                            sizeof(*b->pool_chunks));
    if (b->slots == NULL || b->free_pool == NULL || b->free_bare == NULL ||
        b->pool_refs == NULL || b->pool_chunks == NULL)
        return -1;
    /* The pool's pages are shared as requests first need them. */
    b->pool_shared = 0;
    b->nfree_pool = 0;
    for (unsigned int i = b->npool; i < b->nslots; i++)
        b->free_bare[i - b->npool] = b->nslots - 1 - (i - b->npool);
    b->nfree_bare = b->nslots - b->npool;
    b->info.ring_order = b->ring_order;
    b->info.queue_depth = b->nslots;
    return 0;
}

static int publish_ring(noxs_blkfront *b)
{
    noxs_dev *d = b->dev;
    unsigned int pages = 1u << b->ring_order;
    char key[24], val[24];

    if (b->ring_order == 0) {
        snprintf(val, sizeof(val), "%u", b->ring_refs[0]);
        if (noxs_dev_set_kv(d, "ring-ref", val) < 0)
            return -1;
    } else {
        for (unsigned int i = 0; i < pages; i++) {
            snprintf(key, sizeof(key), "ring-ref%u", i);
            snprintf(val, sizeof(val), "%u", b->ring_refs[i]);
            if (noxs_dev_set_kv(d, key, val) < 0)
                return -1;
        }
    }
    snprintf(val, sizeof(val), "%u", b->ring_order);
    if (noxs_dev_set_kv(d, "ring-page-order", val) < 0)
        return -1;
    snprintf(val, sizeof(val), "%u", b->port);
    if (noxs_dev_set_kv(d, "event-channel", val) < 0 ||
        noxs_dev_set_kv(d, "protocol", "x86_64-abi") < 0 ||
        noxs_dev_set_kv(d, "feature-persistent", "1") < 0)
        return -1;
    noxs_dev_set_refs(d, b->ring_refs, pages);
    noxs_dev_set_state(d, NOXS_STATE_INITIALISED);
    return noxs_dev_publish(d);
}

static void release(noxs_blkfront *b)
{
    if (b->dev != NULL)
        noxs_dev_detach(b->dev);
    for (unsigned int c = 0; c * POOL_CHUNK < b->pool_shared; c++) {
        unsigned int n = b->pool_shared - c * POOL_CHUNK;

        xengntshr_unshare(b->xgs, b->pool_chunks[c],
                          (n < POOL_CHUNK ? n : POOL_CHUNK) * NOXS_BLK_MAX_SEGMENTS);
    }
    /* Zero-copy buffers too, whether or not the caller freed them. */
    while (b->zbufs != NULL) {
        struct zbuf *z = b->zbufs;

        b->zbufs = z->next;
        xengntshr_unshare(b->xgs, z->addr, (uint32_t)z->npages);
        free(z->refs);
        free(z);
    }
    if (b->sring != NULL)
        xengntshr_unshare(b->xgs, b->sring, 1u << b->ring_order);
    if (b->port != 0)
        xenevtchn_unbind(b->xce, b->port);
    if (b->xce != NULL)
        xenevtchn_close(b->xce);
    if (b->xgs != NULL)
        xengntshr_close(b->xgs);
    free(b->slots);
    free(b->free_pool);
    free(b->free_bare);
    free(b->pool_refs);
    free(b->pool_chunks);
    free(b);
}

noxs_blkfront *noxs_blkfront_open(noxs_frontend *f, uint32_t devid,
                                  unsigned int ring_order, int timeout_ms)
{
    noxs_blkfront *b = calloc(1, sizeof(*b));
    int64_t deadline = now_ms() + timeout_ms;
    int saved;

    if (b == NULL)
        return NULL;
    if (ring_order > NOXS_BLK_MAX_RING_ORDER) {
        free(b);
        errno = EINVAL;
        return NULL;
    }
    b->frontend = f;
    b->timeout_ms = 30000;
    b->single_cpu = noxs_blk_single_cpu();
    b->dev = noxs_frontend_attach_wait(f, NOXS_DEV_BLK, devid, timeout_ms);
    if (b->dev == NULL)
        goto fail;
    b->backend_domid = noxs_dev_backend_domid(b->dev);
    /* A new session: the backend drops any previous one and waits. */
    noxs_dev_set_state(b->dev, NOXS_STATE_INITIALISING);
    if (noxs_dev_publish(b->dev) < 0 ||
        noxs_dev_wait_peer(b->dev, NOXS_STATE_INITWAIT, left_ms(deadline)) < 0 ||
        read_backend_keys(b, ring_order) < 0 || setup_ring(b) < 0 ||
        publish_ring(b) < 0 ||
        noxs_dev_wait_peer(b->dev, NOXS_STATE_CONNECTED, left_ms(deadline)) < 0 ||
        noxs_dev_switch_state(b->dev, NOXS_STATE_CONNECTED) < 0)
        goto fail;
    return b;

fail:
    saved = errno;
    release(b);
    errno = saved;
    return NULL;
}

int noxs_blkfront_close(noxs_blkfront *b)
{
    int64_t deadline = now_ms() + b->timeout_ms;
    int err = 0;

    while (b->dead == 0 && noxs_blkfront_inflight(b) > 0) {
        if (now_ms() >= deadline) {
            kill_connection(b, ETIMEDOUT);
            break;
        }
        noxs_blkfront_poll(b, (int)(deadline - now_ms()));
    }
    if (b->dead != 0 && b->dead != ENOTCONN)
        err = b->dead;
    kill_connection(b, ENOTCONN);
    /* Closing, then wait (bounded) for the backend to let go of the ring
     * before the pages are unshared. */
    if (noxs_dev_switch_state(b->dev, NOXS_STATE_CLOSING) == 0 &&
        !noxs_dev_peer_gone(b->dev))
        noxs_dev_wait_state(b->dev, NOXS_STATE_CLOSING, CLOSE_TIMEOUT_MS);
    release(b); /* publishes Closed */
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

void noxs_blkfront_get_info(const noxs_blkfront *b,
                            struct noxs_blkfront_info *out)
{
    *out = b->info;
}

void noxs_blkfront_set_timeout(noxs_blkfront *b, int timeout_ms)
{
    b->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}
