/*
 * compat-xs: libxenstore.so.4 (every VERS_4.0 symbol of Debian's) on
 * noxs device pages and a generic store. docs/COMPAT.md has the supported
 * paths, the errnos and what differs from xenstored.
 *
 * This file: handles (xs_open/xs_close: a handle belongs to a domain
 * context, ctx.c, and holds an epoll fd, its watches, its transactions
 * and its connection to the generic store), reads, the write calls,
 * permissions and the xenstore_lib.h helpers. The rest of the API, by
 * concern (handle.h has what these files share):
 *   dir.c     xs_directory and the listings of page paths;
 *   watch.c   watches, their events and what makes xs_fileno() readable;
 *   special.c @introduceDomain and @releaseDomain;
 *   tx.c      transactions and the application of a batch of writes;
 *   domain.c  the domain calls of the toolstack;
 *   route.c   which store serves a path.
 *
 * Every entry point takes cxs_lock; no libnoxs call is made without it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <xenstore.h>

#include "handle.h"

/* ---- paths and devices ---- */

/*
 * Log an unsupported path once per process. A log, not state: the
 * memory is bounded on purpose (the first UNSUPPORTED_SEEN paths, by
 * their first UNSUPPORTED_PREFIX bytes), and a path beyond it is logged
 * again each time.
 */
