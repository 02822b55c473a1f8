/*
 * libxengnttab.so.1 (xengnttab_* and xengntshr_*) on the noxs simulator.
 *
 * The page behind grant ref N of domain D is page N of D's grant-page area
 * in D's file; the granter and every grantee map that same file page
 * MAP_SHARED, so data written by one side is seen by the other with no
 * copy. A handle owns no fd (one is made only if *_fd() is called) and
 * keeps a list of the regions it mapped, with every live page's address
 * in a hash table: one process may share a handle among thousands of
 * devices (noxs-blk-back does), and an unmap must not walk them all.
 * Grant and map records live in the shared tables, owned by the process,
 * so a dead process's grants and mappings are released by its guardian
 * (see core_guard.c).
 *
 * Errors follow Linux gntdev/gntalloc on Xen: a map that Xen refuses (ref
 * not granted, granted to another domain, read-only grant mapped
 * writable, unknown domain) fails with EINVAL; going over
 * xengnttab_set_max_grants() fails with ENOMEM; a full grant table with
 * ENOSPC.
 */
#pragma GCC visibility push(default)
#include <xengnttab.h>
#pragma GCC visibility pop

#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

struct region {
	struct region *next, *prev;
	char *addr;
	uint32_t count;
	uint32_t nlive;
	uint32_t *idx; /* gntshr: grant ref; gnttab: map record index */
	uint8_t *live;
};

struct xengntdev_handle {
	int shr;
	uint32_t domid;
	struct sim_domain *dom;
	uint32_t max_grants; /* 0: unlimited */
	uint32_t nmapped;
	int fd; /* made on demand by xengnttab_fd()/xengntshr_fd() */
	pthread_mutex_t lock;
	struct region *regions;
	/* Live pages by address: buckets of page_ent chains. */
	struct page_ent **pages;
	size_t npages_slots, npages;
};

struct page_ent {
	struct page_ent *next;
	char *addr;
	struct region *r;
	uint32_t i; /* page index in r */
};

static size_t page_slot(const struct xengntdev_handle *h, const char *addr)
{
	uint64_t k = (uint64_t)(uintptr_t)addr / SIM_PAGE_SIZE;

	return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 32) &
		(h->npages_slots - 1);
}

static struct page_ent **page_link(struct xengntdev_handle *h,
	const char *addr)
{
	struct page_ent **l;

	if (!h->npages_slots)
		return NULL;
	for (l = &h->pages[page_slot(h, addr)]; *l; l = &(*l)->next)
		if ((*l)->addr == addr)
			return l;
	return NULL;
}

/* Twice the slots when the table is full (a power of two); -1 if no
 * memory, the table as it was. */
static int pages_grow(struct xengntdev_handle *h)
{
	size_t n = h->npages_slots ? h->npages_slots * 2 : 64, old;
	struct page_ent **t = calloc(n, sizeof(*t)), **ot = h->pages;

	if (!t)
		return -1;
	old = h->npages_slots;
	h->pages = t;
	h->npages_slots = n;
	for (size_t b = 0; b < old; b++)
		while (ot[b]) {
			struct page_ent *e = ot[b];
			size_t k = page_slot(h, e->addr);
			ot[b] = e->next;
			e->next = t[k];
			t[k] = e;
		}
	free(ot);
	return 0;
}

/* Region r (its addr set) into the list and its pages into the table;
 * -1 (ENOMEM) with nothing added. */
