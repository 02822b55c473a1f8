/*
 * compat-xs internals. See docs/COMPAT.md for the design; in short:
 *
 *   path.c   the XenStore path parser: which page half (if any) a path
 *            names. Pure, no I/O, fuzzed by tests/fuzz/fuzz_xspath.c.
 *   ctx.c    per-process domain contexts: the frontend, backend and
 *            toolstack roles on libnoxs, their devices;
 *   view.c   each device's key/value view: reads of both halves,
 *            writes staged in our own;
 *   change.c change detection and watch-event fan-out (the flush).
 *   xs.c     the libxenstore API (every VERS_4.0 symbol): handles,
 *            reads, writes, permissions, the xenstore_lib.h helpers;
 *            the rest of the API, by concern (handle.h has what these
 *            files share):
 *   dir.c    directory listings (the pages' and the generic store's);
 *   watch.c  watches, their event queues and xs_fileno(), the index of
 *            watched paths;
 *   special.c  @introduceDomain/@releaseDomain: noxsd's domain events
 *            and this process's own introductions and releases;
 *   tx.c     transactions and the application of a batch of writes
 *            (optimistic validation, one publish per page half, the
 *            commit over both stores);
 *   domain.c the toolstack's domain calls (introduce, release, ...).
 *   group.c  a batch's staged writes to devices this process is not an
 *            end of (device adds, writes relayed to a backend).
 *   hash.c   the chained hash table behind every per-event lookup
 *            (devices by frontend domain, watches by path, tokens), and
 *            the growable array behind every other table.
 *   control.c  control/shutdown and control/feature-* on the sysctl
 *            device.
 *   route.c  the mode (mixed, local, noxs), which store serves each
 *            path of a call, and the calls into the generic store
 *            (gstore.h: xsd.c, lstore.c) that serves every other path.
 *
 * Internal functions return -errno (or a pointer / NULL with errno set
 * where noted); the API entry points convert at the boundary.
 */
#ifndef COMPAT_XS_PRIVATE_H
#define COMPAT_XS_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <noxs/abi.h>

#define CXS_EXPORT __attribute__((visibility("default")))

/* xenstored's limits (xs_wire.h): XENSTORE_ABS_PATH_MAX, payload. */
#define CXS_ABS_PATH_MAX 3072u
#define CXS_PAYLOAD_MAX 4096u
#define CXS_CLASS_MAX 31u
/* Records one device add carries (noxsd's protocol, docs/PROTOCOL.md
 * `dev_add`: nparams <= 32): the class and at most 31 nodes. */
#define CXS_ADD_PARAMS_MAX 32u
#define CXS_ADD_NODES_MAX (CXS_ADD_PARAMS_MAX - 1)
/* Legacy device ids up to 2^20 - 1 (the low bits of the noxs devid). */
#define CXS_ID_BITS 20u
#define CXS_ID_MAX ((1u << CXS_ID_BITS) - 1)

/* Keys compat-xs keeps for itself in a half's key/value area: never
 * listed, never readable through the API. */
#define CXS_HIDDEN_PREFIX '@'
#define CXS_KEY_CLASS "@class"
#define CXS_KEY_FRONT_PREFIX "@f:" /* toolstack's frontend nodes */
#define CXS_KEY_STATE "state"

enum cxs_kind {
    CXS_UNSUPPORTED = 0,
    CXS_ROOT,          /* / */
    CXS_LOCAL,         /* /local */
    CXS_LOCAL_DOMAIN,  /* /local/domain */
    CXS_DOMAIN,        /* /local/domain/<d> */
    CXS_DEVICE_ROOT,   /* /local/domain/<fe>/device */
    CXS_DEVICE_CLASS,  /* .../device/<class> */
    CXS_DEVICE,        /* .../device/<class>/<id> */
    CXS_DEVICE_KEY,    /* .../device/<class>/<id>/<key> */
    CXS_BACKEND_ROOT,  /* /local/domain/<be>/backend */
    CXS_BACKEND_CLASS, /* .../backend/<class> */
    CXS_BACKEND_FE,    /* .../backend/<class>/<fe> */
    CXS_BACKEND,       /* .../backend/<class>/<fe>/<id> */
    CXS_BACKEND_KEY,   /* .../backend/<class>/<fe>/<id>/<key> */
    CXS_CONTROL,       /* /local/domain/<d>/control */
    CXS_CONTROL_KEY,   /* .../control/shutdown, .../control/feature-* */
    CXS_SPECIAL,       /* @introduceDomain, @releaseDomain (watches) */
};

