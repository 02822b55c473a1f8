/*
 * Result lines for the check-xen lane. Every check prints exactly one line,
 * "PASS <name>" or "FAIL <name>: <detail>", which tests/xen/boot.sh collects
 * from the serial log (guest lines arrive prefixed with "guest| "). Also
 * what the lane's programs share: a fault probe and the timing lines of
 * the handshake benchmarks.
 */
#ifndef NOXS_XEN_REPORT_H
#define NOXS_XEN_REPORT_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* Forks a child that writes to ADDR: 1 if it died of SIGSEGV/SIGBUS. */
__attribute__((unused)) static int write_faults(volatile char *addr)
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        addr[0] ^= 1;
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 0;
    return WIFSIGNALED(status) &&
           (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
}

__attribute__((unused)) static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The lines of a handshake benchmark through STORE: the median and
 * minimum of the N times T (sorted here), then every sample. */
__attribute__((unused)) static void report_samples(const char *store,
                                                   double *t, int n)
{
    qsort(t, (size_t)n, sizeof(*t), cmp_double);
    printf("HANDSHAKE %s median_us=%.0f min_us=%.0f n=%d\n", store,
           t[n / 2], t[0], n);
    printf("SAMPLES %s", store);
    for (int i = 0; i < n; i++)
        printf(" %.0f", t[i]);
    printf("\n");
}

#endif
