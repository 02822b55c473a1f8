/*
 * Logging: stderr in the foreground (-d), syslog otherwise, as in the
 * OpenBSD daemons. log_warn appends strerror(errno); fatal* exit(1).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>

#include "noxsd.h"

static int log_foreground = 1;
static int log_verbose;
static const char *log_ident = "noxsd";

void log_init(int foreground, int verbose, const char *ident)
{
    log_foreground = foreground;
    log_verbose = verbose;
    log_ident = ident;
    if (!foreground)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    tzset();
}

void log_setverbose(int verbose)
{
    log_verbose = verbose;
}

static void vlog(int pri, const char *fmt, va_list ap)
{
    if (log_foreground) {
        fprintf(stderr, "%s[%d]: ", log_ident, (int)getpid());
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        fflush(stderr);
    } else {
        vsyslog(pri, fmt, ap);
    }
}

static void logit(int pri, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logit(int pri, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(pri, fmt, ap);
    va_end(ap);
}

/* fmt followed by ": strerror(errno)". */
static void vwarn(int pri, const char *fmt, va_list ap)
{
    char msg[1024];
    int saved = errno;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    logit(pri, "%s: %s", msg, strerror(saved));
    errno = saved;
}

void log_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwarn(LOG_ERR, fmt, ap);
    va_end(ap);
}

void log_warnx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(LOG_ERR, fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(LOG_INFO, fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;

    if (!log_verbose)
        return;
    va_start(ap, fmt);
    vlog(LOG_DEBUG, fmt, ap);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwarn(LOG_CRIT, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(LOG_CRIT, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_libnoxs(int priority, const char *fmt, va_list ap)
{
    if (priority >= NOXS_LOG_DEBUG && !log_verbose)
        return;
    vlog(priority, fmt, ap);
}
