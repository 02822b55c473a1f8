/*
 * noxsctl: the toolstack's command line for noxsd.
 *
 * Exit status: 0 success, 1 the request failed (the message names the
 * errno), 2 usage error, 3 noxsd not reachable. Messages go to stderr as
 * "noxsctl: ..."; results to stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <noxs/noxs.h>

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

#define NOXSCTL_VERSION "0.1"
#define MAX_PARAMS 32

static const char *socket_path;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: noxsctl [--socket PATH] COMMAND [ARGS]\n"
            "\n"
            "  domain-create DOMID            print the bootstrap "
            "noxs=OWNER:GREF:PORT\n"
            "  domain-destroy DOMID\n"
            "  domain-list [--json]\n"
            "  dev-add DOMID TYPE DEVID [--backend BEDOMID] [KEY=VALUE ...]\n"
            "  dev-rm DOMID TYPE DEVID\n"
            "  dev-list DOMID|all [--json]\n"
            "  status [--json]\n"
            "  watch DOMID|all [--json]\n"
            "  shutdown DOMID --reason poweroff|reboot|suspend|crash "
            "[--wait SECONDS]\n"
            "  console DOMID [DEVID] [-e CHAR] [--dir DIR]   attach "
            "(runs noxs-console)\n"
            "\n"
            "  TYPE is sysctl, console, blk, net, legacy or a number.\n"
            "  Exit status: 0 ok, 1 request failed, 2 usage, 3 noxsd not "
            "reachable.\n");
}

static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx(const char *fmt, ...)
{
    va_list ap;

    fputs("noxsctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("noxsctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(noxsctl --help for usage)\n", stderr);
    return EXIT_USAGE;
}

/* The errno of a failed request: unreachable or failed. */
static int failed(const char *what)
{
    int e = errno;

    warnx("%s: %s", what, strerror(e));
    if (e == ECONNRESET || e == EPIPE || e == ENOTCONN)
        return EXIT_UNREACHABLE;
    return EXIT_FAILED;
}

static noxs_client *connect_noxsd(void)
{
    noxs_client *c = noxs_client_open(socket_path);

    if (!c) {
        const char *p = socket_path ? socket_path : getenv("NOXS_SOCKET");
        warnx("cannot reach noxsd at %s: %s",
              p && *p ? p : NOXS_DEFAULT_SOCKET, strerror(errno));
    }
    return c;
}

static int parse_num(const char *s, unsigned long max, unsigned long *out)
{
    char *end;

    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return errno || *end || *out > max ? -1 : 0;
}

