/*
 * The registry: domid -> device page and its entries; (backend domid,
 * type) -> backend connection.
 *
 * Two liburcu lock-free hash tables (cds_lfht, urcu-memb flavour).
 * Lookups run under the RCU read side and never block or take a lock.
 * Updates are serialised by one mutex and are copy-on-write: a domain's
 * node is never modified once published; a change allocates a new node,
 * cds_lfht_replace()s the old one and frees it with call_rcu() after a
 * grace period. Readers therefore always see a consistent domain (its
 * entry table and its header together) and copy it out before leaving the
 * read side, so no pointer into the table escapes this file.
 *
 * ThreadSanitizer cannot see the ordering RCU provides (liburcu is not
 * instrumented), so under TSan each node carries explicit happens-before
 * annotations: publish (release) before insertion, acquire when a reader
 * matches it, release when the reader is done, acquire before the free.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "noxsd.h"

#if defined(__SANITIZE_THREAD__)
#define NOXS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NOXS_TSAN 1
#endif
#endif

#ifdef NOXS_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define TSAN_ACQUIRE(p) ((void)(p))
#define TSAN_RELEASE(p) ((void)(p))
#endif

/*
 * A domain's node holds only the devices it has: the node is replaced on
 * every change anyway, so it is allocated for its ndevs, not for the
 * page's NOXS_DEVPAGE_MAX_ENTRIES (which made every domain cost 2.6 KiB
 * of heap, one device or a hundred). info is therefore cut short after
 * info.devs[info.ndevs - 1]: it is only ever copied by INFO_SIZE().
 */
struct reg_domain {
    struct cds_lfht_node node;
    struct rcu_head rcu;
    struct reg_domain_info info; /* last */
};

#define INFO_SIZE(ndevs)                      \
    (offsetof(struct reg_domain_info, devs) + \
     (size_t)(ndevs) * sizeof(struct reg_dev))

struct reg_backend {
    struct cds_lfht_node node;
    struct rcu_head rcu;
    uint32_t key; /* domid << 16 | type */
    uint64_t conn;
};

struct registry {
    struct cds_lfht *domains;
    struct cds_lfht *backends;
    pthread_mutex_t lock;
    struct reg_domain_info *scratch; /* update_domain()'s, under lock */
    atomic_size_t ndomains;
    atomic_size_t ndevices;
    atomic_size_t nbackends;
};

static unsigned long hash32(uint32_t x)
{
    /* A multiplicative mix is plenty for small integer keys. */
    uint64_t h = (uint64_t)x * 0x9e3779b97f4a7c15ull;
    return (unsigned long)(h ^ (h >> 29));
}

static int match_domain(struct cds_lfht_node *node, const void *key)
{
    struct reg_domain *d = caa_container_of(node, struct reg_domain, node);

    int match;

    TSAN_ACQUIRE(d);
    match = d->info.domid == *(const uint16_t *)key;
    TSAN_RELEASE(d);
    return match;
}

static int match_backend(struct cds_lfht_node *node, const void *key)
{
    struct reg_backend *b = caa_container_of(node, struct reg_backend, node);

    int match;

    TSAN_ACQUIRE(b);
    match = b->key == *(const uint32_t *)key;
    TSAN_RELEASE(b);
    return match;
}

static void free_domain_rcu(struct rcu_head *head)
{
    struct reg_domain *d = caa_container_of(head, struct reg_domain, rcu);

    TSAN_ACQUIRE(d);
    free(d);
}

static void free_backend_rcu(struct rcu_head *head)
{
    struct reg_backend *b = caa_container_of(head, struct reg_backend, rcu);

    TSAN_ACQUIRE(b);
    free(b);
}

/* Hand a node unlinked by the writer to call_rcu for freeing. */
static void retire_domain(struct reg_domain *d)
{
    TSAN_RELEASE(d);
    urcu_memb_call_rcu(&d->rcu, free_domain_rcu);
}

static void retire_backend(struct reg_backend *b)
{
    TSAN_RELEASE(b);
    urcu_memb_call_rcu(&b->rcu, free_backend_rcu);
}

void registry_thread_online(void)
{
    urcu_memb_register_thread();
}

void registry_thread_offline(void)
{
    urcu_memb_unregister_thread();
}

