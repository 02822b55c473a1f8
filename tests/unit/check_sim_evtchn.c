/*
 * Simulator: event channels (libxenevtchn on build/sim).
 * Linked against Debian's libxenevtchn; run with LD_LIBRARY_PATH=build/sim.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <xenevtchn.h>

#include "sim/simstat.h"
#include "check_main.h"
#include "check_sim.h"

static void fresh_dir(void)
{
    sim_fresh_dir("evt");
}

/* a (dom 1) and b (dom 2) connected: *pa in dom 1, *pb in dom 2. */
static void connect_pair(xenevtchn_handle **a, xenevtchn_handle **b, int *pa,
                         int *pb)
{
    *a = sim_evtchn_as(1);
    *b = sim_evtchn_as(2);
    ck_assert_ptr_nonnull(*a);
    ck_assert_ptr_nonnull(*b);
    *pa = xenevtchn_bind_unbound_port(*a, 2);
    ck_assert_int_gt(*pa, 0);
    *pb = xenevtchn_bind_interdomain(*b, 1, (evtchn_port_t)*pa);
    ck_assert_int_gt(*pb, 0);
    /* Xen raises the new local port once at bind: take it. */
    ck_assert(sim_readable(*b, 5000));
    ck_assert_int_eq(xenevtchn_pending(*b), *pb);
    ck_assert_int_eq(xenevtchn_unmask(*b, (evtchn_port_t)*pb), 0);
    ck_assert(!sim_readable(*b, 0));
    ck_assert(!sim_readable(*a, 0));
}

START_TEST(notify_both_ways)
{
    xenevtchn_handle *a, *b;
    int pa, pb;

    connect_pair(&a, &b, &pa, &pb);
    ck_assert_int_eq(pa, 1); /* ports start at 1 in each domain */
    ck_assert_int_eq(xenevtchn_notify(a, (evtchn_port_t)pa), 0);
    ck_assert(sim_readable(b, 5000));
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    ck_assert(!sim_readable(b, 0));
    xenevtchn_unmask(b, (evtchn_port_t)pb);
    ck_assert_int_eq(xenevtchn_notify(b, (evtchn_port_t)pb), 0);
    ck_assert(sim_readable(a, 5000));
    ck_assert_int_eq(xenevtchn_pending(a), pa);
    xenevtchn_unmask(a, (evtchn_port_t)pa);
    ck_assert_int_eq(xenevtchn_close(a), 0);
    ck_assert_int_eq(xenevtchn_close(b), 0);
}
END_TEST

START_TEST(mask_and_coalesce)
{
    xenevtchn_handle *a, *b;
    int pa, pb;

    connect_pair(&a, &b, &pa, &pb);
    xenevtchn_notify(a, (evtchn_port_t)pa);
    ck_assert(sim_readable(b, 5000));
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    /* Delivered, so masked: more events only set pending. */
    for (int i = 0; i < 5; i++)
        xenevtchn_notify(a, (evtchn_port_t)pa);
    ck_assert(!sim_readable(b, 50));
    xenevtchn_unmask(b, (evtchn_port_t)pb);
    ck_assert(sim_readable(b, 5000));
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    ck_assert(!sim_readable(b, 0));
    xenevtchn_unmask(b, (evtchn_port_t)pb);
    ck_assert(!sim_readable(b, 50));
    /*
	 * Several events before the reader looks: the first is delivered
	 * (and masks the port), the rest collapse into one more delivery
	 * at unmask, as on Xen.
	 */
    for (int i = 0; i < 5; i++)
        xenevtchn_notify(a, (evtchn_port_t)pa);
    ck_assert(sim_readable(b, 5000));
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    ck_assert(!sim_readable(b, 0));
    xenevtchn_unmask(b, (evtchn_port_t)pb);
    ck_assert(sim_readable(b, 5000));
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    xenevtchn_unmask(b, (evtchn_port_t)pb);
    ck_assert(!sim_readable(b, 50));
    /* Unmasking an unmasked or foreign port is a no-op. */
    ck_assert_int_eq(xenevtchn_unmask(b, (evtchn_port_t)pb), 0);
    ck_assert_int_eq(xenevtchn_unmask(b, 12345), 0);
    sim_evtchn_close_all(a, b, NULL);
}
END_TEST

