/*
 * The local store's LMDB environment: one per directory and process,
 * opened (and, in a new boot, reset) under a file lock; LMDB's
 * transactions as the rest of the store uses them; a commit with its
 * journal entry and the bell; the connection (cxs_lstore_open and its
 * ops) that routes requests to lstore.c, lstore_tx.c, lstore_watch.c.
 * See lstore.h and docs/COMPAT.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lstore.h"

#define LS_DEFAULT_DIR "/var/lib/noxs/xenstore"
#define LS_MAPSIZE ((size_t)1 << 30)
/* Appended to the boot id in the file boot_id: the layout of lstore.h. */
#define LS_FORMAT "format 1\n"

static pthread_mutex_t envs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ls_env *envs;

/*
 * getpid() as of the last fork(): ls_env_sync asks at every request and
 * event, and getpid is a system call (a service with thousands of
 * connections asked it thousands of times per commit).
 */
static pid_t self_pid;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_child(void)
{
    __atomic_store_n(&self_pid, getpid(), __ATOMIC_RELAXED);
}

static void self_init(void)
{
    __atomic_store_n(&self_pid, getpid(), __ATOMIC_RELAXED);
    pthread_atfork(NULL, NULL, self_child);
}

static pid_t self(void)
{
    pthread_once(&self_once, self_init);
    return __atomic_load_n(&self_pid, __ATOMIC_RELAXED);
}

/* ---- environment ------------------------------------------------------- */

int ls_txn_begin(struct ls_env *e, bool rdonly, MDB_txn **t)
{
    int rc = mdb_txn_begin(e->env, NULL, rdonly ? MDB_RDONLY : 0, t);

    /* Another process grew the map: adopt its size and retry. */
    if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(e->env, 0) == 0)
        rc = mdb_txn_begin(e->env, NULL, rdonly ? MDB_RDONLY : 0, t);
    /* Slots of killed readers: reclaim them (robust LMDB locks). */
    if (rc == MDB_READERS_FULL) {
        int dead;
        mdb_reader_check(e->env, &dead);
        rc = mdb_txn_begin(e->env, NULL, rdonly ? MDB_RDONLY : 0, t);
    }
    return ls_mdb_errno(rc);
}

int ls_commit(struct ls_x *x)
{
    uint64_t trim, seq = x->gen;
    int rc = 0;

    if (!x->chg || x->chg->len == 0) {
        mdb_txn_abort(x->t);
        x->t = NULL;
        return 0;
    }
    unsigned char kb[8];
    for (int i = 0; i < 8; i++)
        kb[i] = seq >> (56 - 8 * i);
    MDB_val k = {8, kb}, d = {x->chg->len, x->chg->p};
    rc = ls_mdb_errno(mdb_put(x->t, x->e->journal, &k, &d, 0));
    if (!rc)
        rc = ls_meta_put(x, "seq", seq);
    if (!rc)
        rc = ls_meta_get(x, "jtrim", &trim);
    /* Trim a few old entries per commit: bounded work, bounded journal. */
    for (int i = 0; !rc && i < 4 && seq - trim > LS_JOURNAL_KEEP; i++) {
        trim++;
        for (int j = 0; j < 8; j++)
            kb[j] = trim >> (56 - 8 * j);
        k.mv_size = 8;
        k.mv_data = kb;
        int r = mdb_del(x->t, x->e->journal, &k, NULL);
        if (r && r != MDB_NOTFOUND)
            rc = ls_mdb_errno(r);
        if (!rc)
            rc = ls_meta_put(x, "jtrim", trim);
    }
    if (rc) {
        mdb_txn_abort(x->t);
        x->t = NULL;
        return rc;
    }
    rc = ls_mdb_errno(mdb_txn_commit(x->t));
    x->t = NULL;
    if (!rc)
        ls_bell(x->e, seq);
    return rc;
}

static int mkdirs(const char *dir)
{
    char *p = strdup(dir);
    int rc = 0;

    if (!p)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            rc = -1;
        *s = '/';
    }
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        rc = -1;
    else
        rc = 0;
    free(p);
    return rc;
}

static void read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t r = fd < 0 ? -1 : read(fd, buf, n - 1);

    buf[r > 0 ? r : 0] = '\0';
    if (fd >= 0)
        close(fd);
}

