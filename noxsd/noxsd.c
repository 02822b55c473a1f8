/*
 * noxsd: main, options, daemonising, the pidfile, --stop and --keeper.
 *
 * Exit status: 0 clean exit, 1 runtime failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>

#include "noxsd.h"
#include "svc.h"
#include "common/daemon.h"
#include "common/parse.h"


static void usage(FILE *f)
{
    fprintf(f,
            "usage: noxsd [-dv] [--socket PATH] [--state-dir DIR]\n"
            "             [--toolstack-uid UID] [--socket-mode MODE]\n"
            "             [--domid DOMID] [--backend-timeout MS]\n"
            "             [--backend-grace MS]\n"
            "             [--domain-poll MS] [--no-dom-exc]\n"
            "       noxsd --stop [--teardown] [--state-dir DIR]\n"
            "       noxsd --rebuild-store [--state-dir DIR] [--domid DOMID]\n"
            "       noxsd --help | --version\n"
            "\n"
            "  -d                   stay in the foreground, log to stderr\n"
            "  -v                   log debug messages too\n"
            "  --socket PATH        control socket (default "
            "STATE-DIR/" NOXSD_SOCKET_NAME ")\n"
            "  --state-dir DIR      store, pidfiles, keeper socket (default " NOXSD_DEFAULT_STATE_DIR ")\n"
            "  --toolstack-uid UID  also allow UID to change the registry\n"
            "  --socket-mode MODE   control socket mode (default 0660)\n"
            "  --domid DOMID        the domain noxsd runs in (default "
            "$NOXS_DOMID, $NOXS_SIM_DOMID, else 0)\n"
            "  --backend-timeout MS how long to wait for a backend "
            "(default 10000)\n"
            "  --backend-grace MS   keep the devices of a backend that went "
            "away this\n"
            "                       long for it to come back (default 30000; "
            "0: drop them)\n"
            "  --domain-poll MS     poll the hypervisor's domain list this "
            "often when\n"
            "                       VIRQ_DOM_EXC is not ours (default 1000; "
            "0: never\n"
            "                       reap dead domains)\n"
            "  --no-dom-exc         never bind VIRQ_DOM_EXC (xenstored may "
            "start later)\n"
            "  --stop               stop the worker; the page keeper keeps every\n"
            "                       domain's device page and port\n"
            "  --teardown           with --stop: also stop the keeper, ending every\n"
            "                       device page and port (host-level teardown)\n"
            "  --rebuild-store      set the store aside and rebuild it from "
            "the page\n"
            "                       keeper's pages, then exit (no worker may "
            "run)\n");
}

/*
 * Open dir itself, never what a symbolic link there points to, and check
 * that its owner is us (or root, if root_ok); what: for messages. An fd,
 * or -1 after saying why on stderr. A trailing slash would make open()
 * follow a link despite O_NOFOLLOW, so it is dropped first.
 */
