/*
 * xssem: libxenstore semantics scenarios, printed one result per line so
 * the output through Debian's libxenstore + xenstored and through
 * compat-xs + noxsd can be diffed (tests/compat/test-semantics.sh).
 * Runs as the frontend of device vif/0 of domain DOMID, which the test
 * has created (toolstack step) and whose backend (legacy-back) runs.
 *
 *   xssem DOMID
 *   xssem -r PATH          one xs_read: the value or strerror(errno)
 *   xssem -w PATH NBYTES   one xs_write of NBYTES 'v's: ok or strerror
 *   xssem -m FIRST LAST K  one process as the frontends of domains
 *                          FIRST..LAST (and the toolstack): events for
 *                          domain K reach K's handle only
 *                          (tests/compat/test-many.sh)
 *   xssem -t DOMID         as the toolstack: transactions of many writes
 *                          to the backend directory of vif/0 of DOMID
 *   xssem -x DIR N         one transaction writing N distinct keys under
 *                          DIR: ok or strerror
 *   xssem -T DOMID N       as the frontend domain DOMID of vif/0..N-1:
 *                          one transaction writing a key of each device,
 *                          then dom0 reads them (through the backend)
 *                          (tests/compat/test-tx.sh)
 * (Debian's xenstore-read/-write print no errno, so the compat-only
 * error checks use these.)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

static char dir[128];

static const char *err(bool ok)
{
    return ok ? "ok" : strerror(errno);
}

static char *key(const char *k)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, k);
    return buf[i];
}

/* Next event within 5 s, as "path token", or "none (errno)". */
static void next_event(struct xs_handle *h, const char *what)
{
    struct pollfd p = {.fd = xs_fileno(h), .events = POLLIN};
    char **ev = xs_check_watch(h);

    if (!ev && poll(&p, 1, 5000) > 0)
        ev = xs_check_watch(h);
    if (!ev) {
        printf("%s: none (%s)\n", what, strerror(errno));
        return;
    }
    printf("%s: %s %s\n", what, ev[XS_WATCH_PATH], ev[XS_WATCH_TOKEN]);
    free(ev);
}

static void no_event(struct xs_handle *h, const char *what)
{
    char **ev;

    /* Whatever is pending arrives within this; then it must be empty. */
    poll(NULL, 0, 200);
    ev = xs_check_watch(h);
    printf("%s: %s\n", what, ev ? ev[XS_WATCH_PATH] : strerror(errno));
    free(ev);
}

static void read_key(struct xs_handle *h, xs_transaction_t t, const char *k,
                     const char *what)
{
    unsigned int len;
    char *v = xs_read(h, t, key(k), &len);

    printf("%s: %s\n", what, v ? v : strerror(errno));
    free(v);
}

/* ---- -m: many domains in one process ---- */

#define MANY_MAX 64

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every queued event of h, "path token" with /local/domain/<dom>/ shown
 * as /local/domain/D/, sorted, one per line, into out. */
static void drain(struct xs_handle *h, unsigned int dom, char *out, size_t len)
{
    char *lines[256], prefix[64], **ev;
    size_t n = 0, used = 0, pl;

    pl = (size_t)snprintf(prefix, sizeof(prefix), "/local/domain/%u/", dom);
    while (n < 256 && (ev = xs_check_watch(h)) != NULL) {
        const char *p = ev[XS_WATCH_PATH];
        char buf[512];

        if (strncmp(p, prefix, pl) == 0)
            snprintf(buf, sizeof(buf), "  /local/domain/D/%s %s", p + pl,
                     ev[XS_WATCH_TOKEN]);
        else
            snprintf(buf, sizeof(buf), "  %s %s", p, ev[XS_WATCH_TOKEN]);
        if ((lines[n] = strdup(buf)) != NULL)
            n++;
        free(ev);
    }
    qsort(lines, n, sizeof(lines[0]), cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(out + used, len - used, "%s\n", lines[i]);
        if (used >= len)
            used = len - 1;
        free(lines[i]);
    }
}

