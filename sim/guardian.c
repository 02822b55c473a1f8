/*
 * noxs-sim-guardian: reaps one process's simulator resources when it dies.
 *
 * Spawned by the simulator libraries in a process the first time it owns
 * something (see guard_spawn() in core_guard.c), with:
 *   fd 3  a pidfd of that process (readable once it has exited)
 *   fd 4  a stream socket: EOF when the process dies or execs; carries
 *         announcements (struct sim_guard_msg) only when the ledger is
 *         missing or full
 *   fd 5  (optional) the ledger memfd (struct sim_guard_ledger): the
 *         domains it touched and the evtchn handles it opened, written
 *         by the process without waking us; read once, at the end
 *   argv  sim dir, pid, start time, image id
 * It forks once so that it is not its creator's child, and says so with
 * one byte on fd 4. When the process dies (or execs: fd 4 reaches EOF)
 * it releases the process's grant mappings (firing their unmap
 * notifications), ends its grants, and closes the ports of each handle
 * whose socket is gone, waking the peers. Handles whose socket still
 * lives on in another process (fd passing, fork) are retried until it is
 * gone. Then it exits: no daemon outlives its work.
 */
#include "sim.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct slot_ref {
	uint32_t domid, slot, gen, done;
};

/* What the process owned: the domains it touched, its handles' slots. */
struct guard {
	uint8_t *touched;
	struct slot_ref *slots;
	size_t nslots, cap;
};

static void touch(struct guard *g, uint32_t domid)
{
	g->touched[domid / 8] |= (uint8_t)(1u << (domid % 8));
}

static int touched(const struct guard *g, uint32_t domid)
{
	return (g->touched[domid / 8] & (1u << (domid % 8))) != 0;
}

/*
 * Leave the creator: fork once so that we are not its child, and say so
 * with one byte on fd 4. Returns in the new process only: 0, or -1.
 */
static int detach(void)
{
	pid_t c = fork();
	if (c < 0)
		return -1;
	if (c > 0)
		_exit(0);
	setsid();
	if (send(4, "g", 1, MSG_NOSIGNAL) != 1)
		return -1;
	return 0;
}

/* One announcement read from fd 4: 0, or -1 when out of memory. */
static int take_announcement(struct guard *g, const struct sim_guard_msg *m)
{
	if (m->domid >= SIM_DOMID_LIMIT)
		return 0;
	touch(g, m->domid);
	if (m->type != SIM_GUARD_SLOT)
		return 0;
	if (g->nslots == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		struct slot_ref *s = realloc(g->slots, g->cap * sizeof(*s));
		if (!s)
			return -1;
		g->slots = s;
	}
	g->slots[g->nslots++] = (struct slot_ref){ m->domid, m->slot, m->gen,
		0 };
	return 0;
}

/*
 * Wait until the process dies (fd 3 readable) or fd 4 reaches EOF,
 * taking the announcements that arrive meanwhile. 0, or -1.
 */
static int wait_for_end(struct guard *g)
{
	char buf[4096];
	size_t have = 0;
	int sock_open = 1;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = 3, .events = POLLIN },
			{ .fd = sock_open ? 4 : -1, .events = POLLIN },
		};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		int dead = pfd[0].revents != 0;
		/* Drain announcements before acting on a death. */
		while (sock_open) {
			ssize_t n = recv(4, buf + have, sizeof(buf) - have,
				MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			if (n == 0) {
				sock_open = 0;
				break;
			}
			have += (size_t)n;
			size_t used = 0;
			while (have - used >= sizeof(struct sim_guard_msg)) {
				struct sim_guard_msg m;
				memcpy(&m, buf + used, sizeof(m));
				used += sizeof(m);
				if (take_announcement(g, &m) < 0)
					return -1;
			}
			memmove(buf, buf + used, have - used);
			have -= used;
		}
		if (dead || !sock_open)
			return 0;
	}
}

