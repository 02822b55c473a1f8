/*
 * bringup3: bring-up of N domains with three devices each, timed to the
 * first byte, and their teardown, on native noxs.
 *
 *   bringup3 [--reps R] N...
 *
 * For each N and each of R repetitions, from a fresh start: its own
 * noxsd, noxs-sysctl-back, noxs-console-back and noxs-blk-back in a
 * temporary directory (on /dev/shm unless $NOXS_BENCH_TMPDIR names
 * another; the simulator's state, NOXS_SIM_DIR, inside it). Then, as a
 * toolstack would, for domains 1..N one after another: domain-create,
 * the bootstrap line to a guest process, and once the guest has mapped
 * its device page, the three dev-adds back to back: sysctl, console,
 * and blk on one shared 1 MiB image, read-only (the blk backend lets
 * domains share a file that none of them may write). Every domain stays
 * up while the next ones come.
 *
 * The guests are a few processes that act as up to 1000 domains each
 * (bringup3-guest.c, started before anything is timed). Per domain, on
 * CLOCK_MONOTONIC:
 *   t0      just before the first dev-add
 *   t_conn  the guest sees all three devices Connected
 *   t_byte  the guest has read sector 0 (4 KiB) back right through blk,
 *           and the one byte it put on its console arrived at domain 0,
 *           read from the console backend's client socket
 *           (console-DOMID.0.sock, which noxs-console attaches to)
 * Then the teardown: the domains die (the guest processes are killed, as
 * the hypervisor ends a destroyed domain), then domain-destroy of each
 * through libnoxs from B3_DESTROYERS clients at once, until noxsd counts
 * no domain and the backends have unmapped every page of the guests
 * (domain 0's grant mappings in the simulator back to what they were
 * before the first domain). The destroys run in parallel, as a
 * toolstack destroying many domains may; a device whose frontend died is
 * removed at once (its backend saw the death on the liveness page).
 *
 * One line per N and repetition (bench/report.py reads the keys):
 *   bringup3 impl=noxs n=N rep=R connect_median_us=.. connect_p99_us=..
 *     byte_median_us=.. byte_p99_us=.. total_s=..
 *     daemon_rss_per_domain_kb=.. teardown_s=.. daemon_anon_per_domain_kb=..
 * connect = t_conn - t0, byte = t_byte - t0, their median and 99th
 * percentile over the last tenth of the domains before N (all of them
 * below 100); total_s from the first domain's t0 to the Nth's t_byte;
 * daemon_rss_per_domain_kb the growth of noxsd's worker and keeper and
 * the three backends' resident memory from before the first domain to
 * after the Nth, per domain, and of its anonymous part (RssAnon: heap
 * and stacks, without the simulator's tables and the guests' granted
 * pages, which count as shared memory). rep counts from
 * ($BENCH_REP - 1) * R + 1 when bench.sh sets BENCH_REP. On stderr,
 * where the connect went, over
 * the same domains (medians since t0 of the end of each step: the three
 * dev-adds, and the guest's sysctl start, console and blk connects):
 *   bringup3 steps n=N rep=R dev_add_median_us=.. sysctl_median_us=..
 *     console_median_us=.. blk_median_us=..
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

#include "bringup3.h"
#include "common/daemon.h"
#include "procrss.h"
#include "svc.h"

#define NSVC 4 /* noxsd and the three backends */

/* The steps of a connect, each timed from t0 (the first dev-add) to its
 * end: the three dev-adds (ours, back to back), then the guest's lines
 * as it finishes starting sysctl's handshake, the console's and blk's
 * (one after another, as a Linux guest probes them). */
#define B3_NSTEPS 4
static const char *const b3_steps[B3_NSTEPS] = {"dev_add", "sysctl",
                                                "console", "blk"};

struct guest {
    pid_t pid;
    FILE *in, *out;
};

struct run {
    unsigned int n;
    char tmpdir[PATH_MAX / 2];
    char sock[PATH_MAX], cons[PATH_MAX], img[PATH_MAX];
    pid_t svc[NSVC];
    pid_t worker, keeper;
    noxs_client *c;
    struct guest *guests;
    unsigned int nguests;
    double *conn_us, *byte_us; /* per domain */
    /* per domain, each step's end since t0 (b3_steps; stderr only) */
    double *step_us[B3_NSTEPS];
    long maps0; /* domain 0's grant mappings at the start */
};

