/*
 * lstore-replay: run a script of XenStore requests against the real
 * xenstored (its Unix socket, $XENSTORED_PATH) or against compat-xs's
 * local store, and print one normalized line per request, so that
 * test-lstore-conformance.sh can compare the two.
 *
 *   lstore-replay xsd SCRIPT          through $XENSTORED_PATH
 *   lstore-replay local DIR SCRIPT    through cxs_lstore_open(DIR, 0)
 *
 * Script lines: "CONN OP ARGS...", CONN a or b (two connections), OP a
 * request name as below; "t:OP" runs it in CONN's open transaction.
 * Listings keep their order (both list in creation order); generation
 * numbers print as G; "events" prints the
 * distinct watch events that arrived, sorted; "fill PATH N" writes N
 * children with long names.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../compat-xs/gstore.h"

struct conn {
    struct cxs_gconn *g; /* local store, or NULL */
    int fd;              /* xenstored socket */
    uint32_t tx;
    char *ev[256];
    int nev;
};

static void die(const char *m)
{
    fprintf(stderr, "lstore-replay: %s\n", m);
    exit(2);
}

static void xread(int fd, void *p, size_t n)
{
    for (size_t d = 0; d < n;) {
        ssize_t r = read(fd, (char *)p + d, n - d);
        if (r <= 0)
            die("xenstored closed");
        d += r;
    }
}

static void keep_event(struct conn *c, const char *p, uint32_t len)
{
    char *s = malloc(len + 1);

    for (uint32_t i = 0; i < len; i++)
        s[i] = p[i] ? p[i] : ' ';
    s[len] = '\0';
    if (c->nev < 256)
        c->ev[c->nev++] = s;
    else
        free(s);
}

/* One request; reply type and a malloc'd payload. */
static char *request(struct conn *c, uint32_t type, uint32_t tx,
                     const char *p, uint32_t len, uint32_t *rt, uint32_t *rl)
{
    char *r;

    if (c->g) {
        if (c->g->ops->request(c->g, type, tx, p, len, rt, &r, rl))
            die("local store unreachable");
        return r;
    }
    struct xsw_hdr h = {type, 1, tx, len};
    if (write(c->fd, &h, sizeof(h)) != sizeof(h) ||
        write(c->fd, p, len) != (ssize_t)len)
        die("write to xenstored");
    for (;;) {
        xread(c->fd, &h, sizeof(h));
        r = malloc(h.len + 1);
        xread(c->fd, r, h.len);
        r[h.len] = '\0';
        if (h.type != XSW_WATCH_EVENT)
            break;
        keep_event(c, r, h.len);
        free(r);
    }
    *rt = h.type;
    *rl = h.len;
    return r;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void events(struct conn *c)
{
    struct pollfd p = {.fd = c->g ? c->g->ops->event_fd(c->g) : c->fd,
                       .events = POLLIN};

    /* Collect for a while: what xenstored sends has arrived by then. */
    for (int i = 0; i < 3; i++) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (c->g) {
            char *e;
            uint32_t len;
            while (c->g->ops->next_event(c->g, &e, &len) == 0) {
                keep_event(c, e, len);
                free(e);
            }
        } else {
            struct xsw_hdr h;
            xread(c->fd, &h, sizeof(h));
            char *r = malloc(h.len + 1);
            xread(c->fd, r, h.len);
            keep_event(c, r, h.len);
            free(r);
        }
    }
    qsort(c->ev, c->nev, sizeof(c->ev[0]), cmp);
    printf(" ->");
    for (int i = 0; i < c->nev; i++) {
        if (i == 0 || strcmp(c->ev[i], c->ev[i - 1]))
            printf(" [%s]", c->ev[i]);
    }
    for (int i = 0; i < c->nev; i++)
        free(c->ev[i]);
    c->nev = 0;
    printf("\n");
}

static const struct {
    const char *name;
    uint32_t type;
} ops[] = {
    {"read", XSW_READ},
    {"write", XSW_WRITE},
    {"mkdir", XSW_MKDIR},
    {"rm", XSW_RM},
    {"dir", XSW_DIRECTORY},
    {"dirpart", XSW_DIRECTORY_PART},
    {"getperms", XSW_GET_PERMS},
    {"setperms", XSW_SET_PERMS},
    {"watch", XSW_WATCH},
    {"unwatch", XSW_UNWATCH},
    {"txstart", XSW_TRANSACTION_START},
    {"txend", XSW_TRANSACTION_END},
    {"domainpath", XSW_GET_DOMAIN_PATH},
    {"introduced", XSW_IS_DOMAIN_INTRODUCED},
    {"release", XSW_RELEASE},
    {"writen", XSW_WRITE},
    {"readlen", XSW_READ},
};

