/*
 * libxenforeignmemory.so.1 on the noxs simulator.
 *
 * Every simulated domain has guest memory: mem_pages 4 KiB frames at the
 * end of its file (NOXS_SIM_MEM_PAGES when the domain first appears,
 * default 256). Only domain 0 may map another domain's frames, as only a
 * privileged domain may on Xen; others get EPERM. A frame outside the
 * domain's memory fails with -EINVAL in err[] (or the whole call with
 * EINVAL when err is NULL), following the contract in xenforeignmemory.h.
 * Resources (map_resource) are not simulated: EOPNOTSUPP.
 */
#pragma GCC visibility push(default)
#include <xenforeignmemory.h>
#pragma GCC visibility pop

#include "sim.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define UNRESTRICTED (-1)

struct xenforeignmemory_handle {
	uint32_t domid;
	int restrict_domid;
};

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger,
	unsigned open_flags)
{
	xenforeignmemory_handle *h;
	uint32_t domid;

	(void)logger;
	(void)open_flags;
	if (noxs_sim_env_domid(&domid) < 0)
		return NULL;
	if (!noxs_sim_domain(domid, 1))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->domid = domid;
	h->restrict_domid = UNRESTRICTED;
	return h;
}

int xenforeignmemory_close(xenforeignmemory_handle *fmem)
{
	free(fmem);
	return 0;
}

void *xenforeignmemory_map2(xenforeignmemory_handle *fmem, uint32_t dom,
	void *addr, int prot, int flags, size_t pages,
	const xen_pfn_t arr[], int err[])
{
	struct sim_domain *g;
	char *base;
	int fd, first_err = 0;

	if (fmem->domid != 0 ||
		(fmem->restrict_domid != UNRESTRICTED &&
			(uint32_t)fmem->restrict_domid != dom)) {
		errno = EPERM;
		return NULL;
	}
	if (pages == 0 || pages > (1ul << 24) || !arr) {
		errno = EINVAL;
		return NULL;
	}
	if (dom == SIM_DOMID_SELF)
		dom = fmem->domid;
	g = noxs_sim_domain(dom, 0);
	if (!g) {
		errno = ESRCH;
		return NULL;
	}
	fd = noxs_sim_domain_fd(dom);
	if (fd < 0)
		return NULL;
	base = mmap(addr, pages * SIM_PAGE_SIZE, PROT_NONE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (flags & MAP_FIXED),
		-1, 0);
	if (base == MAP_FAILED) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	uint32_t mem_pages = g->hdr->mem_pages;
	for (size_t i = 0; i < pages;) {
		size_t run = 1;
		int e = 0;
		if (arr[i] >= mem_pages) {
			e = EINVAL;
		} else {
			while (i + run < pages && arr[i + run] == arr[i] + run &&
				arr[i + run] < mem_pages)
				run++;
			if (mmap(base + i * SIM_PAGE_SIZE, run * SIM_PAGE_SIZE,
				    prot, MAP_SHARED | MAP_FIXED, fd,
				    (off_t)(SIM_MEM_OFF +
					    (uint64_t)arr[i] * SIM_PAGE_SIZE)) ==
				MAP_FAILED)
				e = errno;
		}
		if (e && !first_err)
			first_err = e;
		if (err)
			for (size_t j = i; j < i + run; j++)
				err[j] = -e;
		i += run;
	}
	close(fd);
	if (first_err && !err) {
		munmap(base, pages * SIM_PAGE_SIZE);
		errno = first_err;
		return NULL;
	}
	return base;
}

void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom,
	int prot, size_t pages, const xen_pfn_t arr[], int err[])
{
	return xenforeignmemory_map2(fmem, dom, NULL, prot, 0, pages, arr,
		err);
}

int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr,
	size_t pages)
{
	(void)fmem;
	return munmap(addr, pages * SIM_PAGE_SIZE);
}

int xenforeignmemory_restrict(xenforeignmemory_handle *fmem, domid_t domid)
{
	/* privcmd: a handle is restricted once, to one domain. */
	if (fmem->restrict_domid != UNRESTRICTED &&
		(uint32_t)fmem->restrict_domid != domid) {
		errno = EINVAL;
		return -1;
	}
	fmem->restrict_domid = domid;
	return 0;
}

xenforeignmemory_resource_handle *xenforeignmemory_map_resource(
	xenforeignmemory_handle *fmem, domid_t domid, unsigned int type,
	unsigned int id, unsigned long frame, unsigned long nr_frames,
	void **paddr, int prot, int flags)
{
	(void)fmem, (void)domid, (void)type, (void)id, (void)frame;
	(void)nr_frames, (void)paddr, (void)prot, (void)flags;
	errno = EOPNOTSUPP;
	return NULL;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem,
	xenforeignmemory_resource_handle *fres)
{
	(void)fmem;
	if (!fres)
		return 0;
	errno = EINVAL;
	return -1;
}

int xenforeignmemory_resource_size(xenforeignmemory_handle *fmem,
	domid_t domid, unsigned int type, unsigned int id, size_t *size)
{
	(void)fmem, (void)domid, (void)type, (void)id, (void)size;
	errno = EOPNOTSUPP;
	return -1;
}
