/*
 * libFuzzer target: noxsd's wire-protocol decoder (libnoxs/proto.c), the
 * only code that reads bytes from other processes on the control socket.
 * Whatever it accepts must also be internally consistent: strings are
 * NUL-terminated within their bounds, counts within their limits, and a
 * message re-encoded from a decoded DEV_ADD decodes to the same thing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct noxs_proto_msg m, m2;
    static struct noxs_proto_buf b;
    size_t i;
    int rc;

    rc = noxs_proto_decode(data, size, &m);
    if (rc != 0)
        return 0;
    if (m.hdr.length != size || m.nparams > NOXS_PROTO_MAX_PARAMS)
        abort();
    for (i = 0; i < m.nparams; i++)
        if (strlen(m.params[i].key) > NOXS_CTRL_KEY_MAX ||
            strlen(m.params[i].value) > NOXS_CTRL_VALUE_MAX)
            abort();
    if (m.hdr.type == NOXS_MSG_BACKEND_SYNC) {
        struct noxs_msg_dev d;
        for (i = 0; i < m.u.sync.count; i++)
            noxs_proto_sync_item(&m, i, &d);
    }
    if (m.hdr.type == NOXS_MSG_DEV_ADD) {
        noxs_proto_begin(&b, NOXS_MSG_DEV_ADD, m.hdr.request, 0);
        noxs_proto_put(&b, &m.u.dev_add, sizeof(m.u.dev_add));
        for (i = 0; i < m.nparams; i++)
            if (noxs_proto_put_param(&b, m.params[i].key,
                                     m.params[i].value) < 0)
                abort();
        if (noxs_proto_finish(&b) != (int)size ||
            memcmp(b.data, data, size) != 0 ||
            noxs_proto_decode(b.data, b.len, &m2) != 0)
            abort();
    }
    return 0;
}
