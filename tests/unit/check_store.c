/*
 * The store: append and replay, a torn tail truncated, a corrupt record
 * stopping the replay, compaction (and a crash between its two renames),
 * all against a small in-memory model of the registry.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "noxsd.h"

/* Model: which (domid, devid) pairs exist; domains by domid. */
#define MAXD 64
struct model {
    int dom[MAXD];
    uint32_t dom_gref[MAXD];
    int dev[MAXD][8];
    int applied;
};

static char dir[256];

static int apply(const struct store_rec *r, void *arg)
{
    struct model *m = arg;

    m->applied++;
    ck_assert_uint_lt(r->domid, MAXD);
    switch (r->op) {
    case STORE_DOMAIN_ADD:
        m->dom[r->domid] = 1;
        m->dom_gref[r->domid] = r->gref;
        break;
    case STORE_DOMAIN_DEL:
        m->dom[r->domid] = 0;
        memset(m->dev[r->domid], 0, sizeof(m->dev[0]));
        break;
    case STORE_DEV_ADD:
        m->dev[r->domid][r->devid] = 1;
        break;
    case STORE_DEV_DEL:
        m->dev[r->domid][r->devid] = 0;
        break;
    default:
        ck_abort_msg("unexpected op %u", r->op);
    }
    return 0;
}

static void setup(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/check_store.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static struct store *open_model(struct model *m)
{
    struct store *s;

    memset(m, 0, sizeof(*m));
    s = store_open(dir, apply, m);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void add_dom(struct store *s, uint16_t domid, uint32_t gref)
{
    struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = domid, .gref = gref};
    ck_assert_int_eq(store_append(s, &r), 0);
}

static void add_dev(struct store *s, uint16_t domid, uint32_t devid)
{
    struct store_rec r = {.op = STORE_DEV_ADD, .domid = domid, .devid = devid,
                          .type = 1};
    ck_assert_int_eq(store_append(s, &r), 0);
}

static void del_dev(struct store *s, uint16_t domid, uint32_t devid)
{
    struct store_rec r = {.op = STORE_DEV_DEL, .domid = domid, .devid = devid,
                          .type = 1};
    ck_assert_int_eq(store_append(s, &r), 0);
}

static off_t log_size(void)
{
    char p[300];
    struct stat st;

    snprintf(p, sizeof(p), "%s/state.log", dir);
    ck_assert_int_eq(stat(p, &st), 0);
    return st.st_size;
}

START_TEST(test_append_replay)
{
    struct model m;
    struct store *s = open_model(&m);

    ck_assert_int_eq(m.applied, 0);
    add_dom(s, 1, 8);
    add_dev(s, 1, 0);
    add_dev(s, 1, 1);
    del_dev(s, 1, 0);
    add_dom(s, 2, 9);
    store_close(s);

    s = open_model(&m);
    ck_assert_int_eq(m.applied, 5);
    ck_assert_int_eq(store_records_replayed(s), 5);
    ck_assert(m.dom[1] && m.dom[2] && !m.dom[3]);
    ck_assert_uint_eq(m.dom_gref[2], 9);
    ck_assert(!m.dev[1][0] && m.dev[1][1]);
    /* Appends after a replay go to the end. */
    add_dev(s, 2, 3);
    store_close(s);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 6);
    ck_assert(m.dev[2][3]);
    store_close(s);
}
END_TEST

START_TEST(test_torn_tail)
{
    struct model m;
    struct store *s = open_model(&m);
    char p[300];
    off_t full;
    int fd;

    add_dom(s, 1, 8);
    add_dev(s, 1, 0);
    add_dev(s, 1, 1);
    store_close(s);
    full = log_size();

    /* Cut the last record in half, as a crash mid-write would. */
    snprintf(p, sizeof(p), "%s/state.log", dir);
    ck_assert_int_eq(truncate(p, full - 10), 0);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 2);
    ck_assert(m.dev[1][0] && !m.dev[1][1]);
    ck_assert_int_lt(log_size(), full - 10); /* truncated to a boundary */
    add_dev(s, 1, 5);
    store_close(s);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 3);
    ck_assert(m.dev[1][5]);
    store_close(s);

    /* Flip a byte of the last record: its CRC fails, it is dropped. */
    fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "\xff", 1, log_size() - 3), 1);
    close(fd);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 2);
    ck_assert(!m.dev[1][5]);
    store_close(s);

    /* Garbage appended after good records. */
    fd = open(p, O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, "garbage!garbage!", 16), 16);
    close(fd);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 2);
    store_close(s);
}
END_TEST

