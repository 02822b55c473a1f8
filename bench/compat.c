/*
 * compat-bench: the legacy driver pair and basic xs_* latencies through
 * whatever libxenstore.so.4 the dynamic linker finds, so the same binary
 * measures Debian's xenstored and oxenstored (XENSTORED_PATH) and
 * compat-xs with noxsd (LD_LIBRARY_PATH=build/lib/compat-xs).
 *
 *   compat-bench [--ring|--sockets] LABEL [N ...]   (default N: 10 100 1000)
 *
 * Starts $NOXS_BUILD/bin/legacy-back, then for domain 1..max(N): the
 * toolstack introduces the domain (not timed), then, timed: writes the
 * vif nodes in one transaction, the domain's frontend connects (InitWait
 * -> rings in a transaction -> Connected -> backend Connected). Every
 * earlier domain stays connected, with its nodes and watches. For each
 * N, the handshakes of domains N-9..N are reported, and the total for
 * 1..N (latency runs excluded). At each N, as domain 1's frontend:
 * xs_read of a device key, xs_write of one, xs_directory of the 16-entry
 * device directory, and a watch round trip (write ping, the backend is
 * woken and writes pong, we are woken): at the smallest N these are the
 * baseline's conditions (a nearly empty store), at larger N they include
 * the cost of N connections and 2N watches held.
 *
 * How a guest reaches the daemon (Debian's daemons run as domain 0 of
 * the simulator, tests/compat/xsd.sh with XSD_SIM=1 and the same
 * NOXS_SIM_DIR):
 *   --ring     each guest has a store ring in its own memory and an event
 *              channel, introduced with INTRODUCE (domid, frame, port);
 *              its frontend speaks the ring protocol (bench/xsrclient.c),
 *              as Linux's xenbus does. The daemon sees one connection
 *              per guest, its ring: the configuration of a Xen host.
 *   --sockets  the same introduced rings, idle, and every frontend opens
 *              its own dom0 Unix socket, keeps it open and sends its
 *              requests over it: N more connections the daemon polls on
 *              every pass of its main loop, like a host where xl leaves a
 *              monitor process with a socket per domain.
 *   (neither)  sockets, no ring: for compat-xs, whose guests act as their
 *              domain on noxsd (NOXS_SIM_DOMID).
 *
 * One line per result:
 *   compat daemon=LABEL op=OP n=N samples=S median_us=M p99_us=P
 *       min_us=A max_us=Z
 * (op=handshake_total: total_ms=T). With BENCH_DAEMON_PID set, also at
 * each N the daemon's open file descriptors, which show how many
 * connections it polls (op=daemon_fds: fds=F guests=ring|sockets), and
 * its resident memory and growth per domain since before the first
 * domain (op=daemon_rss: rss_kib=R base_kib=B per_domain_b=P).
 * Where this process holds every guest's handle (compat-xs, --sockets),
 * after the hundredth guest (or half the largest N) it prints the fds a
 * guest costs it (op=bench_fds: fds=F per_guest=G, from the 11th guest
 * on) and stops at once, with the figures, if the largest N would not
 * fit its RLIMIT_NOFILE.
 * BENCH_LAT=0 skips the latency runs (handshakes only, bench/ringd.sh).
 * Nothing here asserts a timing.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>

#include "../tests/legacy/legacy.h"
#include "procrss.h"
#include "svc.h"
#include "xsrclient.h"

#define ITER 2000 /* BENCH_ITER overrides (smoke tests) */
#define TIMEOUT_MS 30000

static const char *label;
static int iter = ITER, rtt_iter = ITER / 4;
static enum { GUEST_SOCKET,
              GUEST_RING,
              GUEST_RING_IDLE } guests;
static struct xsrc *rings; /* per domain, --ring and --sockets */
static pid_t backend_pid;  /* legacy-back, stopped on every exit */

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *op, int n, const double *v, size_t count)
{
    double *s = malloc(count * sizeof(*s));
    size_t p99;

    if (!s || count == 0) {
        free(s);
        return;
    }
    memcpy(s, v, count * sizeof(*s));
    qsort(s, count, sizeof(*s), cmp_double);
    p99 = (size_t)((double)count * 0.99);
    if (p99 >= count)
        p99 = count - 1;
    printf("compat daemon=%s op=%s n=%d samples=%zu median_us=%.2f "
           "p99_us=%.2f min_us=%.2f max_us=%.2f\n",
           label, op, n, count, s[count / 2], s[p99], s[0], s[count - 1]);
    fflush(stdout);
    free(s);
}

