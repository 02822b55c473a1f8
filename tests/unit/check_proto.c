/*
 * The wire protocol: every message type round-trips through the builder
 * and noxs_proto_decode(); every malformed version, type, length, count
 * and reserved field is rejected before any body field is trusted.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "check_main.h"

static struct noxs_proto_buf *b;
static struct noxs_proto_msg *m;

static void setup(void)
{
    b = calloc(1, sizeof(*b));
    m = calloc(1, sizeof(*m));
}

static void teardown(void)
{
    free(b);
    free(m);
}

static int decode(void)
{
    return noxs_proto_decode(b->data, b->len, m);
}

/* A message of TYPE (request 1) made of two bodies, as decode() sees it. */
static int two_bodies(unsigned int type, const void *b1, size_t n1,
                      const void *b2, size_t n2)
{
    noxs_proto_begin(b, type, 1, 0);
    noxs_proto_put(b, b1, n1);
    if (n2 > 0)
        noxs_proto_put(b, b2, n2);
    noxs_proto_finish(b);
    return decode();
}

/* The same with one body. */
static int one_body(unsigned int type, const void *body, size_t n)
{
    return two_bodies(type, body, n, NULL, 0);
}

/* A message of TYPE with one fixed-size body, as decode() sees it. */
static int fixed_msg(unsigned int type, const void *body, size_t n)
{
    noxs_proto_begin(b, type, 77, 0);
    noxs_proto_put(b, body, n);
    ck_assert_int_gt(noxs_proto_finish(b), 0);
    return decode();
}

/* Each prefix, each extension by one byte, with a matching length
 * field, must fail with EPROTO. */
static void assert_length_exact(void)
{
    uint8_t save[NOXS_PROTO_MAX_MSG];
    size_t len = b->len, i;
    uint32_t l;

    memcpy(save, b->data, len);
    for (i = 0; i < len; i++) {
        l = (uint32_t)i;
        memcpy(b->data + 4, &l, 4);
        ck_assert_int_eq(noxs_proto_decode(b->data, i, m), -EPROTO);
    }
    memcpy(b->data, save, len);
    b->data[len] = 0;
    l = (uint32_t)len + 1;
    memcpy(b->data + 4, &l, 4);
    ck_assert_int_eq(noxs_proto_decode(b->data, len + 1, m), -EPROTO);
    /* The length field disagreeing with the datagram. */
    memcpy(b->data, save, len);
    l = (uint32_t)len + 4;
    memcpy(b->data + 4, &l, 4);
    ck_assert_int_eq(noxs_proto_decode(b->data, len, m), -EPROTO);
    memcpy(b->data, save, len);
}

START_TEST(test_header_only)
{
    static const unsigned int types[] = {NOXS_MSG_END, NOXS_MSG_DOMAIN_LIST,
                                         NOXS_MSG_STATUS};
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        ck_assert_int_eq(noxs_proto_simple(b, types[i], 9, 0), 16);
        ck_assert_int_eq(decode(), 0);
        ck_assert_uint_eq(m->hdr.type, types[i]);
        ck_assert_uint_eq(m->hdr.request, 9);
        assert_length_exact();
    }
    /* ERROR needs a positive errno; others need none. */
    noxs_proto_simple(b, NOXS_MSG_ERROR, 3, ENODEV);
    ck_assert_int_eq(decode(), 0);
    ck_assert_int_eq(m->hdr.error, ENODEV);
    noxs_proto_simple(b, NOXS_MSG_ERROR, 3, 0);
    ck_assert_int_eq(decode(), -EPROTO);
    noxs_proto_simple(b, NOXS_MSG_ERROR, 3, -5);
    ck_assert_int_eq(decode(), -EPROTO);
    noxs_proto_simple(b, NOXS_MSG_END, 3, EIO);
    ck_assert_int_eq(decode(), -EPROTO);
}
END_TEST

