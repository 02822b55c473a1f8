/*
 * noxs-console: attach the terminal to a guest's console, like
 * "xl console": the terminal goes to raw mode, everything typed goes to
 * the guest, everything the guest writes comes out here, and the escape
 * character (Ctrl-] by default) detaches. It talks to noxs-console-back
 * through the guest's Unix socket; the backend keeps the guest's output
 * while nobody is attached and hands it over on the next attach.
 *
 * Without a terminal on stdin (scripts, tests) there is no raw mode and
 * no escape character unless -e is given; at the end of stdin it leaves,
 * or, with -n BYTES, it stays until that many bytes of output arrived.
 *
 * Leaving at the end of stdin is a half-close: we shut down our sending
 * side and read until the backend closes the socket. Why not just exit:
 * the backend may have answered "console busy" (or have output for us)
 * that has not arrived yet when stdin ends, and we must not lose it.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "common/parse.h"

/* What noxs-console-back sends a second client before closing. */
#define BUSY "noxs-console: console busy\r\n"

#define DEFAULT_DIR "/run/noxs/console"

static struct termios saved_tio;
static bool raw_mode;

static void restore_terminal(void)
{
    if (raw_mode)
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
    raw_mode = false;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};

                poll(&pf, 1, -1);
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-console [--dir DIR] [-e CHAR|none] [-n BYTES] DOMID "
            "[DEVID]\n"
            "\n"
            "Attach to a guest's console (Ctrl-] detaches).\n"
            "  --dir DIR    noxs-console-back's socket directory\n"
            "               (default $NOXS_CONSOLE_DIR, else " DEFAULT_DIR ")\n"
            "  -e CHAR      escape character: ^X notation, a character, or "
            "none\n"
            "  -n BYTES     leave after BYTES of console output\n"
            "  --version    print the version and exit\n");
}

static int parse_escape(const char *s)
{
    if (strcmp(s, "none") == 0)
        return -1;
    if (s[0] == '^' && s[1] != '\0' && s[2] == '\0')
        return s[1] & 0x1f;
    if (s[0] != '\0' && s[1] == '\0')
        return (unsigned char)s[0];
    return -2;
}

/* What the command line chose, and the relay's state. */
struct console {
    const char *dir;
    unsigned long domid, devid;
    int escape; /* -1: none */
    bool tty;
    unsigned long long want, got; /* want 0: until stdin and the guest end */
    bool stdin_open;
    int fd, rc;
    char buf[65536];
};

/* -1 to go on, else the exit status (0 after --help or --version). */
static int parse_args(int argc, char **argv, struct console *con)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'D'},
        OPT_HELP_VERSION,
    };
    bool escape_given = false;
    uint64_t v;
    int c;

    con->dir = getenv("NOXS_CONSOLE_DIR");
    if (con->dir == NULL)
        con->dir = DEFAULT_DIR;
    while ((c = getopt_long(argc, argv, "e:n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': con->dir = optarg; break;
        case 'e':
            con->escape = parse_escape(optarg);
            if (con->escape == -2) {
                usage(stderr);
                return 2;
            }
            escape_given = true;
            break;
        case 'n': con->want = opt_u64("n", optarg, 0, UINT64_MAX); break;
        default: return opt_other(c, "noxs-console", usage);
        }
    }
    if (optind >= argc || argc - optind > 2) {
        usage(stderr);
        return 2;
    }
    con->domid = opt_domid("domid", argv[optind]);
    if (argc - optind == 2) {
        if (parse_u64(argv[optind + 1], 0, UINT32_MAX, &v) < 0) {
            fprintf(stderr, "noxs-console: console %s: not a device id "
                            "(decimal 0..%u)\n",
                    argv[optind + 1],
                    UINT32_MAX);
            return 2;
        }
        con->devid = (unsigned long)v;
    }
    if (!con->tty && !escape_given)
        con->escape = -1;
    return -1;
}

/* The backend's socket for this console: an fd, or -1 after saying why. */
static int connect_console(const struct console *con)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console-%lu.%lu.sock",
                 con->dir, con->domid,
                 con->devid) >= (int)sizeof(sa.sun_path)) {
        fprintf(stderr, "noxs-console: socket path too long\n");
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            fprintf(stderr, "noxs-console: domain %lu has no console %lu "
                            "served in %s (%s: %s)\n",
                    con->domid, con->devid, con->dir,
                    sa.sun_path, strerror(errno));
        else
            fprintf(stderr, "noxs-console: %s: %s\n", sa.sun_path,
                    strerror(errno));
        return -1;
    }
    return fd;
}

