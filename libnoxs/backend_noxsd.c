#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <xen/gntalloc.h>

#include "private.h"
#include "common/parse.h"
#include "proto.h"
#include "svc.h"

#include "backend.h"
#include "common/unixsock.h"

/* ---------------------------------------------------------------- */
/* Talking to noxsd                                                  */

void bk_arm_timer(int fd, int64_t at)
{
    struct itimerspec its = {0};

    if (at >= 0) {
        int64_t left = at - noxs_i_now_ms();

        if (left < 1)
            left = 1; /* 0 would disarm it */
        its.it_value.tv_sec = left / 1000;
        its.it_value.tv_nsec = (long)(left % 1000) * 1000000L;
    }
    timerfd_settime(fd, 0, &its, NULL);
}

/*
 * What we want from epoll on the socket: requests unless too many
 * answers wait, and room while anything waits to be sent.
 */
static void update_sock_events(noxs_backend *b)
{
    struct epoll_event ev = {.data.ptr = &bk_tag_sock};

    if (b->sock < 0 || !b->sock_events)
        return; /* registered with the right events by connect_noxsd */
    ev.events = b->txq_len < BACKEND_TXQ_MAX ? EPOLLIN : 0;
    /* Only while something waits for room: EPOLLOUT is level-triggered,
     * and reports held back by the rate limit wait for their timer. */
    if (b->txq || b->reports_blocked)
        ev.events |= EPOLLOUT;
    /* EPOLLHUP and EPOLLERR are always reported; 0 stays registered. */
    ev.events |= EPOLLRDHUP;
    if (ev.events != b->sock_events &&
        epoll_ctl(b->epfd, EPOLL_CTL_MOD, b->sock, &ev) == 0)
        b->sock_events = ev.events;
}

/* One non-blocking send: 0, -EAGAIN (no room) or -errno. */
static int send_now(noxs_backend *b, const void *data, size_t len)
{
    ssize_t n;

    do
        n = send(b->sock, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EWOULDBLOCK)
            errno = EAGAIN;
        return -errno;
    }
    return (size_t)n == len ? 0 : -EIO;
}

static void congested(noxs_backend *b)
{
    if (!b->congested)
        noxs_i_info("noxs backend: noxsd is not reading; queueing answers "
                    "and coalescing state reports");
    b->congested = 1;
}

void bk_drop_txq(noxs_backend *b)
{
    struct txmsg *m;

    while ((m = b->txq) != NULL) {
        b->txq = m->next;
        free(m);
    }
    b->txq_tail = &b->txq;
    b->txq_len = 0;
}

/*
 * Send what is in b->tx, or queue it behind what waits already (answers
 * keep their order). 0 when sent or queued, -errno otherwise; a broken
 * connection shows up on the receiving side and is handled there.
 */
int bk_send_tx(noxs_backend *b)
{
    int len = noxs_proto_finish(&b->tx);
    struct txmsg *m;
    int rc;

    if (len < 0)
        return len;
    if (b->sock < 0)
        return -ENOTCONN;
    if (!b->txq) {
        rc = send_now(b, b->tx.data, (size_t)len);
        if (rc != -EAGAIN)
            return rc;
        congested(b);
    }
    if ((m = malloc(sizeof(*m) + (size_t)len)) == NULL) {
        noxs_i_err("noxs backend: out of memory; an answer to noxsd is "
                   "lost");
        return -ENOMEM;
    }
    m->next = NULL;
    m->len = (size_t)len;
    memcpy(m->data, b->tx.data, (size_t)len);
    if (!b->txq)
        b->txq_tail = &b->txq;
    *b->txq_tail = m;
    b->txq_tail = &m->next;
    b->txq_len++;
    update_sock_events(b);
    return 0;
}


