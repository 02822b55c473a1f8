/*
 * noxsd wire protocol: the one decoder and the message builder.
 *
 * The decoder is written for hostile input: every length is checked
 * against what is left before anything is copied, every count against its
 * bound, and fields are only ever copied out of the buffer (never read in
 * place), so the fuzz target in tests/fuzz exercises exactly this code.
 * Compiled into libnoxs (hidden) and linked into noxsd as an object.
 */
#include <errno.h>
#include <string.h>

#include "proto.h"

int noxs_proto_check_key(const char *key, size_t len)
{
    size_t i;

    if (len == 0)
        return -EINVAL;
    if (len > NOXS_CTRL_KEY_MAX)
        return -E2BIG;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '=')
            return -EINVAL;
    }
    return 0;
}

int noxs_proto_check_value(const char *value, size_t len)
{
    if (len > NOXS_CTRL_VALUE_MAX)
        return -E2BIG;
    if (memchr(value, '\0', len) != NULL)
        return -EINVAL;
    return 0;
}

/* A cursor over the body; every take checks what is left first. */
struct cursor {
    const uint8_t *p;
    size_t left;
};

static int take(struct cursor *c, void *out, size_t n)
{
    if (c->left < n)
        return -EPROTO;
    memcpy(out, c->p, n);
    c->p += n;
    c->left -= n;
    return 0;
}

/* Copy n bytes of text into m->text at *used, NUL-terminated. */
static const char *take_text(struct cursor *c, struct noxs_proto_msg *m,
                             size_t *used, size_t n)
{
    char *s;

    if (c->left < n || *used + n + 1 > sizeof(m->text))
        return NULL;
    s = m->text + *used;
    memcpy(s, c->p, n);
    s[n] = '\0';
    *used += n + 1;
    c->p += n;
    c->left -= n;
    return s;
}

static int check_domid(uint16_t domid, int any_ok)
{
    if (domid <= NOXS_DOMID_MAX || (any_ok && domid == NOXS_DOMID_ANY))
        return 0;
    return -EINVAL;
}

static int check_type(uint16_t type)
{
    return type >= 1 && type <= NOXS_DEV_TYPE_MAX ? 0 : -EINVAL;
}

static int check_dev(const struct noxs_msg_dev *d)
{
    if (check_domid(d->domid, 0) || check_type(d->type) ||
        check_domid(d->backend_domid, 0) ||
        d->backend_state > NOXS_STATE_MAX ||
        d->frontend_state > NOXS_STATE_MAX)
        return -EINVAL;
    return 0;
}

/*
 * Parameter records of DEV_ADD / BACKEND_CREATE. Framing errors win over
 * value errors so that a bad count is always -EPROTO whatever it contains.
 */
static int decode_params(struct cursor *c, struct noxs_proto_msg *m,
                         size_t *used, unsigned int n)
{
    int bad = 0;
    unsigned int i, j;

    if (n > NOXS_PROTO_MAX_PARAMS)
        return -EPROTO;
    for (i = 0; i < n; i++) {
        struct noxs_msg_param p;
        const char *k, *v;

        if (take(c, &p, sizeof(p)) < 0 || p.reserved != 0 ||
            p.key_len > NOXS_CTRL_KEY_MAX || p.key_len == 0 ||
            p.value_len > NOXS_CTRL_VALUE_MAX)
            return -EPROTO;
        k = take_text(c, m, used, p.key_len);
        v = k ? take_text(c, m, used, p.value_len) : NULL;
        if (!k || !v)
            return -EPROTO;
        if (noxs_proto_check_key(k, p.key_len) < 0 ||
            noxs_proto_check_value(v, p.value_len) < 0)
            bad = 1; /* an embedded NUL or a bad key byte */
        for (j = 0; j < i; j++)
            if (strcmp(m->params[j].key, k) == 0)
                bad = 1;
        m->params[i].key = k;
        m->params[i].value = v;
    }
    m->nparams = n;
    return bad ? -EINVAL : 0;
}

/*
 * Body checks, one per type that has more than its fixed part: called by
 * noxs_proto_decode() once the fixed part is in m->u (and, for types
 * without a variable part, once the body is known to be exactly that).
 * Framing errors are -EPROTO, out-of-range values -EINVAL.
 */
