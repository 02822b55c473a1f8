/*
 * blk_stress: a guest-side test driver for the blk device, on blkfront.
 *
 *   blk_stress [-d DEVID] random SEED NWRITES SHADOW
 *       fill the device, then NWRITES random writes (random sizes and
 *       offsets, up to 32 in flight, never two overlapping), then read
 *       everything back with 32 reads in flight and compare with a shadow
 *       copy; flush; write the shadow to SHADOW (the test compares it with
 *       the backing file).
 *   blk_stress [-d DEVID] expect OP OFFSET LENGTH RESULT
 *       do one read/write/flush/discard and check its result: OK or an
 *       errno name (ERANGE, EROFS, EINVAL, EIO, EOPNOTSUPP, ENOTCONN...).
 *   blk_stress [-d DEVID] crashwriter SEED
 *       write 64 KiB blocks 0, 1, 2, ... with a pattern, flushing after
 *       each, and print "acked N" after each flush; loops until the end
 *       of the device or an error (exit 3), never hangs.
 *   blk_stress verify-file PATH SEED ACKED
 *       check blocks 0..ACKED of the backing file against the pattern.
 *   blk_stress [-d DEVID] zeros OFFSET LENGTH
 *       check that a range reads back as zeros (after a discard).
 *   blk_stress [-d DEVID] zerocopy SEED SHADOW
 *       the zero-copy API: write the whole device (at most 16 MiB) with
 *       random-sized requests from noxs_blkfront_buf_alloc buffers at
 *       random sector offsets (noxs_blkfront_submit_buf, up to 32 in
 *       flight), read it all back through the copying API and again
 *       through zero-copy buffers (async and read_buf), compare each
 *       byte with a shadow copy, check the EINVAL cases of submit_buf and
 *       buffer re-use after buf_free; write the shadow to SHADOW.
 *   blk_stress [-d DEVID] oldest SEED
 *       write the device (at most 16 MiB) with a pattern, then keep 8
 *       zero-copy reads of 256 KiB in flight (requests big enough for
 *       the backend's worker threads) and wait for the OLDEST each time
 *       before submitting another, with a flush every 32 reads among
 *       them: every answer must come while later requests stay queued
 *       and the frontend submits nothing new; each read is compared
 *       with the pattern.
 *   blk_stress [-d DEVID] many N
 *       connect devices DEVID..DEVID+N-1 of this domain at once, read a
 *       block from each, print "connected N"; on SIGTERM read a block
 *       from each again (every device still served), close them all and
 *       exit 0; exit 3 on an error.
 *   blk_stress [-d DEVID] hold
 *       stay connected, reading a block now and then, until SIGTERM
 *       (close cleanly, exit 0) or an error (exit 3): a guest for the
 *       lifecycle tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blkfront.h"

#define BLOCK (64u * 1024)
#define QD 32u

static noxs_frontend *fe;
static noxs_blkfront *blk;
static struct noxs_blkfront_info info;

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "blk_stress: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static void pattern(uint8_t *p, size_t len, uint64_t seed, uint64_t where)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = mix(seed ^ mix(where + i));

        memcpy(p + i, &v, len - i < 8 ? len - i : 8);
    }
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return mix(rng_state);
}

static void connect_dev(uint32_t devid)
{
    fe = noxs_frontend_open(NULL);
    if (fe == NULL)
        die("frontend: %s", strerror(errno));
    blk = noxs_blkfront_open(fe, devid, 1, 20000);
    if (blk == NULL)
        die("connect: %s", strerror(errno));
    noxs_blkfront_set_timeout(blk, 20000);
    noxs_blkfront_get_info(blk, &info);
}

static void disconnect_dev(void)
{
    if (noxs_blkfront_close(blk) < 0)
        die("close: %s", strerror(errno));
    noxs_frontend_close(fe);
}

/* ---- random write / read-back ---- */

struct job {
    struct noxs_blkfront_io io;
    uint8_t *buf;
    uint64_t block; /* locked 128 KiB block, or UINT64_MAX */
    int done;
    int err;
};