/* Take one report token of x at now: 1, or 0 and *due when one comes. */
static int take_token(struct bdev *x, int64_t now, int64_t *due)
{
    if (x->tokens < BACKEND_REPORT_BURST) {
        int64_t add = (now - x->tokens_ms) / BACKEND_REPORT_INTERVAL_MS;

        if (add >= BACKEND_REPORT_BURST - x->tokens) {
            x->tokens = BACKEND_REPORT_BURST;
            x->tokens_ms = now;
        } else if (add > 0) {
            x->tokens += (int)add;
            x->tokens_ms += add * BACKEND_REPORT_INTERVAL_MS;
        }
    }
    if (x->tokens == 0) {
        *due = x->tokens_ms + BACKEND_REPORT_INTERVAL_MS;
        return 0;
    }
    if (x->tokens-- == BACKEND_REPORT_BURST)
        x->tokens_ms = now; /* the refill clock starts with the first */
    return 1;
}


static void arm_report(noxs_backend *b, int64_t due)
{
    if (due == b->report_due)
        return;
    b->report_due = due;
    bk_arm_timer(b->reportfd, due);
}

/* Answers are for one noxsd only; the next sync carries the states. */
static void forget_session(noxs_backend *b)
{
    b->sock_events = 0;
    b->congested = 0;
    bk_drop_txq(b);
    while (b->reports)
        bk_unlink_report(b, b->reports);
    b->reports_blocked = 0;
    arm_report(b, -1);
}

/*
 * Send x's report (its states of now) if its rate limit allows: 1 sent
 * (or lost with the connection, which the next sync makes good), 0 held
 * back until *due, -EAGAIN no room.
 */
static int try_report(noxs_backend *b, struct bdev *x, int64_t now,
                      int64_t *due)
{
    struct noxs_msg_dev msg;
    int len, rc;

    if (!take_token(x, now, due))
        return 0;
    bk_dev_msg(b, x->d, &msg);
    noxs_proto_begin(&b->rtx, NOXS_MSG_BACKEND_STATE, 0, 0);
    noxs_proto_put(&b->rtx, &msg, sizeof(msg));
    len = noxs_proto_finish(&b->rtx);
    rc = len < 0 ? len : send_now(b, b->rtx.data, (size_t)len);
    if (rc == -EAGAIN) {
        x->tokens++; /* not spent */
        return rc;
    }
    return 1;
}

static void congestion_over(noxs_backend *b)
{
    if (b->congested && !b->txq && !b->reports_blocked) {
        noxs_i_info("noxs backend: noxsd reads again; sent what waited");
        b->congested = 0;
    }
}

/*
 * Send what waits, as far as the socket takes it: queued answers first
 * (in order), then the pending reports whose rate limit allows, each with
 * its device's states of now. Re-arms the report timer and the socket's
 * epoll events.
 */
void bk_flush(noxs_backend *b)
{
    int64_t now, due = -1, next_due = -1;
    struct bdev *x, **pp;
    struct txmsg *m;
    int rc;

    if (b->sock < 0)
        return;
    while ((m = b->txq) != NULL) {
        if (send_now(b, m->data, m->len) == -EAGAIN)
            break;
        /* Sent, or the connection broke (recv will tell): done with it. */
        b->txq = m->next;
        if (!b->txq)
            b->txq_tail = &b->txq;
        b->txq_len--;
        free(m);
    }
    b->reports_blocked = 0;
    now = noxs_i_now_ms();
    for (pp = &b->reports; (x = *pp) != NULL && !b->txq;) {
        rc = try_report(b, x, now, &next_due);
        if (rc == -EAGAIN) {
            b->reports_blocked = 1;
            break;
        }
        if (rc == 0) {
            if (due < 0 || next_due < due)
                due = next_due;
            pp = &x->rnext;
            continue;
        }
        *pp = x->rnext;
        x->report_pending = 0;
    }
    if (b->txq || b->reports_blocked)
        congested(b);
    else
        congestion_over(b);
    /* Blocked reports go out on EPOLLOUT; a due time then is no help. */
    arm_report(b, b->reports_blocked ? -1 : due);
    update_sock_events(b);
}

/*
 * At connect time only (register and sync, which wait for their answers
 * anyway): send what is queued, waiting for room up to deadline.
 */
