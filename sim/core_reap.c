/*
 * noxs simulated hypervisor: reaping what dead owners held (an evtchn
 * handle's ports and slot, a process's grants and mappings, everything
 * dead in a domain). The guardian calls these when its process dies;
 * without one, the stat tool and full tables do. See sim.h and
 * docs/SIM.md.
 */
#include "sim.h"

#include <errno.h>
#include <signal.h>

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
			sim_port_free_locked(dom, p);
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
