/*
 * Probes for noxsd's integration tests.
 *
 *   noxsd-probe malformed SOCKET   every kind of bad message gets an error
 *                                  reply and a closed connection, while a
 *                                  second client keeps working
 *   noxsd-probe nonroot SOCKET     as uid 65534: mutations get EPERM,
 *                                  listing works
 *   noxsd-probe toolstack SOCKET   noxsd runs with --toolstack-uid 65534:
 *                                  as uid 65534 domain-create/destroy
 *                                  work; as uid 65533 they get EPERM
 *   noxsd-probe page DOMID BOOT    print the guest's device page entries
 *   noxsd-probe mapped DOMID BOOT  the same from a mapping of the grant
 *                                  ("TYPE DEVID GREF PORT" lines), as the
 *                                  guest sees them (run with
 *                                  NOXS_SIM_DOMID=DOMID)
 * Exit 0 when every check passed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xengnttab.h>

#include <noxs/noxs.h>
#include <noxs/page.h>

#include "proto.h"

static int failures;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (!(cond)) {                                          \
            fprintf(stderr, "noxsd-probe: FAIL: " __VA_ARGS__); \
            fputc('\n', stderr);                                \
            failures++;                                         \
        }                                                       \
    } while (0)

/* A client of noxsd at PATH as WHO (NULL, a failure, if refused). */
static noxs_client *connect_as(const char *path, const char *who)
{
    noxs_client *c = noxs_client_open(path);

    CHECK(c != NULL, "connect as %s: %s", who, strerror(errno));
    return c;
}

static int raw_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        perror("connect");
        exit(3);
    }
    return fd;
}

/* Send buf; expect an ERROR reply with error `want`, then EOF if closed. */
static void expect_error(const char *path, const char *what, const void *buf,
                         size_t len, int want, int closed)
{
    static struct noxs_proto_msg m;
    struct pollfd p;
    uint8_t rx[NOXS_PROTO_MAX_MSG];
    ssize_t n;
    int fd = raw_connect(path);

    if (send(fd, buf, len, 0) != (ssize_t)len) {
        CHECK(0, "%s: send", what);
        close(fd);
        return;
    }
    p.fd = fd;
    p.events = POLLIN;
    CHECK(poll(&p, 1, 5000) == 1, "%s: no reply", what);
    n = recv(fd, rx, sizeof(rx), 0);
    CHECK(n > 0 && noxs_proto_decode(rx, (size_t)n, &m) == 0 &&
              m.hdr.type == NOXS_MSG_ERROR && m.hdr.error == want,
          "%s: want an ERROR %d reply (got %zd bytes, type %u error %d)", what,
          want, n, m.hdr.type, m.hdr.error);
    if (closed) {
        CHECK(poll(&p, 1, 5000) == 1 && recv(fd, rx, sizeof(rx), 0) == 0,
              "%s: connection not closed", what);
    } else {
        /* Still usable: a STATUS gets its reply. */
        struct noxs_proto_buf *b = malloc(sizeof(*b));
        int l = noxs_proto_simple(b, NOXS_MSG_STATUS, 99, 0);
        send(fd, b->data, (size_t)l, 0);
        free(b);
        CHECK(poll(&p, 1, 5000) == 1 && (n = recv(fd, rx, sizeof(rx), 0)) > 0 &&
                  noxs_proto_decode(rx, (size_t)n, &m) == 0 &&
                  m.hdr.type == (NOXS_MSG_STATUS | NOXS_MSG_REPLY),
              "%s: connection unusable after an EINVAL", what);
    }
    close(fd);
}

