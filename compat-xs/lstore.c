/*
 * The local store: XenStore requests served from an LMDB environment
 * that every dom0 process opens, with no daemon on the data path
 * (docs/COMPAT.md, "The local store"). This file holds the node tree
 * and the requests; lstore_env.c the LMDB environment, commits and the
 * connection; lstore_tx.c transactions; lstore_watch.c the journal and
 * watches.
 *
 * Semantics follow xenstored (docs/misc/xenstore.txt): path rules,
 * implicit parents, subtree removal, owner + per-domain permissions with
 * dom0 privileged, quotas for unprivileged connections.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lstore.h"

#define LS_DOMID_SELF 0x7FF0u

int ls_buf_add(struct ls_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2)
                return ENOMEM;
            cap *= 2;
        }
        char *q = realloc(b->p, cap);
        if (!q)
            return ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int ls_buf_addstr(struct ls_buf *b, const char *s)
{
    return ls_buf_add(b, s, strlen(s) + 1);
}

int ls_mdb_errno(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
        return ENOSPC;
    case MDB_NOTFOUND:
        return ENOENT;
    case ENOMEM:
        return ENOMEM;
    default:
        return EIO;
    }
}

/* ---- keys ------------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND           \
    do {                   \
        v0 += v1;          \
        v1 = ROTL(v1, 13); \
        v1 ^= v0;          \
        v0 = ROTL(v0, 32); \
        v2 += v3;          \
        v3 = ROTL(v3, 16); \
        v3 ^= v2;          \
        v0 += v3;          \
        v3 = ROTL(v3, 21); \
        v3 ^= v0;          \
        v2 += v1;          \
        v1 = ROTL(v1, 17); \
        v1 ^= v2;          \
        v2 = ROTL(v2, 32); \
    } while (0)

/* SipHash-2-4: keyed, so paths cannot be chosen to collide. */
static uint64_t siphash(uint64_t k0, uint64_t k1, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t m;
    size_t i;

    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    m = (uint64_t)n << 56;
    for (size_t j = 0; i + j < n; j++)
        m |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void hkey(const struct ls_env *e, const char *s, size_t n,
                 unsigned char out[16])
{
    uint64_t a = siphash(e->hkey[0], e->hkey[1], s, n);
    uint64_t b = siphash(e->hkey[2], e->hkey[3], s, n);

    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}

/*
 * A child's key: H(parent) and the child's creation number (big-endian),
 * so that a directory lists in creation order, as xenstored's does.
 */
static void kid_key(const struct ls_env *e, const char *parent,
                    uint64_t seq, unsigned char k[24])
{
    hkey(e, parent, strlen(parent), k);
    for (int i = 0; i < 8; i++)
        k[16 + i] = seq >> (56 - 8 * i);
}

/* ---- meta, quota ------------------------------------------------------ */

int ls_meta_get(struct ls_x *x, const char *key, uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc = mdb_get(x->t, x->e->meta, &k, &d);

    *v = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return ls_mdb_errno(rc);
    if (d.mv_size != 8)
        return EIO;
    memcpy(v, d.mv_data, 8);
    return 0;
}

int ls_meta_put(struct ls_x *x, const char *key, uint64_t v)
{
    MDB_val k = {strlen(key), (void *)key}, d = {8, &v};

    return ls_mdb_errno(mdb_put(x->t, x->e->meta, &k, &d, 0));
}

static void be32(uint32_t v, unsigned char b[4])
{
    b[0] = v >> 24;
    b[1] = v >> 16;
    b[2] = v >> 8;
    b[3] = v;
}

static uint32_t quota_get(struct ls_x *x, uint32_t domid)
{
    unsigned char kb[4];
    MDB_val k = {4, kb}, d;
    uint32_t v = 0;

    be32(domid, kb);
    if (mdb_get(x->t, x->e->quota, &k, &d) == 0 && d.mv_size == 4)
        memcpy(&v, d.mv_data, 4);
    return v;
}

/* Nodes owned by a guest, for its entries quota (dom0 is not counted). */
static int quota_add(struct ls_x *x, uint32_t domid, int delta)
{
    unsigned char kb[4];
    MDB_val k = {4, kb}, d;
    uint32_t v;

    if (domid == 0)
        return 0;
    v = quota_get(x, domid);
    v = delta < 0 && v < (uint32_t)-delta ? 0 : v + delta;
    be32(domid, kb);
    if (v == 0) {
        int rc = mdb_del(x->t, x->e->quota, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : ls_mdb_errno(rc);
    }
    d.mv_size = 4;
    d.mv_data = &v;
    return ls_mdb_errno(mdb_put(x->t, x->e->quota, &k, &d, 0));
}

/* ---- nodes ------------------------------------------------------------ */

int ls_node_get(struct ls_x *x, const char *path, struct ls_node *n)
{
    unsigned char kb[16];
    MDB_val k = {16, kb}, d;
    struct ls_rec r;
    size_t plen = strlen(path);
    int rc;

    memset(n, 0, sizeof(*n));
    hkey(x->e, path, plen, kb);
    rc = mdb_get(x->t, x->e->node, &k, &d);
    if (rc)
        return ls_mdb_errno(rc);
    if (d.mv_size < sizeof(r))
        return EIO;
    memcpy(&r, d.mv_data, sizeof(r));
    if (r.nperms == 0 || r.nperms > 4096 || r.plen != plen ||
        d.mv_size != sizeof(r) + (size_t)r.nperms * sizeof(struct ls_perm) +
                         r.plen + r.vlen)
        return EIO;
    n->mem = malloc(d.mv_size + 1);
    if (!n->mem)
        return ENOMEM;
    memcpy(n->mem, d.mv_data, d.mv_size);
    n->gen = r.gen;
    n->kidseq = r.kidseq;
    n->nperms = r.nperms;
    n->vlen = r.vlen;
    n->perms = (struct ls_perm *)((char *)n->mem + sizeof(r));
    char *pp = (char *)(n->perms + r.nperms);
    /* The path is stored to tell a (keyed-hash) collision from a hit. */
    if (memcmp(pp, path, plen) != 0) {
        ls_node_free(n);
        return EIO;
    }
    n->val = pp + plen;
    return 0;
}

void ls_node_free(struct ls_node *n)
{
    free(n->mem);
    n->mem = NULL;
}

uint64_t ls_node_gen(struct ls_x *x, const char *path)
{
    struct ls_node n;
    uint64_t g;

    if (ls_node_get(x, path, &n))
        return 0;
    g = n.gen;
    ls_node_free(&n);
    return g;
}

int ls_node_put(struct ls_x *x, const char *path, uint64_t kidseq,
                const struct ls_perm *perms, uint32_t nperms, const char *val,
                uint32_t vlen)
{
    unsigned char kb[16];
    size_t plen = strlen(path);
    struct ls_rec r = {.gen = x->gen, .kidseq = kidseq, .nperms = nperms, .plen = plen, .vlen = vlen};
    size_t sz = sizeof(r) + nperms * sizeof(*perms) + plen + vlen;
    MDB_val k = {16, kb}, d = {sz, NULL};
    int rc;

    hkey(x->e, path, plen, kb);
    rc = mdb_put(x->t, x->e->node, &k, &d, MDB_RESERVE);
    if (rc)
        return ls_mdb_errno(rc);
    char *p = d.mv_data;
    memcpy(p, &r, sizeof(r));
    p += sizeof(r);
    memcpy(p, perms, nperms * sizeof(*perms));
    p += nperms * sizeof(*perms);
    memcpy(p, path, plen);
    if (vlen)
        memcpy(p + plen, val, vlen);
    return 0;
}

/* Rewrite a node unchanged but for its generation (its children changed). */
static int node_touch(struct ls_x *x, const char *path)
{
    struct ls_node n;
    int rc = ls_node_get(x, path, &n);

    if (rc)
        return rc;
    rc = ls_node_put(x, path, n.kidseq, n.perms, n.nperms, n.val, n.vlen);
    ls_node_free(&n);
    return rc;
}

static int kid_put(struct ls_x *x, const char *parent, uint64_t seq,
                   const char *name, bool add)
{
    unsigned char kb[24];
    MDB_val k = {24, kb};
    MDB_val d = {add ? strlen(name) : 0, (void *)name};
    int rc;

    kid_key(x->e, parent, seq, kb);
    if (add)
        return ls_mdb_errno(mdb_put(x->t, x->e->kid, &k, &d, 0));
    rc = mdb_del(x->t, x->e->kid, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : ls_mdb_errno(rc);
}

/* Children of path as "a\0b\0" (in creation order). del: remove them too. */
static int kids(struct ls_x *x, const char *path, struct ls_buf *out,
                bool del)
{
    unsigned char pre[16];
    MDB_cursor *cur;
    MDB_val k = {16, pre}, d;
    int rc, err = 0;

    hkey(x->e, path, strlen(path), pre);
    rc = mdb_cursor_open(x->t, x->e->kid, &cur);
    if (rc)
        return ls_mdb_errno(rc);
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 16 && memcmp(k.mv_data, pre, 16) == 0) {
        if (out && ((err = ls_buf_add(out, d.mv_data, d.mv_size)) ||
                    (err = ls_buf_add(out, "", 1))))
            break;
        if (del && (rc = mdb_cursor_del(cur, 0)))
            break;
        rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (err)
        return err;
    return rc == MDB_NOTFOUND ? 0 : ls_mdb_errno(rc);
}

/* ---- paths and permissions ---------------------------------------------- */

char *ls_canon(unsigned int domid, const char *p, size_t *strip)
{
    char *s;

    *strip = 0;
    if (p[0] == '/' || p[0] == '@')
        return strdup(p);
    if (asprintf(&s, "/local/domain/%u/%s", domid, p) < 0)
        return NULL;
    *strip = strlen(s) - strlen(p);
    return s;
}

bool ls_valid_path(const char *p)
{
    size_t n = strlen(p);
    unsigned int domid;
    int off = 0;

    if (p[0] != '/')
        return false;
    if (n > 1 && p[n - 1] == '/')
        return false;
    if (strstr(p, "//"))
        return false;
    if (sscanf(p, "/local/domain/%5u/%n", &domid, &off) != 1)
        off = 0;
    if (n > (size_t)off + LS_QUOTA_PATH)
        return false;
    return strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789-/_@") == n;
}

static char *parent_of(const char *path)
{
    const char *s = strrchr(path, '/');

    if (s == path)
        return strdup("/");
    return strndup(path, s - path);
}

static char *child_of(const char *path, const char *name)
{
    char *s;

    if (asprintf(&s, "%s/%s", strcmp(path, "/") ? path : "", name) < 0)
        return NULL;
    return s;
}

static unsigned int perm_for(unsigned int domid, const struct ls_perm *p,
                             uint32_t n)
{
    unsigned int all = LS_PERM_READ | LS_PERM_WRITE | LS_PERM_OWNER;

    if (domid == 0 || p[0].id == domid)
        return all;
    for (uint32_t i = 1; i < n; i++)
        if (!(p[i].mode & LS_PERM_IGNORE) && p[i].id == domid)
            return p[i].mode & (LS_PERM_READ | LS_PERM_WRITE);
    return p[0].mode & (LS_PERM_READ | LS_PERM_WRITE);
}

/*
 * A failed lookup tells the caller no more than the nearest existing
 * ancestor lets it see: the real errno if it has perm there, else EACCES.
 */
static int from_parents(struct ls_x *x, const char *path, int err,
                        unsigned int perm)
{
    struct ls_node n;
    char *p = strdup(path), *q;
    unsigned int pp = 0;

    if (x->domid == 0 || err == ENOMEM)
        return free(p), err;
    while (p && strcmp(p, "/") != 0) {
        q = parent_of(p);
        free(p);
        p = q;
        if (p && ls_node_get(x, p, &n) == 0) {
            pp = perm_for(x->domid, n.perms, n.nperms);
            ls_node_free(&n);
            break;
        }
    }
    free(p);
    return (pp & perm) ? err : EACCES;
}

/* The node at path if the caller has perm on it; else an errno. */
static int chk_node(struct ls_x *x, const char *path, unsigned int perm,
                    struct ls_node *n)
{
    int rc = ls_node_get(x, path, n);

    if (rc == 0) {
        if ((perm_for(x->domid, n->perms, n->nperms) & perm) == perm)
            return 0;
        ls_node_free(n);
        rc = EACCES;
    }
    if (rc != ENOENT && rc != EACCES)
        return rc;
    return from_parents(x, path, rc, perm);
}

int ls_record(struct ls_x *x, char kind, const char *path)
{
    size_t n = strlen(path);

    if (!x->chg)
        return 0;
    /* One record per path and kind in a commit, as xenstored fires once. */
    for (size_t i = 0; i < x->chg->len;) {
        size_t l = strlen(x->chg->p + i + 1);
        if (x->chg->p[i] == kind && l == n &&
            memcmp(x->chg->p + i + 1, path, n) == 0)
            return 0;
        i += l + 2;
    }
    int rc = ls_buf_add(x->chg, &kind, 1);
    return rc ? rc : ls_buf_addstr(x->chg, path);
}

/* ---- requests ----------------------------------------------------------- */

/* The payload's only string (exactly one NUL, at its end), else NULL. */
static const char *onearg(const char *p, uint32_t len)
{
    if (len == 0 || memchr(p, '\0', len) != p + len - 1)
        return NULL;
    return p;
}

static unsigned int nuls(const char *p, uint32_t len)
{
    unsigned int n = 0;

    for (uint32_t i = 0; i < len; i++)
        n += p[i] == '\0';
    return n;
}

/* Canonical, valid path from a request's first string; NULL: EINVAL. */
static char *arg_path(struct ls_x *x, const char *s)
{
    size_t strip;
    char *p;

    if (!s)
        return NULL;
    p = ls_canon(x->domid, s, &strip);
    if (p && !ls_valid_path(p)) {
        free(p);
        p = NULL;
    }
    return p;
}

int ls_create(struct ls_x *x, const char *path, const char *val,
              uint32_t vlen)
{
    struct ls_node p;
    char *pp = parent_of(path);
    const char *base = strrchr(path, '/') + 1;
    int rc;

    if (!pp)
        return ENOMEM;
    rc = ls_node_get(x, pp, &p);
    if (rc == ENOENT && (rc = ls_create(x, pp, "", 0)) == 0)
        rc = ls_node_get(x, pp, &p);
    if (rc) {
        free(pp);
        return rc;
    }
    struct ls_perm *perms = p.perms;
    /* Nodes inherit the parent's permissions; guests own what they make. */
    if (x->domid != 0) {
        perms[0].id = x->domid;
        if (quota_get(x, x->domid) >= LS_QUOTA_ENTRIES)
            rc = ENOSPC;
    }
    uint64_t seq = 0;
    if (!rc && !(rc = ls_meta_get(x, "kidseq", &seq)))
        rc = ls_meta_put(x, "kidseq", ++seq);
    if (!rc)
        rc = ls_node_put(x, path, seq, perms, p.nperms, val, vlen);
    if (!rc)
        rc = quota_add(x, perms[0].id, 1);
    ls_node_free(&p);
    if (!rc)
        rc = kid_put(x, pp, seq, base, true);
    if (!rc)
        rc = node_touch(x, pp);
    free(pp);
    return rc;
}

static int do_write(struct ls_x *x, const char *payload, uint32_t len,
                    bool mkdir)
{
    const char *nul = memchr(payload, '\0', len);
    const char *val = nul ? nul + 1 : NULL;
    uint32_t vlen = nul ? len - (val - payload) : 0;
    struct ls_node n;
    char *path;
    int rc;

    if (mkdir ? !onearg(payload, len) : !nul)
        return EINVAL;
    if (mkdir)
        val = "", vlen = 0;
    if (!(path = arg_path(x, payload)))
        return EINVAL;
    rc = chk_node(x, path, LS_PERM_WRITE, &n);
    if ((rc == 0 || rc == ENOENT) && x->domid != 0 && vlen > LS_QUOTA_VALUE) {
        if (rc == 0)
            ls_node_free(&n);
        rc = ENOSPC;
    } else if (rc == 0) {
        if (!mkdir)
            rc = ls_node_put(x, path, n.kidseq, n.perms, n.nperms, val, vlen);
        ls_node_free(&n);
        if (!rc && !mkdir)
            rc = ls_record(x, LS_J_WRITE, path);
    } else if (rc == ENOENT) {
        rc = ls_create(x, path, val, vlen);
        if (!rc)
            rc = ls_record(x, LS_J_WRITE, path);
    }
    free(path);
    return rc;
}

static int rm_tree(struct ls_x *x, const char *path)
{
    struct ls_buf names = {0};
    struct ls_node n;
    int rc = kids(x, path, &names, true);

    for (size_t i = 0; !rc && i < names.len; i += strlen(names.p + i) + 1) {
        char *c = child_of(path, names.p + i);
        rc = c ? rm_tree(x, c) : ENOMEM;
        free(c);
    }
    free(names.p);
    if (rc)
        return rc;
    rc = ls_node_get(x, path, &n);
    if (rc)
        return rc;
    rc = quota_add(x, n.perms[0].id, -1);
    ls_node_free(&n);
    if (!rc) {
        unsigned char kb[16];
        MDB_val k = {16, kb};
        hkey(x->e, path, strlen(path), kb);
        rc = ls_mdb_errno(mdb_del(x->t, x->e->node, &k, NULL));
    }
    return rc;
}

static int do_rm(struct ls_x *x, const char *payload, uint32_t len)
{
    struct ls_node n;
    char *path = arg_path(x, onearg(payload, len)), *pp;
    int rc;

    if (!path)
        return EINVAL;
    rc = chk_node(x, path, LS_PERM_WRITE, &n);
    pp = parent_of(path);
    if (!pp) {
        rc = ENOMEM;
    } else if (rc == ENOENT) {
        /* Gone already: fine if the parent is there. */
        if (ls_node_get(x, pp, &n) == 0) {
            ls_node_free(&n);
            rc = 0;
        }
    } else if (rc == 0) {
        uint64_t seq = n.kidseq;
        ls_node_free(&n);
        if (strcmp(path, "/") == 0)
            rc = EINVAL;
        else if (!(rc = rm_tree(x, path)) &&
                 !(rc = kid_put(x, pp, seq, NULL, false)) &&
                 !(rc = node_touch(x, pp)))
            rc = ls_record(x, LS_J_RM, path);
    }
    free(pp);
    free(path);
    return rc;
}

static int do_get_perms(struct ls_x *x, const char *payload, uint32_t len,
                        struct ls_buf *out)
{
    static const char letter[] = "nrwb";
    struct ls_node n;
    char *path = arg_path(x, onearg(payload, len));
    int rc;

    if (!path)
        return EINVAL;
    rc = chk_node(x, path, LS_PERM_READ, &n);
    free(path);
    for (uint32_t i = 0; !rc && i < n.nperms; i++) {
        char s[16];
        snprintf(s, sizeof(s), "%c%u", letter[n.perms[i].mode & 3],
                 n.perms[i].id);
        rc = ls_buf_addstr(out, s);
    }
    if (n.mem)
        ls_node_free(&n);
    return rc;
}

static int do_set_perms(struct ls_x *x, const char *payload, uint32_t len)
{
    unsigned int np = nuls(payload, len);
    struct ls_perm *perms;
    struct ls_node n;
    const char *s;
    char *path;
    int rc = 0;

    if (np < 2 || payload[len - 1] != '\0')
        return EINVAL;
    np--;
    if (x->domid != 0 && np > LS_QUOTA_PERMS)
        return ENOSPC;
    if (!(perms = calloc(np, sizeof(*perms))))
        return ENOMEM;
    s = payload + strlen(payload) + 1;
    for (unsigned int i = 0; i < np; i++, s += strlen(s) + 1) {
        switch (s[0]) {
        case 'n': perms[i].mode = 0; break;
        case 'r': perms[i].mode = LS_PERM_READ; break;
        case 'w': perms[i].mode = LS_PERM_WRITE; break;
        case 'b': perms[i].mode = LS_PERM_READ | LS_PERM_WRITE; break;
        default: rc = EINVAL;
        }
        perms[i].id = s[0] ? strtoul(s + 1, NULL, 0) : 0;
    }
    if (rc)
        goto out;
    /* The special nodes' permissions are not kept: every dom0 watcher
     * gets their events, guests none. */
    if (payload[0] == '@') {
        rc = x->domid == 0 ? 0 : EACCES;
        goto out;
    }
    if (!(path = arg_path(x, payload))) {
        rc = EINVAL;
        goto out;
    }
    rc = chk_node(x, path, LS_PERM_WRITE | LS_PERM_OWNER, &n);
    if (rc == 0) {
        if (x->domid != 0 && perms[0].id != n.perms[0].id)
            rc = EPERM;
        if (!rc && perms[0].id != n.perms[0].id &&
            !(rc = quota_add(x, n.perms[0].id, -1)))
            rc = quota_add(x, perms[0].id, 1);
        if (!rc)
            rc = ls_node_put(x, path, n.kidseq, perms, np, n.val, n.vlen);
        if (!rc)
            rc = ls_record(x, LS_J_WRITE, path);
        ls_node_free(&n);
    }
    free(path);
out:
    free(perms);
    return rc;
}

static int do_directory(struct ls_x *x, const char *payload, uint32_t len,
                        struct ls_buf *out, bool part)
{
    struct ls_buf all = {0};
    struct ls_node n;
    char *path;
    char gen[24];
    int rc;

    if (part ? nuls(payload, len) != 2 || payload[len - 1] != '\0'
             : !onearg(payload, len))
        return EINVAL;
    if (!(path = arg_path(x, payload)))
        return EINVAL;
    rc = chk_node(x, path, LS_PERM_READ, &n);
    if (rc == 0) {
        rc = kids(x, path, part ? &all : out, false);
        snprintf(gen, sizeof(gen), "%llu", (unsigned long long)n.gen);
        ls_node_free(&n);
    }
    free(path);
    if (rc || !part)
        goto done;
    /* A slice from the offset that fits one message, "" when at the end. */
    size_t off = (size_t)atoi(payload + strlen(payload) + 1), l = 0;
    size_t max = XSW_PAYLOAD_MAX - strlen(gen) - 2;
    if ((rc = ls_buf_addstr(out, gen)))
        goto done;
    if (off < all.len) {
        const char *c = all.p + off;
        while (l + strlen(c) < max) {
            l += strlen(c) + 1;
            c += strlen(c) + 1;
            if (off + l >= all.len)
                break;
        }
        rc = ls_buf_add(out, all.p + off, l);
    }
    if (!rc && off + l >= all.len)
        rc = ls_buf_add(out, "", 1);
done:
    free(all.p);
    return rc;
}

static int dom_op(struct ls_x *x, uint32_t type, const char *payload,
                  uint32_t len, struct ls_buf *out)
{
    const char *a = onearg(payload, len);
    unsigned char kb[4];
    MDB_val k = {4, kb}, d;
    unsigned int domid;
    char s[32];
    int rc;

    if (len == 0)
        return EINVAL;
    if (type == XSW_INTRODUCE || type == XSW_SET_TARGET)
        a = payload[len - 1] == '\0' &&
                    nuls(payload, len) >= (type == XSW_INTRODUCE ? 3u : 2u)
                ? payload
                : NULL;
    if (!a)
        return EINVAL;
    domid = (unsigned int)atoi(a);
    be32(domid, kb);
    rc = mdb_get(x->t, x->e->dom, &k, &d);
    if (rc && rc != MDB_NOTFOUND)
        return ls_mdb_errno(rc);
    bool known = rc == 0 || domid == 0;

    switch (type) {
    case XSW_GET_DOMAIN_PATH:
        snprintf(s, sizeof(s), "/local/domain/%u", domid);
        return ls_buf_addstr(out, s);
    case XSW_IS_DOMAIN_INTRODUCED:
        return ls_buf_addstr(out, known || domid == LS_DOMID_SELF ? "T" : "F");
    case XSW_INTRODUCE: {
        const char *mfn = a + strlen(a) + 1;
        const char *port = mfn + strlen(mfn) + 1;
        unsigned char v[12];
        uint64_t m = strtoull(mfn, NULL, 10);
        uint32_t p;

        if (atoi(port) <= 0)
            return EINVAL;
        /* The store frame and port are kept: a ring service
         * (cxs_lstore_domains) serves the domain's ring from them. A
         * second introduction with other values replaces them and is
         * announced again. */
        p = (uint32_t)atoi(port);
        memcpy(v, &p, 4);
        memcpy(v + 4, &m, 8);
        if (known && domid != 0 && d.mv_size == sizeof(v) &&
            memcmp(d.mv_data, v, sizeof(v)) == 0)
            break;
        if (!known || domid != 0) {
            d.mv_size = sizeof(v);
            d.mv_data = v;
            if ((rc = ls_mdb_errno(mdb_put(x->t, x->e->dom, &k, &d, 0))))
                return rc;
            if ((rc = ls_record(x, LS_J_SPECIAL, "@introduceDomain")))
                return rc;
        }
        break;
    }
    case XSW_RELEASE:
        if (domid == 0)
            return EINVAL;
        if (!known)
            return ENOENT;
        if ((rc = ls_mdb_errno(mdb_del(x->t, x->e->dom, &k, NULL))))
            return rc;
        if ((rc = ls_record(x, LS_J_SPECIAL, "@releaseDomain")))
            return rc;
        break;
    case XSW_RESUME:
        if (!known)
            return ENOENT;
        break;
    default: /* SET_TARGET: accepted, targets are not modelled */
        break;
    }
    return ls_buf_addstr(out, "OK");
}

bool ls_is_modify(uint32_t type)
{
    return type == XSW_WRITE || type == XSW_MKDIR || type == XSW_RM ||
           type == XSW_SET_PERMS || type == XSW_INTRODUCE ||
           type == XSW_RELEASE;
}

int ls_exec(struct ls_x *x, uint32_t type, const char *payload, uint32_t len,
            struct ls_buf *out)
{
    int rc;
    char *path;
    struct ls_node n;

    switch (type) {
    case XSW_READ:
        if (!(path = arg_path(x, onearg(payload, len))))
            return EINVAL;
        rc = chk_node(x, path, LS_PERM_READ, &n);
        free(path);
        if (rc)
            return rc;
        rc = ls_buf_add(out, n.val, n.vlen);
        ls_node_free(&n);
        return rc;
    case XSW_DIRECTORY:
    case XSW_DIRECTORY_PART:
        return do_directory(x, payload, len, out, type == XSW_DIRECTORY_PART);
    case XSW_GET_PERMS:
        return do_get_perms(x, payload, len, out);
    case XSW_WRITE:
    case XSW_MKDIR:
        rc = do_write(x, payload, len, type == XSW_MKDIR);
        break;
    case XSW_RM:
        rc = do_rm(x, payload, len);
        break;
    case XSW_SET_PERMS:
        rc = do_set_perms(x, payload, len);
        break;
    case XSW_INTRODUCE:
    case XSW_RELEASE:
    case XSW_IS_DOMAIN_INTRODUCED:
    case XSW_RESUME:
    case XSW_SET_TARGET:
    case XSW_GET_DOMAIN_PATH:
        return dom_op(x, type, payload, len, out);
    case XSW_CONTROL:
        return EINVAL;
    default:
        return ENOSYS;
    }
    return rc ? rc : ls_buf_addstr(out, "OK");
}
