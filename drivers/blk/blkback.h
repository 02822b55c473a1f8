/*
 * noxs-blk-back's internals, shared by its files:
 *
 *   blkback.c  control (main thread): devices from dev-add, the
 *              session libnoxs's state walk asks for (connect,
 *              disconnect, resume), main()
 *   store.c    our own restarts: the device's files in the fd store
 *   ring.c     the ring thread: requests in, responses out, the
 *              request copies that survive a restart
 *   io.c       the I/O of mapped requests: jobs, worker threads, reads
 *              from a mapping, io_uring batches
 *   gcache.c   the data pages: mapping them, the persistent-grant cache
 *   events.c   the process's event channels, the event thread and the
 *              ring threads' sleep (bells)
 *
 * Calls go one way: blkback.c -> store.c, ring.c, io.c, gcache.c,
 * events.c; ring.c -> io.c, gcache.c, events.c; io.c -> gcache.c,
 * events.c. A finished job goes back
 * to the ring through the answer callback the ring thread gives ioq_new.
 */
#ifndef NOXS_BLKBACK_H
#define NOXS_BLKBACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/noxs.h>

#include "blkreq.h"

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
/* A device with no request for this long gives up its I/O workers and
 * io_uring (ring.c), till a request needs them again. */
#define IDLE_MS 2000
/* Bounded busy-wait before sleeping on the event channel. */
#define SPIN_NS 30000
/* Worker threads per device (--io-threads). Two: the measured best on a
 * 2-core machine (see docs/DRIVERS.md, Performance). */
#define DEFAULT_IO_THREADS 2u
#define MAX_WORKERS 4u
/* Jobs: at most this many requests, iovecs (one preadv/pwritev, under
 * IOV_MAX) and bytes; see io.c. */
#define JOB_MAX_REQS 32u
#define JOB_MAX_SEGS 256u
#define JOB_MAX_BYTES (1u << 20)
/*
 * Thread stacks. A ring thread's deepest frames are a job's iovecs
 * (JOB_MAX_SEGS of them, 4 KiB, twice when a write is gathered beside an
 * io_uring batch), the request copies to redo after a restart (2 KiB),
 * a log line and the grant and event-channel library calls: 256 KiB is
 * many times that and a thirty-second of the default 8 MiB. Workers only
 * gather iovecs and call preadv/pwritev. The sanitizers' frames are
 * several times larger, and ThreadSanitizer's per-thread state lives on
 * the stack: their builds keep the default.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RING_STACK 0u
#define WORKER_STACK 0u
#else
#define RING_STACK (256u * 1024)
#define WORKER_STACK (128u * 1024)
#endif

struct gchunk;
struct blkst;
struct ioq;
struct uring;

struct gcache_entry {
    uint32_t gref;    /* 0: empty (refs below NOXS_GREF_MIN are never valid) */
    unsigned int idx; /* page in the chunk */
    struct gchunk *chunk;
};

struct blkdev {
    noxs_dev *dev;
    uint16_t fe_domid;
    uint32_t devid;
    int fd;
    bool is_blockdev;
    struct blkreq_geometry geom;
    char *path;
    /* The file's identity (st_dev and st_ino, or a block device's
     * st_rdev), kept so that a new device's sharing check walks the
     * others without a system call each. */
    bool id_known, id_blk;
    dev_t id_dev;
    ino_t id_ino;
    /* What survives us (see "our own restarts"): settings, the ring
     * session and every request taken off the ring and not yet answered
     * to the frontend. A memfd in the fd store, else the heap (store.c). */
    struct blkst *st;
    int st_fd;
    bool stored; /* the image and st_fd are in the fd store */

    /* Connection: set up and torn down by the main thread only. */
    bool connected;
    /* The ring thread's life (events.c), under rt_lock: an idle device
     * parks it (the thread ends) and its next event starts it again. */
    pthread_mutex_t rt_lock;
    pthread_cond_t rt_ended; /* a stopping thread is done (rt_lock) */
    enum { RT_NONE,
           RT_RUNNING,
           RT_PARKED,
           RT_STOPPING } rt;
    /* The ring thread's wake-up: events, finished jobs, stop (events.c). */
    atomic_uint bell;
    atomic_bool masked;    /* its port was delivered; the ring thread unmasks */
    xengnttab_handle *xgt; /* conf.xgt while connected */
    uint32_t port;         /* our port, bound to the frontend's event-channel */
    struct noxs_blk_sring *sring;
    unsigned int ring_pages;
    uint32_t ring_size;
    bool persistent;
    atomic_bool stopping;
    atomic_bool broken; /* ring thread gave up on a hostile ring */

    /* Owned by the ring thread while it runs. */
    bool single_cpu; /* spins yield the CPU: it may be the frontend's */
    bool resuming;   /* first redo what the last instance left unanswered */
    uint32_t req_cons;
    uint32_t rsp_prod_pvt;
    uint32_t rsp_pushed;
    uint32_t nslots;     /* st->slot[] in use: twice the ring */
    uint16_t *slot_free; /* stack of free slots */
    unsigned int nslot_free;
    uint16_t *slot_ans; /* by response index: the slot it answered */
    struct gcache_entry *gcache;
    uint32_t gcache_slots;    /* power of two, at least twice gcache_used */
    unsigned int gcache_used; /* pages in cached chunks */
    unsigned int temp_used;   /* pages mapped for one request, in flight */
    struct gchunk *lru_head, *lru_tail;
    bool counted; /* in persistent_devs */
    uint64_t nr_requests, nr_errors, nr_maps, nr_evictions;
    struct ioq *ioq;