static void die(const char *what)
{
    fprintf(stderr, "compat-bench %s: %s: %s\n", label, what,
            strerror(errno));
    if (backend_pid > 0)
        kill(backend_pid, SIGTERM);
    exit(1);
}

/* Start legacy-back and wait for its "ready". */
static pid_t start_backend(void)
{
    char *args[] = {"-p", "1", NULL};
    pid_t pid = bench_legacy_back_start(args);

    if (pid < 0)
        die("legacy-back did not start");
    return pid;
}

/*
 * Domain 1's frontend for the latency runs: its xs handle, or its ring.
 * Each returns 0 or -1 (die() on the caller's side).
 */
static struct xs_handle *lat_xs;
static struct xsrc *lat_ring;

static int fe_read(const char *path, char *out, size_t outlen)
{
    unsigned int len;
    uint32_t rlen;
    char *v = lat_ring ? xsrc_read(lat_ring, 0, path, &rlen)
                       : xs_read(lat_xs, XBT_NULL, path, &len);

    if (!v)
        return -1;
    if (out)
        snprintf(out, outlen, "%s", v);
    free(v);
    return 0;
}

static int fe_write(const char *path, const char *value)
{
    if (lat_ring)
        return xsrc_write(lat_ring, 0, path, value);
    return xs_write(lat_xs, XBT_NULL, path, value,
                    (unsigned)strlen(value))
               ? 0
               : -1;
}

static int fe_directory(const char *path)
{
    unsigned int num = 0;
    char **names;

    if (lat_ring)
        return xsrc_directory(lat_ring, 0, path) < 0 ? -1 : 0;
    names = xs_directory(lat_xs, XBT_NULL, path, &num);
    free(names);
    return names ? 0 : -1;
}

static int fe_watch(const char *path, const char *token, bool on)
{
    if (lat_ring)
        return on ? xsrc_watch(lat_ring, path, token)
                  : xsrc_unwatch(lat_ring, path, token);
    return (on ? xs_watch(lat_xs, path, token)
               : xs_unwatch(lat_xs, path, token))
               ? 0
               : -1;
}

/* Block for the next watch event (bounded on the ring). */
static int fe_next_event(void)
{
    unsigned int k;
    char **ev;

    if (lat_ring)
        return xsrc_wait_event(lat_ring, TIMEOUT_MS, NULL) == 1 ? 0 : -1;
    ev = xs_read_watch(lat_xs, &k);
    free(ev);
    return ev ? 0 : -1;
}

static void fe_drop_events(void)
{
    if (lat_ring) {
        xsrc_drop_events(lat_ring);
        return;
    }
    /* The unwatch discards its own on compat-xs; libxenstore may still
     * hold some. */
    for (char **e; (e = xs_check_watch(lat_xs)) != NULL;)
        free(e);
}

/*
 * Latencies, as domain 1's frontend, on its device directory, measured
 * with n domains connected (all their handles, watches and nodes held):
 * once at the smallest N (the conditions of the baseline) and at every
 * other N, so growth with the store's size shows.
 */
static void latencies(int n, double *lat)
{
    const char *dir = "/local/domain/1/device/vif/0";
    char path[256], value[64], pong[256], got_v[64];

    for (int i = 0; i < 4; i++) { /* 12 nodes + 4 = 16 entries */
        snprintf(path, sizeof(path), "%s/extra-%d", dir, i);
        if (fe_write(path, "x") < 0)
            die("xs_write (setup)");
    }
    snprintf(path, sizeof(path), "%s/mac", dir);
    for (int i = 0; i < iter; i++) {
        double t0 = now_us();
        int rc = fe_read(path, NULL, 0);
        lat[i] = now_us() - t0;
        if (rc < 0)
            die("xs_read");
    }
    report("read", n, lat, (size_t)iter);
    snprintf(path, sizeof(path), "%s/bench", dir);
    for (int i = 0; i < iter; i++) {
        double t0;
        snprintf(value, sizeof(value), "%d", i);
        t0 = now_us();
        if (fe_write(path, value) < 0)
            die("xs_write");
        lat[i] = now_us() - t0;
    }
    report("write", n, lat, (size_t)iter);
    for (int i = 0; i < iter; i++) {
        double t0 = now_us();
        int rc = fe_directory(dir);
        lat[i] = now_us() - t0;
        if (rc < 0)
            die("xs_directory");
    }
    report("directory", n, lat, (size_t)iter);

    /* Watch round trip through the backend (legacy-back -p 1). */
    snprintf(pong, sizeof(pong), "/local/domain/0/backend/vif/1/0/pong");
    snprintf(path, sizeof(path), "%s/ping", dir);
    if (fe_watch(pong, "pong", true) < 0)
        die("xs_watch");
    for (int i = 0; i < rtt_iter; i++) {
        double t0 = now_us();
        bool got = false;

        snprintf(value, sizeof(value), "%d-%d", n, i);
        if (fe_write(path, value) < 0)
            die("xs_write ping");
        while (!got) {
            if (fe_next_event() < 0)
                die("xs_read_watch");
            got = fe_read(pong, got_v, sizeof(got_v)) == 0 &&
                  strcmp(got_v, value) == 0;
        }
        lat[i] = now_us() - t0;
    }
    report("watch_rtt", n, lat, (size_t)rtt_iter);
    if (fe_watch(pong, "pong", false) < 0)
        die("xs_unwatch");
    fe_drop_events();
}

