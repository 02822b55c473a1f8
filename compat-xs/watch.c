/*
 * Watches: xs_watch, xs_unwatch, xs_read_watch, xs_check_watch and the
 * events behind them.
 *
 * A handle's watches fire into its queue of pending events. Its epoll fd
 * (epfd) holds the context's libnoxs fds and the generic store's event
 * fd plus, while the queue is not empty, the process's one
 * always-readable eventfd (ready_fd): readable when an event is queued
 * or may be about to be (a page changed, the local store's bell rang for
 * any commit). xs_read_watch waits on it and drains the sources.
 *
 * xs_fileno() must be stricter, as libxenstore's is: readable exactly
 * when xs_read_watch will return at once. Programs such as xenconsoled
 * poll it and then call the blocking xs_read_watch; a readiness that
 * yields no event (another process's commit to an unwatched path) would
 * block them there, with their other fds unserved. So the first
 * xs_fileno() gives the handle a pipe that is readable while the queue
 * is not empty, and a thread (libxenstore has its reader thread too)
 * that waits on epfd and drains the sources into the queue under the
 * library lock. One fd per handle: a process acting as many domains
 * (bench/compat) holds one handle per domain.
 *
 * Events come from the pages (cxs_fire, called when a view changes),
 * from the generic store (gdrain) and, for @introduceDomain and
 * @releaseDomain, from noxsd (special.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <xenstore.h>

#include "handle.h"

/*
 * Watches are indexed per context by path (ctx->watches), so an event
 * costs O(depth of its path + watches that fire), not O(watches): a
 * backend serving N devices holds about N watches (one per frontend
 * state). The index is a tree of every watched path and its parents
 * ("/a/b" -> "/a" -> "/"; "@..." paths stand alone): the watches covering
 * a changed path are looked up at each of its prefixes, those below a
 * removed directory are its node's subtree.
 */
struct wnode {
    struct cxs_hent hent; /* ctx->watches, hash of path */
    struct wnode *parent;
    struct wnode *child, *sib_next, **sib_pprev;
    struct watch *watches; /* at exactly this path, newest first */
    size_t refs;           /* watches here + children */
    size_t len;
    char path[];
};

/* Tokens of one handle's watches, counted (xs_unwatch's question). */
struct tokent {
    struct cxs_hent hent; /* xs_handle.tokens, hash of token */
    size_t count;
    char token[];
};

struct watch {
    struct watch *next, **pprev;   /* the handle's, newest first */
    struct watch *wnext, **wpprev; /* the node's, newest first */
    struct wnode *node;
    struct tokent *tok;
    struct xs_handle *h;
    uint64_t seq; /* higher is newer */
    char *path;   /* absolute */
    char *token;
    size_t strip; /* relative watch: bytes of domain path to strip */
};

struct event {
    struct event *next;
    char *path;
    char *token;
};

/* ---- events ---- */

/*
 * One eventfd for the whole process, written once and never read, so it
 * is always readable: a handle's epoll set holds it exactly while the
 * handle's event queue is not empty. (An eventfd per handle would cost a
 * second fd per handle.) Created under cxs_lock by the first xs_open.
 */
static int ready_fd = -1;

int cxs_ready_fd_get(void)
{
    uint64_t one = 1;
    int fd;

    if (ready_fd >= 0)
        return ready_fd;
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -1;
    if (write(fd, &one, sizeof(one)) != sizeof(one)) {
        close(fd);
        errno = EIO;
        return -1;
    }
    ready_fd = fd;
    return fd;
}

static void signal_handle(struct xs_handle *h)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ready_fd};

    if (h->signalled)
        return;
    if (h->fmode)
        h->signalled = write(h->fpipe[1], "e", 1) == 1;
    else if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, ready_fd, &ev) == 0)
        h->signalled = true;
}

static void unsignal_handle(struct xs_handle *h)
{
    char b[8];

    if (h->head || !h->signalled || (h->fmode && h->gdead))
        return;
    if (h->fmode) {
        while (read(h->fpipe[0], b, sizeof(b)) > 0)
            ;
        h->signalled = false;
    } else if (epoll_ctl(h->epfd, EPOLL_CTL_DEL, ready_fd, NULL) == 0) {
        h->signalled = false;
    }
}

