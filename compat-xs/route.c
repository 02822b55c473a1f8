/*
 * Which store serves a path (docs/COMPAT.md "Modes"), and calls into the
 * generic store (gstore.h).
 *
 * The mode is chosen once per process:
 *   1. $NOXS_COMPAT_MODE: "mixed", "local" or "noxs";
 *   2. else "mode = ..." in $NOXS_COMPAT_CONF (default
 *      /etc/noxs/compat-xs.conf), if that file exists;
 *   3. else: mixed when xenstored's socket accepts a connection (or, in
 *      a guest, when the kernel's xenbus device exists); else local when
 *      the local store's directory exists ($NOXS_XS_DIR, else
 *      /var/lib/noxs/xenstore); else noxs.
 * In noxs mode only noxs domains' device, backend and control paths
 * exist (every other path is EACCES), and every domain this process
 * introduces is a noxs domain.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "handle.h"
#include "common/unixsock.h"

#define CONF_DEFAULT "/etc/noxs/compat-xs.conf"
#define LSTORE_DIR_DEFAULT "/var/lib/noxs/xenstore"
#define XENBUS_DEV "/dev/xen/xenbus"

static int mode = -1;

static int mode_parse(const char *s)
{
    if (strcmp(s, "mixed") == 0)
        return CXS_MODE_MIXED;
    if (strcmp(s, "local") == 0)
        return CXS_MODE_LOCAL;
    if (strcmp(s, "noxs") == 0)
        return CXS_MODE_NOXS;
    return -1;
}

/* The device classes a noxs domain keeps in xenstored on a mixed host,
 * " vbd vif " (spaces around each), from $NOXS_COMPAT_XENSTORED_CLASSES
 * or the configuration file's xenstored-classes. */
static char xs_classes[256];

static void classes_set(const char *list)
{
    size_t n = 1;

    xs_classes[0] = ' ';
    for (const char *c = list; *c && n + 2 < sizeof(xs_classes); c++)
        if (*c != ',')
            xs_classes[n++] = *c == '\t' ? ' ' : *c;
        else
            xs_classes[n++] = ' ';
    xs_classes[n++] = ' ';
    xs_classes[n] = '\0';
}

/* The configuration file: "mode = word" (returned, or -1) and
 * "xenstored-classes = class ..." (no file: -1, said if unreadable). */