/* Domain k's events (printed), then every other handle's (none). */
static void report(struct xs_handle **h, unsigned int first, unsigned int last,
                   unsigned int k, const char *what)
{
    static char buf[1 << 16];
    unsigned int others = 0;

    drain(h[k - first], k, buf, sizeof(buf));
    printf("%s:\n%s", what, buf);
    for (unsigned int d = first; d <= last; d++) {
        if (d == k)
            continue;
        drain(h[d - first], d, buf, sizeof(buf));
        if (buf[0]) {
            printf("  domain %u also got:\n%s", d, buf);
            others++;
        }
    }
    printf("  others: %s\n", others ? "disturbed" : "none");
}

static int many(unsigned int first, unsigned int last, unsigned int k)
{
    static char buf[1 << 16], ref[1 << 16];
    struct xs_handle *h[MANY_MAX], *ts;
    char env[16], path[256], kpath[256];
    unsigned int same = 0;

    if (first == 0 || last < first || last - first >= MANY_MAX || k < first ||
        k > last)
        return 2;
    for (unsigned int d = first; d <= last; d++) {
        struct xs_handle *x;

        snprintf(env, sizeof(env), "%u", d);
        setenv("NOXS_SIM_DOMID", env, 1);
        x = h[d - first] = xs_open(0);
        if (!x) {
            perror("xs_open");
            return 1;
        }
        snprintf(path, sizeof(path), "/local/domain/%u/device/vif/0/k", d);
        if (!xs_watch(x, "device/vif/0", "dir") || !xs_watch(x, path, "key") ||
            !xs_watch(x, path, "key2")) {
            perror("xs_watch");
            return 1;
        }
    }
    setenv("NOXS_SIM_DOMID", "0", 1);
    ts = xs_open(0);
    if (!ts) {
        perror("xs_open");
        return 1;
    }
    /* Initial events: the same for every domain. */
    for (unsigned int d = first; d <= last; d++) {
        drain(h[d - first], d, d == first ? ref : buf,
              d == first ? sizeof(ref) : sizeof(buf));
        if (d == first || strcmp(buf, ref) == 0)
            same++;
    }
    printf("initial:\n%s  the same for %u of %u domains\n", ref, same,
           last - first + 1);

    struct xs_handle *hk = h[k - first];
    snprintf(kpath, sizeof(kpath), "/local/domain/%u/device/vif/0/k", k);
    printf("write: %s\n", err(xs_write(hk, XBT_NULL, kpath, "1", 1)));
    poll(NULL, 0, 200);
    report(h, first, last, k, "events");
    printf("rm: %s\n", err(xs_rm(hk, XBT_NULL, kpath)));
    poll(NULL, 0, 200);
    report(h, first, last, k, "events");
    printf("unwatch key: %s\n", err(xs_unwatch(hk, kpath, "key")));
    printf("write: %s\n", err(xs_write(hk, XBT_NULL, kpath, "2", 1)));
    poll(NULL, 0, 200);
    report(h, first, last, k, "events");
    /* The toolstack removes k's device: its whole view goes. */
    snprintf(path, sizeof(path), "/local/domain/%u/device/vif/0", k);
    printf("toolstack rm: %s\n", err(xs_rm(ts, XBT_NULL, path)));
    for (int i = 0; i < 50; i++) {
        unsigned int len;
        char *v = xs_read(hk, XBT_NULL, kpath, &len);
        free(v);
        if (!v)
            break;
        poll(NULL, 0, 100);
    }
    poll(NULL, 0, 200);
    report(h, first, last, k, "events");
    for (unsigned int d = first; d <= last; d++)
        xs_close(h[d - first]);
    xs_close(ts);
    return 0;
}

/* ---- -t, -x, -T: transactions of many writes ---- */

/* One transaction of n writes, path and value of write i from fn. */
static bool tx_writes(struct xs_handle *h, unsigned int n,
                      void (*fn)(unsigned int, char *, char *, void *),
                      void *arg)
{
    xs_transaction_t t = xs_transaction_start(h);
    char path[256], value[64];

    if (t == XBT_NULL)
        return false;
    for (unsigned int i = 0; i < n; i++) {
        fn(i, path, value, arg);
        if (!xs_write(h, t, path, value, strlen(value))) {
            int e = errno;
            xs_transaction_end(h, t, true);
            errno = e;
            return false;
        }
    }
    return xs_transaction_end(h, t, false);
}

static void w_same(unsigned int i, char *path, char *value, void *arg)
{
    snprintf(path, 256, "%s/foo", (const char *)arg);
    snprintf(value, 64, "v%u", i);
}

