/*
 * noxsd wire protocol (private to libnoxs and noxsd).
 *
 * One message per datagram on a Unix SOCK_SEQPACKET socket, so the socket
 * does the framing; every message still carries its own length, which must
 * equal the datagram's. Layout: a fixed 16-byte header, then a body whose
 * size is fixed per type, or a fixed part followed by counted, bounded
 * variable parts. Fields are fixed-width little-endian integers (the page
 * ABI already requires a little-endian host, so the structs below are
 * copied with memcpy, never cast over the receive buffer).
 *
 * Replies echo the request id. A successful reply to request type T has
 * type T | NOXS_MSG_REPLY and T's reply body; a failed one is NOXS_MSG_ERROR
 * (header only, error > 0). The one exception: DOMAIN_CREATE answers EEXIST
 * with its normal reply body (the caller still gets the bootstrap). Lists
 * are answered by ITEM messages ended by NOXS_MSG_END (or by an ERROR).
 *
 * noxs_proto_decode() is the only parser; it is what the fuzz target
 * drives. It fails with -EPROTO when the framing is wrong (version, length,
 * type, counts, reserved bytes: the receiver replies and closes the
 * connection) and with -EINVAL when the message is well-formed but a value
 * is out of range (the receiver replies and keeps the connection).
 * docs/PROTOCOL.md describes every message.
 */
#ifndef NOXS_PROTO_H
#define NOXS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <noxs/noxs.h>

#define NOXS_PROTO_VERSION 1u
#define NOXS_PROTO_MAX_MSG 65536u
#define NOXS_PROTO_MAX_PARAMS 32u
#define NOXS_PROTO_MAX_TYPES 16u
#define NOXS_PROTO_MAX_REPLY NOXS_CTRL_VALUE_MAX

/* Message types. Replies set NOXS_MSG_REPLY on the request's type. */
#define NOXS_MSG_REPLY 0x8000u

#define NOXS_MSG_ERROR 1u             /* any -> any: header only, error > 0 */
#define NOXS_MSG_END 2u               /* ends a list: header only */
#define NOXS_MSG_DOMAIN_CREATE 16u    /* toolstack -> noxsd */
#define NOXS_MSG_DOMAIN_DESTROY 17u   /* toolstack -> noxsd */
#define NOXS_MSG_DOMAIN_LIST 18u      /* anyone -> noxsd */
#define NOXS_MSG_DOMAIN_ITEM 19u      /* noxsd -> anyone (list item) */
#define NOXS_MSG_DEV_ADD 20u          /* toolstack -> noxsd */
#define NOXS_MSG_DEV_REMOVE 21u       /* toolstack -> noxsd */
#define NOXS_MSG_DEV_LIST 22u         /* anyone -> noxsd */
#define NOXS_MSG_DEV_ITEM 23u         /* noxsd -> anyone (list item) */
#define NOXS_MSG_STATUS 24u           /* anyone -> noxsd */
#define NOXS_MSG_DEV_CONTROL 25u      /* toolstack -> noxsd */
#define NOXS_MSG_WATCH 26u            /* anyone -> noxsd */
#define NOXS_MSG_EVENT 27u            /* noxsd -> watcher, unsolicited */
#define NOXS_MSG_BACKEND_REGISTER 32u /* backend -> noxsd */
#define NOXS_MSG_BACKEND_SYNC 33u     /* backend -> noxsd */
#define NOXS_MSG_BACKEND_CREATE 34u   /* noxsd -> backend */
#define NOXS_MSG_BACKEND_REMOVE 35u   /* noxsd -> backend */
#define NOXS_MSG_BACKEND_CONTROL 36u  /* noxsd -> backend */
#define NOXS_MSG_BACKEND_STATE 37u    /* backend -> noxsd, one-way */

struct noxs_msg_hdr {
    uint16_t version; /* NOXS_PROTO_VERSION */
    uint16_t type;    /* NOXS_MSG_* */
    uint32_t length;  /* whole message, header included */
    uint32_t request; /* chosen by the requester, echoed in replies */
    int32_t error;    /* 0, or a positive errno in replies */
};

