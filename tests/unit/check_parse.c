/*
 * check_parse: the one parser of command-line numbers (common/parse.c)
 * and libnoxs's answer to "which domain am I" (noxs_self_domid).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <noxs/noxs.h>

#include "common/parse.h"
#include "check_main.h"

/* One number parser, called the same way for each: the value it gives
 * (zero-extended) in *out. */
enum parser { U64,
              DOMID,
              MODE,
              UID };

static int parse(enum parser p, const char *in, uint64_t lo, uint64_t hi,
                 uint64_t *out)
{
    uint16_t d;
    mode_t m;
    uid_t u;
    int rc;

    switch (p) {
    case U64:
        return parse_u64(in, lo, hi, out);
    case DOMID:
        rc = parse_domid(in, &d);
        *out = d;
        return rc;
    case MODE:
        rc = parse_mode(in, &m);
        *out = m;
        return rc;
    case UID:
        rc = parse_uid(in, &u);
        *out = u;
        return rc;
    }
    return -1;
}

/* A parser's answer for one input: the value, or failure with errno ERR
 * (ANY_ERR: any errno). */
#define ANY_ERR (-1)
static const struct number_case {
    enum parser p;
    const char *in;
    uint64_t lo, hi;
    int err; /* 0: accepted */
    uint64_t want;
} numbers[] = {
    {U64, "0", 0, 10, 0, 0},
    {U64, "10", 0, 10, 0, 10},
    {U64, "18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX},
    /* Junk: EINVAL. */
    {U64, "", 0, UINT64_MAX, EINVAL, 0},
    {U64, "010", 0, UINT64_MAX, EINVAL, 0},
    {U64, "00", 0, UINT64_MAX, EINVAL, 0},
    {U64, "-1", 0, UINT64_MAX, EINVAL, 0},
    {U64, "+1", 0, UINT64_MAX, EINVAL, 0},
    {U64, " 1", 0, UINT64_MAX, EINVAL, 0},
    {U64, "1 ", 0, UINT64_MAX, EINVAL, 0},
    {U64, "0x10", 0, UINT64_MAX, EINVAL, 0},
    {U64, "1e3", 0, UINT64_MAX, EINVAL, 0},
    {U64, "abc", 0, UINT64_MAX, EINVAL, 0},
    {U64, "3x", 0, UINT64_MAX, EINVAL, 0},
    /* Out of range: ERANGE, overflow included. */
    {U64, "11", 0, 10, ERANGE, 0},
    {U64, "0", 1, 10, ERANGE, 0},
    {U64, "18446744073709551616", 0, UINT64_MAX, ERANGE, 0},
    {U64, "99999999999999999999x", 0, UINT64_MAX, EINVAL, 0},
    {DOMID, "32751", 0, 0, 0, 32751},
    {DOMID, "32752", 0, 0, ERANGE, 0},
    {DOMID, "010", 0, 0, EINVAL, 0},
    {MODE, "666", 0, 0, 0, 0666},
    {MODE, "0660", 0, 0, 0, 0660},
    {MODE, "07777", 0, 0, 0, 07777},
    {MODE, "8", 0, 0, EINVAL, 0},
    {MODE, "", 0, 0, EINVAL, 0},
    {MODE, "17777", 0, 0, ERANGE, 0},
    {MODE, "0x1ff", 0, 0, EINVAL, 0},
    {UID, "root", 0, 0, 0, 0},
    {UID, "1000", 0, 0, 0, 1000},
    {UID, "no-such-user-at-all", 0, 0, EINVAL, 0},
    {UID, "4294967295", 0, 0, ERANGE, 0},
    {UID, "", 0, 0, ANY_ERR, 0},
};

/* Row _i of numbers (a loop test). */
START_TEST(test_number)
{
    const struct number_case *c = &numbers[_i];
    uint64_t v = 0;
    int rc;

    errno = 0;
    rc = parse(c->p, c->in, c->lo, c->hi, &v);
    if (c->err == 0) {
        ck_assert_msg(rc == 0, "'%s' (parser %d) refused", c->in, c->p);
        ck_assert_msg(v == c->want, "'%s': %ju", c->in, (uintmax_t)v);
    } else {
        ck_assert_msg(rc < 0, "'%s' (parser %d) accepted", c->in, c->p);
        ck_assert_msg(c->err == ANY_ERR || errno == c->err,
                      "'%s': errno %d, want %d", c->in, errno, c->err);
    }
}
END_TEST

/* The first of N numbers. */
START_TEST(test_decimal_n)
{
    uint64_t v;

    ck_assert_int_eq(parse_u64n("12:34", 2, 0, 99, &v), 0);
    ck_assert_uint_eq(v, 12);
}
END_TEST

START_TEST(test_self_domid)
{
    uint16_t d = 99;

    unsetenv("NOXS_DOMID");
    unsetenv("NOXS_SIM_DOMID");
    ck_assert_int_eq(noxs_self_domid(&d), 0);
    ck_assert_uint_eq(d, 0);
    setenv("NOXS_SIM_DOMID", "12", 1);
    ck_assert_int_eq(noxs_self_domid(&d), 1);
    ck_assert_uint_eq(d, 12);
    setenv("NOXS_DOMID", "7", 1); /* NOXS_DOMID first */
    ck_assert_int_eq(noxs_self_domid(&d), 1);
    ck_assert_uint_eq(d, 7);
    setenv("NOXS_DOMID", "010", 1); /* refused, not 8, not ignored */
    errno = 0;
    ck_assert_int_eq(noxs_self_domid(&d), -1);
    ck_assert_int_eq(errno, EINVAL);
    setenv("NOXS_DOMID", "", 1); /* empty: unset */
    ck_assert_int_eq(noxs_self_domid(&d), 1);
    ck_assert_uint_eq(d, 12);
    setenv("NOXS_SIM_DOMID", "32752", 1);
    ck_assert_int_eq(noxs_self_domid(&d), -1);
    unsetenv("NOXS_DOMID");
    unsetenv("NOXS_SIM_DOMID");
}
END_TEST

static void *other_thread(void *arg)
{
    uint16_t *d = arg;

    if (noxs_self_domid(d) != 1)
        *d = 0xffff;
    return NULL;
}

/*
 * noxs_open_as: the simulator's per-thread identity outranks the
 * environment on the calling thread only, and never writes the
 * environment (other threads may be reading it).
 */
START_TEST(test_open_as)
{
    uint16_t d = 99, seen = 99;
    pthread_t t;
    int prev = 5;

    setenv("NOXS_DOMID", "7", 1);
    ck_assert_int_eq(noxs_open_as(3, &prev), 0);
    ck_assert_int_eq(prev, -1);
    ck_assert_int_eq(noxs_self_domid(&d), 1);
    ck_assert_uint_eq(d, 3);
    ck_assert_str_eq(getenv("NOXS_DOMID"), "7");
    ck_assert_ptr_null(getenv("NOXS_SIM_DOMID"));
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, &seen), 0);
    pthread_join(t, NULL);
    ck_assert_uint_eq(seen, 7);
    ck_assert_int_eq(noxs_open_as(4, &prev), 0);
    ck_assert_int_eq(prev, 3);
    errno = 0;
    ck_assert_int_eq(noxs_open_as(32752, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(noxs_open_as(-1, &prev), 0);
    ck_assert_int_eq(prev, 4);
    ck_assert_int_eq(noxs_self_domid(&d), 1);
    ck_assert_uint_eq(d, 7);
    unsetenv("NOXS_DOMID");
}
END_TEST

static Suite *parse_suite(void)
{
    Suite *s = check_suite("parse", "core", NULL, NULL, 0,
                           CHECK_TESTS(test_decimal_n, test_self_domid,
                                       test_open_as));

    check_add_loop(s, "numbers", test_number, 0,
                   (int)(sizeof(numbers) / sizeof(numbers[0])));
    return s;
}

CHECK_MAIN(parse_suite)
