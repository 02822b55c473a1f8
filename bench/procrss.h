/*
 * A process's resident memory, as the benchmarks report a daemon's
 * (bench/bringup-common.h, bench/compat.c): VmRSS of /proc/PID/status.
 */
#ifndef NOXS_BENCH_PROCRSS_H
#define NOXS_BENCH_PROCRSS_H

#include <stdio.h>

/* KiB, or -1 if the process or the field is not there. */
static inline long bench_proc_rss_kb(long pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

#endif
