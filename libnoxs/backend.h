/*
 * The backend side of libnoxs, shared by its files (see backend.c for
 * how it works):
 *   backend.c        device bookkeeping, events, removal, the public calls
 *   backend_noxsd.c  the connection to noxsd: requests, answers, reports
 *   backend_store.c  the service manager's fd store (restarts)
 *   backend_walk.c   the xenbus state walk and the frontend's liveness
 *
 * The bk_ functions are hidden like every internal symbol of the library
 * (-fvisibility=hidden); they are only called between these files.
 */
#ifndef NOXS_BACKEND_H
#define NOXS_BACKEND_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "private.h"
#include "proto.h"
#include "svc.h"

#define BACKEND_IO_TIMEOUT_MS 5000
#define BACKEND_RETRY_MIN_MS 50
#define BACKEND_RETRY_MAX_MS 2000
#define BACKEND_CLOSE_TIMEOUT_MS 2000
#define BACKEND_HASH 1024u
#define BACKEND_EVENTS_PER_DISPATCH 256
/* Back-off for a torn frontend half (doubling). */
#define BACKEND_TORN_MIN_MS 1
#define BACKEND_TORN_MAX_MS 1000
/* State reports per device: a burst, then one per interval. */
#define BACKEND_REPORT_BURST 4
#define BACKEND_REPORT_INTERVAL_MS 25
/* Queued answers before we stop reading noxsd's requests. */
#define BACKEND_TXQ_MAX 64u

struct bdev {
    noxs_dev *d;
    struct bdev *hnext;       /* (domid, type, devid) hash chain */
    struct bdev *next, *prev; /* all devices */
    struct bdev *dirty_next;
    struct bdev *cnext; /* closing list */
    int dirty;
    int closing; /* removed: walking Closing -> Closed */
    int has_req; /* noxsd waits for the remove answer */
    uint32_t remove_req, remove_session;
    int64_t close_deadline;           /* noxs_i_now_ms() */
    uint8_t reported_be, reported_fe; /* last states handed to report() */
    /* Torn frontend half: no read before torn_until (torn_ms > 0). */
    struct bdev *tnext; /* torn list */
    int torn_ms;
    int64_t torn_until;
    int masked; /* its port left masked while deferred */
    /* A state report waiting for room or for the rate limit. */
    struct bdev *rnext; /* pending-report list */
    int report_pending;
    int tokens;        /* reports allowed right now */
    int64_t tokens_ms; /* when the bucket last refilled */
    struct brec *rec;  /* fd store: the device's record */
    int connected;     /* ops->connect succeeded, not yet ended */
    int peer_died;     /* the walk saw the frontend die (until a new one
                        * starts): it will not close */
    int resuming;      /* adopted Connected: connect it again */
};

/*
 * The state file (a memfd in the fd store): a header, then one record per
 * device slot. Sparse: only slots in use cost memory. A record is written
 * step by step (CREATING with the page's index, then the port, then LIVE)
 * so that a backend killed half-way leaves what the next one undoes.
 */
#define BSTORE_MAGIC 0x6e786273u
#define BSTORE_VERSION 1u
#define BSTORE_MAX 16384u
#define BSTORE_RECS_OFF 4096u
#define BSTORE_NFDS 3

enum { BREC_FREE,
       BREC_CREATING,
       BREC_LIVE };

struct bstore_hdr {
    uint32_t magic, version;
    uint16_t domid, pad;
    uint32_t nrec;
};

struct brec {
    uint32_t state; /* BREC_* */
    uint16_t domid;
    uint16_t type;
    uint32_t devid;
    uint32_t gref;
    uint32_t port; /* 0 until bound */
    uint32_t pad;
    uint64_t index;            /* gntalloc mmap offset */
    struct noxs_ctrl_half own; /* our half as last published */
};


/* An answer to noxsd that did not fit into the socket yet. */
struct txmsg {
    struct txmsg *next;
    size_t len;
    uint8_t data[];
};

struct pending_control {
    struct pending_control *next;
    uint32_t local;   /* given to ops->control */
    uint32_t request; /* noxsd's request id */
    uint32_t session; /* connection it came on */
    int answered;
};

