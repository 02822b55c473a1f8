/*
 * xsguest: a legacy guest shutdown agent written only against xs_*, in
 * the style of Linux's drivers/xen/manage.c. It advertises the reasons it
 * supports (control/feature-<reason> = "1"), watches control/shutdown and,
 * when a reason appears, acknowledges it the xenbus way (in a
 * transaction: read it, write "", retry on EAGAIN) and exits with a
 * status naming it: poweroff 0, reboot 10, suspend 11, crash 12 (as
 * noxs-sysctl-front); 1 on an error, 2 on an unknown request.
 *
 *   xsguest DOMID [REASON,...]     (default poweroff,reboot,suspend,crash)
 *
 * Prints "ready" once its features are written and the watch is set (its
 * initial event seen). Paths are absolute (/local/domain/DOMID/...), so the
 * same binary runs as domain DOMID on compat-xs and on a dom0 connection
 * to the real xenstored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

static const struct {
    const char *name;
    int status;
} reasons[] = {
    {"poweroff", 0},
    {"reboot", 10},
    {"suspend", 11},
    {"crash", 12},
};

static void die(const char *what)
{
    fprintf(stderr, "xsguest: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv)
{
    char path[128], fpath[160], list[128];
    const char *support = argc > 2 ? argv[2] : "poweroff,reboot,suspend,crash";
    struct xs_handle *h;
    unsigned int dom, n;
    char **ev, *save = NULL;

    if (argc < 2 || sscanf(argv[1], "%u", &dom) != 1) {
        fprintf(stderr, "usage: xsguest DOMID [REASON,...]\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    h = xs_open(0);
    if (!h)
        die("xs_open");
    snprintf(list, sizeof(list), "%s", support);
    for (char *r = strtok_r(list, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        snprintf(fpath, sizeof(fpath), "/local/domain/%u/control/feature-%s",
                 dom, r);
        if (!xs_write(h, XBT_NULL, fpath, "1", 1))
            die(fpath);
    }
    snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", dom);
    if (!xs_watch(h, path, "shutdown"))
        die("xs_watch");
    ev = xs_read_watch(h, &n);
    if (!ev)
        die("xs_read_watch");
    if (strcmp(ev[XS_WATCH_PATH], path) != 0 ||
        strcmp(ev[XS_WATCH_TOKEN], "shutdown") != 0) {
        fprintf(stderr, "xsguest: initial event %s %s\n", ev[XS_WATCH_PATH],
                ev[XS_WATCH_TOKEN]);
        return 1;
    }
    free(ev);
    printf("ready\n");

    for (;;) {
        xs_transaction_t t;
        char *v;
        unsigned int len;

        t = xs_transaction_start(h);
        if (t == XBT_NULL)
            die("xs_transaction_start");
        v = xs_read(h, t, path, &len);
        if (!v || len == 0) {
            /* Not there yet or cleared: wait for the next event. */
            free(v);
            xs_transaction_end(h, t, true);
            ev = xs_read_watch(h, &n);
            if (!ev)
                die("xs_read_watch");
            free(ev);
            continue;
        }
        if (!xs_write(h, t, path, "", 0))
            die("xs_write (acknowledge)");
        if (!xs_transaction_end(h, t, false)) {
            free(v);
            if (errno == EAGAIN)
                continue;
            die("xs_transaction_end");
        }
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
            if (strcmp(v, reasons[i].name) == 0) {
                printf("shutdown %s\n", v);
                free(v);
                xs_close(h);
                return reasons[i].status;
            }
        fprintf(stderr, "xsguest: unknown request \"%s\"\n", v);
        free(v);
        xs_close(h);
        return 2;
    }
}
