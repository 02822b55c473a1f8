/*
 * Simulator: several processes. Ping-pong of events and shared-page data
 * between two domains (fork + exec), kill -9 of either side (peer woken,
 * port unbound, grants and mappings reaped, next process works), kill -9
 * at random points (no lock is left wedged), and "everything released".
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
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#include "sim/simstat.h"
#include "check_main.h"
#include "check_sim.h"

#define ROUNDS 2000

static void fresh_dir(void)
{
    sim_fresh_dir("proc");
}

/* Poll the stat library until cond holds (guardians reap asynchronously). */
#define WAIT_UNTIL(cond)                             \
    do {                                             \
        for (int w_ = 0; w_ < 1000 && !(cond); w_++) \
            usleep(10000);                           \
        ck_assert(cond);                             \
    } while (0)

/*
 * The domain-2 side of the ping-pong, run in an exec'd child: map the
 * page, bind the port, then answer each event by incrementing the
 * counter in the page.
 */
static int child_pong(unsigned ref, unsigned port)
{
    xengnttab_handle *t = sim_gnttab_as(2);
    xenevtchn_handle *e = xenevtchn_open(NULL, 0);
    if (!t || !e)
        return 10;
    volatile uint32_t *page = (uint32_t *)xengnttab_map_grant_ref(t, 1,
                                                                  ref, PROT_READ | PROT_WRITE);
    if (!page)
        return 11;
    int local = xenevtchn_bind_interdomain(e, 1, port);
    if (local < 0)
        return 12;
    if (sim_wait_event(e, 10000) != local) /* the bind-time event */
        return 13;
    xenevtchn_notify(e, (evtchn_port_t)local); /* ready */
    for (;;) {
        if (sim_wait_event(e, 10000) != local)
            return 14;
        uint32_t v = page[0];
        if (v == UINT32_MAX)
            break;
        page[1] = v + 1;
        xenevtchn_notify(e, (evtchn_port_t)local);
    }
    xengnttab_unmap(t, (void *)page, 1);
    xengnttab_close(t);
    xenevtchn_close(e);
    return 0;
}

/* What the children of the kill tests set up before they are killed
 * (sim_spawn). */

/* Domain 1's grant and port of the kill tests, as its peer sees them. */
struct peer_of_1 {
    uint32_t ref;
    int port;
};

/* Domain 2 maps domain 1's grant (unmap notify on byte 8 and the port)
 * and binds its port: ok or not, in OK. */
static int grantee_setup(void *arg, void *ok)
{
    const struct peer_of_1 *p = arg;
    xengnttab_handle *t = xengnttab_open(NULL, 0);
    xenevtchn_handle *ce = xenevtchn_open(NULL, 0);
    int local = xenevtchn_bind_interdomain(ce, 1, (evtchn_port_t)p->port);
    void *m = xengnttab_map_grant_ref_notify(t, 1, p->ref,
                                             PROT_READ | PROT_WRITE, 8,
                                             (evtchn_port_t)local);

    *(char *)ok = m && local > 0;
    return 0;
}

/* Domain 2 binds domain 1's port: ok or not, in OK. */
static int binder_setup(void *port, void *ok)
{
    xenevtchn_handle *ce = xenevtchn_open(NULL, 0);

    *(char *)ok = ce && xenevtchn_bind_interdomain(ce, 1,
                                                   *(evtchn_port_t *)port) > 0;
    return 0;
}

/* Domain 1 shares a page with domain 2 (unmap notify on byte 16 and an
 * unbound port for 2): its ref and port in MSG. */
static int granter_setup(void *arg, void *out)
{
    xengntshr_handle *s = xengntshr_open(NULL, 0);
    xenevtchn_handle *ce = xenevtchn_open(NULL, 0);
    int port = xenevtchn_bind_unbound_port(ce, 2);
    uint32_t ref, *msg = out;
    char *g = xengntshr_share_page_notify(s, 2, &ref, 1, 16,
                                          (evtchn_port_t)port);

    (void)arg;
    if (!g || port < 0)
        return -1;
    strcpy(g + 100, "still here");
    g[16] = 1;
    msg[0] = ref;
    msg[1] = (uint32_t)port;
    return 0;
}

/* Six handles with a port each, in a ledger of two slots; no cleanup
 * when killed: the guardian does it. */
static int six_handles_setup(void *arg, void *ok)
{
    (void)arg;
    setenv("NOXS_SIM_LEDGER_SLOTS", "2", 1);
    for (int i = 0; i < 6; i++) {
        xenevtchn_handle *e = xenevtchn_open(NULL, 0);
        if (e == NULL || xenevtchn_bind_unbound_port(e, 0) <= 0)
            return -1;
    }
    *(char *)ok = 'k';
    return 0;
}

