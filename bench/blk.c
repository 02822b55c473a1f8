/*
 * blk: noxs blk throughput on the simulator against direct file I/O.
 *
 *   blk [-H] [-n REPS] [-o OP[,OP..]] [-q QD[,QD..]] [-r ORDER] [SIZE_MB [SECONDS]]
 *
 *   SIZE_MB  the backing file (default 64 MB), SECONDS per result (1 s)
 *   -n REPS  repetitions (default 1); each repetition measures every
 *            case once, noxs and direct back to back (alternating which
 *            goes first), and a summary of the ratios follows the runs
 *   -o OPS   randread,randwrite,seqread,seqwrite (default all)
 *   -q QDS   queue depths, 1..32 (default 1,32)
 *   -r ORDER the ring's page order the frontend asks for, 0..4 (default
 *            4, the backend's max-ring-page-order: 16 pages, 512 slots,
 *            about 21 MiB of zero-copy data in flight; a 1 MiB request
 *            takes 24 slots, the copying API uses at most 128 of them)
 *
 * Starts its own noxsd and noxs-blk-back in a temporary directory (own
 * NOXS_SIM_DIR), creates domain 1 with a blk device on a SIZE_MB file in
 * that directory, and then acts as the guest itself (the simulator takes
 * the domain from NOXS_SIM_DOMID at each open). For 4 KiB random reads
 * and writes and 1 MiB sequential reads and writes, at queue depths 1 and
 * 32, it prints one line per result:
 *
 *   blk path=noxs-copy op=randread bs=4096 qd=32 iops=.. mib_s=.. cpu_us_op=..
 *   blk path=noxs-zerocopy op=randread bs=4096 qd=32 iops=.. mib_s=.. cpu_us_op=..
 *   blk path=direct op=randread bs=4096 qd=32 iops=.. mib_s=.. cpu_us_op=..
 *   blk ratio op=randread bs=4096 qd=32 path=noxs-copy noxs_over_direct=..
 *   blk ratio op=randread bs=4096 qd=32 path=noxs-zerocopy noxs_over_direct=..
 *
 * and at the end, per case and path, the median, min and max of the
 * ratios over the repetitions:
 *
 *   blk summary op=randread bs=4096 qd=32 path=noxs-zerocopy n=5 median=.. min=.. max=.. cpu_median=.. cpu_min=.. cpu_max=..
 *
 * Each result line also gives cpu_us_op: the CPU time (user + system, all
 * threads) this process and noxs-blk-back used per operation, and the
 * summary's cpu_* the ratio of noxs's to direct's. On a machine that
 * other work keeps busy, throughput mostly says how many runnable
 * threads each side has (direct runs QD threads; noxs a few), while the
 * CPU time per operation moves much less: compare paths by it there.
 * It counts the bounded spins of both sides as work, so it overstates
 * noxs's cost where the queue runs dry (QD1). The setup line names the
 * CPU model and the number of CPUs.
 *
 * "noxs-copy" uses malloc'd buffers and noxs_blkfront_submit (blkfront
 * copies each request through its granted pool pages); "noxs-zerocopy"
 * uses buffers from noxs_blkfront_buf_alloc and noxs_blkfront_submit_buf
 * (the buffers are granted pages, the backend reads/writes them in place).
 *
 * "direct" is pread/pwrite on the same file (same page-cache state: the
 * file is written in full first, so every read hits the cache on both
 * sides) from this process: qd=1 one synchronous thread, qd=N N threads
 * (all the parallelism the machine's cores allow) sharing N buffers (as
 * many as noxs has in flight), each operation taking the next buffer in
 * turn as noxs's requests do (see dbufs below); -H gives each thread a
 * buffer of its own instead, as before, which on a machine with fewer
 * cores than threads lets each thread copy into a cache-hot buffer.
 *
 * NOXS_BENCH_BLK_BACK_ARGS adds options to noxs-blk-back's command line
 * (e.g. "--io-threads 2").
 *
 * The backing file lives in $TMPDIR (default /tmp): a real file system.
 * The simulator's state, whose grant pages stand for guest RAM, goes to
 * /dev/shm when that is a directory (as the simulator's own default),
 * else next to the file: on a disk file system every page the backend
 * reads into would be a dirty file page written back to disk, a cost a
 * guest's memory does not have.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>
#include <noxs/io/blkif.h>

#include "blkfront.h"
#include "procrss.h"
#include "svc.h"

#define MAXQD 32

static unsigned int ring_order = 4; /* -r */

