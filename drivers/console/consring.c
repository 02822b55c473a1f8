/* consring: see consring.h. */
#include "consring.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What is left of deadline, never "forever" (< 0) for a late caller. */
static int left_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();

    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX
                                           : (int)left;
}

static int set_u32(noxs_dev *d, const char *key, uint32_t v)
{
    char buf[16];

    snprintf(buf, sizeof(buf), "%u", v);
    return noxs_dev_set_kv(d, key, buf);
}

/* Our half of the rings: pages shared, keys published. */
static int share_rings(struct cons_front *fr, const char **what)
{
    xenevtchn_port_or_error_t port;

    fr->data_pages = 2u << fr->order;
    fr->ring_bytes = noxs_cons_ring_bytes(fr->order);
    *what = "opening grant/event channel handles";
    if ((fr->xgs = xengntshr_open(NULL, 0)) == NULL ||
        (fr->xce = xenevtchn_open(NULL, 0)) == NULL)
        return -1;
    *what = "allocating an event channel";
    if ((port = xenevtchn_bind_unbound_port(fr->xce, fr->backend_domid)) < 0)
        return -1;
    fr->port = (uint32_t)port;
    *what = "sharing the ring pages";
    fr->hdr = xengntshr_share_pages(fr->xgs, fr->backend_domid, 1,
                                    &fr->hdr_ref, 1);
    if (fr->hdr == NULL)
        return -1;
    fr->data = xengntshr_share_pages(fr->xgs, fr->backend_domid,
                                     (int)fr->data_pages, fr->data_refs, 1);
    if (fr->data == NULL)
        return -1;
    memset(fr->hdr, 0, NOXS_CONS_PAGE_SIZE);

    *what = "publishing the rings";
    if (set_u32(fr->dev, "ring-ref", fr->hdr_ref) < 0 ||
        set_u32(fr->dev, "ring-page-order", fr->order) < 0 ||
        set_u32(fr->dev, "event-channel", fr->port) < 0)
        return -1;
    for (unsigned int i = 0; i < fr->data_pages; i++) {
        char key[24];

        snprintf(key, sizeof(key), "data-ref%u", i);
        if (set_u32(fr->dev, key, fr->data_refs[i]) < 0)
            return -1;
    }
    return 0;
}

int cons_front_connect(struct cons_front *fr, uint32_t devid, int timeout_ms,
                       const char **what)
{
    int64_t deadline = now_ms() + timeout_ms;

    *what = "cannot attach to the console device";
    fr->dev = noxs_frontend_attach_wait(fr->f, NOXS_DEV_CONSOLE, devid,
                                        timeout_ms);
    if (fr->dev == NULL)
        return -1;
    fr->backend_domid = noxs_dev_backend_domid(fr->dev);
    noxs_dev_set_state(fr->dev, NOXS_STATE_INITIALISING);
    *what = "waiting for the backend";
    if (noxs_dev_publish(fr->dev) < 0 ||
        noxs_dev_wait_peer(fr->dev, NOXS_STATE_INITWAIT, left_ms(deadline)) < 0)
        return -1;
    if (share_rings(fr, what) < 0)
        return -1;
    *what = "sharing the liveness page";
    if (noxs_dev_liveness_start(fr->dev, 0) < 0)
        return -1;
    noxs_dev_set_state(fr->dev, NOXS_STATE_INITIALISED);
    *what = "connecting to the backend";
    if (noxs_dev_publish(fr->dev) < 0 ||
        noxs_dev_wait_peer(fr->dev, NOXS_STATE_CONNECTED, left_ms(deadline)) < 0)
        return -1;
    *what = "publishing Connected";
    return noxs_dev_switch_state(fr->dev, NOXS_STATE_CONNECTED);
}

void cons_front_close(struct cons_front *fr)
{
    if (fr->dev != NULL) {
        if (noxs_dev_switch_state(fr->dev, NOXS_STATE_CLOSING) == 0)
            noxs_dev_wait_state(fr->dev, NOXS_STATE_CLOSING, 5000);
        noxs_dev_detach(fr->dev);
        fr->dev = NULL;
    }
    /* The header first, while the port is still bound. */
    if (fr->hdr != NULL)
        xengntshr_unshare(fr->xgs, fr->hdr, 1);
    if (fr->data != NULL)
        xengntshr_unshare(fr->xgs, fr->data, fr->data_pages);
    if (fr->xce != NULL) {
        if (fr->hdr != NULL)
            xenevtchn_unbind(fr->xce, fr->port);
        xenevtchn_close(fr->xce);
    }
    if (fr->xgs != NULL)
        xengntshr_close(fr->xgs);
    fr->hdr = NULL;
    fr->data = NULL;
    fr->xce = NULL;
    fr->xgs = NULL;
}

uint32_t cons_front_put(struct cons_front *fr, const void *buf, uint32_t len)
{
    struct noxs_cons_header *h = fr->hdr;
    uint32_t used = fr->out_prod - noxs_cons_load(&h->out_cons);
    uint32_t n;

    if (used > fr->ring_bytes)
        return 0; /* a confused backend: nothing fits */
    n = noxs_cons_write(fr->data, fr->ring_bytes, fr->out_prod,
                        fr->ring_bytes - used, buf, len);
    if (n == 0)
        return 0;
    fr->out_prod += n;
    noxs_cons_store(&h->out_prod, fr->out_prod);
    noxs_cons_mb();
    if (noxs_cons_load(&h->out_data_wanted))
        xenevtchn_notify(fr->xce, fr->port);
    return n;
}
