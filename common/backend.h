/*
 * The start of a backend daemon, the same in every reference backend:
 *
 *     sfd = backend_start(argc, argv, longopts, &opts, hup);
 *                          options, logging, detaching, pidfile, fd
 *                          limit, signals
 *     ... the backend's own set-up ...
 *     b = backend_register(opts.socket, type, &ops);
 *     daemon_ready();
 *
 * Registration comes before daemon_ready, so a backend that cannot
 * register says why on stderr and the command that started it exits 1.
 */
#ifndef NOXS_COMMON_BACKEND_H
#define NOXS_COMMON_BACKEND_H

#include <noxs/noxs.h>

#include "common/parse.h"

/*
 * The command line (opt_daemon_parse with longopts; exits with its
 * status if it ends there: --help, --version, a usage error), then the
 * daemon's start: the signalfd of daemon_signals(hup). Exits 1 on
 * failure.
 */
struct option;
int backend_start(int argc, char **argv, const struct option *longopts,
                  struct opt_daemon *d, int hup);
/*
 * Registered with noxsd at socket (NULL: $NOXS_SOCKET, else the default)
 * for one device type, resumable (a restarted backend takes its devices
 * back); exits 1, naming the socket, if it cannot.
 */
noxs_backend *backend_register(const char *socket, unsigned int type,
                               const struct noxs_backend_ops *ops);

#endif /* NOXS_COMMON_BACKEND_H */