/*
 * What the ledger on fd 5 says (the process no longer writes to it).
 * 0, or -1 when out of memory; no ledger is not an error.
 */
static int read_ledger(struct guard *g)
{
	struct sim_guard_ledger *l = mmap(NULL, SIM_GUARD_LEDGER_SIZE,
		PROT_READ, MAP_SHARED, 5, 0);
	if (l == MAP_FAILED)
		return 0;
	uint32_t n = atomic_load_explicit(&l->nslots,
		memory_order_acquire);
	if (n > SIM_GUARD_LEDGER_SLOTS)
		n = SIM_GUARD_LEDGER_SLOTS;
	for (size_t i = 0; i < sizeof(l->touched); i++)
		g->touched[i] |= l->touched[i];
	if (n > 0) {
		struct slot_ref *s = realloc(g->slots,
			(g->nslots + n) * sizeof(*s));
		if (!s)
			return -1;
		g->slots = s;
		g->cap = g->nslots + n;
		for (uint32_t i = 0; i < n; i++) {
			struct sim_guard_msg m = l->slots[i];
			if (m.domid >= SIM_DOMID_LIMIT)
				continue;
			touch(g, m.domid);
			g->slots[g->nslots++] = (struct slot_ref){ m.domid,
				m.slot, m.gen, 0 };
		}
	}
	munmap(l, SIM_GUARD_LEDGER_SIZE);
	return 0;
}

/* Mappings and grants die with the process image. */
static void reap_mappings(const struct guard *g, uint32_t pid,
	uint64_t start, uint32_t image)
{
	for (uint32_t d = 0; d < SIM_DOMID_LIMIT; d++) {
		if (!touched(g, d))
			continue;
		struct sim_domain *dom = noxs_sim_domain(d, 0);
		if (dom)
			noxs_sim_reap_process(dom, pid, start, image);
	}
}

/*
 * Ports die with the last copy of their handle's socket: retried until
 * every slot's socket is gone.
 */
static void reap_ports(struct guard *g)
{
	for (;;) {
		size_t left = 0;
		for (size_t i = 0; i < g->nslots; i++) {
			struct slot_ref *s = &g->slots[i];
			if (s->done)
				continue;
			if (noxs_sim_slot_alive(s->domid, s->slot, s->gen)) {
				left++;
				continue;
			}
			struct sim_domain *dom = noxs_sim_domain(s->domid, 0);
			if (dom)
				noxs_sim_reap_slot(dom, s->slot, s->gen);
			s->done = 1;
		}
		if (left == 0)
			break;
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* A destroyed domain whose last process this was is now dead. */
static void settle_dying(const struct guard *g)
{
	for (uint32_t d = 1; d < SIM_DOMID_LIMIT; d++) {
		if (!touched(g, d))
			continue;
		struct sim_domain *dom = noxs_sim_domain(d, 0);
		if (dom && atomic_load(&dom->hdr->life) == SIM_LIFE_DYING)
			noxs_sim_domain_settle(dom);
	}
}

int main(int argc, char **argv)
{
	struct guard g = { 0 };
	uint32_t pid, image;
	uint64_t start;

	if (argc != 5)
		return 2;
	pid = (uint32_t)strtoul(argv[2], NULL, 10);
	start = strtoull(argv[3], NULL, 10);
	image = (uint32_t)strtoul(argv[4], NULL, 10);
	setenv("NOXS_SIM_DIR", argv[1], 1);
	syscall(SYS_close_range, 6u, ~0u, 0u);
	signal(SIGPIPE, SIG_IGN);
	if (detach() < 0)
		return 1;
	g.touched = calloc(SIM_DOMID_LIMIT / 8, 1);
	if (!g.touched || !noxs_sim_dir())
		return 1;
	if (wait_for_end(&g) < 0 || read_ledger(&g) < 0)
		return 1;
	reap_mappings(&g, pid, start, image);
	reap_ports(&g);
	settle_dying(&g);
	return 0;
}
