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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/*
 * The end of every program's long-option table: --help and --version
 * (its short option string carries 'h'; -V is taken by getopt_long
 * from the table's val).
 */
/* clang-format off: one table entry a line reads best. */
#define OPT_HELP_VERSION                     \
    {"help", no_argument, NULL, 'h'},        \
        {"version", no_argument, NULL, 'V'}, \
    {                                        \
        NULL, 0, NULL, 0                     \
    }
/* clang-format on */
/*
 * An option the program's own switch does not handle: 'h' prints usage
 * on stdout and 'V' the version (status 0); anything else is a usage
 * error (usage on stderr, EXIT_USAGE). Returns that exit status.
 */
int opt_other(int ch, const char *prog, void (*usage)(FILE *));

/*
 * What every daemon takes: -d/--foreground, -v (more each time),
 * --socket PATH (noxsd's) and --pidfile PATH, then --help and
 * --version. The daemon's own options go before OPT_DAEMON in its
 * table, its short option string is "dvh" plus its own.
 */
/* clang-format off */
#define OPT_DAEMON                              \
    {"foreground", no_argument, NULL, 'd'},     \
    {"socket", required_argument, NULL, 's'},   \
    {"pidfile", required_argument, NULL, 'p'},  \
    OPT_HELP_VERSION
/* clang-format on */
struct option;
struct opt_daemon {
    const char *prog;
    void (*usage)(FILE *);
    /* The daemon's own options: -1 to go on, else the exit status. */
    int (*own)(int ch, const char *arg);
    /* What the shared options said. */
    bool foreground;
    int verbose;
    /* Made absolute: a daemon uses them after detaching. */
    const char *socket, *pidfile;
};
/*
 * The command line of a daemon that takes no operands: -1 to go on,
 * else the exit status (0 after --help or --version, EXIT_USAGE after
 * saying what is wrong).
 */
int opt_daemon_parse(int argc, char **argv, const struct option *longopts,
                     struct opt_daemon *d);
#endif /* NOXS_COMMON_PARSE_H */
