/*
 * The local store's internals (docs/COMPAT.md, "The local store"),
 * shared by lstore.c (nodes, requests), lstore_env.c (the LMDB
 * environment, commits, connections), lstore_tx.c (transactions) and
 * lstore_watch.c (journal, watches, events).
 *
 * One LMDB environment per directory and process, shared by every
 * connection the process opens on it (LMDB forbids opening one
 * environment twice in a process: its POSIX locks are per process).
 * Sub-databases:
 *
 *   node     key H(path) (16 bytes), value: struct ls_rec, perms, path,
 *            value. The path is kept to detect a hash collision.
 *   kid      key H(parent) + the child's creation number (big-endian
 *            u64), value: the child name. A directory is the range of
 *            keys that start with H(parent), in creation order.
 *   meta     "seq" (last commit's sequence, also the generation stamped
 *            on the nodes it changed), "jtrim" (journal entries up to
 *            it are gone), "kidseq" (last creation number), "hkey" (the
 *            hash key).
 *   journal  key: commit sequence (big-endian u64), value: the changed
 *            paths, each as a kind byte and a NUL-terminated path.
 *   dom      key: domid (big-endian u32): the introduced domains.
 *   quota    key: domid (big-endian u32), value: u32 nodes it owns.
 */
#ifndef COMPAT_XS_LSTORE_H
#define COMPAT_XS_LSTORE_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gstore.h"

/* xenstored's defaults for unprivileged connections. */
#define LS_QUOTA_ENTRIES 1000u /* nodes a domain owns */
#define LS_QUOTA_VALUE 2048u   /* bytes of one value */
#define LS_QUOTA_WATCHES 128u  /* watches of one connection */
#define LS_QUOTA_TX 10u        /* open transactions of one connection */
#define LS_QUOTA_PERMS 5u      /* entries of one node's permission list */
#define LS_QUOTA_PATH 2048u    /* path length below /local/domain/N/ */

/* Journal entries kept for watchers that are behind. */
#define LS_JOURNAL_KEEP 4096u

#define LS_PERM_READ 1u
#define LS_PERM_WRITE 2u
#define LS_PERM_OWNER 4u
#define LS_PERM_IGNORE 8u

/* Journal record kinds. */
#define LS_J_WRITE 'w'   /* the node changed: watches at or above it */
#define LS_J_RM 'r'      /* the subtree went: also the watches below it */
#define LS_J_SPECIAL '@' /* @introduceDomain / @releaseDomain */

struct ls_perm {
    uint32_t id;
    uint32_t mode;
};

/* A node record's header as stored (copied out, LMDB data is unaligned). */
struct ls_rec {
    uint64_t gen;
    uint64_t kidseq; /* its key in its parent's listing */
    uint32_t nperms;
    uint32_t plen;
    uint32_t vlen;
    uint32_t pad;
};

struct ls_env {
    struct ls_env *next;
    int refs;
    pid_t pid;
    dev_t dev;
    ino_t ino;
    char *dir;
    char *bell;
    int bellfd;
    /*
     * The bell as this process follows it (lstore_watch.c): one inotify
     * instance for every connection on the store, made at the first
     * watch or event fd. Whoever drains it notes the store's sequence
     * in seen, counts the drain in gen and signals every connection in
     * fds (those with an event fd of their own), so that no connection
     * misses a ring another one took. blk guards inofd's creation and
     * the list; seen, gen and inofd are read atomically.
     */
    pthread_mutex_t blk;
    int inofd;
    uint64_t seen, gen;
    /* A caller polls the bell itself (cxs_lstore_bell_fd) and drains it:
     * a connection without an event fd leaves the draining to it. */
    bool polled;
    struct ls_conn *fds;
    MDB_env *env;
    MDB_dbi node, kid, meta, journal, dom, quota;
    uint64_t hkey[4];
};

/* Growable byte buffer: replies, journal entries, listings. */
struct ls_buf {
    char *p;
    size_t len, cap;
};

/* One request's view of the store. */
struct ls_x {
    struct ls_env *e;
    MDB_txn *t;
    unsigned int domid;
    uint64_t gen;       /* stamped on what this commit changes */
    struct ls_buf *chg; /* journal records of this commit, or NULL */
};

struct ls_node {
    uint64_t gen;
    uint64_t kidseq;
    uint32_t nperms;
    uint32_t vlen;
    struct ls_perm *perms;
    char *val;
    void *mem;
};

