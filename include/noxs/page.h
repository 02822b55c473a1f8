/*
 * libnoxs page access: the seqlock protocol over the structures of
 * <noxs/abi.h>.
 *
 * Writers (a page's single writer: noxsd for a device page, each side for
 * its own half of a control page) make the sequence word odd with a
 * release store, write, and make it even again with a release store.
 * Readers load the sequence word with acquire semantics, copy the
 * structure with atomic word loads, load the word again, and retry while
 * it was odd or changed; after NOXS_SEQLOCK_TRIES attempts they fail with
 * EBUSY, so a peer that never settles cannot make a reader spin forever.
 * A settled snapshot is then validated field by field (magic, version,
 * sizes, counts, ports, refs, state, every key/value record), and any
 * violation fails with EPROTO. Readers only ever use the validated copy,
 * never the live page.
 *
 * These functions take pointers to mapped pages and never fault on a
 * well-formed mapping whatever its contents. They are safe to call from
 * several threads on different pages; a page has one writer.
 */
#ifndef NOXS_PAGE_H
#define NOXS_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include <noxs/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Snapshot attempts before giving up with EBUSY. A writer finishes a
 * half in well under a microsecond, so a few attempts cover a real write
 * in progress; a half that stays torn is the writer's fault, and callers
 * retry later (after a back-off, not on every notification) instead of
 * spinning here.
 */
#define NOXS_SEQLOCK_TRIES 16u

/* ---- device page ---- */

/* Initialise a zeroed page as domid's device page (no entries). */
void noxs_devpage_init(void *page, uint16_t domid, uint16_t owner_domid,
                       uint32_t notify_port);

/*
 * Replace the page's entry table with entries[0..count) (count <=
 * NOXS_DEVPAGE_MAX_ENTRIES, else -1/ENOSPC) under the seqlock, bumping
 * the generation. Returns 0.
 */
int noxs_devpage_write(void *page, const struct noxs_devpage_entry *entries,
                       uint32_t count);

/*
 * Validated snapshot of a device page. expect_domid: the domain the page
 * must describe (NOXS_DOMID_ANY_PAGE to skip that check). Returns 0, or
 * -1 with EBUSY (never settled) or EPROTO (malformed: bad magic, version,
 * sizes, count, an entry with an invalid type, domid, ref or port).
 */
#define NOXS_DOMID_ANY_PAGE 0xffffu
int noxs_devpage_snapshot(const void *page, struct noxs_devpage *out,
                          uint16_t expect_domid);

/* Validate an already-copied page (what snapshot checks). 0 or EPROTO. */
int noxs_devpage_validate(const struct noxs_devpage *p, uint16_t expect_domid);

/* ---- control page halves ---- */

/*
 * Write src as half `which` (NOXS_CTRL_BACKEND/FRONTEND) of the control
 * page under that half's seqlock; src->seq is ignored, the generation is
 * set to the page's previous generation + 1 of this writer's own copy
 * (pass the writer's authoritative copy; never read back from the page,
 * which the peer can also write).
 */
void noxs_ctrl_half_write(void *page, unsigned int which,
                          struct noxs_ctrl_half *src);

/*
 * Validated snapshot of half `which`. For the backend half the identity
 * fields must be present (magic, version, type 1..max, domids); the
 * frontend half's identity fields are ignored. Returns 0 or -1 with
 * EBUSY / EPROTO / EINVAL (bad which).
 */
int noxs_ctrl_half_snapshot(const void *page, unsigned int which,
                            struct noxs_ctrl_half *out);
int noxs_ctrl_half_validate(const struct noxs_ctrl_half *h,
                            unsigned int which);

/* Read just the generation word of a half (relaxed; for spinning). */
uint32_t noxs_ctrl_half_peek_generation(const void *page, unsigned int which);
uint32_t noxs_devpage_peek_generation(const void *page);

/* ---- key/value area of a (local, validated) half ---- */

/*
 * Value of key into buf, NUL-terminated. Returns the value length, or -1
 * with ENOENT (no such key), ENOSPC (buf too small; nothing copied) or
 * EINVAL (bad key).
 */
int noxs_kv_get(const struct noxs_ctrl_half *h, const char *key, char *buf,
                size_t len);
/*
 * Set key to value[0..value_len) in a local half, replacing an existing
 * record. Returns 0, or -1 with EINVAL (key empty, has '/' or non-
 * printable bytes), E2BIG (key > NOXS_CTRL_KEY_MAX or value >
 * NOXS_CTRL_VALUE_MAX) or ENOSPC (area full; the half is unchanged).
 */
int noxs_kv_set(struct noxs_ctrl_half *h, const char *key, const void *value,
                size_t value_len);
/* Remove key; 0, or -1/ENOENT. */
int noxs_kv_del(struct noxs_ctrl_half *h, const char *key);
/*
 * Call fn for every record in order; stops early and returns fn's value
 * if it is non-zero. value is NUL-terminated (a copy).
 */
int noxs_kv_foreach(const struct noxs_ctrl_half *h,
                    int (*fn)(const char *key, const char *value,
                              size_t value_len, void *arg),
                    void *arg);

#ifdef __cplusplus
}
#endif

#endif /* NOXS_PAGE_H */
