/*
 * Noticing that a guest domain died, as xenstored does.
 *
 * Xen raises the global VIRQ_DOM_EXC in the hardware domain when a domain
 * shuts down, crashes or is destroyed; it carries no domid, so on each
 * event the whole domain list is read (xc_domain_getinfolist) and every
 * registered domain is compared with it (broker_domains_check): one that
 * is dying, or that was listed running and is no longer listed (or whose
 * domid now names another domain), is reaped.
 *
 * A global VIRQ has one binding per domain. If another dom0 process holds
 * it (EEXIST: xenstored, which xl still needs on Xen 4.17, binds it at its
 * start and exits if it cannot), we do not fight for it: the domain list
 * is polled every --domain-poll ms instead. --no-dom-exc polls without
 * trying, for hosts where xenstored may start after noxsd (taking the
 * VIRQ first would make that xenstored fail).
 *
 * A registration usually precedes the domain it is for (the toolstack
 * passes the bootstrap string on the kernel command line), so a domain
 * the list does not have is dead only if it was seen before. While some
 * registered domain has not been seen yet, the list is polled as well,
 * so that a guest that starts and is destroyed between two VIRQs is not
 * missed. Shut-down domains that are not dying are left alone: the
 * toolstack may still resume (suspend, checkpoint) or inspect them.
 *
 * Every scan also compares the whole list with the previous one and
 * reports each domain, registered or not, that newly shut down, began
 * dying or left the list (NOXS_EVENT_DOMAIN_EXCEPTION): what xenstored
 * turns into @releaseDomain, which a host without xenstored gets from
 * here (compat-xs's local mode), so that `xl shutdown -w` and xl's
 * death watch work for every guest. The event carries the domid only;
 * noxsd keeps nothing about unregistered domains but this one byte each.
 *
 * On the simulator the same calls reach sim/xenctrl.c and sim/evtchn.c
 * (see docs/SIM.md): a domain dies by noxs-simctl destroy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>
#include <xenevtchn.h>

#include "noxsd.h"

#define DW_CHUNK 256u /* domains per getinfolist call */

static struct {
    int on;
    xc_interface *xc;
    xenevtchn_handle *xce;
    int port; /* VIRQ_DOM_EXC, or -1: polling */
    int poll_ms;
    size_t unseen;    /* registered domains not listed yet */
    uint64_t next_ms; /* next scan due (0: none) */
    xc_domaininfo_t *info;
    uint8_t *state;
    uint8_t *exc; /* EXC_* bits of each domid at the last scan */
    uint8_t *cur; /* and at this one */
    uint8_t (*handle)[16];
} W = {.port = -1};

#define EXC_LISTED 1u
#define EXC_SHUTDOWN 2u
#define EXC_DYING 4u

/* Read the whole domain list into W.state / W.handle. 0 or -1. */
static int list_domains(void)
{
    uint32_t first = 0;
    int n, i;

    memset(W.state, DW_ABSENT, NOXS_DOMID_MAX + 1);
    memset(W.cur, 0, NOXS_DOMID_MAX + 1);
    for (;;) {
        n = xc_domain_getinfolist(W.xc, first, DW_CHUNK, W.info);
        if (n < 0) {
            log_warn("xc_domain_getinfolist");
            return -1;
        }
        for (i = 0; i < n; i++) {
            uint32_t d = W.info[i].domain;

            if (d > NOXS_DOMID_MAX)
                continue;
            W.state[d] = (W.info[i].flags & XEN_DOMINF_dying) ? DW_DYING
                                                              : DW_ALIVE;
            /* Another domain under a known domid: the old one left. */
            if ((W.exc[d] & EXC_LISTED) &&
                memcmp(W.handle[d], W.info[i].handle, sizeof(W.handle[d]))) {
                broker_domain_exception((uint16_t)d);
                W.exc[d] = 0;
            }
            memcpy(W.handle[d], W.info[i].handle, sizeof(W.handle[d]));
            W.cur[d] = EXC_LISTED |
                       ((W.info[i].flags & XEN_DOMINF_shutdown) ? EXC_SHUTDOWN
                                                                : 0) |
                       ((W.info[i].flags & XEN_DOMINF_dying) ? EXC_DYING : 0);
        }
        if ((unsigned int)n < DW_CHUNK)
            return 0;
        first = W.info[n - 1].domain + 1u;
    }
}

static void schedule(void)
{
    W.next_ms = (W.port < 0 || W.unseen) && W.poll_ms > 0
                    ? now_ms() + (uint64_t)W.poll_ms
                    : 0;
}

/*
 * Report the domains that shut down, began dying or left the list since
 * the last scan, then remember this one. A domain first listed already
 * shut down (it went down between two scans) is reported too.
 */
