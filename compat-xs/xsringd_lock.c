/*
 * The ring service's lock file (xsringd.h). An OFD lock, not a POSIX
 * one: LMDB holds POSIX locks in the same process, and those are dropped
 * by any close() of the file; OFD locks belong to the open file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xsringd.h"

#define LS_DIR_DEFAULT "/var/lib/noxs/xenstore"

static int lock_path(const char *dir, char *buf, size_t n)
{
    if (!dir)
        dir = getenv("NOXS_XS_DIR");
    if (!dir || !*dir)
        dir = LS_DIR_DEFAULT;
    if ((size_t)snprintf(buf, n, "%s/%s", dir, CXS_RINGD_LOCK) >= n)
        return -ENAMETOOLONG;
    return 0;
}

int cxs_ringd_running(const char *dir)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    char path[PATH_MAX];
    int fd, rc;

    if ((rc = lock_path(dir, path, sizeof(path))))
        return rc;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -errno;
    rc = fcntl(fd, F_OFD_GETLK, &fl) < 0 ? -errno : fl.l_type != F_UNLCK;
    close(fd);
    return rc;
}

int cxs_ringd_lock(const char *dir)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    char path[PATH_MAX];
    int fd, rc;

    if ((rc = lock_path(dir, path, sizeof(path))))
        return rc;
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return -errno;
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        rc = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
        close(fd);
        return rc;
    }
    return fd;
}
