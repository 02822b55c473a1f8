/*
 * An unprivileged user flooding noxsd, for its limit tests.
 *
 *   noxsd-flood hold SOCKET UID NCONN NREQ
 *       as UID: open NCONN connections and send NREQ DOMAIN_LIST requests
 *       on each without ever reading a reply (for 10 s at most, sending
 *       as fast as noxsd takes them); print "ready CONNECTED SENT" and
 *       hold every connection until killed
 *   noxsd-flood refuse SOCKET UID NCONN NREQ
 *       as UID: on each of NCONN connections in turn, send NREQ
 *       DOMAIN_CREATE requests one at a time, reading each answer (EPERM
 *       is expected); print "refused N"
 *
 * Exit 0 unless the probe itself failed (setuid, no socket at all).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>

#include "proto.h"

static const char *sock_path;

static uint64_t ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* nonblock: do not wait for room in noxsd's backlog (flood), or do. */
static int conn_open(int nonblock)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0),
                    0);

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void become(unsigned long uid)
{
    if (setgid((gid_t)uid) < 0 || setuid((uid_t)uid) < 0) {
        perror("noxsd-flood: setuid");
        exit(3);
    }
}

static int hold(int nconn, int nreq)
{
    struct noxs_proto_buf *b = malloc(sizeof(*b));
    int *fds = calloc((size_t)nconn, sizeof(*fds));
    int *sent = calloc((size_t)nconn, sizeof(*sent));
    uint64_t deadline = ms_now() + 10000;
    long total = 0;
    int i, len, open_fds = 0, busy;

    if (!b || !fds || !sent)
        return 3;
    for (i = 0; i < nconn; i++)
        if ((fds[i] = conn_open(1)) >= 0)
            open_fds++;
    if (open_fds == 0) {
        fprintf(stderr, "noxsd-flood: cannot connect\n");
        return 3;
    }
    len = noxs_proto_simple(b, NOXS_MSG_DOMAIN_LIST, 1, 0);
    do {
        busy = 0;
        for (i = 0; i < nconn; i++) {
            if (fds[i] < 0 || sent[i] >= nreq)
                continue;
            if (send(fds[i], b->data, (size_t)len,
                     MSG_DONTWAIT | MSG_NOSIGNAL) == len) {
                sent[i]++;
                total++;
                busy = 1;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                close(fds[i]); /* turned away or dropped by noxsd */
                fds[i] = -1;
                open_fds--;
            }
        }
        if (!busy) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        for (i = 0; i < nconn; i++)
            if (fds[i] >= 0 && sent[i] < nreq)
                break;
    } while (i < nconn && ms_now() < deadline);
    printf("ready %d %ld\n", open_fds, total);
    fflush(stdout);
    for (;;)
        pause();
}

static int refuse(int nconn, int nreq)
{
    static uint8_t rx[NOXS_PROTO_MAX_MSG];
    static struct noxs_proto_buf b0;
    struct noxs_proto_buf *b = &b0;
    struct noxs_msg_domid d = {.domid = 7};
    struct pollfd p = {.events = POLLIN};
    long refused = 0;
    int i, j, len, fd;
    ssize_t n;

    noxs_proto_begin(b, NOXS_MSG_DOMAIN_CREATE, 1, 0);
    noxs_proto_put(b, &d, sizeof(d));
    len = noxs_proto_finish(b);
    for (i = 0; i < nconn; i++) {
        if ((fd = conn_open(0)) < 0) {
            perror("noxsd-flood: connect");
            return 3;
        }
        p.fd = fd;
        for (j = 0; j < nreq; j++) {
            if (send(fd, b->data, (size_t)len, MSG_NOSIGNAL) != len ||
                poll(&p, 1, 5000) != 1 ||
                (n = recv(fd, rx, sizeof(rx), 0)) < 16)
                break;
            if (rx[2] == NOXS_MSG_ERROR && rx[3] == 0)
                refused++;
        }
        close(fd);
    }
    printf("refused %ld\n", refused);
    return 0;
}

int main(int argc, char *argv[])
{
    if (argc != 6) {
        fprintf(stderr, "usage: noxsd-flood hold|refuse SOCKET UID NCONN "
                        "NREQ\n");
        return 2;
    }
    sock_path = argv[2];
    signal(SIGPIPE, SIG_IGN);
    become(strtoul(argv[3], NULL, 10));
    if (strcmp(argv[1], "hold") == 0)
        return hold(atoi(argv[4]), atoi(argv[5]));
    if (strcmp(argv[1], "refuse") == 0)
        return refuse(atoi(argv[4]), atoi(argv[5]));
    return 2;
}
