/*
 * Simulator: foreign memory (libxenforeignmemory on build/sim).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xenforeignmemory.h>

#include "check_main.h"
#include "check_sim.h"

static void fresh_dir(void)
{
    sim_fresh_dir("fm");
    setenv("NOXS_SIM_MEM_PAGES", "16", 1);
}

START_TEST(dom0_maps_guest)
{
    xenforeignmemory_handle *guest = sim_fmem_as(5); /* domain 5 appears */
    xenforeignmemory_handle *f = sim_fmem_as(0);
    xen_pfn_t pfns[3] = {3, 4, 15};
    int err[3] = {1, 1, 1};

    ck_assert_ptr_nonnull(guest);
    char *a = xenforeignmemory_map(f, 5, PROT_READ | PROT_WRITE, 3, pfns, err);
    ck_assert_ptr_nonnull(a);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(err[i], 0);
    strcpy(a + 4096, "gfn4");
    xen_pfn_t one = 4;
    char *b = xenforeignmemory_map(f, 5, PROT_READ, 1, &one, NULL);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(b, "gfn4");
    ck_assert_int_eq(xenforeignmemory_unmap(f, b, 1), 0);
    ck_assert_int_eq(xenforeignmemory_unmap(f, a, 3), 0);
    /* map2 at a fixed address. */
    void *want = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *c = xenforeignmemory_map2(f, 5, want, PROT_READ, MAP_FIXED, 1, &one,
                                    NULL);
    ck_assert_ptr_eq(c, want);
    ck_assert_str_eq(c, "gfn4");
    xenforeignmemory_unmap(f, c, 1);
    xenforeignmemory_close(f);
    xenforeignmemory_close(guest);
}
END_TEST

START_TEST(errors)
{
    xenforeignmemory_handle *g = sim_fmem_as(7);
    xenforeignmemory_handle *f = sim_fmem_as(0);
    xen_pfn_t pfns[3] = {1, 16, 2};
    int err[3];

    /* Only domain 0 maps other domains' memory. */
    CHECK_NULL_ERRNO(xenforeignmemory_map(g, 0, PROT_READ, 1, pfns, NULL),
                     EPERM);
    /* Out of range gfn: per-page error, or the whole call. */
    char *a = xenforeignmemory_map(f, 7, PROT_READ, 3, pfns, err);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(err[0], 0);
    ck_assert_int_eq(err[1], -EINVAL);
    ck_assert_int_eq(err[2], 0);
    xenforeignmemory_unmap(f, a, 3);
    CHECK_NULL_ERRNO(xenforeignmemory_map(f, 7, PROT_READ, 3, pfns, NULL),
                     EINVAL);
    CHECK_NULL_ERRNO(xenforeignmemory_map(f, 999, PROT_READ, 1, pfns, NULL),
                     ESRCH);
    /* Restriction. */
    ck_assert_int_eq(xenforeignmemory_restrict(f, 7), 0);
    CHECK_NULL_ERRNO(xenforeignmemory_map(f, 0, PROT_READ, 1, pfns, NULL),
                     EPERM);
    a = xenforeignmemory_map(f, 7, PROT_READ, 1, pfns, NULL);
    ck_assert_ptr_nonnull(a);
    xenforeignmemory_unmap(f, a, 1);
    /* Resources are not simulated. */
    void *addr = NULL;
    size_t size;
    CHECK_NULL_ERRNO(xenforeignmemory_map_resource(f, 7, 0, 0, 0, 1, &addr,
                                                   PROT_READ, 0),
                     EOPNOTSUPP);
    CHECK_FAIL_ERRNO(xenforeignmemory_resource_size(f, 7, 0, 0, &size),
                     EOPNOTSUPP);
    ck_assert_int_eq(xenforeignmemory_unmap_resource(f, NULL), 0);
    xenforeignmemory_close(f);
    xenforeignmemory_close(g);
}
END_TEST

START_TEST(bad_domid_env)
{
    setenv("NOXS_SIM_DOMID", "70000", 1);
    CHECK_NULL_ERRNO(xenforeignmemory_open(NULL, 0), EINVAL);
}
END_TEST

static Suite *suite(void)
{
    return check_suite("sim_foreignmem", "foreignmem", fresh_dir, NULL, 0,
                       CHECK_TESTS(dom0_maps_guest, errors, bad_domid_env));
}

CHECK_MAIN(suite)
