/*
 * check_cxs: compat-xs internals without noxsd.
 *
 * The growable array (cxs_grow), a batch's staging of writes to devices
 * this process is not an end of (group.c), and transactions of many
 * writes through the public xs_* calls. With no noxsd to send them to,
 * such a transaction must fail cleanly (ENOENT) however much it holds;
 * run under SAN=address to see that no table overflows.
 *
 * Linked with compat-xs's objects rather than libxenstore.so.4, because
 * the internals are hidden.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenstore.h>

#include "../../compat-xs/private.h"
#include "check_main.h"

START_TEST(grow_keeps_elements)
{
    int *v = NULL;
    size_t n = 0, cap = 0;

    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(cxs_grow(&v, &cap, n, sizeof(*v)), 0);
        ck_assert_uint_gt(cap, n);
        v[n++] = i;
    }
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(v[i], i);
    ck_assert_uint_eq(cap, 1024);
    free(v);
}
END_TEST

START_TEST(grow_refuses_overflow)
{
    char *v = malloc(1);
    size_t cap = SIZE_MAX / 2 + 1;

    /* Doubling would wrap: refused before realloc, array untouched. */
    ck_assert_int_eq(cxs_grow(&v, &cap, cap, 1), -ENOMEM);
    ck_assert_uint_eq(cap, SIZE_MAX / 2 + 1);
    free(v);
}
END_TEST

static struct cxs_path dev_path(uint16_t fe, uint32_t id)
{
    struct cxs_path p = {.kind = CXS_BACKEND_KEY, .domid = 0, .fe = fe, .id = id};

    snprintf(p.cls, sizeof(p.cls), "vif");
    snprintf(p.key, sizeof(p.key), "foo");
    return p;
}

START_TEST(group_rewrites_one_node)
{
    struct cxs_groups gs = {0};
    struct cxs_path p = dev_path(1, 0);
    char v[16];

    for (size_t i = 0; i < 1000; i++) {
        struct cxs_group *g = cxs_group_for(&gs, &p);

        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(cxs_group_write(g, i), 0);
        snprintf(v, sizeof(v), "v%zu", i);
        ck_assert_int_eq(cxs_group_param(g, "foo", v, false), 0);
    }
    ck_assert_uint_eq(gs.n, 1);
    ck_assert_uint_eq(gs.v[0].params.n, 1);
    ck_assert_str_eq(gs.v[0].params.e[0].value, "v999");
    ck_assert_uint_eq(gs.v[0].nwrites, 1000);
    for (size_t i = 0; i < 1000; i++)
        ck_assert_uint_eq(gs.v[0].writes[i], i);
    cxs_groups_free(&gs);
}
END_TEST

START_TEST(group_many_devices_and_nodes)
{
    struct cxs_groups gs = {0};
    struct noxs_kv all[CXS_ADD_PARAMS_MAX];
    char k[16];

    for (uint32_t id = 0; id < 200; id++) {
        struct cxs_path p = dev_path(1, id);
        struct cxs_group *g = cxs_group_for(&gs, &p);

        ck_assert_ptr_nonnull(g);
        for (unsigned int n = 0; n < 40; n++) {
            snprintf(k, sizeof(k), "n%u", n);
            ck_assert_int_eq(cxs_group_param(g, k, "x", n % 2 == 0), 0);
        }
    }
    ck_assert_uint_eq(gs.n, 200);
    for (uint32_t id = 0; id < 200; id++) {
        struct cxs_path p = dev_path(1, id);
        struct cxs_group *g = cxs_group_for(&gs, &p);

        ck_assert_ptr_eq(g, &gs.v[id]);
        ck_assert_uint_eq(g->params.n, 40);
        ck_assert_ptr_nonnull(cxs_kvlist_find(&g->params, "@f:n0"));
        ck_assert_ptr_nonnull(cxs_kvlist_find(&g->params, "n1"));
    }
    ck_assert_uint_eq(gs.n, 200);
    /* What one add carries: the class first, then the nodes. */
    gs.v[0].params.n = CXS_ADD_NODES_MAX;
    ck_assert_uint_eq(cxs_group_add_params(&gs.v[0], all), CXS_ADD_PARAMS_MAX);
    ck_assert_str_eq(all[0].key, CXS_KEY_CLASS);
    ck_assert_str_eq(all[0].value, "vif");
    ck_assert_str_eq(all[1].key, "@f:n0");
    gs.v[0].params.n = 40;
    cxs_groups_free(&gs);
    ck_assert_uint_eq(gs.n, 0);
}
END_TEST

