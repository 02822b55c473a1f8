/*
 * check_lstore: compat-xs's local store driven with XenStore requests
 * (compat-xs/gstore.h): xenstored's semantics, permissions, quotas,
 * transactions and their EAGAIN, watch matching across connections and
 * the journal's trim, the event fds of many connections sharing the
 * process's one inotify instance, and watches refused when no fd could
 * wake them. Each test has its own store in a temporary directory.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../../compat-xs/lstore.h"
#include "check_main.h"
#include "check_tmpdir.h"

static char dir[256];

static void setup(void)
{
    check_tmpdir_make(dir, sizeof(dir), "NOXS_TEST_DIR", "lstore");
}

static void teardown(void)
{
    check_tmpdir_remove(dir);
}

static struct cxs_gconn *open_as(unsigned int domid)
{
    struct cxs_gconn *c = cxs_lstore_open(dir, domid);

    ck_assert_ptr_nonnull(c);
    return c;
}

/* A request; the reply as a string ("E:ENOENT" for errors), NULs as '|'. */
static char last[8192];
static const char *rq(struct cxs_gconn *c, uint32_t type, uint32_t tx,
                      const char *p, size_t len)
{
    uint32_t rt, rl;
    char *r;

    ck_assert_int_eq(c->ops->request(c, type, tx, p, len, &rt, &r, &rl), 0);
    ck_assert_int_eq(r[rl], '\0');
    if (rt == XSW_ERROR) {
        ck_assert_uint_eq(rl, strlen(r) + 1);
        snprintf(last, sizeof(last), "E:%s", r);
    } else {
        ck_assert_uint_eq(rt, type);
        ck_assert_uint_lt(rl, sizeof(last));
        for (uint32_t i = 0; i < rl; i++)
            last[i] = r[i] ? r[i] : '|';
        last[rl] = '\0';
    }
    free(r);
    return last;
}

/* One string argument with its NUL. */
#define RQ1(c, t, tx, s) rq(c, t, tx, s, strlen(s) + 1)
/* Several: "a\0b" style literal, every string NUL-terminated. */
#define RQN(c, t, tx, lit) rq(c, t, tx, lit, sizeof(lit))

static const char *wr(struct cxs_gconn *c, uint32_t tx, const char *path,
                      const char *val)
{
    char buf[4096];
    size_t n = strlen(path) + 1, v = strlen(val);

    memcpy(buf, path, n);
    memcpy(buf + n, val, v);
    return rq(c, XSW_WRITE, tx, buf, n + v);
}

#define EQ(got, want) ck_assert_str_eq(got, want)

static uint32_t txstart(struct cxs_gconn *c)
{
    const char *r = rq(c, XSW_TRANSACTION_START, 0, "", 1);

    ck_assert_msg(r[0] != 'E', "tx start: %s", r);
    return (uint32_t)strtoul(r, NULL, 10);
}

/* The next event as "path|token|", or "" when none is pending. */
static const char *event(struct cxs_gconn *c)
{
    char *p;
    uint32_t len;
    int rc = c->ops->next_event(c, &p, &len);

    if (rc == -EAGAIN)
        return "";
    ck_assert_int_eq(rc, 0);
    for (uint32_t i = 0; i < len; i++)
        last[i] = p[i] ? p[i] : '|';
    last[len] = '\0';
    free(p);
    return last;
}

START_TEST(initial_tree)
{
    struct cxs_gconn *c = open_as(0);

    EQ(RQ1(c, XSW_DIRECTORY, 0, "/"), "tool|");
    EQ(RQ1(c, XSW_DIRECTORY, 0, "/tool"), "xenstored|");
    EQ(RQ1(c, XSW_READ, 0, "/"), "");
    EQ(RQ1(c, XSW_GET_PERMS, 0, "/tool/xenstored"), "n0|");
    c->ops->close(c);
}
END_TEST

