/*
 * noxs-handshake: the noxs device handshake on real Xen, timed the same
 * way as xs-handshake times the xenbus one through xenstored, with the
 * same roles as processes in dom0:
 *
 *   toolstack (parent)  noxs_dev_add(domid 0, net, i)      clock starts
 *   backend (child)     create: features; library publishes InitWait
 *   frontend (child)    attach (maps the control page, binds the port),
 *                       refs/ports, Initialised; waits for Connected
 *   backend             sees Initialised -> Connected
 *   frontend            sees Connected -> Connected
 *   backend             sees the frontend Connected        clock stops
 *
 * The guest side is dom0 itself (its own device page, granted to itself),
 * because the xenstored baseline also runs both ends in dom0. The device
 * type is "net", which has no driver in this lane, so the sysctl backend
 * is not disturbed. Needs a running noxsd.
 *
 * Prints "HANDSHAKE noxs median_us=... min_us=... n=...".
 * Usage: noxs-handshake [iterations]
 */
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>

#include "report.h"

#define TYPE NOXS_DEV_NET
#define SELF 0
#define WAIT_MS 30000

static int report_fd = -1; /* backend -> toolstack: "devid t_us\n" */

static int be_create(noxs_backend *b, noxs_dev *d, const struct noxs_kv *kv,
                     size_t n, void *arg)
{
    noxs_dev_set_features(d, 1);
    return noxs_dev_set_kv(d, "feature-barrier", "1") < 0 ? -errno : 0;
}

static void be_changed(noxs_backend *b, noxs_dev *d, void *arg)
{
    unsigned int peer = noxs_dev_peer_state(d);
    char line[64];

    if ((peer == NOXS_STATE_CLOSING || peer == NOXS_STATE_CLOSED) &&
        noxs_dev_state(d) != NOXS_STATE_CLOSED) {
        /* Follow the frontend's close, as a xenbus backend does. */
        noxs_dev_set_state(d, NOXS_STATE_CLOSED);
        noxs_dev_publish(d);
        return;
    }
    if ((peer == NOXS_STATE_INITIALISED || peer == NOXS_STATE_CONNECTED) &&
        noxs_dev_state(d) != NOXS_STATE_CONNECTED) {
        noxs_dev_set_state(d, NOXS_STATE_CONNECTED);
        noxs_dev_publish(d);
    }
    if (peer == NOXS_STATE_CONNECTED && !noxs_dev_user(d)) {
        noxs_dev_set_user(d, d); /* report once */
        int len = snprintf(line, sizeof(line), "%u %.0f\n", noxs_dev_id(d),
                           now_us());
        if (write(report_fd, line, (size_t)len) != len)
            _exit(3);
    }
}

static void be_remove(noxs_backend *b, noxs_dev *d, void *arg) {}

static int backend(void)
{
    static const struct noxs_backend_ops ops = {
        .create = be_create, .changed = be_changed, .remove = be_remove};
    const unsigned int types[] = {TYPE};
    noxs_backend *b = noxs_backend_open(NULL, types, 1, &ops, NULL);

    if (!b) {
        fprintf(stderr, "noxs-handshake: backend_open: %s\n", strerror(errno));
        return 1;
    }
    if (write(report_fd, "ready\n", 6) != 6)
        return 1;
    for (;;)
        if (noxs_backend_dispatch(b, 1000) < 0 && errno != EINTR &&
            errno != ETIMEDOUT && errno != EAGAIN) {
            fprintf(stderr, "noxs-handshake: dispatch: %s\n", strerror(errno));
            return 1;
        }
}

/* Attach and connect devices 0..n-1 as they appear; detach them all when
 * the toolstack closes quit_fd. */
