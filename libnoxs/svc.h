/*
 * What a process that outlives itself needs: the service manager's
 * notification socket (readiness and the file-descriptor store) and the
 * gntalloc device's ioctls. Shared by noxsd's page keeper and by
 * resumable backends (linked into noxsd as an object, as proto.o is;
 * hidden inside libnoxs.so).
 */
#ifndef NOXS_SVC_H
#define NOXS_SVC_H

/*
 * Send msg as one sd_notify(3) datagram to path ($NOTIFY_SOCKET: a
 * filesystem path or "@abstract"), with fd attached (SCM_RIGHTS) if
 * fd >= 0. 0, or -1 with errno (EINVAL: path is no socket address).
 */
int noxs_i_notify(const char *path, const char *msg, int fd);

/*
 * Put fd in the service manager's fd store under name, first removing
 * an entry of that name a previous instance left (FDSTOREREMOVE), and
 * with FDPOLL=0 so that a poll event on the file never drops it.
 * 0, or -1 with errno.
 */
int noxs_i_fdstore_put(const char *path, const char *name, int fd);

/*
 * The gntalloc device's ioctl(2). On the simulator, whose libraries stand
 * in for libxengnttab and not for the kernel, its core provides them for
 * the fd its xengntshr_fd() returns (docs/SIM.md); the rest (mmap of that
 * fd included) is the same.
 */
typedef int noxs_i_gntalloc_ioctl_fn(int fd, unsigned long request,
                                     void *arg);
noxs_i_gntalloc_ioctl_fn *noxs_i_gntalloc_ioctl(void);

#endif
