/*
 * The store: append and replay, a torn tail truncated, compaction (and a
 * crash between its two renames), and damage: a snapshot or log that is
 * not what a crash can leave, or a record whose fields are out of range,
 * is reported and left untouched, never replayed in part as if whole.
 * All against a small in-memory model of the registry.
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
#include "check_main.h"
#include "check_tmpdir.h"

/* Bytes of one record on disk: length, CRC, payload. */
#define REC (8 + (int)sizeof(struct store_rec))

/* Model: which (domid, devid) pairs exist; domains by domid. */
#define MAXD 64
struct model {
    int dom[MAXD];
    uint32_t dom_gref[MAXD];
    int dev[MAXD][8];
    int applied;
    int strict; /* a device of an unknown domain cannot be applied */
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
        if (m->strict && !m->dom[r->domid])
            return -ENOENT;
        ck_assert_uint_lt(r->devid, 8);
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
    check_tmpdir_make(dir, sizeof(dir), "TMPDIR", "check_store");
}

static void teardown(void)
{
    check_tmpdir_remove(dir);
}

static struct store *open_model(struct model *m)
{
    struct store *s;

    memset(m, 0, sizeof(*m));
    s = store_open(dir, apply, m);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(store_damage(s) == NULL, "damage: %s", store_damage(s));
    if (store_is_new(s))
        ck_assert_int_eq(store_reset(s), 0);
    return s;
}

/* Closes S and opens the store again, as a restart does: M holds what
 * the replay applied. */
static struct store *reopen(struct store *s, struct model *m)
{
    store_close(s);
    return open_model(m);
}

/* Open a store that must be found damaged; the reason must contain what. */
static struct store *open_damaged(struct model *m, const char *what)
{
    struct store *s;
    const char *d;
    struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = 1, .gref = 8, .port = 1};

    memset(m, 0, sizeof(*m));
    s = store_open(dir, apply, m);
    ck_assert_ptr_nonnull(s);
    d = store_damage(s);
    ck_assert_msg(d != NULL, "no damage reported (expected %s)", what);
    ck_assert_msg(strstr(d, what) != NULL, "damage \"%s\" lacks \"%s\"", d,
                  what);
    ck_assert(!store_is_new(s));
    /* Left as found: no append, no compaction over it. */
    ck_assert_int_eq(store_append(s, &r), -EROFS);
    ck_assert_int_eq(store_compact_begin(s), -EROFS);
    return s;
}