static int parse_domid(const char *s, int all_ok, uint16_t *out)
{
    unsigned long v;

    if (all_ok && s && strcmp(s, "all") == 0) {
        *out = NOXS_DOMID_ANY;
        return 0;
    }
    if (parse_num(s, NOXS_DOMID_MAX, &v) < 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int parse_type(const char *s, unsigned int *out)
{
    unsigned long v;

    if ((*out = noxs_type_from_name(s)) != 0)
        return 0;
    if (parse_num(s, NOXS_DEV_TYPE_MAX, &v) < 0 || v == 0)
        return -1;
    *out = (unsigned int)v;
    return 0;
}

static const char *type_name(unsigned int type)
{
    const char *n = noxs_type_name(type);

    return n ? n : "unknown";
}

/* Strip a trailing --json from argv; returns whether it was there. */
static int take_json(int *argc, char **argv)
{
    int i, found = 0;

    for (i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            found = 1;
            memmove(&argv[i], &argv[i + 1],
                    (size_t)(*argc - i - 1) * sizeof(argv[0]));
            (*argc)--;
            i--;
        }
    }
    return found;
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_dev(const struct noxs_dev_info *d, int json)
{
    if (json) {
        printf("{\"domid\":%u,\"type\":\"%s\",\"devid\":%u,"
               "\"backend_domid\":%u,\"control_gref\":%u,"
               "\"backend_port\":%u,\"backend_state\":\"%s\","
               "\"frontend_state\":\"%s\"}",
               d->domid, type_name(d->type), d->devid, d->backend_domid,
               d->control_gref, d->backend_port,
               noxs_state_name(d->backend_state),
               noxs_state_name(d->frontend_state));
    } else {
        printf("%-6u %-8s %-8u %-8u %-8u %-8u %-12s %s", d->domid,
               type_name(d->type), d->devid, d->backend_domid,
               d->control_gref, d->backend_port,
               noxs_state_name(d->backend_state),
               noxs_state_name(d->frontend_state));
    }
}

static int cmd_domain_create(noxs_client *c, int argc, char **argv)
{
    struct noxs_boot boot;
    char buf[NOXS_BOOT_MAXLEN + 1];
    uint16_t domid;
    int rc, e;

    if (argc != 1 || parse_domid(argv[0], 0, &domid) < 0)
        return usage_error("domain-create DOMID");
    rc = noxs_domain_create(c, domid, &boot);
    e = errno;
    if (rc < 0 && e != EEXIST)
        return failed("domain-create");
    if (noxs_boot_format(&boot, buf, sizeof(buf)) < 0) {
        warnx("cannot format the bootstrap string");
        return EXIT_FAILED;
    }
    printf("%s\n", buf);
    if (rc < 0) {
        warnx("domain %u exists already", domid);
        return EXIT_FAILED;
    }
    return 0;
}

static int cmd_domain_destroy(noxs_client *c, int argc, char **argv)
{
    uint16_t domid;

    if (argc != 1 || parse_domid(argv[0], 0, &domid) < 0)
        return usage_error("domain-destroy DOMID");
    if (noxs_domain_destroy(c, domid) < 0)
        return failed("domain-destroy");
    return 0;
}

static int cmd_domain_list(noxs_client *c, int argc, char **argv)
{
    struct noxs_domain_info *d;
    int json = take_json(&argc, argv);
    size_t n, i;

    if (argc != 0)
        return usage_error("domain-list [--json]");
    if (noxs_domain_list(c, &d, &n) < 0)
        return failed("domain-list");
    if (json)
        printf("[");
    else
        printf("%-6s %-6s %-8s %-8s %s\n", "DOMID", "OWNER", "GREF", "PORT",
               "DEVICES");
    for (i = 0; i < n; i++) {
        if (json)
            printf("%s{\"domid\":%u,\"owner_domid\":%u,\"gref\":%u,"
                   "\"port\":%u,\"devices\":%u}",
                   i ? "," : "", d[i].domid, d[i].owner_domid, d[i].gref,
                   d[i].port, d[i].ndevices);
        else
            printf("%-6u %-6u %-8u %-8u %u\n", d[i].domid, d[i].owner_domid,
                   d[i].gref, d[i].port, d[i].ndevices);
    }
    if (json)
        printf("]\n");
    free(d);
    return 0;
}

static int cmd_dev_add(noxs_client *c, int argc, char **argv)
{
    struct noxs_kv params[MAX_PARAMS];
    unsigned long devid, v;
    uint16_t domid, backend = 0;
    unsigned int type;
    size_t n = 0;
    int i;

    if (argc < 3 || parse_domid(argv[0], 0, &domid) < 0 ||
        parse_type(argv[1], &type) < 0 ||
        parse_num(argv[2], 0xffffffffu, &devid) < 0)
        return usage_error("dev-add DOMID TYPE DEVID [--backend BEDOMID] "
                           "[KEY=VALUE ...]");
    for (i = 3; i < argc; i++) {
        char *eq;

        if (strcmp(argv[i], "--backend") == 0) {
            if (i + 1 >= argc || parse_num(argv[i + 1], NOXS_DOMID_MAX, &v) < 0)
                return usage_error("--backend needs a domain id");
            backend = (uint16_t)v;
            i++;
            continue;
        }
        if ((eq = strchr(argv[i], '=')) == NULL || eq == argv[i])
            return usage_error("not KEY=VALUE: %s", argv[i]);
        if (n == MAX_PARAMS)
            return usage_error("at most %d parameters", MAX_PARAMS);
        *eq = '\0';
        params[n].key = argv[i];
        params[n].value = eq + 1;
        n++;
    }
    if (noxs_dev_add(c, domid, type, (uint32_t)devid, backend, params, n) < 0)
        return failed("dev-add");
    return 0;
}

static int cmd_dev_rm(noxs_client *c, int argc, char **argv)
{
    unsigned long devid;
    unsigned int type;
    uint16_t domid;

    if (argc != 3 || parse_domid(argv[0], 0, &domid) < 0 ||
        parse_type(argv[1], &type) < 0 ||
        parse_num(argv[2], 0xffffffffu, &devid) < 0)
        return usage_error("dev-rm DOMID TYPE DEVID");
    if (noxs_dev_remove(c, domid, type, (uint32_t)devid) < 0)
        return failed("dev-rm");
    return 0;
}

static int cmd_dev_list(noxs_client *c, int argc, char **argv)
{
    struct noxs_dev_info *d;
    int json = take_json(&argc, argv);
    uint16_t domid;
    size_t n, i;

    if (argc != 1 || parse_domid(argv[0], 1, &domid) < 0)
        return usage_error("dev-list DOMID|all [--json]");
    if (noxs_dev_list(c, domid, &d, &n) < 0)
        return failed("dev-list");
    if (json)
        printf("[");
    else
        printf("%-6s %-8s %-8s %-8s %-8s %-8s %-12s %s\n", "DOMID", "TYPE",
               "DEVID", "BACKEND", "GREF", "PORT", "BE-STATE", "FE-STATE");
    for (i = 0; i < n; i++) {
        if (json && i)
            printf(",");
        print_dev(&d[i], json);
        if (!json)
            printf("\n");
    }
    if (json)
        printf("]\n");
    free(d);
    return 0;
}

static int cmd_status(noxs_client *c, int argc, char **argv)
{
    struct noxs_status s;
    int json = take_json(&argc, argv);

    if (argc != 0)
        return usage_error("status [--json]");
    if (noxs_status_get(c, &s) < 0)
        return failed("status");
    if (json) {
        printf("{\"protocol\":%u,\"pid\":%u,\"keeper_pid\":%u,"
               "\"domains\":%u,\"devices\":%u,\"backends\":%u,"
               "\"uptime_ms\":%llu,\"rss_bytes\":%llu,\"restarts\":%u}\n",
               s.version, s.pid, s.keeper_pid, s.ndomains, s.ndevices,
               s.nbackends, (unsigned long long)s.uptime_ms,
               (unsigned long long)s.rss_bytes, s.restarts);
    } else {
        printf("protocol   %u\n", s.version);
        printf("pid        %u\n", s.pid);
        printf("keeper     %u\n", s.keeper_pid);
        printf("restarts   %u\n", s.restarts);
        printf("domains    %u\n", s.ndomains);
        printf("devices    %u\n", s.ndevices);
        printf("backends   %u\n", s.nbackends);
        printf("uptime     %.1f s\n", (double)s.uptime_ms / 1000.0);
        printf("rss        %llu KiB\n",
               (unsigned long long)(s.rss_bytes / 1024));
    }
    return 0;
}

static const char *event_name(unsigned int kind)
{
    switch (kind) {
    case NOXS_EVENT_DEV_ADDED:
        return "dev-added";
    case NOXS_EVENT_DEV_REMOVED:
        return "dev-removed";
    case NOXS_EVENT_DEV_STATE:
        return "dev-state";
    case NOXS_EVENT_DOMAIN_CREATED:
        return "domain-created";
    case NOXS_EVENT_DOMAIN_DESTROYED:
        return "domain-destroyed";
    case NOXS_EVENT_DOMAIN_RELEASED:
        return "domain-released";
    case NOXS_EVENT_DOMAIN_EXCEPTION:
        return "domain-exception";
    default:
        return "unknown";
    }
}

static int cmd_watch(noxs_client *c, int argc, char **argv)
{
    struct noxs_event ev;
    int json = take_json(&argc, argv);
    uint16_t domid;

    if (argc != 1 || parse_domid(argv[0], 1, &domid) < 0)
        return usage_error("watch DOMID|all [--json]");
    if (noxs_watch(c, domid) < 0)
        return failed("watch");
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        if (noxs_watch_next(c, &ev, -1) < 0)
            return failed("watch");
        if (ev.kind == NOXS_EVENT_DOMAIN_CREATED ||
            ev.kind == NOXS_EVENT_DOMAIN_DESTROYED ||
            ev.kind == NOXS_EVENT_DOMAIN_RELEASED ||
            ev.kind == NOXS_EVENT_DOMAIN_EXCEPTION) {
            if (json)
                printf("{\"event\":\"%s\",\"domid\":%u}\n",
                       event_name(ev.kind), ev.dev.domid);
            else
                printf("%s %u\n", event_name(ev.kind), ev.dev.domid);
            continue;
        }
        if (json) {
            printf("{\"event\":");
            print_json_string(event_name(ev.kind));
            printf(",\"device\":");
            print_dev(&ev.dev, 1);
            printf("}\n");
        } else {
            printf("%s %u %s %u backend %u gref %u port %u state %s/%s\n",
                   event_name(ev.kind), ev.dev.domid, type_name(ev.dev.type),
                   ev.dev.devid, ev.dev.backend_domid, ev.dev.control_gref,
                   ev.dev.backend_port, noxs_state_name(ev.dev.backend_state),
                   noxs_state_name(ev.dev.frontend_state));
        }
    }
}

static int cmd_shutdown(noxs_client *c, int argc, char **argv)
{
    static const char *reasons[] = {"poweroff", "reboot", "suspend", "crash"};
    const char *reason = NULL;
    unsigned long wait_s = 30;
    char reply[NOXS_CTRL_VALUE_MAX + 1];
    uint16_t domid;
    size_t r;
    int i, ok = 0;

    if (argc < 1 || parse_domid(argv[0], 0, &domid) < 0)
        return usage_error("shutdown DOMID --reason REASON [--wait SECONDS]");
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
            reason = argv[++i];
        } else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], 3600, &wait_s) < 0 || wait_s == 0)
                return usage_error("--wait needs 1..3600 seconds");
        } else {
            return usage_error("shutdown: unexpected %s", argv[i]);
        }
    }
    for (r = 0; reason && r < sizeof(reasons) / sizeof(reasons[0]); r++)
        if (strcmp(reason, reasons[r]) == 0)
            ok = 1;
    if (!ok)
        return usage_error("--reason poweroff|reboot|suspend|crash");
    noxs_client_set_timeout(c, (int)wait_s * 1000);
    if (noxs_dev_control(c, domid, NOXS_DEV_SYSCTL, 0, "shutdown", reason,
                         (int)wait_s * 1000, reply, sizeof(reply)) < 0) {
        if (errno == ETIMEDOUT) {
            warnx("domain %u did not acknowledge %s within %lu s", domid,
                  reason, wait_s);
            return EXIT_FAILED;
        }
        return failed("shutdown");
    }
    printf("%s\n", reply);
    return 0;
}