static uint8_t *busy;
static unsigned int inflight;

static void job_done(struct noxs_blkfront_io *io, int err)
{
    struct job *j = io->user;

    j->done = 1;
    j->err = err;
    if (j->block != UINT64_MAX)
        busy[j->block] = 0;
    inflight--;
}

static void reap(struct job *jobs, uint8_t *shadow, bool check)
{
    for (unsigned int i = 0; i < QD; i++) {
        struct job *j = &jobs[i];

        if (!j->done || j->io.done == NULL)
            continue;
        if (j->err != 0)
            die("request failed: %s", strerror(j->err));
        if (check && j->io.op == NOXS_BLKFRONT_READ &&
            memcmp(j->io.buf, shadow + j->io.offset, j->io.len) != 0) {
            char where[64];

            snprintf(where, sizeof(where), "%" PRIu64 "+%zu", j->io.offset,
                     j->io.len);
            die("read-back mismatch at %s", where);
        }
        j->io.done = NULL;
    }
}

static struct job *free_job(struct job *jobs, uint8_t *shadow, bool check)
{
    for (;;) {
        reap(jobs, shadow, check);
        for (unsigned int i = 0; i < QD; i++)
            if (jobs[i].io.done == NULL && jobs[i].done)
                return &jobs[i];
        int n = noxs_blkfront_poll(blk, -1);

        if (n < 0)
            die("poll: %s", strerror(errno));
        if (n == 0)
            die("%s", "no completion within the timeout");
    }
}

static void submit(struct job *j, unsigned int op, uint64_t off, size_t len,
                   uint64_t block)
{
    j->io = (struct noxs_blkfront_io){
        .op = op, .buf = j->buf, .len = len, .offset = off, .done = job_done, .user = j};
    j->done = 0;
    j->block = block;
    inflight++;
    if (noxs_blkfront_submit(blk, &j->io) < 0)
        die("submit: %s", strerror(errno));
}

static void drain(struct job *jobs, uint8_t *shadow, bool check)
{
    while (inflight > 0) {
        int n = noxs_blkfront_poll(blk, -1);

        if (n < 0)
            die("poll: %s", strerror(errno));
        if (n == 0)
            die("%s", "no completion within the timeout");
    }
    reap(jobs, shadow, check);
}

static int cmd_random(uint64_t seed, unsigned long nwrites, const char *out)
{
    uint64_t size = info.size, ss = info.sector_size;
    uint64_t lock = 128 * 1024, nblocks = size / lock;
    struct job jobs[QD];
    uint8_t *shadow = malloc(size);
    FILE *f;

    if (shadow == NULL || nblocks == 0)
        die("%s", "device too small or no memory");
    busy = calloc(nblocks, 1);
    rng_state = seed;
    for (unsigned int i = 0; i < QD; i++) {
        jobs[i].buf = malloc(lock);
        jobs[i].done = 1;
        jobs[i].io.done = NULL;
    }
    /* Fill, 256 KiB at a time. */
    pattern(shadow, size, seed, 0);
    for (uint64_t off = 0; off < size; off += lock) {
        struct job *j = free_job(jobs, shadow, false);
        size_t len = size - off < lock ? size - off : lock;

        memcpy(j->buf, shadow + off, len);
        submit(j, NOXS_BLKFRONT_WRITE, off, len, UINT64_MAX);
    }
    drain(jobs, shadow, false);
    /* Random writes, never two in flight on one 128 KiB block. */
    for (unsigned long n = 0; n < nwrites; n++) {
        struct job *j = free_job(jobs, shadow, false);
        uint64_t b, sectors = lock / ss, first, count;

        do
            b = rnd() % nblocks;
        while (busy[b]);
        busy[b] = 1;
        first = rnd() % sectors;
        count = 1 + rnd() % (sectors - first);
        if (n % 3 == 0)
            count = count > 8 ? 8 : count; /* plenty of small ones too */
        uint64_t off = b * lock + first * ss;
        size_t len = (size_t)(count * ss);

        pattern(j->buf, len, seed + n + 1, off);
        memcpy(shadow + off, j->buf, len);
        submit(j, NOXS_BLKFRONT_WRITE, off, len, b);
    }
    drain(jobs, shadow, false);
    /* Read everything back in a shuffled order, 64 KiB at a time. */
    uint64_t nchunks = size / BLOCK;
    uint64_t *order = malloc(nchunks * sizeof(*order));
    for (uint64_t i = 0; i < nchunks; i++)
        order[i] = i;
    for (uint64_t i = nchunks - 1; i > 0; i--) {
        uint64_t k = rnd() % (i + 1), t = order[i];

        order[i] = order[k];
        order[k] = t;
    }
    for (uint64_t i = 0; i < nchunks; i++) {
        struct job *j = free_job(jobs, shadow, true);

        submit(j, NOXS_BLKFRONT_READ, order[i] * BLOCK, BLOCK, UINT64_MAX);
    }
    drain(jobs, shadow, true);
    if (noxs_blkfront_flush(blk) < 0)
        die("flush: %s", strerror(errno));
    f = fopen(out, "wb");
    if (f == NULL || fwrite(shadow, 1, size, f) != size || fclose(f) != 0)
        die("%s: cannot write the shadow", out);
    printf("random: %lu writes, %" PRIu64 " bytes verified\n", nwrites, size);
    for (unsigned int i = 0; i < QD; i++)
        free(jobs[i].buf);
    free(order);
    free(busy);
    busy = NULL;
    free(shadow);
    return 0;
}

