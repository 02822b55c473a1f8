/*
 * The toolstack's introduction of a domain with a store ring, as libxl
 * does it (xs_introduce_domain with the ring's frame and event channel),
 * and its release:
 *
 *   xsintro introduce DOMID MFN PORT
 *   xsintro release DOMID
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

int main(int argc, char **argv)
{
    struct xs_handle *xs;
    bool ok;

    if (!((argc == 5 && strcmp(argv[1], "introduce") == 0) ||
          (argc == 3 && strcmp(argv[1], "release") == 0))) {
        fprintf(stderr, "usage: xsintro introduce DOMID MFN PORT | "
                        "release DOMID\n");
        return 2;
    }
    if (!(xs = xs_open(0))) {
        fprintf(stderr, "xsintro: xs_open: %s\n", strerror(errno));
        return 1;
    }
    if (argc == 5)
        ok = xs_introduce_domain(xs, (unsigned)atoi(argv[2]),
                                 strtoul(argv[3], NULL, 10),
                                 (unsigned)atoi(argv[4]));
    else
        ok = xs_release_domain(xs, (unsigned)atoi(argv[2]));
    if (!ok) {
        fprintf(stderr, "xsintro: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    xs_close(xs);
    return 0;
}
