/*
 * noxs-xsringd's parts (docs/XSRINGD.md): what the main loop
 * (xsringd.c), the domains' rings (xsringd_dom.c), the watch records
 * (xsringd_rec.c), the request path (xsringd_serve.c) and xenstored's
 * Unix socket (xsringd_sock.c) share.
 *
 * Every connection the service answers is a struct conn: a guest's
 * store ring, dom0's kernel ring, or a client of the Unix socket. All of
 * them run their requests through serve_requests() and one local-store
 * connection of their own, with their domain's identity.
 */
#ifndef COMPAT_XS_XSRINGD_INT_H
#define COMPAT_XS_XSRINGD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xengnttab.h>

#include "gstore.h"
#include "xsringd_ring.h"

/* Requests served per connection per loop turn: one guest's flood waits
 * its turn behind every other connection's. */
#define BUDGET 8
/* Events moved from the store to a connection per turn. */
#define EV_BUDGET 16
/* Bytes queued for a peer that does not read its replies. */
#define OUT_CAP (64u * 1024u)
#define REC_ROOT "/tool/xsringd"
/* Open transactions per connection (the store allows 10 to a guest). */
#define TX_MAX 16
/* A watch record carries the WATCH payload below a ~32-byte path. */
#define WATCH_REC_MAX (XSW_PAYLOAD_MAX - 64)

struct pwatch {
    uint32_t id;
    uint32_t len;
    char *payload; /* "path\0token\0" as the guest sent it */
};

struct conn {
    unsigned int domid;
    uint64_t mfn;
    uint32_t port;
    struct xsr_intf *ring; /* NULL for a socket client */
    bool by_grant;
    bool kernel; /* dom0's own kernel: ring mapped from xsd_kva */
    int lport;   /* -1: not bound */
    int sfd;     /* a socket client's socket, else -1 */
    bool wpoll;  /* sfd is polled for room to write */
    bool gone;   /* the socket client went away: to be freed */
    struct cxs_gconn *g;
    /* g has watches: its events are looked at whenever the store's bell
     * rang (the service polls the bell, not one fd per connection). */
    bool watching;
    /* Events may wait in g (a watch's first one, or more than a turn
     * takes): looked at next turn if the peer has room for them. */
    bool evq;
    struct xsr_in in;
    struct xsr_out out;
    bool broken; /* protocol error: not read until it reconnects */
    bool busy;
    /* A request was half written when last read: xenbus notifies only
     * when the service had taken everything before, and the service
     * takes a request only once whole (so a restarted service finds it
     * in the ring), so the rest comes with no notification: the ring is
     * looked at again 1 ms later. */
    bool partial;
    bool seen;
    uint32_t wseq;
    struct pwatch *pw;
    size_t npw;
    unsigned long dropped; /* events dropped: peer not reading */
    /* Open transactions: the id the peer sees, the store's. */
    struct {
        uint32_t guest, local;
    } tx[TX_MAX];
    unsigned int ntx;
    uint32_t txnext;
    /* Requests answered, for the fairness checks (-v logs them). */
    unsigned long served;
};

/* The service's state (xsringd.c). */
extern const char *store_dir;
extern xenevtchn_handle *xce;
extern xengnttab_handle *xgt;
extern xenforeignmemory_handle *xfm;
extern struct cxs_gconn *ctl;
extern int epfd;
extern struct conn **doms;
extern size_t ndoms, capdoms;
extern uint32_t tx_base;

/* The service's own dom0 connection (xsringd_rec.c). */
int call(struct cxs_gconn *g, uint32_t type, const void *p, uint32_t len,
         uint32_t *rtype, char **reply, uint32_t *rlen);
int ctl_call(uint32_t type, const void *p, uint32_t len, char **reply,
             uint32_t *rlen);
int ctl_rm(const char *path);

/* Watch records of rings, kept across restarts (xsringd_rec.c); none
 * for socket clients, whose watches end with their connection. */
void rec_dir(const struct conn *d, char *b, size_t n);
void rec_watch(struct conn *d, const char *p, uint32_t len);
void rec_unwatch(struct conn *d, const char *p, uint32_t len);
void rec_reset(struct conn *d);
void rec_restore(struct conn *d);
void pw_clear(struct conn *d);

/* Rings (xsringd_dom.c). */
struct conn *conn_new(unsigned int domid, uint32_t port);
void conn_free(struct conn *d);
int conns_add(struct conn *d);
void conn_remove(size_t i);
void notify(struct conn *d);
struct conn *kernel_attach(const char *kva, const char *portfile);
void rescan(bool first);
void dom_detach(size_t i, bool released);
void ports_free(void);
void port_pending(int port);

/* Requests (xsringd_serve.c). */
void handle(struct conn *d, const struct xsw_hdr *h, const char *p);
void queue_error(struct conn *d, const struct xsw_hdr *h, int e);
int serve_events(struct conn *d, bool *more);
bool events_due(const struct conn *d);
bool out_pending(const struct conn *d);
bool serve(struct conn *d);

/* xenstored's Unix socket (xsringd_sock.c). */
int sock_listen(const char *path);
void sock_accept(int lfd);
bool sock_serve(struct conn *d);
void sock_close_all(void);

#endif /* COMPAT_XS_XSRINGD_INT_H */
