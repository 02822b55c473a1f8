/*
 * xs_fileno's contract, as libxenstore keeps it: the fd is readable
 * exactly when xs_read_watch would return at once. xenconsoled and other
 * daemons poll it beside their own fds and then call the blocking
 * xs_read_watch.
 *
 *   xsfileno PATH
 *
 * Watches PATH, takes the event a new watch fires, prints "ready", then
 * for each readiness of xs_fileno() takes an event with xs_check_watch
 * and prints "event PATH" (or "spurious" and exits 1 when there was
 * none). Ends with status 0 once it has seen "count" events (second
 * argument, default 1) or after 20 s without one (status 2).
 *
 *   xsfileno PATH forks N
 *
 * Instead: forks N children while the fileno thread drains events (run
 * it while another process commits), each one as xl's monitoring child
 * starts: drop the inherited handle (xs_daemon_destroy_postfork), open a
 * new one, read PATH, watch PATH/child, write "ready" there and wait
 * (polling xs_fileno) to see the parent's "parent" arrive; status 5 if
 * it never does.
 *
 *   xsfileno PATH inherit N
 *
 * The same with the handle and the xs_fileno fd the parent had (xl
 * daemonizes its monitoring child after its handle has them). A child still running after 10 s is stuck on a
 * lock the thread held at the fork: "deadlock", status 1.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

static int forks(struct xs_handle *h, int hfd, const char *path, int n,
                 bool inherit)
{
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        int st, waited = 0;

        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            struct xs_handle *c;
            struct pollfd cp;
            unsigned int len;
            char sub[256], **ev;
            bool got = false;

            if (inherit) {
                /* The parent's handle and the fd it got from xs_fileno. */
                c = h;
                cp.fd = hfd;
            } else {
                xs_daemon_destroy_postfork(h);
                if (!(c = xs_open(0)))
                    _exit(3);
                cp.fd = xs_fileno(c);
            }
            free(xs_read(c, XBT_NULL, path, &len));
            /* The child's own watches work: it sees its parent's write. */
            snprintf(sub, sizeof(sub), "%s/child", path);
            cp.events = POLLIN;
            if (cp.fd < 0 || !xs_watch(c, sub, "c"))
                _exit(4);
            /* The watch fires once when set. */
            for (int k = 0; k < 100; k++) {
                if (poll(&cp, 1, 100) == 1 && (ev = xs_check_watch(c))) {
                    free(ev);
                    break;
                }
            }
            if (!xs_write(c, XBT_NULL, sub, "ready", 5))
                _exit(6);
            for (int k = 0; k < 100 && !got; k++) {
                if (poll(&cp, 1, 100) != 1)
                    continue;
                while ((ev = xs_check_watch(c)) != NULL) {
                    char *v = xs_read(c, XBT_NULL, sub, &len);
                    got = v && strcmp(v, "parent") == 0;
                    free(v);
                    free(ev);
                }
            }
            if (!inherit)
                xs_close(c);
            _exit(got ? 0 : 5);
        }
        {
            char sub[256], *v = NULL;
            unsigned int len;

            snprintf(sub, sizeof(sub), "%s/child", path);
            for (int k = 0; k < 500; k++) {
                v = xs_read(h, XBT_NULL, sub, &len);
                if (v && strcmp(v, "ready") == 0)
                    break;
                free(v);
                v = NULL;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
            free(v);
            xs_write(h, XBT_NULL, sub, "parent", 6);
        }
        while (waitpid(pid, &st, WNOHANG) == 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            if (++waited > 1000) {
                printf("deadlock: child %d of %d stuck\n", i, n);
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                return 1;
            }
            nanosleep(&ts, NULL);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("child %d: status %d\n", i, st);
            return 1;
        }
    }
    printf("forks ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    struct xs_handle *h;
    struct pollfd p;
    char **v;
    int want = argc == 3 ? atoi(argv[2]) : 1, seen = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: xsfileno PATH [COUNT]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!(h = xs_open(0))) {
        perror("xs_open");
        return 2;
    }
    p.fd = xs_fileno(h);
    p.events = POLLIN;
    if (p.fd < 0 || !xs_watch(h, argv[1], "t")) {
        perror("xs_fileno/xs_watch");
        return 2;
    }
    /* A new watch fires once: the fd says so, and the event is there. */
    if (poll(&p, 1, 20000) != 1 || !(v = xs_check_watch(h))) {
        printf("no first event\n");
        return 1;
    }
    free(v);
    printf("ready\n");
    if (argc > 3 && (strcmp(argv[2], "forks") == 0 ||
                     strcmp(argv[2], "inherit") == 0))
        return forks(h, p.fd, argv[1], atoi(argv[3]),
                     strcmp(argv[2], "inherit") == 0);
    while (seen < want) {
        int n = poll(&p, 1, 20000);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            printf("timeout\n");
            return 2;
        }
        if (!(v = xs_check_watch(h))) {
            printf("spurious (%s)\n", strerror(errno));
            return 1;
        }
        printf("event %s\n", v[XS_WATCH_PATH]);
        free(v);
        seen++;
    }
    xs_close(h);
    return 0;
}
