/*
 * The store: what noxsd has acknowledged, so that a restarted worker can
 * rebuild its registry.
 *
 * Two files in the state directory, both sequences of records
 *     uint32_t length (of the payload), uint32_t crc32 (of the payload),
 *     payload (struct store_rec)
 * state.snap (written whole to a temporary name, fsync()ed, then
 * rename()d into place) and state.log (append-only, one write per record,
 * no fsync: the state directory is on tmpfs, and it only has to outlive
 * the process, not the host).
 *
 * Each file begins with an EPOCH record. Compaction writes a snapshot of
 * epoch N+1 and an empty log of epoch N+1 to temporary names, renames the
 * snapshot, then the log. A crash between the two renames leaves a log of
 * epoch N beside a snapshot of N+1: that log is already contained in the
 * snapshot and is ignored on load, so every state the files can be left in
 * replays to exactly the acknowledged state.
 *
 * What a crash can leave is therefore narrow: a log whose last record is
 * cut short (a write torn by kill -9), which is truncated on load, and a
 * stale log of the previous epoch. Anything else is damage: a snapshot
 * that is not whole (it is never renamed in before it is), a log record
 * of full length that fails its CRC, a record whose fields are out of
 * range or that cannot be applied, a log of another epoch, a snapshot or
 * log that is missing while the other says it should be there. A damaged
 * store is reported (store_damage()) and left exactly as found: nothing is
 * truncated, appended or compacted until the caller decides what to do
 * (store_reset()). A wrong replay would be worse than none: the worker
 * reconciles the keeper's live device pages against it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "noxsd.h"

#define STORE_LOG "state.log"
#define STORE_SNAP "state.snap"
#define STORE_TMP_SUFFIX ".tmp"

struct store_disk {
    uint32_t length;
    uint32_t crc;
    struct store_rec rec;
};

struct store {
    char dir[PATH_MAX - 64]; /* room for the file names */
    int log_fd;              /* -1 while damaged */
    int snap_tmp_fd;
    int is_new;
    int broken; /* -errno: the log could not be restarted; appends fail */
    uint64_t epoch;
    uint64_t log_bytes;
    uint64_t replayed;
    char damage[512]; /* empty: the store replayed cleanly */
};

static uint32_t crc_table[256];