static void path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* The whole content of a file (NULL, *len 0 if there is none). */
static char *slurp(const char *name, size_t *len)
{
    char p[300], *buf;
    struct stat st;
    int fd;

    path(p, sizeof(p), name);
    *len = 0;
    if ((fd = open(p, O_RDONLY)) < 0)
        return NULL;
    ck_assert_int_eq(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static void spill(const char *name, const char *buf, size_t len)
{
    char p[300];
    int fd;

    path(p, sizeof(p), name);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* Append one record with a valid length and CRC, whatever it holds. */
static void raw_append(const char *name, const struct store_rec *r)
{
    struct {
        uint32_t length, crc;
        struct store_rec rec;
    } d = {sizeof(*r), store_crc32(r, sizeof(*r)), *r};
    char p[300];
    int fd;

    path(p, sizeof(p), name);
    fd = open(p, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, &d, sizeof(d)), (ssize_t)sizeof(d));
    close(fd);
}

static void add_dom(struct store *s, uint16_t domid, uint32_t gref)
{
    struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = domid, .gref = gref, .port = 1};
    ck_assert_int_eq(store_append(s, &r), 0);
}

static void add_dev(struct store *s, uint16_t domid, uint32_t devid)
{
    struct store_rec r = {.op = STORE_DEV_ADD, .domid = domid, .devid = devid, .type = 1, .gref = 100, .port = 7};
    ck_assert_int_eq(store_append(s, &r), 0);
}

static void del_dev(struct store *s, uint16_t domid, uint32_t devid)
{
    struct store_rec r = {.op = STORE_DEV_DEL, .domid = domid, .devid = devid, .type = 1, .gref = 100, .port = 7};
    ck_assert_int_eq(store_append(s, &r), 0);
}

/* Device DOMID/DEVID appended to S is there after a restart, the
 * APPLIED-th record replayed; the store is closed after. */
static void add_dev_survives(struct store *s, struct model *m, uint16_t domid,
                             uint32_t devid, int applied)
{
    add_dev(s, domid, devid);
    s = reopen(s, m);
    ck_assert_int_eq(m->applied, applied);
    ck_assert(m->dev[domid][devid]);
    store_close(s);
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

    s = reopen(s, &m);
    ck_assert_int_eq(m.applied, 5);
    ck_assert_int_eq(store_records_replayed(s), 5);
    ck_assert(m.dom[1] && m.dom[2] && !m.dom[3]);
    ck_assert_uint_eq(m.dom_gref[2], 9);
    ck_assert(!m.dev[1][0] && m.dev[1][1]);
    /* Appends after a replay go to the end. */
    add_dev_survives(s, &m, 2, 3, 6);
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
    add_dev_survives(s, &m, 1, 5, 3);

    /* Flip a byte of the last record: a whole record with a bad CRC is
     * not what a crash leaves. Reported, and the file is left alone. */
    fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    full = log_size();
    ck_assert_int_eq(pwrite(fd, "\xff", 1, full - 3), 1);
    s = open_damaged(&m, "state.log: record 4 at byte 144 has a bad CRC");
    ck_assert_int_eq(log_size(), full);
    store_close(s);
    ck_assert_int_eq(ftruncate(fd, full - REC), 0);
    close(fd);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 2);
    ck_assert(!m.dev[1][5]);
    store_close(s);

    /* Less than a record after good ones: a cut write, truncated. */
    fd = open(p, O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, "garbage!garbage!", 16), 16);
    close(fd);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 2);
    store_close(s);
    ck_assert_int_eq(log_size() % REC, 0);
}
END_TEST

static void compact_model(struct store *s, const struct model *m)
{
    ck_assert_int_eq(store_compact_begin(s), 0);
    for (int d = 0; d < MAXD; d++) {
        if (!m->dom[d])
            continue;
        struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = (uint16_t)d, .gref = m->dom_gref[d], .port = 1};
        ck_assert_int_eq(store_compact_put(s, &r), 0);
        for (int i = 0; i < 8; i++) {
            if (!m->dev[d][i])
                continue;
            struct store_rec v = {.op = STORE_DEV_ADD, .domid = (uint16_t)d, .devid = (uint32_t)i, .type = 1, .gref = 100, .port = 7};
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
    s = reopen(s, &m);
    live = m;
    ck_assert_uint_gt(store_log_bytes(s), 10000);
    compact_model(s, &live);
    ck_assert_uint_lt(store_log_bytes(s), 100);
    add_dev(s, 4, 1); /* domain 4 unknown to the model: fine here */

    s = reopen(s, &m);
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
    add_dev_survives(s, &m, 1, 3, 3);
}
END_TEST

START_TEST(test_new_store)
{
    struct model m;
    struct store *s;
    size_t len;
    struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = 1, .gref = 8, .port = 1};

    memset(&m, 0, sizeof(m));
    s = store_open(dir, apply, &m);
    ck_assert_ptr_nonnull(s);
    ck_assert(store_is_new(s));
    ck_assert_ptr_null(store_damage(s));
    /* Nothing is created before the caller says so. */
    ck_assert_ptr_null(slurp("state.log", &len));
    ck_assert_int_eq(store_append(s, &r), -EROFS);
    ck_assert_int_eq(store_reset(s), 0);
    ck_assert_int_eq(store_append(s, &r), 0);
    s = reopen(s, &m);
    ck_assert(!store_is_new(s));
    ck_assert(m.dom[1]);
    store_close(s);

    /* An empty log and no snapshot: nothing was ever stored either. */
    spill("state.log", "", 0);
    memset(&m, 0, sizeof(m));
    s = store_open(dir, apply, &m);
    ck_assert(store_is_new(s));
    ck_assert_int_eq(store_reset(s), 0);
    store_close(s);
}
END_TEST

