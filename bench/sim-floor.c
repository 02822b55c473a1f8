/*
 * sim-floor: the simulator's cost floor, for comparison with everything
 * built on it.
 *
 *   sim-floor [N]     (default 100000 round trips)
 *
 * Prints one line per result:
 *   sim-floor notify_rtt median_us=.. p99_us=.. n=..
 *       xenevtchn_notify -> other process wakes in poll(xenevtchn_fd),
 *       pending() returns the port, unmask, notifies back; round trip.
 *   sim-floor grant_map_unmap median_us=.. p99_us=.. n=..
 *       xengnttab_map_grant_ref + xengnttab_unmap of one page (N/10).
 *   sim-floor unix_dgram_rtt median_us=.. p99_us=.. n=..
 *       the same round trip over a plain Unix datagram socket pair.
 * Run with LD_LIBRARY_PATH=build/sim (or on Xen). Uses NOXS_SIM_DIR if
 * set, else a private directory under /dev/shm removed at exit.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>

static char private_dir[256];

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void report(const char *name, uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    printf("sim-floor %s median_us=%.2f p99_us=%.2f n=%zu\n", name,
           ns[n / 2] / 1000.0, ns[(n * 99) / 100] / 1000.0, n);
    fflush(stdout);
}

static void die(const char *what)
{
    fprintf(stderr, "sim-floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void as(unsigned domid)
{
    char b[16];

    snprintf(b, sizeof(b), "%u", domid);
    setenv("NOXS_SIM_DOMID", b, 1);
}

static int wait_port(xenevtchn_handle *h)
{
    struct pollfd p = {.fd = xenevtchn_fd(h), .events = POLLIN};

    while (poll(&p, 1, -1) != 1)
        if (errno != EINTR)
            return -1;
    int port = xenevtchn_pending(h);
    if (port > 0)
        xenevtchn_unmask(h, (evtchn_port_t)port);
    return port;
}

static void bench_notify(size_t n)
{
    uint64_t *ns = calloc(n, sizeof(*ns));
    int sync[2];

    as(1);
    xenevtchn_handle *e = xenevtchn_open(NULL, 0);
    if (!ns || !e || pipe(sync) < 0)
        die("notify setup");
    int port = xenevtchn_bind_unbound_port(e, 2);
    if (port < 0)
        die("bind_unbound_port");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        as(2);
        xenevtchn_handle *c = xenevtchn_open(NULL, 0);
        int local = c ? xenevtchn_bind_interdomain(c, 1,
                                                   (evtchn_port_t)port)
                      : -1;
        if (local < 0 || wait_port(c) != local)
            _exit(1);
        xenevtchn_notify(c, (evtchn_port_t)local);
        for (size_t i = 0; i < n; i++) {
            if (wait_port(c) != local)
                _exit(2);
            xenevtchn_notify(c, (evtchn_port_t)local);
        }
        _exit(0);
    }
    if (wait_port(e) != port)
        die("child ready");
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        xenevtchn_notify(e, (evtchn_port_t)port);
        if (wait_port(e) != port)
            die("round trip");
        ns[i] = now_ns() - t0;
    }
    waitpid(pid, NULL, 0);
    xenevtchn_close(e);
    report("notify_rtt", ns, n);
    free(ns);
}

static void bench_grant(size_t n)
{
    uint64_t *ns = calloc(n, sizeof(*ns));
    uint32_t ref;

    as(1);
    xengntshr_handle *s = xengntshr_open(NULL, 0);
    as(2);
    xengnttab_handle *t = xengnttab_open(NULL, 0);
    if (!ns || !s || !t)
        die("grant setup");
    void *g = xengntshr_share_pages(s, 2, 1, &ref, 1);
    if (!g)
        die("share");
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        volatile char *m = xengnttab_map_grant_ref(t, 1, ref,
                                                   PROT_READ | PROT_WRITE);
        if (!m)
            die("map");
        m[0] = 1; /* touch: the fault is part of using a mapping */
        xengnttab_unmap(t, (void *)m, 1);
        ns[i] = now_ns() - t0;
    }
    xengntshr_unshare(s, g, 1);
    xengnttab_close(t);
    xengntshr_close(s);
    report("grant_map_unmap", ns, n);
    free(ns);
}

static void bench_unix(size_t n)
{
    uint64_t *ns = calloc(n, sizeof(*ns));
    int sv[2];
    char b = 0;

    if (!ns || socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
        die("socketpair");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        struct pollfd p = {.fd = sv[1], .events = POLLIN};
        for (size_t i = 0; i < n; i++) {
            if (poll(&p, 1, -1) != 1 || recv(sv[1], &b, 1, 0) != 1 ||
                send(sv[1], &b, 1, 0) != 1)
                _exit(1);
        }
        _exit(0);
    }
    struct pollfd p = {.fd = sv[0], .events = POLLIN};
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        if (send(sv[0], &b, 1, 0) != 1 || poll(&p, 1, -1) != 1 ||
            recv(sv[0], &b, 1, 0) != 1)
            die("unix round trip");
        ns[i] = now_ns() - t0;
    }
    waitpid(pid, NULL, 0);
    report("unix_dgram_rtt", ns, n);
    free(ns);
}

static void cleanup(void)
{
    DIR *d;
    struct dirent *de;
    char path[512];

    if (!private_dir[0] || !(d = opendir(private_dir)))
        return;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' || strncmp(de->d_name, ".dom", 4) == 0) {
            snprintf(path, sizeof(path), "%s/%s", private_dir,
                     de->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(private_dir);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;

    if (n < 10)
        n = 10;
    if (!getenv("NOXS_SIM_DIR")) {
        snprintf(private_dir, sizeof(private_dir),
                 "/dev/shm/noxs-sim-floor-%d", (int)getpid());
        setenv("NOXS_SIM_DIR", private_dir, 1);
        atexit(cleanup);
    }
    bench_notify(n);
    bench_grant(n / 10);
    bench_unix(n);
    return 0;
}