START_TEST(group_front_key_too_long)
{
    struct cxs_groups gs = {0};
    struct cxs_path p = dev_path(1, 0);
    struct cxs_group *g = cxs_group_for(&gs, &p);
    char k[NOXS_CTRL_KEY_MAX + 1];

    memset(k, 'k', NOXS_CTRL_KEY_MAX);
    k[NOXS_CTRL_KEY_MAX] = '\0';
    ck_assert_int_eq(cxs_group_param(g, k, "x", false), 0);
    ck_assert_int_eq(cxs_group_param(g, k, "x", true), -E2BIG);
    k[NOXS_CTRL_KEY_MAX - strlen(CXS_KEY_FRONT_PREFIX)] = '\0';
    ck_assert_int_eq(cxs_group_param(g, k, "x", true), 0);
    ck_assert_uint_eq(g->params.n, 2);
    cxs_groups_free(&gs);
}
END_TEST

/* The xs_* calls, acting as a toolstack with no noxsd to reach. */
static char sim_dir[64];

static void no_noxsd(void)
{
    char sock[96];

    snprintf(sim_dir, sizeof(sim_dir), "/tmp/check_cxs.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(sim_dir));
    snprintf(sock, sizeof(sock), "%s/none.sock", sim_dir);
    setenv("NOXS_SIM_DIR", sim_dir, 1);
    setenv("NOXS_SOCKET", sock, 1);
    setenv("NOXS_SIM_DOMID", "0", 1);
    setenv("COMPAT_XS_QUIET", "1", 1);
}

/* One transaction of n writes, over keys nodes of each of devs devices
 * (round after round). */
static void tx_of(unsigned int n, unsigned int keys, unsigned int devs)
{
    struct xs_handle *h;
    xs_transaction_t t;
    char path[128], v[16];

    no_noxsd();
    h = xs_open(0);
    ck_assert_ptr_nonnull(h);
    t = xs_transaction_start(h);
    ck_assert_uint_ne(t, XBT_NULL);
    for (unsigned int i = 0; i < n; i++) {
        snprintf(path, sizeof(path),
                 "/local/domain/0/backend/vif/1/%u/k%u",
                 i % (keys * devs) / keys, i % keys);
        snprintf(v, sizeof(v), "v%u", i);
        ck_assert(xs_write(h, t, path, v, strlen(v)));
    }
    /* Nothing can be applied without noxsd: an error, never success. */
    errno = 0;
    ck_assert(!xs_transaction_end(h, t, false));
    ck_assert_int_eq(errno, ENOENT);
    xs_close(h);
    rmdir(sim_dir); /* untouched without noxsd: empty */
}

START_TEST(tx_one_key_rewritten)
{
    tx_of(1000, 1, 1);
}
END_TEST

START_TEST(tx_many_keys_and_devices)
{
    tx_of(2000, 50, 5); /* 8 rounds */
}
END_TEST

static Suite *cxs_suite(void)
{
    return check_suite("compat-xs", "tables", NULL, NULL, 60,
                       CHECK_TESTS(grow_keeps_elements, grow_refuses_overflow,
                                   group_rewrites_one_node,
                                   group_many_devices_and_nodes,
                                   group_front_key_too_long,
                                   tx_one_key_rewritten,
                                   tx_many_keys_and_devices));
}

CHECK_MAIN(cxs_suite)
