/*
 * compat-xs: libxenstore.so.4 (every VERS_4.0 symbol of Debian's) on
 * noxs device pages. docs/COMPAT.md has the supported paths, the errnos
 * and what differs from xenstored.
 *
 * A handle belongs to a domain context (view.c) and owns:
 *   - its watches and a queue of pending events; xs_fileno() is an epoll
 *     fd over the context's libnoxs fds plus, while the queue is not
 *     empty, the process's one always-readable eventfd (ready_fd), so it
 *     becomes readable exactly when an event is queued or may be about to
 *     be (a page changed, noxsd asked). One fd per handle: a process
 *     acting as many domains (bench/compat) holds one handle per domain;
 *   - its transactions: operations are staged in the transaction with
 *     the values each read returned; xs_transaction_end re-reads those
 *     nodes and fails with EAGAIN if any changed (optimistic validation,
 *     as xenstored does), then applies the staged operations, one
 *     publish per page half, so each half changes atomically.
 *
 * Every entry point takes cxs_lock; no libnoxs call is made without it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "private.h"
#include "xsringd.h"

#define PROXY_TIMEOUT_MS 5000

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
    struct cxs_hent hent;        /* ctx->watches, hash of path */
    struct wnode *parent;
    struct wnode *child, *sib_next, **sib_pprev;
    struct watch *watches;       /* at exactly this path, newest first */
    size_t refs;                 /* watches here + children */
    size_t len;
    char path[];
};

/* Tokens of one handle's watches, counted (xs_unwatch's question). */
struct tokent {
    struct cxs_hent hent;        /* xs_handle.tokens, hash of token */
    size_t count;
    char token[];
};

struct watch {
    struct watch *next, **pprev;   /* the handle's, newest first */
    struct watch *wnext, **wpprev; /* the node's, newest first */
    struct wnode *node;
    struct tokent *tok;
    struct xs_handle *h;
    uint64_t seq;                  /* higher is newer */
    char *path;   /* absolute */
    char *token;
    size_t strip; /* relative watch: bytes of domain path to strip */
};

struct event {
    struct event *next;
    char *path;
    char *token;
};

#define OP_WRITE 1
#define OP_MKDIR 2
#define OP_RM 3

struct op {
    int kind;
    char *path; /* absolute */
    char *value;
    unsigned int len;
};

struct tx {
    struct tx *next;
    uint32_t id;
    uint32_t gtx; /* the generic store's transaction, 0 until used */
    struct op *ops;
    size_t nops, capops;
    struct cxs_kvlist reads; /* path -> value seen ("\1" + errno if none) */
};

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
    struct cxs_gconn *g;  /* the generic store; NULL in noxs mode */
    int gdead;            /* its errno once it failed, else 0 */
    struct cxs_adds *adds; /* set while a transaction's batch applies */
};

/* Devices a batch created (so a failed commit can remove them again). */
struct cxs_adds {
    struct {
        uint16_t fe;
        uint32_t devid;
    } *v;
    size_t n, cap;
};

/* ---- helpers ---- */

/*
 * Every entry point runs between cxs_enter and cxs_leave (the library
 * lock). A call that succeeds leaves errno 0, as Debian's libxenstore
 * does after a request (callers such as test-xenstore read errno after a
 * call that succeeded); a failure sets it after cxs_leave.
 */
static void cxs_enter(void)
{
    pthread_mutex_lock(&cxs_lock);
}

static void cxs_leave(void)
{
    pthread_mutex_unlock(&cxs_lock);
    errno = 0;
}

static bool fail(int err)
{
    errno = err;
    return false;
}

static void *fail_ptr(int err)
{
    errno = err;
    return NULL;
}

/*
 * Log an unsupported path once per process. A log, not state: the
 * memory is bounded on purpose (the first UNSUPPORTED_SEEN paths, by
 * their first UNSUPPORTED_PREFIX bytes), and a path beyond it is logged
 * again each time.
 */
#define UNSUPPORTED_SEEN 32
#define UNSUPPORTED_PREFIX 95
static void unsupported(const char *what, const char *path)
{
    static char seen[UNSUPPORTED_SEEN][UNSUPPORTED_PREFIX + 1];
    static unsigned int nseen;

    for (unsigned int i = 0; i < nseen; i++)
        if (strncmp(seen[i], path, UNSUPPORTED_PREFIX) == 0)
            return;
    if (nseen < UNSUPPORTED_SEEN)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", path);
    cxs_log("%s %s: not a device, backend or control path (EACCES)", what,
            path);
}

/* Absolute form of path into buf: relative paths are relative to the
 * domain path, as xenstored resolves them. -EINVAL if too long. */
static int absolute(struct xs_handle *h, const char *path, char *buf,
                    size_t len, size_t *strip)
{
    int n;

    if (!path)
        return -EINVAL;
    if (path[0] == '/' || path[0] == '@') {
        n = snprintf(buf, len, "%s", path);
        if (strip)
            *strip = 0;
    } else {
        n = snprintf(buf, len, "/local/domain/%u/%s", h->ctx->domid, path);
        if (strip)
            *strip = (size_t)n - strlen(path);
    }
    return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

static int parse(struct xs_handle *h, const char *path, char *abs,
                 struct cxs_path *p)
{
    int rc = absolute(h, path, abs, CXS_ABS_PATH_MAX + 1, NULL);

    return rc < 0 ? rc : cxs_path_parse(abs, p);
}

/* The local device a device/backend path names, syncing the roles that
 * could know it first. */
static struct cxs_dev *local_dev(struct xs_handle *h, const struct cxs_path *p)
{
    struct cxs_ctx *ctx = h->ctx;
    struct cxs_dev *d = cxs_ctx_find(ctx, p->fe, p->cls, p->id);
    bool backend_path = p->kind >= CXS_BACKEND_ROOT && p->kind <= CXS_BACKEND_KEY;

    if (d && (!backend_path || d->be == p->domid))
        return d;
    if (p->fe == ctx->domid && ctx->domid != 0 && !ctx->front)
        cxs_ctx_frontend(ctx);
    if (ctx->front || ctx->back) {
        cxs_ctx_poll(ctx);
        d = cxs_ctx_find(ctx, p->fe, p->cls, p->id);
        if (d && (!backend_path || d->be == p->domid))
            return d;
    }
    return NULL;
}

/* Ask the backend of a device this process is not an end of. */
static int proxy(struct xs_handle *h, const struct cxs_path *p,
                 const char *cmd, const char *arg, char *reply,
                 size_t reply_len)
{
    noxs_client *c = cxs_ctx_client(h->ctx);
    char value[NOXS_CTRL_VALUE_MAX + 1];
    bool front = p->kind >= CXS_DEVICE_ROOT && p->kind <= CXS_DEVICE_KEY;
    int n;

    if (!c)
        return -ENOENT;
    n = snprintf(value, sizeof(value), "%c%s", front ? 'f' : 'b', arg);
    if (n < 0 || (size_t)n >= sizeof(value))
        return -E2BIG;
    if (noxs_dev_control(c, p->fe, NOXS_DEV_LEGACY, cxs_devid(p->cls, p->id),
                         cmd, value, PROXY_TIMEOUT_MS, reply, reply_len) < 0)
        return -errno;
    return 0;
}

/* ---- events ---- */

/*
 * One eventfd for the whole process, written once and never read, so it
 * is always readable: a handle's epoll set holds it exactly while the
 * handle's event queue is not empty. (An eventfd per handle would cost a
 * second fd per handle.) Created under cxs_lock by the first xs_open.
 */
static int ready_fd = -1;

static int ready_fd_get(void)
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

    if (!h->signalled &&
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ready_fd, &ev) == 0)
        h->signalled = true;
}

static void unsignal_handle(struct xs_handle *h)
{
    if (!h->head && h->signalled &&
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, ready_fd, NULL) == 0)
        h->signalled = false;
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

/* ---- routing (docs/COMPAT.md "Modes") ---- */

#define R_NOXS 0    /* device and control pages only */
#define R_GENERIC 1 /* the generic store only */
#define R_BOTH 2    /* a directory both hold: list, watch and rm both */

#define OPK_READ 0
#define OPK_DIR 1
#define OPK_WRITE 2 /* write, mkdir */
#define OPK_RM 3
#define OPK_WATCH 4

/* Are the device and control paths of domain d on pages? */
static bool noxs_paths(struct xs_handle *h, unsigned int d)
{
    struct cxs_ctx *ctx = h->ctx;

    if (ctx->domid != 0) /* a guest: its own paths, if it is a noxs one */
        return d == ctx->domid && cxs_ctx_frontend(ctx) != NULL;
    return cxs_noxs_domain(ctx, d) == 1;
}