static struct run *current; /* for the exit handler */

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void make_image(const char *path)
{
    static uint8_t buf[B3_IMAGE_BYTES];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    for (unsigned int i = 0; i < sizeof(buf); i++)
        buf[i] = B3_IMAGE_BYTE(i);
    if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
        bench_die("%s: %s", path, strerror(errno));
    close(fd);
}

static void services_start(struct run *r)
{
    const char *build = getenv("NOXS_BUILD");
    const char *base = getenv("NOXS_BENCH_TMPDIR");
    char bin[PATH_MAX / 2], sim[PATH_MAX], p[3][PATH_MAX];
    struct stat st;
    struct noxs_status ns;

    if (build == NULL)
        bench_die("set NOXS_BUILD (make bench does)");
    if (base == NULL)
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm"
                                                                 : "/tmp";
    snprintf(bin, sizeof(bin), "%s/bin", build);
    snprintf(r->tmpdir, sizeof(r->tmpdir), "%s/noxs-bringup3.XXXXXX", base);
    if (mkdtemp(r->tmpdir) == NULL)
        bench_die("mkdtemp: %s", strerror(errno));
    current = r;
    snprintf(sim, sizeof(sim), "%s/sim", r->tmpdir);
    snprintf(r->cons, sizeof(r->cons), "%s/cons", r->tmpdir);
    snprintf(r->img, sizeof(r->img), "%s/disk.img", r->tmpdir);
    mkdir(sim, 0700);
    setenv("NOXS_SIM_DIR", sim, 1);
    make_image(r->img);

    r->c = bench_noxsd_start(bin, r->tmpdir, 1, r->sock, &r->svc[0]);
    snprintf(p[0], sizeof(p[0]), "%s/noxs-sysctl-back", bin);
    snprintf(p[1], sizeof(p[1]), "%s/noxs-console-back", bin);
    snprintf(p[2], sizeof(p[2]), "%s/noxs-blk-back", bin);
    char *a0[] = {p[0], "-d", "--socket", r->sock, NULL};
    char *a1[] = {p[1], "-d", "--socket", r->sock, "--dir", r->cons, NULL};
    char *a2[] = {p[2], "-d", "--socket", r->sock, NULL};
    r->svc[1] = bench_backend_start_nth(r->c, a0, 1, 1);
    r->svc[2] = bench_backend_start_nth(r->c, a1, 1, 2);
    r->svc[3] = bench_backend_start_nth(r->c, a2, 1, 3);
    if (noxs_status_get(r->c, &ns) < 0)
        bench_die("noxsd status: %s", strerror(errno));
    r->worker = (pid_t)ns.pid;
    r->keeper = (pid_t)ns.keeper_pid;
}

/* Guest processes for n domains, started before anything is timed. */
static void guests_start(struct run *r)
{
    r->nguests = (r->n + B3_PER_GUEST - 1) / B3_PER_GUEST;
    r->guests = calloc(r->nguests, sizeof(*r->guests));
    if (r->guests == NULL)
        bench_die("calloc");
    fflush(stdout);
    for (unsigned int i = 0; i < r->nguests; i++) {
        struct guest *g = &r->guests[i];
        int in[2], out[2];

        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
            bench_die("pipe: %s", strerror(errno));
        g->pid = fork();
        if (g->pid < 0)
            bench_die("fork: %s", strerror(errno));
        if (g->pid == 0) {
            close(in[1]);
            close(out[0]);
            _exit(b3_guest_main(in[0], out[1]));
        }
        close(in[0]);
        close(out[1]);
        g->in = fdopen(in[1], "w");
        g->out = fdopen(out[0], "r");
        if (g->in == NULL || g->out == NULL)
            bench_die("fdopen: %s", strerror(errno));
        setvbuf(g->in, NULL, _IOLBF, 0);
    }
}