/* The open fds of process PID ("self" for ours), -1 if unknown. */
static int proc_fds(const char *pid)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%s/fd", pid);
    if (!(d = opendir(path)))
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return strcmp(pid, "self") == 0 ? n - 1 : n; /* not the stream's own */
}

/* The daemon's open fds (-1 if unknown): its sockets show in them. */
static int daemon_fds(void)
{
    const char *pid = getenv("BENCH_DAEMON_PID");

    return pid && *pid ? proc_fds(pid) : -1;
}

/* The daemon's resident memory in KiB (VmRSS), -1 if unknown. */
static long daemon_rss_kib(void)
{
    const char *pid = getenv("BENCH_DAEMON_PID");

    return pid && *pid ? bench_proc_rss_kb(atol(pid)) : -1;
}

/* Our own fds after the FD_MARK-th guest; at the FD_PROBE-th (or at
 * half the largest N, if fewer), the marginal fds a guest costs this
 * process. */
static int fds_mark = -1;
#define FD_MARK 10
#define FD_PROBE 100

/*
 * Every guest's handle and frontend stay open, so the largest N must fit
 * this process's RLIMIT_NOFILE. Measure what a guest costs between the
 * FD_MARK-th and the FD_PROBE-th and stop now, with the figures, rather
 * than after minutes of handshakes.
 */