static int route(struct xs_handle *h, const struct cxs_path *p, int op)
{
    if (!h->g)
        return R_NOXS;
    switch (p->kind) {
    case CXS_UNSUPPORTED:
        return R_GENERIC;
    case CXS_SPECIAL:
        /* xenstored sees every domain come and go; the local store sees
         * introductions and releases, noxsd sees deaths. */
        return cxs_mode(h->ctx->domid) == CXS_MODE_LOCAL ? R_BOTH : R_GENERIC;
    case CXS_ROOT:
    case CXS_LOCAL:
    case CXS_LOCAL_DOMAIN:
    case CXS_DOMAIN:
    case CXS_DEVICE_ROOT:
    case CXS_BACKEND_ROOT:
    case CXS_BACKEND_CLASS:
        return op == OPK_READ || op == OPK_WRITE ? R_GENERIC : R_BOTH;
    case CXS_CONTROL:
        if (!noxs_paths(h, p->domid))
            return R_GENERIC;
        return op == OPK_READ || op == OPK_WRITE ? R_GENERIC : R_BOTH;
    case CXS_CONTROL_KEY:
        return noxs_paths(h, p->domid) ? R_NOXS : R_GENERIC;
    default:
        /* Device and backend paths below a class: the frontend's
         * domain decides; libxl's suspend channel node is not a device. */
        if (strcmp(p->cls, "suspend") == 0)
            return R_GENERIC;
        return noxs_paths(h, p->fe) ? R_NOXS : R_GENERIC;
    }
}

/* The generic store's transaction for t, started on first use. */
static int gtx_of(struct xs_handle *h, struct tx *x, uint32_t *gtx)
{
    int rc = 0;

    if (!x) {
        *gtx = 0;
        return 0;
    }
    if (!x->gtx)
        rc = cxs_gtx_start(h->g, &x->gtx);
    *gtx = x->gtx;
    return rc;
}

static struct tx *find_tx(struct xs_handle *h, xs_transaction_t t);

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
        /* The watch it belongs to: registered absolute, reported as the
         * caller wrote it (relative watches strip the domain path). */
        for (struct watch *w = h->watches; w; w = w->next)
            if (strcmp(w->token, token) == 0 &&
                (cxs_is_child(path, w->path) ||
                 cxs_is_child(w->path, path))) {
                queue_for_watch(h, w, path);
                break;
            }
        free(ev);
    }
}

/* One listing of the generic store, added to ns; ENOENT is no names. */
struct names;
static int names_add(struct names *ns, const char *name, size_t len);
static int gdir(struct xs_handle *h, uint32_t gtx, const char *abs,
                struct names *ns, bool *exists)
{
    char *r = NULL;
    uint32_t len = 0;
    int rc = cxs_gpath(h->g, XSW_DIRECTORY, gtx, abs, &r, &len);

    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    *exists = true;
    for (uint32_t i = 0; rc == 0 && i < len;) {
        size_t l = strnlen(r + i, len - i);
        if (l)
            rc = names_add(ns, r + i, l);
        i += (uint32_t)l + 1;
    }
    free(r);
    return rc;
}

/* ---- the watch index ---- */

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

/*
 * @introduceDomain and @releaseDomain fire for every domain noxsd creates
 * and for every domain that ends (domain-destroy by anyone, or released
 * by noxsd after the hypervisor reported it dead), as xenstored fires
 * them for every domain. A context that watches one of them holds a
 * noxsd client subscribed to all domains' events; its fd joins the poll
 * set of its handles, and the watch entry points drain it. This process's
 * own introduce/release fire at once (as xenstored answers its caller
 * after queueing the event); the matching event from noxsd is then
 * skipped, so each fires once.
 */
#define SPECIAL_OWN_MAX 64
#define SPECIAL_RETRY_MS 1000
struct special {
    struct special *next;
    struct cxs_ctx *ctx;
    noxs_client *c;       /* NULL: not connected (retry later) */
    int64_t retry_ms;     /* CLOCK_MONOTONIC ms of the next attempt */
    struct {
        uint16_t domid;
        bool release;
    } own[SPECIAL_OWN_MAX]; /* fired here, still to come from noxsd */
    size_t nown;
};
static struct special *specials;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct special *special_find(struct cxs_ctx *ctx)
{
    for (struct special *sp = specials; sp; sp = sp->next)
        if (sp->ctx == ctx)
            return sp;
    return NULL;
}

static void special_connect(struct special *sp)
{
    noxs_client *c;

    sp->retry_ms = mono_ms() + SPECIAL_RETRY_MS;
    if ((c = noxs_client_open(NULL)) == NULL)
        return;
    if (noxs_watch(c, NOXS_DOMID_ANY) < 0) {
        noxs_client_close(c);
        return;
    }
    sp->c = c;
    cxs_ctx_add_fd(sp->ctx, noxs_client_fd(c));
}

/* A watch on @introduceDomain / @releaseDomain was set on h. */
static void special_watch(struct xs_handle *h)
{
    struct special *sp = special_find(h->ctx);

    if (!sp) {
        if ((sp = calloc(1, sizeof(*sp))) == NULL)
            return;
        sp->ctx = h->ctx;
        sp->next = specials;
        specials = sp;
        special_connect(sp);
        if (!sp->c)
            cxs_log("no noxsd events (%s): @introduceDomain and "
                    "@releaseDomain fire for this process's own calls "
                    "only until it can connect",
                    strerror(errno));
    } else if (sp->c) {
        struct epoll_event ev = {.events = EPOLLIN,
                                 .data.fd = noxs_client_fd(sp->c)};
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    }
}

/* This process introduced or released domid: fire now and, if noxsd
 * sends an event for it (expect), skip that one. */
static void special_own(struct cxs_ctx *ctx, uint16_t domid, bool release,
                        bool expect)
{
    struct special *sp = special_find(ctx);

    cxs_fire(ctx, release ? "@releaseDomain" : "@introduceDomain", false);
    if (!sp || !sp->c || !expect)
        return;
    if (sp->nown == SPECIAL_OWN_MAX) {
        memmove(&sp->own[0], &sp->own[1],
                (SPECIAL_OWN_MAX - 1) * sizeof(sp->own[0]));
        sp->nown--;
    }
    sp->own[sp->nown].domid = domid;
    sp->own[sp->nown].release = release;
    sp->nown++;
}

static bool special_was_own(struct special *sp, uint16_t domid, bool release)
{
    for (size_t i = 0; i < sp->nown; i++) {
        if (sp->own[i].domid == domid && sp->own[i].release == release) {
            memmove(&sp->own[i], &sp->own[i + 1],
                    (sp->nown - i - 1) * sizeof(sp->own[0]));
            sp->nown--;
            return true;
        }
    }
    return false;
}

/* Take noxsd's domain events for ctx and fire the special watches. */
static void special_poll(struct cxs_ctx *ctx)
{
    struct special *sp = special_find(ctx);
    struct noxs_event ev;
    int n = 0;

    if (!sp)
        return;
    if (!sp->c) {
        if (mono_ms() < sp->retry_ms)
            return;
        special_connect(sp);
        if (!sp->c)
            return;
        /* Domains may have come and gone while we were not listening. */
        sp->nown = 0;
        cxs_fire(ctx, "@introduceDomain", false);
        cxs_fire(ctx, "@releaseDomain", false);
    }
    while (n++ < 256) {
        bool release;

        if (noxs_watch_next(sp->c, &ev, 0) < 0) {
            if (errno == ETIMEDOUT)
                return;
            /* noxsd went away: reconnect later (its fd leaves the
             * handles' epoll sets as it is closed). */
            noxs_client_close(sp->c);
            sp->c = NULL;
            sp->retry_ms = mono_ms() + SPECIAL_RETRY_MS;
            return;
        }
        if (ev.kind == NOXS_EVENT_DOMAIN_CREATED)
            release = false;
        else if (ev.kind == NOXS_EVENT_DOMAIN_DESTROYED ||
                 ev.kind == NOXS_EVENT_DOMAIN_RELEASED)
            release = true;
        else
            continue;
        if (!special_was_own(sp, ev.dev.domid, release))
            cxs_fire(ctx, release ? "@releaseDomain" : "@introduceDomain",
                     false);
    }
}

void cxs_watches_free(struct cxs_ctx *ctx)
{
    /* Every handle unlinked its watches, so no node is left. */
    cxs_htab_free(&ctx->watches);
    for (struct special **pp = &specials; *pp; pp = &(*pp)->next) {
        struct special *sp = *pp;
        if (sp->ctx != ctx)
            continue;
        *pp = sp->next;
        if (sp->c)
            noxs_client_close(sp->c);
        free(sp);
        break;
    }
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

    return x->w->seq < y->w->seq ? 1 : x->w->seq > y->w->seq ? -1 : 0;
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
        struct wnode *n = top ? top->child : NULL;

        while (n) {
            match_node(&m, n, NULL);
            if (n->child) {
                n = n->child;
                continue;
            }
            while (n != top && !n->sib_next)
                n = n->parent;
            n = n == top ? NULL : n->sib_next;
        }
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

/* ---- open / close ---- */

static unsigned int own_domid(void)
{
    const char *s = getenv("NOXS_SIM_DOMID");
    char *end;
    unsigned long v;

    if (!s || !*s)
        return 0;
    v = strtoul(s, &end, 10);
    return *end || v > NOXS_DOMID_MAX ? 0 : (unsigned int)v;
}

CXS_EXPORT struct xs_handle *xs_open(unsigned long flags)
{
    struct xs_handle *h = calloc(1, sizeof(*h));
    struct epoll_event ev = {.events = EPOLLIN};
    int saved;

    if (!h)
        return NULL;
    h->readonly = flags & XS_OPEN_READONLY;
    h->next_tx = 1;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd < 0)
        goto err;
    cxs_enter();
    if (ready_fd_get() < 0) {
        saved = errno;
        cxs_leave();
        errno = saved;
        goto err;
    }
    h->ctx = cxs_ctx_get(own_domid());
    if (!h->ctx) {
        cxs_leave();
        errno = ENOMEM;
        goto err;
    }
    h->g = cxs_gopen(h->ctx->domid, h->readonly);
    if (!h->g && errno) {
        saved = errno;
        cxs_ctx_put(h->ctx);
        cxs_leave();
        errno = saved;
        goto err;
    }
    if (h->g) {
        ev.data.fd = h->g->ops->event_fd(h->g);
        if (ev.data.fd >= 0)
            epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    }
    h->ctx_next = h->ctx->handles;
    h->ctx->handles = h;
    if (h->ctx->front) {
        ev.data.fd = noxs_frontend_fd(h->ctx->front);
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    }
    if (h->ctx->back) {
        ev.data.fd = noxs_backend_fd(h->ctx->back);
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    }
    cxs_leave();
    return h;
err:
    saved = errno;
    if (h->epfd >= 0)
        close(h->epfd);
    free(h);
    errno = saved;
    return NULL;
}

