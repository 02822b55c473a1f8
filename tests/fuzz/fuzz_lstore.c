/*
 * libFuzzer target: XenStore requests of any type and payload against
 * the local store (compat-xs/lstore*.c), from dom0 and from a guest,
 * inside and outside transactions, with watch events drained after
 * each. Input: type byte, flags byte, payload.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../compat-xs/lstore.h"

static struct cxs_gconn *conn[2];
static uint32_t txid[2];

static char dir[256];

static void cleanup(void)
{
    static const char *const files[] = {"data.mdb", "lock.mdb", "bell",
                                        "boot_id", "init.lock"};
    char p[300];

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void init(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/fuzz-lstore.XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    conn[0] = cxs_lstore_open(dir, 0);
    conn[1] = cxs_lstore_open(dir, 5);
    if (!conn[0] || !conn[1])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t rt, rl, len, type;
    char *r;

    if (!conn[0])
        init();
    if (size < 2 || size - 2 > XSW_PAYLOAD_MAX + 8)
        return 0;
    type = data[0] % (XSW_TYPE_COUNT + 2);
    int who = data[1] & 1;
    struct cxs_gconn *c = conn[who];
    uint32_t tx = (data[1] & 2) ? txid[who] : 0;
    if (data[1] & 4)
        tx = data[1] >> 3;
    len = size - 2;
    if (c->ops->request(c, type, tx, data + 2, len, &rt, &r, &rl) != 0)
        abort();
    if (r[rl] != '\0' || (rt != type && rt != XSW_ERROR))
        abort();
    if (type == XSW_TRANSACTION_START && rt == type)
        txid[who] = (uint32_t)strtoul(r, NULL, 10);
    free(r);
    for (int i = 0; i < 10000; i++) {
        char *p;
        uint32_t n;
        if (c->ops->next_event(c, &p, &n) != 0)
            break;
        if (n < 2 || p[n - 1] != '\0' || p[n] != '\0')
            abort();
        free(p);
    }
    return 0;
}