static int flush_wait(noxs_backend *b, int64_t deadline)
{
    while (b->txq && b->sock >= 0) {
        struct pollfd p = {.fd = b->sock, .events = POLLOUT};
        int64_t left = deadline - noxs_i_now_ms();
        int rc;

        if (left <= 0)
            return -ETIMEDOUT;
        rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno != EINTR)
            return -errno;
        if (rc > 0 && (p.revents & (POLLERR | POLLHUP)))
            return -ECONNRESET;
        bk_flush(b);
    }
    return b->sock >= 0 ? 0 : -ECONNRESET;
}

static void handle_msg(noxs_backend *b);

/*
 * Receive one message (blocking up to deadline): 0 with b->msg decoded,
 * -ETIMEDOUT, or -errno/-ECONNRESET when the connection is gone.
 */
static int recv_one(noxs_backend *b, int64_t deadline)
{
    int rc;

    for (;;) {
        rc = noxs_i_recv_msg(b->sock, b->rx, sizeof(b->rx), deadline,
                             &b->msg);
        if (rc == -EPROTO) {
            noxs_i_warn("noxs backend: malformed message from noxsd");
            return -EPROTO;
        }
        if (rc == -EINVAL) {
            /* Well-formed but out of range: refuse that one request. */
            noxs_proto_simple(&b->tx, NOXS_MSG_ERROR, b->msg.hdr.request,
                              EINVAL);
            bk_send_tx(b);
            continue;
        }
        return rc;
    }
}

/* Send what is in b->tx and wait for the answer to req, serving any
 * request noxsd sends meanwhile. */
static int call(noxs_backend *b, uint32_t req, unsigned int type)
{
    int64_t deadline = noxs_i_now_ms() + BACKEND_IO_TIMEOUT_MS;
    int rc;

    if ((rc = bk_send_tx(b)) < 0 || (rc = flush_wait(b, deadline)) < 0)
        return rc;
    for (;;) {
        if ((rc = recv_one(b, deadline)) < 0)
            return rc;
        if (b->msg.hdr.request == req &&
            (b->msg.hdr.type == NOXS_MSG_ERROR ||
             b->msg.hdr.type == (type | NOXS_MSG_REPLY)))
            return b->msg.hdr.type == NOXS_MSG_ERROR ? -b->msg.hdr.error : 0;
        handle_msg(b);
        if (b->sock < 0)
            return -ECONNRESET;
    }
}

static uint32_t next_request(noxs_backend *b)
{
    if (++b->next_request == 0)
        ++b->next_request;
    return b->next_request;
}

void bk_dev_msg(noxs_backend *b, noxs_dev *d, struct noxs_msg_dev *m)
{
    memset(m, 0, sizeof(*m));
    m->domid = noxs_dev_frontend_domid(d);
    m->type = (uint16_t)noxs_dev_type(d);
    m->devid = noxs_dev_id(d);
    m->backend_domid = b->domid;
    m->backend_state = (uint8_t)noxs_dev_state(d);
    m->frontend_state = (uint8_t)noxs_dev_peer_state(d);
    m->control_gref = noxs_dev_gref(d);
    m->backend_port = noxs_dev_port(d);
}

/* Register for our types, then tell noxsd which devices we have. */
static int register_and_sync(noxs_backend *b)
{
    struct noxs_msg_register reg = {.domid = b->domid,
                                    .ntypes = (uint16_t)b->ntypes};
    struct noxs_msg_sync sync = {0};
    struct noxs_msg_dev item;
    struct bdev *x = b->all;
    uint32_t req;
    int rc;

    req = next_request(b);
    noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_REGISTER, req, 0);
    noxs_proto_put(&b->tx, &reg, sizeof(reg));
    noxs_proto_put(&b->tx, b->types, b->ntypes * sizeof(b->types[0]));
    if (b->fdstore) {
        uint32_t flags = NOXS_REGISTER_KEEP;

        noxs_proto_put(&b->tx, &flags, sizeof(flags));
    }
    if ((rc = call(b, req, NOXS_MSG_BACKEND_REGISTER)) < 0)
        return rc;
    do {
        size_t n = 0;
        struct bdev *start = x;

        while (x && n < NOXS_PROTO_MAX_SYNC) {
            x = x->next;
            n++;
        }
        sync.count = (uint32_t)n;
        sync.flags = x ? 0 : NOXS_SYNC_FINAL;
        req = next_request(b);
        noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_SYNC, req, 0);
        noxs_proto_put(&b->tx, &sync, sizeof(sync));
        for (x = start; n--; x = x->next) {
            bk_dev_msg(b, x->d, &item);
            x->reported_be = item.backend_state;
            x->reported_fe = item.frontend_state;
            noxs_proto_put(&b->tx, &item, sizeof(item));
        }
        if ((rc = call(b, req, NOXS_MSG_BACKEND_SYNC)) < 0)
            return rc;
    } while (x);
    return 0;
}

