/*
 * noxs shared-page ABI, version 1.
 *
 * Everything in this file is laid out in memory that is shared between
 * domains through grant tables, so every structure is fixed-size, uses
 * fixed-width little-endian fields only (no enums, bitfields or pointers),
 * and carries a magic and a version. docs/ABI.md documents each field.
 *
 * Trust: whoever maps a page written by another domain treats every byte
 * as hostile. Readers snapshot a half under its seqlock (see seqlock.h in
 * libnoxs) and validate the snapshot before using any field; writers only
 * ever write their own half. The limits below are what readers check.
 */
#ifndef NOXS_ABI_H
#define NOXS_ABI_H

#include <stddef.h>
#include <stdint.h>

/*
 * A compile-time check that C and C++ both accept (the public headers
 * are included from C++ too).
 */
#ifdef __cplusplus
#define NOXS_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define NOXS_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "noxs pages are little-endian; big-endian hosts need byte swapping"
#endif

#define NOXS_PAGE_SIZE 4096u
#define NOXS_ABI_VERSION 1u

/* "NXDP" and "NXCP" read as little-endian 32-bit words. */
#define NOXS_DEVPAGE_MAGIC 0x5044584eu
#define NOXS_CTRLPAGE_MAGIC 0x5043584eu

/* XenbusState, as in xen/io/xenbus.h; the values are part of the ABI. */
#define NOXS_STATE_UNKNOWN 0u
#define NOXS_STATE_INITIALISING 1u
#define NOXS_STATE_INITWAIT 2u
#define NOXS_STATE_INITIALISED 3u
#define NOXS_STATE_CONNECTED 4u
#define NOXS_STATE_CLOSING 5u
#define NOXS_STATE_CLOSED 6u
#define NOXS_STATE_RECONFIGURING 7u
#define NOXS_STATE_RECONFIGURED 8u
#define NOXS_STATE_MAX 8u

/* Device types. 0 is never a valid type. */
#define NOXS_DEV_SYSCTL 1u
#define NOXS_DEV_CONSOLE 2u
#define NOXS_DEV_BLK 3u
#define NOXS_DEV_NET 4u    /* reserved; no reference driver yet */
#define NOXS_DEV_LEGACY 5u /* compat-xs devices of any xenbus class */
#define NOXS_DEV_TYPE_MAX 5u

/* Domain ids: DOMID_FIRST_RESERVED in Xen. */
#define NOXS_DOMID_MAX 0x7fefu

/* Grant refs 0..7 are reserved by Xen (GNTTAB_NR_RESERVED_ENTRIES). */
#define NOXS_GREF_MIN 8u
/* Event channel ports: 0 is never valid; Xen's FIFO ABI limit is 2^17. */
#define NOXS_PORT_MAX ((1u << 17) - 1)

/*
 * The liveness page of a device session: one page the frontend shares
 * with the backend's domain, its grant ref published as the frontend key
 * NOXS_LIVENESS_KEY. Byte NOXS_LIVENESS_FRONTEND is the frontend's,
 * NOXS_LIVENESS_BACKEND the backend's: each side sets its byte to 1, and
 * the grant layer zeroes it (and notifies the peer on the device's event
 * channel) when that side's share or mapping ends, also when its process
 * dies. Nothing else on the page is read.
 */
#define NOXS_LIVENESS_KEY "alive-ref"
#define NOXS_LIVENESS_FRONTEND 0u
#define NOXS_LIVENESS_BACKEND 64u

/* Bootstrap string: "noxs=<owner-domid>:<grant-ref>:<port>", decimal. */
#define NOXS_BOOT_PREFIX "noxs="
#define NOXS_BOOT_ENV "NOXS_BOOT"
#define NOXS_BOOT_MAXLEN 40u

/* -------------------------------------------------------------------- */
/* Device page: one per guest domain, written only by noxsd (read-only   */
/* grant to the guest).                                                  */

struct noxs_devpage_header {
    uint32_t magic;       /* NOXS_DEVPAGE_MAGIC */
    uint16_t version;     /* NOXS_ABI_VERSION */
    uint16_t header_size; /* sizeof(struct noxs_devpage_header) */
    uint32_t seq;         /* seqlock: odd while noxsd writes */
    uint16_t domid;       /* the guest this page describes */
    uint16_t owner_domid; /* the domain noxsd runs in */
    uint32_t notify_port; /* owner's port noxsd notifies this guest on */
    uint32_t entry_count; /* valid entries, <= NOXS_DEVPAGE_MAX_ENTRIES */
    uint32_t entry_size;  /* sizeof(struct noxs_devpage_entry) */
    uint32_t generation;  /* bumped on every change of the entry table */
    uint8_t reserved[32];
};

#define NOXS_DEVPAGE_ENTRY_VALID 0x1u   /* slot in use */
#define NOXS_DEVPAGE_ENTRY_CLOSING 0x2u /* removal in progress */

struct noxs_devpage_entry {
    uint16_t type;          /* NOXS_DEV_* */
    uint16_t flags;         /* NOXS_DEVPAGE_ENTRY_* */
    uint32_t devid;         /* device id within (domain, type) */
    uint16_t backend_domid; /* domain that serves the device */
    uint16_t reserved0;
    uint32_t control_gref; /* backend's grant of the control page */
    uint32_t backend_port; /* backend's unbound port for this guest */
    uint32_t reserved[3];
};

