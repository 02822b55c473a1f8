/*
 * The main() of a Check suite in tests/unit/: each file defines its test
 * cases and one function that builds its Suite, and ends with
 *
 *     CHECK_MAIN(my_suite)
 *
 * A file whose main() has more to do (a helper mode the suite re-executes
 * itself in) calls check_run(my_suite()) from its own main().
 *
 * The suite is built by check_suite() from a list of its tests:
 *
 *     static Suite *my_suite(void)
 *     {
 *         return check_suite("my", "core", setup, teardown, 60,
 *                            CHECK_TESTS(test_a, test_b));
 *     }
 *
 * and a suite of several test cases adds each with check_add_case(), or
 * check_add_loop() for a test run once per row of a table.
 */
#ifndef NOXS_CHECK_MAIN_H
#define NOXS_CHECK_MAIN_H

#include <errno.h>
#include <stdlib.h>

#include <check.h>

/* CALL, which returns a pointer, fails: NULL and errno ERR. */
#define CHECK_NULL_ERRNO(call, err)     \
    do {                                \
        errno = 0;                      \
        ck_assert_ptr_null(call);       \
        ck_assert_int_eq(errno, (err)); \
    } while (0)

/* CALL, which returns an int, fails: -1 and errno ERR. */
#define CHECK_FAIL_ERRNO(call, err)     \
    do {                                \
        errno = 0;                      \
        ck_assert_int_eq((call), -1);   \
        ck_assert_int_eq(errno, (err)); \
    } while (0)

/* A NULL-ended list of tests (the names START_TEST defined), in the
 * order they run. */
#define CHECK_TESTS(...) ((const TTest *const[]){__VA_ARGS__, NULL})

/* Adds to S a test case NAME of the TESTS (CHECK_TESTS), each run
 * between SETUP and TEARDOWN (in the test's process; either may be NULL),
 * with a timeout of TIMEOUT seconds (0 keeps Check's default). */
static inline TCase *check_add_case(Suite *s, const char *name,
                                    void (*setup)(void),
                                    void (*teardown)(void), int timeout,
                                    const TTest *const *tests)
{
    TCase *tc = tcase_create(name);

    if (setup != NULL || teardown != NULL)
        tcase_add_checked_fixture(tc, setup, teardown);
    if (timeout > 0)
        tcase_set_timeout(tc, timeout);
    for (; *tests != NULL; tests++)
        tcase_add_test(tc, *tests);
    suite_add_tcase(s, tc);
    return tc;
}

/* Adds to S a test case NAME of one loop test: TEST runs once for each
 * _i from START to END - 1 (a row of a table of cases). */
static inline TCase *check_add_loop(Suite *s, const char *name,
                                    const TTest *test, int start, int end)
{
    TCase *tc = tcase_create(name);

    tcase_add_loop_test(tc, test, start, end);
    suite_add_tcase(s, tc);
    return tc;
}

/* A suite NAME of one test case TCASE (see check_add_case). */
static inline Suite *check_suite(const char *name, const char *tcase,
                                 void (*setup)(void), void (*teardown)(void),
                                 int timeout, const TTest *const *tests)
{
    Suite *s = suite_create(name);

    check_add_case(s, tcase, setup, teardown, timeout, tests);
    return s;
}

/* Runs every test case of s (and frees it): the exit status for main(). */
static inline int check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#define CHECK_MAIN(suite_fn)          \
    int main(void)                    \
    {                                 \
        return check_run(suite_fn()); \
    }

#endif
