/*
 * noxs simulator statistics (libnoxs-simstat.a), built on a private,
 * hidden copy of the simulator core so it depends on no shared library.
 */
#include "simstat.h"

#include "sim.h"

#include <errno.h>
#include <string.h>
#include <time.h>

_Static_assert(NOXS_SIMSTAT_PORT_INTERDOMAIN == SIM_PORT_INTERDOMAIN,
	"port states");
_Static_assert(NOXS_SIMSTAT_GRANT_ENDING == SIM_GRANT_ENDING, "grant states");

static void count(struct sim_domain *d, int reap, struct noxs_simstat *out)
{
	uint32_t high;

	if (reap)
		noxs_sim_reap_domain(d);
	out->domains++;
	out->mem_pages += d->hdr->mem_pages;
	high = atomic_load(&d->hdr->slot_high);
	for (uint32_t i = 0; i < high && i < SIM_NR_SLOTS; i++)
		if (atomic_load(&d->slots[i].state) != SIM_SLOT_FREE)
			out->evtchn_handles++;
	high = atomic_load(&d->hdr->port_high);
	for (uint32_t p = 1; p < high && p < SIM_NR_PORTS; p++) {
		uint32_t st = atomic_load(&d->ports[p].state);
		if (st == SIM_PORT_UNBOUND)
			out->ports_unbound++;
		else if (st == SIM_PORT_INTERDOMAIN)
			out->ports_interdomain++;
	}
	high = atomic_load(&d->hdr->grant_high);
	for (uint32_t r = SIM_FIRST_GRANT; r < high && r < SIM_NR_GRANTS; r++) {
		uint32_t st = atomic_load(&d->grants[r].state);
		if (st == SIM_GRANT_ACTIVE)
			out->grants_active++;
		else if (st == SIM_GRANT_ENDING)
			out->grants_ending++;
	}
	high = atomic_load(&d->hdr->map_high);
	for (uint32_t i = 0; i < high && i < SIM_NR_MAPS; i++)
		if (atomic_load(&d->maps[i].state) == SIM_MAP_ACTIVE)
			out->grant_maps++;
}

int noxs_simstat_domain(uint32_t domid, int reap, struct noxs_simstat *out)
{
	struct sim_domain *d = noxs_sim_domain(domid, 0);

	memset(out, 0, sizeof(*out));
	if (!d)
		return -1;
	count(d, reap, out);
	return 0;
}

int noxs_simstat_total(int reap, struct noxs_simstat *out)
{
	uint32_t limit = noxs_sim_domain_limit();

	memset(out, 0, sizeof(*out));
	if (!noxs_sim_dir())
		return -1;
	for (uint32_t d = 0; d < limit; d++) {
		struct sim_domain *dom = noxs_sim_domain(d, 0);
		if (dom)
			count(dom, reap, out);
	}
	return 0;
}

int noxs_simstat_is_idle(const struct noxs_simstat *s)
{
	return s->evtchn_handles == 0 && s->ports_unbound == 0 &&
		s->ports_interdomain == 0 && s->grants_active == 0 &&
		s->grants_ending == 0 && s->grant_maps == 0;
}

int noxs_simstat_wait_idle(int timeout_ms, struct noxs_simstat *last)
{
	struct noxs_simstat s;
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	for (int waited = 0;; waited += 10) {
		if (noxs_simstat_total(1, &s) < 0)
			return -1;
		if (last)
			*last = s;
		if (noxs_simstat_is_idle(&s))
			return 0;
		if (waited >= timeout_ms)
			break;
		nanosleep(&ts, NULL);
	}
	errno = ETIMEDOUT;
	return -1;
}

int noxs_simstat_port(uint32_t domid, uint32_t port, uint32_t *state,
	uint32_t *remote_dom, uint32_t *remote_port)
{
	struct sim_domain *d = noxs_sim_domain(domid, 0);

	if (!d)
		return -1;
	if (port == 0 || port >= SIM_NR_PORTS) {
		errno = EINVAL;
		return -1;
	}
	struct sim_port *p = &d->ports[port];
	*state = atomic_load(&p->state);
	if (remote_dom)
		*remote_dom = atomic_load(&p->remote_dom);
	if (remote_port)
		*remote_port = atomic_load(&p->remote_port);
	return 0;
}

int noxs_simstat_grant(uint32_t domid, uint32_t ref, uint32_t *state,
	uint32_t *grantee, uint32_t *map_count)
{
	struct sim_domain *d = noxs_sim_domain(domid, 0);

	if (!d)
		return -1;
	if (ref >= SIM_NR_GRANTS) {
		errno = EINVAL;
		return -1;
	}
	struct sim_grant *g = &d->grants[ref];
	*state = atomic_load(&g->state);
	if (grantee)
		*grantee = atomic_load(&g->grantee);
	if (map_count)
		*map_count = atomic_load(&g->map_count);
	return 0;
}
