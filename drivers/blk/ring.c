/*
 * The ring thread of a connected device. It owns the device's ring, its
 * port (the event thread wakes it, events.c) and its data-page mappings;
 * it copies each request out
 * of the shared ring, validates the copy (blkreq.c), maps its pages
 * (gcache.c), hands reads and writes to the device's I/O queue (io.c)
 * and answers each request with its status. Every request it takes off
 * the ring is also copied into the device's stored state until the
 * frontend has its answer, so that a restarted backend redoes it (see
 * "our own restarts" in blkback.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "blkback.h"
#include "common/log.h"

/*
 * Start one request. OKAY with *queued: its answer comes from a job
 * (ioq_reap, ioq_dispatch or ioq_drain); otherwise the status to answer
 * now.
 */
static int handle_request(struct blkdev *bd, const struct noxs_blk_request *req,
                          unsigned int slot, struct blkreq *r, bool *queued)
{
    struct ioq *q = bd->ioq;
    void *addr[NOXS_BLK_MAX_SEGMENTS];
    struct iojob *j;
    int status = blkreq_check(req, &bd->geom, r);

    *queued = false;
    if (status != NOXS_BLK_RSP_OKAY)
        return status;
    switch (r->operation) {
    case NOXS_BLK_OP_READ:
    case NOXS_BLK_OP_WRITE:
        j = q->free; /* never empty: at most ring_size requests in flight */
        status = map_segments(bd, r, addr, &j->maps);
        if (status == MAP_RETRY) {
            /* Pinned or temporary pages fill the budget: let the
             * requests in flight finish (releasing theirs), then again. */
            ioq_drain(bd);
            j = q->free; /* the drain put jobs back on the free list */
            status = map_segments(bd, r, addr, &j->maps);
        }
        if (status != NOXS_BLK_RSP_OKAY)
            return status;
        q->free = j->next;
        j->next = NULL;
        j->id = req->id;
        j->slot = (uint16_t)slot;
        j->operation = req->operation;
        j->status = NOXS_BLK_RSP_OKAY;
        j->r = *r;
        for (unsigned int i = 0; i < r->nr_segments; i++) {
            j->iov[i].iov_base = (char *)addr[i] + r->seg[i].offset;
            j->iov[i].iov_len = r->seg[i].length;
        }
        ioq_add(bd, j);
        *queued = true;
        return NOXS_BLK_RSP_OKAY;
    case NOXS_BLK_OP_FLUSH:
        ioq_drain(bd);
        return fdatasync(bd->fd) == 0 ? NOXS_BLK_RSP_OKAY : NOXS_BLK_RSP_ERROR;
    case NOXS_BLK_OP_DISCARD:
        ioq_drain(bd);
        return do_discard(bd, r->offset, r->length);
    default:
        return NOXS_BLK_RSP_NOTSUPP;
    }
}

static void push_responses(struct blkdev *bd)
{
    uint32_t old = bd->rsp_pushed, now = bd->rsp_prod_pvt;

    if (old == now)
        return;
    noxs_blk_store(&bd->sring->rsp_prod, now);
    bd->rsp_pushed = now;
    noxs_blk_ring_mb();
    if (noxs_blk_need_notify(old, now, noxs_blk_load(&bd->sring->rsp_event)))
        xenevtchn_notify(conf.xce, bd->port);
    /* The frontend has these answers: their requests are done. */
    st_store(&bd->st->rsp_pushed, now);
    for (uint32_t k = old; k != now; k++) {
        unsigned int slot = bd->slot_ans[k & (bd->nslots - 1)];

        st_store(&bd->st->slot[slot].state, (uint32_t)SLOT_FREE);
        bd->slot_free[bd->nslot_free++] = (uint16_t)slot;
    }
}

/*
 * A slot of bd->st for the request at ring index req_cons (ring thread).
 * There is always one: the slots in use are the requests consumed and
 * not pushed, at most the ring (serve_ring's check) plus PUSH_BATCH, and
 * there are twice the ring.
 */