static void queue_event(struct xs_handle *h, const char *path,
                        const char *token)
{
    struct event *e = malloc(sizeof(*e));

    if (!e)
        return;
    e->path = strdup(path);
    e->token = strdup(token);
    e->next = NULL;
    if (!e->path || !e->token) {
        free(e->path);
        free(e->token);
        free(e);
        return;
    }
    if (h->tail)
        h->tail->next = e;
    else
        h->head = e;
    h->tail = e;
    signal_handle(h);
}

static void queue_for_watch(struct xs_handle *h, struct watch *w,
                            const char *path)
{
    queue_event(h, strlen(path) >= w->strip ? path + w->strip : path,
                w->token);
}

/* ---- the generic store's events ---- */

static struct wnode *wnode_find(struct cxs_ctx *ctx, const char *path,
                                size_t len);
static struct wnode *wnode_below(const struct wnode *top,
                                 const struct wnode *n);

/* h's watch with this token at exactly node n, or NULL. */
static struct watch *own_watch(const struct wnode *n,
                               const struct xs_handle *h, const char *token)
{
    for (struct watch *w = n ? n->watches : NULL; w; w = w->wnext)
        if (w->h == h && strcmp(w->token, token) == 0)
            return w;
    return NULL;
}

/*
 * The watch a generic store's event belongs to: registered absolute,
 * reported as the caller wrote it (relative watches strip the domain
 * path). Through the index, as cxs_fire: at the event's path or one of
 * its prefixes, else below it (a removed directory reported by its own
 * path), so an event costs O(depth), not O(the handle's watches).
 */
static struct watch *gwatch_find(struct xs_handle *h, const char *path,
                                 const char *token)
{
    struct cxs_ctx *ctx = h->ctx;
    size_t len = strlen(path);
    struct wnode *top = wnode_find(ctx, path, len);
    struct watch *w = own_watch(top, h, token);

    for (size_t i = len; !w && i-- > 1;)
        if (path[i] == '/')
            w = own_watch(wnode_find(ctx, path, i), h, token);
    if (!w && path[0] == '/' && len > 1)
        w = own_watch(wnode_find(ctx, "/", 1), h, token);
    for (struct wnode *n = wnode_below(top, top); !w && n;
         n = wnode_below(top, n))
        w = own_watch(n, h, token);
    return w;
}

/* Take the generic store's watch events into the handle's queue. */
static void gdrain(struct xs_handle *h)
{
    char *ev;
    uint32_t len;
    int n = 0;

    while (h->g && !h->gdead && n++ < 1024) {
        const char *path, *token;
        size_t pl;
        int rc = h->g->ops->next_event(h->g, &ev, &len);

        if (rc == -EAGAIN)
            break;
        if (rc < 0) {
            /* The store went away: its fd stays readable, so it leaves
             * the poll set; xs_read_watch reports the loss. */
            h->gdead = -rc;
            epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->g->ops->event_fd(h->g),
                      NULL);
            if (h->fmode)
                signal_handle(h); /* so that xs_read_watch says so */
            cxs_log("lost the generic store's watch events: %s",
                    strerror(-rc));
            break;
        }
        path = ev;
        pl = strnlen(ev, len);

        if (pl + 1 >= len) {
            free(ev);
            continue;
        }
        token = ev + pl + 1;
        if (memchr(token, '\0', len - pl - 1) == NULL) {
            free(ev);
            continue;
        }
        struct watch *w = gwatch_find(h, path, token);
        if (w)
            queue_for_watch(h, w, path);
        free(ev);
    }
}

/* ---- the watch index ---- */

/* The node after n in a depth-first walk of top's subtree (top itself
 * excluded; n == top starts it), or NULL at the end. */
static struct wnode *wnode_below(const struct wnode *top,
                                 const struct wnode *n)
{
    if (!top)
        return NULL;
    if (n->child)
        return n->child;
    while (n != top && !n->sib_next)
        n = n->parent;
    return n == top ? NULL : n->sib_next;
}

static struct wnode *wnode_find(struct cxs_ctx *ctx, const char *path,
                                size_t len)
{
    uint64_t hash = cxs_hash_bytes(path, len);

    for (struct cxs_hent *e = cxs_htab_find(&ctx->watches, hash); e;
         e = cxs_htab_next(e, hash)) {
        struct wnode *n = CXS_CONTAINER(e, struct wnode, hent);
        if (n->len == len && memcmp(n->path, path, len) == 0)
            return n;
    }
    return NULL;
}

