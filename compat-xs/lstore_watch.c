/*
 * Watches of the local store across processes. Every commit appends the
 * paths it changed to the journal (a sub-database keyed by the commit's
 * sequence) and then rings the bell: it writes the sequence into the
 * file "bell", which every watching connection follows with inotify.
 * A connection remembers the last sequence it scanned; next_event reads
 * the journal from there and matches its watches with xenstored's rules:
 * a watch on W fires for a change of W or below, for the removal of W
 * or an ancestor, and special watches (@introduceDomain,
 * @releaseDomain) for exactly their name. The journal is trimmed; a
 * connection that fell behind the trim gets one event per watch.
 *
 * A process follows the bell with one inotify instance per store,
 * however many connections it has (Linux allows a user 128 instances:
 * one per connection would cap a service that keeps a connection per
 * guest). Draining it is shared work: whoever drains a ring (any
 * connection's next_event, or a caller of cxs_lstore_bell_drain) reads
 * the store's sequence into the environment's seen, counts the drain in
 * its generation and signals the eventfd of every connection that has
 * an event fd, so a connection whose ring another took still wakes.
 *
 * The fd a caller polls (event_fd) is an epoll set of that inotify fd
 * and the connection's eventfd, which stays readable while events wait
 * in the connection or a ring it has not looked at was drained by
 * another: readiness is level-triggered as the interface wants. A
 * caller that serves many connections from one loop polls the bell
 * itself (cxs_lstore_bell_fd) and its connections need no fd at all;
 * they do not drain the bell either (one read per connection and commit
 * was most of such a service's work): the caller's drains keep seen
 * current before it looks at them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "lstore.h"

int ls_bell(struct ls_env *e, uint64_t seq)
{
    /* The content does not matter, the modification does (inotify). */
    return pwrite(e->bellfd, &seq, sizeof(seq), 0) == sizeof(seq) ? 0 : -1;
}

static void ev_signal(struct ls_conn *c, bool on)
{
    uint64_t v = 1;

    if (c->evfd < 0)
        return;
    if (on) {
        if (write(c->evfd, &v, sizeof(v)) < 0) {
            /* EAGAIN: the counter is already non-zero, readable anyway. */
        }
    } else if (read(c->evfd, &v, sizeof(v)) < 0) {
        /* EAGAIN: already clear. */
    }
}

/* An fd that could not be made, as the wire says it: a watch whose
 * events could not be delivered is refused with xenstored's "no room". */
static int fd_errno(int e)
{
    return e == ENOMEM ? ENOMEM : ENOSPC;
}

/* The process's inotify instance on the store's bell: 0 or an errno. */
static int bell_follow(struct ls_env *e)
{
    int fd, rc = 0;

    if (__atomic_load_n(&e->inofd, __ATOMIC_ACQUIRE) >= 0)
        return 0;
    pthread_mutex_lock(&e->blk);
    if (e->inofd < 0) {
        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0 || inotify_add_watch(fd, e->bell, IN_MODIFY) < 0) {
            rc = errno;
            if (fd >= 0)
                close(fd);
        } else {
            __atomic_store_n(&e->inofd, fd, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&e->blk);
    return rc;
}

void ls_bell_close(struct ls_env *e)
{
    if (e->inofd >= 0)
        close(e->inofd);
    e->inofd = -1;
    pthread_mutex_destroy(&e->blk);
}

static uint64_t store_seq(struct ls_env *e)
{
    struct ls_x x = {.e = e};
    uint64_t seq = 0;

    /* Unknown: every connection with watches scans (see skip_scan). */
    if (ls_txn_begin(e, true, &x.t) != 0)
        return UINT64_MAX;
    if (ls_meta_get(&x, "seq", &seq) != 0)
        seq = UINT64_MAX;
    mdb_txn_abort(x.t);
    return seq;
}

/*
 * Drain the bell. If it rang: the store's sequence read afterwards goes
 * into seen (every commit the drained rings announced is at or below
 * it), the generation grows and every connection with an event fd is
 * signalled, in that order, so that one that skips its scan on seen
 * before the update is woken after it.
 */
static void bell_drain(struct ls_env *e)
{
    int fd = __atomic_load_n(&e->inofd, __ATOMIC_ACQUIRE);
    char buf[4096];
    bool rang = false;
    uint64_t seq, v = 1;

    if (fd < 0)
        return;
    while (read(fd, buf, sizeof(buf)) > 0)
        rang = true;
    if (!rang)
        return;
    seq = store_seq(e);
    uint64_t old = __atomic_load_n(&e->seen, __ATOMIC_RELAXED);
    while (old < seq &&
           !__atomic_compare_exchange_n(&e->seen, &old, seq, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        ;
    __atomic_add_fetch(&e->gen, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&e->blk);
    for (struct ls_conn *c = e->fds; c; c = c->fnext)
        if (write(c->evfd, &v, sizeof(v)) < 0) {
            /* EAGAIN: the counter is already non-zero, readable anyway. */
        }
    pthread_mutex_unlock(&e->blk);
}

/* Nothing new for c: no queued event and no commit past its scan that a
 * drain has seen (a commit not yet drained leaves the bell readable). */
static bool skip_scan(struct ls_conn *c)
{
    if (c->nwatches == 0)
        return true;
    if (__atomic_load_n(&c->e->inofd, __ATOMIC_ACQUIRE) < 0)
        return false;
    return c->last_seq >= __atomic_load_n(&c->e->seen, __ATOMIC_ACQUIRE);
}

/* c's event fd (c->lock held): 0 or an errno. */
static int ensure_fds(struct ls_conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN};
    struct ls_env *e = c->e;
    int rc;

    if (c->epfd >= 0)
        return 0;
    if ((rc = bell_follow(e)))
        return rc;
    int evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (evfd < 0 || epfd < 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, e->inofd, &ev) < 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev) < 0) {
        rc = errno;
        if (evfd >= 0)
            close(evfd);
        if (epfd >= 0)
            close(epfd);
        return rc;
    }
    pthread_mutex_lock(&e->blk);
    c->evfd = evfd;
    c->epfd = epfd;
    if ((c->fnext = e->fds))
        e->fds->fprev = &c->fnext;
    c->fprev = &e->fds;
    e->fds = c;
    pthread_mutex_unlock(&e->blk);
    /* Whatever happened before the fd existed is scanned on first use. */
    if (c->evhead || c->nwatches)
        ev_signal(c, true);
    return 0;
}

