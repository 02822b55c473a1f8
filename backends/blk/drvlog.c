/*
 * Logging shared by the console and blk driver programs (see drvlog.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drvlog.h"

static const char *progname = "noxs";
static bool to_stderr = true;
static int level;

void drvlog_init(const char *name, bool foreground, int verbosity)
{
    progname = name;
    to_stderr = foreground;
    level = verbosity;
    if (!foreground)
        openlog(name, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void drvlog_vlog(int priority, const char *fmt, va_list ap)
{
    int saved = errno;
    char line[1024];
    int n;

    if ((priority == LOG_DEBUG && level < 2) ||
        (priority == LOG_INFO && level < 1)) {
        errno = saved;
        return;
    }
    if (!to_stderr) {
        vsyslog(priority, fmt, ap);
        errno = saved;
        return;
    }
    n = snprintf(line, sizeof(line), "%s: ", progname);
    if (n < 0)
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}

void drvlog(int priority, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    drvlog_vlog(priority, fmt, ap);
    va_end(ap);
}

void drvlog_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    drvlog_vlog(LOG_ERR, fmt, ap);
    va_end(ap);
    exit(1);
}

void drvlog_library(int priority, const char *fmt, va_list ap)
{
    drvlog_vlog(priority, fmt, ap);
}

int64_t drv_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
