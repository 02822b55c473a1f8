/*
 * Check suite for the blk and console ring protocols: ring sizes, the
 * notify rule, index sanity and every verdict of the backend's request
 * validation (drivers/blk/blkreq.c), plus the console ring copy helpers
 * across the wrap.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <noxs/io/blkif.h>
#include <noxs/io/consif.h>

#include "blkreq.h"
#include "check_main.h"

static const struct blkreq_geometry g512 = {
    .sectors = 2048, .sector_size = 512, .readonly = false, .discard = true};
static const struct blkreq_geometry g4k = {
    .sectors = 2048, .sector_size = 4096, .readonly = false, .discard = true};
static const struct blkreq_geometry gro = {
    .sectors = 2048, .sector_size = 512, .readonly = true, .discard = true};

static struct noxs_blk_request rw(uint8_t op, uint64_t sector, unsigned int nseg,
                                  uint8_t first, uint8_t last)
{
    struct noxs_blk_request r;

    memset(&r, 0, sizeof(r));
    r.operation = op;
    r.id = 77;
    r.sector_number = sector;
    r.nr_segments = (uint8_t)nseg;
    for (unsigned int i = 0; i < nseg && i < NOXS_BLK_MAX_SEGMENTS; i++) {
        r.u.seg[i].gref = 100 + i;
        r.u.seg[i].first_sect = first;
        r.u.seg[i].last_sect = last;
    }
    return r;
}

START_TEST(ring_sizes)
{
    ck_assert_uint_eq(noxs_blk_ring_size(0), 32);
    ck_assert_uint_eq(noxs_blk_ring_size(1), 64);
    ck_assert_uint_eq(noxs_blk_ring_size(2), 128);
    ck_assert_uint_eq(noxs_blk_ring_size(4), 512);
    ck_assert_uint_eq(noxs_cons_ring_bytes(2), 16384);
}
END_TEST

START_TEST(notify_rule)
{
    /* peer waits for index 5: moving 3 -> 6 crosses it, 6 -> 8 does not */
    ck_assert(noxs_blk_need_notify(3, 6, 5));
    ck_assert(noxs_blk_need_notify(4, 5, 5));
    ck_assert(!noxs_blk_need_notify(5, 8, 5));
    ck_assert(!noxs_blk_need_notify(3, 4, 5));
    /* across the 32-bit wrap */
    ck_assert(noxs_blk_need_notify(0xfffffffeu, 2, 0xffffffffu));
    ck_assert(!noxs_blk_need_notify(0xfffffffeu, 2, 3));
}
END_TEST

START_TEST(ring_indices)
{
    ck_assert_int_eq(blkreq_ring_available(10, 4, 4, 32), 6);
    ck_assert_int_eq(blkreq_ring_available(36, 30, 4, 32), 6);
    ck_assert_int_eq(blkreq_ring_available(37, 30, 4, 32), -1);
    ck_assert_int_eq(blkreq_ring_available(3, 0xfffffff0u, 0xfffffff0u, 32), 19);
    ck_assert_int_eq(blkreq_ring_available(0x80000000u, 0, 0, 32), -1);
    /* a producer behind the consumer is garbage too */
    ck_assert_int_eq(blkreq_ring_available(2, 5, 5, 32), -1);
    ck_assert_int_eq(blkreq_ring_available(4, 5, 3, 32), -1);
}
END_TEST

START_TEST(valid_read_write)
{
    struct noxs_blk_request r = rw(NOXS_BLK_OP_READ, 8, 3, 0, 7);
    struct blkreq out;

    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_OKAY);
    ck_assert_uint_eq(out.offset, 4096);
    ck_assert_uint_eq(out.length, 3 * 4096);
    ck_assert_uint_eq(out.nr_segments, 3);
    ck_assert_uint_eq(out.seg[2].gref, 102);
    ck_assert_uint_eq(out.seg[0].length, 4096);
    ck_assert_uint_eq(out.id, 77);

    r = rw(NOXS_BLK_OP_WRITE, 1, 1, 2, 3);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_OKAY);
    ck_assert_uint_eq(out.seg[0].offset, 1024);
    ck_assert_uint_eq(out.seg[0].length, 1024);
    /* exactly up to the end */
    r = rw(NOXS_BLK_OP_WRITE, 2048 - 88, 11, 0, 7);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_OKAY);
}
END_TEST