START_TEST(test_domid_requests)
{
    static const unsigned int types[] = {NOXS_MSG_DOMAIN_CREATE,
                                         NOXS_MSG_DOMAIN_DESTROY,
                                         NOXS_MSG_DEV_LIST, NOXS_MSG_WATCH};
    struct noxs_msg_domid d = {.domid = 42};
    size_t i;

    for (i = 0; i < 4; i++) {
        d.domid = 42;
        d.reserved = 0;
        ck_assert_int_eq(fixed_msg(types[i], &d, sizeof(d)), 0);
        ck_assert_uint_eq(m->u.domid.domid, 42);
        assert_length_exact();
        d.reserved = 1;
        ck_assert_int_eq(fixed_msg(types[i], &d, sizeof(d)), -EPROTO);
        d.reserved = 0;
        d.domid = NOXS_DOMID_MAX + 1;
        ck_assert_int_eq(fixed_msg(types[i], &d, sizeof(d)), -EINVAL);
        ck_assert_uint_eq(m->hdr.request, 77); /* still echoable */
        d.domid = NOXS_DOMID_ANY;
        ck_assert_int_eq(fixed_msg(types[i], &d, sizeof(d)),
                         types[i] == NOXS_MSG_DEV_LIST ||
                                 types[i] == NOXS_MSG_WATCH
                             ? 0
                             : -EINVAL);
    }
}
END_TEST

/* TYPE's reply with error EEXIST and BODY, as decode() sees it. */
static int eexist_reply(unsigned int type, const void *body, size_t n)
{
    noxs_proto_begin(b, type | NOXS_MSG_REPLY, 1, EEXIST);
    noxs_proto_put(b, body, n);
    noxs_proto_finish(b);
    return decode();
}

START_TEST(test_fixed_bodies)
{
    struct noxs_msg_domain dom = {3, 0, 8, 5, 2};
    struct noxs_msg_dev_id id = {3, NOXS_DEV_SYSCTL, 0};
    struct noxs_msg_dev dev = {3, NOXS_DEV_BLK, 51712, 0, 4, 4, 9, 7, 1};
    struct noxs_msg_event ev = {NOXS_EVENT_DEV_ADDED, 0, dev};
    struct noxs_msg_dev_ref ref = {9, 7};
    struct noxs_msg_status st = {1, 100, 99, 1, 2, 3, 4, 5, 6, 7};

    ck_assert_int_eq(fixed_msg(NOXS_MSG_DOMAIN_ITEM, &dom, sizeof(dom)), 0);
    ck_assert_uint_eq(m->u.domain.gref, 8);
    assert_length_exact();

    ck_assert_int_eq(fixed_msg(NOXS_MSG_DOMAIN_CREATE | NOXS_MSG_REPLY, &dom,
                               sizeof(dom)),
                     0);
    ck_assert_uint_eq(m->u.domain.port, 5);
    assert_length_exact();
    /* EEXIST is the one error carried by a normal reply. */
    ck_assert_int_eq(eexist_reply(NOXS_MSG_DOMAIN_CREATE, &dom, sizeof(dom)),
                     0);
    ck_assert_int_eq(eexist_reply(NOXS_MSG_DEV_ADD, &dev, sizeof(dev)),
                     -EPROTO);

    ck_assert_int_eq(fixed_msg(NOXS_MSG_DEV_REMOVE, &id, sizeof(id)), 0);
    assert_length_exact();
    ck_assert_int_eq(fixed_msg(NOXS_MSG_BACKEND_REMOVE, &id, sizeof(id)), 0);
    ck_assert_uint_eq(m->u.dev_id.type, NOXS_DEV_SYSCTL);
    id.type = 0;
    ck_assert_int_eq(fixed_msg(NOXS_MSG_DEV_REMOVE, &id, sizeof(id)), -EINVAL);
    id.type = NOXS_DEV_TYPE_MAX + 1;
    ck_assert_int_eq(fixed_msg(NOXS_MSG_DEV_REMOVE, &id, sizeof(id)), -EINVAL);

    ck_assert_int_eq(fixed_msg(NOXS_MSG_DEV_ITEM, &dev, sizeof(dev)), 0);
    ck_assert_uint_eq(m->u.dev.devid, 51712);
    assert_length_exact();
    ck_assert_int_eq(fixed_msg(NOXS_MSG_DEV_ADD | NOXS_MSG_REPLY, &dev,
                               sizeof(dev)),
                     0);
    ck_assert_int_eq(fixed_msg(NOXS_MSG_BACKEND_STATE, &dev, sizeof(dev)), 0);
    assert_length_exact();
    dev.frontend_state = 9;
    ck_assert_int_eq(fixed_msg(NOXS_MSG_BACKEND_STATE, &dev, sizeof(dev)),
                     -EINVAL);

    ck_assert_int_eq(fixed_msg(NOXS_MSG_EVENT, &ev, sizeof(ev)), 0);
    ck_assert_uint_eq(m->u.event.kind, NOXS_EVENT_DEV_ADDED);
    ck_assert_uint_eq(m->u.event.dev.control_gref, 9);
    assert_length_exact();
    ev.reserved = 1;
    ck_assert_int_eq(fixed_msg(NOXS_MSG_EVENT, &ev, sizeof(ev)), -EPROTO);

    ck_assert_int_eq(fixed_msg(NOXS_MSG_BACKEND_CREATE | NOXS_MSG_REPLY, &ref,
                               sizeof(ref)),
                     0);
    ck_assert_uint_eq(m->u.dev_ref.backend_port, 7);
    assert_length_exact();

    ck_assert_int_eq(fixed_msg(NOXS_MSG_STATUS | NOXS_MSG_REPLY, &st,
                               sizeof(st)),
                     0);
    ck_assert_uint_eq(m->u.status.restarts, 6);
    ck_assert_uint_eq(m->u.status.rss_bytes, 5);
    ck_assert_uint_eq(m->u.status.heap_kib, 7);
    assert_length_exact();
}
END_TEST

