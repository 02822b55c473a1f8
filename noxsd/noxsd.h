/*
 * noxsd private header: types and prototypes, grouped by file.
 *
 * Processes (docs/NOXSD.md):
 *   worker  noxsd proper: control socket, registry, store, brokering;
 *   keeper  holds the grant-sharing and event-channel handles whose pages
 *           ARE the device pages, so that they survive the worker.
 */
#ifndef NOXSD_H
#define NOXSD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <noxs/abi.h>

#define NOXSD_DEFAULT_STATE_DIR "/run/noxs"
#define NOXSD_SOCKET_NAME "noxsd.sock"
#define NOXSD_KEEPER_SOCKET "keeper.sock"
#define NOXSD_PIDFILE "noxsd.pid"
#define NOXSD_KEEPER_PIDFILE "keeper.pid"

/* Logging: common/log.h (stderr, the journal or syslog). */
#include "common/log.h"

/* The wire protocol: the broker keeps messages and type lists. */
#include "proto.h"

/* ---- registry.c ---- */

/* One device as noxsd knows it (an entry of a device page, plus states). */
struct reg_dev {
    uint16_t type;
    uint16_t flags; /* NOXS_DEVPAGE_ENTRY_* */
    uint32_t devid;
    uint16_t backend_domid;
    uint8_t backend_state;
    uint8_t frontend_state;
    uint32_t control_gref;
    uint32_t backend_port;
};

struct reg_domain_info {
    uint16_t domid;
    uint16_t owner_domid;
    uint32_t gref; /* of the device page */
    uint32_t port; /* owner's notify port for the guest */
    uint32_t ndevs;
    /* The hypervisor listed the domain as running (domwatch.c), with this
     * handle; a registration starts unseen. Kept before devs: lookups
     * copy only the entries in use. */
    uint8_t hv_seen;
    uint8_t hv_handle[16];
    struct reg_dev devs[NOXS_DEVPAGE_MAX_ENTRIES];
};

struct registry;

/*
 * Thread rules: every thread that calls a registry function must be a
 * registered RCU reader (registry_thread_online()). Lookups take the RCU
 * read side themselves and copy out, so callers never hold pointers into
 * the table; updates are serialised by the registry's own mutex and free
 * replaced nodes after a grace period (call_rcu).
 */
struct registry *registry_new(void);
void registry_free(struct registry *r);
void registry_thread_online(void);
void registry_thread_offline(void);

/* Updates: 0 or -errno. */
int registry_domain_add(struct registry *r, uint16_t domid,
                        uint16_t owner_domid, uint32_t gref, uint32_t port);
int registry_domain_remove(struct registry *r, uint16_t domid);
/* Add or replace (type, devid). -ENOENT no domain, -ENOSPC page full. */
int registry_dev_put(struct registry *r, uint16_t domid,
                     const struct reg_dev *dev);
int registry_dev_remove(struct registry *r, uint16_t domid, uint16_t type,
                        uint32_t devid);
int registry_dev_set_state(struct registry *r, uint16_t domid, uint16_t type,
                           uint32_t devid, uint8_t backend_state,
                           uint8_t frontend_state);
int registry_dev_set_flags(struct registry *r, uint16_t domid, uint16_t type,
                           uint32_t devid, uint16_t flags);

/* Record that the hypervisor lists domid running with handle. */
int registry_domain_set_seen(struct registry *r, uint16_t domid,
                             const uint8_t handle[16]);
/* 1 seen (handle copied out), 0 not seen yet, or -ENOENT (lock-free). */
int registry_domain_seen(struct registry *r, uint16_t domid,
                         uint8_t handle[16]);

/* Lookups (lock-free): 0 or -ENOENT. */
int registry_domain_get(struct registry *r, uint16_t domid,
                        struct reg_domain_info *out);
int registry_dev_get(struct registry *r, uint16_t domid, uint16_t type,
                     uint32_t devid, struct reg_dev *out);
/*
 * Call fn on a copy of every domain, in no particular order; fn may call
 * registry updates (it runs outside the read side). Stops when fn returns
 * non-zero and returns that value.
 */
int registry_domain_foreach(struct registry *r,
                            int (*fn)(const struct reg_domain_info *, void *),
                            void *arg);
/* Domain ids, sorted; returns how many (<= max). */
size_t registry_domids(struct registry *r, uint16_t *out, size_t max);
size_t registry_ndomains(struct registry *r);
size_t registry_ndevices(struct registry *r);

