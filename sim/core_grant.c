/*
 * noxs simulated hypervisor: the release of grants and grant mappings
 * (with their unmap notifications), and grants owned by an open file
 * (the gntalloc interface on a gntshr handle's fd). See sim.h and
 * docs/SIM.md.
 */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/ioctl.h>
#include <xen/gntalloc.h>

/* ---- grants ---- */

static void zero_byte(uint32_t domid, uint64_t off, int fd)
{
	static const char zero;
	int own = -1;

	if (fd < 0)
		fd = own = noxs_sim_domain_fd(domid);
	if (fd >= 0 && pwrite(fd, &zero, 1, (off_t)off) < 0) {
		/* nothing sensible to do: the notify is best effort */
	}
	if (own >= 0)
		close(own);
}

void noxs_sim_grant_end(struct sim_domain *g, uint32_t ref, int zero_fd)
{
	struct sim_grant *gr;
	uint32_t off, port;

	if (ref < SIM_FIRST_GRANT || ref >= SIM_NR_GRANTS)
		return;
	gr = &g->grants[ref];
	noxs_sim_lock(g, NULL);
	if (atomic_load(&gr->state) != SIM_GRANT_ACTIVE) {
		noxs_sim_unlock(g, NULL);
		return;
	}
	off = atomic_load(&gr->notify_offset);
	port = atomic_load(&gr->notify_port);
	if (off != SIM_NONE)
		zero_byte(g->domid,
			SIM_PAGES_OFF + (uint64_t)ref * SIM_PAGE_SIZE + off,
			zero_fd);
	atomic_store(&gr->notify_offset, SIM_NONE);
	atomic_store(&gr->notify_port, SIM_NONE);
	atomic_store(&gr->owner.pid, 0);
	if (atomic_load(&gr->map_count) > 0) {
		/* Xen/gntalloc: the ref stays in use until the grantee unmaps. */
		atomic_store(&gr->state, SIM_GRANT_ENDING);
	} else {
		atomic_store(&gr->state, SIM_GRANT_FREE);
		if (atomic_load(&g->hdr->grant_hint) > ref)
			atomic_store(&g->hdr->grant_hint, ref);
	}
	noxs_sim_unlock(g, NULL);
	if (port != SIM_NONE)
		noxs_sim_port_send(g, port, -1);
}

void noxs_sim_map_release(struct sim_domain *m, uint32_t idx)
{
	struct sim_map *rec = &m->maps[idx];
	struct sim_domain *g;
	uint32_t granter, ref, off, port, ro;

	if (atomic_load(&rec->state) != SIM_MAP_ACTIVE)
		return;
	granter = atomic_load(&rec->granter);
	g = noxs_sim_domain(granter, 0);
	noxs_sim_lock(m, g);
	if (atomic_load(&rec->state) != SIM_MAP_ACTIVE) {
		noxs_sim_unlock(m, g);
		return;
	}
	ref = atomic_load(&rec->ref);
	off = atomic_load(&rec->notify_offset);
	port = atomic_load(&rec->notify_port);
	ro = atomic_load(&rec->readonly);
	if (g && ref >= SIM_FIRST_GRANT && ref < SIM_NR_GRANTS) {
		struct sim_grant *gr = &g->grants[ref];
		/* Clear the byte before the grant can be reused. */
		if (off != SIM_NONE && !ro)
			zero_byte(granter,
				SIM_PAGES_OFF + (uint64_t)ref * SIM_PAGE_SIZE +
					off,
				-1);
		uint32_t c = atomic_load(&gr->map_count);
		if (c > 0)
			atomic_store(&gr->map_count, --c);
		if (c == 0 && atomic_load(&gr->state) == SIM_GRANT_ENDING) {
			atomic_store(&gr->state, SIM_GRANT_FREE);
			if (atomic_load(&g->hdr->grant_hint) > ref)
				atomic_store(&g->hdr->grant_hint, ref);
		}
	}
	atomic_store(&rec->owner.pid, 0);
	atomic_store(&rec->state, SIM_MAP_FREE);
	if (atomic_load(&m->hdr->map_hint) > idx)
		atomic_store(&m->hdr->map_hint, idx);
	noxs_sim_unlock(m, g);
	if (port != SIM_NONE)
		noxs_sim_port_send(m, port, -1);
	/* The last mapping of a destroyed domain's page may end it. */
	if (g && atomic_load(&g->hdr->life) == SIM_LIFE_DYING)
		noxs_sim_domain_settle(g);
}

/* ---- grants owned by an open file (gntalloc on a gntshr fd) ---- */

static int grant_lock(int fd, uint32_t ref, short type, int cmd)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = (off_t)SIM_GRANT_LOCK_OFF(ref),
		.l_len = 1,
	};

	return fcntl(fd, cmd, &fl) < 0 ? -1 : fl.l_type;
}

int noxs_sim_grant_file_alive(struct sim_domain *dom, uint32_t ref)
{
	int fd = noxs_sim_domain_fd(dom->domid), t;

	if (fd < 0)
		return 1; /* cannot tell: keep it */
	/* Another open file's read lock conflicts with our write lock. */
	t = grant_lock(fd, ref, F_WRLCK, F_OFD_GETLK);
	close(fd);
	return t != F_UNLCK;
}

