/*
 * Start and stop: the store replayed into the registry, the keeper's
 * pages reconciled with it, store compaction and --rebuild-store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noxsd.h"
#include "proto.h"

int broker_compact(void)
{
    struct reg_domain_info *info = malloc(sizeof(*info));
    uint16_t *ids = malloc((NOXS_DOMID_MAX + 1) * sizeof(*ids));
    size_t n, i;
    uint32_t j;
    int rc = -ENOMEM;

    if (!info || !ids || (rc = store_compact_begin(broker.store)) < 0) {
        log_warnx("store: cannot start compaction: %s", strerror(-rc));
        goto out;
    }
    n = registry_domids(broker.reg, ids, NOXS_DOMID_MAX + 1);
    for (i = 0; i < n; i++) {
        struct store_rec r = {.op = STORE_DOMAIN_ADD};

        if (registry_domain_get(broker.reg, ids[i], info) < 0)
            continue;
        r.domid = info->domid;
        r.owner_domid = info->owner_domid;
        r.gref = info->gref;
        r.port = info->port;
        if ((rc = store_compact_put(broker.store, &r)) < 0)
            goto fail;
        for (j = 0; j < info->ndevs; j++) {
            const struct reg_dev *d = &info->devs[j];
            struct store_rec v = {.op = STORE_DEV_ADD,
                                  .domid = info->domid,
                                  .type = d->type,
                                  .devid = d->devid,
                                  .backend_domid = d->backend_domid,
                                  .gref = d->control_gref,
                                  .port = d->backend_port};
            if ((rc = store_compact_put(broker.store, &v)) < 0)
                goto fail;
        }
    }
    if ((rc = store_compact_end(broker.store)) < 0)
        goto fail;
    log_debug("store: compacted (%zu domains)", n);
    goto out;
fail:
    log_warnx("store: compaction failed: %s", strerror(-rc));
    store_compact_abort(broker.store);
out:
    free(info);
    free(ids);
    return rc;
}

/* ---------------------------------------------------------------- */
/* Start-up: replay the store, reconcile with the keeper             */

/*
 * One replayed record (its fields already checked by the store). A record
 * that cannot be applied to what precedes it is damage: the store stops
 * there and says so (broker_init then decides).
 */
static int apply(const struct store_rec *r, void *arg)
{
    struct reg_dev d = {0};
    int rc;

    (void)arg;
    switch (r->op) {
    case STORE_DOMAIN_ADD:
        registry_domain_remove(broker.reg, r->domid);
        return registry_domain_add(broker.reg, r->domid, r->owner_domid,
                                   r->gref, r->port);
    case STORE_DOMAIN_DEL:
        registry_domain_remove(broker.reg, r->domid);
        return 0;
    case STORE_DEV_ADD:
        d = live_dev(r->type, r->devid, r->backend_domid, r->gref, r->port);
        /* -ENOENT: no such domain; -ENOSPC: its page is full. */
        return registry_dev_put(broker.reg, r->domid, &d);
    case STORE_DEV_DEL:
        rc = registry_dev_remove(broker.reg, r->domid, r->type, r->devid);
        return rc == -ENOENT ? 0 : rc; /* removing what is gone is no harm */
    default:
        return -EINVAL;
    }
}

struct reconcile {
    uint8_t *alive; /* per domid */
    unsigned int rewritten, orphans, recreated;
};

static int reconcile_fn(const struct keeper_msg *page, void *arg)
{
    struct reconcile *rc = arg;
    uint32_t i;
    int same;

    if (registry_domain_get(broker.reg, page->domid, broker.info) < 0 ||
        broker.info->gref != page->gref || broker.info->port != page->port) {
        /* Created but never acknowledged: nobody knows its bootstrap. */
        log_info("keeper has an unacknowledged page for domain %u; "
                 "destroying it",
                 page->domid);
        if (keeper_page_destroy(broker.keeper, page->domid) == -EPIPE)
            keeper_lost(-EPIPE);
        rc->orphans++;
        return 0;
    }
    rc->alive[page->domid] = 1;
    /* A torn page (a writer killed mid-write) is rewritten whatever it
     * held: that also closes its seqlock, which readers wait on. */
    same = !(page->flags & KEEPER_F_TORN) &&
           page->count == broker.info->ndevs;
    for (i = 0; same && i < page->count; i++) {
        const struct noxs_devpage_entry *e = &page->entries[i];
        const struct reg_dev *d = &broker.info->devs[i];
        same = e->type == d->type && e->devid == d->devid &&
               e->backend_domid == d->backend_domid &&
               e->control_gref == d->control_gref &&
               e->backend_port == d->backend_port &&
               e->flags == NOXS_DEVPAGE_ENTRY_VALID;
    }
    if (!same) {
        write_page(page->domid);
        rc->rewritten++;
    }
    return 0;
}

