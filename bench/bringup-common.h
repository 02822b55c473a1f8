/*
 * Shared by bench/bringup.c (native libnoxs) and bench/xsbringup.c
 * (legacy xs_* pair): K toolstack processes bring up N domains with one
 * device each, and the parent measures wall time, per-device latency,
 * dom0 daemon memory and CPU, and client CPU.
 *
 * Structure: the parent forks K workers; each opens its toolstack handle,
 * says "ready" and waits for "go"; the parent notes the daemons' RSS and
 * CPU (from /proc/<pid>/status and /proc/<pid>/stat of every pid in
 * $BENCH_DAEMON_PIDS), releases the workers at once and stops the clock
 * when the last one has reported. Worker k handles domains
 * first+k, first+k+K, ...; every domain stays up (its device connected)
 * until all workers are done. Then the parent notes the daemons again,
 * and the workers release everything and exit.
 *
 * BENCH_AT_PEAK=CMD (development) runs CMD through the shell while every
 * domain is up, right after the second reading: docs/BENCHMARKS.md's
 * breakdown of noxsd's memory read /proc/PID/smaps there.
 *
 * Output, one line (keys are what bench/report.py reads):
 *   bringup impl=I n=N k=K total_ms=.. dev_median_us=.. dev_p99_us=..
 *     daemon_rss0_kb=.. daemon_rss1_kb=.. rss_per_domain_kb=..
 *     daemon_cpu_us_per_dev=.. client_cpu_us_per_dev=.. shared_pages=..
 */
#ifndef NOXS_BENCH_BRINGUP_COMMON_H
#define NOXS_BENCH_BRINGUP_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procrss.h"

#define BU_MAX_K 64

static const char *bu_impl = "?";

static void bu_die(const char *what)
{
    fprintf(stderr, "bringup %s: %s: %s\n", bu_impl, what, strerror(errno));
    exit(1);
}

static double bu_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/*
 * CPU time (user + system, all threads) of pid in microseconds, -1 if
 * gone: the process CPU clock (ns resolution), else utime+stime from
 * /proc/<pid>/stat (clock-tick resolution).
 */
static double bu_proc_cpu_us(long pid)
{
    clockid_t clk;
    struct timespec cts;
    unsigned long long t[2]; /* utime, stime */

    if (clock_getcpuclockid((pid_t)pid, &clk) == 0 &&
        clock_gettime(clk, &cts) == 0)
        return (double)cts.tv_sec * 1e6 + (double)cts.tv_nsec / 1e3;
    if (bench_proc_stat(pid, 14, t, 2) < 0)
        return -1;
    return (double)(t[0] + t[1]) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* The pids in $BENCH_DAEMON_PIDS (space or comma separated), at most
 * max of them: how many. */
static size_t bu_daemon_pids(long *pids, size_t max)
{
    const char *env = getenv("BENCH_DAEMON_PIDS");
    char *s, *tok, *save = NULL;
    size_t n = 0;

    if (!env || !(s = strdup(env)))
        return 0;
    for (tok = strtok_r(s, " ,", &save); tok && n < max;
         tok = strtok_r(NULL, " ,", &save))
        pids[n++] = atol(tok);
    free(s);
    return n;
}

/* Sum of a /proc/PID/status field (KiB: "VmRSS:", "RssAnon:") over
 * $BENCH_DAEMON_PIDS. */
static long bu_daemons_status(const char *key)
{
    long pids[16], sum = 0;
    size_t n = bu_daemon_pids(pids, 16);

    for (size_t i = 0; i < n; i++) {
        long v = bench_proc_status(pids[i], key);

        if (v > 0)
            sum += v;
    }
    return sum;
}

/* CPU time and VmRSS summed over $BENCH_DAEMON_PIDS. */
static void bu_daemons(double *cpu_us, long *rss_kb)
{
    long pids[16];
    size_t n = bu_daemon_pids(pids, 16);

    *cpu_us = 0;
    for (size_t i = 0; i < n; i++) {
        double c = bu_proc_cpu_us(pids[i]);

        if (c > 0)
            *cpu_us += c;
    }
    *rss_kb = bu_daemons_status("VmRSS:");
}

static double bu_self_cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Active grants in the simulator ($NOXS_BUILD/sim/noxs-simstat), or 0. */
static long bu_shared_pages(void)
{
    const char *build = getenv("NOXS_BUILD");
    char cmd[4200], buf[4096];
    long pages = 0;
    size_t n;
    FILE *p;
    char *t;

    if (!build || !getenv("NOXS_SIM_DIR"))
        return 0;
    snprintf(cmd, sizeof(cmd), "'%s/sim/noxs-simstat' --json --no-reap 2>/dev/null"
                               " | tail -c 4000",
             build);
    p = popen(cmd, "r");
    if (!p)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, p);
    pclose(p);
    buf[n] = '\0';
    t = strstr(buf, "\"total\"");
    if (t && (t = strstr(t, "\"grants_active\":")))
        pages = atol(t + 16);
    return pages;
}