/* Three domains with devices, compacted into a snapshot; its bytes. */
static char *make_snapshot(size_t *len)
{
    struct model m;
    struct store *s = open_model(&m);

    add_dom(s, 1, 8);
    add_dev(s, 1, 0);
    add_dom(s, 2, 9);
    add_dev(s, 2, 1);
    add_dom(s, 3, 10);
    add_dev(s, 3, 2);
    s = reopen(s, &m);
    compact_model(s, &m);
    store_close(s);
    return slurp("state.snap", len);
}

START_TEST(test_snapshot_damage)
{
    struct model m;
    struct store *s;
    char *snap, *log, *now, p[300];
    size_t snap_len, log_len, len;
    int fd;

    snap = make_snapshot(&snap_len);
    ck_assert_uint_eq(snap_len, 7 * REC);
    log = slurp("state.log", &log_len);
    path(p, sizeof(p), "state.snap");

    /* Cut short: a snapshot is renamed in only once whole. */
    ck_assert_int_eq(truncate(p, 150), 0);
    store_close(open_damaged(&m, "state.snap: record 4 at byte 144 is cut "
                                 "short"));
    now = slurp("state.snap", &len);
    ck_assert_uint_eq(len, 150); /* not truncated further */
    free(now);

    /* One byte flipped in the middle: the rest is not replayed as if it
     * were all there was. */
    spill("state.snap", snap, snap_len);
    fd = open(p, O_RDWR);
    ck_assert_int_eq(pwrite(fd, "\xff", 1, 100), 1);
    close(fd);
    store_close(open_damaged(&m, "state.snap: record 3 at byte 96 has a bad "
                                 "CRC"));

    /* Garbage. */
    spill("state.snap", "noxs noxs noxs noxs noxs noxs noxs noxs noxs noxs",
          50);
    store_close(open_damaged(&m, "state.snap: record 1 at byte 0 has a bad"));

    /* Empty. */
    spill("state.snap", "", 0);
    store_close(open_damaged(&m, "state.snap: empty"));

    /* Missing, beside a log of a later epoch. */
    ck_assert_int_eq(unlink(p), 0);
    store_close(open_damaged(&m, "state.log is from epoch 1 but there is no "
                                 "state.snap"));

    /* A directory in its place. */
    ck_assert_int_eq(mkdir(p, 0700), 0);
    store_close(open_damaged(&m, "state.snap: not a regular file"));
    ck_assert_int_eq(rmdir(p), 0);

    /* The log was never touched by any of it. */
    now = slurp("state.log", &len);
    ck_assert_uint_eq(len, log_len);
    ck_assert_int_eq(memcmp(now, log, len), 0);
    free(now);

    /* Put back, it replays whole. */
    spill("state.snap", snap, snap_len);
    s = open_model(&m);
    ck_assert(m.dom[1] && m.dom[2] && m.dom[3]);
    ck_assert(m.dev[1][0] && m.dev[2][1] && m.dev[3][2]);
    store_close(s);
    free(snap);
    free(log);
}
END_TEST

