/*
 * check_lstore_mp: the local store shared by processes and threads.
 *
 *  - processes (and threads sharing one connection) run transactions
 *    on one counter: every committed transaction is seen exactly once,
 *    conflicts come back as EAGAIN;
 *  - writers are killed with SIGKILL in the middle of transactions,
 *    round after round: the tree stays consistent (the counter matches
 *    the log written in the same transactions, every listed child
 *    exists, no orphaned records) and a new process can write;
 *  - a watch in one process sees another process's writes and
 *    @releaseDomain, through the fd it polls;
 *  - threads, each with a connection of its own polling its own fd,
 *    drain the process's one bell at the same time: none misses a
 *    wake-up (a poll that sleeps 10 s with events due fails).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../compat-xs/lstore.h"
#include "check_main.h"

static char dir[256];

static void setup(void)
{
    const char *base = getenv("NOXS_TEST_DIR");

    snprintf(dir, sizeof(dir), "%s/lstore-mp.XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A request; its reply (malloc'd) and the reply type. Aborts on -errno. */
static char *req(struct cxs_gconn *c, uint32_t type, uint32_t tx,
                 const void *p, uint32_t len, uint32_t *rt)
{
    uint32_t rl;
    char *r;

    if (c->ops->request(c, type, tx, p, len, rt, &r, &rl) != 0)
        abort();
    return r;
}

/* 0, or the errno of an error reply. */
static int req_err(struct cxs_gconn *c, uint32_t type, uint32_t tx,
                   const void *p, uint32_t len, char **out)
{
    uint32_t rt;
    char *r = req(c, type, tx, p, len, &rt);
    int e = rt == XSW_ERROR ? xsw_errno_parse(r) : 0;

    if (out && !e)
        *out = r;
    else
        free(r);
    return e;
}

static int write_kv(struct cxs_gconn *c, uint32_t tx, const char *path,
                    const char *val)
{
    char buf[4096];
    size_t n = strlen(path) + 1, v = strlen(val);

    memcpy(buf, path, n);
    memcpy(buf + n, val, v);
    return req_err(c, XSW_WRITE, tx, buf, n + v, NULL);
}

/*
 * One increment of /cnt with a log entry, in a transaction, retried on
 * EAGAIN. pad: bytes of filler written too, so a kill can land inside.
 * Returns 0, or -1 when the retry bound ran out.
 */
static int increment(struct cxs_gconn *c, const char *who, int i, int pad)
{
    static char filler[1500];
    char path[128], v[32], *r;

    memset(filler, 'f', sizeof(filler) - 1);
    for (int tries = 0; tries < 100000; tries++) {
        uint32_t tx;
        if (req_err(c, XSW_TRANSACTION_START, 0, "", 1, &r))
            return -1;
        tx = strtoul(r, NULL, 10);
        free(r);
        long n = 0;
        if (req_err(c, XSW_READ, tx, "/cnt", 5, &r) == 0) {
            n = strtol(r, NULL, 10);
            free(r);
        }
        snprintf(v, sizeof(v), "%ld", n + 1);
        snprintf(path, sizeof(path), "/log/%s-%d", who, i);
        int e = write_kv(c, tx, "/cnt", v);
        if (!e)
            e = write_kv(c, tx, path, v);
        for (int k = 0; !e && k < pad; k++) {
            snprintf(path, sizeof(path), "/junk/%s/%d", who, k);
            filler[sizeof(filler) - 1 - (k % 10)] = '\0';
            e = write_kv(c, tx, path, filler);
        }
        if (!e && pad) {
            snprintf(path, sizeof(path), "/junk/%s", who);
            e = req_err(c, XSW_RM, tx, path, strlen(path) + 1, NULL);
        }
        if (e)
            return -1;
        e = req_err(c, XSW_TRANSACTION_END, tx, "T", 2, NULL);
        if (e == 0)
            return 0;
        if (e != EAGAIN)
            return -1;
    }
    return -1;
}

static long read_long(struct cxs_gconn *c, const char *path)
{
    char *r;
    long v;

    if (req_err(c, XSW_READ, 0, path, strlen(path) + 1, &r))
        return -1;
    v = strtol(r, NULL, 10);
    free(r);
    return v;
}

