/*
 * Check suite for noxs-blk-back's grant cache (drivers/blk/gcache.c):
 * data pages mapped per request, kept mapped as persistent grants in an
 * open-addressing table and an LRU list, evicted past the device's share
 * of the process-wide budget, pinned while a request uses them, mapped
 * for one request when nothing can be evicted, and MAP_RETRY when those
 * fill TEMP_MAX.
 *
 * The grant mapping calls are replaced by the stubs below: a "mapping"
 * of n refs is n pages of heap, each holding the ref it stands for, so
 * every address map_segments hands out can be checked against its ref,
 * and every page must come back through xengnttab_unmap exactly once.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blkback.h"

struct blkback_conf conf;

/* ---- stubs for the grant mapping calls ---- */

#define MAXMAPS 4096
static struct {
    void *addr;
    uint32_t count;
    int prot;
} maps[MAXMAPS];
static unsigned int nmaps_live, pages_live, map_calls;
static unsigned int maps_high; /* maps[] in use lie below */
static uint32_t fail_ref;      /* a map of this ref fails */

void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count,
                                      uint32_t domid, uint32_t *refs,
                                      int prot)
{
    uint8_t *p;

    (void)xgt;
    (void)domid;
    map_calls++;
    for (uint32_t i = 0; i < count; i++)
        if (refs[i] == fail_ref)
            return NULL;
    p = aligned_alloc(4096, (size_t)count * 4096);
    ck_assert_ptr_nonnull(p);
    for (uint32_t i = 0; i < count; i++)
        memcpy(p + (size_t)i * 4096, &refs[i], sizeof(refs[i]));
    for (unsigned int k = 0; k < MAXMAPS; k++) {
        if (maps[k].addr == NULL) {
            maps[k].addr = p;
            maps[k].count = count;
            maps[k].prot = prot;
            if (k >= maps_high)
                maps_high = k + 1;
            nmaps_live++;
            pages_live += count;
            return p;
        }
    }
    ck_abort_msg("too many mappings");
    return NULL;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address,
                    uint32_t count)
{
    (void)xgt;
    for (unsigned int k = 0; k < maps_high; k++) {
        if (maps[k].addr == start_address) {
            ck_assert_uint_eq(maps[k].count, count);
            free(start_address);
            maps[k].addr = NULL;
            nmaps_live--;
            pages_live -= count;
            return 0;
        }
    }
    ck_abort_msg("unmap of %p, which is not mapped", start_address);
    return -1;
}

/* ---- helpers ---- */

static void setup(void)
{
    memset(maps, 0, sizeof(maps));
    nmaps_live = pages_live = map_calls = maps_high = 0;
    fail_ref = 0;
    memset(&conf, 0, sizeof(conf));
    conf.max_grants = 64;
}

static struct blkdev *dev_new(bool persistent)
{
    struct blkdev *bd = calloc(1, sizeof(*bd));

    ck_assert_ptr_nonnull(bd);
    bd->persistent = persistent;
    ck_assert_int_eq(gcache_init(bd), 0);
    return bd;
}

static void dev_free(struct blkdev *bd)
{
    gcache_clear(bd);
    free(bd);
}

/* The last device goes: nothing may stay mapped. */
static void dev_done(struct blkdev *bd)
{
    dev_free(bd);
    ck_assert_uint_eq(nmaps_live, 0);
}

static struct blkreq req(uint8_t op, unsigned int n, const uint32_t *grefs)
{
    struct blkreq r;

    memset(&r, 0, sizeof(r));
    r.operation = op;
    r.nr_segments = (uint8_t)n;
    for (unsigned int i = 0; i < n; i++) {
        r.seg[i].gref = grefs[i];
        r.seg[i].length = 4096;
    }
    return r;
}

/* Map r, check that each segment's page is its ref's. */
static int map_check(struct blkdev *bd, const struct blkreq *r,
                     struct seg_maps *m)
{
    void *addr[NOXS_BLK_MAX_SEGMENTS];
    int st = map_segments(bd, r, addr, m);

    if (st != NOXS_BLK_RSP_OKAY)
        return st;
    for (unsigned int i = 0; i < r->nr_segments; i++) {
        uint32_t got;

        memcpy(&got, addr[i], sizeof(got));
        ck_assert_uint_eq(got, r->seg[i].gref);
    }
    return st;
}

/*
 * The table holds one entry per cached page, and each entry can be found
 * from its ref's home slot: no empty slot lies between them.
 */
