/*
 * noxs simulated hypervisor: the process side of the guardian (spawned
 * with the first process-owned resource; told, through a shared ledger
 * or messages on a socket, which domains and evtchn handles the process
 * used). See sim.h, sim/guardian.c and docs/SIM.md.
 */
#include "sim.h"

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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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
	if (guard_pid != (pid_t)noxs_sim_pid())
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