/* The domain whose file fd is (its header says, and the inode agrees). */
static struct sim_domain *domain_of_fd(int fd)
{
	char path[PATH_MAX + 32];
	struct stat a, b;
	uint64_t magic;
	uint32_t domid;

	if (pread(fd, &magic, sizeof(magic), 0) != sizeof(magic) ||
		magic != SIM_MAGIC ||
		pread(fd, &domid, sizeof(domid),
			offsetof(struct sim_domain_hdr, domid)) != sizeof(domid) ||
		domid >= SIM_DOMID_LIMIT || !noxs_sim_dir())
		return NULL;
	sim_domain_path(domid, path, sizeof(path));
	if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino ||
		a.st_dev != b.st_dev)
		return NULL;
	return noxs_sim_domain(domid, 0);
}

static int file_alloc(struct sim_domain *d, int fd,
	struct ioctl_gntalloc_alloc_gref *op)
{
	struct sim_domain_hdr *hdr = d->hdr;
	uint32_t ref, grantee = op->domid;

	if (op->count != 1 || grantee >= SIM_DOMID_LIMIT) {
		errno = EINVAL;
		return -1;
	}
	noxs_sim_lock(d, NULL);
	for (ref = atomic_load(&hdr->grant_hint); ref < SIM_NR_GRANTS; ref++) {
		struct sim_grant *gr = &d->grants[ref];
		if (ref < SIM_FIRST_GRANT ||
			atomic_load(&gr->state) != SIM_GRANT_FREE)
			continue;
		/* The lock first: a reaper never sees the grant unowned. */
		if (grant_lock(fd, ref, F_RDLCK, F_OFD_SETLK) < 0) {
			int e = errno;
			noxs_sim_unlock(d, NULL);
			errno = e;
			return -1;
		}
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)(SIM_PAGES_OFF + (uint64_t)ref * SIM_PAGE_SIZE),
			SIM_PAGE_SIZE);
		atomic_store(&gr->grantee, grantee);
		atomic_store(&gr->readonly, (op->flags & GNTALLOC_FLAG_WRITABLE) ? 0 : 1);
		atomic_store(&gr->map_count, 0);
		atomic_store(&gr->notify_offset, SIM_NONE);
		atomic_store(&gr->notify_port, SIM_NONE);
		atomic_store(&gr->owner.pid, 0);
		atomic_store(&gr->owner.start, 0);
		atomic_store(&gr->owner.image, SIM_IMAGE_FILE);
		atomic_store(&gr->state, SIM_GRANT_ACTIVE);
		atomic_store(&hdr->grant_hint, ref + 1);
		if (atomic_load(&hdr->grant_high) < ref + 1)
			atomic_store(&hdr->grant_high, ref + 1);
		noxs_sim_unlock(d, NULL);
		op->index = SIM_PAGES_OFF + (uint64_t)ref * SIM_PAGE_SIZE;
		op->gref_ids[0] = ref;
		return 0;
	}
	noxs_sim_unlock(d, NULL);
	errno = ENOSPC;
	return -1;
}

static int file_dealloc(struct sim_domain *d, int fd,
	const struct ioctl_gntalloc_dealloc_gref *op)
{
	uint64_t off = op->index;
	uint32_t ref;
	struct sim_grant *gr;

	if (op->count != 1 || off < SIM_PAGES_OFF ||
		(off - SIM_PAGES_OFF) % SIM_PAGE_SIZE ||
		(off - SIM_PAGES_OFF) / SIM_PAGE_SIZE >= SIM_NR_GRANTS) {
		errno = EINVAL;
		return -1;
	}
	ref = (uint32_t)((off - SIM_PAGES_OFF) / SIM_PAGE_SIZE);
	gr = &d->grants[ref];
	if (ref < SIM_FIRST_GRANT ||
		atomic_load(&gr->state) != SIM_GRANT_ACTIVE ||
		atomic_load(&gr->owner.image) != SIM_IMAGE_FILE ||
		grant_lock(fd, ref, F_WRLCK, F_OFD_GETLK) != F_UNLCK) {
		/* Not this file's (another file's lock conflicts). */
		errno = EINVAL;
		return -1;
	}
	noxs_sim_grant_end(d, ref, fd);
	grant_lock(fd, ref, F_UNLCK, F_OFD_SETLK);
	return 0;
}

int noxs_sim_gntalloc_ioctl(int fd, unsigned long request, void *arg)
{
	struct sim_domain *d = domain_of_fd(fd);

	if (!d) {
		errno = ENOTTY;
		return -1;
	}
	switch (request) {
	case IOCTL_GNTALLOC_ALLOC_GREF:
		return file_alloc(d, fd, arg);
	case IOCTL_GNTALLOC_DEALLOC_GREF:
		return file_dealloc(d, fd, arg);
	default:
		errno = ENOTTY;
		return -1;
	}
}