/* Length of the parent of path[0..len) in the index, or 0 for none: the
 * prefix before the last '/', "/" for "/x", none for "/" and "@...". */
static size_t wnode_parent_len(const char *path, size_t len)
{
    size_t i = len;

    if (len <= 1 || path[0] != '/')
        return 0;
    while (path[--i] != '/')
        ;
    return i ? i : 1;
}

static void wnode_unref(struct cxs_ctx *ctx, struct wnode *n)
{
    while (n && --n->refs == 0) {
        struct wnode *parent = n->parent;

        if (n->sib_pprev) {
            *n->sib_pprev = n->sib_next;
            if (n->sib_next)
                n->sib_next->sib_pprev = n->sib_pprev;
        }
        cxs_htab_del(&ctx->watches, &n->hent);
        free(n);
        n = parent;
    }
}

/* The node of path[0..len), created with its parents if need be, with one
 * more reference; NULL on ENOMEM. */
static struct wnode *wnode_get(struct cxs_ctx *ctx, const char *path,
                               size_t len)
{
    struct wnode *n = wnode_find(ctx, path, len), *parent = NULL;
    size_t plen;

    if (n) {
        n->refs++;
        return n;
    }
    plen = wnode_parent_len(path, len);
    if (plen && !(parent = wnode_get(ctx, path, plen)))
        return NULL;
    n = calloc(1, sizeof(*n) + len + 1);
    if (!n || cxs_htab_add(&ctx->watches, &n->hent,
                           cxs_hash_bytes(path, len)) < 0) {
        free(n);
        wnode_unref(ctx, parent);
        return NULL;
    }
    memcpy(n->path, path, len);
    n->len = len;
    n->refs = 1;
    n->parent = parent;
    if (parent) {
        n->sib_next = parent->child;
        if (n->sib_next)
            n->sib_next->sib_pprev = &n->sib_next;
        n->sib_pprev = &parent->child;
        parent->child = n;
    }
    return n;
}

/* Index w (its path, its handle's token count). */
static int watch_link(struct xs_handle *h, struct watch *w)
{
    static uint64_t seq;
    struct cxs_ctx *ctx = h->ctx;
    size_t tl = strlen(w->token);
    uint64_t th = cxs_hash_bytes(w->token, tl);
    struct tokent *t = NULL;

    for (struct cxs_hent *e = cxs_htab_find(&h->tokens, th); e;
         e = cxs_htab_next(e, th)) {
        struct tokent *x = CXS_CONTAINER(e, struct tokent, hent);
        if (strcmp(x->token, w->token) == 0) {
            t = x;
            break;
        }
    }
    if (!t) {
        t = calloc(1, sizeof(*t) + tl + 1);
        if (!t || cxs_htab_add(&h->tokens, &t->hent, th) < 0) {
            free(t);
            return -ENOMEM;
        }
        memcpy(t->token, w->token, tl + 1);
    }
    w->node = wnode_get(ctx, w->path, strlen(w->path));
    if (!w->node) {
        if (t->count == 0) {
            cxs_htab_del(&h->tokens, &t->hent);
            free(t);
        }
        return -ENOMEM;
    }
    t->count++;
    w->tok = t;
    w->h = h;
    w->seq = ++seq;
    w->wnext = w->node->watches;
    if (w->wnext)
        w->wnext->wpprev = &w->wnext;
    w->wpprev = &w->node->watches;
    w->node->watches = w;
    w->next = h->watches;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = &h->watches;
    h->watches = w;
    return 0;
}

/* Unindex and free w. true if another watch of the handle still has its
 * token. */
static bool watch_unlink(struct xs_handle *h, struct watch *w)
{
    bool token_used = --w->tok->count > 0;

    if (!token_used) {
        cxs_htab_del(&h->tokens, &w->tok->hent);
        free(w->tok);
    }
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    *w->wpprev = w->wnext;
    if (w->wnext)
        w->wnext->wpprev = w->wpprev;
    wnode_unref(h->ctx, w->node);
    free(w->path);
    free(w->token);
    free(w);
    return token_used;
}

void cxs_watches_free(struct cxs_ctx *ctx)
{
    /* Every handle unlinked its watches, so no node is left. */
    cxs_htab_free(&ctx->watches);
    cxs_special_free(ctx);
}

