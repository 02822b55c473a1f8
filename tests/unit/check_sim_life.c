/*
 * Simulator: domain life. VIRQ_DOM_EXC (one binding, domain 0 only,
 * rebindable after its handle goes), libxenctrl's domain list (dying,
 * gone, domain 0 only), noxs-simctl destroy (raises the VIRQ, kills the
 * domain's processes, refuses domain 0), and a reused domid coming back
 * as a new domain with a new handle and zeroed memory.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>

#include "check_main.h"
#include "check_sim.h"

static void fresh_dir(void)
{
    sim_fresh_dir("life");
}

/* noxs-simctl ARGS; its exit status. */
static int simctl(const char *args)
{
    char cmd[1024];
    const char *build = getenv("NOXS_BUILD");
    int st;

    snprintf(cmd, sizeof(cmd), "%s/sim/noxs-simctl %s",
             build ? build : "build", args);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int wait_virq(xenevtchn_handle *h, int port, int ms)
{
    struct pollfd p = {.fd = xenevtchn_fd(h), .events = POLLIN};

    if (poll(&p, 1, ms) != 1)
        return -1;
    int got = xenevtchn_pending(h);
    if (got > 0)
        xenevtchn_unmask(h, (evtchn_port_t)got);
    return got == port ? 0 : -1;
}

/* The list's entry for domid: 1 alive, 2 dying, 0 not listed. */
static int listed(xc_interface *xc, unsigned domid, xen_domain_handle_t h)
{
    xc_domaininfo_t info[64];
    int n = xc_domain_getinfolist(xc, 0, 64, info);

    ck_assert_int_ge(n, 1);
    for (int i = 0; i < n; i++) {
        if (info[i].domain != domid)
            continue;
        if (h)
            memcpy(h, info[i].handle, sizeof(xen_domain_handle_t));
        return (info[i].flags & XEN_DOMINF_dying) ? 2 : 1;
    }
    return 0;
}

START_TEST(virq_binding)
{
    xenevtchn_handle *a, *b, *g;
    int port;

    fresh_dir();
    a = sim_evtchn_as(0);
    b = xenevtchn_open(NULL, 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    port = xenevtchn_bind_virq(a, VIRQ_DOM_EXC);
    ck_assert_int_gt(port, 0);
    /* One binding per domain, as in Xen. */
    CHECK_FAIL_ERRNO(xenevtchn_bind_virq(b, VIRQ_DOM_EXC), EEXIST);
    CHECK_FAIL_ERRNO(xenevtchn_bind_virq(b, VIRQ_TIMER), EOPNOTSUPP);
    /* Only domain 0 receives global VIRQs here. */
    g = sim_evtchn_as(4);
    ck_assert_ptr_nonnull(g);
    CHECK_FAIL_ERRNO(xenevtchn_bind_virq(g, VIRQ_DOM_EXC), EPERM);
    /* Unbinding frees it for another handle; so does closing. */
    ck_assert_int_eq(xenevtchn_unbind(a, (evtchn_port_t)port), 0);
    port = xenevtchn_bind_virq(b, VIRQ_DOM_EXC);
    ck_assert_int_gt(port, 0);
    xenevtchn_close(b);
    port = xenevtchn_bind_virq(a, VIRQ_DOM_EXC);
    ck_assert_int_gt(port, 0);
    sim_evtchn_close_all(a, g, NULL);
}
END_TEST

/* A binder killed -9: the next process binds (its handle died with it). */
/* A handle bound to VIRQ_DOM_EXC ('y'), or not ('n'), in C. */
static int virq_setup(void *arg, void *c)
{
    xenevtchn_handle *h = xenevtchn_open(NULL, 0);

    (void)arg;
    *(char *)c = h && xenevtchn_bind_virq(h, VIRQ_DOM_EXC) > 0 ? 'y' : 'n';
    return 0;
}

/* A handle with a bound port ('y'), or not ('n'), in C. */
static int port_setup(void *arg, void *c)
{
    xenevtchn_handle *h = xenevtchn_open(NULL, 0);

    (void)arg;
    *(char *)c = h && xenevtchn_bind_unbound_port(h, 0) > 0 ? 'y' : 'n';
    return 0;
}

START_TEST(virq_binder_killed)
{
    xenevtchn_handle *a;
    int port = 0;
    pid_t pid;
    char c;

    fresh_dir();
    sim_as(0);
    pid = sim_spawn(0, virq_setup, NULL, &c, 1);
    ck_assert_int_eq(c, 'y');
    a = xenevtchn_open(NULL, 0);
    ck_assert_ptr_nonnull(a);
    CHECK_FAIL_ERRNO(xenevtchn_bind_virq(a, VIRQ_DOM_EXC), EEXIST);
    sim_kill(pid);
    for (int i = 0; i < 500 && port <= 0; i++) {
        port = xenevtchn_bind_virq(a, VIRQ_DOM_EXC);
        if (port <= 0)
            usleep(10000);
    }
    ck_assert_int_gt(port, 0);
    xenevtchn_close(a);
}
END_TEST

START_TEST(destroy_list_reuse)
{
    xen_domain_handle_t h1, h2;
    xenevtchn_handle *v, *g;
    xenforeignmemory_handle *fm;
    xc_interface *xc;
    uint32_t *mem;
    xen_pfn_t pfn = 0;
    int port, err = 0;

    fresh_dir();
    v = sim_evtchn_as(0);
    ck_assert_ptr_nonnull(v);
    port = xenevtchn_bind_virq(v, VIRQ_DOM_EXC);
    ck_assert_int_gt(port, 0);
    xc = xc_interface_open(NULL, NULL, 0);
    ck_assert_ptr_nonnull(xc);
    fm = xenforeignmemory_open(NULL, 0);
    ck_assert_ptr_nonnull(fm);

    /* Domain 3 appears when a process first acts as it. */
    ck_assert_int_eq(listed(xc, 3, NULL), 0);
    g = sim_evtchn_as(3);
    sim_as(0);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(listed(xc, 3, h1), 1);
    ck_assert_int_eq(listed(xc, 0, NULL), 1);
    mem = xenforeignmemory_map(fm, 3, PROT_READ | PROT_WRITE, 1, &pfn,
                               &err);
    ck_assert_ptr_nonnull(mem);
    mem[0] = 0xdeadbeef;
    xenforeignmemory_unmap(fm, mem, 1);

    /* Destroyed while its process holds a handle: dying, VIRQ raised. */
    ck_assert_int_eq(simctl("destroy 3 --no-kill"), 0);
    ck_assert_int_eq(wait_virq(v, port, 5000), 0);
    ck_assert_int_eq(listed(xc, 3, NULL), 2);
    /* A dying domain cannot be entered. */
    sim_as(3);
    CHECK_NULL_ERRNO(xenevtchn_open(NULL, 0), ESRCH);
    sim_as(0);
    ck_assert_int_eq(simctl("destroy 3 --no-kill --wait 100"), 4);

    /* Its last handle goes: gone (not listed), VIRQ raised again. */
    xenevtchn_close(g);
    ck_assert_int_eq(listed(xc, 3, NULL), 0);
    ck_assert_int_eq(wait_virq(v, port, 5000), 0);
    ck_assert_int_ne(simctl("destroy 3"), 0); /* dead already */

    /* The domid comes back as a new domain: new handle, zeroed memory. */
    g = sim_evtchn_as(3);
    sim_as(0);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(listed(xc, 3, h2), 1);
    ck_assert_int_ne(memcmp(h1, h2, sizeof(h1)), 0);
    mem = xenforeignmemory_map(fm, 3, PROT_READ, 1, &pfn, &err);
    ck_assert_ptr_nonnull(mem);
    ck_assert_uint_eq(mem[0], 0);
    xenforeignmemory_unmap(fm, mem, 1);
    xenevtchn_close(g);

    /* Domain 0 cannot be destroyed; only domain 0 may list. */
    ck_assert_int_ne(simctl("destroy 0"), 0);
    sim_as(3);
    xc_interface *xg = xc_interface_open(NULL, NULL, 0);
    sim_as(0);
    ck_assert_ptr_nonnull(xg);
    xc_domaininfo_t info;
    CHECK_FAIL_ERRNO(xc_domain_getinfolist(xg, 0, 1, &info), EPERM);
    xc_interface_close(xg);
    xc_interface_close(xc);
    xenforeignmemory_close(fm);
    xenevtchn_close(v);
}
END_TEST

/*
 * A child process acting as domid with a bound port, waiting in pause()
 * until killed; returns once it is set up.
 */
static pid_t domain_process(unsigned domid)
{
    char c;
    pid_t pid = sim_spawn(domid, port_setup, NULL, &c, 1);

    ck_assert_int_eq(c, 'y');
    return pid;
}

/* Resident kB of this process's mappings of domain domid's file. */
static long dom_rss_kb(unsigned domid)
{
    char line[1024], suffix[32];
    FILE *f = fopen("/proc/self/smaps", "r");
    long kb = 0, v;
    unsigned long lo, hi;
    int in = 0;

    ck_assert_ptr_nonnull(f);
    snprintf(suffix, sizeof(suffix), "/dom-%u\n", domid);
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line), m = strlen(suffix);

        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            in = n > m && strcmp(line + n - m, suffix) == 0;
        else if (in && sscanf(line, "Rss: %ld kB", &v) == 1)
            kb += v;
    }
    fclose(f);
    return kb;
}