/* The children of path as NUL-terminated names in one malloc'd buffer
 * of *len bytes, read in DIRECTORY_PART pieces (a listing of hundreds
 * of log entries does not fit one message). */
static char *list_children(struct cxs_gconn *c, const char *path,
                           size_t *len)
{
    char *all = NULL;
    size_t n = 0;

    for (int part = 0; part < 10000; part++) {
        char req[4200], *r;
        uint32_t rt, rl, i;
        int l = snprintf(req, sizeof(req), "%s%c%zu", path, '\0', n);

        ck_assert_int_eq(c->ops->request(c, XSW_DIRECTORY_PART, 0, req,
                                         (uint32_t)l + 1, &rt, &r, &rl),
                         0);
        ck_assert_msg(rt == XSW_DIRECTORY_PART, "%s: %s", path, r);
        i = (uint32_t)strnlen(r, rl) + 1; /* the generation */
        while (i < rl && r[i] != '\0') {
            size_t k = strnlen(r + i, rl - i) + 1;
            all = realloc(all, n + k);
            ck_assert_ptr_nonnull(all);
            memcpy(all + n, r + i, k);
            n += k;
            i += (uint32_t)k;
        }
        bool end = i < rl && r[i] == '\0';
        free(r);
        if (end) {
            *len = n;
            return all;
        }
    }
    ck_abort_msg("no end to the listing of %s", path);
    return NULL;
}

static size_t count_children(struct cxs_gconn *c, const char *path)
{
    size_t len, n = 0;
    char *all = list_children(c, path, &len);

    for (size_t i = 0; i < len; i++)
        n += all[i] == '\0';
    free(all);
    return n;
}

#define PROCS 3
#define ROUNDS 150

START_TEST(concurrent_transactions)
{
    struct cxs_gconn *c = cxs_lstore_open(dir, 0);
    pid_t pid[PROCS];

    ck_assert_ptr_nonnull(c);
    for (int p = 0; p < PROCS; p++) {
        pid[p] = fork();
        ck_assert_int_ge(pid[p], 0);
        if (pid[p] == 0) {
            /* The first child goes on with the inherited connection. */
            struct cxs_gconn *cc = p == 0 ? c : cxs_lstore_open(dir, 0);
            char who[16];
            snprintf(who, sizeof(who), "p%d", p);
            for (int i = 0; i < ROUNDS; i++)
                if (!cc || increment(cc, who, i, 0))
                    _exit(1);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int st;
        ck_assert_int_eq(waitpid(pid[p], &st, 0), pid[p]);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    ck_assert_int_eq(read_long(c, "/cnt"), PROCS * ROUNDS);
    ck_assert_uint_eq(count_children(c, "/log"), PROCS * ROUNDS);
    c->ops->close(c);
}
END_TEST

struct thr {
    struct cxs_gconn *c;
    int id, ok;
};

static void *thread_main(void *arg)
{
    struct thr *t = arg;
    char who[16];

    snprintf(who, sizeof(who), "t%d", t->id);
    t->ok = 1;
    for (int i = 0; i < 100; i++)
        if (increment(t->c, who, i, 0))
            t->ok = 0;
    return NULL;
}

START_TEST(threads_share_connection)
{
    struct cxs_gconn *c = cxs_lstore_open(dir, 0);
    struct thr t[3];
    pthread_t th[3];

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->ops->event_fd(c) >= 0, 1);
    for (int i = 0; i < 3; i++) {
        t[i] = (struct thr){.c = c, .id = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &t[i]), 0);
    }
    /* Watches and events from another thread at the same time. */
    ck_assert_int_eq(req_err(c, XSW_WATCH, 0, "/cnt\0w", 7, NULL), 0);
    for (int i = 0; i < 200; i++) {
        char *p;
        uint32_t len;
        if (c->ops->next_event(c, &p, &len) == 0)
            free(p);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].ok, 1);
    }
    ck_assert_int_eq(read_long(c, "/cnt"), 300);
    c->ops->close(c);
}
END_TEST