START_TEST(test_empty_replies)
{
    static const unsigned int types[] = {
        NOXS_MSG_DOMAIN_DESTROY, NOXS_MSG_DEV_REMOVE,
        NOXS_MSG_WATCH, NOXS_MSG_BACKEND_REGISTER,
        NOXS_MSG_BACKEND_SYNC, NOXS_MSG_BACKEND_REMOVE};
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        noxs_proto_simple(b, types[i] | NOXS_MSG_REPLY, 5, 0);
        ck_assert_int_eq(decode(), 0);
        assert_length_exact();
    }
    /* Lists have no REPLY form. */
    noxs_proto_simple(b, NOXS_MSG_DEV_LIST | NOXS_MSG_REPLY, 5, 0);
    ck_assert_int_eq(decode(), -EPROTO);
    noxs_proto_simple(b, NOXS_MSG_EVENT | NOXS_MSG_REPLY, 5, 0);
    ck_assert_int_eq(decode(), -EPROTO);
}
END_TEST

static void build_dev_add(unsigned int type, unsigned int nparams)
{
    struct noxs_msg_dev_add a = {5, NOXS_DEV_BLK, 1, 0, (uint16_t)nparams, 0};

    noxs_proto_begin(b, type, 11, 0);
    noxs_proto_put(b, &a, sizeof(a));
}

START_TEST(test_dev_add)
{
    unsigned int types[] = {NOXS_MSG_DEV_ADD, NOXS_MSG_BACKEND_CREATE};
    char big[NOXS_CTRL_VALUE_MAX + 2];
    size_t t;

    for (t = 0; t < 2; t++) {
        build_dev_add(types[t], 2);
        ck_assert_int_eq(noxs_proto_put_param(b, "path", "/tmp/disk.img"), 0);
        ck_assert_int_eq(noxs_proto_put_param(b, "mode", ""), 0);
        noxs_proto_finish(b);
        ck_assert_int_eq(decode(), 0);
        ck_assert_uint_eq(m->nparams, 2);
        ck_assert_str_eq(m->params[0].key, "path");
        ck_assert_str_eq(m->params[0].value, "/tmp/disk.img");
        ck_assert_str_eq(m->params[1].key, "mode");
        ck_assert_str_eq(m->params[1].value, "");
        assert_length_exact();

        /* The count says 3 but only 2 records follow. */
        build_dev_add(types[t], 3);
        noxs_proto_put_param(b, "a", "1");
        noxs_proto_put_param(b, "b", "2");
        noxs_proto_finish(b);
        ck_assert_int_eq(decode(), -EPROTO);
        /* Too many parameters. */
        build_dev_add(types[t], NOXS_PROTO_MAX_PARAMS + 1);
        noxs_proto_finish(b);
        ck_assert_int_eq(decode(), -EPROTO);
        /* Duplicate key, NUL in a value: well-formed but invalid. */
        build_dev_add(types[t], 2);
        noxs_proto_put_param(b, "a", "1");
        noxs_proto_put_param(b, "a", "2");
        noxs_proto_finish(b);
        ck_assert_int_eq(decode(), -EINVAL);
        {
            struct noxs_msg_param p = {1, 0, 3};
            build_dev_add(types[t], 1);
            noxs_proto_put(b, &p, sizeof(p));
            noxs_proto_put(b, "k", 1);
            noxs_proto_put(b, "a\0b", 3);
            noxs_proto_finish(b);
            ck_assert_int_eq(decode(), -EINVAL);
            p.reserved = 1;
            build_dev_add(types[t], 1);
            noxs_proto_put(b, &p, sizeof(p));
            noxs_proto_put(b, "k", 1);
            noxs_proto_put(b, "abc", 3);
            noxs_proto_finish(b);
            ck_assert_int_eq(decode(), -EPROTO);
            p.reserved = 0;
            p.value_len = NOXS_CTRL_VALUE_MAX + 1;
            build_dev_add(types[t], 1);
            noxs_proto_put(b, &p, sizeof(p));
            noxs_proto_finish(b);
            ck_assert_int_eq(decode(), -EPROTO);
        }
    }
    /* The builder refuses what the decoder would. */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    build_dev_add(NOXS_MSG_DEV_ADD, 1);
    ck_assert_int_eq(noxs_proto_put_param(b, "k", big), -E2BIG);
    ck_assert_int_eq(noxs_proto_put_param(b, "a/b", "1"), -EINVAL);
    ck_assert_int_eq(noxs_proto_put_param(b, "", "1"), -EINVAL);
    ck_assert_int_eq(noxs_proto_put_param(b, "a=b", "1"), -EINVAL);
}
END_TEST

