/*
 * xsshim: an LD_PRELOAD library that lets Debian's unmodified xenstored
 * (C) and oxenstored (OCaml) run on a host without Xen, for the compat
 * conformance tests and bench/compat.
 *
 * Why a shim and not "xenstored -D": with -D the C daemon never opens
 * its libxenctrl handle and crashes on the first write. So we let both
 * daemons do their normal dom0 initialisation and fake exactly what it
 * touches: the xenctrl interface and domain-info calls (every domain
 * asked about exists and runs), the grant-table and event-channel
 * handles (an event-channel fd that never becomes readable: there is no
 * hypervisor to signal), /proc/xen/xsd_port ("1") and /proc/xen/xsd_kva
 * (an idle zeroed ring page), and oxenstored's setrlimit(RLIMIT_NOFILE,
 * 1M), clamped to the hard limit because root here lacks
 * CAP_SYS_RESOURCE. Clients talk to the daemons over the Unix socket,
 * which needs none of this, so the fakes cost nothing on the measured
 * paths. Test code only: never linked into anything that ships.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

/* libc's side: /proc/xen, setrlimit; memfd_with. */
#include "xsshim-libc.h"

/* Distinct non-NULL handles; the daemons only pass them back to us. */
static char fake_xc, fake_gnttab, fake_evtchn;
static int evtchn_pipe[2] = {-1, -1};
static uint32_t next_port = 2;

/* The /proc/xen files dom0 init reads; -2 if path is not one of them. */
static int fake_proc_xen(const char *path)
{
    if (!path || strncmp(path, "/proc/xen/", 10) != 0)
        return -2;
    if (strcmp(path + 10, "xsd_port") == 0)
        return memfd_with("xsd_port", "1", 1, 1);
    if (strcmp(path + 10, "xsd_kva") == 0)
        return memfd_with("xsd_kva", NULL, 0, 4096);
    errno = ENOENT;
    return -1;
}


/* ---- libxenctrl ---- */

SHIM_EXPORT xc_interface *xc_interface_open(xentoollog_logger *logger,
                                            xentoollog_logger *dombuild_logger,
                                            unsigned open_flags)
{
    return (xc_interface *)&fake_xc;
}

SHIM_EXPORT int xc_interface_close(xc_interface *xch)
{
    return 0;
}

SHIM_EXPORT int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid,
                                  unsigned int max_doms, xc_dominfo_t *info)
{
    if (max_doms == 0)
        return 0;
    memset(info, 0, sizeof(*info));
    info->domid = first_domid;
    info->running = 1;
    info->nr_online_vcpus = 1;
    info->max_memkb = 1u << 20;
    return 1;
}

SHIM_EXPORT int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain,
                                      unsigned int max_domains,
                                      xc_domaininfo_t *info)
{
    if (max_domains == 0)
        return 0;
    memset(info, 0, sizeof(*info));
    info->domain = (domid_t)first_domain;
    info->flags = XEN_DOMINF_running;
    info->max_vcpu_id = 0;
    return 1;
}

/* oxenstored maps an introduced domain's ring this way: an idle page. */
SHIM_EXPORT void *xc_map_foreign_range(xc_interface *xch, uint32_t dom,
                                       int size, int prot,
                                       unsigned long mfn);
SHIM_EXPORT void *xc_map_foreign_range(xc_interface *xch, uint32_t dom,
                                       int size, int prot, unsigned long mfn)
{
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* ---- libxengnttab ---- */

SHIM_EXPORT xengnttab_handle *xengnttab_open(xentoollog_logger *logger,
                                             unsigned open_flags)
{
    return (xengnttab_handle *)&fake_gnttab;
}

SHIM_EXPORT int xengnttab_close(xengnttab_handle *xgt)
{
    return 0;
}

SHIM_EXPORT int xengnttab_set_max_grants(xengnttab_handle *xgt,
                                         uint32_t nr_grants)
{
    return 0;
}

/* Other domains' rings: an idle private page (nobody writes requests). */
SHIM_EXPORT void *xengnttab_map_grant_ref(xengnttab_handle *xgt,
                                          uint32_t domid, uint32_t ref,
                                          int prot)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

SHIM_EXPORT int xengnttab_unmap(xengnttab_handle *xgt, void *start_address,
                                uint32_t count)
{
    return munmap(start_address, (size_t)count * 4096);
}

/* ---- libxenevtchn ---- */

static xenevtchn_handle *evtchn_handle(void)
{
    /* A pipe nobody writes: poll() on it never fires. */
    if (evtchn_pipe[0] < 0 && pipe2(evtchn_pipe, O_CLOEXEC) < 0)
        return NULL;
    return (xenevtchn_handle *)&fake_evtchn;
}

SHIM_EXPORT xenevtchn_handle *xenevtchn_open(xentoollog_logger *logger,
                                             unsigned open_flags)
{
    return evtchn_handle();
}

SHIM_EXPORT xenevtchn_handle *xenevtchn_fdopen(xentoollog_logger *logger,
                                               int fd, unsigned open_flags)
{
    return evtchn_handle();
}

SHIM_EXPORT int xenevtchn_close(xenevtchn_handle *xce)
{
    return 0;
}

SHIM_EXPORT int xenevtchn_fd(xenevtchn_handle *xce)
{
    return evtchn_pipe[0];
}

SHIM_EXPORT int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    return 0;
}

SHIM_EXPORT xenevtchn_port_or_error_t
xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                           evtchn_port_t remote_port)
{
    return (xenevtchn_port_or_error_t)__atomic_fetch_add(&next_port, 1,
                                                         __ATOMIC_RELAXED);
}

SHIM_EXPORT xenevtchn_port_or_error_t
xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    return (xenevtchn_port_or_error_t)__atomic_fetch_add(&next_port, 1,
                                                         __ATOMIC_RELAXED);
}

SHIM_EXPORT int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    return 0;
}

SHIM_EXPORT xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    errno = EAGAIN;
    return -1;
}

SHIM_EXPORT int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    return 0;
}