static char tmpdir[PATH_MAX / 2];
static char simdir[PATH_MAX / 2];
static pid_t pids[2] = {-1, -1};
static uint64_t dev_size;
static double seconds = 1.0;
static char img[PATH_MAX];

static void cleanup(void)
{
    bench_services_stop(pids, 2, tmpdir, "blk");
    if (simdir[0] != '\0') {
        char cmd[PATH_MAX];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", simdir);
        if (system(cmd) != 0)
            fprintf(stderr, "blk: could not remove %s\n", simdir);
    }
}

/* The CPU time (user + system, all threads) process pid has used, in s. */
static double cpu_s(pid_t pid)
{
    unsigned long long t[2]; /* utime, stime */

    if (bench_proc_stat(pid, 14, t, 2) < 0)
        return 0;
    return (double)(t[0] + t[1]) / (double)sysconf(_SC_CLK_TCK);
}

/* Ours and the backend's: what one case cost the machine. */
static double cpu_both(void)
{
    return cpu_s(getpid()) + (pids[1] > 0 ? cpu_s(pids[1]) : 0);
}

/* Operations the last run_noxs or run_direct did, and cpu_both() when
 * its clock started. */
static uint64_t last_ops;
static double cpu_at_start;

static void cpu_model(char *out, size_t n)
{
    char line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");

    snprintf(out, n, "unknown");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char *v = strchr(line, ':');

        if (strncmp(line, "model name", 10) == 0 && v != NULL) {
            snprintf(out, n, "%s", v + 2);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    }
    if (f != NULL)
        fclose(f);
}