START_TEST(test_log_damage)
{
    struct model m;
    struct store *s;
    struct store_rec e = {.op = STORE_EPOCH};
    char *snap, *log, p[300];
    size_t snap_len, log_len, len;
    int fd;

    snap = make_snapshot(&snap_len);
    s = open_model(&m);
    add_dev(s, 1, 3);
    add_dev(s, 1, 4);
    add_dev(s, 1, 5);
    store_close(s);
    log = slurp("state.log", &log_len);
    ck_assert_uint_eq(log_len, 4 * REC);
    path(p, sizeof(p), "state.log");

    /* A bad record with good ones after it. */
    fd = open(p, O_RDWR);
    ck_assert_int_eq(pwrite(fd, "\x01", 1, REC + 12), 1);
    close(fd);
    store_close(open_damaged(&m, "state.log: record 2 at byte 48 has a bad "
                                 "CRC"));
    free(slurp("state.log", &len));
    ck_assert_uint_eq(len, log_len);

    /* Missing beside the snapshot: what was appended since is lost. */
    ck_assert_int_eq(unlink(p), 0);
    store_close(open_damaged(&m, "state.log is missing beside state.snap of "
                                 "epoch 1"));

    /* Empty beside the snapshot. */
    spill("state.log", "", 0);
    store_close(open_damaged(&m, "state.log: empty"));

    /* Of an epoch that neither matches nor precedes the snapshot's. */
    spill("state.log", "", 0);
    e.epoch = 2;
    raw_append("state.log", &e);
    store_close(open_damaged(&m, "state.log is from epoch 2 but state.snap "
                                 "is of epoch 1"));

    /* The one before the snapshot's: a crash between compaction's two
     * renames; ignored, and a new log started. */
    spill("state.log", "", 0);
    e.epoch = 0;
    raw_append("state.log", &e);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 6);
    store_close(s);

    spill("state.log", log, log_len);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 9);
    ck_assert(m.dev[1][5]);
    store_close(s);
    free(snap);
    free(log);
}
END_TEST

START_TEST(test_invalid_records)
{
    static const struct {
        struct store_rec r;
        const char *why;
    } bad[] = {
        {{.op = STORE_DOMAIN_ADD, .domid = 0xffff, .gref = 8, .port = 1},
         "domain id 65535 out of range"},
        {{.op = STORE_DOMAIN_ADD, .domid = 0x7ff0, .gref = 8, .port = 1},
         "domain id 32752 out of range"},
        {{.op = STORE_DOMAIN_ADD, .domid = 4, .owner_domid = 0x8000, .gref = 8, .port = 1},
         "owner 32768 out of range"},
        {{.op = STORE_DOMAIN_ADD, .domid = 4, .gref = 7, .port = 1},
         "grant reference 7 out of range"},
        {{.op = STORE_DOMAIN_ADD, .domid = 4, .gref = 8, .port = 0},
         "port 0 out of range"},
        {{.op = STORE_DOMAIN_ADD, .domid = 4, .gref = 8, .port = 1u << 17},
         "port 131072 out of range"},
        {{.op = STORE_DOMAIN_ADD, .domid = 4, .gref = 8, .port = 1, .type = 1},
         "with device fields set"},
        {{.op = STORE_DOMAIN_DEL, .domid = 4, .gref = 8},
         "DOMAIN_DEL of domain 4 with fields set"},
        {{.op = STORE_DEV_ADD, .domid = 1, .type = 9, .devid = 1, .gref = 100, .port = 5},
         "unknown device type 9"},
        {{.op = STORE_DEV_ADD, .domid = 1, .type = 0, .devid = 1, .gref = 100, .port = 5},
         "unknown device type 0"},
        {{.op = STORE_DEV_ADD, .domid = 1, .type = 1, .devid = 1, .backend_domid = 0x7ff0, .gref = 100, .port = 5},
         "backend domain 32752 out of range"},
        {{.op = STORE_DEV_ADD, .domid = 1, .type = 1, .devid = 1, .gref = 0, .port = 5},
         "grant reference 0 out of range"},
        {{.op = STORE_DEV_DEL, .domid = 1, .type = 1, .devid = 1, .gref = 100, .port = 0},
         "port 0 out of range"},
        {{.op = STORE_DEV_ADD, .domid = 1, .type = 1, .devid = 1, .owner_domid = 3, .gref = 100, .port = 5},
         "with an owner set"},
        {{.op = STORE_DEV_ADD, .domid = 1, .type = 1, .devid = 1, .flags = 1, .gref = 100, .port = 5},
         "with unused fields set"},
        {{.op = STORE_DEV_ADD, .domid = 1, .type = 1, .devid = 1, .gref = 100, .port = 5, .epoch = 3},
         "with unused fields set"},
        {{.op = 77, .domid = 1}, "unknown op 77"},
        {{.op = 0}, "unknown op 0"},
        {{.op = STORE_EPOCH, .epoch = 1}, "a second EPOCH record"},
    };
    struct model m;
    struct store *s;
    char *log, p[300];
    size_t log_len, i;

    s = open_model(&m);
    add_dom(s, 1, 8);
    store_close(s);
    log = slurp("state.log", &log_len);
    path(p, sizeof(p), "state.log");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        spill("state.log", log, log_len);
        raw_append("state.log", &bad[i].r);
        /* The model's apply fails the test if it sees the record. */
        s = open_damaged(&m, bad[i].why);
        ck_assert_msg(strstr(store_damage(s), "state.log: record 3 at byte "
                                              "96: ") != NULL,
                      "case %zu: %s", i, store_damage(s));
        ck_assert_int_eq(m.applied, 1);
        store_close(s);
    }

    /* The same in a snapshot (the file a compaction writes). */
    spill("state.log", log, log_len);
    s = open_model(&m);
    compact_model(s, &m);
    store_close(s);
    raw_append("state.snap", &bad[0].r);
    store_close(open_damaged(&m, "state.snap: record 3 at byte 96: domain "
                                 "id 65535 out of range"));

    /* A file that does not begin with its EPOCH. */
    spill("state.snap", "", 0);
    raw_append("state.snap", &bad[8].r);
    store_close(open_damaged(&m, "state.snap: record 1 at byte 0: no EPOCH "
                                 "record first"));
    free(log);
}
END_TEST

