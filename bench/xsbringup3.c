/*
 * xs-bringup3: N domains, each with a vbd, a console and a vif, brought
 * up one after another on Debian's xenstored or oxenstored as domain 0
 * of the simulator (tests/compat/xsd.sh with XSD_SIM=1, the same
 * NOXS_SIM_DIR; bench/xs-bringup3.sh starts it), every earlier domain
 * staying up; then all of them destroyed.
 *
 *   BENCH_DAEMON_PIDS="..." [BENCH_REP=R] xs-bringup3 IMPL N
 *
 * Per domain: its store ring and port are introduced (as xs-bringup's
 * BENCH_GUESTS=ring); t0; the toolstack writes the three devices' nodes
 * in one transaction, with libxl's keys and permissions; the guest's
 * frontends (xsbringup3-guest.c) connect over its ring to the one dom0
 * backend process (xsbringup3-back.c): t_conn when the guest sees all
 * three backends Connected; then one console byte and one read of
 * sector 0 over the granted pages: t_byte when both are answered.
 * Teardown, as xl destroys: per domain the device and domain paths are
 * removed and the domain released, timed until the backend has let go
 * of every device.
 *
 * One line (bench/report.py reads it):
 *   bringup3 impl=I n=N rep=R connect_median_us=.. connect_p99_us=..
 *     byte_median_us=.. byte_p99_us=.. total_s=..
 *     daemon_rss_per_domain_kb=.. teardown_s=.. daemon_anon_per_domain_kb=..
 * connect and byte over the last tenth of the domains (t_conn - t0,
 * t_byte - t0), total from the first t0 to the last t_byte, memory the
 * daemon's ($BENCH_DAEMON_PIDS) and the backend's VmRSS growth, and of
 * its anonymous part (RssAnon: without the guests' ring pages and the
 * simulator's tables they map, which count as shared memory).
 * On stderr, per phase (bring-up, teardown), the CPU seconds of the
 * daemon, the backend and this process, to tell where the time went.
 * BENCH_AT_PEAK=CMD runs CMD through the shell while every domain is up
 * (as in bringup-common.h).
 */
#define BU_MEASURE_ONLY
#include "bringup-common.h"

#include <poll.h>
#include <stdbool.h>

#include "../tests/legacy/legacy.h"
#include "xsbringup3.h"

#define TIMEOUT_MS 60000
/* How long the backend may take to let go of all devices, at most. */
#define TEARDOWN_MS 600000

static struct xs_handle *ts;
static pid_t backend = -1;
static int back_fd = -1;

/* ---- toolstack: libxl's nodes for the three devices ---- */

struct perm2 {
    unsigned int owner, reader;
};

static int tx_keys(xs_transaction_t t, const char *dir,
                   const char *const (*keys)[2], size_t n,
                   const struct perm2 *each)
{
    char path[160];

    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, keys[i][0]);
        if (legacy_write_str(ts, t, path, keys[i][1]) < 0)
            return -1;
        if (each) {
            struct xs_permissions p[2] = {
                {.id = each->owner, .perms = XS_PERM_NONE},
                {.id = each->reader, .perms = XS_PERM_READ}};

            if (!xs_set_permissions(ts, t, path, p, 2))
                return -1;
        }
    }
    return 0;
}

static int tx_dir(xs_transaction_t t, const char *dir, struct perm2 perm)
{
    struct xs_permissions p[2] = {{.id = perm.owner, .perms = XS_PERM_NONE},
                                  {.id = perm.reader, .perms = XS_PERM_READ}};

    return xs_mkdir(ts, t, dir) && xs_set_permissions(ts, t, dir, p, 2) ? 0
                                                                        : -1;
}

/* A device's frontend and backend directories and libxl's own record. */
struct devpaths {
    char fe[96], be[96], lx[96];
};

static void dev_paths(struct devpaths *p, unsigned int domid, int k)
{
    const struct x3_class *c = &x3_classes[k];

    snprintf(p->fe, sizeof(p->fe), "/local/domain/%u/device/%s/%u", domid,
             c->cls, c->devid);
    snprintf(p->be, sizeof(p->be), "/local/domain/0/backend/%s/%u/%u",
             c->cls, domid, c->devid);
    snprintf(p->lx, sizeof(p->lx), "/libxl/%u/device/%s/%u", domid, c->cls,
             c->devid);
}