static void build_control(unsigned int type, const char *k, const char *v)
{
    struct noxs_msg_control c = {1, NOXS_DEV_SYSCTL, 0, 5000,
                                 (uint16_t)strlen(k), (uint16_t)strlen(v)};

    noxs_proto_begin(b, type, 12, 0);
    noxs_proto_put(b, &c, sizeof(c));
    noxs_proto_put(b, k, strlen(k));
    noxs_proto_put(b, v, strlen(v));
    noxs_proto_finish(b);
}

START_TEST(test_control)
{
    struct noxs_msg_control_reply r = {3, 0};

    build_control(NOXS_MSG_DEV_CONTROL, "shutdown", "poweroff");
    ck_assert_int_eq(decode(), 0);
    ck_assert_str_eq(m->key, "shutdown");
    ck_assert_str_eq(m->value, "poweroff");
    ck_assert_uint_eq(m->u.control.timeout_ms, 5000);
    assert_length_exact();
    build_control(NOXS_MSG_BACKEND_CONTROL, "shutdown", "reboot");
    ck_assert_int_eq(decode(), 0);
    ck_assert_str_eq(m->value, "reboot");
    build_control(NOXS_MSG_DEV_CONTROL, "", "x");
    ck_assert_int_eq(decode(), -EPROTO);
    build_control(NOXS_MSG_DEV_CONTROL, "a b", "x");
    ck_assert_int_eq(decode(), -EINVAL);

    noxs_proto_begin(b, NOXS_MSG_DEV_CONTROL | NOXS_MSG_REPLY, 12, 0);
    noxs_proto_put(b, &r, sizeof(r));
    noxs_proto_put(b, "ack", 3);
    noxs_proto_finish(b);
    ck_assert_int_eq(decode(), 0);
    ck_assert_str_eq(m->value, "ack");
    assert_length_exact();
    r.len = NOXS_PROTO_MAX_REPLY + 1;
    noxs_proto_begin(b, NOXS_MSG_BACKEND_CONTROL | NOXS_MSG_REPLY, 12, 0);
    noxs_proto_put(b, &r, sizeof(r));
    noxs_proto_finish(b);
    ck_assert_int_eq(decode(), -EPROTO);
}
END_TEST

