/*
 * noxsctl: the toolstack's command line for noxsd.
 *
 * Exit status: 0 success, 1 the request failed (the message names the
 * domain, device or parameter at fault), 2 usage error, 3 noxsd not
 * reachable (no connection, or the connection was lost): only 3 means
 * noxsd itself is in question. Messages go to stderr as "noxsctl: ...";
 * results to stdout. Options (--socket, --json, --help) may stand
 * anywhere on the line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>
#include <noxs/io/sysctl.h>

#include "common/parse.h"

#define EXIT_FAILED 1
#define EXIT_UNREACHABLE 3

#define MAX_PARAMS 32

static const char *socket_path;
static int json;        /* --json anywhere on the line */
static noxs_client *cl; /* connected on first use (client()) */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: noxsctl [--socket PATH] [--json] COMMAND [ARGS]\n"
            "       noxsctl help | --help | --version\n"
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
            "  DOMID is decimal, 0..32751; TYPE is sysctl, console, blk, net,\n"
            "  legacy or a number 1..5. A relative path= is taken from the\n"
            "  current directory. Options may stand anywhere on the line.\n"
            "  Exit status: 0 ok, 1 request failed, 2 usage, 3 noxsd not "
            "reachable.\n");
}

/* "noxsctl: " fmt, then tail, on stderr. */
static void vsay(const char *tail, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void vsay(const char *tail, const char *fmt, va_list ap)
{
    fputs("noxsctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsay("\n", fmt, ap);
    va_end(ap);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsay("\n(noxsctl --help for usage)\n", fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static noxs_client *client(void)
{
    if (cl != NULL)
        return cl;
    if ((cl = noxs_client_open(socket_path)) == NULL) {
        const char *p = socket_path ? socket_path : getenv("NOXS_SOCKET");

        warnx("cannot reach noxsd at %s: %s (is noxsd running?)",
              p && *p ? p : NOXS_DEFAULT_SOCKET, strerror(errno));
        exit(EXIT_UNREACHABLE);
    }
    return cl;
}

/*
 * A failed request: "SUBJECT: why". Only a lost connection to noxsd is
 * EXIT_UNREACHABLE; ECONNRESET, EPIPE and ENOTCONN are also what a
 * backend answers about its guest (not connected, closed without
 * acknowledging), so noxsd is asked whether it is still there.
 */
static int failed(const char *subject, const char *why)
{
    struct noxs_status st;
    int e = errno;

    if ((e == ECONNRESET || e == EPIPE || e == ENOTCONN) &&
        noxs_status_get(client(), &st) < 0) {
        warnx("%s: lost noxsd: %s", subject, strerror(e));
        return EXIT_UNREACHABLE;
    }
    if (why != NULL)
        warnx("%s: %s", subject, why);
    else if (e == EPERM || e == EACCES)
        warnx("%s: %s (noxsd takes changes from root and its "
              "--toolstack-uid only)",
              subject, strerror(e));
    else
        warnx("%s: %s", subject, strerror(e));
    return EXIT_FAILED;
}

/* Whether noxsd knows domid (to tell "no such domain" from "no such
 * device" when a request says ENOENT). */
static int domain_exists(uint16_t domid)
{
    struct noxs_domain_info *d;
    size_t n, i;
    int found = 0;

    if (noxs_domain_list(client(), &d, &n) < 0)
        return 1; /* cannot tell: say nothing wrong about the domain */
    for (i = 0; i < n; i++)
        if (d[i].domid == domid)
            found = 1;
    free(d);
    return found;
}

/* Arguments: a message naming the argument and what is expected, exit 2. */
static uint16_t arg_domid(const char *s, int all_ok)
{
    uint16_t d;

    if (all_ok && strcmp(s, "all") == 0)
        return NOXS_DOMID_ANY;
    if (parse_domid(s, &d) == 0)
        return d;
    usage_error("domain id %s: %s (decimal 0..%u, no leading zero%s)", s,
                errno == ERANGE ? "out of range" : "not a domain id",
                (unsigned int)NOXS_DOMID_MAX, all_ok ? "; or all" : "");
    exit(EXIT_USAGE);
}

static unsigned int arg_type(const char *s)
{
    uint64_t v;
    unsigned int t = noxs_type_from_name(s);

    if (t != 0)
        return t;
    if (parse_u64(s, 1, NOXS_DEV_TYPE_MAX, &v) == 0)
        return (unsigned int)v;
    usage_error("unknown device type %s (sysctl, console, blk, net, legacy, "
                "or 1..%u)",
                s, (unsigned int)NOXS_DEV_TYPE_MAX);
    exit(EXIT_USAGE);
}

static uint32_t arg_devid(const char *s)
{
    uint64_t v;

    if (parse_u64(s, 0, UINT32_MAX, &v) == 0)
        return (uint32_t)v;
    usage_error("device id %s: not a device id (decimal 0..%u)", s,
                UINT32_MAX);
    exit(EXIT_USAGE);
}

static const char *type_name(unsigned int type)
{
    const char *n = noxs_type_name(type);

    return n ? n : "unknown";
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

static void print_dev(const struct noxs_dev_info *d, int as_json)
{
    if (as_json) {
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

static int cmd_domain_create(int argc, char **argv)
{
    struct noxs_boot boot;
    char buf[NOXS_BOOT_MAXLEN + 1], subject[64];
    uint16_t domid;
    int rc, e;

    if (argc != 1)
        return usage_error("domain-create DOMID");
    domid = arg_domid(argv[0], 0);
    snprintf(subject, sizeof(subject), "domain-create: domain %u", domid);
    rc = noxs_domain_create(client(), domid, &boot);
    e = errno;
    if (rc < 0 && e != EEXIST)
        return failed(subject, e == EBUSY ? "the domain of that id has died "
                                            "and noxsd is releasing it; try again"
                                          : NULL);
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

static int cmd_domain_destroy(int argc, char **argv)
{
    char subject[64];
    uint16_t domid;

    if (argc != 1)
        return usage_error("domain-destroy DOMID");
    domid = arg_domid(argv[0], 0);
    snprintf(subject, sizeof(subject), "domain-destroy: domain %u", domid);
    if (noxs_domain_destroy(client(), domid) < 0)
        return failed(subject, errno == ENOENT ? "no such domain" : NULL);
    return 0;
}

static int cmd_domain_list(int argc, char **argv)
{
    struct noxs_domain_info *d;
    size_t n, i;

    if (argc != 0)
        return usage_error("domain-list [--json]");
    if (noxs_domain_list(client(), &d, &n) < 0)
        return failed("domain-list", NULL);
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

/*
 * Why noxsd or the backend refused dev-add, as far as the errno says;
 * path: the path= parameter, if any (a backend's file errors are about
 * it).
 */
static const char *dev_add_why(int e, uint16_t domid, unsigned int type,
                               uint16_t backend, const char *path,
                               char *buf, size_t len)
{
    if (e == ENOENT && !domain_exists(domid)) {
        snprintf(buf, len, "no such domain (noxsctl domain-create %u "
                           "first)",
                 domid);
        return buf;
    }
    switch (e) {
    case ENODEV:
        snprintf(buf, len, "%s: no backend for %s devices is registered in "
                           "domain %u (is noxs-%s-back running?)",
                 strerror(e),
                 type_name(type), backend, type_name(type));
        return buf;
    case EEXIST:
        snprintf(buf, len, "%s: the device exists already", strerror(e));
        return buf;
    case ENOSPC:
        snprintf(buf, len, "%s: the domain's device page is full, or the "
                           "backend has no room",
                 strerror(e));
        return buf;
    case ETIMEDOUT:
        snprintf(buf, len, "%s: the %s backend did not answer in time",
                 strerror(e), type_name(type));
        return buf;
    case ENOENT:
    case EISDIR:
    case EACCES:
    case EROFS:
    case ENOTDIR:
    case ELOOP:
        if (path != NULL) {
            snprintf(buf, len, "the %s backend cannot use path=%s: %s",
                     type_name(type), path, strerror(e));
            return buf;
        }
        /* fall through */
    case EINVAL:
        /* What every blk device needs (as xl wants target= in a disk
         * spec): said here; the backend's log names any other key. */
        if (e == EINVAL && type == NOXS_DEV_BLK && path == NULL) {
            snprintf(buf, len, "the blk backend refused it: %s: no path= "
                               "parameter (path=FILE: the image file or block "
                               "device)",
                     strerror(e));
            return buf;
        }
        /* fall through */
    case EBUSY:
        snprintf(buf, len, "the %s backend refused it: %s (its log names the "
                           "parameter or the device in the way)",
                 type_name(type),
                 strerror(e));
        return buf;
    default:
        return NULL;
    }
}

static int cmd_dev_add(int argc, char **argv)
{
    struct noxs_kv params[MAX_PARAMS];
    static char *abs[MAX_PARAMS];
    char subject[96], why[256];
    uint16_t domid, backend = 0;
    const char *path = NULL;
    unsigned int type;
    uint32_t devid;
    size_t n = 0;
    int i, e;

    if (argc < 3)
        return usage_error("dev-add DOMID TYPE DEVID [--backend BEDOMID] "
                           "[KEY=VALUE ...]");
    domid = arg_domid(argv[0], 0);
    type = arg_type(argv[1]);
    devid = arg_devid(argv[2]);
    for (i = 3; i < argc; i++) {
        char *eq;

        if (strcmp(argv[i], "--backend") == 0) {
            if (i + 1 >= argc)
                return usage_error("--backend needs a domain id");
            backend = arg_domid(argv[++i], 0);
            continue;
        }
        if ((eq = strchr(argv[i], '=')) == NULL || eq == argv[i])
            return usage_error("not KEY=VALUE: %s", argv[i]);
        if (n == MAX_PARAMS)
            return usage_error("at most %d parameters", MAX_PARAMS);
        *eq = '\0';
        params[n].key = argv[i];
        params[n].value = eq + 1;
        /*
         * A file is named by the toolstack, in its directory; the backend
         * runs elsewhere (its own directory, or detached in /).
         */
        if (strcmp(argv[i], "path") == 0 && eq[1] != '\0' && eq[1] != '/') {
            if ((abs[n] = path_absolute(eq + 1)) == NULL) {
                warnx("path=%s: %s", eq + 1, strerror(errno));
                return EXIT_FAILED;
            }
            params[n].value = abs[n];
        }
        if (strcmp(argv[i], "path") == 0)
            path = params[n].value;
        n++;
    }
    snprintf(subject, sizeof(subject), "dev-add: domain %u %s %u", domid,
             type_name(type), devid);
    if (noxs_dev_add(client(), domid, type, devid, backend, params, n) < 0) {
        e = errno;
        return failed(subject, dev_add_why(e, domid, type, backend, path,
                                           why, sizeof(why)));
    }
    return 0;
}

static int cmd_dev_rm(int argc, char **argv)
{
    char subject[96];
    unsigned int type;
    uint16_t domid;
    uint32_t devid;

    if (argc != 3)
        return usage_error("dev-rm DOMID TYPE DEVID");
    domid = arg_domid(argv[0], 0);
    type = arg_type(argv[1]);
    devid = arg_devid(argv[2]);
    snprintf(subject, sizeof(subject), "dev-rm: domain %u %s %u", domid,
             type_name(type), devid);
    if (noxs_dev_remove(client(), domid, type, devid) < 0)
        return failed(subject, errno != ENOENT        ? NULL
                               : domain_exists(domid) ? "no such device"
                                                      : "no such domain");
    return 0;
}

static int cmd_dev_list(int argc, char **argv)
{
    struct noxs_dev_info *d;
    char subject[64];
    uint16_t domid;
    size_t n, i;

    if (argc != 1)
        return usage_error("dev-list DOMID|all [--json]");
    domid = arg_domid(argv[0], 1);
    snprintf(subject, sizeof(subject), "dev-list: domain %u", domid);
    if (noxs_dev_list(client(), domid, &d, &n) < 0)
        return failed(subject, errno == ENOENT ? "no such domain" : NULL);
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

static int cmd_status(int argc, char **argv)
{
    struct noxs_status s;

    if (argc != 0)
        return usage_error("status [--json]");
    if (noxs_status_get(client(), &s) < 0)
        return failed("status", NULL);
    if (json) {
        printf("{\"version\":\"%s\",\"protocol\":%u,\"pid\":%u,"
               "\"keeper_pid\":%u,"
               "\"domains\":%u,\"devices\":%u,\"backends\":%u,"
               "\"uptime_ms\":%llu,\"rss_bytes\":%llu,\"heap_kib\":%u,"
               "\"restarts\":%u}\n",
               version_string(), s.version, s.pid, s.keeper_pid, s.ndomains,
               s.ndevices, s.nbackends, (unsigned long long)s.uptime_ms,
               (unsigned long long)s.rss_bytes, s.heap_kib, s.restarts);
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
        if (s.heap_kib)
            printf("heap       %u KiB\n", s.heap_kib);
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

static int cmd_watch(int argc, char **argv)
{
    struct noxs_event ev;
    uint16_t domid;

    if (argc != 1)
        return usage_error("watch DOMID|all [--json]");
    domid = arg_domid(argv[0], 1);
    if (noxs_watch(client(), domid) < 0)
        return failed("watch", NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        if (noxs_watch_next(client(), &ev, -1) < 0) {
            /* The watch ends only with noxsd's connection. */
            warnx("watch: lost noxsd: %s", strerror(errno));
            return EXIT_UNREACHABLE;
        }
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

static int cmd_shutdown(int argc, char **argv)
{
    const char *reason = NULL, *why = NULL, *name;
    uint64_t wait_s = 30;
    char reply[NOXS_CTRL_VALUE_MAX + 1], subject[64], whybuf[160];
    int64_t deadline;
    uint16_t domid;
    unsigned int r;
    int i, rc, ok = 0;

    if (argc < 1)
        return usage_error("shutdown DOMID --reason REASON [--wait SECONDS]");
    domid = arg_domid(argv[0], 0);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
            reason = argv[++i];
        } else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], 1, 3600, &wait_s) < 0)
                return usage_error("--wait %s: needs 1..3600 seconds",
                                   argv[i]);
        } else {
            return usage_error("shutdown: unexpected %s", argv[i]);
        }
    }
    for (r = 0; reason && (name = noxs_sysctl_reason(r, NULL)) != NULL; r++)
        if (strcmp(reason, name) == 0)
            ok = 1;
    if (!ok)
        return usage_error("--reason poweroff|reboot|suspend|crash");
    snprintf(subject, sizeof(subject), "shutdown: domain %u", domid);
    /*
     * A guest whose frontend is still connecting (just booted, or its
     * device just added) gets the request once it is Connected: retried
     * until the deadline, as the guest would see a request written
     * before it looked.
     */
    deadline = now_ms() + (int64_t)wait_s * 1000;
    for (;;) {
        int64_t left = deadline - now_ms();

        if (left < 1)
            left = 1;
        noxs_client_set_timeout(client(), (int)left);
        rc = noxs_dev_control(client(), domid, NOXS_DEV_SYSCTL, 0,
                              NOXS_SYSCTL_KEY_SHUTDOWN, reason, (int)left,
                              reply, sizeof(reply));
        if (rc == 0 || errno != ENOTCONN || now_ms() + 100 >= deadline)
            break;
        usleep(100 * 1000);
    }
    if (rc < 0) {
        switch (errno) {
        case ETIMEDOUT:
            warnx("domain %u did not acknowledge %s within %llu s", domid,
                  reason, (unsigned long long)wait_s);
            return EXIT_FAILED;
        case ENOENT:
            why = domain_exists(domid) ? "the domain has no sysctl device 0"
                                       : "no such domain";
            break;
        case ENOTCONN:
            why = "the guest's sysctl frontend did not connect in time";
            break;
        case ECONNRESET:
        case EOPNOTSUPP:
        case ENODEV:
            snprintf(whybuf, sizeof(whybuf), "%s: %s", strerror(errno),
                     errno == ECONNRESET   ? "the guest's sysctl frontend "
                                             "closed without acknowledging"
                     : errno == EOPNOTSUPP ? "the guest does not support "
                                             "that reason"
                                           : "no sysctl backend serves the "
                                             "device (is noxs-sysctl-back "
                                             "running?)");
            why = whybuf;
            break;
        }
        return failed(subject, why);
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
    ssize_t n;
    int i;

    if (argc < 1)
        return usage_error("console DOMID [DEVID] [-e CHAR] [--dir DIR]");
    (void)arg_domid(argv[0], 0); /* noxs-console checks the rest */
    args = calloc((size_t)argc + 2, sizeof(*args));
    if (args == NULL) {
        warnx("console: %s", strerror(errno));
        return EXIT_FAILED;
    }
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
    int (*fn)(int argc, char **argv);
    int json; /* takes --json */
} commands[] = {
    {"domain-create", cmd_domain_create, 0},
    {"domain-destroy", cmd_domain_destroy, 0},
    {"domain-list", cmd_domain_list, 1},
    {"dev-add", cmd_dev_add, 0},
    {"dev-rm", cmd_dev_rm, 0},
    {"dev-list", cmd_dev_list, 1},
    {"status", cmd_status, 1},
    {"watch", cmd_watch, 1},
    {"shutdown", cmd_shutdown, 0},
};

/*
 * Options may stand anywhere on the line, as with xl and git: they are
 * taken out of argv wherever they are; what follows "--" is left alone.
 * Returns the remaining count.
 */
static int take_options(int argc, char **argv, int *help, int *version)
{
    int i, out = 0, rest = 0;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (rest) {
            argv[out++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            rest = 1;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--socket") == 0 || strcmp(a, "-s") == 0) {
            if (i + 1 >= argc) {
                usage_error("%s needs a path", a);
                exit(EXIT_USAGE);
            }
            socket_path = argv[++i];
        } else if (strncmp(a, "--socket=", 9) == 0) {
            socket_path = a + 9;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
        } else if (strcmp(a, "--version") == 0) {
            *version = 1;
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    return out;
}

int main(int argc, char *argv[])
{
    int help = 0, version = 0, rc;
    size_t i;

    /* console's own options (-e, --dir) pass through to noxs-console. */
    if (argc > 1 && strcmp(argv[1], "console") == 0)
        return cmd_console(argc - 2, argv + 2);
    argc = 1 + take_options(argc - 1, argv + 1, &help, &version);
    if (version) {
        print_version("noxsctl");
        return 0;
    }
    if (help || (argc > 1 && strcmp(argv[1], "help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "console") == 0)
        return cmd_console(argc - 2, argv + 2);
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        if (json && !commands[i].json)
            return usage_error("%s has no --json output", argv[1]);
        rc = commands[i].fn(argc - 2, argv + 2);
        if (cl != NULL)
            noxs_client_close(cl);
        return rc;
    }
    return usage_error("unknown command: %s (noxsctl help)", argv[1]);
}
