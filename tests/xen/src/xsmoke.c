/*
 * xsmoke: dom0 self-test of the Xen interfaces noxs relies on, through
 * Debian's real libxenevtchn / libxengnttab / libxenforeignmemory:
 *   - an interdomain event channel within dom0, notified both ways;
 *   - a page shared with xengntshr (gntalloc) and mapped with xengnttab
 *     (gntdev), data visible both ways;
 *   - a read-only grant: a writable mapping is refused, a read-only one
 *     works and a write through it faults;
 *   - xenforeignmemory opens (/dev/xen/privcmd).
 */
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xengnttab.h>

#include "evwait.h"
#include "report.h"

#define SELF 0u

static void test_evtchn(void)
{
    xenevtchn_handle *a = xenevtchn_open(NULL, 0);
    xenevtchn_handle *b = xenevtchn_open(NULL, 0);
    xenevtchn_port_or_error_t pa = -1, pb = -1;

    if (!check(a && b, "dom0.evtchn-open", "/dev/xen/evtchn"))
        return;
    pa = xenevtchn_bind_unbound_port(a, SELF);
    if (check(pa >= 0, "dom0.evtchn-unbound", "port %d", pa))
        pb = xenevtchn_bind_interdomain(b, SELF, (evtchn_port_t)pa);
    if (check(pb >= 0, "dom0.evtchn-bind-interdomain", "%d <-> %d", pa, pb)) {
        check(xenevtchn_notify(b, (evtchn_port_t)pb) == 0 &&
                  wait_port(a, (evtchn_port_t)pa, 5000, true) == 0,
              "dom0.evtchn-notify-ab", "");
        check(xenevtchn_notify(a, (evtchn_port_t)pa) == 0 &&
                  wait_port(b, (evtchn_port_t)pb, 5000, true) == 0,
              "dom0.evtchn-notify-ba", "");
        xenevtchn_unbind(b, (evtchn_port_t)pb);
    }
    if (pa >= 0)
        xenevtchn_unbind(a, (evtchn_port_t)pa);
    /* Binding a port nobody offered us must be refused. */
    errno = 0;
    check(xenevtchn_bind_interdomain(b, SELF, 4000) < 0,
          "dom0.evtchn-bad-port-refused", "");
    xenevtchn_close(a);
    xenevtchn_close(b);
}

static void test_grants(void)
{
    xengntshr_handle *shr = xengntshr_open(NULL, 0);
    xengnttab_handle *tab = xengnttab_open(NULL, 0);
    uint32_t ref = 0, roref = 0;
    char *src, *dst, *ro, *romap;

    if (!check(shr && tab, "dom0.gnt-open", "/dev/xen/gntalloc + gntdev"))
        return;
    src = xengntshr_share_pages(shr, SELF, 1, &ref, 1);
    if (!check(src != NULL, "dom0.gntshr-share", "ref %u", ref))
        return;
    dst = xengnttab_map_grant_ref(tab, SELF, ref, PROT_READ | PROT_WRITE);
    if (check(dst != NULL, "dom0.gnttab-map", "ref %u", ref)) {
        strcpy(src, "written-by-sharer");
        check(strcmp(dst, "written-by-sharer") == 0, "dom0.gnt-data-share-to-map",
              "");
        strcpy(dst + 2048, "written-by-mapper");
        check(strcmp(src + 2048, "written-by-mapper") == 0,
              "dom0.gnt-data-map-to-share", "");
        check(xengnttab_unmap(tab, dst, 1) == 0, "dom0.gnttab-unmap", "");
    }
    xengntshr_unshare(shr, src, 1);

    ro = xengntshr_share_pages(shr, SELF, 1, &roref, 0);
    if (!check(ro != NULL, "dom0.gntshr-share-ro", "ref %u", roref))
        return;
    strcpy(ro, "read-only");
    errno = 0;
    romap = xengnttab_map_grant_ref(tab, SELF, roref, PROT_READ | PROT_WRITE);
    check(romap == NULL, "dom0.ro-grant-rw-map-refused", "");
    if (romap)
        xengnttab_unmap(tab, romap, 1);
    romap = xengnttab_map_grant_ref(tab, SELF, roref, PROT_READ);
    if (check(romap != NULL && strcmp(romap, "read-only") == 0,
              "dom0.ro-grant-ro-map", "")) {
        check(write_faults(romap), "dom0.ro-grant-write-faults", "");
        xengnttab_unmap(tab, romap, 1);
    }
    xengntshr_unshare(shr, ro, 1);
    errno = 0;
    check(xengnttab_map_grant_ref(tab, SELF, roref + 4000, PROT_READ) == NULL,
          "dom0.gnt-bad-ref-refused", "ref %u", roref + 4000);
    xengntshr_close(shr);
    xengnttab_close(tab);
}

int main(void)
{
    xenforeignmemory_handle *fm;

    setvbuf(stdout, NULL, _IOLBF, 0);
    test_evtchn();
    test_grants();
    fm = xenforeignmemory_open(NULL, 0);
    check(fm != NULL, "dom0.foreignmemory-open", "/dev/xen/privcmd");
    if (fm)
        xenforeignmemory_close(fm);
    return report_failures ? 1 : 0;
}
