/*
 * A directory of a test's own (a store's files, a database), made in the
 * test's process by its fixture and removed with everything in it after.
 */
#ifndef NOXS_CHECK_TMPDIR_H
#define NOXS_CHECK_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include <check.h>

/* Makes DIR (of SIZE bytes) a new directory TAG.XXXXXX below $ENV (the
 * test runner's scratch directory), or below /tmp when that is unset. */
static inline void check_tmpdir_make(char *dir, size_t size, const char *env,
                                     const char *tag)
{
    const char *base = getenv(env);

    snprintf(dir, size, "%s/%s.XXXXXX", base ? base : "/tmp", tag);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static inline int check_tmpdir_unlink(const char *path, const struct stat *st,
                                      int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes DIR and what the test left in it (depth first, links not
 * followed). */
static inline void check_tmpdir_remove(const char *dir)
{
    ck_assert_int_eq(nftw(dir, check_tmpdir_unlink, 16, FTW_DEPTH | FTW_PHYS),
                     0);
}

#endif /* NOXS_CHECK_TMPDIR_H */
