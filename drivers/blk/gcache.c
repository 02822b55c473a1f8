/*
 * The data pages of requests (ring thread).
 *
 * Data pages are mapped one request at a time, with ONE batched
 * xengnttab_map_domain_grant_refs call for all of a request's pages that
 * are not mapped yet (a "chunk"; the simulator makes it one mmap when the
 * refs are contiguous). With feature-persistent the chunk stays mapped,
 * its refs in an open-addressing table, its chunk in an LRU list. The
 * pages kept mapped by all devices together are bounded by max_grants
 * (--max-grants, default 16384, well under vm.max_map_count = 65530
 * mappings per process); each connected device may keep its fair share,
 * max_grants / connected devices, and evicts its least recently used
 * chunks past that. A chunk that the request being served uses is pinned
 * and never evicted. When nothing can be evicted, the pages are mapped
 * for that request only and unmapped after it.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "blkback.h"


struct gchunk {
    void *addr;
    unsigned int npages;
    unsigned int pinned;        /* segments of the request in service using it */
    struct gchunk *prev, *next; /* LRU: head most recently used */
    uint32_t grefs[NOXS_BLK_MAX_SEGMENTS];
};

static struct gchunk *gcache_find_chunk(struct blkdev *bd, uint32_t gref,
                                        unsigned int *idx)
{
    uint32_t mask = bd->gcache_slots - 1;
    uint32_t i = (gref * 2654435761u) & mask;

    for (;;) {
        struct gcache_entry *e = &bd->gcache[i];

        if (e->gref == 0)
            return NULL;
        if (e->gref == gref) {
            *idx = e->idx;
            return e->chunk;
        }
        i = (i + 1) & mask;
    }
}

static void gcache_insert(struct blkdev *bd, uint32_t gref,
                          struct gchunk *c, unsigned int idx)
{
    uint32_t mask = bd->gcache_slots - 1;
    uint32_t i = (gref * 2654435761u) & mask;

    while (bd->gcache[i].gref != 0)
        i = (i + 1) & mask;
    bd->gcache[i].gref = gref;
    bd->gcache[i].chunk = c;
    bd->gcache[i].idx = idx;
}

/*
 * Room in the table for n more refs, at most half full: it starts small
 * and doubles as the cache grows (a table for the whole budget, 2 x
 * --max-grants entries, was 512 KiB, and a mapping of its own, for every
 * device however little it caches). false: no memory for a bigger one
 * (the pages are then mapped for one request).
 */
static bool gcache_reserve(struct blkdev *bd, unsigned int n)
{
    uint32_t slots = bd->gcache_slots;
    struct gcache_entry *old = bd->gcache, *t;

    while (2 * (bd->gcache_used + n) > slots)
        slots <<= 1;
    if (slots == bd->gcache_slots)
        return true;
    t = calloc(slots, sizeof(*t));
    if (t == NULL)
        return false;
    bd->gcache = t;
    bd->gcache_slots = slots;
    for (struct gchunk *c = bd->lru_head; c != NULL; c = c->next)
        for (unsigned int k = 0; k < c->npages; k++)
            gcache_insert(bd, c->grefs[k], c, k);
    free(old);
    return true;
}