START_TEST(write_read_rm)
{
    struct cxs_gconn *c = open_as(0);

    EQ(wr(c, 0, "/a/b/c", "hello"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, "/a/b/c"), "hello");
    EQ(RQ1(c, XSW_READ, 0, "/a/b"), "");
    EQ(RQ1(c, XSW_DIRECTORY, 0, "/a"), "b|");
    EQ(wr(c, 0, "/a/b/d", ""), "OK|");
    EQ(wr(c, 0, "/a/b/a", ""), "OK|");
    EQ(wr(c, 0, "/a/b/c", "hello"), "OK|");
    /* Creation order, as xenstored lists. */
    EQ(RQ1(c, XSW_DIRECTORY, 0, "/a/b"), "c|d|a|");
    EQ(RQ1(c, XSW_RM, 0, "/a/b/a"), "OK|");
    EQ(RQ1(c, XSW_DIRECTORY, 0, "/a/b/c"), "");
    EQ(RQ1(c, XSW_MKDIR, 0, "/a/b/c"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, "/a/b/c"), "hello");
    EQ(RQ1(c, XSW_MKDIR, 0, "/m/n"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, "/m/n"), "");
    /* Binary values, NULs included. */
    EQ(rq(c, XSW_WRITE, 0, "/bin\0x\0y", 8), "OK|");
    EQ(RQ1(c, XSW_READ, 0, "/bin"), "x|y");
    EQ(RQ1(c, XSW_RM, 0, "/a/b"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, "/a/b/c"), "E:ENOENT");
    EQ(RQ1(c, XSW_DIRECTORY, 0, "/a"), "");
    /* Already gone is fine when the parent is there. */
    EQ(RQ1(c, XSW_RM, 0, "/a/b"), "OK|");
    EQ(RQ1(c, XSW_RM, 0, "/a/x/y"), "E:ENOENT");
    EQ(RQ1(c, XSW_RM, 0, "/"), "E:EINVAL");
    c->ops->close(c);
}
END_TEST

START_TEST(paths)
{
    struct cxs_gconn *c = open_as(0), *g = open_as(5);
    char big[3100];

    EQ(wr(c, 0, "/a//b", "x"), "E:EINVAL");
    EQ(wr(c, 0, "/a/", "x"), "E:EINVAL");
    EQ(wr(c, 0, "/a b", "x"), "E:EINVAL");
    EQ(wr(c, 0, "@foo", "x"), "E:EINVAL");
    EQ(RQ1(c, XSW_READ, 0, "/a//b"), "E:EINVAL");
    EQ(rq(c, XSW_READ, 0, "/a", 2 - 1), "E:EINVAL"); /* no NUL */
    EQ(rq(c, XSW_READ, 0, "/a\0/b", 6), "E:EINVAL"); /* two strings */
    EQ(rq(c, XSW_WRITE, 0, "/a", 2), "E:EINVAL");
    /* Relative paths are the connection's domain's. */
    EQ(wr(c, 0, "rel", "0"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, "/local/domain/0/rel"), "0");
    EQ(RQ1(c, XSW_MKDIR, 0, "/local/domain/5"), "OK|");
    EQ(RQ1(c, XSW_SET_PERMS, 0, "/local/domain/5\0n5"), "E:EINVAL");
    EQ(RQN(c, XSW_SET_PERMS, 0, "/local/domain/5\0n5"), "OK|");
    EQ(wr(g, 0, "name", "five"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, "/local/domain/5/name"), "five");
    /* Long paths: beyond the key size of LMDB, within xenstored's limits. */
    memset(big, 'x', sizeof(big));
    memcpy(big, "/long/", 6);
    for (size_t i = 100; i < 2000; i += 100)
        big[i] = '/';
    big[2040] = '\0';
    EQ(wr(c, 0, big, "deep"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, big), "deep");
    big[1900] = '\0';
    char want[160];
    memset(want, 'x', 139);
    strcpy(want + 139, "|");
    EQ(RQ1(c, XSW_DIRECTORY, 0, big), want);
    EQ(RQ1(c, XSW_RM, 0, "/long"), "OK|");
    EQ(RQ1(c, XSW_DIRECTORY, 0, "/long"), "E:ENOENT");
    /* A guest's path below its domain is limited to 2048 bytes. */
    memset(big, 'y', 2100);
    big[2100] = '\0';
    EQ(wr(g, 0, big, "x"), "E:EINVAL");
    c->ops->close(c);
    g->ops->close(g);
}
END_TEST

START_TEST(long_names)
{
    struct cxs_gconn *c = open_as(0);
    char p[1200], q[1200];

    memset(p, 'n', sizeof(p));
    memcpy(p, "/d/", 3);
    p[1000] = '\0';
    strcpy(q, p);
    q[999] = 'm'; /* same head, another name */
    EQ(wr(c, 0, p, "1"), "OK|");
    EQ(wr(c, 0, q, "2"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, p), "1");
    EQ(RQ1(c, XSW_READ, 0, q), "2");
    const char *d = RQ1(c, XSW_DIRECTORY, 0, "/d");
    ck_assert_uint_eq(strlen(d), 2 * 998);
    ck_assert(strstr(d, q + 3) != NULL);
    EQ(RQ1(c, XSW_RM, 0, "/d"), "OK|");
    c->ops->close(c);
}
END_TEST