static int bu_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double bu_pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);

    return v[i < n ? i : n - 1];
}

#ifndef BU_MEASURE_ONLY
/* What follows drives K workers; BU_MEASURE_ONLY takes only the
 * measuring helpers above (bench/xsbringup3.c has a driver of its own). */

/* The one helper each program starts in bu_setup (its backend). */
static pid_t backend = -1;

/* Parent, after the workers were released: the backend's CPU so far (us). */
static double bu_helpers_cpu_us(void)
{
    return bu_proc_cpu_us(backend);
}

/* Parent, at the end: stop the backend. */
static void bu_teardown(void)
{
    if (backend > 0) {
        kill(backend, SIGTERM);
        waitpid(backend, NULL, 0);
    }
}

/* ---- what each program provides ---- */

/* Parent, before forking: start the backend; returns 0 or -1. */
static int bu_setup(void);
/* Worker: open the toolstack handle etc. (before "ready"). */
static int bu_worker_init(int k, int K, int ndom);
/* Worker: bring up domid with one device; 0 or -1. */
static int bu_bring_up(unsigned int domid);
/* Worker: CPU of the worker's own helpers (frontend processes), us. */
static double bu_worker_extra_cpu_us(void);
/* Worker: release everything (after the parent says so). */
static void bu_worker_fini(void);

struct bu_result {
    double cpu_us; /* worker + its helpers, during the run */
    int count;
    int failed;
};

static int bu_worker(int k, int K, int n, unsigned int first, int rfd,
                     int wfd)
{
    int mine = n / K + (k < n % K);
    double *lat = calloc((size_t)mine + 1, sizeof(*lat));
    struct bu_result r = {0};
    double cpu0;
    char c;

    if (!lat || bu_worker_init(k, K, mine) < 0)
        return 1;
    if (write(wfd, "r", 1) != 1 || read(rfd, &c, 1) != 1)
        return 1;
    cpu0 = bu_self_cpu_us() + bu_worker_extra_cpu_us();
    for (int j = 0; j < mine; j++) {
        unsigned int domid = first + (unsigned int)k + (unsigned int)(j * K);
        double t0 = bu_now_us();

        if (bu_bring_up(domid) < 0) {
            fprintf(stderr, "bringup %s: domain %u: %s\n", bu_impl, domid,
                    strerror(errno));
            r.failed = 1;
            break;
        }
        lat[r.count++] = bu_now_us() - t0;
    }
    r.cpu_us = bu_self_cpu_us() + bu_worker_extra_cpu_us() - cpu0;
    if (write(wfd, &r, sizeof(r)) != (ssize_t)sizeof(r) ||
        write(wfd, lat, sizeof(*lat) * (size_t)r.count) !=
            (ssize_t)(sizeof(*lat) * (size_t)r.count))
        return 1;
    /* Keep everything up until the parent closes our pipe. */
    while (read(rfd, &c, 1) > 0)
        ;
    bu_worker_fini();
    return r.failed;
}

static int readall(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t m = read(fd, p, len);

        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            return -1;
        p += m;
        len -= (size_t)m;
    }
    return 0;
}