static void crc_init(void)
{
    uint32_t i, j, c;

    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t store_crc32(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = 0xffffffffu;

    if (crc_table[1] == 0)
        crc_init();
    while (n--)
        c = crc_table[(c ^ *b++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void path_of(const struct store *s, const char *name,
                    const char *suffix, char *out, size_t len)
{
    snprintf(out, len, "%s/%s%s", s->dir, name, suffix);
}

static void set_damage(struct store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_damage(struct store *s, const char *fmt, ...)
{
    va_list ap;

    if (s->damage[0] != '\0')
        return; /* the first defect found is the one to report */
    va_start(ap, fmt);
    vsnprintf(s->damage, sizeof(s->damage), fmt, ap);
    va_end(ap);
}

static void encode(struct store_disk *d, const struct store_rec *rec)
{
    d->length = sizeof(d->rec);
    d->rec = *rec;
    d->crc = store_crc32(&d->rec, sizeof(d->rec));
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    ssize_t n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_rec(int fd, const struct store_rec *rec)
{
    struct store_disk d;

    encode(&d, rec);
    return write_all(fd, &d, sizeof(d));
}

static int sync_dir(const struct store *s)
{
    int fd, rc = 0;

    if ((fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    if (fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static const char *op_name(uint16_t op)
{
    switch (op) {
    case STORE_EPOCH:
        return "EPOCH";
    case STORE_DOMAIN_ADD:
        return "DOMAIN_ADD";
    case STORE_DOMAIN_DEL:
        return "DOMAIN_DEL";
    case STORE_DEV_ADD:
        return "DEV_ADD";
    case STORE_DEV_DEL:
        return "DEV_DEL";
    }
    return "unknown";
}

/*
 * Check a record's fields the way the protocol decoder checks a message's:
 * every id and reference in range, every field the op does not use zero.
 * NULL if valid, else what is wrong (written to why).
 */
static const char *check_rec(const struct store_rec *r, char *why,
                             size_t len)
{
    int dev = r->op == STORE_DEV_ADD || r->op == STORE_DEV_DEL;

    switch (r->op) {
    case STORE_EPOCH:
        if (r->domid || r->owner_domid || r->type || r->devid ||
            r->backend_domid || r->flags || r->gref || r->port ||
            r->reserved)
            snprintf(why, len, "an EPOCH record with fields set");
        else
            return NULL;
        return why;
    case STORE_DOMAIN_ADD:
    case STORE_DOMAIN_DEL:
    case STORE_DEV_ADD:
    case STORE_DEV_DEL:
        break;
    default:
        snprintf(why, len, "unknown op %u", r->op);
        return why;
    }
    if (r->domid > NOXS_DOMID_MAX)
        snprintf(why, len, "domain id %u out of range", r->domid);
    else if (r->flags || r->reserved || r->epoch)
        snprintf(why, len, "%s of domain %u with unused fields set",
                 op_name(r->op), r->domid);
    else if (r->op == STORE_DOMAIN_DEL &&
             (r->owner_domid || r->type || r->devid || r->backend_domid ||
              r->gref || r->port))
        snprintf(why, len, "DOMAIN_DEL of domain %u with fields set",
                 r->domid);
    else if (r->op == STORE_DOMAIN_ADD &&
             (r->type || r->devid || r->backend_domid))
        snprintf(why, len, "DOMAIN_ADD of domain %u with device fields set",
                 r->domid);
    else if (r->op == STORE_DOMAIN_ADD && r->owner_domid > NOXS_DOMID_MAX)
        snprintf(why, len, "DOMAIN_ADD of domain %u: owner %u out of range",
                 r->domid, r->owner_domid);
    else if (dev && r->owner_domid)
        snprintf(why, len, "%s of domain %u with an owner set",
                 op_name(r->op), r->domid);
    else if (dev && (r->type < 1 || r->type > NOXS_DEV_TYPE_MAX))
        snprintf(why, len, "%s of domain %u: unknown device type %u",
                 op_name(r->op), r->domid, r->type);
    else if (dev && r->backend_domid > NOXS_DOMID_MAX)
        snprintf(why, len, "%s of domain %u: backend domain %u out of range",
                 op_name(r->op), r->domid, r->backend_domid);
    else if (r->op != STORE_DOMAIN_DEL && r->gref < NOXS_GREF_MIN)
        snprintf(why, len, "%s of domain %u: grant reference %u out of range",
                 op_name(r->op), r->domid, r->gref);
    else if (r->op != STORE_DOMAIN_DEL &&
             (r->port == 0 || r->port > NOXS_PORT_MAX))
        snprintf(why, len, "%s of domain %u: port %u out of range",
                 op_name(r->op), r->domid, r->port);
    else
        return NULL;
    return why;
}

enum replay_end {
    R_END,     /* every record read */
    R_TORN,    /* a short record at the end: a write cut by a crash */
    R_DAMAGED, /* anything else that stopped the replay (in why) */
};

struct replay {
    off_t good;     /* offset just past the last record accepted */
    int have_epoch; /* the first record was an EPOCH */
    uint64_t epoch;
    uint64_t records; /* accepted, the EPOCH included */
    enum replay_end end;
    char why[256];
};

/*
 * Read the records of fd; the first must be an EPOCH, the rest go to
 * apply (unless apply is NULL). Stops at the end, at a short last record
 * (R_TORN) or at the first defect (R_DAMAGED). -errno if apply failed for
 * a reason that is not the record's (out of memory).
 */
static int replay(int fd, store_apply_fn *apply, void *arg,
                  uint64_t *count, struct replay *rp)
{
    struct store_disk d;
    char why[160];
    ssize_t n;
    int rc;

    memset(rp, 0, sizeof(*rp));
    for (;;) {
        n = pread(fd, &d, sizeof(d), rp->good);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            break;
        if (n < 0) {
            snprintf(rp->why, sizeof(rp->why), "cannot read at byte %lld: %s",
                     (long long)rp->good, strerror(errno));
            rp->end = R_DAMAGED;
            break;
        }
        if (n != (ssize_t)sizeof(d)) {
            /* A short read of a regular file: this is its end. */
            rp->end = R_TORN;
            snprintf(rp->why, sizeof(rp->why),
                     "record %llu at byte %lld is cut short (%zd of %zu "
                     "bytes)",
                     (unsigned long long)rp->records + 1,
                     (long long)rp->good, n, sizeof(d));
            break;
        }
        if (d.length != sizeof(d.rec) ||
            d.crc != store_crc32(&d.rec, sizeof(d.rec))) {
            snprintf(rp->why, sizeof(rp->why),
                     "record %llu at byte %lld has a bad %s",
                     (unsigned long long)rp->records + 1,
                     (long long)rp->good,
                     d.length != sizeof(d.rec) ? "length" : "CRC");
            rp->end = R_DAMAGED;
            break;
        }
        if (!rp->have_epoch != (d.rec.op == STORE_EPOCH) ||
            check_rec(&d.rec, why, sizeof(why)) != NULL) {
            if (!rp->have_epoch && d.rec.op != STORE_EPOCH)
                snprintf(why, sizeof(why), "no EPOCH record first");
            else if (rp->have_epoch && d.rec.op == STORE_EPOCH)
                snprintf(why, sizeof(why), "a second EPOCH record");
            snprintf(rp->why, sizeof(rp->why), "record %llu at byte %lld: %s",
                     (unsigned long long)rp->records + 1,
                     (long long)rp->good, why);
            rp->end = R_DAMAGED;
            break;
        }
        if (!rp->have_epoch) {
            rp->epoch = d.rec.epoch;
            rp->have_epoch = 1;
        } else if (apply) {
            if ((rc = apply(&d.rec, arg)) < 0) {
                if (rc == -ENOMEM)
                    return rc;
                snprintf(rp->why, sizeof(rp->why),
                         "record %llu at byte %lld (%s of domain %u) cannot "
                         "be applied: %s",
                         (unsigned long long)rp->records + 1,
                         (long long)rp->good, op_name(d.rec.op),
                         d.rec.domid, strerror(-rc));
                rp->end = R_DAMAGED;
                break;
            }
            (*count)++;
        }
        rp->records++;
        rp->good += (off_t)sizeof(d);
    }
    return 0;
}

/* A new file at path holding only an EPOCH record; the fd, or -errno. */
static int new_file(const char *path, uint64_t epoch)
{
    struct store_rec e = {.op = STORE_EPOCH, .epoch = epoch};
    int fd, rc;

    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if ((rc = write_rec(fd, &e)) < 0) {
        close(fd);
        unlink(path);
        return rc;
    }
    return fd;
}

/*
 * Put a new, empty log of s->epoch in place (built under a temporary name
 * and renamed, so that the log is never seen empty or half-written) and
 * make it the one appended to.
 */
static int fresh_log(struct store *s)
{
    char log[PATH_MAX], tmp[PATH_MAX];
    int fd, rc;

    path_of(s, STORE_LOG, "", log, sizeof(log));
    path_of(s, STORE_LOG, STORE_TMP_SUFFIX, tmp, sizeof(tmp));
    if ((fd = new_file(tmp, s->epoch)) < 0)
        return fd;
    if (fsync(fd) < 0 || rename(tmp, log) < 0) {
        rc = -errno;
        close(fd);
        unlink(tmp);
        return rc;
    }
    if ((rc = sync_dir(s)) < 0) {
        close(fd);
        return rc;
    }
    if (s->log_fd >= 0)
        close(s->log_fd);
    s->log_fd = fd;
    s->log_bytes = sizeof(struct store_disk);
    s->broken = 0;
    return 0;
}

/* Open name for reading: the fd, -ENOENT, or -1 with the damage noted. */
static int open_file(struct store *s, const char *path, const char *name,
                     int flags)
{
    struct stat st;
    int fd;

    if ((fd = open(path, flags | O_CLOEXEC)) < 0) {
        if (errno == ENOENT)
            return -ENOENT;
        set_damage(s, "%s: cannot open: %s", name, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        set_damage(s, "%s: not a regular file", name);
        close(fd);
        return -1;
    }
    return fd;
}

struct store *store_open(const char *dir, store_apply_fn *apply, void *arg)
{
    struct store *s;
    char snap[PATH_MAX], log[PATH_MAX];
    struct replay rp;
    int have_snap = 0, fd, rc;

    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->log_fd = s->snap_tmp_fd = -1;
    if (strlen(dir) >= sizeof(s->dir)) {
        free(s);
        errno = ENAMETOOLONG;
        return NULL;
    }
    memcpy(s->dir, dir, strlen(dir) + 1);
    path_of(s, STORE_SNAP, "", snap, sizeof(snap));
    path_of(s, STORE_LOG, "", log, sizeof(log));

    /* The snapshot: renamed in only once whole, so any defect is damage. */
    fd = open_file(s, snap, STORE_SNAP, O_RDONLY);
    if (fd == -1)
        return s;
    if (fd >= 0) {
        rc = replay(fd, apply, arg, &s->replayed, &rp);
        close(fd);
        if (rc < 0)
            goto fail;
        if (rp.end != R_END) {
            set_damage(s, "%s: %s", STORE_SNAP, rp.why);
            return s;
        }
        if (!rp.have_epoch) {
            set_damage(s, "%s: empty", STORE_SNAP);
            return s;
        }
        have_snap = 1;
        s->epoch = rp.epoch;
    }

    fd = open_file(s, log, STORE_LOG, O_RDWR);
    if (fd == -1)
        return s;
    if (fd == -ENOENT) {
        if (have_snap) {
            set_damage(s, "%s is missing beside %s of epoch %llu", STORE_LOG,
                       STORE_SNAP, (unsigned long long)s->epoch);
            return s;
        }
        s->is_new = 1; /* store_reset() creates it */
        return s;
    }
    /* Peek at the epoch first: a stale log must not be applied. */
    if ((rc = replay(fd, NULL, NULL, NULL, &rp)) < 0) {
        close(fd);
        goto fail;
    }
    if (!rp.have_epoch) {
        close(fd);
        if (rp.end != R_DAMAGED && !have_snap) {
            /* Empty (or its EPOCH cut short), no snapshot: nothing was
             * ever stored. */
            s->is_new = 1;
            return s;
        }
        set_damage(s, "%s: %s", STORE_LOG,
                   rp.end == R_END ? "empty" : rp.why);
        return s;
    }
    if (have_snap && rp.epoch + 1 == s->epoch) {
        /* A crash between compaction's renames: contained in the snapshot. */
        close(fd);
        log_info("store: %s is from epoch %llu, %s is %llu; it is contained "
                 "in the snapshot, starting a new log",
                 log, (unsigned long long)rp.epoch, snap,
                 (unsigned long long)s->epoch);
        if ((rc = fresh_log(s)) < 0)
            goto fail;
        return s;
    }
    if (rp.epoch != s->epoch) {
        close(fd);
        if (have_snap)
            set_damage(s, "%s is from epoch %llu but %s is of epoch %llu",
                       STORE_LOG, (unsigned long long)rp.epoch, STORE_SNAP,
                       (unsigned long long)s->epoch);
        else
            set_damage(s, "%s is from epoch %llu but there is no %s (a log "
                          "after epoch 0 follows a snapshot)",
                       STORE_LOG, (unsigned long long)rp.epoch, STORE_SNAP);
        return s;
    }
    if ((rc = replay(fd, apply, arg, &s->replayed, &rp)) < 0) {
        close(fd);
        goto fail;
    }
    if (rp.end == R_DAMAGED) {
        close(fd);
        set_damage(s, "%s: %s", STORE_LOG, rp.why);
        return s;
    }
    if (rp.end == R_TORN) {
        /* The one thing a crash leaves: cut it off. */
        log_warnx("store: %s: %s; truncating it there", log, rp.why);
        if (ftruncate(fd, rp.good) < 0) {
            rc = -errno;
            close(fd);
            goto fail;
        }
    }
    s->log_fd = fd;
    s->log_bytes = (uint64_t)rp.good;
    return s;

fail:
    store_close(s);
    errno = -rc;
    return NULL;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    store_compact_abort(s);
    if (s->log_fd >= 0)
        close(s->log_fd);
    free(s);
}

const char *store_damage(const struct store *s)
{
    return s->damage[0] != '\0' ? s->damage : NULL;
}

int store_is_new(const struct store *s)
{
    return s->is_new;
}

/* Rename path (if there) to path.damaged-TIME; the new name in out. */
static int set_aside(const char *path, time_t now, char *out, size_t len)
{
    struct stat st;
    struct tm tm;
    char stamp[32];

    out[0] = '\0';
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out, len, "%s.damaged-%s", path, stamp);
    if (rename(path, out) < 0)
        return -errno;
    return 0;
}

int store_reset(struct store *s)
{
    char path[PATH_MAX], aside[PATH_MAX];
    time_t now = time(NULL);
    int rc;

    store_compact_abort(s);
    if (s->log_fd >= 0) {
        close(s->log_fd);
        s->log_fd = -1;
    }
    if (s->is_new) {
        /* At most an empty log, which holds nothing to keep. */
        path_of(s, STORE_LOG, "", path, sizeof(path));
        unlink(path);
    }
    path_of(s, STORE_SNAP, "", path, sizeof(path));
    if ((rc = set_aside(path, now, aside, sizeof(aside))) < 0)
        return rc;
    if (aside[0])
        log_warnx("store: %s set aside as %s", path, aside);
    path_of(s, STORE_LOG, "", path, sizeof(path));
    if ((rc = set_aside(path, now, aside, sizeof(aside))) < 0)
        return rc;
    if (aside[0])
        log_warnx("store: %s set aside as %s", path, aside);
    path_of(s, STORE_LOG, STORE_TMP_SUFFIX, path, sizeof(path));
    unlink(path);
    s->epoch = 0;
    s->replayed = 0;
    s->damage[0] = '\0';
    s->is_new = 0;
    return fresh_log(s);
}

int store_append(struct store *s, const struct store_rec *rec)
{
    struct store_disk d;
    ssize_t n;

    if (s->log_fd < 0)
        return -EROFS;
    if (s->broken)
        return s->broken;
    encode(&d, rec);
    /*
     * At the end of the last good record, not at the file's end: if a
     * short write could not be cut off below, the next record overwrites
     * it, so a partial record is only ever the last thing in the file.
     */
    do
        n = pwrite(s->log_fd, &d, sizeof(d), (off_t)s->log_bytes);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(d)) {
        s->log_bytes += sizeof(d);
        return 0;
    }
    if (n >= 0) {
        /* Never leave a partial record behind a later good one. */
        if (ftruncate(s->log_fd, (off_t)s->log_bytes) < 0)
            log_warn("store: truncate after a short write");
        return -ENOSPC;
    }
    return -errno;
}

uint64_t store_log_bytes(const struct store *s)
{
    return s->log_bytes;
}

uint64_t store_records_replayed(const struct store *s)
{
    return s->replayed;
}

int store_compact_begin(struct store *s)
{
    char tmp[PATH_MAX];
    int fd;

    if (s->log_fd < 0)
        return -EROFS; /* never over a damaged store */
    store_compact_abort(s);
    path_of(s, STORE_SNAP, STORE_TMP_SUFFIX, tmp, sizeof(tmp));
    if ((fd = new_file(tmp, s->epoch + 1)) < 0)
        return fd;
    s->snap_tmp_fd = fd;
    return 0;
}

int store_compact_put(struct store *s, const struct store_rec *rec)
{
    if (s->snap_tmp_fd < 0)
        return -EBADF;
    return write_rec(s->snap_tmp_fd, rec);
}

/*
 * The old log of epoch N is stale once the snapshot of N+1 is in place:
 * make it a log of N+1 in place. Cut it to its EPOCH record first, so
 * that a crash in between leaves an empty log of epoch N (stale, ignored
 * beside the new snapshot) and never old records under the new epoch.
 */
static int restart_log(struct store *s)
{
    struct store_disk d;
    struct store_rec e = {.op = STORE_EPOCH, .epoch = s->epoch};
    ssize_t n;

    if (ftruncate(s->log_fd, (off_t)sizeof(d)) < 0)
        return -errno;
    encode(&d, &e);
    if ((n = pwrite(s->log_fd, &d, sizeof(d), 0)) < 0)
        return -errno;
    if (n != (ssize_t)sizeof(d))
        return -EIO;
    s->log_bytes = sizeof(d);
    return 0;
}

int store_compact_end(struct store *s)
{
    char snap[PATH_MAX], snap_tmp[PATH_MAX], log[PATH_MAX],
        log_tmp[PATH_MAX];
    int fd, rc;

    if (s->snap_tmp_fd < 0)
        return -EBADF;
    path_of(s, STORE_SNAP, "", snap, sizeof(snap));
    path_of(s, STORE_SNAP, STORE_TMP_SUFFIX, snap_tmp, sizeof(snap_tmp));
    path_of(s, STORE_LOG, "", log, sizeof(log));
    path_of(s, STORE_LOG, STORE_TMP_SUFFIX, log_tmp, sizeof(log_tmp));

    /* Whole on the disk before it has its name (see the top comment). */
    if (fsync(s->snap_tmp_fd) < 0) {
        rc = -errno;
        store_compact_abort(s);
        return rc;
    }
    if ((fd = new_file(log_tmp, s->epoch + 1)) < 0) {
        store_compact_abort(s);
        return fd;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        close(fd);
        unlink(log_tmp);
        store_compact_abort(s);
        return rc;
    }
    close(s->snap_tmp_fd);
    s->snap_tmp_fd = -1;
    if (rename(snap_tmp, snap) < 0) {
        rc = -errno;
        close(fd);
        unlink(log_tmp);
        unlink(snap_tmp);
        return rc;
    }
    /* From here the new snapshot is authoritative: see the top comment. */
    s->epoch++;
    if (rename(log_tmp, log) < 0) {
        rc = -errno;
        close(fd);
        unlink(log_tmp);
        if ((s->broken = restart_log(s)) < 0)
            log_warnx("store: cannot restart %s: %s; refusing changes until "
                      "a restart",
                      log, strerror(-s->broken));
        sync_dir(s);
        return rc;
    }
    if ((rc = sync_dir(s)) < 0)
        log_warnx("store: fsync of %s: %s", s->dir, strerror(-rc));
    close(s->log_fd);
    s->log_fd = fd;
    s->log_bytes = sizeof(struct store_disk);
    return 0;
}

void store_compact_abort(struct store *s)
{
    char tmp[PATH_MAX];

    if (s->snap_tmp_fd < 0)
        return;
    close(s->snap_tmp_fd);
    s->snap_tmp_fd = -1;
    path_of(s, STORE_SNAP, STORE_TMP_SUFFIX, tmp, sizeof(tmp));
    unlink(tmp);
}
