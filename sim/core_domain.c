/*
 * noxs simulated hypervisor: the domain files (created fully initialised,
 * then linked into place), their mapping into this process, and a
 * domain's life (destroy, shutdown, settle, reuse of a dead domid).
 * See sim.h and docs/SIM.md.
 */
#include "sim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- domain files ---- */

void sim_domain_path(uint32_t domid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/dom-%u", sim_dir_path, (unsigned)domid);
}

static uint32_t env_mem_pages(void)
{
	const char *env = getenv("NOXS_SIM_MEM_PAGES");
	unsigned long v;
	char *end;

	if (!env || !*env)
		return SIM_DEFAULT_MEM_PAGES;
	v = strtoul(env, &end, 0);
	if (*end || v == 0 || v > (1ul << 24))
		return SIM_DEFAULT_MEM_PAGES;
	return (uint32_t)v;
}

/* Create dom-<domid> fully initialised, then link it into place. */
static int domain_create(uint32_t domid)
{
	static _Atomic unsigned counter;
	char tmp[PATH_MAX + 64], path[PATH_MAX + 32];
	uint32_t mem_pages = env_mem_pages();
	uint64_t size = SIM_MEM_OFF + (uint64_t)mem_pages * SIM_PAGE_SIZE;
	struct sim_domain_hdr *hdr;
	pthread_mutexattr_t attr;
	int fd, rc = 0;

	sim_domain_path(domid, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s/.dom-%u.%u.%u", sim_dir_path,
		(unsigned)domid, (unsigned)getpid(),
		atomic_fetch_add(&counter, 1));
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	hdr = mmap(NULL, SIM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		0);
	if (hdr == MAP_FAILED)
		goto fail;
	madvise(hdr, SIM_PAGE_SIZE, MADV_RANDOM);
	hdr->version = SIM_LAYOUT_VERSION;
	hdr->domid = domid;
	hdr->mem_pages = mem_pages;
	hdr->file_size = size;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&hdr->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	atomic_store(&hdr->port_hint, 1);
	atomic_store(&hdr->port_high, 1);
	atomic_store(&hdr->grant_hint, SIM_FIRST_GRANT);
	atomic_store(&hdr->grant_high, SIM_FIRST_GRANT);
	atomic_store(&hdr->map_hint, 0);
	atomic_store(&hdr->map_high, 0);
	atomic_store(&hdr->slot_hint, 0);
	atomic_store(&hdr->slot_high, 0);
	/* Published by link() below: nobody opens the file before that. */
	hdr->magic = SIM_MAGIC;
	munmap(hdr, SIM_PAGE_SIZE);
	if (link(tmp, path) < 0 && errno != EEXIST)
		rc = -1;
	unlink(tmp);
	close(fd);
	return rc;
fail:
	rc = errno;
	unlink(tmp);
	close(fd);
	errno = rc;
	return -1;
}

/* ---- domain life ---- */

/* Nothing of the domain is left (call with its lock). */
static int domain_empty(struct sim_domain *dom)
{
	struct sim_domain_hdr *h = dom->hdr;
	uint32_t high;

	high = atomic_load(&h->slot_high);
	for (uint32_t i = 0; i < high && i < SIM_NR_SLOTS; i++)
		if (atomic_load(&dom->slots[i].state) != SIM_SLOT_FREE)
			return 0;
	high = atomic_load(&h->port_high);
	for (uint32_t i = 1; i < high && i < SIM_NR_PORTS; i++)
		if (atomic_load(&dom->ports[i].state) != SIM_PORT_FREE)
			return 0;
	high = atomic_load(&h->grant_high);
	for (uint32_t i = SIM_FIRST_GRANT; i < high && i < SIM_NR_GRANTS; i++)
		if (atomic_load(&dom->grants[i].state) != SIM_GRANT_FREE)
			return 0;
	high = atomic_load(&h->map_high);
	for (uint32_t i = 0; i < high && i < SIM_NR_MAPS; i++)
		if (atomic_load(&dom->maps[i].state) != SIM_MAP_FREE)
			return 0;
	return 1;
}