static void tx_free(struct tx *t)
{
    for (size_t i = 0; i < t->nops; i++) {
        free(t->ops[i].path);
        free(t->ops[i].value);
    }
    free(t->ops);
    cxs_kvlist_clear(&t->reads);
    free(t);
}

static void handle_free(struct xs_handle *h, bool release_ctx)
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
    while (h->txs) {
        struct tx *t = h->txs;
        h->txs = t->next;
        tx_free(t);
    }
    /* Off the context's list in any case (after fork too: the child's
     * copy of the context must not keep a pointer to freed memory); only
     * the parent's close lets go of the context itself. */
    if (h->ctx) {
        for (struct xs_handle **pp = &h->ctx->handles; *pp;
             pp = &(*pp)->ctx_next)
            if (*pp == h) {
                *pp = h->ctx_next;
                break;
            }
        if (release_ctx)
            cxs_ctx_put(h->ctx);
    }
    /* After fork the child must not close the parent's connection
     * (libxenstore's rule too); it only loses its copy of the fd. */
    if (h->g && release_ctx)
        h->g->ops->close(h->g);
    close(h->epfd);
    free(h);
}

CXS_EXPORT void xs_close(struct xs_handle *h)
{
    if (!h)
        return;
    cxs_enter();
    handle_free(h, true);
    cxs_leave();
}

CXS_EXPORT struct xs_handle *xs_daemon_open(void)
{
    return xs_open(0);
}

CXS_EXPORT struct xs_handle *xs_domain_open(void)
{
    return xs_open(0);
}

CXS_EXPORT struct xs_handle *xs_daemon_open_readonly(void)
{
    return xs_open(XS_OPEN_READONLY);
}

CXS_EXPORT void xs_daemon_close(struct xs_handle *h)
{
    xs_close(h);
}

/* After fork: drop the handle without touching the parent's libnoxs
 * handles (the child must not use them). */
CXS_EXPORT void xs_daemon_destroy_postfork(struct xs_handle *h)
{
    if (!h)
        return;
    cxs_enter();
    handle_free(h, false);
    cxs_leave();
}

CXS_EXPORT int xs_fileno(struct xs_handle *h)
{
    return h ? h->epfd : -1;
}

/* ---- reads ---- */

static int dir_read(struct xs_handle *h, const struct cxs_path *p,
                    char ***names, unsigned int *num);

/* Read a node outside any transaction. */
static int node_read(struct xs_handle *h, const char *abs,
                     const struct cxs_path *p, char **out, unsigned int *len)
{
    char reply[NOXS_CTRL_VALUE_MAX + 1];
    struct cxs_dev *d;
    int rc;

    switch (p->kind) {
    case CXS_DEVICE_KEY:
    case CXS_BACKEND_KEY:
        d = local_dev(h, p);
        if (d)
            return cxs_dev_read(d, p->kind == CXS_DEVICE_KEY ? CXS_HALF_FRONT
                                                             : CXS_HALF_BACK,
                                p->key, out, len);
        rc = proxy(h, p, "xs-read", p->key, reply, sizeof(reply));
        if (rc < 0)
            return rc == -ENODEV || rc == -ECONNREFUSED ? -ENOENT : rc;
        *out = strdup(reply);
        *len = (unsigned int)strlen(reply);
        return *out ? 0 : -ENOMEM;
    case CXS_UNSUPPORTED:
        unsupported("read", abs);
        return -EACCES;
    case CXS_CONTROL:
    case CXS_CONTROL_KEY:
        return cxs_ctl_read(h->ctx, p, out, len);
    case CXS_SPECIAL:
        return -ENOENT;
    default: {
        /* A directory: it exists if it has entries (or is a fixed one). */
        char **names;
        unsigned int n;

        if (p->kind > CXS_DOMAIN) {
            rc = dir_read(h, p, &names, &n);
            if (rc < 0)
                return rc;
            free(names);
            if (n == 0 && p->kind != CXS_DEVICE && p->kind != CXS_BACKEND)
                return -ENOENT;
        }
        *out = strdup("");
        *len = 0;
        return *out ? 0 : -ENOMEM;
    }
    }
}

static struct tx *find_tx(struct xs_handle *h, xs_transaction_t t)
{
    for (struct tx *x = h->txs; x; x = x->next)
        if (x->id == t)
            return x;
    return NULL;
}

/* The transaction's own last word on abs, if any: 1 value, 0 none,
 * -ENOENT removed. */
static int tx_lookup(struct tx *t, const char *abs, char **out,
                     unsigned int *len)
{
    for (size_t i = t->nops; i-- > 0;) {
        struct op *o = &t->ops[i];
        if (o->kind == OP_RM && cxs_is_child(abs, o->path))
            return -ENOENT;
        if (strcmp(o->path, abs) == 0) {
            *out = malloc(o->len + 1);
            if (!*out)
                return -ENOMEM;
            memcpy(*out, o->value ? o->value : "", o->len);
            (*out)[o->len] = '\0';
            *len = o->len;
            return 1;
        }
    }
    return 0;
}

static void tx_record(struct tx *t, const char *abs, int rc, const char *v,
                      unsigned int len)
{
    char buf[16];

    if (cxs_kvlist_find(&t->reads, abs))
        return;
    if (rc < 0) {
        snprintf(buf, sizeof(buf), "\1%d", -rc);
        cxs_kvlist_set(&t->reads, abs, buf, (unsigned int)strlen(buf));
    } else {
        cxs_kvlist_set(&t->reads, abs, v, len);
    }
}

CXS_EXPORT void *xs_read(struct xs_handle *h, xs_transaction_t t,
                         const char *path, unsigned int *len)
{
    char abs[CXS_ABS_PATH_MAX + 1], *out = NULL;
    struct cxs_path p;
    unsigned int l = 0;
    struct tx *x = NULL;
    int rc;

    if (!h)
        return fail_ptr(EINVAL);
    cxs_enter();
    rc = parse(h, path, abs, &p);
    if (rc == 0 && t != XBT_NULL && !(x = find_tx(h, t)))
        rc = -ENOENT; /* xenstored: unknown transaction id */
    if (rc == 0 && route(h, &p, OPK_READ) == R_GENERIC) {
        uint32_t gtx, n = 0;

        rc = gtx_of(h, x, &gtx);
        if (rc == 0)
            rc = cxs_gpath(h->g, XSW_READ, gtx, abs, &out, &n);
        l = n;
        cxs_leave();
        if (rc < 0)
            return fail_ptr(-rc);
        if (len)
            *len = l;
        return out;
    }
    if (rc == 0 && x)
        rc = tx_lookup(x, abs, &out, &l);
    if (rc == 0) {
        rc = node_read(h, abs, &p, &out, &l);
        if (x)
            tx_record(x, abs, rc, out, l);
    } else if (rc == 1) {
        rc = 0;
    }
    cxs_leave();
    if (rc < 0)
        return fail_ptr(-rc);
    if (len)
        *len = l;
    return out;
}

/* ---- directories ---- */

/* A directory listing being built: names in order of first addition,
 * hashed so that adding is O(1) (listing every domain stays O(N)). */
struct name {
    struct cxs_hent hent;
    size_t len;
    char s[];
};
struct names {
    struct name **v;
    size_t n, cap;
    struct cxs_htab idx;
};

static int names_add(struct names *ns, const char *name, size_t len)
{
    uint64_t hash = cxs_hash_bytes(name, len);
    struct name *e;

    for (struct cxs_hent *x = cxs_htab_find(&ns->idx, hash); x;
         x = cxs_htab_next(x, hash)) {
        e = CXS_CONTAINER(x, struct name, hent);
        if (e->len == len && memcmp(e->s, name, len) == 0)
            return 0;
    }
    if (cxs_grow(&ns->v, &ns->cap, ns->n, sizeof(*ns->v)) < 0)
        return -ENOMEM;
    e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -ENOMEM;
    memcpy(e->s, name, len);
    e->s[len] = '\0';
    e->len = len;
    if (cxs_htab_add(&ns->idx, &e->hent, hash) < 0) {
        free(e);
        return -ENOMEM;
    }
    ns->v[ns->n++] = e;
    return 0;
}

