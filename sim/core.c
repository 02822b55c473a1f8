/*
 * noxs simulated hypervisor: shared state, locking, liveness, event
 * delivery, grant release, reaping and the guardian. See sim.h for the
 * file layout and the ownership rules, docs/SIM.md for the semantics.
 *
 * Event delivery. Each evtchn handle owns a slot with a lock-free
 * multi-producer stack of delivered ports (linked through the port
 * entries) and a Unix datagram socket. A sender pushes the port and, only
 * if the stack was empty, sends a one-byte wake-up token to the socket.
 * The owner takes the whole stack at once (atomic exchange, so no ABA)
 * into a process-local fifo and consumes the matching token when the fifo
 * drains, so the socket is readable exactly while events are pending.
 * A port is on at most one stack at a time (SIM_PF_QUEUED), so a stack
 * never holds more entries than its handle has ports, whatever the sender
 * does; the kernel's datagram queue (net.unix.max_dgram_qlen, 10 here)
 * holds at most a token or two per handle.
 */
#include "common/parse.h"
#include "sim.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sys/ioctl.h>
#include <xen/gntalloc.h>

extern char **environ;

static pthread_mutex_t core_lock = PTHREAD_MUTEX_INITIALIZER;
static char sim_dir_path[PATH_MAX];
static uint64_t sim_dir_hash;
static _Atomic int sim_dir_ready;
static _Atomic(struct sim_domain *) *domains; /* [SIM_DOMID_LIMIT] */

/* ---- directory ---- */

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