    struct blkdev *next;
};

/*
 * The process-wide settings and state. The settings come from the
 * command line and are fixed before the first device exists; the rest
 * says which thread owns it.
 */
struct blkback_conf {
    /* Settings (main() only writes them, before any ring thread). */
    unsigned int max_grants; /* --max-grants */
    unsigned int io_threads; /* --io-threads */
    bool use_uring;          /* not --no-uring */

    /* Shared by the ring threads: the grant and event-channel handles
     * (one each for the process, see events.c). */
    xengnttab_handle *xgt;
    xenevtchn_handle *xce;
    atomic_uint grants_mapped;   /* cached pages, all devices */
    atomic_uint persistent_devs; /* connected devices that cache */
    int wake_fd;                 /* eventfd: ring threads -> main */

    /* Main thread. */
    noxs_backend *backend;
    struct blkdev *devices;
    /* libnoxs keeps our devices across restarts; and we are leaving
     * them to the next instance (exiting) rather than letting go. */
    bool resumable, leaving;
    /* Our files the service manager gave back, till a device takes
     * them (store.c). */
    struct kept_file *kept;
    size_t nkept;
};

struct kept_file {
    char name[64];
    int fd;
};

extern struct blkback_conf conf;

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
 * the ring again (libnoxs its liveness page), binds the frontend's port
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
enum { SLOT_FREE,
       SLOT_TAKEN,
       SLOT_ANSWERED };

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
    uint32_t order, port;
    uint32_t unused; /* zero; keeps the layout older binaries wrote */
    uint32_t persistent;
    uint32_t refs[1u << NOXS_BLK_MAX_RING_ORDER];
    /* The ring thread's indices. */
    uint32_t req_cons, rsp_prod_pvt, rsp_pushed;
    uint32_t pad1;
    struct blkst_slot slot[BLKST_SLOTS];
};

#define st_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define st_load(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)

/* ---- gcache.c: the data pages (ring thread) ---- */

struct seg_maps {
    struct gchunk *pin[NOXS_BLK_MAX_SEGMENTS]; /* pinned chunk per segment */
    void *temp;                                /* mapped for this request */
    unsigned int ntemp;
};

int gcache_init(struct blkdev *bd);
void gcache_clear(struct blkdev *bd);
int map_segments(struct blkdev *bd, const struct blkreq *r, void **addr,
                 struct seg_maps *m);
void unmap_segments(struct blkdev *bd, const struct blkreq *r,
                    struct seg_maps *m);

/* ---- io.c: the I/O of mapped requests ---- */

/* How a finished request goes back to the ring (ring thread). */
typedef void blk_answer_fn(struct blkdev *bd, unsigned int slot, uint64_t id,
                           uint8_t op, int status);

struct iojob {
    struct iojob *next; /* queue, done and free lists */
    struct iojob *more; /* next request of the same job */
    /* The first request of a job describes the job: */
    struct iojob *last;
    unsigned int nreq, nseg;
    uint64_t bytes;
    bool big; /* queued as a big job */
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
    unsigned int nworkers; /* worker threads running */
    pthread_t threads[MAX_WORKERS];
    /* Ring thread only: the workers and io_uring are made on the first
     * request that needs them (an idle device has neither); tried once
     * a session. */
    bool workers_tried, uring_tried;
    struct iojob *free;    /* ring thread only */
    struct iojob *open;    /* ring thread only: the job being gathered */
    struct iojob *small;   /* ring thread only: small reads to batch */
    unsigned int inflight; /* ring thread only: requests taken, not answered */
    unsigned int nbig;     /* ring thread only: big jobs queued, not reaped */
    struct uring *uring;   /* ring thread only: NULL when not in use */
    blk_answer_fn *answer; /* ring thread only: a request is done */
};

struct ioq *ioq_new(unsigned int njobs, blk_answer_fn *answer);
void ioq_free(struct ioq *q);
void ioq_stop(struct blkdev *bd);
void ioq_add(struct blkdev *bd, struct iojob *j);
void ioq_dispatch(struct blkdev *bd);
void ioq_flush_small(struct blkdev *bd);
void ioq_reap(struct blkdev *bd);
void ioq_drain(struct blkdev *bd);
int do_discard(struct blkdev *bd, uint64_t off, uint64_t len);

/* ---- events.c: event channels, bells, threads ---- */

void events_start(void);
int events_bind(struct blkdev *bd, uint32_t remote_port);
void events_unbind(struct blkdev *bd);
void bell_ring(struct blkdev *bd);
int ring_start(struct blkdev *bd);
void ring_wake(struct blkdev *bd);
bool ring_park(struct blkdev *bd);
void ring_stop(struct blkdev *bd);
void ring_end(struct blkdev *bd);
bool bell_wait(struct blkdev *bd, int timeout_ms);
void thread_attr(pthread_attr_t *attr, size_t stack);

/* ---- ring.c: the ring thread ---- */

void *ring_thread(void *arg);
int slots_setup(struct blkdev *bd, bool resume);
blk_answer_fn put_response;

/* ---- store.c: our files in the fd store ---- */

void take_stored(void);
int take_kept(const char *name);
void drop_kept(void);
void stored_name(char *buf, size_t n, const char *what, uint16_t domid,
                 uint32_t devid);
int st_new(struct blkdev *bd);
void st_free(struct blkdev *bd);
void store_files(struct blkdev *bd);
void unstore_files(struct blkdev *bd);
const char *resume_files(struct blkdev *bd);

#endif
