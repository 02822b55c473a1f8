/*
 * Simulator at scale: 10,000 domains' handles in one process (one evtchn
 * and one gnttab handle per domain), one port each to a dom0 handle that
 * notifies them all; then everything is released.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#include "sim/simstat.h"
#include "check_main.h"
#include "check_sim.h"

#define NDOM 10000

static void fresh_dir(void)
{
    sim_fresh_dir("scale");
    setenv("NOXS_SIM_MEM_PAGES", "1", 1);
}

START_TEST(ten_thousand_domains)
{
    static xenevtchn_handle *ev[NDOM + 1];
    static xengnttab_handle *gt[NDOM + 1];
    static int port[NDOM + 1], port0[NDOM + 1];
    static struct pollfd pfd[NDOM + 1];
    struct rlimit rl;
    int fds_before, fds_after;

    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    ck_assert_uint_ge(rl.rlim_cur, NDOM + 200);
    fds_before = dup(0);
    close(fds_before);

    xenevtchn_handle *e0 = sim_evtchn_as(0);
    xengntshr_handle *s0 = xengntshr_open(NULL, 0);
    ck_assert_ptr_nonnull(e0);
    for (unsigned d = 1; d <= NDOM; d++) {
        ev[d] = sim_evtchn_as(d);
        ck_assert_msg(ev[d] != NULL, "evtchn open dom %u: %s", d,
                      strerror(errno));
        gt[d] = xengnttab_open(NULL, 0);
        ck_assert_ptr_nonnull(gt[d]);
        port[d] = xenevtchn_bind_unbound_port(ev[d], 0);
        ck_assert_int_gt(port[d], 0);
        port0[d] = xenevtchn_bind_interdomain(e0, d, (evtchn_port_t)port[d]);
        ck_assert_int_gt(port0[d], 0);
    }
    /* One fd per evtchn handle, none per gnttab handle. */
    fds_after = dup(0);
    close(fds_after);
    ck_assert_int_le(fds_after - fds_before, NDOM + 1 + 8);
    /* Drain dom0's bind-time events, then notify every domain. */
    for (unsigned d = 1; d <= NDOM; d++) {
        int p = xenevtchn_pending(e0);
        ck_assert_int_gt(p, 0);
        xenevtchn_unmask(e0, (evtchn_port_t)p);
    }
    for (unsigned d = 1; d <= NDOM; d++)
        ck_assert_int_eq(xenevtchn_notify(e0, (evtchn_port_t)port0[d]), 0);
    for (unsigned d = 1; d <= NDOM; d++) {
        pfd[d - 1].fd = xenevtchn_fd(ev[d]);
        pfd[d - 1].events = POLLIN;
    }
    int ready = 0;
    for (int tries = 0; tries < 100 && ready < NDOM; tries++)
        ready = poll(pfd, NDOM, 100);
    ck_assert_int_eq(ready, NDOM);
    for (unsigned d = 1; d <= NDOM; d++)
        ck_assert_int_eq(xenevtchn_pending(ev[d]), port[d]);
    /* A grant from dom0 to a few domains, mapped by each. */
    for (unsigned d = 1; d <= NDOM; d += 997) {
        uint32_t ref;
        char *g = xengntshr_share_pages(s0, d, 1, &ref, 1);
        ck_assert_ptr_nonnull(g);
        g[0] = (char)d;
        char *m = xengnttab_map_grant_ref(gt[d], 0, ref, PROT_READ);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(m[0], (char)d);
    }
    struct noxs_simstat st;
    ck_assert_int_eq(noxs_simstat_total(0, &st), 0);
    ck_assert_uint_eq(st.domains, NDOM + 1);
    ck_assert_uint_eq(st.evtchn_handles, NDOM + 1);
    ck_assert_uint_eq(st.ports_interdomain, 2 * NDOM);
    for (unsigned d = 1; d <= NDOM; d++) {
        xenevtchn_close(ev[d]);
        xengnttab_close(gt[d]);
    }
    xenevtchn_close(e0);
    xengntshr_close(s0);
    ck_assert_int_eq(noxs_simstat_wait_idle(10000, &st), 0);
}
END_TEST

static Suite *suite(void)
{
    return check_suite("sim_scale", "scale", fresh_dir, NULL, 120,
                       CHECK_TESTS(ten_thousand_domains));
}

CHECK_MAIN(suite)
