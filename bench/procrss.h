/*
 * What the benchmarks read of a process in /proc: a numeric field of
 * /proc/PID/status (a daemon's VmRSS in bench/bringup-common.h and
 * bench/compat.c, a process's voluntary context switches in
 * bench/handshake.c) and of /proc/PID/stat (faults, CPU ticks).
 */
#ifndef NOXS_BENCH_PROCRSS_H
#define NOXS_BENCH_PROCRSS_H

#include <stdio.h>
#include <string.h>

/* The number after KEY (e.g. "VmRSS:") in /proc/PID/status, or -1 if the
 * process or the field is not there. */
static inline long bench_proc_status(long pid, const char *key)
{
    char path[64], line[256];
    size_t klen = strlen(key);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 &&
            sscanf(line + klen, "%ld", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* KiB, or -1 if the process or the field is not there. */
static inline long bench_proc_rss_kb(long pid)
{
    return bench_proc_status(pid, "VmRSS:");
}

/*
 * N consecutive fields of /proc/PID/stat from FIELD on (numbered as in
 * proc(5): 10 minflt, 14 utime, 15 stime; FIELD 4 or more) into v[0..n):
 * 0, or -1 if the process is gone or the line is not what proc(5) says.
 * The command name (field 2) may hold spaces and parentheses, so fields
 * are counted after its last ')'.
 */
static inline int bench_proc_stat(long pid, int field, unsigned long long *v,
                                  int n)
{
    char path[64], buf[1024], *p;
    size_t len;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    p = strrchr(buf, ')');
    if (!p || field < 4)
        return -1;
    p += 2; /* field 3, the state */
    for (int i = 3; i < field + n; i++) {
        if (i >= field && sscanf(p, "%llu", &v[i - field]) != 1)
            return -1;
        p = strchr(p, ' ');
        if (!p && i + 1 < field + n)
            return -1;
        if (p)
            p++;
    }
    return 0;
}

#endif
