/*
 * What the files of the libxenstore API share (private.h lists every
 * file of compat-xs): the handle, a transaction's staged operations,
 * the library lock around each entry point, and the calls from one of
 * these files into another.
 */
#ifndef COMPAT_XS_HANDLE_H
#define COMPAT_XS_HANDLE_H

#include <errno.h>
#include <pthread.h>

#include <xenstore.h>

#include "private.h"

/* How long a request relayed to a device's backend may take. */
#define PROXY_TIMEOUT_MS 5000

/* One staged write, mkdir or rm of a transaction (tx.c). */
#define OP_WRITE 1
#define OP_MKDIR 2
#define OP_RM 3

struct op {
    int kind;
    char *path; /* absolute */
    char *value;
    unsigned int len;
};

/* A transaction of a handle: its operations on the pages, staged until
 * xs_transaction_end, and the page reads it must validate then. */
struct tx {
    struct tx *next;
    uint32_t id;
    uint32_t gtx; /* the generic store's transaction, 0 until used */
    struct op *ops;
    size_t nops, capops;
    struct cxs_kvlist reads; /* path -> value seen ("\1" + errno if none) */
};

/* A libxenstore handle (xs.c opens and closes it). The watch, event and
 * token types are watch.c's, struct cxs_adds is tx.c's. */
struct xs_handle {
    struct cxs_ctx *ctx;
    struct xs_handle *ctx_next;
    int epfd;
    bool readonly, signalled; /* signalled: ready_fd is in epfd */
    struct watch *watches;
    struct cxs_htab tokens; /* struct tokent */
    struct event *head, *tail;
    struct tx *txs;
    uint32_t next_tx;
    struct cxs_gconn *g;   /* the generic store; NULL in noxs mode */
    int gdead;             /* its errno once it failed, else 0 */
    struct cxs_adds *adds; /* set while a transaction's batch applies */
    /* Once xs_fileno was called (watch.c): a pipe readable exactly while
     * an event is queued (or the store was lost), kept so by a thread
     * that takes the sources' events as they come. */
    bool fmode;
    int fpipe[2];
    int fstop;  /* eventfd: the thread ends */
    pid_t fpid; /* the process that started the thread */
    pthread_t fthread;
    struct xs_handle *anext, **apprev; /* every open handle (cxs_handles) */
};

/* Every open handle of the process, under cxs_lock (xs.c). */
extern struct xs_handle *cxs_handles;
/* The noxsd client fd ctx's special watches use, or -1 (special.c). */
int cxs_special_fd(struct cxs_ctx *ctx);

/*
 * Every entry point runs between cxs_enter and cxs_leave (the library
 * lock). A call that succeeds leaves errno 0, as Debian's libxenstore
 * does after a request (callers such as test-xenstore read errno after a
 * call that succeeded); a failure sets it after cxs_leave.
 */
/* xs_fileno: the fd to poll; stop its thread (without cxs_lock held). */
int cxs_fileno(struct xs_handle *h);
void cxs_fileno_stop(struct xs_handle *h);
/* Set in a child by fork(): its handles' poll sets and fileno threads
 * must be made its own (cxs_after_fork, under cxs_lock). */
extern volatile int cxs_forked;
void cxs_after_fork(void);

static inline void cxs_enter(void)
{
    pthread_mutex_lock(&cxs_lock);
    if (cxs_forked)
        cxs_after_fork();
}

static inline void cxs_leave(void)
{
    pthread_mutex_unlock(&cxs_lock);
    errno = 0;
}

static inline bool fail(int err)
{
    errno = err;
    return false;
}

static inline void *fail_ptr(int err)
{
    errno = err;
    return NULL;
}

/* ---- xs.c: paths and devices ---- */

/* Log an unsupported path (EACCES) once per process. */
void cxs_unsupported(const char *what, const char *path);
/* Absolute form of path into buf (relative to the handle's domain
 * path); *strip: bytes to strip again from events of a relative watch. */
int cxs_absolute(struct xs_handle *h, const char *path, char *buf,
                 size_t len, size_t *strip);
/* cxs_absolute into abs (CXS_ABS_PATH_MAX + 1 bytes), then parsed. */
int cxs_parse(struct xs_handle *h, const char *path, char *abs,
              struct cxs_path *p);