static void names_clear(struct names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->v[i]);
    free(ns->v);
    cxs_htab_free(&ns->idx);
}

/* libxenstore's layout: a vector and the strings in one allocation. */
static char **names_vector(struct names *ns, unsigned int *num)
{
    size_t total = (ns->n + 1) * sizeof(char *);
    char **v, *s;

    for (size_t i = 0; i < ns->n; i++)
        total += ns->v[i]->len + 1;
    v = malloc(total);
    if (!v)
        return NULL;
    s = (char *)(v + ns->n + 1);
    for (size_t i = 0; i < ns->n; i++) {
        size_t l = ns->v[i]->len + 1;
        v[i] = s;
        memcpy(s, ns->v[i]->s, l);
        s += l;
    }
    v[ns->n] = NULL;
    *num = (unsigned int)ns->n;
    return v;
}

/* One known device, from the local roles or noxsd's list. */
struct devref {
    uint16_t fe, be;
    uint32_t id;
    char cls[CXS_CLASS_MAX + 1];
};

/* Class of a listed device: well-known codes decode; others are asked
 * of the backend. */
static int listed_class(struct xs_handle *h, const struct noxs_dev_info *di,
                        char *cls)
{
    const char *known = cxs_devid_class(di->devid);
    struct cxs_path p = {.kind = CXS_BACKEND, .fe = di->domid,
                         .domid = di->backend_domid};
    char reply[NOXS_CTRL_VALUE_MAX + 1];
    noxs_client *c;

    if (known) {
        snprintf(cls, CXS_CLASS_MAX + 1, "%s", known);
        return 0;
    }
    c = cxs_ctx_client(h->ctx);
    if (!c || noxs_dev_control(c, di->domid, NOXS_DEV_LEGACY, di->devid,
                               "xs-read", "b" CXS_KEY_CLASS, PROXY_TIMEOUT_MS,
                               reply, sizeof(reply)) < 0)
        return -1;
    (void)p;
    snprintf(cls, CXS_CLASS_MAX + 1, "%.31s", reply);
    return 0;
}

/*
 * Every legacy device relevant to p: this process's own devices, and
 * when it is not the end of that tree, noxsd's list (toolstack view).
 */
static int gather(struct xs_handle *h, const struct cxs_path *p,
                  struct devref **out, size_t *count)
{
    struct cxs_ctx *ctx = h->ctx;
    struct devref *v = NULL;
    size_t n = 0, cap = 0;
    bool backend_tree = p->kind >= CXS_BACKEND_ROOT && p->kind <= CXS_BACKEND_KEY;
    bool local_only;

    if (!backend_tree && p->domid == ctx->domid && ctx->domid != 0)
        cxs_ctx_frontend(ctx);
    if (ctx->front || ctx->back)
        cxs_ctx_poll(ctx);
    local_only = backend_tree ? (ctx->back && p->domid == ctx->domid)
                              : (ctx->front && p->domid == ctx->domid);
    /* Paths naming one frontend domain only need its devices (a backend
     * may serve thousands of domains); the callers filter on fe anyway. */
    int fe = p->kind == CXS_DEVICE_ROOT || p->kind == CXS_DEVICE_CLASS
                 ? p->domid
             : p->kind == CXS_BACKEND_FE ? p->fe
                                          : -1;
    for (struct cxs_dev *d = fe < 0 ? ctx->devs
                                    : cxs_ctx_fe_first(ctx, (uint16_t)fe);
         d; d = fe < 0 ? d->next : cxs_ctx_fe_next(d)) {
        if (d->gone)
            continue;
        if (cxs_grow(&v, &cap, n, sizeof(*v)) < 0)
            return free(v), -ENOMEM;
        v[n].fe = d->fe;
        v[n].be = d->be;
        v[n].id = d->id;
        memcpy(v[n].cls, d->cls, sizeof(v[n].cls));
        n++;
    }
    if (!local_only && cxs_ctx_client(ctx)) {
        struct noxs_dev_info *di = NULL;
        size_t nd = 0;
        uint16_t which = backend_tree || p->kind < CXS_DOMAIN
                             ? NOXS_DOMID_ANY
                             : p->domid;

        if (noxs_dev_list(ctx->client, which, &di, &nd) == 0) {
            for (size_t i = 0; i < nd; i++) {
                if (di[i].type != NOXS_DEV_LEGACY)
                    continue;
                if (cxs_grow(&v, &cap, n, sizeof(*v)) < 0) {
                    free(di);
                    free(v);
                    return -ENOMEM;
                }
                if (listed_class(h, &di[i], v[n].cls) < 0)
                    continue;
                v[n].fe = di[i].domid;
                v[n].be = di[i].backend_domid;
                v[n].id = cxs_devid_id(di[i].devid);
                n++;
            }
            free(di);
        }
    }
    *out = v;
    *count = n;
    return 0;
}

static int dir_read(struct xs_handle *h, const struct cxs_path *p,
                    char ***names, unsigned int *num)
{
    struct names ns = {0};
    struct devref *devs = NULL;
    size_t ndevs = 0;
    char buf[CXS_ABS_PATH_MAX], reply[NOXS_CTRL_VALUE_MAX + 1];
    int rc = 0;

    switch (p->kind) {
    case CXS_ROOT:
        rc = names_add(&ns, "local", 5);
        goto done;
    case CXS_LOCAL:
        rc = names_add(&ns, "domain", 6);
        goto done;
    case CXS_DEVICE:
    case CXS_BACKEND: {
        struct cxs_dev *d = local_dev(h, p);
        if (d) {
            struct cxs_kvlist view = {0};
            size_t dl;

            if (p->kind == CXS_DEVICE)
                cxs_path_device_dir(buf, sizeof(buf), d->fe, d->cls, d->id);
            else
                cxs_path_backend_dir(buf, sizeof(buf), d->be, d->fe, d->cls,
                                     d->id);
            dl = strlen(buf);
            rc = cxs_dev_view(d, &view);
            for (size_t i = 0; rc == 0 && i < view.n; i++)
                if (strncmp(view.e[i].key, buf, dl) == 0 &&
                    view.e[i].key[dl] == '/')
                    rc = names_add(&ns, view.e[i].key + dl + 1,
                                   strlen(view.e[i].key + dl + 1));
            cxs_kvlist_clear(&view);
            goto done;
        }
        rc = proxy(h, p, "xs-dir", "", reply, sizeof(reply));
        if (rc == -ENODEV || rc == -ECONNREFUSED)
            rc = -ENOENT;
        for (char *s = reply, *nl; rc == 0 && (nl = strchr(s, '\n'));
             s = nl + 1)
            rc = names_add(&ns, s, (size_t)(nl - s));
        goto done;
    }
    case CXS_UNSUPPORTED:
        unsupported("directory", "");
        rc = -EACCES;
        goto done;
    case CXS_CONTROL: {
        struct cxs_kvlist l = {0};
        rc = cxs_ctl_list(h->ctx, p, &l);
        for (size_t i = 0; rc == 0 && i < l.n; i++)
            rc = names_add(&ns, l.e[i].key, strlen(l.e[i].key));
        cxs_kvlist_clear(&l);
        goto done;
    }
    case CXS_DEVICE_KEY:
    case CXS_BACKEND_KEY:
    case CXS_CONTROL_KEY:
    case CXS_SPECIAL:
        /* A key exists or not; it never has children. */
        goto done;
    default:
        break;
    }
    rc = gather(h, p, &devs, &ndevs);
    for (size_t i = 0; rc == 0 && i < ndevs; i++) {
        struct devref *d = &devs[i];
        switch (p->kind) {
        case CXS_LOCAL_DOMAIN:
            snprintf(buf, sizeof(buf), "%u", d->fe);
            rc = names_add(&ns, buf, strlen(buf));
            snprintf(buf, sizeof(buf), "%u", d->be);
            if (rc == 0)
                rc = names_add(&ns, buf, strlen(buf));
            break;
        case CXS_DOMAIN:
            if (d->fe == p->domid)
                rc = names_add(&ns, "device", 6);
            if (rc == 0 && d->be == p->domid)
                rc = names_add(&ns, "backend", 7);
            break;
        case CXS_DEVICE_ROOT:
            if (d->fe == p->domid)
                rc = names_add(&ns, d->cls, strlen(d->cls));
            break;
        case CXS_DEVICE_CLASS:
            if (d->fe == p->domid && strcmp(d->cls, p->cls) == 0) {
                snprintf(buf, sizeof(buf), "%u", d->id);
                rc = names_add(&ns, buf, strlen(buf));
            }
            break;
        case CXS_BACKEND_ROOT:
            if (d->be == p->domid)
                rc = names_add(&ns, d->cls, strlen(d->cls));
            break;
        case CXS_BACKEND_CLASS:
            if (d->be == p->domid && strcmp(d->cls, p->cls) == 0) {
                snprintf(buf, sizeof(buf), "%u", d->fe);
                rc = names_add(&ns, buf, strlen(buf));
            }
            break;
        case CXS_BACKEND_FE:
            if (d->be == p->domid && d->fe == p->fe &&
                strcmp(d->cls, p->cls) == 0) {
                snprintf(buf, sizeof(buf), "%u", d->id);
                rc = names_add(&ns, buf, strlen(buf));
            }
            break;
        default:
            break;
        }
    }
    free(devs);
done:
    if (rc == 0) {
        *names = names_vector(&ns, num);
        if (!*names)
            rc = -ENOMEM;
    }
    names_clear(&ns);
    return rc;
}