static void table_check(const struct blkdev *bd)
{
    uint32_t mask = bd->gcache_slots - 1;
    unsigned int used = 0;

    for (uint32_t s = 0; s < bd->gcache_slots; s++) {
        uint32_t g = bd->gcache[s].gref;

        if (g == 0)
            continue;
        used++;
        for (uint32_t k = (g * 2654435761u) & mask; k != s; k = (k + 1) & mask)
            ck_assert_msg(bd->gcache[k].gref != 0,
                          "ref %u in slot %u is lost behind empty slot %u", g,
                          s, k);
    }
    ck_assert_uint_eq(used, bd->gcache_used);
}

/* Map and unmap at once (one request served). */
static int serve(struct blkdev *bd, uint8_t op, unsigned int n,
                 const uint32_t *grefs)
{
    struct blkreq r = req(op, n, grefs);
    struct seg_maps m;
    int st = map_check(bd, &r, &m);

    if (st == NOXS_BLK_RSP_OKAY)
        unmap_segments(bd, &r, &m);
    return st;
}

/* Serve one request, which must succeed; map calls so far: calls. */
static void serve_ok(struct blkdev *bd, uint8_t op, unsigned int n,
                     const uint32_t *grefs, unsigned int calls)
{
    ck_assert_int_eq(serve(bd, op, n, grefs), NOXS_BLK_RSP_OKAY);
    ck_assert_uint_eq(map_calls, calls);
}

/* ---- tests ---- */

START_TEST(test_hit_after_miss)
{
    struct blkdev *bd = dev_new(true);
    uint32_t g[3] = {100, 101, 100}; /* a ref twice: one page */

    serve_ok(bd, NOXS_BLK_OP_READ, 3, g, 1);
    ck_assert_uint_eq(pages_live, 2);
    ck_assert_uint_eq(bd->gcache_used, 2);
    /* The same refs again: no new mapping. */
    serve_ok(bd, NOXS_BLK_OP_WRITE, 3, g, 1);
    /* One new ref among cached ones: one mapping of that ref only. */
    g[1] = 102;
    serve_ok(bd, NOXS_BLK_OP_READ, 3, g, 2);
    ck_assert_uint_eq(pages_live, 3);
    ck_assert_uint_eq(atomic_load(&conf.grants_mapped), 3);
    dev_done(bd);
    ck_assert_uint_eq(atomic_load(&conf.grants_mapped), 0);
    ck_assert_uint_eq(atomic_load(&conf.persistent_devs), 0);
}
END_TEST

/*
 * A request whose pages run through cached chunks in and out of order:
 * each segment gets its own ref's page and pins the chunk it lies in,
 * whether the page follows the previous segment's in its chunk or not.
 */
START_TEST(test_runs_across_chunks)
{
    struct blkdev *bd = dev_new(true);
    uint32_t a[3] = {100, 101, 102}, b[2] = {200, 201};
    uint32_t mix[8] = {100, 101, 200, 201, 102, 101, 100, 101};
    uint32_t grow[3] = {101, 102, 103};
    struct blkreq r = req(NOXS_BLK_OP_READ, 8, mix);
    struct seg_maps m;

    serve_ok(bd, NOXS_BLK_OP_READ, 3, a, 1);
    serve_ok(bd, NOXS_BLK_OP_READ, 2, b, 2);
    ck_assert_int_eq(map_check(bd, &r, &m), NOXS_BLK_RSP_OKAY);
    ck_assert_uint_eq(map_calls, 2);
    for (unsigned int i = 0; i < 8; i++) {
        ck_assert_ptr_nonnull(m.pin[i]);
        ck_assert_ptr_eq(m.pin[i], m.pin[mix[i] < 200 ? 0 : 2]);
    }
    ck_assert_ptr_ne(m.pin[0], m.pin[2]);
    unmap_segments(bd, &r, &m);
    /* The last page of a chunk, then a ref no chunk holds: mapped anew. */
    serve_ok(bd, NOXS_BLK_OP_READ, 3, grow, 3);
    ck_assert_uint_eq(pages_live, 6);
    table_check(bd);
    dev_done(bd);
}
END_TEST

START_TEST(test_not_persistent)
{
    struct blkdev *bd = dev_new(false);
    uint32_t g[2] = {100, 101};

    ck_assert_int_eq(serve(bd, NOXS_BLK_OP_READ, 2, g), NOXS_BLK_RSP_OKAY);
    serve_ok(bd, NOXS_BLK_OP_READ, 2, g, 2);
    ck_assert_uint_eq(nmaps_live, 0); /* unmapped after each request */
    ck_assert_uint_eq(bd->temp_used, 0);
    dev_free(bd);
}
END_TEST