START_TEST(bad_segments)
{
    struct noxs_blk_request r;
    struct blkreq out;

    r = rw(NOXS_BLK_OP_READ, 0, 0, 0, 7);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_INVALID);
    r = rw(NOXS_BLK_OP_READ, 0, 11, 0, 7);
    r.nr_segments = 12;
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_INVALID);
    r.nr_segments = 255;
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_INVALID);
    r = rw(NOXS_BLK_OP_READ, 0, 1, 5, 4);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_INVALID);
    r = rw(NOXS_BLK_OP_READ, 0, 1, 0, 8);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_INVALID);
    r = rw(NOXS_BLK_OP_READ, 0, 1, 200, 255);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_INVALID);
}
END_TEST

START_TEST(bad_ranges)
{
    struct noxs_blk_request r;
    struct blkreq out;

    r = rw(NOXS_BLK_OP_READ, 2048, 1, 0, 0);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_RANGE);
    r = rw(NOXS_BLK_OP_READ, 2047, 1, 0, 1);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_RANGE);
    r = rw(NOXS_BLK_OP_WRITE, UINT64_MAX - 3, 1, 0, 7);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_RANGE);
    r = rw(NOXS_BLK_OP_DISCARD, 0, 0, 0, 0);
    r.sector_number = 8;
    r.u.discard.nr_sectors = UINT64_MAX - 4;
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_RANGE);
}
END_TEST

START_TEST(sector_4k)
{
    struct noxs_blk_request r;
    struct blkreq out;

    r = rw(NOXS_BLK_OP_READ, 8, 2, 0, 7);
    ck_assert_int_eq(blkreq_check(&r, &g4k, &out), NOXS_BLK_RSP_OKAY);
    r = rw(NOXS_BLK_OP_READ, 4, 1, 0, 7);
    ck_assert_int_eq(blkreq_check(&r, &g4k, &out), NOXS_BLK_RSP_INVALID);
    r = rw(NOXS_BLK_OP_READ, 8, 1, 1, 7);
    ck_assert_int_eq(blkreq_check(&r, &g4k, &out), NOXS_BLK_RSP_INVALID);
    r = rw(NOXS_BLK_OP_READ, 8, 1, 0, 3);
    ck_assert_int_eq(blkreq_check(&r, &g4k, &out), NOXS_BLK_RSP_INVALID);
    r = rw(NOXS_BLK_OP_DISCARD, 8, 0, 0, 0);
    r.u.discard.nr_sectors = 4;
    ck_assert_int_eq(blkreq_check(&r, &g4k, &out), NOXS_BLK_RSP_INVALID);
}
END_TEST