START_TEST(directory_part)
{
    struct cxs_gconn *c = open_as(0);
    char path[64], req[80];
    const char *r;

    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof(path), "/dp/child-with-a-long-name-%03d", i);
        EQ(wr(c, 0, path, ""), "OK|");
    }
    /* generation|names...| and a final empty name when complete. */
    size_t off = 0, total = 0;
    char gen[24] = "";
    for (int round = 0; round < 10; round++) {
        int n = snprintf(req, sizeof(req), "/dp%c%zu", 0, off);
        r = rq(c, XSW_DIRECTORY_PART, 0, req, n + 1);
        ck_assert(r[0] != 'E');
        const char *bar = strchr(r, '|');
        if (!gen[0])
            memcpy(gen, r, bar - r);
        ck_assert_int_eq(strncmp(r, gen, bar - r), 0);
        size_t len = strlen(bar + 1);
        off += len;
        total += len;
        if (len >= 2 && strcmp(bar + 1 + len - 2, "||") == 0) {
            total -= 1;
            break;
        }
        ck_assert_uint_lt(round, 9);
    }
    /* The whole list does not fit one message. */
    EQ(RQ1(c, XSW_DIRECTORY, 0, "/dp"), "E:E2BIG");
    ck_assert_uint_eq(total, 300 * 27);
    r = rq(c, XSW_DIRECTORY_PART, 0, "/dp\0"
                                     "99999",
           10);
    ck_assert_str_eq(strchr(r, '|'), "||");
    EQ(RQ1(c, XSW_DIRECTORY_PART, 0, "/dp"), "E:EINVAL");
    c->ops->close(c);
}
END_TEST

START_TEST(permissions)
{
    struct cxs_gconn *c = open_as(0), *g5 = open_as(5), *g6 = open_as(6);

    EQ(RQ1(c, XSW_MKDIR, 0, "/local/domain/5"), "OK|");
    EQ(RQN(c, XSW_SET_PERMS, 0, "/local/domain/5\0n5"), "OK|");
    /* Guests may not write where they have no permission. */
    EQ(wr(g5, 0, "/x", "1"), "E:EACCES");
    EQ(wr(g5, 0, "/local/domain/6/x", "1"), "E:EACCES");
    EQ(wr(g5, 0, "data/v", "1"), "OK|");
    /* The new node inherits the parent's list, owned by its creator. */
    EQ(RQ1(g5, XSW_GET_PERMS, 0, "data/v"), "n5|");
    EQ(RQ1(g6, XSW_READ, 0, "/local/domain/5/data/v"), "E:EACCES");
    /* A node that is not there: EACCES unless the parent is readable. */
    EQ(RQ1(g6, XSW_READ, 0, "/local/domain/5/nope"), "E:EACCES");
    EQ(RQ1(g5, XSW_READ, 0, "nope"), "E:ENOENT");
    EQ(RQ1(g6, XSW_READ, 0, "/nope"), "E:EACCES");
    EQ(RQ1(c, XSW_READ, 0, "/nope"), "E:ENOENT");
    /* Per-domain entries. */
    EQ(RQN(g5, XSW_SET_PERMS, 0, "data/v\0n5\0r6"), "OK|");
    EQ(RQ1(g6, XSW_READ, 0, "/local/domain/5/data/v"), "1");
    EQ(wr(g6, 0, "/local/domain/5/data/v", "2"), "E:EACCES");
    EQ(RQN(g5, XSW_SET_PERMS, 0, "data/v\0n5\0b6"), "OK|");
    EQ(wr(g6, 0, "/local/domain/5/data/v", "2"), "OK|");
    /* A node created by 6 below 5's node is 6's. */
    EQ(RQN(g5, XSW_SET_PERMS, 0, "data\0n5\0b6"), "OK|");
    EQ(wr(g6, 0, "/local/domain/5/data/w", "6"), "OK|");
    EQ(RQ1(c, XSW_GET_PERMS, 0, "/local/domain/5/data/w"), "n6|b6|");
    /* Only the owner sets permissions, and a guest cannot give a node away. */
    EQ(RQN(g6, XSW_SET_PERMS, 0, "/local/domain/5/data/v\0n6"),
       "E:EACCES");
    EQ(RQN(g5, XSW_SET_PERMS, 0, "data/v\0n6"), "E:EPERM");
    EQ(RQN(g5, XSW_SET_PERMS, 0, "data/v\0x5"), "E:EINVAL");
    EQ(RQN(c, XSW_SET_PERMS, 0, "/local/domain/5/data/v\0n0\0w5\0r6"),
       "OK|");
    EQ(RQ1(c, XSW_GET_PERMS, 0, "/local/domain/5/data/v"), "n0|w5|r6|");
    /* Write-only: 5 may write but not read. */
    EQ(wr(g5, 0, "data/v", "3"), "OK|");
    EQ(RQ1(g5, XSW_READ, 0, "data/v"), "E:EACCES");
    /* Removal needs write permission. */
    EQ(RQ1(g6, XSW_RM, 0, "/local/domain/5/data/v"), "E:EACCES");
    /* Privileged requests. */
    EQ(RQN(g5, XSW_INTRODUCE, 0, "7\0"
                                 "1\0"
                                 "2"),
       "E:EACCES");
    EQ(RQ1(g5, XSW_IS_DOMAIN_INTRODUCED, 0, "0"), "E:EACCES");
    EQ(RQ1(g5, XSW_GET_DOMAIN_PATH, 0, "5"), "/local/domain/5|");
    c->ops->close(c);
    g5->ops->close(g5);
    g6->ops->close(g6);
}
END_TEST

