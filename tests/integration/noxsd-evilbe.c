/*
 * A backend that goes away at the worst moment, for noxsd's tests.
 *
 *   noxsd-evilbe CASE SOCKET NOXSD-PID
 *
 * Each case makes noxsd's answer to the backend fail because the backend
 * has already closed its end, at a point where noxsd still works on the
 * backend's request:
 *
 *   create    answers BACKEND_CREATE with an invalid grant reference and
 *             closes; noxsd asks it to remove the device again
 *   sync      sends a BACKEND_SYNC listing a device noxsd does not know
 *             and closes; noxsd asks it to remove the device
 *   register  sends BACKEND_REGISTER and closes before the reply
 *   destroy   a DOMAIN_DESTROY reaches noxsd together with the backend's
 *             hang-up; the destroy must still be answered
 *
 * noxsd is stopped (SIGSTOP) while the backend sends and closes, so that
 * it sees the message and the hang-up in one go, then continued. Then
 * noxsd must still answer STATUS, and a destroy must have been answered.
 * Exit 0 when every check passed.
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

#define TYPE NOXS_DEV_NET /* no real backend serves it in the tests */

static const char *sock_path;
static pid_t noxsd_pid;
static struct noxs_proto_buf txb;
static struct noxs_proto_msg rxm;
static uint32_t next_req = 1;

static void die(const char *what)
{
    fprintf(stderr, "noxsd-evilbe: FAIL: %s\n", what);
    exit(1);
}

static int conn_open(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        perror("noxsd-evilbe: connect");
        exit(1);
    }
    return fd;
}

static void tx(int fd)
{
    int len = noxs_proto_finish(&txb);

    if (len < 0 || send(fd, txb.data, (size_t)len, MSG_NOSIGNAL) != len)
        die("send");
}

/* The next message on fd (5 s at most); NULL on EOF or timeout. */
static const struct noxs_proto_msg *rx(int fd)
{
    static uint8_t buf[NOXS_PROTO_MAX_MSG];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (poll(&p, 1, 5000) != 1)
        return NULL;
    n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0 || noxs_proto_decode(buf, (size_t)n, &rxm) != 0)
        return NULL;
    return &rxm;
}

/* Send a request and wait for its answer; its error (0: reply). */
static int call(int fd, unsigned int type, const void *body, size_t len)
{
    const struct noxs_proto_msg *m;
    uint32_t req = next_req++;

    noxs_proto_begin(&txb, type, req, 0);
    noxs_proto_put(&txb, body, len);
    tx(fd);
    if ((m = rx(fd)) == NULL)
        return -1;
    if (m->hdr.request != req)
        die("answer to another request");
    return m->hdr.type == NOXS_MSG_ERROR ? m->hdr.error : 0;
}

/* SIGSTOP noxsd and wait (bounded) until it really is stopped. */
static void noxsd_stop(void)
{
    char path[64], buf[512], *s;
    FILE *f;
    int i;

    if (kill(noxsd_pid, SIGSTOP) < 0)
        die("SIGSTOP noxsd");
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)noxsd_pid);
    for (i = 0; i < 500; i++) {
        if ((f = fopen(path, "r")) == NULL)
            die("noxsd is gone");
        s = fgets(buf, sizeof(buf), f);
        fclose(f);
        if (s && (s = strrchr(buf, ')')) != NULL && s[1] == ' ' &&
            (s[2] == 'T' || s[2] == 't'))
            return;
        usleep(10000);
    }
    die("noxsd did not stop");
}

static void noxsd_cont(void)
{
    if (kill(noxsd_pid, SIGCONT) < 0)
        die("SIGCONT noxsd");
}

static int backend_register(void)
{
    struct {
        struct noxs_msg_register r;
        uint16_t type;
    } body = {{0, 1}, TYPE};
    int fd = conn_open();

    if (call(fd, NOXS_MSG_BACKEND_REGISTER, &body, sizeof(body)) != 0)
        die("register");
    return fd;
}

static int domain_create(int ts, uint16_t domid)
{
    struct noxs_msg_domid d = {.domid = domid};

    return call(ts, NOXS_MSG_DOMAIN_CREATE, &d, sizeof(d));
}

/* DEV_ADD from ts; the request id of the BACKEND_CREATE be gets. */
static uint32_t dev_add(int ts, int be, uint16_t domid, uint32_t *ts_req)
{
    struct noxs_msg_dev_add a = {.domid = domid, .type = TYPE, .devid = 0};
    const struct noxs_proto_msg *m;

    *ts_req = next_req++;
    noxs_proto_begin(&txb, NOXS_MSG_DEV_ADD, *ts_req, 0);
    noxs_proto_put(&txb, &a, sizeof(a));
    tx(ts);
    if ((m = rx(be)) == NULL || m->hdr.type != NOXS_MSG_BACKEND_CREATE)
        die("no BACKEND_CREATE");
    return m->hdr.request;
}

