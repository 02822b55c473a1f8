/*
 * xs-handshake: the xenbus device handshake through the real xenstored, as
 * a baseline for noxs. Two processes in dom0 play backend (with the
 * toolstack's writes) and frontend, using Debian's libxenstore with watches
 * and transactions as xenbus drivers do:
 *
 *   toolstack  txn: backend/<fe>/<id>/{frontend,frontend-id,online,state=1}
 *                   device/<id>/{backend,backend-id,state=1}
 *   backend    feature-barrier=1, state=InitWait           (watch fe state)
 *   frontend   sees InitWait; txn: ring-ref, event-channel, state=Initialised
 *   backend    sees Initialised; reads ring-ref/event-channel; state=Connected
 *   frontend   sees Connected; state=Connected
 *   backend    sees Connected: done.
 *
 * Prints per-iteration times and "HANDSHAKE xenstored median_us=... n=...".
 * Usage: xs-handshake [iterations]
 */
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "report.h"

#define BE "/local/domain/0/backend/nxbench/0"
#define FE "/local/domain/0/device/nxbench"
#define TOKEN "hs"

static const char *failed_at = "";
#define STEP_OR_FAIL(expr, what)                                     \
    do {                                                             \
        if (!(expr)) {                                               \
            failed_at = (what);                                      \
            fprintf(stderr, "xs-handshake: %s failed: %s\n", (what), \
                    strerror(errno));                                \
            return -1;                                               \
        }                                                            \
    } while (0)

/* DIR/KEY, in a buffer of the caller's (a device's directory is short). */
#define AT(dir, key) at((char[192]){0}, (dir), (key))
static const char *at(char *buf, const char *dir, const char *key)
{
    snprintf(buf, 192, "%s/%s", dir, key);
    return buf;
}

static int put(struct xs_handle *xs, xs_transaction_t t, const char *dir,
               const char *key, const char *val)
{
    return xs_write(xs, t, AT(dir, key), val, strlen(val)) ? 0 : -1;
}

static int read_int(struct xs_handle *xs, const char *dir, const char *key)
{
    unsigned int len;
    char *v = xs_read(xs, XBT_NULL, AT(dir, key), &len);
    int r = v ? atoi(v) : -1;

    free(v);
    return r;
}

/* Wait (through the watch on DIR/state) until the state is >= want. */
static int wait_state(struct xs_handle *xs, const char *dir, int want)
{
    for (;;) {
        char **ev;
        struct pollfd p = {.fd = xs_fileno(xs), .events = POLLIN};

        if (read_int(xs, dir, "state") >= want)
            return 0;
        STEP_OR_FAIL(poll(&p, 1, 30000) == 1, "poll on xs_fileno");
        /* Drain every queued event, as xenstore.h asks. */
        while ((ev = xs_check_watch(xs)) != NULL)
            free(ev);
        STEP_OR_FAIL(errno == EAGAIN, "xs_check_watch");
    }
}

static int toolstack_and_backend(struct xs_handle *xs, int i)
{
    char be[128], fe[128], v[64];
    xs_transaction_t t;

    snprintf(be, sizeof(be), BE "/%d", i);
    snprintf(fe, sizeof(fe), FE "/%d", i);
    STEP_OR_FAIL(xs_watch(xs, AT(fe, "state"), TOKEN), "backend xs_watch");
    do {
        t = xs_transaction_start(xs);
        put(xs, t, be, "frontend", fe);
        put(xs, t, be, "frontend-id", "0");
        put(xs, t, be, "online", "1");
        put(xs, t, be, "state", "1");
        put(xs, t, fe, "backend", be);
        put(xs, t, fe, "backend-id", "0");
        put(xs, t, fe, "state", "1");
    } while (!xs_transaction_end(xs, t, false) && errno == EAGAIN);
    put(xs, XBT_NULL, be, "feature-barrier", "1");
    put(xs, XBT_NULL, be, "state", "2");
    if (wait_state(xs, fe, 3) < 0)
        return -1;
    snprintf(v, sizeof(v), "%d", read_int(xs, fe, "ring-ref"));
    snprintf(v, sizeof(v), "%d", read_int(xs, fe, "event-channel"));
    put(xs, XBT_NULL, be, "state", "4");
    if (wait_state(xs, fe, 4) < 0)
        return -1;
    xs_unwatch(xs, AT(fe, "state"), TOKEN);
    return 0;
}

static int frontend(struct xs_handle *xs, int i)
{
    char be[128], fe[128];
    xs_transaction_t t;

    snprintf(be, sizeof(be), BE "/%d", i);
    snprintf(fe, sizeof(fe), FE "/%d", i);
    STEP_OR_FAIL(xs_watch(xs, AT(be, "state"), TOKEN), "frontend xs_watch");
    if (wait_state(xs, be, 2) < 0)
        return -1;
    read_int(xs, be, "feature-barrier");
    do {
        t = xs_transaction_start(xs);
        put(xs, t, fe, "ring-ref", "8");
        put(xs, t, fe, "event-channel", "5");
        put(xs, t, fe, "state", "3");
    } while (!xs_transaction_end(xs, t, false) && errno == EAGAIN);
    if (wait_state(xs, be, 4) < 0)
        return -1;
    put(xs, XBT_NULL, fe, "state", "4");
    xs_unwatch(xs, AT(be, "state"), TOKEN);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20, i, status, ok = 1;
    double *t = calloc((size_t)n, sizeof(*t));
    struct xs_handle *xs;
    pid_t pid;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (n <= 0 || !t)
        return 2;
    pid = fork();
    if (pid == 0) {
        xs = xs_open(0);
        for (i = 0; xs && i < n; i++)
            if (frontend(xs, i) < 0)
                _exit(1);
        _exit(xs ? 0 : 1);
    }
    xs = xs_open(0);
    if (!check(xs != NULL, "dom0.xs-open", ""))
        return 1;
    for (i = 0; i < n && ok; i++) {
        double t0 = now_us();
        ok = toolstack_and_backend(xs, i) == 0;
        t[i] = now_us() - t0;
    }
    waitpid(pid, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    xs_rm(xs, XBT_NULL, "/local/domain/0/backend/nxbench");
    xs_rm(xs, XBT_NULL, FE);
    if (!check(ok, "dom0.xs-handshake", "%d iterations through xenstored%s%s",
               n, failed_at[0] ? ", failed at " : "", failed_at))
        return 1;
    report_samples("xenstored", t, n);
    return 0;
}
