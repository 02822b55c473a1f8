/*
 * Print what noxs_boot_find() finds ("noxs=<owner>:<gref>:<port>"), or
 * the errno name it fails with, and exit 0 or 1: the guest's view of its
 * bootstrap sources, for test-xsd-boot.sh.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <noxs/noxs.h>

int main(void)
{
    struct noxs_boot b;
    char buf[64];

    if (noxs_boot_find(&b) < 0) {
        int e = errno;
        printf("%s\n", e == ENOENT ? "ENOENT" : e == EINVAL  ? "EINVAL"
                                            : e == ETIMEDOUT ? "ETIMEDOUT"
                                            : e == EPROTO    ? "EPROTO"
                                                             : strerror(e));
        return 1;
    }
    if (noxs_boot_format(&b, buf, sizeof(buf)) < 0)
        return 2;
    printf("%s\n", buf);
    return 0;
}
