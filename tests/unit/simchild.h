/*
 * Helpers of the unit tests in which a forked child plays a guest domain
 * on the simulator (check_dev, check_drvproto): the child reports a
 * failed check on stderr and through its exit status; the parent asserts
 * on that status.
 */
#ifndef NOXS_TESTS_SIMCHILD_H
#define NOXS_TESTS_SIMCHILD_H

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_CHECK(cond)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "child %s:%d: check failed: %s (errno %d: %s)\n", \
                    __FILE__, __LINE__, #cond, errno, strerror(errno));       \
            _exit(1);                                                         \
        }                                                                     \
    } while (0)

/* The simulator takes a handle's domain from here when it is opened. */
static inline void set_domid(unsigned int domid)
{
    char buf[16];

    snprintf(buf, sizeof(buf), "%u", domid);
    setenv("NOXS_SIM_DOMID", buf, 1);
}

/* Wait for the guest process; it must have passed every check. */
static inline void reap(pid_t pid)
{
    int status;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "guest process failed (status 0x%x)", status);
}

#endif /* NOXS_TESTS_SIMCHILD_H */