static void create_reply(int be, uint32_t req, uint32_t gref)
{
    struct noxs_msg_dev_ref ref = {.control_gref = gref, .backend_port = 5};

    noxs_proto_begin(&txb, NOXS_MSG_BACKEND_CREATE | NOXS_MSG_REPLY, req, 0);
    noxs_proto_put(&txb, &ref, sizeof(ref));
    tx(be);
}

/* A backend BE and a toolstack TS; domain DOMID created and a device of
 * it being added: the request BE is to answer (the toolstack's in
 * *TS_REQ). */
static uint32_t add_in_flight(int *be, int *ts, uint16_t domid,
                              uint32_t *ts_req)
{
    *be = backend_register();
    *ts = conn_open();
    if (domain_create(*ts, domid) != 0)
        die("domain-create");
    return dev_add(*ts, *be, domid, ts_req);
}

/* One message of TYPE (request REQ) with BODY on FD. */
static void send_one(int fd, unsigned int type, uint32_t req,
                     const void *body, size_t len)
{
    noxs_proto_begin(&txb, type, req, 0);
    noxs_proto_put(&txb, body, len);
    tx(fd);
}

static int case_create(void)
{
    const struct noxs_proto_msg *m;
    int be, ts;
    uint32_t ts_req, req = add_in_flight(&be, &ts, 1, &ts_req);

    noxsd_stop();
    create_reply(be, req, 1); /* below NOXS_GREF_MIN */
    close(be);
    noxsd_cont();
    m = rx(ts);
    if (m == NULL)
        die("dev-add got no answer (noxsd died?)");
    if (m->hdr.request != ts_req || m->hdr.type != NOXS_MSG_ERROR)
        die("dev-add with a bad grant reference succeeded");
    printf("create: dev-add answered with error %d\n", m->hdr.error);
    close(ts);
    return 0;
}

static int case_sync(void)
{
    struct {
        struct noxs_msg_sync s;
        struct noxs_msg_dev d;
    } body = {{1, NOXS_SYNC_FINAL},
              {.domid = 1, .type = TYPE, .devid = 7, .control_gref = 100, .backend_port = 5}};
    int be = backend_register();

    noxsd_stop();
    send_one(be, NOXS_MSG_BACKEND_SYNC, next_req++, &body, sizeof(body));
    close(be);
    noxsd_cont();
    printf("sync: sent an unknown device and closed\n");
    return 0;
}

static int case_register(void)
{
    struct {
        struct noxs_msg_register r;
        uint16_t type;
    } body = {{0, 1}, TYPE};
    int be;

    noxsd_stop();
    be = conn_open(); /* queued in the listen backlog meanwhile */
    send_one(be, NOXS_MSG_BACKEND_REGISTER, next_req++, &body,
             sizeof(body));
    close(be);
    noxsd_cont();
    printf("register: registered and closed\n");
    return 0;
}

static int case_destroy(void)
{
    struct noxs_msg_domid d = {.domid = 2};
    const struct noxs_proto_msg *m;
    int be, ts;
    uint32_t ts_req, req = add_in_flight(&be, &ts, 2, &ts_req);

    create_reply(be, req, 100);
    if ((m = rx(ts)) == NULL || m->hdr.type != (NOXS_MSG_DEV_ADD |
                                                NOXS_MSG_REPLY))
        die("dev-add 2");
    /* The destroy is queued before the hang-up: noxsd handles it first and
     * its BACKEND_REMOVE meets a closed connection. */
    noxsd_stop();
    ts_req = next_req++;
    send_one(ts, NOXS_MSG_DOMAIN_DESTROY, ts_req, &d, sizeof(d));
    close(be);
    noxsd_cont();
    if ((m = rx(ts)) == NULL)
        die("domain-destroy got no answer");
    if (m->hdr.request != ts_req || m->hdr.type != (NOXS_MSG_DOMAIN_DESTROY |
                                                    NOXS_MSG_REPLY))
        die("domain-destroy failed");
    /* Gone for good, not stuck in "being destroyed". */
    if (call(ts, NOXS_MSG_DOMAIN_DESTROY, &d, sizeof(d)) != ENOENT)
        die("domain 2 still there after its destroy");
    printf("destroy: answered\n");
    close(ts);
    return 0;
}

/* noxsd still serves: a fresh client gets STATUS. */
static void check_alive(void)
{
    noxs_client *c = noxs_client_open(sock_path);
    struct noxs_status st;

    if (c == NULL || noxs_status_get(c, &st) < 0)
        die("noxsd does not answer STATUS");
    noxs_client_close(c);
}

int main(int argc, char *argv[])
{
    int rc;

    if (argc != 4) {
        fprintf(stderr, "usage: noxsd-evilbe create|sync|register|destroy "
                        "SOCKET NOXSD-PID\n");
        return 2;
    }
    sock_path = argv[2];
    noxsd_pid = (pid_t)atoi(argv[3]);
    if (strcmp(argv[1], "create") == 0)
        rc = case_create();
    else if (strcmp(argv[1], "sync") == 0)
        rc = case_sync();
    else if (strcmp(argv[1], "register") == 0)
        rc = case_register();
    else if (strcmp(argv[1], "destroy") == 0)
        rc = case_destroy();
    else
        return 2;
    check_alive();
    return rc;
}
