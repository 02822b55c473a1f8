/*
 * The I/O of a device's requests once their pages are mapped: jobs of
 * contiguous requests, the device's worker threads and io_uring batches. The ring thread owns the jobs; a
 * finished request goes back to it through the answer callback of
 * ioq_new (this file never touches the ring).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "blkback.h"
#include "common/log.h"

/* preadv/pwritev all of iov at off; a read past EOF yields zeros. */
static int do_rw(struct blkdev *bd, bool write, struct iovec *iov, int iovcnt,
                 uint64_t off)
{
    while (iovcnt > 0) {
        ssize_t n = write ? pwritev(bd->fd, iov, iovcnt, (off_t)off)
                          : preadv(bd->fd, iov, iovcnt, (off_t)off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            if (write) {
                errno = EIO;
                return -1;
            }
            for (int i = 0; i < iovcnt; i++)
                memset(iov[i].iov_base, 0, iov[i].iov_len);
            return 0;
        }
        off += (uint64_t)n;
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

int do_discard(struct blkdev *bd, uint64_t off, uint64_t len)
{
    if (bd->is_blockdev) {
        uint64_t range[2] = {off, len};

        if (ioctl(bd->fd, BLKDISCARD, range) == 0)
            return NOXS_BLK_RSP_OKAY;
    } else if (fallocate(bd->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                         (off_t)off, (off_t)len) == 0) {
        return NOXS_BLK_RSP_OKAY;
    }
    return errno == EOPNOTSUPP ? NOXS_BLK_RSP_NOTSUPP : NOXS_BLK_RSP_ERROR;
}

/*
 * Reads and writes go to a small per-device I/O queue once their pages
 * are mapped, gathered into jobs: a job is a run of consecutive ring
 * requests (at most JOB_MAX_REQS, JOB_MAX_SEGS pages, JOB_MAX_BYTES),
 * and the requests of a job that are contiguous on the device (same
 * operation, each starting where the previous one ends) are done with ONE
 * preadv/pwritev, as an I/O scheduler merges bios: a 1 MiB transfer that
 * blkfront splits into 24 ring requests costs one system call. A request
 * that is not contiguous with the job being gathered starts a new job
 * (handing groups of small random requests to a worker was measured to
 * cost more than it saves: 4 KiB random reads at QD32 fell from 0.61 to
 * 0.38 of direct I/O, medians of 5). A job smaller than INLINE_MAX runs
 * on the ring thread at once; the others are queued for the device's
 * worker threads (--io-threads, default 2), which take them in order and
 * run them in parallel. The ring thread does not run big jobs itself
 * when there are workers: it stays free to consume the ring and to
 * answer finished jobs at once, so that the frontend gets its slots back
 * and refills the queue while the workers copy (when it copied a 1 MiB
 * job itself, the worker's finished jobs waited for it, the frontend ran
 * dry and at most one copy ran at a time). Only the ring thread touches
 * the ring, the grant cache and the mappings (it unpins and answers a
 * job's requests after the job is done); flush and discard wait for every
 * job in flight, then run on the ring thread. Each request is answered on
 * its own (a merged run that fails answers each of its requests with the
 * error); jobs may finish out of order, and so may their answers, as in
 * blkif.
 */
/* preadv/pwritev iov[0..cnt) at off, as a request status. */
static int16_t rw_status(struct blkdev *bd, bool write, struct iovec *iov,
                         int cnt, uint64_t off)
{
    return do_rw(bd, write, iov, cnt, off) < 0 ? NOXS_BLK_RSP_ERROR
                                               : NOXS_BLK_RSP_OKAY;
}

/*
 * Append the n iovecs of src to iov[0..*cnt), merging each into the one
 * before it where the memory continues: the pages of a persistent chunk
 * are mapped side by side, so a request on consecutive pages of a
 * buffer is one iovec instead of one per page, and the kernel walks
 * fewer segments (a 1 MiB read was 256 iovecs, now about 24).
 */
static void iov_append(struct iovec *iov, unsigned int *cnt,
                       const struct iovec *src, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++) {
        struct iovec *prev = *cnt > 0 ? &iov[*cnt - 1] : NULL;

        if (prev != NULL &&
            (char *)prev->iov_base + prev->iov_len == src[i].iov_base)
            prev->iov_len += src[i].iov_len;
        else
            iov[(*cnt)++] = src[i];
    }
}

/*
 * The next contiguous run of chain *jp (same operation, each request
 * starting where the previous one ends, at most max iovecs): its iovecs
 * into iov, merged where the memory continues, *cnt of them; returns
 * the run's first request and leaves *jp at the request after the run.
 */
static struct iojob *run_gather(struct iojob **jp, struct iovec *iov,
                                unsigned int max, unsigned int *cnt,
                                uint64_t *bytes)
{
    struct iojob *first = *jp, *j = first;
    uint64_t end = first->r.offset;

    *cnt = 0;
    while (j != NULL && j->operation == first->operation &&
           j->r.offset == end && *cnt + j->r.nr_segments <= max) {
        iov_append(iov, cnt, j->iov, j->r.nr_segments);
        end += j->r.length;
        j = j->more;
    }
    *bytes = end - first->r.offset;
    *jp = j;
    return first;
}

static void run_status(struct iojob *first, struct iojob *end, int16_t status)
{
    for (struct iojob *k = first; k != end; k = k->more)
        k->status = status;
}

/* Do the I/O of job j: one preadv/pwritev per contiguous run. */
static void job_run(struct blkdev *bd, struct iojob *j)
{
    struct iovec iov[JOB_MAX_SEGS];

    while (j != NULL) {
        unsigned int cnt;
        uint64_t bytes;
        struct iojob *first = run_gather(&j, iov, JOB_MAX_SEGS, &cnt, &bytes);
        bool write = first->operation == NOXS_BLK_OP_WRITE;

        run_status(first, j, rw_status(bd, write, iov, (int)cnt, first->r.offset));
    }
}

/*
 * io_uring (liburing): the ring thread's own reads. Reads too small for a
 * worker used to cost one preadv each, and at 4 KiB the system call's
 * entry and exit were a large part of the ring thread's time (see
 * docs/DRIVERS.md, Performance). Now the reads one pass over the ring
 * gathered (up to URING_DEPTH runs) go to the kernel in one
 * io_uring_enter that also waits for their completions; buffered reads
 * that hit the page cache complete inside that call, the others are done
 * by the kernel's workers, in parallel. Reads of one batch may complete in
 * any order, as requests in flight may in blkif. Writes stay on pwritev
 * (through io_uring, buffered writes measured slower: 4 KiB random writes
 * at QD32 fell from about 1.0 to 0.7 of direct I/O), in ring order: a
 * write that overlaps a read gathered before it waits for that read. A
 * short read finishes with preadv. If io_uring cannot be set up (an old
 * kernel, a seccomp filter, kernel.io_uring_disabled) or fails, the
 * device uses preadv only; --no-uring does so from the start.
 */
/*
 * liburing maps and unmaps its rings with raw system calls, which
 * ThreadSanitizer does not see: a ring made where another device's ring
 * was (its thread long gone) looked like a race on the same memory. The
 * kernel orders the unmap before the new map; we tell TSan so.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char uring_reuse;
#define URING_MAPPED() __tsan_acquire(&uring_reuse)
#define URING_UNMAPPED() __tsan_release(&uring_reuse)
#else
#define URING_MAPPED() ((void)0)
#define URING_UNMAPPED() ((void)0)
#endif

#define URING_DEPTH 64u
#define URING_IOVS (URING_DEPTH * NOXS_BLK_MAX_SEGMENTS)
#define URING_PENDING INT32_MIN

/* A run of reads in a batch (writes never are: see job_run_uring). */
struct urun {
    struct iojob *first, *end;
    struct iovec *iov;
    unsigned int cnt;
    uint64_t off, bytes;
    int32_t res;
};

struct uring {
    struct io_uring ring;
    unsigned int nrun, niov;
    bool fixed; /* bd->fd is registered file 0 */
    struct urun run[URING_DEPTH];
    struct iovec iov[URING_IOVS];
};

/*
 * An image on tmpfs or ramfs: every read is a copy from memory, with no
 * disk to wait for, and io_uring does not do such a read in the call
 * that submits it but hands it to one of the kernel's workers (Linux
 * 6.18's tmpfs), so each batch costs the ring thread a sleep and a
 * wake-up. On a 2-core KVM guest 4 KiB random reads at queue depth 32
 * ran at 0.09-0.11 of direct I/O through io_uring, 0.38-0.40 with the
 * ring thread's own preadv (docs/DRIVERS.md, Performance).
 */
static bool image_in_memory(struct blkdev *bd)
{
    struct statfs sfs;

    return fstatfs(bd->fd, &sfs) == 0 &&
           (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
}

static struct uring *uring_new(struct blkdev *bd)
{
    struct uring *u;
    int r;

    /* Not built in or turned off (kernel.io_uring_disabled, seccomp):
     * no device tries again after the first has found it so. */
    static atomic_bool unavailable;

    if (!conf.use_uring || atomic_load(&unavailable))
        return NULL;
    if (image_in_memory(bd)) {
        log_debug("domain %u blk %u: image in memory (tmpfs): reads by "
                  "preadv, no io_uring",
                  bd->fe_domid, bd->devid);
        return NULL;
    }
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    /* Only the ring thread submits, and it reaps in the same call:
     * completions need no interrupt of other work (kernel 6.1). */
    r = io_uring_queue_init(URING_DEPTH, &u->ring,
                            IORING_SETUP_SINGLE_ISSUER |
                                IORING_SETUP_DEFER_TASKRUN);
    if (r == -EINVAL)
        r = io_uring_queue_init(URING_DEPTH, &u->ring, 0);
    if (r < 0) {
        log_info("domain %u blk %u: io_uring unavailable (%s): using "
                 "preadv/pwritev",
                 bd->fe_domid, bd->devid, strerror(-r));
        if (r == -ENOSYS || r == -EPERM)
            atomic_store(&unavailable, true);
        free(u);
        return NULL;
    }
    URING_MAPPED();
    /* A registered file saves a lookup per request; optional. */
    u->fixed = io_uring_register_files(&u->ring, &bd->fd, 1) == 0;
    log_debug("domain %u blk %u: reads batched through io_uring",
              bd->fe_domid, bd->devid);
    return u;
}

static void uring_free(struct uring *u)
{
    if (u == NULL)
        return;
    URING_UNMAPPED(); /* before: the next map may follow the unmap */
    io_uring_queue_exit(&u->ring);
    free(u);
}

/* Finish run r synchronously from byte done on (a short or failed
 * completion, or a run the kernel never took). */
static int16_t urun_finish(struct blkdev *bd, struct urun *r, uint64_t done)
{
    struct iovec *iov = r->iov;
    int cnt = (int)r->cnt;
    uint64_t off = r->off + done;

    while (cnt > 0 && done >= iov->iov_len) {
        done -= iov->iov_len;
        iov++;
        cnt--;
    }
    if (cnt > 0 && done > 0) {
        iov->iov_base = (char *)iov->iov_base + done;
        iov->iov_len -= done;
    }
    if (cnt == 0)
        return NOXS_BLK_RSP_OKAY;
    return rw_status(bd, false, iov, cnt, off);
}

/* Submit the gathered reads, wait for all of them, set their statuses. */
static void uring_flush(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;
    struct uring *u = q->uring;
    unsigned int n = u->nrun, submitted = 0, reaped = 0;
    bool broken = false;

    if (n == 0)
        return;
    for (unsigned int i = 0; i < n; i++) {
        struct urun *r = &u->run[i];
        /* never NULL: at most URING_DEPTH entries, all reaped below */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        int fd = u->fixed ? 0 : bd->fd;

        if (r->cnt == 1)
            io_uring_prep_read(sqe, fd, r->iov[0].iov_base,
                               (unsigned int)r->iov[0].iov_len, r->off);
        else
            io_uring_prep_readv(sqe, fd, r->iov, r->cnt, r->off);
        if (u->fixed)
            sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, i);
        r->res = URING_PENDING;
    }
    while (submitted < n) {
        int ret = io_uring_submit_and_wait(&u->ring, n - submitted);

        if (ret > 0) {
            submitted += (unsigned int)ret;
        } else if (ret != -EINTR) {
            log_warnx("domain %u blk %u: io_uring_enter: %s: using "
                      "preadv/pwritev",
                      bd->fe_domid, bd->devid,
                      strerror(ret < 0 ? -ret : EAGAIN));
            broken = true;
            break;
        }
    }
    while (reaped < submitted) {
        struct io_uring_cqe *cqe;
        int ret = io_uring_wait_cqe(&u->ring, &cqe);

        if (ret < 0) {
            if (ret == -EINTR || ret == -EAGAIN)
                continue;
            /* The kernel may still be writing into these pages: we
             * cannot answer them, and must not go on. */
            fatalx("domain %u blk %u: io_uring_wait_cqe: %s",
                   bd->fe_domid, bd->devid, strerror(-ret));
        }
        uint64_t i = io_uring_cqe_get_data64(cqe);

        if (i < n)
            u->run[i].res = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        reaped++;
    }
    for (unsigned int i = 0; i < n; i++) {
        struct urun *r = &u->run[i];
        int16_t st;

        if (r->res == URING_PENDING || r->res == -EAGAIN || r->res == -EINTR)
            st = urun_finish(bd, r, 0);
        else if (r->res < 0)
            st = NOXS_BLK_RSP_ERROR;
        else if ((uint64_t)r->res < r->bytes)
            st = urun_finish(bd, r, (uint64_t)r->res);
        else
            st = NOXS_BLK_RSP_OKAY;
        run_status(r->first, r->end, st);
    }
    u->nrun = u->niov = 0;
    if (broken) {
        uring_free(u);
        q->uring = NULL;
    }
}

/* Does a write of [off, off+len) overlap a read of the batch? */
static bool uring_conflict(const struct uring *u, uint64_t off, uint64_t len)
{
    for (unsigned int i = 0; i < u->nrun; i++) {
        const struct urun *r = &u->run[i];

        if (off < r->off + r->bytes && r->off < off + len)
            return true;
    }
    return false;
}

/* Run chain j (requests linked by ->more): reads through io_uring
 * batches, writes with pwritev in ring order. */
static void job_run_uring(struct blkdev *bd, struct iojob *j)
{
    while (j != NULL) {
        struct uring *u = bd->ioq->uring;

        if (u == NULL) { /* io_uring failed on an earlier batch */
            job_run(bd, j);
            return;
        }
        if (j->operation == NOXS_BLK_OP_WRITE) {
            /* Gathered apart from the batch (a flush that finds io_uring
             * broken frees the batch's storage). A read before it in the
             * ring must not see its data. */
            struct iovec wiov[JOB_MAX_SEGS];
            unsigned int cnt;
            uint64_t bytes;
            struct iojob *first = run_gather(&j, wiov, JOB_MAX_SEGS, &cnt,
                                             &bytes);

            if (uring_conflict(u, first->r.offset, bytes))
                uring_flush(bd);
            run_status(first, j, rw_status(bd, true, wiov, (int)cnt, first->r.offset));
            continue;
        }
        /* Room for the longest run (JOB_MAX_SEGS iovecs) in this batch? */
        if (u->nrun == URING_DEPTH || URING_IOVS - u->niov < JOB_MAX_SEGS) {
            uring_flush(bd);
            continue;
        }
        struct urun *r = &u->run[u->nrun];

        r->iov = &u->iov[u->niov];
        r->first = run_gather(&j, r->iov, JOB_MAX_SEGS, &r->cnt, &r->bytes);
        r->end = j;
        r->off = r->first->r.offset;
        u->nrun++;
        u->niov += r->cnt;
    }
    if (bd->ioq->uring != NULL)
        uring_flush(bd);
}

/*
 * Waking the ring thread. A worker that finishes a job while the ring
 * thread sleeps wakes it only when the jobs finished and not yet
 * answered outnumber the jobs still queued; else the next finish will.
 * While the queue is deep the workers have enough to do without the
 * frontend's next requests, so answers can wait for a few more jobs and
 * go out together: one wake-up of the ring thread and one notification
 * of the frontend for several jobs instead of one each, and the frontend
 * refills several slots at once. When the queue runs low (a single job
 * in flight: at once) the answers go out before the workers run dry.
 * Every job still gets its answer: the queue only shrinks while the
 * ring thread sleeps, so some finish eventually sees no more queued
 * jobs than finished ones. With 1 MiB reads at QD32 on a 2-core VM this
 * halved the context switches per request (about 2.5 to 1.1) and took
 * 10-15% off the CPU time per request.
 */
static void *io_worker(void *arg)
{
    struct blkdev *bd = arg;
    struct ioq *q = bd->ioq;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        struct iojob *j = q->todo_head;

        if (j == NULL) {
            if (q->quit)
                break;
            pthread_cond_wait(&q->cond, &q->lock);
            continue;
        }
        q->todo_head = j->next;
        if (q->todo_head == NULL)
            q->todo_tail = NULL;
        q->ntodo--;
        pthread_mutex_unlock(&q->lock);
        job_run(bd, j);
        pthread_mutex_lock(&q->lock);
        j->next = q->done;
        q->done = j;
        /* seq_cst pairs with ring_loop: it sets ring_sleeping, then
         * reads ndone; we add to ndone, then read ring_sleeping. A
         * sleeping ring thread is woken only once the finished jobs
         * outnumber those still queued (see "Waking the ring thread"
         * above). */
        unsigned int ndone = atomic_fetch_add(&q->ndone, 1) + 1;

        if (atomic_load(&q->ring_sleeping) && ndone > q->ntodo)
            bell_ring(bd);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/*
 * The device's workers, on its first big job: an idle device, or one
 * that only ever reads and writes a little, has none (their stacks and
 * threads are what most devices of a busy host would pay for nothing).
 * With none (--io-threads 0, or none could start) big jobs run on the
 * ring thread.
 */
static void workers_start(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;
    pthread_attr_t attr;

    q->workers_tried = true;
    thread_attr(&attr, WORKER_STACK);
    while (q->nworkers < conf.io_threads &&
           pthread_create(&q->threads[q->nworkers], &attr, io_worker, bd) == 0)
        q->nworkers++;
    pthread_attr_destroy(&attr);
    if (q->nworkers < conf.io_threads)
        log_warnx("domain %u blk %u: %u of %u I/O worker threads started",
                  bd->fe_domid, bd->devid, q->nworkers, conf.io_threads);
}

static struct iojob *ioq_take(struct ioq *q)
{
    struct iojob *j;

    pthread_mutex_lock(&q->lock);
    j = q->todo_head;
    if (j != NULL) {
        q->todo_head = j->next;
        if (q->todo_head == NULL)
            q->todo_tail = NULL;
        q->ntodo--;
    }
    pthread_mutex_unlock(&q->lock);
    return j;
}

/* Append job j to the FIFO and wake a worker (lock held). */
static void ioq_push_locked(struct ioq *q, struct iojob *j)
{
    j->next = NULL;
    if (q->todo_tail != NULL)
        q->todo_tail->next = j;
    else
        q->todo_head = j;
    q->todo_tail = j;
    q->ntodo++;
    pthread_cond_signal(&q->cond);
}
/* Unpin, answer and free every request of a finished job (ring thread). */
static void job_complete(struct blkdev *bd, struct iojob *j)
{
    struct ioq *q = bd->ioq;

    if (j->big)
        q->nbig--;
    j->big = false;
    while (j != NULL) {
        struct iojob *more = j->more;

        unmap_segments(bd, &j->r, &j->maps);
        q->answer(bd, j->slot, j->id, j->operation, j->status);
        j->more = NULL;
        j->next = q->free;
        q->free = j;
        q->inflight--;
        j = more;
    }
}

/* Answer every job the workers finished (ring thread). */
void ioq_reap(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;
    struct iojob *j;

    if (atomic_load(&q->ndone) == 0)
        return;
    pthread_mutex_lock(&q->lock);
    j = q->done;
    q->done = NULL;
    atomic_store(&q->ndone, 0);
    pthread_mutex_unlock(&q->lock);
    while (j != NULL) {
        struct iojob *next = j->next;

        job_complete(bd, j);
        j = next;
    }
}

/* The end of a pass over the ring: the small reads gathered for
 * io_uring (q->small, one chain) go in one batch now. */
void ioq_flush_small(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;
    struct iojob *j = q->small;

    if (j == NULL)
        return;
    q->small = NULL;
    if (q->uring != NULL)
        job_run_uring(bd, j);
    else
        job_run(bd, j);
    job_complete(bd, j);
}

/* Hand the job being gathered to the queue, or run it here if small. */
void ioq_dispatch(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;
    struct iojob *j = q->open;

    if (j == NULL)
        return;
    q->open = NULL;
    j->next = NULL;
    j->big = false;
    if (j->bytes >= INLINE_MAX && !q->workers_tried && conf.io_threads > 0)
        workers_start(bd);
    if (j->bytes < INLINE_MAX || q->nworkers == 0) {
        struct iojob *s = q->small;

        /* io_uring, on the first read to batch: a device that only
         * writes, or does nothing, has none (its fd and mappings). */
        if (q->uring == NULL && !q->uring_tried &&
            j->operation == NOXS_BLK_OP_READ) {
            q->uring_tried = true;
            q->uring = uring_new(bd);
        }
        if (q->uring == NULL) {
            /* Small: handing it over costs more than doing it. */
            job_run(bd, j);
            job_complete(bd, j);
            return;
        }
        /* Gather a batch for io_uring (the pass over the ring ends it,
         * see serve_ring). */
        if (s == NULL) {
            q->small = j;
        } else {
            s->last->more = j;
            s->last = j->last;
            s->nreq += j->nreq;
            s->nseg += j->nseg;
            s->bytes += j->bytes;
        }
        if (q->small->nreq >= URING_DEPTH)
            ioq_flush_small(bd);
        return;
    }
    j->big = true;
    q->nbig++;
    pthread_mutex_lock(&q->lock);
    ioq_push_locked(q, j);
    pthread_mutex_unlock(&q->lock);
}

/* Add request j (mapped, iov filled) to the job being gathered. */
void ioq_add(struct blkdev *bd, struct iojob *j)
{
    struct ioq *q = bd->ioq;
    struct iojob *o = q->open;

    j->more = NULL;
    j->last = j;
    j->nreq = 1;
    j->nseg = j->r.nr_segments;
    j->bytes = j->r.length;
    q->inflight++;
    if (o != NULL) {
        bool contiguous = o->last->operation == j->operation &&
                          o->last->r.offset + o->last->r.length == j->r.offset;

        if (contiguous && o->nreq < JOB_MAX_REQS &&
            o->nseg + j->nseg <= JOB_MAX_SEGS &&
            o->bytes + j->bytes <= JOB_MAX_BYTES) {
            o->last->more = j;
            o->last = j;
            o->nreq++;
            o->nseg += j->nseg;
            o->bytes += j->bytes;
            return;
        }
        ioq_dispatch(bd);
    }
    q->open = j;
}

/* Run every job not yet started here too, then wait for the rest. */
void ioq_drain(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;
    struct iojob *j;

    ioq_flush_small(bd);
    if (q->open != NULL) {
        j = q->open;
        q->open = NULL;
        job_run(bd, j);
        job_complete(bd, j);
    }
    while ((j = ioq_take(q)) != NULL) {
        job_run(bd, j);
        job_complete(bd, j);
    }
    while (q->inflight > 0) {
        ioq_reap(bd);
        atomic_store(&q->ring_sleeping, true);
        if (q->inflight > 0 && atomic_load(&q->ndone) == 0)
            bell_wait(bd, 10);
        atomic_store(&q->ring_sleeping, false);
    }
}


void ioq_free(struct ioq *q)
{
    if (q == NULL)
        return;
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

struct ioq *ioq_new(unsigned int njobs, blk_answer_fn *answer)
{
    struct ioq *q = calloc(1, sizeof(*q) + njobs * sizeof(struct iojob));
    struct iojob *jobs;

    if (q == NULL)
        return NULL;
    jobs = (struct iojob *)(q + 1);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->answer = answer;
    for (unsigned int i = 0; i < njobs; i++) {
        jobs[i].next = q->free;
        q->free = &jobs[i];
    }
    return q;
}


/* Nothing in flight (after ioq_drain, or an idle device's ring thread
 * about to sleep): the workers and io_uring go. */
void ioq_stop(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;

    uring_free(q->uring);
    q->uring = NULL;
    if (q->nworkers > 0) {
        pthread_mutex_lock(&q->lock);
        q->quit = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        while (q->nworkers > 0)
            pthread_join(q->threads[--q->nworkers], NULL);
        q->quit = false;
    }
    /* Made again on the next request that needs them. */
    q->workers_tried = q->uring_tried = false;
}