#define UNSUPPORTED_SEEN 32
#define UNSUPPORTED_PREFIX 95
void cxs_unsupported(const char *what, const char *path)
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
int cxs_absolute(struct xs_handle *h, const char *path, char *buf,
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

int cxs_parse(struct xs_handle *h, const char *path, char *abs,
              struct cxs_path *p)
{
    int rc = cxs_absolute(h, path, abs, CXS_ABS_PATH_MAX + 1, NULL);

    return rc < 0 ? rc : cxs_path_parse(abs, p);
}

int cxs_parse_tx(struct xs_handle *h, xs_transaction_t t, const char *path,
                 char *abs, struct cxs_path *p, struct tx **x)
{
    int rc = cxs_parse(h, path, abs, p);

    *x = NULL;
    if (rc == 0 && t != XBT_NULL && !(*x = cxs_find_tx(h, t)))
        rc = -ENOENT; /* xenstored: unknown transaction id */
    return rc;
}

/* The local device a device/backend path names, syncing the roles that
 * could know it first. */
struct cxs_dev *cxs_local_dev(struct xs_handle *h, const struct cxs_path *p)
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
int cxs_proxy(struct xs_handle *h, const struct cxs_path *p,
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

/* ---- open / close ---- */

CXS_EXPORT struct xs_handle *xs_open(unsigned long flags)
{
    struct xs_handle *h = calloc(1, sizeof(*h));
    struct epoll_event ev = {.events = EPOLLIN};
    uint16_t self;
    int saved;

    /* Which domain we are: libnoxs's one answer, which has logged why a
     * value is not a domain id; acting as dom0 instead would give a
     * guest's tools the wrong tree. */
    if (noxs_self_domid(&self) < 0) {
        free(h);
        errno = EINVAL;
        return NULL;
    }
    if (!h)
        return NULL;
    h->readonly = flags & XS_OPEN_READONLY;
    h->next_tx = 1;
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd < 0)
        goto err;
    cxs_enter();
    if (cxs_ready_fd_get() < 0) {
        saved = errno;
        cxs_leave();
        errno = saved;
        goto err;
    }
    h->ctx = cxs_ctx_get(self);
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
    if ((h->anext = cxs_handles) != NULL)
        cxs_handles->apprev = &h->anext;
    h->apprev = &cxs_handles;
    cxs_handles = h;
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

struct xs_handle *cxs_handles;

static void handle_free(struct xs_handle *h, bool release_ctx)
{
    if (h->apprev) {
        if ((*h->apprev = h->anext) != NULL)
            h->anext->apprev = h->apprev;
        h->apprev = NULL;
    }
    cxs_watch_close(h);
    while (h->txs) {
        struct tx *t = h->txs;
        h->txs = t->next;
        cxs_tx_free(t);
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

/* xs_close, and after a fork without the libnoxs handles (!ours). */
static void handle_close(struct xs_handle *h, bool ours)
{
    if (!h)
        return;
    cxs_fileno_stop(h);
    cxs_enter();
    handle_free(h, ours);
    cxs_leave();
}

CXS_EXPORT void xs_close(struct xs_handle *h)
{
    handle_close(h, true);
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
    handle_close(h, false);
}

CXS_EXPORT int xs_fileno(struct xs_handle *h)
{
    return h ? cxs_fileno(h) : -1;
}

/* ---- reads ---- */

/* Read a node outside any transaction. */
int cxs_node_read(struct xs_handle *h, const char *abs,
                  const struct cxs_path *p, char **out, unsigned int *len)
{
    char reply[NOXS_CTRL_VALUE_MAX + 1];
    struct cxs_dev *d;
    int rc;

    switch (p->kind) {
    case CXS_DEVICE_KEY:
    case CXS_BACKEND_KEY:
        d = cxs_local_dev(h, p);
        if (d)
            return cxs_dev_read(d, p->kind == CXS_DEVICE_KEY ? CXS_HALF_FRONT : CXS_HALF_BACK,
                                p->key, out, len);
        rc = cxs_proxy(h, p, "xs-read", p->key, reply, sizeof(reply));
        if (rc < 0)
            return rc == -ENODEV || rc == -ECONNREFUSED ? -ENOENT : rc;
        *out = strdup(reply);
        *len = (unsigned int)strlen(reply);
        return *out ? 0 : -ENOMEM;
    case CXS_UNSUPPORTED:
        cxs_unsupported("read", abs);
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
            rc = cxs_dir_read(h, p, &names, &n);
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
    rc = cxs_parse_tx(h, t, path, abs, &p, &x);
    if (rc == 0 && cxs_route(h, &p, OPK_READ) == R_GENERIC) {
        uint32_t gtx, n = 0;

        rc = cxs_gtx_of(h, x, &gtx);
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
        rc = cxs_tx_lookup(x, abs, &out, &l);
    if (rc == 0) {
        rc = cxs_node_read(h, abs, &p, &out, &l);
        if (x)
            cxs_tx_record(x, abs, rc, out, l);
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

/* ---- writes ---- */

/* The public write calls: stage one operation under the library lock. */
static bool stage_locked(struct xs_handle *h, xs_transaction_t t, int kind,
                         const char *path, const void *data, unsigned int len)
{
    int rc;

    if (!h)
        return fail(EINVAL);
    cxs_enter();
    rc = cxs_stage(h, t, kind, path, data, len);
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
    rc = cxs_parse_tx(h, t, path, abs, &p, &x);
    if (rc == 0 && cxs_route(h, &p, OPK_READ) == R_GENERIC) {
        uint32_t gtx, n = 0;
        char **strs = NULL;

        rc = cxs_gtx_of(h, x, &gtx);
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
        rc = cxs_node_read(h, abs, &p, &v, &l);
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
    rc = cxs_parse_tx(h, t, path, abs, &p, &x);
    if (rc == 0 && h->readonly)
        rc = -EACCES;
    if (rc == 0 && cxs_route(h, &p, OPK_WRITE) == R_GENERIC) {
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
            rc = cxs_gtx_of(h, x, &gtx);
        if (rc == 0)
            rc = cxs_gcall(h->g, XSW_SET_PERMS, gtx, &b, NULL, NULL);
        cxs_leave();
        return rc < 0 ? fail(-rc) : true;
    }
    if (rc == 0 && (p.kind == CXS_UNSUPPORTED || p.kind == CXS_SPECIAL)) {
        cxs_unsupported("set-permissions", abs);
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