/*
 * The store knows domid but the keeper, which has served earlier workers,
 * has no page for it. The ordering rules make that impossible (the page is
 * created before the store records the domain and destroyed after it
 * records the removal), so this is a defence, not a path we expect: a
 * domain acknowledged to the toolstack is not forgotten while the keeper
 * lives. It gets a new page (new reference: the toolstack reads it with
 * DOMAIN_CREATE/EEXIST or DOMAIN_LIST), recorded as DOMAIN_ADD followed by
 * its devices so that a replay rebuilds it even before the next compaction.
 */
static int recreate_page(uint16_t domid)
{
    struct reg_domain_info *info = malloc(sizeof(*info));
    struct store_rec r = {.op = STORE_DOMAIN_ADD, .domid = domid};
    uint32_t gref, port, j;
    int rc;

    if (!info || registry_domain_get(broker.reg, domid, info) < 0) {
        free(info);
        return -ENOMEM;
    }
    rc = keeper_page_create(broker.keeper, domid, &gref, &port);
    if (rc == -EPIPE)
        keeper_lost(rc);
    if (rc < 0)
        goto out;
    log_warnx("domain %u: the keeper (which outlived the last worker) has "
              "no page for it; recreated it (gref %u, port %u)",
              domid, gref, port);
    r.owner_domid = info->owner_domid;
    r.gref = gref;
    r.port = port;
    if ((rc = store_append(broker.store, &r)) < 0)
        goto out;
    for (j = 0; j < info->ndevs && rc == 0; j++)
        rc = store_dev(STORE_DEV_ADD, domid, &info->devs[j]);
    if (rc < 0)
        goto out;
    registry_domain_remove(broker.reg, domid);
    registry_domain_add(broker.reg, domid, info->owner_domid, gref, port);
    for (j = 0; j < info->ndevs; j++)
        registry_dev_put(broker.reg, domid, &info->devs[j]);
    if (info->ndevs)
        write_page(domid);
out:
    free(info);
    return rc;
}

/*
 * The keeper's pages, counted, or (take) made the registry: the keeper is
 * the other copy of what the guests have, and the one their pages are.
 */
struct census {
    int take;
    unsigned int pages, devices, skipped;
};

static int census_fn(const struct keeper_msg *page, void *arg)
{
    struct census *c = arg;
    struct reg_dev d;
    uint32_t i;
    int rc;

    c->pages++;
    if (!c->take)
        return 0;
    /* What the store will be asked to hold must pass its own checks. */
    if (page->domid > NOXS_DOMID_MAX || page->gref < NOXS_GREF_MIN ||
        page->port == 0 || page->port > NOXS_PORT_MAX) {
        log_warnx("keeper: page of domain %u has gref %u port %u; cannot "
                  "keep it",
                  page->domid, page->gref, page->port);
        return -EPROTO;
    }
    if ((rc = registry_domain_add(broker.reg, page->domid, broker.o->domid,
                                  page->gref, page->port)) < 0)
        return rc;
    for (i = 0; i < page->count; i++) {
        const struct noxs_devpage_entry *e = &page->entries[i];

        if (!(e->flags & NOXS_DEVPAGE_ENTRY_VALID) || e->type < 1 ||
            e->type > NOXS_DEV_TYPE_MAX || e->backend_domid > NOXS_DOMID_MAX ||
            e->control_gref < NOXS_GREF_MIN || e->backend_port == 0 ||
            e->backend_port > NOXS_PORT_MAX) {
            log_warnx("keeper: domain %u: skipping entry %u (type %u, devid "
                      "%u)",
                      page->domid, i, e->type, e->devid);
            c->skipped++;
            continue;
        }
        /* A removal that was under way is taken back: as after a crash,
         * the backend's next re-sync says whether the device is still
         * there. */
        d = live_dev(e->type, e->devid, e->backend_domid, e->control_gref,
                     e->backend_port);
        if ((rc = registry_dev_put(broker.reg, page->domid, &d)) < 0)
            return rc;
        c->devices++;
    }
    return 0;
}