struct cxs_path {
    enum cxs_kind kind;
    uint16_t domid; /* the <d> after /local/domain */
    uint16_t fe;    /* frontend domain (device and backend paths) */
    uint32_t id;    /* device id */
    char cls[CXS_CLASS_MAX + 1];
    char key[NOXS_CTRL_KEY_MAX + 1];
};

/*
 * Parse an absolute path. Returns 0 with out->kind set (CXS_UNSUPPORTED
 * for a well-formed path outside the supported set), or -EINVAL for a
 * path xenstored would reject too (empty, relative, "//", a trailing
 * '/', characters outside [A-Za-z0-9-/_@], too long), -E2BIG for a key
 * longer than a page half allows.
 */
int cxs_path_parse(const char *path, struct cxs_path *out);

/* Canonical text of a parsed device-tree path into buf (size >= 128). */
void cxs_path_device_dir(char *buf, size_t len, uint16_t fe, const char *cls,
                         uint32_t id);
void cxs_path_backend_dir(char *buf, size_t len, uint16_t be, uint16_t fe,
                          const char *cls, uint32_t id);

/* noxs devid of a legacy device: class code in the high bits. */
uint32_t cxs_devid(const char *cls, uint32_t id);
/* The class of a devid if its code is a well-known one, else NULL. */
const char *cxs_devid_class(uint32_t devid);
uint32_t cxs_devid_id(uint32_t devid);

/* xenstored's is-child rule: child == parent or below it. */
bool cxs_is_child(const char *child, const char *parent);

/* ---- hash.c ---- */

/*
 * Intrusive chained hash table: embed a cxs_hent, walk the entries of one
 * hash with cxs_htab_find / cxs_htab_next and compare keys yourself.
 * Entries of one hash stay newest first. Zero-initialised is empty.
 */
struct cxs_hent {
    struct cxs_hent *next;
    uint64_t hash;
};
struct cxs_htab {
    struct cxs_hent **b;
    size_t nb, n;
};
#define CXS_CONTAINER(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
uint64_t cxs_hash_bytes(const void *p, size_t len);
uint64_t cxs_hash_u64(uint64_t v);
struct cxs_hent *cxs_htab_find(const struct cxs_htab *t, uint64_t hash);
struct cxs_hent *cxs_htab_next(const struct cxs_hent *e, uint64_t hash);
/* -ENOMEM only when the first bucket array cannot be allocated. */
int cxs_htab_add(struct cxs_htab *t, struct cxs_hent *e, uint64_t hash);
void cxs_htab_del(struct cxs_htab *t, struct cxs_hent *e);
void cxs_htab_free(struct cxs_htab *t); /* the buckets, not the entries */

/*
 * Room for one more element in a growable array: vp is the address of a
 * T * holding *cap elements of size bytes, n of them in use. Doubles the
 * capacity (16 at first) when full. 0, or -ENOMEM with the array as it
 * was. Tables filled from what a caller asked for grow this way, so none
 * has a fixed size to overflow or silently stop at; real limits (a page
 * half, a message) are checked where they apply, with an errno.
 */
int cxs_grow(void *vp, size_t *cap, size_t n, size_t size);

/* ---- view.c, ctx.c, change.c ---- */

#include <pthread.h>
#include <noxs/noxs.h>

/* One lock for all compat-xs state of the process (libxenstore handles
 * may be shared between threads; libnoxs handles may not). */
extern pthread_mutex_t cxs_lock;

/* Log one line (stderr, prefixed "compat-xs: "), unless
 * $COMPAT_XS_QUIET is set. */
