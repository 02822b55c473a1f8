/*
 * A simulated guest that talks to XenStore over its store ring, as
 * Linux's xenbus does (drivers/xen/xenbus/xenbus_comms.c): a ring page
 * in its own memory, an event channel to dom0, requests with ids,
 * replies matched by id, watch events queued apart.
 *
 *   xsring DOMID GFN
 *   xsring 0 file:PATH       dom0's kernel: the ring page is PATH (made
 *                            one page long, as /proc/xen/xsd_kva), the
 *                            port printed is what /proc/xen/xsd_port says
 *
 * Prints "port P" (its store event channel) and then runs commands read
 * from stdin, one line each, one line of answer each:
 *
 *   read PATH | write PATH VALUE | rm PATH | dir PATH | perms PATH
 *   watch PATH TOKEN | unwatch PATH TOKEN
 *   event                    next watch event: "event PATH TOKEN"
 *   txstart | txwrite ID PATH VALUE | txread ID PATH | txend ID T|F
 *   bigwrite PATH N          a value of N bytes (a message larger than
 *                            the ring), read back and compared
 *   boot                     what Linux 6.1 asks at boot (balloon,
 *                            shutdown watcher, bus probes, a transaction)
 *   flood N [STOP]           N requests written back to back, replies
 *                            read as they come (ends early once the file
 *                            STOP exists)
 *   wflood N [STOP]          the same with writes to data/w0..w19 (watched
 *                            after "watches N": a watch storm too)
 *   lat N FILE               N requests one at a time, their latencies
 *                            (us) appended to FILE: "ok N MEDIAN P99"
 *   stall                    requests written until both rings are full,
 *                            no reply read: "ok N" requests written
 *   watches N | txs N        N watches / open transactions: "ok OK ERR"
 *   badtype | badlen | badidx   hostile messages
 *   reconnect                the ring's reconnection handshake
 *   split PATH               a read whose payload comes after the service
 *                            saw its header, with no notification (as
 *                            xenbus may write it)
 *
 * Answers: "ok [VALUE]", "err ENAME", "timeout". Every wait is bounded
 * (20 s).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>

#include "../../compat-xs/wire.h"
#include "../../compat-xs/xsringd_ring.h"
#include "../../sim/sim.h"

#define WAIT_MS 20000

static struct xsr_intf *R;
static xenevtchn_handle *xce;
static evtchn_port_t port;
static uint32_t next_id = 1;

struct msg {
    struct xsw_hdr h;
    char *p;
};
static struct msg evq[4096];
static size_t nev;

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t ld(uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void kick(void)
{
    xenevtchn_notify(xce, port);
}

/* Wait a little for an event (or 10 ms: notifications may be lost). */
static void pause_io(void)
{
    struct pollfd pfd = {.fd = xenevtchn_fd(xce), .events = POLLIN};

    if (poll(&pfd, 1, 10) > 0) {
        xenevtchn_port_or_error_t p = xenevtchn_pending(xce);
        if (p >= 0)
            xenevtchn_unmask(xce, (evtchn_port_t)p);
    }
}

/* Bytes to copy at offset O of a ring: LEN wanted, AVAIL there, none
 * past the ring's end (the rest comes round again). */
static uint32_t chunk(uint32_t o, uint32_t avail, uint32_t len)
{
    uint32_t n = avail < len ? avail : len;

    return n > XSR_RING_SIZE - o ? XSR_RING_SIZE - o : n;
}

static int ring_write(const void *buf, uint32_t len, long deadline)
{
    const char *b = buf;

    while (len) {
        uint32_t prod = R->req_prod, cons = ld(&R->req_cons);
        uint32_t room = XSR_RING_SIZE - (prod - cons), n, o;

        if (room == 0 || room > XSR_RING_SIZE) {
            if (now_ms() > deadline)
                return -1;
            kick();
            pause_io();
            continue;
        }
        o = prod & (XSR_RING_SIZE - 1);
        n = chunk(o, room, len);
        memcpy(R->req + o, b, n);
        __atomic_store_n(&R->req_prod, prod + n, __ATOMIC_RELEASE);
        b += n;
        len -= n;
    }
    kick();
    return 0;
}