/* Watches that fire for one event, and the path each reports. */
struct match {
    struct watch *w;
    const char *path;
};
struct matches {
    struct match stack[8], *v;
    size_t n, cap;
};

static void match_add(struct matches *m, struct watch *w, const char *path)
{
    if (m->n == m->cap) {
        size_t cap = m->cap * 2;
        struct match *v = malloc(cap * sizeof(*v));
        if (!v)
            return; /* as queue_event: an event lost to ENOMEM */
        memcpy(v, m->v, m->n * sizeof(*v));
        if (m->v != m->stack)
            free(m->v);
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n].w = w;
    m->v[m->n++].path = path;
}

static void match_node(struct matches *m, const struct wnode *n,
                       const char *path)
{
    for (struct watch *w = n ? n->watches : NULL; w; w = w->wnext)
        match_add(m, w, path ? path : w->path);
}

static int newest_first(const void *a, const void *b)
{
    const struct match *x = a, *y = b;

    return x->w->seq < y->w->seq ? 1 : x->w->seq > y->w->seq ? -1
                                                             : 0;
}

/*
 * xenstored's rule, as cxs_is_child states it: a watch fires when path is
 * at or below it (it is path, "/", or a prefix of path ending before a
 * '/'), and for a removed directory, a watch below it fires with its own
 * path. Each handle's events are queued in the order of its watch list,
 * newest watch first, as a walk of every watch would queue them.
 */
void cxs_fire(struct cxs_ctx *ctx, const char *path, bool removed)
{
    struct matches m = {.cap = sizeof(m.stack) / sizeof(m.stack[0])};
    size_t len = strlen(path);

    if (ctx->watches.n == 0)
        return;
    m.v = m.stack;
    match_node(&m, wnode_find(ctx, path, len), path);
    if (path[0] == '/' && len > 1 && path[1] != '/')
        match_node(&m, wnode_find(ctx, "/", 1), path);
    for (size_t i = 1; i < len; i++)
        if (path[i] == '/')
            match_node(&m, wnode_find(ctx, path, i), path);
    if (removed && len == 0) {
        /* Below "": every absolute watch (no such event is fired). */
        for (struct xs_handle *h = ctx->handles; h; h = h->ctx_next)
            for (struct watch *w = h->watches; w; w = w->next)
                if (cxs_is_child(w->path, path))
                    match_add(&m, w, w->path);
    } else if (removed) {
        /* The subtree below path's node, depth first. */
        struct wnode *top = wnode_find(ctx, path, len);

        for (struct wnode *n = wnode_below(top, top); n;
             n = wnode_below(top, n))
            match_node(&m, n, NULL);
    }
    if (m.n > 1)
        qsort(m.v, m.n, sizeof(*m.v), newest_first);
    for (size_t i = 0; i < m.n; i++)
        queue_for_watch(m.v[i].w->h, m.v[i].w, m.v[i].path);
    if (m.v != m.stack)
        free(m.v);
}

