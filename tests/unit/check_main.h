/*
 * The main() of a Check suite in tests/unit/: each file defines its test
 * cases and one function that builds its Suite, and ends with
 *
 *     CHECK_MAIN(my_suite)
 *
 * A file whose main() has more to do (a helper mode the suite re-executes
 * itself in) calls check_run(my_suite()) from its own main().
 */
#ifndef NOXS_CHECK_MAIN_H
#define NOXS_CHECK_MAIN_H

#include <stdlib.h>

#include <check.h>

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
