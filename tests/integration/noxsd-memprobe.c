/*
 * Bring up many domains quickly for noxsd's memory test.
 *
 *   noxsd-memprobe SOCKET FIRST N
 *       create domains FIRST .. FIRST+N-1 with one sysctl device each
 *       (the backend must be registered), then print
 *       "heap_kib H rss_kib R domains D devices V" from noxsd's status
 *
 * One connection and no process per domain, so that a test can reach
 * hundreds of domains in a few seconds. Exit 1 on the first failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <noxs/noxs.h>

int main(int argc, char **argv)
{
    struct noxs_status st;
    struct noxs_boot boot;
    noxs_client *c;
    long first, n, i;

    if (argc != 4) {
        fprintf(stderr, "usage: noxsd-memprobe SOCKET FIRST N\n");
        return 2;
    }
    first = strtol(argv[2], NULL, 10);
    n = strtol(argv[3], NULL, 10);
    if (first < 1 || n < 0 || first + n > NOXS_DOMID_MAX) {
        fprintf(stderr, "noxsd-memprobe: bad range\n");
        return 2;
    }
    if ((c = noxs_client_open(argv[1])) == NULL) {
        perror("noxsd-memprobe: connect");
        return 1;
    }
    for (i = first; i < first + n; i++) {
        if (noxs_domain_create(c, (uint16_t)i, &boot) < 0) {
            fprintf(stderr, "noxsd-memprobe: domain-create %ld: %s\n", i,
                    strerror(errno));
            return 1;
        }
        if (noxs_dev_add(c, (uint16_t)i, NOXS_DEV_SYSCTL, 0, 0, NULL, 0) <
            0) {
            fprintf(stderr, "noxsd-memprobe: dev-add %ld: %s\n", i,
                    strerror(errno));
            return 1;
        }
    }
    if (noxs_status_get(c, &st) < 0) {
        perror("noxsd-memprobe: status");
        return 1;
    }
    printf("heap_kib %u rss_kib %llu domains %u devices %u\n", st.heap_kib,
           (unsigned long long)(st.rss_bytes / 1024), st.ndomains,
           st.ndevices);
    noxs_client_close(c);
    return 0;
}
