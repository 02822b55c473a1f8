/*
 * consring: the guest side of one console device's connection, shared
 * by noxs-console-front and programs that act as many guests in one
 * process (the bring-up benchmark): the handshake that shares the rings
 * of <noxs/io/consif.h> with the backend, and the shutdown.
 *
 * Moving bytes stays with the caller, which owns the poll loop: it uses
 * hdr, data, ring_bytes and the private indices below as consif.h says.
 */
#ifndef NOXS_CONSRING_H
#define NOXS_CONSRING_H

#include <stdint.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/noxs.h>
#include <noxs/io/consif.h>

struct cons_front {
    noxs_frontend *f;
    noxs_dev *dev;
    uint16_t backend_domid;
    xengntshr_handle *xgs;
    xenevtchn_handle *xce;
    uint32_t port;
    struct noxs_cons_header *hdr;
    uint32_t hdr_ref;
    uint8_t *data;
    uint32_t data_refs[2u << NOXS_CONS_MAX_RING_ORDER];
    unsigned int order, data_pages; /* order: set before connecting */
    uint32_t ring_bytes;
    uint32_t out_prod, in_cons; /* private indices */
};

/*
 * Attach to console devid of fr->f (waiting up to timeout_ms in all),
 * share rings of 2^fr->order pages each way and the liveness page, and
 * walk to Connected. 0, or -1 with errno and *what naming the step that
 * failed; what is set up stays in fr for cons_front_close.
 */
int cons_front_connect(struct cons_front *fr, uint32_t devid, int timeout_ms,
                       const char **what);
/* Walk Closing -> Closed (bounded) and release what connect set up. */
void cons_front_close(struct cons_front *fr);
/*
 * Put up to len bytes into the out ring without blocking and notify the
 * backend if it waits for data: how many bytes went in (0: ring full).
 */
uint32_t cons_front_put(struct cons_front *fr, const void *buf, uint32_t len);

#endif
