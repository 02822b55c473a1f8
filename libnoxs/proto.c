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

static const struct {
    unsigned int type;
    const char *name;
} msg_names[] = {
    {NOXS_MSG_ERROR, "ERROR"},
    {NOXS_MSG_END, "END"},
    {NOXS_MSG_DOMAIN_CREATE, "DOMAIN_CREATE"},
    {NOXS_MSG_DOMAIN_DESTROY, "DOMAIN_DESTROY"},
    {NOXS_MSG_DOMAIN_LIST, "DOMAIN_LIST"},
    {NOXS_MSG_DOMAIN_ITEM, "DOMAIN_ITEM"},
    {NOXS_MSG_DEV_ADD, "DEV_ADD"},
    {NOXS_MSG_DEV_REMOVE, "DEV_REMOVE"},
    {NOXS_MSG_DEV_LIST, "DEV_LIST"},
    {NOXS_MSG_DEV_ITEM, "DEV_ITEM"},
    {NOXS_MSG_STATUS, "STATUS"},
    {NOXS_MSG_DEV_CONTROL, "DEV_CONTROL"},
    {NOXS_MSG_WATCH, "WATCH"},
    {NOXS_MSG_EVENT, "EVENT"},
    {NOXS_MSG_BACKEND_REGISTER, "BACKEND_REGISTER"},
    {NOXS_MSG_BACKEND_SYNC, "BACKEND_SYNC"},
    {NOXS_MSG_BACKEND_CREATE, "BACKEND_CREATE"},
    {NOXS_MSG_BACKEND_REMOVE, "BACKEND_REMOVE"},
    {NOXS_MSG_BACKEND_CONTROL, "BACKEND_CONTROL"},
    {NOXS_MSG_BACKEND_STATE, "BACKEND_STATE"},
};

/* Request types that have a REPLY form (lists answer with items + END). */
static int has_reply(unsigned int type)
{
    switch (type) {
    case NOXS_MSG_DOMAIN_CREATE:
    case NOXS_MSG_DOMAIN_DESTROY:
    case NOXS_MSG_DEV_ADD:
    case NOXS_MSG_DEV_REMOVE:
    case NOXS_MSG_STATUS:
    case NOXS_MSG_DEV_CONTROL:
    case NOXS_MSG_WATCH:
    case NOXS_MSG_BACKEND_REGISTER:
    case NOXS_MSG_BACKEND_SYNC:
    case NOXS_MSG_BACKEND_CREATE:
    case NOXS_MSG_BACKEND_REMOVE:
    case NOXS_MSG_BACKEND_CONTROL:
        return 1;
    default:
        return 0;
    }
}

int noxs_proto_type_known(unsigned int type)
{
    size_t i;

    if (type & NOXS_MSG_REPLY)
        return has_reply(type & ~NOXS_MSG_REPLY);
    for (i = 0; i < sizeof(msg_names) / sizeof(msg_names[0]); i++)
        if (msg_names[i].type == type)
            return 1;
    return 0;
}

const char *noxs_proto_type_name(unsigned int type)
{
    size_t i;

    for (i = 0; i < sizeof(msg_names) / sizeof(msg_names[0]); i++)
        if (msg_names[i].type == (type & ~NOXS_MSG_REPLY))
            return msg_names[i].name;
    return "UNKNOWN";
}

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