START_TEST(test_bad_refs)
{
    struct blkdev *bd = dev_new(true);
    uint32_t low[1] = {NOXS_GREF_MIN - 1}, g[2] = {100, 200};

    ck_assert_int_eq(serve(bd, NOXS_BLK_OP_READ, 1, low),
                     NOXS_BLK_RSP_BADGREF);
    fail_ref = 200;
    ck_assert_int_eq(serve(bd, NOXS_BLK_OP_READ, 2, g), NOXS_BLK_RSP_BADGREF);
    ck_assert_uint_eq(nmaps_live, 0);
    ck_assert_uint_eq(bd->gcache_used, 0);
    dev_free(bd);
}
END_TEST

/* Past its share the device evicts its least recently used chunks. */
START_TEST(test_lru_eviction)
{
    struct blkdev *bd = dev_new(true);
    uint32_t g[1];

    /* 64 one-page chunks fill the budget (one device: all of it). */
    for (uint32_t i = 0; i < 64; i++) {
        g[0] = 1000 + i;
        ck_assert_int_eq(serve(bd, NOXS_BLK_OP_READ, 1, g), NOXS_BLK_RSP_OKAY);
    }
    ck_assert_uint_eq(bd->gcache_used, 64);
    /* Touch the oldest: now the second oldest is the LRU. */
    g[0] = 1000;
    serve_ok(bd, NOXS_BLK_OP_READ, 1, g, 64);
    g[0] = 5000;
    ck_assert_int_eq(serve(bd, NOXS_BLK_OP_READ, 1, g), NOXS_BLK_RSP_OKAY);
    ck_assert_uint_eq(bd->nr_evictions, 1);
    ck_assert_uint_eq(bd->gcache_used, 64);
    /* 1000 stayed, 1001 went. */
    g[0] = 1000;
    serve_ok(bd, NOXS_BLK_OP_READ, 1, g, 65);
    g[0] = 1001;
    serve_ok(bd, NOXS_BLK_OP_READ, 1, g, 66);
    ck_assert_uint_eq(pages_live, 64);
    dev_done(bd);
}
END_TEST

/* Two caching devices share the budget half and half. */
START_TEST(test_fair_share)
{
    struct blkdev *a = dev_new(true), *b = dev_new(true);
    uint32_t g[1];

    for (uint32_t i = 0; i < 40; i++) {
        g[0] = 1000 + i;
        ck_assert_int_eq(serve(a, NOXS_BLK_OP_READ, 1, g), NOXS_BLK_RSP_OKAY);
        g[0] = 3000 + i;
        ck_assert_int_eq(serve(b, NOXS_BLK_OP_READ, 1, g), NOXS_BLK_RSP_OKAY);
    }
    ck_assert_uint_eq(a->gcache_used, 32);
    ck_assert_uint_eq(b->gcache_used, 32);
    ck_assert_uint_eq(atomic_load(&conf.grants_mapped), 64);
    dev_free(b);
    ck_assert_uint_eq(atomic_load(&conf.persistent_devs), 1);
    /* Alone again: a may grow to the whole budget. */
    for (uint32_t i = 40; i < 80; i++) {
        g[0] = 1000 + i;
        ck_assert_int_eq(serve(a, NOXS_BLK_OP_READ, 1, g), NOXS_BLK_RSP_OKAY);
    }
    ck_assert_uint_eq(a->gcache_used, 64);
    dev_done(a);
}
END_TEST

/*
 * Chunks in use are pinned: with the budget full of them the next
 * request's pages are mapped for it alone, and once temporary pages
 * would pass TEMP_MAX the caller is told to retry after the requests in
 * flight are done.
 */
