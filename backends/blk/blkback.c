/*
 * noxs-blk-back: the backend of the blk device, serving block devices
 * from files (or block devices) to every guest from one process.
 *
 * Control (main thread). libnoxs hands us one noxs_dev per device that
 * noxsd brokers; create() opens the file named by the toolstack's
 * parameters (path=, mode=r|w, sector-size=512|4096, optional sectors=)
 * and publishes the xenbus-style keys blkfront reads (sectors,
 * sector-size, info, feature-flush-cache, feature-discard, ...). The
 * device then follows the frontend's state, as blkback does:
 *
 *   frontend Initialising/Unknown -> drop any connection, InitWait
 *   frontend Initialised/Connected -> map its ring (ring-ref or
 *        ring-ref0..N-1, ring-page-order), bind its event-channel,
 *        start the ring thread, Connected
 *   frontend Closing -> drop the connection, Closing
 *   frontend Closed -> drop the connection, Closed (a restarted frontend
 *        comes back through Initialising)
 *
 * Data (a ring thread per connected device). The thread owns the
 * device's ring, its event channel and its data-page mappings; it copies
 * each request out of the shared ring, validates the copy (blkreq.c),
 * maps its pages, does the I/O with preadv/pwritev/fdatasync/fallocate
 * (contiguous requests merged into one preadv/pwritev, big jobs shared
 * with the device's I/O worker threads, see "struct iojob") and answers with a per-request status. Why threads per
 * device: a frontend that floods its ring, or asks for a slow fsync,
 * then only delays itself; other devices are served by their own.
 *
 * Trust: a frontend may be hostile. Ring indices that claim more
 * outstanding requests than the ring holds make us abandon the ring (the
 * device goes to Closing with an "error" key); every other bad request
 * (sector range, segment count or bounds, unmappable grant ref, op)
 * gets an error response and the ring goes on. Nothing from the shared
 * ring is read twice.
 *
 * Data pages: each request's unmapped pages are mapped with one batched
 * call. With "feature-persistent" the frontend re-uses the same grant
 * refs, so we keep them mapped in a per-device LRU cache (owned by the
 * ring thread) under a process-wide budget (--max-grants) shared fairly
 * between connected devices; see "grant cache" below.
 *
 * Our own restarts: under a service manager's fd store a restart (kill -9
 * in the middle of I/O included) keeps every disk Connected and loses no
 * request; each disk stores its image and a memfd with its ring state and
 * a copy of every request not yet answered to the frontend, which the
 * next instance redoes. See "our own restarts" below.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/noxs.h>

#include "blkreq.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/parse.h"
#include "svc.h"

/* Milliseconds on CLOCK_MONOTONIC. */
static int64_t drv_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Persistent grants kept mapped by the whole process (all devices), by
 * default; --max-grants changes it. blkfront's pool alone is up to 1408
 * pages per device and zero-copy buffers add theirs (32 x 1 MiB = 8192);
 * each mapping is one entry of vm.max_map_count (65530 by default).
 */
#define DEFAULT_MAX_GRANTS 16384u
#define MAX_MAX_GRANTS 65536u
/* Pages mapped for one request only, in flight per device at most. */
#define TEMP_MAX 128u
/* Reads and writes shorter than this run on the ring thread itself. */
#define INLINE_MAX (32u * 1024)
/* map_segments: no room now; retry when nothing is in flight. */
#define MAP_RETRY 1
/* Responses pushed to the frontend at least every this many requests. */
#define PUSH_BATCH 8u
/* Bounded busy-wait before sleeping on the event channel. */
#define SPIN_NS 30000

struct gchunk;
struct blkst;

struct gcache_entry {
    uint32_t gref; /* 0: empty (refs below NOXS_GREF_MIN are never valid) */
    unsigned int idx; /* page in the chunk */
    struct gchunk *chunk;
};

struct blkdev {
    noxs_dev *dev;
    uint16_t fe_domid;
    uint32_t devid;
    int fd;
    bool is_blockdev;
    const uint8_t *map; /* read-only mapping of the device, or NULL */
    uint64_t map_len;
    _Atomic int64_t map_cold_until; /* ms: reads skip the mapping till then */
    atomic_uint_fast64_t nr_map_fallbacks, nr_cold;
    struct blkreq_geometry geom;
    char *path;
    /* What survives us (see "our own restarts"): settings, the ring
     * session and every request taken off the ring and not yet answered
     * to the frontend. A memfd in the fd store, else anonymous memory. */
    struct blkst *st;
    int st_fd;
    bool stored; /* the image and st_fd are in the fd store */

    /* Connection: set up and torn down by the main thread only. */
    bool connected;
    bool thread_running;
    pthread_t thread;
    int stop_fd; /* eventfd: main -> ring thread */
    xenevtchn_handle *xce;
    xengnttab_handle *xgt;
    uint32_t port; /* our port, bound to the frontend's event-channel */
    struct noxs_blk_sring *sring;
    uint8_t *alive; /* the frontend's liveness page */
    unsigned int ring_pages;
    uint32_t ring_size;
    bool persistent;
    atomic_bool stopping;
    atomic_bool broken;    /* ring thread gave up on a hostile ring */
    atomic_bool peer_gone; /* the frontend died or let go of the ring */

    /* Owned by the ring thread while it runs. */
    bool single_cpu; /* spins yield the CPU: it may be the frontend's */
    bool resuming;   /* first redo what the last instance left unanswered */
    uint32_t req_cons;
    uint32_t rsp_prod_pvt;
    uint32_t rsp_pushed;
    uint32_t nslots;     /* st->slot[] in use: twice the ring */
    uint16_t *slot_free; /* stack of free slots */
    unsigned int nslot_free;
    uint16_t *slot_ans;  /* by response index: the slot it answered */
    struct gcache_entry *gcache;
    uint32_t gcache_slots; /* power of two, at least twice max_grants */
    unsigned int gcache_used; /* pages in cached chunks */
    unsigned int temp_used;   /* pages mapped for one request, in flight */
    struct gchunk *lru_head, *lru_tail;
    bool counted; /* in persistent_devs */
    uint64_t nr_requests, nr_errors, nr_maps, nr_evictions;
    struct ioq *ioq;

    struct blkdev *next;
};

static noxs_backend *backend;
static struct blkdev *devices;
static int wake_fd = -1; /* eventfd: ring threads -> main */
static unsigned int max_grants = DEFAULT_MAX_GRANTS;
static atomic_uint grants_mapped;   /* cached pages, all devices */
static atomic_uint persistent_devs; /* connected devices that cache */

/*
 * Our own restarts. Under a service manager's fd store (libnoxs's
 * NOXS_BACKEND_RESUMABLE: the control pages and ports survive us) each
 * device also puts two files of its own in the store: its image, open as
 * at dev-add ("noxs-blk-img-DOMID-DEVID"), and a memfd, struct blkst
 * ("noxs-blk-state-DOMID-DEVID"), with the device's settings, its ring
 * session (ring refs, order, ports: to check that the frontend still
 * offers the same ring) and the ring thread's indices and a copy of
 * every request it took off the ring and has not answered to the
 * frontend yet. A new instance (a restart, kill -9, a new binary) maps
 * the ring and the liveness page again, binds the frontend's port
 * again, and redoes those requests before it reads on: reads and writes
 * are idempotent, and the frontend never saw their first answers. Data
 * grants are mapped again on demand, as after a cache eviction.
 *
 * Why copies and not the ring: a consumed request's slot is reused for
 * a response (answers come out of order), so the ring no longer holds
 * it; and the ring is the frontend's to scribble on. Why the image's fd
 * and not its path: the same file even if the path was replaced or
 * removed meanwhile, opened with the rights it had at dev-add.
 *
 * Slots are written in an order that leaves every kill point
 * recoverable: a request is copied into a slot (TAKEN, with its ring
 * index) before req_cons moves past it; an answer marks its slot
 * ANSWERED with the response's ring index before the response is
 * written; rsp_prod is pushed to the ring before rsp_pushed is stored
 * here, and only then are the slots freed. The next instance redoes
 * every consumed TAKEN slot and every ANSWERED one whose response index
 * the frontend has not been shown (at or past rsp_prod), oldest first.
 */
#define BLKST_MAGIC 0x6e626c6bu /* "nblk" */
#define BLKST_VERSION 1u
#define BLKST_PATH 4096
#define BLKST_SLOTS (2u * 512u) /* twice the biggest ring */
enum { SLOT_FREE, SLOT_TAKEN, SLOT_ANSWERED };

struct blkst_slot {
    uint32_t state;   /* SLOT_* */
    uint32_t req_idx; /* ring index the request was consumed at */
    uint32_t rsp_idx; /* SLOT_ANSWERED: ring index of its response */
    uint32_t pad;
    struct noxs_blk_request req;
};

struct blkst {
    uint32_t magic, version;
    uint32_t domid, devid;
    /* Settings from dev-add. */
    uint64_t sectors;
    uint32_t sector_size;
    uint8_t readonly, discard, is_blockdev, pad0;
    char path[BLKST_PATH]; /* for the log only: the fd is the file */
    /* The ring session: valid while active is 1. */
    uint32_t active;
    uint32_t order, port, alive_ref, persistent;
    uint32_t refs[1u << NOXS_BLK_MAX_RING_ORDER];
    /* The ring thread's indices. */
    uint32_t req_cons, rsp_prod_pvt, rsp_pushed;
    uint32_t pad1;
    struct blkst_slot slot[BLKST_SLOTS];
};

/* libnoxs keeps our devices across restarts; and we are leaving them to
 * the next instance (exiting) rather than letting go of them. */
static bool resumable, leaving;

#define st_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define st_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)