int bk_connect_noxsd(noxs_backend *b)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                             .data.ptr = &bk_tag_sock};
    int fd, rc;

    /* Non-blocking: the loop never waits for noxsd to read. */
    if ((fd = unix_connect(b->path, SOCK_SEQPACKET | SOCK_NONBLOCK)) < 0)
        return -errno;
    b->sock = fd;
    b->session++;
    if ((rc = register_and_sync(b)) < 0) {
        if (b->sock >= 0) {
            close(b->sock);
            b->sock = -1;
        }
        forget_session(b);
        return rc;
    }
    if (b->txq)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->sock, &ev) < 0) {
        rc = -errno;
        close(b->sock);
        b->sock = -1;
        forget_session(b);
        return rc;
    }
    b->sock_events = ev.events;
    return 0;
}

static void arm_retry(noxs_backend *b)
{
    struct itimerspec its = {0};

    its.it_value.tv_sec = b->retry_ms / 1000;
    its.it_value.tv_nsec = (long)(b->retry_ms % 1000) * 1000000L;
    timerfd_settime(b->timerfd, 0, &its, NULL);
}

void bk_disconnect(noxs_backend *b)
{
    struct pending_control *pc;

    if (b->sock < 0)
        return;
    epoll_ctl(b->epfd, EPOLL_CTL_DEL, b->sock, NULL);
    close(b->sock);
    b->sock = -1;
    forget_session(b);
    /* Deferred controls of that session can no longer be answered. */
    while ((pc = b->controls) != NULL) {
        b->controls = pc->next;
        free(pc);
    }
    noxs_i_warn("noxs backend: lost noxsd; devices keep working, "
                "reconnecting");
    b->retry_ms = BACKEND_RETRY_MIN_MS;
    arm_retry(b);
}

void bk_try_reconnect(noxs_backend *b)
{
    uint64_t expirations;
    int rc;

    if (read(b->timerfd, &expirations, sizeof(expirations)) < 0) {
        /* Spurious wakeup: the timer did not fire. */
    }
    if (b->sock >= 0)
        return;
    rc = bk_connect_noxsd(b);
    if (rc == 0) {
        noxs_i_info("noxs backend: reconnected to noxsd");
        return;
    }
    noxs_i_debug("noxs backend: reconnect: %s", strerror(-rc));
    b->retry_ms = b->retry_ms * 2 > BACKEND_RETRY_MAX_MS ? BACKEND_RETRY_MAX_MS
                                                         : b->retry_ms * 2;
    arm_retry(b);
}

/* ---------------------------------------------------------------- */
/* Requests from noxsd                                               */

static void reply_error(noxs_backend *b, uint32_t req, int err)
{
    noxs_proto_simple(&b->tx, NOXS_MSG_ERROR, req, err > 0 ? err : EIO);
    bk_send_tx(b);
}

void bk_reply_empty(noxs_backend *b, unsigned int type, uint32_t req)
{
    noxs_proto_simple(&b->tx, type | NOXS_MSG_REPLY, req, 0);
    bk_send_tx(b);
}

