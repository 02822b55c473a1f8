/*
 * The store: what noxsd has acknowledged, so that a restarted worker can
 * rebuild its registry.
 *
 * Two files in the state directory, both sequences of records
 *     uint32_t length (of the payload), uint32_t crc32 (of the payload),
 *     payload (struct store_rec)
 * state.snap (written whole, then rename()d into place) and state.log
 * (append-only, one write() per record, no fsync: the state directory is on
 * tmpfs, and it only has to outlive the process, not the host).
 *
 * Each file begins with an EPOCH record. Compaction writes a snapshot of
 * epoch N+1 and an empty log of epoch N+1 to temporary names, renames the
 * snapshot, then the log. A crash between the two renames leaves a log of
 * epoch N beside a snapshot of N+1: that log is already contained in the
 * snapshot and is ignored on load, so every state the files can be left in
 * replays to exactly the acknowledged state.
 *
 * Loading stops at the first record whose length or CRC is wrong (a write
 * torn by a crash can only be the last one) and truncates the log there.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    char dir[PATH_MAX - 32]; /* room for the file names */
    int log_fd;
    int snap_tmp_fd;
    uint64_t epoch;
    uint64_t log_bytes;
    uint64_t replayed;
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

/*
 * Read records from fd. The first must be an EPOCH (returned in *epoch);
 * the rest go to apply (unless apply is NULL). Returns the offset just
 * past the last good record, or -errno if apply failed.
 */
static off_t replay(int fd, uint64_t *epoch, int *have_epoch,
                    store_apply_fn *apply, void *arg, uint64_t *count,
                    int *torn)
{
    struct store_disk d;
    off_t good = 0;
    ssize_t n;
    int rc;

    *have_epoch = 0;
    *torn = 0;
    for (;;) {
        n = pread(fd, &d, sizeof(d), good);
        if (n == 0)
            break;
        if (n != (ssize_t)sizeof(d) || d.length != sizeof(d.rec) ||
            d.crc != store_crc32(&d.rec, sizeof(d.rec))) {
            *torn = 1;
            break;
        }
        if (!*have_epoch) {
            if (d.rec.op != STORE_EPOCH) {
                *torn = 1;
                break;
            }
            *epoch = d.rec.epoch;
            *have_epoch = 1;
        } else if (apply) {
            if ((rc = apply(&d.rec, arg)) < 0)
                return rc;
            (*count)++;
        }
        good += (off_t)sizeof(d);
    }
    return good;
}

static int new_file(const char *path, uint64_t epoch)
{
    struct store_rec e = {.op = STORE_EPOCH, .epoch = epoch};
    int fd, rc;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if ((rc = write_rec(fd, &e)) < 0) {
        close(fd);
        unlink(path);
        return rc;
    }
    return fd;
}

struct store *store_open(const char *dir, store_apply_fn *apply, void *arg)
{
    struct store *s;
    char snap[PATH_MAX], log[PATH_MAX];
    uint64_t snap_epoch = 0, log_epoch = 0;
    int snap_have = 0, log_have = 0, torn = 0, fd, rc;
    off_t good;

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

    if ((fd = open(snap, O_RDONLY | O_CLOEXEC)) >= 0) {
        good = replay(fd, &snap_epoch, &snap_have, apply, arg, &s->replayed,
                      &torn);
        close(fd);
        if (good < 0) {
            rc = (int)good;
            goto fail;
        }
        if (!snap_have) {
            /* A snapshot is renamed in only once complete. */
            log_warnx("store: %s has no epoch record; ignoring it", snap);
        } else if (torn) {
            log_warnx("store: %s is corrupt after %lld bytes; keeping what "
                      "precedes",
                      snap, (long long)good);
        }
    } else if (errno != ENOENT) {
        rc = -errno;
        goto fail;
    }
    s->epoch = snap_have ? snap_epoch : 0;

    fd = open(log, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        rc = -errno;
        goto fail;
    }
    if (fd >= 0) {
        /* Peek at the epoch first: a stale log must not be applied. */
        good = replay(fd, &log_epoch, &log_have, NULL, NULL, &s->replayed,
                      &torn);
        if (log_have && log_epoch == s->epoch) {
            good = replay(fd, &log_epoch, &log_have, apply, arg,
                          &s->replayed, &torn);
            if (good < 0) {
                rc = (int)good;
                close(fd);
                goto fail;
            }
            if (torn) {
                log_warnx("store: %s has a torn tail at %lld bytes; "
                          "truncating",
                          log, (long long)good);
                if (ftruncate(fd, good) < 0) {
                    rc = -errno;
                    close(fd);
                    goto fail;
                }
            }
            s->log_bytes = (uint64_t)good;
        } else {
            if (log_have)
                log_info("store: %s is from epoch %llu, snapshot is %llu; "
                         "discarding it",
                         log, (unsigned long long)log_epoch,
                         (unsigned long long)s->epoch);
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        if ((fd = new_file(log, s->epoch)) < 0) {
            rc = fd;
            goto fail;
        }
        s->log_bytes = sizeof(struct store_disk);
    }
    s->log_fd = fd;
    if (lseek(fd, 0, SEEK_END) < 0) {
        rc = -errno;
        goto fail;
    }
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

int store_append(struct store *s, const struct store_rec *rec)
{
    struct store_disk d;
    ssize_t n;

    encode(&d, rec);
    n = write(s->log_fd, &d, sizeof(d));
    if (n == (ssize_t)sizeof(d)) {
        s->log_bytes += sizeof(d);
        return 0;
    }
    /* Never leave a partial record behind a later good one. */
    if (n >= 0) {
        if (ftruncate(s->log_fd, (off_t)s->log_bytes) == 0)
            lseek(s->log_fd, 0, SEEK_END);
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

    if ((fd = new_file(log_tmp, s->epoch + 1)) < 0) {
        store_compact_abort(s);
        return fd;
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
        struct store_rec e = {.op = STORE_EPOCH, .epoch = s->epoch};

        rc = -errno;
        close(fd);
        unlink(log_tmp);
        /* The old log is stale now: restart it in place, new epoch. */
        if (ftruncate(s->log_fd, 0) < 0 || lseek(s->log_fd, 0, SEEK_SET) < 0 ||
            write_rec(s->log_fd, &e) < 0)
            log_warn("store: cannot restart %s", log);
        s->log_bytes = sizeof(struct store_disk);
        return rc;
    }
    close(s->log_fd);
    s->log_fd = fd;
    lseek(fd, 0, SEEK_END);
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
