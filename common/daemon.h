/*
 * Detaching a daemon after its set-up, not before.
 *
 * daemon(3) forks first, so a daemon that then cannot bind its socket,
 * take its pidfile or register with noxsd fails in a process nobody
 * waits for: the command that started it exits 0 and the reason goes to
 * syslog, if anywhere. Here the command's own process waits:
 *
 *     daemon_start(foreground);   fork; only the child returns
 *     ... set-up; errors go to stderr, fatal() exits 1 ...
 *     daemon_ready();             the waiting parent exits 0
 *
 * The parent exits with the child's status if the child exits before it
 * is ready, so "noxsd; echo $?" says whether noxsd runs. In the
 * foreground (-d; what systemd runs) both calls change nothing.
 */
#ifndef NOXS_COMMON_DAEMON_H
#define NOXS_COMMON_DAEMON_H

void daemon_start(int foreground);
/*
 * Write our pid to path (absolute; written to a temporary name and
 * renamed, so a reader never sees half of it) and remove it when the
 * process exits normally. Exits 1, saying why, if it cannot. For
 * start-stop-daemon, init scripts and a shell that must stop a daemon
 * it started detached.
 */
void daemon_pidfile(const char *path);
/* The child's set-up is done: release the parent, leave the terminal
 * and the current directory, log to syslog from now on. */
void daemon_ready(void);

/*
 * The open-file limit raised to its hard limit: a backend or a frontend
 * serving many guests holds a grant, a port and perhaps a socket each.
 */
void raise_fd_limit(void);
/*
 * SIGPIPE ignored (a peer that went away is an error return, not
 * death), and SIGTERM, SIGINT and, if hup, SIGHUP blocked and delivered
 * to the returned signalfd (non-blocking, close-on-exec), so that a
 * poll loop ends cleanly. fatal() if it cannot.
 */
int daemon_signals(int hup);

#endif /* NOXS_COMMON_DAEMON_H */
