/*
 * One logging API for every noxs program (daemons, backends, tools).
 *
 * Where a line goes:
 *   - stderr is the journal ($JOURNAL_STREAM names it, as systemd sets
 *     it for a unit's stdout/stderr): "<N>message", N the syslog
 *     priority, with no ident or pid (the journal adds both);
 *   - a daemon that detached (log_detach): syslog(3), ident[pid]; while
 *     it sets up before detaching, its warnings and errors go to stderr
 *     as well, so that the command that started it shows why it failed;
 *   - otherwise (the foreground, a terminal, a test's log file):
 *     "ident: message" on stderr.
 * Each line is one write(2), so threads never interleave within a line.
 * Debug lines show only with verbose > 0; info and above always do, so a
 * daemon run with no -v still logs each device it adds, connects,
 * closes and removes.
 */
#ifndef NOXS_COMMON_LOG_H
#define NOXS_COMMON_LOG_H

#include <stdarg.h>
#include <syslog.h>

void log_init(const char *ident, int verbose);
void log_setverbose(int verbose);
/*
 * A daemon about to detach (daemon_start): every line goes to syslog,
 * and warnings and errors to stderr too, for whoever started it.
 */
void log_detaching(void);
/* From now on, lines go to syslog only (a daemon whose stderr is gone). */
void log_detach(void);
/* The ident given to log_init, for messages printed by hand. */
const char *log_ident(void);

void log_vat(int priority, const char *fmt, va_list ap);
void log_at(int priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* fmt followed by ": strerror(errno)", at LOG_ERR. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log at LOG_CRIT and exit(1); fatal appends strerror(errno). */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* libnoxs's logger (noxs_set_logger(log_library)). */
void log_library(int priority, const char *fmt, va_list ap);

#endif /* NOXS_COMMON_LOG_H */