/* ---- grant cache (ring thread) ----
 *
 * Data pages are mapped one request at a time, with ONE batched
 * xengnttab_map_domain_grant_refs call for all of a request's pages that
 * are not mapped yet (a "chunk"; the simulator makes it one mmap when the
 * refs are contiguous). With feature-persistent the chunk stays mapped,
 * its refs in an open-addressing table, its chunk in an LRU list. The
 * pages kept mapped by all devices together are bounded by max_grants
 * (--max-grants, default 16384, well under vm.max_map_count = 65530
 * mappings per process); each connected device may keep its fair share,
 * max_grants / connected devices, and evicts its least recently used
 * chunks past that. A chunk that the request being served uses is pinned
 * and never evicted. When nothing can be evicted, the pages are mapped
 * for that request only and unmapped after it.
 */

struct gchunk {
    void *addr;
    unsigned int npages;
    unsigned int pinned; /* segments of the request in service using it */
    struct gchunk *prev, *next; /* LRU: head most recently used */
    uint32_t grefs[NOXS_BLK_MAX_SEGMENTS];
};

static struct gchunk *gcache_find_chunk(struct blkdev *bd, uint32_t gref,
                                        unsigned int *idx)
{
    uint32_t mask = bd->gcache_slots - 1;
    uint32_t i = (gref * 2654435761u) & mask;

    for (;;) {
        struct gcache_entry *e = &bd->gcache[i];

        if (e->gref == 0)
            return NULL;
        if (e->gref == gref) {
            *idx = e->idx;
            return e->chunk;
        }
        i = (i + 1) & mask;
    }
}

static void gcache_insert(struct blkdev *bd, uint32_t gref,
                          struct gchunk *c, unsigned int idx)
{
    uint32_t mask = bd->gcache_slots - 1;
    uint32_t i = (gref * 2654435761u) & mask;

    while (bd->gcache[i].gref != 0)
        i = (i + 1) & mask;
    bd->gcache[i].gref = gref;
    bd->gcache[i].chunk = c;
    bd->gcache[i].idx = idx;
}

/* Linear probing delete with backward shift (no tombstones). */
static void gcache_remove(struct blkdev *bd, uint32_t gref)
{
    uint32_t mask = bd->gcache_slots - 1;
    uint32_t i = (gref * 2654435761u) & mask, j;

    while (bd->gcache[i].gref != gref) {
        if (bd->gcache[i].gref == 0)
            return;
        i = (i + 1) & mask;
    }
    j = i;
    for (;;) {
        uint32_t home;

        bd->gcache[i].gref = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (bd->gcache[j].gref == 0)
                return;
            home = (bd->gcache[j].gref * 2654435761u) & mask;
            /* Move j to i unless its home lies cyclically in (i, j]. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                continue;
            break;
        }
        bd->gcache[i] = bd->gcache[j];
        i = j;
    }
}

static void lru_unlink(struct blkdev *bd, struct gchunk *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        bd->lru_head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        bd->lru_tail = c->prev;
    c->prev = c->next = NULL;
}

static void lru_push_head(struct blkdev *bd, struct gchunk *c)
{
    c->prev = NULL;
    c->next = bd->lru_head;
    if (bd->lru_head != NULL)
        bd->lru_head->prev = c;
    bd->lru_head = c;
    if (bd->lru_tail == NULL)
        bd->lru_tail = c;
}

static void chunk_drop(struct blkdev *bd, struct gchunk *c)
{
    lru_unlink(bd, c);
    for (unsigned int i = 0; i < c->npages; i++)
        gcache_remove(bd, c->grefs[i]);
    xengnttab_unmap(bd->xgt, c->addr, c->npages);
    bd->gcache_used -= c->npages;
    atomic_fetch_sub(&grants_mapped, c->npages);
    free(c);
}

/* This device's share of the global budget. */
static unsigned int gcache_share(void)
{
    unsigned int n = atomic_load(&persistent_devs);

    return max_grants / (n > 0 ? n : 1);
}

/*
 * Make room for n more cached pages: evict unpinned chunks from the LRU
 * end while this device is over its share or all devices are over the
 * budget. false: no room (the pages are then mapped for one request).
 */
static bool gcache_make_room(struct blkdev *bd, unsigned int n)
{
    unsigned int share = gcache_share();
    struct gchunk *c = bd->lru_tail;

    if (n > share)
        return false;
    while (bd->gcache_used + n > share ||
           atomic_load(&grants_mapped) + n > max_grants) {
        while (c != NULL && c->pinned > 0)
            c = c->prev;
        if (c == NULL)
            return false;
        struct gchunk *prev = c->prev;

        chunk_drop(bd, c);
        bd->nr_evictions++;
        c = prev;
    }
    return true;
}

static void gcache_clear(struct blkdev *bd)
{
    while (bd->lru_head != NULL)
        chunk_drop(bd, bd->lru_head);
    free(bd->gcache);
    bd->gcache = NULL;
    bd->gcache_used = 0;
    if (bd->counted) {
        atomic_fetch_sub(&persistent_devs, 1);
        bd->counted = false;
    }
}

struct seg_maps {
    struct gchunk *pin[NOXS_BLK_MAX_SEGMENTS]; /* pinned chunk per segment */
    void *temp;                                /* mapped for this request */
    unsigned int ntemp;
};

static void unmap_segments(struct blkdev *bd, const struct blkreq *r,
                           struct seg_maps *m)
{
    for (unsigned int i = 0; i < r->nr_segments; i++) {
        if (m->pin[i] != NULL)
            m->pin[i]->pinned--;
        m->pin[i] = NULL;
    }
    if (m->temp != NULL) {
        xengnttab_unmap(bd->xgt, m->temp, m->ntemp);
        bd->temp_used -= m->ntemp;
    }
    m->temp = NULL;
    m->ntemp = 0;
}

/*
 * Map the data pages of r: fills addr[i] for each segment, pinning the
 * cached chunks it uses; unmap_segments() undoes it after the I/O.
 *
 * Access follows the request's direction, as Linux blkback's: a write
 * to the disk only reads guest memory, so its pages are mapped
 * read-only and a read-only grant (what a frontend may give for data it
 * sends) is enough; a read from the disk writes guest memory and needs
 * a writable grant (a read-only one answers BADGREF). Mappings kept as
 * persistent grants are read-write, since any later request may use
 * them: a write first tries that, and if the frontend granted its pages
 * read-only they are mapped read-only for this request only.
 */
static int map_segments(struct blkdev *bd, const struct blkreq *r,
                        void **addr, struct seg_maps *m)
{
    uint32_t miss[NOXS_BLK_MAX_SEGMENTS];
    unsigned int which[NOXS_BLK_MAX_SEGMENTS], nmiss = 0;
    bool to_disk = r->operation == NOXS_BLK_OP_WRITE;
    struct gchunk *c = NULL;
    void *p = NULL;

    m->temp = NULL;
    m->ntemp = 0;
    for (unsigned int i = 0; i < r->nr_segments; i++)
        m->pin[i] = NULL;
    for (unsigned int i = 0; i < r->nr_segments; i++) {
        uint32_t gref = r->seg[i].gref;
        unsigned int idx, k;

        if (gref < NOXS_GREF_MIN) {
            unmap_segments(bd, r, m);
            return NOXS_BLK_RSP_BADGREF;
        }
        if (bd->persistent) {
            struct gchunk *hit = gcache_find_chunk(bd, gref, &idx);

            if (hit != NULL) {
                hit->pinned++;
                m->pin[i] = hit;
                addr[i] = (char *)hit->addr + (size_t)idx * 4096u;
                if (bd->lru_head != hit) {
                    lru_unlink(bd, hit);
                    lru_push_head(bd, hit);
                }
                continue;
            }
        }
        for (k = 0; k < nmiss && miss[k] != gref; k++)
            ;
        if (k == nmiss)
            miss[nmiss++] = gref;
        which[i] = k;
        addr[i] = NULL;
    }
    if (nmiss == 0)
        return NOXS_BLK_RSP_OKAY;
    if (bd->persistent && gcache_make_room(bd, nmiss))
        c = calloc(1, sizeof(*c));
    if (c != NULL) {
        p = xengnttab_map_domain_grant_refs(bd->xgt, nmiss, bd->fe_domid,
                                            miss, PROT_READ | PROT_WRITE);
        bd->nr_maps++;
        if (p == NULL) {
            free(c);
            c = NULL;
            if (!to_disk) {
                unmap_segments(bd, r, m);
                return NOXS_BLK_RSP_BADGREF;
            }
        }
    }
    if (p == NULL) {
        if (bd->temp_used > 0 && bd->temp_used + nmiss > TEMP_MAX) {
            unmap_segments(bd, r, m);
            return MAP_RETRY;
        }
        p = xengnttab_map_domain_grant_refs(
            bd->xgt, nmiss, bd->fe_domid, miss,
            to_disk ? PROT_READ : PROT_READ | PROT_WRITE);
        bd->nr_maps++;
        if (p == NULL) {
            unmap_segments(bd, r, m);
            return NOXS_BLK_RSP_BADGREF;
        }
    }
    if (c != NULL) {
        c->addr = p;
        c->npages = nmiss;
        memcpy(c->grefs, miss, nmiss * sizeof(miss[0]));
        for (unsigned int k = 0; k < nmiss; k++)
            gcache_insert(bd, miss[k], c, k);
        lru_push_head(bd, c);
        bd->gcache_used += nmiss;
        atomic_fetch_add(&grants_mapped, nmiss);
    } else {
        m->temp = p;
        m->ntemp = nmiss;
        bd->temp_used += nmiss;
    }
    for (unsigned int i = 0; i < r->nr_segments; i++) {
        if (addr[i] != NULL)
            continue;
        addr[i] = (char *)p + (size_t)which[i] * 4096u;
        if (c != NULL) {
            c->pinned++;
            m->pin[i] = c;
        }
    }
    return NOXS_BLK_RSP_OKAY;
}

/* ---- I/O (ring thread) ---- */

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

static int do_discard(struct blkdev *bd, uint64_t off, uint64_t len)
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
#define JOB_MAX_REQS 32u
#define JOB_MAX_SEGS 256u /* iovecs of one preadv/pwritev, under IOV_MAX */
#define JOB_MAX_BYTES (1u << 20)
#define MAX_WORKERS 4u

struct iojob {
    struct iojob *next; /* queue, done and free lists */
    struct iojob *more; /* next request of the same job */
    /* The first request of a job describes the job: */
    struct iojob *last;
    unsigned int nreq, nseg;
    uint64_t bytes;
    bool big;    /* queued as a big job */
    bool shared; /* a batch of small jobs handed to a worker */
    /* Every request: */
    uint64_t id;
    uint8_t operation;
    int16_t status;
    uint16_t slot; /* in bd->st */
    struct blkreq r;
    struct seg_maps maps;
    struct iovec iov[NOXS_BLK_MAX_SEGMENTS];
};

struct ioq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct iojob *todo_head, *todo_tail; /* FIFO of jobs */
    struct iojob *done;                  /* LIFO of jobs */
    atomic_uint ndone;
    atomic_bool ring_sleeping; /* the ring thread may block in poll */
    bool quit;
    unsigned int ntodo;    /* jobs in the FIFO */
    unsigned int idle;     /* workers waiting for a job */
    unsigned int nworkers; /* worker threads running */
    pthread_t threads[MAX_WORKERS];
    int done_fd;  /* eventfd: worker -> ring thread */
    struct iojob *free;    /* ring thread only */
    struct iojob *open;    /* ring thread only: the job being gathered */
    struct iojob *small;   /* ring thread only: small jobs to share */
    unsigned int inflight; /* ring thread only: requests taken, not answered */
    unsigned int nbig;     /* ring thread only: big jobs queued, not reaped */
    unsigned int nshared;  /* ring thread only: small batches shared, not
                              reaped */
    struct uring *uring;   /* ring thread only: NULL when not in use */
};

/* Worker threads per device (--io-threads). Two: the measured best on a
 * 2-core machine (see docs/DRIVERS.md, Performance). */
#define DEFAULT_IO_THREADS 2u
static unsigned int io_threads = DEFAULT_IO_THREADS;
/* Small requests gathered for an idle worker (--share-small; 0: none). */
static unsigned int share_small = 0;

/* preadv/pwritev iov[0..cnt) at off, as a request status. */
static int16_t rw_status(struct blkdev *bd, bool write, struct iovec *iov,
                         int cnt, uint64_t off)
{
    return do_rw(bd, write, iov, cnt, off) < 0 ? NOXS_BLK_RSP_ERROR
                                               : NOXS_BLK_RSP_OKAY;
}

/*
 * The next contiguous run of chain *jp (same operation, each request
 * starting where the previous one ends, at most max iovecs): its iovecs
 * into iov, *cnt of them; returns the run's first request and leaves *jp
 * at the request after the run.
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
        memcpy(&iov[*cnt], j->iov, j->r.nr_segments * sizeof(iov[0]));
        *cnt += j->r.nr_segments;
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

/*
 * Reads from a mapping. A file or block device is also mapped read-only
 * (MAP_SHARED, the same page cache that pwritev and fallocate change),
 * and a read whose pages are in the page cache is a memcpy from the
 * mapping into the granted pages: no system call, no page-cache lookup
 * in the kernel, and a user-space copy, which on the machines we measured
 * on is about twice as fast as the kernel's copy to user memory (see
 * docs/DRIVERS.md, Performance). What a mapping cannot do well is left to
 * the other paths:
 *  - a page that is not in memory is read by a page fault, one at a time
 *    in the copying thread, where io_uring would read a whole batch in
 *    parallel: a chain of copies that was slow and took major faults
 *    (map_check_faults) turns the device's mapping off for COLD_MS, and
 *    its reads go through io_uring/preadv meanwhile;
 *  - a page the mapping cannot back (beyond the end of a file that
 *    shrank, a media error) raises SIGBUS: the handler jumps back out of
 *    the copy, which is redone with preadv (zeros past the end, or EIO),
 *    so answers are the same as without the mapping;
 *  - anything else (a character device, /proc files) is never mapped.
 * --no-mmap turns this off.
 */
#define COLD_MS 100

static bool use_mmap = true; /* --no-mmap */
static __thread sigjmp_buf *copy_jmp; /* set while copying from a mapping */

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    sigjmp_buf *j = copy_jmp;

    (void)si;
    (void)ctx;
    if (j != NULL) {
        copy_jmp = NULL;
        siglongjmp(*j, 1); /* SA_NODEFER: SIGBUS stays unblocked */
    }
    /* Not one of our copies: return to the fault and die of it. */
    signal(sig, SIG_DFL);
}