static int ring_read(void *buf, uint32_t len, long deadline)
{
    char *b = buf;

    while (len) {
        uint32_t cons = R->rsp_cons, prod = ld(&R->rsp_prod);
        uint32_t avail = prod - cons, n, o;

        if (avail == 0) {
            if (now_ms() > deadline)
                return -1;
            pause_io();
            continue;
        }
        o = cons & (XSR_RING_SIZE - 1);
        n = chunk(o, avail, len);
        memcpy(b, R->rsp + o, n);
        __atomic_store_n(&R->rsp_cons, cons + n, __ATOMIC_RELEASE);
        b += n;
        len -= n;
        kick();
    }
    return 0;
}

static int read_msg(struct msg *m, long deadline)
{
    if (ring_read(&m->h, sizeof(m->h), deadline) < 0)
        return -1;
    if (m->h.len > XSW_PAYLOAD_MAX)
        return -2;
    m->p = calloc(1, m->h.len + 1);
    if (ring_read(m->p, m->h.len, deadline) < 0) {
        free(m->p);
        return -1;
    }
    return 0;
}

static int send_req(uint32_t type, uint32_t tx, const void *p, uint32_t len,
                    uint32_t *id)
{
    struct xsw_hdr h = {type, next_id++, tx, len};

    *id = h.req_id;
    if (ring_write(&h, sizeof(h), now_ms() + WAIT_MS) < 0 ||
        ring_write(p, len, now_ms() + WAIT_MS) < 0)
        return -1;
    return 0;
}

/* The reply to request id; watch events met meanwhile are queued. */
static int wait_reply(uint32_t id, struct msg *m)
{
    long deadline = now_ms() + WAIT_MS;

    for (;;) {
        if (read_msg(m, deadline) < 0)
            return -1;
        if (m->h.type == XSW_WATCH_EVENT) {
            if (nev < sizeof(evq) / sizeof(evq[0]))
                evq[nev++] = *m;
            else
                free(m->p);
            continue;
        }
        if (m->h.req_id == id)
            return 0;
        free(m->p); /* a reply to nothing we wait for */
    }
}

static int request(uint32_t type, uint32_t tx, const void *p, uint32_t len,
                   struct msg *m)
{
    uint32_t id;

    if (send_req(type, tx, p, len, &id) < 0)
        return -1;
    return wait_reply(id, m);
}

/* Print the answer of a request; 0 if it succeeded. */
static int answer(int rc, struct msg *m, bool list)
{
    if (rc < 0) {
        printf("timeout\n");
        return -1;
    }
    if (m->h.type == XSW_ERROR) {
        printf("err %s\n", m->p);
        free(m->p);
        return -1;
    }
    if (list)
        for (uint32_t i = 0; i + 1 < m->h.len; i++)
            if (m->p[i] == '\0')
                m->p[i] = ',';
    printf("ok %.*s\n", (int)strnlen(m->p, m->h.len), m->p);
    free(m->p);
    return 0;
}

/* "a\0b\0" from two strings (b may be NULL). */
static uint32_t args2(char *buf, size_t n, const char *a, const char *b,
                      bool trail)
{
    size_t la = strlen(a) + 1, lb = b ? strlen(b) + (trail ? 1 : 0) : 0;

    if (la + lb > n)
        return 0;
    memcpy(buf, a, la);
    if (b)
        memcpy(buf + la, b, lb);
    return (uint32_t)(la + lb);
}

static int simple(uint32_t type, uint32_t tx, const char *a, const char *b,
                  bool trail, bool list)
{
    static char buf[XSW_PAYLOAD_MAX + 64];
    struct msg m;
    uint32_t len = args2(buf, sizeof(buf), a, b, trail);

    return answer(request(type, tx, buf, len, &m), &m, list);
}

/*
 * A read written as Linux's xenbus may write it: the header, notified,
 * then, once the service has had time to see the header alone, the
 * payload, notified only if the service had taken everything before
 * (xb_write's rule), which it has not: it takes a request once whole.
 */
