/*
 * generic-bench: xs_* latencies on generic paths (a domain's name,
 * memory target, /vm record: what the toolstack reads and writes, not
 * the device paths) through whatever libxenstore.so.4 the dynamic linker
 * finds, so one binary measures Debian's library against xenstored or
 * oxenstored (XENSTORED_PATH) and compat-xs in local mode (its LMDB
 * store, NOXS_COMPAT_MODE=local NOXS_XS_DIR=...) or in mixed mode
 * (xenstored behind compat-xs).
 *
 *   generic-bench LABEL N [N ...]        (N ascending, e.g. 10 1000)
 *
 * For each N, domains up to N are added as libxl adds them: one
 * transaction per domain writing its /local/domain/<d>, /vm/<uuid> and
 * /libxl/<d> records (21 values, 32 nodes with their directories), libxl's
 * permissions on the domain's directory and /vm record, then
 * xs_introduce_domain(d, no ring page, port 1) unless
 * BENCH_NO_INTRODUCE=1. Earlier domains stay. Then, on domain
 * (N+1)/2's nodes, one handle measures:
 *
 *   read     xs_read of /local/domain/<m>/memory/target
 *   write    xs_write of the same node
 *   txn4     xs_transaction_start, 4 xs_write (memory/target,
 *            memory/static-max, name, /vm/<uuid>/name), xs_transaction_end
 *   watch    another process (its own connection) watches
 *            /local/domain/<m>/memory/target; time from before our
 *            xs_write to the return of its xs_read_watch with the event
 *
 *   txnK     with BENCH_TXN_SIZES="K ...": a transaction of K writes
 *            (data/k0 .. data/k<K-1> of that domain; 2 warm-up runs,
 *            at least 5 samples)
 *
 * Every op runs BENCH_ITER times (default 1000; watch: BENCH_WATCH_ITER,
 * default 300) or until BENCH_BUDGET_MS (default 3000) have gone by,
 * whichever comes first, after 10 unrecorded warm-up runs. No other
 * watches are held and no other connections are open (see
 * docs/BENCHMARKS.md for what this leaves out).
 *
 * One line per result:
 *   generic impl=LABEL op=OP n=N samples=S median_us=M p10_us=A p90_us=B
 *           p99_us=C max_us=D [eagain=E]
 *   (op=records: the transaction writing one domain's records, and
 *   op=introduce: its xs_introduce_domain, failed or not, over the
 *   domains added for N)
 *   generic impl=LABEL op=populate n=N domains=K total_ms=T
 *           introduced=yes|no introduce_failed=F
 * (F: the domains, so far, whose xs_introduce_domain failed; the first
 * failure's reason goes to stderr.)
 * Nothing here asserts a timing.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#define MAX_ITER 100000
#define WARMUP 10
#define PEER_TIMEOUT_MS 30000
#define TOKEN "generic-bench"

static const char *label;
static pid_t watcher = -1;
static int iter = 1000, watch_iter = 300;
static double budget_us = 3e6;
static int txn_sizes[8], ntxn_sizes;

/* Shared with the watcher process (MAP_SHARED before fork). */
struct shared {
    _Atomic long posted; /* writes the parent has started */
    _Atomic double t0;   /* when the last one started */
    double lat[MAX_ITER];
};
static struct shared *sh;
static int to_watcher[2], from_watcher[2];

struct cmd {
    int op; /* 'w' watch PATH and time COUNT events, 'q' quit */
    int count;
    char path[200];
};

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void stop_watcher(void)
{
    if (watcher > 0) {
        kill(watcher, SIGKILL);
        waitpid(watcher, NULL, 0);
        watcher = -1;
    }
}

static void die(const char *what)
{
    fprintf(stderr, "generic-bench %s: %s: %s\n", label, what,
            strerror(errno));
    stop_watcher();
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *s, size_t n, double p)
{
    size_t i = (size_t)((double)(n - 1) * p + 0.5);
    return s[i < n ? i : n - 1];
}

static void report(const char *op, int n, double *v, size_t count,
                   long eagain)
{
    if (count == 0)
        return;
    qsort(v, count, sizeof(*v), cmp_double);
    printf("generic impl=%s op=%s n=%d samples=%zu median_us=%.2f "
           "p10_us=%.2f p90_us=%.2f p99_us=%.2f max_us=%.2f",
           label, op, n, count, pct(v, count, 0.5), pct(v, count, 0.1),
           pct(v, count, 0.9), pct(v, count, 0.99), v[count - 1]);
    if (eagain >= 0)
        printf(" eagain=%ld", eagain);
    printf("\n");
    fflush(stdout);
}

