/*
 * A raw client of a XenStore Unix socket, for what no library sends:
 *
 *   xsockraw PATH badlen     a header whose length is over 4096: prints
 *                            the reply ("err ENAME") then "closed" if the
 *                            daemon closes the connection
 *   xsockraw PATH badtype    a request of an unknown type: "err ENAME"
 *                            then a READ of / on the same connection:
 *                            "ok" if it is still served
 *   xsockraw PATH half       half a header, then waits for stdin's end
 *                            (a client stuck in mid-frame)
 *   xsockraw PATH listen     binds PATH and listens until stdin's end
 *                            ("listening" once it does): another daemon
 *
 * Every wait is bounded (20 s).
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define WAIT_MS 20000

struct hdr {
    uint32_t type, req_id, tx_id, len;
};

static int sock_at(const char *path, struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
    return fd;
}

/* Read n bytes, waiting at most WAIT_MS for each piece; 0, or -1 at
 * EOF/error/timeout. */
static int read_n(int fd, void *buf, size_t n)
{
    char *b = buf;

    while (n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;

        if (poll(&p, 1, WAIT_MS) != 1)
            return -1;
        if ((r = read(fd, b, n)) <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Print one reply: "err NAME", "ok", or "none". */
static void reply(int fd)
{
    struct hdr h;
    char body[4097];

    if (read_n(fd, &h, sizeof(h)) < 0 || h.len > 4096 ||
        read_n(fd, body, h.len) < 0) {
        printf("none\n");
        return;
    }
    body[h.len] = '\0';
    if (h.type == 16) /* XS_ERROR */
        printf("err %s\n", body);
    else
        printf("ok\n");
}

static void wait_stdin(void)
{
    char c;

    while (read(0, &c, 1) > 0)
        ;
}

int main(int argc, char **argv)
{
    struct sockaddr_un sa;
    struct hdr h = {0, 7, 0, 0};
    int fd;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3) {
        fprintf(stderr, "usage: xsockraw PATH badlen|badtype|half|listen\n");
        return 2;
    }
    if ((fd = sock_at(argv[1], &sa)) < 0)
        return 1;
    if (strcmp(argv[2], "listen") == 0) {
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(fd, 4) < 0) {
            perror("xsockraw: listen");
            return 1;
        }
        printf("listening\n");
        wait_stdin();
        unlink(argv[1]);
        return 0;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("xsockraw: connect");
        return 1;
    }
    if (strcmp(argv[2], "badlen") == 0) {
        char c;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        h.type = 2; /* XS_READ */
        h.len = 5000;
        if (write(fd, &h, sizeof(h)) != sizeof(h))
            return 1;
        reply(fd);
        printf(poll(&p, 1, WAIT_MS) == 1 && read(fd, &c, 1) == 0
                   ? "closed\n"
                   : "open\n");
    } else if (strcmp(argv[2], "badtype") == 0) {
        h.type = 99;
        if (write(fd, &h, sizeof(h)) != sizeof(h))
            return 1;
        reply(fd);
        h = (struct hdr){2, 8, 0, 2}; /* XS_READ "/" */
        if (write(fd, &h, sizeof(h)) != sizeof(h) || write(fd, "/", 2) != 2)
            return 1;
        reply(fd);
    } else if (strcmp(argv[2], "half") == 0) {
        h.type = 2;
        if (write(fd, &h, 8) != 8)
            return 1;
        printf("sent\n");
        wait_stdin();
    } else {
        return 2;
    }
    return 0;
}