START_TEST(test_register)
{
    struct noxs_msg_register r = {0, 2};
    uint16_t types[3] = {NOXS_DEV_SYSCTL, NOXS_DEV_BLK, NOXS_DEV_BLK};

    ck_assert_int_eq(two_bodies(NOXS_MSG_BACKEND_REGISTER, &r, sizeof(r), types,
                                4),
                     0);
    ck_assert_uint_eq(m->types[1], NOXS_DEV_BLK);
    ck_assert_uint_eq(m->reg_flags, 0);
    assert_length_exact();
    /* Optional trailing flags: known ones only, and whole. */
    {
        uint32_t flags = NOXS_REGISTER_KEEP;

        noxs_proto_begin(b, NOXS_MSG_BACKEND_REGISTER, 1, 0);
        noxs_proto_put(b, &r, sizeof(r));
        noxs_proto_put(b, types, 4);
        noxs_proto_put(b, &flags, sizeof(flags));
        noxs_proto_finish(b);
        ck_assert_int_eq(decode(), 0);
        ck_assert_uint_eq(m->reg_flags, NOXS_REGISTER_KEEP);
        ck_assert_uint_eq(m->types[1], NOXS_DEV_BLK);
        flags = 0x2;
        noxs_proto_begin(b, NOXS_MSG_BACKEND_REGISTER, 1, 0);
        noxs_proto_put(b, &r, sizeof(r));
        noxs_proto_put(b, types, 4);
        noxs_proto_put(b, &flags, sizeof(flags));
        noxs_proto_finish(b);
        ck_assert_int_eq(decode(), -EPROTO);
        noxs_proto_begin(b, NOXS_MSG_BACKEND_REGISTER, 1, 0);
        noxs_proto_put(b, &r, sizeof(r));
        noxs_proto_put(b, types, 4);
        noxs_proto_put(b, &flags, 2);
        noxs_proto_finish(b);
        ck_assert_int_eq(decode(), -EPROTO);
    }
    r.ntypes = 3; /* duplicate */
    ck_assert_int_eq(two_bodies(NOXS_MSG_BACKEND_REGISTER, &r, sizeof(r), types,
                                6),
                     -EINVAL);
    r.ntypes = 0;
    ck_assert_int_eq(one_body(NOXS_MSG_BACKEND_REGISTER, &r, sizeof(r)),
                     -EPROTO);
    r.ntypes = NOXS_PROTO_MAX_TYPES + 1;
    ck_assert_int_eq(one_body(NOXS_MSG_BACKEND_REGISTER, &r, sizeof(r)),
                     -EPROTO);
}
END_TEST

START_TEST(test_sync)
{
    struct noxs_msg_sync s = {2, NOXS_SYNC_FINAL};
    struct noxs_msg_dev d[2] = {{1, 1, 0, 0, 4, 4, 8, 3, 1},
                                {2, 3, 7, 0, 2, 1, 9, 4, 1}};
    struct noxs_msg_dev out;

    ck_assert_int_eq(two_bodies(NOXS_MSG_BACKEND_SYNC, &s, sizeof(s), d,
                                sizeof(d)),
                     0);
    ck_assert_uint_eq(m->u.sync.count, 2);
    noxs_proto_sync_item(m, 1, &out);
    ck_assert_uint_eq(out.devid, 7);
    ck_assert_uint_eq(out.control_gref, 9);
    assert_length_exact();
    s.flags = 2;
    ck_assert_int_eq(two_bodies(NOXS_MSG_BACKEND_SYNC, &s, sizeof(s), d,
                                sizeof(d)),
                     -EPROTO);
    s.flags = 0;
    s.count = 0xffffffffu;
    ck_assert_int_eq(one_body(NOXS_MSG_BACKEND_SYNC, &s, sizeof(s)), -EPROTO);
}
END_TEST

START_TEST(test_bad_header)
{
    struct noxs_msg_hdr h;
    unsigned int t;

    noxs_proto_simple(b, NOXS_MSG_STATUS, 1, 0);
    memcpy(&h, b->data, sizeof(h));
    h.version = 2;
    memcpy(b->data, &h, sizeof(h));
    ck_assert_int_eq(decode(), -EPROTO);
    h.version = 0;
    memcpy(b->data, &h, sizeof(h));
    ck_assert_int_eq(decode(), -EPROTO);
    h.version = NOXS_PROTO_VERSION;
    for (t = 0; t < 0x10000; t++) {
        h.type = (uint16_t)t;
        memcpy(b->data, &h, sizeof(h));
        if (!noxs_proto_type_known(t))
            ck_assert_int_eq(decode(), -EPROTO);
    }
    ck_assert_int_eq(noxs_proto_decode(b->data, 0, m), -EPROTO);
    ck_assert_int_eq(noxs_proto_decode(b->data, 15, m), -EPROTO);
    ck_assert_int_eq(noxs_proto_decode(b->data, NOXS_PROTO_MAX_MSG + 1, m),
                     -EPROTO);
    ck_assert_str_eq(noxs_proto_type_name(NOXS_MSG_DEV_ADD), "DEV_ADD");
}
END_TEST

/*
 * The requests any client may send to noxsd: they change nothing. Every
 * other request noxsd accepts must need a right (privilege, or being a
 * registered backend, which only a privileged client can become). This
 * list is kept here, apart from the table, so that a row marked open by
 * mistake, or a new request left open, fails the test: adding a type
 * here is a security decision.
 */
