/*
 * xsmixed: a toolstack step on both stores of a mixed host, through the
 * xs_* API only, as libxl adds a device: its own record under
 * /libxl/<d>/device/<class>/<id> (the generic store) and the frontend
 * and backend directories (device pages, for a noxs domain) in one
 * transaction.
 *
 *   xsmixed add D ID            commit once; exit 0
 *   xsmixed add D ID conflict   another connection changes a node the
 *                               transaction read before it ends: exit 3
 *                               if the commit failed with EAGAIN
 * Exit 1 on any other failure (message on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

static int put(struct xs_handle *h, xs_transaction_t t, const char *dir,
               const char *key, const char *value)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", dir, key);
    if (!xs_write(h, t, path, value, (unsigned int)strlen(value))) {
        fprintf(stderr, "xsmixed: write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char fe[128], be[128], rec[128], guard[64], id[16], fid[16];
    struct xs_handle *h, *other = NULL;
    xs_transaction_t t;
    unsigned int d, n, len;
    bool conflict;
    char *v;

    if (argc < 4 || strcmp(argv[1], "add") != 0) {
        fprintf(stderr, "usage: xsmixed add D ID [conflict]\n");
        return 2;
    }
    d = (unsigned int)atoi(argv[2]);
    n = (unsigned int)atoi(argv[3]);
    conflict = argc > 4 && strcmp(argv[4], "conflict") == 0;
    snprintf(fe, sizeof(fe), "/local/domain/%u/device/vif/%u", d, n);
    snprintf(be, sizeof(be), "/local/domain/0/backend/vif/%u/%u", d, n);
    snprintf(rec, sizeof(rec), "/libxl/%u/device/vif/%u", d, n);
    snprintf(guard, sizeof(guard), "/libxl/%u/guard", d);
    snprintf(id, sizeof(id), "%u", n);
    snprintf(fid, sizeof(fid), "%u", d);

    if (!(h = xs_open(0)) || (conflict && !(other = xs_open(0)))) {
        fprintf(stderr, "xsmixed: xs_open: %s\n", strerror(errno));
        return 1;
    }
    if (!xs_write(h, XBT_NULL, guard, "0", 1)) {
        fprintf(stderr, "xsmixed: write %s: %s\n", guard, strerror(errno));
        return 1;
    }
    if ((t = xs_transaction_start(h)) == XBT_NULL) {
        fprintf(stderr, "xsmixed: transaction: %s\n", strerror(errno));
        return 1;
    }
    v = xs_read(h, t, guard, &len);
    free(v);
    if (put(h, t, rec, "frontend", fe) || put(h, t, rec, "backend", be) ||
        put(h, t, be, "frontend", fe) || put(h, t, be, "frontend-id", fid) ||
        put(h, t, be, "state", "1") || put(h, t, be, "mac", "00:16:3e:00:00:01") ||
        put(h, t, fe, "backend", be) || put(h, t, fe, "backend-id", "0") ||
        put(h, t, fe, "state", "1") || put(h, t, fe, "handle", id))
        return 1;
    if (conflict && !xs_write(other, XBT_NULL, guard, "1", 1)) {
        fprintf(stderr, "xsmixed: write %s: %s\n", guard, strerror(errno));
        return 1;
    }
    if (!xs_transaction_end(h, t, false)) {
        int e = errno;
        fprintf(stderr, "xsmixed: commit: %s\n", strerror(e));
        return e == EAGAIN ? 3 : 1;
    }
    xs_close(h);
    if (other)
        xs_close(other);
    return 0;
}