static void bindir(char *out, size_t len)
{
    const char *build = getenv("NOXS_BUILD");
    char self[PATH_MAX];
    ssize_t n;

    if (build != NULL) {
        snprintf(out, len, "%s/bin", build);
        return;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        bench_die("set NOXS_BUILD");
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(out, len, "%.*s/../bin", (int)(len - 8), self);
}

static noxs_blkfront *setup(unsigned int size_mb, noxs_frontend **fe)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char bin[PATH_MAX / 2], sock[PATH_MAX], sim[PATH_MAX],
        param[PATH_MAX + 8], bootstr[64];
    struct noxs_boot boot;
    noxs_client *c = NULL;
    int fd;

    bindir(bin, sizeof(bin));
    snprintf(tmpdir, sizeof(tmpdir), "%s/noxs-bench-blk.XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL)
        bench_die("mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    /* Guest memory is RAM: the simulator's state on tmpfs (see above). */
    struct stat shm;
    if (stat("/dev/shm", &shm) == 0 && S_ISDIR(shm.st_mode)) {
        snprintf(simdir, sizeof(simdir), "/dev/shm/noxs-bench-blk.XXXXXX");
        if (mkdtemp(simdir) == NULL)
            simdir[0] = '\0';
    }
    if (simdir[0] != '\0')
        snprintf(sim, sizeof(sim), "%s", simdir);
    else
        snprintf(sim, sizeof(sim), "%s/sim", tmpdir);
    snprintf(img, sizeof(img), "%s/disk.img", tmpdir);
    if (simdir[0] == '\0')
        mkdir(sim, 0700);
    setenv("NOXS_SIM_DIR", sim, 1);
    dev_size = (uint64_t)size_mb << 20;
    fd = open(img, O_RDWR | O_CREAT, 0600);
    if (fd < 0)
        bench_die("%s: %s", img, strerror(errno));
    /* Real data, not a hole: reads then cost what they cost on a disk
     * image in the page cache. */
    char *chunk = malloc(1 << 20);
    for (unsigned int i = 0; i < (1u << 20); i++)
        chunk[i] = (char)(i * 131 + 7);
    for (unsigned int i = 0; i < size_mb; i++)
        if (write(fd, chunk, 1 << 20) != (1 << 20))
            bench_die("writing the image");
    free(chunk);
    close(fd);

    c = bench_noxsd_start(bin, tmpdir, 0, sock, &pids[0]);
    char bpath[PATH_MAX];
    snprintf(bpath, sizeof(bpath), "%s/noxs-blk-back", bin);
    /* Extra backend options (e.g. "--io-threads 2") from the environment. */
    char *back_argv[16] = {bpath, "-d", "--socket", sock, NULL};
    char *extra = getenv("NOXS_BENCH_BLK_BACK_ARGS");
    if (extra != NULL) {
        char *save, *tok;
        int n = 4;

        extra = strdup(extra);
        for (tok = strtok_r(extra, " ", &save); tok != NULL && n < 15;
             tok = strtok_r(NULL, " ", &save))
            back_argv[n++] = tok;
        back_argv[n] = NULL;
    }
    pids[1] = bench_backend_start(c, back_argv, 0);
    if (noxs_domain_create(c, 1, &boot) < 0)
        bench_die("domain-create: %s", strerror(errno));
    snprintf(param, sizeof(param), "%s", img);
    struct noxs_kv kv[] = {{"path", param}, {"mode", "w"}};
    if (noxs_dev_add(c, 1, NOXS_DEV_BLK, 0, 0, kv, 2) < 0)
        bench_die("dev-add: %s", strerror(errno));
    noxs_client_close(c);

    noxs_boot_format(&boot, bootstr, sizeof(bootstr));
    setenv("NOXS_SIM_DOMID", "1", 1);
    *fe = noxs_frontend_open(&boot);
    if (*fe == NULL)
        bench_die("frontend: %s", strerror(errno));
    noxs_blkfront *b = noxs_blkfront_open(*fe, 0, ring_order, 20000);
    if (b == NULL)
        bench_die("connect: %s", strerror(errno));
    return b;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t pick(bool random, size_t bs, uint64_t *cursor)
{
    uint64_t off;

    if (random)
        return (next_rand() % (dev_size / bs)) * bs;
    off = *cursor;
    *cursor = (*cursor + bs) % dev_size;
    return off;
}

/* ---- noxs ---- */

struct slot {
    struct noxs_blkfront_io io;
    bool busy;
};
static uint64_t completed;

static void io_done(struct noxs_blkfront_io *io, int err)
{
    struct slot *s = io->user;

    if (err != 0)
        bench_die("request failed: %s", strerror(err));
    s->busy = false;
    completed++;
}

static double run_noxs(noxs_blkfront *b, bool write, bool random, size_t bs,
                       unsigned int qd, bool zerocopy)
{
    struct slot slots[MAXQD];
    uint64_t cursor = 0;
    double start, end;
    unsigned int inflight;

    memset(slots, 0, sizeof(slots));
    for (unsigned int i = 0; i < qd; i++) {
        slots[i].io.buf = zerocopy ? noxs_blkfront_buf_alloc(b, bs) : malloc(bs);
        if (slots[i].io.buf == NULL)
            bench_die("buffer: %s", strerror(errno));
        memset(slots[i].io.buf, 0x5a, bs);
    }
    /* The clock starts with the I/O: setting up QD buffers is not I/O
     * (32 x 1 MiB of first-touched pages took longer than a whole
     * 1-second result on a busy machine). */
    cpu_at_start = cpu_both();
    start = bench_now_s();
    end = start + seconds;
    completed = 0;
    for (;;) {
        bool more = bench_now_s() < end;

        inflight = 0;
        for (unsigned int i = 0; i < qd; i++) {
            struct slot *s = &slots[i];

            if (!s->busy && more) {
                s->io.op = write ? NOXS_BLKFRONT_WRITE : NOXS_BLKFRONT_READ;
                s->io.len = bs;
                s->io.offset = pick(random, bs, &cursor);
                s->io.done = io_done;
                s->io.user = s;
                s->busy = true;
                if ((zerocopy ? noxs_blkfront_submit_buf(b, &s->io)
                              : noxs_blkfront_submit(b, &s->io)) < 0)
                    bench_die("submit: %s", strerror(errno));
            }
            inflight += s->busy;
        }
        if (inflight == 0)
            break;
        if (noxs_blkfront_poll(b, -1) < 0)
            bench_die("poll: %s", strerror(errno));
    }
    double elapsed = bench_now_s() - start;
    last_ops = completed;
    for (unsigned int i = 0; i < qd; i++) {
        if (zerocopy)
            noxs_blkfront_buf_free(b, slots[i].io.buf);
        else
            free(slots[i].io.buf);
    }
    return (double)completed / elapsed;
}

/* ---- direct ---- */

/*
 * The QD buffers direct I/O reads into and writes from, and which of
 * them the next operation uses. Every operation takes the next buffer in
 * turn, whichever thread runs it, so that the buffers are used in the
 * order noxs's are (a request on each of QD buffers in flight, each
 * buffer used again only after the QD - 1 others): the footprint in the
 * CPU caches is the same on both sides. With one buffer per thread
 * instead (-H), the 32 threads on 2 cores each copy into their own
 * cache-hot buffer many times in a row, and on an AMD EPYC VM a cached
 * 1 MiB pread into a hot buffer cost 36 us against 80 us into 32 buffers
 * used in turn: that measured the cache, not the driver. Two threads
 * may use one buffer at once; the data is never looked at.
 */
static char *dbufs[MAXQD];
static unsigned int dbufs_n;
static atomic_uint dbuf_next;
static bool hot_buffers; /* -H: one buffer per thread */

struct worker {
    pthread_t t;
    char *own; /* -H: this thread's buffer */
    int fd;
    bool write, random;
    size_t bs;
    double end;
    uint64_t ops;
    uint64_t seed;
};

static void *direct_worker(void *arg)
{
    struct worker *w = arg;
    uint64_t cursor = (w->seed * 7919 * w->bs) % dev_size, x = w->seed * 2654435761u + 1;

    while (bench_now_s() < w->end) {
        for (int k = 0; k < 16; k++) {
            char *buf = hot_buffers ? w->own
                                    : dbufs[atomic_fetch_add_explicit(
                                                &dbuf_next, 1,
                                                memory_order_relaxed) %
                                            dbufs_n];
            uint64_t off;

            if (w->random) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                off = (x % (dev_size / w->bs)) * w->bs;
            } else {
                off = cursor;
                cursor = (cursor + w->bs) % dev_size;
            }
            ssize_t n = w->write ? pwrite(w->fd, buf, w->bs, (off_t)off)
                                 : pread(w->fd, buf, w->bs, (off_t)off);
            if (n != (ssize_t)w->bs)
                bench_die("direct I/O: %s", strerror(errno));
            w->ops++;
        }
    }
    return NULL;
}

static double run_direct(bool write, bool random, size_t bs, unsigned int qd)
{
    struct worker w[MAXQD];
    int fd = open(img, O_RDWR);
    double start;
    uint64_t ops = 0;

    if (fd < 0)
        bench_die("%s: %s", img, strerror(errno));
    /* As for noxs: the buffers are ready before the clock starts. */
    for (unsigned int i = 0; i < qd; i++) {
        dbufs[i] = aligned_alloc(4096, bs);
        if (dbufs[i] == NULL)
            bench_die("buffer: %s", strerror(errno));
        memset(dbufs[i], 0x5a, bs);
    }
    dbufs_n = qd;
    atomic_store(&dbuf_next, 0);
    cpu_at_start = cpu_both();
    start = bench_now_s();
    for (unsigned int i = 0; i < qd; i++) {
        w[i] = (struct worker){.own = dbufs[i], .fd = fd, .write = write, .random = random, .bs = bs, .end = start + seconds, .seed = i + 1};
        pthread_create(&w[i].t, NULL, direct_worker, &w[i]);
    }
    for (unsigned int i = 0; i < qd; i++) {
        pthread_join(w[i].t, NULL);
        ops += w[i].ops;
    }
    for (unsigned int i = 0; i < qd; i++)
        free(dbufs[i]);
    close(fd);
    last_ops = ops;
    return (double)ops / (bench_now_s() - start);
}

#define NOPS 4
#define MAXREPS 64

/* One result of path 0 (noxs-copy), 1 (noxs-zerocopy) or 2 (direct):
 * operations per second, and the CPU time ours and the backend's took
 * per operation in *cpu_op (which the machine's other load hardly
 * changes, unlike the rate). */
static double run_path(int path, noxs_blkfront *b, bool write, bool random,
                       size_t bs, unsigned int qd, double *cpu_op)
{
    double r = path == 2 ? run_direct(write, random, bs, qd)
                         : run_noxs(b, write, random, bs, qd, path == 1);

    *cpu_op = last_ops > 0 ? (cpu_both() - cpu_at_start) / (double)last_ops
                           : 0;
    return r;
}

static double median(double *v, int n, double *lo, double *hi)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *lo = v[0];
    *hi = v[n - 1];
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: blk [-H] [-n REPS] [-o OP[,OP..]] [-q QD[,QD..]] "
                 "[-r ORDER] [SIZE_MB>=8 [SECONDS]]\n"
                 "  OP: randread randwrite seqread seqwrite; QD: 1..%d;\n"
                 "  ORDER: ring page order 0..4 (default 4);\n"
                 "  -H: direct I/O gives each thread its own buffer\n",
            MAXQD);
}