static int bu_main(int argc, char **argv)
{
    int n, K, go[BU_MAX_K][2], res[BU_MAX_K][2], status = 0;
    unsigned int first = 1;
    pid_t pids[BU_MAX_K];
    double *lat, t0, t1, dcpu0, dcpu1, hcpu0, hcpu1, ccpu = 0;
    long rss0, rss1, pages;
    size_t nlat = 0;
    struct rlimit rl;
    char c;

    if (argc < 4) {
        fprintf(stderr, "usage: %s IMPL N K [FIRST_DOMID]\n", argv[0]);
        return 2;
    }
    bu_impl = argv[1];
    n = atoi(argv[2]);
    K = atoi(argv[3]);
    if (argc > 4)
        first = (unsigned int)atoi(argv[4]);
    if (n < 1 || K < 1 || K > BU_MAX_K || K > n) {
        fprintf(stderr, "bringup: need 1 <= K <= min(N, %d)\n", BU_MAX_K);
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    lat = calloc((size_t)n, sizeof(*lat));
    if (!lat)
        bu_die("calloc");
    if (bu_setup() < 0)
        bu_die("setup");
    for (int k = 0; k < K; k++) {
        if (pipe2(go[k], O_CLOEXEC) < 0 || pipe2(res[k], O_CLOEXEC) < 0)
            bu_die("pipe");
        pids[k] = fork();
        if (pids[k] < 0)
            bu_die("fork");
        if (pids[k] == 0) {
            for (int j = 0; j <= k; j++) {
                close(go[j][1]);
                close(res[j][0]);
            }
            _exit(bu_worker(k, K, n, first, go[k][0], res[k][1]));
        }
        close(go[k][0]);
        close(res[k][1]);
    }
    for (int k = 0; k < K; k++)
        if (read(res[k][0], &c, 1) != 1)
            bu_die("worker did not start");
    bu_daemons(&dcpu0, &rss0);
    hcpu0 = bu_helpers_cpu_us();
    t0 = bu_now_us();
    for (int k = 0; k < K; k++)
        if (write(go[k][1], "g", 1) != 1)
            bu_die("go");
    for (int k = 0; k < K; k++) {
        struct bu_result r;

        if (readall(res[k][0], &r, sizeof(r)) < 0 ||
            readall(res[k][0], lat + nlat, sizeof(*lat) * (size_t)r.count) < 0)
            bu_die("worker result");
        nlat += (size_t)r.count;
        ccpu += r.cpu_us;
        if (r.failed)
            status = 1;
    }
    t1 = bu_now_us();
    bu_daemons(&dcpu1, &rss1);
    hcpu1 = bu_helpers_cpu_us();
    /* Development: look at the daemons while every domain is up (e.g. a
     * breakdown of their memory from /proc/PID/smaps). */
    if (getenv("BENCH_AT_PEAK") && system(getenv("BENCH_AT_PEAK")) != 0)
        fprintf(stderr, "bringup: BENCH_AT_PEAK failed\n");
    pages = bu_shared_pages();
    for (int k = 0; k < K; k++)
        close(go[k][1]);
    for (int k = 0; k < K; k++) {
        int st;

        waitpid(pids[k], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            status = 1;
    }
    bu_teardown();
    if (nlat == 0 || status != 0) {
        fprintf(stderr, "bringup %s: failed (%zu of %d domains up)\n", bu_impl,
                nlat, n);
        free(lat);
        return 1;
    }
    qsort(lat, nlat, sizeof(*lat), bu_cmp);
    printf("bringup impl=%s n=%d k=%d total_ms=%.1f dev_median_us=%.1f "
           "dev_p99_us=%.1f daemon_rss0_kb=%ld daemon_rss1_kb=%ld "
           "rss_per_domain_kb=%.2f daemon_cpu_us_per_dev=%.1f "
           "client_cpu_us_per_dev=%.1f shared_pages=%ld\n",
           bu_impl, n, K, (t1 - t0) / 1e3, bu_pct(lat, nlat, 0.5),
           bu_pct(lat, nlat, 0.99), rss0, rss1, (double)(rss1 - rss0) / n,
           (dcpu1 - dcpu0) / n, (ccpu + hcpu1 - hcpu0) / n, pages);
    free(lat);
    return 0;
}

#endif /* BU_MEASURE_ONLY */

#endif
