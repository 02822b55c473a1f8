/*
 * noxs-blk-back: the backend of the blk device, serving block devices
 * from files (or block devices) to every guest from one process.
 *
 * This file is the control (main thread); blkback.h says where the rest
 * is. libnoxs hands us one noxs_dev per device that
 * noxsd brokers; create() opens the file named by the toolstack's
 * parameters (path=, mode=r|w, sector-size=512|4096, optional sectors=)
 * and publishes the xenbus-style keys blkfront reads (sectors,
 * sector-size, info, feature-flush-cache, feature-discard, ...). libnoxs
 * walks the device's states and watches the frontend's liveness page
 * (noxs.h, docs/DRIVERS.md): a session is the ring, mapped by blk_connect
 * when the frontend is Initialised (ring-ref or ring-ref0..N-1,
 * ring-page-order, event-channel, protocol) and dropped by blk_disconnect,
 * which stops the ring thread after it has answered what it took.
 *
 * Data (a ring thread per connected device). The thread owns the
 * device's ring, its port and its data-page mappings; it copies
 * each request out of the shared ring, validates the copy (blkreq.c),
 * maps its pages, does the I/O (small reads batched through io_uring,
 * preadv/pwritev/fdatasync/fallocate otherwise; contiguous requests
 * merged into one call, big jobs shared with the device's I/O worker
 * threads, see io.c) and answers with a per-request status. Why threads
 * per device: a frontend that floods its ring, or asks for a slow fsync,
 * then only delays itself; other devices are served by their own.
 * An idle device gives its thread up and the next event of its port
 * starts another; the process shares one grant and one event-channel
 * handle between all devices (events.c, "Resources per device" in
 * docs/DRIVERS.md).
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
 * between connected devices; see gcache.c.
 *
 * Our own restarts: under a service manager's fd store a restart (kill -9
 * in the middle of I/O included) keeps every disk Connected and loses no
 * request; each disk stores its image and a memfd with its ring state and
 * a copy of every request not yet answered to the frontend, which the
 * next instance redoes. See "our own restarts" in blkback.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
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
#include <unistd.h>

#include <noxs/noxs.h>

#include "blkback.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/parse.h"

struct blkback_conf conf = {
    .max_grants = DEFAULT_MAX_GRANTS,
    .io_threads = DEFAULT_IO_THREADS,
    .use_uring = true,
    .wake_fd = -1,
};

static void disconnect(struct blkdev *bd)
{
    if (!bd->connected)
        return;
    ring_stop(bd);
    log_info("domain %u blk %u: disconnected (%" PRIu64 " requests, %" PRIu64
             " errors, %" PRIu64 " grant maps, %" PRIu64 " evictions)",
             bd->fe_domid, bd->devid, bd->nr_requests, bd->nr_errors,
             bd->nr_maps, bd->nr_evictions);
    ioq_free(bd->ioq);
    bd->ioq = NULL;
    gcache_clear(bd);
    free(bd->slot_free);
    free(bd->slot_ans);
    bd->slot_free = bd->slot_ans = NULL;
    /* We let go of this ring: no next instance takes it over. (The
     * library tells the frontend, on the liveness page.) */
    if (conf.resumable && !conf.leaving)
        st_store(&bd->st->active, 0u);
    if (bd->sring != NULL)
        xengnttab_unmap(bd->xgt, bd->sring, bd->ring_pages);
    bd->sring = NULL;
    events_unbind(bd);
    bd->connected = false;
}

/*
 * The ring the frontend offers (its keys) into bd->st: a new session, or
 * (resume) the one bd->st holds, which the frontend must still offer.
 */