static int open_own_dir(const char *dir, const char *what, int root_ok)
{
    char path[PATH_MAX];
    struct stat st;
    size_t len = strlen(dir);
    int fd;

    if (len >= sizeof(path)) {
        fprintf(stderr, "noxsd: %s %s: path too long\n", what, dir);
        return -1;
    }
    memcpy(path, dir, len + 1);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        /* A link fails with ELOOP, or ENOTDIR (O_DIRECTORY) on Linux. */
        if ((errno == ELOOP || errno == ENOTDIR) && lstat(path, &st) == 0 &&
            S_ISLNK(st.st_mode))
            errno = ELOOP;
        if (errno == ELOOP)
            fprintf(stderr, "noxsd: %s %s is a symbolic link; refusing it "
                            "(give the directory itself)\n",
                    what, dir);
        else if (errno == ENOTDIR)
            fprintf(stderr, "noxsd: %s %s is not a directory\n", what, dir);
        else
            fprintf(stderr, "noxsd: %s %s: %s\n", what, dir,
                    strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "noxsd: %s %s is not a directory\n", what, dir);
        close(fd);
        return -1;
    }
    if (st.st_uid != geteuid() && !(root_ok && st.st_uid == 0)) {
        fprintf(stderr, "noxsd: %s %s is owned by uid %u, not by uid %u; "
                        "refusing it\n",
                what, dir, (unsigned int)st.st_uid, (unsigned int)geteuid());
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * The state directory: created 0711 if missing, else it must be a real
 * directory (not a symbolic link, which someone else may have planted
 * where the directory was expected) owned by us. Its mode is then fixed
 * through the descriptor, so it is that directory that changes.
 */
static int make_state_dir(const char *dir)
{
    struct stat st;
    int fd;

    if (mkdir(dir, 0711) < 0 && errno != EEXIST) {
        fprintf(stderr, "noxsd: cannot create %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    if ((fd = open_own_dir(dir, "state directory", 0)) < 0)
        return -1;
    /* Others may reach the socket inside, never list or read the store. */
    if (fstat(fd, &st) == 0 && (st.st_mode & 0066) != 0 &&
        fchmod(fd, st.st_mode & 07711) < 0) {
        fprintf(stderr, "noxsd: chmod %s: %s\n", dir, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/*
 * The directory of a --socket elsewhere than the state directory: not a
 * symbolic link, and ours or root's (root: /run, /tmp; whoever owns the
 * directory could swap the socket under the clients).
 */
static int check_socket_dir(const char *socket_path)
{
    char dir[PATH_MAX];
    char *slash;
    int fd;

    if (strlen(socket_path) >= sizeof(dir))
        return 0; /* bind_socket() says it is too long */
    strcpy(dir, socket_path);
    if ((slash = strrchr(dir, '/')) == NULL)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if ((fd = open_own_dir(dir, "socket directory", 1)) < 0)
        return -1;
    close(fd);
    return 0;
}

/* Open and lock the pidfile: only one worker per state directory. */
static int lock_pidfile(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    char buf[32];
    int n;

    if (fd < 0) {
        log_warn("open %s", path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        n = (int)read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        log_warnx("another noxsd (pid %s) is running on this state directory",
                  buf[0] ? buf : "?");
        close(fd);
        return -1;
    }
    n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)n) != n)
        log_warn("write %s", path);
    return fd;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/*
 * noxsd --stop: SIGTERM the worker and wait for it. The keeper, and with
 * it every device page and notify port, stays: a later worker (the same
 * binary or a new one) attaches to it and carries on. This is what the
 * unit's ExecStop runs, so `systemctl stop|restart noxsd` never ends a
 * guest's device page. Only --teardown (a host-level decision: every
 * running guest loses its device page and cannot learn of new devices)
 * stops the keeper too, which ends every page and port.
 */
static int stop(const char *state_dir, int teardown)
{
    char path[PATH_MAX];
    int fd, i, rc;
    char buf[32];
    long pid = 0;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/%s", state_dir, NOXSD_PIDFILE);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
            /* Locked: a worker is running. */
            n = read(fd, buf, sizeof(buf) - 1);
            buf[n > 0 ? n : 0] = '\0';
            pid = strtol(buf, NULL, 10);
            if (pid > 1 && kill((pid_t)pid, SIGTERM) == 0) {
                for (i = 0; i < 1000; i++) {
                    if (flock(fd, LOCK_SH | LOCK_NB) == 0)
                        break;
                    sleep_ms(10);
                }
                if (i == 1000) {
                    fprintf(stderr, "noxsd: worker %ld did not exit\n", pid);
                    close(fd);
                    return 1;
                }
            }
        }
        close(fd);
    }
    if (!teardown)
        return 0;
    if ((rc = keeper_stop(state_dir, 5000)) < 0) {
        fprintf(stderr, "noxsd: cannot stop the keeper: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}

/*
 * Under systemd (Type=notify): tell the manager we are ready once the
 * control socket listens, so that units ordered After=noxsd.service
 * (the backends) find it. The protocol is one datagram to the socket
 * named by $NOTIFY_SOCKET (sd_notify(3), a stable interface that
 * systemd documents for reimplementation); not linking libsystemd keeps
 * noxsd's dependencies to what a minimal dom0 has. Taken out of the
 * environment first thing (notify_take), so that no process we start,
 * the keeper included, can speak for us.
 */
static char *notify_path;

static void notify_take(void)
{
    const char *path = getenv("NOTIFY_SOCKET");

    if (path != NULL)
        notify_path = strdup(path);
    unsetenv("NOTIFY_SOCKET");
}

int sd_notify_fd(const char *msg, int fd)
{
    if (notify_path == NULL)
        return -1;
    if (msg == NULL)
        return 0;
    if (noxs_i_notify(notify_path, msg, fd) < 0) {
        if (errno == EINVAL)
            log_warnx("NOTIFY_SOCKET: not a socket address: %s", notify_path);
        else
            log_warn("notify the service manager (%s)", notify_path);
        return -1;
    }
    return 0;
}

int sd_fdstore(const char *name, int fd)
{
    if (notify_path == NULL)
        return -1;
    if (noxs_i_fdstore_put(notify_path, name, fd) < 0) {
        log_warn("store %s in the service manager's fd store", name);
        return -1;
    }
    return 0;
}

static void notify_ready(void)
{
    if (sd_notify_fd("READY=1\nSTATUS=listening", -1) == 0)
        log_debug("told systemd we are ready");
}

/*
 * Files systemd hands back from its fd store ($LISTEN_FDS from fd 3 on,
 * named in $LISTEN_FDNAMES; sd_listen_fds(3)): the files of a keeper that
 * died, for the next keeper. Anything else is closed. Taken out of the
 * environment, as $NOTIFY_SOCKET is.
 */
static void listen_fds_take(int fds[KEEPER_NFDS])
{
    static const char *const names[KEEPER_NFDS] = KEEPER_FDNAMES;
    const char *spid = getenv("LISTEN_PID"), *sn = getenv("LISTEN_FDS");
    char *fdnames = getenv("LISTEN_FDNAMES") ? strdup(getenv("LISTEN_FDNAMES"))
                                             : NULL;
    char *name, *save = NULL;
    uint64_t pid, n, i;
    int j;

    for (j = 0; j < KEEPER_NFDS; j++)
        fds[j] = -1;
    if (spid && sn && parse_u64(spid, 1, 0x7fffffff, &pid) == 0 &&
        (pid_t)pid == getpid() && parse_u64(sn, 0, 1000, &n) == 0) {
        name = fdnames ? strtok_r(fdnames, ":", &save) : NULL;
        for (i = 0; i < n; i++) {
            int fd = (int)(3 + i), used = 0;

            for (j = 0; name && j < KEEPER_NFDS; j++)
                if (strcmp(name, names[j]) == 0 && fds[j] < 0) {
                    fds[j] = fd;
                    fcntl(fd, F_SETFD, FD_CLOEXEC);
                    used = 1;
                }
            if (!used)
                close(fd);
            name = name ? strtok_r(NULL, ":", &save) : NULL;
        }
    }
    free(fdnames);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

/* Static, so that they live as long as the process. */
static char *abs_state_dir, *abs_socket_path;

/* What the command line asks for besides running a worker. */
struct mode {
    int stop, teardown, keeper, adopt, domid_given;
};

/*
 * One option from getopt_long: -1 to go on, else the exit status (0
 * after --help or --version, EXIT_USAGE after saying why).
 */
static int parse_option(int ch, struct noxsd_opts *o, struct mode *m)
{
    switch (ch) {
    case 'd':
        o->foreground = 1;
        break;
    case 'v':
        o->verbose++;
        break;
    case 's':
        o->socket_path = optarg;
        break;
    case 'S':
        o->state_dir = optarg;
        break;
    case 'u':
        if (parse_uid(optarg, &o->toolstack_uid) < 0) {
            fprintf(stderr, "noxsd: --toolstack-uid %s: no such user "
                            "(a user name or a decimal uid)\n",
                    optarg);
            return EXIT_USAGE;
        }
        break;
    case 'm': {
        mode_t mode;

        if (parse_mode(optarg, &mode) < 0) {
            fprintf(stderr, "noxsd: --socket-mode %s: not a mode "
                            "(octal, as for chmod: 660, 0666)\n",
                    optarg);
            return EXIT_USAGE;
        }
        o->socket_mode = mode;
        break;
    }
    case 'D':
        if (parse_domid(optarg, &o->domid) < 0) {
            fprintf(stderr, "noxsd: --domid %s: not a domain id "
                            "(decimal 0..%u, no leading zero)\n",
                    optarg, (unsigned int)NOXS_DOMID_MAX);
            return EXIT_USAGE;
        }
        m->domid_given = 1;
        break;
    case 't':
        o->backend_timeout_ms = (int)opt_u64("backend-timeout", optarg, 1,
                                             3600000);
        break;
    case 'G':
        o->backend_grace_ms = (int)opt_u64("backend-grace", optarg, 0,
                                           3600000);
        break;
    case 'P':
        o->domain_poll_ms = (int)opt_u64("domain-poll", optarg, 0, 3600000);
        break;
    case 'E':
        o->no_dom_exc = 1;
        break;
    case 'X':
        m->stop = 1;
        break;
    case 'T':
        m->teardown = 1;
        break;
    case 'K':
        m->keeper = 1;
        break;
    case 'R':
        o->rebuild_store = 1;
        o->foreground = 1; /* a one-shot: report on stderr */
        break;
    case 'A':
        m->adopt = (int)opt_u64("adopt", optarg, 3, 4);
        break;
    default:
        return opt_other(ch, "noxsd", usage);
    }
    return -1;
}

/*
 * The command line into o and m, the domain from the environment if no
 * --domid: -1 to go on, else the exit status, as for parse_option.
 */
static int parse_options(int argc, char *argv[], struct noxsd_opts *o,
                         struct mode *m)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"state-dir", required_argument, NULL, 'S'},
        {"toolstack-uid", required_argument, NULL, 'u'},
        {"socket-mode", required_argument, NULL, 'm'},
        {"domid", required_argument, NULL, 'D'},
        {"backend-timeout", required_argument, NULL, 't'},
        {"backend-grace", required_argument, NULL, 'G'},
        {"domain-poll", required_argument, NULL, 'P'},
        {"no-dom-exc", no_argument, NULL, 'E'},
        {"stop", no_argument, NULL, 'X'},
        {"teardown", no_argument, NULL, 'T'},
        {"keeper", no_argument, NULL, 'K'},
        {"rebuild-store", no_argument, NULL, 'R'},
        {"adopt", required_argument, NULL, 'A'},
        OPT_HELP_VERSION,
    };
    int ch, rc;

    while ((ch = getopt_long(argc, argv, "dvh", longopts, NULL)) != -1)
        if ((rc = parse_option(ch, o, m)) >= 0)
            return rc;
    if (optind != argc || (m->teardown && !m->stop)) {
        if (optind != argc)
            fprintf(stderr, "noxsd: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!m->domid_given && noxs_self_domid(&o->domid) < 0) {
        fprintf(stderr, "noxsd: $NOXS_DOMID or $NOXS_SIM_DOMID is not a "
                        "domain id (decimal 0..%u, no leading zero)\n",
                (unsigned int)NOXS_DOMID_MAX);
        return EXIT_USAGE;
    }
    return -1;
}

/*
 * Paths are kept and used after detaching (which leaves the current
 * directory) and by the keeper: made absolute here. 0, or -1 after
 * saying why.
 */
static int make_paths_absolute(struct noxsd_opts *o)
{
    if ((abs_state_dir = path_absolute(o->state_dir)) == NULL ||
        (o->socket_path &&
         (abs_socket_path = path_absolute(o->socket_path)) == NULL)) {
        fprintf(stderr, "noxsd: current directory: %s\n", strerror(errno));
        return -1;
    }
    o->state_dir = abs_state_dir;
    if (o->socket_path)
        o->socket_path = abs_socket_path;
    return 0;
}

/*
 * The worker's files before it detaches: the socket path (socket_buf,
 * PATH_MAX bytes, holds the default), its own executable for the keeper
 * (exe, PATH_MAX bytes), the state directory and the socket's. -1 to go
 * on, else the exit status after saying why.
 */
static int prepare_files(struct noxsd_opts *o, char *socket_buf, char *exe)
{
    ssize_t n;

    if (!o->socket_path) {
        if ((size_t)snprintf(socket_buf, PATH_MAX, "%s/%s", o->state_dir,
                             NOXSD_SOCKET_NAME) >= PATH_MAX) {
            fprintf(stderr, "noxsd: state directory path too long\n");
            return EXIT_USAGE;
        }
        o->socket_path = socket_buf;
    }
    if ((n = readlink("/proc/self/exe", exe, PATH_MAX - 1)) < 0) {
        fprintf(stderr, "noxsd: cannot find my own executable: %s\n",
                strerror(errno));
        return 1;
    }
    exe[n] = '\0';
    o->self_exe = exe;
    if (make_state_dir(o->state_dir) < 0)
        return 1;
    if (o->socket_path != socket_buf && check_socket_dir(o->socket_path) < 0)
        return 1;
    return -1;
}

/*
 * Before any thread starts (liburcu's call_rcu thread starts with the
 * store's replay): a thread that does not block them would take
 * SIGTERM's default action and kill the worker instead of letting
 * control.c's signalfd see it.
 */
static void block_stop_signals(void)
{
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
}

/* The worker, set up, until it stops: its exit status. */
static int run_worker(struct noxsd_opts *o)
{
    int n, status;

    /* The keeper has them now (or had them all along). */
    for (n = 0; n < KEEPER_NFDS; n++)
        if (o->keeper_fds[n] >= 0)
            close(o->keeper_fds[n]);
    daemon_ready();
    notify_ready();
    status = control_run();
    control_cleanup();
    broker_cleanup();
    return status;
}

int main(int argc, char *argv[])
{
    struct noxsd_opts o = {.state_dir = NOXSD_DEFAULT_STATE_DIR,
                           .toolstack_uid = (uid_t)-1,
                           .socket_mode = 0660,
                           .backend_timeout_ms = 10000,
                           .backend_grace_ms = 30000,
                           .domain_poll_ms = 1000};
    struct mode m = {0};
    char socket_buf[PATH_MAX], exe[PATH_MAX], pidpath[PATH_MAX];
    int pidfd, status;

    if ((status = parse_options(argc, argv, &o, &m)) >= 0)
        return status;
    if (make_paths_absolute(&o) < 0)
        return 1;
    log_init(m.keeper ? "noxsd-keeper" : "noxsd", o.verbose);
    noxs_set_logger(log_library);
    if (m.keeper) {
        struct keeper_opts ko = {.state_dir = o.state_dir,
                                 .owner_domid = o.domid,
                                 .foreground = o.foreground,
                                 .verbose = o.verbose,
                                 .adopt = m.adopt};
        keeper_main(&ko);
    }
    if (m.stop)
        return stop(o.state_dir, m.teardown);
    listen_fds_take(o.keeper_fds);
    if ((status = prepare_files(&o, socket_buf, exe)) >= 0)
        return status;

    /* Set-up (pidfile, store, keeper, socket) before detaching: a noxsd
     * that cannot run says why on stderr and exits non-zero. */
    daemon_start(o.foreground);

    snprintf(pidpath, sizeof(pidpath), "%s/%s", o.state_dir, NOXSD_PIDFILE);
    if ((pidfd = lock_pidfile(pidpath)) < 0)
        return 1;
    log_info("noxsd %s starting (pid %d, domain %u, state in %s)",
             version_string(), (int)getpid(), o.domid, o.state_dir);

    if (o.rebuild_store) {
        /* Under the pidfile lock: no worker reads the store meanwhile. */
        status = broker_rebuild_store(&o) < 0 ? 1 : 0;
        broker_cleanup();
        unlink(pidpath);
        close(pidfd);
        return status;
    }
    notify_take();
    block_stop_signals();
    if (broker_init(&o) < 0 || control_init(&o) < 0)
        return 1;
    status = run_worker(&o);
    unlink(pidpath);
    close(pidfd);
    log_info("exiting");
    return status;
}
