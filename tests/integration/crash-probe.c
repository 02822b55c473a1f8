/*
 * crash-probe: look at a guest's pages the way the guest sees them, while
 * noxsd may be down (tests/integration/crash-noxsd.sh). Run as the guest
 * (NOXS_SIM_DOMID=DOMID):
 *
 *   crash-probe DOMID noxs=O:G:P CTRLGREF
 *
 * maps the guest's device page read-only and checks that it is a valid
 * page for DOMID listing sysctl device 0 with control page CTRLGREF, then
 * maps that control page and checks that both halves say Connected.
 * Exit 0 if so; 1 with a message otherwise. It binds no event channel,
 * so it does not disturb the running frontend.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xengnttab.h>

#include <noxs/noxs.h>
#include <noxs/page.h>

int main(int argc, char **argv)
{
    static struct noxs_devpage dp;
    static struct noxs_ctrl_half half[2];
    struct noxs_boot boot;
    xengnttab_handle *h;
    uint16_t domid;
    uint32_t ctrl;
    void *p;
    int found = 0;

    if (argc != 4 || noxs_boot_parse(argv[2], &boot) < 0) {
        fprintf(stderr, "usage: crash-probe DOMID noxs=O:G:P CTRLGREF\n");
        return 1;
    }
    domid = (uint16_t)atoi(argv[1]);
    ctrl = (uint32_t)strtoul(argv[3], NULL, 10);
    h = xengnttab_open(NULL, 0);
    if (h == NULL) {
        perror("xengnttab_open");
        return 1;
    }
    p = xengnttab_map_grant_ref(h, boot.owner_domid, boot.gref, PROT_READ);
    if (p == NULL) {
        fprintf(stderr, "domain %u: device page gone: %s\n", domid,
                strerror(errno));
        return 1;
    }
    if (noxs_devpage_snapshot(p, &dp, domid) < 0) {
        fprintf(stderr, "domain %u: device page unreadable: %s\n", domid,
                strerror(errno));
        return 1;
    }
    for (uint32_t i = 0; i < dp.hdr.entry_count; i++)
        if ((dp.entries[i].flags & NOXS_DEVPAGE_ENTRY_VALID) &&
            dp.entries[i].type == NOXS_DEV_SYSCTL && dp.entries[i].devid == 0 &&
            dp.entries[i].control_gref == ctrl)
            found = 1;
    if (!found) {
        fprintf(stderr, "domain %u: sysctl 0 (gref %u) not in the page\n",
                domid, ctrl);
        return 1;
    }
    xengnttab_unmap(h, p, 1);
    p = xengnttab_map_grant_ref(h, 0, ctrl, PROT_READ);
    if (p == NULL) {
        fprintf(stderr, "domain %u: control page gone: %s\n", domid,
                strerror(errno));
        return 1;
    }
    for (unsigned int w = 0; w < 2; w++) {
        if (noxs_ctrl_half_snapshot(p, w, &half[w]) < 0) {
            fprintf(stderr, "domain %u: %s half unreadable: %s\n", domid,
                    w ? "frontend" : "backend", strerror(errno));
            return 1;
        }
        if (half[w].state != NOXS_STATE_CONNECTED) {
            fprintf(stderr, "domain %u: %s half is %s\n", domid,
                    w ? "frontend" : "backend",
                    noxs_state_name(half[w].state));
            return 1;
        }
    }
    xengnttab_unmap(h, p, 1);
    xengnttab_close(h);
    return 0;
}
