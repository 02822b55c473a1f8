/*
 * compat-bench: the legacy driver pair and basic xs_* latencies through
 * whatever libxenstore.so.4 the dynamic linker finds, so the same binary
 * measures Debian's xenstored and oxenstored (XENSTORED_PATH) and
 * compat-xs with noxsd (LD_LIBRARY_PATH=build/lib/compat-xs).
 *
 *   compat-bench LABEL [N ...]      (default N: 10 100 1000)
 *
 * Starts $NOXS_BUILD/bin/legacy-back, then for domain 1..max(N): the
 * toolstack introduces the domain (not timed), then, timed: writes the
 * vif nodes in one transaction, the domain's frontend opens a handle and
 * connects (InitWait -> rings in a transaction -> Connected -> backend
 * Connected). Every earlier domain stays connected, with its nodes and
 * watches. For each N, the handshakes of domains N-9..N are reported, and
 * the total for 1..N (latency runs excluded). At each N, as domain 1's
 * frontend: xs_read of a device key, xs_write of one, xs_directory of the
 * 16-entry device directory, and a watch round trip (write ping, the
 * backend is woken and writes pong, we are woken): at the smallest N
 * these are the baseline's conditions (a nearly empty store), at larger
 * N they include the cost of N connections and 2N watches held.
 *
 * One line per result:
 *   compat daemon=LABEL op=OP n=N samples=S median_us=M p99_us=P
 * (op=handshake_total: total_ms=T). Nothing here asserts a timing.
 */
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

#include "../frontends/legacy/legacy.h"
#include "svc.h"

#define ITER 2000
#define RTT_ITER 500
#define TIMEOUT_MS 30000

static const char *label;
static pid_t backend_pid; /* legacy-back, stopped on every exit */

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

static void report(const char *op, int n, double *v, size_t count)
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
           "p99_us=%.2f\n",
           label, op, n, count, s[count / 2], s[p99]);
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

static struct xs_handle *open_as(unsigned int domid)
{
    char buf[16];
    struct xs_handle *h;

    snprintf(buf, sizeof(buf), "%u", domid);
    setenv("NOXS_SIM_DOMID", buf, 1);
    h = xs_open(0);
    setenv("NOXS_SIM_DOMID", "0", 1);
    return h;
}

/*
 * Latencies, as domain 1's frontend, on its device directory, measured
 * with n domains connected (all their handles, watches and nodes held):
 * once at the smallest N (the conditions of the baseline) and at every
 * other N, so growth with the store's size shows.
 */
static void latencies(struct xs_handle *h, int n, double *lat)
{
    const char *dir = "/local/domain/1/device/vif/0";
    char path[256], value[64], pong[256];
    unsigned int len, num = 0;

    for (int i = 0; i < 4; i++) { /* 12 nodes + 4 = 16 entries */
        snprintf(path, sizeof(path), "%s/extra-%d", dir, i);
        if (!xs_write(h, XBT_NULL, path, "x", 1))
            die("xs_write (setup)");
    }
    snprintf(path, sizeof(path), "%s/mac", dir);
    for (int i = 0; i < ITER; i++) {
        double t0 = now_us();
        char *v = xs_read(h, XBT_NULL, path, &len);
        lat[i] = now_us() - t0;
        if (!v)
            die("xs_read");
        free(v);
    }
    report("read", n, lat, ITER);
    snprintf(path, sizeof(path), "%s/bench", dir);
    for (int i = 0; i < ITER; i++) {
        double t0;
        snprintf(value, sizeof(value), "%d", i);
        t0 = now_us();
        if (!xs_write(h, XBT_NULL, path, value, (unsigned)strlen(value)))
            die("xs_write");
        lat[i] = now_us() - t0;
    }
    report("write", n, lat, ITER);
    for (int i = 0; i < ITER; i++) {
        double t0 = now_us();
        char **names = xs_directory(h, XBT_NULL, dir, &num);
        lat[i] = now_us() - t0;
        if (!names)
            die("xs_directory");
        free(names);
    }
    report("directory", n, lat, ITER);

    /* Watch round trip through the backend (legacy-back -p 1). */
    snprintf(pong, sizeof(pong), "/local/domain/0/backend/vif/1/0/pong");
    snprintf(path, sizeof(path), "%s/ping", dir);
    if (!xs_watch(h, pong, "pong"))
        die("xs_watch");
    for (int i = 0; i < RTT_ITER; i++) {
        double t0 = now_us();
        bool got = false;

        snprintf(value, sizeof(value), "%d-%d", n, i);
        if (!xs_write(h, XBT_NULL, path, value, (unsigned)strlen(value)))
            die("xs_write ping");
        while (!got) {
            unsigned int k;
            char **ev = xs_read_watch(h, &k);
            char *v;

            if (!ev)
                die("xs_read_watch");
            free(ev);
            v = xs_read(h, XBT_NULL, pong, &len);
            got = v && strcmp(v, value) == 0;
            free(v);
        }
        lat[i] = now_us() - t0;
    }
    report("watch_rtt", n, lat, RTT_ITER);
    if (!xs_unwatch(h, pong, "pong"))
        die("xs_unwatch");
    /* Drop events queued since the last read (the unwatch discards its
     * own on compat-xs; libxenstore may still hold some). */
    for (char **e; (e = xs_check_watch(h)) != NULL;)
        free(e);
}

int main(int argc, char **argv)
{
    int ns[8] = {10, 100, 1000}, nn = 3, maxn = 0;
    struct xs_handle *ts, **fe;
    struct legacy_front *front;
    double *hs, *lat;
    struct rlimit rl;
    pid_t back;

    if (argc < 2) {
        fprintf(stderr, "usage: compat-bench LABEL [N ...]\n");
        return 2;
    }
    label = argv[1];
    if (argc > 2) {
        nn = 0;
        for (int i = 2; i < argc && nn < 8; i++)
            ns[nn++] = atoi(argv[i]);
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
    ts = open_as(0);
    if (!ts)
        die("xs_open (toolstack)");
    fe = calloc((size_t)maxn + 1, sizeof(*fe));
    front = calloc((size_t)maxn + 1, sizeof(*front));
    hs = calloc((size_t)maxn + 1, sizeof(*hs));
    lat = calloc(ITER, sizeof(*lat));
    if (!fe || !front || !hs || !lat)
        die("calloc");

    double total_start = now_us();
    for (int d = 1; d <= maxn; d++) {
        double t0;

        if (!xs_introduce_domain(ts, (unsigned)d, 0, 1))
            die("xs_introduce_domain");
        t0 = now_us();
        if (legacy_toolstack_add(ts, (unsigned)d, "vif", 0, 0) < 0)
            die("toolstack add");
        fe[d] = open_as((unsigned)d);
        if (!fe[d])
            die("xs_open (frontend)");
        if (legacy_front_connect(&front[d], fe[d], (unsigned)d, "vif", 0,
                                 TIMEOUT_MS) < 0)
            die("frontend connect");
        hs[d] = now_us() - t0;
        for (int i = 0; i < nn; i++)
            if (d == ns[i]) {
                int from = d > 10 ? d - 9 : 1;
                report("handshake", d, &hs[from], (size_t)(d - from + 1));
                printf("compat daemon=%s op=handshake_total n=%d "
                       "total_ms=%.1f\n",
                       label, d, (now_us() - total_start) / 1e3);
                fflush(stdout);
                double l0 = now_us();
                latencies(fe[1], d, lat);
                total_start += now_us() - l0; /* not part of the total */
            }
    }

    kill(back, SIGTERM);
    waitpid(back, NULL, 0);
    return 0;
}
