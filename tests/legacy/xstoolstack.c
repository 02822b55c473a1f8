/*
 * legacy-toolstack: the toolstack step of the legacy pair, as libxl does
 * it, through the xs_* API only.
 *
 *   legacy-toolstack add FE CLASS DEVID [BE]   write both directories in
 *                                              one transaction
 *   legacy-toolstack rm FE CLASS DEVID [BE]    remove them
 *   legacy-toolstack introduce DOMID           xs_introduce_domain
 *   legacy-toolstack release DOMID             xs_release_domain
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "legacy.h"

static void usage(void)
{
    fprintf(stderr, "usage: legacy-toolstack add|rm FE CLASS DEVID [BE]\n"
                    "       legacy-toolstack introduce|release DOMID\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct xs_handle *xs;
    int rc;

    if (argc < 3)
        usage();
    xs = xs_open(0);
    if (!xs) {
        fprintf(stderr, "legacy-toolstack: xs_open: %s\n", strerror(errno));
        return 1;
    }
    if (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "rm") == 0) {
        unsigned int fe, devid, be;

        if (argc != 5 && argc != 6)
            usage();
        fe = (unsigned)atoi(argv[2]);
        devid = (unsigned)atoi(argv[4]);
        be = argc == 6 ? (unsigned)atoi(argv[5]) : 0;
        rc = argv[1][0] == 'a'
                 ? legacy_toolstack_add(xs, fe, argv[3], devid, be)
                 : legacy_toolstack_remove(xs, fe, argv[3], devid, be);
    } else if (strcmp(argv[1], "introduce") == 0 && argc == 3) {
        rc = xs_introduce_domain(xs, (unsigned)atoi(argv[2]), 0, 1) ? 0 : -1;
    } else if (strcmp(argv[1], "release") == 0 && argc == 3) {
        rc = xs_release_domain(xs, (unsigned)atoi(argv[2])) ? 0 : -1;
    } else {
        usage();
    }
    if (rc < 0) {
        fprintf(stderr, "legacy-toolstack: %s: %s\n", argv[1],
                strerror(errno));
        return 1;
    }
    xs_close(xs);
    return 0;
}