/* Backends: (domid, type) -> connection id. */
int registry_backend_add(struct registry *r, uint16_t domid, uint16_t type,
                         uint64_t conn); /* -EADDRINUSE */
int registry_backend_remove(struct registry *r, uint16_t domid, uint16_t type,
                            uint64_t conn);
int registry_backend_get(struct registry *r, uint16_t domid, uint16_t type,
                         uint64_t *conn); /* -ENODEV */
size_t registry_nbackends(struct registry *r);

/* ---- store.c ---- */

#define STORE_EPOCH 1u
#define STORE_DOMAIN_ADD 2u
#define STORE_DOMAIN_DEL 3u
#define STORE_DEV_ADD 4u
#define STORE_DEV_DEL 5u

/* One record's payload (fixed size; on disk preceded by length + CRC32). */
struct store_rec {
    uint16_t op; /* STORE_* */
    uint16_t domid;
    uint16_t owner_domid; /* DOMAIN_ADD */
    uint16_t type;        /* DEV_* */
    uint32_t devid;
    uint16_t backend_domid;
    uint16_t flags;
    uint32_t gref; /* DOMAIN_ADD: device page; DEV_ADD: control page */
    uint32_t port;
    uint32_t reserved;
    uint64_t epoch; /* EPOCH */
};

struct store;
typedef int store_apply_fn(const struct store_rec *rec, void *arg);

/*
 * Open (creating) the store in dir and replay it through apply (NULL: only
 * check it): the snapshot, then the log if it belongs to the same epoch.
 * A log cut short by a crash is truncated there (logged). Every record's
 * fields are checked (ids, types, references in range, unused fields
 * zero) before apply sees it; apply returns 0, or -errno if the record
 * cannot be applied to what precedes it (that is damage too), or -ENOMEM.
 * A damaged store is still returned: see store_damage(). NULL with errno
 * only when the store cannot be read at all for want of memory or similar.
 */
struct store *store_open(const char *dir, store_apply_fn *apply, void *arg);
/*
 * NULL if the store replayed cleanly; else what is wrong with it, naming
 * the file ("state.snap: record 3 at byte 80 has a bad CRC"). A damaged
 * store is left as it was found: appends fail with EROFS and compaction
 * refuses until store_reset(). What was applied before the damage was
 * found is a partial view and must not be acted on.
 */
const char *store_damage(const struct store *s);
/*
 * 1 if the state directory held no store (first start). Nothing is
 * created yet: like a damaged store, a new one takes no appends until
 * store_reset(), so that a start that is refused leaves no empty store
 * behind to be taken for the truth by the next one.
 */
int store_is_new(const struct store *s);
/*
 * Start an empty store: set the store's files aside (renamed to
 * NAME.damaged-TIME, kept for the operator; a new store has none) and
 * begin a new log, which the caller fills by compacting. 0 or -errno.
 */
int store_reset(struct store *s);
void store_close(struct store *s);
/* Append one record with a single write(); 0 or -errno (ENOSPC...). */
int store_append(struct store *s, const struct store_rec *rec);
/* Bytes in the log since the last compaction. */
uint64_t store_log_bytes(const struct store *s);
uint64_t store_records_replayed(const struct store *s);
/*
 * Compaction: begin writes a new snapshot, put adds the records that
 * rebuild the current state, end renames it in place and starts an empty
 * log of the new epoch. abort drops a half-written snapshot.
 */
int store_compact_begin(struct store *s);
int store_compact_put(struct store *s, const struct store_rec *rec);
int store_compact_end(struct store *s);
void store_compact_abort(struct store *s);
/* CRC32 (IEEE 802.3), as used for records. */
uint32_t store_crc32(const void *p, size_t n);

/* ---- keeper.c: the keeper process; keeper_conn.c: the worker's side ---- */

