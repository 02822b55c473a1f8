/*
 * What both xenstored shims (tests/compat/xsshim.c, bench/xsdsim.c) put
 * between Debian's daemons and libc: /proc/xen/xsd_port and xsd_kva read
 * from files the including shim makes (its fake_proc_xen: a new fd, -1
 * with errno, or -2 for "not one of ours"), and oxenstored's
 * setrlimit(RLIMIT_NOFILE, 1M) clamped to the hard limit (root here
 * lacks CAP_SYS_RESOURCE). Included once by each shim, after it defines
 * SHIM_EXPORT and fake_proc_xen. Test code only.
 */
#ifndef XSSHIM_LIBC_H
#define XSSHIM_LIBC_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static int fake_proc_xen(const char *path);

/* A memory file of size bytes that starts with data. */
static int memfd_with(const char *name, const void *data, size_t len,
                      size_t size)
{
    int fd = memfd_create(name, 0);

    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)size) < 0 ||
        (len && pwrite(fd, data, len, 0) != (ssize_t)len)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

typedef int open_fn(const char *, int, ...);
typedef FILE *fopen_fn(const char *, const char *);
typedef int setrlimit_fn(__rlimit_resource_t, const struct rlimit *);

#define REAL(name, type)      \
    static type *real_##name; \
    if (!real_##name)         \
    real_##name = (type *)dlsym(RTLD_NEXT, #name)

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

/* open() and open64(): a /proc/xen file of ours, or the real call. */
#define SHIM_OPEN(name)                                     \
    SHIM_EXPORT int name(const char *path, int flags, ...); \
    SHIM_EXPORT int name(const char *path, int flags, ...)  \
    {                                                       \
        int fd = fake_proc_xen(path);                       \
        mode_t mode;                                        \
        va_list ap;                                         \
                                                            \
        if (fd != -2)                                       \
            return fd;                                      \
        va_start(ap, flags);                                \
        mode = mode_arg(flags, ap);                         \
        va_end(ap);                                         \
        REAL(name, open_fn);                                \
        return real_##name(path, flags, mode);              \
    }

SHIM_OPEN(open)
SHIM_OPEN(open64)

SHIM_EXPORT FILE *fopen(const char *path, const char *mode);
SHIM_EXPORT FILE *fopen(const char *path, const char *mode)
{
    int fd = fake_proc_xen(path);

    if (fd == -1)
        return NULL;
    if (fd >= 0)
        return fdopen(fd, mode[0] == 'r' && !strchr(mode, '+') ? "r" : "r+");
    REAL(fopen, fopen_fn);
    return real_fopen(path, mode);
}

SHIM_EXPORT int setrlimit(__rlimit_resource_t resource,
                          const struct rlimit *rl);
SHIM_EXPORT int setrlimit(__rlimit_resource_t resource,
                          const struct rlimit *rl)
{
    struct rlimit want = *rl, cur;

    REAL(setrlimit, setrlimit_fn);
    if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
        if (want.rlim_max == RLIM_INFINITY || want.rlim_max > cur.rlim_max)
            want.rlim_max = cur.rlim_max;
        if (want.rlim_cur == RLIM_INFINITY || want.rlim_cur > want.rlim_max)
            want.rlim_cur = want.rlim_max;
    }
    return real_setrlimit(resource, &want);
}

#endif /* XSSHIM_LIBC_H */
