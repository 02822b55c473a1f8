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

static const char *const bstore_names[BSTORE_NFDS] = {
    "noxs-backend-gntalloc", "noxs-backend-evtchn", "noxs-backend-state"};

/* ---------------------------------------------------------------- */
/* The fd store                                                      */

/*
 * Our files from $LISTEN_FDS (fds 3.., named in $LISTEN_FDNAMES,
 * sd_listen_fds(3)); others are left alone. Returns how many of ours.
 */
static int take_listen_fds(int fds[BSTORE_NFDS])
{
    const char *spid = getenv("LISTEN_PID"), *sn = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char *copy, *name, *save = NULL;
    uint64_t pid, n, i;
    int j, found = 0;

    for (j = 0; j < BSTORE_NFDS; j++)
        fds[j] = -1;
    if (!spid || !sn || !names)
        return 0;
    if (parse_u64(spid, 1, INT32_MAX, &pid) < 0 || (pid_t)pid != getpid())
        return 0;
    if (parse_u64(sn, 0, 1000, &n) < 0 || (copy = strdup(names)) == NULL)
        return 0;
    name = strtok_r(copy, ":", &save);
    for (i = 0; i < n && name; i++) {
        for (j = 0; j < BSTORE_NFDS; j++)
            if (strcmp(name, bstore_names[j]) == 0 && fds[j] < 0) {
                fds[j] = (int)(3 + i);
                fcntl(fds[j], F_SETFD, FD_CLOEXEC);
                found++;
            }
        name = strtok_r(NULL, ":", &save);
    }
    free(copy);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return found;
}

static int bstore_map(noxs_backend *b)
{
    size_t size = BSTORE_RECS_OFF + (size_t)BSTORE_MAX * sizeof(struct brec);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, b->sfd, 0);

    if (p == MAP_FAILED)
        return -errno;
    b->smap = p;
    b->recs = (struct brec *)((char *)p + BSTORE_RECS_OFF);
    return 0;
}

static void gnt_dealloc(noxs_backend *b, uint64_t index)
{
    struct ioctl_gntalloc_dealloc_gref op = {.index = index, .count = 1};

    if (b->gntalloc_ioctl(b->gfd, IOCTL_GNTALLOC_DEALLOC_GREF, &op) < 0)
        noxs_i_warn("noxs backend: gntalloc dealloc at %llu: %s",
                    (unsigned long long)index, strerror(errno));
}

void bk_rec_free(noxs_backend *b, struct brec *r)
{
    if (!r)
        return;
    __atomic_store_n(&r->state, BREC_CREATING, __ATOMIC_RELEASE);
    gnt_dealloc(b, r->index);
    memset(r, 0, sizeof(*r));
    __atomic_store_n(&r->state, BREC_FREE, __ATOMIC_RELEASE);
}

/*
 * Open the grant and event-channel handles: for a driver that can resume
 * devices (NOXS_BACKEND_RESUMABLE) under an fd store, from its files if it
 * gave us ours back, else fresh and then stored. Sets b->fdstore.
 */