static void split(const char *path)
{
    uint32_t len = (uint32_t)strlen(path) + 1, prod;
    struct xsw_hdr h = {XSW_READ, next_id++, 0, len};
    struct timespec pause = {0, 100 * 1000000};
    struct msg m;

    if (ring_write(&h, sizeof(h), now_ms() + WAIT_MS) < 0) {
        printf("timeout\n");
        return;
    }
    nanosleep(&pause, NULL);
    prod = R->req_prod;
    if (len > XSR_RING_SIZE - (prod - ld(&R->req_cons))) {
        printf("err full\n");
        return;
    }
    for (uint32_t i = 0; i < len; i++)
        R->req[(prod + i) & (XSR_RING_SIZE - 1)] = path[i];
    __atomic_store_n(&R->req_prod, prod + len, __ATOMIC_RELEASE);
    if (prod == ld(&R->req_cons))
        kick();
    answer(wait_reply(h.req_id, &m), &m, false);
}

static void next_event(void)
{
    long deadline = now_ms() + WAIT_MS;
    struct msg m;

    while (nev == 0) {
        if (read_msg(&m, deadline) < 0) {
            printf("timeout\n");
            return;
        }
        if (m.h.type == XSW_WATCH_EVENT)
            evq[nev++] = m;
        else
            free(m.p);
    }
    m = evq[0];
    memmove(evq, evq + 1, --nev * sizeof(evq[0]));
    const char *path = m.p;
    const char *tok = m.p + strnlen(m.p, m.h.len) + 1;
    printf("event %s %s\n", path, tok < m.p + m.h.len ? tok : "");
    free(m.p);
}

/* Linux 6.1's first requests at boot, in order (balloon_init, the
 * shutdown watcher, the frontend and backend bus probes, a state switch
 * in a transaction); each must be answered. */
static void boot(void)
{
    struct msg m;
    char buf[256];
    int bad = 0;
    uint32_t len, tx;

#define STEP(ty, tx_, a, b, want_ok)                                     \
    do {                                                                 \
        len = args2(buf, sizeof(buf), a, b, ty != XSW_WRITE);            \
        if (request(ty, tx_, buf, len, &m) < 0) {                        \
            printf("timeout at %s %s\n", xsw_type_name(ty), a);          \
            return;                                                      \
        }                                                                \
        if (want_ok && m.h.type == XSW_ERROR) {                          \
            fprintf(stderr, "xsring: %s %s: %s\n", xsw_type_name(ty), a, \
                    m.p);                                                \
            bad++;                                                       \
        }                                                                \
        free(m.p);                                                       \
    } while (0)

    STEP(XSW_WATCH, 0, "memory/target", "balloon", true);
    STEP(XSW_READ, 0, "memory/target", NULL, true);
    STEP(XSW_WATCH, 0, "control/shutdown", "shutdown", true);
    STEP(XSW_WATCH, 0, "control/sysrq", "sysrq", true);
    STEP(XSW_WRITE, 0, "control/feature-poweroff", "1", true);
    STEP(XSW_DIRECTORY, 0, "device", NULL, false);
    STEP(XSW_DIRECTORY, 0, "backend", NULL, false);
    len = args2(buf, sizeof(buf), "", NULL, false);
    if (request(XSW_TRANSACTION_START, 0, buf, len, &m) < 0 ||
        m.h.type == XSW_ERROR) {
        printf("err transaction\n");
        return;
    }
    tx = (uint32_t)strtoul(m.p, NULL, 10);
    free(m.p);
    STEP(XSW_READ, tx, "data/state", NULL, false);
    STEP(XSW_WRITE, tx, "data/state", "4", true);
    STEP(XSW_TRANSACTION_END, tx, "T", NULL, true);
    STEP(XSW_WRITE, 0, "data/booted", "1", true);
    if (bad)
        printf("err %d\n", bad);
    else
        printf("ok\n");
#undef STEP
}

/*
 * n requests as fast as the ring takes them: reads of a missing node, or
 * (writes) writes to data/w0..w19, which fire the watches "watches N"
 * set: a request flood plus a watch storm. With stop, it ends early once
 * that file exists ("ok SENT" then).
 */
