/*
 * perm-probe: the attacks of tests/integration/perm-isolation.sh, each run
 * as the domain named by NOXS_SIM_DOMID. Exit 0 means the attack failed as
 * it must; 1 means it succeeded (a hole) or the probe itself broke.
 *
 *   perm-probe map GRANTER GREF      map someone else's grant: must fail
 *   perm-probe readonly GRANTER GREF the grant is ours but read-only:
 *                                    RW mapping must fail, RO must work,
 *                                    and a write through it must fault
 *                                    (in a forked child)
 *   perm-probe nonroot-add DOMID     as uid 65534, dev-add must fail with
 *                                    EPERM (or EACCES at connect)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xengnttab.h>

#include <noxs/noxs.h>

static int map_other(uint32_t granter, uint32_t gref)
{
    xengnttab_handle *h = xengnttab_open(NULL, 0);
    void *p;

    if (h == NULL) {
        perror("xengnttab_open");
        return 1;
    }
    p = xengnttab_map_grant_ref(h, granter, gref, PROT_READ);
    if (p != NULL) {
        fprintf(stderr, "HOLE: mapped domain %u's grant %u\n", granter, gref);
        return 1;
    }
    printf("map of domain %u's grant %u refused: %s\n", granter, gref,
           strerror(errno));
    xengnttab_close(h);
    return 0;
}

static int readonly(uint32_t granter, uint32_t gref)
{
    xengnttab_handle *h = xengnttab_open(NULL, 0);
    volatile uint32_t *p;
    pid_t pid;
    int status;

    if (h == NULL) {
        perror("xengnttab_open");
        return 1;
    }
    p = xengnttab_map_grant_ref(h, granter, gref, PROT_READ | PROT_WRITE);
    if (p != NULL) {
        fprintf(stderr, "HOLE: read-only grant %u mapped read-write\n", gref);
        return 1;
    }
    printf("read-write map refused: %s\n", strerror(errno));
    p = xengnttab_map_grant_ref(h, granter, gref, PROT_READ);
    if (p == NULL) {
        fprintf(stderr, "cannot map our own device page read-only: %s\n",
                strerror(errno));
        return 1;
    }
    if (p[0] != NOXS_DEVPAGE_MAGIC) {
        fprintf(stderr, "the page is not a device page (magic %#x)\n", p[0]);
        return 1;
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        /* A sanitizer's SEGV handler would turn the fault into exit(1). */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        p[2] = 0xdeadbeef; /* seq: the worst thing a guest could touch */
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        perror("fork");
        return 1;
    }
    if (!WIFSIGNALED(status) ||
        (WTERMSIG(status) != SIGSEGV && WTERMSIG(status) != SIGBUS)) {
        fprintf(stderr, "HOLE: a write to the device page did not fault\n");
        return 1;
    }
    printf("write to the device page faulted (signal %d)\n", WTERMSIG(status));
    xengnttab_unmap(h, (void *)p, 1);
    xengnttab_close(h);
    return 0;
}

static int nonroot_add(uint16_t domid)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        noxs_client *c;

        if (setgid(65534) < 0 || setuid(65534) < 0) {
            perror("setuid 65534");
            _exit(2);
        }
        c = noxs_client_open(NULL);
        if (c == NULL) {
            /* The test makes the socket reachable: noxsd must be the
             * one that says no. */
            fprintf(stderr, "non-root client cannot connect: %s\n",
                    strerror(errno));
            _exit(1);
        }
        if (noxs_dev_add(c, domid, NOXS_DEV_SYSCTL, 7, 0, NULL, 0) == 0) {
            fprintf(stderr, "HOLE: non-root dev-add succeeded\n");
            _exit(1);
        }
        printf("non-root dev-add refused: %s\n", strerror(errno));
        _exit(errno == EPERM ? 0 : 1);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 4 && strcmp(argv[1], "map") == 0)
        return map_other((uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "readonly") == 0)
        return readonly((uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]));
    if (argc == 3 && strcmp(argv[1], "nonroot-add") == 0)
        return nonroot_add((uint16_t)atoi(argv[2]));
    fprintf(stderr, "usage: perm-probe map|readonly GRANTER GREF | "
                    "nonroot-add DOMID\n");
    return 1;
}
