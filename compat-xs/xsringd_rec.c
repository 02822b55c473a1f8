/*
 * The ring service's own dom0 connection to the local store, and the
 * watch records that let a restarted service set a ring's watches again
 * (docs/XSRINGD.md "Restarts"). A socket client has none: its watches
 * end with its connection, as with xenstored.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "xsringd_int.h"


/* One request on a connection; the reply's type, its payload (malloc'd). */
int call(struct cxs_gconn *g, uint32_t type, const void *p, uint32_t len,
         uint32_t *rtype, char **reply, uint32_t *rlen)
{
    return g->ops->request(g, type, 0, p, len, rtype, reply, rlen);
}

/* A dom0 request on the service's own connection; 0 or -errno. */
int ctl_call(uint32_t type, const void *p, uint32_t len, char **reply,
             uint32_t *rlen)
{
    uint32_t rt, rl;
    char *r = NULL;
    int rc = call(ctl, type, p, len, &rt, &r, &rl);

    if (rc == 0 && rt == XSW_ERROR)
        rc = -xsw_errno_parse(r);
    if (rc == 0 && reply) {
        *reply = r;
        if (rlen)
            *rlen = rl;
        return 0;
    }
    free(r);
    return rc;
}

static int ctl_write(const char *path, const void *val, uint32_t vlen)
{
    size_t pl = strlen(path) + 1;
    char *b = malloc(pl + vlen);
    int rc;

    if (!b)
        return -ENOMEM;
    memcpy(b, path, pl);
    memcpy(b + pl, val, vlen);
    rc = ctl_call(XSW_WRITE, b, (uint32_t)(pl + vlen), NULL, NULL);
    free(b);
    return rc;
}

int ctl_rm(const char *path)
{
    int rc = ctl_call(XSW_RM, path, (uint32_t)strlen(path) + 1, NULL, NULL);

    return rc == -ENOENT ? 0 : rc;
}

/* ---- watch records --------------------------------------------------- */

void rec_dir(const struct conn *d, char *b, size_t n)
{
    snprintf(b, n, REC_ROOT "/%u", d->domid);
}

static int pw_add(struct conn *d, uint32_t id, const char *p, uint32_t len)
{
    struct pwatch *v = realloc(d->pw, (d->npw + 1) * sizeof(*v));
    char *c = malloc(len);

    if (!v || !c) {
        free(c);
        if (v)
            d->pw = v;
        return -ENOMEM;
    }
    d->pw = v;
    memcpy(c, p, len);
    d->pw[d->npw++] = (struct pwatch){.id = id, .len = len, .payload = c};
    if (id >= d->wseq)
        d->wseq = id + 1;
    return 0;
}

void pw_clear(struct conn *d)
{
    for (size_t i = 0; i < d->npw; i++)
        free(d->pw[i].payload);
    free(d->pw);
    d->pw = NULL;
    d->npw = 0;
}

/* A watch the guest set: recorded so a restarted service sets it again. */
void rec_watch(struct conn *d, const char *p, uint32_t len)
{
    char path[96];
    uint32_t id = d->wseq;

    if (d->sfd >= 0) {
        /* Counted only: it ends with the client's connection. */
        pw_add(d, id, p, len);
        return;
    }
    rec_dir(d, path, sizeof(path));
    snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%u", id);
    if (ctl_write(path, p, len) < 0 || pw_add(d, id, p, len) < 0)
        log_warnx("domain %u: cannot record a watch: it is lost if the "
                  "service restarts",
                  d->domid);
}

void rec_unwatch(struct conn *d, const char *p, uint32_t len)
{
    char path[96];

    for (size_t i = 0; i < d->npw; i++) {
        if (d->pw[i].len != len || memcmp(d->pw[i].payload, p, len) != 0)
            continue;
        rec_dir(d, path, sizeof(path));
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%u",
                 d->pw[i].id);
        if (d->sfd < 0)
            ctl_rm(path);
        free(d->pw[i].payload);
        d->pw[i] = d->pw[--d->npw];
        return;
    }
}

/* Forget every watch record of d, and record which ring they belong to. */
void rec_reset(struct conn *d)
{
    char path[64], tag[48];

    pw_clear(d);
    if (d->sfd >= 0)
        return;
    rec_dir(d, path, sizeof(path));
    ctl_rm(path);
    snprintf(tag, sizeof(tag), "%" PRIu64 ":%u", d->mfn, d->port);
    ctl_write(path, tag, (uint32_t)strlen(tag));
}

/*
 * Set again the watches recorded for d, if the records are of this ring
 * (the same frame and port); otherwise start d's records afresh.
 */
void rec_restore(struct conn *d)
{
    char dir[64], tag[48], *v = NULL, *list = NULL;
    uint32_t vl = 0, ll = 0;

    rec_dir(d, dir, sizeof(dir));
    snprintf(tag, sizeof(tag), "%" PRIu64 ":%u", d->mfn, d->port);
    if (ctl_call(XSW_READ, dir, (uint32_t)strlen(dir) + 1, &v, &vl) < 0 ||
        vl != strlen(tag) || memcmp(v, tag, vl) != 0 ||
        ctl_call(XSW_DIRECTORY, dir, (uint32_t)strlen(dir) + 1, &list, &ll) <
            0) {
        free(v);
        rec_reset(d);
        return;
    }
    free(v);
    for (uint32_t o = 0; o < ll;) {
        const char *name = list + o;
        size_t nl = strnlen(name, ll - o);
        char path[96], *w = NULL;
        uint32_t wl = 0, rt, rl;
        char *r = NULL;

        o += (uint32_t)nl + 1;
        if (nl == 0 || nl > 10)
            continue;
        snprintf(path, sizeof(path), "%s/%.*s", dir, (int)nl, name);
        if (ctl_call(XSW_READ, path, (uint32_t)strlen(path) + 1, &w, &wl) < 0)
            continue;
        if (call(d->g, XSW_WATCH, w, wl, &rt, &r, &rl) == 0 &&
            rt == XSW_WATCH) {
            d->watching = d->evq = true;
            if (pw_add(d, (uint32_t)strtoul(name, NULL, 10), w, wl) < 0)
                ctl_rm(path);
        } else {
            log_warnx("domain %u: a watch could not be set again (%s): "
                      "its events are lost",
                      d->domid, r && rt == XSW_ERROR ? r : "no reply");
            ctl_rm(path);
        }
        free(r);
        free(w);
    }
    free(list);
    log_info("domain %u: %zu watches set again", d->domid, d->npw);
}
