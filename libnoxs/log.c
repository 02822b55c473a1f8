/*
 * Logging: the library is silent unless the application installs a
 * logger with noxs_set_logger() (as Xen's libraries take a xentoollog).
 */
#include <errno.h>
#include <stdarg.h>

#include "private.h"

static noxs_log_fn *logger;

NOXS_EXPORT void noxs_set_logger(noxs_log_fn *fn)
{
    __atomic_store_n(&logger, fn, __ATOMIC_RELEASE);
}

void noxs_i_log(int priority, const char *fmt, ...)
{
    noxs_log_fn *fn = __atomic_load_n(&logger, __ATOMIC_ACQUIRE);
    int saved = errno;
    va_list ap;

    if (!fn)
        return;
    va_start(ap, fmt);
    fn(priority, fmt, ap);
    va_end(ap);
    errno = saved;
}
