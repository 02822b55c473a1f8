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