static void map_setup(struct blkdev *bd, mode_t mode, uint64_t bytes)
{
    void *m;

    if (!use_mmap || bytes == 0 || bytes > SIZE_MAX ||
        !(S_ISREG(mode) || S_ISBLK(mode)))
        return;
    m = mmap(NULL, (size_t)bytes, PROT_READ, MAP_SHARED, bd->fd, 0);
    if (m == MAP_FAILED) {
        log_debug("blk device: %s: mmap: %s: reads use io_uring/preadv",
                  bd->path != NULL ? bd->path : "?", strerror(errno));
        return;
    }
    bd->map = m;
    bd->map_len = bytes;
}

/*
 * Is a chain of copies from the mapping going to the disk? The thread's
 * major-fault count alone does not say (Linux also counts a fault that it
 * retried after starting readahead on a page that is in memory), so a
 * chain is cold when it was slow, longer than COLD_BASE_NS plus 1 ns per
 * byte copied (1 GB/s; copies from the page cache run at several GB/s, a
 * disk read takes tens of microseconds and more), AND the thread took
 * major faults since it last looked (getrusage, only after a slow chain:
 * nothing on the fast path but two clock reads). A thread descheduled
 * during a slow chain may get a cold spell it did not need: its reads
 * then take another path for COLD_MS, with the same results.
 */
#define COLD_BASE_NS 200000
enum { MAP_UNREAD, MAP_COLD, MAP_USED };

struct mapstat {
    int state; /* MAP_UNREAD, MAP_COLD (skip the mapping), MAP_USED */
    int64_t t0_ns;
    uint64_t bytes;
};
#define MAPSTAT_INIT {MAP_UNREAD, 0, 0}

static __thread long fault_seen; /* majflt at the last look (new: none) */

static int64_t mono_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* After a chain of reads: did its copies from the mapping go to disk? */
static void map_check_faults(struct blkdev *bd, const struct mapstat *ms)
{
    struct rusage ru;
    int64_t took;
    long faults;

    if (ms->state != MAP_USED || ms->bytes == 0)
        return;
    took = mono_ns() - ms->t0_ns;
    if (took <= COLD_BASE_NS + (int64_t)ms->bytes ||
        getrusage(RUSAGE_THREAD, &ru) < 0)
        return;
    faults = ru.ru_majflt - fault_seen;
    fault_seen = ru.ru_majflt;
    if (faults <= 0)
        return;
    atomic_store_explicit(&bd->map_cold_until, drv_now_ms() + COLD_MS,
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&bd->nr_cold, 1, memory_order_relaxed);
    log_debug("domain %u blk %u: %" PRIu64 " bytes from the mapping took "
              "%" PRId64 " us and %ld major faults: io_uring/preadv for "
              "%d ms", bd->fe_domid, bd->devid, ms->bytes, took / 1000,
              faults, COLD_MS);
}

/* Out of line: nothing in map_read() changes after its sigsetjmp. */
static __attribute__((noinline)) void map_copy(const struct iovec *iov,
                                               unsigned int cnt,
                                               const uint8_t *src)
{
    for (unsigned int i = 0; i < cnt; i++) {
        memcpy(iov[i].iov_base, src, iov[i].iov_len);
        src += iov[i].iov_len;
    }
}

/*
 * Copy bytes at off into iov[0..cnt) from the mapping. False: not done
 * (no mapping, cold, out of its range, or SIGBUS): use another path.
 * *ms: what the chain's copies took so far, for map_check_faults().
 */
static bool map_read(struct blkdev *bd, const struct iovec *iov,
                     unsigned int cnt, uint64_t off, uint64_t bytes,
                     struct mapstat *ms)
{
    sigjmp_buf jb;

    if (bd->map == NULL || off > bd->map_len || bytes > bd->map_len - off)
        return false;
    if (ms->state == MAP_UNREAD) {
        ms->t0_ns = mono_ns();
        ms->state = atomic_load_explicit(&bd->map_cold_until,
                                         memory_order_relaxed) >
                            ms->t0_ns / 1000000
                        ? MAP_COLD
                        : MAP_USED;
    }
    if (ms->state == MAP_COLD)
        return false;
    if (sigsetjmp(jb, 0) != 0) {
        atomic_fetch_add_explicit(&bd->nr_map_fallbacks, 1,
                                  memory_order_relaxed);
        return false;
    }
    copy_jmp = &jb;
    map_copy(iov, cnt, bd->map + off);
    copy_jmp = NULL;
    ms->bytes += bytes;
    return true;
}

