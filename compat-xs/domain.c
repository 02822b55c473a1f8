/*
 * The domain calls of the toolstack (xs_introduce_domain,
 * xs_release_domain, xs_is_domain_introduced, ...), xs_get_domain_path,
 * the control command and xs_suspend_evtchn_port. Introducing a domain
 * is where it becomes a noxs domain: on a mixed host when its command
 * line has the word "noxs", in the other modes always (docs/COMPAT.md
 * "Modes").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "handle.h"
#include "xsringd.h"

/* "noxs" as a word of the guest's command line (libxl writes it to
 * /vm/<uuid>/image/cmdline before it introduces the domain). */
static bool marked_noxs(struct xs_handle *h, unsigned int domid)
{
    char path[64], *vm = NULL, *cmd = NULL, *full = NULL;
    bool marked = false;

    snprintf(path, sizeof(path), "/local/domain/%u/vm", domid);
    if (cxs_gpath(h->g, XSW_READ, 0, path, &vm, NULL) == 0 &&
        asprintf(&full, "%s/image/cmdline", vm) > 0 &&
        cxs_gpath(h->g, XSW_READ, 0, full, &cmd, NULL) == 0) {
        for (char *w = cmd; *w;) {
            size_t n;

            w += strspn(w, " \t");
            n = strcspn(w, " \t");
            if (n == 4 && memcmp(w, "noxs", 4) == 0)
                marked = true;
            w += n;
        }
    }
    free(vm);
    free(full);
    free(cmd);
    return marked;
}

/* Create domid's device page (EEXIST is fine) and remember it. */
static int noxs_introduce(struct xs_handle *h, unsigned int domid,
                          struct noxs_boot *boot, bool *existed)
{
    noxs_client *c = cxs_ctx_client(h->ctx);

    *existed = false;
    if (!c)
        return -errno;
    if (noxs_domain_create(c, (uint16_t)domid, boot) < 0) {
        if (errno != EEXIST)
            return -errno;
        *existed = true;
    }
    /* Frontends of this domain in this process need no lookup. */
    cxs_boot_remember(domid, boot);
    return 0;
}

/* A domain request: the domid and up to two more arguments. */
static int gdomain_call(struct xs_handle *h, uint32_t type,
                        unsigned int domid, const char *a1, const char *a2,
                        char **reply)
{
    struct cxs_buf b = {.len = 0};
    char num[16];

    snprintf(num, sizeof(num), "%u", domid);
    cxs_buf_str(&b, num);
    if (a1)
        cxs_buf_str(&b, a1);
    if (a2)
        cxs_buf_str(&b, a2);
    return cxs_gcall(h->g, type, 0, &b, reply, NULL);
}

/*
 * Mixed host: xenstored introduces every domain; a guest marked "noxs"
 * also gets its device page, its bootstrap in /local/domain/<d>/noxs
 * (read by the guest before it looks at any device) and a sysctl device
 * for control/shutdown. Local store: a domain that has a store ring is
 * introduced to the local store with its ring (frame and port), where
 * the ring service (noxs-xsringd) finds it and answers the ring, and is
 * otherwise treated as on a mixed host; with no ring service running it
 * is refused rather than left waiting at boot. A domain without a ring
 * is a noxs domain.
 */