START_TEST(quotas)
{
    struct cxs_gconn *c = open_as(0), *g = open_as(5);
    char v[2100], p[64];

    EQ(RQ1(c, XSW_MKDIR, 0, "/local/domain/5"), "OK|");
    EQ(RQN(c, XSW_SET_PERMS, 0, "/local/domain/5\0n5"), "OK|");
    memset(v, 'v', sizeof(v));
    v[2048] = '\0';
    EQ(wr(g, 0, "big", v), "OK|");
    v[2048] = 'v';
    v[2049] = '\0';
    EQ(wr(g, 0, "big", v), "E:ENOSPC");
    EQ(wr(c, 0, "/local/domain/5/big", v), "OK|");
    /* Watches per connection. */
    for (int i = 0; i < (int)LS_QUOTA_WATCHES; i++) {
        int n = snprintf(p, sizeof(p), "w%c%d", 0, i);
        EQ(rq(g, XSW_WATCH, 0, p, n + 1), "OK|");
    }
    EQ(RQN(g, XSW_WATCH, 0, "w\0last"), "E:E2BIG");
    EQ(RQN(c, XSW_WATCH, 0, "w\0last"), "OK|");
    /* Transactions per connection. */
    for (int i = 0; i < (int)LS_QUOTA_TX; i++)
        txstart(g);
    EQ(RQ1(g, XSW_TRANSACTION_START, 0, ""), "E:ENOSPC");
    /* Entries a domain owns (its directory and big count). */
    int ok = 0;
    for (int i = 0; i < 1100; i++) {
        snprintf(p, sizeof(p), "n%d", i);
        if (strcmp(wr(g, 0, p, ""), "OK|") == 0)
            ok++;
        else
            EQ(last, "E:ENOSPC");
    }
    ck_assert_int_eq(ok, (int)LS_QUOTA_ENTRIES - 2);
    /* Removal gives them back. */
    EQ(RQ1(g, XSW_RM, 0, "n0"), "OK|");
    EQ(wr(g, 0, "again", ""), "OK|");
    EQ(wr(g, 0, "again2", ""), "E:ENOSPC");
    /* dom0 has no quota. */
    EQ(wr(c, 0, "/local/domain/5/dom0s", ""), "OK|");
    c->ops->close(c);
    g->ops->close(g);
}
END_TEST

START_TEST(tx_basic)
{
    struct cxs_gconn *c = open_as(0), *o = open_as(0);
    uint32_t t = txstart(c);

    EQ(wr(c, t, "/t/a", "1"), "OK|");
    EQ(RQ1(c, XSW_READ, t, "/t/a"), "1");
    EQ(RQ1(c, XSW_DIRECTORY, t, "/t"), "a|");
    EQ(RQ1(c, XSW_READ, 0, "/t/a"), "E:ENOENT");
    EQ(RQ1(o, XSW_READ, 0, "/t/a"), "E:ENOENT");
    EQ(RQ1(c, XSW_RM, t, "/t/a"), "OK|");
    EQ(RQ1(c, XSW_READ, t, "/t/a"), "E:ENOENT");
    EQ(wr(c, t, "/t/b", "2"), "OK|");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "T"), "OK|");
    EQ(RQ1(o, XSW_READ, 0, "/t/b"), "2");
    EQ(RQ1(o, XSW_READ, 0, "/t/a"), "E:ENOENT");
    /* Abort discards. */
    t = txstart(c);
    EQ(wr(c, t, "/t/c", "3"), "OK|");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "F"), "OK|");
    EQ(RQ1(c, XSW_READ, 0, "/t/c"), "E:ENOENT");
    /* Gone after its end; bad arguments; nested start. */
    EQ(RQ1(c, XSW_READ, t, "/t/b"), "E:ENOENT");
    EQ(RQ1(c, XSW_TRANSACTION_END, 0, "T"), "E:ENOENT");
    t = txstart(c);
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "X"), "E:EINVAL");
    EQ(RQ1(c, XSW_TRANSACTION_START, t, ""), "E:EBUSY");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "F"), "OK|");
    /* Many writes of one key (a table of fixed size once overflowed). */
    t = txstart(c);
    for (int i = 0; i < 200; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        EQ(wr(c, t, "/t/k", v), "OK|");
    }
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "T"), "OK|");
    EQ(RQ1(o, XSW_READ, 0, "/t/k"), "199");
    c->ops->close(c);
    o->ops->close(o);
}
END_TEST

