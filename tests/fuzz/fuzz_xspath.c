/*
 * libFuzzer target for compat-xs's path parser: any byte string, as a
 * client could pass it to xs_read/xs_write/xs_watch. The parser must not
 * read or write out of bounds, and what it accepts must be consistent:
 * the canonical directory of a parsed device or backend path parses back
 * to the same device, and devid encoding keeps the id.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../compat-xs/private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct cxs_path p, q;
    char dir[CXS_ABS_PATH_MAX];

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (cxs_path_parse(s, &p) == 0) {
        assert(strlen(p.cls) <= CXS_CLASS_MAX);
        assert(strlen(p.key) <= NOXS_CTRL_KEY_MAX);
        if (p.kind >= CXS_DEVICE && p.kind <= CXS_DEVICE_KEY) {
            cxs_path_device_dir(dir, sizeof(dir), p.fe, p.cls, p.id);
            assert(cxs_path_parse(dir, &q) == 0 && q.kind == CXS_DEVICE);
            assert(q.fe == p.fe && q.id == p.id && !strcmp(q.cls, p.cls));
            assert(cxs_is_child(s, dir));
        }
        if (p.kind >= CXS_BACKEND && p.kind <= CXS_BACKEND_KEY) {
            cxs_path_backend_dir(dir, sizeof(dir), p.domid, p.fe, p.cls, p.id);
            assert(cxs_path_parse(dir, &q) == 0 && q.kind == CXS_BACKEND);
            assert(q.fe == p.fe && q.id == p.id && q.domid == p.domid);
        }
        if (p.cls[0])
            assert(cxs_devid_id(cxs_devid(p.cls, p.id)) == p.id);
    }
    free(s);
    return 0;
}