#define WTHREADS 6
#define WROUNDS 40

struct wthr {
    struct cxs_gconn *c;
    int id;
    int got;
    const char *err;
};

/* Wait on its own fd only: a lost wake-up shows as a 10 s sleep. */
static void *watcher_main(void *arg)
{
    struct wthr *t = arg;
    struct pollfd p = {.fd = t->c->ops->event_fd(t->c), .events = POLLIN};
    char *ev;
    uint32_t len;

    while (t->got < WROUNDS) {
        if (poll(&p, 1, 10000) != 1) {
            t->err = "asleep with events due";
            return NULL;
        }
        while (t->c->ops->next_event(t->c, &ev, &len) == 0) {
            t->got++;
            free(ev);
        }
    }
    return NULL;
}

START_TEST(threads_own_connections)
{
    struct cxs_gconn *w = cxs_lstore_open(dir, 0);
    struct wthr t[WTHREADS];
    pthread_t th[WTHREADS];
    char path[64], tok[16], buf[96];

    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < WTHREADS; i++) {
        t[i] = (struct wthr){.c = cxs_lstore_open(dir, 0), .id = i};
        ck_assert_ptr_nonnull(t[i].c);
        ck_assert_int_ge(t[i].c->ops->event_fd(t[i].c), 0);
        snprintf(path, sizeof(path), "/thr/%d", i);
        snprintf(tok, sizeof(tok), "t%d", i);
        size_t pl = strlen(path) + 1, tl = strlen(tok) + 1;
        memcpy(buf, path, pl);
        memcpy(buf + pl, tok, tl);
        ck_assert_int_eq(req_err(t[i].c, XSW_WATCH, 0, buf, pl + tl, NULL), 0);
        char *ev;
        uint32_t len;
        ck_assert_int_eq(t[i].c->ops->next_event(t[i].c, &ev, &len), 0);
        free(ev);
    }
    for (int i = 0; i < WTHREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, watcher_main, &t[i]),
                         0);
    for (int r = 0; r < WROUNDS; r++)
        for (int i = 0; i < WTHREADS; i++) {
            snprintf(path, sizeof(path), "/thr/%d", i);
            ck_assert_int_eq(write_kv(w, 0, path, "x"), 0);
        }
    for (int i = 0; i < WTHREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(!t[i].err, "thread %d: %s after %d events", i,
                      t[i].err, t[i].got);
        ck_assert_int_eq(t[i].got, WROUNDS);
        t[i].c->ops->close(t[i].c);
    }
    w->ops->close(w);
}
END_TEST

/* Every listed child exists; returns the number of nodes below path. */
static size_t walk(struct cxs_gconn *c, const char *path)
{
    char *r, child[4096];
    size_t n = 1, rl;

    r = list_children(c, path, &rl);
    for (size_t i = 0; i < rl; i += strlen(r + i) + 1) {
        snprintf(child, sizeof(child), "%s/%s",
                 strcmp(path, "/") ? path : "", r + i);
        char *v;
        ck_assert_int_eq(req_err(c, XSW_READ, 0, child, strlen(child) + 1,
                                 &v),
                         0);
        free(v);
        n += walk(c, child);
    }
    free(r);
    return n;
}