CXS_EXPORT char **xs_directory(struct xs_handle *h, xs_transaction_t t,
                               const char *path, unsigned int *num)
{
    char abs[CXS_ABS_PATH_MAX + 1], **names = NULL;
    struct cxs_path p;
    struct tx *x = NULL;
    int rc, r;

    if (!h || !num)
        return fail_ptr(EINVAL);
    cxs_enter();
    rc = parse(h, path, abs, &p);
    if (rc == 0 && t != XBT_NULL && !(x = find_tx(h, t)))
        rc = -ENOENT;
    if (rc == 0 && (r = route(h, &p, OPK_DIR)) != R_NOXS) {
        struct names ns = {0};
        bool exists = false;
        uint32_t gtx;

        rc = gtx_of(h, x, &gtx);
        if (rc == 0)
            rc = gdir(h, gtx, abs, &ns, &exists);
        if (rc == 0 && r == R_BOTH) {
            char **more;
            unsigned int n;

            /* Pages add what the generic store does not list. */
            if (dir_read(h, &p, &more, &n) == 0) {
                for (unsigned int i = 0; rc == 0 && i < n; i++)
                    rc = names_add(&ns, more[i], strlen(more[i]));
                exists = exists || n > 0;
                free(more);
            }
        }
        if (rc == 0 && !exists)
            rc = -ENOENT;
        if (rc == 0 && !(names = names_vector(&ns, num)))
            rc = -ENOMEM;
        names_clear(&ns);
        cxs_leave();
        return rc < 0 ? fail_ptr(-rc) : names;
    }
    if (rc == 0 && p.kind == CXS_UNSUPPORTED) {
        unsupported("directory", abs);
        rc = -EACCES;
    }
    if (rc == 0)
        rc = dir_read(h, &p, &names, num);
    /* xenstored: a directory of a node that does not exist is ENOENT. */
    if (rc == 0 && *num == 0 && p.kind != CXS_ROOT && p.kind != CXS_DEVICE_KEY &&
        p.kind != CXS_BACKEND_KEY && p.kind != CXS_DEVICE &&
        p.kind != CXS_BACKEND) {
        free(names);
        names = NULL;
        rc = -ENOENT;
    }
    if (rc == 0 && (p.kind == CXS_DEVICE_KEY || p.kind == CXS_BACKEND_KEY)) {
        char *v;
        unsigned int l;
        int rr = node_read(h, abs, &p, &v, &l);
        if (rr < 0) {
            free(names);
            names = NULL;
            rc = rr;
        } else {
            free(v);
        }
    }
    cxs_leave();
    if (rc < 0)
        return fail_ptr(-rc);
    return names;
}

/* ---- writes ---- */

/* Relay the group's writes, in batch order, to the device's backend;
 * *done: how many went through. */