typedef int body_fn(struct cursor *c, struct noxs_proto_msg *m, size_t *used);

static int body_error(struct cursor *c, struct noxs_proto_msg *m,
                      size_t *used)
{
    return m->hdr.error > 0 && m->hdr.error < 4096 ? 0 : -EPROTO;
}

static int body_domid(struct noxs_proto_msg *m, int any_ok)
{
    if (m->u.domid.reserved != 0)
        return -EPROTO;
    return check_domid(m->u.domid.domid, any_ok);
}

/* DOMAIN_CREATE, DOMAIN_DESTROY: one real domain. */
static int body_domid_one(struct cursor *c, struct noxs_proto_msg *m,
                          size_t *used)
{
    return body_domid(m, 0);
}

/* DEV_LIST, WATCH: a domain or NOXS_DOMID_ANY. */
static int body_domid_any(struct cursor *c, struct noxs_proto_msg *m,
                          size_t *used)
{
    return body_domid(m, 1);
}

static int body_dev_id(struct cursor *c, struct noxs_proto_msg *m,
                       size_t *used)
{
    return check_domid(m->u.dev_id.domid, 0) || check_type(m->u.dev_id.type)
               ? -EINVAL
               : 0;
}

static int body_dev(struct cursor *c, struct noxs_proto_msg *m, size_t *used)
{
    return check_dev(&m->u.dev);
}

static int body_event(struct cursor *c, struct noxs_proto_msg *m,
                      size_t *used)
{
    return m->u.event.reserved != 0 ? -EPROTO : 0;
}

static int body_dev_add(struct cursor *c, struct noxs_proto_msg *m,
                        size_t *used)
{
    int rc;

    if (m->u.dev_add.reserved != 0)
        return -EPROTO;
    rc = decode_params(c, m, used, m->u.dev_add.nparams);
    if (rc == -EPROTO || c->left != 0)
        return -EPROTO;
    if (check_domid(m->u.dev_add.domid, 0) ||
        check_type(m->u.dev_add.type) ||
        check_domid(m->u.dev_add.backend_domid, 0))
        return -EINVAL;
    return rc;
}

static int body_control(struct cursor *c, struct noxs_proto_msg *m,
                        size_t *used)
{
    const struct noxs_msg_control *ctl = &m->u.control;

    if (ctl->key_len == 0 || ctl->key_len > NOXS_CTRL_KEY_MAX ||
        ctl->value_len > NOXS_CTRL_VALUE_MAX)
        return -EPROTO;
    m->key = take_text(c, m, used, ctl->key_len);
    m->value = m->key ? take_text(c, m, used, ctl->value_len) : NULL;
    if (!m->key || !m->value)
        return -EPROTO;
    if (c->left != 0)
        return -EPROTO;
    if (noxs_proto_check_key(m->key, ctl->key_len) < 0 ||
        noxs_proto_check_value(m->value, ctl->value_len) < 0 ||
        check_domid(ctl->domid, 0) || check_type(ctl->type))
        return -EINVAL;
    return 0;
}

static int body_control_reply(struct cursor *c, struct noxs_proto_msg *m,
                              size_t *used)
{
    const struct noxs_msg_control_reply *r = &m->u.control_reply;

    if (r->reserved != 0 || r->len > NOXS_PROTO_MAX_REPLY)
        return -EPROTO;
    m->value = take_text(c, m, used, r->len);
    if (!m->value || c->left != 0)
        return -EPROTO;
    return noxs_proto_check_value(m->value, r->len) < 0 ? -EINVAL : 0;
}