uint32_t noxs_sim_domain_settle(struct sim_domain *dom)
{
	uint32_t life = atomic_load(&dom->hdr->life);
	int died = 0;

	if (life != SIM_LIFE_DYING)
		return life;
	noxs_sim_reap_domain(dom);
	noxs_sim_lock(dom, NULL);
	if (atomic_load(&dom->hdr->life) == SIM_LIFE_DYING &&
		domain_empty(dom)) {
		atomic_store(&dom->hdr->life, SIM_LIFE_DEAD);
		died = 1;
	}
	life = atomic_load(&dom->hdr->life);
	noxs_sim_unlock(dom, NULL);
	if (died)
		noxs_sim_virq_dom_exc();
	return life;
}

/*
 * A process is about to act as dom (an *_open): a dead domain comes back
 * as a new one, with nothing of the old (its tables are empty by
 * definition; its memory is zeroed here); a dying one cannot be entered.
 */
static struct sim_domain *domain_enter(struct sim_domain *dom)
{
	struct sim_domain_hdr *h = dom->hdr;
	uint32_t life = atomic_load(&h->life);

	if (life == SIM_LIFE_ALIVE)
		return dom;
	if (life == SIM_LIFE_DYING &&
		noxs_sim_domain_settle(dom) == SIM_LIFE_DYING) {
		errno = ESRCH;
		return NULL;
	}
	noxs_sim_lock(dom, NULL);
	if (atomic_load(&h->life) == SIM_LIFE_DEAD) {
		int fd = noxs_sim_domain_fd(dom->domid);
		if (fd >= 0) {
			fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)SIM_MEM_OFF,
				(off_t)h->mem_pages * SIM_PAGE_SIZE);
			close(fd);
		}
		atomic_store(&h->port_hint, 1);
		atomic_store(&h->grant_hint, SIM_FIRST_GRANT);
		atomic_store(&h->map_hint, 0);
		atomic_store(&h->slot_hint, 0);
		atomic_fetch_add(&h->incarnation, 1);
		atomic_store(&h->shutdown, 0);
		atomic_store(&h->life, SIM_LIFE_ALIVE);
	}
	life = atomic_load(&h->life);
	noxs_sim_unlock(dom, NULL);
	if (life != SIM_LIFE_ALIVE) {
		errno = ESRCH;
		return NULL;
	}
	return dom;
}

void noxs_sim_virq_dom_exc(void)
{
	struct sim_domain *d0 = noxs_sim_domain(0, 0);
	uint32_t port;

	if (!d0)
		return;
	port = atomic_load(&d0->hdr->virq_dom_exc);
	if (port == 0 || port >= SIM_NR_PORTS ||
		atomic_load(&d0->ports[port].state) != SIM_PORT_VIRQ)
		return;
	noxs_sim_port_raise(d0, port, -1);
}

int noxs_sim_domain_shutdown(uint32_t domid, uint32_t reason)
{
	struct sim_domain *dom;
	uint32_t zero = 0;

	if (domid == 0 || reason > 0xff) {
		errno = domid == 0 ? EPERM : EINVAL;
		return -1;
	}
	if ((dom = noxs_sim_domain(domid, 0)) == NULL)
		return -1;
	if (atomic_load(&dom->hdr->life) != SIM_LIFE_ALIVE) {
		errno = ESRCH;
		return -1;
	}
	/* The first reason stays, as Xen keeps a domain's first shutdown. */
	if (!atomic_compare_exchange_strong(&dom->hdr->shutdown, &zero,
		    1 + reason)) {
		errno = EALREADY;
		return -1;
	}
	noxs_sim_virq_dom_exc();
	return 0;
}

static void kill_once(pid_t *pids, size_t *n, size_t max, uint32_t pid)
{
	if (pid == 0 || pid == (uint32_t)getpid())
		return;
	for (size_t i = 0; i < *n; i++)
		if (pids[i] == (pid_t)pid)
			return;
	if (*n < max)
		pids[(*n)++] = (pid_t)pid;
}

