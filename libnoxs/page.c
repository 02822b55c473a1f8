/*
 * Page access: the seqlock protocol and the validation of <noxs/abi.h>
 * structures.
 *
 * Why atomics everywhere: the pages are shared with another domain that
 * may write them at any moment, including while we copy. A plain memcpy
 * from such memory is a data race (undefined behaviour in C11, reported
 * by TSan, and free for the compiler to tear or re-read). So the reader
 * copies word by word with atomic loads and the writer stores word by
 * word with atomic stores; a torn copy is then merely a stale value that
 * the sequence check throws away, never UB.
 *
 * Ordering: the reader loads seq with acquire, copies with acquire word
 * loads and loads seq again; the writer stores seq odd, stores the words
 * with release and stores seq even with release. Acquire/release on every
 * word (instead of relaxed words plus standalone fences) costs nothing on
 * x86 (plain movs) and keeps TSan, which does not model
 * atomic_thread_fence, exact. If the reader saw any word of a write in
 * progress, the release store of that word orders the odd seq store before
 * it, so the second seq load sees a different value.
 *
 * Writers never read back from the live page: a control-page half is
 * written from the writer's authoritative local copy, and its sequence
 * word is derived from that copy's generation (seq = 2 * generation when
 * settled), so a peer scribbling our half cannot steer our writes. The
 * device page is shared read-only with the guest, so noxsd may read its
 * own seq and generation words back.
 *
 * Validation happens on the private snapshot only, then the snapshot is
 * sanitised (unused slots and bytes zeroed) so callers can never pick up
 * stale bytes beyond the validated counts.
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>

#include "common/spin.h"
#include "private.h"

#define WORD sizeof(uint32_t)
/* Attempts that only pause before the seqlock reader starts yielding. */
#define NOXS_SEQLOCK_SPIN_TRIES 14u

_Static_assert(offsetof(struct noxs_devpage_header, generation) == 28,
               "devpage generation offset");
_Static_assert(offsetof(struct noxs_ctrl_half, generation) == 24,
               "ctrl generation offset");
_Static_assert(sizeof(struct noxs_devpage) % WORD == 0, "devpage words");
_Static_assert(NOXS_CTRL_KV_SIZE % WORD == 0, "kv words");

static inline uint32_t load_word(const void *base, size_t offset, int order)
{
    return __atomic_load_n((const uint32_t *)((const char *)base + offset),
                           order);
}

static inline void store_word(void *base, size_t offset, uint32_t v,
                              int order)
{
    __atomic_store_n((uint32_t *)((char *)base + offset), v, order);
}

/*
 * Copy size bytes (a multiple of 4, 4-aligned) out of live shared memory.
 * The destination is private; memcpy of the loaded word keeps strict
 * aliasing intact whatever the destination's type.
 */
static void copy_in(void *dst, const void *src, size_t size)
{
    for (size_t off = 0; off < size; off += WORD) {
        uint32_t w = load_word(src, off, __ATOMIC_ACQUIRE);
        memcpy((char *)dst + off, &w, WORD);
    }
}

/* Store size bytes into live shared memory, skipping the seq word. */
static void copy_out(void *dst, const void *src, size_t size, size_t skip)
{
    for (size_t off = 0; off < size; off += WORD) {
        uint32_t w;

        if (off == skip)
            continue;
        memcpy(&w, (const char *)src + off, WORD);
        store_word(dst, off, w, __ATOMIC_RELEASE);
    }
}

/*
 * Between attempts: pause at first (a writer on another CPU finishes a
 * 2 KiB write in well under a microsecond), then yield for the last two,
 * so that a writer preempted mid-write on our CPU gets to finish.
 *
 * The budget is small on purpose: the peer decides how long its half
 * stays torn, and every attempt is paid by the reader. With a large
 * budget (hundreds of yields) a guest that leaves its seq odd and keeps
 * notifying made each of the backend's refreshes cost milliseconds,
 * stalling every other device the backend serves. A writer preempted for
 * longer than this (a descheduled vCPU) just makes the read fail with
 * EBUSY; callers retry after a back-off (see noxs_dev_wait and the
 * backend loop), which also covers a peer that never settles.
 */
static void seqlock_backoff(unsigned int tries)
{
    if (tries < NOXS_SEQLOCK_SPIN_TRIES)
        cpu_relax();
    else
        sched_yield();
}

