/*
 * The xenbus state walk, run by the library for a driver that gives
 * ops->connect (the table is in noxs.h), and the frontend's liveness page
 * seen from the backend.
 *
 * Every driver used to walk the states itself, each a little
 * differently; here the walk is one function, and a driver only says how
 * to set a session up (connect) and tear it down (disconnect). The rules
 * it keeps:
 *   - a frontend that starts over (Initialising, or Unknown: a half never
 *     published) ends the session and finds us in InitWait again, whatever
 *     state the last session left us in;
 *   - we connect only from InitWait, so a stale Connected left by a
 *     frontend that died is never mistaken for a new one;
 *   - a frontend that dies leaves its half saying Connected: its liveness
 *     byte, cleared by the grant layer, is what tells us, on the event the
 *     clearing sends to the device's port. The device then walks Closing
 *     -> Closed, and a restarted frontend comes back through Initialising.
 * Under an fd store (our own restart must not look like our death to the
 * frontend) the liveness page is mapped without an unmap notification,
 * and our byte is cleared by hand when a session really ends.
 */
#include <errno.h>
#include <string.h>

#include "backend.h"

static int walking(const noxs_backend *b)
{
    return b->ops->connect != NULL;
}

/* Follow the frontend's liveness key: map this session's page. */
static void liveness_sync(noxs_backend *b, struct bdev *x)
{
    noxs_dev *d = x->d;
    uint32_t ref;

    if (noxs_dev_peer_gref(d, NOXS_LIVENESS_KEY, &ref) < 0) {
        /* None (yet), or nonsense: nothing to watch. */
        noxs_i_liveness_end(d, true);
        return;
    }
    if (d->alive && d->alive_ref == ref)
        return;
    noxs_i_liveness_end(d, true);
    if (!b->gt && (b->gt = xengnttab_open(NULL, 0)) == NULL) {
        noxs_i_warn("noxs backend: xengnttab_open: %s", strerror(errno));
        return;
    }
    if (noxs_i_liveness_map(d, b->gt, ref, b->fdstore == 0) < 0)
        noxs_i_warn("noxs backend: domain %u device %u/%u: cannot map "
                    "liveness page %u: %s",
                    noxs_dev_frontend_domid(d),
                    noxs_dev_type(d), noxs_dev_id(d), ref, strerror(errno));
}

/* The driver's teardown first: what it answers on its way out (blk's
 * ring thread answers every request it took) reaches a frontend that
 * still sees us alive, and only then do we clear our byte. */
static void end_session(noxs_backend *b, struct bdev *x, int why)
{
    if (x->connected) {
        x->connected = 0;
        if (b->ops->disconnect)
            b->ops->disconnect(b, x->d, why, b->arg);
    }
    noxs_i_liveness_end(x->d, true);
}

static void try_connect(noxs_backend *b, struct bdev *x)
{
    noxs_dev *d = x->d;
    const char *why = NULL;
    int rc = b->ops->connect(b, d, &why, b->arg);

    if (rc < 0) {
        if (!why)
            why = strerror(-rc);
        noxs_i_warn("noxs backend: domain %u device %u/%u: %s",
                    noxs_dev_frontend_domid(d), noxs_dev_type(d),
                    noxs_dev_id(d), why);
        noxs_dev_set_kv(d, "error", why);
        noxs_dev_switch_state(d, NOXS_STATE_CLOSING);
        return;
    }
    x->connected = 1;
    /* The page first: a frontend that sees us Connected may count on
     * our byte being set. */
    liveness_sync(b, x);
    noxs_dev_switch_state(d, NOXS_STATE_CONNECTED);
}

static void walk_state(noxs_backend *b, struct bdev *x)
{
    noxs_dev *d = x->d;
    unsigned int own = noxs_dev_state(d);

    switch (noxs_dev_peer_state(d)) {
    case NOXS_STATE_UNKNOWN:
    case NOXS_STATE_INITIALISING:
        /* A frontend (re)starting: one that died before is gone. */
        x->peer_died = 0;
        end_session(b, x, 0);
        if (own != NOXS_STATE_INITWAIT) {
            noxs_dev_del_kv(d, "error");
            noxs_dev_switch_state(d, NOXS_STATE_INITWAIT);
        }
        break;
    case NOXS_STATE_INITIALISED:
    case NOXS_STATE_CONNECTED:
        if (!x->connected && (own == NOXS_STATE_INITWAIT || x->resuming))
            try_connect(b, x);
        x->resuming = 0;
        if (x->connected)
            liveness_sync(b, x);
        break;
    case NOXS_STATE_CLOSING:
        end_session(b, x, 0);
        if (own != NOXS_STATE_CLOSED)
            noxs_dev_switch_state(d, NOXS_STATE_CLOSING);
        break;
    case NOXS_STATE_CLOSED:
        end_session(b, x, 0);
        noxs_dev_switch_state(d, NOXS_STATE_CLOSED);
        break;
    default:
        break;
    }
}

void bk_walk(noxs_backend *b, struct bdev *x, int changed)
{
    noxs_dev *d = x->d;

    if (!walking(b))
        return;
    if (changed)
        walk_state(b, x);
    if (!x->connected || noxs_i_liveness_peer_alive(d))
        return;
    noxs_i_info("noxs backend: domain %u device %u/%u: the frontend died",
                noxs_dev_frontend_domid(d), noxs_dev_type(d), noxs_dev_id(d));
    x->peer_died = 1;
    end_session(b, x, ECONNRESET);
    noxs_dev_switch_state(d, NOXS_STATE_CLOSING);
    noxs_dev_switch_state(d, NOXS_STATE_CLOSED);
}

void bk_walk_remove(noxs_backend *b, struct bdev *x)
{
    if (walking(b))
        end_session(b, x, ENODEV);
}

void bk_walk_resume(noxs_backend *b)
{
    struct bdev *x;

    for (x = b->all; x; x = x->next) {
        noxs_dev *d = x->d;

        if (b->ops->resume)
            b->ops->resume(b, d, b->arg);
        /* Killed inside create, after its record was made: finish what
         * create's caller would have published. */
        if (walking(b) && noxs_dev_state(d) == NOXS_STATE_INITIALISING)
            noxs_dev_switch_state(d, NOXS_STATE_INITWAIT);
        if (!walking(b) || noxs_dev_state(d) != NOXS_STATE_CONNECTED)
            continue;
        /* The session goes on: connect picks it up on the frontend's
         * half as it is now. A torn half is no reason to start over: its
         * next event reads it again and connects then. */
        x->resuming = 1;
        if (noxs_dev_refresh(d) >= 0)
            bk_walk(b, x, 1);
    }
}
