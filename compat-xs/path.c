/*
 * The XenStore path parser: it decides which page half, if any, a path
 * names. Everything compat-xs supports lives under /local/domain/<d>;
 * anything else is well-formed but CXS_UNSUPPORTED (the caller fails it
 * with the documented errno and logs the path once).
 *
 * It sees hostile input (any string a client passes), so it works on
 * bounded lengths only and never writes beyond the fixed-size fields of
 * struct cxs_path.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

/* Well-known xenbus classes get stable codes; others are hashed into the
 * upper range (docs/COMPAT.md: two unknown classes may collide, then the
 * second device add fails with EEXIST). */
static const char *const known_classes[] = {
    NULL,
    "vif",
    "vbd",
    "console",
    "vkbd",
    "vfb",
    "pci",
    "vtpm",
    "9pfs",
    "vusb",
    "qusb",
    "vsnd",
    "vdispl",
    "qdisk",
    "vscsi",
    "pvcalls",
    "vif2",
    "tap",
    "tap2",
    "vxbt",
    "sysctl",
};
#define NKNOWN (sizeof(known_classes) / sizeof(known_classes[0]))
#define CLASS_CODE_MAX ((1u << (32 - CXS_ID_BITS)) - 1)

uint32_t cxs_devid(const char *cls, uint32_t id)
{
    uint32_t code = 0, h = 2166136261u;

    for (size_t i = 1; i < NKNOWN; i++)
        if (strcmp(cls, known_classes[i]) == 0)
            code = (uint32_t)i;
    if (!code) {
        for (const char *c = cls; *c; c++)
            h = (h ^ (uint8_t)*c) * 16777619u;
        code = 64 + h % (CLASS_CODE_MAX - 64 + 1);
    }
    return code << CXS_ID_BITS | (id & CXS_ID_MAX);
}

const char *cxs_devid_class(uint32_t devid)
{
    uint32_t code = devid >> CXS_ID_BITS;

    return code > 0 && code < NKNOWN ? known_classes[code] : NULL;
}

uint32_t cxs_devid_id(uint32_t devid)
{
    return devid & CXS_ID_MAX;
}

bool cxs_is_child(const char *child, const char *parent)
{
    size_t n = strlen(parent);

    if (n == 1 && parent[0] == '/')
        return child[0] == '/';
    return strncmp(child, parent, n) == 0 &&
           (child[n] == '\0' || child[n] == '/');
}

void cxs_path_device_dir(char *buf, size_t len, uint16_t fe, const char *cls,
                         uint32_t id)
{
    snprintf(buf, len, "/local/domain/%u/device/%s/%u", fe, cls, id);
}

void cxs_path_backend_dir(char *buf, size_t len, uint16_t be, uint16_t fe,
                          const char *cls, uint32_t id)
{
    snprintf(buf, len, "/local/domain/%u/backend/%s/%u/%u", be, cls, fe, id);
}

/* xenstored's valid characters (xs_lib.c: isalnum or "-/_@"). */
static bool valid_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '/' || c == '_' ||
           c == '@';
}