struct registry *registry_new(void)
{
    struct registry *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->domains = cds_lfht_new_flavor(64, 64, 0,
                                     CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                     &urcu_memb_flavor, NULL);
    r->backends =
        cds_lfht_new_flavor(16, 16, 0, CDS_LFHT_AUTO_RESIZE,
                            &urcu_memb_flavor, NULL);
    r->scratch = malloc(sizeof(*r->scratch));
    if (!r->domains || !r->backends || !r->scratch) {
        registry_free(r);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

static void retire_domain_node(struct cds_lfht_node *node)
{
    retire_domain(caa_container_of(node, struct reg_domain, node));
}

static void retire_backend_node(struct cds_lfht_node *node)
{
    retire_backend(caa_container_of(node, struct reg_backend, node));
}

/* Unlink every node of ht (if any) and retire it. */
static void drain(struct cds_lfht *ht,
                  void (*retire)(struct cds_lfht_node *node))
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;

    if (!ht)
        return;
    urcu_memb_read_lock();
    cds_lfht_for_each(ht, &it, node)
    {
        if (cds_lfht_del(ht, node) == 0)
            retire(node);
    }
    urcu_memb_read_unlock();
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    drain(r->domains, retire_domain_node);
    drain(r->backends, retire_backend_node);
    urcu_memb_barrier(); /* run the frees queued above */
    if (r->domains)
        cds_lfht_destroy(r->domains, NULL);
    if (r->backends)
        cds_lfht_destroy(r->backends, NULL);
    pthread_mutex_destroy(&r->lock);
    free(r->scratch);
    free(r);
}

/* Call with the read lock held. */
static struct reg_domain *find_domain(struct registry *r, uint16_t domid)
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;

    cds_lfht_lookup(r->domains, hash32(domid), match_domain, &domid, &it);
    node = cds_lfht_iter_get_node(&it);
    return node ? caa_container_of(node, struct reg_domain, node) : NULL;
}

static int find_dev(const struct reg_domain_info *info, uint16_t type,
                    uint32_t devid)
{
    uint32_t i;

    for (i = 0; i < info->ndevs; i++)
        if (info->devs[i].type == type && info->devs[i].devid == devid)
            return (int)i;
    return -1;
}

/* A node for info, sized for its devices; NULL with errno ENOMEM. */
static struct reg_domain *node_new(const struct reg_domain_info *info)
{
    struct reg_domain *d;

    d = malloc(offsetof(struct reg_domain, info) + INFO_SIZE(info->ndevs));
    if (!d)
        return NULL;
    cds_lfht_node_init(&d->node);
    memcpy(&d->info, info, INFO_SIZE(info->ndevs));
    return d;
}

/*
 * The copy-on-write step shared by every domain update: copy the current
 * node, let edit change the copy, swap it in. Holds r->lock.
 */