#define NOXS_DEVPAGE_MAX_ENTRIES                             \
    ((NOXS_PAGE_SIZE - sizeof(struct noxs_devpage_header)) / \
     sizeof(struct noxs_devpage_entry))

struct noxs_devpage {
    struct noxs_devpage_header hdr;
    struct noxs_devpage_entry entries[NOXS_DEVPAGE_MAX_ENTRIES];
};

NOXS_STATIC_ASSERT(sizeof(struct noxs_devpage_header) == 64, "devpage header");
NOXS_STATIC_ASSERT(sizeof(struct noxs_devpage_entry) == 32, "devpage entry");
NOXS_STATIC_ASSERT(sizeof(struct noxs_devpage) <= NOXS_PAGE_SIZE, "devpage");
NOXS_STATIC_ASSERT(NOXS_DEVPAGE_MAX_ENTRIES == 126, "devpage capacity");
NOXS_STATIC_ASSERT(offsetof(struct noxs_devpage_header, seq) == 8, "seq");
NOXS_STATIC_ASSERT(offsetof(struct noxs_devpage_header, notify_port) == 16,
                   "notify_port");
NOXS_STATIC_ASSERT(offsetof(struct noxs_devpage_entry, control_gref) == 12,
                   "control_gref");

/* -------------------------------------------------------------------- */
/* Control page: one per device, granted read-write by the backend to the */
/* frontend domain. Two halves; each side writes only its own.            */

#define NOXS_CTRL_MAX_PORTS 4u
#define NOXS_CTRL_MAX_REFS 16u
#define NOXS_CTRL_HALF_SIZE 2048u
#define NOXS_CTRL_HALF_HEADER 128u
#define NOXS_CTRL_KV_SIZE (NOXS_CTRL_HALF_SIZE - NOXS_CTRL_HALF_HEADER)
#define NOXS_CTRL_KEY_MAX 63u     /* bytes, no NUL stored */
#define NOXS_CTRL_VALUE_MAX 1024u /* bytes, no NUL stored */

/* Which half. */
#define NOXS_CTRL_BACKEND 0u
#define NOXS_CTRL_FRONTEND 1u

/*
 * Half header. The backend's half also carries the device identity
 * (magic..frontend_domid); in the frontend's half those fields are zero
 * and ignored.
 */
struct noxs_ctrl_half {
    uint32_t magic;                      /* NOXS_CTRLPAGE_MAGIC (backend half) */
    uint16_t version;                    /* NOXS_ABI_VERSION (backend half) */
    uint16_t type;                       /* NOXS_DEV_* (backend half) */
    uint32_t devid;                      /* (backend half) */
    uint16_t backend_domid;              /* (backend half) */
    uint16_t frontend_domid;             /* (backend half) */
    uint32_t seq;                        /* seqlock of this half: odd while writing */
    uint32_t state;                      /* NOXS_STATE_*, 1..8 */
    uint32_t generation;                 /* bumped on every committed change */
    uint32_t nr_ports;                   /* <= NOXS_CTRL_MAX_PORTS */
    uint32_t ports[NOXS_CTRL_MAX_PORTS]; /* writer's own ports */
    uint32_t nr_refs;                    /* <= NOXS_CTRL_MAX_REFS */
    uint32_t refs[NOXS_CTRL_MAX_REFS];   /* ring/data grant refs */
    uint32_t kv_used;                    /* bytes of kv[] in use, <= NOXS_CTRL_KV_SIZE */
    uint64_t features;                   /* NOXS_FEATURE_* / device-specific bits */
    /*
     * Key/value records, back to back from kv[0] to kv[kv_used]:
     *   uint8_t key_len (1..NOXS_CTRL_KEY_MAX), uint8_t reserved (0),
     *   uint16_t value_len (0..NOXS_CTRL_VALUE_MAX),
     *   key bytes, value bytes, zero padding to a multiple of 4.
     * Keys are unique, printable ASCII without '/' or NUL; values are
     * bytes (XenStore values are strings, compat-xs stores them as is).
     */
    uint8_t kv[NOXS_CTRL_KV_SIZE];
};

#define NOXS_CTRL_KV_RECORD_HEADER 4u

struct noxs_ctrlpage {
    struct noxs_ctrl_half half[2]; /* [NOXS_CTRL_BACKEND], [..._FRONTEND] */
};

NOXS_STATIC_ASSERT(offsetof(struct noxs_ctrl_half, kv) ==
                       NOXS_CTRL_HALF_HEADER,
                   "ctrl half header");
NOXS_STATIC_ASSERT(sizeof(struct noxs_ctrl_half) == NOXS_CTRL_HALF_SIZE,
                   "ctrl half");
NOXS_STATIC_ASSERT(sizeof(struct noxs_ctrlpage) == NOXS_PAGE_SIZE,
                   "ctrl page");
NOXS_STATIC_ASSERT(offsetof(struct noxs_ctrl_half, seq) == 16, "ctrl seq");
NOXS_STATIC_ASSERT(offsetof(struct noxs_ctrl_half, features) == 120,
                   "ctrl features");

/* Generic feature bits (low 32 bits); the high 32 are device-specific. */
#define NOXS_FEATURE_KV 0x1ull /* this side publishes key/value records */

/* Device-specific keys and feature bits: <noxs/io/sysctl.h>,
 * <noxs/io/consif.h>, <noxs/io/blkif.h>. */

#endif /* NOXS_ABI_H */
