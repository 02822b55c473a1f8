/*
 * noxs-simstat: print what is alive in the simulator (NOXS_SIM_DIR),
 * per domain and in total, after reaping dead owners.
 *
 *   noxs-simstat [--json] [--domid N] [--no-reap]
 *
 * Exit status 0; 1 on error; 3 with --idle-check if anything is alive.
 */
#include "simstat.h"

#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print(const char *name, long domid, const struct noxs_simstat *s,
	int json, int first)
{
	if (json) {
		printf("%s{\"%s\":%ld,\"evtchn_handles\":%u,\"ports_unbound\":%u,"
		       "\"ports_interdomain\":%u,\"grants_active\":%u,"
		       "\"grants_ending\":%u,\"grant_maps\":%u,"
		       "\"mem_pages\":%u}",
			first ? "" : ",", name, domid, s->evtchn_handles,
			s->ports_unbound, s->ports_interdomain,
			s->grants_active, s->grants_ending, s->grant_maps,
			s->mem_pages);
	} else {
		printf("%s=%ld evtchn_handles=%u ports_unbound=%u "
		       "ports_interdomain=%u grants_active=%u grants_ending=%u "
		       "grant_maps=%u mem_pages=%u\n",
			name, domid, s->evtchn_handles, s->ports_unbound,
			s->ports_interdomain, s->grants_active,
			s->grants_ending, s->grant_maps, s->mem_pages);
	}
}

int main(int argc, char **argv)
{
	int json = 0, reap = 1, idle_check = 0;
	long only = -1;
	struct noxs_simstat s, total;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--no-reap") == 0)
			reap = 0;
		else if (strcmp(argv[i], "--idle-check") == 0)
			idle_check = 1;
		else if (strcmp(argv[i], "--domid") == 0 && i + 1 < argc)
			only = strtol(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: %s [--json] [--domid N] "
					"[--no-reap] [--idle-check]\n",
				argv[0]);
			return 1;
		}
	}
	if (!noxs_sim_dir()) {
		perror("noxs-simstat: sim dir");
		return 1;
	}
	if (only >= 0) {
		if (noxs_simstat_domain((uint32_t)only, reap, &s) < 0) {
			perror("noxs-simstat");
			return 1;
		}
		if (json)
			printf("{\"dir\":\"%s\",\"domains\":[", noxs_sim_dir());
		print("domid", only, &s, json, 1);
		if (json)
			printf("]}\n");
		return idle_check && !noxs_simstat_is_idle(&s) ? 3 : 0;
	}
	uint32_t limit = noxs_sim_domain_limit();
	int first = 1;
	memset(&total, 0, sizeof(total));
	if (json)
		printf("{\"dir\":\"%s\",\"domains\":[", noxs_sim_dir());
	for (uint32_t d = 0; d < limit; d++) {
		if (noxs_simstat_domain(d, reap, &s) < 0)
			continue;
		print("domid", d, &s, json, first);
		first = 0;
		total.domains++;
		total.evtchn_handles += s.evtchn_handles;
		total.ports_unbound += s.ports_unbound;
		total.ports_interdomain += s.ports_interdomain;
		total.grants_active += s.grants_active;
		total.grants_ending += s.grants_ending;
		total.grant_maps += s.grant_maps;
		total.mem_pages += s.mem_pages;
	}
	if (json) {
		printf("],\"total\":");
		print("domains", total.domains, &total, 1, 1);
		printf("}\n");
	} else {
		print("total domains", total.domains, &total, 0, 1);
	}
	return idle_check && !noxs_simstat_is_idle(&total) ? 3 : 0;
}
