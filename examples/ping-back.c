/*
 * noxs-ping-back: the backend half of the example driver (docs/DESIGN.md,
 * "How to write a driver"). The frontend writes "ping" = N; we answer
 * "pong" = N. The library walks the states and watches the frontend's
 * liveness; we only say what a session is (nothing to map here).
 * It serves the reserved "net" type unless --type names another.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <noxs/noxs.h>

static int ping_create(noxs_backend *b, noxs_dev *d,
                       const struct noxs_kv *params, size_t n, void *arg)
{
    if (n != 0)
        return -EINVAL; /* a parameter we would ignore is a mistake */
    return noxs_dev_set_kv(d, "max-ping", "1000000") < 0 ? -errno : 0;
}

static int ping_connect(noxs_backend *b, noxs_dev *d, const char **why,
                        void *arg)
{
    printf("domain %u: connected\n", noxs_dev_frontend_domid(d));
    return 0;
}

static void ping_disconnect(noxs_backend *b, noxs_dev *d, int why, void *arg)
{
    printf("domain %u: disconnected (%s)\n", noxs_dev_frontend_domid(d),
           why == ECONNRESET ? "frontend died"
           : why == ENODEV   ? "removed"
                             : "frontend closed");
    noxs_dev_del_kv(d, "pong");
}

/* Every change of the frontend's half: answer a new ping. */
static void ping_changed(noxs_backend *b, noxs_dev *d, void *arg)
{
    const char *own = noxs_dev_get_own_kv(d, "pong");
    uint32_t n;
    char val[16];

    if (noxs_dev_state(d) != NOXS_STATE_CONNECTED ||
        noxs_dev_peer_u32(d, "ping", 0, 1000000, &n) < 0)
        return; /* no ping, or not one we accept: nothing to answer */
    snprintf(val, sizeof(val), "%u", n);
    if (own != NULL && strcmp(own, val) == 0)
        return;
    if (noxs_dev_set_kv(d, "pong", val) < 0 || noxs_dev_publish(d) < 0)
        fprintf(stderr, "pong: %s\n", strerror(errno));
}

static const struct noxs_backend_ops ops = {
    .create = ping_create,
    .changed = ping_changed,
    .connect = ping_connect,
    .disconnect = ping_disconnect,
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

int main(int argc, char **argv)
{
    unsigned int type = NOXS_DEV_NET;
    noxs_backend *b;

    if (argc == 3 && strcmp(argv[1], "--type") == 0)
        type = noxs_type_from_name(argv[2]);
    if (type == 0 || (argc != 1 && argc != 3)) {
        fprintf(stderr, "usage: noxs-ping-back [--type TYPE]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if ((b = noxs_backend_open(NULL, &type, 1, &ops, NULL)) == NULL) {
        perror("noxs_backend_open");
        return 1;
    }
    printf("serving %s devices\n", noxs_type_name(type));
    while (!stop) {
        struct pollfd p = {.fd = noxs_backend_fd(b), .events = POLLIN};

        if (poll(&p, 1, -1) > 0 && noxs_backend_dispatch(b, 0) < 0 &&
            errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT) {
            perror("noxs_backend_dispatch");
            break;
        }
    }
    noxs_backend_close(b); /* our devices walk to Closed */
    return 0;
}
