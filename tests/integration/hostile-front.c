/*
 * hostile-front: a misbehaving frontend for one device, for the tests of
 * what such a guest may cost the backend and noxsd.
 *
 *   hostile-front TYPE DEVID torn SECONDS
 *       map the control page, leave our half's seq odd (a write that
 *       never ends) and notify the backend in a loop for SECONDS
 *       ($HOSTILE_SLEEP_US between notifications, default none);
 *   hostile-front TYPE DEVID[-LAST] flip SECONDS MAXFLIPS FINAL [HOLD]
 *       publish valid halves alternating Initialising and Connected as
 *       fast as possible on device DEVID (or on each of DEVID..LAST),
 *       until SECONDS or MAXFLIPS flips, then publish state FINAL (a
 *       number) once and stay attached HOLD seconds
 *       ($HOSTILE_SLEEP_US between flips, default none).
 *
 * Prints one line when done: "torn: N notifies", or "flips: N final: S
 * seconds: T" (T from the first flip to the final state).
 * Runs as the guest: NOXS_SIM_DOMID and NOXS_BOOT set as for any
 * frontend. Exit status 0, or 1 with a message on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/abi.h>
#include <noxs/noxs.h>

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
    fprintf(stderr, "hostile-front: %s: %s\n", what, strerror(errno));
    return 1;
}

/* The device's entry on our device page, waiting up to 10 s for it. */
static int find_entry(noxs_frontend *f, unsigned int type, uint32_t devid,
                      struct noxs_devpage_entry *out)
{
    struct noxs_devpage_entry e[NOXS_DEVPAGE_MAX_ENTRIES];
    double end = now_s() + 10;
    uint32_t gen;

    while (now_s() < end) {
        int n = noxs_frontend_devices(f, e, NOXS_DEVPAGE_MAX_ENTRIES, &gen);

        for (int i = 0; i < n; i++)
            if (e[i].type == type && e[i].devid == devid) {
                *out = e[i];
                return 0;
            }
        noxs_frontend_wait(f, gen, 200);
    }
    errno = ENOENT;
    return -1;
}

static int torn(noxs_frontend *f, unsigned int type, uint32_t devid,
                double secs)
{
    const char *sleep_env = getenv("HOSTILE_SLEEP_US");
    unsigned int sleep_us = sleep_env ? (unsigned int)atoi(sleep_env) : 0;
    struct noxs_devpage_entry e;
    xengnttab_handle *gt;
    xenevtchn_handle *xce;
    unsigned long notifies = 0;
    struct noxs_ctrl_half *h;
    uint8_t *page;
    int port;
    double end;

    if (find_entry(f, type, devid, &e) < 0)
        return die("no such device");
    if ((gt = xengnttab_open(NULL, 0)) == NULL ||
        (xce = xenevtchn_open(NULL, 0)) == NULL)
        return die("open");
    page = xengnttab_map_grant_ref(gt, e.backend_domid, e.control_gref,
                                   PROT_READ | PROT_WRITE);
    if (!page)
        return die("map the control page");
    port = xenevtchn_bind_interdomain(xce, e.backend_domid, e.backend_port);
    if (port < 0)
        return die("bind");
    h = (struct noxs_ctrl_half *)(page + NOXS_CTRL_HALF_SIZE *
                                             NOXS_CTRL_FRONTEND);
    /* A plausible half whose write never finishes. */
    __atomic_store_n(&h->state, NOXS_STATE_INITIALISED, __ATOMIC_RELAXED);
    __atomic_store_n(&h->generation, 5u, __ATOMIC_RELAXED);
    __atomic_store_n(&h->seq, 9u, __ATOMIC_SEQ_CST);
    end = now_s() + secs;
    while (now_s() < end) {
        xenevtchn_notify(xce, (evtchn_port_t)port);
        notifies++;
        if (sleep_us)
            usleep(sleep_us);
    }
    printf("torn: %lu notifies\n", notifies);
    return 0;
}

static int flip(noxs_frontend *f, unsigned int type, uint32_t devid,
                uint32_t last, double secs, unsigned long max,
                unsigned int final, double hold)
{
    const char *sleep_env = getenv("HOSTILE_SLEEP_US");
    unsigned int sleep_us = sleep_env ? (unsigned int)atoi(sleep_env) : 0;
    unsigned long flips = 0;
    noxs_dev *devs[NOXS_DEVPAGE_MAX_ENTRIES];
    unsigned int n = last - devid + 1;
    double start, end;

    if (last < devid || n > NOXS_DEVPAGE_MAX_ENTRIES) {
        errno = EINVAL;
        return die("device range");
    }
    for (unsigned int i = 0; i < n; i++)
        if ((devs[i] = noxs_frontend_attach_wait(f, type, devid + i,
                                                 10000)) == NULL)
            return die("attach");
    start = now_s();
    end = start + secs;
    while (flips < max && ((flips & 63) || now_s() < end)) {
        for (unsigned int i = 0; i < n; i++) {
            noxs_dev_set_state(devs[i], (flips & 1)
                                            ? NOXS_STATE_CONNECTED
                                            : NOXS_STATE_INITIALISING);
            if (noxs_dev_publish(devs[i]) < 0)
                return die("publish");
        }
        flips++;
        /* Consume the backend's answers so our port does not overflow. */
        noxs_frontend_handle_events(f);
        if (sleep_us)
            usleep(sleep_us);
    }
    for (unsigned int i = 0; i < n; i++) {
        noxs_dev_set_state(devs[i], final);
        if (noxs_dev_publish(devs[i]) < 0)
            return die("publish");
    }
    printf("flips: %lu final: %u seconds: %.3f\n", flips, final,
           now_s() - start);
    fflush(stdout);
    end = now_s() + hold;
    while (now_s() < end) {
        noxs_frontend_handle_events(f);
        usleep(10000);
    }
    return 0;
}

int main(int argc, char **argv)
{
    noxs_frontend *f;
    unsigned int type;
    uint32_t devid, last;
    char *end;

    if (argc < 5) {
        fprintf(stderr, "usage: hostile-front TYPE DEVID torn SECONDS\n"
                        "       hostile-front TYPE DEVID flip SECONDS "
                        "MAXFLIPS FINAL [HOLD]\n");
        return 2;
    }
    type = (unsigned int)atoi(argv[1]);
    devid = last = (uint32_t)strtoul(argv[2], &end, 10);
    if (*end == '-')
        last = (uint32_t)strtoul(end + 1, NULL, 10);
    if ((f = noxs_frontend_open(NULL)) == NULL)
        return die("noxs_frontend_open");
    if (strcmp(argv[3], "torn") == 0)
        return torn(f, type, devid, atof(argv[4]));
    if (strcmp(argv[3], "flip") == 0 && argc >= 7)
        return flip(f, type, devid, last, atof(argv[4]),
                    strtoul(argv[5], NULL, 10),
                    (unsigned int)atoi(argv[6]),
                    argc > 7 ? atof(argv[7]) : 0);
    fprintf(stderr, "hostile-front: unknown mode %s\n", argv[3]);
    return 2;
}
