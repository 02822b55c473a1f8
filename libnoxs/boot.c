/*
 * The bootstrap string "noxs=<owner-domid>:<grant-ref>:<port>" and this
 * process's domain id.
 *
 * Parsing is strict because the string may come from a kernel command
 * line the guest does not control the whole of: decimal digits only, no
 * sign, no leading zeros (so every value has one spelling), no spaces
 * inside the word, every field range-checked against <noxs/abi.h>.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "private.h"
#include "common/parse.h"
/* The XenStore wire numbers; internal to the project, not installed. */
#include "../compat-xs/wire.h"
#include "common/unixsock.h"

#define PREFIX_LEN (sizeof(NOXS_BOOT_PREFIX) - 1)

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/*
 * Parse a decimal in [min, max] from s[0..len). Returns 0 or -1.
 */
/* Parse "<owner>:<gref>:<port>" occupying exactly s[0..len). */
static int parse_triple(const char *s, size_t len, struct noxs_boot *out)
{
    const char *c1 = memchr(s, ':', len), *c2;
    uint64_t owner, gref, port;

    if (!c1)
        return -1;
    c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s));
    if (!c2)
        return -1;
    if (parse_u64n(s, (size_t)(c1 - s), 0, NOXS_DOMID_MAX, &owner) < 0 ||
        parse_u64n(c1 + 1, (size_t)(c2 - c1 - 1), NOXS_GREF_MIN,
                   UINT32_MAX, &gref) < 0 ||
        parse_u64n(c2 + 1, len - (size_t)(c2 + 1 - s), 1, NOXS_PORT_MAX,
                   &port) < 0)
        return -1;
    out->owner_domid = (uint16_t)owner;
    out->gref = (uint32_t)gref;
    out->port = (uint32_t)port;
    return 0;
}

NOXS_EXPORT int noxs_boot_parse(const char *s, struct noxs_boot *out)
{
    const char *p, *word = NULL, *bare = NULL;
    size_t word_len = 0, bare_len = 0, nwords = 0;
    struct noxs_boot b;

    if (!s || !out) {
        errno = EINVAL;
        return -1;
    }
    /* Walk the words; the first "noxs=" word wins. */
    for (p = s; *p;) {
        const char *start;

        while (*p && is_space(*p))
            p++;
        if (!*p)
            break;
        start = p;
        while (*p && !is_space(*p))
            p++;
        nwords++;
        if (!bare) {
            bare = start;
            bare_len = (size_t)(p - start);
        }
        if ((size_t)(p - start) >= PREFIX_LEN &&
            memcmp(start, NOXS_BOOT_PREFIX, PREFIX_LEN) == 0) {
            word = start + PREFIX_LEN;
            word_len = (size_t)(p - start) - PREFIX_LEN;
            break;
        }
    }
    if (!word) {
        /* No prefix: only a lone word that looks like the triple. */
        if (nwords != 1 || !memchr(bare, ':', bare_len)) {
            errno = ENOENT;
            return -1;
        }
        word = bare;
        word_len = bare_len;
    }
    if (word_len + PREFIX_LEN > NOXS_BOOT_MAXLEN ||
        parse_triple(word, word_len, &b) < 0) {
        errno = EINVAL;
        return -1;
    }
    *out = b;
    return 0;
}

