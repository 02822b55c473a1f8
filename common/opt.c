/*
 * Option values for the programs' command lines (see parse.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <noxs/abi.h>

#include "common/parse.h"

uint64_t opt_u64(const char *name, const char *arg, uint64_t min,
                 uint64_t max)
{
    uint64_t v;

    if (parse_u64(arg, min, max, &v) == 0)
        return v;
    fprintf(stderr, "%s: %s%s %s: %s (decimal %" PRIu64 "..%" PRIu64 ")\n",
            program_invocation_short_name, name[0] && name[1] ? "--" : "-",
            name, arg, errno == ERANGE ? "out of range" : "not a number",
            min, max);
    exit(EXIT_USAGE);
}

uint16_t opt_domid(const char *name, const char *arg)
{
    uint16_t d;

    if (parse_domid(arg, &d) == 0)
        return d;
    fprintf(stderr, "%s: %s: not a domain id (decimal 0..%u, no leading "
                    "zero)\n",
            program_invocation_short_name, arg, (unsigned int)NOXS_DOMID_MAX);
    (void)name;
    exit(EXIT_USAGE);
}

char *opt_path(const char *name, const char *arg)
{
    char *p = path_absolute(arg);

    if (p == NULL) {
        fprintf(stderr, "%s: --%s %s: %s\n", program_invocation_short_name,
                name, arg, strerror(errno));
        exit(1);
    }
    return p;
}

int opt_other(int ch, const char *prog, void (*usage)(FILE *))
{
    switch (ch) {
    case 'h':
        usage(stdout);
        return 0;
    case 'V':
        print_version(prog);
        return 0;
    default:
        usage(stderr);
        return EXIT_USAGE;
    }
}

/* One option: -1 to go on, else the exit status. */
static int opt_daemon_one(int ch, struct opt_daemon *d)
{
    switch (ch) {
    case 'd':
        d->foreground = true;
        return -1;
    case 'v':
        d->verbose++;
        return -1;
    case 's':
        d->socket = opt_path("socket", optarg);
        return -1;
    case 'p':
        d->pidfile = opt_path("pidfile", optarg);
        return -1;
    case 'h':
    case 'V':
    case '?':
    case ':':
        return opt_other(ch, d->prog, d->usage);
    default:
        return d->own(ch, optarg);
    }
}

int opt_daemon_parse(int argc, char **argv, const struct option *longopts,
                     struct opt_daemon *d)
{
    int ch, rc;

    while ((ch = getopt_long(argc, argv, "dvh", longopts, NULL)) != -1)
        if ((rc = opt_daemon_one(ch, d)) >= 0)
            return rc;
    if (optind == argc)
        return -1;
    fprintf(stderr, "%s: unexpected argument: %s\n", d->prog, argv[optind]);
    d->usage(stderr);
    return EXIT_USAGE;
}