void cxs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable list of (key, value) strings. */
struct cxs_kv {
    char *key;
    char *value;
    unsigned int len;
};
struct cxs_kvlist {
    struct cxs_kv *e;
    size_t n, cap;
};
void cxs_kvlist_clear(struct cxs_kvlist *l);
struct cxs_kv *cxs_kvlist_find(const struct cxs_kvlist *l, const char *key);
/*
 * A value written through xs_* as the C string that page records hold:
 * -E2BIG beyond NOXS_CTRL_VALUE_MAX, -EINVAL if it contains a NUL byte
 * (it could not round-trip, so it is refused rather than truncated);
 * else copied into buf (NOXS_CTRL_VALUE_MAX + 1 bytes), 0.
 */
int cxs_value_cstr(char *buf, const char *value, unsigned int len);
int cxs_kvlist_set(struct cxs_kvlist *l, const char *key, const char *value,
                   unsigned int len);
int cxs_kvlist_del(struct cxs_kvlist *l, const char *key);

#define CXS_ROLE_FRONT 1
#define CXS_ROLE_BACK 2
#define CXS_HALF_FRONT 1
#define CXS_HALF_BACK 2

struct cxs_ctx;

/*
 * A legacy device this process serves (BACK) or is the frontend of.
 * Linked into its context's list of all devices (newest first: listing
 * order), the by-frontend-domain hash (lookups and one domain's
 * listings), the frontend list (FRONT only) and, while it has something
 * to report, the dirty queue, so a flush visits only what changed.
 */
struct cxs_dev {
    struct cxs_dev *next, *prev; /* ctx->devs */
    struct cxs_ctx *ctx;
    struct cxs_hent by_fe;                     /* ctx->dev_by_fe, hash of fe */
    struct cxs_dev *front_next, **front_pprev; /* ctx->front_devs */
    struct cxs_dev *dirty_next;                /* ctx->dirty while queued */
    struct cxs_dev *touched_next;              /* tx.c: written by the batch applied */
    uint64_t seq;                              /* creation order: higher is newer */
    int role;
    noxs_dev *dev; /* NULL once libnoxs removed it */
    uint16_t fe, be;
    uint32_t id, devid;
    char cls[CXS_CLASS_MAX + 1];
    struct cxs_kvlist own;  /* shadow of our half's records */
    struct cxs_kvlist last; /* the view last reported to watches */
    uint32_t seen_gen;      /* peer generation of `last` */
    bool dirty, gone;
    bool queued;  /* on ctx->dirty */
    bool touched; /* on the applying batch's touched list */
};

struct xs_handle;

/* Per (process, domain): the roles on libnoxs and their devices. */
struct cxs_ctx {
    struct cxs_ctx *next;
    unsigned int domid;
    int refs;
    noxs_frontend *front;
    int front_err; /* errno of the failed open, 0 if untried */
    noxs_backend *back;
    int back_err;
    noxs_client *client;
    int client_err;
    struct cxs_dev *devs;       /* every device, newest first */
    struct cxs_htab dev_by_fe;  /* struct cxs_dev.by_fe */
    struct cxs_dev *front_devs; /* role FRONT (a device page's few) */
    struct cxs_dev *dirty;      /* changed or gone since the flush */
    struct cxs_htab watches;    /* watch.c: watch paths and their parents */
    uint32_t devpage_gen;
    bool devpage_seen;
    struct xs_handle *handles; /* linked through xs_handle.ctx_next */
    /* control/ on the sysctl device (control.c) */
    bool sys_want;                  /* guest: watched/wrote its control tree */
    bool sys_done;                  /* guest: acknowledged a request, closed */
    noxs_dev *sys;                  /* guest: sysctl device 0, frontend end */
    struct cxs_kvlist sys_keys;     /* guest: its control/feature-* */
    struct cxs_kvlist sys_last;     /* guest: control view last reported */
    struct cxs_kvlist sys_requests; /* toolstack: domid -> reason sent */
};

struct cxs_ctx *cxs_ctx_get(unsigned int domid);

/* Bootstraps this process learnt (introduce, noxsd's domain list). */
void cxs_boot_remember(unsigned int domid, const struct noxs_boot *b);
void cxs_boot_forget(unsigned int domid);
void cxs_ctx_put(struct cxs_ctx *ctx);