START_TEST(test_apply_rejects)
{
    struct model m;
    struct store *s = open_model(&m);

    add_dom(s, 1, 8);
    add_dev(s, 2, 0); /* a device of a domain nobody created */
    store_close(s);
    memset(&m, 0, sizeof(m));
    m.strict = 1;
    s = store_open(dir, apply, &m);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(store_damage(s));
    ck_assert_msg(strstr(store_damage(s), "state.log: record 3 at byte 96 "
                                          "(DEV_ADD of domain 2) cannot be "
                                          "applied") != NULL,
                  "%s", store_damage(s));
    store_close(s);
}
END_TEST

START_TEST(test_reset)
{
    struct model m;
    struct store *s;
    char *snap, p[300], cmd[400];
    size_t snap_len;
    FILE *f;
    int n = 0;

    snap = make_snapshot(&snap_len);
    path(p, sizeof(p), "state.snap");
    ck_assert_int_eq(truncate(p, 100), 0);
    s = open_damaged(&m, "state.snap");
    ck_assert_int_eq(store_reset(s), 0);
    ck_assert_ptr_null(store_damage(s));
    add_dom(s, 5, 12);
    store_close(s);

    /* Both old files kept aside; the new store holds only what followed. */
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '^state\\.\\(snap\\|log\\)"
                               "\\.damaged-'",
             dir);
    f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    ck_assert_int_eq(n, 2);
    s = open_model(&m);
    ck_assert_int_eq(m.applied, 1);
    ck_assert(m.dom[5] && !m.dom[1]);
    compact_model(s, &m);
    s = reopen(s, &m);
    ck_assert(m.dom[5]);
    store_close(s);
    free(snap);
}
END_TEST

START_TEST(test_crc)
{
    /* The standard check value of CRC-32/ISO-HDLC. */
    ck_assert_uint_eq(store_crc32("123456789", 9), 0xcbf43926u);
}
END_TEST

static Suite *store_suite(void)
{
    log_init("check_store", 0);
    return check_suite("store", "core", setup, teardown, 0,
                       CHECK_TESTS(test_append_replay, test_torn_tail,
                                   test_compaction, test_crash_between_renames,
                                   test_new_store, test_snapshot_damage,
                                   test_log_damage, test_invalid_records,
                                   test_apply_rejects, test_reset, test_crc));
}

CHECK_MAIN(store_suite)