/* xl 4.17's vbd (a phy disk as xvda) and console: backend first. */
static int add_vbd_console(xs_transaction_t t, unsigned int domid)
{
    struct perm2 fe_perm = {domid, 0}, be_perm = {0, domid};
    struct perm2 ro_perm = {0, domid};
    char id[16], params[32];
    struct devpaths p;

    snprintf(id, sizeof(id), "%u", domid);
    snprintf(params, sizeof(params), "/dev/bench/%u", domid);
    dev_paths(&p, domid, X3_VBD);
    const char *const vbd_be[][2] = {
        {"frontend", p.fe},
        {"params", params},
        {"script", "/etc/xen/scripts/block"},
        {"frontend-id", id},
        {"online", "1"},
        {"removable", "0"},
        {"bootable", "1"},
        {"state", "1"},
        {"dev", "xvda"},
        {"type", "phy"},
        {"mode", "w"},
        {"device-type", "disk"},
        {"discard-enable", "1"},
        {"specification", "xen"},
    };
    const char *const vbd_fe[][2] = {
        {"backend", p.be},
        {"backend-id", "0"},
        {"state", "1"},
        {"virtual-device", "51712"},
        {"device-type", "disk"},
        {"trusted", "1"},
    };
    const char *const vbd_lx[][2] = {{"frontend", p.fe}, {"backend", p.be}};
    if (tx_dir(t, p.be, be_perm) < 0 ||
        tx_keys(t, p.be, vbd_be, sizeof(vbd_be) / sizeof(vbd_be[0]), NULL) ||
        tx_dir(t, p.fe, fe_perm) < 0 ||
        tx_keys(t, p.fe, vbd_fe, sizeof(vbd_fe) / sizeof(vbd_fe[0]), NULL) ||
        tx_keys(t, p.lx, vbd_lx, 2, NULL))
        return -1;
    dev_paths(&p, domid, X3_CONSOLE);
    const char *const con_be[][2] = {
        {"frontend", p.fe},
        {"frontend-id", id},
        {"online", "1"},
        {"state", "1"},
        {"protocol", "vt100"},
    };
    const char *const con_fe[][2] = {
        {"backend", p.be}, {"backend-id", "0"}, {"state", "1"}};
    /* Read-only for the guest, as libxl writes them (its ro_fents). */
    const char *const con_ro[][2] = {
        {"limit", "1048576"}, {"type", "xenconsoled"}, {"output", "pty"}};
    const char *const con_lx[][2] = {{"frontend", p.fe}, {"backend", p.be}};
    if (tx_dir(t, p.be, be_perm) < 0 ||
        tx_keys(t, p.be, con_be, sizeof(con_be) / sizeof(con_be[0]), NULL) ||
        tx_dir(t, p.fe, fe_perm) < 0 || tx_keys(t, p.fe, con_fe, 3, NULL) ||
        tx_keys(t, p.fe, con_ro, 3, &ro_perm) || tx_keys(t, p.lx, con_lx, 2, NULL))
        return -1;
    return 0;
}

static int add_once(struct xs_handle *xs, xs_transaction_t t, const void *arg)
{
    unsigned int domid = *(const unsigned int *)arg;
    struct devpaths p;

    if (add_vbd_console(t, domid) < 0 ||
        legacy_toolstack_add_in(xs, t, domid, "vif", 0, 0) < 0)
        return -1;
    dev_paths(&p, domid, X3_VIF);
    const char *const vif_lx[][2] = {{"frontend", p.fe}, {"backend", p.be}};
    return tx_keys(t, p.lx, vif_lx, 2, NULL);
}

