/*
 * xswatch: a libxenstore client that watches PATH and prints one line
 * per event ("PATH TOKEN"), line-buffered, until killed. Linked with
 * -lxenstore; the tests run it on compat-xs (build/lib/compat-xs first in
 * LD_LIBRARY_PATH), e.g. on @releaseDomain.
 *
 *   xswatch PATH TOKEN
 */
#include <stdio.h>
#include <stdlib.h>

#include <xenstore.h>

int main(int argc, char **argv)
{
    struct xs_handle *h;
    unsigned int n;
    char **ev;

    if (argc != 3) {
        fprintf(stderr, "usage: xswatch PATH TOKEN\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if ((h = xs_open(0)) == NULL) {
        perror("xs_open");
        return 1;
    }
    if (!xs_watch(h, argv[1], argv[2])) {
        perror("xs_watch");
        return 1;
    }
    for (;;) {
        if ((ev = xs_read_watch(h, &n)) == NULL) {
            perror("xs_read_watch");
            return 1;
        }
        printf("%s %s\n", ev[XS_WATCH_PATH], ev[XS_WATCH_TOKEN]);
        free(ev);
    }
}
