/*
 * noxs-simctl: the toolstack's hand on simulated domains, as `xl` is on
 * Xen's (NOXS_SIM_DIR).
 *
 *   noxs-simctl list                      domid, state (alive, dying), one a line
 *   noxs-simctl destroy DOMID [--no-kill] [--wait MS]
 *   noxs-simctl shutdown DOMID [poweroff|reboot|suspend|crash]
 *   noxs-simctl create DOMID
 *
 * destroy marks the domain destroyed (dying) and kills every process
 * that holds a resource as it (its "vCPUs"), then raises VIRQ_DOM_EXC;
 * the domain is gone (and its domid reusable) once nothing of it is left,
 * e.g. once backends unmapped its pages. --wait waits up to MS for that
 * (exit 4 if it is still dying). --no-kill leaves the processes running:
 * the domain is then gone only when they have exited.
 *
 * create brings a domain into being (alive, no process of its own yet),
 * as the first *_open as it would: a domain with no noxs process, a
 * stock guest as dom0 sees it. EBUSY while the domid is dying.
 *
 * shutdown marks a live domain shut down, as a guest's SCHEDOP_shutdown
 * does (listed with XEN_DOMINF_shutdown and the reason until destroyed;
 * its processes keep running), and raises VIRQ_DOM_EXC.
 *
 * Exit status 0; 1 on error; 2 usage; 4 still dying after --wait.
 */
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int usage(void)
{
	fprintf(stderr, "usage: noxs-simctl list\n"
			"       noxs-simctl destroy DOMID [--no-kill] "
			"[--wait MS]\n"
			"       noxs-simctl shutdown DOMID "
			"[poweroff|reboot|suspend|crash]\n"
			"       noxs-simctl create DOMID\n");
	return 2;
}

static int parse_ul(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 0);
	return errno || end == s || *end || *out > max ? -1 : 0;
}

static int list(void)
{
	uint32_t limit = noxs_sim_domain_limit();

	for (uint32_t d = 0; d < limit; d++) {
		struct sim_domain *dom = noxs_sim_domain(d, 0);
		uint32_t life;

		if (!dom || (life = noxs_sim_domain_settle(dom)) == SIM_LIFE_DEAD)
			continue;
		printf("%u %s\n", (unsigned)d,
			life == SIM_LIFE_DYING ? "dying" : "alive");
	}
	return 0;
}

static int destroy(int argc, char **argv)
{
	unsigned long domid, wait_ms = 0;
	int kill = 1;
	struct sim_domain *dom;

	if (argc < 1 || parse_ul(argv[0], SIM_DOMID_LIMIT - 1, &domid) < 0)
		return usage();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-kill") == 0)
			kill = 0;
		else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc &&
			parse_ul(argv[i + 1], 3600000, &wait_ms) == 0)
			i++;
		else
			return usage();
	}
	if (noxs_sim_domain_destroy((uint32_t)domid, kill) < 0) {
		fprintf(stderr, "noxs-simctl: destroy %lu: %s\n", domid,
			strerror(errno));
		return 1;
	}
	dom = noxs_sim_domain((uint32_t)domid, 0);
	for (unsigned long waited = 0; dom; waited += 10) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (noxs_sim_domain_settle(dom) != SIM_LIFE_DYING)
			return 0;
		if (waited >= wait_ms)
			break;
		nanosleep(&ts, NULL);
	}
	return wait_ms ? 4 : 0;
}

static int shutdown_dom(int argc, char **argv)
{
	static const char *const reasons[] = { "poweroff", "reboot",
		"suspend", "crash" };
	unsigned long domid;
	uint32_t r = 0;

	if (argc < 1 || argc > 2 ||
		parse_ul(argv[0], SIM_DOMID_LIMIT - 1, &domid) < 0)
		return usage();
	if (argc == 2) {
		for (r = 0; r < 4 && strcmp(argv[1], reasons[r]) != 0; r++)
			;
		if (r == 4)
			return usage();
	}
	/* SHUTDOWN_poweroff 0, reboot 1, suspend 2, crash 3. */
	if (noxs_sim_domain_shutdown((uint32_t)domid, r) < 0) {
		fprintf(stderr, "noxs-simctl: shutdown %lu: %s\n", domid,
			strerror(errno));
		return 1;
	}
	return 0;
}

static int create(int argc, char **argv)
{
	unsigned long domid;

	if (argc != 1 || parse_ul(argv[0], SIM_DOMID_LIMIT - 1, &domid) < 0)
		return usage();
	if (!noxs_sim_domain((uint32_t)domid, 1)) {
		fprintf(stderr, "noxs-simctl: create %lu: %s\n", domid,
			strerror(errno == ESRCH ? EBUSY : errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0 && argc == 2)
		return list();
	if (argc >= 2 && strcmp(argv[1], "destroy") == 0)
		return destroy(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "create") == 0)
		return create(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "shutdown") == 0)
		return shutdown_dom(argc - 2, argv + 2);
	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		usage();
		return 0;
	}
	return usage();
}