static int region_link(struct xengntdev_handle *h, struct region *r)
{
	uint32_t i;

	while (h->npages + r->count > h->npages_slots)
		if (pages_grow(h) < 0) {
			errno = ENOMEM;
			return -1;
		}
	for (i = 0; i < r->count; i++) {
		struct page_ent *e = malloc(sizeof(*e));
		if (!e)
			break;
		e->addr = r->addr + (size_t)i * SIM_PAGE_SIZE;
		e->r = r;
		e->i = i;
		size_t k = page_slot(h, e->addr);
		e->next = h->pages[k];
		h->pages[k] = e;
		h->npages++;
	}
	if (i < r->count) {
		while (i-- > 0) {
			struct page_ent **l =
				page_link(h, r->addr + (size_t)i * SIM_PAGE_SIZE);
			struct page_ent *e = *l;
			*l = e->next;
			free(e);
			h->npages--;
		}
		errno = ENOMEM;
		return -1;
	}
	r->prev = NULL;
	r->next = h->regions;
	if (h->regions)
		h->regions->prev = r;
	h->regions = r;
	return 0;
}

/* Page i of r out of the table (if it is there). */
static void page_forget(struct xengntdev_handle *h, struct region *r,
	uint32_t i)
{
	struct page_ent **l = page_link(h, r->addr + (size_t)i * SIM_PAGE_SIZE);

	if (l && (*l)->r == r) {
		struct page_ent *e = *l;
		*l = e->next;
		free(e);
		h->npages--;
	}
}

