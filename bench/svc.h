/*
 * svc: what the benchmarks share about the services they start: the
 * driver benchmarks (bench/blk.c, bench/console.c) their noxsd and
 * backend in a temporary directory, the legacy-pair benchmarks
 * (bench/compat.c, bench/xsbringup.c) the legacy backend.
 */
#ifndef NOXS_BENCH_SVC_H
#define NOXS_BENCH_SVC_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Stop what a benchmark started: SIGTERM and reap pids[n-1] .. pids[0]
 * (entries <= 0 are skipped), stop noxsd's page keeper (it stays up on
 * SIGTERM by design, and would outlive us holding our stdout) from
 * TMPDIR/state/keeper.pid, then remove TMPDIR (if not empty). PROG
 * prefixes the message when the removal fails.
 */
void bench_services_stop(const pid_t *pids, size_t n, const char *tmpdir,
                         const char *prog);

/*
 * Start $NOXS_BUILD/bin/legacy-back (default build/) as domain 0 with the
 * NULL-terminated extra arguments ARGS (may be NULL), wait for its
 * "ready" line, and keep draining its stdout from a detached thread (it
 * prints a line per transition and must never block on a full pipe).
 * The pid, or -1 with errno set.
 */
pid_t bench_legacy_back_start(char *const *args);

/* "PROG: " fmt on stderr, and exit(1). */
void bench_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
/* The monotonic clock in seconds. */
double bench_now_s(void);
/*
 * Run argv[0] (a path) with argv, its stdin /dev/null if null_stdin (a
 * daemon that must not take the benchmark's terminal). The pid; exits 1,
 * saying why, if it cannot fork.
 */
pid_t bench_spawn(char **argv, int null_stdin);

/*
 * Start BIN/noxsd on TMPDIR/noxsd.sock (exported as NOXS_SOCKET; its path
 * into sock[PATH_MAX]) with its state in TMPDIR/state, its pid in *pid,
 * and wait until it answers: a client of it. Exits 1, saying why, if it
 * does not start within about 10 s.
 */
struct noxs_client;
struct noxs_client *bench_noxsd_start(const char *bin, const char *tmpdir,
                                      int null_stdin, char *sock,
                                      pid_t *pid);
/*
 * Start the backend argv and wait until noxsd (client c) counts a
 * registered backend: its pid. Exits 1, saying why, if none registers
 * within about 10 s.
 */
pid_t bench_backend_start(struct noxs_client *c, char **argv,
                          int null_stdin);
/* The same for the nth backend of a benchmark that starts several: wait
 * until noxsd counts nth registered backends. */
pid_t bench_backend_start_nth(struct noxs_client *c, char **argv,
                              int null_stdin, unsigned int nth);

#endif
