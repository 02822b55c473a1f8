/*
 * libxenctrl.so.4.17 on the noxs simulator: only what noxs uses of it,
 * the domain list (xc_domain_getinfolist) behind an xc_interface.
 *
 * A simulated domain exists from the first *_open as it until it is
 * destroyed (noxs-simctl destroy) and everything it held is released;
 * meanwhile it is listed with XEN_DOMINF_dying, as Xen lists a domain
 * that is being torn down. Listing settles dying domains (dead owners
 * reaped, dead when nothing is left), so the list is never staler than
 * the tables. Like a domctl, the list is for domain 0 only (EPERM).
 * The handle is the incarnation (bumped when a dead domid comes back),
 * so a domid reused between two lists shows a different handle.
 * noxs-simctl shutdown lists a domain as shut down with its reason
 * (XEN_DOMINF_shutdown and the reason bits) until it is destroyed.
 */
#pragma GCC visibility push(default)
#include <xenctrl.h>
#pragma GCC visibility pop

#include "sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct xc_interface_core {
	uint32_t domid;
};

xc_interface *xc_interface_open(xentoollog_logger *logger,
	xentoollog_logger *dombuild_logger, unsigned open_flags)
{
	xc_interface *xch;
	uint32_t domid;

	(void)logger;
	(void)dombuild_logger;
	(void)open_flags;
	if (noxs_sim_env_domid(&domid) < 0)
		return NULL;
	if (!noxs_sim_domain(domid, 1))
		return NULL;
	if ((xch = calloc(1, sizeof(*xch))) == NULL)
		return NULL;
	xch->domid = domid;
	return xch;
}

int xc_interface_close(xc_interface *xch)
{
	free(xch);
	return 0;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain,
	unsigned int max_domains, xc_domaininfo_t *info)
{
	uint32_t limit;
	unsigned int n = 0;

	if (!xch || (max_domains && !info)) {
		errno = EINVAL;
		return -1;
	}
	if (xch->domid != 0) {
		errno = EPERM;
		return -1;
	}
	limit = noxs_sim_domain_limit();
	for (uint32_t d = first_domain; d < limit && n < max_domains; d++) {
		struct sim_domain *dom = noxs_sim_domain(d, 0);
		uint32_t life, inc, sd;

		if (!dom)
			continue;
		life = noxs_sim_domain_settle(dom);
		if (life == SIM_LIFE_DEAD)
			continue;
		inc = atomic_load(&dom->hdr->incarnation);
		memset(&info[n], 0, sizeof(info[n]));
		info[n].domain = (domid_t)d;
		info[n].flags = life == SIM_LIFE_DYING ?
			XEN_DOMINF_dying :
			XEN_DOMINF_running;
		if ((sd = atomic_load(&dom->hdr->shutdown)) != 0)
			info[n].flags = (info[n].flags & ~XEN_DOMINF_running) |
				XEN_DOMINF_shutdown |
				((sd - 1) & XEN_DOMINF_shutdownmask) << XEN_DOMINF_shutdownshift;
		info[n].tot_pages = dom->hdr->mem_pages;
		info[n].max_pages = dom->hdr->mem_pages;
		info[n].nr_online_vcpus = 1;
		memcpy(info[n].handle, "noxs-sim", 8);
		memcpy(info[n].handle + 8, &inc, sizeof(inc));
		memcpy(info[n].handle + 12, &d, sizeof(d));
		n++;
	}
	return (int)n;
}
