/*
 * handshake: native noxs device handshake time, dev-add -> both halves
 * Connected, one domain after another, earlier domains staying connected.
 *
 *   handshake [options] N...          e.g. handshake 10 100 1000 10000
 *
 * Domains 1..max(N) are created one by one; each gets a sysctl device.
 * The clock starts just before noxs_dev_add() (the toolstack's request to
 * noxsd) and stops at the CLOCK_MONOTONIC time at which the guest's
 * frontend, having published Connected, sees the backend's Connected; that
 * time is reported by the frontend itself, so the pipe back to us is not
 * measured. At each N the program prints one line for the last block of
 * domains (the last tenth before N) and one for registry lookups:
 *
 *   handshake n=1000 block=901-1000 median_us=.. p99_us=.. max_us=..
 *             dev_add_median_us=.. noxsd_rss_kb=..
 *
 * (dev_add_median_us: how long noxs_dev_add() itself took, i.e. until
 * noxsd answered the toolstack; the rest is the guest's side.)
 *   lookup n=1000 op=dev_list median_us=.. p99_us=..
 *   lookup n=1000 op=status median_us=.. p99_us=..
 *
 * With --count, each handshake is also counted (outside its timed
 * window, so the figures above are perturbed a little: use it on its
 * own): the page faults and the voluntary context switches (sleeps,
 * i.e. wake-ups) of the processes on the path, from /proc, per handshake
 * of the last block:
 *   handshake_count n=1000 faults_worker=.. faults_keeper=..
 *             faults_backend=.. faults_frontend=.. sleeps_worker=..
 *             sleeps_keeper=.. sleeps_backend=.. sleeps_frontend=..
 *
 * Guests are noxs-sysctl-front processes in many-domain mode (--per-process
 * domains each, fed their bootstrap lines on stdin), so that 10000 domains
 * fit the per-process descriptor and mapping limits.
 *
 * Without --socket the program starts its own noxsd and sysctl backend in
 * a temporary directory (with its own NOXS_SIM_DIR) on /dev/shm (else
 * $TMPDIR or /tmp; NOXS_BENCH_TMPDIR overrides) and removes it at the end.
 * With --socket it uses a running noxsd that has a sysctl backend;
 * with --keep (the demo) it leaves the domains connected, prints "ready",
 * and waits for the guests to be shut down by someone else (noxsctl
 * shutdown), then prints how many acknowledged which reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>
#include <noxs/io/sysctl.h>

#include "procrss.h"

#define WAIT_MS 20000 /* bound on every wait for a child */

struct frontend {
    pid_t pid;
    int in;  /* its stdin: bootstrap lines */
    int out; /* its stdout: reports */
    char buf[8192];
    size_t used;
    bool eof;
};

static struct frontend *fronts;
static size_t nfronts;
static unsigned int per_process = 1000;
static char tmpdir[PATH_MAX];
static pid_t noxsd_pid = -1, backend_pid = -1, keeper_pid = -1;
static char bindir[PATH_MAX / 2];
static size_t acks[NOXS_SYSCTL_NREASONS + 1]; /* reasons, then other */
static size_t closed_count, error_count;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void stop_child(pid_t *pid)
{
    int status;

    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = -1;
            return;
        }
        usleep(10000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, &status, 0);
    *pid = -1;
}