/* The terminal to raw mode (restored at exit), and the greeting. */
static void enter_raw_mode(const struct console *con)
{
    struct termios tio;

    if (tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        tio = saved_tio;
        cfmakeraw(&tio);
        if (tcsetattr(STDIN_FILENO, TCSADRAIN, &tio) == 0) {
            raw_mode = true;
            atexit(restore_terminal);
        }
    }
    if (con->escape >= 0)
        fprintf(stderr, "Connected to domain %lu console %lu; escape "
                        "character is '^%c'\r\n",
                con->domid, con->devid, con->escape + '@');
}

/* What one relay step tells the loop: go on, poll again, or stop. */
enum step { STEP_ON,
            STEP_AGAIN,
            STEP_END };

/* The guest's output, readable on the socket, to stdout. */
static enum step from_guest(struct console *con)
{
    size_t room = sizeof(con->buf);
    ssize_t n;

    if (con->want > 0 && con->want - con->got < room)
        room = (size_t)(con->want - con->got);
    n = read(con->fd, con->buf, room);
    if (n < 0 && errno == EINTR)
        return STEP_AGAIN;
    if (n <= 0) {
        if (con->want > 0 && con->got < con->want) {
            fprintf(stderr, "noxs-console: console closed after %llu "
                            "of %llu bytes\r\n",
                    con->got, con->want);
            con->rc = 1;
        }
        return STEP_END;
    }
    /* The backend's refusal is its whole answer: say it where errors go
     * and fail, so that a script sees rc 1. */
    if (con->got == 0 && (size_t)n == sizeof(BUSY) - 1 &&
        memcmp(con->buf, BUSY, (size_t)n) == 0) {
        fprintf(stderr, "noxs-console: domain %lu console %lu is "
                        "busy: another client is attached\n",
                con->domid, con->devid);
        con->rc = 1;
        return STEP_END;
    }
    if (write_all(STDOUT_FILENO, con->buf, (size_t)n) < 0) {
        con->rc = 1;
        return STEP_END;
    }
    con->got += (unsigned long long)n;
    if (con->want > 0 && con->got >= con->want)
        return STEP_END;
    return STEP_ON;
}

/* What was typed, readable on stdin, to the guest, up to the escape. */
static enum step from_user(struct console *con)
{
    ssize_t n = read(STDIN_FILENO, con->buf, sizeof(con->buf));
    bool detach = false;

    if (n < 0 && errno == EINTR)
        return STEP_AGAIN;
    if (n <= 0) {
        con->stdin_open = false;
        /* The backend detaches us when it reads our EOF. */
        if (con->want == 0 && shutdown(con->fd, SHUT_WR) < 0)
            return STEP_END;
        return STEP_AGAIN;
    }
    if (con->escape >= 0) {
        char *e = memchr(con->buf, con->escape, (size_t)n);

        if (e != NULL) {
            n = e - con->buf;
            detach = true;
        }
    }
    if (n > 0 && write_all(con->fd, con->buf, (size_t)n) < 0) {
        con->rc = 1;
        return STEP_END;
    }
    return detach ? STEP_END : STEP_ON;
}

/* Both directions until either side ends or the user detaches. */
static void relay(struct console *con)
{
    enum step st;

    for (;;) {
        struct pollfd p[2] = {
            {.fd = con->stdin_open ? STDIN_FILENO : -1, .events = POLLIN},
            {.fd = con->fd, .events = POLLIN},
        };

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            con->rc = 1;
            return;
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            if ((st = from_guest(con)) == STEP_END)
                return;
            if (st == STEP_AGAIN)
                continue;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (from_user(con) == STEP_END)
                return;
        }
    }
}

int main(int argc, char **argv)
{
    static struct console con = {.escape = 0x1d, .stdin_open = true};
    int rc;

    con.tty = isatty(STDIN_FILENO);
    if ((rc = parse_args(argc, argv, &con)) >= 0)
        return rc;
    if ((con.fd = connect_console(&con)) < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    if (con.tty)
        enter_raw_mode(&con);
    relay(&con);
    restore_terminal();
    if (con.tty)
        fprintf(stderr, "\n");
    close(con.fd);
    return con.rc;
}