START_TEST(nonblocking_pending)
{
    xenevtchn_handle *a = sim_evtchn_as(1);
    int fd = xenevtchn_fd(a);

    ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    CHECK_FAIL_ERRNO(xenevtchn_pending(a), EAGAIN);
    xenevtchn_close(a);
}
END_TEST

START_TEST(bind_errors)
{
    xenevtchn_handle *a = sim_evtchn_as(1), *b = sim_evtchn_as(2);
    xenevtchn_handle *c = sim_evtchn_as(3);
    int pa = xenevtchn_bind_unbound_port(a, 2);

    ck_assert_int_gt(pa, 0);
    /* Meant for domain 2: domain 3 may not bind it. */
    CHECK_FAIL_ERRNO(xenevtchn_bind_interdomain(c, 1, (evtchn_port_t)pa),
                     EINVAL);
    /* Not an unbound port / out of range / unknown domain. */
    CHECK_FAIL_ERRNO(xenevtchn_bind_interdomain(b, 1, 77), EINVAL);
    CHECK_FAIL_ERRNO(xenevtchn_bind_interdomain(b, 1, 0), EINVAL);
    CHECK_FAIL_ERRNO(xenevtchn_bind_interdomain(b, 4242, 1), ESRCH);
    /* Bound once: a second bind fails. */
    int pb = xenevtchn_bind_interdomain(b, 1, (evtchn_port_t)pa);
    ck_assert_int_gt(pb, 0);
    CHECK_FAIL_ERRNO(xenevtchn_bind_interdomain(b, 1, (evtchn_port_t)pa),
                     EINVAL);
    /* Ports belong to their handle. */
    CHECK_FAIL_ERRNO(xenevtchn_notify(c, (evtchn_port_t)pa), ENOTCONN);
    CHECK_FAIL_ERRNO(xenevtchn_unbind(c, (evtchn_port_t)pa), ENOTCONN);
    CHECK_FAIL_ERRNO(xenevtchn_unbind(c, 0), EINVAL);
    CHECK_FAIL_ERRNO(xenevtchn_bind_virq(a, 1), EOPNOTSUPP);
    sim_evtchn_close_all(a, b, c, NULL);
}
END_TEST

START_TEST(restrict_rules)
{
    xenevtchn_handle *a = sim_evtchn_as(1), *b = sim_evtchn_as(2);
    int pa = xenevtchn_bind_unbound_port(a, 2);

    CHECK_FAIL_ERRNO(xenevtchn_restrict(b, 0), EINVAL);
    ck_assert_int_eq(xenevtchn_restrict(b, 5), 0);
    CHECK_FAIL_ERRNO(xenevtchn_restrict(b, 1), EACCES);
    CHECK_FAIL_ERRNO(xenevtchn_bind_unbound_port(b, 1), EACCES);
    CHECK_FAIL_ERRNO(xenevtchn_bind_interdomain(b, 1, (evtchn_port_t)pa),
                     EACCES);
    CHECK_FAIL_ERRNO(xenevtchn_bind_virq(b, 1), EACCES);
    sim_evtchn_close_all(a, b, NULL);
}
END_TEST

