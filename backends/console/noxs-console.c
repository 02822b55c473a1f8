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

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = getenv("NOXS_CONSOLE_DIR");
    bool tty = isatty(STDIN_FILENO), escape_given = false, stdin_open = true;
    unsigned long long want = 0, got = 0;
    unsigned long domid, devid = 0;
    uint64_t v;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int escape = 0x1d, c, fd, rc = 0;
    char buf[65536];

    if (dir == NULL)
        dir = DEFAULT_DIR;
    while ((c = getopt_long(argc, argv, "e:n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': dir = optarg; break;
        case 'e':
            escape = parse_escape(optarg);
            if (escape == -2) {
                usage(stderr);
                return 2;
            }
            escape_given = true;
            break;
        case 'n': want = opt_u64("n", optarg, 0, UINT64_MAX); break;
        case 'h': usage(stdout); return 0;
        case 'V': print_version("noxs-console"); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        usage(stderr);
        return 2;
    }
    domid = opt_domid("domid", argv[optind]);
    if (argc - optind == 2) {
        if (parse_u64(argv[optind + 1], 0, UINT32_MAX, &v) < 0) {
            fprintf(stderr, "noxs-console: console %s: not a device id "
                            "(decimal 0..%u)\n",
                    argv[optind + 1],
                    UINT32_MAX);
            return 2;
        }
        devid = (unsigned long)v;
    }
    if (!tty && !escape_given)
        escape = -1;

    if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console-%lu.%lu.sock",
                 dir, domid, devid) >= (int)sizeof(sa.sun_path)) {
        fprintf(stderr, "noxs-console: socket path too long\n");
        return 1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            fprintf(stderr, "noxs-console: domain %lu has no console %lu "
                            "served in %s (%s: %s)\n",
                    domid, devid, dir,
                    sa.sun_path, strerror(errno));
        else
            fprintf(stderr, "noxs-console: %s: %s\n", sa.sun_path,
                    strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (tty) {
        struct termios tio;

        if (tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
            tio = saved_tio;
            cfmakeraw(&tio);
            if (tcsetattr(STDIN_FILENO, TCSADRAIN, &tio) == 0) {
                raw_mode = true;
                atexit(restore_terminal);
            }
        }
        if (escape >= 0)
            fprintf(stderr, "Connected to domain %lu console %lu; escape "
                            "character is '^%c'\r\n",
                    domid, devid, escape + '@');
    }

    for (;;) {
        struct pollfd p[2] = {
            {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN},
            {.fd = fd, .events = POLLIN},
        };

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            rc = 1;
            break;
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            size_t room = sizeof(buf);
            ssize_t n;

            if (want > 0 && want - got < room)
                room = (size_t)(want - got);
            n = read(fd, buf, room);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                if (want > 0 && got < want) {
                    fprintf(stderr, "noxs-console: console closed after %llu "
                                    "of %llu bytes\r\n",
                            got, want);
                    rc = 1;
                }
                break;
            }
            /* The backend's refusal is its whole answer: say it where
             * errors go and fail, so that a script sees rc 1. */
            if (got == 0 && (size_t)n == sizeof(BUSY) - 1 &&
                memcmp(buf, BUSY, (size_t)n) == 0) {
                fprintf(stderr, "noxs-console: domain %lu console %lu is "
                                "busy: another client is attached\n",
                        domid, devid);
                rc = 1;
                break;
            }
            if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0) {
                rc = 1;
                break;
            }
            got += (unsigned long long)n;
            if (want > 0 && got >= want)
                break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            bool detach = false;

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                stdin_open = false;
                /* The backend detaches us when it reads our EOF. */
                if (want == 0 && shutdown(fd, SHUT_WR) < 0)
                    break;
                continue;
            }
            if (escape >= 0) {
                char *e = memchr(buf, escape, (size_t)n);

                if (e != NULL) {
                    n = e - buf;
                    detach = true;
                }
            }
            if (n > 0 && write_all(fd, buf, (size_t)n) < 0) {
                rc = 1;
                break;
            }
            if (detach)
                break;
        }
    }
    restore_terminal();
    if (tty)
        fprintf(stderr, "\n");
    close(fd);
    return rc;
}