/* Do the I/O of job j: one preadv/pwritev per contiguous run. */
static void job_run(struct blkdev *bd, struct iojob *j)
{
    struct iovec iov[JOB_MAX_SEGS];
    struct mapstat ms = MAPSTAT_INIT;

    while (j != NULL) {
        unsigned int cnt;
        uint64_t bytes;
        struct iojob *first = run_gather(&j, iov, JOB_MAX_SEGS, &cnt, &bytes);
        bool write = first->operation == NOXS_BLK_OP_WRITE;

        if (!write &&
            map_read(bd, iov, cnt, first->r.offset, bytes, &ms)) {
            run_status(first, j, NOXS_BLK_RSP_OKAY);
            continue;
        }
        run_status(first, j, rw_status(bd, write, iov, (int)cnt,
                                       first->r.offset));
    }
    map_check_faults(bd, &ms);
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

static bool use_uring = true; /* --no-uring */

static struct uring *uring_new(struct blkdev *bd)
{
    struct uring *u;
    int r;

    if (!use_uring)
        return NULL;
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
                 "preadv/pwritev", bd->fe_domid, bd->devid, strerror(-r));
        free(u);
        return NULL;
    }
    /* A registered file saves a lookup per request; optional. */
    u->fixed = io_uring_register_files(&u->ring, &bd->fd, 1) == 0;
    log_info("domain %u blk %u: reads batched through io_uring",
             bd->fe_domid, bd->devid);
    return u;
}

static void uring_free(struct uring *u)
{
    if (u == NULL)
        return;
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
                      "preadv/pwritev", bd->fe_domid, bd->devid,
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
    struct mapstat ms = MAPSTAT_INIT;

    while (j != NULL) {
        struct uring *u = bd->ioq->uring;

        if (u == NULL) { /* io_uring failed on an earlier batch */
            map_check_faults(bd, &ms);
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
            run_status(first, j, rw_status(bd, true, wiov, (int)cnt,
                                           first->r.offset));
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
        if (map_read(bd, r->iov, r->cnt, r->off, r->bytes, &ms)) {
            run_status(r->first, r->end, NOXS_BLK_RSP_OKAY);
            continue;
        }
        u->nrun++;
        u->niov += r->cnt;
    }
    map_check_faults(bd, &ms);
    if (bd->ioq->uring != NULL)
        uring_flush(bd);
}

static void *io_worker(void *arg)
{
    struct blkdev *bd = arg;
    struct ioq *q = bd->ioq;
    uint64_t one = 1;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        struct iojob *j = q->todo_head;

        if (j == NULL) {
            if (q->quit)
                break;
            q->idle++;
            pthread_cond_wait(&q->cond, &q->lock);
            q->idle--;
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
         * reads ndone; we add to ndone, then read ring_sleeping. */
        atomic_fetch_add(&q->ndone, 1);
        if (atomic_load(&q->ring_sleeping) &&
            write(q->done_fd, &one, sizeof(one)) < 0) {
            /* the ring thread also checks ndone before sleeping */
        }
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
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

static void put_response(struct blkdev *bd, unsigned int slot, uint64_t id,
                         uint8_t op, int status);

/* Unpin, answer and free every request of a finished job (ring thread). */
static void job_complete(struct blkdev *bd, struct iojob *j)
{
    struct ioq *q = bd->ioq;

    if (j->big)
        q->nbig--;
    if (j->shared)
        q->nshared--;
    j->big = j->shared = false;
    while (j != NULL) {
        struct iojob *more = j->more;

        unmap_segments(bd, &j->r, &j->maps);
        put_response(bd, j->slot, j->id, j->operation, j->status);
        j->more = NULL;
        j->next = q->free;
        q->free = j;
        q->inflight--;
        j = more;
    }
}

/* Answer every job the workers finished (ring thread). */
static void ioq_reap(struct blkdev *bd)
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

/*
 * The small jobs gathered for sharing (q->small, one chain): to an idle
 * worker if share and one is idle, else run here.
 */
static void small_flush(struct blkdev *bd, bool share)
{
    struct ioq *q = bd->ioq;
    struct iojob *j = q->small;

    if (j == NULL)
        return;
    q->small = NULL;
    /* One batch at a time: the ring thread does the rest, and the
     * frontend needs a core too. */
    if (share && q->nshared == 0) {
        pthread_mutex_lock(&q->lock);
        if (q->idle > q->ntodo) {
            j->shared = true;
            q->nshared++;
            ioq_push_locked(q, j);
            pthread_mutex_unlock(&q->lock);
            return;
        }
        pthread_mutex_unlock(&q->lock);
    }
    if (q->uring != NULL)
        job_run_uring(bd, j);
    else
        job_run(bd, j);
    job_complete(bd, j);
}

/* Hand the job being gathered to the queue, or run it here if small. */
static void ioq_dispatch(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;
    struct iojob *j = q->open;

    if (j == NULL)
        return;
    q->open = NULL;
    j->next = NULL;
    j->big = j->shared = false;
    if (j->bytes < INLINE_MAX || q->nworkers == 0) {
        struct iojob *s = q->small;
        bool share = share_small != 0 && q->nworkers != 0;
        unsigned int batch = share ? share_small : URING_DEPTH;

        if (!share && q->uring == NULL) {
            /* Small: handing it over costs more than doing it. */
            job_run(bd, j);
            job_complete(bd, j);
            return;
        }
        /* Gather a batch for io_uring (the pass over the ring ends it,
         * see serve_ring), or share_small requests for a worker. */
        if (s == NULL) {
            q->small = j;
        } else {
            s->last->more = j;
            s->last = j->last;
            s->nreq += j->nreq;
            s->nseg += j->nseg;
            s->bytes += j->bytes;
        }
        if (q->small->nreq >= batch)
            small_flush(bd, share);
        return;
    }
    j->big = true;
    q->nbig++;
    pthread_mutex_lock(&q->lock);
    ioq_push_locked(q, j);
    pthread_mutex_unlock(&q->lock);
}

/* Add request j (mapped, iov filled) to the job being gathered. */
static void ioq_add(struct blkdev *bd, struct iojob *j)
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
static void ioq_drain(struct blkdev *bd)
{
    struct ioq *q = bd->ioq;
    struct iojob *j;

    small_flush(bd, false);
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
        struct pollfd p = {.fd = q->done_fd, .events = POLLIN};

        ioq_reap(bd);
        atomic_store(&q->ring_sleeping, true);
        if (q->inflight > 0 && atomic_load(&q->ndone) == 0)
            poll(&p, 1, 10);
        atomic_store(&q->ring_sleeping, false);
    }
}

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
        xenevtchn_notify(bd->xce, bd->port);
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
static void put_response(struct blkdev *bd, unsigned int slot, uint64_t id,
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
        __asm__ __volatile__("" ::: "memory");
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
    small_flush(bd, false);
    return 0;
}

/*
 * The slots of bd->st for a ring that starts now (fresh: all free) or
 * that the last instance left (resuming: st's indices, and the requests
 * it took and did not answer to the frontend are put aside for
 * redo_stored). Main thread, before the ring thread starts. -1 if the
 * stored indices make no sense.
 */
static int slots_setup(struct blkdev *bd, bool resume)
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
                  "unanswered", bd->fe_domid, bd->devid, n, cons - shown);
        return -1;
    }
    if (n < cons - shown)
        log_warnx("domain %u blk %u: %u requests were not kept: they will "
                  "time out", bd->fe_domid, bd->devid, cons - shown - n);
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
                 "left unanswered", bd->fe_domid, bd->devid, n);
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
    small_flush(bd, false);
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
 * Nothing to consume, nothing in flight and the frontend's liveness byte
 * is zero: it died or let go of the ring. Tell the main thread.
 */
static bool frontend_gone(struct blkdev *bd)
{
    uint64_t one = 1;

    if (noxs_blk_load(&bd->sring->req_prod) != bd->req_cons ||
        bd->ioq->inflight != 0 ||
        noxs_blk_alive(bd->alive, NOXS_BLK_ALIVE_FRONTEND))
        return false;
    atomic_store(&bd->peer_gone, true);
    if (write(wake_fd, &one, sizeof(one)) < 0) {
        /* the main loop rescans on its next wake-up anyway */
    }
    return true;
}

