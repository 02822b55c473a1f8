/*
 * Bounded busy-waits for the ring drivers and libnoxs's page readers: a
 * pause per look at the peer's index, the clock every 64 looks. Not
 * part of any wire protocol, so not installed.
 */
#ifndef NOXS_COMMON_SPIN_H
#define NOXS_COMMON_SPIN_H

#include <sched.h>
#include <stdbool.h>
#include <time.h>

/*
 * Bounded busy-waits on the peer's index (both sides): one pause per look.
 * sched_yield() is a system call per turn, which on a busy machine costs
 * the peer more than it gives it; it only helps when the peer may need
 * this very CPU, i.e. when we can run on one CPU only
 * (noxs_blk_single_cpu(), read once per connection).
 */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::
                             : "memory");
#else
    __asm__ __volatile__("" ::
                             : "memory");
#endif
}

static inline void noxs_blk_cpu_relax(void)
{
    cpu_relax();
}

/*
 * A bounded spin, one step per look at the peer:
 *
 *   struct noxs_blk_spin sp;
 *   noxs_blk_spin_start(&sp, SPIN_NS, single_cpu);
 *   while (!ready())
 *       if (!noxs_blk_spin_step(&sp))
 *           return false;  (spin_ns passed: go to sleep)
 *
 * Every 64 looks it reads the clock (and yields on one CPU); otherwise it
 * pauses.
 */
struct noxs_blk_spin {
    struct timespec start;
    long spin_ns;
    unsigned int looks;
    bool single_cpu;
};

static inline void noxs_blk_spin_start(struct noxs_blk_spin *sp, long spin_ns,
                                       bool single_cpu)
{
    clock_gettime(CLOCK_MONOTONIC, &sp->start);
    sp->spin_ns = spin_ns;
    sp->looks = 0;
    sp->single_cpu = single_cpu;
}

static inline bool noxs_blk_spin_step(struct noxs_blk_spin *sp)
{
    if ((++sp->looks & 63) == 0) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - sp->start.tv_sec) * 1000000000L +
                (t.tv_nsec - sp->start.tv_nsec) >
            sp->spin_ns)
            return false;
        if (sp->single_cpu)
            sched_yield();
    }
    noxs_blk_cpu_relax();
    return true;
}

static inline bool noxs_blk_single_cpu(void)
{
    cpu_set_t set;

    return sched_getaffinity(0, sizeof(set), &set) == 0 &&
           CPU_COUNT(&set) <= 1;
}

#endif /* NOXS_COMMON_SPIN_H */