static void flood(unsigned n, bool writes, const char *stop)
{
    char buf[64], path[32], val[16];
    uint32_t id, first = next_id, got = 0;
    long deadline = now_ms() + WAIT_MS * 3;
    struct msg m;

    for (unsigned i = 0; i < n; i++) {
        uint32_t len;

        if (stop && i % 64 == 0 && access(stop, F_OK) == 0) {
            n = i;
            break;
        }
        snprintf(path, sizeof(path), "data/w%u", i % 20);
        snprintf(val, sizeof(val), "%u", i);
        len = writes ? args2(buf, sizeof(buf), path, val, false)
                     : args2(buf, sizeof(buf), "data/none", NULL, false);
        /* Write as the ring allows, read replies as they come. */
        while (XSR_RING_SIZE - (R->req_prod - ld(&R->req_cons)) <
               sizeof(struct xsw_hdr) + len) {
            while (ld(&R->rsp_prod) != R->rsp_cons) {
                if (read_msg(&m, deadline) < 0)
                    goto out;
                got += m.h.type != XSW_WATCH_EVENT;
                free(m.p);
            }
            if (now_ms() > deadline)
                goto out;
            kick();
            pause_io();
        }
        if (send_req(writes ? XSW_WRITE : XSW_READ, 0, buf, len, &id) < 0)
            goto out;
    }
    while (got < n) {
        if (read_msg(&m, deadline) < 0)
            break;
        got += m.h.type != XSW_WATCH_EVENT;
        free(m.p);
    }
out:
    (void)first;
    printf(got == n ? "ok %u\n" : "err got %u\n", got);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return x < y ? -1 : x > y;
}

/*
 * A fixed workload of n requests, one at a time (writes of data/lK and
 * reads of them, alternated), each one's latency in microseconds
 * appended to file: "ok N MEDIAN P99" (microseconds).
 */
static void latency(unsigned n, const char *file)
{
    char path[32], val[16];
    long *us = calloc(n ? n : 1, sizeof(*us));
    FILE *f = fopen(file, "a");
    struct msg m;
    struct timespec a, b;
    unsigned done = 0;

    if (!us || !f) {
        printf("err %s\n", strerror(errno));
        free(us);
        if (f)
            fclose(f);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        uint32_t type = i % 2 ? XSW_READ : XSW_WRITE;
        char buf[64];
        uint32_t len;
        int rc;

        snprintf(path, sizeof(path), "data/l%u", (i / 2) % 8);
        snprintf(val, sizeof(val), "%u", i);
        len = args2(buf, sizeof(buf), path, type == XSW_WRITE ? val : NULL,
                    false);
        clock_gettime(CLOCK_MONOTONIC, &a);
        rc = request(type, 0, buf, len, &m);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc < 0)
            break;
        free(m.p);
        if (m.h.type == XSW_ERROR)
            break;
        us[done] = (b.tv_sec - a.tv_sec) * 1000000L +
                   (b.tv_nsec - a.tv_nsec) / 1000;
        fprintf(f, "%ld\n", us[done++]);
    }
    fclose(f);
    qsort(us, done, sizeof(*us), cmp_long);
    if (done == n && n > 0)
        printf("ok %u %ld %ld\n", n, us[n / 2], us[n * 99 / 100]);
    else
        printf("err %u of %u\n", done, n);
    free(us);
}

/* A guest that writes and never reads: the service must stop reading it
 * (its replies have nowhere to go) without holding more and more. */
static void stall(void)
{
    char buf[64];
    uint32_t len = args2(buf, sizeof(buf), "data/none", NULL, false);
    unsigned n = 0;
    long deadline = now_ms() + 2000;
    struct xsw_hdr h = {XSW_READ, 0, 0, len};

    while (now_ms() < deadline) {
        if (XSR_RING_SIZE - (R->req_prod - ld(&R->req_cons)) <
            sizeof(h) + len) {
            kick();
            pause_io();
            continue;
        }
        h.req_id = next_id++;
        ring_write(&h, sizeof(h), deadline);
        ring_write(buf, len, deadline);
        n++;
    }
    printf("ok %u\n", n);
}