static void w_rounds(unsigned int i, char *path, char *value, void *arg)
{
    snprintf(path, 256, "%s/k%u", (const char *)arg, i % 10);
    snprintf(value, 64, "r%u", i / 10);
}

static void w_distinct(unsigned int i, char *path, char *value, void *arg)
{
    snprintf(path, 256, "%s/n%u", (const char *)arg, i);
    snprintf(value, 64, "x%u", i);
}

static void w_devices(unsigned int i, char *path, char *value, void *arg)
{
    snprintf(path, 256, "/local/domain/%u/device/vif/%u/t",
             *(unsigned int *)arg, i);
    snprintf(value, 64, "t%u", i);
}

static void read_path(struct xs_handle *h, const char *path, const char *what)
{
    unsigned int len;
    char *v = xs_read(h, XBT_NULL, path, &len);

    printf("%s: %s\n", what, v ? v : strerror(errno));
    free(v);
}

static int tx_many(unsigned int dom)
{
    struct xs_handle *h = xs_open(0);

    if (!h) {
        perror("xs_open");
        return 1;
    }
    snprintf(dir, sizeof(dir), "/local/domain/0/backend/vif/%u/0", dom);
    /* One key rewritten more often than any fixed table would hold. */
    printf("130 writes of one key: %s\n", err(tx_writes(h, 130, w_same, dir)));
    read_path(h, key("foo"), "foo");
    /* Ten keys written ten times over: the last round wins. */
    printf("100 writes of 10 keys: %s\n",
           err(tx_writes(h, 100, w_rounds, dir)));
    for (unsigned int k = 0; k < 10; k++) {
        char name[16];
        snprintf(name, sizeof(name), "k%u", k);
        read_path(h, key(name), name);
    }
    /* More distinct keys than one device add carries: the device
     * exists, so each one is written. */
    printf("70 distinct keys: %s\n", err(tx_writes(h, 70, w_distinct, dir)));
    read_path(h, key("n0"), "n0");
    read_path(h, key("n40"), "n40");
    read_path(h, key("n69"), "n69");
    xs_close(h);
    return 0;
}

static int tx_devices(unsigned int dom, unsigned int n)
{
    struct xs_handle *g, *ts;
    char env[16], path[256];
    unsigned int same = 0;

    snprintf(env, sizeof(env), "%u", dom);
    setenv("NOXS_SIM_DOMID", env, 1);
    g = xs_open(0);
    setenv("NOXS_SIM_DOMID", "0", 1);
    ts = xs_open(0);
    if (!g || !ts) {
        perror("xs_open");
        return 1;
    }
    printf("tx of %u devices: %s\n", n, err(tx_writes(g, n, w_devices, &dom)));
    /* Read back by dom0, which is neither end: from the backend's copy
     * of each published frontend half. */
    for (unsigned int i = 0; i < n; i++) {
        char want[16];
        unsigned int len;
        char *v;

        snprintf(path, sizeof(path), "/local/domain/%u/device/vif/%u/t", dom,
                 i);
        snprintf(want, sizeof(want), "t%u", i);
        v = xs_read(ts, XBT_NULL, path, &len);
        if (v && strcmp(v, want) == 0)
            same++;
        else
            printf("device %u: %s\n", i, v ? v : strerror(errno));
        free(v);
    }
    printf("read back by dom0: %u of %u\n", same, n);
    xs_close(g);
    xs_close(ts);
    return 0;
}

