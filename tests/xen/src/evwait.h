/*
 * Waiting for an event channel's event in the check-xen lane's programs
 * that use Debian's libxenevtchn.
 */
#ifndef NOXS_XEN_EVWAIT_H
#define NOXS_XEN_EVWAIT_H

#include <poll.h>
#include <stdbool.h>

#include <xenevtchn.h>

/* Waits (up to MS ms a poll) for an event on PORT of H: 0 when PORT
 * fired, -1 on a timeout. Another port's event is unmasked and skipped,
 * or, when ONLY is set, ends the wait with -1. */
static int wait_port(xenevtchn_handle *h, evtchn_port_t port, int ms,
                     bool only)
{
    struct pollfd p = {.fd = xenevtchn_fd(h), .events = POLLIN};
    xenevtchn_port_or_error_t got;

    for (;;) {
        if (poll(&p, 1, ms) != 1)
            return -1;
        got = xenevtchn_pending(h);
        if (got < 0)
            return -1;
        xenevtchn_unmask(h, (evtchn_port_t)got);
        if ((evtchn_port_t)got == port)
            return 0;
        if (only)
            return -1;
    }
}

#endif
