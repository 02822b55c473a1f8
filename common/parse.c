/*
 * Numbers, modes, users and paths on command lines (see parse.h).
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <noxs/abi.h>
#include <noxs/noxs.h>

#include "common/parse.h"

#ifndef NOXS_VERSION
#error "NOXS_VERSION comes from the VERSION file (see the Makefile)"
#endif

int parse_u64n(const char *s, size_t len, uint64_t min, uint64_t max,
               uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || (len > 1 && s[0] == '0')) {
        errno = EINVAL;
        return -1;
    }
    for (i = 0; i < len; i++) {
        unsigned int d = (unsigned char)s[i] - '0';

        if (d > 9) {
            errno = EINVAL;
            return -1;
        }
        if (v > (UINT64_MAX - d) / 10) {
            /* Keep checking the rest is digits: "9999...x" is junk. */
            for (; i < len; i++)
                if ((unsigned char)s[i] - '0' > 9) {
                    errno = EINVAL;
                    return -1;
                }
            errno = ERANGE;
            return -1;
        }
        v = v * 10 + d;
    }
    if (v < min || v > max) {
        errno = ERANGE;
        return -1;
    }
    *out = v;
    return 0;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    return parse_u64n(s, strlen(s), min, max, out);
}

int parse_domid(const char *s, uint16_t *out)
{
    uint64_t v;

    if (parse_u64(s, 0, NOXS_DOMID_MAX, &v) < 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int parse_mode(const char *s, mode_t *out)
{
    unsigned long v = 0;
    size_t i, len = strlen(s);

    if (len == 0 || len > 5) {
        errno = len == 0 ? EINVAL : ERANGE;
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '7') {
            errno = EINVAL;
            return -1;
        }
        v = v * 8 + (unsigned long)(s[i] - '0');
    }
    if (v > 07777) {
        errno = ERANGE;
        return -1;
    }
    *out = (mode_t)v;
    return 0;
}

int parse_uid(const char *s, uid_t *out)
{
    struct passwd *pw;
    uint64_t v;

    if (*s >= '0' && *s <= '9') {
        /* (uid_t)-1 means "no change" to chown(2): never a user. */
        if (parse_u64(s, 0, (uid_t)-2, &v) < 0)
            return -1;
        *out = (uid_t)v;
        return 0;
    }
    errno = 0;
    if (*s == '\0' || (pw = getpwnam(s)) == NULL) {
        errno = EINVAL;
        return -1;
    }
    *out = pw->pw_uid;
    return 0;
}

char *path_absolute(const char *path)
{
    char cwd[PATH_MAX];
    char *out;

    if (path[0] == '/')
        return strdup(path);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    if (asprintf(&out, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path) < 0)
        return NULL;
    return out;
}

void print_version(const char *prog)
{
    printf("%s %s\n", prog, NOXS_VERSION);
}

const char *version_string(void)
{
    return NOXS_VERSION;
}

const char *params_unknown(const struct noxs_kv *params, size_t n,
                           const char *const known[])
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        for (j = 0; known[j] != NULL; j++)
            if (strcmp(params[i].key, known[j]) == 0)
                break;
        if (known[j] == NULL)
            return params[i].key;
    }
    return NULL;
}