/*
 * Only the used part of a region is copied: a fixed header, then
 * used(header) bytes of body (clamped to the body's size and rounded up
 * to a word), the rest of the destination body zeroed. used() reads the
 * private copy of the header, which the final seq check then vouches for.
 */
struct region {
    size_t seq_off;
    size_t header_size; /* bytes, a multiple of 4 */
    size_t body_size;   /* bytes after the header, a multiple of 4 */
    size_t (*used)(const void *header_copy);
};

/* Take a settled copy of region r at src: 0, or -1/EBUSY after
 * NOXS_SEQLOCK_TRIES attempts. */
static int seqlock_copy(void *dst, const void *src, const struct region *r)
{
    for (unsigned int tries = 0; tries < NOXS_SEQLOCK_TRIES; tries++) {
        uint32_t s1 = load_word(src, r->seq_off, __ATOMIC_ACQUIRE);
        size_t used;

        if (s1 & 1u) {
            seqlock_backoff(tries);
            continue;
        }
        copy_in(dst, src, r->header_size);
        used = r->used(dst);
        if (used > r->body_size)
            used = r->body_size;
        used = (used + WORD - 1) & ~(WORD - 1);
        copy_in((char *)dst + r->header_size,
                (const char *)src + r->header_size, used);
        uint32_t s2 = load_word(src, r->seq_off, __ATOMIC_ACQUIRE);
        if (s1 == s2) {
            memset((char *)dst + r->header_size + used, 0,
                   r->body_size - used);
            return 0;
        }
        seqlock_backoff(tries);
    }
    errno = EBUSY;
    return -1;
}

static inline bool port_ok(uint32_t port)
{
    return port >= 1 && port <= NOXS_PORT_MAX;
}