static void guests_stop(struct run *r)
{
    for (unsigned int i = 0; i < r->nguests; i++) {
        fclose(r->guests[i].in);
        kill(r->guests[i].pid, SIGTERM);
    }
    for (unsigned int i = 0; i < r->nguests; i++) {
        waitpid(r->guests[i].pid, NULL, 0);
        fclose(r->guests[i].out);
    }
    free(r->guests);
    r->guests = NULL;
    r->nguests = 0;
}

static void cleanup(void)
{
    if (current == NULL)
        return;
    if (current->guests != NULL)
        guests_stop(current);
    if (current->c != NULL)
        noxs_client_close(current->c);
    current->c = NULL;
    bench_services_stop(current->svc, NSVC, current->tmpdir, "bringup3");
    current = NULL;
}

/*
 * Wait for "<what> <domid> [NS]" from a guest: its NS in us (0 if none).
 * The guest bounds each of its own waits, and says "error" or exits.
 */
static double wait_line(FILE *f, const char *what, unsigned int domid)
{
    char line[512], w[32];
    unsigned int d;
    long long ns = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        int k = sscanf(line, "%31s %u %lld", w, &d, &ns);

        if (k < 2)
            continue;
        if (strcmp(w, "error") == 0)
            bench_die("guest: %s", line);
        if (d == domid && strcmp(w, what) == 0)
            return k == 3 ? (double)ns / 1e3 : 0;
    }
    bench_die("domain %u: the guest process ended (waiting for %s)", domid,
              what);
}

/* The console's byte, read on domain 0 from the backend's socket: when
 * it arrived (us). */
static double console_byte(struct run *r, unsigned int domid)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct pollfd p = {.events = POLLIN};
    char c = 0;

    if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console-%u.0.sock",
                 r->cons, domid) >= (int)sizeof(sa.sun_path))
        bench_die("%s: too long for a socket path", r->cons);
    /* The backend makes the socket when it takes the device on. */
    for (int i = 0;; i++) {
        p.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (p.fd >= 0 && connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        close(p.fd);
        if (i > B3_TIMEOUT_MS * 5)
            bench_die("cannot attach to %s", sa.sun_path);
        usleep(200);
    }
    if (poll(&p, 1, B3_TIMEOUT_MS) != 1 || read(p.fd, &c, 1) != 1)
        bench_die("domain %u: no console byte", domid);
    if (c != B3_CONSOLE_BYTE)
        bench_die("domain %u: console byte 0x%02x", domid, (unsigned char)c);
    double t = now_us();
    close(p.fd);
    return t;
}

/* Domain domid up to its first byte; *t0 and *t_byte in us. */
static void bring_up(struct run *r, unsigned int domid, double *t0,
                     double *t_byte)
{
    struct guest *g = &r->guests[(domid - 1) / B3_PER_GUEST];
    char bstr[NOXS_BOOT_MAXLEN + 1];
    struct noxs_boot boot;
    struct noxs_kv kv[] = {{"path", r->img}, {"mode", "r"}};
    double t_conn, t_cons, t_blk;

    if (noxs_domain_create(r->c, (uint16_t)domid, &boot) < 0)
        bench_die("domain-create %u: %s", domid, strerror(errno));
    noxs_boot_format(&boot, bstr, sizeof(bstr));
    if (fprintf(g->in, "%u %s\n", domid, bstr) < 0)
        bench_die("domain %u: the guest process is gone", domid);
    wait_line(g->out, "opened", domid);
    *t0 = now_us();
    if (noxs_dev_add(r->c, (uint16_t)domid, NOXS_DEV_SYSCTL, 0, 0, NULL, 0) < 0 ||
        noxs_dev_add(r->c, (uint16_t)domid, NOXS_DEV_CONSOLE, 0, 0, NULL, 0) < 0 ||
        noxs_dev_add(r->c, (uint16_t)domid, NOXS_DEV_BLK, 0, 0, kv, 2) < 0)
        bench_die("domain %u: dev-add: %s", domid, strerror(errno));
    r->step_us[0][domid - 1] = now_us() - *t0;
    for (int k = 1; k < B3_NSTEPS; k++)
        r->step_us[k][domid - 1] = wait_line(g->out, b3_steps[k], domid) - *t0;
    t_conn = wait_line(g->out, "conn", domid);
    t_cons = console_byte(r, domid);
    t_blk = wait_line(g->out, "byte", domid);
    r->conn_us[domid - 1] = t_conn - *t0;
    *t_byte = t_cons > t_blk ? t_cons : t_blk;
    r->byte_us[domid - 1] = *t_byte - *t0;
    wait_line(g->out, "up", domid);
}

