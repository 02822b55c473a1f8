/*
 * The registry: domains, devices and backends; and lock-free lookups by
 * reader threads while a writer adds, changes and removes (also run under
 * ThreadSanitizer by check-tsan).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "noxsd.h"
#include "check_main.h"

static struct registry *r;

/*
 * liburcu is not instrumented: its own call_rcu/barrier bookkeeping looks
 * racy to TSan. Silence races inside it; races in registry.c still show.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "called_from_lib:liburcu-memb.so.8\n"
           "called_from_lib:liburcu-cds.so.8\n"
           "called_from_lib:liburcu-common.so.8\n";
}

static void setup(void)
{
    registry_thread_online();
    r = registry_new();
    ck_assert_ptr_nonnull(r);
}

static void teardown(void)
{
    registry_free(r);
    registry_thread_offline();
}

static struct reg_dev dev(uint16_t type, uint32_t devid, uint32_t gref)
{
    struct reg_dev d = {.type = type,
                        .flags = NOXS_DEVPAGE_ENTRY_VALID,
                        .devid = devid,
                        .control_gref = gref,
                        .backend_port = gref + 1};
    return d;
}

START_TEST(test_domains)
{
    struct reg_domain_info info;
    uint16_t ids[8];

    ck_assert_int_eq(registry_domain_add(r, 5, 0, 8, 3), 0);
    ck_assert_int_eq(registry_domain_add(r, 5, 0, 9, 4), -EEXIST);
    ck_assert_int_eq(registry_domain_add(r, 2, 0, 10, 5), 0);
    ck_assert_int_eq(registry_domain_get(r, 5, &info), 0);
    ck_assert_uint_eq(info.gref, 8);
    ck_assert_uint_eq(info.port, 3);
    ck_assert_uint_eq(info.ndevs, 0);
    ck_assert_int_eq(registry_domain_get(r, 6, &info), -ENOENT);
    ck_assert_uint_eq(registry_ndomains(r), 2);
    ck_assert_uint_eq(registry_domids(r, ids, 8), 2);
    ck_assert_uint_eq(ids[0], 2);
    ck_assert_uint_eq(ids[1], 5);
    ck_assert_int_eq(registry_domain_remove(r, 5), 0);
    ck_assert_int_eq(registry_domain_remove(r, 5), -ENOENT);
    ck_assert_uint_eq(registry_ndomains(r), 1);
}
END_TEST

START_TEST(test_devices)
{
    struct reg_dev d = dev(NOXS_DEV_BLK, 7, 100), out;
    struct reg_domain_info info;
    unsigned int i;

    ck_assert_int_eq(registry_dev_put(r, 1, &d), -ENOENT);
    ck_assert_int_eq(registry_domain_add(r, 1, 0, 8, 3), 0);
    ck_assert_int_eq(registry_dev_put(r, 1, &d), 0);
    ck_assert_int_eq(registry_dev_get(r, 1, NOXS_DEV_BLK, 7, &out), 0);
    ck_assert_uint_eq(out.control_gref, 100);
    ck_assert_int_eq(registry_dev_get(r, 1, NOXS_DEV_BLK, 8, &out), -ENOENT);
    ck_assert_int_eq(registry_dev_set_state(r, 1, NOXS_DEV_BLK, 7, 4, 3), 0);
    ck_assert_int_eq(registry_dev_get(r, 1, NOXS_DEV_BLK, 7, &out), 0);
    ck_assert_uint_eq(out.backend_state, 4);
    ck_assert_uint_eq(out.frontend_state, 3);
    ck_assert_int_eq(registry_dev_set_flags(r, 1, NOXS_DEV_BLK, 7,
                                            NOXS_DEVPAGE_ENTRY_VALID |
                                                NOXS_DEVPAGE_ENTRY_CLOSING),
                     0);
    ck_assert_int_eq(registry_dev_get(r, 1, NOXS_DEV_BLK, 7, &out), 0);
    ck_assert_uint_eq(out.flags, 3);
    ck_assert_uint_eq(out.backend_state, 4); /* untouched */
    /* put replaces. */
    d.control_gref = 200;
    ck_assert_int_eq(registry_dev_put(r, 1, &d), 0);
    ck_assert_uint_eq(registry_ndevices(r), 1);
    ck_assert_int_eq(registry_dev_get(r, 1, NOXS_DEV_BLK, 7, &out), 0);
    ck_assert_uint_eq(out.control_gref, 200);

    /* Fill the page. */
    for (i = 0; i < NOXS_DEVPAGE_MAX_ENTRIES - 1; i++) {
        d = dev(NOXS_DEV_CONSOLE, i, 300 + i);
        ck_assert_int_eq(registry_dev_put(r, 1, &d), 0);
    }
    d = dev(NOXS_DEV_CONSOLE, 999, 1);
    ck_assert_int_eq(registry_dev_put(r, 1, &d), -ENOSPC);
    ck_assert_uint_eq(registry_ndevices(r), NOXS_DEVPAGE_MAX_ENTRIES);
    /* Removal keeps the others in order. */
    ck_assert_int_eq(registry_dev_remove(r, 1, NOXS_DEV_CONSOLE, 0), 0);
    ck_assert_int_eq(registry_dev_remove(r, 1, NOXS_DEV_CONSOLE, 0), -ENOENT);
    ck_assert_int_eq(registry_domain_get(r, 1, &info), 0);
    ck_assert_uint_eq(info.ndevs, NOXS_DEVPAGE_MAX_ENTRIES - 1);
    ck_assert_uint_eq(info.devs[0].type, NOXS_DEV_BLK);
    ck_assert_uint_eq(info.devs[1].devid, 1);
    ck_assert_int_eq(registry_domain_remove(r, 1), 0);
    ck_assert_uint_eq(registry_ndevices(r), 0);
}
END_TEST