/*
 * Listing a domain costs the lister its header page only, not the pages
 * the domain's own processes use beside it (Xen's domctl costs dom0's
 * process nothing per domain; the header is as close as a file gets).
 */
START_TEST(list_maps_header_only)
{
    xc_interface *xc;
    pid_t pid;

    fresh_dir();
    pid = domain_process(5);
    sim_as(0);
    xc = xc_interface_open(NULL, NULL, 0);
    ck_assert_ptr_nonnull(xc);
    ck_assert_int_eq(listed(xc, 5, NULL), 1);
    ck_assert_int_eq(dom_rss_kb(5), 4);
    sim_kill(pid);
    xc_interface_close(xc);
}
END_TEST

/* destroy kills the processes acting as the domain, as its vCPUs stop. */
START_TEST(destroy_kills)
{
    xc_interface *xc;
    pid_t pid;

    fresh_dir();
    sim_as(0);
    xc = xc_interface_open(NULL, NULL, 0);
    ck_assert_ptr_nonnull(xc);
    pid = domain_process(5);
    sim_as(0);
    ck_assert_int_eq(listed(xc, 5, NULL), 1);
    ck_assert_int_eq(simctl("destroy 5 --wait 10000"), 0);
    sim_reap_signal(pid, SIGKILL);
    ck_assert_int_eq(listed(xc, 5, NULL), 0);
    xc_interface_close(xc);
}
END_TEST

static Suite *sim_life_suite(void)
{
    return check_suite("sim_life", "life", NULL, NULL, 60,
                       CHECK_TESTS(virq_binding, virq_binder_killed,
                                   destroy_list_reuse, destroy_kills,
                                   list_maps_header_only));
}

CHECK_MAIN(sim_life_suite)
