/*
 * Transactions of the local store, optimistic as xenstored's: a
 * transaction's writes wait in the connection, and it remembers the
 * generation of every node it looked at (0: absent) the first time it
 * did. The commit opens one LMDB write transaction, checks that none of
 * those changed, replays the writes and commits; otherwise EAGAIN.
 *
 * No LMDB write transaction outlives a call, so a stalled or killed
 * process never blocks the others. A request inside a transaction that
 * has writes is answered in a scratch write transaction where they are
 * replayed first, then aborted: reads see the transaction's own writes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lstore.h"

struct ls_tx *ls_tx_find(struct ls_conn *c, uint32_t id)
{
    struct ls_tx *t;

    for (t = c->txs; t && t->id != id; t = t->next)
        ;
    return t;
}

static void tx_free(struct ls_tx *t)
{
    for (size_t i = 0; i < t->nops; i++)
        free(t->ops[i].payload);
    for (size_t i = 0; i < t->nseen; i++) {
        free(t->seen[i].path);
        free(t->seen[i].val);
    }
    free(t->ops);
    free(t->seen);
    free(t);
}

void ls_tx_free_all(struct ls_conn *c)
{
    while (c->txs) {
        struct ls_tx *t = c->txs;
        c->txs = t->next;
        tx_free(t);
    }
    c->ntx = 0;
}

static void tx_unlink(struct ls_conn *c, struct ls_tx *tx)
{
    struct ls_tx **pp;

    for (pp = &c->txs; *pp && *pp != tx; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = tx->next;
    c->ntx--;
}

int ls_tx_start(struct ls_conn *c, const char *payload, uint32_t len,
                struct ls_buf *reply)
{
    struct ls_tx *t;
    char s[16];

    if (c->domid != 0 && c->ntx >= LS_QUOTA_TX)
        return ENOSPC;
    if (!(t = calloc(1, sizeof(*t))))
        return ENOMEM;
    if (c->next_txid == 0)
        c->next_txid = 1;
    /* Never hand out an id that is still in use after a wrap. */
    while (ls_tx_find(c, c->next_txid) || c->next_txid == 0)
        c->next_txid++;
    t->id = c->next_txid++;
    t->next = c->txs;
    c->txs = t;
    c->ntx++;
    snprintf(s, sizeof(s), "%u", t->id);
    return ls_buf_addstr(reply, s);
}

/* Remember path's committed generation, once per transaction. */
static int seen(struct ls_tx *t, struct ls_x *x, const char *path,
                bool *existed)
{
    for (size_t i = 0; i < t->nseen; i++)
        if (strcmp(t->seen[i].path, path) == 0) {
            if (existed)
                *existed = t->seen[i].gen != 0;
            return 0;
        }
    if (t->nseen == t->capseen) {
        size_t cap = t->capseen ? 2 * t->capseen : 16;
        struct ls_path *p = realloc(t->seen, cap * sizeof(*p));
        if (!p)
            return ENOMEM;
        t->seen = p;
        t->capseen = cap;
    }
    struct ls_path *p = &t->seen[t->nseen];
    *p = (struct ls_path){0};
    if (!(p->path = strdup(path)))
        return ENOMEM;
    p->gen = ls_node_gen(x, path);
    if (existed)
        *existed = p->gen != 0;
    t->nseen++;
    return 0;
}

/*
 * What a request depends on: its node; for a write, the missing parents
 * up to the first existing one (whose permissions it inherits); for a
 * removal, the parent.
 */
static int depends(struct ls_tx *t, struct ls_x *x, uint32_t type,
                   const char *payload, uint32_t len)
{
    size_t strip;
    char *p;
    int rc;
    bool existed = true;

    if (len == 0 || !memchr(payload, '\0', len) || payload[0] == '@')
        return 0;
    if (!(p = ls_canon(x->domid, payload, &strip)))
        return ENOMEM;
    if (!ls_valid_path(p)) {
        free(p);
        return 0;
    }
    rc = seen(t, x, p, &existed);
    bool up = type == XSW_RM || ((type == XSW_WRITE || type == XSW_MKDIR) &&
                                 !existed);
    while (!rc && up && strcmp(p, "/") != 0) {
        char *s = strrchr(p, '/');
        if (s == p)
            s[1] = '\0';
        else
            *s = '\0';
        rc = seen(t, x, p, &existed);
        up = type != XSW_RM && !existed;
    }
    free(p);
    return rc;
}

static int replay(struct ls_tx *t, struct ls_x *x)
{
    struct ls_buf junk = {0};
    int bad = 0;

    for (size_t i = 0; i < t->nops; i++) {
        junk.len = 0;
        if (ls_exec(x, t->ops[i].type, t->ops[i].payload, t->ops[i].len,
                    &junk))
            bad = 1;
    }
    free(junk.p);
    return bad;
}