/* r out of the list (its pages are out of the table already). */
static void region_unlink(struct xengntdev_handle *h, struct region *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		h->regions = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

static struct xengntdev_handle *handle_open(int shr)
{
	struct xengntdev_handle *h;
	uint32_t domid;

	if (noxs_sim_env_domid(&domid) < 0)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->shr = shr;
	h->domid = domid;
	h->fd = -1;
	h->dom = noxs_sim_domain(domid, 1);
	if (!h->dom) {
		int e = errno;
		free(h);
		errno = e;
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

static struct region *region_new(char *addr, uint32_t count)
{
	struct region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->idx = calloc(count, sizeof(*r->idx));
	r->live = calloc(count, 1);
	if (!r->idx || !r->live) {
		free(r->idx);
		free(r->live);
		free(r);
		return NULL;
	}
	r->addr = addr;
	r->count = count;
	return r;
}

static void region_free(struct region *r)
{
	free(r->idx);
	free(r->live);
	free(r);
}

/* The region holding [addr, addr + count pages), and the index of its
 * first page; h->lock held. A live page is found in the table; a page
 * unmapped already (which, as with munmap(2), may be unmapped again) by
 * walking the regions, which only that case pays for. */
static struct region *region_find(struct xengntdev_handle *h, void *addr,
	uint32_t count, uint32_t *first)
{
	struct page_ent **l;
	char *a = addr;

	if (count == 0 || (uintptr_t)a % SIM_PAGE_SIZE)
		return NULL;
	if ((l = page_link(h, a))) {
		if ((*l)->i + (uint64_t)count > (*l)->r->count)
			return NULL;
		*first = (*l)->i;
		return (*l)->r;
	}
	for (struct region *r = h->regions; r; r = r->next) {
		if (a < r->addr || a >= r->addr + (size_t)r->count * SIM_PAGE_SIZE)
			continue;
		size_t off = (size_t)(a - r->addr);
		if (off / SIM_PAGE_SIZE + count > r->count)
			return NULL;
		*first = (uint32_t)(off / SIM_PAGE_SIZE);
		return r;
	}
	return NULL;
}

/*
 * Map pages of domain files into one contiguous region: page i comes from
 * domain doms[i] at file offset offs[i]. Runs of consecutive pages of one
 * file take one mmap each. own_fd (or -1) is an open file of domain
 * own_dom that the caller already has (a share maps its own domain's
 * file: no second open). Populated at once, as Linux's gntdev and
 * gntalloc map grant pages when mmap() returns: without it each page's
 * first touch took a page fault, which Xen's drivers do not have (and
 * which a virtual machine's guest pays dearly for).
 */
static void *map_pages(uint32_t count, const uint32_t *doms,
	const uint64_t *offs, int prot, int own_fd, uint32_t own_dom)
{
	size_t len = (size_t)count * SIM_PAGE_SIZE;
	char *base;
	int fd = -1;
	uint32_t fd_dom = SIM_NONE;

	if (count == 1) {
		fd = own_fd >= 0 && doms[0] == own_dom ?
			own_fd :
			noxs_sim_pages_fd_get(doms[0]);
		if (fd < 0)
			return NULL;
		base = mmap(NULL, len, prot, MAP_SHARED | MAP_POPULATE, fd,
			(off_t)offs[0]);
		int e = errno;
		if (fd != own_fd)
			noxs_sim_pages_fd_put(doms[0], fd);
		errno = e;
		return base == MAP_FAILED ? NULL : base;
	}
	base = mmap(NULL, len, PROT_NONE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	for (uint32_t i = 0; i < count;) {
		uint32_t run = 1;
		while (i + run < count && doms[i + run] == doms[i] &&
			offs[i + run] == offs[i] + (uint64_t)run * SIM_PAGE_SIZE)
			run++;
		if (fd_dom != doms[i]) {
			if (fd >= 0 && fd != own_fd)
				noxs_sim_pages_fd_put(fd_dom, fd);
			fd = own_fd >= 0 && doms[i] == own_dom ?
				own_fd :
				noxs_sim_pages_fd_get(doms[i]);
			fd_dom = doms[i];
			if (fd < 0)
				goto fail;
		}
		if (mmap(base + (size_t)i * SIM_PAGE_SIZE,
			    (size_t)run * SIM_PAGE_SIZE, prot,
			    MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd,
			    (off_t)offs[i]) == MAP_FAILED)
			goto fail;
		i += run;
	}
	if (fd >= 0 && fd != own_fd)
		noxs_sim_pages_fd_put(fd_dom, fd);
	return base;
fail : {
	int e = errno;
	if (fd >= 0 && fd != own_fd)
		noxs_sim_pages_fd_put(fd_dom, fd);
	munmap(base, len);
	errno = e;
	return NULL;
}
}

/* ---- gnttab: the grantee side ---- */

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger,
	unsigned open_flags)
{
	(void)logger;
	(void)open_flags;
	return handle_open(0);
}

static void region_release(struct xengntdev_handle *h, struct region *r,
	uint32_t first, uint32_t count)
{
	for (uint32_t i = first; i < first + count; i++) {
		if (!r->live[i])
			continue;
		if (h->shr) {
			noxs_sim_grant_end(h->dom, r->idx[i], -1);
		} else {
			noxs_sim_map_release(h->dom, r->idx[i]);
			h->nmapped--;
		}
		r->live[i] = 0;
		r->nlive--;
	}
}

/*
 * Unmap the live pages among count pages of r from first, and release
 * their grants, run by run of live pages (a page unmapped before may be
 * somebody else's mapping by now): the release first where gntalloc
 * does it first (it clears the byte and notifies, then the page goes),
 * else our mapping first (gntdev: then the grant is let go).
 */
static void unmap_runs(struct xengntdev_handle *h, struct region *r,
	uint32_t first, uint32_t count, int release_first)
{
	uint32_t i = first, end = first + count;

	while (i < end) {
		uint32_t j;
		if (!r->live[i]) {
			i++;
			continue;
		}
		for (j = i; j < end && r->live[j]; j++)
			;
		if (release_first)
			region_release(h, r, i, j - i);
		munmap(r->addr + (size_t)i * SIM_PAGE_SIZE,
			(size_t)(j - i) * SIM_PAGE_SIZE);
		if (!release_first)
			region_release(h, r, i, j - i);
		i = j;
	}
}

static int unmap_common(struct xengntdev_handle *h, void *addr,
	uint32_t count)
{
	struct region *r;
	uint32_t first;

	pthread_mutex_lock(&h->lock);
	r = region_find(h, addr, count, &first);
	if (!r) {
		pthread_mutex_unlock(&h->lock);
		errno = EINVAL;
		return -1;
	}
	for (uint32_t i = first; i < first + count; i++)
		if (r->live[i])
			page_forget(h, r, i);
	unmap_runs(h, r, first, count, h->shr);
	if (r->nlive == 0) {
		region_unlink(h, r);
		region_free(r);
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int close_common(struct xengntdev_handle *h)
{
	if (!h)
		return 0;
	pthread_mutex_lock(&h->lock);
	while (h->regions) {
		struct region *r = h->regions;
		h->regions = r->next;
		unmap_runs(h, r, 0, r->count, 0);
		region_free(r);
	}
	for (size_t b = 0; b < h->npages_slots; b++)
		while (h->pages[b]) {
			struct page_ent *e = h->pages[b];
			h->pages[b] = e->next;
			free(e);
		}
	free(h->pages);
	h->pages = NULL;
	h->npages_slots = h->npages = 0;
	pthread_mutex_unlock(&h->lock);
	if (h->fd >= 0)
		close(h->fd);
	pthread_mutex_destroy(&h->lock);
	free(h);
	return 0;
}

int xengnttab_close(xengnttab_handle *xgt)
{
	return close_common(xgt);
}

static int lazy_fd(struct xengntdev_handle *h)
{
	pthread_mutex_lock(&h->lock);
	if (h->fd < 0)
		h->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	pthread_mutex_unlock(&h->lock);
	return h->fd;
}

int xengnttab_fd(xengnttab_handle *xgt)
{
	return lazy_fd(xgt);
}

/* Take a map record for (granter, ref); returns its index or -1/errno. */
static int64_t grant_acquire(struct xengntdev_handle *h, uint32_t granter,
	uint32_t ref, int writable)
{
	struct sim_domain *g = noxs_sim_domain(granter, 0);
	struct sim_domain *m = h->dom;
	int64_t idx = -1;
	int err = EINVAL;

	if (!g || ref < SIM_FIRST_GRANT || ref >= SIM_NR_GRANTS) {
		errno = EINVAL;
		return -1;
	}
	struct sim_grant *gr = &g->grants[ref];
	noxs_sim_lock(m, g);
	if (atomic_load(&gr->state) != SIM_GRANT_ACTIVE ||
		atomic_load(&gr->grantee) != h->domid ||
		(writable && atomic_load(&gr->readonly)))
		goto out;
	struct sim_domain_hdr *hdr = m->hdr;
	for (uint32_t i = atomic_load(&hdr->map_hint); i < SIM_NR_MAPS; i++) {
		struct sim_map *rec = &m->maps[i];
		if (atomic_load(&rec->state) != SIM_MAP_FREE)
			continue;
		atomic_store(&rec->granter, granter);
		atomic_store(&rec->ref, ref);
		atomic_store(&rec->notify_offset, SIM_NONE);
		atomic_store(&rec->notify_port, SIM_NONE);
		atomic_store(&rec->readonly, writable ? 0 : 1);
		noxs_sim_owner_set(&rec->owner);
		atomic_store(&rec->state, SIM_MAP_ACTIVE);
		atomic_store(&gr->map_count, atomic_load(&gr->map_count) + 1);
		atomic_store(&hdr->map_hint, i + 1);
		if (atomic_load(&hdr->map_high) < i + 1)
			atomic_store(&hdr->map_high, i + 1);
		idx = i;
		break;
	}
	if (idx < 0)
		err = ENOMEM;
out:
	noxs_sim_unlock(m, g);
	if (idx < 0)
		errno = err;
	return idx;
}

static void *map_refs(struct xengntdev_handle *h, uint32_t count,
	const uint32_t *domids, uint32_t single_domid, const uint32_t *refs,
	int prot, uint32_t notify_offset, uint32_t notify_port)
{
	int writable = (prot & PROT_WRITE) != 0;
	struct region *r = NULL;
	uint32_t *doms = NULL;
	uint64_t *offs = NULL;
	uint32_t done = 0;
	void *addr = NULL;
	int e;

	if (count == 0 || count > SIM_NR_MAPS || !refs) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&h->lock);
	if (h->max_grants && h->nmapped + count > h->max_grants) {
		pthread_mutex_unlock(&h->lock);
		errno = ENOMEM;
		return NULL;
	}
	noxs_sim_guard_domain(h->domid);
	r = region_new(NULL, count);
	doms = calloc(count, sizeof(*doms));
	offs = calloc(count, sizeof(*offs));
	if (!r || !doms || !offs) {
		errno = ENOMEM;
		goto fail;
	}
	for (; done < count; done++) {
		uint32_t d = domids ? domids[done] : single_domid;
		int64_t idx = grant_acquire(h, d, refs[done], writable);
		if (idx < 0)
			goto fail;
		r->idx[done] = (uint32_t)idx;
		r->live[done] = 1;
		r->nlive++;
		h->nmapped++;
		doms[done] = d;
		offs[done] = SIM_PAGES_OFF + (uint64_t)refs[done] * SIM_PAGE_SIZE;
	}
	if (notify_offset != SIM_NONE || notify_port != SIM_NONE) {
		struct sim_map *rec = &h->dom->maps[r->idx[0]];
		if (notify_offset != SIM_NONE &&
			(notify_offset >= SIM_PAGE_SIZE || !writable)) {
			errno = EINVAL;
			goto fail;
		}
		if (notify_port != SIM_NONE) {
			uint32_t st = notify_port && notify_port < SIM_NR_PORTS ?
				atomic_load(&h->dom->ports[notify_port].state) :
				SIM_PORT_FREE;
			if (st != SIM_PORT_UNBOUND &&
				st != SIM_PORT_INTERDOMAIN) {
				errno = EINVAL;
				goto fail;
			}
		}
		atomic_store(&rec->notify_offset, notify_offset);
		atomic_store(&rec->notify_port, notify_port);
	}
	addr = map_pages(count, doms, offs,
		prot & (PROT_READ | PROT_WRITE) ? prot & (PROT_READ | PROT_WRITE) :
						  PROT_READ,
		-1, SIM_NONE);
	if (!addr)
		goto fail;
	r->addr = addr;
	if (region_link(h, r) < 0) {
		munmap(addr, (size_t)count * SIM_PAGE_SIZE);
		goto fail;
	}
	pthread_mutex_unlock(&h->lock);
	free(doms);
	free(offs);
	return addr;
fail:
	e = errno;
	if (r) {
		/* Undo without firing a notify set up above. */
		for (uint32_t i = 0; i < count; i++)
			if (r->live[i]) {
				struct sim_map *rec = &h->dom->maps[r->idx[i]];
				atomic_store(&rec->notify_offset, SIM_NONE);
				atomic_store(&rec->notify_port, SIM_NONE);
			}
		region_release(h, r, 0, count);
		region_free(r);
	}
	pthread_mutex_unlock(&h->lock);
	free(doms);
	free(offs);
	errno = e;
	return NULL;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid,
	uint32_t ref, int prot)
{
	return map_refs(xgt, 1, NULL, domid, &ref, prot, SIM_NONE, SIM_NONE);
}

void *xengnttab_map_grant_refs(xengnttab_handle *xgt, uint32_t count,
	uint32_t *domids, uint32_t *refs, int prot)
{
	if (!domids) {
		errno = EINVAL;
		return NULL;
	}
	return map_refs(xgt, count, domids, 0, refs, prot, SIM_NONE, SIM_NONE);
}

void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count,
	uint32_t domid, uint32_t *refs, int prot)
{
	return map_refs(xgt, count, NULL, domid, refs, prot, SIM_NONE,
		SIM_NONE);
}

void *xengnttab_map_grant_ref_notify(xengnttab_handle *xgt, uint32_t domid,
	uint32_t ref, int prot, uint32_t notify_offset,
	evtchn_port_t notify_port)
{
	return map_refs(xgt, 1, NULL, domid, &ref, prot, notify_offset,
		notify_port);
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address,
	uint32_t count)
{
	return unmap_common(xgt, start_address, count);
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
	pthread_mutex_lock(&xgt->lock);
	xgt->max_grants = nr_grants;
	pthread_mutex_unlock(&xgt->lock);
	return 0;
}

/* Check one grant-ref side of a copy; returns a GNTST_* status. */
static int copy_check(struct xengntdev_handle *h, struct sim_domain *g,
	uint32_t ref, int write)
{
	struct sim_grant *gr;

	if (!g)
		return GNTST_bad_domain;
	if (ref < SIM_FIRST_GRANT || ref >= SIM_NR_GRANTS)
		return GNTST_bad_gntref;
	gr = &g->grants[ref];
	if (atomic_load(&gr->state) != SIM_GRANT_ACTIVE)
		return GNTST_bad_gntref;
	if (atomic_load(&gr->grantee) != h->domid ||
		(write && atomic_load(&gr->readonly)))
		return GNTST_permission_denied;
	return GNTST_okay;
}

static int copy_side(struct xengntdev_handle *h, uint32_t domid, uint32_t ref,
	uint16_t offset, void *buf, uint16_t len, int write)
{
	struct sim_domain *g = noxs_sim_domain(domid, 0);
	int st, fd;

	if (!g)
		return GNTST_bad_domain;
	fd = noxs_sim_pages_fd_get(domid);
	if (fd < 0)
		return GNTST_general_error;
	noxs_sim_lock(g, NULL);
	st = copy_check(h, g, ref, write);
	if (st == GNTST_okay) {
		off_t off = (off_t)(SIM_PAGES_OFF +
			(uint64_t)ref * SIM_PAGE_SIZE + offset);
		ssize_t n = write ? pwrite(fd, buf, len, off) :
				    pread(fd, buf, len, off);
		if (n != (ssize_t)len)
			st = GNTST_general_error;
	}
	noxs_sim_unlock(g, NULL);
	noxs_sim_pages_fd_put(domid, fd);
	return st;
}

int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count,
	xengnttab_grant_copy_segment_t *segs)
{
	char buf[SIM_PAGE_SIZE];

	/* gntdev rejects the whole batch for malformed segments. */
	for (uint32_t i = 0; i < count; i++) {
		xengnttab_grant_copy_segment_t *s = &segs[i];
		if (!(s->flags & (GNTCOPY_source_gref | GNTCOPY_dest_gref)) ||
			s->len > SIM_PAGE_SIZE ||
			((s->flags & GNTCOPY_source_gref) &&
				s->source.foreign.offset + s->len > SIM_PAGE_SIZE) ||
			((s->flags & GNTCOPY_dest_gref) &&
				s->dest.foreign.offset + s->len > SIM_PAGE_SIZE)) {
			errno = EINVAL;
			return -1;
		}
	}
	for (uint32_t i = 0; i < count; i++) {
		xengnttab_grant_copy_segment_t *s = &segs[i];
		int st;
		if (s->flags & GNTCOPY_source_gref)
			st = copy_side(xgt, s->source.foreign.domid,
				s->source.foreign.ref, s->source.foreign.offset,
				buf, s->len, 0);
		else {
			memcpy(buf, s->source.virt, s->len);
			st = GNTST_okay;
		}
		if (st == GNTST_okay) {
			if (s->flags & GNTCOPY_dest_gref)
				st = copy_side(xgt, s->dest.foreign.domid,
					s->dest.foreign.ref,
					s->dest.foreign.offset, buf, s->len, 1);
			else
				memcpy(s->dest.virt, buf, s->len);
		}
		s->status = (int16_t)st;
	}
	return 0;
}

int xengnttab_dmabuf_exp_from_refs(xengnttab_handle *xgt, uint32_t domid,
	uint32_t flags, uint32_t count, const uint32_t *refs, uint32_t *fd)
{
	(void)xgt, (void)domid, (void)flags, (void)count, (void)refs, (void)fd;
	errno = EOPNOTSUPP;
	return -1;
}

int xengnttab_dmabuf_exp_wait_released(xengnttab_handle *xgt, uint32_t fd,
	uint32_t wait_to_ms)
{
	(void)xgt, (void)fd, (void)wait_to_ms;
	errno = EOPNOTSUPP;
	return -1;
}

int xengnttab_dmabuf_imp_to_refs(xengnttab_handle *xgt, uint32_t domid,
	uint32_t fd, uint32_t count, uint32_t *refs)
{
	(void)xgt, (void)domid, (void)fd, (void)count, (void)refs;
	errno = EOPNOTSUPP;
	return -1;
}

int xengnttab_dmabuf_imp_release(xengnttab_handle *xgt, uint32_t fd)
{
	(void)xgt, (void)fd;
	errno = EOPNOTSUPP;
	return -1;
}

/* ---- gntshr: the granter side ---- */

xengntshr_handle *xengntshr_open(struct xentoollog_logger *logger,
	unsigned open_flags)
{
	(void)logger;
	(void)open_flags;
	return handle_open(1);
}

int xengntshr_close(xengntshr_handle *xgs)
{
	return close_common(xgs);
}

/*
 * gntalloc's fd: an open file of our domain's file, its own open file
 * description. noxs_sim_gntalloc_ioctl() on it makes grants that live as
 * long as that open file (wherever its fds went), and the index it
 * returns is the grant page's offset, so mmap() of the fd maps the page
 * as mmap() of /dev/xen/gntalloc does.
 */
int xengntshr_fd(xengntshr_handle *xgs)
{
	pthread_mutex_lock(&xgs->lock);
	if (xgs->fd < 0)
		xgs->fd = noxs_sim_domain_fd(xgs->domid);
	pthread_mutex_unlock(&xgs->lock);
	return xgs->fd;
}

static void *share(struct xengntdev_handle *h, uint32_t domid, int count,
	uint32_t *refs, int writable, uint32_t notify_offset,
	uint32_t notify_port)
{
	struct sim_domain *d = h->dom;
	struct sim_domain_hdr *hdr = d->hdr;
	struct region *r;
	uint32_t *doms = NULL;
	uint64_t *offs = NULL;
	int n = 0, fd, e;
	void *addr = NULL;

	if (domid == SIM_DOMID_SELF)
		domid = h->domid;
	if (count <= 0 || (uint32_t)count > SIM_NR_GRANTS || !refs ||
		domid >= SIM_DOMID_LIMIT ||
		(notify_offset != SIM_NONE && notify_offset >= SIM_PAGE_SIZE)) {
		errno = EINVAL;
		return NULL;
	}
	if (notify_port != SIM_NONE) {
		/* gntalloc needs the port bound in this process's domain. */
		uint32_t st = notify_port && notify_port < SIM_NR_PORTS ?
			atomic_load(&d->ports[notify_port].state) :
			SIM_PORT_FREE;
		if (st != SIM_PORT_UNBOUND && st != SIM_PORT_INTERDOMAIN) {
			errno = EINVAL;
			return NULL;
		}
	}
	r = region_new(NULL, (uint32_t)count);
	doms = calloc((size_t)count, sizeof(*doms));
	offs = calloc((size_t)count, sizeof(*offs));
	fd = noxs_sim_pages_fd_get(h->domid);
	if (!r || !doms || !offs || fd < 0) {
		e = fd < 0 ? errno : ENOMEM;
		goto fail;
	}
	noxs_sim_guard_domain(h->domid);
	pthread_mutex_lock(&h->lock);
	noxs_sim_lock(d, NULL);
	for (uint32_t ref = atomic_load(&hdr->grant_hint);
		ref < SIM_NR_GRANTS && n < count; ref++) {
		struct sim_grant *gr = &d->grants[ref];
		if (ref < SIM_FIRST_GRANT ||
			atomic_load(&gr->state) != SIM_GRANT_FREE)
			continue;
		atomic_store(&gr->grantee, domid);
		atomic_store(&gr->readonly, writable ? 0 : 1);
		atomic_store(&gr->map_count, 0);
		atomic_store(&gr->notify_offset,
			n == 0 ? notify_offset : SIM_NONE);
		atomic_store(&gr->notify_port, n == 0 ? notify_port : SIM_NONE);
		noxs_sim_owner_set(&gr->owner);
		atomic_store(&gr->state, SIM_GRANT_ACTIVE);
		atomic_store(&hdr->grant_hint, ref + 1);
		if (atomic_load(&hdr->grant_high) < ref + 1)
			atomic_store(&hdr->grant_high, ref + 1);
		r->idx[n] = ref;
		r->live[n] = 1;
		r->nlive++;
		doms[n] = h->domid;
		offs[n] = SIM_PAGES_OFF + (uint64_t)ref * SIM_PAGE_SIZE;
		n++;
	}
	/*
	 * Fresh pages, as gntalloc hands out: one hole punched per run of
	 * adjacent grants (a new domain's are all adjacent), not one
	 * fallocate per page, which cost a blk frontend's 704-page pool
	 * 704 system calls. Before the lock goes: nobody knows these refs
	 * yet, and a mapping the pages' last owner left sees the old ones.
	 */
	for (int i = 0; i < n;) {
		int j = i + 1;
		while (j < n && offs[j] == offs[j - 1] + SIM_PAGE_SIZE)
			j++;
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)offs[i], (off_t)(j - i) * SIM_PAGE_SIZE);
		i = j;
	}
	noxs_sim_unlock(d, NULL);
	if (n < count) {
		e = ENOSPC;
		goto fail_locked;
	}
	addr = map_pages((uint32_t)count, doms, offs, PROT_READ | PROT_WRITE,
		fd, h->domid);
	if (!addr) {
		e = errno;
		goto fail_locked;
	}
	r->addr = addr;
	if (region_link(h, r) < 0) {
		e = errno;
		munmap(addr, (size_t)count * SIM_PAGE_SIZE);
		goto fail_locked;
	}
	for (int i = 0; i < count; i++)
		refs[i] = r->idx[i];
	pthread_mutex_unlock(&h->lock);
	noxs_sim_pages_fd_put(h->domid, fd);
	free(doms);
	free(offs);
	return addr;
fail_locked:
	for (int i = 0; i < n; i++) {
		atomic_store(&d->grants[r->idx[i]].notify_offset, SIM_NONE);
		atomic_store(&d->grants[r->idx[i]].notify_port, SIM_NONE);
	}
	region_release(h, r, 0, (uint32_t)count);
	pthread_mutex_unlock(&h->lock);
fail:
	if (fd >= 0)
		noxs_sim_pages_fd_put(h->domid, fd);
	if (r)
		region_free(r);
	free(doms);
	free(offs);
	errno = e;
	return NULL;
}

void *xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count,
	uint32_t *refs, int writable)
{
	return share(xgs, domid, count, refs, writable, SIM_NONE, SIM_NONE);
}

void *xengntshr_share_page_notify(xengntshr_handle *xgs, uint32_t domid,
	uint32_t *ref, int writable, uint32_t notify_offset,
	evtchn_port_t notify_port)
{
	return share(xgs, domid, 1, ref, writable, notify_offset, notify_port);
}

int xengntshr_unshare(xengntshr_handle *xgs, void *start_address,
	uint32_t count)
{
	return unmap_common(xgs, start_address, count);
}