/* First open this boot: the root, /tool/xenstored (as xenstored). */
static int env_init(struct ls_env *e, MDB_txn *t)
{
    struct ls_x x = {.e = e, .t = t, .domid = 0, .gen = 1};
    struct ls_perm none = {0, 0};
    MDB_val k = {4, "hkey"}, d;
    int rc = mdb_get(t, e->meta, &k, &d);

    if (rc == 0 && d.mv_size == sizeof(e->hkey)) {
        memcpy(e->hkey, d.mv_data, sizeof(e->hkey));
        return 0;
    }
    if (getrandom(e->hkey, sizeof(e->hkey), 0) != sizeof(e->hkey))
        return EIO;
    d.mv_size = sizeof(e->hkey);
    d.mv_data = e->hkey;
    if ((rc = ls_mdb_errno(mdb_put(t, e->meta, &k, &d, 0))))
        return rc;
    if ((rc = ls_node_put(&x, "/", 0, &none, 1, "", 0)))
        return rc;
    return ls_create(&x, "/tool/xenstored", "", 0);
}

static struct ls_env *env_open(const char *dir, const struct stat *st)
{
    struct ls_env *e = calloc(1, sizeof(*e));
    char path[PATH_MAX], bootf[PATH_MAX], boot[64], had[64];
    MDB_txn *t = NULL;
    int lockfd = -1, rc;

    if (!e)
        return NULL;
    e->bellfd = -1;
    e->inofd = -1;
    e->pid = getpid();
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    if (!(e->dir = strdup(dir)) || asprintf(&e->bell, "%s/bell", dir) < 0) {
        e->bell = NULL;
        rc = ENOMEM;
        goto fail;
    }
    /* One opener at a time decides whether the store is this boot's. */
    snprintf(path, sizeof(path), "%s/init.lock", dir);
    lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
        rc = errno;
        goto fail;
    }
    /*
     * The store lives for one boot, as xenstored's: the domains it
     * describes are gone after a reboot. A store of another boot (or
     * one a system crash may have torn, see MDB_NOSYNC) is removed, and
     * so is one of another record format.
     */
    read_small("/proc/sys/kernel/random/boot_id", boot, sizeof(boot) - 16);
    strcat(boot, LS_FORMAT);
    snprintf(bootf, sizeof(bootf), "%s/boot_id", dir);
    read_small(bootf, had, sizeof(had));
    bool fresh = strcmp(boot, had) != 0;
    if (fresh) {
        snprintf(path, sizeof(path), "%s/data.mdb", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/lock.mdb", dir);
        unlink(path);
    }
    if ((rc = mdb_env_create(&e->env)) ||
        (rc = mdb_env_set_maxdbs(e->env, 8)) ||
        (rc = mdb_env_set_maxreaders(e->env, 510)) ||
        (rc = mdb_env_set_mapsize(e->env, LS_MAPSIZE)) ||
        (rc = mdb_env_open(e->env, dir, MDB_NOTLS | MDB_NOSYNC, 0600))) {
        rc = rc == ENOENT || rc == EACCES || rc == ENOMEM ? rc : EIO;
        goto fail;
    }
    int dead;
    mdb_reader_check(e->env, &dead);
    if ((rc = ls_txn_begin(e, false, &t)))
        goto fail;
    if ((rc = mdb_dbi_open(t, "node", MDB_CREATE, &e->node)) ||
        (rc = mdb_dbi_open(t, "kid", MDB_CREATE, &e->kid)) ||
        (rc = mdb_dbi_open(t, "meta", MDB_CREATE, &e->meta)) ||
        (rc = mdb_dbi_open(t, "journal", MDB_CREATE, &e->journal)) ||
        (rc = mdb_dbi_open(t, "dom", MDB_CREATE, &e->dom)) ||
        (rc = mdb_dbi_open(t, "quota", MDB_CREATE, &e->quota))) {
        rc = ls_mdb_errno(rc);
        goto fail;
    }
    if ((rc = env_init(e, t)))
        goto fail;
    rc = ls_mdb_errno(mdb_txn_commit(t));
    t = NULL;
    if (rc)
        goto fail;
    if (fresh) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof(tmp), "%s/boot_id.new", dir);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, boot, strlen(boot)) != (ssize_t)strlen(boot) ||
            close(fd) < 0 || rename(tmp, bootf) < 0) {
            rc = errno ? errno : EIO;
            goto fail;
        }
    }
    e->bellfd = open(e->bell, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (e->bellfd < 0) {
        rc = errno;
        goto fail;
    }
    close(lockfd);
    pthread_mutex_init(&e->blk, NULL);
    e->refs = 1;
    return e;
fail:
    if (t)
        mdb_txn_abort(t);
    if (e->env)
        mdb_env_close(e->env);
    if (lockfd >= 0)
        close(lockfd);
    free(e->dir);
    free(e->bell);
    free(e);
    errno = rc;
    return NULL;
}