#define KEEPER_HELLO 1u        /* worker -> keeper: I am the worker */
#define KEEPER_PAGE_CREATE 2u  /* -> gref, port (idempotent) */
#define KEEPER_PAGE_WRITE 3u   /* entries -> page, then notify the guest */
#define KEEPER_PAGE_DESTROY 4u /* unshare, unbind */
#define KEEPER_DUMP 5u         /* -> DUMP_ITEM per page, then DUMP_END */
#define KEEPER_DUMP_ITEM 6u
#define KEEPER_DUMP_END 7u
#define KEEPER_STATUS 8u  /* -> pid, rss, restarts */
#define KEEPER_EXIT 9u    /* end every page and port, and exit */
#define KEEPER_FDS 10u    /* -> reply with the keeper's 3 files (SCM_RIGHTS) */
#define KEEPER_REEXEC 11u /* exec the binary named in entries, keeping them */
#define KEEPER_REPLY 0x80u

/* HELLO reply: the keeper runs another program image than the worker. */
#define KEEPER_F_OTHER_IMAGE 1u
/* DUMP_ITEM: the page's seqlock did not settle (a writer died mid-write):
 * its entries are unknown and the page must be rewritten. */
#define KEEPER_F_TORN 2u

/*
 * The keeper's files, in the order KEEPER_FDS sends them and at the fds
 * noxsd --keeper --adopt N finds them (N = 3, or 4 with its own listening
 * socket after a re-exec). Their names in systemd's fd store:
 */
#define KEEPER_FD_GNTALLOC 3 /* the device pages (gntalloc file) */
#define KEEPER_FD_EVTCHN 4   /* the notify ports (evtchn file) */
#define KEEPER_FD_STATE 5    /* what the keeper knows (memfd) */
#define KEEPER_FD_LISTEN 6
#define KEEPER_NFDS 3
#define KEEPER_FDNAMES                                  \
    {                                                   \
        "noxsd-keeper-gntalloc", "noxsd-keeper-evtchn", \
            "noxsd-keeper-state"                        \
    }

/*
 * Every keeper message has exactly this size (checked on receipt). A new
 * worker must be able to talk to an older keeper to hand it a new image:
 * add fields only in place of reserved ones.
 */
struct keeper_msg {
    uint16_t type;
    uint16_t domid;
    int32_t error; /* replies: 0 or errno */
    uint32_t gref;
    uint32_t port;
    uint32_t pid;
    uint32_t restarts;
    uint64_t rss_bytes;
    uint32_t count;            /* entries in use */
    uint32_t flags;            /* KEEPER_F_* */
    uint64_t exe_dev, exe_ino; /* HELLO: the worker's program image */
    uint32_t keepers;          /* keepers that held the pages (1: never replaced) */
    uint32_t reserved1;
    uint64_t heap_bytes; /* STATUS: the keeper's noxsd_heap_bytes() */
    uint64_t index;      /* CREATE reply, DUMP_ITEM: the page's offset in
                          * the gntalloc file (where the worker maps it) */
    uint32_t reserved[2];
    struct noxs_devpage_entry entries[NOXS_DEVPAGE_MAX_ENTRIES];
};

struct keeper_opts {
    const char *state_dir;
    uint16_t owner_domid;
    int foreground;
    int verbose;
    int adopt; /* keeper: files handed over at fds 3.. (0, 3 or 4) */
    /* worker: files to start a new keeper with (-1: none) */
    int fds[KEEPER_NFDS];
};

/* The keeper process (noxsd --keeper); never returns. */
void keeper_main(const struct keeper_opts *o) __attribute__((noreturn));

/* Worker side. All calls block briefly (the keeper answers at once). */
struct keeper_conn;
/* Connect, starting a keeper (self_exe --keeper ...) if none answers. */
struct keeper_conn *keeper_connect(const struct keeper_opts *o,
                                   const char *self_exe);
void keeper_disconnect(struct keeper_conn *k);
int keeper_fd(const struct keeper_conn *k);
pid_t keeper_pid(const struct keeper_conn *k);
uint32_t keeper_restarts(const struct keeper_conn *k);
int keeper_page_create(struct keeper_conn *k, uint16_t domid, uint32_t *gref,
                       uint32_t *port);
int keeper_page_write(struct keeper_conn *k, uint16_t domid,
                      const struct noxs_devpage_entry *entries,
                      uint32_t count);
int keeper_page_destroy(struct keeper_conn *k, uint16_t domid);
/*
 * fn is called per page with the keeper's view of it (entries[0..count)
 * only: the copy holds no more), after the whole dump was read, so fn may
 * send the keeper requests.
 */
int keeper_dump(struct keeper_conn *k,
                int (*fn)(const struct keeper_msg *page, void *arg),
                void *arg);