void ls_events_close(struct ls_conn *c, bool free_queue)
{
    if (c->fprev) {
        /* An environment inherited through fork() is left alone: its
         * lock may be held by a thread that does not exist here. */
        bool own = c->e->pid == getpid();
        if (own)
            pthread_mutex_lock(&c->e->blk);
        if ((*c->fprev = c->fnext))
            c->fnext->fprev = c->fprev;
        if (own)
            pthread_mutex_unlock(&c->e->blk);
        c->fprev = NULL;
        c->fnext = NULL;
    }
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->evfd >= 0)
        close(c->evfd);
    c->epfd = c->evfd = -1;
    while (free_queue && c->evhead) {
        struct ls_event *ev = c->evhead;
        c->evhead = ev->next;
        free(ev);
    }
    if (!c->evhead)
        c->evtail = &c->evhead;
}

static int push(struct ls_conn *c, const struct ls_watch *w,
                const char *path)
{
    size_t pl, tl = strlen(w->token) + 1;
    struct ls_event *ev;

    /* Relative watches see relative paths, as xenstored sends them. */
    if (w->strip && strncmp(path, w->path, w->strip) == 0)
        path += w->strip;
    pl = strlen(path) + 1;
    if (!(ev = malloc(sizeof(*ev) + pl + tl)))
        return ENOMEM;
    ev->next = NULL;
    ev->len = pl + tl;
    memcpy(ev->payload, path, pl);
    memcpy(ev->payload + pl, w->token, tl);
    *c->evtail = ev;
    c->evtail = &ev->next;
    ev_signal(c, true);
    return 0;
}

static bool under(const char *child, const char *parent)
{
    size_t n = strlen(parent);

    if (strcmp(parent, "/") == 0)
        return child[0] == '/';
    return strncmp(child, parent, n) == 0 &&
           (child[n] == '/' || child[n] == '\0');
}

/* The path a record fires w with, or NULL. */
static const char *match(const struct ls_watch *w, char kind,
                         const char *path)
{
    if (kind == LS_J_SPECIAL || w->path[0] == '@')
        return strcmp(w->path, path) == 0 ? path : NULL;
    if (under(path, w->path))
        return path;
    if (kind == LS_J_RM && under(w->path, path))
        return w->path;
    return NULL;
}

static uint64_t seq_of(const MDB_val *k)
{
    const unsigned char *b = k->mv_data;
    uint64_t s = 0;

    for (int i = 0; i < 8; i++)
        s = s << 8 | b[i];
    return s;
}

