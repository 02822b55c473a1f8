/*
 * The XenStore ring service of a noxs-only dom0 (noxs-xsringd, its man
 * page and docs/XSRINGD.md): what compat-xs and the service share.
 *
 * The service holds an open file description lock on <store>/xsringd.lock
 * for as long as it runs, so a toolstack can tell, before it introduces a
 * domain that has a store ring, whether anyone will answer that ring (a
 * stale pid file could not say so after a kill -9). It also makes the
 * service one per store.
 */
#ifndef COMPAT_XS_XSRINGD_H
#define COMPAT_XS_XSRINGD_H

#define CXS_RINGD_LOCK "xsringd.lock"

/*
 * dir: the local store's directory; NULL: $NOXS_XS_DIR, else the
 * default, as cxs_lstore_open. 1 while a service holds the lock, 0 if
 * none does, -errno if it cannot tell.
 */
int cxs_ringd_running(const char *dir);
/* Take the lock (the service): its fd, or -errno (-EBUSY: taken). */
int cxs_ringd_lock(const char *dir);

#endif /* COMPAT_XS_XSRINGD_H */