static int body_register(struct cursor *c, struct noxs_proto_msg *m,
                         size_t *used)
{
    const struct noxs_msg_register *r = &m->u.reg;
    unsigned int i, j;

    if (r->ntypes == 0 || r->ntypes > NOXS_PROTO_MAX_TYPES ||
        (c->left != r->ntypes * sizeof(uint16_t) &&
         c->left != r->ntypes * sizeof(uint16_t) + sizeof(uint32_t)))
        return -EPROTO;
    for (i = 0; i < r->ntypes; i++)
        take(c, &m->types[i], sizeof(uint16_t));
    m->reg_flags = 0;
    if (c->left && (take(c, &m->reg_flags, sizeof(m->reg_flags)) < 0 ||
                    (m->reg_flags & ~NOXS_REGISTER_KEEP) != 0))
        return -EPROTO;
    if (check_domid(r->domid, 0))
        return -EINVAL;
    for (i = 0; i < r->ntypes; i++) {
        if (check_type(m->types[i]))
            return -EINVAL;
        for (j = 0; j < i; j++)
            if (m->types[j] == m->types[i])
                return -EINVAL;
    }
    return 0;
}

static int body_sync(struct cursor *c, struct noxs_proto_msg *m,
                     size_t *used)
{
    struct noxs_msg_dev d;
    size_t i;

    if ((m->u.sync.flags & ~NOXS_SYNC_FINAL) != 0 ||
        m->u.sync.count > NOXS_PROTO_MAX_SYNC ||
        c->left != m->u.sync.count * sizeof(struct noxs_msg_dev))
        return -EPROTO;
    m->sync_items = c->p;
    for (i = 0; i < m->u.sync.count; i++) {
        noxs_proto_sync_item(m, i, &d);
        if (check_dev(&d))
            return -EINVAL;
    }
    return 0;
}

/* ---- the table ---- */

struct msg_row {
    struct noxs_msg_desc d;
    body_fn *body;  /* the request's (or item's) checks, or NULL */
    body_fn *reply; /* the reply's checks, or NULL */
};

#define TO NOXS_MSGD_TO_NOXSD
#define FROM NOXS_MSGD_FROM_NOXSD
#define ANYONE NOXS_MSGA_ANYONE
#define PRIV NOXS_MSGA_PRIVILEGED
#define BACKEND NOXS_MSGA_BACKEND
#define NONE NOXS_MSGV_NONE
#define SZ(s) ((uint16_t)sizeof(struct s))

/*
 * {type, direction, access, name, body, variable, has_reply, reply body,
 * reply variable}, then the checks. Messages noxsd sends have access
 * ANYONE (noxsd never receives them as requests). A reply with an
 * empty body has reply size 0 and no check.
 */