START_TEST(tx_conflict)
{
    struct cxs_gconn *c = open_as(0), *o = open_as(0);
    uint32_t t;

    EQ(wr(o, 0, "/x", "0"), "OK|");
    /* Something it read changed: EAGAIN, nothing applied. */
    t = txstart(c);
    EQ(RQ1(c, XSW_READ, t, "/x"), "0");
    EQ(wr(o, 0, "/x", "1"), "OK|");
    EQ(wr(c, t, "/y", "from-tx"), "OK|");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "T"), "E:EAGAIN");
    EQ(RQ1(o, XSW_READ, 0, "/y"), "E:ENOENT");
    /* Something it wrote changed. */
    t = txstart(c);
    EQ(wr(c, t, "/x", "tx"), "OK|");
    EQ(wr(o, 0, "/x", "2"), "OK|");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "T"), "E:EAGAIN");
    EQ(RQ1(o, XSW_READ, 0, "/x"), "2");
    /* A node it saw absent appeared. */
    t = txstart(c);
    EQ(RQ1(c, XSW_READ, t, "/z"), "E:ENOENT");
    EQ(wr(o, 0, "/z", "now"), "OK|");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "T"), "E:EAGAIN");
    /* A child added to a directory it listed. */
    t = txstart(c);
    EQ(RQ1(c, XSW_DIRECTORY, t, "/"), "tool|x|z|");
    EQ(wr(o, 0, "/new", ""), "OK|");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "T"), "E:EAGAIN");
    /* Unrelated changes do not conflict. */
    t = txstart(c);
    EQ(RQ1(c, XSW_READ, t, "/x"), "2");
    EQ(wr(c, t, "/x", "3"), "OK|");
    EQ(wr(o, 0, "/other", "1"), "OK|");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "T"), "OK|");
    EQ(RQ1(o, XSW_READ, 0, "/x"), "3");
    /* Two transactions on one node: the second to commit fails. */
    uint32_t a = txstart(c), b = txstart(o);
    EQ(RQ1(c, XSW_READ, a, "/x"), "3");
    EQ(RQ1(o, XSW_READ, b, "/x"), "3");
    EQ(wr(c, a, "/x", "a"), "OK|");
    EQ(wr(o, b, "/x", "b"), "OK|");
    EQ(RQ1(o, XSW_TRANSACTION_END, b, "T"), "OK|");
    EQ(RQ1(c, XSW_TRANSACTION_END, a, "T"), "E:EAGAIN");
    EQ(RQ1(c, XSW_READ, 0, "/x"), "b");
    c->ops->close(c);
    o->ops->close(o);
}
END_TEST

