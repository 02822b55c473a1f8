/*
 * noxs-ping-front: the frontend half of the example driver. Attaches to
 * device 0 of the type (default "net"), connects, then pings once per
 * interval until SIGTERM (exit 0, closing the device) or until the
 * backend goes (exit 3: it closed, died or the device was removed).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <noxs/noxs.h>

#define TIMEOUT_MS 30000

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

static int fail(const char *what)
{
    fprintf(stderr, "noxs-ping-front: %s: %s\n", what, strerror(errno));
    return errno == ECONNREFUSED ? 3 : 1;
}

int main(int argc, char **argv)
{
    unsigned int type = argc > 1 ? noxs_type_from_name(argv[1]) : NOXS_DEV_NET;
    noxs_frontend *f;
    noxs_dev *d;
    uint32_t n = 0, pong;
    char val[16];
    int status = 0;

    if (type == 0) {
        fprintf(stderr, "usage: noxs-ping-front [TYPE]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, on_signal);
    if ((f = noxs_frontend_open(NULL)) == NULL)
        return fail("noxs_frontend_open");
    if ((d = noxs_frontend_attach_wait(f, type, 0, TIMEOUT_MS)) == NULL)
        return fail("attach");
    /* A new session: Initialising, the backend (re)starts at InitWait. */
    if (noxs_dev_publish(d) < 0 ||
        noxs_dev_wait_peer(d, NOXS_STATE_INITWAIT, TIMEOUT_MS) < 0)
        return fail("waiting for InitWait");
    if (noxs_dev_liveness_start(d, 0) < 0 ||
        noxs_dev_switch_state(d, NOXS_STATE_INITIALISED) < 0 ||
        noxs_dev_wait_peer(d, NOXS_STATE_CONNECTED, TIMEOUT_MS) < 0 ||
        noxs_dev_switch_state(d, NOXS_STATE_CONNECTED) < 0)
        return fail("connecting");
    printf("connected\n");
    while (!stop) {
        snprintf(val, sizeof(val), "%u", ++n % 1000000);
        if (noxs_dev_set_kv(d, "ping", val) < 0 || noxs_dev_publish(d) < 0)
            return fail("ping");
        /* Until the answer, the backend goes, or a signal. */
        while (!stop && !noxs_dev_peer_gone(d) &&
               !(noxs_dev_peer_u32(d, "pong", 0, 1000000, &pong) == 0 &&
                 pong == n % 1000000))
            if (noxs_dev_wait(d, 100) < 0 && errno != EBUSY)
                return fail("wait");
        if (noxs_dev_peer_gone(d)) {
            printf("backend gone\n"); /* its half or its liveness page */
            status = 3;
            break;
        }
        noxs_dev_wait(d, 50); /* pace: a ping every 50 ms at most */
    }
    /* Closing, a backend still there follows, Closed with the detach. */
    if (noxs_dev_switch_state(d, NOXS_STATE_CLOSING) == 0 &&
        !noxs_dev_peer_gone(d))
        noxs_dev_wait_state(d, NOXS_STATE_CLOSING, 5000);
    noxs_dev_detach(d);
    noxs_frontend_close(f);
    return status;
}