struct ls_env *ls_env_get(const char *dir)
{
    struct ls_env *e;
    struct stat st;

    if (mkdirs(dir) < 0 || stat(dir, &st) < 0)
        return NULL;
    pthread_mutex_lock(&envs_lock);
    for (e = envs; e; e = e->next)
        if (e->dev == st.st_dev && e->ino == st.st_ino &&
            e->pid == getpid())
            break;
    if (e) {
        e->refs++;
    } else if ((e = env_open(dir, &st))) {
        e->next = envs;
        envs = e;
    }
    pthread_mutex_unlock(&envs_lock);
    return e;
}

void ls_env_put(struct ls_env *e)
{
    struct ls_env **pp;

    pthread_mutex_lock(&envs_lock);
    /* An environment inherited through fork() is left alone (LMDB). */
    if (--e->refs == 0 && e->pid == getpid()) {
        for (pp = &envs; *pp && *pp != e; pp = &(*pp)->next)
            ;
        if (*pp)
            *pp = e->next;
        mdb_env_close(e->env);
        close(e->bellfd);
        ls_bell_close(e);
        free(e->dir);
        free(e->bell);
        free(e);
    }
    pthread_mutex_unlock(&envs_lock);
}

/* After fork(), the child opens the environment anew (LMDB's rule). */
int ls_env_sync(struct ls_conn *c)
{
    struct ls_env *e;

    if (c->e->pid == self())
        return 0;
    if (!(e = ls_env_get(c->dir)))
        return -errno;
    /* The event fds follow the parent's bell: made anew on demand. */
    ls_events_close(c, false);
    c->e = e;
    return 0;
}

/* ---- connection --------------------------------------------------------- */

