/*
 * Helpers of the simulator's Check suites (tests/unit/check_sim_*.c).
 * Each test case runs in a child of the suite (Check's fork mode), so it
 * may change its environment: the simulator reads NOXS_SIM_DIR and
 * NOXS_SIM_DOMID when a handle is opened.
 */
#ifndef NOXS_CHECK_SIM_H
#define NOXS_CHECK_SIM_H

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <xenevtchn.h>

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

#endif
