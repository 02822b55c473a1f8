/*
 * noxs simulated hypervisor: the core's shared state (the sim directory,
 * the table of mapped domains), process identity, locking and the
 * liveness of evtchn handles. See sim.h for the file layout, the
 * ownership rules and the core's other files, docs/SIM.md for the
 * semantics.
 */
#include "common/parse.h"
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t core_lock = PTHREAD_MUTEX_INITIALIZER;
char sim_dir_path[PATH_MAX];
static uint64_t sim_dir_hash;
static _Atomic int sim_dir_ready;
int sim_dir_tmpfs; /* set with sim_dir_path */
_Atomic(struct sim_domain *) *sim_domains; /* [SIM_DOMID_LIMIT] */

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
		struct statfs sfs;
		sim_dir_tmpfs = statfs(real, &sfs) == 0 &&
			sfs.f_type == TMPFS_MAGIC;
		sim_domains = calloc(SIM_DOMID_LIMIT, sizeof(*sim_domains));
		if (!sim_domains) {
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

/*
 * glibc makes every getpid() a system call, and the simulator asks on
 * every share, map and notify (is this still the process that owns its
 * tables, or a fork child?). A fork handler forgets the cached value in
 * the child instead.
 */
static _Atomic uint32_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void pid_forget(void)
{
	atomic_store_explicit(&cached_pid, 0, memory_order_relaxed);
}

static void pid_init(void)
{
	pthread_atfork(NULL, NULL, pid_forget);
}

uint32_t noxs_sim_pid(void)
{
	uint32_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);

	if (pid == 0) {
		pthread_once(&pid_once, pid_init);
		pid = (uint32_t)getpid();
		atomic_store_explicit(&cached_pid, pid, memory_order_relaxed);
	}
	return pid;
}

const struct sim_self *noxs_sim_self(void)
{
	uint32_t pid = noxs_sim_pid();

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
