/*
 * The driver protocol both halves share: typed reads of the peer's keys,
 * the one state switch, the liveness page, and the frontend's wait for
 * the backend. The backend's state walk is in backend_walk.c.
 *
 * The liveness page exists because a control page says nothing about a
 * peer that was killed: its half keeps saying Connected, and Xen does not
 * tell the other end of an event channel that it closed. The grant layer
 * does clear a byte when a share or a mapping ends (unmap notifications),
 * also at the death of the process that held it, and notifies the peer on
 * the device's event channel, so each side holds one byte of one page
 * (abi.h, NOXS_LIVENESS_*).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "private.h"
#include "common/parse.h"

#define WAIT_SLICE_MS 100

/* ---- typed reads ---- */

NOXS_EXPORT int noxs_dev_peer_u64(const noxs_dev *d, const char *key,
                                  uint64_t min, uint64_t max, uint64_t *out)
{
    char buf[NOXS_CTRL_VALUE_MAX + 1];

    if (min > max) {
        errno = EINVAL;
        return -1;
    }
    if (noxs_dev_peer_kv(d, key, buf, sizeof(buf)) < 0)
        return -1;
    /* parse_u64 refuses what is no plain decimal (EINVAL) and, past
     * UINT64_MAX, says ERANGE as for a value outside [min, max]. */
    return parse_u64(buf, min, max, out);
}