/* xl destroy's clean-up: the devices' directories, the domain's paths. */
static int destroy_once(struct xs_handle *xs, xs_transaction_t t,
                        const void *arg)
{
    unsigned int domid = *(const unsigned int *)arg;
    char path[64];
    struct devpaths p;

    for (int k = 0; k < X3_NDEV; k++) {
        dev_paths(&p, domid, k);
        if (!xs_rm(xs, t, p.be) && errno != ENOENT)
            return -1;
    }
    snprintf(path, sizeof(path), "/local/domain/%u", domid);
    if (!xs_rm(xs, t, path) && errno != ENOENT)
        return -1;
    snprintf(path, sizeof(path), "/libxl/%u", domid);
    return xs_rm(xs, t, path) || errno == ENOENT ? 0 : -1;
}

/* ---- the run ---- */

struct sample {
    double t0, conn, byte;
};

/* Wait for count bytes from the backend (bounded); 0 or -1. */
static int back_wait(int count, int timeout_ms)
{
    double deadline = bu_now_us() + timeout_ms * 1e3;
    char buf[256];

    while (count > 0) {
        struct pollfd p = {.fd = back_fd, .events = POLLIN};
        double left = deadline - bu_now_us();
        ssize_t m;

        if (left <= 0 || poll(&p, 1, (int)(left / 1e3) + 1) == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        m = read(back_fd, buf, (size_t)count < sizeof(buf) ? (size_t)count : sizeof(buf));
        if (m <= 0) {
            errno = m == 0 ? EPIPE : errno;
            if (m < 0 && errno == EINTR)
                continue;
            return -1;
        }
        count -= (int)m;
    }
    return 0;
}

static void back_stop(void)
{
    if (back_fd >= 0)
        close(back_fd); /* the backend's cue to exit */
    back_fd = -1;
    for (int i = 0; backend > 0 && i < 500; i++) {
        if (waitpid(backend, NULL, WNOHANG) == backend) {
            backend = -1;
            return;
        }
        usleep(10000);
    }
    if (backend > 0) {
        kill(backend, SIGKILL);
        waitpid(backend, NULL, 0);
    }
    backend = -1;
}

/* A /proc/PID/status field (KiB) summed over the daemons and the
 * backend. */
static long mem_kb(const char *key)
{
    long b = bench_proc_status(backend, key);

    return bu_daemons_status(key) + (b > 0 ? b : 0);
}

static int bring_up(struct x3_guest *g, unsigned int domid, struct sample *s)
{
    if (x3_guest_open(g, domid) < 0 ||
        !xs_introduce_domain(ts, domid, XSRC_STORE_GFN, g->c.port))
        return -1;
    s->t0 = bu_now_us();
    if (legacy_in_transaction(ts, add_once, &domid) < 0 ||
        x3_guest_connect(g, TIMEOUT_MS) < 0)
        return -1;
    s->conn = bu_now_us();
    if (x3_guest_first_byte(g, TIMEOUT_MS) < 0)
        return -1;
    s->byte = bu_now_us();
    return 0;
}

/* CPU seconds so far of the daemons, the backend and this process (the
 * toolstack and every guest). */
struct cpu3 {
    double daemon, backend, self;
};

static struct cpu3 cpu_now(void)
{
    struct cpu3 c;
    long rss;

    bu_daemons(&c.daemon, &rss);
    c.backend = bu_proc_cpu_us(backend);
    c.self = bu_self_cpu_us();
    return c;
}

/* Where a phase's time went, on stderr (the line on stdout stays as
 * bench/report.py reads it). */
static void cpu_note(const char *phase, int n, struct cpu3 a, struct cpu3 b)
{
    fprintf(stderr,
            "bringup3 impl=%s n=%d %s cpu_s daemon=%.3f backend=%.3f "
            "toolstack+guests=%.3f\n",
            bu_impl, n, phase, (b.daemon - a.daemon) / 1e6,
            (b.backend - a.backend) / 1e6, (b.self - a.self) / 1e6);
}

/* Destroy domains 1..n as xl does; seconds until the backend let go. */
static double tear_down(int n)
{
    struct cpu3 c0 = cpu_now();
    double t0 = bu_now_us(), t1;

    for (unsigned int domid = 1; domid <= (unsigned int)n; domid++)
        if (legacy_in_transaction(ts, destroy_once, &domid) < 0 ||
            !xs_release_domain(ts, domid))
            bu_die("destroy");
    t1 = bu_now_us();
    if (back_wait(X3_NDEV * n, TEARDOWN_MS) < 0)
        bu_die("backend letting go of the devices");
    cpu_note("teardown", n, c0, cpu_now());
    fprintf(stderr, "bringup3 impl=%s n=%d teardown toolstack_s=%.3f\n",
            bu_impl, n, (t1 - t0) / 1e6);
    return (bu_now_us() - t0) / 1e6;
}

static void report(int n, int rep, const struct sample *s, double total_s,
                   double rss_per_domain, double anon_per_domain,
                   double teardown_s)
{
    size_t m = n / 10 > 0 ? (size_t)(n / 10) : 1;
    double *conn = calloc(m, sizeof(*conn)), *byte = calloc(m, sizeof(*byte));

    if (!conn || !byte)
        bu_die("calloc");
    for (size_t i = 0; i < m; i++) {
        const struct sample *x = &s[(size_t)n - m + i];

        conn[i] = x->conn - x->t0;
        byte[i] = x->byte - x->t0;
    }
    qsort(conn, m, sizeof(*conn), bu_cmp);
    qsort(byte, m, sizeof(*byte), bu_cmp);
    printf("bringup3 impl=%s n=%d rep=%d connect_median_us=%.1f "
           "connect_p99_us=%.1f byte_median_us=%.1f byte_p99_us=%.1f "
           "total_s=%.3f daemon_rss_per_domain_kb=%.2f teardown_s=%.3f "
           "daemon_anon_per_domain_kb=%.2f\n",
           bu_impl, n, rep, bu_pct(conn, m, 0.5), bu_pct(conn, m, 0.99),
           bu_pct(byte, m, 0.5), bu_pct(byte, m, 0.99), total_s,
           rss_per_domain, teardown_s, anon_per_domain);
    fflush(stdout);
    free(conn);
    free(byte);
}

int main(int argc, char **argv)
{
    const char *r = getenv("BENCH_REP");
    struct x3_guest *guests;
    struct sample *s;
    struct rlimit rl;
    struct cpu3 c0;
    long rss0, rss1, anon0, anon1;
    double teardown_s;
    int n, rep = r ? atoi(r) : 1;

    if (argc != 3 || (n = atoi(argv[2])) < 1) {
        fprintf(stderr, "usage: %s IMPL N\n", argv[0]);
        return 2;
    }
    bu_impl = argv[1];
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    guests = calloc((size_t)n, sizeof(*guests));
    s = calloc((size_t)n, sizeof(*s));
    if (!guests || !s)
        bu_die("calloc");
    if ((backend = x3_back_start(&back_fd, (size_t)n * X3_NDEV)) < 0 || back_wait(1, TIMEOUT_MS) < 0)
        bu_die("backend");
    if (!(ts = xsrc_xs_open_as(0)))
        bu_die("toolstack xs_open");
    rss0 = mem_kb("VmRSS:");
    anon0 = mem_kb("RssAnon:");
    c0 = cpu_now();
    for (int i = 0; i < n; i++)
        if (bring_up(&guests[i], (unsigned int)i + 1, &s[i]) < 0) {
            fprintf(stderr, "bringup3 %s: domain %d: %s\n", bu_impl, i + 1,
                    strerror(errno));
            back_stop();
            return 1;
        }
    rss1 = mem_kb("VmRSS:");
    anon1 = mem_kb("RssAnon:");
    cpu_note("bring-up", n, c0, cpu_now());
    /* Development and tests: look at the store while every domain is up. */
    if (getenv("BENCH_AT_PEAK") && system(getenv("BENCH_AT_PEAK")) != 0)
        fprintf(stderr, "bringup3: BENCH_AT_PEAK failed\n");
    teardown_s = tear_down(n);
    report(n, rep, s, (s[n - 1].byte - s[0].t0) / 1e6,
           (double)(rss1 - rss0) / n, (double)(anon1 - anon0) / n, teardown_s);
    /* The guests' own handles go last: their pages stayed granted until
     * the backend had unmapped them. */
    for (int i = 0; i < n; i++)
        x3_guest_close(&guests[i]);
    xs_close(ts);
    back_stop();
    (void)bu_shared_pages; /* the one helper of bringup-common.h unused */
    free(guests);
    free(s);
    return 0;
}