struct ls_watch {
    char *path; /* canonical */
    char *token;
    size_t strip; /* bytes of the implicit prefix to strip, 0 if absolute */
    uint64_t since;
};

struct ls_event {
    struct ls_event *next;
    uint32_t len;
    char payload[];
};

struct ls_op {
    uint32_t type, len;
    char *payload;
};

struct ls_path {
    char *path;
    uint64_t gen; /* 0: absent */
    /* The transaction's first READ of the node, repeated to its later
     * READs until it writes the node (xenstored's snapshot). */
    bool read;
    int read_err;
    char *val;
    size_t vlen;
};

struct ls_tx {
    struct ls_tx *next;
    uint32_t id;
    struct ls_op *ops;
    size_t nops, capops;
    struct ls_path *seen;
    size_t nseen, capseen;
    bool doomed; /* its base changed under it: the commit will fail */
};

struct ls_conn {
    struct cxs_gconn base;
    pthread_mutex_t lock;
    struct ls_env *e;
    char *dir;
    unsigned int domid;
    /* transactions */
    struct ls_tx *txs;
    uint32_t next_txid;
    unsigned int ntx;
    /* watches and their events */
    struct ls_watch *watches;
    size_t nwatches, capwatches;
    struct ls_event *evhead, **evtail;
    uint64_t last_seq;
    /* The event fd a caller polls: an epoll set of the env's inotify fd
     * and an eventfd readable while this connection may have events;
     * -1 until asked for (want_fd). Changed under lock and e->blk. */
    int epfd, evfd;
    bool want_fd;
    struct ls_conn *fnext, **fprev; /* in e->fds while it has them */
};

/* lstore_env.c */
struct ls_env *ls_env_get(const char *dir);
void ls_env_put(struct ls_env *e);

/* lstore.c */
int ls_node_put(struct ls_x *x, const char *path, uint64_t kidseq,
                const struct ls_perm *perms, uint32_t nperms, const char *val,
                uint32_t vlen);
int ls_create(struct ls_x *x, const char *path, const char *val,
              uint32_t vlen);
int ls_buf_add(struct ls_buf *b, const void *p, size_t n);
int ls_buf_addstr(struct ls_buf *b, const char *s); /* with its NUL */
int ls_env_sync(struct ls_conn *c);
int ls_txn_begin(struct ls_env *e, bool rdonly, MDB_txn **t);
int ls_mdb_errno(int rc);
int ls_meta_get(struct ls_x *x, const char *key, uint64_t *v);
int ls_meta_put(struct ls_x *x, const char *key, uint64_t v);
int ls_node_get(struct ls_x *x, const char *path, struct ls_node *n);
void ls_node_free(struct ls_node *n);
uint64_t ls_node_gen(struct ls_x *x, const char *path);
char *ls_canon(unsigned int domid, const char *p, size_t *strip);
bool ls_valid_path(const char *p);
int ls_record(struct ls_x *x, char kind, const char *path);
/* Execute one request in x->t; 0 and a reply, or an errno to send. */
int ls_exec(struct ls_x *x, uint32_t type, const char *payload, uint32_t len,
            struct ls_buf *reply);
bool ls_is_modify(uint32_t type);
/* Commit x->t with its journal records; bell rung. -errno on failure. */
int ls_commit(struct ls_x *x);

/* lstore_tx.c */
struct ls_tx *ls_tx_find(struct ls_conn *c, uint32_t id);
int ls_tx_start(struct ls_conn *c, const char *payload, uint32_t len,
                struct ls_buf *reply);
int ls_tx_end(struct ls_conn *c, struct ls_tx *tx, const char *payload,
              uint32_t len, struct ls_buf *reply);
int ls_tx_op(struct ls_conn *c, struct ls_tx *tx, uint32_t type,
             const char *payload, uint32_t len, struct ls_buf *reply);
void ls_tx_free_all(struct ls_conn *c);

/* lstore_watch.c */
int ls_watch(struct ls_conn *c, const char *payload, uint32_t len,
             struct ls_buf *reply);
int ls_unwatch(struct ls_conn *c, const char *payload, uint32_t len,
               struct ls_buf *reply);
void ls_watch_free_all(struct ls_conn *c);
int ls_event_fd(struct cxs_gconn *g);
int ls_next_event(struct cxs_gconn *g, char **payload, uint32_t *len);
void ls_events_close(struct ls_conn *c, bool free_queue);
int ls_bell(struct ls_env *e, uint64_t seq);
void ls_bell_close(struct ls_env *e);

#endif /* COMPAT_XS_LSTORE_H */
