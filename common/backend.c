/*
 * The start of a backend daemon (see backend.h).
 */
#include <stdlib.h>

#include <noxs/noxs.h>

#include "common/backend.h"
#include "common/daemon.h"
#include "common/log.h"

int backend_start(int argc, char **argv, const struct option *longopts,
                  struct opt_daemon *d, int hup)
{
    int status = opt_daemon_parse(argc, argv, longopts, d);

    if (status >= 0)
        exit(status);
    log_init(d->prog, d->verbose);
    noxs_set_logger(log_library);
    daemon_start(d->foreground);
    daemon_pidfile(d->pidfile);
    raise_fd_limit();
    return daemon_signals(hup);
}

noxs_backend *backend_register(const char *socket, unsigned int type,
                               const struct noxs_backend_ops *ops)
{
    noxs_backend *b;
    const char *env = getenv("NOXS_SOCKET");

    b = noxs_backend_open_flags(socket, &type, 1, ops, NULL,
                                NOXS_BACKEND_RESUMABLE);
    if (b == NULL) {
        /* An error the operator can fix (LOG_ERR), not a crash. */
        if (socket == NULL)
            socket = env != NULL ? env : NOXS_DEFAULT_SOCKET;
        log_warn("cannot register with noxsd at %s", socket);
        exit(1);
    }
    return b;
}