/* Domain 0's grant mappings (what the backends map), or -1. */
static long dom0_maps(void)
{
    const char *build = getenv("NOXS_BUILD");
    char cmd[PATH_MAX + 64], buf[1024], *t;
    long maps = -1;
    size_t n;
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "'%s/sim/noxs-simstat' --domid 0 --no-reap 2>/dev/null", build);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, p);
    pclose(p);
    buf[n] = '\0';
    if ((t = strstr(buf, "grant_maps=")) != NULL)
        maps = atol(t + 11);
    return maps;
}

/* A /proc/PID/status field (KiB: "VmRSS:", "RssAnon:") summed over
 * noxsd's worker and keeper and the three backends. */
static long daemons_kb(const struct run *r, const char *key)
{
    pid_t pids[] = {r->worker, r->keeper, r->svc[1], r->svc[2], r->svc[3]};
    long sum = 0;

    for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
        long kb = bench_proc_status(pids[i], key);

        if (kb > 0)
            sum += kb;
    }
    return sum;
}

/* The toolstack's destroys, B3_DESTROYERS at a time (as many xl destroy
 * commands at once would): each thread its own client, the next domain
 * from a shared counter. */
#define B3_DESTROYERS 64

struct destroyer {
    struct run *r;
    atomic_uint *next;
    int failed;
};

static void *destroy_some(void *arg)
{
    struct destroyer *ds = arg;
    noxs_client *c = noxs_client_open(ds->r->sock);
    unsigned int d;

    if (c == NULL) {
        ds->failed = errno;
        return NULL;
    }
    while ((d = atomic_fetch_add(ds->next, 1)) <= ds->r->n)
        if (noxs_domain_destroy(c, (uint16_t)d) < 0) {
            ds->failed = errno;
            break;
        }
    noxs_client_close(c);
    return NULL;
}

/* Destroy every domain, and wait until noxsd and the backends let go of
 * them all: the seconds it took. */
