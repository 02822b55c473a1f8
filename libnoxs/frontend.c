/*
 * noxs_frontend: a guest's view of its device page, and attaching to the
 * devices listed there.
 *
 * The device page is mapped read-only (noxsd shares it read-only, and we
 * ask for PROT_READ only), so the guest cannot forge entries; it is still
 * written by another domain, so it is only used through validated
 * snapshots. Which domain we are comes from the page itself; when the
 * environment names our domain ($NOXS_DOMID / $NOXS_SIM_DOMID) the page
 * must agree.
 *
 * Resources per frontend: one xenevtchn handle (one fd) shared by the
 * domain's notify port and every attached device's port, one
 * xengnttab handle (the simulator's uses no fd, Linux's one), one mapping
 * for the device page and one per attached device. A process acting as
 * many domains opens one frontend per domain, setting NOXS_SIM_DOMID
 * before each noxs_frontend_open() on the simulator.
 *
 * The device page has one notify port, and an interdomain port can be
 * bound once: the first frontend process of a guest binds it. Others
 * (a guest runs its sysctl, console and blk frontends side by side)
 * find it bound and watch the page's generation every
 * NOXS_PAGE_POLL_MS instead; their devices' own ports are theirs alone,
 * so only noticing an added or removed device can take that long.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "private.h"

struct noxs_frontend {
    xenevtchn_handle *xce;
    xengnttab_handle *gt;
    xengntshr_handle *gs; /* liveness pages; NULL if the platform has none */
    struct noxs_boot boot;
    uint16_t domid;
    void *page;     /* the device page, mapped read-only */
    uint32_t port;  /* local port bound to noxsd's notify port */
    bool poll_page; /* another process of the domain holds it */
    noxs_dev *devs; /* attached devices */
};

#define NOXS_PAGE_POLL_MS 50

static void frontend_release(noxs_frontend *f)
{
    int saved = errno;

    if (f->port)
        xenevtchn_unbind(f->xce, f->port);
    if (f->page)
        xengnttab_unmap(f->gt, f->page, 1);
    if (f->gt)
        xengnttab_close(f->gt);
    if (f->gs)
        xengntshr_close(f->gs);
    if (f->xce)
        xenevtchn_close(f->xce);
    free(f);
    errno = saved;
}

/* Validated snapshot of the device page (heap: 4 KiB). */
static struct noxs_devpage *devpage_snapshot(noxs_frontend *f)
{
    struct noxs_devpage *snap = malloc(sizeof(*snap));

    if (!snap)
        return NULL;
    if (noxs_devpage_snapshot(f->page, snap, f->domid) < 0) {
        int saved = errno;
        free(snap);
        errno = saved;
        return NULL;
    }
    return snap;
}

NOXS_EXPORT noxs_frontend *noxs_frontend_open(const struct noxs_boot *boot)
{
    noxs_frontend *f;
    struct noxs_devpage *snap;
    struct noxs_boot found;
    uint16_t expect = NOXS_DOMID_ANY_PAGE;
    int port;

    if (!boot) {
        if (noxs_boot_find(&found) < 0)
            return NULL;
        boot = &found;
    }
    {
        uint16_t self;
        int known = noxs_self_domid(&self);

        if (known < 0)
            return NULL;
        if (known)
            expect = self;
    }
    f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->boot = *boot;
    f->xce = xenevtchn_open(NULL, 0);
    if (!f->xce)
        goto fail;
    f->gt = xengnttab_open(NULL, 0);
    /* Opened with the others: on the simulator a handle takes its domain
     * from the environment when it is opened. Without it, devices simply
     * have no liveness page (noxs_dev_liveness_start: ENOTSUP). */
    f->gs = xengntshr_open(NULL, 0);
    if (!f->gt)
        goto fail;
    f->page = xengnttab_map_grant_ref(f->gt, boot->owner_domid, boot->gref,
                                      PROT_READ);
    if (!f->page) {
        noxs_i_err("noxs: mapping device page %u of domain %u: %s",
                   boot->gref, boot->owner_domid, strerror(errno));
        goto fail;
    }
    f->domid = expect;
    snap = devpage_snapshot(f);
    if (!snap) {
        noxs_i_err("noxs: device page %u of domain %u: %s", boot->gref,
                   boot->owner_domid, strerror(errno));
        goto fail;
    }
    f->domid = snap->hdr.domid;
    /* The page must be the one the bootstrap string describes. */
    if (snap->hdr.owner_domid != boot->owner_domid ||
        snap->hdr.notify_port != boot->port) {
        free(snap);
        noxs_i_err("noxs: device page does not match the bootstrap string");
        errno = EPROTO;
        goto fail;
    }
    free(snap);
    port = xenevtchn_bind_interdomain(f->xce, boot->owner_domid, boot->port);
    if (port < 0 && (errno == EINVAL || errno == EBUSY)) {
        /* The page matched the bootstrap, so the port exists: another
         * frontend process of this domain has it bound. */
        f->poll_page = true;
        return f;
    }
    if (port < 0) {
        noxs_i_err("noxs: binding notify port %u of domain %u: %s",
                   boot->port, boot->owner_domid, strerror(errno));
        goto fail;
    }
    f->port = (uint32_t)port;
    return f;

fail:
    frontend_release(f);
    return NULL;
}