int bk_bstore_open(noxs_backend *b, unsigned int flags)
{
    const char *env = getenv("NOXS_BACKEND_FDSTORE");
    struct bstore_hdr *h;
    int fds[BSTORE_NFDS], found, i, rc;

    found = take_listen_fds(fds);
    if (!(flags & NOXS_BACKEND_RESUMABLE) || !getenv("NOTIFY_SOCKET") ||
        (env && strcmp(env, "0") == 0)) {
        for (i = 0; i < BSTORE_NFDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        b->fdstore = 0;
        if ((b->gs = xengntshr_open(NULL, 0)) == NULL ||
            (b->xce = xenevtchn_open(NULL, 0)) == NULL)
            return -(errno ? errno : EIO);
        return 0;
    }
    b->gntalloc_ioctl = noxs_i_gntalloc_ioctl();
    if (found == BSTORE_NFDS) {
        b->gfd = fds[0];
        b->sfd = fds[2];
        h = NULL;
        if (bstore_map(b) == 0)
            h = b->smap;
        if (h && h->magic == BSTORE_MAGIC && h->version == BSTORE_VERSION &&
            h->domid == b->domid &&
            (b->xce = xenevtchn_fdopen(NULL, fds[1], 0)) != NULL) {
            b->fdstore = 2;
            return 0;
        }
        noxs_i_warn("noxs backend: the stored files are not usable; "
                    "starting afresh");
        if (b->smap)
            munmap(b->smap, BSTORE_RECS_OFF +
                                (size_t)BSTORE_MAX * sizeof(struct brec));
        b->smap = NULL;
        b->recs = NULL;
        close(fds[1]);
        close(b->gfd);
        close(b->sfd);
        b->gfd = b->sfd = -1;
    } else {
        for (i = 0; i < BSTORE_NFDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
    }
    if ((b->gs = xengntshr_open(NULL, 0)) == NULL ||
        (b->xce = xenevtchn_open(NULL, 0)) == NULL)
        return -(errno ? errno : EIO);
    if ((b->gfd = xengntshr_fd(b->gs)) < 0)
        return -(errno ? errno : EIO);
    if ((b->sfd = memfd_create("noxs-backend-state", MFD_CLOEXEC)) < 0)
        return -errno;
    if (ftruncate(b->sfd, BSTORE_RECS_OFF +
                              (off_t)BSTORE_MAX * sizeof(struct brec)) < 0)
        return -errno;
    if ((rc = bstore_map(b)) < 0)
        return rc;
    h = b->smap;
    h->version = BSTORE_VERSION;
    h->domid = b->domid;
    h->nrec = BSTORE_MAX;
    h->magic = BSTORE_MAGIC;
    fds[0] = b->gfd;
    fds[1] = xenevtchn_fd(b->xce);
    fds[2] = b->sfd;
    b->fdstore = 1;
    for (i = 0; i < BSTORE_NFDS; i++) {
        if (noxs_i_fdstore_put(getenv("NOTIFY_SOCKET"), bstore_names[i],
                               fds[i]) < 0) {
            noxs_i_warn("noxs backend: cannot store %s: %s; devices will "
                        "close with this process",
                        bstore_names[i], strerror(errno));
            b->fdstore = 0;
        }
    }
    if (b->fdstore)
        noxs_i_info("noxs backend: devices survive restarts (files in the "
                    "service manager's fd store)");
    return 0;
}

/* A new device's page and port on our files (fd store). */
noxs_dev *bk_bstore_dev_new(noxs_backend *b, uint16_t domid,
                            unsigned int type, uint32_t devid,
                            struct brec **recp)
{
    struct ioctl_gntalloc_alloc_gref op = {.domid = domid,
                                           .flags = GNTALLOC_FLAG_WRITABLE,
                                           .count = 1};
    struct brec *r = NULL;
    noxs_dev *d;
    void *page;
    uint32_t i;
    int port, e;

    for (i = 0; i < BSTORE_MAX; i++) {
        uint32_t k = (b->rec_hint + i) % BSTORE_MAX;

        if (b->recs[k].state == BREC_FREE) {
            r = &b->recs[k];
            b->rec_hint = k + 1;
            break;
        }
    }
    if (!r) {
        errno = ENOSPC;
        return NULL;
    }
    if (b->gntalloc_ioctl(b->gfd, IOCTL_GNTALLOC_ALLOC_GREF, &op) < 0) {
        e = errno ? errno : EIO;
        noxs_i_err("noxs: sharing a control page with domain %u: %s", domid,
                   strerror(e));
        errno = e;
        return NULL;
    }
    r->index = op.index;
    r->gref = op.gref_ids[0];
    r->domid = domid;
    r->type = (uint16_t)type;
    r->devid = devid;
    r->port = 0;
    __atomic_store_n(&r->state, BREC_CREATING, __ATOMIC_RELEASE);
    page = mmap(NULL, NOXS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                b->gfd, (off_t)op.index);
    if (page == MAP_FAILED) {
        e = errno;
        bk_rec_free(b, r);
        errno = e;
        return NULL;
    }
    memset(page, 0, NOXS_PAGE_SIZE);
    if ((port = xenevtchn_bind_unbound_port(b->xce, domid)) < 0) {
        e = errno;
        noxs_i_err("noxs: unbound port for domain %u: %s", domid, strerror(e));
        munmap(page, NOXS_PAGE_SIZE);
        bk_rec_free(b, r);
        errno = e;
        return NULL;
    }
    r->port = (uint32_t)port;
    d = noxs_i_dev_backend_wrap(b->xce, page, r->gref, r->port, b->domid,
                                domid, type, devid, NULL);
    if (!d) {
        e = errno;
        xenevtchn_unbind(b->xce, r->port);
        munmap(page, NOXS_PAGE_SIZE);
        bk_rec_free(b, r);
        errno = e;
        return NULL;
    }
    memcpy(&r->own, &d->own, sizeof(r->own));
    d->mirror = &r->own;
    __atomic_store_n(&r->state, BREC_LIVE, __ATOMIC_RELEASE);
    *recp = r;
    return d;
}

/*
 * Take back the devices of the previous instance: map every page again,
 * undo what a kill left half-made. Before registering, so that the sync
 * tells noxsd we still have them.
 */
void bk_bstore_adopt(noxs_backend *b)
{
    uint32_t i, n = 0;

    for (i = 0; i < BSTORE_MAX; i++) {
        struct brec *r = &b->recs[i];
        struct bdev *x;
        noxs_dev *d;
        void *page;

        if (r->state == BREC_FREE)
            continue;
        if (r->state != BREC_LIVE) {
            if (r->port)
                xenevtchn_unbind(b->xce, r->port);
            bk_rec_free(b, r);
            continue;
        }
        page = mmap(NULL, NOXS_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                    b->gfd, (off_t)r->index);
        if (page == MAP_FAILED) {
            noxs_i_warn("noxs backend: device %u/%u/%u: its page is gone: "
                        "%s",
                        r->domid, r->type, r->devid, strerror(errno));
            xenevtchn_unbind(b->xce, r->port);
            bk_rec_free(b, r);
            continue;
        }
        d = noxs_i_dev_backend_wrap(b->xce, page, r->gref, r->port, b->domid,
                                    r->domid, r->type, r->devid, &r->own);
        if (!d || bk_add_dev(b, d) < 0) {
            /* Out of memory: leave it stored for the next start. */
            if (d)
                noxs_i_dev_forget(d);
            else
                munmap(page, NOXS_PAGE_SIZE);
            continue;
        }
        d->mirror = &r->own;
        x = bk_by_port(b, r->port);
        x->rec = r;
        (void)noxs_dev_refresh(d);
        n++;
    }
    noxs_i_info("noxs backend: resumed %u device(s) from the fd store", n);
}
