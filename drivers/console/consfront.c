/*
 * noxs-console-front: the guest side of the console device.
 *
 *   noxs-console-front [options] -- COMMAND [ARGS]
 *       run COMMAND with its stdin/stdout/stderr on the console (a socket
 *       pair, so bytes pass unchanged; -t: a pty, for interactive
 *       programs); exit with its status once its output has been taken
 *       by the backend;
 *   noxs-console-front [options]
 *       expose the console as a pty and print the pty's path.
 *
 * One poll loop moves bytes between the local end (socket or pty master)
 * and the two rings of <noxs/io/consif.h>: local input -> "out" ring while it has
 * room, "in" ring -> local output while the local end accepts it. A full
 * ring or a local end that does not accept stops reading the other side
 * (back-pressure); nothing is dropped. We sleep only after setting the
 * matching *_wanted word and re-checking (see consif.h), and notify the
 * backend only when its own word says it sleeps.
 *
 * The backend going away (Closing/Closed, or its byte of the library's
 * liveness page zeroed by its death: noxs_dev_peer_gone) ends the program with status 1; our own exit walks the
 * device Closing -> Closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/noxs.h>
#include <noxs/io/consif.h>

#include "consring.h"

#include "common/daemon.h"
#include "common/parse.h"

#define SLICE_MS 500

static const char *prog = "noxs-console-front";

static void die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
    exit(1);
}

/* ---- connection ---- */

static void connect_console(struct cons_front *fr, uint32_t devid, int timeout_ms)
{
    const char *what;

    if (cons_front_connect(fr, devid, timeout_ms, &what) < 0)
        die(what);
}

static bool backend_gone(struct cons_front *fr)
{
    if (noxs_dev_wait(fr->dev, 0) < 0 && errno == EPIPE)
        return true;
    return noxs_dev_peer_gone(fr->dev) ||
           noxs_dev_peer_state(fr->dev) != NOXS_STATE_CONNECTED;
}

/* ---- moving bytes ---- */

/* Local input -> out ring. Returns false at EOF/error of the local end. */
static bool take_local(struct cons_front *fr, int fd, bool *progress, bool *full)
{
    struct noxs_cons_header *h = fr->hdr;

    *full = false;
    for (;;) {
        uint32_t used = fr->out_prod - noxs_cons_load(&h->out_cons);
        uint32_t off = fr->out_prod & (fr->ring_bytes - 1);
        uint32_t space, span;
        ssize_t r;

        if (used > fr->ring_bytes)
            used = fr->ring_bytes; /* a confused backend: just wait */
        space = fr->ring_bytes - used;
        if (space == 0) {
            *full = true;
            return true;
        }
        span = fr->ring_bytes - off < space ? fr->ring_bytes - off : space;
        r = read(fd, fr->data + off, span);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        if (r == 0)
            return false;
        fr->out_prod += (uint32_t)r;
        noxs_cons_store(&h->out_prod, fr->out_prod);
        noxs_cons_mb();
        if (noxs_cons_load(&h->out_data_wanted))
            xenevtchn_notify(fr->xce, fr->port);
        *progress = true;
    }
}

/* In ring -> local output. *blocked: the local end does not accept more. */
static void give_local(struct cons_front *fr, int fd, bool discard, bool *progress,
                       bool *blocked)
{
    struct noxs_cons_header *h = fr->hdr;
    uint8_t *ring = fr->data + fr->ring_bytes;

    *blocked = false;
    for (;;) {
        uint32_t avail = noxs_cons_load(&h->in_prod) - fr->in_cons;
        uint32_t off = fr->in_cons & (fr->ring_bytes - 1);
        uint32_t span;
        ssize_t w;

        if (avail == 0 || avail > fr->ring_bytes)
            return;
        span = fr->ring_bytes - off < avail ? fr->ring_bytes - off : avail;
        if (discard) {
            w = span;
        } else {
            w = write(fd, ring + off, span);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    *blocked = true;
                    return;
                }
                w = span; /* the local reader is gone: input goes nowhere */
            }
        }
        fr->in_cons += (uint32_t)w;
        noxs_cons_store(&h->in_cons, fr->in_cons);
        noxs_cons_mb();
        if (noxs_cons_load(&h->in_space_wanted))
            xenevtchn_notify(fr->xce, fr->port);
        *progress = true;
    }
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl");
}

/* Start argv with stdio on a socket pair (or a pty); returns our end. */
static int spawn(char **argv, bool use_pty, pid_t *pid)
{
    int ours, theirs;

    if (use_pty) {
        ours = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (ours < 0 || grantpt(ours) < 0 || unlockpt(ours) < 0)
            die("pty");
        theirs = open(ptsname(ours), O_RDWR | O_NOCTTY);
        if (theirs < 0)
            die("pty slave");
    } else {
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            die("socketpair");
        ours = sv[0];
        theirs = sv[1];
    }
    *pid = fork();
    if (*pid < 0)
        die("fork");
    if (*pid == 0) {
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (use_pty) {
            setsid();
            ioctl(theirs, TIOCSCTTY, 0);
        }
        dup2(theirs, 0);
        dup2(theirs, 1);
        dup2(theirs, 2);
        if (theirs > 2)
            close(theirs);
        execvp(argv[0], argv);
        fprintf(stderr, "%s: %s: %s\n", prog, argv[0], strerror(errno));
        _exit(127);
    }
    close(theirs);
    return ours;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-console-front [-t] [-d DEVID] [-o ORDER] [-w SECONDS]"
            " [-- COMMAND [ARGS]]\n"
            "\n"
            "Run COMMAND with its stdio on the console, or (no COMMAND) "
            "expose the\n"
            "console as a pty and print its path.\n"
            "  -t           give COMMAND a pty instead of a socket\n"
            "  -d DEVID     console device id (default 0)\n"
            "  -o ORDER     rings of 2^ORDER pages each way (0..3, default 2)\n"
            "  -w SECONDS   how long to wait for the device (default 30)\n"
            "  -h, --help   this text\n"
            "  --version    print the version and exit\n");
}