START_TEST(pingpong_exec)
{
    xengntshr_handle *s = sim_gntshr_as(1);
    xenevtchn_handle *e = xenevtchn_open(NULL, 0);
    uint32_t ref;
    volatile uint32_t *page = (uint32_t *)xengntshr_share_pages(s, 2, 1,
                                                                &ref, 1);
    int port = xenevtchn_bind_unbound_port(e, 2);

    ck_assert_ptr_nonnull((void *)page);
    ck_assert_int_gt(port, 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char r[16], p[16];
        snprintf(r, sizeof(r), "%u", ref);
        snprintf(p, sizeof(p), "%d", port);
        execl("/proc/self/exe", "check_sim_proc", "--pong", r, p,
              (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(sim_wait_event(e, 10000), port); /* child ready */
    for (uint32_t i = 0; i < ROUNDS; i++) {
        page[0] = i;
        xenevtchn_notify(e, (evtchn_port_t)port);
        ck_assert_int_eq(sim_wait_event(e, 10000), port);
        ck_assert_uint_eq(page[1], i + 1);
    }
    page[0] = UINT32_MAX;
    xenevtchn_notify(e, (evtchn_port_t)port);
    sim_reap(pid);
    xengntshr_unshare(s, (void *)page, 1);
    xengntshr_close(s);
    xenevtchn_close(e);
    sim_assert_idle();
}
END_TEST

START_TEST(guardian_is_not_our_child)
{
    xenevtchn_handle *e = sim_evtchn_as(1);
    ck_assert_ptr_nonnull(e);
    CHECK_FAIL_ERRNO(waitpid(-1, NULL, WNOHANG), ECHILD);
    xenevtchn_close(e);
}
END_TEST

START_TEST(kill_grantee)
{
    xengntshr_handle *s = sim_gntshr_as(1);
    xenevtchn_handle *e = xenevtchn_open(NULL, 0);
    uint32_t st, maps;
    struct peer_of_1 p1;
    volatile char *page = xengntshr_share_pages(s, 2, 1, &p1.ref, 1);
    uint32_t ref = p1.ref;
    int port = p1.port = xenevtchn_bind_unbound_port(e, 2);
    char ok = 0;

    page[8] = 1;
    pid_t pid = sim_spawn(2, grantee_setup, &p1, &ok, 1);
    ck_assert_int_eq(ok, 1);
    /* Xen raises the binder's new port, not ours: nothing yet. */
    ck_assert_int_eq(sim_wait_event(e, 0), -1);
    sim_kill(pid);
    /* Woken; the port is unbound again; the mapping and its notify gone. */
    ck_assert_int_eq(sim_wait_event(e, 10000), port);
    WAIT_UNTIL(noxs_simstat_port(1, (uint32_t)port, &st, NULL, NULL) == 0 &&
               st == NOXS_SIMSTAT_PORT_UNBOUND);
    WAIT_UNTIL(noxs_simstat_grant(1, ref, &st, NULL, &maps) == 0 &&
               maps == 0);
    ck_assert_int_eq(page[8], 0);
    /* The next process of domain 2 works. */
    pid = sim_fork_as(2);
    if (pid == 0) {
        xenevtchn_handle *ce = xenevtchn_open(NULL, 0);
        xengnttab_handle *t = xengnttab_open(NULL, 0);
        int local = xenevtchn_bind_interdomain(ce, 1, (evtchn_port_t)port);
        volatile char *m = xengnttab_map_grant_ref(t, 1, ref,
                                                   PROT_READ | PROT_WRITE);
        if (local < 0 || !m)
            _exit(2);
        m[100] = 42;
        xenevtchn_notify(ce, (evtchn_port_t)local);
        _exit(0); /* no cleanup: the guardian does it */
    }
    sim_reap(pid);
    ck_assert_int_eq(page[100], 42);
    WAIT_UNTIL(noxs_simstat_grant(1, ref, &st, NULL, &maps) == 0 &&
               maps == 0);
    xengntshr_close(s);
    xenevtchn_close(e);
    sim_assert_idle();
}
END_TEST

/*
 * A process of domain 2 binds domain 1's port and is killed; the next
 * one binds again right after waitpid(), before the guardian may have
 * reaped: with Xen the dead process's port closed with its fd, so the
 * bind must work at once (no EINVAL), repeatedly.
 */
START_TEST(rebind_after_kill)
{
    xenevtchn_handle *e = sim_evtchn_as(1);
    int port = xenevtchn_bind_unbound_port(e, 2);
    evtchn_port_t remote = (evtchn_port_t)port;

    ck_assert_int_gt(port, 0);
    for (int round = 0; round < 20; round++) {
        char ok = 0;
        pid_t pid = sim_spawn(2, binder_setup, &remote, &ok, 1);

        ck_assert_msg(ok == 1, "bind failed in round %d", round);
        sim_kill(pid);
    }
    xenevtchn_close(e);
    sim_assert_idle();
}
END_TEST

START_TEST(kill_granter)
{
    xengnttab_handle *t = sim_gnttab_as(2);
    xenevtchn_handle *e = xenevtchn_open(NULL, 0);
    uint32_t msg[2], st, maps;
    pid_t pid = sim_spawn(1, granter_setup, NULL, msg, sizeof(msg));

    char *m = xengnttab_map_grant_ref(t, 1, msg[0], PROT_READ | PROT_WRITE);
    ck_assert_ptr_nonnull(m);
    int local = xenevtchn_bind_interdomain(e, 1, msg[1]);
    ck_assert_int_gt(local, 0);
    ck_assert_int_eq(sim_wait_event(e, 10000), local);
    ck_assert_int_eq(m[16], 1);
    sim_kill(pid);
    ck_assert_int_eq(sim_wait_event(e, 10000), local);
    /* The grant outlives its granter while we map it (Xen/gntalloc). */
    WAIT_UNTIL(noxs_simstat_grant(1, msg[0], &st, NULL, &maps) == 0 &&
               st == NOXS_SIMSTAT_GRANT_ENDING);
    ck_assert_int_eq(maps, 1);
    ck_assert_str_eq(m + 100, "still here");
    ck_assert_int_eq(m[16], 0);
    m[200] = 1;
    WAIT_UNTIL(noxs_simstat_port(2, (uint32_t)local, &st, NULL, NULL) == 0 &&
               st == NOXS_SIMSTAT_PORT_UNBOUND);
    ck_assert_int_eq(xengnttab_unmap(t, m, 1), 0);
    ck_assert_uint_eq(noxs_simstat_grant(1, msg[0], &st, NULL, NULL), 0);
    ck_assert_uint_eq(st, NOXS_SIMSTAT_GRANT_FREE);
    xengnttab_close(t);
    xenevtchn_close(e);
    sim_assert_idle();
}
END_TEST

/* Kill a busy process at random moments: nothing may stay wedged. */
START_TEST(kill_anywhere)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    srand((unsigned)ts.tv_nsec);
    xenevtchn_handle *e0 = sim_evtchn_as(0);
    for (int round = 0; round < 20; round++) {
        pid_t pid = sim_fork_as(3);
        if (pid == 0) {
            xenevtchn_handle *e = xenevtchn_open(NULL, 0);
            xengntshr_handle *s = xengntshr_open(NULL, 0);
            xengnttab_handle *t = xengnttab_open(NULL, 0);
            for (;;) {
                uint32_t ref;
                int p = xenevtchn_bind_unbound_port(e, 0);
                void *g = xengntshr_share_pages(s, 3, 1, &ref, 1);
                void *m = g ? xengnttab_map_grant_ref(t, 3, ref,
                                                      PROT_READ)
                            : NULL;
                if (m)
                    xengnttab_unmap(t, m, 1);
                if (g)
                    xengntshr_unshare(s, g, 1);
                if (p > 0)
                    xenevtchn_unbind(e, (evtchn_port_t)p);
            }
        }
        usleep((useconds_t)(rand() % 20000));
        sim_kill(pid);
    }
    /* Still usable afterwards by anyone, and everything is reaped. */
    xenevtchn_close(e0);
    xenevtchn_handle *e = sim_evtchn_as(3);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_gt(xenevtchn_bind_unbound_port(e, 0), 0);
    xenevtchn_close(e);
    ck_assert_int_eq(noxs_simstat_wait_idle(20000, NULL), 0);
}
END_TEST

/*
 * A process whose guardian ledger is full (2 slots here, 1M normally)
 * announces its further evtchn handles as socket messages: killed, it
 * must still have every handle and port reaped by its guardian.
 */
START_TEST(ledger_full)
{
    char ok;
    pid_t pid = sim_spawn(3, six_handles_setup, NULL, &ok, 1);

    struct noxs_simstat st;
    ck_assert_int_eq(noxs_simstat_domain(3, 0, &st), 0);
    ck_assert_uint_eq(st.evtchn_handles, 6);
    ck_assert_uint_eq(st.ports_unbound, 6);
    sim_kill(pid);
    /* Without reaping here (reap 0): the guardian alone must do it. */
    int i;
    for (i = 0; i < 2000; i++) {
        ck_assert_int_eq(noxs_simstat_domain(3, 0, &st), 0);
        if (st.evtchn_handles == 0 && st.ports_unbound == 0)
            break;
        usleep(10000);
    }
    ck_assert_msg(i < 2000, "guardian left %u handles, %u ports",
                  st.evtchn_handles, st.ports_unbound);
}
END_TEST

static Suite *suite(void)
{
    return check_suite("sim_proc", "proc", fresh_dir, NULL, 60,
                       CHECK_TESTS(pingpong_exec, guardian_is_not_our_child,
                                   kill_grantee, kill_granter, rebind_after_kill,
                                   kill_anywhere, ledger_full));
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--pong") == 0)
        return child_pong((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]));
    return check_run(suite());
}