/* clang-format off */
static const struct msg_row msgs[] = {
    {{NOXS_MSG_ERROR, NOXS_MSGD_ANY, ANYONE, "ERROR", 0, NONE, 0, 0, NONE, 0},
     body_error, NULL},
    {{NOXS_MSG_END, FROM, ANYONE, "END", 0, NONE, 0, 0, NONE, 0}, NULL, NULL},
    {{NOXS_MSG_DOMAIN_CREATE, TO, PRIV, "DOMAIN_CREATE", SZ(noxs_msg_domid),
      NONE, 1, SZ(noxs_msg_domain), NONE, 0},
     body_domid_one, NULL},
    {{NOXS_MSG_DOMAIN_DESTROY, TO, PRIV, "DOMAIN_DESTROY",
      SZ(noxs_msg_domid), NONE, 1, 0, NONE, 0},
     body_domid_one, NULL},
    {{NOXS_MSG_DOMAIN_LIST, TO, ANYONE, "DOMAIN_LIST", 0, NONE, 0, 0, NONE,
      0},
     NULL, NULL},
    {{NOXS_MSG_DOMAIN_ITEM, FROM, ANYONE, "DOMAIN_ITEM", SZ(noxs_msg_domain),
      NONE, 0, 0, NONE, 0},
     NULL, NULL},
    {{NOXS_MSG_DEV_ADD, TO, PRIV, "DEV_ADD", SZ(noxs_msg_dev_add),
      NOXS_MSGV_PARAMS, 1, SZ(noxs_msg_dev), NONE, 0},
     body_dev_add, NULL},
    {{NOXS_MSG_DEV_REMOVE, TO, PRIV, "DEV_REMOVE", SZ(noxs_msg_dev_id), NONE,
      1, 0, NONE, 0},
     body_dev_id, NULL},
    {{NOXS_MSG_DEV_LIST, TO, ANYONE, "DEV_LIST", SZ(noxs_msg_domid), NONE, 0,
      0, NONE, 0},
     body_domid_any, NULL},
    {{NOXS_MSG_DEV_ITEM, FROM, ANYONE, "DEV_ITEM", SZ(noxs_msg_dev), NONE, 0,
      0, NONE, 0},
     NULL, NULL},
    {{NOXS_MSG_STATUS, TO, ANYONE, "STATUS", 0, NONE, 1, SZ(noxs_msg_status),
      NONE, 0},
     NULL, NULL},
    {{NOXS_MSG_DEV_CONTROL, TO, PRIV, "DEV_CONTROL", SZ(noxs_msg_control),
      NOXS_MSGV_KEYVAL, 1, SZ(noxs_msg_control_reply), NOXS_MSGV_TEXT, 0},
     body_control, body_control_reply},
    {{NOXS_MSG_WATCH, TO, ANYONE, "WATCH", SZ(noxs_msg_domid), NONE, 1, 0,
      NONE, 0},
     body_domid_any, NULL},
    {{NOXS_MSG_EVENT, FROM, ANYONE, "EVENT", SZ(noxs_msg_event), NONE, 0, 0,
      NONE, 0},
     body_event, NULL},
    {{NOXS_MSG_BACKEND_REGISTER, TO, PRIV, "BACKEND_REGISTER",
      SZ(noxs_msg_register), NOXS_MSGV_TYPES, 1, 0, NONE, 0},
     body_register, NULL},
    {{NOXS_MSG_BACKEND_SYNC, TO, BACKEND, "BACKEND_SYNC", SZ(noxs_msg_sync),
      NOXS_MSGV_DEVS, 1, 0, NONE, 0},
     body_sync, NULL},
    {{NOXS_MSG_BACKEND_CREATE, FROM, ANYONE, "BACKEND_CREATE",
      SZ(noxs_msg_dev_add), NOXS_MSGV_PARAMS, 1, SZ(noxs_msg_dev_ref), NONE,
      0},
     body_dev_add, NULL},
    {{NOXS_MSG_BACKEND_REMOVE, FROM, ANYONE, "BACKEND_REMOVE",
      SZ(noxs_msg_dev_id), NONE, 1, 0, NONE, 0},
     body_dev_id, NULL},
    {{NOXS_MSG_BACKEND_CONTROL, FROM, ANYONE, "BACKEND_CONTROL",
      SZ(noxs_msg_control), NOXS_MSGV_KEYVAL, 1, SZ(noxs_msg_control_reply),
      NOXS_MSGV_TEXT, 0},
     body_control, body_control_reply},
    {{NOXS_MSG_BACKEND_STATE, TO, BACKEND, "BACKEND_STATE", SZ(noxs_msg_dev),
      NONE, 0, 0, NONE, 0},
     body_dev, NULL},
};
/* clang-format on */

#undef TO
#undef FROM
#undef ANYONE
#undef PRIV
#undef BACKEND
#undef NONE
#undef SZ

#define NMSGS (sizeof(msgs) / sizeof(msgs[0]))

static const struct msg_row *row(unsigned int type)
{
    size_t i;

    for (i = 0; i < NMSGS; i++)
        if (msgs[i].d.type == type)
            return &msgs[i];
    return NULL;
}

const struct noxs_msg_desc *noxs_proto_desc(unsigned int type)
{
    const struct msg_row *r = row(type & ~NOXS_MSG_REPLY);

    return r ? &r->d : NULL;
}

const struct noxs_msg_desc *noxs_proto_desc_at(size_t i)
{
    return i < NMSGS ? &msgs[i].d : NULL;
}

size_t noxs_proto_ndesc(void)
{
    return NMSGS;
}

int noxs_proto_type_known(unsigned int type)
{
    const struct msg_row *r = row(type & ~NOXS_MSG_REPLY);

    if (!r)
        return 0;
    return (type & NOXS_MSG_REPLY) ? r->d.has_reply : 1;
}

const char *noxs_proto_type_name(unsigned int type)
{
    const struct msg_row *r = row(type & ~NOXS_MSG_REPLY);

    return r ? r->d.name : "UNKNOWN";
}

