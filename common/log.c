/*
 * Logging shared by every program (see log.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "common/log.h"

static const char *ident = "noxs";
static int verbosity;
static int to_syslog; /* 1: syslog only; 2: also errors on stderr */
static int to_journal;

/*
 * systemd sets $JOURNAL_STREAM to "DEV:INO" of the stream it connected
 * to the journal; it is ours only if stderr is still that very file (a
 * child whose stderr was redirected inherits the variable, not the
 * stream).
 */
static int stderr_is_journal(void)
{
    const char *s = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char c;

    if (s == NULL || sscanf(s, "%llu:%llu%c", &dev, &ino, &c) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void log_init(const char *name, int verbose)
{
    ident = name;
    verbosity = verbose;
    to_syslog = 0;
    to_journal = stderr_is_journal();
}

void log_setverbose(int verbose)
{
    verbosity = verbose;
}

void log_detaching(void)
{
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    to_syslog = 2;
}

void log_detach(void)
{
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    to_syslog = 1;
    to_journal = 0;
}

const char *log_ident(void)
{
    return ident;
}

void log_vat(int priority, const char *fmt, va_list ap)
{
    int saved = errno;
    char line[1024];
    int n;

    if (LOG_PRI(priority) >= LOG_DEBUG && verbosity < 1) {
        errno = saved;
        return;
    }
    if (to_syslog) {
        va_list copy;

        va_copy(copy, ap);
        vsyslog(priority, fmt, copy);
        va_end(copy);
        if (to_syslog == 1 || LOG_PRI(priority) > LOG_WARNING) {
            errno = saved;
            return;
        }
    }
    if (to_journal)
        n = snprintf(line, sizeof(line), "<%d>", LOG_PRI(priority));
    else
        n = snprintf(line, sizeof(line), "%s: ", ident);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}

void log_at(int priority, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vat(priority, fmt, ap);
    va_end(ap);
}

static void vwarn(int priority, const char *fmt, va_list ap)
{
    char msg[900];
    int saved = errno;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_at(priority, "%s: %s", msg, strerror(saved));
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
    log_vat(LOG_ERR, fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vat(LOG_INFO, fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vat(LOG_DEBUG, fmt, ap);
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
    log_vat(LOG_CRIT, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_library(int priority, const char *fmt, va_list ap)
{
    log_vat(priority, fmt, ap);
}
