/*
 * libFuzzer target: compat-xs's xenstored client (compat-xs/xsd.c), the
 * code that reads what a daemon sends. The input is the daemon's side of
 * the stream, written to a socket pair and ended; the client makes
 * requests and takes events until it fails. It must never crash or hang
 * (EOF ends every wait), and whatever it hands out must be well formed.
 * The bare frame reader is fed the same bytes in uneven pieces first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xsdframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reader_alone(const uint8_t *data, size_t size)
{
    static struct cxs_xsd_reader r;
    struct xsw_hdr h;
    const unsigned char *p;
    size_t off = 0, step = 1;
    int rc = 0;

    cxs_xsd_reader_init(&r);
    while (off < size && rc >= 0) {
        size_t room, n;
        unsigned char *space = cxs_xsd_reader_space(&r, &room);

        if (room == 0)
            abort();
        n = size - off < room ? size - off : room;
        n = n < step ? n : step;
        step = step * 3 + 1; /* uneven pieces */
        memcpy(space, data + off, n);
        off += n;
        cxs_xsd_reader_filled(&r, n);
        while ((rc = cxs_xsd_reader_next(&r, &h, &p)) > 0)
            if (h.len > XSW_PAYLOAD_MAX || !cxs_xsd_type_ok(h.type) ||
                p < r.buf || p + h.len > r.buf + r.have)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cxs_gconn *c;
    int sv[2];

    /* What fits a socket's buffer without a reader on the far side. */
    if (size > 16384)
        return 0;
    reader_alone(data, size);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (size && write(sv[1], data, size) != (ssize_t)size)
        abort();
    shutdown(sv[1], SHUT_WR);
    c = cxs_xsd_adopt(sv[0], true);
    if (!c)
        abort();
    for (int i = 0;; i++) {
        uint32_t type, len;
        char *body;
        int rc;

        while ((rc = c->ops->next_event(c, &body, &len)) == 0) {
            size_t a = strlen(body);
            if (a == 0 || a + 1 >= len || body[len] != '\0' ||
                strlen(body + a + 1) + a + 2 != len)
                abort();
            free(body);
        }
        if (rc != -EAGAIN && rc != -ECONNRESET && rc != -EIO)
            abort();
        rc = c->ops->request(c, i % 2 ? XSW_READ : XSW_WATCH, 0, "/a\0t", 5,
                             &type, &body, &len);
        if (rc < 0) {
            if (rc != -ECONNRESET && rc != -EIO)
                abort();
            break;
        }
        if ((type != XSW_ERROR && type != (i % 2 ? XSW_READ : XSW_WATCH)) ||
            body[len] != '\0')
            abort();
        free(body);
    }
    c->ops->close(c);
    close(sv[1]);
    return 0;
}
