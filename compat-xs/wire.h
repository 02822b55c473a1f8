/*
 * The XenStore wire protocol as docs/misc/xenstore.txt describes it: a
 * 16-byte header of four little-endian-native u32 (type, request id,
 * transaction id, payload length) and a payload of at most 4096 bytes.
 * The numbers are the protocol's; the names are ours.
 */
#ifndef COMPAT_XS_WIRE_H
#define COMPAT_XS_WIRE_H

#include <stdint.h>

enum xsw_type {
    XSW_CONTROL = 0, /* XS_DEBUG in older headers */
    XSW_DIRECTORY = 1,
    XSW_READ = 2,
    XSW_GET_PERMS = 3,
    XSW_WATCH = 4,
    XSW_UNWATCH = 5,
    XSW_TRANSACTION_START = 6,
    XSW_TRANSACTION_END = 7,
    XSW_INTRODUCE = 8,
    XSW_RELEASE = 9,
    XSW_GET_DOMAIN_PATH = 10,
    XSW_WRITE = 11,
    XSW_MKDIR = 12,
    XSW_RM = 13,
    XSW_SET_PERMS = 14,
    XSW_WATCH_EVENT = 15,
    XSW_ERROR = 16,
    XSW_IS_DOMAIN_INTRODUCED = 17,
    XSW_RESUME = 18,
    XSW_SET_TARGET = 19,
    /* 20 was XS_RESTRICT, withdrawn */
    XSW_RESET_WATCHES = 21,
    XSW_DIRECTORY_PART = 22,
    XSW_TYPE_COUNT
};

struct xsw_hdr {
    uint32_t type;
    uint32_t req_id;
    uint32_t tx_id;
    uint32_t len;
};

#define XSW_PAYLOAD_MAX 4096u
#define XSW_ABS_PATH_MAX 3072u
#define XSW_REL_PATH_MAX 2048u

/*
 * Errors travel as their names ("ENOENT"). The name of e, or "EINVAL"
 * for an errno the protocol has no name for; the errno a name stands
 * for, EINVAL for a name it does not know (as libxenstore reads them).
 */
const char *xsw_errno_name(int e);
int xsw_errno_parse(const char *name);

/* The type's name ("READ"), for logs; "?" if out of range. */
const char *xsw_type_name(uint32_t type);

#endif /* COMPAT_XS_WIRE_H */