static int ring_keys(struct blkdev *bd, const char **why, bool resume)
{
    noxs_dev *d = bd->dev;
    struct blkst *st = bd->st;
    uint32_t order = 0, port, refs[1u << NOXS_BLK_MAX_RING_ORDER];
    char flag[16];

    if (noxs_dev_peer_u32(d, "ring-page-order", 0, NOXS_BLK_MAX_RING_ORDER,
                          &order) < 0 &&
        errno != ENOENT) {
        *why = "bad ring-page-order";
        return -1;
    }
    bd->ring_pages = 1u << order;
    if (order == 0) {
        if (noxs_dev_peer_gref(d, "ring-ref", &refs[0]) < 0) {
            *why = "missing or bad ring-ref";
            return -1;
        }
    } else {
        for (unsigned int i = 0; i < bd->ring_pages; i++) {
            char key[24];

            snprintf(key, sizeof(key), "ring-ref%u", i);
            if (noxs_dev_peer_gref(d, key, &refs[i]) < 0) {
                *why = "missing or bad ring-refN";
                return -1;
            }
        }
    }
    if (noxs_dev_peer_port(d, "event-channel", &port) < 0) {
        *why = "missing or bad event-channel";
        return -1;
    }
    /* One ring layout (blkif.h) whatever the guest's word size: the
     * 64-bit name, or none, which means the same. */
    if (noxs_dev_peer_kv(d, "protocol", flag, sizeof(flag)) < 0
            ? errno != ENOENT
            : strcmp(flag, "x86_64-abi") != 0) {
        *why = "unsupported protocol";
        return -1;
    }
    bd->persistent = noxs_dev_peer_kv(d, "feature-persistent", flag,
                                      sizeof(flag)) >= 0 &&
                     strcmp(flag, "1") == 0;
    if (resume) {
        bool same = st_load(&st->active) == 1 && st->order == order &&
                    st->port == port && st->persistent == (uint32_t)bd->persistent;

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
        st->persistent = bd->persistent;
        memcpy(st->refs, refs, bd->ring_pages * sizeof(refs[0]));
    }
    return 0;
}

/*
 * Map the frontend's ring, bind its port, start the ring thread.
 * resume: the ring the last instance served (bd->st says where it
 * stopped); the frontend must still offer that same ring.
 */
static int connect_ring(struct blkdev *bd, const char **why, bool resume)
{
    struct blkst *st = bd->st;
    uint32_t order, port, *refs = st->refs;

    if (ring_keys(bd, why, resume) < 0)
        return -1;
    order = st->order;
    port = st->port;

    /* The process's handles: no file descriptor of the device's own
     * (the cached pages are bounded by --max-grants, see gcache.c). */
    bd->xgt = conf.xgt;
    bd->connected = true; /* so that disconnect() releases what we got */
    if (gcache_init(bd) < 0) {
        *why = "out of resources";
        return -1;
    }
    bd->sring = xengnttab_map_domain_grant_refs(bd->xgt, bd->ring_pages,
                                                bd->fe_domid, refs,
                                                PROT_READ | PROT_WRITE);
    if (bd->sring == NULL) {
        *why = "cannot map the ring";
        return -1;
    }
    atomic_store(&bd->masked, false);
    if (events_bind(bd, port) < 0) {
        *why = "cannot bind the event channel";
        return -1;
    }
    bd->ring_size = noxs_blk_ring_size(order);
    bd->ioq = ioq_new(bd->ring_size, put_response);
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
    if (ring_start(bd) < 0) {
        *why = "cannot start the ring thread";
        return -1;
    }
    log_info("domain %u blk %u: %s, %u-page ring (%u slots), port %u%s",
             bd->fe_domid, bd->devid, resume ? "resumed" : "connected",
             bd->ring_pages, bd->ring_size, bd->port,
             bd->persistent ? ", persistent grants" : "");
    return 0;
}

/* Closing with "error" = why, for a device we cannot serve. */
static void close_with_error(noxs_dev *d, const char *why)
{
    noxs_dev_set_kv(d, "error", why);
    /* Closing already: the switch would publish nothing. */
    if (noxs_dev_state(d) == NOXS_STATE_CLOSING)
        noxs_dev_publish(d);
    noxs_dev_switch_state(d, NOXS_STATE_CLOSING);
}

/* The ring thread gave up on the ring: end the session ourselves. The
 * library's walk goes on from Closing when the frontend follows. */
