/*
 * The legacy xenbus-style driver pair: a netfront/netback-like handshake
 * written only against Debian's <xenstore.h> (xs_* calls), so the same
 * binaries run on Debian's libxenstore with the real xenstored and on
 * compat-xs with noxsd. Shared by the backend daemon, the frontend, the
 * toolstack step and bench/compat.
 *
 * Every function returns 0 or -1 with errno set; none prints anything.
 */
#ifndef NOXS_LEGACY_H
#define NOXS_LEGACY_H

#include <stdbool.h>

#include <xenstore.h>

/* XenbusState values (xen/io/xenbus.h). */
#define LEGACY_INITIALISING 1
#define LEGACY_INITWAIT 2
#define LEGACY_INITIALISED 3
#define LEGACY_CONNECTED 4
#define LEGACY_CLOSING 5
#define LEGACY_CLOSED 6

#define LEGACY_PATH_MAX 256

/*
 * A node's value v, as a read returned it (malloc'd; NULL: the read
 * failed, -1 with its errno), as a decimal int (-1/ERANGE if it is not
 * one); v is freed.
 */
int legacy_take_int(char *v, int *out);
/* Read path as an integer (-1/errno on failure, ERANGE if malformed). */
int legacy_read_int(struct xs_handle *xs, xs_transaction_t t,
                    const char *path, int *out);
/* Write an integer / a string node. */
int legacy_write_int(struct xs_handle *xs, xs_transaction_t t,
                     const char *path, int value);
int legacy_write_str(struct xs_handle *xs, xs_transaction_t t,
                     const char *path, const char *value);

/*
 * Wait until the integer at path satisfies value >= min (or is one of
 * Closing/Closed when accept_closing), using a watch on path; timeout_ms
 * < 0 waits forever. Stores the value seen in *out. ETIMEDOUT on timeout.
 */
int legacy_wait_state(struct xs_handle *xs, const char *path, int min,
                      bool accept_closing, int timeout_ms, int *out);

/*
 * body(xs, t, arg) in a transaction, retried while the transaction ends
 * in EAGAIN: 0, or -1 with errno (the transaction aborted if body failed).
 */
int legacy_in_transaction(struct xs_handle *xs,
                          int (*body)(struct xs_handle *, xs_transaction_t,
                                      const void *),
                          const void *arg);

/* ---- toolstack (what libxl does for a vif) ---- */

/* Write the backend and frontend nodes of (fe, class, devid) served by
 * be in one transaction (retried on EAGAIN), with libxl's permissions. */
int legacy_toolstack_add(struct xs_handle *xs, unsigned int fe,
                         const char *cls, unsigned int devid, unsigned int be);
/* The same writes inside the caller's transaction t (not retried). */
int legacy_toolstack_add_in(struct xs_handle *xs, xs_transaction_t t,
                            unsigned int fe, const char *cls,
                            unsigned int devid, unsigned int be);
/* Remove both directories in one transaction. */
int legacy_toolstack_remove(struct xs_handle *xs, unsigned int fe,
                            const char *cls, unsigned int devid,
                            unsigned int be);

/* ---- backend (netback-like) ---- */

/* netback's features and the hotplug script's hotplug-status under the
 * backend directory dir, in one transaction. */
int legacy_back_features(struct xs_handle *xs, const char *dir);

/* ---- frontend (netfront-like) ---- */

struct legacy_front {
    struct xs_handle *xs;
    unsigned int domid;
    char dir[LEGACY_PATH_MAX];     /* /local/domain/<fe>/device/<cls>/<id> */
    char backend[LEGACY_PATH_MAX]; /* read from <dir>/backend */
    int backend_id;
};

/*
 * Connect device (cls, devid) of domain domid over xs: read the backend
 * path, wait for the backend's InitWait, read its features, publish ring
 * refs and the event channel in a transaction (retried on EAGAIN), go
 * Connected and wait until the backend is Connected.
 */
int legacy_front_connect(struct legacy_front *f, struct xs_handle *xs,
                         unsigned int domid, const char *cls,
                         unsigned int devid, int timeout_ms);
/* Closing -> wait for the backend to close -> Closed. */
int legacy_front_close(struct legacy_front *f, int timeout_ms);

#endif /* NOXS_LEGACY_H */
