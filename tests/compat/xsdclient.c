/*
 * compat-xs's xenstored client (compat-xs/xsd.c) against a real daemon:
 * the wire requests xs.c sends through it, transactions, watches with
 * events arriving while another thread's request is in flight, domain
 * introduction, and the daemon's death in mid-session.
 *
 *   xsdclient all          every check below; the daemon is $XENSTORED_PATH
 *   xsdclient broken       streams no daemon sends (a socket pair): the
 *                          connection fails -EIO, or -ECONNRESET at EOF
 *   xsdclient die GOFILE   connect, print "ready", wait for GOFILE (the
 *                          daemon is stopped by then), send a request from
 *                          a thread, print "sent"; the daemon is then
 *                          killed and every call must fail -ECONNRESET
 *
 * Linked with the client's objects (its symbols are hidden in the
 * library). Prints "ok" and exits 0, or "FAIL: ..." and exits 1.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xsdframe.h"

#define WAIT_MS 20000 /* liveness bound on any wait for the daemon */

static void fail(const char *fmt, ...)
{
    va_list ap;

    fputs("FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

struct reply {
    uint32_t type, len;
    char *body;
};

/* One request with payload given as NUL-joined words ("a\0b\0", len). */
static int req(struct cxs_gconn *c, uint32_t type, uint32_t tx,
               const char *p, uint32_t len, struct reply *r)
{
    r->body = NULL;
    return c->ops->request(c, type, tx, p, len, &r->type, &r->body, &r->len);
}

/* A request that must succeed with reply bytes want[0..wlen). */
static void expect_ok(struct cxs_gconn *c, uint32_t type, uint32_t tx,
                      const char *p, uint32_t len, const char *want,
                      uint32_t wlen)
{
    struct reply r;
    int rc = req(c, type, tx, p, len, &r);

    if (rc < 0)
        fail("%s: %s", xsw_type_name(type), strerror(-rc));
    if (r.type != type)
        fail("%s '%s': got %s '%s'", xsw_type_name(type), p,
             xsw_type_name(r.type), r.body);
    if (want && (r.len != wlen || memcmp(r.body, want, wlen) != 0))
        fail("%s '%s': reply '%.*s' (%u bytes), want '%.*s'",
             xsw_type_name(type), p, (int)r.len, r.body, r.len, (int)wlen,
             want);
    if (r.body[r.len] != '\0')
        fail("reply not NUL-terminated");
    free(r.body);
}

static void expect_err(struct cxs_gconn *c, uint32_t type, uint32_t tx,
                       const char *p, uint32_t len, const char *err)
{
    struct reply r;
    int rc = req(c, type, tx, p, len, &r);

    if (rc < 0)
        fail("%s: %s", xsw_type_name(type), strerror(-rc));
    if (r.type != XSW_ERROR || strcmp(r.body, err) != 0)
        fail("%s '%s': got %s '%s', want %s", xsw_type_name(type), p,
             xsw_type_name(r.type), r.body, err);
    free(r.body);
}

#define S(lit) lit, (uint32_t)sizeof(lit) - 1 /* literal incl. inner NULs */
#define OK S("OK\0")

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* DIRECTORY path lists exactly want ("a\0b\0", sorted), in any order. */
static void expect_dir(struct cxs_gconn *c, const char *path,
                       const char *want, uint32_t wlen)
{
    char p[256], *names[64], got[512];
    struct reply r;
    size_t n = 0, off = 0;
    int rc;

    snprintf(p, sizeof(p), "%s", path);
    rc = req(c, XSW_DIRECTORY, 0, p, (uint32_t)strlen(p) + 1, &r);
    if (rc < 0 || r.type != XSW_DIRECTORY)
        fail("DIRECTORY %s: %s", path, rc < 0 ? strerror(-rc) : r.body);
    for (char *q = r.body; q < r.body + r.len && n < 64; q += strlen(q) + 1)
        names[n++] = q;
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (size_t i = 0; i < n && off + strlen(names[i]) + 1 <= sizeof(got); i++) {
        memcpy(got + off, names[i], strlen(names[i]) + 1);
        off += strlen(names[i]) + 1;
    }
    if (off != wlen || r.len != wlen || memcmp(got, want, wlen) != 0)
        fail("DIRECTORY %s: %u bytes, want '%s'...", path, r.len, want);
    free(r.body);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool readable(struct cxs_gconn *c, int ms)
{
    struct pollfd p = {.fd = c->ops->event_fd(c), .events = POLLIN};

    return poll(&p, 1, ms) == 1;
}

/* Wait (bounded) for the next event; it must be path/token. */
static void expect_event(struct cxs_gconn *c, const char *path,
                         const char *token)
{
    char *p;
    uint32_t len;
    int rc;

    for (long long end = now_ms() + WAIT_MS; now_ms() < end;) {
        rc = c->ops->next_event(c, &p, &len);
        if (rc == 0) {
            if (strcmp(p, path) != 0 || strlen(p) + 1 >= len ||
                strcmp(p + strlen(p) + 1, token) != 0)
                fail("event %s/%s, want %s/%s", p, p + strlen(p) + 1, path,
                     token);
            free(p);
            return;
        }
        if (rc != -EAGAIN)
            fail("next_event: %s", strerror(-rc));
        readable(c, 10);
    }
    fail("no event %s/%s", path, token);
}

/* Two events for path, with tokens t1 and t2 in either order. */
static void expect_events2(struct cxs_gconn *c, const char *path,
                           const char *t1, const char *t2)
{
    char *p;
    uint32_t len;
    int rc, seen = 0;

    for (long long end = now_ms() + WAIT_MS; now_ms() < end && seen != 3;) {
        rc = c->ops->next_event(c, &p, &len);
        if (rc == 0) {
            const char *tok = p + strlen(p) + 1;
            int bit = strcmp(tok, t1) == 0 ? 1 : strcmp(tok, t2) == 0 ? 2
                                                                      : 0;
            if (strcmp(p, path) != 0 || !bit || (seen & bit))
                fail("event %s/%s, want %s/%s or /%s", p, tok, path, t1, t2);
            seen |= bit;
            free(p);
            continue;
        }
        if (rc != -EAGAIN)
            fail("next_event: %s", strerror(-rc));
        readable(c, 10);
    }
    if (seen != 3)
        fail("events %s/%s and /%s: saw %d", path, t1, t2, seen);
}

static void expect_no_event(struct cxs_gconn *c)
{
    char *p;
    uint32_t len;
    int rc = c->ops->next_event(c, &p, &len);

    if (rc == 0)
        fail("unexpected event %s", p);
    if (rc != -EAGAIN)
        fail("next_event: %s", strerror(-rc));
}

static struct cxs_gconn *open_or_die(void)
{
    struct cxs_gconn *c = cxs_xsd_open(NULL, false);

    if (!c)
        fail("cxs_xsd_open(%s): %s", cxs_xsd_default_socket(),
             strerror(errno));
    return c;
}

static void basic(struct cxs_gconn *c)
{
    expect_ok(c, XSW_WRITE, 0, S("/t/a\0v1"), OK);
    expect_ok(c, XSW_READ, 0, S("/t/a\0"), S("v1"));
    expect_ok(c, XSW_MKDIR, 0, S("/t/d\0"), OK);
    expect_dir(c, "/t", S("a\0d\0"));
    expect_ok(c, XSW_RM, 0, S("/t/a\0"), OK);
    expect_err(c, XSW_READ, 0, S("/t/a\0"), "ENOENT");
    expect_dir(c, "/t", S("d\0"));
    expect_ok(c, XSW_GET_PERMS, 0, S("/t/d\0"), S("n0\0"));
    expect_ok(c, XSW_SET_PERMS, 0, S("/t/d\0n0\0r5\0"), OK);
    expect_ok(c, XSW_GET_PERMS, 0, S("/t/d\0"), S("n0\0r5\0"));
    expect_ok(c, XSW_GET_DOMAIN_PATH, 0, S("3\0"), S("/local/domain/3\0"));
    expect_err(c, XSW_READ, 0, S("not//valid\0"), "EINVAL");
    /* A payload as large as the protocol allows, both ways. */
    static char big[XSW_PAYLOAD_MAX];
    size_t n = strlen("/t/big") + 1;
    memcpy(big, "/t/big", n);
    memset(big + n, 'x', sizeof(big) - n);
    struct reply r;
    if (req(c, XSW_WRITE, 0, big, sizeof(big), &r) < 0)
        fail("WRITE of 4096 bytes");
    if (r.type == XSW_ERROR && strcmp(r.body, "E2BIG") == 0) {
        /* oxenstored's default quota on a value is 2048 bytes. */
        free(r.body);
        if (req(c, XSW_WRITE, 0, big, (uint32_t)(n + 2048), &r) < 0 ||
            r.type != XSW_WRITE)
            fail("WRITE of 2048 bytes: %s", r.body);
        free(r.body);
        expect_ok(c, XSW_READ, 0, S("/t/big\0"), big + n, 2048);
    } else {
        if (r.type != XSW_WRITE)
            fail("WRITE of 4096 bytes: %s", r.body);
        free(r.body);
        expect_ok(c, XSW_READ, 0, S("/t/big\0"), big + n,
                  (uint32_t)(sizeof(big) - n));
    }
    char over[XSW_PAYLOAD_MAX + 1] = "/t/over";
    if (req(c, XSW_WRITE, 0, over, sizeof(over), &r) != -E2BIG)
        fail("a payload over 4096 bytes was sent");
}

static uint32_t tx_start(struct cxs_gconn *c)
{
    struct reply r;
    int rc = req(c, XSW_TRANSACTION_START, 0, S("\0"), &r);

    if (rc < 0 || r.type != XSW_TRANSACTION_START)
        fail("TRANSACTION_START: %s", rc < 0 ? strerror(-rc) : r.body);
    uint32_t id = (uint32_t)strtoul(r.body, NULL, 10);
    free(r.body);
    if (!id)
        fail("transaction id 0");
    return id;
}

static void transactions(struct cxs_gconn *c, struct cxs_gconn *c2)
{
    uint32_t t;

    expect_ok(c, XSW_WRITE, 0, S("/tx/k\0old"), OK);
    t = tx_start(c);
    expect_ok(c, XSW_WRITE, t, S("/tx/k\0new"), OK);
    expect_ok(c, XSW_MKDIR, t, S("/tx/dir\0"), OK);
    expect_ok(c, XSW_READ, t, S("/tx/k\0"), S("new"));
    expect_ok(c, XSW_READ, 0, S("/tx/k\0"), S("old"));
    expect_ok(c, XSW_TRANSACTION_END, t, S("T\0"), OK);
    expect_ok(c, XSW_READ, 0, S("/tx/k\0"), S("new"));
    expect_dir(c, "/tx", S("dir\0k\0"));

    /* A write from elsewhere to what the transaction read: EAGAIN. */
    t = tx_start(c);
    expect_ok(c, XSW_READ, t, S("/tx/k\0"), S("new"));
    expect_ok(c, XSW_WRITE, t, S("/tx/k\0mine"), OK);
    expect_ok(c2, XSW_WRITE, 0, S("/tx/k\0theirs"), OK);
    expect_err(c, XSW_TRANSACTION_END, t, S("T\0"), "EAGAIN");
    expect_ok(c, XSW_READ, 0, S("/tx/k\0"), S("theirs"));

    /* Aborted: nothing applied. */
    t = tx_start(c);
    expect_ok(c, XSW_WRITE, t, S("/tx/k\0gone"), OK);
    expect_ok(c, XSW_TRANSACTION_END, t, S("F\0"), OK);
    expect_ok(c, XSW_READ, 0, S("/tx/k\0"), S("theirs"));
    /* The transaction is gone (xenstored: ENOENT, oxenstored: EIO). */
    struct reply r;
    if (req(c, XSW_READ, t, S("/tx/k\0"), &r) < 0 || r.type != XSW_ERROR)
        fail("READ in an ended transaction");
    free(r.body);
}

struct spinner {
    struct cxs_gconn *c;
    int rounds;
};

/* Requests back to back on the watching connection. */
static void *spin(void *arg)
{
    struct spinner *s = arg;

    for (int i = 0; i < s->rounds; i++)
        expect_ok(s->c, XSW_READ, 0, S("/w\0"), NULL, 0);
    return NULL;
}

#define NWRITES 200

static void watches(struct cxs_gconn *c, struct cxs_gconn *c2)
{
    char buf[64];

    expect_ok(c2, XSW_MKDIR, 0, S("/w\0"), OK);
    expect_ok(c, XSW_WATCH, 0, S("/w\0tok\0"), OK);
    expect_event(c, "/w", "tok"); /* the event a new watch fires */
    expect_ok(c2, XSW_WRITE, 0, S("/w/x\0"
                                  "1"),
              OK);
    expect_event(c, "/w/x", "tok");
    expect_no_event(c);

    /*
     * Events that arrive while this connection waits for a reply are
     * queued, and the event fd stays readable for them although the
     * socket has gone quiet: the daemon has sent them all before the
     * reply to the request that follows the last write.
     */
    for (int i = 0; i < NWRITES; i++) {
        int n = snprintf(buf, sizeof(buf), "/w/k%d%c%d", i, '\0', i);
        expect_ok(c2, XSW_WRITE, 0, buf, (uint32_t)n, OK);
    }
    expect_ok(c, XSW_READ, 0, S("/w/x\0"), S("1"));
    if (!readable(c, 0))
        fail("event fd not readable with %d events queued", NWRITES);
    for (int i = 0; i < NWRITES; i++) {
        snprintf(buf, sizeof(buf), "/w/k%d", i);
        expect_event(c, buf, "tok");
    }
    expect_no_event(c);
    if (readable(c, 0))
        fail("event fd readable with nothing queued");

    /*
     * The same with the requests in another thread while this one polls
     * and takes events: every event once, in order.
     */
    struct spinner s = {.c = c, .rounds = 2 * NWRITES};
    pthread_t th;
    if (pthread_create(&th, NULL, spin, &s) != 0)
        fail("pthread_create");
    for (int i = 0; i < NWRITES; i++) {
        int n = snprintf(buf, sizeof(buf), "/w/k%d%c%d", i, '\0', -i);
        expect_ok(c2, XSW_WRITE, 0, buf, (uint32_t)n, OK);
    }
    for (int i = 0; i < NWRITES; i++) {
        snprintf(buf, sizeof(buf), "/w/k%d", i);
        expect_event(c, buf, "tok");
    }
    pthread_join(th, NULL);
    expect_ok(c, XSW_READ, 0, S("/w/x\0"), S("1"));
    expect_no_event(c);

    /* A second token on a subtree; then both removed. */
    expect_ok(c, XSW_WATCH, 0, S("/w/x\0two\0"), OK);
    expect_event(c, "/w/x", "two");
    expect_ok(c2, XSW_WRITE, 0, S("/w/x\0"
                                  "2"),
              OK);
    expect_events2(c, "/w/x", "tok", "two");
    expect_ok(c, XSW_UNWATCH, 0, S("/w\0tok\0"), OK);
    expect_ok(c, XSW_UNWATCH, 0, S("/w/x\0two\0"), OK);
    expect_err(c, XSW_UNWATCH, 0, S("/w\0tok\0"), "ENOENT");
    expect_ok(c2, XSW_WRITE, 0, S("/w/x\0"
                                  "3"),
              OK);
    expect_ok(c, XSW_READ, 0, S("/w/x\0"), S("3"));
    expect_no_event(c);
    if (readable(c, 0))
        fail("event fd readable after unwatch");
}

static void domains(struct cxs_gconn *c, struct cxs_gconn *c2)
{
    expect_ok(c2, XSW_WATCH, 0, S("@introduceDomain\0in\0"), OK);
    expect_event(c2, "@introduceDomain", "in");
    expect_ok(c2, XSW_WATCH, 0, S("@releaseDomain\0out\0"), OK);
    expect_event(c2, "@releaseDomain", "out");
    expect_ok(c, XSW_IS_DOMAIN_INTRODUCED, 0, S("5\0"), S("F\0"));
    /* domid, the ring's frame, the event channel (the harness fakes
     * the ring and the channel). */
    expect_ok(c, XSW_INTRODUCE, 0, S("5\0"
                                     "12345\0"
                                     "9\0"),
              OK);
    expect_event(c2, "@introduceDomain", "in");
    expect_ok(c, XSW_IS_DOMAIN_INTRODUCED, 0, S("5\0"), S("T\0"));
    expect_ok(c, XSW_RELEASE, 0, S("5\0"), OK);
    expect_event(c2, "@releaseDomain", "out");
    expect_ok(c, XSW_IS_DOMAIN_INTRODUCED, 0, S("5\0"), S("F\0"));
}

struct blocked {
    struct cxs_gconn *c;
    int rc;
};

static void *blocked_read(void *arg)
{
    struct blocked *b = arg;
    struct reply r;

    b->rc = req(b->c, XSW_READ, 0, S("/d/k\0"), &r);
    if (b->rc == 0)
        free(r.body);
    return NULL;
}

static int die(const char *go)
{
    struct cxs_gconn *c = open_or_die();
    struct blocked b = {.c = c};
    pthread_t th;
    char *p;
    uint32_t len;
    int rc, i;

    expect_ok(c, XSW_WRITE, 0, S("/d/k\0v"), OK);
    expect_ok(c, XSW_WATCH, 0, S("/d\0tok\0"), OK);
    expect_event(c, "/d", "tok");
    printf("ready\n");
    fflush(stdout);
    for (i = 0; access(go, F_OK) < 0; i++) {
        if (i > WAIT_MS / 10)
            fail("no %s", go);
        usleep(10000);
    }
    if (pthread_create(&th, NULL, blocked_read, &b) != 0)
        fail("pthread_create");
    printf("sent\n");
    fflush(stdout);
    /* Bounded by the daemon's death (the test kills it). */
    pthread_join(th, NULL);
    if (b.rc != -ECONNRESET)
        fail("request across the daemon's death: %d (%s)", b.rc,
             strerror(-b.rc));
    struct reply r;
    rc = req(c, XSW_READ, 0, S("/d/k\0"), &r);
    if (rc != -ECONNRESET)
        fail("request after the daemon's death: %d", rc);
    if (!readable(c, 0))
        fail("event fd not readable on a dead connection");
    rc = c->ops->next_event(c, &p, &len);
    if (rc != -ECONNRESET)
        fail("next_event after the daemon's death: %d", rc);
    c->ops->close(c);
    printf("ok\n");
    return 0;
}

/*
 * The daemon's side of a socket pair sends frames[] (then closes if eof)
 * after the client's request (READ, id 1); the request must return want,
 * and so must every later call.
 */
static void broken_case(const char *what, const void *bytes, size_t n,
                        int want)
{
    struct cxs_gconn *c;
    struct reply r;
    char *p;
    uint32_t len;
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        fail("socketpair");
    if (write(sv[1], bytes, n) != (ssize_t)n)
        fail("write");
    if (want == -ECONNRESET)
        shutdown(sv[1], SHUT_WR);
    c = cxs_xsd_adopt(sv[0], true);
    if (!c)
        fail("adopt");
    rc = req(c, XSW_READ, 0, S("/a\0"), &r);
    if (rc != want)
        fail("%s: request %d, want %d", what, rc, want);
    rc = req(c, XSW_READ, 0, S("/a\0"), &r);
    if (rc != want)
        fail("%s: next request %d, want %d", what, rc, want);
    /* Events read before the failure are still handed out, then it. */
    while ((rc = c->ops->next_event(c, &p, &len)) == 0)
        free(p);
    if (rc != want)
        fail("%s: next_event %d, want %d", what, rc, want);
    c->ops->close(c);
    close(sv[1]);
}

static int broken(void)
{
    struct {
        struct xsw_hdr h;
        char p[16];
    } f;

    /* A client that missed a broken stream would wait for ever. */
    alarm(60);
#define CASE(what, t, id, l, payload, want)                              \
    do {                                                                 \
        f.h = (struct xsw_hdr){.type = (t), .req_id = (id), .len = (l)}; \
        memcpy(f.p, payload, sizeof(payload));                           \
        broken_case(what, &f, sizeof(f.h) + sizeof(payload) - 1, want);  \
    } while (0)
    CASE("len over 4096", XSW_READ, 1, XSW_PAYLOAD_MAX + 1, "", -EIO);
    CASE("unknown type", 20, 1, 0, "", -EIO);
    CASE("type past the last", XSW_TYPE_COUNT, 1, 0, "", -EIO);
    CASE("another request's id", XSW_READ, 7, 1, "v", -EIO);
    CASE("another request's type", XSW_WRITE, 1, 3, "OK\0", -EIO);
    CASE("error without a name", XSW_ERROR, 1, 2, "E\1", -EIO);
    CASE("event of one string", XSW_WATCH_EVENT, 0, 3, "/a\0", -EIO);
    CASE("event not terminated", XSW_WATCH_EVENT, 0, 4, "/a\0t", -EIO);
    CASE("event of three strings", XSW_WATCH_EVENT, 0, 7, "/a\0t\0x\0", -EIO);
    CASE("EOF after a header", XSW_READ, 1, 1, "", -ECONNRESET);
    broken_case("EOF in a header", &f, 7, -ECONNRESET);
    CASE("EOF in a payload", XSW_READ, 1, 9, "abc", -ECONNRESET);
    CASE("EOF before the reply", XSW_WATCH_EVENT, 0, 5, "/a\0t\0", -ECONNRESET);
#undef CASE
    printf("ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "broken") == 0)
        return broken();
    if (argc == 3 && strcmp(argv[1], "die") == 0)
        return die(argv[2]);
    if (argc != 2 || strcmp(argv[1], "all") != 0) {
        fprintf(stderr, "usage: xsdclient all | broken | die GOFILE\n");
        return 2;
    }
    struct cxs_gconn *c = open_or_die(), *c2 = open_or_die();
    if (strcmp(c->ops->name, "xenstored") != 0)
        fail("ops name %s", c->ops->name);
    basic(c);
    transactions(c, c2);
    watches(c, c2);
    if (!getenv("XSDCLIENT_NO_DOMAINS"))
        domains(c, c2);
    c->ops->close(c);
    c2->ops->close(c2);
    printf("ok\n");
    return 0;
}