/* Has the transaction written path (or removed it or a parent)? */
static bool tx_wrote(const struct ls_tx *t, unsigned int domid,
                     const char *path)
{
    size_t pl = strlen(path);

    for (size_t i = 0; i < t->nops; i++) {
        size_t strip;
        char *q = ls_canon(domid, t->ops[i].payload, &strip);
        bool hit = false;

        if (!q)
            return true; /* cannot tell: do not repeat */
        if (strcmp(q, path) == 0)
            hit = true;
        else if (t->ops[i].type == XSW_RM) {
            size_t ql = strlen(q);
            hit = ql < pl && strncmp(q, path, ql) == 0 &&
                  (path[ql] == '/' || strcmp(q, "/") == 0);
        }
        free(q);
        if (hit)
            return true;
    }
    return false;
}

static struct ls_path *seen_find(struct ls_tx *t, const char *path)
{
    for (size_t i = 0; i < t->nseen; i++)
        if (strcmp(t->seen[i].path, path) == 0)
            return &t->seen[i];
    return NULL;
}

static int tx_op(struct ls_conn *c, struct ls_tx *t, uint32_t type,
                 const char *payload, uint32_t len, struct ls_buf *reply);

/*
 * A READ inside a transaction answers what the transaction's first READ
 * of the node answered, until the transaction writes it: a transaction
 * sees a snapshot, as with xenstored, even after another client changed
 * the node (the commit then fails with EAGAIN).
 */
int ls_tx_op(struct ls_conn *c, struct ls_tx *t, uint32_t type,
             const char *payload, uint32_t len, struct ls_buf *reply)
{
    struct ls_path *s;
    size_t strip;
    char *p;
    int err;

    if (type != XSW_READ || len == 0 || !memchr(payload, '\0', len))
        return tx_op(c, t, type, payload, len, reply);
    if (!(p = ls_canon(c->domid, payload, &strip)))
        return ENOMEM;
    if (!ls_valid_path(p) || tx_wrote(t, c->domid, p)) {
        free(p);
        return tx_op(c, t, type, payload, len, reply);
    }
    s = seen_find(t, p);
    if (s && s->read) {
        free(p);
        if (s->read_err)
            return s->read_err;
        return ls_buf_add(reply, s->val, s->vlen) ? ENOMEM : 0;
    }
    size_t before = reply->len;
    err = tx_op(c, t, type, payload, len, reply);
    if ((s = seen_find(t, p)) != NULL) {
        s->read = true;
        s->read_err = err;
        if (!err && (s->val = malloc(reply->len - before + 1)) != NULL) {
            memcpy(s->val, reply->p + before, reply->len - before);
            s->vlen = reply->len - before;
        } else if (!err) {
            s->read = false; /* no copy: read the store next time */
        }
    }
    free(p);
    return err;
}

static int tx_op(struct ls_conn *c, struct ls_tx *t, uint32_t type,
                 const char *payload, uint32_t len, struct ls_buf *reply)
{
    bool mod = ls_is_modify(type);
    struct ls_x x = {.e = c->e, .domid = c->domid, .gen = 1};
    int err;

    /* Nothing to replay and nothing to write: a plain read snapshot. */
    err = ls_txn_begin(c->e, !mod && t->nops == 0, &x.t);
    if (err)
        return err;
    /* Dependencies first, from the committed state. */
    if ((err = depends(t, &x, type, payload, len))) {
        mdb_txn_abort(x.t);
        return err;
    }
    /* A write that no longer applies: the base changed, so will commit. */
    if (replay(t, &x))
        t->doomed = true;
    err = ls_exec(&x, type, payload, len, reply);
    mdb_txn_abort(x.t);
    if (err || !mod)
        return err;

    if (t->nops == t->capops) {
        size_t cap = t->capops ? 2 * t->capops : 8;
        struct ls_op *o = realloc(t->ops, cap * sizeof(*o));
        if (!o)
            return ENOMEM;
        t->ops = o;
        t->capops = cap;
    }
    struct ls_op *o = &t->ops[t->nops];
    if (!(o->payload = malloc(len + 1)))
        return ENOMEM;
    memcpy(o->payload, payload, len);
    o->payload[len] = '\0';
    o->type = type;
    o->len = len;
    t->nops++;
    return 0;
}

int ls_tx_end(struct ls_conn *c, struct ls_tx *t, const char *payload,
              uint32_t len, struct ls_buf *reply)
{
    struct ls_buf chg = {0};
    struct ls_x x = {.e = c->e, .domid = c->domid, .chg = &chg};
    int err = 0;

    if (len == 0 || memchr(payload, '\0', len) != payload + len - 1 ||
        (strcmp(payload, "T") != 0 && strcmp(payload, "F") != 0))
        return EINVAL;
    tx_unlink(c, t);
    if (payload[0] == 'F')
        goto done;
    if (t->doomed) {
        err = EAGAIN;
        goto done;
    }
    if ((err = ls_txn_begin(c->e, t->nops == 0, &x.t)))
        goto done;
    if (!(err = ls_meta_get(&x, "seq", &x.gen)))
        x.gen++;
    for (size_t i = 0; !err && i < t->nseen; i++)
        if (ls_node_gen(&x, t->seen[i].path) != t->seen[i].gen)
            err = EAGAIN;
    if (!err && replay(t, &x))
        err = EAGAIN;
    if (err || t->nops == 0)
        mdb_txn_abort(x.t);
    else
        err = ls_commit(&x);
done:
    free(chg.p);
    tx_free(t);
    return err ? err : ls_buf_addstr(reply, "OK");
}