static void uuid_of(unsigned int d, char *buf, size_t len)
{
    snprintf(buf, len, "%08x-6e6f-4878-8000-%012x", d, d * 2654435761u);
}

/* Write PATH = VALUE in transaction T; false on failure (errno set). */
static bool put(struct xs_handle *h, xs_transaction_t t, const char *path,
                const char *value)
{
    return xs_write(h, t, path, value, (unsigned int)strlen(value));
}

/*
 * Domain d's records, as libxl__domain_make and libxl__build_post write
 * them (values shortened), in one transaction retried on EAGAIN.
 */
static void populate_one(struct xs_handle *h, unsigned int d)
{
    char dom[64], vm[96], libxl[64], p[256], v[64], uuid[40];
    struct xs_permissions ro[2] = {{0, XS_PERM_NONE}, {d, XS_PERM_READ}};
    struct xs_permissions rw[1] = {{d, XS_PERM_NONE}};
    static const char *const dom_vals[][2] = {
        {"memory/static-max", "524288"},
        {"memory/target", "524288"},
        {"memory/videoram", "-1"},
        {"cpu/0/availability", "online"},
        {"cpu/1/availability", "online"},
        {"control/platform-feature-multiprocessor-suspend", "1"},
        {"console/port", "2"},
        {"console/type", "xenconsoled"},
        {"console/limit", "1048576"},
    };
    static const char *const vm_vals[][2] = {
        {"image/ostype", "linux"},
        {"image/kernel", "/boot/vmlinuz"},
        {"image/cmdline", "console=hvc0 root=/dev/xvda1"},
        {"start_time", "1765000000.00"},
    };

    uuid_of(d, uuid, sizeof(uuid));
    snprintf(dom, sizeof(dom), "/local/domain/%u", d);
    snprintf(vm, sizeof(vm), "/vm/%s", uuid);
    snprintf(libxl, sizeof(libxl), "/libxl/%u", d);
    for (int tries = 0;; tries++) {
        xs_transaction_t t = xs_transaction_start(h);
        bool ok = t != XBT_NULL;

        ok = ok && xs_mkdir(h, t, dom) && xs_set_permissions(h, t, dom, ro, 2);
        ok = ok && xs_mkdir(h, t, vm) && xs_set_permissions(h, t, vm, ro, 2);
        snprintf(v, sizeof(v), "bench-%u", d);
        snprintf(p, sizeof(p), "%s/name", dom);
        ok = ok && put(h, t, p, v);
        snprintf(p, sizeof(p), "%s/name", vm);
        ok = ok && put(h, t, p, v);
        snprintf(p, sizeof(p), "%s/uuid", vm);
        ok = ok && put(h, t, p, uuid);
        snprintf(p, sizeof(p), "%s/vm", dom);
        ok = ok && put(h, t, p, vm);
        snprintf(p, sizeof(p), "%s/domid", dom);
        snprintf(v, sizeof(v), "%u", d);
        ok = ok && put(h, t, p, v);
        for (size_t i = 0; ok && i < sizeof(dom_vals) / sizeof(dom_vals[0]);
             i++) {
            snprintf(p, sizeof(p), "%s/%s", dom, dom_vals[i][0]);
            ok = put(h, t, p, dom_vals[i][1]);
        }
        for (size_t i = 0; ok && i < sizeof(vm_vals) / sizeof(vm_vals[0]);
             i++) {
            snprintf(p, sizeof(p), "%s/%s", vm, vm_vals[i][0]);
            ok = put(h, t, p, vm_vals[i][1]);
        }
        /* Nodes the guest may write (libxl's rwperm). */
        snprintf(p, sizeof(p), "%s/data", dom);
        ok = ok && xs_mkdir(h, t, p) && xs_set_permissions(h, t, p, rw, 1);
        snprintf(p, sizeof(p), "%s/control/shutdown", dom);
        ok = ok && put(h, t, p, "") && xs_set_permissions(h, t, p, rw, 1);
        snprintf(p, sizeof(p), "%s/type", libxl);
        ok = ok && put(h, t, p, "pv");
        snprintf(p, sizeof(p), "%s/dm-version", libxl);
        ok = ok && put(h, t, p, "qemu_xen");
        if (!ok) {
            int e = errno;
            if (t != XBT_NULL)
                xs_transaction_end(h, t, true);
            errno = e;
            die("populate");
        }
        if (xs_transaction_end(h, t, false))
            return;
        if (errno != EAGAIN || tries > 100)
            die("populate: transaction end");
    }
}