START_TEST(test_backends)
{
    uint64_t c;

    ck_assert_int_eq(registry_backend_get(r, 0, 1, &c), -ENODEV);
    ck_assert_int_eq(registry_backend_add(r, 0, 1, 42), 0);
    ck_assert_int_eq(registry_backend_add(r, 0, 1, 43), -EADDRINUSE);
    ck_assert_int_eq(registry_backend_add(r, 0, 3, 43), 0);
    ck_assert_int_eq(registry_backend_add(r, 4, 1, 44), 0);
    ck_assert_int_eq(registry_backend_get(r, 0, 1, &c), 0);
    ck_assert_uint_eq(c, 42);
    ck_assert_int_eq(registry_backend_get(r, 4, 1, &c), 0);
    ck_assert_uint_eq(c, 44);
    ck_assert_uint_eq(registry_nbackends(r), 3);
    /* Only the owning connection removes. */
    ck_assert_int_eq(registry_backend_remove(r, 0, 1, 43), -ENOENT);
    ck_assert_int_eq(registry_backend_remove(r, 0, 1, 42), 0);
    ck_assert_int_eq(registry_backend_get(r, 0, 1, &c), -ENODEV);
    ck_assert_uint_eq(registry_nbackends(r), 2);
}
END_TEST

static int count_fn(const struct reg_domain_info *info, void *arg)
{
    *(size_t *)arg += info->ndevs + 1;
    return 0;
}

START_TEST(test_foreach)
{
    struct reg_dev d = dev(1, 0, 9);
    size_t n = 0;

    registry_domain_add(r, 1, 0, 8, 3);
    registry_domain_add(r, 2, 0, 9, 4);
    registry_dev_put(r, 2, &d);
    ck_assert_int_eq(registry_domain_foreach(r, count_fn, &n), 0);
    ck_assert_uint_eq(n, 3);
}
END_TEST

/*
 * Readers look up domains and devices while the writer adds them, edits
 * them and removes them. Invariant checked by readers: a domain they see
 * is internally consistent (every device's gref = domid * 1000 + devid,
 * the header's gref = domid), i.e. never a half-updated copy.
 */
#define NREADERS 4
#define ROUNDS 3000
#define NDOMS 32

static atomic_int stop;
static atomic_long lookups;

static void *reader(void *arg)
{
    struct reg_domain_info *info = malloc(sizeof(*info));
    unsigned int seed = (unsigned int)(uintptr_t)arg;
    uint64_t c;

    registry_thread_online();
    while (!atomic_load(&stop)) {
        uint16_t domid = (uint16_t)(rand_r(&seed) % NDOMS);
        struct reg_dev d;

        if (registry_domain_get(r, domid, info) == 0) {
            ck_assert_uint_eq(info->gref, domid);
            for (uint32_t i = 0; i < info->ndevs; i++)
                ck_assert_uint_eq(info->devs[i].control_gref,
                                  domid * 1000u + info->devs[i].devid);
        }
        if (registry_dev_get(r, domid, 1, (uint32_t)(rand_r(&seed) % 8),
                             &d) == 0)
            ck_assert_uint_eq(d.control_gref, domid * 1000u + d.devid);
        if (registry_backend_get(r, 0, (uint16_t)(domid % 5 + 1), &c) == 0)
            ck_assert_uint_eq(c, (uint64_t)(domid % 5 + 1) * 10);
        atomic_fetch_add(&lookups, 1);
    }
    registry_thread_offline();
    free(info);
    return NULL;
}

START_TEST(test_threaded)
{
    pthread_t t[NREADERS];
    unsigned int seed = 1;
    int i;

    atomic_store(&stop, 0);
    for (i = 0; i < NREADERS; i++)
        ck_assert_int_eq(
            pthread_create(&t[i], NULL, reader, (void *)(uintptr_t)(i + 1)),
            0);
    /* Keep writing until the readers have really overlapped with us. */
    for (i = 0; i < ROUNDS || atomic_load(&lookups) < 20000; i++) {
        uint16_t domid = (uint16_t)(rand_r(&seed) % NDOMS);
        uint32_t devid = (uint32_t)(rand_r(&seed) % 8);
        uint16_t type = (uint16_t)(rand_r(&seed) % 5 + 1);
        struct reg_dev d = dev(1, devid, domid * 1000u + devid);

        switch (rand_r(&seed) % 6) {
        case 0:
            registry_domain_add(r, domid, 0, domid, 1);
            break;
        case 1:
            registry_domain_remove(r, domid);
            break;
        case 2:
        case 3:
            registry_dev_put(r, domid, &d);
            break;
        case 4:
            registry_dev_remove(r, domid, 1, devid);
            registry_dev_set_state(r, domid, 1, (devid + 1) % 8, 4, 4);
            break;
        case 5:
            if (registry_backend_add(r, 0, type, type * 10u) < 0)
                registry_backend_remove(r, 0, type, type * 10u);
            break;
        }
    }
    atomic_store(&stop, 1);
    for (i = 0; i < NREADERS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_gt(atomic_load(&lookups), 0);
}
END_TEST

static Suite *registry_suite(void)
{
    return check_suite("registry", "core", setup, teardown, 120,
                       CHECK_TESTS(test_domains, test_devices, test_backends,
                                   test_foreach, test_threaded));
}

CHECK_MAIN(registry_suite)
