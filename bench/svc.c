/* svc: see svc.h. */
#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <noxs/noxs.h>

void bench_services_stop(const pid_t *pids, size_t n, const char *tmpdir,
                         const char *prog)
{
    char cmd[PATH_MAX];
    FILE *f;
    int keeper = 0;

    while (n-- > 0) {
        if (pids[n] > 0) {
            kill(pids[n], SIGTERM);
            waitpid(pids[n], NULL, 0);
        }
    }
    if (tmpdir[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "%s/state/keeper.pid", tmpdir);
    f = fopen(cmd, "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &keeper) == 1 && keeper > 1)
            kill((pid_t)keeper, SIGTERM);
        fclose(f);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "%s: could not remove %s\n", prog, tmpdir);
}

static void *drain(void *arg)
{
    char line[256];

    while (fgets(line, sizeof(line), arg))
        ;
    return NULL;
}

pid_t bench_legacy_back_start(char *const *args)
{
    const char *build = getenv("NOXS_BUILD");
    char path[PATH_MAX], line[256];
    char *argv[16] = {"legacy-back"};
    size_t n = 1;
    int fds[2];
    pid_t pid;
    FILE *f;

    while (args && args[n - 1] && n < 15) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    snprintf(path, sizeof(path), "%s/bin/legacy-back", build ? build : "build");
    if (pipe(fds) < 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        setenv("NOXS_SIM_DOMID", "0", 1);
        execv(path, argv);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "ready", 5) == 0) {
            pthread_t t;

            if (pthread_create(&t, NULL, drain, f) == 0)
                pthread_detach(t);
            return pid;
        }
    errno = EPIPE;
    return -1;
}

double bench_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

pid_t bench_spawn(char **argv, int null_stdin)
{
    pid_t pid = fork();

    if (pid < 0) {
        bench_die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        if (null_stdin) {
            int null = open("/dev/null", O_RDWR);

            dup2(null, STDIN_FILENO);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program_invocation_short_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

struct noxs_client *bench_noxsd_start(const char *bin, const char *tmpdir,
                                      int null_stdin, char *sock, pid_t *pid)
{
    char path[PATH_MAX], state[PATH_MAX];
    noxs_client *c;

    snprintf(sock, PATH_MAX, "%s/noxsd.sock", tmpdir);
    snprintf(state, sizeof(state), "%s/state", tmpdir);
    snprintf(path, sizeof(path), "%s/noxsd", bin);
    mkdir(state, 0700);
    setenv("NOXS_SOCKET", sock, 1);
    char *argv[] = {path, "-d", "--socket", sock, "--state-dir", state, NULL};
    *pid = bench_spawn(argv, null_stdin);
    for (int i = 0; (c = noxs_client_open(sock)) == NULL; i++) {
        if (i > 1000)
            bench_die("noxsd did not start");
        usleep(10000);
    }
    return c;
}

pid_t bench_backend_start(struct noxs_client *c, char **argv,
                          int null_stdin)
{
    return bench_backend_start_nth(c, argv, null_stdin, 1);
}

pid_t bench_backend_start_nth(struct noxs_client *c, char **argv,
                              int null_stdin, unsigned int nth)
{
    struct noxs_status st;
    pid_t pid = bench_spawn(argv, null_stdin);

    for (int i = 0; noxs_status_get(c, &st) < 0 || st.nbackends < nth; i++) {
        if (i > 1000)
            bench_die("the backend did not register");
        usleep(10000);
    }
    return pid;
}
