/*
 * The bootstrap string "noxs=<owner-domid>:<grant-ref>:<port>" and this
 * process's domain id.
 *
 * Parsing is strict because the string may come from a kernel command
 * line the guest does not control the whole of: decimal digits only, no
 * sign, no leading zeros (so every value has one spelling), no spaces
 * inside the word, every field range-checked against <noxs/abi.h>.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

#define PREFIX_LEN (sizeof(NOXS_BOOT_PREFIX) - 1)

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/*
 * Parse a decimal in [min, max] from s[0..len). Returns 0 or -1.
 */
static int parse_decimal(const char *s, size_t len, uint64_t min, uint64_t max,
                         uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 10)
        return -1;
    if (len > 1 && s[0] == '0')
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Parse "<owner>:<gref>:<port>" occupying exactly s[0..len). */
static int parse_triple(const char *s, size_t len, struct noxs_boot *out)
{
    const char *c1 = memchr(s, ':', len), *c2;
    uint64_t owner, gref, port;

    if (!c1)
        return -1;
    c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s));
    if (!c2)
        return -1;
    if (parse_decimal(s, (size_t)(c1 - s), 0, NOXS_DOMID_MAX, &owner) < 0 ||
        parse_decimal(c1 + 1, (size_t)(c2 - c1 - 1), NOXS_GREF_MIN,
                      UINT32_MAX, &gref) < 0 ||
        parse_decimal(c2 + 1, len - (size_t)(c2 + 1 - s), 1, NOXS_PORT_MAX,
                      &port) < 0)
        return -1;
    out->owner_domid = (uint16_t)owner;
    out->gref = (uint32_t)gref;
    out->port = (uint32_t)port;
    return 0;
}

NOXS_EXPORT int noxs_boot_parse(const char *s, struct noxs_boot *out)
{
    const char *p, *word = NULL, *bare = NULL;
    size_t word_len = 0, bare_len = 0, nwords = 0;
    struct noxs_boot b;

    if (!s || !out) {
        errno = EINVAL;
        return -1;
    }
    /* Walk the words; the first "noxs=" word wins. */
    for (p = s; *p;) {
        const char *start;

        while (*p && is_space(*p))
            p++;
        if (!*p)
            break;
        start = p;
        while (*p && !is_space(*p))
            p++;
        nwords++;
        if (!bare) {
            bare = start;
            bare_len = (size_t)(p - start);
        }
        if ((size_t)(p - start) >= PREFIX_LEN &&
            memcmp(start, NOXS_BOOT_PREFIX, PREFIX_LEN) == 0) {
            word = start + PREFIX_LEN;
            word_len = (size_t)(p - start) - PREFIX_LEN;
            break;
        }
    }
    if (!word) {
        /* No prefix: only a lone word that looks like the triple. */
        if (nwords != 1 || !memchr(bare, ':', bare_len)) {
            errno = ENOENT;
            return -1;
        }
        word = bare;
        word_len = bare_len;
    }
    if (word_len + PREFIX_LEN > NOXS_BOOT_MAXLEN ||
        parse_triple(word, word_len, &b) < 0) {
        errno = EINVAL;
        return -1;
    }
    *out = b;
    return 0;
}

NOXS_EXPORT int noxs_boot_format(const struct noxs_boot *b, char *buf,
                                 size_t len)
{
    int n;

    if (!b || !buf) {
        errno = EINVAL;
        return -1;
    }
    n = snprintf(buf, len, NOXS_BOOT_PREFIX "%u:%u:%u",
                 (unsigned int)b->owner_domid, (unsigned int)b->gref,
                 (unsigned int)b->port);
    if (n < 0 || (size_t)n >= len) {
        if (len)
            buf[0] = '\0';
        errno = ENOSPC;
        return -1;
    }
    return n;
}

NOXS_EXPORT int noxs_boot_find(struct noxs_boot *out)
{
    const char *env = getenv(NOXS_BOOT_ENV);
    char line[4096];
    ssize_t n;
    int fd, saved;

    if (env && *env)
        return noxs_boot_parse(env, out);
    fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = ENOENT;
        return -1;
    }
    n = read(fd, line, sizeof(line) - 1);
    saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return -1;
    }
    line[n] = '\0';
    return noxs_boot_parse(line, out);
}

/* ------------------------------------------------------------------ */

static bool domid_from_env(const char *name, uint16_t *out)
{
    const char *v = getenv(name);
    uint64_t d;

    if (!v || parse_decimal(v, strlen(v), 0, NOXS_DOMID_MAX, &d) < 0)
        return false;
    *out = (uint16_t)d;
    return true;
}

uint16_t noxs_i_self_domid(void)
{
    uint16_t d;

    if (domid_from_env("NOXS_DOMID", &d) ||
        domid_from_env("NOXS_SIM_DOMID", &d))
        return d;
    return 0;
}

bool noxs_i_self_domid_known(void)
{
    uint16_t d;

    return domid_from_env("NOXS_DOMID", &d) ||
           domid_from_env("NOXS_SIM_DOMID", &d);
}