/* DOMAIN_CREATE, DOMAIN_DESTROY, DEV_LIST, WATCH requests. */
struct noxs_msg_domid {
    uint16_t domid; /* NOXS_DOMID_ANY allowed for DEV_LIST and WATCH */
    uint16_t reserved;
};

/* DOMAIN_CREATE reply, DOMAIN_ITEM. */
struct noxs_msg_domain {
    uint16_t domid;
    uint16_t owner_domid;
    uint32_t gref;
    uint32_t port;
    uint32_t ndevices;
};

/* DEV_REMOVE, BACKEND_REMOVE requests. */
struct noxs_msg_dev_id {
    uint16_t domid; /* the frontend domain */
    uint16_t type;
    uint32_t devid;
};

/* DEV_ADD reply, DEV_ITEM, BACKEND_STATE, BACKEND_SYNC items. */
struct noxs_msg_dev {
    uint16_t domid;
    uint16_t type;
    uint32_t devid;
    uint16_t backend_domid;
    uint8_t backend_state;
    uint8_t frontend_state;
    uint32_t control_gref;
    uint32_t backend_port;
    uint32_t flags; /* NOXS_DEVPAGE_ENTRY_* as in the device page */
};

/* EVENT. */
struct noxs_msg_event {
    uint32_t kind; /* NOXS_EVENT_* */
    uint32_t reserved;
    struct noxs_msg_dev dev;
};

/*
 * DEV_ADD and BACKEND_CREATE: fixed part, then nparams records
 *   uint8_t key_len (1..NOXS_CTRL_KEY_MAX), uint8_t reserved (0),
 *   uint16_t value_len (0..NOXS_CTRL_VALUE_MAX), key bytes, value bytes
 * back to back without padding.
 */
struct noxs_msg_dev_add {
    uint16_t domid;
    uint16_t type;
    uint32_t devid;
    uint16_t backend_domid;
    uint16_t nparams; /* <= NOXS_PROTO_MAX_PARAMS */
    uint32_t reserved;
};

struct noxs_msg_param {
    uint8_t key_len;
    uint8_t reserved;
    uint16_t value_len;
};

/* BACKEND_CREATE reply. */
struct noxs_msg_dev_ref {
    uint32_t control_gref;
    uint32_t backend_port;
};

/* DEV_CONTROL and BACKEND_CONTROL: fixed part, key bytes, value bytes. */
struct noxs_msg_control {
    uint16_t domid;
    uint16_t type;
    uint32_t devid;
    uint32_t timeout_ms; /* how long noxsd waits for the backend */
    uint16_t key_len;    /* 1..NOXS_CTRL_KEY_MAX */
    uint16_t value_len;  /* 0..NOXS_CTRL_VALUE_MAX */
};

/* DEV_CONTROL and BACKEND_CONTROL replies: fixed part, then len bytes. */
struct noxs_msg_control_reply {
    uint16_t len; /* <= NOXS_PROTO_MAX_REPLY */
    uint16_t reserved;
};

/*
 * BACKEND_REGISTER: fixed part, then ntypes uint16_t types, then
 * optionally one uint32_t of NOXS_REGISTER_* flags (absent: 0; a backend
 * with no flags to give sends none, so any noxsd accepts it).
 */
/* The backend's devices outlive its connection (its files are in a
 * service manager's fd store): noxsd keeps them while it restarts. */
#define NOXS_REGISTER_KEEP 0x1u
struct noxs_msg_register {
    uint16_t domid;  /* the backend's own domain */
    uint16_t ntypes; /* 1..NOXS_PROTO_MAX_TYPES */
};