void cxs_ctx_add_fd(struct cxs_ctx *ctx, int fd)
{
    for (struct xs_handle *h = ctx->handles; h; h = h->ctx_next) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

static struct event *pop_event(struct xs_handle *h)
{
    struct event *e = h->head;

    if (e) {
        h->head = e->next;
        if (!h->head)
            h->tail = NULL;
    }
    unsignal_handle(h);
    return e;
}

/* libxenstore's layout: one malloc holding the vector and the strings. */
static char **event_vector(struct event *e, unsigned int *num)
{
    size_t pl = strlen(e->path) + 1, tl = strlen(e->token) + 1;
    char **v = malloc(2 * sizeof(char *) + pl + tl);

    if (v) {
        v[XS_WATCH_PATH] = (char *)(v + 2);
        v[XS_WATCH_TOKEN] = v[XS_WATCH_PATH] + pl;
        memcpy(v[XS_WATCH_PATH], e->path, pl);
        memcpy(v[XS_WATCH_TOKEN], e->token, tl);
        if (num)
            *num = 2;
    }
    free(e->path);
    free(e->token);
    free(e);
    return v;
}

/* Drop h's queued events, watches and tokens (the handle closes). */
void cxs_watch_close(struct xs_handle *h)
{
    struct event *e;

    while ((e = pop_event(h)) != NULL) {
        free(e->path);
        free(e->token);
        free(e);
    }
    while (h->watches)
        watch_unlink(h, h->watches);
    cxs_htab_free(&h->tokens);
}

/* ---- watches ---- */

CXS_EXPORT bool xs_watch(struct xs_handle *h, const char *path,
                         const char *token)
{
    char abs[CXS_ABS_PATH_MAX + 1];
    struct cxs_path p;
    struct watch *w;
    size_t strip = 0;
    int rc, r;

    if (!h || !token)
        return fail(EINVAL);
    cxs_enter();
    rc = cxs_absolute(h, path, abs, sizeof(abs), &strip);
    if (rc == 0)
        rc = cxs_path_parse(abs, &p);
    if (rc < 0) {
        cxs_leave();
        return fail(-rc);
    }
    r = cxs_route(h, &p, OPK_WATCH);
    if (r != R_NOXS) {
        /* Registered absolute: events are mapped back to the caller's
         * form through the watch below (gdrain). */
        rc = cxs_gwatch(h->g, true, abs, token);
        if (rc < 0) {
            cxs_leave();
            return fail(-rc);
        }
        /* The store refuses a watch it could not wake the handle for;
         * its event fd may be new (none could be made at xs_open). */
        struct epoll_event ev = {.events = EPOLLIN};
        if (!h->gdead && (ev.data.fd = h->g->ops->event_fd(h->g)) >= 0)
            epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    } else if (p.kind == CXS_UNSUPPORTED) {
        cxs_unsupported("watch", abs); /* allowed: it just never fires */
    }
    w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(abs)) || !(w->token = strdup(token))) {
        if (w)
            free(w->path);
        free(w);
        cxs_leave();
        return fail(ENOMEM);
    }
    w->strip = strip;
    if (watch_link(h, w) < 0) {
        free(w->path);
        free(w->token);
        free(w);
        if (r != R_NOXS)
            cxs_gwatch(h->g, false, abs, token);
        cxs_leave();
        return fail(ENOMEM);
    }
    if (r == R_GENERIC) {
        /* The generic store sends the initial event. */
        cxs_leave();
        return true;
    }

    /* Watching our own backend tree makes this process the backend of
     * the domain's legacy devices; watching device trees of our own
     * domain opens the frontend. */
    if (p.kind >= CXS_BACKEND_ROOT && p.kind <= CXS_BACKEND_KEY &&
        p.domid == h->ctx->domid)
        cxs_ctx_backend(h->ctx);
    else if (h->ctx->domid != 0 && p.kind >= CXS_DOMAIN &&
             p.domid == h->ctx->domid)
        cxs_ctx_frontend(h->ctx);
    cxs_ctl_watch(h->ctx, &p);
    if (p.kind == CXS_SPECIAL)
        cxs_special_watch(h);
    if (h->ctx->front || h->ctx->back)
        cxs_ctx_poll(h->ctx);
    /* libxenstore/xenstored: every watch fires once on registration
     * (R_BOTH: the generic store's initial event is that one). */
    if (r == R_NOXS)
        queue_for_watch(h, w, abs);
    cxs_leave();
    return true;
}

CXS_EXPORT bool xs_unwatch(struct xs_handle *h, const char *path,
                           const char *token)
{
    char abs[CXS_ABS_PATH_MAX + 1];
    bool found = false;

    if (!h || !token)
        return fail(EINVAL);
    cxs_enter();
    if (cxs_absolute(h, path, abs, sizeof(abs), NULL) < 0) {
        cxs_leave();
        return fail(EINVAL);
    }
    if (h->g) {
        struct cxs_path p;
        if (cxs_path_parse(abs, &p) == 0 &&
            cxs_route(h, &p, OPK_WATCH) != R_NOXS)
            cxs_gwatch(h->g, false, abs, token);
    }
    /* The handle's newest watch of (path, token): the node's list is
     * newest first. */
    struct wnode *n = wnode_find(h->ctx, abs, strlen(abs));
    bool token_used = true;
    for (struct watch *w = n ? n->watches : NULL; w; w = w->wnext)
        if (w->h == h && strcmp(w->token, token) == 0) {
            token_used = watch_unlink(h, w);
            found = true;
            break;
        }
    /* As libxenstore does: drop queued events of that watch, unless
     * another watch still uses the token. */
    if (found && !token_used) {
        struct event **ep = &h->head, *last = NULL;
        while (*ep) {
            struct event *e = *ep;
            if (strcmp(e->token, token) == 0) {
                *ep = e->next;
                free(e->path);
                free(e->token);
                free(e);
                continue;
            }
            last = e;
            ep = &e->next;
        }
        h->tail = last;
        unsignal_handle(h);
    }
    cxs_leave();
    return found ? true : fail(ENOENT);
}