static int malformed(const char *path)
{
    struct noxs_proto_buf *b = malloc(sizeof(*b));
    struct noxs_msg_domid d = {.domid = 1};
    noxs_client *good = noxs_client_open(path);
    struct noxs_status st;
    uint8_t big[NOXS_PROTO_MAX_MSG + 100];
    int len;

    CHECK(good != NULL, "open a well-behaved client");
    /* Bad version. */
    len = noxs_proto_simple(b, NOXS_MSG_STATUS, 1, 0);
    b->data[0] = 9;
    expect_error(path, "bad version", b->data, (size_t)len, EPROTO, 1);
    /* Unknown type. */
    len = noxs_proto_simple(b, 0x7777, 1, 0);
    expect_error(path, "unknown type", b->data, (size_t)len, EPROTO, 1);
    /* Length field disagreeing with the datagram. */
    len = noxs_proto_simple(b, NOXS_MSG_STATUS, 1, 0);
    b->data[4] = 200;
    expect_error(path, "bad length", b->data, (size_t)len, EPROTO, 1);
    /* Short: a truncated header. */
    expect_error(path, "short header", b->data, 7, EPROTO, 1);
    /* Body too long for the type. */
    noxs_proto_begin(b, NOXS_MSG_DOMAIN_LIST, 1, 0);
    noxs_proto_put(b, &d, sizeof(d));
    len = noxs_proto_finish(b);
    expect_error(path, "body too long", b->data, (size_t)len, EPROTO, 1);
    /* Oversized datagram. */
    memset(big, 0, sizeof(big));
    memcpy(big, b->data, 16);
    expect_error(path, "oversized", big, sizeof(big), EPROTO, 1);
    /* A message only noxsd sends. */
    len = noxs_proto_simple(b, NOXS_MSG_END, 1, 0);
    expect_error(path, "wrong direction", b->data, (size_t)len, EPROTO, 1);
    /* Well-formed, value out of range: error, connection kept. */
    d.domid = 0x7ff0;
    noxs_proto_begin(b, NOXS_MSG_DOMAIN_CREATE, 1, 0);
    noxs_proto_put(b, &d, sizeof(d));
    len = noxs_proto_finish(b);
    expect_error(path, "domid out of range", b->data, (size_t)len, EINVAL, 0);

    CHECK(good && noxs_status_get(good, &st) == 0,
          "the other client stopped working: %s", strerror(errno));
    noxs_client_close(good);
    free(b);
    return failures ? 1 : 0;
}

/*
 * The requests that change something, written out here rather than taken
 * from the protocol's table, so that a row marked open by mistake fails.
 * Each is well-formed: the refusal must come from the access check, not
 * from the decoder or the handler.
 */
static void refused_raw(const char *path)
{
    struct noxs_proto_buf *b = malloc(sizeof(*b));
    struct noxs_msg_control ctl = {.domid = 1, .type = NOXS_DEV_SYSCTL, .key_len = 1, .value_len = 1};
    struct noxs_msg_register reg = {.domid = 0, .ntypes = 1};
    struct noxs_msg_sync sync = {.count = 0, .flags = NOXS_SYNC_FINAL};
    uint16_t type = NOXS_DEV_SYSCTL;
    int len;

    noxs_proto_begin(b, NOXS_MSG_DEV_CONTROL, 1, 0);
    noxs_proto_put(b, &ctl, sizeof(ctl));
    noxs_proto_put(b, "kv", 2);
    len = noxs_proto_finish(b);
    expect_error(path, "dev-control as nobody", b->data, (size_t)len, EPERM,
                 0);
    noxs_proto_begin(b, NOXS_MSG_BACKEND_REGISTER, 1, 0);
    noxs_proto_put(b, &reg, sizeof(reg));
    noxs_proto_put(b, &type, sizeof(type));
    len = noxs_proto_finish(b);
    expect_error(path, "backend-register as nobody", b->data, (size_t)len,
                 EPERM, 0);
    /* Only a registered backend may report its devices. */
    noxs_proto_begin(b, NOXS_MSG_BACKEND_SYNC, 1, 0);
    noxs_proto_put(b, &sync, sizeof(sync));
    len = noxs_proto_finish(b);
    expect_error(path, "backend-sync from a non-backend", b->data,
                 (size_t)len, EPERM, 0);
    free(b);
}

