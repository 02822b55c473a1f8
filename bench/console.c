/*
 * console: noxs console throughput and round-trip latency on the simulator.
 *
 *   console [MB [ROUNDTRIPS]]        defaults: 64 MB, 2000 round trips
 *
 * Starts its own noxsd and noxs-console-back in a temporary directory,
 * and two guests with console 0 each: domain 1 runs "cat" (an echo),
 * domain 2 "head -c MB" of zeros. (Two guests, not two consoles of one:
 * a domain's device page has one notify port, which one frontend process
 * binds.) Prints:
 *
 *   console op=out mib=.. mib_s=..            guest -> client stream
 *   console op=echo mib=.. mib_s=..           client -> guest -> client
 *   console op=rtt n=.. median_us=.. p99_us=..  one byte there and back
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>

#include "svc.h"

static char tmpdir[PATH_MAX / 2];
static pid_t pids[4] = {-1, -1, -1, -1};

static void cleanup(void)
{
    bench_services_stop(pids, 4, tmpdir, "console");
}

static int attach(const char *dir, unsigned int domid)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console-%u.0.sock", dir, domid);
    for (int i = 0; i < 2000; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        close(fd);
        usleep(10000);
    }
    bench_die("cannot attach to %s", sa.sun_path);
}

static size_t total;
static void *sender(void *arg)
{
    int fd = *(int *)arg;
    char buf[65536];
    size_t sent = 0;

    memset(buf, 'x', sizeof(buf));
    while (sent < total) {
        size_t n = total - sent < sizeof(buf) ? total - sent : sizeof(buf);
        ssize_t w = write(fd, buf, n);

        if (w <= 0)
            bench_die("send: %s", strerror(errno));
        sent += (size_t)w;
    }
    return NULL;
}

static void read_exactly(int fd, size_t n)
{
    static char buf[65536];

    while (n > 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;

        /* A guest that never answers must not hang the benchmark. */
        if (poll(&p, 1, 10000) != 1)
            bench_die("no console data within 10 s");
        r = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));
        if (r <= 0)
            bench_die("console closed early");
        n -= (size_t)r;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    unsigned int mb = argc > 1 ? (unsigned int)atoi(argv[1]) : 64;
    unsigned int rounds = argc > 2 ? (unsigned int)atoi(argv[2]) : 2000;
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const char *build = getenv("NOXS_BUILD");
    char bin[PATH_MAX / 2], sock[PATH_MAX], sim[PATH_MAX], cons[PATH_MAX],
        p1[PATH_MAX], p2[PATH_MAX], bytes[32], bootstr[64];
    struct noxs_boot boot, boot2;
    noxs_client *c;

    if (mb == 0 || rounds == 0)
        bench_die("usage: console [MB [ROUNDTRIPS]]");
    signal(SIGPIPE, SIG_IGN);
    if (build == NULL)
        bench_die("set NOXS_BUILD (make bench does)");
    snprintf(bin, sizeof(bin), "%s/bin", build);
    snprintf(tmpdir, sizeof(tmpdir), "%s/noxs-bench-cons.XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL)
        bench_die("mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    snprintf(sim, sizeof(sim), "%s/sim", tmpdir);
    snprintf(cons, sizeof(cons), "%s/cons", tmpdir);
    mkdir(sim, 0700);
    setenv("NOXS_SIM_DIR", sim, 1);

    c = bench_noxsd_start(bin, tmpdir, 1, sock, &pids[0]);
    snprintf(p1, sizeof(p1), "%s/noxs-console-back", bin);
    char *a1[] = {p1, "-d", "--socket", sock, "--dir", cons, NULL};
    pids[1] = bench_backend_start(c, a1, 1);
    if (noxs_domain_create(c, 1, &boot) < 0 ||
        noxs_dev_add(c, 1, NOXS_DEV_CONSOLE, 0, 0, NULL, 0) < 0 ||
        noxs_domain_create(c, 2, &boot2) < 0 ||
        noxs_dev_add(c, 2, NOXS_DEV_CONSOLE, 0, 0, NULL, 0) < 0)
        bench_die("domain/device setup: %s", strerror(errno));
    noxs_client_close(c);
    noxs_boot_format(&boot, bootstr, sizeof(bootstr));
    setenv("NOXS_SIM_DOMID", "1", 1);
    setenv("NOXS_BOOT", bootstr, 1);
    snprintf(p2, sizeof(p2), "%s/noxs-console-front", bin);
    snprintf(bytes, sizeof(bytes), "%zu", (size_t)mb << 20);
    char *a2[] = {p2, "--", "cat", NULL};
    pids[2] = bench_spawn(a2, 1);
    noxs_boot_format(&boot2, bootstr, sizeof(bootstr));
    setenv("NOXS_SIM_DOMID", "2", 1);
    setenv("NOXS_BOOT", bootstr, 1);
    char *a3[] = {p2, "--", "head", "-c", bytes, "/dev/zero", NULL};
    pids[3] = bench_spawn(a3, 1);

    /* guest -> client */
    int out = attach(cons, 2);
    double t0 = bench_now_s();
    read_exactly(out, (size_t)mb << 20);
    double t1 = bench_now_s();
    printf("console op=out mib=%u mib_s=%.1f\n", mb, mb / (t1 - t0));
    fflush(stdout);
    close(out);

    /* round trips through the echo guest */
    int echo = attach(cons, 1);
    double *lat = calloc(rounds, sizeof(*lat));
    for (unsigned int i = 0; i < rounds; i++) {
        char ch = 'p';
        double s = bench_now_s();

        if (write(echo, &ch, 1) != 1)
            bench_die("write: %s", strerror(errno));
        read_exactly(echo, 1);
        lat[i] = (bench_now_s() - s) * 1e6;
    }
    qsort(lat, rounds, sizeof(*lat), cmp_double);
    printf("console op=rtt n=%u median_us=%.1f p99_us=%.1f\n", rounds,
           lat[rounds / 2], lat[rounds * 99 / 100]);
    fflush(stdout);

    /* client -> guest -> client */
    pthread_t t;
    total = ((size_t)mb << 20) / 4;
    t0 = bench_now_s();
    pthread_create(&t, NULL, sender, &echo);
    read_exactly(echo, total);
    pthread_join(t, NULL);
    t1 = bench_now_s();
    printf("console op=echo mib=%zu mib_s=%.1f\n", total >> 20,
           (double)(total >> 20) / (t1 - t0));
    close(echo);
    free(lat);
    return 0;
}