/* ---- single requests with an expected result ---- */

static const struct {
    const char *name;
    int err;
} errnames[] = {
    {"OK", 0},
    {"ERANGE", ERANGE},
    {"EROFS", EROFS},
    {"EINVAL", EINVAL},
    {"EIO", EIO},
    {"EOPNOTSUPP", EOPNOTSUPP},
    {"EFAULT", EFAULT},
    {"ENOTCONN", ENOTCONN},
    {"ETIMEDOUT", ETIMEDOUT},
};

static int cmd_expect(const char *op, uint64_t off, uint64_t len,
                      const char *want)
{
    uint8_t *buf = calloc(1, len ? len : 1);
    int rc, err, expected = -1;

    for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
        if (strcmp(errnames[i].name, want) == 0)
            expected = errnames[i].err;
    if (expected < 0)
        die("unknown result %s", want);
    if (strcmp(op, "read") == 0)
        rc = noxs_blkfront_read(blk, buf, len, off);
    else if (strcmp(op, "write") == 0)
        rc = noxs_blkfront_write(blk, buf, len, off);
    else if (strcmp(op, "flush") == 0)
        rc = noxs_blkfront_flush(blk);
    else if (strcmp(op, "discard") == 0)
        rc = noxs_blkfront_discard(blk, off, len);
    else
        die("unknown op %s", op);
    err = rc < 0 ? errno : 0;
    free(buf);
    if (err != expected) {
        fprintf(stderr, "blk_stress: %s %" PRIu64 " %" PRIu64 ": got %s, want %s\n",
                op, off, len, err ? strerror(err) : "OK", want);
        return 1;
    }
    return 0;
}

/* ---- zero-copy buffers ---- */

#define ZC_MAX (256u * 1024) /* largest request */

static void zc_expect_einval(struct noxs_blkfront_io *io, const char *what)
{
    if (noxs_blkfront_submit_buf(blk, io) == 0 || errno != EINVAL)
        die("zerocopy: %s accepted (or not EINVAL)", what);
}