static int nonroot(const char *path)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        noxs_client *c;
        struct noxs_domain_info *dl;
        struct noxs_dev_info *dv;
        struct noxs_boot boot;
        struct noxs_kv kv = {"k", "v"};
        size_t n;

        if (setgid(65534) < 0 || setuid(65534) < 0) {
            perror("setuid");
            _exit(3);
        }
        c = connect_as(path, "uid 65534");
        if (!c)
            _exit(1);
        CHECK(noxs_domain_create(c, 7, &boot) < 0 && errno == EPERM,
              "domain-create as nobody: want EPERM, got %s", strerror(errno));
        CHECK(noxs_domain_destroy(c, 1) < 0 && errno == EPERM,
              "domain-destroy as nobody: want EPERM");
        CHECK(noxs_dev_add(c, 1, NOXS_DEV_SYSCTL, 5, 0, &kv, 1) < 0 &&
                  errno == EPERM,
              "dev-add as nobody: want EPERM");
        CHECK(noxs_dev_remove(c, 1, NOXS_DEV_SYSCTL, 0) < 0 && errno == EPERM,
              "dev-rm as nobody: want EPERM");
        CHECK(noxs_domain_list(c, &dl, &n) == 0 && n >= 1,
              "domain-list as nobody: %s", strerror(errno));
        CHECK(noxs_dev_list(c, NOXS_DOMID_ANY, &dv, &n) == 0,
              "dev-list as nobody: %s", strerror(errno));
        noxs_client_close(c);
        refused_raw(path);
        _exit(failures ? 1 : 0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* Run fn(path) in a child as uid/gid id; its exit status. */
static int as_uid(unsigned int id, int (*fn)(const char *), const char *path)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        if (setgid((gid_t)id) < 0 || setuid((uid_t)id) < 0) {
            perror("setuid");
            _exit(3);
        }
        _exit(fn(path));
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int toolstack_allowed(const char *path)
{
    noxs_client *c = connect_as(path, "the toolstack uid");
    struct noxs_boot boot;

    if (!c)
        return 1;
    CHECK(noxs_domain_create(c, 8, &boot) == 0,
          "domain-create as the toolstack uid: %s", strerror(errno));
    CHECK(noxs_domain_destroy(c, 8) == 0,
          "domain-destroy as the toolstack uid: %s", strerror(errno));
    noxs_client_close(c);
    return failures ? 1 : 0;
}

static int toolstack_other(const char *path)
{
    noxs_client *c = connect_as(path, "uid 65533");
    struct noxs_boot boot;

    if (!c)
        return 1;
    CHECK(noxs_domain_create(c, 9, &boot) < 0 && errno == EPERM,
          "domain-create as uid 65533: want EPERM, got %s",
          strerror(errno));
    noxs_client_close(c);
    return failures ? 1 : 0;
}

static int toolstack(const char *path)
{
    int a = as_uid(65534, toolstack_allowed, path);
    int b = as_uid(65533, toolstack_other, path);

    return a || b;
}

static int page(const char *domid, const char *bootstr)
{
    struct noxs_devpage_entry e[NOXS_DEVPAGE_MAX_ENTRIES];
    struct noxs_boot boot;
    noxs_frontend *f;
    uint32_t gen;
    int n, i;

    (void)domid;
    if (noxs_boot_parse(bootstr, &boot) < 0 ||
        (f = noxs_frontend_open(&boot)) == NULL) {
        fprintf(stderr, "noxsd-probe: open device page: %s\n",
                strerror(errno));
        return 1;
    }
    n = noxs_frontend_devices(f, e, NOXS_DEVPAGE_MAX_ENTRIES, &gen);
    if (n < 0) {
        fprintf(stderr, "noxsd-probe: read device page: %s\n",
                strerror(errno));
        return 1;
    }
    for (i = 0; i < n; i++)
        printf("%u %u %u %u\n", e[i].type, e[i].devid, e[i].control_gref,
               e[i].backend_port);
    noxs_frontend_close(f);
    return 0;
}

/*
 * mapped DOMID BOOT: the guest's device page as mapped (read-only) from
 * the grant ref in its bootstrap, without opening a frontend (whose
 * notify port a running frontend of that guest already holds): one
 * header line "page OWNER PORT GENERATION", then the valid entries as
 * `page` prints them.
 */
static int mapped(const char *domid, const char *bootstr)
{
    static struct noxs_devpage copy;
    struct noxs_boot boot;
    xengnttab_handle *t;
    unsigned long d = strtoul(domid, NULL, 10);
    void *p;
    uint32_t i;

    if (noxs_boot_parse(bootstr, &boot) < 0 ||
        (t = xengnttab_open(NULL, 0)) == NULL) {
        fprintf(stderr, "noxsd-probe: %s\n", strerror(errno));
        return 1;
    }
    p = xengnttab_map_grant_ref(t, boot.owner_domid, boot.gref, PROT_READ);
    if (p == NULL) {
        fprintf(stderr, "noxsd-probe: map grant %u of domain %u: %s\n",
                boot.gref, boot.owner_domid, strerror(errno));
        return 1;
    }
    if (noxs_devpage_snapshot(p, &copy, (uint16_t)d) < 0) {
        fprintf(stderr, "noxsd-probe: device page: %s\n", strerror(errno));
        return 1;
    }
    printf("page %u %u %u\n", copy.hdr.owner_domid, copy.hdr.notify_port,
           copy.hdr.generation);
    for (i = 0; i < copy.hdr.entry_count; i++)
        printf("%u %u %u %u\n", copy.entries[i].type, copy.entries[i].devid,
               copy.entries[i].control_gref, copy.entries[i].backend_port);
    xengnttab_unmap(t, p, 1);
    xengnttab_close(t);
    return 0;
}

/*
 * notify PATH: play systemd's notification socket. Bind a datagram
 * socket at PATH, wait (10 s at most) for READY=1, print it, and say
 * whether noxsd's control socket ($NOXS_SOCKET) accepted a connection
 * right after: READY=1 must only come once it listens.
 */
static int notify(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct pollfd p;
    char buf[256];
    ssize_t n;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return 2;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("noxsd-probe: notify socket");
        return 1;
    }
    printf("bound\n");
    fflush(stdout);
    /* Other messages (the fd store's) come first: skip them. */
    for (;;) {
        p = (struct pollfd){.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) != 1) {
            fprintf(stderr, "noxsd-probe: no READY=1 within 10 s\n");
            return 1;
        }
        n = recv(fd, buf, sizeof(buf) - 1, 0); /* passed fds are dropped */
        if (n < 0)
            return 1;
        buf[n] = '\0';
        if (strstr(buf, "READY=1") != NULL)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n')
                buf[i] = ' ';
        printf("other %s\n", buf);
    }
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\n')
            buf[i] = ' ';
    noxs_client *c = noxs_client_open(getenv("NOXS_SOCKET"));
    printf("message %s\nlistening %s\n", buf, c != NULL ? "yes" : "no");
    if (c != NULL)
        noxs_client_close(c);
    close(fd);
    unlink(path);
    return 0;
}

int main(int argc, char *argv[])
{
    if (argc == 3 && strcmp(argv[1], "notify") == 0)
        return notify(argv[2]);
    if (argc == 3 && strcmp(argv[1], "malformed") == 0)
        return malformed(argv[2]);
    if (argc == 3 && strcmp(argv[1], "nonroot") == 0)
        return nonroot(argv[2]);
    if (argc == 3 && strcmp(argv[1], "toolstack") == 0)
        return toolstack(argv[2]);
    if (argc == 4 && strcmp(argv[1], "page") == 0)
        return page(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "mapped") == 0)
        return mapped(argv[2], argv[3]);
    fprintf(stderr, "usage: noxsd-probe malformed|nonroot|toolstack SOCKET | page DOMID "
                    "BOOT | notify PATH\n");
    return 2;
}