static int conf_load(void)
{
    const char *path = getenv("NOXS_COMPAT_CONF");
    char line[512];
    int m = -1;
    FILE *f;

    if (!path || !*path)
        path = CONF_DEFAULT;
    if ((f = fopen(path, "re")) == NULL) {
        if (errno != ENOENT)
            cxs_log("%s: %s (mode chosen automatically)", path,
                    strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char key[32], val[256];

        if (line[0] == '#')
            continue;
        if (sscanf(line, " %31[a-z_-] = %255[^\n]", key, val) != 2)
            continue;
        if (strcmp(key, "xenstored-classes") == 0) {
            classes_set(val);
            continue;
        }
        if (strcmp(key, "mode") != 0)
            continue;
        val[strcspn(val, " \t#")] = '\0';
        if ((m = mode_parse(val)) < 0 && strcmp(val, "auto") != 0)
            cxs_log("%s: unknown mode \"%s\" (mixed, local, noxs or "
                    "auto): chosen automatically",
                    path, val);
    }
    fclose(f);
    return m;
}

bool cxs_class_in_xenstored(const char *cls)
{
    char word[CXS_CLASS_MAX + 3];

    if (mode != CXS_MODE_MIXED || !xs_classes[0])
        return false;
    snprintf(word, sizeof(word), " %s ", cls);
    return strstr(xs_classes, word) != NULL;
}

/* Does xenstored answer on its socket? Only a connect: no request. */
static bool xenstored_up(void)
{
    const char *path = cxs_xsd_default_socket();
    int fd;

    if (!path || (fd = unix_connect(path, SOCK_STREAM)) < 0)
        return false;
    close(fd);
    return true;
}

static const char *lstore_dir(void)
{
    const char *d = getenv("NOXS_XS_DIR");

    return d && *d ? d : LSTORE_DIR_DEFAULT;
}

int cxs_mode(unsigned int self)
{
    const char *env;
    struct stat st;
    int conf;

    if (mode >= 0)
        return mode;
    conf = conf_load();
    if ((env = getenv("NOXS_COMPAT_XENSTORED_CLASSES")) != NULL)
        classes_set(env);
    env = getenv("NOXS_COMPAT_MODE");
    if (env && *env && strcmp(env, "auto") != 0) {
        mode = mode_parse(env);
        if (mode < 0)
            cxs_log("NOXS_COMPAT_MODE=%s: unknown mode (mixed, local, noxs "
                    "or auto): chosen automatically",
                    env);
    }
    if (mode < 0 && !(env && *env))
        mode = conf;
    if (mode < 0) {
        if (xenstored_up() || (self != 0 && access(XENBUS_DEV, F_OK) == 0 &&
                               !getenv("NOXS_SIM_DOMID")))
            mode = CXS_MODE_MIXED;
        else if (stat(lstore_dir(), &st) == 0 && S_ISDIR(st.st_mode))
            mode = CXS_MODE_LOCAL;
        else
            mode = CXS_MODE_NOXS;
    }
    return mode;
}

const char *cxs_mode_name(int m)
{
    return m == CXS_MODE_MIXED ? "mixed" : m == CXS_MODE_LOCAL ? "local"
                                                               : "noxs";
}

struct cxs_gconn *cxs_gopen(unsigned int self, bool readonly)
{
    struct cxs_gconn *g;

    switch (cxs_mode(self)) {
    case CXS_MODE_MIXED:
        g = cxs_xsd_open(NULL, readonly);
        if (!g)
            cxs_log("mixed mode: cannot reach xenstored (%s): %s",
                    cxs_xsd_default_socket(), strerror(errno));
        return g;
    case CXS_MODE_LOCAL:
        g = cxs_lstore_open(NULL, self);
        if (!g)
            cxs_log("local mode: cannot open the local store in %s: %s",
                    lstore_dir(), strerror(errno));
        return g;
    default:
        errno = 0;
        return NULL;
    }
}

/* ---- payloads and calls ---- */

int cxs_buf_add(struct cxs_buf *b, const void *p, size_t len)
{
    if (b->len + len > sizeof(b->v))
        return -E2BIG;
    memcpy(b->v + b->len, p, len);
    b->len += len;
    return 0;
}

int cxs_buf_str(struct cxs_buf *b, const char *s)
{
    return cxs_buf_add(b, s, strlen(s) + 1);
}

int cxs_gcall(struct cxs_gconn *g, uint32_t type, uint32_t tx,
              const struct cxs_buf *b, char **reply, uint32_t *rlen)
{
    uint32_t rtype = 0, n = 0;
    char *r = NULL;
    int rc;

    rc = g->ops->request(g, type, tx, b->v, (uint32_t)b->len, &rtype, &r, &n);
    if (rc < 0)
        return rc;
    if (rtype == XSW_ERROR) {
        rc = -xsw_errno_parse(r ? r : "");
        free(r);
        return rc;
    }
    if (rtype != type) {
        free(r);
        return -EIO;
    }
    if (reply)
        *reply = r;
    else
        free(r);
    if (rlen)
        *rlen = n;
    return 0;
}

int cxs_gpath(struct cxs_gconn *g, uint32_t type, uint32_t tx,
              const char *path, char **reply, uint32_t *rlen)
{
    struct cxs_buf b = {.len = 0};
    int rc = cxs_buf_str(&b, path);

    return rc < 0 ? rc : cxs_gcall(g, type, tx, &b, reply, rlen);
}

int cxs_gwrite(struct cxs_gconn *g, uint32_t tx, const char *path,
               const void *data, unsigned int len)
{
    struct cxs_buf b = {.len = 0};
    int rc = cxs_buf_str(&b, path);

    if (rc == 0)
        rc = cxs_buf_add(&b, data, len);
    return rc < 0 ? rc : cxs_gcall(g, XSW_WRITE, tx, &b, NULL, NULL);
}

int cxs_gwatch(struct cxs_gconn *g, bool watch, const char *path,
               const char *token)
{
    struct cxs_buf b = {.len = 0};
    int rc = cxs_buf_str(&b, path);

    if (rc == 0)
        rc = cxs_buf_str(&b, token);
    return rc < 0 ? rc
                  : cxs_gcall(g, watch ? XSW_WATCH : XSW_UNWATCH, 0, &b,
                              NULL, NULL);
}

int cxs_gtx_start(struct cxs_gconn *g, uint32_t *tx)
{
    struct cxs_buf b = {.len = 0};
    char *r = NULL, *end;
    unsigned long v;
    int rc;

    cxs_buf_str(&b, "");
    rc = cxs_gcall(g, XSW_TRANSACTION_START, 0, &b, &r, NULL);
    if (rc < 0)
        return rc;
    v = strtoul(r, &end, 10);
    rc = *end || v == 0 || v > UINT32_MAX ? -EIO : 0;
    free(r);
    *tx = (uint32_t)v;
    return rc;
}

int cxs_gtx_end(struct cxs_gconn *g, uint32_t tx, bool commit)
{
    struct cxs_buf b = {.len = 0};

    cxs_buf_str(&b, commit ? "T" : "F");
    return cxs_gcall(g, XSW_TRANSACTION_END, tx, &b, NULL, NULL);
}

/* Split a reply of NUL-terminated strings into a vector, libxenstore's
 * layout (one malloc: the pointers, then the strings). */
char **cxs_gsplit(const char *r, uint32_t len, unsigned int *num)
{
    unsigned int n = 0;
    char **v, *s;

    for (uint32_t i = 0; i < len; i++)
        if (r[i] == '\0')
            n++;
    if (len && r[len - 1] != '\0')
        n++;
    v = malloc((n + 1) * sizeof(char *) + len + 1);
    if (!v)
        return NULL;
    s = (char *)(v + n + 1);
    memcpy(s, r, len);
    s[len] = '\0';
    for (unsigned int i = 0; i < n; i++) {
        v[i] = s;
        s += strlen(s) + 1;
    }
    v[n] = NULL;
    *num = n;
    return v;
}

/* ---- per handle: which store serves a path ---- */

/* Are the device and control paths of domain d on pages? */
static bool noxs_paths(struct xs_handle *h, unsigned int d)
{
    struct cxs_ctx *ctx = h->ctx;

    if (ctx->domid != 0) /* a guest: its own paths, if it is a noxs one */
        return d == ctx->domid && cxs_ctx_frontend(ctx) != NULL;
    return cxs_noxs_domain(ctx, d) == 1;
}

int cxs_route(struct xs_handle *h, const struct cxs_path *p, int op)
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
        if (strcmp(p->cls, "suspend") == 0 || cxs_class_in_xenstored(p->cls))
            return R_GENERIC;
        return noxs_paths(h, p->fe) ? R_NOXS : R_GENERIC;
    }
}

/* The generic store's transaction for t, started on first use. */
int cxs_gtx_of(struct xs_handle *h, struct tx *x, uint32_t *gtx)
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
