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
 *   sim-floor seqpacket_rtt median_us=.. p99_us=.. n=..
 *       the same over a Unix seqpacket socket pair, the kind every hop
 *       between noxs processes uses (control socket, backend connection,
 *       keeper socket).
 *   sim-floor grant_share median_us=.. p99_us=.. n=..
 *       xengntshr_share_pages of one page (the unshare is not timed).
 *   sim-floor grant_map median_us=.. p99_us=.. n=..
 *       xengnttab_map_grant_ref of one page and its first touch (the
 *       unmap is not timed).
 *   sim-floor handshake_floor median_us=.. p99_us=.. socket_hops=..
 *             notifies=.. shares=.. maps=..
 *       the native handshake's critical path with no work at all: each
 *       one-way wake-up costed at half its round trip's median (p99),
 *       plus one share and one map. The counts are the path's, below.
 *   sim-floor syscall median_us=.. p99_us=.. n=..
 *       one system call that does nothing (getppid): what every other
 *       system call on a path pays at least, on top of its own work.
 *   sim-floor page_fault median_us=.. p99_us=.. n=..
 *       the first write to a freshly mapped page of a tmpfs file (the
 *       mmap and munmap are not timed): what the first touch of any new
 *       mapping, table page or heap page pays.
 *   The last two are not in the floor; docs/NOXSD.md ("Where the time
 *   goes") counts them on the handshake's path (handshake --count).
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
#include <sys/syscall.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>

/*
 * The native handshake's critical path (bench/handshake: dev-add ->
 * the frontend sees the backend Connected), counted from the code; keep
 * in step with docs/NOXSD.md "Where the time goes".
 *   Seqpacket hops: toolstack -> worker (DEV_ADD), worker -> backend
 *   (the create request), backend -> worker (its answer). The worker then
 *   appends to its store and writes the guest's device page itself, in
 *   memory it shares with the keeper (noxsd/keeper_pages.c), so no hop
 *   to the keeper is on the path.
 *   Notifies: worker -> guest (the page changed), guest -> backend (its
 *   half of the control page is published), backend -> guest (Connected).
 *   One share (the backend shares the control page) and one map (the
 *   guest maps it).
 * The worker's acknowledgement to the toolstack runs beside the guest's
 * part and is not on this path.
 */
#define PATH_SOCKET_HOPS 3
#define PATH_NOTIFIES 3
#define PATH_SHARES 1
#define PATH_MAPS 1

static char private_dir[256];

/* median and p99 of the last report(), for the floor. */
struct stat2 {
    double med, p99;
};
static struct stat2 st_notify, st_seqpacket, st_share, st_map;

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

static struct stat2 report(const char *name, uint64_t *ns, size_t n)
{
    struct stat2 r;

    qsort(ns, n, sizeof(*ns), cmp_u64);
    r.med = ns[n / 2] / 1000.0;
    r.p99 = ns[(n * 99) / 100] / 1000.0;
    printf("sim-floor %s median_us=%.2f p99_us=%.2f n=%zu\n", name, r.med,
           r.p99, n);
    fflush(stdout);
    return r;
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
    st_notify = report("notify_rtt", ns, n);
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

/* The two parts of a handshake's grant work, each timed on its own. */
static void bench_share_map(size_t n)
{
    uint64_t *share_ns = calloc(n, sizeof(uint64_t));
    uint64_t *map_ns = calloc(n, sizeof(uint64_t));
    uint32_t ref;

    as(1);
    xengntshr_handle *s = xengntshr_open(NULL, 0);
    as(2);
    xengnttab_handle *t = xengnttab_open(NULL, 0);
    if (!share_ns || !map_ns || !s || !t)
        die("share/map setup");
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        void *g = xengntshr_share_pages(s, 2, 1, &ref, 1);
        if (!g)
            die("share");
        share_ns[i] = now_ns() - t0;
        t0 = now_ns();
        volatile char *m = xengnttab_map_grant_ref(t, 1, ref,
                                                   PROT_READ | PROT_WRITE);
        if (!m)
            die("map");
        m[0] = 1;
        map_ns[i] = now_ns() - t0;
        xengnttab_unmap(t, (void *)m, 1);
        xengntshr_unshare(s, g, 1);
    }
    xengnttab_close(t);
    xengntshr_close(s);
    st_share = report("grant_share", share_ns, n);
    st_map = report("grant_map", map_ns, n);
    free(share_ns);
    free(map_ns);
}

static struct stat2 bench_unix(size_t n, int type, const char *name)
{
    uint64_t *ns = calloc(n, sizeof(*ns));
    struct stat2 r;
    int sv[2];
    char b = 0;

    if (!ns || socketpair(AF_UNIX, type, 0, sv) < 0)
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
    r = report(name, ns, n);
    free(ns);
    return r;
}

/* The price of entering the kernel at all. */
static void bench_syscall(size_t n)
{
    uint64_t *ns = calloc(n, sizeof(*ns));

    if (!ns)
        die("calloc");
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        syscall(SYS_getppid);
        ns[i] = now_ns() - t0;
    }
    report("syscall", ns, n);
    free(ns);
}

/* The first write to a fresh page of a shared tmpfs mapping. */
static void bench_fault(size_t n)
{
    char path[300];
    uint64_t *ns = calloc(n, sizeof(*ns));
    int fd;

    snprintf(path, sizeof(path), "%s/.fault-%d", getenv("NOXS_SIM_DIR"),
             (int)getpid());
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (!ns || fd < 0 || ftruncate(fd, 4096) < 0)
        die("fault setup");
    unlink(path);
    for (size_t i = 0; i < n; i++) {
        /* A fresh page each time, as a new grant page is. */
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
        volatile char *p =
            mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            die("mmap");
        uint64_t t0 = now_ns();
        p[0] = 1;
        ns[i] = now_ns() - t0;
        munmap((void *)p, 4096);
    }
    close(fd);
    report("page_fault", ns, n);
    free(ns);
}

/* Half a round trip is one wake-up of the other process. */
static void floor_report(void)
{
    struct stat2 f;

    f.med = PATH_SOCKET_HOPS * st_seqpacket.med / 2 +
            PATH_NOTIFIES * st_notify.med / 2 + PATH_SHARES * st_share.med +
            PATH_MAPS * st_map.med;
    f.p99 = PATH_SOCKET_HOPS * st_seqpacket.p99 / 2 +
            PATH_NOTIFIES * st_notify.p99 / 2 + PATH_SHARES * st_share.p99 +
            PATH_MAPS * st_map.p99;
    printf("sim-floor handshake_floor median_us=%.2f p99_us=%.2f "
           "socket_hops=%d notifies=%d shares=%d maps=%d\n",
           f.med, f.p99, PATH_SOCKET_HOPS, PATH_NOTIFIES, PATH_SHARES,
           PATH_MAPS);
    fflush(stdout);
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
    bench_unix(n, SOCK_DGRAM, "unix_dgram_rtt");
    st_seqpacket = bench_unix(n, SOCK_SEQPACKET, "seqpacket_rtt");
    bench_share_map(n / 10);
    floor_report();
    bench_syscall(n);
    bench_fault(n / 10);
    return 0;
}