/*
 * The header rules, then the row: the fixed part is copied into m->u
 * (every union member starts at its beginning), a body without a
 * variable part must be exactly that long, and the row's check does the
 * rest.
 */
int noxs_proto_decode(const void *buf, size_t len, struct noxs_proto_msg *m)
{
    struct cursor c = {buf, len};
    const struct msg_row *r;
    size_t used = 0, fixed;
    unsigned int variable;
    int reply;
    body_fn *check;

    memset(&m->hdr, 0, sizeof(m->hdr));
    memset(&m->u, 0, sizeof(m->u));
    m->nparams = 0;
    m->key = m->value = NULL;
    m->sync_items = NULL;

    if (len > NOXS_PROTO_MAX_MSG || take(&c, &m->hdr, sizeof(m->hdr)) < 0)
        return -EPROTO;
    if (m->hdr.version != NOXS_PROTO_VERSION || m->hdr.length != len ||
        !noxs_proto_type_known(m->hdr.type))
        return -EPROTO;
    reply = (m->hdr.type & NOXS_MSG_REPLY) != 0;
    r = row(m->hdr.type & ~NOXS_MSG_REPLY);
    /* Only ERROR carries an error, and DOMAIN_CREATE's EEXIST reply,
     * which still gives the caller the bootstrap. */
    if (m->hdr.error != 0 && r->d.type != NOXS_MSG_ERROR &&
        !(reply && r->d.type == NOXS_MSG_DOMAIN_CREATE &&
          m->hdr.error == EEXIST))
        return -EPROTO;
    fixed = reply ? r->d.reply_body : r->d.body;
    variable = reply ? r->d.reply_variable : r->d.variable;
    check = reply ? r->reply : r->body;
    if (variable == NOXS_MSGV_NONE ? c.left != fixed : c.left < fixed)
        return -EPROTO;
    if (take(&c, &m->u, fixed) < 0)
        return -EPROTO;
    if (check)
        return check(&c, m, &used);
    return c.left == 0 ? 0 : -EPROTO;
}

void noxs_proto_sync_item(const struct noxs_proto_msg *m, size_t i,
                          struct noxs_msg_dev *out)
{
    memcpy(out, m->sync_items + i * sizeof(*out), sizeof(*out));
}

void noxs_proto_begin(struct noxs_proto_buf *b, unsigned int type,
                      uint32_t request, int error)
{
    struct noxs_msg_hdr h = {
        .version = NOXS_PROTO_VERSION,
        .type = (uint16_t)type,
        .length = 0,
        .request = request,
        .error = error,
    };

    b->len = 0;
    b->overflow = 0;
    noxs_proto_put(b, &h, sizeof(h));
}

void noxs_proto_put(struct noxs_proto_buf *b, const void *p, size_t n)
{
    if (b->overflow || n > sizeof(b->data) - b->len) {
        b->overflow = 1;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

int noxs_proto_put_param(struct noxs_proto_buf *b, const char *key,
                         const char *value)
{
    struct noxs_msg_param p = {0};
    size_t kl = strlen(key), vl = strlen(value);
    int rc;

    if ((rc = noxs_proto_check_key(key, kl)) < 0 ||
        (rc = noxs_proto_check_value(value, vl)) < 0)
        return rc;
    p.key_len = (uint8_t)kl;
    p.value_len = (uint16_t)vl;
    noxs_proto_put(b, &p, sizeof(p));
    noxs_proto_put(b, key, kl);
    noxs_proto_put(b, value, vl);
    return 0;
}

int noxs_proto_finish(struct noxs_proto_buf *b)
{
    uint32_t len = (uint32_t)b->len;

    if (b->overflow)
        return -EMSGSIZE;
    memcpy(b->data + offsetof(struct noxs_msg_hdr, length), &len, sizeof(len));
    return (int)len;
}

int noxs_proto_simple(struct noxs_proto_buf *b, unsigned int type,
                      uint32_t request, int error)
{
    noxs_proto_begin(b, type, request, error);
    return noxs_proto_finish(b);
}