static void run(struct conn *c, char *line)
{
    char *words[16], payload[8192];
    int n = 0;
    uint32_t len = 0, rt, rl;
    bool in_tx = false;

    for (char *w = strtok(line, " \n"); w && n < 16; w = strtok(NULL, " \n"))
        words[n++] = w;
    if (n == 0)
        return;
    char *op = words[0];
    if (strncmp(op, "t:", 2) == 0) {
        in_tx = true;
        op += 2;
    }
    printf("%s", words[0]);
    for (int i = 1; i < n; i++)
        printf(" %.40s", words[i]);
    if (strcmp(op, "events") == 0) {
        events(c);
        return;
    }
    if (strcmp(op, "fill") == 0) {
        /* fill PATH N: N children with long names, one line for all. */
        const char *res = "ok";
        for (long i = 0; i < strtol(words[2], NULL, 10); i++) {
            len = snprintf(payload, sizeof(payload),
                           "%s/child-with-a-long-name-%ld", words[1], i) +
                  1;
            char *r = request(c, XSW_WRITE, 0, payload, len, &rt, &rl);
            free(r);
            if (rt != XSW_WRITE)
                res = "failed";
        }
        printf(" -> %s\n", res);
        return;
    }
    size_t k;
    for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
        if (strcmp(ops[k].name, op) == 0)
            break;
    if (k == sizeof(ops) / sizeof(ops[0]))
        die(op);
    if (strcmp(op, "writen") == 0) {
        /* writen PATH N: a value of N bytes. */
        size_t pl = strlen(words[1]) + 1, v = strtoul(words[2], NULL, 10);
        memcpy(payload, words[1], pl);
        memset(payload + pl, 'v', v);
        len = pl + v;
    } else if (strcmp(op, "write") == 0) {
        size_t pl = strlen(words[1]) + 1, v = n > 2 ? strlen(words[2]) : 0;
        memcpy(payload, words[1], pl);
        memcpy(payload + pl, n > 2 ? words[2] : "", v);
        len = pl + v;
    } else if (strcmp(op, "txstart") == 0) {
        payload[0] = '\0';
        len = 1;
    } else {
        for (int i = 1; i < n; i++) {
            size_t l = strlen(words[i]) + 1;
            memcpy(payload + len, words[i], l);
            len += l;
        }
    }
    uint32_t tx = in_tx || strcmp(op, "txend") == 0 ? c->tx : 0;
    char *r = request(c, ops[k].type, tx, payload, len, &rt, &rl);
    if (rt == XSW_ERROR) {
        printf(" -> E:%s\n", r);
    } else if (rt != ops[k].type) {
        printf(" -> bad reply type %u\n", rt);
    } else if (strcmp(op, "txstart") == 0) {
        c->tx = strtoul(r, NULL, 10);
        printf(" -> ok\n");
    } else if (strcmp(op, "readlen") == 0) {
        printf(" -> %u bytes\n", rl);
    } else if (ops[k].type == XSW_DIRECTORY ||
               ops[k].type == XSW_DIRECTORY_PART) {
        char *names[1024];
        int nn = 0;
        uint32_t i = 0;
        if (ops[k].type == XSW_DIRECTORY_PART)
            i = strlen(r) + 1; /* the generation */
        for (; i < rl && nn < 1024; i += strlen(r + i) + 1)
            names[nn++] = r + i;
        printf(" ->%s", ops[k].type == XSW_DIRECTORY_PART ? " G" : "");
        for (int j = 0; j < nn; j++)
            printf(" '%s'", names[j]);
        printf("\n");
    } else {
        printf(" -> '");
        for (uint32_t i = 0; i < rl; i++)
            putchar(r[i] ? r[i] : '|');
        printf("'\n");
    }
    free(r);
}

static int sock_open(void)
{
    const char *path = getenv("XENSTORED_PATH");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (!path || fd < 0 || strlen(path) >= sizeof(a.sun_path))
        die("no XENSTORED_PATH");
    strcpy(a.sun_path, path);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("cannot connect to xenstored");
    return fd;
}

int main(int argc, char **argv)
{
    struct conn c[2] = {{.fd = -1}, {.fd = -1}};
    char line[4096];
    FILE *f;

    if (argc == 3 && strcmp(argv[1], "xsd") == 0) {
        c[0].fd = sock_open();
        c[1].fd = sock_open();
    } else if (argc == 4 && strcmp(argv[1], "local") == 0) {
        c[0].g = cxs_lstore_open(argv[2], 0);
        c[1].g = cxs_lstore_open(argv[2], 0);
        if (!c[0].g || !c[1].g)
            die("cannot open the local store");
    } else {
        die("usage: lstore-replay xsd SCRIPT | local DIR SCRIPT");
    }
    if (!(f = fopen(argv[argc - 1], "r")))
        die("cannot open the script");
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int who = line[0] == 'b';
        printf("%c ", line[0]);
        run(&c[who], line + 2);
        fflush(stdout);
    }
    fclose(f);
    for (int i = 0; i < 2; i++) {
        if (c[i].g)
            c[i].g->ops->close(c[i].g);
        else
            close(c[i].fd);
    }
    return 0;
}