/* BACKEND_SYNC: fixed part, then count struct noxs_msg_dev. */
#define NOXS_SYNC_FINAL 0x1u
#define NOXS_PROTO_MAX_SYNC                              \
    ((NOXS_PROTO_MAX_MSG - sizeof(struct noxs_msg_hdr) - \
      sizeof(struct noxs_msg_sync)) /                    \
     sizeof(struct noxs_msg_dev))
struct noxs_msg_sync {
    uint32_t count;
    uint32_t flags; /* NOXS_SYNC_FINAL on the last one */
};

/* STATUS reply. */
struct noxs_msg_status {
    uint32_t version;
    uint32_t pid;
    uint32_t keeper_pid;
    uint32_t ndomains;
    uint32_t ndevices;
    uint32_t nbackends;
    uint64_t uptime_ms;
    uint64_t rss_bytes;
    uint32_t restarts;
    uint32_t heap_kib; /* worker + keeper malloc in use, KiB; 0: unknown */
};

_Static_assert(sizeof(struct noxs_msg_hdr) == 16, "hdr");
_Static_assert(sizeof(struct noxs_msg_domid) == 4, "domid");
_Static_assert(sizeof(struct noxs_msg_domain) == 16, "domain");
_Static_assert(sizeof(struct noxs_msg_dev_id) == 8, "dev_id");
_Static_assert(sizeof(struct noxs_msg_dev) == 24, "dev");
_Static_assert(sizeof(struct noxs_msg_event) == 32, "event");
_Static_assert(sizeof(struct noxs_msg_dev_add) == 16, "dev_add");
_Static_assert(sizeof(struct noxs_msg_param) == 4, "param");
_Static_assert(sizeof(struct noxs_msg_dev_ref) == 8, "dev_ref");
_Static_assert(sizeof(struct noxs_msg_control) == 16, "control");
_Static_assert(sizeof(struct noxs_msg_control_reply) == 4, "control_reply");
_Static_assert(sizeof(struct noxs_msg_register) == 4, "register");
_Static_assert(sizeof(struct noxs_msg_sync) == 8, "sync");
_Static_assert(sizeof(struct noxs_msg_status) == 48, "status");

/* A decoded message. Strings point into text[], NUL-terminated. */
struct noxs_proto_msg {
    struct noxs_msg_hdr hdr;
    union {
        struct noxs_msg_domid domid;
        struct noxs_msg_domain domain;
        struct noxs_msg_dev_id dev_id;
        struct noxs_msg_dev dev;
        struct noxs_msg_event event;
        struct noxs_msg_dev_add dev_add;
        struct noxs_msg_dev_ref dev_ref;
        struct noxs_msg_control control;
        struct noxs_msg_control_reply control_reply;
        struct noxs_msg_register reg;
        struct noxs_msg_sync sync;
        struct noxs_msg_status status;
    } u;
    size_t nparams;
    struct noxs_kv params[NOXS_PROTO_MAX_PARAMS];
    const char *key;   /* *_CONTROL */
    const char *value; /* *_CONTROL; control replies: the reply text */
    uint16_t types[NOXS_PROTO_MAX_TYPES];
    uint32_t reg_flags;        /* BACKEND_REGISTER: NOXS_REGISTER_* */
    const uint8_t *sync_items; /* count * sizeof(struct noxs_msg_dev) */
    char text[NOXS_PROTO_MAX_MSG + 2 * NOXS_PROTO_MAX_PARAMS + 2];
};

/*
 * Decode buf[0..len). Returns 0, -EPROTO (bad framing: version, type,
 * length, counts, non-zero reserved fields; reply and close) or -EINVAL
 * (well-formed, but a key, value, type or domid is out of range; reply and
 * carry on). On -EINVAL, m->hdr is valid, so the request id can be echoed.
 * The only pointers kept in m are into m itself and m->sync_items, which
 * points into buf.
 */
int noxs_proto_decode(const void *buf, size_t len, struct noxs_proto_msg *m);

/* Read item i of a decoded BACKEND_SYNC (i < m->u.sync.count). */
void noxs_proto_sync_item(const struct noxs_proto_msg *m, size_t i,
                          struct noxs_msg_dev *out);