const char *noxs_sim_dir(void)
{
	if (atomic_load_explicit(&sim_dir_ready, memory_order_acquire))
		return sim_dir_path;
	pthread_mutex_lock(&core_lock);
	if (!atomic_load_explicit(&sim_dir_ready, memory_order_relaxed)) {
		const char *env = getenv("NOXS_SIM_DIR");
		char buf[PATH_MAX], real[PATH_MAX];
		struct stat st;

		if (env && *env)
			snprintf(buf, sizeof(buf), "%s", env);
		else
			snprintf(buf, sizeof(buf), "/dev/shm/noxs-sim-%u",
				(unsigned)getuid());
		if (mkdir_p(buf) < 0 || !realpath(buf, real) ||
			stat(real, &st) < 0) {
			int e = errno;
			pthread_mutex_unlock(&core_lock);
			errno = e ? e : EINVAL;
			return NULL;
		}
		/* FNV-1a of the path and inode: names the abstract sockets. */
		uint64_t h = 1469598103934665603ull;
		for (const char *c = real; *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ull;
		h = (h ^ (uint64_t)st.st_ino) * 1099511628211ull;
		h = (h ^ (uint64_t)st.st_dev) * 1099511628211ull;
		sim_dir_hash = h;
		snprintf(sim_dir_path, sizeof(sim_dir_path), "%s", real);
		domains = calloc(SIM_DOMID_LIMIT, sizeof(*domains));
		if (!domains) {
			pthread_mutex_unlock(&core_lock);
			errno = ENOMEM;
			return NULL;
		}
		atomic_store_explicit(&sim_dir_ready, 1, memory_order_release);
	}
	pthread_mutex_unlock(&core_lock);
	return sim_dir_path;
}

/* The calling thread's noxs_sim_open_as() setting, -1 for none. */
static _Thread_local int open_as = -1;

int noxs_sim_open_as(int domid)
{
	int old = open_as;

	if (domid < -1 || (domid >= 0 && (uint32_t)domid >= SIM_DOMID_LIMIT)) {
		errno = EINVAL;
		return -2;
	}
	open_as = domid;
	return old;
}

int noxs_sim_env_domid(uint32_t *domid)
{
	const char *env = getenv("NOXS_SIM_DOMID");
	uint64_t v;

	if (open_as >= 0) {
		*domid = (uint32_t)open_as;
		return 0;
	}
	if (!env || !*env) {
		*domid = 0;
		return 0;
	}
	/* Decimal, as libnoxs's noxs_self_domid() reads it: "010" is no
	 * domain here either. */
	if (parse_u64(env, 0, SIM_DOMID_LIMIT - 1, &v) < 0) {
		errno = EINVAL;
		return -1;
	}
	*domid = (uint32_t)v;
	return 0;
}

/* ---- process identity ---- */

static struct sim_self self_cache;
static _Atomic uint32_t self_pid;

static int read_stat(uint32_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%u/stat", (unsigned)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2; /* field 3: state */
	*state = *p;
	/* Field 22 is the start time; we are at field 3. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}

const struct sim_self *noxs_sim_self(void)
{
	uint32_t pid = (uint32_t)getpid();

	if (atomic_load_explicit(&self_pid, memory_order_acquire) == pid)
		return &self_cache;
	pthread_mutex_lock(&core_lock);
	if (atomic_load_explicit(&self_pid, memory_order_relaxed) != pid) {
		char st;
		uint64_t start = 0;
		uint32_t image = 0;

		read_stat(pid, &st, &start);
		if (getrandom(&image, sizeof(image), 0) != sizeof(image))
			image = (uint32_t)time(NULL) ^ pid;
		self_cache.pid = pid;
		self_cache.start = start;
		self_cache.image = image | 1;
		atomic_store_explicit(&self_pid, pid, memory_order_release);
	}
	pthread_mutex_unlock(&core_lock);
	return &self_cache;
}

void noxs_sim_owner_set(struct sim_owner *o)
{
	const struct sim_self *me = noxs_sim_self();

	atomic_store(&o->pid, me->pid);
	atomic_store(&o->image, me->image);
	atomic_store(&o->start, me->start);
}

int noxs_sim_owner_is_self(const struct sim_owner *o)
{
	const struct sim_self *me = noxs_sim_self();

	return atomic_load(&o->pid) == me->pid &&
		atomic_load(&o->start) == me->start &&
		atomic_load(&o->image) == me->image;
}

int noxs_sim_process_alive(uint32_t pid, uint64_t start)
{
	char st;
	uint64_t s;

	if (pid == 0)
		return 0;
	if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return 0;
	if (read_stat(pid, &st, &s) < 0)
		return 0;
	if (st == 'Z' || st == 'X' || s != start)
		return 0;
	return 1;
}

/* ---- domain files ---- */

static void domain_path(uint32_t domid, char *buf, size_t len)
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

	domain_path(domid, path, sizeof(path));
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

int noxs_sim_domain_fd(uint32_t domid)
{
	char path[PATH_MAX + 32];

	if (!noxs_sim_dir())
		return -1;
	domain_path(domid, path, sizeof(path));
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
	dom = atomic_load_explicit(&domains[domid], memory_order_acquire);
	if (dom)
		return create ? domain_enter(dom) : dom;
	domain_path(domid, path, sizeof(path));
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
	 */
	madvise(meta, SIM_META_SIZE, MADV_RANDOM);
	dom = calloc(1, sizeof(*dom));
	if (!dom) {
		munmap(meta, SIM_META_SIZE);
		errno = ENOMEM;
		return NULL;
	}
	dom->domid = domid;
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
	if (!atomic_compare_exchange_strong(&domains[domid], &expect, dom)) {
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

/* ---- locking ---- */

static void lock_one(struct sim_domain *d)
{
	int rc = pthread_mutex_lock(&d->hdr->lock);

	/*
	 * The previous holder died inside a critical section. Every update
	 * publishes with a single store at its end, so the tables are usable;
	 * at worst a half-made entry is left for the reaper.
	 */
	if (rc == EOWNERDEAD)
		pthread_mutex_consistent(&d->hdr->lock);
}

void noxs_sim_lock(struct sim_domain *a, struct sim_domain *b)
{
	if (!b || a == b) {
		lock_one(a);
	} else if (a->domid < b->domid) {
		lock_one(a);
		lock_one(b);
	} else {
		lock_one(b);
		lock_one(a);
	}
}

void noxs_sim_unlock(struct sim_domain *a, struct sim_domain *b)
{
	if (b && b != a)
		pthread_mutex_unlock(&b->hdr->lock);
	pthread_mutex_unlock(&a->hdr->lock);
}

/* ---- sockets ---- */

void noxs_sim_slot_name(uint32_t domid, uint32_t slot, uint32_t gen,
	void *addr, unsigned *len)
{
	struct sockaddr_un *sun = addr;
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	/* Abstract namespace: sun_path[0] stays '\0'. */
	n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
		"noxs-sim/%016llx/%u/%u/%u", (unsigned long long)sim_dir_hash,
		(unsigned)domid, (unsigned)slot, (unsigned)gen);
	*len = (unsigned)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

int noxs_sim_slot_alive(uint32_t domid, uint32_t slot, uint32_t gen)
{
	struct sockaddr_un sun;
	unsigned len;
	int fd, rc;

	noxs_sim_slot_name(domid, slot, gen, &sun, &len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1; /* cannot tell: assume alive */
	rc = connect(fd, (struct sockaddr *)&sun, len);
	if (rc < 0)
		rc = (errno == ECONNREFUSED || errno == ENOENT) ? 0 : 1;
	else
		rc = 1;
	close(fd);
	return rc;
}

static _Atomic int sender_fd = -1;

static int process_sender(void)
{
	int fd = atomic_load(&sender_fd);

	if (fd >= 0)
		return fd;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int expect = -1;
	if (!atomic_compare_exchange_strong(&sender_fd, &expect, fd)) {
		close(fd);
		fd = expect;
	}
	return fd;
}

static void send_token(uint32_t domid, uint32_t slot, uint32_t gen, int fd)
{
	struct sockaddr_un sun;
	unsigned len;
	char b = 0;
	int saved = errno;

	noxs_sim_slot_name(domid, slot, gen, &sun, &len);
	if (fd < 0)
		fd = process_sender();
	if (fd >= 0 && sendto(fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sun, len) == 1)
		goto out;
	if (errno == EAGAIN || errno == ENOBUFS || fd < 0) {
		/*
		 * Our send buffer is full of tokens not yet read by others (or
		 * the receiver's queue is full, in which case it is readable
		 * anyway). A fresh socket has a fresh send buffer.
		 */
		int tmp = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (tmp >= 0) {
			sendto(tmp, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
				(struct sockaddr *)&sun, len);
			close(tmp);
		}
	}
	/* ECONNREFUSED: the owner is gone; the reaper closes the port. */
out:
	errno = saved;
}

/* ---- events ---- */

uint32_t noxs_sim_port_alloc(struct sim_domain *dom)
{
	struct sim_domain_hdr *h = dom->hdr;
	uint32_t p = atomic_load(&h->port_hint);

	if (p == 0)
		p = 1;
	for (; p < SIM_NR_PORTS; p++) {
		struct sim_port *e = &dom->ports[p];
		if (atomic_load(&e->state) != SIM_PORT_FREE)
			continue;
		atomic_store(&e->flags, 0);
		atomic_store(&e->next, 0);
		atomic_store(&e->remote_dom, 0);
		atomic_store(&e->remote_port, 0);
		atomic_store(&e->state, SIM_PORT_RESERVED);
		atomic_store(&h->port_hint, p + 1);
		if (atomic_load(&h->port_high) < p + 1)
			atomic_store(&h->port_high, p + 1);
		return p;
	}
	errno = ENOSPC;
	return 0;
}

static void deliver(struct sim_domain *dom, uint32_t port, int sendfd)
{
	struct sim_port *p = &dom->ports[port];
	uint32_t slot = atomic_load_explicit(&p->slot, memory_order_acquire);
	uint32_t gen = atomic_load_explicit(&p->gen, memory_order_acquire);
	struct sim_slot *s;
	uint32_t old;

	if (slot >= SIM_NR_SLOTS)
		goto drop;
	s = &dom->slots[slot];
	if (atomic_load(&s->gen) != gen ||
		atomic_load(&s->state) != SIM_SLOT_USED)
		goto drop;
	old = atomic_load_explicit(&s->head, memory_order_relaxed);
	do {
		atomic_store_explicit(&p->next, old, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak_explicit(&s->head, &old, port,
		memory_order_release, memory_order_relaxed));
	if (old == 0)
		send_token(dom->domid, slot, gen, sendfd);
	return;
drop:
	atomic_fetch_and(&p->flags, ~SIM_PF_QUEUED);
}

void noxs_sim_port_raise(struct sim_domain *dom, uint32_t port, int sendfd)
{
	struct sim_port *p = &dom->ports[port];
	uint32_t f = atomic_load_explicit(&p->flags, memory_order_relaxed);
	uint32_t nf;
	int push;

	for (;;) {
		if (f & SIM_PF_PENDING)
			return; /* coalesced */
		push = 0;
		if (f & SIM_PF_MASKED) {
			nf = f | SIM_PF_PENDING;
		} else {
			nf = f | SIM_PF_MASKED;
			if (!(f & SIM_PF_QUEUED)) {
				nf |= SIM_PF_QUEUED;
				push = 1;
			}
		}
		if (atomic_compare_exchange_weak_explicit(&p->flags, &f, nf,
			    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	if (push)
		deliver(dom, port, sendfd);
}

void noxs_sim_port_unmask(struct sim_domain *dom, uint32_t port, int sendfd)
{
	struct sim_port *p = &dom->ports[port];
	uint32_t f = atomic_load_explicit(&p->flags, memory_order_relaxed);
	uint32_t nf;
	int push;

	for (;;) {
		if (!(f & SIM_PF_MASKED))
			return;
		push = 0;
		if (f & SIM_PF_PENDING) {
			/* Raised while masked: deliver now, stay masked. */
			nf = f & ~SIM_PF_PENDING;
			if (!(f & SIM_PF_QUEUED)) {
				nf |= SIM_PF_QUEUED;
				push = 1;
			}
		} else {
			nf = f & ~SIM_PF_MASKED;
		}
		if (atomic_compare_exchange_weak_explicit(&p->flags, &f, nf,
			    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	if (push)
		deliver(dom, port, sendfd);
}

void noxs_sim_port_send(struct sim_domain *dom, uint32_t port, int sendfd)
{
	struct sim_port *p, *r;
	struct sim_domain *rdom;
	uint32_t rd, rp;

	if (port == 0 || port >= SIM_NR_PORTS)
		return;
	p = &dom->ports[port];
	if (atomic_load_explicit(&p->state, memory_order_acquire) !=
		SIM_PORT_INTERDOMAIN)
		return; /* unbound: Xen drops the event silently */
	rd = atomic_load_explicit(&p->remote_dom, memory_order_relaxed);
	rp = atomic_load_explicit(&p->remote_port, memory_order_relaxed);
	if (rp == 0 || rp >= SIM_NR_PORTS)
		return;
	rdom = noxs_sim_domain(rd, 0);
	if (!rdom)
		return;
	r = &rdom->ports[rp];
	if (atomic_load_explicit(&r->state, memory_order_acquire) !=
			SIM_PORT_INTERDOMAIN ||
		atomic_load_explicit(&r->remote_dom, memory_order_relaxed) !=
			dom->domid ||
		atomic_load_explicit(&r->remote_port, memory_order_relaxed) !=
			port)
		return;
	noxs_sim_port_raise(rdom, rp, sendfd);
}

static void port_free_locked(struct sim_domain *dom, uint32_t port)
{
	struct sim_port *p = &dom->ports[port];

	if (atomic_load(&p->state) == SIM_PORT_VIRQ)
		atomic_compare_exchange_strong(&dom->hdr->virq_dom_exc, &port,
			0);
	atomic_store(&p->remote_dom, 0);
	atomic_store(&p->remote_port, 0);
	atomic_store(&p->flags, 0);
	atomic_store(&p->slot, SIM_NONE);
	atomic_store(&p->gen, 0);
	atomic_store_explicit(&p->state, SIM_PORT_FREE, memory_order_release);
	if (atomic_load(&dom->hdr->port_hint) > port)
		atomic_store(&dom->hdr->port_hint, port);
}

int noxs_sim_port_close(struct sim_domain *dom, uint32_t port,
	uint32_t expect_slot, uint32_t expect_gen)
{
	struct sim_port *p = &dom->ports[port];
	struct sim_domain *rdom = NULL;
	uint32_t st, rd = 0, rp = 0;
	int wake = 0;

	for (;;) {
		noxs_sim_lock(dom, rdom);
		st = atomic_load(&p->state);
		if (st == SIM_PORT_FREE ||
			(expect_slot != SIM_NONE &&
				(atomic_load(&p->slot) != expect_slot ||
					atomic_load(&p->gen) != expect_gen))) {
			noxs_sim_unlock(dom, rdom);
			errno = ENOTCONN;
			return -1;
		}
		if (st != SIM_PORT_INTERDOMAIN)
			break;
		rd = atomic_load(&p->remote_dom);
		rp = atomic_load(&p->remote_port);
		struct sim_domain *want = noxs_sim_domain(rd, 0);
		if (want == rdom || want == dom || !want)
			break;
		/* Need the peer's lock too: retake both in order. */
		noxs_sim_unlock(dom, rdom);
		rdom = want;
	}
	if (st == SIM_PORT_INTERDOMAIN && rp && rp < SIM_NR_PORTS) {
		struct sim_domain *peer = rd == dom->domid ? dom :
							     noxs_sim_domain(rd, 0);
		if (peer) {
			struct sim_port *r = &peer->ports[rp];
			if (atomic_load(&r->state) == SIM_PORT_INTERDOMAIN &&
				atomic_load(&r->remote_dom) == dom->domid &&
				atomic_load(&r->remote_port) == port) {
				atomic_store(&r->remote_port, 0);
				atomic_store(&r->state, SIM_PORT_UNBOUND);
				wake = 1;
				rdom = rdom ? rdom : peer;
			}
		}
	}
	port_free_locked(dom, port);
	struct sim_domain *held = rdom && rdom != dom ? rdom : NULL;
	noxs_sim_unlock(dom, held);
	if (wake)
		noxs_sim_port_raise(rd == dom->domid ? dom : rdom, rp, -1);
	return 0;
}

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
	domain_path(domid, path, sizeof(path));
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

/* ---- reaping ---- */

unsigned noxs_sim_reap_slot(struct sim_domain *dom, uint32_t slot,
	uint32_t gen)
{
	struct sim_slot *s;
	uint32_t high, list, n = 0;

	if (slot >= SIM_NR_SLOTS)
		return 0;
	s = &dom->slots[slot];
	if (atomic_load(&s->gen) != gen ||
		atomic_load(&s->state) == SIM_SLOT_FREE)
		return 0;
	/* Nobody consumes this stack any more: unlink what is on it. */
	list = atomic_exchange(&s->head, 0);
	while (list && list < SIM_NR_PORTS) {
		uint32_t next = atomic_load(&dom->ports[list].next);
		atomic_fetch_and(&dom->ports[list].flags, ~SIM_PF_QUEUED);
		list = next;
	}
	high = atomic_load(&dom->hdr->port_high);
	for (uint32_t p = 1; p < high && p < SIM_NR_PORTS; p++) {
		struct sim_port *e = &dom->ports[p];
		if (atomic_load(&e->state) == SIM_PORT_FREE ||
			atomic_load(&e->slot) != slot ||
			atomic_load(&e->gen) != gen)
			continue;
		if (atomic_load(&e->state) == SIM_PORT_RESERVED) {
			noxs_sim_lock(dom, NULL);
			port_free_locked(dom, p);
			noxs_sim_unlock(dom, NULL);
			n++;
		} else if (noxs_sim_port_close(dom, p, slot, gen) == 0) {
			n++;
		}
	}
	noxs_sim_lock(dom, NULL);
	if (atomic_load(&s->gen) == gen) {
		atomic_store(&s->head, 0);
		atomic_store(&s->pid, 0);
		atomic_store(&s->state, SIM_SLOT_FREE);
		if (atomic_load(&dom->hdr->slot_hint) > slot)
			atomic_store(&dom->hdr->slot_hint, slot);
	}
	noxs_sim_unlock(dom, NULL);
	return n + 1;
}

static int owner_matches(const struct sim_owner *o, uint32_t pid,
	uint64_t start, uint32_t image)
{
	return atomic_load(&o->pid) == pid && atomic_load(&o->start) == start &&
		(image == 0 || atomic_load(&o->image) == image);
}

unsigned noxs_sim_reap_process(struct sim_domain *dom, uint32_t pid,
	uint64_t start, uint32_t image)
{
	uint32_t high;
	unsigned n = 0;

	high = atomic_load(&dom->hdr->map_high);
	for (uint32_t i = 0; i < high && i < SIM_NR_MAPS; i++) {
		struct sim_map *m = &dom->maps[i];
		if (atomic_load(&m->state) == SIM_MAP_ACTIVE &&
			owner_matches(&m->owner, pid, start, image)) {
			noxs_sim_map_release(dom, i);
			n++;
		}
	}
	high = atomic_load(&dom->hdr->grant_high);
	for (uint32_t r = SIM_FIRST_GRANT; r < high && r < SIM_NR_GRANTS;
		r++) {
		struct sim_grant *g = &dom->grants[r];
		if (atomic_load(&g->state) == SIM_GRANT_ACTIVE &&
			owner_matches(&g->owner, pid, start, image)) {
			noxs_sim_grant_end(dom, r, -1);
			n++;
		}
	}
	return n;
}

/* Small liveness memo for one reap pass. */
struct alive_memo {
	uint32_t pid[32];
	uint64_t start[32];
	int alive[32];
	unsigned n;
};

static int memo_alive(struct alive_memo *m, uint32_t pid, uint64_t start)
{
	for (unsigned i = 0; i < m->n; i++)
		if (m->pid[i] == pid && m->start[i] == start)
			return m->alive[i];
	int a = noxs_sim_process_alive(pid, start);
	if (m->n < 32) {
		m->pid[m->n] = pid;
		m->start[m->n] = start;
		m->alive[m->n++] = a;
	}
	return a;
}

unsigned noxs_sim_reap_domain(struct sim_domain *dom)
{
	struct alive_memo memo = { .n = 0 };
	uint32_t high;
	unsigned n = 0;

	high = atomic_load(&dom->hdr->slot_high);
	for (uint32_t i = 0; i < high && i < SIM_NR_SLOTS; i++) {
		struct sim_slot *s = &dom->slots[i];
		uint32_t st = atomic_load(&s->state);
		uint32_t gen = atomic_load(&s->gen);
		if (st == SIM_SLOT_USED && !noxs_sim_slot_alive(dom->domid, i, gen))
			n += noxs_sim_reap_slot(dom, i, gen);
		else if (st == SIM_SLOT_RESERVED &&
			kill((pid_t)atomic_load(&s->pid), 0) < 0 &&
			errno == ESRCH)
			n += noxs_sim_reap_slot(dom, i, gen);
	}
	high = atomic_load(&dom->hdr->map_high);
	for (uint32_t i = 0; i < high && i < SIM_NR_MAPS; i++) {
		struct sim_map *m = &dom->maps[i];
		if (atomic_load(&m->state) == SIM_MAP_ACTIVE &&
			!memo_alive(&memo, atomic_load(&m->owner.pid),
				atomic_load(&m->owner.start))) {
			noxs_sim_map_release(dom, i);
			n++;
		}
	}
	high = atomic_load(&dom->hdr->grant_high);
	for (uint32_t r = SIM_FIRST_GRANT; r < high && r < SIM_NR_GRANTS;
		r++) {
		struct sim_grant *g = &dom->grants[r];
		if (atomic_load(&g->state) != SIM_GRANT_ACTIVE)
			continue;
		if (atomic_load(&g->owner.image) == SIM_IMAGE_FILE ?
				!noxs_sim_grant_file_alive(dom, r) :
				!memo_alive(&memo, atomic_load(&g->owner.pid),
					atomic_load(&g->owner.start))) {
			noxs_sim_grant_end(dom, r, -1);
			n++;
		}
	}
	return n;
}

/* ---- guardian ---- */

#ifdef NOXS_SIM_STATIC
void noxs_sim_guard_domain(uint32_t domid)
{
	(void)domid;
}

void noxs_sim_guard_slot(uint32_t domid, uint32_t slot, uint32_t gen)
{
	(void)domid;
	(void)slot;
	(void)gen;
}
#else
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static int guard_fd = -1;
static pid_t guard_pid; /* the process guard_fd belongs to */
static uint8_t *guard_domains; /* bitmap of domains already announced */
static struct sim_guard_ledger *guard_ledger; /* shared with the guardian */
static int atfork_done;

static void guard_atfork_child(void)
{
	/* The child is a new process: it gets its own guardian if it needs one. */
	if (guard_fd >= 0)
		close(guard_fd);
	guard_fd = -1;
	guard_pid = 0;
	if (guard_domains)
		memset(guard_domains, 0, SIM_DOMID_LIMIT / 8);
	/* The parent's ledger is the parent's guardian's business. */
	if (guard_ledger)
		munmap(guard_ledger, SIM_GUARD_LEDGER_SIZE);
	guard_ledger = NULL;
	pthread_mutex_init(&guard_lock, NULL);
}

static void guard_spawn(void)
{
	const char *env = getenv("NOXS_SIM_GUARDIAN");
	char path[PATH_MAX], pidbuf[32], startbuf[32], imagebuf[32];
	const struct sim_self *me = noxs_sim_self();
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, deflt;
	int sp[2], pidfd;
	pid_t child;
	Dl_info info;

	guard_pid = getpid();
	if (!atfork_done) {
		pthread_atfork(NULL, NULL, guard_atfork_child);
		atfork_done = 1;
	}
	if (env && strcmp(env, "none") == 0)
		return;
	if (env && *env) {
		snprintf(path, sizeof(path), "%s", env);
	} else {
		if (!dladdr((void *)noxs_sim_guard_domain, &info) ||
			!info.dli_fname)
			return;
		snprintf(path, sizeof(path), "%s", info.dli_fname);
		char *slash = strrchr(path, '/');
		if (!slash)
			return;
		snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path),
			"noxs-sim-guardian");
	}
	pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		close(pidfd);
		return;
	}
	/* The ledger (optional: without it every announcement is a message). */
	int lfd = memfd_create("noxs-sim-guard", MFD_CLOEXEC);
	if (lfd >= 0 && ftruncate(lfd, (off_t)SIM_GUARD_LEDGER_SIZE) == 0) {
		void *l = mmap(NULL, SIM_GUARD_LEDGER_SIZE,
			PROT_READ | PROT_WRITE, MAP_SHARED, lfd, 0);
		if (l != MAP_FAILED) {
			const char *cap = getenv("NOXS_SIM_LEDGER_SLOTS");
			char *end;
			unsigned long v = cap && *cap ?
				strtoul(cap, &end, 10) :
				SIM_GUARD_LEDGER_SLOTS;

			guard_ledger = l;
			/* Tests lower it to run the fallback to messages. */
			guard_ledger->cap = cap && *cap && *end == '\0' &&
					v < SIM_GUARD_LEDGER_SLOTS ?
				(uint32_t)v :
				SIM_GUARD_LEDGER_SLOTS;
		}
	}
	snprintf(pidbuf, sizeof(pidbuf), "%u", (unsigned)me->pid);
	snprintf(startbuf, sizeof(startbuf), "%llu",
		(unsigned long long)me->start);
	snprintf(imagebuf, sizeof(imagebuf), "%u", (unsigned)me->image);
	char *argv[] = { path, sim_dir_path, pidbuf, startbuf, imagebuf, NULL };
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pidfd, 3);
	posix_spawn_file_actions_adddup2(&fa, sp[1], 4);
	if (guard_ledger)
		posix_spawn_file_actions_adddup2(&fa, lfd, 5);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (!getenv("NOXS_SIM_GUARDIAN_DEBUG"))
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY,
			0);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGCHLD);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	int rc = posix_spawn(&child, path, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pidfd);
	close(sp[1]);
	if (lfd >= 0)
		close(lfd);
	if (rc != 0) {
		close(sp[0]);
		goto no_ledger;
	}
	/*
	 * The guardian forks once more and its first process exits at once,
	 * so the guardian is never our child (a caller's wait() loop must
	 * not see it). The byte it sends says it is running.
	 */
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
		;
	char ok;
	ssize_t n;
	do
		n = read(sp[0], &ok, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		close(sp[0]);
		goto no_ledger;
	}
	guard_fd = sp[0];
	return;
no_ledger:
	if (guard_ledger)
		munmap(guard_ledger, SIM_GUARD_LEDGER_SIZE);
	guard_ledger = NULL;
}

static void guard_send(const struct sim_guard_msg *msg)
{
	const char *p = (const char *)msg;
	size_t left = sizeof(*msg);

	while (left > 0) {
		ssize_t n = send(guard_fd, p, left, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(guard_fd);
			guard_fd = -1;
			return;
		}
		p += n;
		left -= (size_t)n;
	}
}

void noxs_sim_guard_domain(uint32_t domid)
{
	struct sim_guard_msg msg = { SIM_GUARD_DOMAIN, domid, 0, 0 };
	int saved = errno;

	if (domid >= SIM_DOMID_LIMIT)
		return;
	pthread_mutex_lock(&guard_lock);
	if (!guard_domains)
		guard_domains = calloc(SIM_DOMID_LIMIT / 8, 1);
	if (guard_pid != getpid())
		guard_spawn();
	if (guard_fd >= 0 && guard_domains &&
		!(guard_domains[domid / 8] & (1u << (domid % 8)))) {
		if (guard_ledger)
			guard_ledger->touched[domid / 8] |=
				(uint8_t)(1u << (domid % 8));
		else
			guard_send(&msg);
		guard_domains[domid / 8] |= (uint8_t)(1u << (domid % 8));
	}
	pthread_mutex_unlock(&guard_lock);
	errno = saved;
}

void noxs_sim_guard_slot(uint32_t domid, uint32_t slot, uint32_t gen)
{
	struct sim_guard_msg msg = { SIM_GUARD_SLOT, domid, slot, gen };
	int saved = errno;

	noxs_sim_guard_domain(domid);
	pthread_mutex_lock(&guard_lock);
	if (guard_fd >= 0) {
		struct sim_guard_ledger *l = guard_ledger;
		uint32_t n = l ? atomic_load_explicit(&l->nslots,
					 memory_order_relaxed) :
				 0;
		if (l && n < l->cap) {
			l->slots[n] = msg;
			atomic_store_explicit(&l->nslots, n + 1,
				memory_order_release);
		} else {
			guard_send(&msg);
		}
	}
	pthread_mutex_unlock(&guard_lock);
	errno = saved;
}
#endif
