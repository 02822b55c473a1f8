/*
 * Plays the part of systemd for noxsd.service on hosts and in tests
 * without systemd: a notification socket, the file-descriptor store and
 * Restart=on-failure.
 *
 *   noxsd-fdstore SOCKET -- COMMAND [ARGS...]
 *
 * Binds a datagram socket at SOCKET and runs COMMAND with
 * NOTIFY_SOCKET=SOCKET. Messages (sd_notify(3)): READY=1; FDSTORE=1 with
 * FDNAME=NAME stores the passed files under NAME (a file already stored is
 * not stored twice); FDSTOREREMOVE=1 with FDNAME=NAME closes them. When
 * COMMAND exits with a failure (a non-zero status or a signal) it is
 * started again after 100 ms with the stored files at fds 3.. and
 * $LISTEN_FDS, $LISTEN_FDNAMES, $LISTEN_PID, as systemd does; after a
 * clean exit it is started again on SIGUSR1 (systemctl start). SIGTERM
 * ends this program (the stored files close with it).
 *
 * Prints one line per event on stdout: "started PID", "ready",
 * "stored NAME", "removed NAME", "exited PID STATUS|signal N".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 32

static struct {
    char name[64];
    int fd;
} store[MAX_FDS];
static int nstore;
static char **cmd;
static const char *sockpath;
static pid_t child = -1;

static void say(const char *what, const char *name)
{
    printf("%s %s\n", what, name);
    fflush(stdout);
}

static int same_file(int a, int b)
{
    struct stat x, y;

    return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev &&
           x.st_ino == y.st_ino;
}

static void store_add(const char *name, int fd)
{
    int i;

    for (i = 0; i < nstore; i++)
        if (same_file(store[i].fd, fd)) {
            close(fd);
            return;
        }
    if (nstore == MAX_FDS) {
        close(fd);
        return;
    }
    snprintf(store[nstore].name, sizeof(store[nstore].name), "%s", name);
    store[nstore++].fd = fd;
    say("stored", name);
}

static void store_remove(const char *name)
{
    int i = 0;

    while (i < nstore) {
        if (strcmp(store[i].name, name) == 0) {
            close(store[i].fd);
            store[i] = store[--nstore];
            say("removed", name);
        } else {
            i++;
        }
    }
}

static void start(void)
{
    char names[MAX_FDS * 65] = "", num[16];
    int high[MAX_FDS], i;

    for (i = 0; i < nstore; i++)
        high[i] = fcntl(store[i].fd, F_DUPFD_CLOEXEC, 100);
    child = fork();
    if (child < 0) {
        perror("noxsd-fdstore: fork");
        child = -1;
    } else if (child == 0) {
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (i = 0; i < nstore; i++) {
            dup2(high[i], 3 + i);
            if (i)
                strcat(names, ":");
            strcat(names, store[i].name);
        }
        setenv("NOTIFY_SOCKET", sockpath, 1);
        if (nstore) {
            snprintf(num, sizeof(num), "%d", nstore);
            setenv("LISTEN_FDS", num, 1);
            setenv("LISTEN_FDNAMES", names, 1);
            snprintf(num, sizeof(num), "%d", (int)getpid());
            setenv("LISTEN_PID", num, 1);
        }
        execvp(cmd[0], cmd);
        perror("noxsd-fdstore: exec");
        _exit(127);
    }
    for (i = 0; i < nstore; i++)
        close(high[i]);
    if (child > 0) {
        printf("started %ld\n", (long)child);
        fflush(stdout);
    }
}

static void message(int sock)
{
    char buf[1024], cbuf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    int fds[MAX_FDS], nfds = 0, fdstore = 0, remove = 0, i;
    char name[64] = "stored", *line, *save = NULL;
    struct cmsghdr *c;
    ssize_t n;

    n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return;
    buf[n] = '\0';
    for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (i = 0; i < k && nfds < MAX_FDS; i++)
                memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int),
                       sizeof(int));
        }
    for (line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strcmp(line, "READY=1") == 0)
            say("ready", "");
        else if (strcmp(line, "FDSTORE=1") == 0)
            fdstore = 1;
        else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
            remove = 1;
        else if (strncmp(line, "FDNAME=", 7) == 0)
            snprintf(name, sizeof(name), "%s", line + 7);
    }
    if (remove)
        store_remove(name);
    for (i = 0; i < nfds; i++) {
        if (fdstore)
            store_add(name, fds[i]);
        else
            close(fds[i]);
    }
}

int main(int argc, char *argv[])
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct signalfd_siginfo si;
    struct pollfd p[2];
    sigset_t mask;
    int sock, sfd, status, restart_at = 0;

    if (argc < 4 || strcmp(argv[2], "--") != 0 ||
        strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "usage: noxsd-fdstore SOCKET -- COMMAND [ARGS...]\n");
        return 2;
    }
    sockpath = argv[1];
    cmd = argv + 3;
    strcpy(sa.sun_path, sockpath);
    unlink(sockpath);
    sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("noxsd-fdstore: socket");
        return 1;
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    if ((sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
        perror("noxsd-fdstore: signalfd");
        return 1;
    }
    start();
    for (;;) {
        p[0] = (struct pollfd){.fd = sock, .events = POLLIN};
        p[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
        if (poll(p, 2, restart_at ? 100 : -1) == 0 && restart_at) {
            restart_at = 0;
            if (child < 0)
                start();
            continue;
        }
        /* Messages first: a dying service's last ones count. */
        if (p[0].revents)
            message(sock);
        if (!p[1].revents)
            continue;
        if (read(sfd, &si, sizeof(si)) != sizeof(si))
            continue;
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            break;
        if (si.ssi_signo == SIGUSR1 && child < 0)
            start();
        if (si.ssi_signo != SIGCHLD)
            continue;
        while (child > 0 && waitpid(child, &status, WNOHANG) == child) {
            while (poll(p, 1, 0) == 1)
                message(sock);
            if (WIFEXITED(status))
                printf("exited %ld %d\n", (long)child, WEXITSTATUS(status));
            else
                printf("exited %ld signal %d\n", (long)child,
                       WTERMSIG(status));
            fflush(stdout);
            child = -1;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                restart_at = 1;
        }
    }
    if (child > 0)
        kill(child, SIGTERM);
    unlink(sockpath);
    return 0;
}