struct noxs_backend {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const struct noxs_backend_ops *ops;
    void *arg;
    uint16_t domid;
    uint16_t types[NOXS_PROTO_MAX_TYPES];
    size_t ntypes;
    xengntshr_handle *gs;
    xenevtchn_handle *xce;
    int sock; /* -1 while disconnected */
    uint32_t session;
    int epfd, timerfd, strayfd, closefd, tornfd, reportfd;
    int retry_ms;
    uint32_t next_request;
    uint32_t next_local;
    struct bdev *hash[BACKEND_HASH];
    struct bdev *all;     /* live devices (not closing) */
    struct bdev *closing; /* devices walking to Closed */
    struct bdev **by_port;
    size_t nports;
    struct bdev *dirty;
    struct bdev *torn;    /* devices waiting out a torn half */
    struct bdev *reports; /* devices with a pending report */
    struct txmsg *txq, **txq_tail;
    size_t txq_len;
    uint32_t sock_events; /* as registered with epoll; 0: not yet */
    int congested;        /* the socket was full: logged once */
    int reports_blocked;  /* a report found the socket full */
    int64_t report_due;   /* the report timer, -1 when disarmed */
    struct pending_control *controls;
    struct noxs_proto_buf tx;
    struct noxs_proto_buf rtx; /* state reports */
    uint8_t rx[NOXS_PROTO_MAX_MSG + 1];
    struct noxs_proto_msg msg;
    /* fd store (0: none; 1: files stored; 2: and devices adopted) */
    int fdstore;
    int gfd; /* the gntalloc file */
    int sfd; /* the state memfd */
    void *smap;
    struct brec *recs;
    uint32_t rec_hint;
    noxs_i_gntalloc_ioctl_fn *gntalloc_ioctl;
    xengnttab_handle *gt; /* maps liveness pages (opened on first use) */
};

/* epoll tags (backend.c) */
extern int bk_tag_sock, bk_tag_evtchn, bk_tag_timer, bk_tag_stray,
    bk_tag_close, bk_tag_torn, bk_tag_report;

int bk_add_dev(noxs_backend *b, noxs_dev *d);
void bk_arm_timer(int fd, int64_t at);
void bk_begin_close(noxs_backend *b, struct bdev *x, int wait_ms,
                    int has_req, uint32_t req);
void bk_bstore_adopt(noxs_backend *b);
noxs_dev *bk_bstore_dev_new(noxs_backend *b, uint16_t domid,
                            unsigned int type, uint32_t devid,
                            struct brec **recp);
int bk_bstore_open(noxs_backend *b, unsigned int flags);
struct bdev *bk_by_port(noxs_backend *b, uint32_t port);
int bk_connect_noxsd(noxs_backend *b);
void bk_del_dev(noxs_backend *b, struct bdev *x);
void bk_dev_msg(noxs_backend *b, noxs_dev *d, struct noxs_msg_dev *m);
void bk_disconnect(noxs_backend *b);
void bk_drop_control(noxs_backend *b, struct pending_control *pc);
void bk_drop_txq(noxs_backend *b);
struct pending_control *bk_find_control(noxs_backend *b, uint32_t local);
struct bdev *bk_find_dev(noxs_backend *b, uint16_t domid,
                         unsigned int type, uint32_t devid);
void bk_finish_close(noxs_backend *b, struct bdev *x, int timed_out);
void bk_flush(noxs_backend *b);
int bk_handle_socket(noxs_backend *b);
void bk_rec_free(noxs_backend *b, struct brec *r);
void bk_reply_empty(noxs_backend *b, unsigned int type, uint32_t req);
void bk_report(noxs_backend *b, struct bdev *x);
void bk_report_if_changed(noxs_backend *b, struct bdev *x);
int bk_send_tx(noxs_backend *b);
void bk_try_reconnect(noxs_backend *b);
void bk_unlink_report(noxs_backend *b, struct bdev *x);

/* backend_walk.c: the state walk, for drivers that give ops->connect. */
/* After a refresh of x (changed: the frontend's generation moved). */
void bk_walk(noxs_backend *b, struct bdev *x, int changed);
/* x is being removed: end its session (ops->disconnect with ENODEV). */
void bk_walk_remove(noxs_backend *b, struct bdev *x);
/* After open adopted devices from the fd store: resume each. */
void bk_walk_resume(noxs_backend *b);

#endif /* NOXS_BACKEND_H */
