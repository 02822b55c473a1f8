/*
 * xs-bringup3: bring up N domains with three devices each (a vbd, a
 * console and the legacy pair's vif) on Debian's xenstored or
 * oxenstored, guests on their store rings (bench/xsrclient.c), one dom0
 * backend process for all three classes, and a first byte over a data
 * page of each vbd and console (docs/BENCHMARKS.md).
 *
 * Shared by the program (xsbringup3.c: toolstack, timing, output), the
 * guests' frontends (xsbringup3-guest.c) and the dom0 backend
 * (xsbringup3-back.c).
 */
#ifndef NOXS_BENCH_XSBRINGUP3_H
#define NOXS_BENCH_XSBRINGUP3_H

#include <stddef.h>
#include <stdint.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#include "xsrclient.h"

/* The devices of every domain, in this order. */
enum { X3_VBD,
       X3_CONSOLE,
       X3_VIF,
       X3_NDEV };

/* xvda, as libxl numbers it (202 << 8). */
#define X3_VBD_DEVID 51712u

struct x3_class {
    const char *cls;
    unsigned int devid;
};
extern const struct x3_class x3_classes[X3_NDEV];

/*
 * The minimal data ring of a vbd or a console: one page the frontend
 * grants to domain 0, announced as ring-ref with its event channel. The
 * frontend fills the request and then sets req (nonzero), the backend
 * answers and then sets rsp to the same value; each notifies the other.
 * vbd: op X3_OP_READ of sector, into the 4 KiB page the frontend granted
 * as gref (the backend maps it and writes the sector's content). console:
 * one byte in byte. Not blkif or xencons_interface: enough to carry one
 * request each way through real grants and channels.
 */
struct x3_ring {
    uint32_t req, rsp;
    uint32_t op, gref;
    uint64_t sector;
    uint8_t byte;
};
#define X3_OP_READ 0u

/* The content of a vbd's sector 0 at byte i (the guest checks it). */
static inline uint8_t x3_sector0(unsigned int domid, unsigned int i)
{
    return (uint8_t)(domid * 7u + i);
}

/* ---- guest (xsbringup3-guest.c) ---- */

struct x3_gdev {
    char dir[96], be[96];
    int be_state, fe_state;
    uint32_t ref, dref;   /* ring page, data page (vbd) */
    struct x3_ring *ring; /* shared with domain 0 */
    void *data;
    evtchn_port_t port;
};

struct x3_guest {
    unsigned int domid;
    struct xsrc c;         /* the store ring */
    xenevtchn_handle *xce; /* the data channels */
    xengntshr_handle *gs;
    struct x3_gdev dev[X3_NDEV];
};

/* The store ring and port of domid (before the toolstack introduces it). */
int x3_guest_open(struct x3_guest *g, unsigned int domid);
/* The three frontends' handshakes, until every backend is Connected. */
int x3_guest_connect(struct x3_guest *g, int timeout_ms);
/* One console byte and one read of sector 0, until both are answered. */
int x3_guest_first_byte(struct x3_guest *g, int timeout_ms);
void x3_guest_close(struct x3_guest *g);

/* ---- dom0 backend (xsbringup3-back.c) ---- */

/*
 * Fork the backend: one process, one xs handle, acting as domain 0. It
 * writes "r" to *events once it watches its directories and one byte
 * per device it has let go (its directory removed), and exits when the
 * caller closes its end of the pipe. It serves max_devices devices at
 * most. The pid, or -1.
 */
int x3_back_start(int *events, size_t max_devices);

#endif
