/*
 * xsd.c's frame reader, apart so that a byte stream can be fed to it
 * without a daemon (tests/fuzz/fuzz_xsdframe.c). A reader holds at most
 * one whole frame plus what has been read past it.
 */
#ifndef COMPAT_XS_XSDFRAME_H
#define COMPAT_XS_XSDFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gstore.h"
#include "wire.h"

struct cxs_xsd_reader {
    unsigned char buf[sizeof(struct xsw_hdr) + XSW_PAYLOAD_MAX];
    size_t have; /* bytes in buf */
    size_t head; /* start of the first frame not yet taken */
};

void cxs_xsd_reader_init(struct cxs_xsd_reader *r);
/* Where the next read() goes, and how much fits (> 0 unless a whole
 * frame is still untaken). */
unsigned char *cxs_xsd_reader_space(struct cxs_xsd_reader *r, size_t *room);
void cxs_xsd_reader_filled(struct cxs_xsd_reader *r, size_t n);
/*
 * Take the next whole frame: 1 with *h and *payload (valid until the
 * next cxs_xsd_reader_space), 0 if more bytes are needed, -EIO if the
 * header cannot be a daemon's (unknown type, payload over 4096).
 */
int cxs_xsd_reader_next(struct cxs_xsd_reader *r, struct xsw_hdr *h,
                        const unsigned char **payload);
/* A type a daemon may send. */
bool cxs_xsd_type_ok(uint32_t type);
/* A WATCH_EVENT payload: "path\0token\0", path non-empty. */
int cxs_xsd_event_ok(const unsigned char *p, uint32_t len);
/* A connection over fd (a connected socket, or the xenbus device). */
struct cxs_gconn *cxs_xsd_adopt(int fd, bool sock);

#endif /* COMPAT_XS_XSDFRAME_H */