/* Linear probing delete with backward shift (no tombstones). */
static void gcache_remove(struct blkdev *bd, uint32_t gref)
{
    uint32_t mask = bd->gcache_slots - 1;
    uint32_t i = (gref * 2654435761u) & mask, j;

    while (bd->gcache[i].gref != gref) {
        if (bd->gcache[i].gref == 0)
            return;
        i = (i + 1) & mask;
    }
    j = i;
    for (;;) {
        uint32_t home;

        bd->gcache[i].gref = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (bd->gcache[j].gref == 0)
                return;
            home = (bd->gcache[j].gref * 2654435761u) & mask;
            /* Move j to i unless its home lies cyclically in (i, j]. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                continue;
            break;
        }
        bd->gcache[i] = bd->gcache[j];
        i = j;
    }
}

static void lru_unlink(struct blkdev *bd, struct gchunk *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        bd->lru_head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        bd->lru_tail = c->prev;
    c->prev = c->next = NULL;
}

static void lru_push_head(struct blkdev *bd, struct gchunk *c)
{
    c->prev = NULL;
    c->next = bd->lru_head;
    if (bd->lru_head != NULL)
        bd->lru_head->prev = c;
    bd->lru_head = c;
    if (bd->lru_tail == NULL)
        bd->lru_tail = c;
}

static void chunk_drop(struct blkdev *bd, struct gchunk *c)
{
    lru_unlink(bd, c);
    for (unsigned int i = 0; i < c->npages; i++)
        gcache_remove(bd, c->grefs[i]);
    xengnttab_unmap(bd->xgt, c->addr, c->npages);
    bd->gcache_used -= c->npages;
    atomic_fetch_sub(&conf.grants_mapped, c->npages);
    free(c);
}

/* This device's share of the global budget. */
static unsigned int gcache_share(void)
{
    unsigned int n = atomic_load(&conf.persistent_devs);

    return conf.max_grants / (n > 0 ? n : 1);
}

/*
 * Make room for n more cached pages: evict unpinned chunks from the LRU
 * end while this device is over its share or all devices are over the
 * budget. false: no room (the pages are then mapped for one request).
 */
static bool gcache_make_room(struct blkdev *bd, unsigned int n)
{
    unsigned int share = gcache_share();
    struct gchunk *c = bd->lru_tail;

    if (n > share)
        return false;
    while (bd->gcache_used + n > share ||
           atomic_load(&conf.grants_mapped) + n > conf.max_grants) {
        while (c != NULL && c->pinned > 0)
            c = c->prev;
        if (c == NULL)
            return false;
        struct gchunk *prev = c->prev;

        chunk_drop(bd, c);
        bd->nr_evictions++;
        c = prev;
    }
    return true;
}

/* The device's cache for a new connection (bd->persistent set). -1: no
 * memory; gcache_clear() undoes either outcome. */
int gcache_init(struct blkdev *bd)
{
    bd->gcache_slots = 64; /* grows with the cache: gcache_reserve */
    bd->gcache = calloc(bd->gcache_slots, sizeof(*bd->gcache));
    if (bd->persistent) {
        atomic_fetch_add(&conf.persistent_devs, 1);
        bd->counted = true;
    }
    return bd->gcache != NULL ? 0 : -1;
}

void gcache_clear(struct blkdev *bd)
{
    while (bd->lru_head != NULL)
        chunk_drop(bd, bd->lru_head);
    free(bd->gcache);
    bd->gcache = NULL;
    bd->gcache_used = 0;
    if (bd->counted) {
        atomic_fetch_sub(&conf.persistent_devs, 1);
        bd->counted = false;
    }
}


void unmap_segments(struct blkdev *bd, const struct blkreq *r,
                    struct seg_maps *m)
{
    for (unsigned int i = 0; i < r->nr_segments; i++) {
        if (m->pin[i] != NULL)
            m->pin[i]->pinned--;
        m->pin[i] = NULL;
    }
    if (m->temp != NULL) {
        xengnttab_unmap(bd->xgt, m->temp, m->ntemp);
        bd->temp_used -= m->ntemp;
    }
    m->temp = NULL;
    m->ntemp = 0;
}

/*
 * Map the data pages of r: fills addr[i] for each segment, pinning the
 * cached chunks it uses; unmap_segments() undoes it after the I/O.
 *
 * Access follows the request's direction, as Linux blkback's: a write
 * to the disk only reads guest memory, so its pages are mapped
 * read-only and a read-only grant (what a frontend may give for data it
 * sends) is enough; a read from the disk writes guest memory and needs
 * a writable grant (a read-only one answers BADGREF). Mappings kept as
 * persistent grants are read-write, since any later request may use
 * them: a write first tries that, and if the frontend granted its pages
 * read-only they are mapped read-only for this request only.
 */
int map_segments(struct blkdev *bd, const struct blkreq *r,
                 void **addr, struct seg_maps *m)
{
    uint32_t miss[NOXS_BLK_MAX_SEGMENTS];
    unsigned int which[NOXS_BLK_MAX_SEGMENTS], nmiss = 0, last_idx = 0;
    bool to_disk = r->operation == NOXS_BLK_OP_WRITE;
    struct gchunk *c = NULL, *last = NULL;
    void *p = NULL;

    m->temp = NULL;
    m->ntemp = 0;
    for (unsigned int i = 0; i < r->nr_segments; i++)
        m->pin[i] = NULL;
    for (unsigned int i = 0; i < r->nr_segments; i++) {
        uint32_t gref = r->seg[i].gref;
        unsigned int idx, k;

        if (gref < NOXS_GREF_MIN) {
            unmap_segments(bd, r, m);
            return NOXS_BLK_RSP_BADGREF;
        }
        if (bd->persistent) {
            struct gchunk *hit;

            /* A request's pages are mostly the pages of one chunk in
             * order (the same buffer as last time): look at the next
             * page of the previous segment's chunk before the table,
             * whose probes miss the CPU caches (it may hold the whole
             * budget). A ref lives in one chunk only, so a match
             * there is what the table would answer. */
            if (last != NULL && last_idx + 1 < last->npages &&
                last->grefs[last_idx + 1] == gref) {
                hit = last;
                idx = last_idx + 1;
            } else {
                hit = gcache_find_chunk(bd, gref, &idx);
            }
            last = hit;
            if (hit != NULL)
                last_idx = idx;
            if (hit != NULL) {
                hit->pinned++;
                m->pin[i] = hit;
                addr[i] = (char *)hit->addr + (size_t)idx * 4096u;
                if (bd->lru_head != hit) {
                    lru_unlink(bd, hit);
                    lru_push_head(bd, hit);
                }
                continue;
            }
        }
        for (k = 0; k < nmiss && miss[k] != gref; k++)
            ;
        if (k == nmiss)
            miss[nmiss++] = gref;
        which[i] = k;
        addr[i] = NULL;
    }
    if (nmiss == 0)
        return NOXS_BLK_RSP_OKAY;
    if (bd->persistent && gcache_make_room(bd, nmiss) &&
        gcache_reserve(bd, nmiss))
        c = calloc(1, sizeof(*c));
    if (c != NULL) {
        p = xengnttab_map_domain_grant_refs(bd->xgt, nmiss, bd->fe_domid,
                                            miss, PROT_READ | PROT_WRITE);
        bd->nr_maps++;
        if (p == NULL) {
            free(c);
            c = NULL;
            if (!to_disk) {
                unmap_segments(bd, r, m);
                return NOXS_BLK_RSP_BADGREF;
            }
        }
    }
    if (p == NULL) {
        if (bd->temp_used > 0 && bd->temp_used + nmiss > TEMP_MAX) {
            unmap_segments(bd, r, m);
            return MAP_RETRY;
        }
        p = xengnttab_map_domain_grant_refs(
            bd->xgt, nmiss, bd->fe_domid, miss,
            to_disk ? PROT_READ : PROT_READ | PROT_WRITE);
        bd->nr_maps++;
        if (p == NULL) {
            unmap_segments(bd, r, m);
            return NOXS_BLK_RSP_BADGREF;
        }
    }
    if (c != NULL) {
        c->addr = p;
        c->npages = nmiss;
        memcpy(c->grefs, miss, nmiss * sizeof(miss[0]));
        for (unsigned int k = 0; k < nmiss; k++)
            gcache_insert(bd, miss[k], c, k);
        lru_push_head(bd, c);
        bd->gcache_used += nmiss;
        atomic_fetch_add(&conf.grants_mapped, nmiss);
    } else {
        m->temp = p;
        m->ntemp = nmiss;
        bd->temp_used += nmiss;
    }
    for (unsigned int i = 0; i < r->nr_segments; i++) {
        if (addr[i] != NULL)
            continue;
        addr[i] = (char *)p + (size_t)which[i] * 4096u;
        if (c != NULL) {
            c->pinned++;
            m->pin[i] = c;
        }
    }
    return NOXS_BLK_RSP_OKAY;
}
