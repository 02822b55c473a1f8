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

START_TEST(test_decimal)
{
    uint64_t v;

    ck_assert_int_eq(parse_u64("0", 0, 10, &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(parse_u64("10", 0, 10, &v), 0);
    ck_assert_uint_eq(v, 10);
    ck_assert_int_eq(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
    ck_assert(v == UINT64_MAX);
    /* Junk: EINVAL. */
    static const char *const junk[] = {"", "010", "00", "-1", "+1", " 1",
                                       "1 ", "0x10", "1e3", "abc", "3x"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        errno = 0;
        ck_assert_msg(parse_u64(junk[i], 0, UINT64_MAX, &v) < 0 &&
                          errno == EINVAL,
                      "'%s' accepted", junk[i]);
    }
    /* Out of range: ERANGE, overflow included. */
    errno = 0;
    ck_assert(parse_u64("11", 0, 10, &v) < 0 && errno == ERANGE);
    errno = 0;
    ck_assert(parse_u64("0", 1, 10, &v) < 0 && errno == ERANGE);
    errno = 0;
    ck_assert(parse_u64("18446744073709551616", 0, UINT64_MAX, &v) < 0 &&
              errno == ERANGE);
    errno = 0;
    ck_assert(parse_u64("99999999999999999999x", 0, UINT64_MAX, &v) < 0 &&
              errno == EINVAL);
    ck_assert_int_eq(parse_u64n("12:34", 2, 0, 99, &v), 0);
    ck_assert_uint_eq(v, 12);
}
END_TEST

START_TEST(test_domid)
{
    uint16_t d;

    ck_assert_int_eq(parse_domid("32751", &d), 0);
    ck_assert_uint_eq(d, 32751);
    ck_assert(parse_domid("32752", &d) < 0 && errno == ERANGE);
    ck_assert(parse_domid("010", &d) < 0 && errno == EINVAL);
}
END_TEST

START_TEST(test_mode)
{
    mode_t m;

    ck_assert_int_eq(parse_mode("666", &m), 0);
    ck_assert_uint_eq(m, 0666);
    ck_assert_int_eq(parse_mode("0660", &m), 0);
    ck_assert_uint_eq(m, 0660);
    ck_assert_int_eq(parse_mode("07777", &m), 0);
    ck_assert_uint_eq(m, 07777);
    ck_assert(parse_mode("8", &m) < 0 && errno == EINVAL);
    ck_assert(parse_mode("", &m) < 0 && errno == EINVAL);
    ck_assert(parse_mode("17777", &m) < 0 && errno == ERANGE);
    ck_assert(parse_mode("0x1ff", &m) < 0 && errno == EINVAL);
}
END_TEST

START_TEST(test_uid)
{
    uid_t u;

    ck_assert_int_eq(parse_uid("root", &u), 0);
    ck_assert_uint_eq(u, 0);
    ck_assert_int_eq(parse_uid("1000", &u), 0);
    ck_assert_uint_eq(u, 1000);
    ck_assert(parse_uid("no-such-user-at-all", &u) < 0 && errno == EINVAL);
    ck_assert(parse_uid("4294967295", &u) < 0 && errno == ERANGE);
    ck_assert(parse_uid("", &u) < 0);
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
    return check_suite("parse", "core", NULL, NULL, 0,
                       CHECK_TESTS(test_decimal, test_domid, test_mode, test_uid,
                                   test_self_domid, test_open_as));
}

CHECK_MAIN(parse_suite)