static int cmd_zerocopy(uint64_t seed, const char *out)
{
    uint64_t ss = info.sector_size;
    uint64_t span = info.size < (16u << 20) ? info.size : (16u << 20);
    size_t bufsz = ZC_MAX + 8 * ss; /* room for a start offset */
    struct job jobs[QD];
    uint8_t *shadow = calloc(1, span), *check = malloc(1 << 20);
    FILE *f;

    if (shadow == NULL || check == NULL || span < ss)
        die("%s", "device too small or no memory");
    rng_state = seed;
    for (unsigned int i = 0; i < QD; i++) {
        jobs[i].buf = noxs_blkfront_buf_alloc(blk, bufsz);
        if (jobs[i].buf == NULL)
            die("buf_alloc: %s", strerror(errno));
        if ((uintptr_t)jobs[i].buf % 4096 != 0)
            die("%s", "buf_alloc: not page-aligned");
        jobs[i].done = 1;
        jobs[i].io.done = NULL;
    }

    /* Write everything once, in random-sized pieces (no overlaps). */
    for (uint64_t off = 0; off < span;) {
        struct job *j = free_job(jobs, NULL, false);
        size_t len = (size_t)((rnd() % (ZC_MAX / ss)) + 1) * ss;
        size_t at = (size_t)(rnd() % 8) * ss;

        if (len > span - off)
            len = (size_t)(span - off);
        pattern(j->buf + at, len, seed, off);
        memcpy(shadow + off, j->buf + at, len);
        j->io = (struct noxs_blkfront_io){
            .op = NOXS_BLKFRONT_WRITE, .buf = j->buf + at, .len = len, .offset = off, .done = job_done, .user = j};
        j->done = 0;
        j->block = UINT64_MAX;
        inflight++;
        if (noxs_blkfront_submit_buf(blk, &j->io) < 0)
            die("submit_buf: %s", strerror(errno));
        off += len;
    }
    drain(jobs, NULL, false);
    if (info.flush && noxs_blkfront_flush(blk) < 0)
        die("flush: %s", strerror(errno));

    /* Read back through the copying API. */
    for (uint64_t off = 0; off < span; off += 1 << 20) {
        size_t len = span - off < (1u << 20) ? (size_t)(span - off) : 1u << 20;

        if (noxs_blkfront_read(blk, check, len, off) < 0)
            die("read: %s", strerror(errno));
        if (memcmp(check, shadow + off, len) != 0)
            die("zerocopy: copying read-back mismatch at %" PRIu64, off);
    }

    /* And through zero-copy buffers: random pieces, 32 in flight (reap
     * compares each read with the shadow), then sync read_buf. */
    for (unsigned int n = 0; n < 2000; n++) {
        struct job *j = free_job(jobs, shadow, true);
        size_t len = (size_t)((rnd() % (ZC_MAX / ss)) + 1) * ss;
        uint64_t off = (rnd() % (span / ss)) * ss;
        size_t at = (size_t)(rnd() % 8) * ss;

        if (len > span - off)
            len = (size_t)(span - off);
        memset(j->buf, 0xee, bufsz); /* reap compares io.buf, the shadow */
        j->io = (struct noxs_blkfront_io){
            .op = NOXS_BLKFRONT_READ, .buf = j->buf + at, .len = len, .offset = off, .done = job_done, .user = j};
        j->done = 0;
        j->block = UINT64_MAX;
        inflight++;
        if (noxs_blkfront_submit_buf(blk, &j->io) < 0)
            die("submit_buf: %s", strerror(errno));
    }
    drain(jobs, shadow, true);
    for (uint64_t off = 0; off < span; off += ZC_MAX) {
        size_t len = span - off < ZC_MAX ? (size_t)(span - off) : ZC_MAX;

        memset(jobs[0].buf, 0xee, bufsz);
        if (noxs_blkfront_read_buf(blk, jobs[0].buf + ss, len, off) < 0)
            die("read_buf: %s", strerror(errno));
        if (memcmp(jobs[0].buf + ss, shadow + off, len) != 0)
            die("zerocopy: read_buf mismatch at %" PRIu64, off);
    }
    /* A sync write_buf, read back both ways. */
    pattern(jobs[1].buf, ss, seed + 1, 0);
    memcpy(shadow, jobs[1].buf, ss);
    if (noxs_blkfront_write_buf(blk, jobs[1].buf, ss, 0) < 0 ||
        noxs_blkfront_read(blk, check, ss, 0) < 0 ||
        memcmp(check, shadow, ss) != 0)
        die("%s", "zerocopy: write_buf/read mismatch");

    /* What submit_buf must refuse. */
    struct noxs_blkfront_io io = {.op = NOXS_BLKFRONT_READ, .len = ss, .offset = 0, .done = job_done};
    io.buf = check;
    zc_expect_einval(&io, "a malloc'd buffer");
    io.buf = jobs[2].buf + 256;
    if (ss == 512)
        io.buf = jobs[2].buf + 100;
    zc_expect_einval(&io, "a misaligned start in the buffer");
    /* Its last page and one more (whatever lies beyond: even another
     * buffer's pages may not be crossed into). */
    io.buf = jobs[2].buf + (bufsz + 4095) / 4096 * 4096 - 4096;
    io.len = 8192;
    zc_expect_einval(&io, "a range past the buffer's end");
    io.len = ss;
    io.buf = jobs[3].buf;
    noxs_blkfront_buf_free(blk, jobs[3].buf);
    zc_expect_einval(&io, "a freed buffer");
    uint8_t *again = noxs_blkfront_buf_alloc(blk, 4096);
    if (again != jobs[3].buf)
        die("%s", "zerocopy: a freed buffer was not re-used");
    if (noxs_blkfront_read_buf(blk, again, ss, 0) < 0 ||
        memcmp(again, shadow, ss) != 0)
        die("%s", "zerocopy: re-used buffer read mismatch");
    if (noxs_blkfront_buf_alloc(blk, 0) != NULL || errno != EINVAL)
        die("%s", "zerocopy: buf_alloc(0) accepted");
    for (unsigned int i = 0; i < QD; i++)
        noxs_blkfront_buf_free(blk, jobs[i].buf);

    f = fopen(out, "wb");
    if (f == NULL || fwrite(shadow, 1, span, f) != span || fclose(f) != 0)
        die("writing %s", out);
    printf("zerocopy: %" PRIu64 " bytes written and read back both ways\n",
           span);
    free(shadow);
    free(check);
    return 0;
}