static void compact_model(struct store *s, const struct model *m)
{
    ck_assert_int_eq(store_compact_begin(s), 0);
    for (int d = 0; d < MAXD; d++) {
        if (!m->dom[d])
            continue;
        struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = (uint16_t)d,
                              .gref = m->dom_gref[d]};
        ck_assert_int_eq(store_compact_put(s, &r), 0);
        for (int i = 0; i < 8; i++) {
            if (!m->dev[d][i])
                continue;
            struct store_rec v = {.op = STORE_DEV_ADD, .domid = (uint16_t)d,
                                  .devid = (uint32_t)i, .type = 1};
            ck_assert_int_eq(store_compact_put(s, &v), 0);
        }
    }
    ck_assert_int_eq(store_compact_end(s), 0);
}

START_TEST(test_compaction)
{
    struct model m, live;
    struct store *s = open_model(&m);
    int i;

    memset(&live, 0, sizeof(live));
    for (i = 0; i < 200; i++) {
        add_dom(s, 3, 10);
        add_dev(s, 3, (uint32_t)(i % 8));
        if (i % 3 == 0)
            del_dev(s, 3, (uint32_t)((i + 1) % 8));
    }
    store_close(s);
    s = open_model(&m);
    live = m;
    ck_assert_uint_gt(store_log_bytes(s), 10000);
    compact_model(s, &live);
    ck_assert_uint_lt(store_log_bytes(s), 100);
    add_dev(s, 4, 1); /* domain 4 unknown to the model: fine here */
    store_close(s);

    s = open_model(&m);
    ck_assert(m.dom[3]);
    ck_assert_int_eq(memcmp(m.dev[3], live.dev[3], sizeof(m.dev[3])), 0);
    ck_assert(m.dev[4][1]);
    store_close(s);
}
END_TEST

START_TEST(test_crash_between_renames)
{
    struct model m;
    struct store *s = open_model(&m);
    char log[300], saved[300], cmd[700];

    add_dom(s, 1, 8);
    add_dev(s, 1, 2);
    store_close(s);
    /* Keep the pre-compaction log, compact, then put the old log back:
     * the state a crash between rename(snap) and rename(log) leaves. */
    snprintf(log, sizeof(log), "%s/state.log", dir);
    snprintf(saved, sizeof(saved), "%s/old.log", dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", log, saved);
    ck_assert_int_eq(system(cmd), 0);
    s = open_model(&m);
    compact_model(s, &m);
    store_close(s);
    ck_assert_int_eq(rename(saved, log), 0);

    s = open_model(&m);
    /* Snapshot applied once; the stale log ignored (not re-applied). */
    ck_assert_int_eq(m.applied, 2);
    ck_assert(m.dom[1] && m.dev[1][2]);
    add_dev(s, 1, 3);
    store_close(s);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 3);
    ck_assert(m.dev[1][3]);
    store_close(s);
}
END_TEST

START_TEST(test_crc)
{
    /* The standard check value of CRC-32/ISO-HDLC. */
    ck_assert_uint_eq(store_crc32("123456789", 9), 0xcbf43926u);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("store");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    log_init(1, 0, "check_store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_append_replay);
    tcase_add_test(tc, test_torn_tail);
    tcase_add_test(tc, test_compaction);
    tcase_add_test(tc, test_crash_between_renames);
    tcase_add_test(tc, test_crc);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