static int ring_loop(struct blkdev *bd)
{
    struct noxs_blk_sring *s = bd->sring;
    uint64_t one = 1;

    for (;;) {
        if (serve_ring(bd) < 0) {
            log_warnx("domain %u blk %u: ring indices out of range, "
                      "abandoning the ring", bd->fe_domid, bd->devid);
            atomic_store(&bd->broken, true);
            if (write(wake_fd, &one, sizeof(one)) < 0) {
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
         * those, the cores are theirs, and a finished job wakes us
         * through done_fd. */
        if (bd->ioq->nbig == 0 && spin_for_requests(bd))
            continue;
        /* A death seen while jobs were in flight (its notification is
         * consumed by then) is acted on once they are done. */
        if (frontend_gone(bd))
            return 0;
        /* Ask for a notification only now, about to sleep: while we run
         * or spin, the frontend's pushes need no system call. */
        noxs_blk_store(&s->req_event, bd->req_cons + 1);
        noxs_blk_ring_mb();
        if (noxs_blk_load(&s->req_prod) != bd->req_cons)
            continue;

        struct pollfd p[3] = {
            {.fd = xenevtchn_fd(bd->xce), .events = POLLIN},
            {.fd = bd->stop_fd, .events = POLLIN},
            {.fd = bd->ioq->done_fd, .events = POLLIN},
        };
        atomic_store(&bd->ioq->ring_sleeping, true);
        if (atomic_load(&bd->ioq->ndone) != 0) {
            atomic_store(&bd->ioq->ring_sleeping, false);
            continue;
        }
        int pr = poll(p, 3, -1);

        atomic_store(&bd->ioq->ring_sleeping, false);
        if (pr < 0 && errno != EINTR)
            return 0;
        if (p[2].revents & POLLIN) {
            uint64_t v;

            if (read(bd->ioq->done_fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: already read */
            }
        }
        if (p[0].revents & POLLIN) {
            int port = xenevtchn_pending(bd->xce);

            if (port >= 0)
                xenevtchn_unmask(bd->xce, (evtchn_port_t)port);
        }
        if (frontend_gone(bd))
            return 0;
        if (p[1].revents & POLLIN) {
            /* Answer what is already queued, then leave. */
            if (serve_ring(bd) < 0)
                atomic_store(&bd->broken, true);
            return 0;
        }
    }
}

static void ioq_free(struct ioq *q)
{
    if (q == NULL)
        return;
    if (q->done_fd >= 0)
        close(q->done_fd);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static void *ring_thread(void *arg)
{
    struct blkdev *bd = arg;
    struct ioq *q = bd->ioq;

    while (q->nworkers < io_threads &&
           pthread_create(&q->threads[q->nworkers], NULL, io_worker, bd) == 0)
        q->nworkers++;
    q->uring = uring_new(bd);
    bd->single_cpu = noxs_blk_single_cpu();
    if (bd->resuming && redo_stored(bd) < 0) {
        uint64_t one = 1;

        atomic_store(&bd->broken, true);
        if (write(wake_fd, &one, sizeof(one)) < 0) {
            /* the main loop rescans on its next wake-up anyway */
        }
    } else {
        ring_loop(bd);
    }
    /* Every request consumed gets its answer before we leave. */
    ioq_drain(bd);
    push_responses(bd);
    uring_free(q->uring);
    q->uring = NULL;
    if (q->nworkers > 0) {
        pthread_mutex_lock(&q->lock);
        q->quit = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        while (q->nworkers > 0)
            pthread_join(q->threads[--q->nworkers], NULL);
    }
    return NULL;
}

static struct ioq *ioq_new(unsigned int njobs)
{
    struct ioq *q = calloc(1, sizeof(*q) + njobs * sizeof(struct iojob));
    struct iojob *jobs;

    if (q == NULL)
        return NULL;
    jobs = (struct iojob *)(q + 1);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->done_fd < 0) {
        ioq_free(q);
        return NULL;
    }
    for (unsigned int i = 0; i < njobs; i++) {
        jobs[i].next = q->free;
        q->free = &jobs[i];
    }
    return q;
}

/* ---- connection (main thread) ---- */

static void disconnect(struct blkdev *bd)
{
    if (!bd->connected)
        return;
    if (bd->thread_running) {
        uint64_t one = 1;

        atomic_store(&bd->stopping, true);
        if (write(bd->stop_fd, &one, sizeof(one)) < 0)
            log_warnx("stop ring thread: %s", strerror(errno));
        pthread_join(bd->thread, NULL);
        bd->thread_running = false;
    }
    log_info("domain %u blk %u: disconnected (%" PRIu64 " requests, %" PRIu64
             " errors, %" PRIu64 " grant maps, %" PRIu64 " evictions, %" PRIu64
             " mapped reads redone, %" PRIu64 " cold spells)",
             bd->fe_domid, bd->devid, bd->nr_requests, bd->nr_errors,
             bd->nr_maps, bd->nr_evictions,
             (uint64_t)atomic_load(&bd->nr_map_fallbacks),
             (uint64_t)atomic_load(&bd->nr_cold));
    ioq_free(bd->ioq);
    bd->ioq = NULL;
    gcache_clear(bd);
    free(bd->slot_free);
    free(bd->slot_ans);
    bd->slot_free = bd->slot_ans = NULL;
    if (resumable && !leaving) {
        /* We let go of this ring: no next instance takes it over, and
         * no unmap notification tells the frontend in this mode. */
        st_store(&bd->st->active, 0u);
        if (bd->alive != NULL) {
            __atomic_store_n(bd->alive + NOXS_BLK_ALIVE_BACKEND, 0,
                             __ATOMIC_RELEASE);
            noxs_blk_ring_mb();
            if (bd->port != 0)
                xenevtchn_notify(bd->xce, bd->port);
        }
    }
    if (bd->alive != NULL)
        xengnttab_unmap(bd->xgt, bd->alive, 1); /* zeroes our byte */
    bd->alive = NULL;
    if (bd->sring != NULL)
        xengnttab_unmap(bd->xgt, bd->sring, bd->ring_pages);
    bd->sring = NULL;
    if (bd->port != 0)
        xenevtchn_unbind(bd->xce, bd->port);
    bd->port = 0;
    if (bd->xce != NULL)
        xenevtchn_close(bd->xce);
    bd->xce = NULL;
    if (bd->xgt != NULL)
        xengnttab_close(bd->xgt);
    bd->xgt = NULL;
    if (bd->stop_fd >= 0)
        close(bd->stop_fd);
    bd->stop_fd = -1;
    bd->connected = false;
}

static int peer_u32(noxs_dev *d, const char *key, uint32_t *out,
                    uint32_t min, uint32_t max)
{
    char buf[32], *end;
    unsigned long v;

    if (noxs_dev_peer_kv(d, key, buf, sizeof(buf)) < 0)
        return -1;
    errno = 0;
    v = strtoul(buf, &end, 10);
    if (errno != 0 || end == buf || *end != '\0' || buf[0] == '-' ||
        v < min || v > max) {
        errno = EINVAL;
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/*
 * Map the frontend's ring and liveness page, bind its port, start the
 * ring thread. resume: the ring the last instance served (bd->st says
 * where it stopped); the frontend must still offer that same ring.
 */
static int connect_ring(struct blkdev *bd, const char **why, bool resume)
{
    noxs_dev *d = bd->dev;
    struct blkst *st = bd->st;
    uint32_t order = 0, port, alive_ref, refs[1u << NOXS_BLK_MAX_RING_ORDER];
    char flag[8];

    if (peer_u32(d, "ring-page-order", &order, 0, NOXS_BLK_MAX_RING_ORDER) < 0 &&
        errno != ENOENT) {
        *why = "bad ring-page-order";
        return -1;
    }
    bd->ring_pages = 1u << order;
    if (order == 0) {
        if (peer_u32(d, "ring-ref", &refs[0], NOXS_GREF_MIN, UINT32_MAX) < 0) {
            *why = "missing or bad ring-ref";
            return -1;
        }
    } else {
        for (unsigned int i = 0; i < bd->ring_pages; i++) {
            char key[24];

            snprintf(key, sizeof(key), "ring-ref%u", i);
            if (peer_u32(d, key, &refs[i], NOXS_GREF_MIN, UINT32_MAX) < 0) {
                *why = "missing or bad ring-refN";
                return -1;
            }
        }
    }
    if (peer_u32(d, "event-channel", &port, 1, NOXS_PORT_MAX) < 0) {
        *why = "missing or bad event-channel";
        return -1;
    }
    if (peer_u32(d, "alive-ref", &alive_ref, NOXS_GREF_MIN, UINT32_MAX) < 0) {
        *why = "missing or bad alive-ref";
        return -1;
    }
    bd->persistent = noxs_dev_peer_kv(d, "feature-persistent", flag,
                                      sizeof(flag)) >= 0 &&
                     strcmp(flag, "1") == 0;
    if (resume) {
        bool same = st_load(&st->active) == 1 && st->order == order &&
                    st->port == port && st->alive_ref == alive_ref &&
                    st->persistent == (uint32_t)bd->persistent;

        for (unsigned int i = 0; same && i < bd->ring_pages; i++)
            same = st->refs[i] == refs[i];
        if (!same) {
            *why = "the ring changed while the backend restarted";
            return -1;
        }
    } else {
        /* A new session: what a restart would resume from here on. */
        st_store(&st->active, 0u);
        st->order = order;
        st->port = port;
        st->alive_ref = alive_ref;
        st->persistent = bd->persistent;
        memcpy(st->refs, refs, bd->ring_pages * sizeof(refs[0]));
    }

    bd->xgt = xengnttab_open(NULL, 0);
    bd->xce = xenevtchn_open(NULL, 0);
    bd->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    bd->gcache_slots = 64;
    while (bd->gcache_slots < 2 * max_grants)
        bd->gcache_slots <<= 1;
    bd->gcache = calloc(bd->gcache_slots, sizeof(*bd->gcache));
    bd->connected = true; /* so that disconnect() releases what we got */
    if (bd->xgt == NULL || bd->xce == NULL || bd->stop_fd < 0 ||
        bd->gcache == NULL) {
        *why = "out of resources";
        return -1;
    }
    xengnttab_set_max_grants(bd->xgt, max_grants + TEMP_MAX +
                                          NOXS_BLK_MAX_SEGMENTS +
                                          bd->ring_pages + 16);
    if (bd->persistent) {
        atomic_fetch_add(&persistent_devs, 1);
        bd->counted = true;
    }
    bd->sring = xengnttab_map_domain_grant_refs(bd->xgt, bd->ring_pages,
                                                bd->fe_domid, refs,
                                                PROT_READ | PROT_WRITE);
    if (bd->sring == NULL) {
        *why = "cannot map the ring";
        return -1;
    }
    xenevtchn_port_or_error_t p =
        xenevtchn_bind_interdomain(bd->xce, bd->fe_domid, port);
    if (p < 0) {
        *why = "cannot bind the event channel";
        return -1;
    }
    bd->port = (uint32_t)p;
    /* Resumable: our death is not the end of the device, so no unmap
     * notification (it would tell the frontend we are gone); we clear
     * our byte ourselves when we let go of the ring. */
    if (resumable)
        bd->alive = xengnttab_map_grant_ref(bd->xgt, bd->fe_domid, alive_ref,
                                            PROT_READ | PROT_WRITE);
    else
        bd->alive = xengnttab_map_grant_ref_notify(
            bd->xgt, bd->fe_domid, alive_ref, PROT_READ | PROT_WRITE,
            NOXS_BLK_ALIVE_BACKEND, bd->port);
    if (bd->alive == NULL) {
        *why = "cannot map the liveness page";
        return -1;
    }
    noxs_blk_set_alive(bd->alive, NOXS_BLK_ALIVE_BACKEND);
    bd->ring_size = noxs_blk_ring_size(order);
    bd->ioq = ioq_new(bd->ring_size);
    bd->slot_free = calloc(2 * bd->ring_size, sizeof(*bd->slot_free));
    bd->slot_ans = calloc(2 * bd->ring_size, sizeof(*bd->slot_ans));
    if (bd->ioq == NULL || bd->slot_free == NULL || bd->slot_ans == NULL ||
        2 * bd->ring_size > BLKST_SLOTS) {
        *why = "out of resources";
        return -1;
    }
    /* A fresh ring: the frontend starts its indices at 0. Resumed: where
     * the last instance stopped. */
    if (slots_setup(bd, resume) < 0) {
        *why = "the stored ring state is inconsistent";
        return -1;
    }
    if (!resume)
        st_store(&st->active, 1u);
    else
        log_info("domain %u blk %u: ring resumed at request %" PRIu32
                 ", %" PRIu32 " taken and not answered to the frontend",
                 bd->fe_domid, bd->devid, bd->req_cons,
                 bd->req_cons - bd->rsp_prod_pvt);
    bd->nr_requests = bd->nr_errors = bd->nr_maps = bd->nr_evictions = 0;
    atomic_store(&bd->stopping, false);
    atomic_store(&bd->broken, false);
    atomic_store(&bd->peer_gone, false);
    if (pthread_create(&bd->thread, NULL, ring_thread, bd) != 0) {
        *why = "cannot start the ring thread";
        return -1;
    }
    bd->thread_running = true;
    log_info("domain %u blk %u: %s, %u-page ring (%u slots), port %u%s",
             bd->fe_domid, bd->devid, resume ? "resumed" : "connected",
             bd->ring_pages, bd->ring_size, bd->port,
             bd->persistent ? ", persistent grants" : "");
    return 0;
}

static void set_state(noxs_dev *d, unsigned int state)
{
    if (noxs_dev_state(d) == state)
        return;
    noxs_dev_set_state(d, state);
    if (noxs_dev_publish(d) < 0)
        log_warnx("domain %u: publish %s: %s", noxs_dev_frontend_domid(d),
                  noxs_state_name(state), strerror(errno));
    noxs_backend_report(backend, d);
}

static void fail_device(struct blkdev *bd, const char *why)
{
    log_warnx("domain %u blk %u: %s", bd->fe_domid, bd->devid, why);
    disconnect(bd);
    noxs_dev_set_kv(bd->dev, "error", why);
    if (noxs_dev_state(bd->dev) == NOXS_STATE_CLOSING)
        noxs_dev_publish(bd->dev);
    set_state(bd->dev, NOXS_STATE_CLOSING);
}

/* ---- device creation ---- */

static const char *param(const struct noxs_kv *params, size_t n,
                         const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(params[i].key, key) == 0)
            return params[i].value;
    return NULL;
}

static int publish_u64(noxs_dev *d, const char *key, uint64_t v)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return noxs_dev_set_kv(d, key, buf);
}

/*
 * A device of another domain on the same file or block device, when
 * sharing it would be unsafe: either of the two read-write. Xen's block
 * script refuses the same (check_sharing): a guest writing where another
 * guest reads or writes sees torn data, and a filesystem on it is lost.
 * Several devices of one domain may share a file, as Xen allows: one
 * kernel arbitrates them.
 */
static struct blkdev *sharing(const struct blkdev *bd, const struct stat *st)
{
    struct stat other;

    for (struct blkdev *o = devices; o != NULL; o = o->next) {
        if (o == bd || o->fe_domid == bd->fe_domid || o->fd < 0 ||
            fstat(o->fd, &other) < 0)
            continue;
        if (S_ISBLK(st->st_mode) ? other.st_rdev != st->st_rdev
                                 : other.st_dev != st->st_dev ||
                                       other.st_ino != st->st_ino)
            continue;
        if (!bd->geom.readonly || !o->geom.readonly)
            return o;
    }
    return NULL;
}

/* Refuse a device: one line naming what is wrong; returns -err. */
static int refuse(const struct blkdev *bd, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(const struct blkdev *bd, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_warnx("domain %u blk %u: refused: %s", bd->fe_domid, bd->devid, msg);
    return -err;
}

static int open_backing(struct blkdev *bd, const struct noxs_kv *params,
                        size_t n)
{
    static const char *const known[] = {"path", "mode", "sector-size",
                                        "sectors", NULL};
    const char *path = param(params, n, "path");
    const char *mode = param(params, n, "mode");
    const char *ss = param(params, n, "sector-size");
    const char *sectors = param(params, n, "sectors");
    const char *unknown = params_unknown(params, n, known);
    struct blkdev *other;
    struct stat st;
    uint64_t bytes = 0, v;

    if (unknown != NULL)
        return refuse(bd, EINVAL, "unknown parameter %s= (known: path, "
                      "mode, sector-size, sectors)", unknown);
    if (path == NULL || path[0] == '\0')
        return refuse(bd, EINVAL, "no path= parameter (the image file or "
                      "block device)");
    /* Ours is not the toolstack's current directory. */
    if (path[0] != '/')
        return refuse(bd, EINVAL, "path=%s is not an absolute path", path);
    if (mode == NULL || strcmp(mode, "w") == 0 || strcmp(mode, "rw") == 0)
        bd->geom.readonly = false;
    else if (strcmp(mode, "r") == 0 || strcmp(mode, "ro") == 0)
        bd->geom.readonly = true;
    else
        return refuse(bd, EINVAL, "mode=%s (r, ro, w or rw)", mode);
    if (ss == NULL || strcmp(ss, "512") == 0)
        bd->geom.sector_size = 512;
    else if (strcmp(ss, "4096") == 0)
        bd->geom.sector_size = 4096;
    else
        return refuse(bd, EINVAL, "sector-size=%s (512 or 4096)", ss);
    if (sectors != NULL &&
        parse_u64(sectors, 1, UINT64_MAX >> 10, &v) < 0)
        return refuse(bd, EINVAL, "sectors=%s (a decimal number of 512-byte "
                      "sectors)", sectors);

    bd->fd = open(path, (bd->geom.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (bd->fd < 0) {
        int err = errno;

        return refuse(bd, err, "path=%s: %s", path, strerror(err));
    }
    if (fstat(bd->fd, &st) < 0)
        return -errno;
    if ((other = sharing(bd, &st)) != NULL)
        return refuse(bd, EBUSY, "%s is attached %s as domain %u blk %u; "
                      "two domains never share a file when either may "
                      "write it", path,
                      other->geom.readonly ? "read-only" : "read-write",
                      other->fe_domid, other->devid);
    if (S_ISREG(st.st_mode)) {
        bytes = (uint64_t)st.st_size;
        bd->geom.discard = true;
    } else if (S_ISBLK(st.st_mode)) {
        if (ioctl(bd->fd, BLKGETSIZE64, &bytes) < 0)
            return -errno;
        bd->is_blockdev = true;
        bd->geom.discard = true;
    } else if (S_ISDIR(st.st_mode)) {
        return refuse(bd, EISDIR, "path=%s is a directory", path);
    } else if (sectors == NULL) {
        return refuse(bd, EINVAL, "path=%s is neither a file nor a block "
                      "device; give sectors=", path);
    }
    if (sectors != NULL) {
        /*
         * A disk larger than its file would fail every I/O past the end.
         * (A file that says it is empty, as /proc's do, takes sectors=
         * at its word.)
         */
        if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && bytes > 0 &&
            v > bytes >> NOXS_BLK_SECTOR_SHIFT)
            return refuse(bd, EINVAL, "sectors=%s is more than the %" PRIu64
                          " sectors of %s", sectors,
                          bytes >> NOXS_BLK_SECTOR_SHIFT, path);
        bytes = v << NOXS_BLK_SECTOR_SHIFT;
    }
    bytes -= bytes % bd->geom.sector_size;
    bd->geom.sectors = bytes >> NOXS_BLK_SECTOR_SHIFT;
    bd->path = strdup(path);
    if (bd->path == NULL)
        return -ENOMEM;
    map_setup(bd, st.st_mode, bytes);
    return 0;
}

/* ---- our files in the fd store ---- */

static void stored_name(char *buf, size_t n, const char *what, uint16_t domid,
                        uint32_t devid)
{
    snprintf(buf, n, "noxs-blk-%s-%u-%u", what, domid, devid);
}

/* bd->st: a memfd to store (resumable), else anonymous memory. */
static int st_new(struct blkdev *bd)
{
    void *p;

    if (resumable) {
        int fd = memfd_create("noxs-blk-state", MFD_CLOEXEC);

        if (fd >= 0 && ftruncate(fd, (off_t)sizeof(struct blkst)) == 0 &&
            (p = mmap(NULL, sizeof(struct blkst), PROT_READ | PROT_WRITE,
                      MAP_SHARED, fd, 0)) != MAP_FAILED) {
            bd->st = p;
            bd->st_fd = fd;
            return 0;
        }
        log_warnx("domain %u blk %u: state memfd: %s: the device will not "
                  "survive a restart", bd->fe_domid, bd->devid,
                  strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    p = mmap(NULL, sizeof(struct blkst), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    bd->st = p;
    return 0;
}

/* Settings into bd->st, then the image and st into the fd store. */
static void store_files(struct blkdev *bd)
{
    const char *ns = getenv("NOTIFY_SOCKET");
    struct blkst *st = bd->st;
    char name[64];

    st->magic = BLKST_MAGIC;
    st->version = BLKST_VERSION;
    st->domid = bd->fe_domid;
    st->devid = bd->devid;
    st->sectors = bd->geom.sectors;
    st->sector_size = bd->geom.sector_size;
    st->readonly = bd->geom.readonly;
    st->discard = bd->geom.discard;
    st->is_blockdev = bd->is_blockdev;
    snprintf(st->path, sizeof(st->path), "%s", bd->path);
    if (bd->st_fd < 0)
        return;
    stored_name(name, sizeof(name), "img", bd->fe_domid, bd->devid);
    if (noxs_i_fdstore_put(ns, name, bd->fd) == 0) {
        stored_name(name, sizeof(name), "state", bd->fe_domid, bd->devid);
        bd->stored = noxs_i_fdstore_put(ns, name, bd->st_fd) == 0;
    }
    if (!bd->stored)
        log_warnx("domain %u blk %u: cannot store its files (%s): the "
                  "device will not survive a restart", bd->fe_domid,
                  bd->devid, strerror(errno));
}

/* The device is gone for good: take its files out of the store. */
static void unstore_files(struct blkdev *bd)
{
    const char *ns = getenv("NOTIFY_SOCKET");
    char name[64], msg[128];

    if (!bd->stored)
        return;
    stored_name(name, sizeof(name), "img", bd->fe_domid, bd->devid);
    snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
    noxs_i_notify(ns, msg, -1);
    stored_name(name, sizeof(name), "state", bd->fe_domid, bd->devid);
    snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
    noxs_i_notify(ns, msg, -1);
    bd->stored = false;
}

static void free_blkdev(struct blkdev *bd)
{
    struct blkdev **pp;

    disconnect(bd);
    if (!leaving)
        unstore_files(bd);
    for (pp = &devices; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == bd) {
            *pp = bd->next;
            break;
        }
    }
    if (bd->map != NULL)
        munmap((void *)bd->map, (size_t)bd->map_len);
    if (bd->fd >= 0)
        close(bd->fd);
    if (bd->st != NULL)
        munmap(bd->st, sizeof(struct blkst));
    if (bd->st_fd >= 0)
        close(bd->st_fd);
    free(bd->path);
    free(bd);
}

/* The keys blkfront reads, from bd's settings. -1 with errno. */
static int set_keys(struct blkdev *bd)
{
    noxs_dev *d = bd->dev;
    char info[8];

    snprintf(info, sizeof(info), "%u",
             bd->geom.readonly ? NOXS_BLK_INFO_READONLY : 0u);
    if (publish_u64(d, "sectors", bd->geom.sectors) < 0 ||
        publish_u64(d, "sector-size", bd->geom.sector_size) < 0 ||
        publish_u64(d, "physical-sector-size", bd->geom.sector_size) < 0 ||
        noxs_dev_set_kv(d, "info", info) < 0 ||
        noxs_dev_set_kv(d, "mode", bd->geom.readonly ? "r" : "w") < 0 ||
        noxs_dev_set_kv(d, "feature-flush-cache", "1") < 0 ||
        noxs_dev_set_kv(d, "feature-discard",
                        bd->geom.discard ? "1" : "0") < 0 ||
        publish_u64(d, "discard-granularity", bd->geom.sector_size) < 0 ||
        noxs_dev_set_kv(d, "discard-alignment", "0") < 0 ||
        noxs_dev_set_kv(d, "feature-persistent", "1") < 0 ||
        publish_u64(d, "max-ring-page-order", NOXS_BLK_MAX_RING_ORDER) < 0)
        return -1;
    return 0;
}

static struct blkdev *blkdev_new(noxs_dev *d)
{
    struct blkdev *bd = calloc(1, sizeof(*bd));

    if (bd == NULL)
        return NULL;
    bd->dev = d;
    bd->fd = -1;
    bd->st_fd = -1;
    bd->stop_fd = -1;
    bd->fe_domid = noxs_dev_frontend_domid(d);
    bd->devid = noxs_dev_id(d);
    bd->next = devices;
    devices = bd;
    return bd;
}

static int blk_create(noxs_backend *b, noxs_dev *d,
                      const struct noxs_kv *params, size_t nparams, void *arg)
{
    struct blkdev *bd = blkdev_new(d);
    int err;

    if (bd == NULL)
        return -ENOMEM;
    err = open_backing(bd, params, nparams);
    if (err == 0)
        err = st_new(bd);
    if (err == 0 && set_keys(bd) < 0)
        err = -errno;
    if (err == 0)
        store_files(bd);
    if (err != 0) {
        free_blkdev(bd);
        return err;
    }
    noxs_dev_set_user(d, bd);
    log_info("domain %u blk %u: %s, %" PRIu64 " sectors of %u bytes, %s",
             bd->fe_domid, bd->devid, bd->path,
             bd->geom.sectors / (bd->geom.sector_size >> 9),
             bd->geom.sector_size, bd->geom.readonly ? "read-only" : "read-write");
    return 0;
}

static void blk_changed(noxs_backend *b, noxs_dev *d, void *arg)
{
    struct blkdev *bd = noxs_dev_user(d);
    unsigned int own = noxs_dev_state(d);
    const char *why = NULL;

    if (bd == NULL)
        return;
    switch (noxs_dev_peer_state(d)) {
    case NOXS_STATE_UNKNOWN:
    case NOXS_STATE_INITIALISING:
        /* A new frontend session (also after a frontend restart). */
        disconnect(bd);
        if (own != NOXS_STATE_INITWAIT) {
            noxs_dev_del_kv(d, "error");
            set_state(d, NOXS_STATE_INITWAIT);
        }
        break;
    case NOXS_STATE_INITIALISED:
    case NOXS_STATE_CONNECTED:
        if (bd->connected || (own != NOXS_STATE_INITWAIT &&
                              own != NOXS_STATE_INITIALISING))
            break;
        if (connect_ring(bd, &why, false) < 0) {
            fail_device(bd, why);
            break;
        }
        set_state(d, NOXS_STATE_CONNECTED);
        break;
    case NOXS_STATE_CLOSING:
        disconnect(bd);
        if (own != NOXS_STATE_CLOSED)
            set_state(d, NOXS_STATE_CLOSING);
        break;
    case NOXS_STATE_CLOSED:
        disconnect(bd);
        set_state(d, NOXS_STATE_CLOSED);
        break;
    default:
        break;
    }
}

static int blk_control(noxs_backend *b, noxs_dev *d, const char *key,
                       const char *value, uint32_t request, void *arg)
{
    return -EINVAL;
}

static void blk_remove(noxs_backend *b, noxs_dev *d, void *arg)
{
    struct blkdev *bd = noxs_dev_user(d);

    if (bd == NULL)
        return;
    log_info("domain %u blk %u: removed", bd->fe_domid, bd->devid);
    noxs_dev_set_user(d, NULL);
    free_blkdev(bd);
}

static const struct noxs_backend_ops ops = {
    .create = blk_create,
    .changed = blk_changed,
    .control = blk_control,
    .remove = blk_remove,
};

/* ---- resuming after our own restart ---- */

/* Our files the service manager gave back ($LISTEN_FDS), taken before
 * libnoxs takes its own and clears the variables. */
struct kept_file {
    char name[64];
    int fd;
};
static struct kept_file *kept;
static size_t nkept;

static void take_stored(void)
{
    const char *spid = getenv("LISTEN_PID"), *sn = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char *copy, *name, *save = NULL;
    uint64_t pid, n;

    if (spid == NULL || sn == NULL || names == NULL)
        return;
    if (parse_u64(spid, 1, INT32_MAX, &pid) < 0 || (pid_t)pid != getpid())
        return;
    if (parse_u64(sn, 0, 1u << 20, &n) < 0 || (copy = strdup(names)) == NULL)
        return;
    kept = calloc(n, sizeof(*kept));
    name = strtok_r(copy, ":", &save);
    for (unsigned long i = 0; kept != NULL && i < n && name != NULL; i++) {
        if (strncmp(name, "noxs-blk-", 9) == 0 &&
            strlen(name) < sizeof(kept[0].name)) {
            snprintf(kept[nkept].name, sizeof(kept[0].name), "%s", name);
            kept[nkept].fd = (int)(3 + i);
            fcntl(kept[nkept].fd, F_SETFD, FD_CLOEXEC);
            nkept++;
        }
        name = strtok_r(NULL, ":", &save);
    }
    free(copy);
}

static int take_kept(const char *name)
{
    for (size_t i = 0; i < nkept; i++) {
        if (kept[i].fd >= 0 && strcmp(kept[i].name, name) == 0) {
            int fd = kept[i].fd;

            kept[i].fd = -1;
            return fd;
        }
    }
    return -1;
}

/* Stored files no device claimed (a device removed while we were away,
 * or one a kill left half-added): out of the store. */
static void drop_kept(void)
{
    const char *ns = getenv("NOTIFY_SOCKET");
    char msg[128];

    for (size_t i = 0; i < nkept; i++) {
        if (kept[i].fd < 0)
            continue;
        close(kept[i].fd);
        if (resumable) {
            snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s",
                     kept[i].name);
            noxs_i_notify(ns, msg, -1);
        }
    }
    free(kept);
    kept = NULL;
    nkept = 0;
}

/* bd's settings from its stored files. NULL, or why not. */
static const char *resume_files(struct blkdev *bd)
{
    struct stat sb;
    struct blkst *st;
    void *p;

    if (bd->fd < 0 || bd->st_fd < 0)
        return "its files were not kept across the restart";
    if (fstat(bd->st_fd, &sb) < 0 || sb.st_size < (off_t)sizeof(*st) ||
        (p = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED,
                  bd->st_fd, 0)) == MAP_FAILED)
        return "its state file is unusable";
    bd->st = st = p;
    if (st->magic != BLKST_MAGIC || st->version != BLKST_VERSION ||
        st->domid != bd->fe_domid || st->devid != bd->devid ||
        (st->sector_size != 512 && st->sector_size != 4096) ||
        st->sectors > (UINT64_MAX >> 10))
        return "its state file is not ours";
    bd->geom.sectors = st->sectors;
    bd->geom.sector_size = st->sector_size;
    bd->geom.readonly = st->readonly != 0;
    bd->geom.discard = st->discard != 0;
    bd->is_blockdev = st->is_blockdev != 0;
    bd->path = strndup(st->path, sizeof(st->path) - 1);
    if (bd->path == NULL || fstat(bd->fd, &sb) < 0)
        return "out of resources";
    map_setup(bd, sb.st_mode, bd->geom.sectors << NOXS_BLK_SECTOR_SHIFT);
    return NULL;
}

/*
 * The devices libnoxs resumed from the fd store: each gets its image and
 * settings back from its own stored files, and a Connected one its ring,
 * where the last instance left it (connect_ring, redo_stored); anything
 * else follows the frontend as usual.
 */
static void resume_devices(void)
{
    for (noxs_dev *d = noxs_backend_next_dev(backend, NULL); d != NULL;
         d = noxs_backend_next_dev(backend, d)) {
        unsigned int own = noxs_dev_state(d), fe = noxs_dev_peer_state(d);
        const char *why;
        struct blkdev *bd;
        char name[64];

        if (noxs_dev_user(d) != NULL || (bd = blkdev_new(d)) == NULL)
            continue;
        stored_name(name, sizeof(name), "img", bd->fe_domid, bd->devid);
        bd->fd = take_kept(name);
        stored_name(name, sizeof(name), "state", bd->fe_domid, bd->devid);
        bd->st_fd = take_kept(name);
        bd->stored = bd->fd >= 0 || bd->st_fd >= 0;
        if ((why = resume_files(bd)) != NULL || set_keys(bd) < 0) {
            /* Nothing to serve it from: the toolstack must add it again. */
            log_warnx("domain %u blk %u: cannot resume: %s", bd->fe_domid,
                      bd->devid, why != NULL ? why : strerror(errno));
            free_blkdev(bd);
            noxs_dev_set_kv(d, "error", "the backend lost the device");
            if (own == NOXS_STATE_CLOSING)
                noxs_dev_publish(d);
            set_state(d, NOXS_STATE_CLOSING);
            continue;
        }
        noxs_dev_set_user(d, bd);
        log_info("domain %u blk %u: resumed (%s), %s", bd->fe_domid,
                 bd->devid, noxs_state_name(own), bd->path);
        if (own == NOXS_STATE_CONNECTED &&
            (fe == NOXS_STATE_INITIALISED || fe == NOXS_STATE_CONNECTED)) {
            if (connect_ring(bd, &why, true) < 0)
                fail_device(bd, why);
            continue;
        }
        if (own == NOXS_STATE_INITIALISING) /* killed inside dev-add */
            set_state(d, NOXS_STATE_INITWAIT);
        blk_changed(backend, d, NULL);
    }
}

/* Ring threads that stopped on their own: a hostile ring or a dead peer. */
static void reap_broken(void)
{
    uint64_t v;

    if (read(wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warnx("wake: %s", strerror(errno));
    for (struct blkdev *bd = devices; bd != NULL; bd = bd->next) {
        if (!bd->connected)
            continue;
        if (atomic_load(&bd->broken)) {
            fail_device(bd, "ring protocol violation");
        } else if (atomic_load(&bd->peer_gone)) {
            /* Nobody to wait for: Closing, then Closed at once. A
             * restarted frontend comes back through Initialising. */
            log_info("domain %u blk %u: frontend gone", bd->fe_domid,
                     bd->devid);
            disconnect(bd);
            set_state(bd->dev, NOXS_STATE_CLOSING);
            set_state(bd->dev, NOXS_STATE_CLOSED);
        }
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-blk-back [-dv] [--socket PATH] [--max-grants N]\n"
            "                     [--io-threads N] [--share-small N] "
            "[--no-uring]\n"
            "                     [--no-mmap]\n"
            "\n"
            "Serve the blk devices of every guest from files or block "
            "devices.\n"
            "  -d, --foreground  stay in the foreground and log to stderr\n"
            "  -v                log debug messages too\n"
            "  --version         print the version and exit\n"
            "  --pidfile PATH    write the pid there (removed at exit)\n"
            "  --socket PATH     noxsd's control socket (default "
            "$NOXS_SOCKET,\n"
            "                    else " NOXS_DEFAULT_SOCKET ")\n"
            "  --max-grants N    data pages kept mapped by all devices "
            "together\n"
            "                    (default %u, 0..%u; 0: map per request)\n"
            "  --io-threads N    I/O worker threads per connected device, "
            "besides\n"
            "                    its ring thread (default %u, 0..%u; 0: the "
            "ring\n"
            "                    thread does all I/O)\n"
            "  --share-small N   hand batches of N small requests to an "
            "idle\n"
            "                    worker (default 0: the ring thread does "
            "them;\n"
            "                    0..%u)\n"
            "  --no-uring        do the ring thread's reads and writes with\n"
            "                    preadv/pwritev, one system call each, "
            "instead of\n"
            "                    batching them through io_uring\n"
            "  --no-mmap         never read from a mapping of the file "
            "(see\n"
            "                    noxs-blk-back(8))\n",
            DEFAULT_MAX_GRANTS, MAX_MAX_GRANTS, DEFAULT_IO_THREADS,
            MAX_WORKERS, JOB_MAX_REQS);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"foreground", no_argument, NULL, 'd'},
        {"socket", required_argument, NULL, 's'},
        {"max-grants", required_argument, NULL, 'g'},
        {"io-threads", required_argument, NULL, 't'},
        {"share-small", required_argument, NULL, 'S'},
        {"no-uring", no_argument, NULL, 'U'},
        {"no-mmap", no_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"pidfile", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    const unsigned int types[] = {NOXS_DEV_BLK};
    /* Static: they live as long as the process (no leak at exit). */
    static const char *socket_path, *pidfile;
    bool foreground = false;
    int verbosity = 0, c, sfd, status = 0;
    struct rlimit rl;
    sigset_t mask;

    while ((c = getopt_long(argc, argv, "dvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': foreground = true; break;
        case 'v': verbosity++; break;
        case 's': socket_path = opt_path("socket", optarg); break;
        case 'g':
            max_grants = (unsigned int)opt_u64("max-grants", optarg, 0,
                                               MAX_MAX_GRANTS);
            break;
        case 't':
            io_threads = (unsigned int)opt_u64("io-threads", optarg, 0,
                                               MAX_WORKERS);
            break;
        case 'S':
            share_small = (unsigned int)opt_u64("share-small", optarg, 0,
                                                JOB_MAX_REQS);
            break;
        case 'U': use_uring = false; break;
        case 'M': use_mmap = false; break;
        case 'h': usage(stdout); return 0;
        case 'V': print_version("noxs-blk-back"); return 0;
        case 'p': pidfile = opt_path("pidfile", optarg); break;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "noxs-blk-back: unexpected argument: %s\n",
                argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    log_init("noxs-blk-back", verbosity);
    noxs_set_logger(log_library);
    /* Registration before detaching: failing to, it says why and exits 1. */
    daemon_start(foreground);
    daemon_pidfile(pidfile);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    {
        struct sigaction sa = {.sa_sigaction = on_sigbus,
                               .sa_flags = SA_SIGINFO | SA_NODEFER};

        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, NULL) < 0)
            use_mmap = false;
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || wake_fd < 0)
        fatalx("signalfd/eventfd: %s", strerror(errno));

    take_stored();
    backend = noxs_backend_open_flags(socket_path, types, 1, &ops, NULL,
                                      NOXS_BACKEND_RESUMABLE);
    if (backend == NULL)
        fatal("cannot register with noxsd at %s", socket_path ? socket_path
              : getenv("NOXS_SOCKET") ? getenv("NOXS_SOCKET")
                                      : NOXS_DEFAULT_SOCKET);
    resumable = noxs_backend_restartable(backend) != 0;
    if (noxs_backend_restartable(backend) == 2)
        resume_devices();
    drop_kept();
    log_info("noxs-blk-back %s: serving blk devices", version_string());
    daemon_ready();

    for (;;) {
        struct pollfd p[3] = {
            {.fd = noxs_backend_fd(backend), .events = POLLIN},
            {.fd = wake_fd, .events = POLLIN},
            {.fd = sfd, .events = POLLIN},
        };

        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            fatalx("poll: %s", strerror(errno));
        }
        if (p[2].revents & POLLIN) {
            log_info("terminating");
            break;
        }
        if (p[1].revents & POLLIN)
            reap_broken();
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (noxs_backend_dispatch(backend, 0) < 0 && errno != EAGAIN &&
                errno != EINTR && errno != ETIMEDOUT) {
                log_warnx("noxsd connection: %s", strerror(errno));
                status = 1;
                break;
            }
        }
    }
    /* With an fd store the devices are the next instance's: their ring
     * threads answer what they took, and nothing closes. */
    leaving = resumable;
    while (devices != NULL) {
        struct blkdev *bd = devices;

        disconnect(bd);
        if (!leaving)
            set_state(bd->dev, NOXS_STATE_CLOSED);
        noxs_dev_set_user(bd->dev, NULL);
        free_blkdev(bd);
    }
    noxs_backend_close(backend);
    return status;
}