NOXS_EXPORT int noxs_boot_format(const struct noxs_boot *b, char *buf,
                                 size_t len)
{
    int n;

    if (!b || !buf) {
        errno = EINVAL;
        return -1;
    }
    n = snprintf(buf, len, NOXS_BOOT_PREFIX "%u:%u:%u",
                 (unsigned int)b->owner_domid, (unsigned int)b->gref,
                 (unsigned int)b->port);
    if (n < 0 || (size_t)n >= len) {
        if (len)
            buf[0] = '\0';
        errno = ENOSPC;
        return -1;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The bootstrap in the domain's own XenStore directory                 */

#define XENBUS_ENV "NOXS_XENBUS_PATH"
#define XENBUS_DEV "/dev/xen/xenbus"
#define XENBUS_KEY "noxs" /* relative: /local/domain/<self>/noxs */
#define XENBUS_WAIT_MS 5000
#define XENBUS_REQ_ID 0x6e6f7873u

/* dom0 runs noxsd: it has no bootstrap, and on a host without
 * xenstored its xenbus device would only wait. */
static bool is_dom0(void)
{
    char caps[256];
    ssize_t n;
    int fd = open("/proc/xen/capabilities", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return false;
    n = read(fd, caps, sizeof(caps) - 1);
    close(fd);
    if (n <= 0)
        return false;
    caps[n] = '\0';
    return strstr(caps, "control_d") != NULL;
}

static int xenbus_open(const char *path, bool *sock)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return -1;
    *sock = S_ISSOCK(st.st_mode);
    if (!*sock && !S_ISCHR(st.st_mode)) {
        errno = ENODEV; /* neither xenstored nor the xenbus device */
        return -1;
    }
    if (!*sock)
        return open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    return unix_connect(path, SOCK_STREAM | SOCK_NONBLOCK);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    int64_t left;
    int rc;

    for (;;) {
        left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* Move len bytes through fd (write when out, else read) by deadline. */
static int xfer(int fd, bool sock, bool out, void *buf, size_t len,
                int64_t deadline)
{
    char *p = buf;

    while (len) {
        ssize_t n = out ? (sock ? send(fd, p, len, MSG_NOSIGNAL)
                                : write(fd, p, len))
                        : read(fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0) {
            errno = out ? EIO : ECONNRESET;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -1;
        if (wait_fd(fd, out ? POLLOUT : POLLIN, deadline) < 0)
            return -1;
    }
    return 0;
}

/*
 * One READ of the key "noxs" through the xenbus device (or the socket
 * $NOXS_XENBUS_PATH names), bounded by XENBUS_WAIT_MS. 0 and the value
 * NUL-terminated in buf, or -1 with errno: ENOENT (no device, no key),
 * ETIMEDOUT (no answer), EPROTO (an answer that is not one).
 */
static int xenbus_read_key(char *buf, size_t len)
{
    const char *path = getenv(XENBUS_ENV);
    unsigned char msg[sizeof(struct xsw_hdr) + sizeof(XENBUS_KEY)];
    struct xsw_hdr h = {.type = XSW_READ,
                        .req_id = XENBUS_REQ_ID,
                        .tx_id = 0,
                        .len = sizeof(XENBUS_KEY)};
    int64_t deadline = now_ms() + XENBUS_WAIT_MS;
    char reply[XSW_PAYLOAD_MAX + 1];
    bool sock = false;
    int fd, saved;

    if (!path || !*path) {
        if (is_dom0()) {
            errno = ENOENT;
            return -1;
        }
        path = XENBUS_DEV;
    }
    fd = xenbus_open(path, &sock);
    if (fd < 0) {
        errno = ENOENT;
        return -1;
    }
    /* One write: the xenbus device takes a message in one piece. */
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), XENBUS_KEY, sizeof(XENBUS_KEY));
    if (xfer(fd, sock, true, msg, sizeof(msg), deadline) < 0 ||
        xfer(fd, sock, false, &h, sizeof(h), deadline) < 0)
        goto fail;
    /* A fresh connection has no watches: only our reply may come. */
    if (h.req_id != XENBUS_REQ_ID || h.len > XSW_PAYLOAD_MAX ||
        (h.type != XSW_READ && h.type != XSW_ERROR)) {
        errno = EPROTO;
        goto fail;
    }
    if (xfer(fd, sock, false, reply, h.len, deadline) < 0)
        goto fail;
    close(fd);
    reply[h.len] = '\0';
    if (h.type == XSW_ERROR) {
        /* ENOENT, or EACCES when the key is not ours to read: either
         * way there is no bootstrap for this domain there. */
        errno = ENOENT;
        return -1;
    }
    if (h.len >= len || memchr(reply, '\0', h.len)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(buf, reply, (size_t)h.len + 1);
    return 0;
fail:
    saved = errno;
    close(fd);
    errno = saved == ECONNRESET ? ENOENT : saved;
    return -1;
}

NOXS_EXPORT int noxs_boot_find(struct noxs_boot *out)
{
    const char *env = getenv(NOXS_BOOT_ENV);
    char line[4096];
    ssize_t n = -1;
    int fd;

    if (env && *env)
        return noxs_boot_parse(env, out);
    fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, line, sizeof(line) - 1);
        close(fd);
    }
    if (n >= 0) {
        line[n] = '\0';
        if (noxs_boot_parse(line, out) == 0)
            return 0;
        if (errno != ENOENT)
            return -1; /* a noxs= word, malformed */
    }
    /* No noxs= word: a toolstack that cannot edit the command line
     * (the domid is known only once the domain is built) writes it in
     * the domain's own XenStore directory before unpausing it. */
    if (xenbus_read_key(line, sizeof(line)) < 0)
        return -1;
    return noxs_boot_parse(line, out) == 0 ? 0 : (errno = EINVAL, -1);
}

/* ------------------------------------------------------------------ */

/*
 * The calling thread's noxs_open_as() setting, -1 for none. Only the
 * simulator has per-thread identities; on Xen a process is one domain.
 */
static _Thread_local int open_as = -1;

typedef int sim_open_as_fn(int domid);

/*
 * The simulator's Xen libraries take a new handle's domain from the
 * thread's setting in libnoxs-sim.so.0 (found with dlsym, as the gntalloc
 * hook in svc.c), so a process that plays several domains (a test, a
 * benchmark, compat-xs under one) never writes its environment: setenv
 * in a library races every other thread's getenv.
 */
NOXS_EXPORT int noxs_open_as(int domid, int *prev)
{
    void *sym;
    sim_open_as_fn *fn;
    int old;

    if (domid < -1 || domid > (int)NOXS_DOMID_MAX) {
        errno = EINVAL;
        return -1;
    }
    if ((sym = dlsym(RTLD_DEFAULT, "noxs_sim_open_as")) == NULL) {
        errno = ENOTSUP;
        return -1;
    }
    memcpy(&fn, &sym, sizeof(sym));
    if ((old = fn(domid)) < -1)
        return -1;
    open_as = domid;
    if (prev)
        *prev = old;
    return 0;
}

/*
 * Which domain am I: the thread's noxs_open_as() setting (simulator
 * only), else $NOXS_DOMID, else the simulator's $NOXS_SIM_DOMID, else 0
 * (dom0). A guest's own device page names its domain too, but a
 * backend, noxsd or compat-xs must know before any page is mapped. A
 * variable that is set must be a domain id in the one form every noxs
 * program reads (decimal, no leading zero): "010" is refused, not read
 * as 8 by one program and ignored by another.
 */
NOXS_EXPORT int noxs_self_domid(uint16_t *domid)
{
    static const char *const names[] = {"NOXS_DOMID", "NOXS_SIM_DOMID"};
    uint64_t v;
    size_t i;

    *domid = 0;
    if (open_as >= 0) {
        *domid = (uint16_t)open_as;
        return 1;
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *s = getenv(names[i]);

        if (s == NULL || *s == '\0')
            continue;
        if (parse_u64(s, 0, NOXS_DOMID_MAX, &v) < 0) {
            noxs_i_log(NOXS_LOG_ERR, "%s=%s: not a domain id (0..%u, "
                                     "decimal, no leading zero)",
                       names[i], s,
                       (unsigned int)NOXS_DOMID_MAX);
            errno = EINVAL;
            return -1;
        }
        *domid = (uint16_t)v;
        return 1;
    }
    return 0;
}
