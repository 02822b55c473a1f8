/*
 * Many guests on their store rings at once, in one process (each with
 * the simulator's identity of its domain, bench/xsrclient.c), against
 * noxs-xsringd:
 *
 *   xsrmany N FIRST PID
 *
 * Domains FIRST..FIRST+N-1 are made as libxl makes them (a node of
 * their own, data/k, owned by the domain) and introduced with their
 * rings through compat-xs (the toolstack, dom0); every guest WATCHes
 * data/k and reads the watch's first event. Then the toolstack writes
 * every guest's data/k and every guest waits for that event. PID is the
 * service: its fds are counted before the first domain, once every
 * guest watches, and at the end.
 *
 * Prints "fds BEFORE WATCHING END inotify BEFORE WATCHING END" (all
 * fds, and the anon_inode:inotify ones, of PID), "watch OK REFUSED
 * SILENT" (guests whose WATCH was answered OK / with an error / whose
 * first event never came) and "events GOT of N". Every wait is bounded:
 * the events of the second phase share one 30 s deadline, after which
 * what is already in the rings is still taken.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "../../bench/xsrclient.h"

#define DEADLINE_MS 30000

static void die(const char *what)
{
    fprintf(stderr, "xsrmany: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* PID's fds: all of them, and its inotify instances in *ino. */
static int count_fds(const char *pid, int *ino)
{
    char p[300], l[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(p, sizeof(p), "/proc/%s/fd", pid);
    if (!(d = opendir(p)))
        die(p);
    *ino = 0;
    while ((e = readdir(d))) {
        ssize_t k;
        if (e->d_name[0] == '.')
            continue;
        n++;
        snprintf(p, sizeof(p), "/proc/%s/fd/%s", pid, e->d_name);
        if ((k = readlink(p, l, sizeof(l) - 1)) < 0)
            continue;
        l[k] = '\0';
        *ino += strcmp(l, "anon_inode:inotify") == 0;
    }
    closedir(d);
    return n;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The toolstack's part of making domain d: data/k, the domain's own. */
static void make_domain(struct xs_handle *xs, unsigned int d)
{
    struct xs_permissions perm = {.id = d, .perms = XS_PERM_NONE};
    char path[64];

    snprintf(path, sizeof(path), "/local/domain/%u/data/k", d);
    if (!xs_write(xs, XBT_NULL, path, "0", 1) ||
        !xs_set_permissions(xs, XBT_NULL, path, &perm, 1))
        die(path);
}

/* 1 if the guest's next event is data/k's, 0 if none came in time. */
static int got_event(struct xsrc *g, int timeout_ms)
{
    struct xsrc_event ev;
    int ok;

    if (xsrc_wait_event(g, timeout_ms, &ev) != 1)
        return 0;
    ok = strcmp(ev.path, "data/k") == 0 && strcmp(ev.token, "tok") == 0;
    if (!ok)
        fprintf(stderr, "xsrmany: domain %u: event %s %s\n", g->domid,
                ev.path, ev.token);
    free(ev.path);
    return ok;
}

int main(int argc, char **argv)
{
    int n, first, fds[3], ino[3], ok = 0, refused = 0, silent = 0, got = 0;
    struct xs_handle *xs;
    struct xsrc *g;
    char path[64];

    if (argc != 4 || (n = atoi(argv[1])) <= 0 || (first = atoi(argv[2])) <= 0) {
        fprintf(stderr, "usage: xsrmany N FIRST PID\n");
        return 2;
    }
    if (!(g = calloc((size_t)n, sizeof(*g))) || !(xs = xs_open(0)))
        die("start");
    fds[0] = count_fds(argv[3], &ino[0]);
    for (int i = 0; i < n; i++) {
        unsigned int d = (unsigned int)(first + i);
        if (xsrc_open(&g[i], d, XSRC_STORE_GFN) < 0)
            die("store ring (is NOXS_SIM_DIR the service's?)");
        g[i].timeout_ms = 30000;
        make_domain(xs, d);
        if (!xs_introduce_domain(xs, d, XSRC_STORE_GFN, g[i].port))
            die("xs_introduce_domain");
        if (xsrc_watch(&g[i], "data/k", "tok") < 0) {
            fprintf(stderr, "xsrmany: domain %u: WATCH: %s\n", d,
                    strerror(errno));
            refused++;
            continue;
        }
        ok++;
        /* The first event: 2 s is plenty when it comes at all; once
         * several never came, the service is not delivering: look
         * briefly. */
        if (!got_event(&g[i], silent > 3 ? 10 : 2000))
            silent++;
    }
    fds[1] = count_fds(argv[3], &ino[1]);
    printf("watch %d %d %d\n", ok, refused, silent);
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "/local/domain/%d/data/k", first + i);
        if (!xs_write(xs, XBT_NULL, path, "1", 1))
            die(path);
    }
    long long end = now_ms() + DEADLINE_MS;
    for (int i = 0; i < n; i++) {
        long long left = end - now_ms();
        got += got_event(&g[i], left > 1 ? (int)left : 1);
    }
    fds[2] = count_fds(argv[3], &ino[2]);
    printf("fds %d %d %d inotify %d %d %d\n", fds[0], fds[1], fds[2], ino[0],
           ino[1], ino[2]);
    printf("events %d of %d\n", got, n);
    for (int i = 0; i < n; i++)
        xsrc_close(&g[i]);
    xs_close(xs);
    free(g);
    return 0;
}