static void fail_device(struct blkdev *bd, const char *why)
{
    log_warnx("domain %u blk %u: %s", bd->fe_domid, bd->devid, why);
    disconnect(bd);
    close_with_error(bd->dev, why);
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
static bool identity(struct blkdev *bd)
{
    struct stat st;

    if (!bd->id_known && bd->fd >= 0 && fstat(bd->fd, &st) == 0) {
        bd->id_blk = S_ISBLK(st.st_mode);
        bd->id_dev = bd->id_blk ? st.st_rdev : st.st_dev;
        bd->id_ino = bd->id_blk ? 0 : st.st_ino;
        bd->id_known = true;
    }
    return bd->id_known;
}

static struct blkdev *sharing(struct blkdev *bd)
{
    if (!identity(bd))
        return NULL;
    for (struct blkdev *o = conf.devices; o != NULL; o = o->next) {
        if (o == bd || o->fe_domid == bd->fe_domid || !identity(o) ||
            o->id_blk != bd->id_blk || o->id_dev != bd->id_dev ||
            o->id_ino != bd->id_ino)
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
                                  "mode, sector-size, sectors)",
                      unknown);
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
                                  "sectors)",
                      sectors);

    bd->fd = open(path, (bd->geom.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (bd->fd < 0) {
        int err = errno;

        return refuse(bd, err, "path=%s: %s", path, strerror(err));
    }
    if (fstat(bd->fd, &st) < 0)
        return -errno;
    if ((other = sharing(bd)) != NULL)
        return refuse(bd, EBUSY, "%s is attached %s as domain %u blk %u; "
                                 "two domains never share a file when either may "
                                 "write it",
                      path,
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
                                  "device; give sectors=",
                      path);
    }
    if (sectors != NULL) {
        /*
         * A disk larger than its file would fail every I/O past the end.
         * (A file that says it is empty, as /proc's do, takes sectors=
         * at its word.)
         */
        if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && bytes > 0 &&
            v > bytes >> NOXS_BLK_SECTOR_SHIFT)
            return refuse(bd, EINVAL, "sectors=%s is more than the %" PRIu64 " sectors of %s", sectors,
                          bytes >> NOXS_BLK_SECTOR_SHIFT, path);
        bytes = v << NOXS_BLK_SECTOR_SHIFT;
    }
    bytes -= bytes % bd->geom.sector_size;
    bd->geom.sectors = bytes >> NOXS_BLK_SECTOR_SHIFT;
    bd->path = strdup(path);
    if (bd->path == NULL)
        return -ENOMEM;
    return 0;
}

static void free_blkdev(struct blkdev *bd)
{
    struct blkdev **pp;

    disconnect(bd);
    if (!conf.leaving)
        unstore_files(bd);
    for (pp = &conf.devices; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == bd) {
            *pp = bd->next;
            break;
        }
    }
    if (bd->fd >= 0)
        close(bd->fd);
    st_free(bd);
    if (bd->st_fd >= 0)
        close(bd->st_fd);
    free(bd->path);
    pthread_cond_destroy(&bd->rt_ended);
    pthread_mutex_destroy(&bd->rt_lock);
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
    pthread_mutex_init(&bd->rt_lock, NULL);
    pthread_cond_init(&bd->rt_ended, NULL);
    bd->fe_domid = noxs_dev_frontend_domid(d);
    bd->devid = noxs_dev_id(d);
    bd->next = conf.devices;
    conf.devices = bd;
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

/*
 * The frontend is ready, or we restarted while it was Connected: then
 * its ring goes on where the last instance left it (bd->st).
 */
static int blk_connect(noxs_backend *b, noxs_dev *d, const char **why,
                       void *arg)
{
    struct blkdev *bd = noxs_dev_user(d);
    bool resume = noxs_dev_state(d) == NOXS_STATE_CONNECTED;

    if (bd == NULL) {
        *why = "the backend lost the device";
        return -ENODEV;
    }
    if (connect_ring(bd, why, resume) < 0) {
        disconnect(bd);
        return -EPROTO;
    }
    return 0;
}

static void blk_disconnect(noxs_backend *b, noxs_dev *d, int why, void *arg)
{
    struct blkdev *bd = noxs_dev_user(d);

    if (bd == NULL)
        return;
    if (why == ECONNRESET)
        log_info("domain %u blk %u: frontend gone", bd->fe_domid, bd->devid);
    disconnect(bd);
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

/*
 * A device libnoxs resumed from the fd store: its image and settings
 * come back from its own stored files; the library then calls
 * blk_connect for a Connected one, whose ring goes on.
 */
static void blk_resume(noxs_backend *b, noxs_dev *d, void *arg)
{
    const char *why;
    struct blkdev *bd;
    char name[64];

    /* Only a store brings devices back, and it keeps them across our
     * restarts. */
    conf.resumable = true;
    if (noxs_dev_user(d) != NULL || (bd = blkdev_new(d)) == NULL)
        return;
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
        close_with_error(d, "the backend lost the device");
        return;
    }
    noxs_dev_set_user(d, bd);
    log_info("domain %u blk %u: resumed (%s), %s", bd->fe_domid, bd->devid,
             noxs_state_name(noxs_dev_state(d)), bd->path);
}