CXS_EXPORT bool xs_introduce_domain(struct xs_handle *h, unsigned int domid,
                                    unsigned long mfn, unsigned int eventchn)
{
    struct noxs_boot boot;
    bool existed = false;
    bool ring_local = false;
    int rc = 0;

    if (!h || domid > NOXS_DOMID_MAX)
        return fail(EINVAL);
    cxs_enter();
    if (h->g && cxs_mode(h->ctx->domid) != CXS_MODE_MIXED && mfn) {
        ring_local = true;
        if (cxs_ringd_running(NULL) != 1) {
            cxs_log("domain %u has a XenStore ring, and no xenstored and no "
                    "ring service (noxs-xsringd) run on this host (local "
                    "mode): its kernel would wait at boot for an answer for "
                    "ever. Start noxs-xsringd, or xenstored (mixed mode), "
                    "to run it.",
                    domid);
            rc = -ENOSYS;
        }
    }
    if (rc) {
        /* refused above */
    } else if (h->g && (ring_local ||
                        cxs_mode(h->ctx->domid) == CXS_MODE_MIXED)) {
        char a1[24], a2[16];

        snprintf(a1, sizeof(a1), "%lu", mfn);
        snprintf(a2, sizeof(a2), "%u", eventchn);
        rc = gdomain_call(h, XSW_INTRODUCE, domid, a1, a2, NULL);
        if (rc == 0 && marked_noxs(h, domid)) {
            char word[NOXS_BOOT_MAXLEN + 1], path[64];
            noxs_client *c;

            rc = noxs_introduce(h, domid, &boot, &existed);
            if (rc == 0 && noxs_boot_format(&boot, word, sizeof(word)) < 0)
                rc = -errno;
            snprintf(path, sizeof(path), "/local/domain/%u/noxs", domid);
            if (rc == 0)
                rc = cxs_gwrite(h->g, 0, path, word, (unsigned int)strlen(word));
            if (rc < 0)
                cxs_log("domain %u: cannot give it a device page: %s", domid,
                        strerror(-rc));
            c = cxs_ctx_client(h->ctx);
            if (rc == 0 && c &&
                noxs_dev_add(c, (uint16_t)domid, NOXS_DEV_SYSCTL, 0, 0, NULL,
                             0) < 0 &&
                errno != EEXIST)
                cxs_log("domain %u: no sysctl device (%s): control/shutdown "
                        "will not reach it",
                        domid, strerror(errno));
        }
    } else if (h->g) {
        char a2[16];

        snprintf(a2, sizeof(a2), "%u", eventchn);
        rc = noxs_introduce(h, domid, &boot, &existed);
        if (rc == 0)
            rc = gdomain_call(h, XSW_INTRODUCE, domid, "0", a2, NULL);
    } else {
        rc = noxs_introduce(h, domid, &boot, &existed);
        if (rc == 0)
            cxs_special_own(h->ctx, (uint16_t)domid, false, !existed);
    }
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT bool xs_release_domain(struct xs_handle *h, unsigned int domid)
{
    noxs_client *c;
    int rc = 0;

    if (!h || domid > NOXS_DOMID_MAX)
        return fail(EINVAL);
    cxs_enter();
    if (h->g) {
        rc = gdomain_call(h, XSW_RELEASE, domid, NULL, NULL, NULL);
        if (cxs_noxs_domain(h->ctx, domid) == 1 &&
            (c = cxs_ctx_client(h->ctx)) != NULL &&
            noxs_domain_destroy(c, (uint16_t)domid) < 0 && errno != ENOENT &&
            rc == 0)
            rc = -errno;
        cxs_boot_forget(domid);
        cxs_leave();
        return rc < 0 ? fail(-rc) : true;
    }
    c = cxs_ctx_client(h->ctx);
    if (!c)
        rc = -errno;
    else if (noxs_domain_destroy(c, (uint16_t)domid) < 0)
        rc = -errno;
    cxs_boot_forget(domid);
    if (rc == 0)
        cxs_special_own(h->ctx, (uint16_t)domid, true, true);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT bool xs_is_domain_introduced(struct xs_handle *h,
                                        unsigned int domid)
{
    struct noxs_domain_info *doms = NULL;
    size_t n = 0;
    noxs_client *c;
    bool found = false;

    if (!h)
        return fail(EINVAL);
    cxs_enter();
    if (h->g) {
        char *r = NULL;
        int rc = gdomain_call(h, XSW_IS_DOMAIN_INTRODUCED, domid, NULL, NULL,
                              &r);

        cxs_leave();
        found = rc == 0 && r && strcmp(r, "T") == 0;
        free(r);
        if (rc < 0)
            errno = -rc;
        else if (!found)
            errno = ENOENT;
        return found;
    }
    c = cxs_ctx_client(h->ctx);
    if (c && noxs_domain_list(c, &doms, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (doms[i].domid == domid)
                found = true;
    cxs_leave();
    free(doms);
    if (!found)
        errno = ENOENT;
    return found;
}

CXS_EXPORT bool xs_resume_domain(struct xs_handle *h, unsigned int domid)
{
    int rc;

    if (!h || !h->g)
        return xs_is_domain_introduced(h, domid);
    cxs_enter();
    rc = gdomain_call(h, XSW_RESUME, domid, NULL, NULL, NULL);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT bool xs_set_target(struct xs_handle *h, unsigned int domid,
                              unsigned int target)
{
    char a1[16];
    int rc;

    if (!h || !h->g)
        return fail(ENOSYS);
    snprintf(a1, sizeof(a1), "%u", target);
    cxs_enter();
    rc = gdomain_call(h, XSW_SET_TARGET, domid, a1, NULL, NULL);
    cxs_leave();
    return rc < 0 ? fail(-rc) : true;
}

CXS_EXPORT char *xs_get_domain_path(struct xs_handle *h, unsigned int domid)
{
    char *p;

    if (asprintf(&p, "/local/domain/%u", domid) < 0)
        return NULL;
    return p;
}

/* XS_CONTROL (XS_DEBUG): only xenstored has commands. */
CXS_EXPORT char *xs_control_command(struct xs_handle *h, const char *cmd,
                                    void *data, unsigned int len)
{
    struct cxs_buf b = {.len = 0};
    char *r = NULL;
    int rc;

    if (!h || !cmd)
        return fail_ptr(EINVAL);
    if (!h->g || cxs_mode(h->ctx->domid) != CXS_MODE_MIXED)
        return fail_ptr(ENOSYS);
    rc = cxs_buf_str(&b, cmd);
    if (rc == 0 && len)
        rc = cxs_buf_add(&b, data, len);
    cxs_enter();
    if (rc == 0)
        rc = cxs_gcall(h->g, XSW_CONTROL, 0, &b, &r, NULL);
    cxs_leave();
    return rc < 0 ? fail_ptr(-rc) : r;
}

CXS_EXPORT char *xs_debug_command(struct xs_handle *h, const char *cmd,
                                  void *data, unsigned int len)
{
    return xs_control_command(h, cmd, data, len);
}

/* As libxenstore: the port libxl reads from the guest's
 * device/suspend/event-channel, through a handle of its own. */
CXS_EXPORT int xs_suspend_evtchn_port(int domid)
{
    char path[64], *v, *end;
    struct xs_handle *h;
    unsigned int len;
    long port = -1;

    if (domid < 0 || (h = xs_open(0)) == NULL)
        return -1;
    snprintf(path, sizeof(path), "/local/domain/%d/device/suspend/event-channel",
             domid);
    v = xs_read(h, XBT_NULL, path, &len);
    if (v) {
        port = strtol(v, &end, 10);
        if (end == v || *end || port < 0 || port > INT32_MAX)
            port = -1;
        free(v);
    }
    xs_close(h);
    return (int)port;
}