NOXS_EXPORT int noxs_frontend_close(noxs_frontend *f)
{
    if (!f)
        return 0;
    while (f->devs)
        noxs_dev_detach(f->devs);
    frontend_release(f);
    return 0;
}

NOXS_EXPORT uint16_t noxs_frontend_domid(const noxs_frontend *f)
{
    return f->domid;
}

NOXS_EXPORT int noxs_frontend_fd(noxs_frontend *f)
{
    return xenevtchn_fd(f->xce);
}

NOXS_EXPORT int noxs_frontend_devices(noxs_frontend *f,
                                      struct noxs_devpage_entry *out,
                                      unsigned int max, uint32_t *generation)
{
    struct noxs_devpage *snap = devpage_snapshot(f);
    unsigned int n = 0;

    if (!snap)
        return -1;
    for (uint32_t i = 0; i < snap->hdr.entry_count && n < max; i++)
        if (snap->entries[i].flags & NOXS_DEVPAGE_ENTRY_VALID)
            out[n++] = snap->entries[i];
    if (generation)
        *generation = snap->hdr.generation;
    free(snap);
    return (int)n;
}

NOXS_EXPORT int noxs_frontend_wait(noxs_frontend *f, uint32_t generation,
                                   int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : noxs_i_now_ms() + timeout_ms;

    for (;;) {
        if (noxs_devpage_peek_generation(f->page) != generation)
            return 1;
        if (timeout_ms == 0 ||
            (deadline >= 0 && noxs_i_now_ms() >= deadline))
            return 0;
        /* Events of attached devices may be consumed here; their waiters
         * re-read their pages before blocking (see dev.c). */
        int64_t until = deadline;
        if (f->poll_page) {
            int64_t slice = noxs_i_now_ms() + NOXS_PAGE_POLL_MS;
            if (until < 0 || slice < until)
                until = slice;
        }
        if (noxs_i_evtchn_wait_one(f->xce, until) < 0)
            return -1;
    }
}

NOXS_EXPORT int noxs_frontend_handle_events(noxs_frontend *f)
{
    int n = 0;

    /* Bounded: a peer notifying in a loop cannot keep us here. */
    while (n < 1024) {
        int port = noxs_i_evtchn_wait_one(f->xce, 0);

        if (port < 0)
            return n ? n : -1;
        if (port == 0)
            break;
        n++;
    }
    return n;
}

static const struct noxs_devpage_entry *
find_entry(const struct noxs_devpage *p, unsigned int type, uint32_t devid)
{
    for (uint32_t i = 0; i < p->hdr.entry_count; i++) {
        const struct noxs_devpage_entry *e = &p->entries[i];

        if ((e->flags & NOXS_DEVPAGE_ENTRY_VALID) &&
            !(e->flags & NOXS_DEVPAGE_ENTRY_CLOSING) && e->type == type &&
            e->devid == devid)
            return e;
    }
    return NULL;
}