START_TEST(readonly_and_ops)
{
    struct noxs_blk_request r;
    struct blkreq out;

    r = rw(NOXS_BLK_OP_WRITE, 0, 1, 0, 7);
    ck_assert_int_eq(blkreq_check(&r, &gro, &out), NOXS_BLK_RSP_READONLY);
    r = rw(NOXS_BLK_OP_READ, 0, 1, 0, 7);
    ck_assert_int_eq(blkreq_check(&r, &gro, &out), NOXS_BLK_RSP_OKAY);
    r = rw(NOXS_BLK_OP_DISCARD, 0, 0, 0, 0);
    r.u.discard.nr_sectors = 8;
    ck_assert_int_eq(blkreq_check(&r, &gro, &out), NOXS_BLK_RSP_READONLY);
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_OKAY);
    ck_assert_uint_eq(out.length, 4096);
    r.u.discard.nr_sectors = 0;
    ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_INVALID);
    r = rw(NOXS_BLK_OP_FLUSH, 0, 0, 0, 0);
    ck_assert_int_eq(blkreq_check(&r, &gro, &out), NOXS_BLK_RSP_OKAY);
    for (unsigned int op = 0; op < 256; op++) {
        if (op == NOXS_BLK_OP_READ || op == NOXS_BLK_OP_WRITE ||
            op == NOXS_BLK_OP_FLUSH || op == NOXS_BLK_OP_DISCARD)
            continue;
        r = rw((uint8_t)op, 0, 1, 0, 7);
        ck_assert_int_eq(blkreq_check(&r, &g512, &out), NOXS_BLK_RSP_NOTSUPP);
        ck_assert_uint_eq(out.operation, op);
    }
    struct blkreq_geometry nodisc = g512;
    nodisc.discard = false;
    r = rw(NOXS_BLK_OP_DISCARD, 0, 0, 0, 0);
    r.u.discard.nr_sectors = 8;
    ck_assert_int_eq(blkreq_check(&r, &nodisc, &out), NOXS_BLK_RSP_NOTSUPP);
}
END_TEST

START_TEST(random_requests_never_escape)
{
    /* Whatever the bytes, an accepted request stays inside the device. */
    struct blkreq out;
    unsigned int seed = 12345;

    for (int i = 0; i < 200000; i++) {
        struct noxs_blk_request r;
        uint8_t *p = (uint8_t *)&r;

        for (size_t j = 0; j < sizeof(r); j++)
            p[j] = (uint8_t)rand_r(&seed);
        r.operation &= 7;
        if (i & 1)
            r.sector_number &= 4095;
        if (i & 2)
            r.nr_segments %= 13;
        const struct blkreq_geometry *g = (i & 4) ? &g4k : &g512;
        if (blkreq_check(&r, g, &out) != NOXS_BLK_RSP_OKAY)
            continue;
        ck_assert_uint_le(out.offset + out.length, g->sectors * 512);
        ck_assert_uint_le(out.nr_segments, NOXS_BLK_MAX_SEGMENTS);
        for (unsigned int s = 0; s < out.nr_segments; s++)
            ck_assert_uint_le(out.seg[s].offset + out.seg[s].length, 4096);
    }
}
END_TEST

START_TEST(console_copy_wraps)
{
    uint8_t ring[16], out[16];
    const uint8_t in[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    uint32_t n;

    memset(ring, 0, sizeof(ring));
    n = noxs_cons_write(ring, 16, 12, 16, in, 10); /* wraps after 4 bytes */
    ck_assert_uint_eq(n, 10);
    ck_assert_uint_eq(ring[12], 1);
    ck_assert_uint_eq(ring[15], 4);
    ck_assert_uint_eq(ring[0], 5);
    n = noxs_cons_read(ring, 16, 12, 10, out, 16);
    ck_assert_uint_eq(n, 10);
    ck_assert_mem_eq(out, in, 10);
    n = noxs_cons_write(ring, 16, 0, 3, in, 10); /* space-limited */
    ck_assert_uint_eq(n, 3);
    n = noxs_cons_read(ring, 16, 0xfffffffcu, 6, out, 4);
    ck_assert_uint_eq(n, 4);
}
END_TEST

static Suite *blkring_suite(void)
{
    Suite *s = suite_create("blkring");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, ring_sizes);
    tcase_add_test(tc, notify_rule);
    tcase_add_test(tc, ring_indices);
    tcase_add_test(tc, valid_read_write);
    tcase_add_test(tc, bad_segments);
    tcase_add_test(tc, bad_ranges);
    tcase_add_test(tc, sector_4k);
    tcase_add_test(tc, readonly_and_ops);
    tcase_add_test(tc, random_requests_never_escape);
    tcase_add_test(tc, console_copy_wraps);
    suite_add_tcase(s, tc);
    return s;
}

CHECK_MAIN(blkring_suite)