static void broker_alloc(const struct noxsd_opts *o)
{
    broker.o = o;
    broker.start_ms = now_ms();
    broker.buf = malloc(sizeof(*broker.buf));
    broker.info = malloc(sizeof(*broker.info));
    if (!broker.buf || !broker.info)
        fatalx("out of memory");
    registry_thread_online();
    if ((broker.reg = registry_new()) == NULL)
        fatal("registry");
}

static void connect_keeper(const struct noxsd_opts *o)
{
    struct keeper_opts ko = {.state_dir = o->state_dir,
                             .owner_domid = o->domid,
                             .foreground = o->foreground,
                             .verbose = o->verbose};

    memcpy(ko.fds, o->keeper_fds, sizeof(ko.fds));
    if ((broker.keeper = keeper_connect(&ko, o->self_exe)) == NULL)
        fatal("cannot reach or start the page keeper");
    log_info("page keeper pid %d (worker restarts %u, keepers %u)",
             (int)keeper_pid(broker.keeper), keeper_restarts(broker.keeper),
             keeper_generations(broker.keeper));
    keeper_store_fds(broker.keeper);
}

/*
 * A damaged store, or none at all: is there anything it could hurt? The
 * reconciliation below destroys every keeper page the store does not
 * know and rewrites every page whose entries differ, which is right
 * only if the store is whole. So with pages in the keeper we stop here,
 * touching neither the pages nor the store's files; the operator looks
 * at the file and rebuilds the store from the keeper (noxsd
 * --rebuild-store), which loses nothing. Without pages there is nothing
 * to lose (a keeper started afresh forgets every domain anyway): the
 * damaged files are set aside and the worker starts empty. Starting
 * read-only instead would leave backends unsynchronised and every
 * mutation refused for as long as nobody looks, which is the same
 * outage with less said about it.
 */
static void check_unsafe_store(const struct noxsd_opts *o)
{
    const char *damage = store_damage(broker.store);
    struct census c = {0};
    int err;

    if (!damage && !store_is_new(broker.store))
        return;
    if ((err = keeper_dump(broker.keeper, census_fn, &c)) < 0)
        fatalx("keeper dump: %s", strerror(-err));
    if (c.pages > 0 && damage)
        fatalx("store in %s is damaged: %s. The page keeper holds %u device "
               "page(s) of running guests, which reconciling with this "
               "store could destroy or rewrite: refusing to start (pages and "
               "store left untouched). Keep a copy of the file, then run "
               "'noxsd --rebuild-store --state-dir %s' to rebuild the store "
               "from the keeper's pages, and start noxsd again",
               o->state_dir, damage, c.pages, o->state_dir);
    if (c.pages > 0)
        fatalx("store in %s is missing (no state.snap or state.log), but the "
               "page keeper holds %u device page(s) of running guests, "
               "which reconciling with an empty store would destroy: "
               "refusing to start (pages left untouched). Run 'noxsd "
               "--rebuild-store --state-dir %s' to rebuild the store from "
               "the keeper's pages, and start noxsd again",
               o->state_dir, c.pages, o->state_dir);
    if (damage) {
        log_warnx("store in %s is damaged: %s. The page keeper holds no "
                  "device page, so nothing that still exists is lost: "
                  "starting with an empty registry",
                  o->state_dir, damage);
        /* Drop what was replayed before the damage was found. */
        registry_free(broker.reg);
        if ((broker.reg = registry_new()) == NULL)
            fatal("registry");
    }
    if ((err = store_reset(broker.store)) < 0)
        fatalx("store in %s: cannot start a new store: %s", o->state_dir,
               strerror(-err));
}