START_TEST(watch_rules)
{
    struct cxs_gconn *c = open_as(0), *w = open_as(0);

    EQ(RQN(w, XSW_WATCH, 0, "/a/b\0tok"), "OK|");
    EQ(event(w), "/a/b|tok|"); /* fires once when set */
    EQ(event(w), "");
    EQ(RQN(w, XSW_WATCH, 0, "/a/b\0tok"), "E:EEXIST");
    EQ(wr(c, 0, "/a/b/c", "1"), "OK|");
    EQ(wr(c, 0, "/a/bc", "1"), "OK|"); /* not below /a/b */
    EQ(wr(c, 0, "/a", "1"), "OK|");    /* above: no */
    EQ(wr(c, 0, "/a/b", "1"), "OK|");
    EQ(event(w), "/a/b/c|tok|");
    EQ(event(w), "/a/b|tok|");
    EQ(event(w), "");
    /* Removal of a parent fires with the watch's path. */
    EQ(RQ1(c, XSW_RM, 0, "/a"), "OK|");
    EQ(event(w), "/a/b|tok|");
    EQ(event(w), "");
    /* A transaction's changes fire at commit, once per path. */
    uint32_t t = txstart(c);
    EQ(wr(c, t, "/a/b", "x"), "OK|");
    EQ(wr(c, t, "/a/b", "y"), "OK|");
    EQ(event(w), "");
    EQ(RQ1(c, XSW_TRANSACTION_END, t, "T"), "OK|");
    EQ(event(w), "/a/b|tok|");
    EQ(event(w), "");
    /* Relative watches get relative paths. */
    EQ(RQN(w, XSW_WATCH, 0, "rel\0r"), "OK|");
    EQ(event(w), "rel|r|");
    EQ(wr(c, 0, "/local/domain/0/rel/x", ""), "OK|");
    EQ(event(w), "rel/x|r|");
    /* Special watches. */
    EQ(RQN(w, XSW_WATCH, 0, "@introduceDomain\0i"), "OK|");
    EQ(RQN(w, XSW_WATCH, 0, "@releaseDomain\0r"), "OK|");
    EQ(event(w), "@introduceDomain|i|");
    EQ(event(w), "@releaseDomain|r|");
    EQ(RQN(c, XSW_INTRODUCE, 0, "3\0"
                                "1234\0"
                                "5"),
       "OK|");
    EQ(event(w), "@introduceDomain|i|");
    EQ(RQN(c, XSW_INTRODUCE, 0, "3\0"
                                "1234\0"
                                "5"),
       "OK|"); /* again: no */
    EQ(RQ1(c, XSW_IS_DOMAIN_INTRODUCED, 0, "3"), "T|");
    EQ(RQ1(c, XSW_RELEASE, 0, "3"), "OK|");
    EQ(event(w), "@releaseDomain|r|");
    EQ(event(w), "");
    EQ(RQ1(c, XSW_IS_DOMAIN_INTRODUCED, 0, "3"), "F|");
    EQ(RQ1(c, XSW_IS_DOMAIN_INTRODUCED, 0, "0"), "T|");
    EQ(RQ1(c, XSW_RELEASE, 0, "3"), "E:ENOENT");
    EQ(RQ1(c, XSW_RELEASE, 0, "0"), "E:EINVAL");
    EQ(RQN(c, XSW_INTRODUCE, 0, "4\0"
                                "1\0"
                                "0"),
       "E:EINVAL");
    /* Unwatch. */
    EQ(RQN(w, XSW_UNWATCH, 0, "/a/b\0tok"), "OK|");
    EQ(RQN(w, XSW_UNWATCH, 0, "/a/b\0tok"), "E:ENOENT");
    EQ(wr(c, 0, "/a/b", "z"), "OK|");
    EQ(event(w), "");
    EQ(RQN(w, XSW_WATCH, 0, "/a//b\0tok"), "E:EINVAL");
    EQ(RQ1(w, XSW_WATCH, 0, "/a"), "E:EINVAL");
    c->ops->close(c);
    w->ops->close(w);
}
END_TEST

START_TEST(watch_fd)
{
    struct cxs_gconn *c = open_as(0), *w = open_as(0);
    int fd = w->ops->event_fd(w);
    struct pollfd p = {.fd = fd, .events = POLLIN};

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    EQ(RQN(w, XSW_WATCH, 0, "/p\0t"), "OK|");
    ck_assert_int_eq(poll(&p, 1, 0), 1); /* the initial event */
    EQ(event(w), "/p|t|");
    EQ(event(w), "");
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    EQ(wr(c, 0, "/p", "1"), "OK|");
    EQ(wr(c, 0, "/p", "2"), "OK|");
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    EQ(event(w), "/p|t|");
    /* Still readable: one event waits. */
    ck_assert_int_eq(poll(&p, 1, 0), 1);
    EQ(event(w), "/p|t|");
    EQ(event(w), "");
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    c->ops->close(c);
    w->ops->close(w);
}
END_TEST

/* The inotify instances this process holds. */
static int inotify_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char p[300], l[64];
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d))) {
        ssize_t k;
        snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
        if ((k = readlink(p, l, sizeof(l) - 1)) < 0)
            continue;
        l[k] = '\0';
        n += strcmp(l, "anon_inode:inotify") == 0;
    }
    closedir(d);
    return n;
}

/* p's fd is readable within ms, and c's next event is want. */
static void woke(struct pollfd *p, int ms, struct cxs_gconn *c,
                 const char *want)
{
    ck_assert_msg(poll(p, 1, ms) == 1, "asleep, waiting for %s", want);
    EQ(event(c), want);
}

#define NSHARE 100

/*
 * Many connections of one store in one process: one inotify instance
 * between them, and each connection's fd wakes for its own event even
 * after another connection took the bell's ring.
 */
