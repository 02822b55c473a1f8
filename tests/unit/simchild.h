/*
 * Helpers of the unit tests in which a forked child plays a guest domain
 * on the simulator (check_dev, check_drvproto): the child reports a
 * failed check on stderr and through its exit status; the parent asserts
 * on that status. The test process is domain 0 with a device page for
 * the guest (struct env).
 */
#ifndef NOXS_TESTS_SIMCHILD_H
#define NOXS_TESTS_SIMCHILD_H

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/noxs.h>
#include <noxs/page.h>

#define CHILD_CHECK(cond)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "child %s:%d: check failed: %s (errno %d: %s)\n", \
                    __FILE__, __LINE__, #cond, errno, strerror(errno));       \
            _exit(1);                                                         \
        }                                                                     \
    } while (0)

/* CALL fails in the child: -1 with errno ERR. */
#define CHILD_FAILS(call, err)       \
    do {                             \
        errno = 0;                   \
        CHILD_CHECK((call) == -1);   \
        CHILD_CHECK(errno == (err)); \
    } while (0)

/* The simulator takes a handle's domain from here when it is opened. */
static inline void set_domid(unsigned int domid)
{
    char buf[16];

    snprintf(buf, sizeof(buf), "%u", domid);
    setenv("NOXS_SIM_DOMID", buf, 1);
}

/* Wait for the guest process; it must have passed every check. */
static inline void reap(pid_t pid)
{
    int status;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "guest process failed (status 0x%x)", status);
}

/* ------------------------------------------------------------------ */
/* Domain 0 side: a stand-in for noxsd, with the guest's device page    */

struct env {
    xengntshr_handle *gs;
    xenevtchn_handle *xce;
    void *devpage;
    uint32_t devpage_gref;
    uint32_t notify_port;
    uint16_t guest;
    struct noxs_boot boot;
    struct noxs_devpage_entry entries[8];
    uint32_t nentries;
};

/* Domain 0's handles. */
static inline void env_open(struct env *e)
{
    memset(e, 0, sizeof(*e));
    set_domid(0);
    e->xce = xenevtchn_open(NULL, 0);
    ck_assert_ptr_nonnull(e->xce);
    e->gs = xengntshr_open(NULL, 0);
    ck_assert_ptr_nonnull(e->gs);
}

/* A device page of domain PAGE_DOMID's shared with GUEST, and the port
 * to notify it on: what the guest's bootstrap (e->boot) names. */
static inline void env_add_domain(struct env *e, uint16_t guest,
                                  uint16_t page_domid)
{
    int port;

    e->guest = guest;
    e->devpage = xengntshr_share_pages(e->gs, guest, 1, &e->devpage_gref, 0);
    ck_assert_ptr_nonnull(e->devpage);
    port = xenevtchn_bind_unbound_port(e->xce, guest);
    ck_assert_int_gt(port, 0);
    e->notify_port = (uint32_t)port;
    noxs_devpage_init(e->devpage, page_domid, 0, e->notify_port);
    e->boot.owner_domid = 0;
    e->boot.gref = e->devpage_gref;
    e->boot.port = e->notify_port;
    e->nentries = 0;
}

/* List d in the device page (as devid entry_devid) and notify the guest. */
static inline void env_list(struct env *e, noxs_dev *d, uint32_t entry_devid)
{
    struct noxs_devpage_entry *x = &e->entries[e->nentries++];

    memset(x, 0, sizeof(*x));
    x->type = (uint16_t)noxs_dev_type(d);
    x->flags = NOXS_DEVPAGE_ENTRY_VALID;
    x->devid = entry_devid;
    x->backend_domid = 0;
    x->control_gref = noxs_dev_gref(d);
    x->backend_port = noxs_dev_port(d);
    ck_assert_int_eq(noxs_devpage_write(e->devpage, e->entries, e->nentries),
                     0);
    ck_assert_int_eq(xenevtchn_notify(e->xce, e->notify_port), 0);
}

static inline void env_close(struct env *e)
{
    if (e->devpage)
        xengntshr_unshare(e->gs, e->devpage, 1);
    xengntshr_close(e->gs);
    xenevtchn_close(e->xce);
}

/* The guest: a child process of domain e->guest running FN(E). */
typedef void child_fn(struct env *e);

static inline pid_t spawn(struct env *e, child_fn *fn)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Inherited handles are the parent's: never touched here. */
        set_domid(e->guest);
        fn(e);
        _exit(0);
    }
    return pid;
}

#endif /* NOXS_TESTS_SIMCHILD_H */