static const struct bench_case {
    const char *name;
    bool write, random;
    size_t bs;
} tests[NOPS] = {
    {"randread", false, true, 4096},
    {"randwrite", true, true, 4096},
    {"seqread", false, false, 1 << 20},
    {"seqwrite", true, false, 1 << 20},
};
/* ratios[test][qd][path][rep]: noxs's rate over direct's */
static double ratios[NOPS][MAXQD][2][MAXREPS];
/* cpus[test][qd][path][rep]: noxs's CPU per operation over direct's */
static double cpus[NOPS][MAXQD][2][MAXREPS];

/* Case t at queue depth qds[q], repetition rep: noxs both ways and
 * direct, one line each, and their ratios. */
static void run_case(noxs_blkfront *b, size_t t, size_t q, unsigned int qd,
                     int rep)
{
    bool w = tests[t].write, r = tests[t].random;
    size_t bs = tests[t].bs;
    double n, z, d = 0, nc, zc, dc = 0, mib = (double)bs / (1 << 20);

    /* Alternate the order so that drift in the machine's load does not
     * always favour the same side. */
    if (rep % 2 == 1)
        d = run_path(2, b, w, r, bs, qd, &dc);
    n = run_path(0, b, w, r, bs, qd, &nc);
    z = run_path(1, b, w, r, bs, qd, &zc);
    if (rep % 2 == 0)
        d = run_path(2, b, w, r, bs, qd, &dc);
    cpus[t][q][0][rep] = dc > 0 ? nc / dc : 0;
    cpus[t][q][1][rep] = dc > 0 ? zc / dc : 0;
    ratios[t][q][0][rep] = n / d;
    ratios[t][q][1][rep] = z / d;
    printf("blk path=noxs-copy op=%s bs=%zu qd=%u iops=%.0f "
           "mib_s=%.1f cpu_us_op=%.2f\n",
           tests[t].name, bs, qd, n, n * mib,
           nc * 1e6);
    printf("blk path=noxs-zerocopy op=%s bs=%zu qd=%u iops=%.0f "
           "mib_s=%.1f cpu_us_op=%.2f\n",
           tests[t].name, bs, qd, z, z * mib,
           zc * 1e6);
    printf("blk path=direct op=%s bs=%zu qd=%u iops=%.0f "
           "mib_s=%.1f cpu_us_op=%.2f\n",
           tests[t].name, bs, qd, d, d * mib,
           dc * 1e6);
    printf("blk ratio op=%s bs=%zu qd=%u path=noxs-copy noxs_over_direct=%.2f\n",
           tests[t].name, bs, qd, n / d);
    printf("blk ratio op=%s bs=%zu qd=%u path=noxs-zerocopy noxs_over_direct=%.2f\n",
           tests[t].name, bs, qd, z / d);
    fflush(stdout);
}