START_TEST(shared_bell)
{
    struct cxs_gconn *c = open_as(0), *w[NSHARE];
    struct pollfd p[NSHARE];
    char buf[64], want[64];

    for (int i = 0; i < NSHARE; i++) {
        w[i] = open_as(0);
        p[i] = (struct pollfd){.fd = w[i]->ops->event_fd(w[i]),
                               .events = POLLIN};
        ck_assert_int_ge(p[i].fd, 0);
        snprintf(buf, sizeof(buf), "/many/%d%ct%d", i, '\0', i);
        EQ(rq(w[i], XSW_WATCH, 0, buf, strlen(buf) + strlen(buf + strlen(buf) + 1) + 2),
           "OK|");
        snprintf(want, sizeof(want), "/many/%d|t%d|", i, i);
        EQ(event(w[i]), want);
        EQ(event(w[i]), "");
    }
    ck_assert_int_eq(inotify_count(), 1);
    for (int i = 0; i < NSHARE; i++) {
        snprintf(buf, sizeof(buf), "/many/%d", i);
        EQ(wr(c, 0, buf, "x"), "OK|");
    }
    /* The first connection drains the ring; the others still wake. */
    for (int i = 0; i < NSHARE; i++) {
        snprintf(want, sizeof(want), "/many/%d|t%d|", i, i);
        woke(&p[i], 10000, w[i], want);
        EQ(event(w[i]), "");
        ck_assert_int_eq(poll(&p[i], 1, 0), 0);
    }
    ck_assert_int_eq(inotify_count(), 1);
    for (int i = 0; i < NSHARE; i++)
        w[i]->ops->close(w[i]);
    c->ops->close(c);
}
END_TEST

/* A connection's fd stays readable (level) after another connection
 * consumed the shared ring, until its own event is taken. */
START_TEST(level_after_drain)
{
    struct cxs_gconn *c = open_as(0), *a = open_as(0), *b = open_as(0);
    struct pollfd pa = {.fd = a->ops->event_fd(a), .events = POLLIN};
    struct pollfd pb = {.fd = b->ops->event_fd(b), .events = POLLIN};

    ck_assert_int_ge(pa.fd, 0);
    ck_assert_int_ge(pb.fd, 0);
    EQ(RQN(a, XSW_WATCH, 0, "/x\0ta"), "OK|");
    EQ(RQN(b, XSW_WATCH, 0, "/x\0tb"), "OK|");
    EQ(event(a), "/x|ta|");
    EQ(event(a), "");
    EQ(event(b), "/x|tb|");
    EQ(event(b), "");
    ck_assert_int_eq(poll(&pa, 1, 0), 0);
    ck_assert_int_eq(poll(&pb, 1, 0), 0);
    EQ(wr(c, 0, "/x", "1"), "OK|");
    woke(&pb, 10000, b, "/x|tb|");
    EQ(event(b), "");
    /* b drained the bell: a is readable still, and again. */
    ck_assert_int_eq(poll(&pa, 1, 0), 1);
    woke(&pa, 0, a, "/x|ta|");
    EQ(event(a), "");
    ck_assert_int_eq(poll(&pa, 1, 0), 0);
    /* A second commit: the same the other way round. */
    EQ(wr(c, 0, "/x", "2"), "OK|");
    woke(&pa, 10000, a, "/x|ta|");
    woke(&pb, 0, b, "/x|tb|");
    EQ(event(a), "");
    EQ(event(b), "");
    struct cxs_gconn *all[] = {a, b, c};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        all[i]->ops->close(all[i]);
}
END_TEST

/*
 * No fd left for the bell or a connection's event fd: a WATCH is
 * refused (ENOSPC, as xenstored says "no room"), never answered OK with
 * events nobody would be woken for. It works once fds are back.
 */