int keeper_status(struct keeper_conn *k, struct keeper_msg *out);
uint32_t keeper_generations(const struct keeper_conn *k);
/*
 * keeper_pages.c: the worker's own mapping of the keeper's pages (the
 * keeper's gntalloc and evtchn files, handed over by KEEPER_FDS), so that
 * it writes pages and notifies guests without a round trip to the keeper.
 * kpages_open() owns both descriptors (closed on failure).
 */
struct keeper_pages;
struct keeper_pages *kpages_open(int gntalloc_fd, int evtchn_fd);
void kpages_close(struct keeper_pages *p);
int kpages_map(struct keeper_pages *p, uint16_t domid, uint64_t index,
               uint32_t port);
void kpages_unmap(struct keeper_pages *p, uint16_t domid);
/* 0; -ENOENT if domid's page is not mapped here (the keeper writes it). */
int kpages_write(struct keeper_pages *p, uint16_t domid,
                 const struct noxs_devpage_entry *entries, uint32_t count);
/* Hand the keeper's files to systemd's fd store (no-op without one). */
void keeper_store_fds(struct keeper_conn *k);
/* Ask a keeper (no worker attached) to exit: used by noxsd --stop. */
int keeper_stop(const char *state_dir, int timeout_ms);
/* Shared by both sides: STATE-DIR/keeper.sock, and the socket timeouts. */
int keeper_socket_path(const char *dir, char *out, size_t len);
void keeper_set_timeouts(int fd);
int keeper_send(int fd, const struct keeper_msg *m);
/* One keeper_msg with room for the keeper's files (KEEPER_FDS's answer). */
struct keeper_fdmsg {
    struct iovec iov;
    struct msghdr mh;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(KEEPER_NFDS * sizeof(int))];
    } u;
};
void keeper_fdmsg_init(struct keeper_fdmsg *f, struct keeper_msg *m);

/* ---- memstat.c: what the process's memory is, for status ---- */

/* Resident memory (/proc/self/statm), 0 if unknown. */
uint64_t noxsd_rss_bytes(void);
/*
 * Bytes of the heap in use (malloc's own count: allocated chunks with
 * their headers, and chunks it mmap()ed); 0 where malloc keeps no such
 * count (a sanitizer's allocator).
 */
uint64_t noxsd_heap_bytes(void);

/* ---- noxsd.c ---- */

/*
 * systemd's notification socket (sd_notify(3)): send msg with fd attached
 * (-1: none). 0, or -1 if there is no socket or the send failed.
 */
int sd_notify_fd(const char *msg, int fd);
/* Put fd in its fd store under name (svc.h). 0, or -1. */
int sd_fdstore(const char *name, int fd);

/* ---- control.c: sockets, connections, the event loop ---- */

struct noxsd_opts {
    const char *state_dir;
    const char *socket_path;
    uid_t toolstack_uid; /* (uid_t)-1: none */
    mode_t socket_mode;
    uint16_t domid;
    int backend_timeout_ms;
    int backend_grace_ms; /* keep a departed backend's devices this long */
    int domain_poll_ms;   /* domwatch.c: 0 never looks at the hypervisor */
    int no_dom_exc;       /* poll even if VIRQ_DOM_EXC could be bound */
    int foreground;
    int verbose;
    int rebuild_store; /* --rebuild-store: rebuild from the keeper, exit */
    const char *self_exe;
    int keeper_fds[KEEPER_NFDS]; /* from the fd store, or -1 */
};

struct conn;

int control_init(const struct noxsd_opts *o);
/* Run until SIGTERM/SIGINT; returns the exit status. */
int control_run(void);
void control_cleanup(void);

uint64_t conn_id(const struct conn *c);
struct conn *conn_find(uint64_t id);
int conn_privileged(const struct conn *c);
uint16_t conn_backend_domid(const struct conn *c);
/* Queue a built message (length taken from the header); 0 or -errno. */
int conn_send(struct conn *c, const void *buf, size_t len);
/* Send a header-only error / empty reply. */
void conn_reply_error(struct conn *c, uint32_t request, int error);
void conn_reply_empty(struct conn *c, unsigned int req_type,
                      uint32_t request);
/* Finish sending what is queued, then close. */
void conn_close_after_flush(struct conn *c);
/*
 * A request from c was refused (EPERM, or a message noxsd does not
 * accept): 1 if that may be logged (the first time on c, and rate-limited
 * across connections).
 */
