/*
 * The one parser of numbers and names on noxs command lines and in its
 * environment variables, so that every program reads "010", "666" or
 * "abc" the same way:
 *   - numbers (ids, counts, times) are decimal: digits only, no sign, no
 *     blanks, no leading zero (except "0" itself: "010" is refused, since
 *     C would read it as octal 8 and a person as ten);
 *   - modes are octal, as chmod(1), install -m and systemd read them:
 *     "666", "0666" and "0660" are modes, "8" is not;
 *   - users are names (getpwnam) or decimal uids.
 * Each returns 0, or -1 with errno EINVAL (not of that form) or ERANGE
 * (of that form, outside min..max).
 */
#ifndef NOXS_COMMON_PARSE_H
#define NOXS_COMMON_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* The same on s[0..len), which need not be NUL-terminated. */
int parse_u64n(const char *s, size_t len, uint64_t min, uint64_t max,
               uint64_t *out);
/* A domain id, 0..NOXS_DOMID_MAX. */
int parse_domid(const char *s, uint16_t *out);
int parse_mode(const char *s, mode_t *out);
int parse_uid(const char *s, uid_t *out);

/*
 * path made absolute against the current directory (not resolved: a
 * symbolic link stays one); malloc'd, NULL with errno on failure. A
 * daemon keeps the paths it was given and uses them after it detached
 * (and left its directory), so it takes them in at start.
 */
char *path_absolute(const char *path);

/*
 * The first key of params[0..n) that is not in known (NULL-terminated),
 * or NULL: a backend refuses a device whose parameters it would ignore
 * (a typing mistake must not pass for a default).
 */
struct noxs_kv;
const char *params_unknown(const struct noxs_kv *params, size_t n,
                           const char *const known[]);

/* "PROG VERSION" on stdout: the one version of every noxs program. */
void print_version(const char *prog);
const char *version_string(void);


/*
 * Command-line options, for programs (common/opt.c): the value of
 * --name, or a message naming the option, the value and what is
 * expected ("noxsd: --domain-poll 1x: not a number (decimal 0..3600000)")
 * and exit(2), the usage-error status of every noxs program.
 */
#define EXIT_USAGE 2
uint64_t opt_u64(const char *name, const char *arg, uint64_t min,
                 uint64_t max);
uint16_t opt_domid(const char *name, const char *arg);
/* A path option, made absolute (path_absolute); exits 1 on failure. */
char *opt_path(const char *name, const char *arg);
#endif /* NOXS_COMMON_PARSE_H */
