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
 * The fd a caller polls is an epoll set of the inotify fd and an
 * eventfd that stays readable while events wait in the connection, so
 * readiness is level-triggered as the interface wants.
 */
#include <errno.h>
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

static int ensure_fds(struct ls_conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN};

    if (c->epfd >= 0)
        return 0;
    c->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    c->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (c->inofd < 0 || c->evfd < 0 || c->epfd < 0 ||
        inotify_add_watch(c->inofd, c->e->bell, IN_MODIFY) < 0 ||
        epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->inofd, &ev) < 0 ||
        epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd, &ev) < 0) {
        int e = errno;
        ls_events_close(c, false);
        return e;
    }
    /* Whatever happened before the fd existed is scanned on first use. */
    if (c->evhead || c->nwatches)
        ev_signal(c, true);
    return 0;
}

void ls_events_close(struct ls_conn *c, bool free_queue)
{
    if (c->epfd >= 0)
        close(c->epfd);
    if (c->inofd >= 0)
        close(c->inofd);
    if (c->evfd >= 0)
        close(c->evfd);
    c->epfd = c->inofd = c->evfd = -1;
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
    char buf[4096];
    struct ls_event *ev;
    int rc = 0;

    pthread_mutex_lock(&c->lock);
    if ((rc = ls_env_sync(c)))
        goto out;
    /* Drain the bell first: a commit after this rings it again. */
    if (c->inofd >= 0)
        while (read(c->inofd, buf, sizeof(buf)) > 0)
            ;
    if (c->nwatches && (rc = scan(c))) {
        rc = -rc;
        goto out;
    }
    if (!(ev = c->evhead)) {
        ev_signal(c, false);
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
    if (!(c->evhead = ev->next)) {
        c->evtail = &c->evhead;
        ev_signal(c, false);
    }
    free(ev);
out:
    pthread_mutex_unlock(&c->lock);
    return rc;
}