int conn_log_refusal(struct conn *c);
/* Iterate connections (for watchers). */
void conn_foreach(void (*fn)(struct conn *c, void *arg), void *arg);
int conn_watches(const struct conn *c, uint16_t domid);
void conn_set_watch(struct conn *c, uint16_t domid);
void conn_set_backend(struct conn *c, uint16_t domid, const uint16_t *types,
                      size_t ntypes);
uint64_t now_ms(void);

/* ---- broker*.c: requests, brokering, reconciliation ---- */

struct noxs_proto_msg;

int broker_init(const struct noxsd_opts *o);
/*
 * noxsd --rebuild-store: replace the store (set aside, not deleted) by one
 * holding exactly the device pages the keeper has; 0 or -1 (logged).
 */
int broker_rebuild_store(const struct noxsd_opts *o);
void broker_cleanup(void);
/* A decoded message from c (requests from any role, backend replies). */
void broker_handle(struct conn *c, const struct noxs_proto_msg *m);
/* c is going away: fail its pending work; drop a backend's devices. */
void broker_conn_closed(struct conn *c);
/* ms until the next pending deadline (-1: none); expire overdue ones. */
int broker_timeouts(void);
/* SIGHUP: compact the store; 0 or -errno (logged). */
int broker_compact(void);
/* Keeper socket readable: it died, or sent something unexpected. */
void broker_keeper_event(void);
int broker_keeper_fd(void);

/*
 * Domain death (domwatch.c reports, broker_domain.c acts). state[domid] is the
 * hypervisor's word on every domid: DW_ABSENT, DW_ALIVE or DW_DYING, with
 * handle[domid] (Xen's domain handle) for listed ones. Registered domains
 * that died are reaped: their devices removed through their backends and
 * their page destroyed, as domain-destroy does, ending with the watch
 * event DOMAIN_RELEASED. Returns how many registered domains the
 * hypervisor has not listed yet (to keep looking for them).
 */
#define DW_ABSENT 0u
#define DW_ALIVE 1u
#define DW_DYING 2u
/* domid (registered or not) shut down, began dying or is gone: tell the
 * watchers (NOXS_EVENT_DOMAIN_EXCEPTION). */
void broker_domain_exception(uint16_t domid);
size_t broker_domains_check(const uint8_t *state,
                            const uint8_t (*handle)[16]);

/*
 * ---- broker*.c: shared between the broker's files ----
 * broker.c: the state, helpers, dispatch, timeouts; broker_domain.c:
 * domains; broker_dev.c: devices; broker_backend.c: backends;
 * broker_query.c: the open (read-only) requests; broker_start.c: start,
 * reconciliation, compaction, stop.
 */

/* What a pending request to a backend is. */
#define P_CREATE 1
#define P_REMOVE 2
#define P_CONTROL 3


struct destroy {
    struct destroy *next;
    uint16_t domid;
    uint64_t client;
    uint32_t client_req;
    unsigned int outstanding;
    int reaped; /* the hypervisor said the domain died (domwatch.c) */
};

struct pending {
    struct pending *next;
    uint32_t id; /* our request id towards the backend */
    int kind;
    uint64_t backend;
    uint64_t client; /* 0: nobody to answer */
    uint32_t client_req;
    uint16_t domid, type, backend_domid;
    uint32_t devid;
    uint64_t deadline;
    int zombie; /* create whose client already got ETIMEDOUT */
    struct destroy *destroy;
};

/* A backend's BACKEND_SYNC in progress: the devices it listed so far. */
struct sync_state {
    struct sync_state *next;
    uint64_t conn;
    uint16_t domid;
    uint16_t types[NOXS_PROTO_MAX_TYPES];
    size_t ntypes;
    struct noxs_msg_dev *seen;
    size_t nseen, cap;
    int registered;
    int synced;
    int keep;             /* NOXS_REGISTER_KEEP: devices outlive it */
    uint64_t grace_until; /* departed: its devices wait until then */
};

struct broker_state {
    const struct noxsd_opts *o;
    struct registry *reg;
    struct store *store;
    struct keeper_conn *keeper;
    struct pending *pending;
    struct destroy *destroys;
    struct sync_state *backends;
    struct sync_state *departed; /* backends whose devices wait for them */
    uint32_t next_id;
    uint64_t start_ms;
    struct noxs_proto_buf *buf;
    struct reg_domain_info *info; /* scratch */
};
extern struct broker_state broker;