static int decode_control(struct cursor *c, struct noxs_proto_msg *m,
                          size_t *used)
{
    const struct noxs_msg_control *ctl = &m->u.control;

    if (take(c, &m->u.control, sizeof(m->u.control)) < 0 ||
        ctl->key_len == 0 || ctl->key_len > NOXS_CTRL_KEY_MAX ||
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

static int decode_control_reply(struct cursor *c, struct noxs_proto_msg *m,
                                size_t *used)
{
    const struct noxs_msg_control_reply *r = &m->u.control_reply;

    if (take(c, &m->u.control_reply, sizeof(*r)) < 0 || r->reserved != 0 ||
        r->len > NOXS_PROTO_MAX_REPLY)
        return -EPROTO;
    m->value = take_text(c, m, used, r->len);
    if (!m->value || c->left != 0)
        return -EPROTO;
    return noxs_proto_check_value(m->value, r->len) < 0 ? -EINVAL : 0;
}

/* Fixed-size body: exactly n bytes. */
static int fixed(struct cursor *c, void *out, size_t n)
{
    if (c->left != n)
        return -EPROTO;
    return take(c, out, n);
}

static int decode_reply(struct cursor *c, struct noxs_proto_msg *m,
                        size_t *used)
{
    unsigned int req = m->hdr.type & ~NOXS_MSG_REPLY;

    if (m->hdr.error != 0 &&
        !(req == NOXS_MSG_DOMAIN_CREATE && m->hdr.error == EEXIST))
        return -EPROTO;
    switch (req) {
    case NOXS_MSG_DOMAIN_CREATE:
        return fixed(c, &m->u.domain, sizeof(m->u.domain));
    case NOXS_MSG_DEV_ADD:
        return fixed(c, &m->u.dev, sizeof(m->u.dev));
    case NOXS_MSG_STATUS:
        return fixed(c, &m->u.status, sizeof(m->u.status));
    case NOXS_MSG_BACKEND_CREATE:
        return fixed(c, &m->u.dev_ref, sizeof(m->u.dev_ref));
    case NOXS_MSG_DEV_CONTROL:
    case NOXS_MSG_BACKEND_CONTROL:
        return decode_control_reply(c, m, used);
    default: /* the rest have empty replies */
        return c->left == 0 ? 0 : -EPROTO;
    }
}

int noxs_proto_decode(const void *buf, size_t len, struct noxs_proto_msg *m)
{
    struct cursor c = {buf, len};
    size_t used = 0;
    int rc;
    unsigned int i, j;

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
    if (m->hdr.type & NOXS_MSG_REPLY)
        return decode_reply(&c, m, &used);
    if (m->hdr.type == NOXS_MSG_ERROR)
        return c.left == 0 && m->hdr.error > 0 && m->hdr.error < 4096
                   ? 0
                   : -EPROTO;
    if (m->hdr.error != 0)
        return -EPROTO;

    switch (m->hdr.type) {
    case NOXS_MSG_END:
    case NOXS_MSG_DOMAIN_LIST:
    case NOXS_MSG_STATUS:
        return c.left == 0 ? 0 : -EPROTO;
    case NOXS_MSG_DOMAIN_CREATE:
    case NOXS_MSG_DOMAIN_DESTROY:
    case NOXS_MSG_DEV_LIST:
    case NOXS_MSG_WATCH:
        if (fixed(&c, &m->u.domid, sizeof(m->u.domid)) < 0 ||
            m->u.domid.reserved != 0)
            return -EPROTO;
        return check_domid(m->u.domid.domid,
                           m->hdr.type == NOXS_MSG_DEV_LIST ||
                               m->hdr.type == NOXS_MSG_WATCH);
    case NOXS_MSG_DOMAIN_ITEM:
        return fixed(&c, &m->u.domain, sizeof(m->u.domain));
    case NOXS_MSG_DEV_REMOVE:
    case NOXS_MSG_BACKEND_REMOVE:
        if (fixed(&c, &m->u.dev_id, sizeof(m->u.dev_id)) < 0)
            return -EPROTO;
        return check_domid(m->u.dev_id.domid, 0) ||
                       check_type(m->u.dev_id.type)
                   ? -EINVAL
                   : 0;
    case NOXS_MSG_DEV_ITEM:
        return fixed(&c, &m->u.dev, sizeof(m->u.dev));
    case NOXS_MSG_BACKEND_STATE:
        if (fixed(&c, &m->u.dev, sizeof(m->u.dev)) < 0)
            return -EPROTO;
        return check_dev(&m->u.dev);
    case NOXS_MSG_EVENT:
        if (fixed(&c, &m->u.event, sizeof(m->u.event)) < 0 ||
            m->u.event.reserved != 0)
            return -EPROTO;
        return 0;
    case NOXS_MSG_DEV_ADD:
    case NOXS_MSG_BACKEND_CREATE:
        if (take(&c, &m->u.dev_add, sizeof(m->u.dev_add)) < 0 ||
            m->u.dev_add.reserved != 0)
            return -EPROTO;
        rc = decode_params(&c, m, &used, m->u.dev_add.nparams);
        if (rc == -EPROTO || c.left != 0)
            return -EPROTO;
        if (check_domid(m->u.dev_add.domid, 0) ||
            check_type(m->u.dev_add.type) ||
            check_domid(m->u.dev_add.backend_domid, 0))
            return -EINVAL;
        return rc;
    case NOXS_MSG_DEV_CONTROL:
    case NOXS_MSG_BACKEND_CONTROL:
        return decode_control(&c, m, &used);
    case NOXS_MSG_BACKEND_REGISTER:
        if (take(&c, &m->u.reg, sizeof(m->u.reg)) < 0 ||
            m->u.reg.ntypes == 0 || m->u.reg.ntypes > NOXS_PROTO_MAX_TYPES ||
            (c.left != m->u.reg.ntypes * sizeof(uint16_t) &&
             c.left != m->u.reg.ntypes * sizeof(uint16_t) + sizeof(uint32_t)))
            return -EPROTO;
        for (i = 0; i < m->u.reg.ntypes; i++)
            take(&c, &m->types[i], sizeof(uint16_t));
        m->reg_flags = 0;
        if (c.left && (take(&c, &m->reg_flags, sizeof(m->reg_flags)) < 0 ||
                       (m->reg_flags & ~NOXS_REGISTER_KEEP) != 0))
            return -EPROTO;
        if (check_domid(m->u.reg.domid, 0))
            return -EINVAL;
        for (i = 0; i < m->u.reg.ntypes; i++) {
            if (check_type(m->types[i]))
                return -EINVAL;
            for (j = 0; j < i; j++)
                if (m->types[j] == m->types[i])
                    return -EINVAL;
        }
        return 0;
    case NOXS_MSG_BACKEND_SYNC:
        if (take(&c, &m->u.sync, sizeof(m->u.sync)) < 0 ||
            (m->u.sync.flags & ~NOXS_SYNC_FINAL) != 0 ||
            m->u.sync.count > NOXS_PROTO_MAX_SYNC ||
            c.left != m->u.sync.count * sizeof(struct noxs_msg_dev))
            return -EPROTO;
        m->sync_items = c.p;
        for (i = 0; i < m->u.sync.count; i++) {
            struct noxs_msg_dev d;
            noxs_proto_sync_item(m, i, &d);
            if (check_dev(&d))
                return -EINVAL;
        }
        return 0;
    default:
        return -EPROTO;
    }
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