NOXS_EXPORT noxs_dev *noxs_frontend_attach(noxs_frontend *f, unsigned int type,
                                           uint32_t devid)
{
    struct noxs_devpage *snap;
    struct noxs_devpage_entry e;
    const struct noxs_devpage_entry *found;
    noxs_dev *d;
    int port, saved;

    snap = devpage_snapshot(f);
    if (!snap)
        return NULL;
    found = find_entry(snap, type, devid);
    if (found)
        e = *found;
    free(snap);
    if (!found) {
        errno = ENOENT;
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->own_value = malloc(NOXS_CTRL_VALUE_MAX + 1);
    if (!d->own_value)
        goto fail;
    d->role = NOXS_I_ROLE_FRONTEND;
    d->own_half = NOXS_CTRL_FRONTEND;
    d->peer_half = NOXS_CTRL_BACKEND;
    d->gt = f->gt;
    d->xce = f->xce;
    d->alive_gs = f->gs;
    d->gref = e.control_gref;
    d->remote_port = e.backend_port;
    d->backend_domid = e.backend_domid;
    d->frontend_domid = f->domid;
    d->type = type;
    d->devid = devid;
    d->page = xengnttab_map_grant_ref(f->gt, e.backend_domid, e.control_gref,
                                      PROT_READ | PROT_WRITE);
    if (!d->page) {
        noxs_i_err("noxs: mapping control page %u of domain %u: %s",
                   e.control_gref, e.backend_domid, strerror(errno));
        goto fail;
    }
    /* The backend half must describe exactly the device the entry names
     * (noxs_dev_refresh checks the identity against d's fields). */
    if (noxs_dev_refresh(d) < 0)
        goto fail;
    if (d->peer.generation == 0) {
        errno = EPROTO; /* listed before the backend published anything */
        goto fail;
    }
    port = xenevtchn_bind_interdomain(f->xce, e.backend_domid,
                                      e.backend_port);
    if (port < 0) {
        noxs_i_err("noxs: binding port %u of domain %u: %s", e.backend_port,
                   e.backend_domid, strerror(errno));
        goto fail;
    }
    d->port = (uint32_t)port;
    d->own.state = NOXS_STATE_INITIALISING;
    /*
     * Continue the generation a previous frontend may have left in our
     * half, so our seq words never repeat values a reader saw from it.
     * Only a counter seed: nothing else is read back from the page.
     */
    d->own.generation = noxs_ctrl_half_peek_generation(d->page, d->own_half);
    d->frontend = f;
    d->next = f->devs;
    f->devs = d;
    return d;

fail:
    saved = errno;
    if (d->page)
        xengnttab_unmap(f->gt, d->page, 1);
    free(d->own_value);
    free(d);
    errno = saved;
    return NULL;
}

NOXS_EXPORT noxs_dev *noxs_frontend_attach_wait(noxs_frontend *f,
                                                unsigned int type,
                                                uint32_t devid, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : noxs_i_now_ms() + timeout_ms;

    for (;;) {
        uint32_t gen = noxs_devpage_peek_generation(f->page);
        noxs_dev *d = noxs_frontend_attach(f, type, devid);
        int left, rc;

        if (d || errno != ENOENT)
            return d;
        if (deadline < 0) {
            left = -1;
        } else {
            int64_t l = deadline - noxs_i_now_ms();
            if (l <= 0) {
                errno = ETIMEDOUT;
                return NULL;
            }
            left = l > 0x7fffffff ? 0x7fffffff : (int)l;
        }
        rc = noxs_frontend_wait(f, gen, left);
        if (rc < 0)
            return NULL;
        if (rc == 0) {
            errno = ETIMEDOUT;
            return NULL;
        }
    }
}

void noxs_i_frontend_forget(noxs_frontend *f, noxs_dev *d)
{
    for (noxs_dev **p = &f->devs; *p; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
    d->frontend = NULL;
}

NOXS_EXPORT int noxs_dev_detach(noxs_dev *d)
{
    if (!d)
        return 0;
    if (d->role != NOXS_I_ROLE_FRONTEND) {
        errno = EINVAL; /* backend devices are freed by the backend */
        return -1;
    }
    if (d->own.state != NOXS_STATE_CLOSED) {
        noxs_dev_set_state(d, NOXS_STATE_CLOSED);
        noxs_dev_publish(d);
    }
    noxs_i_dev_free(d);
    return 0;
}
