/*
 * Logging for the console and blk driver programs: stderr in the
 * foreground, syslog otherwise (OpenBSD daemon style). Safe to call from
 * several threads (each line is one write).
 */
#ifndef NOXS_DRVLOG_H
#define NOXS_DRVLOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/* Program name for messages; foreground: stderr instead of syslog. */
void drvlog_init(const char *name, bool foreground, int verbosity);
void drvlog_vlog(int priority, const char *fmt, va_list ap);
void drvlog(int priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Log at LOG_ERR and exit(1). */
void drvlog_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#define log_warnx(...) drvlog(LOG_WARNING, __VA_ARGS__)
#define log_info(...) drvlog(LOG_INFO, __VA_ARGS__)
#define log_debug(...) drvlog(LOG_DEBUG, __VA_ARGS__)

/* libnoxs's logger, routed through drvlog. */
void drvlog_library(int priority, const char *fmt, va_list ap);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t drv_now_ms(void);

#endif /* NOXS_DRVLOG_H */
