/*
 * The generic store behind compat-xs: every path that is not a noxs
 * domain's device, backend or control path (names, /vm, /libxl,
 * /local/pool, memory/target, console 0, ...).
 *
 * Two implementations speak one interface, the XenStore wire message
 * (docs/misc/xenstore.txt): a request is a type, a transaction id and a
 * payload exactly as on the wire; the answer is a reply of the same
 * type, or XSW_ERROR with an errno name ("ENOENT\0") as payload.
 *
 *   xsd.c     a client of the real xenstored (its Unix socket, or the
 *             kernel's xenbus device in a guest): the mixed host.
 *   lstore.c  a local store every dom0 process shares through an LMDB
 *             environment, with no daemon on its path: the noxs-only
 *             host. It serves a request with the identity (domid) the
 *             connection was opened for, so the same code can serve a
 *             guest's store ring.
 *
 * Both are thread-safe per connection (libxenstore handles are shared
 * between threads) and never call back into the API files (handle.h).
 */
#ifndef COMPAT_XS_GSTORE_H
#define COMPAT_XS_GSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct cxs_gconn;

struct cxs_gstore_ops {
    const char *name; /* "xenstored", "local" */
    /*
     * One request. payload/len as on the wire (NUL separators and
     * terminators included, as libxenstore sends them). On 0: *rtype is
     * the request's type or XSW_ERROR, *reply a malloc'd buffer of *rlen
     * bytes plus a NUL the caller may rely on. -errno only when the
     * store cannot be reached at all (then the handle is unusable:
     * -ECONNRESET, -EIO, ...). XSW_WATCH_EVENT is never returned here.
     * XSW_WATCH / XSW_UNWATCH register with this connection; their
     * events are read with next_event.
     */
    int (*request)(struct cxs_gconn *c, uint32_t type, uint32_t tx,
                   const void *payload, uint32_t len, uint32_t *rtype,
                   char **reply, uint32_t *rlen);
    /*
     * An fd to poll for events (level-triggered, readable while the
     * connection has something to process). next_event never blocks:
     * 0 and one event (payload "path\0token\0", malloc'd, *len bytes)
     * or -EAGAIN when there is none (readiness may have been spurious),
     * or the connection's -errno once it has failed and nothing is left
     * queued (the fd then stays readable, as a closed socket does).
     * A watch fires once when set, as xenstored does.
     */
    int (*event_fd)(struct cxs_gconn *c);
    int (*next_event)(struct cxs_gconn *c, char **payload, uint32_t *len);
    void (*close)(struct cxs_gconn *c);
};

struct cxs_gconn {
    const struct cxs_gstore_ops *ops;
};

/*
 * xsd.c. path: a Unix socket, or a xenbus character device
 * (/dev/xen/xenbus) which is opened as a file; NULL: the default that
 * Debian's libxenstore would use ($XENSTORED_PATH, else
 * /var/run/xenstored/socket, else /dev/xen/xenbus). NULL with errno.
 */
struct cxs_gconn *cxs_xsd_open(const char *path, bool readonly);
/* The socket path the default above would try first (not opened). */
const char *cxs_xsd_default_socket(void);

/*
 * lstore.c. dir: the store's directory (created 0700 if missing); NULL:
 * $NOXS_XS_DIR, else /var/lib/noxs/xenstore. domid: whose permissions
 * the connection's requests run with (0: dom0, every permission).
 * NULL with errno.
 */
struct cxs_gconn *cxs_lstore_open(const char *dir, unsigned int domid);

/*
 * lstore.c: the domains introduced to the local store (INTRODUCE, until
 * RELEASE), with the store frame and event channel each was introduced
 * with, in domid order. g: a connection of cxs_lstore_open. 0 and a
 * malloc'd array (caller frees), or -errno.
 */
struct cxs_ldom {
    unsigned int domid;
    uint32_t port;
    uint64_t mfn; /* 0: no store ring */
};
int cxs_lstore_domains(struct cxs_gconn *g, struct cxs_ldom **out, size_t *n);

/*
 * lstore.c: the store's bell as this process follows it, for a caller
 * that serves many connections from one loop (noxs-xsringd) instead of
 * polling each connection's event_fd: one fd per store and process,
 * however many connections (an inotify instance on the store's bell
 * file), readable when some process committed since it was last
 * drained. g: any connection on the store. cxs_lstore_bell_fd: the fd
 * (the store's: not to be closed) or -errno. cxs_lstore_bell_drain:
 * drains it and returns the bell's generation, which grows at every
 * drain that found a commit, by this call or by any connection's
 * next_event in the process; while it is unchanged, a connection that
 * never asked for its event_fd has no new event (other than a watch's
 * first one, queued by the WATCH itself). Once the bell's fd was asked
 * for, such a connection's next_event no longer drains the bell itself:
 * it sees the commits of the drains before it (the caller drains, then
 * looks at its connections).
 */
int cxs_lstore_bell_fd(struct cxs_gconn *g);
uint64_t cxs_lstore_bell_drain(struct cxs_gconn *g);

#endif /* COMPAT_XS_GSTORE_H */
