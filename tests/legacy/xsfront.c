/*
 * legacy-front: the frontend half of the legacy pair, as a program.
 *
 *   legacy-front [-t TIMEOUT_MS] [-k] DOMID CLASS DEVID
 *
 * Connects device CLASS/DEVID of domain DOMID through the xs_* API,
 * prints "connected", then (with -k after stdin reaches EOF) closes it
 * and prints "closed". Exit status 0 on success, 1 on failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "legacy.h"

static void usage(void)
{
    fprintf(stderr, "usage: legacy-front [-t TIMEOUT_MS] [-k] DOMID CLASS "
                    "DEVID\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct legacy_front f;
    struct xs_handle *xs;
    int timeout_ms = 10000, keep = 0, c;

    while ((c = getopt(argc, argv, "t:k")) != -1) {
        switch (c) {
        case 't': timeout_ms = atoi(optarg); break;
        case 'k': keep = 1; break;
        default: usage();
        }
    }
    if (argc - optind != 3)
        usage();
    xs = xs_open(0);
    if (!xs) {
        fprintf(stderr, "legacy-front: xs_open: %s\n", strerror(errno));
        return 1;
    }
    if (legacy_front_connect(&f, xs, (unsigned)atoi(argv[optind]),
                             argv[optind + 1],
                             (unsigned)atoi(argv[optind + 2]),
                             timeout_ms) < 0) {
        fprintf(stderr, "legacy-front: connect: %s\n", strerror(errno));
        return 1;
    }
    printf("connected %s\n", f.backend);
    fflush(stdout);
    if (keep) {
        char buf[256];
        while (read(0, buf, sizeof(buf)) > 0)
            ;
    }
    if (legacy_front_close(&f, timeout_ms) < 0) {
        fprintf(stderr, "legacy-front: close: %s\n", strerror(errno));
        return 1;
    }
    printf("closed\n");
    xs_close(xs);
    return 0;
}