/* The watcher process: its own handle; reports each event's latency. */
static void watcher_main(void)
{
    struct xs_handle *h = xs_open(0);
    struct cmd c;
    char ack = 'r';

    if (!h)
        die("watcher: xs_open");
    while (read(to_watcher[0], &c, sizeof(c)) == (ssize_t)sizeof(c)) {
        long seen;

        if (c.op != 'w')
            break;
        if (!xs_watch(h, c.path, TOKEN))
            die("watcher: xs_watch");
        /* The event a new watch fires at once: take it (and any other
         * queued one) before the parent starts writing. */
        for (;;) {
            struct pollfd pfd = {.fd = xs_fileno(h), .events = POLLIN};
            char **ev;

            if (poll(&pfd, 1, 200) <= 0)
                break;
            if ((ev = xs_check_watch(h)) != NULL)
                free(ev);
        }
        seen = atomic_load(&sh->posted);
        if (write(from_watcher[1], &ack, 1) != 1)
            die("watcher: ack");
        for (int i = 0; i < c.count;) {
            unsigned int num;
            char **ev = xs_read_watch(h, &num);
            double t1 = now_us();
            long posted = atomic_load(&sh->posted);

            if (!ev)
                die("watcher: xs_read_watch");
            free(ev);
            if (posted == seen)
                continue; /* not caused by a write of ours */
            sh->lat[i++] = t1 - atomic_load(&sh->t0);
            seen = posted;
            if (write(from_watcher[1], &ack, 1) != 1)
                die("watcher: ack");
        }
        if (!xs_unwatch(h, c.path, TOKEN))
            die("watcher: xs_unwatch");
        for (char **e; (e = xs_check_watch(h)) != NULL;)
            free(e);
        if (write(from_watcher[1], &ack, 1) != 1)
            die("watcher: ack");
    }
    xs_close(h);
    _exit(0);
}

static void start_watcher(void)
{
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    if (pipe(to_watcher) < 0 || pipe(from_watcher) < 0)
        die("pipe");
    watcher = fork();
    if (watcher < 0)
        die("fork");
    if (watcher == 0) {
        label = "watcher";
        watcher = -1;
        close(to_watcher[1]);
        close(from_watcher[0]);
        watcher_main();
    }
    close(to_watcher[0]);
    close(from_watcher[1]);
}

static void wait_ack(void)
{
    struct pollfd pfd = {.fd = from_watcher[0], .events = POLLIN};
    char c;

    if (poll(&pfd, 1, PEER_TIMEOUT_MS) != 1 ||
        read(from_watcher[0], &c, 1) != 1) {
        if (errno == 0)
            errno = ETIMEDOUT;
        die("no answer from the watcher");
    }
}

/* At least MIN samples, then until MAX or the time budget. */
static bool budget_left_min(int i, int max, double start, int min)
{
    return i < max && (i < min || now_us() - start < budget_us);
}

static bool budget_left(int i, int max, double start)
{
    return budget_left_min(i, max, start, 20);
}

/*
 * Round i took from t0 to now; a warm-up round (i < 0) only moves the
 * start of the time budget.
 */
static void note(double *lat, int i, double t0, double *start)
{
    double t1 = now_us();

    if (i < 0)
        *start = t1;
    else
        lat[i] = t1 - t0;
}

/* The writes of one round of a timed transaction. */
struct round {
    const char *target, *smax, *name, *vmname;
    unsigned int m;
    int i, kw; /* kw > 0: K writes under data/ instead of the four */
};

static bool round_writes(struct xs_handle *h, xs_transaction_t t,
                         const struct round *r)
{
    char v[32], p[128];

    if (r->kw > 0) {
        snprintf(v, sizeof(v), "%d", r->i);
        for (int k = 0; k < r->kw; k++) {
            snprintf(p, sizeof(p), "/local/domain/%u/data/k%d", r->m, k);
            if (!put(h, t, p, v))
                return false;
        }
        return true;
    }
    snprintf(v, sizeof(v), "%d", 524288 - (r->i & 1023));
    if (!put(h, t, r->target, v) || !put(h, t, r->smax, v))
        return false;
    snprintf(v, sizeof(v), "bench-%u-%d", r->m, r->i & 1);
    return put(h, t, r->name, v) && put(h, t, r->vmname, v);
}