static int frontend(const struct noxs_boot *boot, int n, int quit_fd)
{
    noxs_frontend *f = noxs_frontend_open(boot);
    const uint32_t refs[1] = {8}, ports[1] = {5};
    noxs_dev **devs = calloc((size_t)n, sizeof(*devs));
    char c;

    if (!f) {
        fprintf(stderr, "noxs-handshake: frontend_open: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        noxs_dev *d = noxs_frontend_attach_wait(f, TYPE, (uint32_t)i, WAIT_MS);

        if (!d) {
            fprintf(stderr, "noxs-handshake: attach %d: %s\n", i, strerror(errno));
            return 1;
        }
        noxs_dev_set_refs(d, refs, 1);
        noxs_dev_set_ports(d, ports, 1);
        noxs_dev_set_state(d, NOXS_STATE_INITIALISED);
        if (noxs_dev_publish(d) < 0 ||
            noxs_dev_wait_state(d, NOXS_STATE_CONNECTED, WAIT_MS) !=
                NOXS_STATE_CONNECTED) {
            fprintf(stderr, "noxs-handshake: connect %d: %s\n", i, strerror(errno));
            return 1;
        }
        noxs_dev_set_state(d, NOXS_STATE_CONNECTED);
        noxs_dev_publish(d);
        if (devs)
            devs[i] = d;
    }
    while (read(quit_fd, &c, 1) < 0 && errno == EINTR)
        ;
    for (int i = 0; devs && i < n; i++)
        noxs_dev_detach(devs[i]);
    noxs_frontend_close(f);
    return 0;
}

/* Read one line from fd within WAIT_MS. */
static int read_line(int fd, char *buf, size_t len)
{
    size_t used = 0;

    while (used + 1 < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, WAIT_MS) != 1 || read(fd, buf + used, 1) != 1)
            return -1;
        if (buf[used++] == '\n')
            break;
    }
    buf[used] = 0;
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20, pfd[2], qfd[2], ok = 1, i;
    double *t = calloc((size_t)(n > 0 ? n : 1), sizeof(*t));
    struct noxs_boot boot;
    noxs_client *c;
    pid_t be, fe;
    char line[64];

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (n <= 0 || !t || pipe(pfd) < 0 || pipe(qfd) < 0)
        return 2;
    c = noxs_client_open(NULL);
    if (!check(c != NULL, "dom0.noxs-hs-client", ""))
        return 1;
    if (!check(noxs_domain_create(c, SELF, &boot) == 0 || errno == EEXIST,
               "dom0.noxs-hs-domain", "device page for dom0 itself"))
        return 1;
    report_fd = pfd[1];
    be = fork();
    if (be == 0) {
        close(qfd[0]); /* only the frontend may hold the quit pipe */
        close(qfd[1]);
        _exit(backend());
    }
    if (read_line(pfd[0], line, sizeof(line)) < 0 || strcmp(line, "ready\n")) {
        check(0, "dom0.noxs-hs-backend", "backend did not register");
        kill(be, SIGKILL);
        return 1;
    }
    fe = fork();
    if (fe == 0) {
        close(qfd[1]);
        _exit(frontend(&boot, n, qfd[0]));
    }
    close(qfd[0]);
    for (i = 0; i < n && ok; i++) {
        unsigned int id;
        double t0 = now_us(), t1;

        ok = noxs_dev_add(c, SELF, TYPE, (uint32_t)i, SELF, NULL, 0) == 0;
        if (!ok) {
            check(0, "dom0.noxs-handshake", "dev-add %d", i);
            break;
        }
        ok = read_line(pfd[0], line, sizeof(line)) == 0 &&
             sscanf(line, "%u %lf", &id, &t1) == 2 && id == (unsigned)i;
        t[i] = t1 - t0;
    }
    /* Tear down (not timed): the frontend closes its halves, then the
     * toolstack removes the devices and dom0's page. */
    close(qfd[1]);
    for (int s = 0; s < 100 && waitpid(fe, NULL, WNOHANG) == 0; s++)
        usleep(100000);
    kill(fe, SIGKILL);
    waitpid(fe, NULL, 0);
    for (int j = 0; j < i; j++)
        noxs_dev_remove(c, SELF, TYPE, (uint32_t)j);
    noxs_domain_destroy(c, SELF);
    kill(be, SIGKILL);
    waitpid(be, NULL, 0);
    if (!check(ok, "dom0.noxs-handshake", "%d iterations through noxs", n))
        return 1;
    report_samples("noxs", t, n);
    return 0;
}
