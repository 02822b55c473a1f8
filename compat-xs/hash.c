/*
 * A chained hash table with intrusive entries (private.h, cxs_htab),
 * and cxs_grow, the growable array behind every other table.
 *
 * The table only knows hashes: callers walk the entries of one hash
 * (cxs_htab_find / cxs_htab_next) and compare their own keys. Entries of
 * one hash stay in insertion order, newest first, also across growth, so
 * a chain can stand in for a newest-first list of everything with that
 * key (ctx.c's devices of one frontend domain).
 *
 * Keys are domain ids, paths and tokens this process chose or noxsd
 * reported, never bytes a peer wrote into a page, so an unkeyed hash is
 * enough. Growth is best effort: when memory is short the chains only
 * get longer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

int cxs_grow(void *vp, size_t *cap, size_t n, size_t size)
{
    void *v, *nv;
    size_t c;

    if (n < *cap)
        return 0;
    c = *cap ? *cap * 2 : 16;
    if (c < *cap || c > SIZE_MAX / size)
        return -ENOMEM;
    /* *vp is some T *: read and store it as bytes, not through a void *
     * lvalue. */
    memcpy(&v, vp, sizeof(v));
    nv = realloc(v, c * size);
    if (!nv)
        return -ENOMEM;
    memcpy(vp, &nv, sizeof(nv));
    *cap = c;
    return 0;
}

uint64_t cxs_hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 0x100000001b3u;
    return cxs_hash_u64(h);
}

uint64_t cxs_hash_u64(uint64_t v)
{
    /* splitmix64's finaliser: every input bit reaches the low bits. */
    v ^= v >> 30;
    v *= 0xbf58476d1ce4e5b9u;
    v ^= v >> 27;
    v *= 0x94d049bb133111ebu;
    v ^= v >> 31;
    return v;
}

static struct cxs_hent **bucket(const struct cxs_htab *t, uint64_t hash)
{
    return &t->b[hash & (t->nb - 1)];
}

struct cxs_hent *cxs_htab_find(const struct cxs_htab *t, uint64_t hash)
{
    struct cxs_hent *e;

    if (!t->b)
        return NULL;
    for (e = *bucket(t, hash); e && e->hash != hash; e = e->next)
        ;
    return e;
}

struct cxs_hent *cxs_htab_next(const struct cxs_hent *e, uint64_t hash)
{
    for (e = e->next; e && e->hash != hash; e = e->next)
        ;
    return (struct cxs_hent *)e;
}

/* Double the buckets, keeping each chain's relative order. */
static void grow(struct cxs_htab *t)
{
    size_t nb = t->nb * 2;
    struct cxs_hent **b = calloc(nb, sizeof(*b));
    struct cxs_hent ***tails = malloc(nb * sizeof(*tails));

    if (!b || !tails) {
        free(b);
        free(tails);
        return;
    }
    for (size_t i = 0; i < nb; i++)
        tails[i] = &b[i];
    for (size_t i = 0; i < t->nb; i++) {
        struct cxs_hent *e = t->b[i];
        while (e) {
            struct cxs_hent *next = e->next;
            size_t k = e->hash & (nb - 1);
            e->next = NULL;
            *tails[k] = e;
            tails[k] = &e->next;
            e = next;
        }
    }
    free(tails);
    free(t->b);
    t->b = b;
    t->nb = nb;
}

int cxs_htab_add(struct cxs_htab *t, struct cxs_hent *e, uint64_t hash)
{
    struct cxs_hent **b;

    if (!t->b) {
        t->b = calloc(16, sizeof(*t->b));
        if (!t->b)
            return -ENOMEM;
        t->nb = 16;
    } else if (t->n >= t->nb) {
        grow(t);
    }
    b = bucket(t, hash);
    e->hash = hash;
    e->next = *b;
    *b = e;
    t->n++;
    return 0;
}

void cxs_htab_del(struct cxs_htab *t, struct cxs_hent *e)
{
    if (!t->b)
        return;
    for (struct cxs_hent **pp = bucket(t, e->hash); *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            e->next = NULL;
            t->n--;
            return;
        }
}

void cxs_htab_free(struct cxs_htab *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}
