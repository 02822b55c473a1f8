/*
 * xs-bringup: bring up N domains with one vif-style device each through
 * the legacy xs_* pair (frontends/legacy), with K toolstack processes at
 * once (see bringup-common.h for what is measured and printed). The same
 * binary measures Debian's xenstored and oxenstored (XENSTORED_PATH) and
 * compat-xs + noxsd (LD_LIBRARY_PATH=build/lib/compat-xs first).
 *
 *   BENCH_DAEMON_PIDS="..." xs-bringup IMPL N K
 *
 * We start $NOXS_BUILD/bin/legacy-back. Per domain, timed: the toolstack
 * introduces the domain and writes the device's nodes in one transaction;
 * the domain's frontend opens its own handle and connects (InitWait ->
 * rings in a transaction -> Connected -> backend Connected). Frontend
 * handles stay open (nodes and watches kept) until every worker is done.
 */
#include <pthread.h>

#include "../frontends/legacy/legacy.h"
#include "bringup-common.h"

#define TIMEOUT_MS 60000

static pid_t backend = -1;
static struct xs_handle *ts, **fe;
static int nfe;

static void *drain(void *arg)
{
    char line[256];

    while (fgets(line, sizeof(line), arg))
        ;
    return NULL;
}

static int bu_setup(void)
{
    const char *build = getenv("NOXS_BUILD");
    char path[4096], line[256];
    int fds[2];
    FILE *f;

    snprintf(path, sizeof(path), "%s/bin/legacy-back", build ? build : "build");
    if (pipe(fds) < 0)
        return -1;
    backend = fork();
    if (backend < 0)
        return -1;
    if (backend == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        setenv("NOXS_SIM_DOMID", "0", 1);
        execl(path, "legacy-back", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "ready", 5) == 0) {
            pthread_t t;

            if (pthread_create(&t, NULL, drain, f) == 0)
                pthread_detach(t);
            return 0;
        }
    errno = EPIPE;
    return -1;
}

static double bu_helpers_cpu_us(void)
{
    return bu_proc_cpu_us(backend);
}

static void bu_teardown(void)
{
    if (backend > 0) {
        kill(backend, SIGTERM);
        waitpid(backend, NULL, 0);
    }
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

static int bu_worker_init(int k, int K, int ndom)
{
    ts = open_as(0);
    fe = calloc((size_t)ndom + 1, sizeof(*fe));
    return ts && fe ? 0 : -1;
}

static int bu_bring_up(unsigned int domid)
{
    struct legacy_front front;
    struct xs_handle *h;

    if (!xs_introduce_domain(ts, domid, 0, 1))
        return -1;
    if (legacy_toolstack_add(ts, domid, "vif", 0, 0) < 0)
        return -1;
    h = open_as(domid);
    if (!h)
        return -1;
    fe[nfe++] = h;
    return legacy_front_connect(&front, h, domid, "vif", 0, TIMEOUT_MS);
}

static double bu_worker_extra_cpu_us(void)
{
    return 0;
}

static void bu_worker_fini(void)
{
    for (int i = 0; i < nfe; i++)
        xs_close(fe[i]);
    xs_close(ts);
}

int main(int argc, char **argv)
{
    return bu_main(argc, argv);
}