static void exceptions(void)
{
    for (uint32_t d = 1; d <= NOXS_DOMID_MAX; d++) {
        uint8_t was = W.exc[d], now = W.cur[d];

        if (was == now)
            continue;
        if ((was & EXC_LISTED) && !(now & EXC_LISTED))
            broker_domain_exception((uint16_t)d);
        else if ((now & EXC_LISTED) &&
                 (now & (EXC_SHUTDOWN | EXC_DYING) &
                  ~(was & EXC_LISTED ? was : 0)))
            broker_domain_exception((uint16_t)d);
        W.exc[d] = now;
    }
}

static void scan(void)
{
    if (list_domains() == 0) {
        W.unseen = broker_domains_check(W.state,
                                        (const uint8_t(*)[16])W.handle);
        exceptions();
    }
    schedule();
}

void domwatch_init(const struct noxsd_opts *o)
{
    int fd, flags;

    W.poll_ms = o->domain_poll_ms;
    if (W.poll_ms <= 0) {
        log_info("domain death detection is off (--domain-poll 0)");
        return;
    }
    W.info = calloc(DW_CHUNK, sizeof(*W.info));
    W.state = calloc(NOXS_DOMID_MAX + 1, 1);
    W.exc = calloc(NOXS_DOMID_MAX + 1, 1);
    W.cur = calloc(NOXS_DOMID_MAX + 1, 1);
    W.handle = calloc(NOXS_DOMID_MAX + 1, sizeof(*W.handle));
    if (!W.info || !W.state || !W.exc || !W.cur || !W.handle)
        fatalx("out of memory");
    if ((W.xc = xc_interface_open(NULL, NULL, 0)) == NULL) {
        log_warn("xc_interface_open: cannot read the domain list; domain "
                 "death detection is off");
        return;
    }
    if (list_domains() < 0) {
        log_warnx("domain death detection is off");
        xc_interface_close(W.xc);
        W.xc = NULL;
        return;
    }
    W.on = 1;
    /* What was already down at start is not news. */
    memcpy(W.exc, W.cur, NOXS_DOMID_MAX + 1);
    if (!o->no_dom_exc && (W.xce = xenevtchn_open(NULL, 0)) != NULL) {
        W.port = xenevtchn_bind_virq(W.xce, VIRQ_DOM_EXC);
        if (W.port < 0) {
            log_info("VIRQ_DOM_EXC: %s%s; polling the domain list every "
                     "%d ms",
                     strerror(errno),
                     errno == EEXIST ? " (bound by another process, "
                                       "e.g. xenstored)"
                                     : "",
                     W.poll_ms);
            xenevtchn_close(W.xce);
            W.xce = NULL;
        } else {
            fd = xenevtchn_fd(W.xce);
            if ((flags = fcntl(fd, F_GETFL)) >= 0)
                fcntl(fd, F_SETFL, flags | O_NONBLOCK);
            log_info("watching domain deaths through VIRQ_DOM_EXC "
                     "(port %d)",
                     W.port);
        }
    } else {
        log_info("polling the domain list every %d ms%s", W.poll_ms,
                 o->no_dom_exc ? " (--no-dom-exc)" : "");
    }
    /* Domains that died while no worker ran. */
    W.unseen = broker_domains_check(W.state, (const uint8_t(*)[16])W.handle);
    schedule();
}

void domwatch_cleanup(void)
{
    if (W.xce)
        xenevtchn_close(W.xce);
    if (W.xc)
        xc_interface_close(W.xc);
    free(W.info);
    free(W.state);
    free(W.exc);
    free(W.cur);
    free(W.handle);
    memset(&W, 0, sizeof(W));
    W.port = -1;
}

int domwatch_fd(void)
{
    return W.xce ? xenevtchn_fd(W.xce) : -1;
}

void domwatch_event(void)
{
    xenevtchn_port_or_error_t p;
    int n = 0;

    if (!W.xce)
        return;
    /* Unmask before the scan: a death during it raises a new event. */
    while (n++ < 64 && (p = xenevtchn_pending(W.xce)) >= 0)
        xenevtchn_unmask(W.xce, (evtchn_port_t)p);
    scan();
}

int domwatch_timeout(void)
{
    uint64_t now;

    if (!W.on || W.next_ms == 0)
        return -1;
    now = now_ms();
    if (now >= W.next_ms) {
        scan();
        if (W.next_ms == 0)
            return -1;
        now = now_ms();
    }
    return W.next_ms > now ? (int)(W.next_ms - now) : 0;
}

void domwatch_registered(uint16_t domid)
{
    (void)domid;
    if (!W.on)
        return;
    W.unseen++;
    if (W.next_ms == 0)
        schedule();
}

int domwatch_query(uint16_t domid, uint8_t handle[16])
{
    xc_domaininfo_t info;
    int n;

    if (!W.on)
        return -1;
    n = xc_domain_getinfolist(W.xc, domid, 1, &info);
    if (n < 0)
        return -1;
    if (n == 0 || info.domain != domid)
        return DW_ABSENT;
    memcpy(handle, info.handle, 16);
    return (info.flags & XEN_DOMINF_dying) ? DW_DYING : DW_ALIVE;
}