static double teardown(struct run *r)
{
    double t0 = now_us(), limit_us = 120e6 + (double)r->n * 50e3;
    unsigned int nthr = r->n < B3_DESTROYERS ? r->n : B3_DESTROYERS;
    struct destroyer ds[B3_DESTROYERS];
    pthread_t thr[B3_DESTROYERS];
    atomic_uint next = 1;
    struct noxs_status st;

    /* The domains die first, as the hypervisor ends a destroyed domain
     * (its vCPUs stopped, its memory and grants freed): the guest
     * processes are killed, and the simulator reaps what they shared. */
    for (unsigned int i = 0; i < r->nguests; i++)
        kill(r->guests[i].pid, SIGKILL);
    for (unsigned int i = 0; i < r->nguests; i++)
        waitpid(r->guests[i].pid, NULL, 0);
    for (unsigned int i = 0; i < nthr; i++) {
        ds[i] = (struct destroyer){.r = r, .next = &next};
        if (pthread_create(&thr[i], NULL, destroy_some, &ds[i]) != 0)
            bench_die("pthread_create");
    }
    for (unsigned int i = 0; i < nthr; i++) {
        pthread_join(thr[i], NULL);
        if (ds[i].failed != 0)
            bench_die("domain-destroy: %s", strerror(ds[i].failed));
    }
    for (;;) {
        if (noxs_status_get(r->c, &st) == 0 && st.ndomains == 0) {
            long maps = dom0_maps();

            if (maps >= 0 && maps <= r->maps0)
                break;
        }
        if (now_us() - t0 > limit_us)
            bench_die("teardown of %u domains: not done in %.0f s", r->n,
                      limit_us / 1e6);
        usleep(1000);
    }
    return (now_us() - t0) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median and 99th percentile of the last tenth of v[0..n) (all of it
 * below 100 values), as bench/handshake.c reports its blocks. */
static void tail_stats(const double *v, unsigned int n, double *med,
                       double *p99)
{
    unsigned int block = n >= 100 ? n / 10 : n;
    double *s = malloc(block * sizeof(*s));

    if (s == NULL)
        bench_die("malloc");
    memcpy(s, v + (n - block), block * sizeof(*s));
    qsort(s, block, sizeof(*s), cmp_double);
    *med = s[(size_t)(0.5 * (block - 1) + 0.5)];
    *p99 = s[(size_t)(0.99 * (block - 1) + 0.5)];
    free(s);
}

static void one_run(unsigned int n, unsigned int rep)
{
    struct run r = {.n = n};
    double t_first = 0, t_last = 0, cm, cp, bm, bp, down;
    long rss0, rss1, anon0, anon1;

    r.conn_us = calloc(n, sizeof(double));
    r.byte_us = calloc(n, sizeof(double));
    if (r.conn_us == NULL || r.byte_us == NULL)
        bench_die("calloc");
    for (int k = 0; k < B3_NSTEPS; k++)
        if ((r.step_us[k] = calloc(n, sizeof(double))) == NULL)
            bench_die("calloc");
    services_start(&r);
    guests_start(&r);
    r.maps0 = dom0_maps();
    if (r.maps0 < 0)
        bench_die("cannot read the simulator's state (noxs-simstat)");
    rss0 = daemons_kb(&r, "VmRSS:");
    anon0 = daemons_kb(&r, "RssAnon:");
    for (unsigned int d = 1; d <= n; d++) {
        double t0, tb;

        bring_up(&r, d, &t0, &tb);
        if (d == 1)
            t_first = t0;
        t_last = tb;
    }
    rss1 = daemons_kb(&r, "VmRSS:");
    anon1 = daemons_kb(&r, "RssAnon:");
    down = teardown(&r);
    tail_stats(r.conn_us, n, &cm, &cp);
    tail_stats(r.byte_us, n, &bm, &bp);
    printf("bringup3 impl=noxs n=%u rep=%u connect_median_us=%.1f "
           "connect_p99_us=%.1f byte_median_us=%.1f byte_p99_us=%.1f "
           "total_s=%.3f daemon_rss_per_domain_kb=%.2f teardown_s=%.3f "
           "daemon_anon_per_domain_kb=%.2f\n",
           n, rep, cm, cp, bm, bp, (t_last - t_first) / 1e6,
           (double)(rss1 - rss0) / n, down, (double)(anon1 - anon0) / n);
    fflush(stdout);
    /* Where the connect went, on stderr (bench/report.py reads stdout):
     * the median of each step over the same domains. */
    fprintf(stderr, "bringup3 steps n=%u rep=%u", n, rep);
    for (int k = 0; k < B3_NSTEPS; k++) {
        tail_stats(r.step_us[k], n, &cm, &cp);
        fprintf(stderr, " %s_median_us=%.1f", b3_steps[k], cm);
        free(r.step_us[k]);
    }
    fputc('\n', stderr);
    cleanup();
    free(r.conn_us);
    free(r.byte_us);
}

static void usage(void)
{
    fprintf(stderr, "usage: bringup3 [--reps R] N...\n"
                    "Bring up N domains (1..%u) with a sysctl, console and "
                    "blk device each, time\nthem to the first byte and tear "
                    "them down (see bench/bringup3.c).\n",
            NOXS_DOMID_MAX);
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned int reps = 1, first_rep = 1;
    const char *env = getenv("BENCH_REP");
    int i = 1;

    if (argc > 2 && strcmp(argv[1], "--reps") == 0) {
        reps = (unsigned int)atoi(argv[2]);
        i = 3;
    }
    if (reps == 0 || i >= argc)
        usage();
    for (int j = i; j < argc; j++)
        if (atoi(argv[j]) < 1 || atoi(argv[j]) > (int)NOXS_DOMID_MAX)
            usage();
    if (env != NULL && atoi(env) > 0)
        first_rep = ((unsigned int)atoi(env) - 1) * reps + 1;
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    atexit(cleanup);
    for (; i < argc; i++)
        for (unsigned int k = 0; k < reps; k++)
            one_run((unsigned int)atoi(argv[i]), first_rep + k);
    return 0;
}