NOXS_EXPORT int noxs_dev_peer_u32(const noxs_dev *d, const char *key,
                                  uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;

    if (noxs_dev_peer_u64(d, key, min, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

NOXS_EXPORT int noxs_dev_peer_gref(const noxs_dev *d, const char *key,
                                   uint32_t *out)
{
    return noxs_dev_peer_u32(d, key, NOXS_GREF_MIN, UINT32_MAX, out);
}

NOXS_EXPORT int noxs_dev_peer_port(const noxs_dev *d, const char *key,
                                   uint32_t *out)
{
    return noxs_dev_peer_u32(d, key, 1, NOXS_PORT_MAX, out);
}

/* ---- the state switch ---- */

NOXS_EXPORT int noxs_dev_switch_state(noxs_dev *d, unsigned int state)
{
    if (noxs_dev_state(d) == state)
        return 0;
    noxs_dev_set_state(d, state);
    if (noxs_dev_publish(d) < 0) {
        noxs_i_warn("noxs: domain %u device %u/%u: publish %s: %s",
                    d->frontend_domid, d->type, d->devid,
                    noxs_state_name(state), strerror(errno));
        return -1;
    }
    noxs_i_debug("noxs: domain %u device %u/%u: %s", d->frontend_domid,
                 d->type, d->devid, noxs_state_name(state));
    if (d->role == NOXS_I_ROLE_BACKEND && d->backend)
        noxs_i_backend_report(d->backend, d);
    return 0;
}

/* ---- the liveness page ---- */

static unsigned int own_byte(const noxs_dev *d)
{
    return d->role == NOXS_I_ROLE_FRONTEND ? NOXS_LIVENESS_FRONTEND
                                           : NOXS_LIVENESS_BACKEND;
}

static unsigned int peer_byte(const noxs_dev *d)
{
    return d->role == NOXS_I_ROLE_FRONTEND ? NOXS_LIVENESS_BACKEND
                                           : NOXS_LIVENESS_FRONTEND;
}

NOXS_EXPORT int noxs_dev_liveness_start(noxs_dev *d, uint32_t notify_port)
{
    char val[16];
    void *p;

    if (d->role != NOXS_I_ROLE_FRONTEND) {
        errno = EINVAL;
        return -1;
    }
    if (d->alive)
        return 0;
    if (!d->alive_gs) {
        errno = ENOTSUP;
        return -1;
    }
    p = xengntshr_share_page_notify(d->alive_gs, d->backend_domid,
                                    &d->alive_ref, 1,
                                    NOXS_LIVENESS_FRONTEND,
                                    notify_port ? notify_port : d->port);
    if (!p)
        return -1;
    memset(p, 0, NOXS_PAGE_SIZE);
    d->alive = p;
    d->peer_seen_alive = false;
    __atomic_store_n(&d->alive[NOXS_LIVENESS_FRONTEND], 1, __ATOMIC_RELEASE);
    snprintf(val, sizeof(val), "%u", d->alive_ref);
    if (noxs_dev_set_kv(d, NOXS_LIVENESS_KEY, val) < 0) {
        noxs_i_liveness_end(d, false);
        return -1;
    }
    return 0;
}

int noxs_i_liveness_map(noxs_dev *d, xengnttab_handle *gt, uint32_t ref,
                        bool notify)
{
    void *p;

    if (notify)
        p = xengnttab_map_grant_ref_notify(gt, d->frontend_domid, ref,
                                           PROT_READ | PROT_WRITE,
                                           NOXS_LIVENESS_BACKEND, d->port);
    else
        p = xengnttab_map_grant_ref(gt, d->frontend_domid, ref,
                                    PROT_READ | PROT_WRITE);
    if (!p)
        return -1;
    d->alive = p;
    d->alive_ref = ref;
    d->alive_gt = gt;
    d->alive_notify = notify;
    d->peer_seen_alive = false;
    __atomic_store_n(&d->alive[NOXS_LIVENESS_BACKEND], 1, __ATOMIC_RELEASE);
    return 0;
}

void noxs_i_liveness_end(noxs_dev *d, bool clear)
{
    int saved = errno;

    if (!d->alive)
        return;
    if (clear) {
        __atomic_store_n(&d->alive[own_byte(d)], 0, __ATOMIC_RELEASE);
        /* Without a notification on unmap the peer still has to look. */
        if (d->role == NOXS_I_ROLE_BACKEND && !d->alive_notify)
            noxs_dev_notify(d);
    }
    if (d->role == NOXS_I_ROLE_FRONTEND)
        xengntshr_unshare(d->alive_gs, (void *)d->alive, 1);
    else
        xengnttab_unmap(d->alive_gt, (void *)d->alive, 1);
    d->alive = NULL;
    d->alive_ref = 0;
    d->peer_seen_alive = false;
    errno = saved;
}

int noxs_i_liveness_peer_alive(const noxs_dev *d)
{
    noxs_dev *w = (noxs_dev *)d; /* the seen mark is bookkeeping only */

    if (!d->alive)
        return 1;
    if (__atomic_load_n(&d->alive[peer_byte(d)], __ATOMIC_ACQUIRE)) {
        w->peer_seen_alive = true;
        return 1;
    }
    return !d->peer_seen_alive;
}

NOXS_EXPORT int noxs_dev_peer_gone(const noxs_dev *d)
{
    unsigned int s = noxs_dev_peer_state(d);

    return s == NOXS_STATE_CLOSING || s == NOXS_STATE_CLOSED ||
           !noxs_i_liveness_peer_alive(d);
}

/* ---- the frontend's wait ---- */

NOXS_EXPORT int noxs_dev_wait_peer(noxs_dev *d, unsigned int state,
                                   int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : noxs_i_now_ms() + timeout_ms;

    for (;;) {
        int64_t left;
        int slice;

        if (noxs_dev_refresh(d) < 0 && errno != EBUSY)
            return -1;
        if (noxs_dev_peer_state(d) == state) {
            /* A backend byte set by now counts as seen: its clearing
             * later, even before anyone looks, is a death. */
            (void)noxs_i_liveness_peer_alive(d);
            return 0;
        }
        /* A backend Closed from an earlier session goes on to InitWait
         * when it sees us start over: only a wait past InitWait ends. */
        if (!noxs_i_liveness_peer_alive(d) ||
            (state > NOXS_STATE_INITWAIT && noxs_dev_peer_gone(d))) {
            errno = ECONNREFUSED;
            return -1;
        }
        left = deadline < 0 ? WAIT_SLICE_MS : deadline - noxs_i_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        /* In slices: a cleared liveness byte changes no generation. */
        slice = left < WAIT_SLICE_MS ? (int)left : WAIT_SLICE_MS;
        if (noxs_dev_wait(d, slice) < 0 && errno != EBUSY)
            return -1;
    }
}
