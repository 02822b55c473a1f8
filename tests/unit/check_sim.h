/*
 * Helpers of the simulator's Check suites (tests/unit/check_sim_*.c).
 * Each test case runs in a child of the suite (Check's fork mode), so it
 * may change its environment: the simulator reads NOXS_SIM_DIR and
 * NOXS_SIM_DOMID when a handle is opened.
 */
#ifndef NOXS_CHECK_SIM_H
#define NOXS_CHECK_SIM_H

#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xengnttab.h>

#include "sim/simstat.h"

/* A simulator state directory of this suite's own below the one the test
 * runner gave ($NOXS_SIM_DIR): TAG-PID, so that suites and runs never
 * share tables. */
static inline void sim_fresh_dir(const char *tag)
{
    char dir[512];
    const char *base = getenv("NOXS_SIM_DIR");

    snprintf(dir, sizeof(dir), "%s/%s-%d", base ? base : "/tmp/noxs-sim-t",
             tag, (int)getpid());
    setenv("NOXS_SIM_DIR", dir, 1);
}

/* Handles opened from now on belong to domain DOMID. */
static inline void sim_as(unsigned domid)
{
    char b[16];

    snprintf(b, sizeof(b), "%u", domid);
    setenv("NOXS_SIM_DOMID", b, 1);
}

/* NAME(domid): a handle of library LIB of domain DOMID's (as are those
 * opened after it, until the next sim_as). */
#define SIM_OPEN_AS(name, lib)                       \
    static inline lib##_handle *name(unsigned domid) \
    {                                                \
        sim_as(domid);                               \
        return lib##_open(NULL, 0);                  \
    }
SIM_OPEN_AS(sim_evtchn_as, xenevtchn)
SIM_OPEN_AS(sim_gntshr_as, xengntshr)
SIM_OPEN_AS(sim_gnttab_as, xengnttab)
SIM_OPEN_AS(sim_fmem_as, xenforeignmemory)

/* Closes the event channel handles given (a NULL-ended list). */
static inline void sim_evtchn_close_all(xenevtchn_handle *h, ...)
{
    va_list ap;

    va_start(ap, h);
    for (; h != NULL; h = va_arg(ap, xenevtchn_handle *))
        xenevtchn_close(h);
    va_end(ap);
}

/* Everything released: the simulator's guardians reaped every handle,
 * port and grant (they do so asynchronously; 10 s bound). */
static inline void sim_assert_idle(void)
{
    ck_assert_int_eq(noxs_simstat_wait_idle(10000, NULL), 0);
}

/* Is an event pending on H within MS milliseconds? */
static inline int sim_readable(xenevtchn_handle *h, int ms)
{
    struct pollfd p = {.fd = xenevtchn_fd(h), .events = POLLIN};

    return poll(&p, 1, ms) == 1;
}

/* The next pending port of H (unmasked again), or -1 if none came
 * within MS milliseconds. */
static inline int sim_wait_event(xenevtchn_handle *h, int ms)
{
    int port;

    if (!sim_readable(h, ms))
        return -1;
    port = xenevtchn_pending(h);
    if (port > 0)
        xenevtchn_unmask(h, (evtchn_port_t)port);
    return port;
}

/* Forks a process of domain DOMID: returns 0 in it (its handles opened
 * from now on are DOMID's), the child's pid in the test. */
static inline pid_t sim_fork_as(unsigned domid)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        sim_as(domid);
    return pid;
}

/*
 * A process of domain DOMID that lives until the test kills it: it runs
 * SETUP(ARG, MSG), sends the LEN bytes SETUP left in MSG to the test and
 * waits in pause(). Returns its pid once MSG has come. A SETUP that
 * fails (non-zero) ends the child without a message, which fails the
 * test; one that wants the test to assert on what went wrong returns 0
 * and says so in MSG.
 */
static inline pid_t sim_spawn(unsigned domid, int (*setup)(void *, void *),
                              void *arg, void *msg, size_t len)
{
    int fd[2];
    pid_t pid;

    ck_assert_int_eq(pipe(fd), 0);
    pid = sim_fork_as(domid);
    if (pid == 0) {
        if (setup(arg, msg) != 0 || write(fd[1], msg, len) != (ssize_t)len)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fd[1]);
    ck_assert_int_eq(read(fd[0], msg, len), (ssize_t)len);
    close(fd[0]);
    return pid;
}

/* Kills PID (-9) and waits for it: a domain's process that dies. */
static inline void sim_kill(pid_t pid)
{
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}

/* Waits for PID, which must end by signal SIG. */
static inline void sim_reap_signal(pid_t pid, int sig)
{
    int st;

    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st));
    ck_assert_int_eq(WTERMSIG(st), sig);
}

/* Waits for PID, which must exit with status 0. */
static inline void sim_reap(pid_t pid)
{
    int st;

    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "child failed (status 0x%x)", st);
}

/* Writing ADDR (a mapping the test may only read) kills with SIGSEGV. */
static inline void sim_assert_write_faults(volatile char *addr)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        addr[0] = 'x';
        _exit(0);
    }
    sim_reap_signal(pid, SIGSEGV);
}

#endif