int main(int argc, char **argv)
{
    struct xs_handle *a, *b;
    xs_transaction_t t;
    char big[5000];
    bool ok;

    if (argc >= 3 && (strcmp(argv[1], "-r") == 0 || strcmp(argv[1], "-w") == 0)) {
        struct xs_handle *h = xs_open(0);
        unsigned int len;
        char *v;
        size_t n;

        if (!h) {
            perror("xs_open");
            return 1;
        }
        if (argv[1][1] == 'r') {
            v = xs_read(h, XBT_NULL, argv[2], &len);
            printf("read %s: %s\n", argv[2], v ? v : strerror(errno));
            free(v);
        } else {
            if (argc != 4)
                return 2;
            n = strtoul(argv[3], NULL, 10);
            v = malloc(n + 1);
            if (!v)
                return 1;
            memset(v, 'v', n);
            printf("write %s: %s\n", argv[2],
                   err(xs_write(h, XBT_NULL, argv[2], v, n)));
            free(v);
        }
        xs_close(h);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "-t") == 0)
        return tx_many((unsigned)atoi(argv[2]));
    if (argc == 4 && strcmp(argv[1], "-x") == 0) {
        struct xs_handle *h = xs_open(0);
        unsigned int n = (unsigned)atoi(argv[3]);

        if (!h) {
            perror("xs_open");
            return 1;
        }
        printf("tx %u keys: %s\n", n,
               err(tx_writes(h, n, w_distinct, argv[2])));
        xs_close(h);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "-T") == 0)
        return tx_devices((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]));
    if (argc == 5 && strcmp(argv[1], "-m") == 0)
        return many((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]),
                    (unsigned)atoi(argv[4]));
    if (argc != 2)
        return 2;
    snprintf(dir, sizeof(dir), "/local/domain/%s/device/vif/0", argv[1]);
    a = xs_open(0);
    b = xs_open(0);
    if (!a || !b) {
        perror("xs_open");
        return 1;
    }

    /* Watches: initial event, a change, token round trip, unwatch. */
    printf("write k1: %s\n", err(xs_write(b, XBT_NULL, key("k1"), "1", 1)));
    printf("watch: %s\n", err(xs_watch(a, key("k1"), "tok-k1")));
    next_event(a, "initial event");
    no_event(a, "then nothing");
    xs_write(b, XBT_NULL, key("k1"), "2", 1);
    next_event(a, "event after write");
    printf("watch dir: %s\n", err(xs_watch(a, dir, "tok-dir")));
    next_event(a, "initial dir event");
    xs_write(b, XBT_NULL, key("k5"), "5", 1);
    next_event(a, "dir event after write");
    printf("unwatch: %s\n", err(xs_unwatch(a, key("k1"), "tok-k1")));
    printf("unwatch again: %s\n", err(xs_unwatch(a, key("k1"), "tok-k1")));
    printf("unwatch dir: %s\n", err(xs_unwatch(a, dir, "tok-dir")));
    xs_write(b, XBT_NULL, key("k1"), "3", 1);
    no_event(a, "after unwatch");

    /* Transactions. */
    t = xs_transaction_start(a);
    read_key(a, t, "k1", "tx read k1");
    xs_write(b, XBT_NULL, key("k1"), "4", 1);
    printf("tx write k2: %s\n", err(xs_write(a, t, key("k2"), "x", 1)));
    ok = xs_transaction_end(a, t, false);
    printf("conflicting end: %s\n", err(ok));
    read_key(a, XBT_NULL, "k2", "k2 after conflict");

    t = xs_transaction_start(a);
    xs_write(a, t, key("k3"), "x", 1);
    read_key(a, t, "k3", "tx reads own write");
    read_key(b, XBT_NULL, "k3", "others do not see it");
    printf("abort: %s\n", err(xs_transaction_end(a, t, true)));
    read_key(a, XBT_NULL, "k3", "k3 after abort");

    t = xs_transaction_start(a);
    xs_write(a, t, key("k4"), "four", 4);
    xs_write(a, t, key("k6"), "six", 3);
    printf("commit: %s\n", err(xs_transaction_end(a, t, false)));
    read_key(b, XBT_NULL, "k4", "k4 after commit");
    read_key(b, XBT_NULL, "k6", "k6 after commit");
    printf("end twice: %s\n", err(xs_transaction_end(a, t, false)));

    /* Error cases. */
    read_key(a, XBT_NULL, "missing", "missing key");
    read_key(a, 0x7777, "k1", "bad transaction id");
    printf("write bad tx: %s\n", err(xs_write(a, 0x7777, key("k1"), "1", 1)));
    memset(big, 'v', sizeof(big));
    printf("write 5000 bytes: %s\n",
           err(xs_write(a, XBT_NULL, key("big"), big, sizeof(big))));
    printf("rm k4: %s\n", err(xs_rm(a, XBT_NULL, key("k4"))));
    read_key(a, XBT_NULL, "k4", "k4 after rm");
    printf("rm missing: %s\n", err(xs_rm(a, XBT_NULL, key("k4"))));
    printf("write bad path: %s\n", err(xs_write(a, XBT_NULL, "/local//x", "1", 1)));
    xs_close(a);
    xs_close(b);
    return 0;
}