static void cleanup(void)
{
    for (size_t i = 0; i < nfronts; i++) {
        if (fronts[i].in >= 0)
            close(fronts[i].in);
        fronts[i].in = -1;
        stop_child(&fronts[i].pid);
    }
    stop_child(&backend_pid);
    stop_child(&noxsd_pid);
    if (keeper_pid > 1) {
        /* noxsd's page keeper outlives the worker by design. */
        kill(keeper_pid, SIGTERM);
        for (int i = 0; i < 300 && kill(keeper_pid, 0) == 0; i++)
            usleep(10000);
        kill(keeper_pid, SIGKILL);
        keeper_pid = -1;
    }
    if (tmpdir[0] != '\0') {
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "handshake: could not remove %s\n", tmpdir);
        tmpdir[0] = '\0';
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("handshake: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cleanup();
    exit(1);
}

static void on_signal(int sig)
{
    (void)sig;
    cleanup();
    _exit(130);
}

static pid_t spawn(char *const argv[], int in_fd, int out_fd)
{
    pid_t pid = fork();

    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (in_fd >= 0)
            dup2(in_fd, STDIN_FILENO);
        if (out_fd >= 0)
            dup2(out_fd, STDOUT_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "handshake: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static void find_bindir(void)
{
    const char *build = getenv("NOXS_BUILD");
    char self[PATH_MAX];
    ssize_t n;

    if (build != NULL) {
        if (strlen(build) + 5 > sizeof(bindir))
            die("NOXS_BUILD too long");
        snprintf(bindir, sizeof(bindir), "%s/bin", build);
        return;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        die("cannot find the build directory: set NOXS_BUILD");
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    if (strlen(self) + 8 > sizeof(bindir))
        die("path too long: %s", self);
    snprintf(bindir, sizeof(bindir), "%.*s/../bin", (int)(sizeof(bindir) - 8),
             self);
}

/* Start noxsd and the sysctl backend in a temporary directory. */
static void start_services(char *sock, size_t socklen)
{
    char path[PATH_MAX], state[PATH_MAX + 8], sim[PATH_MAX + 8];
    /*
     * On tmpfs, like the simulator's default NOXS_SIM_DIR (/dev/shm) and
     * noxsd's default state directory (/run/noxs): the simulator's tables,
     * grant pages and noxsd's store on a disk file system (ext4 /tmp)
     * added the file system's page-fault and block-allocation cost to
     * every share, map and notify of a new domain, more than half of the
     * measured time (docs/NOXSD.md, "Where the time goes").
     * NOXS_BENCH_TMPDIR overrides it.
     */
    const char *base = getenv("NOXS_BENCH_TMPDIR");

    if (!base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
               : getenv("TMPDIR")            ? getenv("TMPDIR")
                                             : "/tmp";

    snprintf(tmpdir, sizeof(tmpdir), "%s/noxs-handshake.XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL) {
        tmpdir[0] = '\0';
        die("mkdtemp: %s", strerror(errno));
    }
    snprintf(sock, socklen, "%s/noxsd.sock", tmpdir);
    snprintf(state, sizeof(state), "%s/state", tmpdir);
    snprintf(sim, sizeof(sim), "%s/sim", tmpdir);
    mkdir(state, 0700);
    mkdir(sim, 0700);
    setenv("NOXS_SIM_DIR", sim, 1);
    setenv("NOXS_SOCKET", sock, 1);

    snprintf(path, sizeof(path), "%s/noxsd", bindir);
    char *noxsd_argv[] = {path, "-d", "--socket", sock, "--state-dir", state,
                          NULL};
    noxsd_pid = spawn(noxsd_argv, -1, -1);

    for (int i = 0;; i++) {
        noxs_client *c = noxs_client_open(sock);

        if (c != NULL) {
            noxs_client_close(c);
            break;
        }
        if (i > 1000)
            die("noxsd did not come up at %s", sock);
        usleep(10000);
    }
    {
        char kpath[PATH_MAX + 32];
        FILE *f;
        long pid = 0;

        snprintf(kpath, sizeof(kpath), "%s/keeper.pid", state);
        f = fopen(kpath, "r");
        if (f != NULL) {
            if (fscanf(f, "%ld", &pid) == 1 && pid > 1)
                keeper_pid = (pid_t)pid;
            fclose(f);
        }
    }
    char bpath[PATH_MAX];

    snprintf(bpath, sizeof(bpath), "%s/noxs-sysctl-back", bindir);
    char *back_argv[] = {bpath, "-d", "--socket", sock, NULL};
    backend_pid = spawn(back_argv, -1, -1);
}

static void wait_backend(noxs_client *c)
{
    struct noxs_status st;

    for (int i = 0;; i++) {
        if (noxs_status_get(c, &st) == 0 && st.nbackends > 0)
            return;
        if (i > 1000)
            die("no sysctl backend registered with noxsd");
        usleep(10000);
    }
}

static struct frontend *new_frontend(void)
{
    int in[2], out[2];
    char path[PATH_MAX];
    struct frontend *f;

    fronts = realloc(fronts, (nfronts + 1) * sizeof(*fronts));
    if (fronts == NULL)
        die("out of memory");
    f = &fronts[nfronts++];
    memset(f, 0, sizeof(*f));
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/noxs-sysctl-front", bindir);
    char *argv[] = {path, "--domains", "-", "--report", NULL};
    f->pid = spawn(argv, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    f->in = in[1];
    f->out = out[0];
    return f;
}

static void tally(const char *line)
{
    char what[16], reason[16];
    unsigned int domid;

    if (sscanf(line, "%15s %u %15s", what, &domid, reason) < 2)
        return;
    if (strcmp(what, "shutdown") == 0) {
        const char *name;
        unsigned int i;

        for (i = 0; (name = noxs_sysctl_reason(i, NULL)) != NULL &&
                    strcmp(name, reason) != 0;
             i++)
            ;
        acks[i]++; /* i == NOXS_SYSCTL_NREASONS: not a reason */
    } else if (strcmp(what, "closed") == 0) {
        closed_count++;
    } else if (strcmp(what, "error") == 0) {
        error_count++;
        fprintf(stderr, "handshake: frontend: %s\n", line);
    }
}

/*
 * Read f's reports until a line starting with `want` for domid arrives
 * (want NULL: until EOF); returns its timestamp (the last field), or -1.
 */
static long long read_until(struct frontend *f, const char *want,
                            unsigned int domid, int timeout_ms)
{
    long long deadline = now_ns() + (long long)timeout_ms * 1000000LL;

    for (;;) {
        char *nl;

        while ((nl = memchr(f->buf, '\n', f->used)) != NULL) {
            char line[256];
            size_t len = (size_t)(nl - f->buf);
            char what[16];
            unsigned int d;
            long long ts = -1;

            snprintf(line, sizeof(line), "%.*s", (int)len, f->buf);
            memmove(f->buf, nl + 1, f->used - len - 1);
            f->used -= len + 1;
            tally(line);
            if (want != NULL && sscanf(line, "%15s %u", what, &d) == 2 &&
                strcmp(what, want) == 0 && d == domid) {
                char *last = strrchr(line, ' ');

                ts = last ? atoll(last + 1) : 0;
                return ts;
            }
            if (want != NULL && strcmp(what, "error") == 0 && d == domid)
                return -1;
        }
        if (f->eof)
            return -1;

        long long left = (deadline - now_ns()) / 1000000LL;
        struct pollfd p = {.fd = f->out, .events = POLLIN};

        if (timeout_ms >= 0 && left <= 0)
            return -1;
        if (poll(&p, 1, timeout_ms < 0 ? -1 : (int)left) < 0 && errno != EINTR)
            return -1;
        if (p.revents == 0)
            continue;
        ssize_t n = read(f->out, f->buf + f->used, sizeof(f->buf) - f->used);

        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            f->eof = true;
        } else {
            f->used += (size_t)n;
        }
    }
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

static long long pct(long long *v, size_t n, double p)
{
    size_t i;

    qsort(v, n, sizeof(*v), cmp_ll);
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void lookups(noxs_client *c, unsigned int n)
{
    enum { ROUNDS = 200 };
    long long list_ns[ROUNDS], status_ns[ROUNDS];
    struct noxs_status st;

    for (int i = 0; i < ROUNDS; i++) {
        uint16_t domid = (uint16_t)(1 + (unsigned int)rand() % n);
        struct noxs_dev_info *info = NULL;
        size_t count;
        long long t0 = now_ns();

        if (noxs_dev_list(c, domid, &info, &count) < 0)
            die("dev-list %u: %s", domid, strerror(errno));
        list_ns[i] = now_ns() - t0;
        free(info);
        t0 = now_ns();
        if (noxs_status_get(c, &st) < 0)
            die("status: %s", strerror(errno));
        status_ns[i] = now_ns() - t0;
    }
    printf("lookup n=%u op=dev_list median_us=%.1f p99_us=%.1f\n", n,
           pct(list_ns, ROUNDS, 0.5) / 1e3, pct(list_ns, ROUNDS, 0.99) / 1e3);
    printf("lookup n=%u op=status median_us=%.1f p99_us=%.1f\n", n,
           pct(status_ns, ROUNDS, 0.5) / 1e3,
           pct(status_ns, ROUNDS, 0.99) / 1e3);
}

/* ---- --count: faults and sleeps of the processes on the path ---- */

enum { P_WORKER,
       P_KEEPER,
       P_BACKEND,
       P_FRONTEND,
       NPROC };
static const char *const proc_name[NPROC] = {"worker", "keeper", "backend",
                                             "frontend"};

struct counts {
    long long faults[NPROC], sleeps[NPROC];
};

/* Minor faults (stat field 10) and voluntary switches of pid; 0 if gone. */
static void proc_counts(pid_t pid, long long *faults, long long *sleeps)
{
    unsigned long long v = 0;
    long sw;

    *faults = *sleeps = 0;
    if (pid <= 0)
        return;
    if (bench_proc_stat(pid, 10, &v, 1) == 0)
        *faults = (long long)v;
    sw = bench_proc_status(pid, "voluntary_ctxt_switches:");
    *sleeps = sw < 0 ? 0 : sw;
}

static void counts_now(struct counts *c, pid_t frontend)
{
    const pid_t pids[NPROC] = {noxsd_pid, keeper_pid, backend_pid, frontend};

    for (int i = 0; i < NPROC; i++)
        proc_counts(pids[i], &c->faults[i], &c->sleeps[i]);
}

static void counts_add(struct counts *sum, const struct counts *before,
                       const struct counts *after)
{
    for (int i = 0; i < NPROC; i++) {
        sum->faults[i] += after->faults[i] - before->faults[i];
        sum->sleeps[i] += after->sleeps[i] - before->sleeps[i];
    }
}

static void counts_print(unsigned int n, const struct counts *sum,
                         unsigned int block)
{
    printf("handshake_count n=%u", n);
    for (int i = 0; i < NPROC; i++)
        printf(" faults_%s=%.1f", proc_name[i],
               (double)sum->faults[i] / block);
    for (int i = 0; i < NPROC; i++)
        printf(" sleeps_%s=%.1f", proc_name[i],
               (double)sum->sleeps[i] / block);
    printf("\n");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: handshake [--socket PATH] [--keep] [--first-domid D]\n"
            "                 [--per-process K] [--count] N...\n"
            "Measure dev-add -> both halves Connected for domains 1..max(N),\n"
            "reporting the last tenth before each N (e.g. 10 100 1000 10000).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"keep", no_argument, NULL, 'k'},
        {"first-domid", required_argument, NULL, 'f'},
        {"per-process", required_argument, NULL, 'p'},
        {"count", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char sock[PATH_MAX + 16] = "";
    bool keep = false, count = false;
    struct counts sum;
    unsigned int first = 1, max_n = 0, *ns = NULL;
    size_t nns = 0, next_n = 0;
    long long *us, *add_us;
    struct rlimit rl;
    noxs_client *c;
    int opt, status = 0;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': snprintf(sock, sizeof(sock), "%s", optarg); break;
        case 'k': keep = true; break;
        case 'f': first = (unsigned int)atoi(optarg); break;
        case 'p': per_process = (unsigned int)atoi(optarg); break;
        case 'c': count = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind == argc || first == 0 || per_process == 0) {
        usage(stderr);
        return 2;
    }
    for (int i = optind; i < argc; i++) {
        unsigned int n = (unsigned int)atoi(argv[i]);

        if (n == 0 || n <= max_n || first + n - 1 > NOXS_DOMID_MAX)
            die("N must increase and stay within domain ids: %s", argv[i]);
        ns = realloc(ns, (nns + 1) * sizeof(*ns));
        ns[nns++] = n;
        max_n = n;
    }
    memset(&sum, 0, sizeof(sum));
    us = calloc(max_n, sizeof(*us));
    add_us = calloc(max_n, sizeof(*add_us));
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    find_bindir();
    if (sock[0] == '\0') {
        if (keep)
            die("--keep needs --socket");
        start_services(sock, sizeof(sock));
    }
    c = noxs_client_open(sock);
    if (c == NULL)
        die("cannot reach noxsd at %s: %s", sock, strerror(errno));
    wait_backend(c);

    for (unsigned int i = 0; i < max_n; i++) {
        uint16_t domid = (uint16_t)(first + i);
        struct noxs_boot boot;
        struct frontend *f;
        char line[64], bstr[NOXS_BOOT_MAXLEN + 1];
        long long t0, t1;

        if (i % per_process == 0)
            new_frontend();
        f = &fronts[nfronts - 1];
        if (noxs_domain_create(c, domid, &boot) < 0)
            die("domain-create %u: %s", domid, strerror(errno));
        noxs_boot_format(&boot, bstr, sizeof(bstr));
        int len = snprintf(line, sizeof(line), "%u %s\n", domid, bstr);

        if (write(f->in, line, (size_t)len) != len)
            die("frontend for domain %u: %s", domid, strerror(errno));
        if (read_until(f, "opened", domid, WAIT_MS) < 0)
            die("domain %u: the frontend did not open its device page",
                domid);
        struct counts before, after;
        unsigned int blk = ns[next_n] >= 100 ? ns[next_n] / 10 : ns[next_n];
        bool counted = count && i + blk >= ns[next_n];

        if (counted)
            counts_now(&before, f->pid);
        t0 = now_ns();
        if (noxs_dev_add(c, domid, NOXS_DEV_SYSCTL, 0, 0, NULL, 0) < 0)
            die("dev-add %u sysctl 0: %s", domid, strerror(errno));
        add_us[i] = (now_ns() - t0) / 1000;
        t1 = read_until(f, "connected", domid, WAIT_MS);
        if (t1 < 0)
            die("domain %u: not Connected within %d ms", domid, WAIT_MS);
        us[i] = (t1 - t0) / 1000;
        if (counted) {
            counts_now(&after, f->pid);
            counts_add(&sum, &before, &after);
        }

        if (i + 1 == ns[next_n]) {
            unsigned int n = ns[next_n++];
            unsigned int block = n >= 100 ? n / 10 : n;
            long long *v = malloc(block * sizeof(*v));
            struct noxs_status st = {0};

            memcpy(v, us + (n - block), block * sizeof(*v));
            noxs_status_get(c, &st);
            long long med = pct(v, block, 0.5), p99 = pct(v, block, 0.99);
            long long mx = v[block - 1]; /* sorted by pct() */

            memcpy(v, add_us + (n - block), block * sizeof(*v));
            long long add_med = pct(v, block, 0.5);

            printf("handshake n=%u block=%u-%u median_us=%lld p99_us=%lld "
                   "max_us=%lld dev_add_median_us=%lld noxsd_rss_kb=%llu\n",
                   n, n - block + 1, n, med, p99, mx, add_med,
                   (unsigned long long)st.rss_bytes / 1024);
            free(v);
            if (count) {
                counts_print(n, &sum, block);
                memset(&sum, 0, sizeof(sum));
            }
            lookups(c, n);
        }
    }
    {
        long long *v = malloc(max_n * sizeof(*v));

        memcpy(v, us, max_n * sizeof(*v));
        long long med = pct(v, max_n, 0.5), p99 = pct(v, max_n, 0.99);

        printf("summary domains=%u median_us=%lld p99_us=%lld max_us=%lld\n",
               max_n, med, p99, v[max_n - 1]);
        free(v);
    }
    noxs_client_close(c);

    if (keep) {
        /* The demo shuts the guests down; we only listen. */
        for (size_t i = 0; i < nfronts; i++) {
            close(fronts[i].in);
            fronts[i].in = -1;
        }
        printf("ready\n");
        fflush(stdout);
        for (size_t i = 0; i < nfronts; i++) {
            int st;

            read_until(&fronts[i], NULL, 0, -1);
            waitpid(fronts[i].pid, &st, 0);
            fronts[i].pid = -1;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                status = 1;
        }
        size_t total = acks[0] + acks[1] + acks[2] + acks[3];

        printf("acknowledged %zu/%u: poweroff=%zu reboot=%zu suspend=%zu "
               "crash=%zu closed=%zu errors=%zu\n",
               total, max_n, acks[0], acks[1], acks[2], acks[3], closed_count,
               error_count);
        if (total != max_n)
            status = 1;
    }
    cleanup();
    free(us);
    free(add_us);
    free(ns);
    return status;
}