static int slot_take(struct blkdev *bd, const struct noxs_blk_request *req)
{
    struct blkst_slot *s;
    unsigned int slot;

    if (bd->nslot_free == 0)
        push_responses(bd);
    if (bd->nslot_free == 0)
        return -1;
    slot = bd->slot_free[--bd->nslot_free];
    s = &bd->st->slot[slot];
    memcpy(&s->req, req, sizeof(*req));
    s->req_idx = bd->req_cons;
    st_store(&s->state, (uint32_t)SLOT_TAKEN);
    /* Only now past it: a kill before this re-reads it from the ring. */
    st_store(&bd->st->req_cons, bd->req_cons + 1);
    return (int)slot;
}

/* Responses go to slots of requests already consumed (rsp < req_cons). */
void put_response(struct blkdev *bd, unsigned int slot, uint64_t id,
                  uint8_t op, int status)
{
    struct noxs_blk_response *rsp =
        &bd->sring->slot[bd->rsp_prod_pvt & (bd->ring_size - 1)].rsp;
    struct blkst_slot *s = &bd->st->slot[slot];

    /* Marked before the response is written: a kill in between leaves
     * a request whose answer the frontend never saw, redone. */
    s->rsp_idx = bd->rsp_prod_pvt;
    st_store(&s->state, (uint32_t)SLOT_ANSWERED);
    bd->slot_ans[bd->rsp_prod_pvt & (bd->nslots - 1)] = (uint16_t)slot;

    if (status != NOXS_BLK_RSP_OKAY) {
        bd->nr_errors++;
        log_debug("domain %u blk %u: request %" PRIu64 " op %u: status %d",
                  bd->fe_domid, bd->devid, id, op, status);
    }
    rsp->id = id;
    rsp->operation = op;
    rsp->reserved0 = 0;
    rsp->status = (int16_t)status;
    rsp->reserved1 = 0;
    bd->rsp_prod_pvt++;
    st_store(&bd->st->rsp_prod_pvt, bd->rsp_prod_pvt);
    if (bd->rsp_prod_pvt - bd->rsp_pushed >= PUSH_BATCH)
        push_responses(bd);
}

/* Start every request published so far. -1: the ring is garbage. */
static int serve_ring(struct blkdev *bd)
{
    struct noxs_blk_sring *s = bd->sring;
    uint32_t mask = bd->ring_size - 1;
    uint32_t prod = noxs_blk_load(&s->req_prod);

    if (blkreq_ring_available(prod, bd->req_cons, bd->rsp_prod_pvt,
                              bd->ring_size) < 0)
        return -1;
    while (bd->req_cons != prod) {
        struct noxs_blk_request req;
        struct blkreq r;
        bool queued;
        int status, slot;

        memcpy(&req, &s->slot[bd->req_cons & mask].req, sizeof(req));
        /* From here on only the copy is used, never the shared slot. */
        __asm__ __volatile__("" ::
                                 : "memory");
        if ((slot = slot_take(bd, &req)) < 0)
            return -1;
        bd->req_cons++;
        status = handle_request(bd, &req, (unsigned int)slot, &r, &queued);
        bd->nr_requests++;
        if (!queued)
            put_response(bd, (unsigned int)slot, req.id, req.operation,
                         status);
        ioq_reap(bd);
    }
    /* The batch is over: what was gathered goes. */
    ioq_dispatch(bd);
    ioq_flush_small(bd);
    return 0;
}

/*
 * The slots of bd->st for a ring that starts now (fresh: all free) or
 * that the last instance left (resuming: st's indices, and the requests
 * it took and did not answer to the frontend are put aside for
 * redo_stored). Main thread, before the ring thread starts. -1 if the
 * stored indices make no sense.
 */