/* Per case and path: median, min and max over the repetitions. */
static void print_summary(const bool *want, const unsigned int *qds,
                          size_t nqd, int reps)
{
    for (size_t t = 0; t < NOPS; t++) {
        if (!want[t])
            continue;
        for (size_t q = 0; q < nqd; q++) {
            for (int p = 0; p < 2; p++) {
                double lo, hi, m = median(ratios[t][q][p], reps, &lo, &hi);
                double clo, chi, cm = median(cpus[t][q][p], reps, &clo, &chi);

                printf("blk summary op=%s bs=%zu qd=%u path=%s n=%d "
                       "median=%.2f min=%.2f max=%.2f cpu_median=%.2f "
                       "cpu_min=%.2f cpu_max=%.2f\n",
                       tests[t].name, tests[t].bs, qds[q],
                       p == 0 ? "noxs-copy" : "noxs-zerocopy", reps, m, lo, hi,
                       cm, clo, chi);
            }
        }
    }
}

int main(int argc, char **argv)
{
    unsigned int qds[MAXQD] = {1, 32}, nqd = 2, size_mb = 64;
    bool want[NOPS] = {true, true, true, true};
    int reps = 1, c;
    char model[128];
    noxs_frontend *fe;
    noxs_blkfront *b;

    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    while ((c = getopt(argc, argv, "Hhn:o:q:r:")) != -1) {
        char *tok, *save;

        switch (c) {
        case 'n':
            reps = atoi(optarg);
            if (reps < 1 || reps > MAXREPS)
                bench_die("-n: 1..%d", MAXREPS);
            break;
        case 'o':
            memset(want, 0, sizeof(want));
            for (tok = strtok_r(optarg, ",", &save); tok != NULL;
                 tok = strtok_r(NULL, ",", &save)) {
                size_t t;

                for (t = 0; t < NOPS && strcmp(tests[t].name, tok) != 0; t++)
                    ;
                if (t == NOPS)
                    bench_die("-o: unknown op %s", tok);
                want[t] = true;
            }
            break;
        case 'q':
            nqd = 0;
            for (tok = strtok_r(optarg, ",", &save); tok != NULL;
                 tok = strtok_r(NULL, ",", &save)) {
                int q = atoi(tok);

                if (q < 1 || q > MAXQD || nqd == MAXQD)
                    bench_die("-q: 1..%d", MAXQD);
                qds[nqd++] = (unsigned int)q;
            }
            break;
        case 'r':
            ring_order = (unsigned int)atoi(optarg);
            if (ring_order > NOXS_BLK_MAX_RING_ORDER)
                bench_die("-r: 0..%u", NOXS_BLK_MAX_RING_ORDER);
            break;
        case 'H':
            hot_buffers = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc)
        size_mb = (unsigned int)atoi(argv[optind]);
    if (optind + 1 < argc)
        seconds = atof(argv[optind + 1]);
    if (size_mb < 8 || !(seconds > 0) || nqd == 0 || optind + 2 < argc) {
        usage(stderr);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    b = setup(size_mb, &fe);
    {
        struct noxs_blkfront_info in;
        const char *extra = getenv("NOXS_BENCH_BLK_BACK_ARGS");

        noxs_blkfront_get_info(b, &in);
        cpu_model(model, sizeof(model));
        printf("blk setup ring_order=%u queue_depth=%u backend_args=\"%s\" "
               "direct_buffers=%s cpu=\"%s\" ncpu=%ld\n",
               in.ring_order, in.queue_depth, extra != NULL ? extra : "",
               hot_buffers ? "per-thread" : "in-turn", model,
               sysconf(_SC_NPROCESSORS_ONLN));
    }
    for (int rep = 0; rep < reps; rep++) {
        for (size_t t = 0; t < NOPS; t++) {
            if (!want[t])
                continue;
            for (size_t q = 0; q < nqd; q++)
                run_case(b, t, q, qds[q], rep);
        }
    }
    print_summary(want, qds, nqd, reps);
    noxs_blkfront_close(b);
    noxs_frontend_close(fe);
    return 0;
}
