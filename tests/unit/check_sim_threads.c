/*
 * Simulator under threads (also run under TSan): ping-pong between two
 * handles of different domains on two threads, many notifiers on one
 * port, and grant map/unmap racing with sharing.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#include "sim/simstat.h"
#include "check_main.h"
#include "check_sim.h"

#define ROUNDS 5000

static void fresh_dir(void)
{
    sim_fresh_dir("thr");
}

struct side {
    xenevtchn_handle *h;
    int port;
    int rounds;
    int ok;
    int start; /* sends first */
};

static void *pinger(void *arg)
{
    struct side *s = arg;

    for (int i = 0; i < s->rounds; i++) {
        if (s->start)
            xenevtchn_notify(s->h, (evtchn_port_t)s->port);
        if (sim_wait_event(s->h, 10000) != s->port)
            return NULL;
        if (!s->start)
            xenevtchn_notify(s->h, (evtchn_port_t)s->port);
    }
    s->ok = 1;
    return NULL;
}

START_TEST(pingpong_threads)
{
    xenevtchn_handle *a = sim_evtchn_as(1), *b = sim_evtchn_as(2);
    int pa = xenevtchn_bind_unbound_port(a, 2);
    int pb = xenevtchn_bind_interdomain(b, 1, (evtchn_port_t)pa);
    ck_assert_int_eq(sim_wait_event(b, 5000), pb);
    struct side sa = {a, pa, ROUNDS, 0, 1}, sb = {b, pb, ROUNDS, 0, 0};
    pthread_t ta, tb;

    pthread_create(&tb, NULL, pinger, &sb);
    pthread_create(&ta, NULL, pinger, &sa);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert(sa.ok && sb.ok);
    sim_evtchn_close_all(a, b, NULL);
}
END_TEST

struct notifier {
    xenevtchn_handle *h;
    int port;
    _Atomic int *stop;
};

static void *notify_loop(void *arg)
{
    struct notifier *n = arg;

    while (!atomic_load(n->stop))
        xenevtchn_notify(n->h, (evtchn_port_t)n->port);
    return NULL;
}

START_TEST(many_notifiers)
{
    xenevtchn_handle *b = sim_evtchn_as(2);
    xenevtchn_handle *a[4];
    struct notifier n[4];
    pthread_t t[4];
    _Atomic int stop = 0;
    int pb[4];

    for (int i = 0; i < 4; i++) {
        a[i] = sim_evtchn_as(1);
        int pa = xenevtchn_bind_unbound_port(a[i], 2);
        pb[i] = xenevtchn_bind_interdomain(b, 1, (evtchn_port_t)pa);
        n[i] = (struct notifier){a[i], pa, &stop};
    }
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, notify_loop, &n[i]);
    int got = 0;
    for (; got < 2000; got++) {
        int p = sim_wait_event(b, 10000);
        ck_assert_int_ge(p, pb[0]);
        ck_assert_int_le(p, pb[3]);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* Whatever is left drains to nothing. */
    for (int i = 0; i < 100 && sim_wait_event(b, 100) > 0; i++)
        ;
    ck_assert_int_eq(sim_wait_event(b, 50), -1);
    for (int i = 0; i < 4; i++)
        xenevtchn_close(a[i]);
    xenevtchn_close(b);
}
END_TEST

struct mapper {
    xengnttab_handle *t;
    _Atomic uint32_t *ref;
    _Atomic int *stop;
    int maps;
};

static void *map_loop(void *arg)
{
    struct mapper *m = arg;

    while (!atomic_load(m->stop)) {
        uint32_t ref = atomic_load(m->ref);
        void *p = xengnttab_map_grant_ref(m->t, 1, ref, PROT_READ);
        if (p) {
            m->maps++;
            xengnttab_unmap(m->t, p, 1);
        }
    }
    return NULL;
}

START_TEST(map_while_sharing)
{
    setenv("NOXS_SIM_DOMID", "1", 1);
    xengntshr_handle *s = xengntshr_open(NULL, 0);
    setenv("NOXS_SIM_DOMID", "2", 1);
    xengnttab_handle *t = xengnttab_open(NULL, 0);
    _Atomic uint32_t ref = 8;
    _Atomic int stop = 0;
    struct mapper m = {t, &ref, &stop, 0};
    pthread_t th;

    pthread_create(&th, NULL, map_loop, &m);
    for (int i = 0; i < 2000; i++) {
        uint32_t r;
        void *g = xengntshr_share_pages(s, 2, 1, &r, 1);
        ck_assert_ptr_nonnull(g);
        atomic_store(&ref, r);
        xengntshr_unshare(s, g, 1);
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    xengnttab_close(t);
    xengntshr_close(s);
    sim_assert_idle();
}
END_TEST

static Suite *suite(void)
{
    return check_suite("sim_threads", "threads", fresh_dir, NULL, 120,
                       CHECK_TESTS(pingpong_threads, many_notifiers,
                                   map_while_sharing));
}

CHECK_MAIN(suite)