int slots_setup(struct blkdev *bd, bool resume)
{
    struct blkst *st = bd->st;

    bd->nslots = 2 * bd->ring_size;
    bd->nslot_free = 0;
    if (!resume) {
        st_store(&st->req_cons, 0u);
        st_store(&st->rsp_prod_pvt, 0u);
        st_store(&st->rsp_pushed, 0u);
        for (unsigned int i = bd->nslots; i-- > 0;) {
            st_store(&st->slot[i].state, (uint32_t)SLOT_FREE);
            bd->slot_free[bd->nslot_free++] = (uint16_t)i;
        }
        bd->req_cons = bd->rsp_prod_pvt = bd->rsp_pushed = 0;
        bd->resuming = false;
        return 0;
    }
    uint32_t cons = st_load(&st->req_cons), pvt = st_load(&st->rsp_prod_pvt);
    uint32_t pushed = st_load(&st->rsp_pushed);
    /* What the frontend was shown: the ring's rsp_prod if it lies where
     * the last instance could have pushed it (a kill between the push
     * and storing rsp_pushed), else our own record of it (the frontend
     * may write anything there). */
    uint32_t shown = noxs_blk_load(&bd->sring->rsp_prod);

    if (cons - pushed > bd->nslots || pvt - pushed > cons - pushed)
        return -1;
    if (shown - pushed > pvt - pushed)
        shown = pushed;
    bd->req_cons = cons;
    bd->rsp_prod_pvt = bd->rsp_pushed = shown;
    st_store(&st->rsp_prod_pvt, shown);
    st_store(&st->rsp_pushed, shown);
    bd->resuming = true;
    return 0;
}

/*
 * Redo what the last instance took off the ring and the frontend got no
 * answer for (ring thread, first thing): the TAKEN slots it consumed and
 * the ANSWERED ones at or past what the frontend was shown, oldest
 * first; every other slot is free. They answer into the ring slots from
 * rsp_prod on, which all held consumed requests. -1: the stored slots
 * disagree with the indices.
 */
static int redo_stored(struct blkdev *bd)
{
    struct blkst *st = bd->st;
    uint32_t cons = bd->req_cons, shown = bd->rsp_prod_pvt;
    uint16_t redo[BLKST_SLOTS];
    unsigned int n = 0;

    bd->resuming = false;
    for (unsigned int i = 0; i < bd->nslots; i++) {
        struct blkst_slot *s = &st->slot[i];
        uint32_t state = st_load(&s->state);
        /* Any index but cons: one taken right before a kill that did
         * not let req_cons move past it is read from the ring again.
         * Not a window below cons: a request may stay unanswered while
         * any number of later ones come and go (answers are out of
         * order). */
        bool consumed = s->req_idx != cons;

        if (consumed && (state == SLOT_TAKEN ||
                         (state == SLOT_ANSWERED &&
                          s->rsp_idx - shown < bd->nslots))) {
            redo[n++] = (uint16_t)i;
            continue;
        }
        st_store(&s->state, (uint32_t)SLOT_FREE);
        bd->slot_free[bd->nslot_free++] = (uint16_t)i;
    }
    if (n > cons - shown) {
        log_warnx("domain %u blk %u: %u requests to redo, but only %u "
                  "unanswered",
                  bd->fe_domid, bd->devid, n, cons - shown);
        return -1;
    }
    if (n < cons - shown)
        log_warnx("domain %u blk %u: %u requests were not kept: they will "
                  "time out",
                  bd->fe_domid, bd->devid, cons - shown - n);
    /* Oldest first (insertion sort: at most twice the ring). */
    for (unsigned int i = 1; i < n; i++) {
        uint16_t x = redo[i];
        uint32_t age = cons - st->slot[x].req_idx;
        unsigned int k = i;

        while (k > 0 && cons - st->slot[redo[k - 1]].req_idx < age) {
            redo[k] = redo[k - 1];
            k--;
        }
        redo[k] = x;
    }
    if (n > 0)
        log_info("domain %u blk %u: redoing %u requests the last instance "
                 "left unanswered",
                 bd->fe_domid, bd->devid, n);
    for (unsigned int i = 0; i < n; i++) {
        struct blkst_slot *s = &st->slot[redo[i]];
        struct noxs_blk_request req;
        struct blkreq r;
        bool queued;
        int status;

        memcpy(&req, &s->req, sizeof(req));
        st_store(&s->state, (uint32_t)SLOT_TAKEN);
        status = handle_request(bd, &req, redo[i], &r, &queued);
        bd->nr_requests++;
        if (!queued)
            put_response(bd, redo[i], req.id, req.operation, status);
        ioq_reap(bd);
    }
    ioq_dispatch(bd);
    ioq_flush_small(bd);
    return 0;
}