static int update_domain(struct registry *r, uint16_t domid,
                         int (*edit)(struct reg_domain_info *, void *),
                         void *arg)
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;
    struct reg_domain *old, *nd;
    uint32_t before;
    int rc;

    pthread_mutex_lock(&r->lock);
    urcu_memb_read_lock();
    cds_lfht_lookup(r->domains, hash32(domid), match_domain, &domid, &it);
    node = cds_lfht_iter_get_node(&it);
    if (!node) {
        rc = -ENOENT;
        goto out;
    }
    old = caa_container_of(node, struct reg_domain, node);
    memcpy(r->scratch, &old->info, INFO_SIZE(old->info.ndevs));
    before = old->info.ndevs;
    if ((rc = edit(r->scratch, arg)) < 0)
        goto out;
    if ((nd = node_new(r->scratch)) == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    TSAN_RELEASE(nd);
    if (cds_lfht_replace(r->domains, &it, hash32(domid), match_domain,
                         &domid, &nd->node) != 0) {
        free(nd); /* cannot happen: replacements are serialised */
        rc = -ENOENT;
        goto out;
    }
    atomic_fetch_add(&r->ndevices, nd->info.ndevs);
    atomic_fetch_sub(&r->ndevices, before);
    retire_domain(old);
out:
    urcu_memb_read_unlock();
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/*
 * Publish node in ht under hash, unless a node matching key is there
 * (-EEXIST), and count it in *count: the writer's side of a table.
 */
static int add_unique(struct registry *r, struct cds_lfht *ht,
                      unsigned long hash,
                      int (*match)(struct cds_lfht_node *, const void *),
                      const void *key, struct cds_lfht_node *node,
                      atomic_size_t *count)
{
    struct cds_lfht_node *ret;

    pthread_mutex_lock(&r->lock);
    urcu_memb_read_lock();
    ret = cds_lfht_add_unique(ht, hash, match, key, node);
    urcu_memb_read_unlock();
    if (ret == node)
        atomic_fetch_add(count, 1);
    pthread_mutex_unlock(&r->lock);
    return ret == node ? 0 : -EEXIST;
}

int registry_domain_add(struct registry *r, uint16_t domid,
                        uint16_t owner_domid, uint32_t gref, uint32_t port)
{
    struct reg_domain_info info = {.domid = domid,
                                   .owner_domid = owner_domid,
                                   .gref = gref,
                                   .port = port};
    struct reg_domain *d;
    int rc;

    if ((d = node_new(&info)) == NULL)
        return -ENOMEM;
    TSAN_RELEASE(d);
    rc = add_unique(r, r->domains, hash32(domid), match_domain, &domid,
                    &d->node, &r->ndomains);
    if (rc < 0)
        free(d);
    return rc;
}

int registry_domain_remove(struct registry *r, uint16_t domid)
{
    struct reg_domain *d;
    int rc = -ENOENT;

    pthread_mutex_lock(&r->lock);
    urcu_memb_read_lock();
    if ((d = find_domain(r, domid)) != NULL &&
        cds_lfht_del(r->domains, &d->node) == 0) {
        atomic_fetch_sub(&r->ndomains, 1);
        atomic_fetch_sub(&r->ndevices, d->info.ndevs);
        retire_domain(d);
        rc = 0;
    }
    urcu_memb_read_unlock();
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static int edit_put(struct reg_domain_info *info, void *arg)
{
    const struct reg_dev *dev = arg;
    int i = find_dev(info, dev->type, dev->devid);

    if (i >= 0) {
        info->devs[i] = *dev;
        return 0;
    }
    if (info->ndevs >= NOXS_DEVPAGE_MAX_ENTRIES)
        return -ENOSPC;
    info->devs[info->ndevs++] = *dev;
    return 0;
}

int registry_dev_put(struct registry *r, uint16_t domid,
                     const struct reg_dev *dev)
{
    return update_domain(r, domid, edit_put, (void *)dev);
}

/* One change to one device of a domain, by update_domain. */
enum dev_edit_kind {
    DEV_REMOVE,
    DEV_SET_STATE,
    DEV_SET_FLAGS,
};
struct dev_edit {
    enum dev_edit_kind what;
    uint16_t type;
    uint32_t devid;
    uint16_t flags;
    uint8_t backend_state, frontend_state;
};

static int edit_dev(struct reg_domain_info *info, void *arg)
{
    const struct dev_edit *e = arg;
    int i = find_dev(info, e->type, e->devid);

    if (i < 0)
        return -ENOENT;
    switch (e->what) {
    case DEV_REMOVE:
        /* Keep the order: the device page lists devices in add order. */
        memmove(&info->devs[i], &info->devs[i + 1],
                (info->ndevs - (uint32_t)i - 1) * sizeof(info->devs[0]));
        info->ndevs--;
        break;
    case DEV_SET_STATE:
        info->devs[i].backend_state = e->backend_state;
        info->devs[i].frontend_state = e->frontend_state;
        break;
    case DEV_SET_FLAGS:
        info->devs[i].flags = e->flags;
        break;
    }
    return 0;
}

int registry_dev_remove(struct registry *r, uint16_t domid, uint16_t type,
                        uint32_t devid)
{
    struct dev_edit e = {.what = DEV_REMOVE, .type = type, .devid = devid};

    return update_domain(r, domid, edit_dev, &e);
}

int registry_dev_set_state(struct registry *r, uint16_t domid, uint16_t type,
                           uint32_t devid, uint8_t backend_state,
                           uint8_t frontend_state)
{
    struct dev_edit e = {.what = DEV_SET_STATE,
                         .type = type,
                         .devid = devid,
                         .backend_state = backend_state,
                         .frontend_state = frontend_state};

    return update_domain(r, domid, edit_dev, &e);
}

int registry_dev_set_flags(struct registry *r, uint16_t domid, uint16_t type,
                           uint32_t devid, uint16_t flags)
{
    struct dev_edit e = {
        .what = DEV_SET_FLAGS, .type = type, .devid = devid, .flags = flags};

    return update_domain(r, domid, edit_dev, &e);
}

static int edit_seen(struct reg_domain_info *info, void *arg)
{
    info->hv_seen = 1;
    memcpy(info->hv_handle, arg, sizeof(info->hv_handle));
    return 0;
}

int registry_domain_set_seen(struct registry *r, uint16_t domid,
                             const uint8_t handle[16])
{
    return update_domain(r, domid, edit_seen, (void *)handle);
}

int registry_domain_seen(struct registry *r, uint16_t domid,
                         uint8_t handle[16])
{
    struct reg_domain *d;
    int rc = -ENOENT;

    urcu_memb_read_lock();
    if ((d = find_domain(r, domid)) != NULL) {
        rc = d->info.hv_seen;
        memcpy(handle, d->info.hv_handle, sizeof(d->info.hv_handle));
        TSAN_RELEASE(d);
    }
    urcu_memb_read_unlock();
    return rc;
}

int registry_domain_get(struct registry *r, uint16_t domid,
                        struct reg_domain_info *out)
{
    struct reg_domain *d;
    int rc = -ENOENT;

    urcu_memb_read_lock();
    if ((d = find_domain(r, domid)) != NULL) {
        memcpy(out, &d->info, INFO_SIZE(d->info.ndevs));
        TSAN_RELEASE(d);
        rc = 0;
    }
    urcu_memb_read_unlock();
    return rc;
}

int registry_dev_get(struct registry *r, uint16_t domid, uint16_t type,
                     uint32_t devid, struct reg_dev *out)
{
    struct reg_domain *d;
    int rc = -ENOENT, i;

    urcu_memb_read_lock();
    if ((d = find_domain(r, domid)) != NULL) {
        if ((i = find_dev(&d->info, type, devid)) >= 0) {
            *out = d->info.devs[i];
            rc = 0;
        }
        TSAN_RELEASE(d);
    }
    urcu_memb_read_unlock();
    return rc;
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

size_t registry_domids(struct registry *r, uint16_t *out, size_t max)
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;
    size_t n = 0;

    urcu_memb_read_lock();
    cds_lfht_for_each(r->domains, &it, node)
    {
        struct reg_domain *d = caa_container_of(node, struct reg_domain, node);

        if (n == max)
            break;
        TSAN_ACQUIRE(d);
        out[n++] = d->info.domid;
        TSAN_RELEASE(d);
    }
    urcu_memb_read_unlock();
    qsort(out, n, sizeof(out[0]), cmp_u16);
    return n;
}

int registry_domain_foreach(struct registry *r,
                            int (*fn)(const struct reg_domain_info *, void *),
                            void *arg)
{
    uint16_t *ids;
    struct reg_domain_info *info;
    size_t n, i;
    int rc = 0;

    ids = malloc((NOXS_DOMID_MAX + 1) * sizeof(*ids));
    info = malloc(sizeof(*info));
    if (!ids || !info) {
        free(ids);
        free(info);
        return -ENOMEM;
    }
    n = registry_domids(r, ids, NOXS_DOMID_MAX + 1);
    for (i = 0; i < n && rc == 0; i++)
        if (registry_domain_get(r, ids[i], info) == 0)
            rc = fn(info, arg);
    free(ids);
    free(info);
    return rc;
}

size_t registry_ndomains(struct registry *r)
{
    return atomic_load(&r->ndomains);
}

size_t registry_ndevices(struct registry *r)
{
    return atomic_load(&r->ndevices);
}

static uint32_t backend_key(uint16_t domid, uint16_t type)
{
    return (uint32_t)domid << 16 | type;
}

int registry_backend_add(struct registry *r, uint16_t domid, uint16_t type,
                         uint64_t conn)
{
    struct reg_backend *b = calloc(1, sizeof(*b));
    uint32_t key = backend_key(domid, type);

    if (!b)
        return -ENOMEM;
    b->key = key;
    b->conn = conn;
    cds_lfht_node_init(&b->node);
    TSAN_RELEASE(b);
    if (add_unique(r, r->backends, hash32(key), match_backend, &key,
                   &b->node, &r->nbackends) < 0) {
        free(b);
        return -EADDRINUSE;
    }
    return 0;
}

/* Call with the read lock held. */
static struct reg_backend *find_backend(struct registry *r, uint16_t domid,
                                        uint16_t type)
{
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;
    uint32_t key = backend_key(domid, type);

    cds_lfht_lookup(r->backends, hash32(key), match_backend, &key, &it);
    node = cds_lfht_iter_get_node(&it);
    return node ? caa_container_of(node, struct reg_backend, node) : NULL;
}

int registry_backend_remove(struct registry *r, uint16_t domid, uint16_t type,
                            uint64_t conn)
{
    struct reg_backend *b;
    int rc = -ENOENT;

    pthread_mutex_lock(&r->lock);
    urcu_memb_read_lock();
    if ((b = find_backend(r, domid, type)) != NULL && b->conn == conn &&
        cds_lfht_del(r->backends, &b->node) == 0) {
        atomic_fetch_sub(&r->nbackends, 1);
        retire_backend(b);
        rc = 0;
    }
    urcu_memb_read_unlock();
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int registry_backend_get(struct registry *r, uint16_t domid, uint16_t type,
                         uint64_t *conn)
{
    struct reg_backend *b;
    int rc = -ENODEV;

    urcu_memb_read_lock();
    if ((b = find_backend(r, domid, type)) != NULL) {
        *conn = b->conn;
        TSAN_RELEASE(b);
        rc = 0;
    }
    urcu_memb_read_unlock();
    return rc;
}

size_t registry_nbackends(struct registry *r)
{
    return atomic_load(&r->nbackends);
}
