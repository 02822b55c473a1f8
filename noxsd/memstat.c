/*
 * The process's memory as noxsd status reports it: resident memory, and
 * the heap in use. RSS moves with what the kernel keeps resident (shared
 * library pages, the simulator's mappings); the heap count moves only
 * with what noxsd (and the libraries it links) allocate, byte for byte,
 * so it is the figure a test can hold to a bound (docs/BENCHMARKS.md).
 */
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include "noxsd.h"

uint64_t noxsd_rss_bytes(void)
{
    unsigned long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    uint64_t rss = 0;

    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    return rss;
}

uint64_t noxsd_heap_bytes(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();

    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#else
    return 0;
#endif
}