/* A decimal number without leading zeros, <= max. */
static bool parse_uint(const char *s, size_t len, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

#define MAX_COMPONENTS 9

/* A path's components after the leading '/', as pointers into it. */
struct components {
    const char *comp[MAX_COMPONENTS];
    size_t clen[MAX_COMPONENTS], n;
};

static bool comp_is(const struct components *c, size_t i, const char *s)
{
    size_t l = strlen(s);

    return c->clen[i] == l && memcmp(c->comp[i], s, l) == 0;
}

/*
 * The checks every path passes before its components mean anything:
 * length, characters, the two special watch paths, the root. -EINVAL,
 * 0 when that decided the kind, 1 when the path is absolute and has
 * components (len is its length then).
 */
static int check_syntax(const char *path, struct cxs_path *out, size_t *len)
{
    if (!path)
        return -EINVAL;
    *len = strnlen(path, CXS_ABS_PATH_MAX + 1);
    if (*len == 0 || *len > CXS_ABS_PATH_MAX)
        return -EINVAL;
    for (size_t i = 0; i < *len; i++)
        if (!valid_char(path[i]))
            return -EINVAL;
    if (path[0] == '@') {
        if (strcmp(path, "@introduceDomain") == 0 ||
            strcmp(path, "@releaseDomain") == 0) {
            out->kind = CXS_SPECIAL;
            return 0;
        }
        return -EINVAL;
    }
    if (path[0] != '/')
        return -EINVAL;
    if (*len == 1) {
        out->kind = CXS_ROOT;
        return 0;
    }
    if (path[*len - 1] == '/')
        return -EINVAL;
    return 1;
}

/*
 * Split an absolute path of len bytes into c. -EINVAL on an empty
 * component, 0 when it is deeper than anything supported, 1 on success.
 */
static int split_components(const char *path, size_t len,
                            struct components *c)
{
    c->n = 0;
    for (const char *p = path + 1;;) {
        const char *slash = memchr(p, '/', len - (size_t)(p - path));
        size_t l = slash ? (size_t)(slash - p) : len - (size_t)(p - path);

        if (l == 0)
            return -EINVAL; /* "//" */
        if (c->n == MAX_COMPONENTS)
            return 0; /* deeper than anything supported */
        c->comp[c->n] = p;
        c->clen[c->n++] = l;
        if (!slash)
            break;
        p = slash + 1;
    }
    return 1;
}

/* /local/domain/N/control and its keys. */
static int classify_control(const struct components *c, struct cxs_path *out)
{
    if (c->n == 4) {
        out->kind = CXS_CONTROL;
        return 0;
    }
    if (c->n != 5 || c->clen[4] > NOXS_CTRL_KEY_MAX)
        return c->n == 5 ? -E2BIG : 0;
    if (!comp_is(c, 4, "shutdown") &&
        !(c->clen[4] > 8 && memcmp(c->comp[4], "feature-", 8) == 0))
        return 0;
    memcpy(out->key, c->comp[4], c->clen[4]);
    out->kind = CXS_CONTROL_KEY;
    return 0;
}

/* /local/domain/N/backend/... and /local/domain/N/device/... */
static int classify_device(const struct components *c, bool backend,
                           struct cxs_path *out)
{
    size_t i = 5;
    uint32_t v;

    if (c->n == 4) {
        out->kind = backend ? CXS_BACKEND_ROOT : CXS_DEVICE_ROOT;
        return 0;
    }
    if (c->clen[4] > CXS_CLASS_MAX || c->comp[4][0] == '@')
        return 0;
    memcpy(out->cls, c->comp[4], c->clen[4]);
    if (c->n == 5) {
        out->kind = backend ? CXS_BACKEND_CLASS : CXS_DEVICE_CLASS;
        return 0;
    }
    if (backend) {
        if (!parse_uint(c->comp[5], c->clen[5], NOXS_DOMID_MAX, &v))
            return 0;
        out->fe = (uint16_t)v;
        if (c->n == 6) {
            out->kind = CXS_BACKEND_FE;
            return 0;
        }
        i = 6;
    } else {
        out->fe = out->domid;
    }
    if (!parse_uint(c->comp[i], c->clen[i], CXS_ID_MAX, &out->id))
        return 0;
    if (c->n == i + 1) {
        out->kind = backend ? CXS_BACKEND : CXS_DEVICE;
        return 0;
    }
    if (c->n != i + 2 || c->comp[i + 1][0] == CXS_HIDDEN_PREFIX)
        return 0; /* nested keys: not representable in a page half */
    if (c->clen[i + 1] > NOXS_CTRL_KEY_MAX)
        return -E2BIG;
    memcpy(out->key, c->comp[i + 1], c->clen[i + 1]);
    out->kind = backend ? CXS_BACKEND_KEY : CXS_DEVICE_KEY;
    return 0;
}

int cxs_path_parse(const char *path, struct cxs_path *out)
{
    struct components c;
    size_t len;
    uint32_t v;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = check_syntax(path, out, &len)) <= 0)
        return rc;
    if ((rc = split_components(path, len, &c)) <= 0)
        return rc;
    if (!comp_is(&c, 0, "local"))
        return 0;
    if (c.n == 1) {
        out->kind = CXS_LOCAL;
        return 0;
    }
    if (!comp_is(&c, 1, "domain"))
        return 0;
    if (c.n == 2) {
        out->kind = CXS_LOCAL_DOMAIN;
        return 0;
    }
    if (!parse_uint(c.comp[2], c.clen[2], NOXS_DOMID_MAX, &v))
        return 0;
    out->domid = (uint16_t)v;
    if (c.n == 3) {
        out->kind = CXS_DOMAIN;
        return 0;
    }
    if (comp_is(&c, 3, "control"))
        return classify_control(&c, out);
    if (!comp_is(&c, 3, "backend") && !comp_is(&c, 3, "device"))
        return 0;
    return classify_device(&c, comp_is(&c, 3, "backend"), out);
}
