/*
 * noxs-probe: what a guest must not be able to do with noxs on real Xen.
 *
 *   noxs-probe guest     (in the PV guest; bootstrap from /proc/cmdline)
 *   noxs-probe page      print the guest's device page in one line: grant
 *                        ref, header (owner, notify port, generation) and
 *                        entries, as mapped read-only from the grant
 *
 *   - its device page (granted by noxsd's keeper in dom0) cannot be
 *     mapped writable; a read-only mapping works, shows a valid device
 *     page header for this domain, and a write through it faults;
 *   - noxs_frontend_open() refuses a bootstrap with a wrong grant ref and
 *     one with a wrong port, with an error (not a crash or a hang).
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xengnttab.h>

#include <noxs/noxs.h>
#include <noxs/page.h>

#include "report.h"

static void refused(const char *name, const struct noxs_boot *b)
{
    noxs_frontend *f;

    errno = 0;
    f = noxs_frontend_open(b);
    check(f == NULL && errno != 0, name, "noxs=%u:%u:%u", b->owner_domid,
          b->gref, b->port);
    if (f)
        noxs_frontend_close(f);
}

/* One line that changes if anything the guest sees on its page does. */
static int page_line(void)
{
    static struct noxs_devpage copy;
    struct noxs_boot boot;
    xengnttab_handle *tab;
    unsigned int i;
    void *p;

    if (noxs_boot_find(&boot) < 0 || (tab = xengnttab_open(NULL, 0)) == NULL)
        return 1;
    p = xengnttab_map_grant_ref(tab, boot.owner_domid, boot.gref, PROT_READ);
    if (p == NULL || noxs_devpage_snapshot(p, &copy, NOXS_DOMID_ANY_PAGE) < 0) {
        printf("page unreadable (ref %u)\n", boot.gref);
        return 1;
    }
    printf("page ref %u owner %u port %u generation %u entries %u:", boot.gref,
           copy.hdr.owner_domid, copy.hdr.notify_port, copy.hdr.generation,
           copy.hdr.entry_count);
    for (i = 0; i < copy.hdr.entry_count; i++)
        printf(" %u/%u/%u/%u", copy.entries[i].type, copy.entries[i].devid,
               copy.entries[i].control_gref, copy.entries[i].backend_port);
    printf("\n");
    xengnttab_unmap(tab, p, 1);
    xengnttab_close(tab);
    return 0;
}

int main(int argc, char **argv)
{
    struct noxs_boot boot, bad;
    xengnttab_handle *tab;
    volatile struct noxs_devpage_header *h;
    void *p;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "page") == 0)
        return page_line();
    if (argc != 2 || strcmp(argv[1], "guest") != 0) {
        fprintf(stderr, "usage: %s guest | page\n", argv[0]);
        return 2;
    }
    if (!check(noxs_boot_find(&boot) == 0, "guest.noxs-bootstrap", ""))
        return 1;
    note("noxs=%u:%u:%u", boot.owner_domid, boot.gref, boot.port);

    tab = xengnttab_open(NULL, 0);
    if (!check(tab != NULL, "guest.noxs-gntdev-open", ""))
        return 1;
    errno = 0;
    p = xengnttab_map_grant_ref(tab, boot.owner_domid, boot.gref,
                                PROT_READ | PROT_WRITE);
    check(p == NULL, "guest.noxs-devpage-rw-map-refused", "ref %u", boot.gref);
    if (p)
        xengnttab_unmap(tab, p, 1);
    p = xengnttab_map_grant_ref(tab, boot.owner_domid, boot.gref, PROT_READ);
    if (check(p != NULL, "guest.noxs-devpage-ro-map", "ref %u", boot.gref)) {
        h = p;
        check(h->magic == NOXS_DEVPAGE_MAGIC &&
                  h->version == NOXS_ABI_VERSION &&
                  h->owner_domid == boot.owner_domid,
              "guest.noxs-devpage-header",
              "magic %#x version %u domid %u owner %u", (unsigned)h->magic,
              (unsigned)h->version, (unsigned)h->domid,
              (unsigned)h->owner_domid);
        check(write_faults(p), "guest.noxs-devpage-write-faults",
              "child writing the read-only device page");
        check(h->magic == NOXS_DEVPAGE_MAGIC, "guest.noxs-devpage-intact", "");
        xengnttab_unmap(tab, p, 1);
    }
    xengnttab_close(tab);

    bad = boot;
    bad.gref = boot.gref + 1000;
    refused("guest.noxs-bad-gref-refused", &bad);
    bad = boot;
    bad.port = boot.port + 1000;
    refused("guest.noxs-bad-port-refused", &bad);
    return report_failures != 0;
}