int broker_init(const struct noxsd_opts *o)
{
    struct reconcile rc = {0};
    uint16_t *ids;
    size_t n, i;
    int err, fresh;

    broker_alloc(o);
    rc.alive = calloc(NOXS_DOMID_MAX + 1, 1);
    ids = malloc((NOXS_DOMID_MAX + 1) * sizeof(*ids));
    if (!rc.alive || !ids)
        fatalx("out of memory");
    if ((broker.store = store_open(o->state_dir, apply, NULL)) == NULL)
        fatal("store in %s", o->state_dir);
    if (!store_damage(broker.store))
        log_info("store: %llu records replayed: %zu domains, %zu devices",
                 (unsigned long long)store_records_replayed(broker.store),
                 registry_ndomains(broker.reg), registry_ndevices(broker.reg));

    connect_keeper(o);
    check_unsafe_store(o);
    if ((err = keeper_dump(broker.keeper, reconcile_fn, &rc)) < 0)
        fatalx("keeper dump: %s", strerror(-err));
    fresh = keeper_restarts(broker.keeper) == 0;
    n = registry_domids(broker.reg, ids, NOXS_DOMID_MAX + 1);
    for (i = 0; i < n; i++) {
        struct store_rec r = {.op = STORE_DOMAIN_DEL, .domid = ids[i]};

        if (rc.alive[ids[i]])
            continue;
        if (!fresh && recreate_page(ids[i]) == 0) {
            rc.recreated++;
            continue;
        }
        log_warnx("domain %u: its device page is gone (the keeper was "
                  "restarted); forgetting the domain",
                  ids[i]);
        store_append(broker.store, &r);
        registry_domain_remove(broker.reg, ids[i]);
    }
    if (rc.rewritten || rc.orphans || rc.recreated)
        log_info("reconciled: %u page(s) rewritten, %u orphan(s) destroyed, "
                 "%u recreated",
                 rc.rewritten, rc.orphans, rc.recreated);
    free(rc.alive);
    free(ids);
    broker_compact();
    return 0;
}

int broker_rebuild_store(const struct noxsd_opts *o)
{
    struct census c = {.take = 1};
    const char *damage;
    int err;

    broker_alloc(o);
    /* Only checked (no apply): the keeper is the source here. */
    if ((broker.store = store_open(o->state_dir, NULL, NULL)) == NULL) {
        log_warn("store in %s", o->state_dir);
        return -1;
    }
    if ((damage = store_damage(broker.store)) != NULL)
        log_warnx("store in %s is damaged: %s", o->state_dir, damage);
    else
        log_info("store in %s: no damage found; rebuilding it as asked",
                 o->state_dir);
    connect_keeper(o);
    if ((err = keeper_dump(broker.keeper, census_fn, &c)) < 0) {
        log_warnx("keeper dump: %s", strerror(-err));
        return -1;
    }
    if ((err = store_reset(broker.store)) < 0) {
        log_warnx("store in %s: cannot start a new store: %s", o->state_dir,
                  strerror(-err));
        return -1;
    }
    if (broker_compact() < 0)
        return -1;
    log_info("store in %s rebuilt from the page keeper: %u domain(s), %u "
             "device(s)%s",
             o->state_dir, c.pages, c.devices,
             c.skipped ? " (some entries skipped, see above)" : "");
    return 0;
}

void broker_cleanup(void)
{
    struct pending *p;
    struct destroy *d;
    struct sync_state *s;

    while ((p = broker.pending) != NULL) {
        broker.pending = p->next;
        free(p);
    }
    while ((d = broker.destroys) != NULL) {
        broker.destroys = d->next;
        free(d);
    }
    while ((s = broker.backends) != NULL) {
        broker.backends = s->next;
        free(s->seen);
        free(s);
    }
    while ((s = broker.departed) != NULL) {
        broker.departed = s->next;
        free(s);
    }
    store_close(broker.store);
    keeper_disconnect(broker.keeper);
    registry_free(broker.reg);
    free(broker.buf);
    free(broker.info);
}
