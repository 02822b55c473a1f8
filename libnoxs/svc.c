/*
 * The service manager's notification socket and the gntalloc ioctls
 * (svc.h). One datagram per message, written by hand rather than through
 * libsystemd (docs/DESIGN.md says why).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "svc.h"

int noxs_i_notify(const char *path, const char *msg, int fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *c;
    size_t len;
    int s, rc, saved;

    if (!path || (len = strlen(path)) < 2 || len >= sizeof(sa.sun_path) ||
        (path[0] != '/' && path[0] != '@')) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    mh.msg_name = &sa;
    mh.msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (fd >= 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if ((s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    rc = sendmsg(s, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
    saved = errno;
    close(s);
    errno = saved;
    return rc;
}

int noxs_i_fdstore_put(const char *path, const char *name, int fd)
{
    char line[128];

    snprintf(line, sizeof(line), "FDSTOREREMOVE=1\nFDNAME=%s", name);
    noxs_i_notify(path, line, -1);
    snprintf(line, sizeof(line), "FDSTORE=1\nFDPOLL=0\nFDNAME=%s", name);
    return noxs_i_notify(path, line, fd);
}

static int dev_ioctl(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg);
}

noxs_i_gntalloc_ioctl_fn *noxs_i_gntalloc_ioctl(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "noxs_sim_gntalloc_ioctl");
    noxs_i_gntalloc_ioctl_fn *fn = dev_ioctl;

    if (sym)
        memcpy(&fn, &sym, sizeof(sym));
    return fn;
}