START_TEST(close_tells_peer)
{
    xenevtchn_handle *a, *b;
    int pa, pb;
    uint32_t st, rd, rp;

    connect_pair(&a, &b, &pa, &pb);
    ck_assert_int_eq(noxs_simstat_port(2, (uint32_t)pb, &st, &rd, &rp), 0);
    ck_assert_uint_eq(st, NOXS_SIMSTAT_PORT_INTERDOMAIN);
    ck_assert_uint_eq(rd, 1);
    ck_assert_uint_eq(rp, (uint32_t)pa);
    ck_assert_int_eq(xenevtchn_unbind(a, (evtchn_port_t)pa), 0);
    /* The peer is woken and its port is unbound again, for domain 1. */
    ck_assert(sim_readable(b, 5000));
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    xenevtchn_unmask(b, (evtchn_port_t)pb);
    ck_assert_int_eq(noxs_simstat_port(2, (uint32_t)pb, &st, &rd, NULL), 0);
    ck_assert_uint_eq(st, NOXS_SIMSTAT_PORT_UNBOUND);
    ck_assert_uint_eq(rd, 1);
    /* Notifying an unbound port is silently dropped, as in Xen. */
    ck_assert_int_eq(xenevtchn_notify(b, (evtchn_port_t)pb), 0);
    /* Domain 1 can bind to it again. */
    int pa2 = xenevtchn_bind_interdomain(a, 2, (evtchn_port_t)pb);
    ck_assert_int_gt(pa2, 0);
    ck_assert_int_eq(xenevtchn_pending(a), pa2);
    xenevtchn_unmask(a, (evtchn_port_t)pa2);
    xenevtchn_notify(a, (evtchn_port_t)pa2);
    ck_assert(sim_readable(b, 5000));
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    /* Closing the whole handle does the same. */
    xenevtchn_unmask(b, (evtchn_port_t)pb);
    xenevtchn_close(a);
    ck_assert(sim_readable(b, 5000));
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    ck_assert_int_eq(noxs_simstat_port(2, (uint32_t)pb, &st, NULL, NULL), 0);
    ck_assert_uint_eq(st, NOXS_SIMSTAT_PORT_UNBOUND);
    xenevtchn_close(b);
    struct noxs_simstat s;
    ck_assert_int_eq(noxs_simstat_wait_idle(10000, &s), 0);
}
END_TEST

/* More ports pending at once than the kernel's datagram queue holds. */
START_TEST(many_ports_pending)
{
    enum { N = 2000 };
    xenevtchn_handle *a = sim_evtchn_as(1), *b = sim_evtchn_as(2);
    static int pa[N], pb[N];
    static char seen[N + 8];

    for (int i = 0; i < N; i++) {
        pa[i] = xenevtchn_bind_unbound_port(a, 2);
        ck_assert_int_gt(pa[i], 0);
        pb[i] = xenevtchn_bind_interdomain(b, 1, (evtchn_port_t)pa[i]);
        ck_assert_int_gt(pb[i], 0);
    }
    /* Drain the bind-time events. */
    for (int i = 0; i < N; i++) {
        int p = xenevtchn_pending(b);
        ck_assert_int_gt(p, 0);
        xenevtchn_unmask(b, (evtchn_port_t)p);
    }
    ck_assert(!sim_readable(b, 0));
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < N; i++)
            xenevtchn_notify(a, (evtchn_port_t)pa[i]);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < N; i++) {
        ck_assert(sim_readable(b, 5000));
        int p = xenevtchn_pending(b);
        ck_assert_int_gt(p, 0);
        ck_assert_int_le(p, N);
        ck_assert_int_eq(seen[p], 0);
        seen[p] = 1;
    }
    ck_assert(!sim_readable(b, 0));
    sim_evtchn_close_all(a, b, NULL);
}
END_TEST

START_TEST(loopback_same_domain)
{
    xenevtchn_handle *a = sim_evtchn_as(4), *b = sim_evtchn_as(4);
    int pa = xenevtchn_bind_unbound_port(a, 4);
    int pb = xenevtchn_bind_interdomain(b, DOMID_SELF, (evtchn_port_t)pa);

    ck_assert_int_gt(pb, 0);
    ck_assert_int_ne(pa, pb);
    ck_assert_int_eq(xenevtchn_pending(b), pb);
    xenevtchn_unmask(b, (evtchn_port_t)pb);
    xenevtchn_notify(b, (evtchn_port_t)pb);
    ck_assert(sim_readable(a, 5000));
    ck_assert_int_eq(xenevtchn_pending(a), pa);
    sim_evtchn_close_all(a, b, NULL);
}
END_TEST

static Suite *suite(void)
{
    return check_suite("sim_evtchn", "evtchn", fresh_dir, NULL, 0,
                       CHECK_TESTS(notify_both_ways, mask_and_coalesce,
                                   nonblocking_pending, bind_errors,
                                   restrict_rules, close_tells_peer,
                                   many_ports_pending, loopback_same_domain));
}

CHECK_MAIN(suite)