/*
 * One row per message type (libnoxs/proto.c): everything the decoder,
 * the type names and noxsd's dispatch need to know about a type, so a new
 * message is added in one place. noxsd refuses a request whose access is
 * not NOXS_MSGA_ANYONE to a client without that right before any handler
 * runs: a new mutating message is closed unless its row says otherwise.
 */
#define NOXS_MSGD_ANY 0u        /* both ways (ERROR) */
#define NOXS_MSGD_TO_NOXSD 1u   /* a client or a backend sends it to noxsd */
#define NOXS_MSGD_FROM_NOXSD 2u /* noxsd sends it (items, events, orders) */

#define NOXS_MSGA_ANYONE 0u     /* read-only: any client that can connect */
#define NOXS_MSGA_PRIVILEGED 1u /* root or the toolstack uid */
#define NOXS_MSGA_BACKEND 2u    /* a connection that registered a backend */

/* What follows the fixed part of a body. */
#define NOXS_MSGV_NONE 0u   /* nothing: the body is exactly the fixed part */
#define NOXS_MSGV_PARAMS 1u /* nparams parameter records */
#define NOXS_MSGV_KEYVAL 2u /* key bytes, value bytes */
#define NOXS_MSGV_TYPES 3u  /* ntypes uint16_t, then optional flags */
#define NOXS_MSGV_DEVS 4u   /* count struct noxs_msg_dev */
#define NOXS_MSGV_TEXT 5u   /* len bytes of reply text */

struct noxs_msg_desc {
    uint16_t type;     /* NOXS_MSG_*, never with NOXS_MSG_REPLY */
    uint8_t direction; /* NOXS_MSGD_* */
    uint8_t access;    /* NOXS_MSGA_*: who may send it to noxsd */
    const char *name;
    uint16_t body;          /* size of the fixed part of the body */
    uint8_t variable;       /* NOXS_MSGV_* */
    uint8_t has_reply;      /* 1: answered by type | NOXS_MSG_REPLY */
    uint16_t reply_body;    /* size of the fixed part of the reply */
    uint8_t reply_variable; /* NOXS_MSGV_* */
    uint8_t reserved;
};

/* The row of a type (a reply type gives its request's row), or NULL. */
const struct noxs_msg_desc *noxs_proto_desc(unsigned int type);
/* Row i of the table, i < noxs_proto_ndesc(), in type order. */
const struct noxs_msg_desc *noxs_proto_desc_at(size_t i);
size_t noxs_proto_ndesc(void);

/* True for types a receiver may see (requests, replies, items). */
int noxs_proto_type_known(unsigned int type);
const char *noxs_proto_type_name(unsigned int type);

/* ---- building messages ---- */

struct noxs_proto_buf {
    size_t len;
    int overflow; /* a put did not fit: finish fails with -EMSGSIZE */
    uint8_t data[NOXS_PROTO_MAX_MSG];
};

/* Start a message; the header's length is set by noxs_proto_finish(). */
void noxs_proto_begin(struct noxs_proto_buf *b, unsigned int type,
                      uint32_t request, int error);
void noxs_proto_put(struct noxs_proto_buf *b, const void *p, size_t n);
/* One parameter record; -E2BIG/-EINVAL for a bad key or value. */
int noxs_proto_put_param(struct noxs_proto_buf *b, const char *key,
                         const char *value);
/* Set the length; returns it, or -EMSGSIZE. */
int noxs_proto_finish(struct noxs_proto_buf *b);

/* Shorthand: a header-only message. Returns the length. */
int noxs_proto_simple(struct noxs_proto_buf *b, unsigned int type,
                      uint32_t request, int error);

/* Key/value checks shared with the decoder: 0 or -EINVAL/-E2BIG. */
int noxs_proto_check_key(const char *key, size_t len);
int noxs_proto_check_value(const char *value, size_t len);

#endif /* NOXS_PROTO_H */
