/*
 * Detaching after the set-up (see daemon.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/daemon.h"
#include "common/log.h"

static int ready_fd = -1;

void daemon_start(int foreground)
{
    int p[2], status;
    pid_t pid;
    ssize_t n;
    char c;

    if (foreground)
        return;
    if (pipe2(p, O_CLOEXEC) < 0)
        fatal("pipe");
    if ((pid = fork()) < 0)
        fatal("fork");
    if (pid == 0) {
        close(p[0]);
        ready_fd = p[1];
        setsid();
        log_detaching();
        return;
    }
    /* The parent: wait for "ready" or for the child's end. */
    close(p[1]);
    do
        n = read(p[0], &c, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1)
        _exit(0);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            _exit(1);
    }
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    log_warnx("died during start-up: %s",
              WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "?");
    _exit(1);
}

static char *pidfile;
static pid_t pidfile_owner;

static void pidfile_remove(void)
{
    /* Not a child that returned from a fork (it has no pidfile). */
    if (pidfile != NULL && getpid() == pidfile_owner)
        unlink(pidfile);
}

void daemon_pidfile(const char *path)
{
    char tmp[4096];
    FILE *f;

    if (path == NULL)
        return;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        fatalx("pidfile %s: path too long", path);
    if ((f = fopen(tmp, "we")) == NULL)
        fatal("pidfile %s", tmp);
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        fatal("pidfile %s", path);
    }
    if ((pidfile = strdup(path)) == NULL)
        fatal("pidfile");
    pidfile_owner = getpid();
    atexit(pidfile_remove);
}

void daemon_ready(void)
{
    char c = 0;
    int fd;

    if (ready_fd < 0)
        return;
    if (chdir("/") < 0) {
        /* "/" is always there; nothing would depend on it. */
    }
    log_detach();
    if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    while (write(ready_fd, &c, 1) < 0 && errno == EINTR)
        ;
    close(ready_fd);
    ready_fd = -1;
}

void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int daemon_signals(int hup)
{
    sigset_t mask;
    int fd;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (hup)
        sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    if ((fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
        fatal("signalfd");
    return fd;
}
