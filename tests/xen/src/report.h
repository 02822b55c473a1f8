/*
 * Result lines for the check-xen lane. Every check prints exactly one line,
 * "PASS <name>" or "FAIL <name>: <detail>", which tests/xen/boot.sh collects
 * from the serial log (guest lines arrive prefixed with "guest| ").
 */
#ifndef NOXS_XEN_REPORT_H
#define NOXS_XEN_REPORT_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int report_failures;

__attribute__((format(printf, 3, 4))) static int
check(int ok, const char *name, const char *fmt, ...)
{
    int saved = errno;
    char detail[256] = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (ok) {
        printf("PASS %s%s%s\n", name, detail[0] ? " - " : "", detail);
    } else {
        printf("FAIL %s: %s (errno %d: %s)\n", name, detail, saved,
               strerror(saved));
        report_failures++;
    }
    fflush(stdout);
    errno = saved;
    return ok;
}

/* Informational line, ignored by the parser. */
__attribute__((format(printf, 1, 2), unused)) static void note(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("note: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

#endif