START_TEST(kill9_writers)
{
    struct timespec ts;
    unsigned int seed = (unsigned int)getpid();

    for (int round = 0; round < 25; round++) {
        pid_t pid[PROCS];
        for (int p = 0; p < PROCS; p++) {
            pid[p] = fork();
            ck_assert_int_ge(pid[p], 0);
            if (pid[p] == 0) {
                struct cxs_gconn *cc = cxs_lstore_open(dir, 0);
                char who[32];
                snprintf(who, sizeof(who), "r%dp%d", round, p);
                for (int i = 0; cc; i++)
                    if (increment(cc, who, i, 12))
                        _exit(1);
                _exit(1);
            }
        }
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(rand_r(&seed) % 30 + 1) * 1000000L;
        nanosleep(&ts, NULL);
        for (int p = 0; p < PROCS; p++)
            kill(pid[p], SIGKILL);
        for (int p = 0; p < PROCS; p++) {
            int st;
            ck_assert_int_eq(waitpid(pid[p], &st, 0), pid[p]);
            /* Killed, never failed by itself. */
            ck_assert_msg(WIFSIGNALED(st), "writer exited %d",
                          WEXITSTATUS(st));
        }
    }
    /* A new process finds one consistent tree and can write. */
    struct cxs_gconn *c = cxs_lstore_open(dir, 0);
    ck_assert_ptr_nonnull(c);
    long cnt = read_long(c, "/cnt");
    /* A slow machine (a sanitizer build) may kill every writer before
     * its first commit: then none of /cnt, /log, /junk exists. */
    size_t logs = cnt < 0 ? 0 : count_children(c, "/log");
    ck_assert_int_eq(cnt < 0 ? 0 : cnt, (long)logs);
    fprintf(stderr, "kill9_writers: %ld transactions survived 25 rounds of kill -9\n", cnt);
    /* No /junk/<who> survives a commit: each transaction removed it. */
    if (cnt >= 0)
        ck_assert_uint_eq(count_children(c, "/junk"), 0);
    size_t nodes = walk(c, "/");
    struct ls_conn *lc = (struct ls_conn *)c;
    MDB_txn *t;
    MDB_stat st;
    ck_assert_int_eq(mdb_txn_begin(lc->e->env, NULL, MDB_RDONLY, &t), 0);
    ck_assert_int_eq(mdb_stat(t, lc->e->node, &st), 0);
    ck_assert_uint_eq(st.ms_entries, nodes);
    ck_assert_int_eq(mdb_stat(t, lc->e->kid, &st), 0);
    ck_assert_uint_eq(st.ms_entries, nodes - 1);
    mdb_txn_abort(t);
    ck_assert_int_eq(increment(c, "after", 0, 3), 0);
    ck_assert_int_eq(read_long(c, "/cnt"), (long)logs + 1);
    c->ops->close(c);
}
END_TEST

/* Wait (bounded) for an event with this path on c; 0 if it came. */
static int wait_event(struct cxs_gconn *c, const char *path)
{
    struct pollfd p = {.fd = c->ops->event_fd(c), .events = POLLIN};

    for (int i = 0; i < 200; i++) {
        char *e;
        uint32_t len;
        while (c->ops->next_event(c, &e, &len) == 0) {
            int hit = strcmp(e, path) == 0;
            free(e);
            if (hit)
                return 0;
        }
        poll(&p, 1, 100);
    }
    return -1;
}

START_TEST(watch_across_processes)
{
    struct cxs_gconn *c = cxs_lstore_open(dir, 0);
    int ready[2];
    char b;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct cxs_gconn *w = cxs_lstore_open(dir, 0);
        if (!w || req_err(w, XSW_WATCH, 0, "/xp\0t", 6, NULL) ||
            req_err(w, XSW_WATCH, 0, "@releaseDomain\0r", 17, NULL) ||
            w->ops->event_fd(w) < 0)
            _exit(2);
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        if (wait_event(w, "/xp/k"))
            _exit(3);
        if (wait_event(w, "@releaseDomain"))
            _exit(4);
        _exit(0);
    }
    ck_assert_int_eq(read(ready[0], &b, 1), 1);
    ck_assert_int_eq(write_kv(c, 0, "/xp/k", "v"), 0);
    ck_assert_int_eq(req_err(c, XSW_INTRODUCE, 0, "9\0"
                                                  "1\0"
                                                  "2",
                             6, NULL),
                     0);
    ck_assert_int_eq(req_err(c, XSW_RELEASE, 0, "9", 2, NULL), 0);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "watcher: %d",
                  WEXITSTATUS(st));
    close(ready[0]);
    close(ready[1]);
    c->ops->close(c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("lstore-mp");
    TCase *tc = tcase_create("processes");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, concurrent_transactions);
    tcase_add_test(tc, threads_share_connection);
    tcase_add_test(tc, threads_own_connections);
    tcase_add_test(tc, kill9_writers);
    tcase_add_test(tc, watch_across_processes);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(suite)