/*
 * Answer what the workers finished. The ring thread runs no queued job
 * here (with no workers, ioq_dispatch ran every job already).
 */
static void serve_io(struct blkdev *bd)
{
    ioq_reap(bd);
    push_responses(bd);
}

static bool spin_for_requests(struct blkdev *bd)
{
    struct noxs_blk_spin sp;

    noxs_blk_spin_start(&sp, SPIN_NS, bd->single_cpu);
    for (;;) {
        if (noxs_blk_load(&bd->sring->req_prod) != bd->req_cons ||
            atomic_load(&bd->ioq->ndone) != 0)
            return true;
        if (atomic_load_explicit(&bd->stopping, memory_order_relaxed) ||
            !noxs_blk_spin_step(&sp))
            return false;
    }
}

/*
 * Serve the ring till stopped (0), the ring is garbage (-1) or the device
 * is idle (1). A device with nothing to do for IDLE_MS gives up its I/O
 * workers and io_uring (ioq_stop; they come back with the next request
 * that needs them) and parks its thread (ring_park: the thread ends,
 * and the next event starts another; events.c).
 */
static int ring_loop(struct blkdev *bd)
{
    struct noxs_blk_sring *s = bd->sring;
    bool idle = false;
    uint64_t one = 1;

    for (;;) {
        /* Delivered (events.c): unmasked before we look at the ring. */
        if (atomic_load(&bd->masked) && atomic_exchange(&bd->masked, false))
            xenevtchn_unmask(conf.xce, bd->port);
        if (serve_ring(bd) < 0) {
            log_warnx("domain %u blk %u: ring indices out of range, "
                      "abandoning the ring",
                      bd->fe_domid, bd->devid);
            atomic_store(&bd->broken, true);
            if (write(conf.wake_fd, &one, sizeof(one)) < 0) {
                /* the main loop rescans on its next wake-up anyway */
            }
            return -1;
        }
        serve_io(bd);
        if (atomic_load(&bd->stopping))
            return 0;
        if (noxs_blk_load(&s->req_prod) != bd->req_cons)
            continue;
        /* Spin only when no big job is in flight: while the workers copy
         * those, the cores are theirs, and a finished job rings our
         * bell. */
        if (bd->ioq->nbig == 0 && spin_for_requests(bd))
            continue;
        /* Ask for a notification only now, about to sleep: while we run
         * or spin, the frontend's pushes need no system call. */
        noxs_blk_store(&s->req_event, bd->req_cons + 1);
        noxs_blk_ring_mb();
        if (noxs_blk_load(&s->req_prod) != bd->req_cons)
            continue;

        /* Asleep till the frontend's event, a finished job or a stop
         * rings the bell (events.c); then round again: a stop is seen
         * after what is already queued has been served. */
        atomic_store(&bd->ioq->ring_sleeping, true);
        if (atomic_load(&bd->ioq->ndone) == 0)
            idle = bell_wait(bd, idle || bd->ioq->inflight > 0 ? -1 : IDLE_MS);
        atomic_store(&bd->ioq->ring_sleeping, false);
        if (idle && bd->ioq->inflight == 0) {
            ioq_stop(bd);
            if (ring_park(bd))
                return 1;
        }
    }
}

void *ring_thread(void *arg)
{
    struct blkdev *bd = arg;

    bd->single_cpu = noxs_blk_single_cpu();
    if (bd->resuming && redo_stored(bd) < 0) {
        uint64_t one = 1;

        atomic_store(&bd->broken, true);
        if (write(conf.wake_fd, &one, sizeof(one)) < 0) {
            /* the main loop rescans on its next wake-up anyway */
        }
    } else if (ring_loop(bd) == 1) {
        return NULL; /* parked: nothing in flight, nothing to answer */
    }
    /* Every request consumed gets its answer before we leave. */
    ioq_drain(bd);
    push_responses(bd);
    ioq_stop(bd);
    ring_end(bd);
    return NULL;
}
