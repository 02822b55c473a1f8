/* TEMPORARY: replaced by xsd.c and lstore.c at merge. */
#include <errno.h>
#include "private.h"
struct cxs_gconn *cxs_xsd_open(const char *path, bool readonly) { errno = ENOSYS; return NULL; }
const char *cxs_xsd_default_socket(void) { return "/run/xenstored/socket"; }
struct cxs_gconn *cxs_lstore_open(const char *dir, unsigned int domid) { errno = ENOSYS; return NULL; }
