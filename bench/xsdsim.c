/*
 * xsdsim: an LD_PRELOAD library that runs Debian's unmodified xenstored
 * (C) and oxenstored (OCaml) as domain 0 of the noxs simulator, so that
 * simulated guests reach them over store rings and event channels, as
 * on Xen. The simulator's libxenevtchn, libxengnttab and
 * libxenforeignmemory are preloaded next to it (tests/compat/xsd.sh
 * with XSD_SIM=1): every event channel, ring mapping and notification
 * of the daemons is the simulator's. This library adds only what the
 * simulator does not have:
 *
 * - libxenctrl's domain queries (xc_interface_open, xc_domain_getinfo,
 *   xc_domain_getinfolist: every domain asked about exists and runs)
 *   and xc_map_foreign_range (oxenstored maps an introduced ring by its
 *   frame with it), done with the simulator's foreign memory;
 * - the grant table's reserved xenstore entry (C xenstored maps a
 *   guest's ring with xengnttab_map_grant_ref(domid,
 *   GNTTAB_RESERVED_XENSTORE)): on Xen the domain builder points it at
 *   the store page; here it is a foreign map of frame XSRC_STORE_GFN,
 *   where the bench's guests keep their ring (bench/xsrclient.h); every
 *   other grant goes to the simulator;
 * - dom0's own store channel and page for the daemons' dom0 init:
 *   /proc/xen/xsd_port names a real unbound simulator port of domain 0
 *   that this library allocates (so the daemon's bind succeeds, as the
 *   dom0 kernel's xenbus end would let it), /proc/xen/xsd_kva an idle
 *   zeroed page (no dom0 kernel speaks on it);
 * - oxenstored's setrlimit(RLIMIT_NOFILE, 1M), clamped to the hard
 *   limit (root here lacks CAP_SYS_RESOURCE).
 *
 * Test and benchmark code only: never linked into anything that ships.
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
#include <xenforeignmemory.h>
#include <xengnttab.h>

#include "xsrclient.h"

#ifndef GNTTAB_RESERVED_XENSTORE
#define GNTTAB_RESERVED_XENSTORE 1
#endif

#define SHIM_EXPORT __attribute__((visibility("default")))

/* libc's side: /proc/xen, setrlimit; memfd_with. */
#include "../tests/compat/xsshim-libc.h"

static char fake_xc;
static xenforeignmemory_handle *fmem;
static xenevtchn_handle *dom0_xce; /* holds dom0's end of xsd_port */
static int dom0_port = -1;

/* Addresses of reserved-entry maps, so that xengnttab_unmap of one goes
 * to foreign memory and every other to the simulator's gnttab. */
static void **ring_maps;
static size_t nring_maps, ring_cap;

static xenforeignmemory_handle *fm(void)
{
    if (!fmem)
        fmem = xenforeignmemory_open(NULL, 0);
    return fmem;
}

/* dom0's store port: an unbound port of domain 0 for domain 0. */
static int xsd_port_fd(void)
{
    char buf[16];

    if (dom0_port < 0) {
        xenevtchn_port_or_error_t p;

        if (!dom0_xce && !(dom0_xce = xenevtchn_open(NULL, 0)))
            return -1;
        if ((p = xenevtchn_bind_unbound_port(dom0_xce, 0)) < 0)
            return -1;
        dom0_port = (int)p;
    }
    snprintf(buf, sizeof(buf), "%d", dom0_port);
    return memfd_with("xsd_port", buf, strlen(buf), strlen(buf));
}

/* The /proc/xen files dom0 init reads; -2 if path is not one of them. */
static int fake_proc_xen(const char *path)
{
    if (!path || strncmp(path, "/proc/xen/", 10) != 0)
        return -2;
    if (strcmp(path + 10, "xsd_port") == 0)
        return xsd_port_fd();
    if (strcmp(path + 10, "xsd_kva") == 0)
        return memfd_with("xsd_kva", NULL, 0, 4096);
    errno = ENOENT;
    return -1;
}


typedef void *map_grant_fn(xengnttab_handle *, uint32_t, uint32_t, int);
typedef int unmap_fn(xengnttab_handle *, void *, uint32_t);

/* ---- libxenctrl ---- */

SHIM_EXPORT xc_interface *xc_interface_open(xentoollog_logger *logger,
                                            xentoollog_logger *dombuild_logger,
                                            unsigned open_flags)
{
    (void)logger;
    (void)dombuild_logger;
    (void)open_flags;
    return (xc_interface *)&fake_xc;
}

SHIM_EXPORT int xc_interface_close(xc_interface *xch)
{
    (void)xch;
    return 0;
}

SHIM_EXPORT int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid,
                                  unsigned int max_doms, xc_dominfo_t *info)
{
    (void)xch;
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
    (void)xch;
    if (max_domains == 0)
        return 0;
    memset(info, 0, sizeof(*info));
    info->domain = (domid_t)first_domain;
    info->flags = XEN_DOMINF_running;
    return 1;
}

/* oxenstored maps an introduced domain's ring by its frame. */
SHIM_EXPORT void *xc_map_foreign_range(xc_interface *xch, uint32_t dom,
                                       int size, int prot,
                                       unsigned long mfn);
SHIM_EXPORT void *xc_map_foreign_range(xc_interface *xch, uint32_t dom,
                                       int size, int prot, unsigned long mfn)
{
    size_t pages = ((size_t)size + 4095) / 4096;
    xen_pfn_t *pfns;
    void *p;

    (void)xch;
    if (!fm() || size <= 0 || !(pfns = calloc(pages, sizeof(*pfns))))
        return NULL;
    for (size_t i = 0; i < pages; i++)
        pfns[i] = (xen_pfn_t)(mfn + i);
    p = xenforeignmemory_map(fmem, dom, prot, pages, pfns, NULL);
    free(pfns);
    return p;
}

/* ---- the grant table's reserved xenstore entry ---- */

SHIM_EXPORT void *xengnttab_map_grant_ref(xengnttab_handle *xgt,
                                          uint32_t domid, uint32_t ref,
                                          int prot)
{
    xen_pfn_t pfn = XSRC_STORE_GFN;
    void *p;

    if (ref != GNTTAB_RESERVED_XENSTORE) {
        REAL(xengnttab_map_grant_ref, map_grant_fn);
        return real_xengnttab_map_grant_ref(xgt, domid, ref, prot);
    }
    if (nring_maps == ring_cap) {
        size_t cap = ring_cap ? ring_cap * 2 : 64;
        void **n = realloc(ring_maps, cap * sizeof(*n));
        if (!n)
            return NULL;
        ring_maps = n;
        ring_cap = cap;
    }
    if (!fm())
        return NULL;
    p = xenforeignmemory_map(fmem, domid, prot, 1, &pfn, NULL);
    if (p)
        ring_maps[nring_maps++] = p;
    return p;
}

SHIM_EXPORT int xengnttab_unmap(xengnttab_handle *xgt, void *start_address,
                                uint32_t count)
{
    for (size_t i = 0; i < nring_maps; i++)
        if (ring_maps[i] == start_address) {
            ring_maps[i] = ring_maps[--nring_maps];
            return xenforeignmemory_unmap(fmem, start_address, count);
        }
    REAL(xengnttab_unmap, unmap_fn);
    return real_xengnttab_unmap(xgt, start_address, count);
}