int noxs_sim_domain_destroy(uint32_t domid, int kill_procs)
{
	enum { MAXPIDS = 4096 };
	struct sim_domain *dom;
	struct sim_domain_hdr *h;
	pid_t *pids = NULL;
	size_t n = 0;
	uint32_t high, life;

	if (domid == 0) {
		errno = EPERM;
		return -1;
	}
	if ((dom = noxs_sim_domain(domid, 0)) == NULL)
		return -1;
	h = dom->hdr;
	noxs_sim_lock(dom, NULL);
	life = atomic_load(&h->life);
	if (life == SIM_LIFE_ALIVE)
		atomic_store(&h->life, SIM_LIFE_DYING);
	noxs_sim_unlock(dom, NULL);
	if (life == SIM_LIFE_DEAD) {
		errno = ESRCH;
		return -1;
	}
	if (kill_procs && (pids = calloc(MAXPIDS, sizeof(*pids))) != NULL) {
		high = atomic_load(&h->slot_high);
		for (uint32_t i = 0; i < high && i < SIM_NR_SLOTS; i++) {
			struct sim_slot *s = &dom->slots[i];
			if (atomic_load(&s->state) == SIM_SLOT_USED &&
				noxs_sim_slot_alive(domid, i,
					atomic_load(&s->gen)))
				kill_once(pids, &n, MAXPIDS,
					atomic_load(&s->pid));
		}
		high = atomic_load(&h->grant_high);
		for (uint32_t i = SIM_FIRST_GRANT;
			i < high && i < SIM_NR_GRANTS; i++) {
			struct sim_grant *g = &dom->grants[i];
			if (atomic_load(&g->state) == SIM_GRANT_ACTIVE &&
				noxs_sim_process_alive(
					atomic_load(&g->owner.pid),
					atomic_load(&g->owner.start)))
				kill_once(pids, &n, MAXPIDS,
					atomic_load(&g->owner.pid));
		}
		high = atomic_load(&h->map_high);
		for (uint32_t i = 0; i < high && i < SIM_NR_MAPS; i++) {
			struct sim_map *m = &dom->maps[i];
			if (atomic_load(&m->state) == SIM_MAP_ACTIVE &&
				noxs_sim_process_alive(
					atomic_load(&m->owner.pid),
					atomic_load(&m->owner.start)))
				kill_once(pids, &n, MAXPIDS,
					atomic_load(&m->owner.pid));
		}
		for (size_t i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		free(pids);
	}
	noxs_sim_virq_dom_exc();
	return 0;
}

/*
 * Page operations on domain 0's file keep one open file of it per
 * process instead of an open and a close each. The close was the cost:
 * closing any open file of an inode walks every POSIX lock on it, and
 * gntalloc's emulation holds one per live grant of its file (noxsd's
 * keeper: one per domain's device page, all on domain 0's file), so each
 * share and map of a domain 0 page paid for every domain. Other domains'
 * files carry no such locks and are opened per operation, as before (a
 * process mapping pages of thousands of guests holds no descriptor for
 * each). The kept one is checked before each use, since a program may
 * close descriptors it did not open: one whose inode changed is
 * forgotten, never closed (the number may be somebody else's now).
 */
int noxs_sim_pages_fd_get(uint32_t domid)
{
	struct sim_domain *d = domid == 0 ? noxs_sim_domain(0, 0) : NULL;
	struct stat st;
	int fd, kept;

	if (!d)
		return noxs_sim_domain_fd(domid);
	kept = atomic_load(&d->pages_fd) - 1;
	if (kept >= 0 && fstat(kept, &st) == 0 && st.st_ino == d->ino &&
		st.st_dev == d->dev)
		return kept;
	fd = noxs_sim_domain_fd(domid);
	if (fd < 0)
		return -1;
	{
		int expect = kept >= 0 ? kept + 1 : 0;
		atomic_compare_exchange_strong(&d->pages_fd, &expect, fd + 1);
	}
	return fd;
}

void noxs_sim_pages_fd_put(uint32_t domid, int fd)
{
	struct sim_domain *d = sim_domains && domid < SIM_DOMID_LIMIT ?
		atomic_load_explicit(&sim_domains[domid],
			memory_order_acquire) :
		NULL;

	if (fd >= 0 && (!d || atomic_load(&d->pages_fd) != fd + 1))
		close(fd);
}

int noxs_sim_domain_fd(uint32_t domid)
{
	char path[PATH_MAX + 32];

	if (!noxs_sim_dir())
		return -1;
	sim_domain_path(domid, path, sizeof(path));
	return open(path, O_RDWR | O_CLOEXEC);
}

struct sim_domain *noxs_sim_domain(uint32_t domid, int create)
{
	struct sim_domain *dom;
	char path[PATH_MAX + 32];
	struct stat st;
	void *meta;
	int fd;

	if (domid >= SIM_DOMID_LIMIT) {
		errno = ESRCH;
		return NULL;
	}
	if (!noxs_sim_dir())
		return NULL;
	dom = atomic_load_explicit(&sim_domains[domid], memory_order_acquire);
	if (dom)
		return create ? domain_enter(dom) : dom;
	sim_domain_path(domid, path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (domain_create(domid) < 0)
			return NULL;
		fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0) {
		if (errno == ENOENT)
			errno = ESRCH;
		return NULL;
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < SIM_MEM_OFF) {
		close(fd);
		errno = EIO;
		return NULL;
	}
	meta = mmap(NULL, SIM_META_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		0);
	close(fd);
	if (meta == MAP_FAILED)
		return NULL;
	/*
	 * The tables are sparse and touched a page at a time; without this a
	 * disk-backed sim dir reads ahead (and zero-fills) megabytes per fault.
	 * Not on tmpfs (the default): there is no read-ahead, and the advice
	 * would only turn off fault-around, which maps the neighbouring table
	 * pages already in memory with the first fault instead of one fault
	 * each (faults are what a virtual machine's guest pays most for).
	 */
	if (!sim_dir_tmpfs)
		madvise(meta, SIM_META_SIZE, MADV_RANDOM);
	dom = calloc(1, sizeof(*dom));
	if (!dom) {
		munmap(meta, SIM_META_SIZE);
		errno = ENOMEM;
		return NULL;
	}
	dom->domid = domid;
	dom->dev = st.st_dev;
	dom->ino = st.st_ino;
	dom->hdr = meta;
	dom->slots = (struct sim_slot *)((char *)meta + SIM_SLOTS_OFF);
	dom->ports = (struct sim_port *)((char *)meta + SIM_PORTS_OFF);
	dom->grants = (struct sim_grant *)((char *)meta + SIM_GRANTS_OFF);
	dom->maps = (struct sim_map *)((char *)meta + SIM_MAPS_OFF);
	if (dom->hdr->magic != SIM_MAGIC ||
		dom->hdr->version != SIM_LAYOUT_VERSION ||
		dom->hdr->domid != domid) {
		munmap(meta, SIM_META_SIZE);
		free(dom);
		errno = EIO;
		return NULL;
	}
	struct sim_domain *expect = NULL;
	if (!atomic_compare_exchange_strong(&sim_domains[domid], &expect, dom)) {
		munmap(meta, SIM_META_SIZE);
		free(dom);
		dom = expect;
	}
	return create ? domain_enter(dom) : dom;
}

uint32_t noxs_sim_domain_limit(void)
{
	uint32_t limit = 0;
	DIR *d;
	struct dirent *de;

	if (!noxs_sim_dir())
		return 0;
	d = opendir(sim_dir_path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		unsigned v;
		char extra;
		if (sscanf(de->d_name, "dom-%u%c", &v, &extra) == 1 &&
			v < SIM_DOMID_LIMIT && v + 1 > limit)
			limit = v + 1;
	}
	closedir(d);
	return limit;
}