/*
 * Move bytes both ways until the local end is done and the backend took
 * all its output (0), or a signal or the backend's going (1).
 */
static int run(struct cons_front *fr, int fd, int sfd)
{
    bool local_eof = false, local_blocked = false;

    for (;;) {
        bool progress, full = false;

        noxs_cons_store(&fr->hdr->in_data_wanted, 0);
        noxs_cons_store(&fr->hdr->out_space_wanted, 0);
        do {
            progress = false;
            if (!local_eof && !take_local(fr, fd, &progress, &full))
                local_eof = true;
            give_local(fr, fd, local_eof, &progress, &local_blocked);
        } while (progress);
        if (local_eof &&
            noxs_cons_load(&fr->hdr->out_cons) == fr->out_prod)
            break; /* everything the command wrote has been taken */

        /* About to sleep: ask for the notifications we need, re-check. */
        bool want_in = !local_blocked, want_space = full || local_eof;

        if (want_in)
            noxs_cons_store(&fr->hdr->in_data_wanted, 1);
        if (want_space)
            noxs_cons_store(&fr->hdr->out_space_wanted, 1);
        noxs_cons_mb();
        if (want_in && noxs_cons_load(&fr->hdr->in_prod) != fr->in_cons)
            continue;
        if (full &&
            fr->out_prod - noxs_cons_load(&fr->hdr->out_cons) < fr->ring_bytes)
            continue;
        if (local_eof && noxs_cons_load(&fr->hdr->out_cons) == fr->out_prod)
            continue;

        /* The local end is only watched when we could act on it (a hung-
         * up end we cannot read yet would report POLLHUP forever). */
        struct pollfd p[4] = {
            {.fd = xenevtchn_fd(fr->xce), .events = POLLIN},
            {.fd = sfd, .events = POLLIN},
            {.fd = local_eof || (full && !local_blocked) ? -1 : fd,
             .events = (short)((full ? 0 : POLLIN) |
                               (local_blocked ? POLLOUT : 0))},
            /* The control page's channel: the backend's state and its
             * liveness byte (its death) arrive there. */
            {.fd = noxs_frontend_fd(fr->f), .events = POLLIN},
        };
        int r = poll(p, 4, SLICE_MS);

        if (r < 0 && errno != EINTR)
            die("poll");
        if (p[1].revents & POLLIN) {
            return 1;
        }
        if (p[0].revents & POLLIN) {
            int port = xenevtchn_pending(fr->xce);

            if (port >= 0)
                xenevtchn_unmask(fr->xce, (evtchn_port_t)port);
        }
        if (p[3].revents & POLLIN)
            noxs_frontend_handle_events(fr->f);
        if ((r == 0 || ((p[0].revents | p[3].revents) & POLLIN)) &&
            backend_gone(fr)) {
            fprintf(stderr, "%s: the console backend went away\n", prog);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cons_front fr = {.order = NOXS_CONS_DEFAULT_RING_ORDER};
    unsigned long devid = 0, wait_s = 30;
    bool use_pty = false;
    int fd, sfd, c, status = 0, slave = -1;
    pid_t child = -1;

    static const struct option longopts[] = {
        OPT_HELP_VERSION,
    };

    while ((c = getopt_long(argc, argv, "+td:o:w:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't': use_pty = true; break;
        case 'd':
            devid = (unsigned long)opt_u64("d", optarg, 0, UINT32_MAX);
            break;
        case 'o':
            fr.order = (unsigned int)opt_u64("o", optarg, 0,
                                             NOXS_CONS_MAX_RING_ORDER);
            break;
        case 'w':
            wait_s = (unsigned long)opt_u64("w", optarg, 1, 86400);
            break;
        default: return opt_other(c, "noxs-console-front", usage);
        }
    }
    sfd = daemon_signals(1);

    fr.f = noxs_frontend_open(NULL);
    if (fr.f == NULL)
        die("cannot open the device page");
    connect_console(&fr, (uint32_t)devid, (int)wait_s * 1000);

    if (optind < argc) {
        fd = spawn(argv + optind, use_pty, &child);
    } else {
        fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 || grantpt(fd) < 0 || unlockpt(fd) < 0)
            die("pty");
        /* Held open so the master never reads EIO between users. */
        slave = open(ptsname(fd), O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
            die("pty slave");
        printf("%s\n", ptsname(fd));
        fflush(stdout);
    }
    set_nonblock(fd);

    status = run(&fr, fd, sfd);

    if (child > 0) {
        int ws;

        if (status != 0)
            kill(child, SIGTERM);
        close(fd);
        if (waitpid(child, &ws, 0) == child && status == 0)
            status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    } else {
        close(fd);
        if (slave >= 0)
            close(slave);
    }
    cons_front_close(&fr);
    noxs_frontend_close(fr.f);
    return status;
}