static int lreq(struct cxs_gconn *g, uint32_t type, uint32_t tx,
                const void *payload_, uint32_t len, uint32_t *rtype,
                char **reply, uint32_t *rlen)
{
    struct ls_conn *c = (struct ls_conn *)g;
    const char *payload = payload_ ? payload_ : "";
    struct ls_buf out = {0}, chg = {0};
    struct ls_tx *t = NULL;
    int err = 0, rc;

    pthread_mutex_lock(&c->lock);
    if ((rc = ls_env_sync(c))) {
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    bool priv = type == XSW_CONTROL || type == XSW_INTRODUCE ||
                type == XSW_RELEASE || type == XSW_IS_DOMAIN_INTRODUCED ||
                type == XSW_RESUME || type == XSW_SET_TARGET;
    bool notx = type == XSW_WATCH || type == XSW_UNWATCH;

    if (len > XSW_PAYLOAD_MAX)
        err = E2BIG;
    else if (type >= XSW_TYPE_COUNT || type == XSW_WATCH_EVENT ||
             type == XSW_ERROR || type == 20)
        err = ENOSYS;
    else if (priv && c->domid != 0)
        err = EACCES;
    else if (!notx && tx != 0 && !(t = ls_tx_find(c, tx)))
        err = ENOENT;
    else if (type == XSW_WATCH)
        err = ls_watch(c, payload, len, &out);
    else if (type == XSW_UNWATCH)
        err = ls_unwatch(c, payload, len, &out);
    else if (type == XSW_RESET_WATCHES) {
        ls_watch_free_all(c);
        ls_tx_free_all(c);
        err = ls_buf_addstr(&out, "OK");
    } else if (type == XSW_TRANSACTION_START)
        err = t ? EBUSY : ls_tx_start(c, payload, len, &out);
    else if (type == XSW_TRANSACTION_END)
        err = t ? ls_tx_end(c, t, payload, len, &out) : ENOENT;
    else if (t && (ls_is_modify(type) || type == XSW_READ || type == XSW_DIRECTORY || type == XSW_DIRECTORY_PART || type == XSW_GET_PERMS) &&
             type != XSW_INTRODUCE && type != XSW_RELEASE)
        err = ls_tx_op(c, t, type, payload, len, &out);
    else {
        bool ro = !ls_is_modify(type);
        struct ls_x x = {.e = c->e, .domid = c->domid, .chg = &chg};
        err = ls_txn_begin(c->e, ro, &x.t);
        if (!err && !ro && !(err = ls_meta_get(&x, "seq", &x.gen)))
            x.gen++;
        if (!err)
            err = ls_exec(&x, type, payload, len, &out);
        if (x.t && (ro || err))
            mdb_txn_abort(x.t);
        else if (x.t)
            err = ls_commit(&x);
    }
    pthread_mutex_unlock(&c->lock);
    free(chg.p);

    /* As xenstored: a reply that does not fit a message (a directory:
     * the caller then reads it with DIRECTORY_PART). */
    if (!err && out.len > XSW_PAYLOAD_MAX)
        err = E2BIG;
    if (err) {
        free(out.p);
        out = (struct ls_buf){0};
        if (ls_buf_addstr(&out, xsw_errno_name(err)))
            return -ENOMEM;
        *rtype = XSW_ERROR;
    } else {
        if (!out.p && ls_buf_add(&out, "", 0))
            return -ENOMEM;
        *rtype = type;
    }
    *reply = out.p;
    *rlen = out.len;
    return 0;
}

static void lclose(struct cxs_gconn *g)
{
    struct ls_conn *c = (struct ls_conn *)g;

    if (!c)
        return;
    ls_tx_free_all(c);
    ls_watch_free_all(c);
    ls_events_close(c, true);
    ls_env_put(c->e);
    pthread_mutex_destroy(&c->lock);
    free(c->dir);
    free(c);
}

static const struct cxs_gstore_ops lstore_ops = {
    .name = "local",
    .request = lreq,
    .event_fd = ls_event_fd,
    .next_event = ls_next_event,
    .close = lclose,
};

struct cxs_gconn *cxs_lstore_open(const char *dir, unsigned int domid)
{
    struct ls_conn *c;

    if (!dir)
        dir = getenv("NOXS_XS_DIR");
    if (!dir || !*dir)
        dir = LS_DEFAULT_DIR;
    if (!(c = calloc(1, sizeof(*c))))
        return NULL;
    c->base.ops = &lstore_ops;
    c->domid = domid;
    c->next_txid = 1;
    c->epfd = c->evfd = -1;
    c->evtail = &c->evhead;
    pthread_mutex_init(&c->lock, NULL);
    if (!(c->dir = strdup(dir)) || !(c->e = ls_env_get(dir))) {
        int e = errno;
        pthread_mutex_destroy(&c->lock);
        free(c->dir);
        free(c);
        errno = e;
        return NULL;
    }
    return &c->base;
}

int cxs_lstore_domains(struct cxs_gconn *g, struct cxs_ldom **out, size_t *n)
{
    struct ls_conn *c = (struct ls_conn *)g;
    struct cxs_ldom *v = NULL;
    size_t cnt = 0, cap = 0;
    MDB_cursor *cur = NULL;
    MDB_val k, d;
    MDB_txn *t;
    int rc, r;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&c->lock);
    if ((rc = -ls_env_sync(c)) == 0)
        rc = ls_txn_begin(c->e, true, &t);
    if (rc) {
        pthread_mutex_unlock(&c->lock);
        return -rc;
    }
    rc = ls_mdb_errno(mdb_cursor_open(t, c->e->dom, &cur));
    for (r = rc ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &d, MDB_FIRST);
         r == 0; r = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        const unsigned char *kb = k.mv_data;
        struct cxs_ldom e = {0};

        if (k.mv_size != 4)
            continue;
        e.domid = (unsigned int)kb[0] << 24 | (unsigned int)kb[1] << 16 |
                  (unsigned int)kb[2] << 8 | kb[3];
        if (d.mv_size >= 4)
            memcpy(&e.port, d.mv_data, 4);
        if (d.mv_size >= 12)
            memcpy(&e.mfn, (const char *)d.mv_data + 4, 8);
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct cxs_ldom *nv = realloc(v, nc * sizeof(*v));
            if (!nv) {
                rc = ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        v[cnt++] = e;
    }
    if (!rc && r != MDB_NOTFOUND)
        rc = ls_mdb_errno(r);
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(t);
    pthread_mutex_unlock(&c->lock);
    if (rc) {
        free(v);
        return -rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}