/*
 * Attach the terminal to a console: exec noxs-console, which talks to
 * noxs-console-back's socket and needs no noxsd. Prefer the one beside
 * this binary (a build tree, or both installed together), else $PATH.
 */
static int cmd_console(int argc, char **argv)
{
    char self[4096], *slash, **args;
    uint16_t domid;
    ssize_t n;
    int i;

    if (argc < 1 || parse_domid(argv[0], 0, &domid) < 0)
        return usage_error("console DOMID [DEVID] [-e CHAR] [--dir DIR]");
    args = calloc((size_t)argc + 2, sizeof(*args));
    if (args == NULL)
        return failed("console");
    args[0] = "noxs-console";
    for (i = 0; i < argc; i++)
        args[i + 1] = argv[i];
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash != NULL &&
            (size_t)(slash - self) + sizeof("/noxs-console") <= sizeof(self)) {
            strcpy(slash, "/noxs-console");
            if (access(self, X_OK) == 0)
                execv(self, args);
        }
    }
    execvp("noxs-console", args);
    warnx("cannot run noxs-console: %s", strerror(errno));
    free(args);
    return EXIT_FAILED;
}

static const struct {
    const char *name;
    int (*fn)(noxs_client *c, int argc, char **argv);
} commands[] = {
    {"domain-create", cmd_domain_create},
    {"domain-destroy", cmd_domain_destroy},
    {"domain-list", cmd_domain_list},
    {"dev-add", cmd_dev_add},
    {"dev-rm", cmd_dev_rm},
    {"dev-list", cmd_dev_list},
    {"status", cmd_status},
    {"watch", cmd_watch},
    {"shutdown", cmd_shutdown},
};

int main(int argc, char *argv[])
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    noxs_client *c;
    size_t i;
    int ch, rc;

    /* Stop at the command: its own options come after it. */
    while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            socket_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("noxsctl %s\n", NOXSCTL_VERSION);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[optind], "console") == 0)
        return cmd_console(argc - optind - 1, argv + optind + 1);
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[optind], commands[i].name) != 0)
            continue;
        if ((c = connect_noxsd()) == NULL)
            return EXIT_UNREACHABLE;
        rc = commands[i].fn(c, argc - optind - 1, argv + optind + 1);
        noxs_client_close(c);
        return rc;
    }
    return usage_error("unknown command: %s", argv[optind]);
}