/* A guest watcher gets no event for a node it may not read. */
static bool visible(struct ls_conn *c, struct ls_x *x, const char *path)
{
    struct ls_node n;
    bool ok = true;

    if (c->domid == 0)
        return true;
    if (path[0] == '@')
        return false;
    if (ls_node_get(x, path, &n) == 0) {
        struct ls_perm *p = n.perms;
        ok = p[0].id == c->domid;
        uint32_t mode = p[0].mode;
        for (uint32_t i = 1; !ok && i < n.nperms; i++)
            if (!(p[i].mode & LS_PERM_IGNORE) && p[i].id == c->domid) {
                mode = p[i].mode;
                break;
            }
        ok = ok || (mode & LS_PERM_READ);
        ls_node_free(&n);
    }
    return ok;
}

static int scan(struct ls_conn *c)
{
    struct ls_x x = {.e = c->e, .domid = c->domid};
    uint64_t seq, trim;
    MDB_cursor *cur;
    unsigned char kb[8];
    MDB_val k = {8, kb}, d;
    int rc;

    if ((rc = ls_txn_begin(c->e, true, &x.t)))
        return rc;
    if ((rc = ls_meta_get(&x, "seq", &seq)) ||
        (rc = ls_meta_get(&x, "jtrim", &trim)))
        goto out;
    if (c->last_seq >= seq)
        goto out;
    if (c->last_seq < trim) {
        /* Fell behind the trim: one conservative event per watch. */
        for (size_t i = 0; !rc && i < c->nwatches; i++)
            rc = push(c, &c->watches[i], c->watches[i].path);
        c->last_seq = seq;
        goto out;
    }
    for (int i = 0; i < 8; i++)
        kb[i] = (c->last_seq + 1) >> (56 - 8 * i);
    if ((rc = mdb_cursor_open(x.t, c->e->journal, &cur))) {
        rc = ls_mdb_errno(rc);
        goto out;
    }
    int r = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    while (!rc && r == 0 && k.mv_size == 8) {
        uint64_t s = seq_of(&k);
        const char *p = d.mv_data, *end = p + d.mv_size;
        while (!rc && p + 2 <= end) {
            char kind = p[0];
            const char *path = p + 1;
            const char *nul = memchr(path, '\0', end - path);
            if (!nul)
                break;
            for (size_t i = 0; !rc && i < c->nwatches; i++) {
                const struct ls_watch *w = &c->watches[i];
                const char *ev = s > w->since ? match(w, kind, path) : NULL;
                if (ev && visible(c, &x, ev))
                    rc = push(c, w, ev);
            }
            p = nul + 1;
        }
        c->last_seq = s;
        r = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
out:
    mdb_txn_abort(x.t);
    return rc;
}

static uint64_t current_seq(struct ls_conn *c)
{
    struct ls_x x = {.e = c->e, .domid = c->domid};
    uint64_t seq = 0;

    if (ls_txn_begin(c->e, true, &x.t) == 0) {
        ls_meta_get(&x, "seq", &seq);
        mdb_txn_abort(x.t);
    }
    return seq;
}

static int watch_args(struct ls_conn *c, const char *payload, uint32_t len,
                      char **path, const char **token, size_t *strip)
{
    const char *nul = len ? memchr(payload, '\0', len) : NULL;

    /* Exactly two strings: path and token. */
    if (!nul || payload[len - 1] != '\0' ||
        memchr(nul + 1, '\0', len - (nul + 1 - payload)) !=
            payload + len - 1)
        return EINVAL;
    *token = nul + 1;
    if (payload[0] == '@') {
        *strip = 0;
        if (strlen(payload) > XSW_REL_PATH_MAX)
            return EINVAL;
        *path = strdup(payload);
    } else {
        *path = ls_canon(c->domid, payload, strip);
        if (*path && !ls_valid_path(*path)) {
            free(*path);
            return EINVAL;
        }
    }
    return *path ? 0 : ENOMEM;
}

static ssize_t find(struct ls_conn *c, const char *path, const char *token)
{
    for (size_t i = 0; i < c->nwatches; i++)
        if (strcmp(c->watches[i].path, path) == 0 &&
            strcmp(c->watches[i].token, token) == 0)
            return i;
    return -1;
}

int ls_watch(struct ls_conn *c, const char *payload, uint32_t len,
             struct ls_buf *reply)
{
    const char *token;
    char *path;
    size_t strip;
    int rc = watch_args(c, payload, len, &path, &token, &strip);

    if (rc)
        return rc;
    if (find(c, path, token) >= 0)
        rc = EEXIST;
    else if (c->domid != 0 && c->nwatches >= LS_QUOTA_WATCHES)
        rc = E2BIG;
    /* No OK for a watch whose events nobody would be woken for: the
     * bell must be followed, and the connection's own fd made if its
     * caller polls one. */
    else if ((rc = bell_follow(c->e)) || (c->want_fd && (rc = ensure_fds(c))))
        rc = fd_errno(rc);
    else if (c->nwatches == c->capwatches) {
        size_t cap = c->capwatches ? 2 * c->capwatches : 8;
        struct ls_watch *w = realloc(c->watches, cap * sizeof(*w));
        if (!w)
            rc = ENOMEM;
        else {
            c->watches = w;
            c->capwatches = cap;
        }
    }
    if (rc) {
        free(path);
        return rc;
    }
    struct ls_watch *w = &c->watches[c->nwatches];
    if (!(w->token = strdup(token))) {
        free(path);
        return ENOMEM;
    }
    w->path = path;
    w->strip = strip;
    w->since = current_seq(c);
    /* The scan starts at the first watch; later ones filter by since. */
    if (c->nwatches == 0 || c->last_seq > w->since)
        c->last_seq = w->since;
    c->nwatches++;
    /* A watch fires once when set. */
    if ((rc = push(c, w, path)))
        return rc;
    return ls_buf_addstr(reply, "OK");
}

static void watch_free(struct ls_watch *w)
{
    free(w->path);
    free(w->token);
}

int ls_unwatch(struct ls_conn *c, const char *payload, uint32_t len,
               struct ls_buf *reply)
{
    const char *token;
    char *path;
    size_t strip;
    ssize_t i;
    int rc = watch_args(c, payload, len, &path, &token, &strip);

    if (rc)
        return rc;
    i = find(c, path, token);
    free(path);
    if (i < 0)
        return ENOENT;
    watch_free(&c->watches[i]);
    memmove(&c->watches[i], &c->watches[i + 1],
            (c->nwatches - i - 1) * sizeof(c->watches[0]));
    c->nwatches--;
    return ls_buf_addstr(reply, "OK");
}

void ls_watch_free_all(struct ls_conn *c)
{
    for (size_t i = 0; i < c->nwatches; i++)
        watch_free(&c->watches[i]);
    free(c->watches);
    c->watches = NULL;
    c->nwatches = c->capwatches = 0;
}

int ls_event_fd(struct cxs_gconn *g)
{
    struct ls_conn *c = (struct ls_conn *)g;
    int rc;

    pthread_mutex_lock(&c->lock);
    c->want_fd = true;
    rc = ls_env_sync(c);
    if (!rc)
        rc = -ensure_fds(c);
    if (!rc)
        rc = c->epfd;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int ls_next_event(struct cxs_gconn *g, char **payload, uint32_t *len)
{
    struct ls_conn *c = (struct ls_conn *)g;
    struct ls_event *ev;
    int rc = 0;

    pthread_mutex_lock(&c->lock);
    if ((rc = ls_env_sync(c)))
        goto out;
    /* Drain the bell first: a commit after this rings it again. Then
     * clear c's signal, only here, before the scan: a signal from a
     * drain in another thread after this point is kept (after taking
     * the last event the fd may stay readable: one spurious wake-up,
     * which the interface allows). */
    if (c->want_fd || !__atomic_load_n(&c->e->polled, __ATOMIC_ACQUIRE))
        bell_drain(c->e);
    if (!c->evhead)
        ev_signal(c, false);
    if (!skip_scan(c) && (rc = scan(c))) {
        rc = -rc;
        goto out;
    }
    if (!(ev = c->evhead)) {
        rc = -EAGAIN;
        goto out;
    }
    if (!(*payload = malloc(ev->len + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(*payload, ev->payload, ev->len);
    (*payload)[ev->len] = '\0';
    *len = ev->len;
    if (!(c->evhead = ev->next))
        c->evtail = &c->evhead;
    free(ev);
out:
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* The bell's fd (made if need be), drained first if drain; the bell's
 * generation in *gen. The fd or -errno. */
static int bell_access(struct cxs_gconn *g, bool drain, uint64_t *gen)
{
    struct ls_conn *c = (struct ls_conn *)g;
    int rc;

    pthread_mutex_lock(&c->lock);
    if (!(rc = ls_env_sync(c)) && !(rc = -bell_follow(c->e))) {
        if (drain)
            bell_drain(c->e);
        else
            __atomic_store_n(&c->e->polled, true, __ATOMIC_RELEASE);
        *gen = __atomic_load_n(&c->e->gen, __ATOMIC_ACQUIRE);
        rc = c->e->inofd;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int cxs_lstore_bell_fd(struct cxs_gconn *g)
{
    uint64_t gen;

    return bell_access(g, false, &gen);
}

uint64_t cxs_lstore_bell_drain(struct cxs_gconn *g)
{
    uint64_t gen = 0;

    bell_access(g, true, &gen);
    return gen;
}