CXS_EXPORT char **xs_check_watch(struct xs_handle *h)
{
    struct event *e;

    if (!h)
        return fail_ptr(EINVAL);
    cxs_enter();
    if (h->ctx->front || h->ctx->back)
        cxs_ctx_poll(h->ctx);
    cxs_special_poll(h->ctx);
    gdrain(h);
    e = pop_event(h);
    cxs_leave();
    if (!e)
        return fail_ptr(EAGAIN);
    return event_vector(e, NULL);
}

CXS_EXPORT char **xs_read_watch(struct xs_handle *h, unsigned int *num)
{
    if (!h)
        return fail_ptr(EINVAL);
    for (;;) {
        /* With the fileno thread running, it may drain the sources
         * first: the queue's pipe says so. */
        struct pollfd pfd[2] = {{.fd = h->epfd, .events = POLLIN},
                                {.fd = -1, .events = POLLIN}};
        struct event *e;
        int wait;

        cxs_enter();
        if (h->ctx->front || h->ctx->back)
            cxs_ctx_poll(h->ctx);
        cxs_special_poll(h->ctx);
        gdrain(h);
        /* Not connected to noxsd's events: look again for it later. */
        wait = cxs_special_wait(h->ctx);
        e = pop_event(h);
        int dead = h->gdead;
        if (h->fmode)
            pfd[1].fd = h->fpipe[0];
        cxs_leave();
        if (e)
            return event_vector(e, num);
        if (dead)
            return fail_ptr(dead);
        if (poll(pfd, 2, wait) < 0 && errno != EINTR)
            return NULL;
    }
}

/* ---- xs_fileno ---------------------------------------------------------- */

static void *fileno_thread(void *arg)
{
    struct xs_handle *h = arg;
    unsigned int idle = 0;

    for (;;) {
        struct pollfd pfd[2] = {{.fd = h->epfd, .events = POLLIN},
                                {.fd = h->fstop, .events = POLLIN}};
        bool had;
        int wait;

        cxs_enter();
        wait = cxs_special_wait(h->ctx);
        cxs_leave();
        if (poll(pfd, 2, wait) < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        cxs_enter();
        had = h->head != NULL;
        if (h->ctx->front || h->ctx->back)
            cxs_ctx_poll(h->ctx);
        cxs_special_poll(h->ctx);
        gdrain(h);
        /* A source that stays readable and yields nothing (it should
         * not happen) must not make this thread spin. */
        idle = (h->head != NULL && !had) || !(pfd[0].revents & POLLIN)
                   ? 0
                   : idle + 1;
        cxs_leave();
        if (idle > 64) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/*
 * fork() while a fileno thread holds the library lock would leave the
 * child's copy locked for ever (xl forks its monitoring child without
 * exec, after its handle has a thread). Every piece of the thread's work
 * is done under the lock, so holding it across fork() is enough.
 */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&cxs_lock);
}

static void atfork_release(void)
{
    pthread_mutex_unlock(&cxs_lock);
}

volatile int cxs_forked;

static void atfork_child(void)
{
    cxs_forked = 1;
    pthread_mutex_unlock(&cxs_lock);
}

static void atfork_register(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_child);
}

/* A fresh queue pipe (fd[0] read, fd[1] write) and stop eventfd (fd[2]);
 * 0, or -1 with errno and nothing left open. */