static inline int proto_error(void)
{
    errno = EPROTO;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Device page                                                         */

NOXS_EXPORT void noxs_devpage_init(void *page, uint16_t domid,
                                   uint16_t owner_domid, uint32_t notify_port)
{
    struct noxs_devpage_header h;

    memset(&h, 0, sizeof(h));
    h.magic = NOXS_DEVPAGE_MAGIC;
    h.version = NOXS_ABI_VERSION;
    h.header_size = sizeof(struct noxs_devpage_header);
    h.domid = domid;
    h.owner_domid = owner_domid;
    h.notify_port = notify_port;
    h.entry_count = 0;
    h.entry_size = sizeof(struct noxs_devpage_entry);
    h.generation = 0;
    /* The page is not shared yet, but keep every store atomic anyway. */
    store_word(page, offsetof(struct noxs_devpage_header, seq), 0,
               __ATOMIC_RELAXED);
    copy_out(page, &h, sizeof(h), offsetof(struct noxs_devpage_header, seq));
    for (size_t off = sizeof(h); off < NOXS_PAGE_SIZE; off += WORD)
        store_word(page, off, 0, __ATOMIC_RELEASE);
}

NOXS_EXPORT int noxs_devpage_write(void *page,
                                   const struct noxs_devpage_entry *entries,
                                   uint32_t count)
{
    const size_t seq_off = offsetof(struct noxs_devpage_header, seq);
    const size_t gen_off = offsetof(struct noxs_devpage_header, generation);
    const size_t count_off = offsetof(struct noxs_devpage_header, entry_count);
    const size_t table = sizeof(struct noxs_devpage_header);
    const size_t esize = sizeof(struct noxs_devpage_entry);

    if (count > NOXS_DEVPAGE_MAX_ENTRIES || (count && !entries)) {
        errno = ENOSPC;
        return -1;
    }
    /* The guest maps this page read-only, so these words are ours. */
    uint32_t seq = load_word(page, seq_off, __ATOMIC_RELAXED);
    uint32_t gen = load_word(page, gen_off, __ATOMIC_RELAXED);
    uint32_t old_count = load_word(page, count_off, __ATOMIC_RELAXED);

    if (seq & 1u)
        seq++; /* a writer died mid-write: keep parity right */
    store_word(page, seq_off, seq + 1, __ATOMIC_RELAXED);
    if (count)
        copy_out((char *)page + table, entries, count * esize, SIZE_MAX);
    /* Clear slots a shorter table leaves behind (and garbage after a
     * crash mid-write), so stale references never linger. */
    if (old_count > NOXS_DEVPAGE_MAX_ENTRIES)
        old_count = NOXS_DEVPAGE_MAX_ENTRIES;
    for (size_t off = table + count * esize; off < table + old_count * esize;
         off += WORD)
        store_word(page, off, 0, __ATOMIC_RELEASE);
    store_word(page, count_off, count, __ATOMIC_RELEASE);
    store_word(page, gen_off, gen + 1, __ATOMIC_RELEASE);
    store_word(page, seq_off, seq + 2, __ATOMIC_RELEASE);
    return 0;
}

NOXS_EXPORT int noxs_devpage_validate(const struct noxs_devpage *p,
                                      uint16_t expect_domid)
{
    const struct noxs_devpage_header *h = &p->hdr;

    if (h->magic != NOXS_DEVPAGE_MAGIC || h->version != NOXS_ABI_VERSION ||
        h->header_size != sizeof(struct noxs_devpage_header) ||
        h->entry_size != sizeof(struct noxs_devpage_entry) ||
        h->entry_count > NOXS_DEVPAGE_MAX_ENTRIES)
        return proto_error();
    if (h->domid > NOXS_DOMID_MAX || h->owner_domid > NOXS_DOMID_MAX ||
        !port_ok(h->notify_port))
        return proto_error();
    if (expect_domid != NOXS_DOMID_ANY_PAGE && h->domid != expect_domid)
        return proto_error();

    for (uint32_t i = 0; i < h->entry_count; i++) {
        const struct noxs_devpage_entry *e = &p->entries[i];

        if (e->flags & ~(NOXS_DEVPAGE_ENTRY_VALID | NOXS_DEVPAGE_ENTRY_CLOSING))
            return proto_error();
        if (!(e->flags & NOXS_DEVPAGE_ENTRY_VALID))
            continue; /* a free slot: its contents mean nothing */
        if (e->type < 1 || e->type > NOXS_DEV_TYPE_MAX ||
            e->backend_domid > NOXS_DOMID_MAX ||
            e->control_gref < NOXS_GREF_MIN || !port_ok(e->backend_port))
            return proto_error();
        /* (type, devid) names one device: a duplicate is ambiguous. */
        for (uint32_t j = 0; j < i; j++) {
            const struct noxs_devpage_entry *o = &p->entries[j];

            if ((o->flags & NOXS_DEVPAGE_ENTRY_VALID) && o->type == e->type &&
                o->devid == e->devid)
                return proto_error();
        }
    }
    return 0;
}

static size_t devpage_used(const void *header_copy)
{
    const struct noxs_devpage_header *h = header_copy;

    /* Clamped by seqlock_copy; an oversized count fails validation. */
    return (size_t)h->entry_count * sizeof(struct noxs_devpage_entry);
}

static const struct region devpage_region = {
    .seq_off = offsetof(struct noxs_devpage_header, seq),
    .header_size = sizeof(struct noxs_devpage_header),
    .body_size = sizeof(struct noxs_devpage) -
                 sizeof(struct noxs_devpage_header),
    .used = devpage_used,
};

NOXS_EXPORT int noxs_devpage_snapshot(const void *page, struct noxs_devpage *out,
                                      uint16_t expect_domid)
{
    if (seqlock_copy(out, page, &devpage_region) < 0)
        return -1;
    if (noxs_devpage_validate(out, expect_domid) < 0)
        return -1;
    /* Sanitise: nothing beyond the count, nothing in free slots. */
    for (uint32_t i = 0; i < NOXS_DEVPAGE_MAX_ENTRIES; i++) {
        if (i >= out->hdr.entry_count ||
            !(out->entries[i].flags & NOXS_DEVPAGE_ENTRY_VALID))
            memset(&out->entries[i], 0, sizeof(out->entries[i]));
    }
    return 0;
}

NOXS_EXPORT uint32_t noxs_devpage_peek_generation(const void *page)
{
    return load_word(page, offsetof(struct noxs_devpage_header, generation),
                     __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------ */
/* Key/value records                                                   */

static inline size_t kv_record_size(size_t key_len, size_t value_len)
{
    return (NOXS_CTRL_KV_RECORD_HEADER + key_len + value_len + 3u) & ~(size_t)3u;
}

static inline bool key_byte_ok(uint8_t c)
{
    return c > 0x20 && c < 0x7f && c != '/';
}

/*
 * Key check shared by the setters and getters: 0, or -errno (EINVAL bad
 * byte or empty, E2BIG too long).
 */
static int key_check(const char *key, size_t *len_out)
{
    size_t len;

    if (!key)
        return -EINVAL;
    len = strnlen(key, NOXS_CTRL_KEY_MAX + 1);
    if (len == 0)
        return -EINVAL;
    if (len > NOXS_CTRL_KEY_MAX)
        return -E2BIG;
    for (size_t i = 0; i < len; i++)
        if (!key_byte_ok((uint8_t)key[i]))
            return -EINVAL;
    *len_out = len;
    return 0;
}

struct kv_record {
    size_t offset; /* of the record header in kv[] */
    size_t size;   /* whole record, padded */
    size_t key_len;
    size_t value_len;
    const uint8_t *key;
    const uint8_t *value;
};

/*
 * Parse the record at *offset of a kv area holding used bytes. Returns 1
 * and advances *offset, 0 at the end, -1 if malformed (any violation of
 * the record format, checked strictly: this is the validator's core).
 */
static int kv_next(const uint8_t *kv, size_t used, size_t *offset,
                   struct kv_record *r)
{
    size_t off = *offset;

    if (off >= used)
        return 0;
    if (used - off < NOXS_CTRL_KV_RECORD_HEADER)
        return -1;
    r->key_len = kv[off];
    r->value_len = (size_t)kv[off + 2] | ((size_t)kv[off + 3] << 8);
    if (r->key_len < 1 || r->key_len > NOXS_CTRL_KEY_MAX || kv[off + 1] != 0 ||
        r->value_len > NOXS_CTRL_VALUE_MAX)
        return -1;
    r->size = kv_record_size(r->key_len, r->value_len);
    if (r->size > used - off)
        return -1;
    r->offset = off;
    r->key = kv + off + NOXS_CTRL_KV_RECORD_HEADER;
    r->value = r->key + r->key_len;
    *offset = off + r->size;
    return 1;
}

/* Strict check of one record's contents (keys, padding). */
static bool kv_record_ok(const struct kv_record *r)
{
    const uint8_t *end = r->value + r->value_len;
    const uint8_t *rec_end = r->key - NOXS_CTRL_KV_RECORD_HEADER + r->size;

    for (size_t i = 0; i < r->key_len; i++)
        if (!key_byte_ok(r->key[i]))
            return false;
    for (const uint8_t *p = end; p < rec_end; p++)
        if (*p)
            return false;
    return true;
}

/* Find key in a half; 1 and *r if found, 0 if not, -1 if malformed. */
static int kv_find(const struct noxs_ctrl_half *h, const char *key,
                   size_t key_len, struct kv_record *r)
{
    size_t used = h->kv_used, off = 0;
    int rc;

    if (used > NOXS_CTRL_KV_SIZE)
        return -1;
    while ((rc = kv_next(h->kv, used, &off, r)) > 0) {
        if (r->key_len == key_len && memcmp(r->key, key, key_len) == 0)
            return 1;
    }
    return rc;
}

static int kv_validate(const struct noxs_ctrl_half *h)
{
    size_t used = h->kv_used, off = 0;
    struct kv_record r;
    int rc;

    if (used > NOXS_CTRL_KV_SIZE || used % 4u)
        return -1;
    while ((rc = kv_next(h->kv, used, &off, &r)) > 0) {
        size_t off2 = 0;
        struct kv_record o;

        if (!kv_record_ok(&r))
            return -1;
        /* Duplicate keys: compare with every earlier record. At most
         * ~240 records fit, so the quadratic scan stays small. */
        while (off2 < r.offset && kv_next(h->kv, used, &off2, &o) > 0) {
            if (o.key_len == r.key_len &&
                memcmp(o.key, r.key, r.key_len) == 0)
                return -1;
        }
    }
    return rc;
}

/*
 * The record of key, which must be there: 0, or -1 with errno bad_key
 * (key is not a valid key), ENOENT or EPROTO (a malformed half).
 */
static int kv_lookup(const struct noxs_ctrl_half *h, const char *key,
                     int bad_key, struct kv_record *r)
{
    size_t key_len;
    int rc;

    if (key_check(key, &key_len) < 0) {
        errno = bad_key;
        return -1;
    }
    rc = kv_find(h, key, key_len, r);
    if (rc <= 0) {
        errno = rc < 0 ? EPROTO : ENOENT;
        return -1;
    }
    return 0;
}

NOXS_EXPORT int noxs_kv_get(const struct noxs_ctrl_half *h, const char *key,
                            char *buf, size_t len)
{
    struct kv_record r;

    if (kv_lookup(h, key, EINVAL, &r) < 0)
        return -1;
    if (!buf || len < r.value_len + 1) {
        errno = ENOSPC;
        return -1;
    }
    memcpy(buf, r.value, r.value_len);
    buf[r.value_len] = '\0';
    return (int)r.value_len;
}

NOXS_EXPORT int noxs_kv_set(struct noxs_ctrl_half *h, const char *key,
                            const void *value, size_t value_len)
{
    uint8_t area[NOXS_CTRL_KV_SIZE];
    struct kv_record r;
    size_t key_len, used = h->kv_used, keep_before, keep_after, rec, total;
    int rc = key_check(key, &key_len);

    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    if (value_len > NOXS_CTRL_VALUE_MAX) {
        errno = E2BIG;
        return -1;
    }
    if (value_len && !value) {
        errno = EINVAL;
        return -1;
    }
    rc = kv_find(h, key, key_len, &r);
    if (rc < 0) {
        errno = EPROTO;
        return -1;
    }
    if (rc == 1) {
        keep_before = r.offset;
        keep_after = used - r.offset - r.size;
    } else {
        keep_before = used;
        keep_after = 0;
    }
    rec = kv_record_size(key_len, value_len);
    total = keep_before + rec + keep_after;
    if (total > NOXS_CTRL_KV_SIZE) {
        errno = ENOSPC;
        return -1;
    }
    /* Rebuild in a scratch area so a replaced record keeps its place. */
    memcpy(area, h->kv, keep_before);
    uint8_t *p = area + keep_before;
    memset(p, 0, rec);
    p[0] = (uint8_t)key_len;
    p[2] = (uint8_t)(value_len & 0xff);
    p[3] = (uint8_t)(value_len >> 8);
    memcpy(p + NOXS_CTRL_KV_RECORD_HEADER, key, key_len);
    if (value_len)
        memcpy(p + NOXS_CTRL_KV_RECORD_HEADER + key_len, value, value_len);
    if (keep_after)
        memcpy(p + rec, h->kv + r.offset + r.size, keep_after);
    memcpy(h->kv, area, total);
    if (total < NOXS_CTRL_KV_SIZE)
        memset(h->kv + total, 0, NOXS_CTRL_KV_SIZE - total);
    h->kv_used = (uint32_t)total;
    return 0;
}

NOXS_EXPORT int noxs_kv_del(struct noxs_ctrl_half *h, const char *key)
{
    struct kv_record r;
    size_t used = h->kv_used;

    if (kv_lookup(h, key, ENOENT, &r) < 0)
        return -1;
    memmove(h->kv + r.offset, h->kv + r.offset + r.size,
            used - r.offset - r.size);
    memset(h->kv + used - r.size, 0, r.size);
    h->kv_used = (uint32_t)(used - r.size);
    return 0;
}

NOXS_EXPORT int noxs_kv_foreach(const struct noxs_ctrl_half *h,
                                int (*fn)(const char *key, const char *value,
                                          size_t value_len, void *arg),
                                void *arg)
{
    char key[NOXS_CTRL_KEY_MAX + 1];
    char value[NOXS_CTRL_VALUE_MAX + 1];
    size_t used = h->kv_used, off = 0;
    struct kv_record r;
    int rc;

    if (used > NOXS_CTRL_KV_SIZE) {
        errno = EPROTO;
        return -1;
    }
    while ((rc = kv_next(h->kv, used, &off, &r)) > 0) {
        memcpy(key, r.key, r.key_len);
        key[r.key_len] = '\0';
        memcpy(value, r.value, r.value_len);
        value[r.value_len] = '\0';
        rc = fn(key, value, r.value_len, arg);
        if (rc)
            return rc;
    }
    if (rc < 0) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Control page halves                                                 */

static inline void *half_ptr(void *page, unsigned int which)
{
    return (char *)page + (size_t)which * NOXS_CTRL_HALF_SIZE;
}

static inline const void *half_cptr(const void *page, unsigned int which)
{
    return (const char *)page + (size_t)which * NOXS_CTRL_HALF_SIZE;
}

NOXS_EXPORT void noxs_ctrl_half_write(void *page, unsigned int which,
                                      struct noxs_ctrl_half *src)
{
    const size_t seq_off = offsetof(struct noxs_ctrl_half, seq);
    void *dst;
    uint32_t gen;

    if (which > NOXS_CTRL_FRONTEND)
        return;
    dst = half_ptr(page, which);
    /* Generation 0 means "never published" to readers; skip it on wrap. */
    gen = src->generation + 1;
    if (gen == 0)
        gen = 1;
    src->generation = gen;
    /* seq is derived from our own copy, never read from the page. */
    store_word(dst, seq_off, gen * 2u - 1u, __ATOMIC_RELAXED);
    src->seq = gen * 2u;
    /* Header and the used records only: readers ignore kv[] past
     * kv_used, so stale bytes there are harmless. */
    size_t used = src->kv_used <= NOXS_CTRL_KV_SIZE ? src->kv_used
                                                    : NOXS_CTRL_KV_SIZE;
    used = (used + WORD - 1) & ~(WORD - 1);
    copy_out(dst, src, NOXS_CTRL_HALF_HEADER + used, seq_off);
    store_word(dst, seq_off, gen * 2u, __ATOMIC_RELEASE);
}

NOXS_EXPORT int noxs_ctrl_half_validate(const struct noxs_ctrl_half *h,
                                        unsigned int which)
{
    if (which > NOXS_CTRL_FRONTEND) {
        errno = EINVAL;
        return -1;
    }
    if (which == NOXS_CTRL_BACKEND &&
        (h->magic != NOXS_CTRLPAGE_MAGIC || h->version != NOXS_ABI_VERSION ||
         h->type < 1 || h->type > NOXS_DEV_TYPE_MAX ||
         h->backend_domid > NOXS_DOMID_MAX ||
         h->frontend_domid > NOXS_DOMID_MAX))
        return proto_error();
    if (h->generation == 0) {
        /* Never published: the half must be empty, state Unknown. */
        if (h->state != NOXS_STATE_UNKNOWN || h->nr_ports || h->nr_refs ||
            h->kv_used)
            return proto_error();
        return 0;
    }
    if (h->state < NOXS_STATE_INITIALISING || h->state > NOXS_STATE_MAX)
        return proto_error();
    if (h->nr_ports > NOXS_CTRL_MAX_PORTS || h->nr_refs > NOXS_CTRL_MAX_REFS)
        return proto_error();
    for (uint32_t i = 0; i < h->nr_ports; i++)
        if (!port_ok(h->ports[i]))
            return proto_error();
    for (uint32_t i = 0; i < h->nr_refs; i++)
        if (h->refs[i] < NOXS_GREF_MIN)
            return proto_error();
    if (kv_validate(h) < 0)
        return proto_error();
    return 0;
}

static size_t half_used(const void *header_copy)
{
    return ((const struct noxs_ctrl_half *)header_copy)->kv_used;
}

static const struct region half_region = {
    .seq_off = offsetof(struct noxs_ctrl_half, seq),
    .header_size = NOXS_CTRL_HALF_HEADER,
    .body_size = NOXS_CTRL_KV_SIZE,
    .used = half_used,
};

NOXS_EXPORT int noxs_ctrl_half_snapshot(const void *page, unsigned int which,
                                        struct noxs_ctrl_half *out)
{
    if (which > NOXS_CTRL_FRONTEND) {
        errno = EINVAL;
        return -1;
    }
    if (seqlock_copy(out, half_cptr(page, which), &half_region) < 0)
        return -1;
    if (noxs_ctrl_half_validate(out, which) < 0)
        return -1;
    /* Sanitise what validation ignores. */
    if (which == NOXS_CTRL_FRONTEND) {
        out->magic = 0;
        out->version = 0;
        out->type = 0;
        out->devid = 0;
        out->backend_domid = 0;
        out->frontend_domid = 0;
    }
    for (uint32_t i = out->nr_ports; i < NOXS_CTRL_MAX_PORTS; i++)
        out->ports[i] = 0;
    for (uint32_t i = out->nr_refs; i < NOXS_CTRL_MAX_REFS; i++)
        out->refs[i] = 0;
    memset(out->kv + out->kv_used, 0, NOXS_CTRL_KV_SIZE - out->kv_used);
    return 0;
}

NOXS_EXPORT uint32_t noxs_ctrl_half_peek_generation(const void *page,
                                                    unsigned int which)
{
    if (which > NOXS_CTRL_FRONTEND)
        return 0;
    return load_word(half_cptr(page, which),
                     offsetof(struct noxs_ctrl_half, generation),
                     __ATOMIC_ACQUIRE);
}