START_TEST(watch_refused_without_fds)
{
    struct cxs_gconn *w = open_as(0), *f = open_as(0);
    struct rlimit old, none;
    int lowest = dup(0);

    ck_assert_int_ge(lowest, 0);
    close(lowest);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    none = old;
    none.rlim_cur = (rlim_t)lowest; /* every fd below it is in use */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
    int fd = f->ops->event_fd(f);
    uint32_t rt, rl;
    char *r1 = NULL, *r2 = NULL;
    int rc1 = w->ops->request(w, XSW_WATCH, 0, "/q\0t", 5, &rt, &r1, &rl);
    uint32_t rt1 = rt;
    int rc2 = f->ops->request(f, XSW_WATCH, 0, "/q\0t", 5, &rt, &r2, &rl);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    ck_assert_int_lt(fd, 0);
    ck_assert_int_eq(rc1, 0);
    ck_assert_int_eq(rc2, 0);
    ck_assert_uint_eq(rt1, XSW_ERROR);
    ck_assert_str_eq(r1, "ENOSPC");
    ck_assert_uint_eq(rt, XSW_ERROR);
    ck_assert_str_eq(r2, "ENOSPC");
    free(r1);
    free(r2);
    EQ(event(w), "");
    /* With fds again: both watch, f's fd is made at its WATCH. */
    EQ(RQN(w, XSW_WATCH, 0, "/q\0t"), "OK|");
    EQ(RQN(f, XSW_WATCH, 0, "/q\0t"), "OK|");
    struct pollfd p = {.fd = f->ops->event_fd(f), .events = POLLIN};
    ck_assert_int_ge(p.fd, 0);
    ck_assert_int_eq(poll(&p, 1, 0), 1);
    EQ(event(f), "/q|t|");
    EQ(event(w), "/q|t|");
    w->ops->close(w);
    f->ops->close(f);
}
END_TEST

START_TEST(journal_trim)
{
    struct cxs_gconn *c = open_as(0), *w = open_as(0);

    EQ(RQN(w, XSW_WATCH, 0, "/j\0a"), "OK|");
    EQ(RQN(w, XSW_WATCH, 0, "/k\0b"), "OK|");
    EQ(event(w), "/j|a|");
    EQ(event(w), "/k|b|");
    /* The watcher sleeps through more commits than the journal keeps. */
    for (unsigned int i = 0; i < LS_JOURNAL_KEEP + 100; i++)
        EQ(wr(c, 0, "/other", "x"), "OK|");
    EQ(wr(c, 0, "/j/x", "x"), "OK|");
    /* One conservative event per watch, then back to normal. */
    EQ(event(w), "/j|a|");
    EQ(event(w), "/k|b|");
    EQ(event(w), "");
    EQ(wr(c, 0, "/k/y", "x"), "OK|");
    EQ(event(w), "/k/y|b|");
    EQ(event(w), "");
    c->ops->close(c);
    w->ops->close(w);
}
END_TEST

START_TEST(misc_requests)
{
    struct cxs_gconn *c = open_as(0);
    char big[5000];

    EQ(RQ1(c, XSW_GET_DOMAIN_PATH, 0, "12"), "/local/domain/12|");
    EQ(RQ1(c, XSW_READ, 77, "/"), "E:ENOENT"); /* unknown transaction */
    EQ(rq(c, 20, 0, "", 1), "E:ENOSYS");
    EQ(rq(c, 99, 0, "", 1), "E:ENOSYS");
    EQ(rq(c, XSW_WATCH_EVENT, 0, "", 1), "E:ENOSYS");
    memset(big, 'a', sizeof(big));
    EQ(rq(c, XSW_WRITE, 0, big, sizeof(big)), "E:E2BIG");
    EQ(RQN(c, XSW_WATCH, 0, "/r\0t"), "OK|");
    EQ(RQ1(c, XSW_RESET_WATCHES, 0, ""), "OK|");
    EQ(RQN(c, XSW_UNWATCH, 0, "/r\0t"), "E:ENOENT");
    EQ(rq(c, XSW_READ, 0, NULL, 0), "E:EINVAL");
    c->ops->close(c);
}
END_TEST

START_TEST(reopen_keeps_tree)
{
    struct cxs_gconn *c = open_as(0);

    EQ(wr(c, 0, "/keep", "me"), "OK|");
    c->ops->close(c);
    c = open_as(0);
    EQ(RQ1(c, XSW_READ, 0, "/keep"), "me");
    c->ops->close(c);
    /* A store of another boot describes domains that are gone: reset. */
    char p[300];
    snprintf(p, sizeof(p), "%s/boot_id", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("another boot\n", f);
    fclose(f);
    c = open_as(0);
    EQ(RQ1(c, XSW_READ, 0, "/keep"), "E:ENOENT");
    EQ(RQ1(c, XSW_DIRECTORY, 0, "/"), "tool|");
    c->ops->close(c);
}
END_TEST

static Suite *suite(void)
{
    return check_suite("lstore", "requests", setup, teardown, 120,
                       CHECK_TESTS(initial_tree, write_read_rm, paths,
                                   long_names, directory_part, permissions,
                                   quotas, tx_basic, tx_conflict, watch_rules,
                                   watch_fd, shared_bell, level_after_drain,
                                   watch_refused_without_fds, journal_trim,
                                   misc_requests, reopen_keeps_tree));
}

CHECK_MAIN(suite)