/* Roles, opened on first use; NULL with errno when unavailable. */
noxs_frontend *cxs_ctx_frontend(struct cxs_ctx *ctx);
noxs_backend *cxs_ctx_backend(struct cxs_ctx *ctx);
noxs_client *cxs_ctx_client(struct cxs_ctx *ctx);

/* Process every pending source (device page, control pages, noxsd
 * requests) and queue watch events. Never blocks. */
void cxs_ctx_poll(struct cxs_ctx *ctx);
/* Recompute the views of dirty devices and fire watches for changes. */
void cxs_ctx_flush(struct cxs_ctx *ctx);

/* The local device a parsed device/backend path names, or NULL. */
struct cxs_dev *cxs_ctx_find(struct cxs_ctx *ctx, uint16_t fe,
                             const char *cls, uint32_t id);
/* The devices (gone ones included) whose frontend is fe, newest first:
 * for (d = cxs_ctx_fe_first(ctx, fe); d; d = cxs_ctx_fe_next(d)). */
struct cxs_dev *cxs_ctx_fe_first(struct cxs_ctx *ctx, uint16_t fe);
struct cxs_dev *cxs_ctx_fe_next(struct cxs_dev *d);

/* Read a key of one half of d: value into *out (malloc'd, NUL-ended),
 * length into *len. -ENOENT if unset. */
int cxs_dev_read(struct cxs_dev *d, int half, const char *key, char **out,
                 unsigned int *len);
/* The flattened view of d: every visible path and value. */
int cxs_dev_view(struct cxs_dev *d, struct cxs_kvlist *out);
/* Stage a write / removal in our own half (publish with cxs_dev_publish).
 * -EACCES for synthesised keys and the peer's half. */
int cxs_dev_write(struct cxs_dev *d, int half, const char *key,
                  const char *value, unsigned int len);
int cxs_dev_remove_key(struct cxs_dev *d, int half, const char *key);
int cxs_dev_publish(struct cxs_dev *d);

/* d has something to report: queue it for the next flush (once). */
void cxs_dev_queue(struct cxs_dev *d);
/* d's view may have changed: recompute it at the next flush. */
void cxs_dev_mark(struct cxs_dev *d);
/* libnoxs dropped d (removed or detached): its nodes go at the flush. */
void cxs_dev_gone(struct cxs_dev *d);
/* Snapshot d's peer half, marking d if it moved; -1 with errno. */
int cxs_dev_refresh(struct cxs_dev *d);
/* A new device of ctx for libnoxs's nd, marked; NULL on ENOMEM. */
struct cxs_dev *cxs_dev_new(struct cxs_ctx *ctx, int role, noxs_dev *nd);
/* Take d out of its context (it must not be queued) and free it. */
void cxs_dev_delete(struct cxs_ctx *ctx, struct cxs_dev *d);

/* ---- group.c ---- */

/*
 * The staged operations of one batch (a transaction, or one call) on one
 * device this process is not an end of: a toolstack creating it (one
 * device add) or writing to it (each write relayed to its backend).
 */
struct cxs_group {
    uint16_t fe;
    int be; /* backend domain; -1 until a path of the batch names it */
    uint32_t id;
    char cls[CXS_CLASS_MAX + 1];
    bool remove;
    struct cxs_kvlist params; /* device add: node -> last value written */
    size_t *writes;           /* relay: indexes into the batch, in order */
    size_t nwrites, capwrites;
};
struct cxs_groups {
    struct cxs_group *v;
    size_t n, cap;
};
/* The group of the device p names, added if new; NULL: out of memory. */
struct cxs_group *cxs_group_for(struct cxs_groups *gs,
                                const struct cxs_path *p);
/* Record that the batch's operation number op writes to g's device. */
int cxs_group_write(struct cxs_group *g, size_t op);
/* A node for the device add (front: a frontend node, stored "@f:key");
 * a later write of the same node replaces it. -E2BIG: key too long. */
int cxs_group_param(struct cxs_group *g, const char *key, const char *value,
                    bool front);
/* The device add's records into all[CXS_ADD_PARAMS_MAX]: the class,
 * then the nodes. Only for a group of at most CXS_ADD_NODES_MAX nodes;
 * returns how many. */
size_t cxs_group_add_params(const struct cxs_group *g, struct noxs_kv *all);
void cxs_groups_free(struct cxs_groups *gs);