/* One round in a transaction, retried while it ends in EAGAIN (counted). */
static void round_txn(struct xs_handle *h, const struct round *r,
                      long *eagain)
{
    for (;;) {
        xs_transaction_t t = xs_transaction_start(h);

        if (t == XBT_NULL || !round_writes(h, t, r))
            die(r->kw > 0 ? "transaction (K writes)" : "transaction");
        if (xs_transaction_end(h, t, false))
            return;
        if (errno != EAGAIN)
            die("xs_transaction_end");
        (*eagain)++;
    }
}

/* Transactions of K writes for each K of BENCH_TXN_SIZES="16 64 ...". */
static void measure_txn_sizes(struct xs_handle *h, int n, double *lat,
                              struct round *r)
{
    for (int s = 0; s < ntxn_sizes; s++) {
        char op[32];
        long eagain = 0;
        double start;

        r->kw = txn_sizes[s];
        for (r->i = -2, start = now_us();
             budget_left_min(r->i, iter, start, 5); r->i++) {
            double t0 = now_us();

            round_txn(h, r, &eagain);
            note(lat, r->i, t0, &start);
        }
        snprintf(op, sizeof(op), "txn%d", r->kw);
        report(op, n, lat, (size_t)r->i, eagain);
    }
}

/* A write the watcher times: from now to its xs_read_watch. */
static void watched_write(struct xs_handle *h, const char *path,
                          const char *v)
{
    atomic_store(&sh->t0, now_us());
    atomic_fetch_add(&sh->posted, 1);
    if (!put(h, XBT_NULL, path, v))
        die("xs_write (watch)");
    wait_ack();
}

static void measure(struct xs_handle *h, int n, double *lat)
{
    unsigned int m = ((unsigned int)n + 1) / 2, len;
    char target[96], smax[96], name[96], vmname[128], uuid[40], v[32];
    struct round r = {target, smax, name, vmname, m, 0, 0};
    long eagain = 0;
    double start;
    int i;

    uuid_of(m, uuid, sizeof(uuid));
    snprintf(target, sizeof(target), "/local/domain/%u/memory/target", m);
    snprintf(smax, sizeof(smax), "/local/domain/%u/memory/static-max", m);
    snprintf(name, sizeof(name), "/local/domain/%u/name", m);
    snprintf(vmname, sizeof(vmname), "/vm/%s/name", uuid);

    for (i = -WARMUP, start = now_us(); budget_left(i, iter, start); i++) {
        double t0 = now_us();
        char *got = xs_read(h, XBT_NULL, target, &len);

        note(lat, i, t0, &start);
        if (!got)
            die("xs_read");
        free(got);
    }
    report("read", n, lat, (size_t)i, -1);

    for (i = -WARMUP, start = now_us(); budget_left(i, iter, start); i++) {
        double t0;

        snprintf(v, sizeof(v), "%d", 524288 - (i & 1023));
        t0 = now_us();
        if (!put(h, XBT_NULL, target, v))
            die("xs_write");
        note(lat, i, t0, &start);
    }
    report("write", n, lat, (size_t)i, -1);

    for (r.i = -WARMUP, start = now_us(); budget_left(r.i, iter, start);
         r.i++) {
        double t0 = now_us();

        round_txn(h, &r, &eagain);
        note(lat, r.i, t0, &start);
    }
    report("txn4", n, lat, (size_t)r.i, eagain);
    measure_txn_sizes(h, n, lat, &r);

    /* Watch: our write -> the watcher's xs_read_watch returns. */
    struct cmd c = {.op = 'w', .count = watch_iter};
    int done = 0;

    snprintf(c.path, sizeof(c.path), "%s", target);
    /* The watcher takes exactly c.count events: tell it how many the
     * budget allows by stopping early with extra writes if needed. */
    if (write(to_watcher[1], &c, sizeof(c)) != (ssize_t)sizeof(c))
        die("watcher command");
    wait_ack();
    start = now_us();
    for (i = 0; i < watch_iter; i++) {
        snprintf(v, sizeof(v), "%d", 524288 - (i & 1023));
        watched_write(h, target, v);
        done++;
        if (i >= WARMUP + 20 && now_us() - start >= budget_us &&
            i + 1 < watch_iter)
            break;
    }
    /* Out of budget: the watcher still waits for events; give it the
     * rest as untimed writes (their latencies are dropped). */
    for (i = done; i < watch_iter; i++) {
        snprintf(v, sizeof(v), "x%d", i);
        watched_write(h, target, v);
    }
    wait_ack(); /* unwatched */
    /* The first WARMUP events are warm-up. */
    if (done > WARMUP) {
        memcpy(lat, sh->lat + WARMUP, (size_t)(done - WARMUP) * sizeof(*lat));
        report("watch", n, lat, (size_t)(done - WARMUP), -1);
    }
}

