/*
 * The guests of bringup3 (see bringup3.h): many domains in one process,
 * each opened as its own domain (noxs_open_as, which the simulator
 * honours per thread), with the library's frontend API for the sysctl
 * device, the console ring (consring.h) and the blk frontend library.
 *
 * One domain at a time: the toolstack brings domains up one after
 * another, so a guest only ever has one domain in its handshakes. The
 * three devices are connected in the order a Linux guest probes them,
 * each to the end of its handshake; the backends work on all three at
 * once from the dev-adds on. Domains already up are not serviced: their
 * devices stay Connected with nothing to do, as an idle guest's do.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>
#include <noxs/io/sysctl.h>

#include "blkfront.h"
#include "bringup3.h"
#include "common/daemon.h"
#include "consring.h"

struct b3_dom {
    noxs_frontend *fe;
    noxs_dev *sysctl;
    struct cons_front cons;
    noxs_blkfront *blk;
};

static FILE *out;

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Start the sysctl handshake: Connected at once if the backend waits. */
static int sysctl_start(struct b3_dom *d)
{
    d->sysctl = noxs_frontend_attach_wait(d->fe, NOXS_DEV_SYSCTL, 0,
                                          B3_TIMEOUT_MS);
    if (d->sysctl == NULL)
        return -1;
    if (noxs_dev_set_kv(d->sysctl, NOXS_SYSCTL_KEY_FEATURE_PREFIX NOXS_SYSCTL_REASON_POWEROFF,
                        "1") < 0)
        return -1;
    noxs_dev_set_features(d->sysctl, NOXS_FEATURE_KV | NOXS_SYSCTL_POWEROFF);
    if (noxs_dev_refresh(d->sysctl) >= 0 &&
        noxs_dev_peer_state(d->sysctl) == NOXS_STATE_INITWAIT) {
        noxs_dev_set_state(d->sysctl, NOXS_STATE_CONNECTED);
        return noxs_dev_publish(d->sysctl);
    }
    noxs_dev_set_state(d->sysctl, NOXS_STATE_INITIALISING);
    if (noxs_dev_publish(d->sysctl) < 0 ||
        noxs_dev_wait_peer(d->sysctl, NOXS_STATE_INITWAIT, B3_TIMEOUT_MS) < 0)
        return -1;
    noxs_dev_set_state(d->sysctl, NOXS_STATE_CONNECTED);
    return noxs_dev_publish(d->sysctl);
}

/* Sector 0 (4 KiB) read back and checked against the image's pattern. */
static int check_sector0(noxs_blkfront *b)
{
    static uint8_t buf[4096];

    memset(buf, 0, sizeof(buf));
    if (noxs_blkfront_read(b, buf, sizeof(buf), 0) < 0)
        return -1;
    for (unsigned int i = 0; i < sizeof(buf); i++)
        if (buf[i] != B3_IMAGE_BYTE(i)) {
            errno = EILSEQ;
            return -1;
        }
    return 0;
}

/* Bring domid up; 0, or -1 with errno and *what set. */
static int bring_up(struct b3_dom *d, unsigned int domid,
                    const struct noxs_boot *boot, const char **what)
{
    const char byte = B3_CONSOLE_BYTE;

    *what = "acting as the domain";
    if (noxs_open_as((int)domid, NULL) < 0)
        return -1;
    *what = "open the device page";
    d->fe = noxs_frontend_open(boot);
    if (d->fe == NULL)
        return -1;
    fprintf(out, "opened %u\n", domid);
    *what = "sysctl handshake";
    if (sysctl_start(d) < 0)
        return -1;
    fprintf(out, "sysctl %u %lld\n", domid, now_ns());
    d->cons.f = d->fe;
    d->cons.order = 0; /* one page each way: a byte needs no more */
    if (cons_front_connect(&d->cons, 0, B3_TIMEOUT_MS, what) < 0)
        return -1;
    fprintf(out, "console %u %lld\n", domid, now_ns());
    *what = "blk connect";
    d->blk = noxs_blkfront_open(d->fe, 0, 0, B3_TIMEOUT_MS);
    if (d->blk == NULL)
        return -1;
    fprintf(out, "blk %u %lld\n", domid, now_ns());
    *what = "sysctl Connected";
    if (noxs_dev_wait_peer(d->sysctl, NOXS_STATE_CONNECTED, B3_TIMEOUT_MS) < 0)
        return -1;
    fprintf(out, "conn %u %lld\n", domid, now_ns());
    *what = "blk read of sector 0";
    if (check_sector0(d->blk) < 0)
        return -1;
    *what = "console out ring full";
    errno = ENOSPC;
    if (cons_front_put(&d->cons, &byte, 1) != 1)
        return -1;
    fprintf(out, "byte %u %lld\n", domid, now_ns());
    /* As noxs-sysctl-front does once Connected, and off the timed path:
     * the liveness page, so that the backend sees the domain die. */
    *what = "sysctl liveness page";
    if (noxs_dev_liveness_start(d->sysctl, 0) < 0 ||
        noxs_dev_publish(d->sysctl) < 0)
        return -1;
    fprintf(out, "up %u\n", domid);
    return 0;
}

static void drop(struct b3_dom *d)
{
    if (d->blk != NULL)
        noxs_blkfront_close(d->blk);
    if (d->cons.dev != NULL || d->cons.xgs != NULL)
        cons_front_close(&d->cons);
    if (d->sysctl != NULL)
        noxs_dev_detach(d->sysctl);
    if (d->fe != NULL)
        noxs_frontend_close(d->fe);
    memset(d, 0, sizeof(*d));
}

int b3_guest_main(int in_fd, int out_fd)
{
    struct b3_dom *doms = calloc(B3_PER_GUEST, sizeof(*doms));
    FILE *in = fdopen(in_fd, "r");
    char line[256];
    size_t n = 0;

    out = fdopen(out_fd, "w");
    if (doms == NULL || in == NULL || out == NULL)
        return 1;
    setvbuf(out, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    while (n < B3_PER_GUEST && fgets(line, sizeof(line), in) != NULL) {
        struct noxs_boot boot;
        unsigned int domid;
        char bstr[128];
        const char *what = "bad line";

        if (sscanf(line, "%u %127s", &domid, bstr) != 2 ||
            noxs_boot_parse(bstr, &boot) < 0) {
            fprintf(out, "error 0 %s\n", what);
            continue;
        }
        if (bring_up(&doms[n], domid, &boot, &what) < 0) {
            fprintf(out, "error %u %s: %s\n", domid, what, strerror(errno));
            drop(&doms[n]);
            continue;
        }
        n++;
    }
    /* Told to stop: every domain goes away at once (as a domain that
     * is destroyed does), so nothing is closed one by one here. */
    while (fgets(line, sizeof(line), in) != NULL)
        ;
    return 0;
}