static int cmd_zeros(uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len);

    if (noxs_blkfront_read(blk, buf, len, off) < 0)
        die("read: %s", strerror(errno));
    for (uint64_t i = 0; i < len; i++)
        if (buf[i] != 0)
            die("%s", "range is not zero");
    free(buf);
    return 0;
}

/* ---- crash tests ---- */

static int cmd_crashwriter(uint64_t seed)
{
    uint8_t *buf = malloc(BLOCK);

    for (uint64_t i = 0; (i + 1) * BLOCK <= info.size; i++) {
        pattern(buf, BLOCK, seed, i * BLOCK);
        if (noxs_blkfront_write(blk, buf, BLOCK, i * BLOCK) < 0 ||
            noxs_blkfront_flush(blk) < 0) {
            fprintf(stderr, "blk_stress: crashwriter: block %" PRIu64 ": %s\n",
                    i, strerror(errno));
            fflush(stdout);
            noxs_blkfront_close(blk); /* Closing -> Closed, bounded */
            noxs_frontend_close(fe);
            exit(3);
        }
        printf("acked %" PRIu64 "\n", i);
        fflush(stdout);
    }
    free(buf);
    return 0;
}

static int cmd_verify_file(const char *path, uint64_t seed, long acked)
{
    int fd = open(path, O_RDONLY);
    uint8_t *want = malloc(BLOCK), *got = malloc(BLOCK);

    if (fd < 0)
        die("%s: cannot open", path);
    for (long i = 0; i <= acked; i++) {
        pattern(want, BLOCK, seed, (uint64_t)i * BLOCK);
        if (pread(fd, got, BLOCK, (off_t)i * BLOCK) != (ssize_t)BLOCK ||
            memcmp(want, got, BLOCK) != 0) {
            char n[32];

            snprintf(n, sizeof(n), "%ld", i);
            die("acknowledged block %s is not in the file", n);
        }
    }
    printf("verify-file: blocks 0..%ld intact\n", acked);
    free(want);
    free(got);
    close(fd);
    return 0;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int cmd_hold(void)
{
    static uint8_t buf[4096];
    struct sigaction sa = {.sa_handler = on_term};

    sigaction(SIGTERM, &sa, NULL);
    printf("holding\n");
    fflush(stdout);
    while (!stop) {
        if (noxs_blkfront_read(blk, buf, sizeof(buf), 0) < 0) {
            fprintf(stderr, "blk_stress: hold: %s\n", strerror(errno));
            noxs_blkfront_close(blk); /* Closing -> Closed, bounded */
            noxs_frontend_close(fe);
            exit(3);
        }
        usleep(20000);
    }
    return 0;
}

/* Read a block from each of the n devices. -1 and a message on error. */
static int read_each(noxs_blkfront **b, unsigned int n, uint32_t first)
{
    static uint8_t buf[4096];

    for (unsigned int i = 0; i < n; i++) {
        if (noxs_blkfront_read(b[i], buf, sizeof(buf), 0) < 0) {
            fprintf(stderr, "blk_stress: many: device %u: read: %s\n",
                    first + i, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int cmd_many(uint32_t first, unsigned int n)
{
    struct sigaction sa = {.sa_handler = on_term};
    noxs_blkfront **b = calloc(n ? n : 1, sizeof(*b));
    sigset_t term, old;
    int rc = 0;

    if (b == NULL || n == 0)
        die("many: %u devices", n);
    /* Blocked but while waiting: a SIGTERM never slips in before it. */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &old);
    sigaction(SIGTERM, &sa, NULL);
    b[0] = blk;
    for (unsigned int i = 1; i < n; i++) {
        b[i] = noxs_blkfront_open(fe, first + i, 0, 20000);
        if (b[i] == NULL) {
            fprintf(stderr, "blk_stress: many: device %u: connect: %s\n",
                    first + i, strerror(errno));
            n = i;
            rc = 3;
            break;
        }
        noxs_blkfront_set_timeout(b[i], 20000);
    }
    if (rc == 0 && read_each(b, n, first) < 0)
        rc = 3;
    if (rc == 0) {
        printf("connected %u\n", n);
        fflush(stdout);
        while (!stop)
            sigsuspend(&old);
        if (read_each(b, n, first) < 0)
            rc = 3;
    }
    for (unsigned int i = 1; i < n; i++)
        noxs_blkfront_close(b[i]);
    free(b);
    return rc;
}

/* ---- waiting for the oldest of several big reads ---- */

#define OLD_QD 8u
#define OLD_LEN (256u * 1024)

static void old_done(struct noxs_blkfront_io *io, int err)
{
    struct job *j = io->user;

    j->done = 1;
    j->err = err;
}

static void old_submit(struct job *j, uint64_t off)
{
    memset(j->buf, 0xee, OLD_LEN);
    j->io = (struct noxs_blkfront_io){
        .op = NOXS_BLKFRONT_READ, .buf = j->buf, .len = OLD_LEN, .offset = off, .done = old_done, .user = j};
    j->done = 0;
    if (noxs_blkfront_submit_buf(blk, &j->io) < 0)
        die("oldest: submit_buf: %s", strerror(errno));
}

static int cmd_oldest(uint64_t seed)
{
    uint64_t span = info.size < (16u << 20) ? info.size : (16u << 20);
    uint8_t *want = malloc(OLD_LEN);
    struct job jobs[OLD_QD];
    uint64_t next = 0;

    span -= span % OLD_LEN;
    if (want == NULL || span < OLD_QD * OLD_LEN)
        die("%s", "oldest: device too small or no memory");
    for (uint64_t off = 0; off < span; off += OLD_LEN) {
        pattern(want, OLD_LEN, seed, off);
        if (noxs_blkfront_write(blk, want, OLD_LEN, off) < 0)
            die("oldest: write: %s", strerror(errno));
    }
    for (unsigned int i = 0; i < OLD_QD; i++) {
        jobs[i].buf = noxs_blkfront_buf_alloc(blk, OLD_LEN);
        if (jobs[i].buf == NULL)
            die("oldest: buf_alloc: %s", strerror(errno));
        old_submit(&jobs[i], next);
        next = (next + OLD_LEN) % span;
    }
    for (unsigned int n = 0; n < 256; n++) {
        struct job *j = &jobs[n % OLD_QD];
        /* Liveness bound only (the handle's timeout fails a request
         * that gets no answer well before this). */
        unsigned int polls = 0;

        while (!j->done) {
            if (noxs_blkfront_poll(blk, 1000) < 0)
                die("oldest: poll: %s", strerror(errno));
            if (++polls > 120)
                die("oldest: no answer to read %u", n);
        }
        if (j->err != 0)
            die("oldest: read %u: %s", n, strerror(j->err));
        pattern(want, OLD_LEN, seed, j->io.offset);
        if (memcmp(j->buf, want, OLD_LEN) != 0)
            die("oldest: read %u at %" PRIu64 " mismatch", n, j->io.offset);
        if (n % 32 == 31 && info.flush && noxs_blkfront_flush(blk) < 0)
            die("oldest: flush: %s", strerror(errno));
        old_submit(j, next);
        next = (next + OLD_LEN) % span;
    }
    for (unsigned int i = 0; i < OLD_QD; i++) {
        unsigned int polls = 0;

        while (!jobs[i].done) {
            if (noxs_blkfront_poll(blk, 1000) < 0 || ++polls > 120)
                die("%s", "oldest: the last reads got no answer");
        }
        noxs_blkfront_buf_free(blk, jobs[i].buf);
    }
    free(want);
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t devid = 0;
    int a = 1, rc;

    if (argc > 2 && strcmp(argv[1], "-d") == 0) {
        devid = (uint32_t)strtoul(argv[2], NULL, 10);
        a = 3;
    }
    if (argc - a < 1)
        die("%s", "usage: see the comment at the top of blk_stress.c");
    const char *cmd = argv[a++];
    if (strcmp(cmd, "verify-file") == 0 && argc - a == 3)
        return cmd_verify_file(argv[a], strtoull(argv[a + 1], NULL, 0),
                               strtol(argv[a + 2], NULL, 0));
    connect_dev(devid);
    if (strcmp(cmd, "random") == 0 && argc - a == 3)
        rc = cmd_random(strtoull(argv[a], NULL, 0),
                        strtoul(argv[a + 1], NULL, 0), argv[a + 2]);
    else if (strcmp(cmd, "expect") == 0 && argc - a == 4)
        rc = cmd_expect(argv[a], strtoull(argv[a + 1], NULL, 0),
                        strtoull(argv[a + 2], NULL, 0), argv[a + 3]);
    else if (strcmp(cmd, "crashwriter") == 0 && argc - a == 1)
        rc = cmd_crashwriter(strtoull(argv[a], NULL, 0));
    else if (strcmp(cmd, "zerocopy") == 0 && argc - a == 2)
        rc = cmd_zerocopy(strtoull(argv[a], NULL, 0), argv[a + 1]);
    else if (strcmp(cmd, "oldest") == 0 && argc - a == 1)
        rc = cmd_oldest(strtoull(argv[a], NULL, 0));
    else if (strcmp(cmd, "hold") == 0 && argc - a == 0)
        rc = cmd_hold();
    else if (strcmp(cmd, "many") == 0 && argc - a == 1)
        rc = cmd_many(devid, (unsigned int)strtoul(argv[a], NULL, 10));
    else if (strcmp(cmd, "zeros") == 0 && argc - a == 2)
        rc = cmd_zeros(strtoull(argv[a], NULL, 0), strtoull(argv[a + 1], NULL, 0));
    else
        die("bad command %s", cmd);
    disconnect_dev();
    return rc;
}