static int env_int(const char *name, int def, int max)
{
    const char *s = getenv(name);
    int v = s && *s ? atoi(s) : def;

    return v < 1 ? 1 : v > max ? max
                               : v;
}

int main(int argc, char **argv)
{
    int ns[16], nn = 0, have = 0, intro_failed = 0;
    bool introduce;
    struct xs_handle *h;
    double *lat, *intro;

    if (argc < 3) {
        fprintf(stderr, "usage: generic-bench LABEL N [N ...]\n");
        return 2;
    }
    label = argv[1];
    for (int i = 2; i < argc && nn < 16; i++) {
        ns[nn] = atoi(argv[i]);
        if (ns[nn] < 1 || ns[nn] > 30000 || (nn && ns[nn] <= ns[nn - 1])) {
            fprintf(stderr, "generic-bench: N must ascend, 1..30000\n");
            return 2;
        }
        nn++;
    }
    iter = env_int("BENCH_ITER", iter, MAX_ITER - WARMUP);
    watch_iter = env_int("BENCH_WATCH_ITER", watch_iter, MAX_ITER - WARMUP) +
                 WARMUP;
    budget_us = env_int("BENCH_BUDGET_MS", 3000, 3600000) * 1e3;
    if (getenv("BENCH_TXN_SIZES")) {
        char *dup = strdup(getenv("BENCH_TXN_SIZES")), *save = NULL;

        for (char *t = strtok_r(dup, " ,", &save); t && ntxn_sizes < 8;
             t = strtok_r(NULL, " ,", &save))
            if (atoi(t) > 0 && atoi(t) <= 4096)
                txn_sizes[ntxn_sizes++] = atoi(t);
        free(dup);
    }
    introduce = !(getenv("BENCH_NO_INTRODUCE") &&
                  strcmp(getenv("BENCH_NO_INTRODUCE"), "1") == 0);
    signal(SIGPIPE, SIG_IGN);

    start_watcher();
    if (!(h = xs_open(0)))
        die("xs_open");
    if (!(lat = calloc(MAX_ITER, sizeof(*lat))) ||
        !(intro = calloc(MAX_ITER, sizeof(*intro))))
        die("calloc");
    for (int k = 0; k < nn; k++) {
        double t0 = now_us();
        int from = have;

        size_t nrec = 0, nint = 0;

        for (int d = have + 1; d <= ns[k]; d++) {
            double t1 = now_us(), t2;

            populate_one(h, (unsigned int)d);
            t2 = now_us();
            lat[nrec++ % MAX_ITER] = t2 - t1;
            /* A refused introduction is counted and reported, not fatal:
             * the nodes measured here do not depend on it. */
            if (!introduce)
                continue;
            if (!xs_introduce_domain(h, (unsigned int)d, 0, 1) &&
                intro_failed++ == 0)
                fprintf(stderr, "generic-bench %s: xs_introduce_domain"
                                "(%d): %s (counted in introduce_failed=)\n",
                        label, d, strerror(errno));
            /* Timed whatever the outcome (the output says how many
             * failed). */
            intro[nint++ % MAX_ITER] = now_us() - t2;
        }
        /* The domains added for this N: their records' transaction and
         * their introduction, as two ops (not part of the steady state
         * measured below, but what xl create pays). */
        report("records", ns[k], lat, nrec < MAX_ITER ? nrec : MAX_ITER, -1);
        report("introduce", ns[k], intro, nint < MAX_ITER ? nint : MAX_ITER,
               -1);
        have = ns[k];
        printf("generic impl=%s op=populate n=%d domains=%d total_ms=%.1f "
               "introduced=%s introduce_failed=%d\n",
               label, ns[k], have - from, (now_us() - t0) / 1e3,
               introduce ? "yes" : "no", intro_failed);
        fflush(stdout);
        measure(h, ns[k], lat);
    }
    struct cmd q = {.op = 'q'};
    if (write(to_watcher[1], &q, sizeof(q)) != (ssize_t)sizeof(q))
        die("watcher command");
    waitpid(watcher, NULL, 0);
    watcher = -1;
    xs_close(h);
    free(lat);
    free(intro);
    return 0;
}