/* Tell noxsd x's states: at once if room and rate allow, else later. */
void bk_report(noxs_backend *b, struct bdev *x)
{
    int64_t due = -1;
    int rc;

    x->reported_be = (uint8_t)noxs_dev_state(x->d);
    x->reported_fe = (uint8_t)noxs_dev_peer_state(x->d);
    if (b->sock < 0)
        return; /* the next sync carries it */
    if (x->report_pending)
        return; /* bk_flush() sends the states of the moment it can */
    x->report_pending = 1;
    x->rnext = b->reports;
    b->reports = x;
    if (b->txq || b->reports_blocked)
        return; /* after what waits for room, on EPOLLOUT */
    rc = try_report(b, x, noxs_i_now_ms(), &due);
    if (rc == 1) {
        b->reports = x->rnext; /* x was linked first just above */
        x->report_pending = 0;
    } else if (rc == 0) {
        if (b->report_due < 0 || due < b->report_due)
            arm_report(b, due);
    } else {
        b->reports_blocked = 1;
        congested(b);
        update_sock_events(b);
    }
}

void bk_report_if_changed(noxs_backend *b, struct bdev *x)
{
    if (x->reported_be != noxs_dev_state(x->d) ||
        x->reported_fe != noxs_dev_peer_state(x->d))
        bk_report(b, x);
}

static void do_create(noxs_backend *b)
{
    const struct noxs_msg_dev_add *a = &b->msg.u.dev_add;
    uint32_t req = b->msg.hdr.request;
    struct noxs_msg_dev_ref ref;
    struct brec *rec = NULL;
    struct bdev *x;
    noxs_dev *d;
    int rc;

    if (a->backend_domid != b->domid) {
        reply_error(b, req, EINVAL);
        return;
    }
    if (bk_find_dev(b, a->domid, a->type, a->devid)) {
        reply_error(b, req, EEXIST);
        return;
    }
    if (b->fdstore)
        d = bk_bstore_dev_new(b, a->domid, a->type, a->devid, &rec);
    else
        d = noxs_i_dev_backend_new(b->gs, b->xce, b->domid, a->domid,
                                   a->type, a->devid);
    if (!d) {
        reply_error(b, req, errno);
        return;
    }
    if ((rc = bk_add_dev(b, d)) < 0) {
        noxs_i_dev_free(d);
        bk_rec_free(b, rec);
        reply_error(b, req, -rc);
        return;
    }
    x = bk_by_port(b, noxs_dev_port(d));
    x->rec = rec;
    rc = b->ops->create
             ? b->ops->create(b, d, b->msg.params, b->msg.nparams, b->arg)
             : 0;
    if (rc == 0) {
        noxs_dev_set_state(d, NOXS_STATE_INITWAIT);
        if (noxs_dev_publish(d) < 0) {
            rc = -(errno ? errno : EIO);
            if (b->ops->remove)
                b->ops->remove(b, d, b->arg);
        }
    }
    if (rc < 0) {
        bk_del_dev(b, x);
        noxs_i_dev_free(d);
        bk_rec_free(b, rec);
        reply_error(b, req, rc < 0 ? -rc : EIO);
        return;
    }
    x->reported_be = NOXS_STATE_INITWAIT;
    x->reported_fe = NOXS_STATE_UNKNOWN;
    ref.control_gref = noxs_dev_gref(d);
    ref.backend_port = noxs_dev_port(d);
    noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_CREATE | NOXS_MSG_REPLY, req, 0);
    noxs_proto_put(&b->tx, &ref, sizeof(ref));
    bk_send_tx(b);
}

static void do_remove(noxs_backend *b)
{
    const struct noxs_msg_dev_id *id = &b->msg.u.dev_id;
    uint32_t req = b->msg.hdr.request;
    struct bdev *x = bk_find_dev(b, id->domid, id->type, id->devid);

    if (x && !x->closing) {
        bk_begin_close(b, x, BACKEND_CLOSE_TIMEOUT_MS, 1, req);
        return; /* answered by bk_finish_close() */
    }
    if (x && !x->has_req) {
        /* Closing without anyone waiting: this request waits. */
        x->has_req = 1;
        x->remove_req = req;
        x->remove_session = b->session;
        return;
    }
    /* Gone (or already answered for): removal is idempotent. */
    bk_reply_empty(b, NOXS_MSG_BACKEND_REMOVE, req);
}