static int fileno_fds(int fd[3])
{
    int saved;

    if (pipe2(fd, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    if ((fd[2] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) >= 0)
        return 0;
    saved = errno;
    close(fd[0]);
    close(fd[1]);
    errno = saved;
    return -1;
}

static int fileno_spawn(struct xs_handle *h)
{
    sigset_t all, old;
    int rc;

    /* The application's signals stay with its own threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&h->fthread, NULL, fileno_thread, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        h->fpid = getpid();
    return rc;
}

/*
 * In a child of fork(), each inherited handle is made the child's own:
 * - its epoll set is shared with the parent (one instance behind both
 *   fds), and the local store has reopened its environment in the child
 *   with new event fds (LMDB's rule), so the handle gets a new epoll
 *   instance under the same fd number, filled with its sources as they
 *   are now;
 * - a handle that had a fileno thread has its fd numbers (which the
 *   program may have cached: xl daemonizes its monitoring child after its
 *   handle has them) but no thread, and a pipe shared with the parent: it
 *   gets a pipe of its own under the same numbers, and a thread again.
 */
static void own_epoll(struct xs_handle *h)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int fd = epoll_create1(EPOLL_CLOEXEC);

    if (fd < 0)
        return;
    if (dup3(fd, h->epfd, O_CLOEXEC) < 0) {
        close(fd);
        return;
    }
    close(fd);
    if (h->g && !h->gdead && (ev.data.fd = h->g->ops->event_fd(h->g)) >= 0)
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    if (h->ctx->front && (ev.data.fd = noxs_frontend_fd(h->ctx->front)) >= 0)
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    if (h->ctx->back && (ev.data.fd = noxs_backend_fd(h->ctx->back)) >= 0)
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    if ((ev.data.fd = cxs_special_fd(h->ctx)) >= 0)
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    if (!h->fmode && h->signalled) {
        ev.data.fd = ready_fd;
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ready_fd, &ev);
    }
}

void cxs_after_fork(void)
{
    cxs_forked = 0;
    for (struct xs_handle *h = cxs_handles; h; h = h->anext) {
        int f[3], *own[3] = {&h->fpipe[0], &h->fpipe[1], &h->fstop};
        bool ok = true;

        own_epoll(h);
        if (!h->fmode || h->fpid == getpid() || fileno_fds(f) < 0)
            continue;
        for (int i = 0; i < 3; i++) {
            ok = ok && dup3(f[i], *own[i], O_CLOEXEC) >= 0;
            close(f[i]);
        }
        if (!ok)
            continue;
        h->signalled = false;
        if (h->head || h->gdead)
            signal_handle(h);
        if (fileno_spawn(h) != 0)
            cxs_log("xs_fileno after fork: no thread: watch events wait for "
                    "the next call");
    }
}

int cxs_fileno(struct xs_handle *h)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    int fd;

    pthread_once(&once, atfork_register);
    cxs_enter();
    /* In a child of fork() cxs_enter has given it a pipe of its own. */
    if (h->fmode) {
        fd = h->fpipe[0];
        cxs_leave();
        return fd;
    }
    int f[3];
    if (fileno_fds(f) < 0)
        goto fail;
    h->fpipe[0] = f[0];
    h->fpipe[1] = f[1];
    h->fstop = f[2];
    /* The queue's state moves from epfd to the pipe. */
    if (h->signalled) {
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, ready_fd, NULL);
        h->signalled = false;
    }
    h->fmode = true;
    if (h->head || h->gdead)
        signal_handle(h);
    int rc = fileno_spawn(h);
    if (rc != 0) {
        h->fmode = false;
        h->signalled = false;
        close(h->fpipe[0]);
        close(h->fpipe[1]);
        close(h->fstop);
        if (h->head)
            signal_handle(h);
        errno = rc;
        goto fail;
    }
    fd = h->fpipe[0];
    cxs_leave();
    return fd;
fail:
    fd = errno;
    cxs_leave();
    cxs_log("xs_fileno: %s", strerror(fd));
    errno = fd;
    return -1;
}

void cxs_fileno_stop(struct xs_handle *h)
{
    uint64_t one = 1;

    if (!h->fmode)
        return;
    /* After fork the child has no such thread: only its fds. */
    if (h->fpid == getpid()) {
        if (write(h->fstop, &one, sizeof(one)) == sizeof(one))
            pthread_join(h->fthread, NULL);
    }
    /* Under the lock: cxs_after_fork reads these in another thread. */
    pthread_mutex_lock(&cxs_lock);
    close(h->fpipe[0]);
    close(h->fpipe[1]);
    close(h->fstop);
    h->fmode = false;
    h->signalled = false;
    pthread_mutex_unlock(&cxs_lock);
}
