/*
 * The special watches. @introduceDomain and @releaseDomain fire for every
 * domain noxsd creates and for every domain that ends (domain-destroy by
 * anyone, released by noxsd after the hypervisor reported it dead, or
 * any domain the hypervisor reports shut down, dying or gone), as
 * xenstored fires them for every domain. A context that watches one of
 * them holds a noxsd client subscribed to all domains' events; its fd
 * joins the poll set of its handles, and the watch entry points
 * (watch.c) drain it. This process's own introduce/release (domain.c)
 * fire at once (as xenstored answers its caller after queueing the
 * event); the matching event from noxsd is then skipped, so each fires
 * once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "handle.h"

#define SPECIAL_OWN_MAX 64
#define SPECIAL_RETRY_MS 1000
struct special {
    struct special *next;
    struct cxs_ctx *ctx;
    noxs_client *c;   /* NULL: not connected (retry later) */
    int64_t retry_ms; /* CLOCK_MONOTONIC ms of the next attempt */
    struct {
        uint16_t domid;
        bool release;
    } own[SPECIAL_OWN_MAX]; /* fired here, still to come from noxsd */
    size_t nown;
};
static struct special *specials;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct special *special_find(struct cxs_ctx *ctx)
{
    for (struct special *sp = specials; sp; sp = sp->next)
        if (sp->ctx == ctx)
            return sp;
    return NULL;
}

static void special_connect(struct special *sp)
{
    noxs_client *c;

    sp->retry_ms = mono_ms() + SPECIAL_RETRY_MS;
    if ((c = noxs_client_open(NULL)) == NULL)
        return;
    if (noxs_watch(c, NOXS_DOMID_ANY) < 0) {
        noxs_client_close(c);
        return;
    }
    sp->c = c;
    cxs_ctx_add_fd(sp->ctx, noxs_client_fd(c));
}

/* A watch on @introduceDomain / @releaseDomain was set on h. */
void cxs_special_watch(struct xs_handle *h)
{
    struct special *sp = special_find(h->ctx);

    if (!sp) {
        if ((sp = calloc(1, sizeof(*sp))) == NULL)
            return;
        sp->ctx = h->ctx;
        sp->next = specials;
        specials = sp;
        special_connect(sp);
        if (!sp->c)
            cxs_log("no noxsd events (%s): @introduceDomain and "
                    "@releaseDomain fire for this process's own calls "
                    "only until it can connect",
                    strerror(errno));
    } else if (sp->c) {
        struct epoll_event ev = {.events = EPOLLIN,
                                 .data.fd = noxs_client_fd(sp->c)};
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
    }
}

int cxs_special_fd(struct cxs_ctx *ctx)
{
    for (struct special *sp = specials; sp; sp = sp->next)
        if (sp->ctx == ctx)
            return sp->c ? noxs_client_fd(sp->c) : -1;
    return -1;
}

/* This process introduced or released domid: fire now and, if noxsd
 * sends an event for it (expect), skip that one. */
void cxs_special_own(struct cxs_ctx *ctx, uint16_t domid, bool release,
                     bool expect)
{
    struct special *sp = special_find(ctx);

    cxs_fire(ctx, release ? "@releaseDomain" : "@introduceDomain", false);
    if (!sp || !sp->c || !expect)
        return;
    if (sp->nown == SPECIAL_OWN_MAX) {
        memmove(&sp->own[0], &sp->own[1],
                (SPECIAL_OWN_MAX - 1) * sizeof(sp->own[0]));
        sp->nown--;
    }
    sp->own[sp->nown].domid = domid;
    sp->own[sp->nown].release = release;
    sp->nown++;
}

static bool special_was_own(struct special *sp, uint16_t domid, bool release)
{
    for (size_t i = 0; i < sp->nown; i++) {
        if (sp->own[i].domid == domid && sp->own[i].release == release) {
            memmove(&sp->own[i], &sp->own[i + 1],
                    (sp->nown - i - 1) * sizeof(sp->own[0]));
            sp->nown--;
            return true;
        }
    }
    return false;
}

/* Take noxsd's domain events for ctx and fire the special watches. */
void cxs_special_poll(struct cxs_ctx *ctx)
{
    struct special *sp = special_find(ctx);
    struct noxs_event ev;
    int n = 0;

    if (!sp)
        return;
    if (!sp->c) {
        if (mono_ms() < sp->retry_ms)
            return;
        special_connect(sp);
        if (!sp->c)
            return;
        /* Domains may have come and gone while we were not listening. */
        sp->nown = 0;
        cxs_fire(ctx, "@introduceDomain", false);
        cxs_fire(ctx, "@releaseDomain", false);
    }
    while (n++ < 256) {
        bool release;

        if (noxs_watch_next(sp->c, &ev, 0) < 0) {
            if (errno == ETIMEDOUT)
                return;
            /* noxsd went away: reconnect later (its fd leaves the
             * handles' epoll sets as it is closed). */
            noxs_client_close(sp->c);
            sp->c = NULL;
            sp->retry_ms = mono_ms() + SPECIAL_RETRY_MS;
            return;
        }
        if (ev.kind == NOXS_EVENT_DOMAIN_CREATED)
            release = false;
        else if (ev.kind == NOXS_EVENT_DOMAIN_DESTROYED ||
                 ev.kind == NOXS_EVENT_DOMAIN_RELEASED ||
                 ev.kind == NOXS_EVENT_DOMAIN_EXCEPTION)
            release = true;
        else
            continue;
        if (!special_was_own(sp, ev.dev.domid, release))
            cxs_fire(ctx, release ? "@releaseDomain" : "@introduceDomain",
                     false);
    }
}

/* Milliseconds a waiting xs_read_watch may sleep: not connected to
 * noxsd's events, look again for it later; else no limit (-1). */
int cxs_special_wait(struct cxs_ctx *ctx)
{
    struct special *sp = special_find(ctx);

    return sp && !sp->c ? SPECIAL_RETRY_MS : -1;
}

/* The context's last handle closed. */
void cxs_special_free(struct cxs_ctx *ctx)
{
    for (struct special **pp = &specials; *pp; pp = &(*pp)->next) {
        struct special *sp = *pp;
        if (sp->ctx != ctx)
            continue;
        *pp = sp->next;
        if (sp->c)
            noxs_client_close(sp->c);
        free(sp);
        break;
    }
}