/* Devices a backend serves that it did not list (stale_fn's result). */
struct stale_arg {
    struct sync_state *s;
    uint16_t *domids;
    uint16_t *types;
    uint32_t *devids;
    size_t n, cap;
};

struct reg_dev;
struct store_rec;
struct reg_domain_info;
struct noxs_msg_dev;

/* broker.c */
void send_buf(struct conn *c);
void reply_error(uint64_t client, uint32_t req, int error);
void reply_empty(uint64_t client, unsigned int type, uint32_t req);
void dev_to_msg(uint16_t domid, const struct reg_dev *d,
                struct noxs_msg_dev *m);
/* An EVENT to every connection watching domid (d: NULL for domain
 * events). */
void tell_watchers(uint32_t kind, uint16_t domid, const struct reg_dev *d);
void keeper_lost(int rc) __attribute__((noreturn));
int write_page(uint16_t domid);
int store_rec(const struct store_rec *r);
int store_dev(uint16_t op, uint16_t domid, const struct reg_dev *d);
struct destroy *find_destroy(uint16_t domid);
struct pending *find_pending_dev(uint16_t domid, uint16_t type,
                                 uint32_t devid, int kind);
unsigned int pending_creates(uint16_t domid);
struct pending *new_pending(int kind, uint64_t backend, int timeout_ms);
void free_pending(struct pending *p);
struct sync_state *backend_state(uint64_t conn);
int backend_serves(const struct sync_state *s, uint16_t domid,
                   uint16_t type);

/* broker_domain.c */
void domain_create(struct conn *c, const struct noxs_proto_msg *m);
void domain_destroy(struct conn *c, const struct noxs_proto_msg *m);
void finish_destroy(struct destroy *d);

/* broker_dev.c */
void dev_add(struct conn *c, const struct noxs_proto_msg *m);
void dev_remove(struct conn *c, const struct noxs_proto_msg *m);
void dev_control(struct conn *c, const struct noxs_proto_msg *m);
void create_done(struct pending *p, const struct noxs_proto_msg *m);
void control_done(struct pending *p, const struct noxs_proto_msg *m);
void remove_done(struct pending *p, int err);
struct pending *send_backend_remove(struct conn *be, uint16_t domid,
                                    uint16_t type, uint32_t devid,
                                    uint64_t client, uint32_t req);
struct reg_dev live_dev(uint16_t type, uint32_t devid, uint16_t backend_domid,
                        uint32_t gref, uint32_t port);
int drop_dev(uint16_t domid, uint16_t type, uint32_t devid);

/* broker_backend.c */
void backend_register(struct conn *c, const struct noxs_proto_msg *m);
void backend_sync(struct conn *c, const struct noxs_proto_msg *m);
void backend_state_report(struct conn *c, const struct noxs_proto_msg *m);
void backend_answer(struct conn *c, const struct noxs_proto_msg *m);
int stale_fn(const struct reg_domain_info *info, void *arg);
void expire_departed(uint64_t now, uint64_t *next);

/* broker_query.c */
void domain_list(struct conn *c, const struct noxs_proto_msg *m);
void dev_list(struct conn *c, const struct noxs_proto_msg *m);
void status_request(struct conn *c, const struct noxs_proto_msg *m);
void watch_request(struct conn *c, const struct noxs_proto_msg *m);

/* ---- domwatch.c: noticing that domains died ---- */

/*
 * Bind VIRQ_DOM_EXC (or, when another process holds it, e.g. xenstored,
 * poll the domain list) and scan once. Never fails the daemon: without
 * access to the hypervisor's domain list, death detection is off.
 */
void domwatch_init(const struct noxsd_opts *o);
void domwatch_cleanup(void);
/* The VIRQ's event-channel fd, or -1. */
int domwatch_fd(void);
/* The fd is readable: take the events and scan. */
void domwatch_event(void);
/* ms until the next scan is due (-1: none); scans if one is overdue. */
int domwatch_timeout(void);
/* A domain was registered: look for it in the hypervisor's list. */
void domwatch_registered(uint16_t domid);
/* The hypervisor's word on one domid now: DW_*, -1 if it cannot say. */
int domwatch_query(uint16_t domid, uint8_t handle[16]);

#endif /* NOXSD_H */
