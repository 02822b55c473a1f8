/*
 * noxs-bringup: bring up N domains with one sysctl device each through
 * native libnoxs, with K toolstack processes at once (see
 * bringup-common.h for what is measured and printed).
 *
 *   NOXS_SOCKET=... BENCH_DAEMON_PIDS="worker keeper" noxs-bringup IMPL N K
 *
 * Needs a running noxsd at $NOXS_SOCKET (bench.sh starts it and passes
 * its worker and keeper pids). We start noxs-sysctl-back; each toolstack
 * worker runs its guests in noxs-sysctl-front processes in many-domain
 * mode (--domains -, up to 1000 domains each). Per domain, timed:
 * domain-create, hand the bootstrap line to the guest, the guest maps
 * its device page, dev-add, and both halves Connected as the guest
 * reports it.
 */
#include <fcntl.h>
#include <limits.h>

#include <noxs/noxs.h>

#include "bringup-common.h"

#define PER_FRONT 1000

static char bindir[PATH_MAX];
static const char *sock;

struct front {
    pid_t pid;
    FILE *in, *out;
};
static struct front *fronts;
static int nfronts, nstarted, used_in_last = PER_FRONT;
static noxs_client *client;

static pid_t spawn(char *const argv[], int in_fd, int out_fd)
{
    pid_t pid = fork();

    if (pid == 0) {
        if (in_fd >= 0)
            dup2(in_fd, 0);
        if (out_fd >= 0)
            dup2(out_fd, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int bu_setup(void)
{
    const char *build = getenv("NOXS_BUILD");
    char path[PATH_MAX + 32];
    struct noxs_status st;
    noxs_client *c = NULL;

    sock = getenv("NOXS_SOCKET");
    if (!build || !sock) {
        errno = EINVAL;
        return -1;
    }
    snprintf(bindir, sizeof(bindir), "%s/bin", build);
    snprintf(path, sizeof(path), "%s/noxs-sysctl-back", bindir);
    char *argv[] = {path, "-d", "--socket", (char *)sock, NULL};
    backend = spawn(argv, -1, -1);
    for (int i = 0; i < 2000; i++) {
        if (!c)
            c = noxs_client_open(sock);
        if (c && noxs_status_get(c, &st) == 0 && st.nbackends > 0) {
            noxs_client_close(c);
            return 0;
        }
        usleep(5000);
    }
    errno = ETIMEDOUT;
    return -1;
}

static int new_front(void)
{
    int in[2], out[2];
    char path[PATH_MAX + 32];
    struct front *f;

    fronts = realloc(fronts, sizeof(*fronts) * (size_t)(nfronts + 1));
    if (!fronts || pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
        return -1;
    f = &fronts[nfronts++];
    snprintf(path, sizeof(path), "%s/noxs-sysctl-front", bindir);
    char *argv[] = {path, "--domains", "-", "--report", NULL};
    f->pid = spawn(argv, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    f->in = fdopen(in[1], "w");
    f->out = fdopen(out[0], "r");
    if (f->pid < 0 || !f->in || !f->out)
        return -1;
    setvbuf(f->in, NULL, _IOLBF, 0);
    used_in_last = 0;
    return 0;
}

static int bu_worker_init(int k, int K, int ndom)
{
    client = noxs_client_open(sock);
    if (!client)
        return -1;
    /* Start the guest processes now, so that their start is not timed. */
    for (int i = 0; i < ndom; i += PER_FRONT)
        if (new_front() < 0)
            return -1;
    nstarted = nfronts;
    nfronts = 0;
    used_in_last = PER_FRONT;
    return 0;
}

/* Wait for "<what> <domid> ..." from the guest process. */
static int wait_line(FILE *out, const char *what, unsigned int domid)
{
    char line[256], w[32];
    unsigned int d;

    while (fgets(line, sizeof(line), out)) {
        if (sscanf(line, "%31s %u", w, &d) != 2)
            continue;
        if (strcmp(w, "error") == 0) {
            fprintf(stderr, "bringup: guest: %s", line);
            errno = EIO;
            return -1;
        }
        if (d == domid && strcmp(w, what) == 0)
            return 0;
    }
    errno = EPIPE;
    return -1;
}

static int bu_bring_up(unsigned int domid)
{
    char bstr[NOXS_BOOT_MAXLEN + 1];
    struct noxs_boot boot;
    struct front *f;

    if (used_in_last == PER_FRONT) {
        if (nfronts == nstarted) {
            errno = ENOSPC;
            return -1;
        }
        nfronts++; /* already started by bu_worker_init */
        used_in_last = 0;
    }
    f = &fronts[nfronts - 1];
    used_in_last++;
    if (noxs_domain_create(client, (uint16_t)domid, &boot) < 0)
        return -1;
    noxs_boot_format(&boot, bstr, sizeof(bstr));
    if (fprintf(f->in, "%u %s\n", domid, bstr) < 0 ||
        wait_line(f->out, "opened", domid) < 0)
        return -1;
    if (noxs_dev_add(client, (uint16_t)domid, NOXS_DEV_SYSCTL, 0, 0, NULL,
                     0) < 0)
        return -1;
    return wait_line(f->out, "connected", domid);
}

static double bu_worker_extra_cpu_us(void)
{
    double sum = 0;

    /* All of this worker's guest processes (started in init). */
    for (int i = 0; i < nstarted; i++) {
        double c = bu_proc_cpu_us(fronts[i].pid);

        if (c > 0)
            sum += c;
    }
    return sum;
}

static void bu_worker_fini(void)
{
    for (int i = 0; i < nstarted; i++) {
        fclose(fronts[i].in);
        kill(fronts[i].pid, SIGTERM);
    }
    for (int i = 0; i < nstarted; i++)
        waitpid(fronts[i].pid, NULL, 0);
    noxs_client_close(client);
}

int main(int argc, char **argv)
{
    return bu_main(argc, argv);
}