static const unsigned int open_requests[] = {
    NOXS_MSG_DOMAIN_LIST,
    NOXS_MSG_DEV_LIST,
    NOXS_MSG_STATUS,
    NOXS_MSG_WATCH,
};

static int is_open_request(unsigned int type)
{
    size_t i;

    for (i = 0; i < sizeof(open_requests) / sizeof(open_requests[0]); i++)
        if (open_requests[i] == type)
            return 1;
    return 0;
}

START_TEST(test_access)
{
    const struct noxs_msg_desc *d;
    size_t i, nto = 0;

    ck_assert_uint_gt(noxs_proto_ndesc(), 0);
    for (i = 0; i < noxs_proto_ndesc(); i++) {
        d = noxs_proto_desc_at(i);
        if (d->direction != NOXS_MSGD_TO_NOXSD)
            continue;
        nto++;
        if (is_open_request(d->type))
            ck_assert_msg(d->access == NOXS_MSGA_ANYONE,
                          "%s: read-only but closed", d->name);
        else
            ck_assert_msg(d->access == NOXS_MSGA_PRIVILEGED ||
                              d->access == NOXS_MSGA_BACKEND,
                          "%s changes the registry but is open to anyone",
                          d->name);
    }
    ck_assert_uint_ge(nto, 4);
    /* Becoming a backend is what BACKEND access rests on. */
    d = noxs_proto_desc(NOXS_MSG_BACKEND_REGISTER);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(d->access, NOXS_MSGA_PRIVILEGED);
    for (i = 0; i < sizeof(open_requests) / sizeof(open_requests[0]); i++) {
        d = noxs_proto_desc(open_requests[i]);
        ck_assert_ptr_nonnull(d);
        ck_assert_uint_eq(d->direction, NOXS_MSGD_TO_NOXSD);
    }
}
END_TEST

/* The table agrees with itself and with the type functions. */
START_TEST(test_table)
{
    const struct noxs_msg_desc *d, *e;
    size_t i, j;
    unsigned int t;

    for (i = 0; i < noxs_proto_ndesc(); i++) {
        d = noxs_proto_desc_at(i);
        ck_assert_uint_eq(d->type & NOXS_MSG_REPLY, 0);
        ck_assert_ptr_eq(noxs_proto_desc(d->type), d);
        ck_assert_ptr_eq(noxs_proto_desc(d->type | NOXS_MSG_REPLY), d);
        ck_assert_str_eq(noxs_proto_type_name(d->type), d->name);
        ck_assert(noxs_proto_type_known(d->type));
        ck_assert_int_eq(noxs_proto_type_known(d->type | NOXS_MSG_REPLY),
                         d->has_reply);
        ck_assert_uint_le(d->body, sizeof(((struct noxs_proto_msg *)0)->u));
        ck_assert_uint_le(d->reply_body,
                          sizeof(((struct noxs_proto_msg *)0)->u));
        if (!d->has_reply)
            ck_assert_uint_eq(d->reply_body, 0);
        for (j = 0; j < i; j++) {
            e = noxs_proto_desc_at(j);
            ck_assert_uint_lt(e->type, d->type);
            ck_assert_str_ne(e->name, d->name);
        }
    }
    ck_assert_ptr_null(noxs_proto_desc_at(noxs_proto_ndesc()));
    for (t = 0; t < 0x10000; t++)
        if (noxs_proto_type_known(t))
            ck_assert_ptr_nonnull(noxs_proto_desc(t));
        else if (!(t & NOXS_MSG_REPLY))
            ck_assert_ptr_null(noxs_proto_desc(t));
}
END_TEST

START_TEST(test_builder_overflow)
{
    static char chunk[4096];

    noxs_proto_begin(b, NOXS_MSG_DEV_ADD, 1, 0);
    for (int i = 0; i < 17; i++)
        noxs_proto_put(b, chunk, sizeof(chunk));
    ck_assert_int_eq(noxs_proto_finish(b), -EMSGSIZE);
}
END_TEST

static Suite *proto_suite(void)
{
    return check_suite("proto", "core", setup, teardown, 0,
                       CHECK_TESTS(test_header_only, test_domid_requests,
                                   test_fixed_bodies, test_empty_replies,
                                   test_dev_add, test_control, test_register,
                                   test_sync, test_bad_header,
                                   test_builder_overflow, test_access,
                                   test_table));
}

CHECK_MAIN(proto_suite)