static void many(bool watches, unsigned n)
{
    char buf[64], path[32], tok[16];
    unsigned ok = 0, err = 0;
    char ename[32] = "";
    struct msg m;

    for (unsigned i = 0; i < n; i++) {
        uint32_t len;
        snprintf(path, sizeof(path), "data/w%u", i);
        snprintf(tok, sizeof(tok), "t%u", i);
        len = watches ? args2(buf, sizeof(buf), path, tok, true)
                      : args2(buf, sizeof(buf), "", NULL, false);
        if (request(watches ? XSW_WATCH : XSW_TRANSACTION_START, 0, buf, len,
                    &m) < 0) {
            printf("timeout\n");
            return;
        }
        if (m.h.type == XSW_ERROR) {
            err++;
            snprintf(ename, sizeof(ename), "%s", m.p);
        } else {
            ok++;
        }
        free(m.p);
    }
    printf("ok %u %u %s\n", ok, err, ename);
}

static void bigwrite(const char *path, unsigned n)
{
    static char buf[XSW_PAYLOAD_MAX + 64];
    size_t pl = strlen(path) + 1;
    struct msg m;

    if (pl + n > XSW_PAYLOAD_MAX) {
        printf("err size\n");
        return;
    }
    memcpy(buf, path, pl);
    for (unsigned i = 0; i < n; i++)
        buf[pl + i] = (char)('a' + i % 26);
    if (request(XSW_WRITE, 0, buf, (uint32_t)(pl + n), &m) < 0 ||
        m.h.type == XSW_ERROR) {
        printf("err write %s\n", m.h.type == XSW_ERROR ? m.p : "timeout");
        return;
    }
    free(m.p);
    if (request(XSW_READ, 0, path, (uint32_t)pl, &m) < 0 ||
        m.h.type == XSW_ERROR) {
        printf("err read\n");
        return;
    }
    printf(m.h.len == n && memcmp(m.p, buf + pl, n) == 0 ? "ok %u\n"
                                                         : "err differs %u\n",
           m.h.len);
    free(m.p);
}

/* Wait until the service reports a protocol error on the ring. */
static void expect_error(void)
{
    long deadline = now_ms() + WAIT_MS;

    while (ld(&R->error) == XSR_ERROR_NONE && now_ms() < deadline) {
        kick();
        pause_io();
    }
    printf("ok error=%u\n", ld(&R->error));
}

static void hostile(const char *what)
{
    struct xsw_hdr h = {0, next_id++, 0, 0};
    struct msg m;

    if (strcmp(what, "badtype") == 0) {
        h.type = 99;
        ring_write(&h, sizeof(h), now_ms() + WAIT_MS);
        answer(wait_reply(h.req_id, &m), &m, false);
    } else if (strcmp(what, "badlen") == 0) {
        h.type = XSW_READ;
        h.len = XSW_PAYLOAD_MAX + 1;
        ring_write(&h, sizeof(h), now_ms() + WAIT_MS);
        expect_error();
    } else {
        __atomic_store_n(&R->req_prod, ld(&R->req_cons) + 3 * XSR_RING_SIZE,
                         __ATOMIC_RELEASE);
        kick();
        expect_error();
    }
}

static void reconnect(void)
{
    long deadline = now_ms() + WAIT_MS;

    __atomic_store_n(&R->connection, XSR_RECONNECT, __ATOMIC_RELEASE);
    kick();
    while (ld(&R->connection) != XSR_CONNECTED && now_ms() < deadline) {
        kick();
        pause_io();
    }
    for (size_t i = 0; i < nev; i++)
        free(evq[i].p);
    nev = 0;
    printf(ld(&R->connection) == XSR_CONNECTED ? "ok\n" : "timeout\n");
}