static int group_relay(struct xs_handle *h, struct cxs_group *g,
                       const struct op *ops, size_t *done)
{
    char reply[NOXS_CTRL_VALUE_MAX + 1];

    *done = 0;
    for (size_t i = 0; i < g->nwrites; i++, (*done)++) {
        const struct op *o = &ops[g->writes[i]];
        struct cxs_path p;
        char arg[NOXS_CTRL_VALUE_MAX + 1];
        int rc;

        if (cxs_path_parse(o->path, &p) < 0)
            continue;
        if (p.kind != CXS_DEVICE_KEY && p.kind != CXS_BACKEND_KEY)
            continue;
        if (o->kind == OP_RM)
            snprintf(arg, sizeof(arg), "%s", p.key);
        else if (snprintf(arg, sizeof(arg), "%s=%.*s", p.key, (int)o->len,
                          o->value) >= (int)sizeof(arg))
            return -E2BIG;
        rc = proxy(h, &p, o->kind == OP_RM ? "xs-rm" : "xs-write", arg, reply,
                   sizeof(reply));
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Apply a device add or relayed writes for a group (toolstack). */
static int group_apply(struct xs_handle *h, struct cxs_group *g,
                       const struct op *ops)
{
    noxs_client *c = cxs_ctx_client(h->ctx);
    uint32_t devid = cxs_devid(g->cls, g->id);
    size_t done;
    int rc;

    if (!c)
        return errno == ENOENT ? -ENOENT : -errno;
    if (g->remove) {
        if (noxs_dev_remove(c, g->fe, NOXS_DEV_LEGACY, devid) < 0 &&
            errno != ENOENT)
            return -errno;
        cxs_fire(h->ctx, "", false); /* nothing: remote removal */
        return 0;
    }
    if (g->be >= 0 && g->params.n <= CXS_ADD_NODES_MAX) {
        struct noxs_kv all[CXS_ADD_PARAMS_MAX];
        size_t n = cxs_group_add_params(g, all);

        if (noxs_dev_add(c, g->fe, NOXS_DEV_LEGACY, devid, (uint16_t)g->be,
                         all, n) == 0) {
            struct cxs_adds *a = h->adds;
            if (a && cxs_grow(&a->v, &a->cap, a->n, sizeof(*a->v)) == 0) {
                a->v[a->n].fe = g->fe;
                a->v[a->n++].devid = devid;
            }
            return 0;
        }
        if (errno != EEXIST)
            return -errno;
    }
    /*
     * The device exists (or, with more nodes than one add carries, may):
     * relay each write to its backend. A device that does not exist
     * fails the first relay, before anything changed; with too many
     * nodes to create it, that is the batch's error.
     */
    rc = group_relay(h, g, ops, &done);
    if (rc == -ENOENT && done == 0 && g->be >= 0 &&
        g->params.n > CXS_ADD_NODES_MAX)
        rc = -E2BIG;
    return rc;
}

/*
 * Apply a batch of operations (one transaction, or one call): every path
 * is checked before anything changes; local halves are staged and
 * published once each; other devices go through noxsd.
 */
static int apply_ops(struct xs_handle *h, struct op *ops, size_t nops)
{
    struct cxs_groups gs = {0};
    struct cxs_dev *touched = NULL, *next;
    int rc = 0;

    if (h->readonly && nops)
        return -EACCES;
    for (size_t i = 0; i < nops && rc == 0; i++) {
        struct op *o = &ops[i];
        struct cxs_path p;
        struct cxs_dev *d;
        struct cxs_group *g;
        int half;

        rc = cxs_path_parse(o->path, &p);
        if (rc < 0)
            break;
        switch (p.kind) {
        case CXS_DEVICE_KEY:
        case CXS_BACKEND_KEY:
            if (o->kind != OP_RM && o->len > NOXS_CTRL_VALUE_MAX) {
                rc = -E2BIG;
                break;
            }
            half = p.kind == CXS_DEVICE_KEY ? CXS_HALF_FRONT : CXS_HALF_BACK;
            d = local_dev(h, &p);
            if (d) {
                if (o->kind == OP_RM)
                    rc = cxs_dev_remove_key(d, half, p.key);
                else if (o->kind == OP_WRITE)
                    rc = cxs_dev_write(d, half, p.key, o->value, o->len);
                if (rc == -ENOENT && o->kind == OP_RM)
                    rc = 0;
                /* Staged (or not): published once, below, either way. */
                if (!d->touched) {
                    d->touched = true;
                    d->touched_next = touched;
                    touched = d;
                }
                break;
            }
            g = cxs_group_for(&gs, &p);
            if (!g || cxs_group_write(g, i) < 0) {
                rc = -ENOMEM;
                break;
            }
            if (p.kind == CXS_BACKEND_KEY)
                g->be = p.domid;
            if (o->kind == OP_WRITE) {
                char v[NOXS_CTRL_VALUE_MAX + 1];
                /* Synthesised nodes are not stored; backend-id names the
                 * backend when only the frontend tree is written. */
                if (half == CXS_HALF_FRONT && strcmp(p.key, "backend-id") == 0) {
                    if (g->be < 0 && o->len < 6) {
                        memcpy(v, o->value, o->len);
                        v[o->len] = '\0';
                        g->be = atoi(v);
                    }
                    break;
                }
                if ((half == CXS_HALF_FRONT && strcmp(p.key, "backend") == 0) ||
                    (half == CXS_HALF_BACK && (strcmp(p.key, "frontend") == 0 ||
                                              strcmp(p.key, "frontend-id") == 0)))
                    break;
                if (memchr(o->value, '\0', o->len)) {
                    rc = -EINVAL;
                    break;
                }
                memcpy(v, o->value, o->len);
                v[o->len] = '\0';
                rc = cxs_group_param(g, p.key, v, half == CXS_HALF_FRONT);
            }
            break;
        case CXS_DEVICE:
        case CXS_BACKEND:
            if (o->kind == OP_RM) {
                d = local_dev(h, &p);
                if (d) {
                    rc = -EACCES; /* only the toolstack removes devices */
                    break;
                }
                g = cxs_group_for(&gs, &p);
                if (g)
                    g->remove = true;
                else
                    rc = -ENOMEM;
            } else if (p.kind == CXS_BACKEND) {
                g = cxs_group_for(&gs, &p);
                if (g)
                    g->be = p.domid;
                else
                    rc = -ENOMEM;
            }
            break;
        case CXS_DEVICE_CLASS:
        case CXS_BACKEND_FE:
        case CXS_BACKEND_CLASS:
        case CXS_DEVICE_ROOT:
        case CXS_BACKEND_ROOT:
        case CXS_DOMAIN:
            if (o->kind == OP_RM) {
                /* Remove every device below. */
                struct devref *devs;
                size_t n;
                rc = gather(h, &p, &devs, &n);
                for (size_t j = 0; rc == 0 && j < n; j++) {
                    char dir[CXS_ABS_PATH_MAX];
                    struct cxs_path q = {.kind = CXS_DEVICE, .fe = devs[j].fe,
                                         .domid = devs[j].fe, .id = devs[j].id};
                    memcpy(q.cls, devs[j].cls, sizeof(q.cls));
                    cxs_path_device_dir(dir, sizeof(dir), q.fe, q.cls, q.id);
                    bool under = cxs_is_child(dir, o->path);
                    cxs_path_backend_dir(dir, sizeof(dir), devs[j].be, q.fe,
                                         q.cls, q.id);
                    if (!under && !cxs_is_child(dir, o->path))
                        continue;
                    g = cxs_group_for(&gs, &q);
                    if (g)
                        g->remove = true;
                }
                if (rc == 0)
                    free(devs);
            }
            /* mkdir / write "" of a directory: nothing to store. */
            break;
        case CXS_ROOT:
        case CXS_LOCAL:
        case CXS_LOCAL_DOMAIN:
            if (o->kind == OP_RM)
                rc = -EACCES;
            break;
        case CXS_CONTROL:
        case CXS_CONTROL_KEY:
            rc = cxs_ctl_write(h->ctx, &p,
                               o->kind == OP_RM ? CXS_CTL_RM
                               : o->kind == OP_MKDIR ? CXS_CTL_MKDIR
                                                     : CXS_CTL_WRITE,
                               o->value, o->len);
            break;
        case CXS_SPECIAL:
        case CXS_UNSUPPORTED:
            unsupported(o->kind == OP_RM ? "rm" : "write", o->path);
            rc = -EACCES;
            break;
        }
    }
    for (size_t i = 0; i < gs.n && rc == 0; i++)
        rc = group_apply(h, &gs.v[i], ops);
    cxs_groups_free(&gs);
    for (struct cxs_dev *d = touched; d; d = next) {
        int r = cxs_dev_publish(d);
        if (rc == 0 && r < 0)
            rc = r;
        next = d->touched_next;
        d->touched = false;
        d->touched_next = NULL;
    }
    if (touched)
        cxs_ctx_flush(h->ctx);
    return rc;
}

static int stage(struct xs_handle *h, xs_transaction_t t, int kind,
                 const char *path, const void *data, unsigned int len)
{
    char abs[CXS_ABS_PATH_MAX + 1];
    struct cxs_path p;
    struct op o = {.kind = kind, .len = len};
    struct tx *x;
    int r, rc = parse(h, path, abs, &p);

    if (rc < 0)
        return rc;
    if (len > CXS_PAYLOAD_MAX)
        return -E2BIG;
    if (h->readonly)
        return -EACCES;
    x = t == XBT_NULL ? NULL : find_tx(h, t);
    if (t != XBT_NULL && !x)
        return -ENOENT;
    r = route(h, &p, kind == OP_RM ? OPK_RM : OPK_WRITE);
    if (r != R_NOXS) {
        /* Straight to the generic store (inside its own transaction, if
         * any: it keeps xenstored's semantics for these paths). */
        uint32_t gtx;

        rc = gtx_of(h, x, &gtx);
        if (rc == 0 && kind == OP_WRITE)
            rc = cxs_gwrite(h->g, gtx, abs, data, len);
        else if (rc == 0)
            rc = cxs_gpath(h->g, kind == OP_MKDIR ? XSW_MKDIR : XSW_RM, gtx,
                           abs, NULL, NULL);
        if (r == R_GENERIC || (rc < 0 && rc != -ENOENT))
            return rc;
        /* R_BOTH (a removal): the pages' devices below go too. */
    }
    o.path = abs;
    o.value = (char *)data;
    if (!x)
        return apply_ops(h, &o, 1);
    if (p.kind == CXS_UNSUPPORTED) {
        unsupported("write", abs);
        return -EACCES;
    }
    if (cxs_grow(&x->ops, &x->capops, x->nops, sizeof(*x->ops)) < 0)
        return -ENOMEM;
    o.path = strdup(abs);
    o.value = malloc(len + 1);
    if (!o.path || !o.value) {
        free(o.path);
        free(o.value);
        return -ENOMEM;
    }
    if (len)
        memcpy(o.value, data, len);
    o.value[len] = '\0';
    x->ops[x->nops++] = o;
    return 0;
}

/* The public write calls: stage one operation under the library lock. */
static bool stage_locked(struct xs_handle *h, xs_transaction_t t, int kind,
                         const char *path, const void *data, unsigned int len)
{
    int rc;

    if (!h)
        return fail(EINVAL);
    cxs_enter();
    rc = stage(h, t, kind, path, data, len);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT bool xs_write(struct xs_handle *h, xs_transaction_t t,
                         const char *path, const void *data, unsigned int len)
{
    return stage_locked(h, t, OP_WRITE, path, data ? data : "",
                        data ? len : 0);
}

CXS_EXPORT bool xs_mkdir(struct xs_handle *h, xs_transaction_t t,
                         const char *path)
{
    return stage_locked(h, t, OP_MKDIR, path, "", 0);
}

/* xenstored: removing a missing node whose parent exists succeeds. */
CXS_EXPORT bool xs_rm(struct xs_handle *h, xs_transaction_t t,
                      const char *path)
{
    return stage_locked(h, t, OP_RM, path, "", 0);
}

/* ---- transactions ---- */

CXS_EXPORT xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
    struct tx *t;

    if (!h) {
        errno = EINVAL;
        return XBT_NULL;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        errno = ENOMEM;
        return XBT_NULL;
    }
    cxs_enter();
    t->id = h->next_tx++;
    if (h->next_tx == XBT_NULL)
        h->next_tx = 1;
    t->next = h->txs;
    h->txs = t;
    cxs_leave();
    return t->id;
}

/* Re-read everything the transaction read: -EAGAIN if any changed. */
static int tx_validate(struct xs_handle *h, struct tx *t)
{
    for (size_t i = 0; i < t->reads.n; i++) {
        struct cxs_kv *r = &t->reads.e[i];
        struct cxs_path p;
        char *v = NULL, buf[16];
        unsigned int l = 0;
        int rc;

        if (cxs_path_parse(r->key, &p) < 0)
            continue;
        rc = node_read(h, r->key, &p, &v, &l);
        if (rc < 0) {
            snprintf(buf, sizeof(buf), "\1%d", -rc);
            rc = strcmp(buf, r->value) == 0 ? 0 : -EAGAIN;
        } else {
            rc = l == r->len && memcmp(v, r->value, l) == 0 ? 0 : -EAGAIN;
        }
        free(v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

CXS_EXPORT bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t,
                                   bool abort)
{
    struct tx **pp, *x = NULL;
    int rc = 0;

    if (!h)
        return fail(EINVAL);
    cxs_enter();
    for (pp = &h->txs; *pp; pp = &(*pp)->next)
        if ((*pp)->id == t) {
            x = *pp;
            *pp = x->next;
            break;
        }
    if (!x) {
        cxs_leave();
        return fail(ENOENT);
    }
    if (!abort) {
        struct cxs_adds adds = {0};

        /* Take in what others changed meanwhile before validating. */
        if (h->ctx->front || h->ctx->back)
            cxs_ctx_poll(h->ctx);
        rc = tx_validate(h, x);
        h->adds = &adds;
        if (rc == 0)
            rc = apply_ops(h, x->ops, x->nops);
        h->adds = NULL;
        /*
         * A transaction on both stores: the pages' part is applied
         * first (it can fail on a missing backend, a full page), then
         * the generic store commits. If that fails (EAGAIN: the caller
         * retries), the devices this batch created are removed again,
         * so neither store keeps half a device (docs/COMPAT.md).
         */
        if (x->gtx) {
            int grc = cxs_gtx_end(h->g, x->gtx, rc == 0);
            if (rc == 0 && grc < 0) {
                noxs_client *c = cxs_ctx_client(h->ctx);
                for (size_t i = 0; c && i < adds.n; i++)
                    noxs_dev_remove(c, adds.v[i].fe, NOXS_DEV_LEGACY,
                                    adds.v[i].devid);
                rc = grc;
            }
        }
        free(adds.v);
    } else if (x->gtx) {
        cxs_gtx_end(h->g, x->gtx, false);
    }
    tx_free(x);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
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
    rc = absolute(h, path, abs, sizeof(abs), &strip);
    if (rc == 0)
        rc = cxs_path_parse(abs, &p);
    if (rc < 0) {
        cxs_leave();
        return fail(-rc);
    }
    r = route(h, &p, OPK_WATCH);
    if (r != R_NOXS) {
        /* Registered absolute: events are mapped back to the caller's
         * form through the watch below (gdrain). */
        rc = cxs_gwatch(h->g, true, abs, token);
        if (rc < 0) {
            cxs_leave();
            return fail(-rc);
        }
    } else if (p.kind == CXS_UNSUPPORTED) {
        unsupported("watch", abs); /* allowed: it just never fires */
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
        special_watch(h);
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
    if (absolute(h, path, abs, sizeof(abs), NULL) < 0) {
        cxs_leave();
        return fail(EINVAL);
    }
    if (h->g) {
        struct cxs_path p;
        if (cxs_path_parse(abs, &p) == 0 &&
            route(h, &p, OPK_WATCH) != R_NOXS)
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
    special_poll(h->ctx);
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
        struct pollfd pfd = {.fd = h->epfd, .events = POLLIN};
        struct event *e;
        int wait;

        cxs_enter();
        if (h->ctx->front || h->ctx->back)
            cxs_ctx_poll(h->ctx);
        special_poll(h->ctx);
        gdrain(h);
        /* Not connected to noxsd's events: look again for it later. */
        wait = special_find(h->ctx) && !special_find(h->ctx)->c
                   ? SPECIAL_RETRY_MS
                   : -1;
        e = pop_event(h);
        int dead = h->gdead;
        cxs_leave();
        if (e)
            return event_vector(e, num);
        if (dead)
            return fail_ptr(dead);
        if (poll(&pfd, 1, wait) < 0 && errno != EINTR)
            return NULL;
    }
}

/* ---- permissions ---- */

CXS_EXPORT struct xs_permissions *xs_get_permissions(struct xs_handle *h,
                                                     xs_transaction_t t,
                                                     const char *path,
                                                     unsigned int *num)
{
    char abs[CXS_ABS_PATH_MAX + 1], *v = NULL;
    struct xs_permissions *perms;
    struct cxs_path p;
    struct tx *x = NULL;
    unsigned int l;
    int rc;

    if (!h || !num)
        return fail_ptr(EINVAL);
    cxs_enter();
    rc = parse(h, path, abs, &p);
    if (rc == 0 && t != XBT_NULL && !(x = find_tx(h, t)))
        rc = -ENOENT;
    if (rc == 0 && route(h, &p, OPK_READ) == R_GENERIC) {
        uint32_t gtx, n = 0;
        char **strs = NULL;

        rc = gtx_of(h, x, &gtx);
        if (rc == 0)
            rc = cxs_gpath(h->g, XSW_GET_PERMS, gtx, abs, &v, &n);
        if (rc == 0 && !(strs = cxs_gsplit(v, n, &l)))
            rc = -ENOMEM;
        cxs_leave();
        free(v);
        if (rc < 0)
            return fail_ptr(-rc);
        perms = calloc(l ? l : 1, sizeof(*perms));
        for (unsigned int i = 0; perms && i < l; i++)
            if (!xs_strings_to_perms(&perms[i], 1, strs[i])) {
                free(perms);
                perms = NULL;
                errno = EIO;
            }
        free(strs);
        if (perms)
            *num = l;
        return perms;
    }
    if (rc == 0)
        rc = node_read(h, abs, &p, &v, &l);
    cxs_leave();
    free(v);
    if (rc < 0)
        return fail_ptr(-rc);
    perms = calloc(2, sizeof(*perms));
    if (!perms)
        return NULL;
    /* What libxl sets: the owner has everything, the peer may read. */
    if (p.kind >= CXS_DEVICE && p.kind <= CXS_DEVICE_KEY) {
        perms[0].id = p.fe;
        perms[0].perms = XS_PERM_NONE;
        perms[1].perms = XS_PERM_READ;
        perms[1].id = 0;
        *num = 2;
    } else if (p.kind >= CXS_BACKEND && p.kind <= CXS_BACKEND_KEY) {
        perms[0].id = p.domid;
        perms[0].perms = XS_PERM_NONE;
        perms[1].id = p.fe;
        perms[1].perms = XS_PERM_READ;
        *num = 2;
    } else {
        perms[0].id = 0;
        perms[0].perms = XS_PERM_NONE;
        *num = 1;
    }
    return perms;
}

/* Access follows the grants (each side writes only its own half), so
 * permissions on supported paths are accepted and not stored. */
CXS_EXPORT bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t,
                                   const char *path,
                                   struct xs_permissions *perms,
                                   unsigned int num_perms)
{
    char abs[CXS_ABS_PATH_MAX + 1];
    struct cxs_path p;
    struct tx *x = NULL;
    int rc;

    if (!h || (!perms && num_perms))
        return fail(EINVAL);
    cxs_enter();
    rc = parse(h, path, abs, &p);
    if (rc == 0 && t != XBT_NULL && !(x = find_tx(h, t)))
        rc = -ENOENT;
    if (rc == 0 && h->readonly)
        rc = -EACCES;
    if (rc == 0 && route(h, &p, OPK_WRITE) == R_GENERIC) {
        struct cxs_buf b = {.len = 0};
        uint32_t gtx;

        rc = cxs_buf_str(&b, abs);
        for (unsigned int i = 0; rc == 0 && i < num_perms; i++) {
            static const char letter[4] = {'n', 'r', 'w', 'b'};
            char one[16];

            snprintf(one, sizeof(one), "%c%u", letter[perms[i].perms & 3],
                     perms[i].id);
            rc = cxs_buf_str(&b, one);
        }
        if (rc == 0)
            rc = gtx_of(h, x, &gtx);
        if (rc == 0)
            rc = cxs_gcall(h->g, XSW_SET_PERMS, gtx, &b, NULL, NULL);
        cxs_leave();
        return rc < 0 ? fail(-rc) : true;
    }
    if (rc == 0 && (p.kind == CXS_UNSUPPORTED || p.kind == CXS_SPECIAL)) {
        unsupported("set-permissions", abs);
        rc = -EACCES;
    }
    if (rc == 0 && h->readonly)
        rc = -EACCES;
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT bool xs_restrict(struct xs_handle *h, unsigned domid)
{
    return fail(ENOSYS);
}

/* ---- domains (toolstack) ---- */

/* "noxs" as a word of the guest's command line (libxl writes it to
 * /vm/<uuid>/image/cmdline before it introduces the domain). */
static bool marked_noxs(struct xs_handle *h, unsigned int domid)
{
    char path[64], *vm = NULL, *cmd = NULL, *full = NULL;
    bool marked = false;

    snprintf(path, sizeof(path), "/local/domain/%u/vm", domid);
    if (cxs_gpath(h->g, XSW_READ, 0, path, &vm, NULL) == 0 &&
        asprintf(&full, "%s/image/cmdline", vm) > 0 &&
        cxs_gpath(h->g, XSW_READ, 0, full, &cmd, NULL) == 0) {
        for (char *w = cmd; *w;) {
            size_t n;

            w += strspn(w, " \t");
            n = strcspn(w, " \t");
            if (n == 4 && memcmp(w, "noxs", 4) == 0)
                marked = true;
            w += n;
        }
    }
    free(vm);
    free(full);
    free(cmd);
    return marked;
}

/* Create domid's device page (EEXIST is fine) and remember it. */
static int noxs_introduce(struct xs_handle *h, unsigned int domid,
                          struct noxs_boot *boot, bool *existed)
{
    noxs_client *c = cxs_ctx_client(h->ctx);

    *existed = false;
    if (!c)
        return -errno;
    if (noxs_domain_create(c, (uint16_t)domid, boot) < 0) {
        if (errno != EEXIST)
            return -errno;
        *existed = true;
    }
    /* Frontends of this domain in this process need no lookup. */
    cxs_boot_remember(domid, boot);
    return 0;
}

/* A domain request: the domid and up to two more arguments. */
static int gdomain_call(struct xs_handle *h, uint32_t type,
                        unsigned int domid, const char *a1, const char *a2,
                        char **reply)
{
    struct cxs_buf b = {.len = 0};
    char num[16];

    snprintf(num, sizeof(num), "%u", domid);
    cxs_buf_str(&b, num);
    if (a1)
        cxs_buf_str(&b, a1);
    if (a2)
        cxs_buf_str(&b, a2);
    return cxs_gcall(h->g, type, 0, &b, reply, NULL);
}

/*
 * Mixed host: xenstored introduces every domain; a guest marked "noxs"
 * also gets its device page, its bootstrap in /local/domain/<d>/noxs
 * (read by the guest before it looks at any device) and a sysctl device
 * for control/shutdown. Local store: a domain that has a store ring is
 * introduced to the local store with its ring (frame and port), where
 * the ring service (noxs-xsringd) finds it and answers the ring, and is
 * otherwise treated as on a mixed host; with no ring service running it
 * is refused rather than left waiting at boot. A domain without a ring
 * is a noxs domain.
 */
CXS_EXPORT bool xs_introduce_domain(struct xs_handle *h, unsigned int domid,
                                    unsigned long mfn, unsigned int eventchn)
{
    struct noxs_boot boot;
    bool existed = false;
    bool ring_local = false;
    int rc = 0;

    if (!h || domid > NOXS_DOMID_MAX)
        return fail(EINVAL);
    cxs_enter();
    if (h->g && cxs_mode(h->ctx->domid) != CXS_MODE_MIXED && mfn) {
        ring_local = true;
        if (cxs_ringd_running(NULL) != 1) {
            cxs_log("domain %u has a XenStore ring, and no xenstored and no "
                    "ring service (noxs-xsringd) run on this host (local "
                    "mode): its kernel would wait at boot for an answer for "
                    "ever. Start noxs-xsringd, or xenstored (mixed mode), "
                    "to run it.",
                    domid);
            rc = -ENOSYS;
        }
    }
    if (rc) {
        /* refused above */
    } else if (h->g && (ring_local ||
                        cxs_mode(h->ctx->domid) == CXS_MODE_MIXED)) {
        char a1[24], a2[16];

        snprintf(a1, sizeof(a1), "%lu", mfn);
        snprintf(a2, sizeof(a2), "%u", eventchn);
        rc = gdomain_call(h, XSW_INTRODUCE, domid, a1, a2, NULL);
        if (rc == 0 && marked_noxs(h, domid)) {
            char word[NOXS_BOOT_MAXLEN + 1], path[64];
            noxs_client *c;

            rc = noxs_introduce(h, domid, &boot, &existed);
            if (rc == 0 && noxs_boot_format(&boot, word, sizeof(word)) < 0)
                rc = -errno;
            snprintf(path, sizeof(path), "/local/domain/%u/noxs", domid);
            if (rc == 0)
                rc = cxs_gwrite(h->g, 0, path, word, (unsigned int)strlen(word));
            if (rc < 0)
                cxs_log("domain %u: cannot give it a device page: %s", domid,
                        strerror(-rc));
            c = cxs_ctx_client(h->ctx);
            if (rc == 0 && c &&
                noxs_dev_add(c, (uint16_t)domid, NOXS_DEV_SYSCTL, 0, 0, NULL,
                             0) < 0 &&
                errno != EEXIST)
                cxs_log("domain %u: no sysctl device (%s): control/shutdown "
                        "will not reach it",
                        domid, strerror(errno));
        }
    } else if (h->g) {
        char a2[16];

        snprintf(a2, sizeof(a2), "%u", eventchn);
        rc = noxs_introduce(h, domid, &boot, &existed);
        if (rc == 0)
            rc = gdomain_call(h, XSW_INTRODUCE, domid, "0", a2, NULL);
    } else {
        rc = noxs_introduce(h, domid, &boot, &existed);
        if (rc == 0)
            special_own(h->ctx, (uint16_t)domid, false, !existed);
    }
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT bool xs_release_domain(struct xs_handle *h, unsigned int domid)
{
    noxs_client *c;
    int rc = 0;

    if (!h || domid > NOXS_DOMID_MAX)
        return fail(EINVAL);
    cxs_enter();
    if (h->g) {
        rc = gdomain_call(h, XSW_RELEASE, domid, NULL, NULL, NULL);
        if (cxs_noxs_domain(h->ctx, domid) == 1 &&
            (c = cxs_ctx_client(h->ctx)) != NULL &&
            noxs_domain_destroy(c, (uint16_t)domid) < 0 && errno != ENOENT &&
            rc == 0)
            rc = -errno;
        cxs_boot_forget(domid);
        cxs_leave();
        return rc < 0 ? fail(-rc) : true;
    }
    c = cxs_ctx_client(h->ctx);
    if (!c)
        rc = -errno;
    else if (noxs_domain_destroy(c, (uint16_t)domid) < 0)
        rc = -errno;
    cxs_boot_forget(domid);
    if (rc == 0)
        special_own(h->ctx, (uint16_t)domid, true, true);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT bool xs_is_domain_introduced(struct xs_handle *h,
                                        unsigned int domid)
{
    struct noxs_domain_info *doms = NULL;
    size_t n = 0;
    noxs_client *c;
    bool found = false;

    if (!h)
        return fail(EINVAL);
    cxs_enter();
    if (h->g) {
        char *r = NULL;
        int rc = gdomain_call(h, XSW_IS_DOMAIN_INTRODUCED, domid, NULL, NULL,
                              &r);

        cxs_leave();
        found = rc == 0 && r && strcmp(r, "T") == 0;
        free(r);
        if (rc < 0)
            errno = -rc;
        else if (!found)
            errno = ENOENT;
        return found;
    }
    c = cxs_ctx_client(h->ctx);
    if (c && noxs_domain_list(c, &doms, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (doms[i].domid == domid)
                found = true;
    cxs_leave();
    free(doms);
    if (!found)
        errno = ENOENT;
    return found;
}

CXS_EXPORT bool xs_resume_domain(struct xs_handle *h, unsigned int domid)
{
    int rc;

    if (!h || !h->g)
        return xs_is_domain_introduced(h, domid);
    cxs_enter();
    rc = gdomain_call(h, XSW_RESUME, domid, NULL, NULL, NULL);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT bool xs_set_target(struct xs_handle *h, unsigned int domid,
                              unsigned int target)
{
    char a1[16];
    int rc;

    if (!h || !h->g)
        return fail(ENOSYS);
    snprintf(a1, sizeof(a1), "%u", target);
    cxs_enter();
    rc = gdomain_call(h, XSW_SET_TARGET, domid, a1, NULL, NULL);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT char *xs_get_domain_path(struct xs_handle *h, unsigned int domid)
{
    char *p;

    if (asprintf(&p, "/local/domain/%u", domid) < 0)
        return NULL;
    return p;
}

/* XS_CONTROL (XS_DEBUG): only xenstored has commands. */
CXS_EXPORT char *xs_control_command(struct xs_handle *h, const char *cmd,
                                    void *data, unsigned int len)
{
    struct cxs_buf b = {.len = 0};
    char *r = NULL;
    int rc;

    if (!h || !cmd)
        return fail_ptr(EINVAL);
    if (!h->g || cxs_mode(h->ctx->domid) != CXS_MODE_MIXED)
        return fail_ptr(ENOSYS);
    rc = cxs_buf_str(&b, cmd);
    if (rc == 0 && len)
        rc = cxs_buf_add(&b, data, len);
    cxs_enter();
    if (rc == 0)
        rc = cxs_gcall(h->g, XSW_CONTROL, 0, &b, &r, NULL);
    cxs_leave();
    return rc < 0 ? fail_ptr(-rc) : r;
}

CXS_EXPORT char *xs_debug_command(struct xs_handle *h, const char *cmd,
                                  void *data, unsigned int len)
{
    return xs_control_command(h, cmd, data, len);
}

/* As libxenstore: the port libxl reads from the guest's
 * device/suspend/event-channel, through a handle of its own. */
CXS_EXPORT int xs_suspend_evtchn_port(int domid)
{
    char path[64], *v, *end;
    struct xs_handle *h;
    unsigned int len;
    long port = -1;

    if (domid < 0 || (h = xs_open(0)) == NULL)
        return -1;
    snprintf(path, sizeof(path), "/local/domain/%d/device/suspend/event-channel",
             domid);
    v = xs_read(h, XBT_NULL, path, &len);
    if (v) {
        port = strtol(v, &end, 10);
        if (end == v || *end || port < 0 || port > INT32_MAX)
            port = -1;
        free(v);
    }
    xs_close(h);
    return (int)port;
}

/* ---- xenstore_lib.h ---- */

CXS_EXPORT bool xs_path_is_subpath(const char *parent, const char *child)
{
    size_t n = strlen(parent);

    if (strncmp(child, parent, n) != 0)
        return false;
    return child[n] == '\0' || child[n] == '/' || (n && parent[n - 1] == '/');
}

CXS_EXPORT const char *xs_daemon_rundir(void)
{
    const char *s = getenv("XENSTORED_RUNDIR");
    return s ? s : "/var/run/xenstored";
}

CXS_EXPORT const char *xs_daemon_socket(void)
{
    static char buf[256];
    const char *s = getenv("XENSTORED_PATH");

    if (s)
        return s;
    snprintf(buf, sizeof(buf), "%s/socket", xs_daemon_rundir());
    return buf;
}

CXS_EXPORT const char *xs_daemon_socket_ro(void)
{
    static char buf[256];
    const char *s = getenv("XENSTORED_PATH");

    if (s)
        return s;
    snprintf(buf, sizeof(buf), "%s/socket_ro", xs_daemon_rundir());
    return buf;
}

CXS_EXPORT bool xs_write_all(int fd, const void *data, unsigned int len)
{
    const char *p = data;

    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (n == 0)
            return fail(EIO);
        p += n;
        len -= (unsigned int)n;
    }
    return true;
}

/* "r0\0w1\0" ...: a letter (n, r, w, b) and a domid per string. */
CXS_EXPORT bool xs_strings_to_perms(struct xs_permissions *perms,
                                    unsigned int num, const char *strings)
{
    const char *p = strings;

    for (unsigned int i = 0; i < num; i++) {
        char *end;
        unsigned long id;

        switch (*p) {
        case 'n': perms[i].perms = XS_PERM_NONE; break;
        case 'r': perms[i].perms = XS_PERM_READ; break;
        case 'w': perms[i].perms = XS_PERM_WRITE; break;
        case 'b': perms[i].perms = XS_PERM_READ | XS_PERM_WRITE; break;
        default: return fail(EINVAL);
        }
        errno = 0;
        id = strtoul(p + 1, &end, 0);
        if (errno || end == p + 1 || *end || id > 0xffffffffUL)
            return fail(EINVAL);
        perms[i].id = (unsigned int)id;
        p = end + 1;
    }
    return true;
}