START_TEST(test_pinned_and_temp)
{
    struct blkdev *bd = dev_new(true);
    struct blkreq held[8], r;
    struct seg_maps hm[8], m, tm[TEMP_MAX / 8 + 2];
    struct blkreq tr[TEMP_MAX / 8 + 2];
    uint32_t g[8];
    unsigned int nt = 0;

    conf.max_grants = 64;
    for (unsigned int k = 0; k < 8; k++) { /* 8 x 8 pages, all pinned */
        for (unsigned int i = 0; i < 8; i++)
            g[i] = 1000 + k * 8 + i;
        held[k] = req(NOXS_BLK_OP_READ, 8, g);
        ck_assert_int_eq(map_check(bd, &held[k], &hm[k]), NOXS_BLK_RSP_OKAY);
    }
    ck_assert_uint_eq(bd->gcache_used, 64);
    for (unsigned int i = 0; i < 8; i++)
        g[i] = 5000 + i;
    r = req(NOXS_BLK_OP_READ, 8, g);
    ck_assert_int_eq(map_check(bd, &r, &m), NOXS_BLK_RSP_OKAY);
    ck_assert_uint_eq(bd->nr_evictions, 0);
    ck_assert_uint_eq(bd->temp_used, 8);
    unmap_segments(bd, &r, &m);
    ck_assert_uint_eq(bd->temp_used, 0);
    /* Temporary pages held until TEMP_MAX is reached. */
    for (;;) {
        int st;

        for (unsigned int i = 0; i < 8; i++)
            g[i] = 6000 + nt * 8 + i;
        tr[nt] = req(NOXS_BLK_OP_READ, 8, g);
        st = map_check(bd, &tr[nt], &tm[nt]);
        if (st == MAP_RETRY)
            break;
        ck_assert_int_eq(st, NOXS_BLK_RSP_OKAY);
        nt++;
        ck_assert_uint_le(nt, TEMP_MAX / 8);
    }
    ck_assert_uint_eq(bd->temp_used, TEMP_MAX);
    while (nt > 0) {
        nt--;
        unmap_segments(bd, &tr[nt], &tm[nt]);
    }
    /* Unpinned, the cached chunks can go again. */
    for (unsigned int k = 0; k < 8; k++)
        unmap_segments(bd, &held[k], &hm[k]);
    ck_assert_int_eq(serve(bd, NOXS_BLK_OP_READ, 8, g), NOXS_BLK_RSP_OKAY);
    ck_assert_uint_eq(bd->nr_evictions, 1);
    ck_assert_uint_eq(bd->temp_used, 0);
    dev_done(bd);
}
END_TEST

/*
 * Random requests against a small budget: the table's deletions (backward
 * shift, no tombstones) must leave every cached ref findable. A ref that
 * the device still has must never be mapped twice, and the counters must
 * agree with what is mapped.
 */
START_TEST(test_random_churn)
{
    struct blkdev *bd = dev_new(true);
    uint64_t x = 88172645463325252ull;

    uint32_t refs[96];

    /* Refs that collide in the table (it starts at 64 slots and grows
     * to 128 for this budget): at home in its last 6 slots and its
     * first 4 at either size, so that their runs wrap around its end. */
    ck_assert_uint_eq(bd->gcache_slots, 64);
    for (unsigned int k = 0; k < 96; k++) {
        uint32_t want = (122 + k % 10) & 127, base = 0;

        while (((NOXS_GREF_MIN + base) * 2654435761u & 127) != want)
            base++;
        refs[k] = NOXS_GREF_MIN + base + (k / 10) * 128u;
    }
    conf.max_grants = 48;
    for (unsigned int round = 0; round < 4000; round++) {
        uint32_t g[NOXS_BLK_MAX_SEGMENTS];
        unsigned int n;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        n = 1 + (unsigned int)(x % NOXS_BLK_MAX_SEGMENTS);
        for (unsigned int i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            g[i] = refs[x % 96];
        }
        ck_assert_int_eq(serve(bd, x & 1 ? NOXS_BLK_OP_WRITE : NOXS_BLK_OP_READ,
                               n, g),
                         NOXS_BLK_RSP_OKAY);
        ck_assert_uint_le(bd->gcache_used, conf.max_grants);
        ck_assert_uint_eq(bd->gcache_used, pages_live);
        table_check(bd);
        ck_assert_uint_eq(atomic_load(&conf.grants_mapped), pages_live);
        /* Serving the same request again maps nothing new. */
        unsigned int before = map_calls;

        serve_ok(bd, NOXS_BLK_OP_READ, n, g, before);
    }
    ck_assert_uint_gt(bd->nr_evictions, 0);
    /* Grown with the cache, rehashed (table_check above), at most half
     * full: 48 pages and a request's 11 fit 128 slots. */
    ck_assert_uint_eq(bd->gcache_slots, 128);
    dev_done(bd);
}
END_TEST

static Suite *gcache_suite(void)
{
    const TTest *const tests[] = {
        test_hit_after_miss,
        test_runs_across_chunks,
        test_not_persistent,
        test_bad_refs,
        test_lru_eviction,
        test_fair_share,
        test_pinned_and_temp,
        test_random_churn,
    };
    Suite *s = suite_create("blkgcache");
    TCase *tc = tcase_create("gcache");

    /* A liveness bound only: the machine may be busy. */
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, NULL);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gcache_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