int main(int argc, char **argv)
{
    char line[8192], path[512];
    unsigned domid, gfn;
    const char *dir = getenv("NOXS_SIM_DIR");
    int fd;

    if (argc != 3 || !dir) {
        fprintf(stderr, "usage: xsring DOMID GFN (NOXS_SIM_DIR set)\n");
        return 2;
    }
    domid = (unsigned)atoi(argv[1]);
    gfn = strncmp(argv[2], "file:", 5) ? (unsigned)atoi(argv[2]) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    setenv("NOXS_SIM_DOMID", argv[1], 1);
    if (!(xce = xenevtchn_open(NULL, 0))) {
        perror("xsring: xenevtchn_open");
        return 1;
    }
    xenevtchn_port_or_error_t p = xenevtchn_bind_unbound_port(xce, 0);
    if (p < 0) {
        perror("xsring: bind_unbound_port");
        return 1;
    }
    port = (evtchn_port_t)p;
    /* The guest's own memory: frame gfn of its domain file; or the page
     * file that plays dom0's kernel ring. */
    off_t off = (off_t)(SIM_MEM_OFF + (uint64_t)gfn * SIM_PAGE_SIZE);
    if (strncmp(argv[2], "file:", 5) == 0) {
        snprintf(path, sizeof(path), "%s", argv[2] + 5);
        off = 0;
        if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0 ||
            ftruncate(fd, SIM_PAGE_SIZE) < 0) {
            perror(path);
            return 1;
        }
    } else {
        snprintf(path, sizeof(path), "%s/dom-%u", dir, domid);
        if ((fd = open(path, O_RDWR)) < 0) {
            perror(path);
            return 1;
        }
    }
    R = mmap(NULL, SIM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
             off);
    if (R == MAP_FAILED) {
        perror("xsring: mmap");
        return 1;
    }
    close(fd);
    memset(R, 0, sizeof(*R));
    printf("port %u\n", port);

    while (fgets(line, sizeof(line), stdin)) {
        char *v[4] = {0};
        int n = 0;

        line[strcspn(line, "\n")] = '\0';
        for (char *s = strtok(line, " "); s && n < 4; s = strtok(NULL, " "))
            v[n++] = s;
        if (n == 0)
            continue;
#define IS(w, k) (strcmp(v[0], w) == 0 && n == (k))
        if (IS("read", 2))
            simple(XSW_READ, 0, v[1], NULL, false, false);
        else if (IS("write", 3))
            simple(XSW_WRITE, 0, v[1], v[2], false, false);
        else if (IS("rm", 2))
            simple(XSW_RM, 0, v[1], NULL, false, false);
        else if (IS("dir", 2))
            simple(XSW_DIRECTORY, 0, v[1], NULL, false, true);
        else if (IS("perms", 2))
            simple(XSW_GET_PERMS, 0, v[1], NULL, false, true);
        else if (IS("watch", 3))
            simple(XSW_WATCH, 0, v[1], v[2], true, false);
        else if (IS("unwatch", 3))
            simple(XSW_UNWATCH, 0, v[1], v[2], true, false);
        else if (IS("event", 1))
            next_event();
        else if (IS("txstart", 1))
            simple(XSW_TRANSACTION_START, 0, "", NULL, false, false);
        else if (IS("txwrite", 4))
            simple(XSW_WRITE, (uint32_t)atoi(v[1]), v[2], v[3], false, false);
        else if (IS("txread", 3))
            simple(XSW_READ, (uint32_t)atoi(v[1]), v[2], NULL, false, false);
        else if (IS("txend", 3))
            simple(XSW_TRANSACTION_END, (uint32_t)atoi(v[1]), v[2], NULL,
                   false, false);
        else if (IS("bigwrite", 3))
            bigwrite(v[1], (unsigned)atoi(v[2]));
        else if (IS("boot", 1))
            boot();
        else if (IS("flood", 2) || IS("flood", 3))
            flood((unsigned)atoi(v[1]), false, v[2]);
        else if (IS("wflood", 2) || IS("wflood", 3))
            flood((unsigned)atoi(v[1]), true, v[2]);
        else if (IS("lat", 3))
            latency((unsigned)atoi(v[1]), v[2]);
        else if (IS("stall", 1))
            stall();
        else if (IS("watches", 2))
            many(true, (unsigned)atoi(v[1]));
        else if (IS("txs", 2))
            many(false, (unsigned)atoi(v[1]));
        else if (IS("badtype", 1) || IS("badlen", 1) || IS("badidx", 1))
            hostile(v[0]);
        else if (IS("split", 2))
            split(v[1]);
        else if (IS("reconnect", 1))
            reconnect();
        else
            printf("err usage\n");
#undef IS
    }
    return 0;
}