static void check_fd_budget(int d, int maxn)
{
    struct rlimit rl;
    int now = proc_fds("self");
    double per;
    long long need;

    if (d == FD_MARK && maxn > FD_MARK) {
        fds_mark = now;
        return;
    }
    if (fds_mark < 0 || now < 0 || d <= FD_MARK ||
        getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    per = (double)(now - fds_mark) / (d - FD_MARK);
    need = now + (long long)(per * (maxn - d) + 0.5) + 16;
    printf("compat daemon=%s op=bench_fds n=%d fds=%d per_guest=%.2f\n",
           label, d, now, per);
    fflush(stdout);
    if (need > (long long)rl.rlim_cur) {
        fprintf(stderr,
                "compat-bench %s: N=%d needs about %lld fds in this process "
                "(%.2f per guest), RLIMIT_NOFILE is %llu\n",
                label, maxn, need, per, (unsigned long long)rl.rlim_cur);
        if (backend_pid > 0)
            kill(backend_pid, SIGTERM);
        exit(1);
    }
}

/* Memory of the daemon before the first domain (KiB, -1 if unknown). */
static long rss_base = -1;
/* Every latency run is skipped with BENCH_LAT=0 (handshakes only). */
static bool no_latencies;

/*
 * Domain d is one of the N asked for: report the handshakes of the last
 * ten domains, the running total, the daemon's fds and memory, then the
 * latency runs (not counted in the total).
 */
static void at_n(int d, const double *hs, double *total_start,
                 struct xs_handle *fe1, double *lat)
{
    int from = d > 10 ? d - 9 : 1, nfd = daemon_fds();
    long rss = daemon_rss_kib();
    double l0;

    report("handshake", d, &hs[from], (size_t)(d - from + 1));
    printf("compat daemon=%s op=handshake_total n=%d total_ms=%.1f\n", label,
           d, (now_us() - *total_start) / 1e3);
    if (nfd >= 0)
        printf("compat daemon=%s op=daemon_fds n=%d fds=%d guests=%s\n",
               label, d, nfd, guests == GUEST_RING ? "ring" : "sockets");
    /* Growth since before the first domain, per domain: what N guests
     * cost the daemon (its store, connections and mappings). */
    if (rss >= 0 && rss_base >= 0)
        printf("compat daemon=%s op=daemon_rss n=%d rss_kib=%ld "
               "base_kib=%ld per_domain_b=%ld\n",
               label, d, rss, rss_base, (rss - rss_base) * 1024 / d);
    fflush(stdout);
    if (no_latencies)
        return;
    l0 = now_us();
    lat_ring = guests == GUEST_RING ? &rings[1] : NULL;
    lat_xs = fe1;
    latencies(d, lat);
    *total_start += now_us() - l0; /* not part of the total */
}

static void usage(void)
{
    fprintf(stderr, "usage: compat-bench [--ring|--sockets] LABEL [N ...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int ns[8] = {10, 100, 1000}, nn = 3, maxn = 0, a = 1;
    struct xs_handle *ts, **fe;
    struct legacy_front *front;
    double *hs, *lat;
    struct rlimit rl;
    pid_t back;

    if (a < argc && strcmp(argv[a], "--ring") == 0) {
        guests = GUEST_RING;
        a++;
    } else if (a < argc && strcmp(argv[a], "--sockets") == 0) {
        guests = GUEST_RING_IDLE;
        a++;
    }
    if (a >= argc || argv[a][0] == '-')
        usage();
    label = argv[a++];
    if (a < argc) {
        nn = 0;
        for (; a < argc && nn < 8; a++)
            ns[nn++] = atoi(argv[a]);
    }
    if (getenv("BENCH_ITER") && atoi(getenv("BENCH_ITER")) > 0) {
        iter = atoi(getenv("BENCH_ITER"));
        rtt_iter = iter / 4 > 0 ? iter / 4 : 1;
    }
    for (int i = 0; i < nn; i++)
        if (ns[i] > maxn)
            maxn = ns[i];
    /* Every domain's frontend stays open: a few fds each. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    back = backend_pid = start_backend();
    ts = xsrc_xs_open_as(0);
    if (!ts)
        die("xs_open (toolstack)");
    fe = calloc((size_t)maxn + 1, sizeof(*fe));
    front = calloc((size_t)maxn + 1, sizeof(*front));
    rings = calloc((size_t)maxn + 1, sizeof(*rings));
    hs = calloc((size_t)maxn + 1, sizeof(*hs));
    lat = calloc((size_t)iter, sizeof(*lat));
    if (!fe || !front || !rings || !hs || !lat)
        die("calloc");

    no_latencies = getenv("BENCH_LAT") && strcmp(getenv("BENCH_LAT"), "0") == 0;
    rss_base = daemon_rss_kib();
    double total_start = now_us();
    int probe = maxn / 2 < FD_PROBE ? maxn / 2 : FD_PROBE;
    for (int d = 1; d <= maxn; d++) {
        unsigned long frame = 0;
        unsigned int port = 1;
        double t0;

        /* Domain creation, not timed: the guest's store ring and port
         * (as the domain builder and the guest's xenbus would set them
         * up), then the toolstack's INTRODUCE. */
        if (guests != GUEST_SOCKET) {
            if (xsrc_open(&rings[d], (unsigned)d, XSRC_STORE_GFN) < 0)
                die("store ring (is NOXS_SIM_DIR the daemon's?)");
            frame = XSRC_STORE_GFN;
            port = rings[d].port;
        }
        if (!xs_introduce_domain(ts, (unsigned)d, frame, port))
            die("xs_introduce_domain");
        t0 = now_us();
        if (legacy_toolstack_add(ts, (unsigned)d, "vif", 0, 0) < 0)
            die("toolstack add");
        if (guests == GUEST_RING) {
            if (xsrc_front_connect(&rings[d], "vif", 0, TIMEOUT_MS) < 0)
                die("frontend connect (ring)");
        } else {
            fe[d] = xsrc_xs_open_as((unsigned)d);
            if (!fe[d])
                die("xs_open (frontend)");
            if (legacy_front_connect(&front[d], fe[d], (unsigned)d, "vif", 0,
                                     TIMEOUT_MS) < 0)
                die("frontend connect");
        }
        hs[d] = now_us() - t0;
        if ((d == FD_MARK || d == probe) && guests != GUEST_RING)
            check_fd_budget(d, maxn);
        for (int i = 0; i < nn; i++)
            if (d == ns[i])
                at_n(d, hs, &total_start, fe[1], lat);
    }

    if (guests == GUEST_RING)
        printf("compat daemon=%s op=ring_slow_wakeups count=%lu\n", label,
               xsrc_slow_wakeups);
    kill(back, SIGTERM);
    waitpid(back, NULL, 0);
    for (int d = 1; d <= maxn; d++) {
        if (guests != GUEST_SOCKET)
            xsrc_close(&rings[d]);
        if (fe[d])
            xs_close(fe[d]);
    }
    xs_close(ts);
    free(fe);
    free(front);
    free(rings);
    free(hs);
    free(lat);
    return 0;
}