/* ---- control.c: control/shutdown, control/feature-* (sysctl) ---- */

#define CXS_CTL_WRITE 1
#define CXS_CTL_MKDIR 2
#define CXS_CTL_RM 3
int cxs_ctl_read(struct cxs_ctx *ctx, const struct cxs_path *p, char **out,
                 unsigned int *len);
int cxs_ctl_write(struct cxs_ctx *ctx, const struct cxs_path *p, int op,
                  const char *value, unsigned int len);
/* Child names of control/ into names (keys). */
int cxs_ctl_list(struct cxs_ctx *ctx, const struct cxs_path *p,
                 struct cxs_kvlist *names);
/* A watch on p was set: a guest's control path attaches the device. */
void cxs_ctl_watch(struct cxs_ctx *ctx, const struct cxs_path *p);
void cxs_ctl_poll(struct cxs_ctx *ctx);
void cxs_ctl_close(struct cxs_ctx *ctx);

/* ---- watch.c, special.c ---- */

/* Queue a watch event for every handle of ctx whose watch covers path
 * (removed: path was a removed directory, so watches below it fire with
 * their own path, as xenstored does). */
void cxs_fire(struct cxs_ctx *ctx, const char *path, bool removed);
/* A role opened: its fd joins the poll set of every handle of ctx. */
void cxs_ctx_add_fd(struct cxs_ctx *ctx, int fd);
/* The context's last handle closed: free its (empty) watch index. */
void cxs_watches_free(struct cxs_ctx *ctx);

/* ---- route.c ---- */

#include "gstore.h"

#define CXS_MODE_NOXS 0  /* device, backend, control paths only */
#define CXS_MODE_MIXED 1 /* the rest on the real xenstored */
#define CXS_MODE_LOCAL 2 /* the rest in the local store */
/* The process's mode, chosen on first use (self: its domain). */
int cxs_mode(unsigned int self);
const char *cxs_mode_name(int mode);
/* Mixed mode: is cls one of the classes noxs domains keep in xenstored
 * (xenstored-classes; e.g. vbd, for the guest kernel's own blkfront)? */
bool cxs_class_in_xenstored(const char *cls);
/* The generic store for a handle of domain self; NULL with errno 0 in
 * noxs mode, NULL with errno (and a logged reason) if unreachable. */
struct cxs_gconn *cxs_gopen(unsigned int self, bool readonly);

/* A request payload being built (at most one message). */
struct cxs_buf {
    size_t len;
    char v[XSW_PAYLOAD_MAX];
};
int cxs_buf_add(struct cxs_buf *b, const void *p, size_t len);
int cxs_buf_str(struct cxs_buf *b, const char *s); /* with its NUL */
/* One request: 0 and the reply (malloc'd, NUL after *rlen bytes; reply
 * may be NULL), or -errno (the store's error, or -EIO/-ECONNRESET...). */
int cxs_gcall(struct cxs_gconn *g, uint32_t type, uint32_t tx,
              const struct cxs_buf *b, char **reply, uint32_t *rlen);
int cxs_gpath(struct cxs_gconn *g, uint32_t type, uint32_t tx,
              const char *path, char **reply, uint32_t *rlen);
int cxs_gwrite(struct cxs_gconn *g, uint32_t tx, const char *path,
               const void *data, unsigned int len);
int cxs_gwatch(struct cxs_gconn *g, bool watch, const char *path,
               const char *token);
int cxs_gtx_start(struct cxs_gconn *g, uint32_t *tx);
int cxs_gtx_end(struct cxs_gconn *g, uint32_t tx, bool commit);
/* A reply of NUL-separated strings as a NULL-ended vector in one
 * malloc (libxenstore's layout); NULL on ENOMEM. */
char **cxs_gsplit(const char *r, uint32_t len, unsigned int *num);

/* 1 if noxsd holds a device page for domid (this process introduced it,
 * or noxsd's domain list says so; looked up again at most once a second
 * for a domain not found), else 0. */
int cxs_noxs_domain(struct cxs_ctx *ctx, unsigned int domid);

#endif /* COMPAT_XS_PRIVATE_H */