/* cxs_parse, and *x the transaction t names (NULL for XBT_NULL):
 * -ENOENT if t names none. */
int cxs_parse_tx(struct xs_handle *h, xs_transaction_t t, const char *path,
                 char *abs, struct cxs_path *p, struct tx **x);
/* The local device a device/backend path names, or NULL. */
struct cxs_dev *cxs_local_dev(struct xs_handle *h, const struct cxs_path *p);
/* A control request to the backend of a device this process is not an
 * end of (xs-read, xs-write, xs-rm, xs-dir). */
int cxs_proxy(struct xs_handle *h, const struct cxs_path *p, const char *cmd,
              const char *arg, char *reply, size_t reply_len);
/* Read a node of the pages outside any transaction. */
int cxs_node_read(struct xs_handle *h, const char *abs,
                  const struct cxs_path *p, char **out, unsigned int *len);

/* ---- dir.c: listings ---- */

/* One known device, from the local roles or noxsd's list. */
struct devref {
    uint16_t fe, be;
    uint32_t id;
    char cls[CXS_CLASS_MAX + 1];
};
/* Every legacy device relevant to p (malloc'd vector into *out). */
int cxs_gather(struct xs_handle *h, const struct cxs_path *p,
               struct devref **out, size_t *count);
/* The child names of p on the pages, in libxenstore's layout. */
int cxs_dir_read(struct xs_handle *h, const struct cxs_path *p,
                 char ***names, unsigned int *num);

/* ---- watch.c: watches and events ---- */

/* The process's always-readable eventfd, created on first use. */
int cxs_ready_fd_get(void);
/* Drop the handle's queued events, watches and tokens. */
void cxs_watch_close(struct xs_handle *h);

/* ---- special.c: @introduceDomain and @releaseDomain from noxsd ---- */

/* A watch on @introduceDomain / @releaseDomain was set on h. */
void cxs_special_watch(struct xs_handle *h);
/* Take noxsd's domain events for ctx and fire the special watches. */
void cxs_special_poll(struct cxs_ctx *ctx);
/* How long a waiting xs_read_watch may sleep (ms, -1: no limit). */
int cxs_special_wait(struct cxs_ctx *ctx);
/* This process introduced or released domid: fire the special watch
 * now and, if noxsd sends an event for it (expect), skip that one. */
void cxs_special_own(struct cxs_ctx *ctx, uint16_t domid, bool release,
                     bool expect);
void cxs_special_free(struct cxs_ctx *ctx);

/* ---- tx.c: transactions and batches ---- */

struct tx *cxs_find_tx(struct xs_handle *h, xs_transaction_t t);
/* The transaction's own last word on abs, if any: 1 value, 0 none,
 * -ENOENT removed. */
int cxs_tx_lookup(struct tx *t, const char *abs, char **out,
                  unsigned int *len);
/* Remember what a read in the transaction saw (validated at its end). */
void cxs_tx_record(struct tx *t, const char *abs, int rc, const char *v,
                   unsigned int len);
void cxs_tx_free(struct tx *t);
/* One write, mkdir or rm: staged in transaction t, or applied now. */
int cxs_stage(struct xs_handle *h, xs_transaction_t t, int kind,
              const char *path, const void *data, unsigned int len);

/* ---- route.c: which store serves a handle's path ---- */

#define R_NOXS 0    /* device and control pages only */
#define R_GENERIC 1 /* the generic store only */
#define R_BOTH 2    /* a directory both hold: list, watch and rm both */

#define OPK_READ 0
#define OPK_DIR 1
#define OPK_WRITE 2 /* write, mkdir */
#define OPK_RM 3
#define OPK_WATCH 4

/* R_NOXS, R_GENERIC or R_BOTH for an operation (OPK_*) on p. */
int cxs_route(struct xs_handle *h, const struct cxs_path *p, int op);
/* The generic store's transaction for x (0 for none), started on first
 * use. */
int cxs_gtx_of(struct xs_handle *h, struct tx *x, uint32_t *gtx);

#endif /* COMPAT_XS_HANDLE_H */