struct pending_control *bk_find_control(noxs_backend *b, uint32_t local)
{
    struct pending_control *pc;

    for (pc = b->controls; pc; pc = pc->next)
        if (pc->local == local)
            return pc;
    return NULL;
}

void bk_drop_control(noxs_backend *b, struct pending_control *pc)
{
    struct pending_control **pp;

    for (pp = &b->controls; *pp; pp = &(*pp)->next)
        if (*pp == pc) {
            *pp = pc->next;
            break;
        }
    free(pc);
}

static void do_control(noxs_backend *b)
{
    const struct noxs_msg_control *ctl = &b->msg.u.control;
    uint32_t req = b->msg.hdr.request;
    struct pending_control *pc;
    struct bdev *x = bk_find_dev(b, ctl->domid, ctl->type, ctl->devid);
    char key[NOXS_CTRL_KEY_MAX + 1], *value;
    uint32_t local;
    int rc;

    if (!x || x->closing) {
        reply_error(b, req, ENODEV);
        return;
    }
    if (!b->ops->control) {
        reply_error(b, req, ENOTSUP);
        return;
    }
    if ((pc = calloc(1, sizeof(*pc))) == NULL) {
        reply_error(b, req, ENOMEM);
        return;
    }
    /* ops may send messages (reports) that reuse our buffers. */
    if ((value = strdup(b->msg.value)) == NULL) {
        free(pc);
        reply_error(b, req, ENOMEM);
        return;
    }
    memcpy(key, b->msg.key, strlen(b->msg.key) + 1);
    if (++b->next_local == 0)
        ++b->next_local;
    pc->local = b->next_local;
    pc->request = req;
    pc->session = b->session;
    pc->next = b->controls;
    b->controls = pc;
    local = pc->local;
    rc = b->ops->control(b, x->d, key, value, local, b->arg);
    free(value);
    if ((pc = bk_find_control(b, local)) == NULL)
        return; /* answered from inside the callback */
    if (rc == 1)
        return; /* the driver answers later */
    bk_drop_control(b, pc);
    if (rc < 0) {
        reply_error(b, req, -rc);
    } else {
        struct noxs_msg_control_reply r = {0};

        noxs_proto_begin(&b->tx, NOXS_MSG_BACKEND_CONTROL | NOXS_MSG_REPLY,
                         req, 0);
        noxs_proto_put(&b->tx, &r, sizeof(r));
        bk_send_tx(b);
    }
}

/* Something noxsd sent outside a call(): a request of ours is never
 * outstanding here, so a reply is stale and ignored. */
static void handle_msg(noxs_backend *b)
{
    switch (b->msg.hdr.type) {
    case NOXS_MSG_BACKEND_CREATE:
        do_create(b);
        break;
    case NOXS_MSG_BACKEND_REMOVE:
        do_remove(b);
        break;
    case NOXS_MSG_BACKEND_CONTROL:
        do_control(b);
        break;
    default:
        if (!(b->msg.hdr.type & NOXS_MSG_REPLY) &&
            b->msg.hdr.type != NOXS_MSG_ERROR) {
            noxs_i_warn("noxs backend: unexpected %s from noxsd",
                        noxs_proto_type_name(b->msg.hdr.type));
            reply_error(b, b->msg.hdr.request, EPROTO);
        }
        break;
    }
}

int bk_handle_socket(noxs_backend *b)
{
    int n = 0, rc;

    /* Requests wait in the socket while too many answers wait here. */
    while (b->sock >= 0 && n < BACKEND_EVENTS_PER_DISPATCH &&
           b->txq_len < BACKEND_TXQ_MAX) {
        rc = recv_one(b, 0);
        if (rc == -ETIMEDOUT)
            break;
        if (rc < 0) {
            bk_disconnect(b);
            break;
        }
        handle_msg(b);
        n++;
    }
    return n;
}