static const struct noxs_backend_ops ops = {
    .create = blk_create,
    .control = blk_control,
    .remove = blk_remove,
    .connect = blk_connect,
    .disconnect = blk_disconnect,
    .resume = blk_resume,
};

/* Ring threads that gave up on a hostile ring. */
static void reap_broken(void)
{
    uint64_t v;

    if (read(conf.wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warnx("wake: %s", strerror(errno));
    for (struct blkdev *bd = conf.devices; bd != NULL; bd = bd->next)
        if (bd->connected && atomic_load(&bd->broken))
            fail_device(bd, "ring protocol violation");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-blk-back [-dv] [--socket PATH] [--max-grants N]\n"
            "                     [--io-threads N] [--no-uring]\n"
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
            "  --no-uring        do the ring thread's reads with preadv, "
            "one system\n"
            "                    call each, instead of batching them "
            "through io_uring\n",
            DEFAULT_MAX_GRANTS, MAX_MAX_GRANTS, DEFAULT_IO_THREADS,
            MAX_WORKERS);
}

/* The main loop, till SIGTERM or SIGINT (sfd) or noxsd goes: 1 then. */
static int serve(int sfd)
{
    int status = 0;

    for (;;) {
        struct pollfd p[3] = {
            {.fd = noxs_backend_fd(conf.backend), .events = POLLIN},
            {.fd = conf.wake_fd, .events = POLLIN},
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
            if (noxs_backend_dispatch(conf.backend, 0) < 0 && errno != EAGAIN &&
                errno != EINTR && errno != ETIMEDOUT) {
                log_warnx("noxsd connection: %s", strerror(errno));
                status = 1;
                break;
            }
        }
    }
    /*
     * With an fd store the devices are the next instance's: their ring
     * threads answer what they took, and nothing closes. Without one,
     * noxs_backend_close() ends every session and removes every device.
     */
    conf.leaving = conf.resumable;
    while (conf.leaving && conf.devices != NULL) {
        struct blkdev *bd = conf.devices;

        noxs_dev_set_user(bd->dev, NULL);
        free_blkdev(bd);
    }
    return status;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"foreground", no_argument, NULL, 'd'},
        {"socket", required_argument, NULL, 's'},
        {"max-grants", required_argument, NULL, 'g'},
        {"io-threads", required_argument, NULL, 't'},
        {"no-uring", no_argument, NULL, 'U'},
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
            conf.max_grants = (unsigned int)opt_u64("max-grants", optarg,
                                                    0, MAX_MAX_GRANTS);
            break;
        case 't':
            conf.io_threads = (unsigned int)opt_u64("io-threads", optarg,
                                                    0, MAX_WORKERS);
            break;
        case 'U': conf.use_uring = false; break;
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
    /*
     * Blocks up to 1 MiB from the heap: above glibc's default threshold
     * (128 KiB) each is a mapping of its own, and a device has several
     * (its state, 136 KiB, which store.c does not clear whole; a big
     * ring's jobs; its grant-cache table once it caches much), which
     * counted against vm.max_map_count per device.
     */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    conf.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || conf.wake_fd < 0)
        fatalx("signalfd/eventfd: %s", strerror(errno));

    take_stored();
    events_start();
    conf.backend = noxs_backend_open_flags(socket_path, types, 1, &ops, NULL,
                                           NOXS_BACKEND_RESUMABLE);
    if (conf.backend == NULL)
        fatal("cannot register with noxsd at %s", socket_path             ? socket_path
                                                  : getenv("NOXS_SOCKET") ? getenv("NOXS_SOCKET")
                                                                          : NOXS_DEFAULT_SOCKET);
    conf.resumable = noxs_backend_restartable(conf.backend) != 0;
    drop_kept();
    log_info("noxs-blk-back %s: serving blk devices", version_string());
    daemon_ready();

    status = serve(sfd);
    noxs_backend_close(conf.backend);
    return status;
}
