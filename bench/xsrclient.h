/*
 * xsrclient: the guest side of the XenStore ring protocol, as Linux's
 * xenbus speaks it (drivers/xen/xenbus/xenbus_comms.c), for simulated
 * guests of the benchmarks: the store ring is a page of the guest's own
 * memory (struct xenstore_domain_interface: 1024-byte request and
 * response rings with their consumer/producer indexes), the store event
 * channel is a port the guest allocates for domain 0, and the daemon
 * learns both from the toolstack's INTRODUCE (domid, frame, port). One
 * request at a time; replies are matched by request id, watch events
 * that arrive meanwhile are queued. Every wait is bounded.
 *
 * Functions return 0 (or a count) or -1 with errno set; an ERROR reply
 * sets errno from its name (ENOENT, EACCES, EAGAIN, ...).
 */
#ifndef NOXS_BENCH_XSRCLIENT_H
#define NOXS_BENCH_XSRCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xenevtchn.h>

/*
 * The guest frame that holds the store ring. On Xen the domain builder
 * picks the page and points the guest's grant entry
 * GNTTAB_RESERVED_XENSTORE at it; the simulator has no builder, so the
 * bench's guests and bench/xsdsim.c (which answers the daemons' map of
 * that grant entry with a foreign map of this frame) agree on it here.
 */
#define XSRC_STORE_GFN 1u

struct xsrc_event {
    char *path, *token; /* token points into path's allocation */
};

struct xsrc {
    unsigned int domid;
    void *ring; /* struct xsr_intf */
    xenevtchn_handle *xce;
    evtchn_port_t port; /* ours; the daemon binds to it */
    uint32_t next_id;
    struct xsrc_event *evq;
    size_t nev, evcap;
    int timeout_ms; /* per request (default 30 s) */
};

/*
 * Become domain DOMID's store client: open an event-channel handle as
 * that domain, allocate the store port for domain 0, map frame GFN of
 * the domain's memory (from $NOXS_SIM_DIR) and zero it. The caller then
 * introduces (DOMID, GFN, c->port) through the toolstack.
 */
int xsrc_open(struct xsrc *c, unsigned int domid, unsigned int gfn);
void xsrc_close(struct xsrc *c);

/* One request (payload of len bytes); the reply's payload, NUL
 * terminated, in *reply (free it) and its length in *rlen (either may be
 * NULL). */
int xsrc_request(struct xsrc *c, uint32_t type, uint32_t tx,
                 const void *payload, uint32_t len, char **reply,
                 uint32_t *rlen);

/* The usual calls. xsrc_read returns the value (free it) or NULL. */
char *xsrc_read(struct xsrc *c, uint32_t tx, const char *path,
                uint32_t *len);
int xsrc_read_int(struct xsrc *c, uint32_t tx, const char *path, int *out);

/*
 * A libxenstore handle (xs_open) of simulated domain domid, for guests
 * that speak through the library instead of a ring: the simulator's
 * identity is per thread, so the thread's is set for the open and put
 * back to 0. NULL with errno.
 */
struct xs_handle;
struct xs_handle *xsrc_xs_open_as(unsigned int domid);
int xsrc_write(struct xsrc *c, uint32_t tx, const char *path,
               const char *value);
/* The number of entries of path (their names are not kept). */
int xsrc_directory(struct xsrc *c, uint32_t tx, const char *path);
int xsrc_watch(struct xsrc *c, const char *path, const char *token);
int xsrc_unwatch(struct xsrc *c, const char *path, const char *token);
int xsrc_tx_start(struct xsrc *c, uint32_t *tx);
int xsrc_tx_end(struct xsrc *c, uint32_t tx, bool abort);

/* Wait up to timeout_ms for a watch event: 1 (stored in *ev if ev is
 * not NULL, free ev->path), 0 on timeout. */
int xsrc_wait_event(struct xsrc *c, int timeout_ms, struct xsrc_event *ev);
/* How many waits, in every client of the process, woke at the end of a
 * slice (1 s) with no event and went on: 0 unless a notification was
 * late or lost (then the figures include that second). */
extern unsigned long xsrc_slow_wakeups;

/* Drop every queued watch event. */
void xsrc_drop_events(struct xsrc *c);

/*
 * Write n (key, value) pairs under dir in one transaction, retried on
 * EAGAIN.
 */
int xsrc_write_keys(struct xsrc *c, const char *dir,
                    const char *const (*keys)[2], size_t n);
/* The legacy frontend's rings, channel and Connected under dir (its
 * device directory), in one transaction. */
int xsrc_front_publish(struct xsrc *c, const char *dir);

/*
 * The frontend half of the legacy pair's handshake
 * (tests/legacy/legacy.c, legacy_front_connect) over the ring: read
 * the backend path, wait for its InitWait, read its features, publish
 * the rings and Connected in one transaction (retried on EAGAIN), wait
 * for the backend's Connected.
 */
int xsrc_front_connect(struct xsrc *c, const char *cls, unsigned int devid,
                       int timeout_ms);

#endif
