/*
 * noxs simulator statistics: what is alive in the simulator, per domain.
 *
 * For tests of any module that run on the simulator: link
 * build/sim/libnoxs-simstat.a (Makefile variable SIMSTAT_LIB) and
 * include "sim/simstat.h" (compile with -I. from the top of the tree).
 * It reads the state under NOXS_SIM_DIR directly; it needs none of the
 * simulated libraries. The command-line face is build/sim/noxs-simstat.
 *
 * All functions return 0 on success, -1 with errno on failure. With
 * reap != 0 they first release what dead processes and closed handles
 * still own (as their guardian would), so counts are of live owners.
 */
#ifndef NOXS_SIMSTAT_H
#define NOXS_SIMSTAT_H

#include <stdint.h>

/* Port states, as in noxs_simstat_port(). */
#define NOXS_SIMSTAT_PORT_FREE 0u
#define NOXS_SIMSTAT_PORT_RESERVED 1u
#define NOXS_SIMSTAT_PORT_UNBOUND 2u
#define NOXS_SIMSTAT_PORT_INTERDOMAIN 3u

/* Grant states, as in noxs_simstat_grant(). */
#define NOXS_SIMSTAT_GRANT_FREE 0u
#define NOXS_SIMSTAT_GRANT_ACTIVE 1u
#define NOXS_SIMSTAT_GRANT_ENDING 2u

struct noxs_simstat {
	uint32_t domains; /* domains counted (1 for a single domain) */
	uint32_t evtchn_handles; /* open xenevtchn handles */
	uint32_t ports_unbound;
	uint32_t ports_interdomain;
	uint32_t grants_active; /* refs shared and owned by a live process */
	uint32_t grants_ending; /* unshared, still mapped by the grantee */
	uint32_t grant_maps; /* pages this domain maps from grants */
	uint32_t mem_pages; /* guest memory frames */
};

/* Counts for one domain; ESRCH if the domain never existed. */
int noxs_simstat_domain(uint32_t domid, int reap, struct noxs_simstat *out);

/* Sum over every domain of the simulator (zeros if there is none). */
int noxs_simstat_total(int reap, struct noxs_simstat *out);

/* True (1) when nothing is alive: no handle, port, grant or mapping. */
int noxs_simstat_is_idle(const struct noxs_simstat *s);

/*
 * Reap and poll until the whole simulator is idle, for at most
 * timeout_ms (guardians reap asynchronously after a death): 0 when
 * idle, -1 with ETIMEDOUT otherwise (*last holds the last counts).
 */
int noxs_simstat_wait_idle(int timeout_ms, struct noxs_simstat *last);

/* State of one port: NOXS_SIMSTAT_PORT_*, and its peer if interdomain. */
int noxs_simstat_port(uint32_t domid, uint32_t port, uint32_t *state,
	uint32_t *remote_dom, uint32_t *remote_port);

/* State of one grant ref: NOXS_SIMSTAT_GRANT_*, grantee, mapping count. */
int noxs_simstat_grant(uint32_t domid, uint32_t ref, uint32_t *state,
	uint32_t *grantee, uint32_t *map_count);

#endif
