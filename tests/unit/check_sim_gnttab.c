/*
 * Simulator: grant tables (libxengnttab on build/sim), both sides.
 */
#include <check.h>
#include <dlfcn.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xen/gntalloc.h>

#include "sim/simstat.h"
#include "check_main.h"
#include "check_sim.h"

static void fresh_dir(void)
{
    sim_fresh_dir("gnt");
}

static uint32_t grant_state(unsigned dom, uint32_t ref, uint32_t *maps)
{
    uint32_t st;

    ck_assert_int_eq(noxs_simstat_grant(dom, ref, &st, NULL, maps), 0);
    return st;
}

/*
 * What most tests use: domain 1 shares (shr), domain 2 maps (tab). The
 * fixture opens them; the test closes them (pair_close) where it wants
 * to see everything released, or leaves that to the fixture.
 */
static xengntshr_handle *shr;
static xengnttab_handle *tab;

static void pair_setup(void)
{
    fresh_dir();
    shr = sim_gntshr_as(1);
    tab = sim_gnttab_as(2);
}

static void pair_close(void)
{
    if (tab != NULL)
        xengnttab_close(tab);
    if (shr != NULL)
        xengntshr_close(shr);
    tab = NULL;
    shr = NULL;
}

/* The pair closed, everything the test used must be released. */
static void pair_released(void)
{
    pair_close();
    sim_assert_idle();
}

START_TEST(share_and_map)
{
    uint32_t refs[3];
    char *g = xengntshr_share_pages(shr, 2, 3, refs, 1);

    ck_assert_ptr_nonnull(g);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_ge(refs[i], 8);
        ck_assert_int_eq(g[i * 4096], 0); /* fresh pages */
    }
    strcpy(g, "hello");
    strcpy(g + 2 * 4096, "third");
    char *m = xengnttab_map_grant_ref(tab, 1, refs[0], PROT_READ | PROT_WRITE);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m, "hello");
    strcpy(m + 100, "back");
    ck_assert_str_eq(g + 100, "back");
    char *mm = xengnttab_map_domain_grant_refs(tab, 3, 1, refs, PROT_READ);
    ck_assert_ptr_nonnull(mm);
    ck_assert_str_eq(mm + 2 * 4096, "third");
    uint32_t doms[2] = {1, 1}, two[2] = {refs[2], refs[0]};
    char *m2 = xengnttab_map_grant_refs(tab, 2, doms, two, PROT_READ);
    ck_assert_ptr_nonnull(m2);
    ck_assert_str_eq(m2, "third");
    ck_assert_str_eq(m2 + 4096, "hello");
    uint32_t maps;
    ck_assert_uint_eq(grant_state(1, refs[0], &maps), NOXS_SIMSTAT_GRANT_ACTIVE);
    ck_assert_uint_eq(maps, 3);
    ck_assert_int_eq(xengnttab_unmap(tab, m, 1), 0);
    ck_assert_int_eq(xengnttab_unmap(tab, mm, 3), 0);
    ck_assert_int_eq(xengnttab_unmap(tab, m2, 2), 0);
    CHECK_FAIL_ERRNO(xengnttab_unmap(tab, m2, 2), EINVAL);
    grant_state(1, refs[0], &maps);
    ck_assert_uint_eq(maps, 0);
    ck_assert_int_eq(xengntshr_unshare(shr, g, 3), 0);
    ck_assert_uint_eq(grant_state(1, refs[0], NULL), NOXS_SIMSTAT_GRANT_FREE);
    pair_released();
}
END_TEST

START_TEST(map_errors)
{
    xengntshr_handle *s = sim_gntshr_as(1);
    xengnttab_handle *t2 = sim_gnttab_as(2), *t3 = sim_gnttab_as(3);
    uint32_t ref, bad[2];
    char *g = xengntshr_share_pages(s, 2, 1, &ref, 1);

    ck_assert_ptr_nonnull(g);
    /* Granted to domain 2: domain 3 may not map it. */
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref(t3, 1, ref, PROT_READ), EINVAL);
    /* Not granted, reserved, out of range, unknown domain. */
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref(t2, 1, ref + 1, PROT_READ),
                     EINVAL);
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref(t2, 1, 3, PROT_READ), EINVAL);
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref(t2, 1, 1u << 30, PROT_READ),
                     EINVAL);
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref(t2, 999, ref, PROT_READ), EINVAL);
    /* A partly bad batch maps nothing and leaves nothing behind. */
    bad[0] = ref;
    bad[1] = ref + 1;
    CHECK_NULL_ERRNO(xengnttab_map_domain_grant_refs(t2, 2, 1, bad, PROT_READ),
                     EINVAL);
    uint32_t maps;
    grant_state(1, ref, &maps);
    ck_assert_uint_eq(maps, 0);
    /* Unsupported calls fail cleanly. */
    uint32_t fd;
    CHECK_FAIL_ERRNO(xengnttab_dmabuf_exp_from_refs(t2, 1, 0, 1, &ref, &fd),
                     EOPNOTSUPP);
    ck_assert_int_eq(xengnttab_dmabuf_imp_release(t2, 0), -1);
    ck_assert_int_ge(xengnttab_fd(t2), 0);
    ck_assert_int_ge(xengntshr_fd(s), 0);
    xengntshr_unshare(s, g, 1);
    xengnttab_close(t2);
    xengnttab_close(t3);
    xengntshr_close(s);
}
END_TEST

START_TEST(readonly_grant)
{
    uint32_t ref;
    char *g = xengntshr_share_pages(shr, 2, 1, &ref, 0);

    ck_assert_ptr_nonnull(g);
    strcpy(g, "ro");
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref(tab, 1, ref,
                                             PROT_READ | PROT_WRITE),
                     EINVAL);
    char *m = xengnttab_map_grant_ref(tab, 1, ref, PROT_READ);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m, "ro");
    /* A clear-byte notify needs a writable mapping. */
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref_notify(tab, 1, ref, PROT_READ, 0,
                                                    (evtchn_port_t)-1),
                     EINVAL);
    sim_assert_write_faults(m);
    ck_assert_str_eq(m, "ro");
    xengnttab_unmap(tab, m, 1);
    xengntshr_unshare(shr, g, 1);
}
END_TEST

START_TEST(unshare_while_mapped)
{
    uint32_t ref, ref2;
    char *g = xengntshr_share_pages(shr, 2, 1, &ref, 1);
    char *m = xengnttab_map_grant_ref(tab, 1, ref, PROT_READ | PROT_WRITE);

    ck_assert_ptr_nonnull(m);
    strcpy(g, "kept");
    ck_assert_int_eq(xengntshr_unshare(shr, g, 1), 0);
    /* Xen: the ref stays in use until the grantee unmaps; its map stays. */
    ck_assert_uint_eq(grant_state(1, ref, NULL), NOXS_SIMSTAT_GRANT_ENDING);
    ck_assert_str_eq(m, "kept");
    m[0] = 'K';
    char *g2 = xengntshr_share_pages(shr, 2, 1, &ref2, 1);
    ck_assert_ptr_nonnull(g2);
    ck_assert_uint_ne(ref2, ref);
    /* No new mapping of an ended grant. */
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref(tab, 1, ref, PROT_READ), EINVAL);
    ck_assert_int_eq(xengnttab_unmap(tab, m, 1), 0);
    ck_assert_uint_eq(grant_state(1, ref, NULL), NOXS_SIMSTAT_GRANT_FREE);
    xengntshr_unshare(shr, g2, 1);
    pair_released();
}
END_TEST

START_TEST(unmap_notify_both_sides)
{
    xenevtchn_handle *e1 = sim_evtchn_as(1);
    xenevtchn_handle *e2 = sim_evtchn_as(2);
    int p1 = xenevtchn_bind_unbound_port(e1, 2);
    int p2 = xenevtchn_bind_interdomain(e2, 1, (evtchn_port_t)p1);
    ck_assert_int_eq(xenevtchn_pending(e2), p2);
    xenevtchn_unmask(e2, (evtchn_port_t)p2);

    /* Grantee side: unmap clears byte 10 and notifies domain 1. */
    uint32_t ref;
    char *g = xengntshr_share_page_notify(shr, 2, &ref, 1, 20,
                                          (evtchn_port_t)p1);
    ck_assert_ptr_nonnull(g);
    char *m = xengnttab_map_grant_ref_notify(tab, 1, ref,
                                             PROT_READ | PROT_WRITE, 10, (evtchn_port_t)p2);
    ck_assert_ptr_nonnull(m);
    g[10] = 1;
    g[20] = 1;
    ck_assert(!sim_readable(e1, 0));
    ck_assert_int_eq(xengnttab_unmap(tab, m, 1), 0);
    ck_assert_int_eq(g[10], 0);
    ck_assert(sim_readable(e1, 5000));
    ck_assert_int_eq(xenevtchn_pending(e1), p1);
    xenevtchn_unmask(e1, (evtchn_port_t)p1);
    /* Granter side: unshare clears byte 20 and notifies domain 2. */
    m = xengnttab_map_grant_ref(tab, 1, ref, PROT_READ);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m[20], 1);
    ck_assert_int_eq(xengntshr_unshare(shr, g, 1), 0);
    ck_assert_int_eq(m[20], 0);
    ck_assert(sim_readable(e2, 5000));
    ck_assert_int_eq(xenevtchn_pending(e2), p2);
    xengnttab_unmap(tab, m, 1);
    /* Bad notify arguments. */
    CHECK_NULL_ERRNO(xengntshr_share_page_notify(shr, 2, &ref, 1, 5000,
                                                 (evtchn_port_t)-1),
                     EINVAL);
    CHECK_NULL_ERRNO(xengntshr_share_page_notify(shr, 2, &ref, 1, 0, 999),
                     EINVAL);
    pair_close();
    sim_evtchn_close_all(e1, e2, NULL);
    sim_assert_idle();
}
END_TEST

START_TEST(grant_copy)
{
    uint32_t refs[2];
    char *g = xengntshr_share_pages(shr, 2, 1, &refs[0], 1);
    char *ro = xengntshr_share_pages(shr, 2, 1, &refs[1], 0);
    char buf[64] = "copied in";
    xengnttab_grant_copy_segment_t seg[3];

    memset(seg, 0, sizeof(seg));
    seg[0].source.virt = buf;
    seg[0].dest.foreign.ref = refs[0];
    seg[0].dest.foreign.offset = 100;
    seg[0].dest.foreign.domid = 1;
    seg[0].len = 10;
    seg[0].flags = GNTCOPY_dest_gref;
    seg[1] = seg[0];
    seg[1].dest.foreign.ref = refs[1]; /* read-only: no writes */
    seg[2] = seg[0];
    seg[2].dest.foreign.ref = refs[1] + 1; /* not granted */
    ck_assert_int_eq(xengnttab_grant_copy(tab, 3, seg), 0);
    ck_assert_int_eq(seg[0].status, GNTST_okay);
    ck_assert_int_ne(seg[1].status, GNTST_okay);
    ck_assert_int_ne(seg[2].status, GNTST_okay);
    ck_assert_str_eq(g + 100, "copied in");
    strcpy(ro + 5, "from ro");
    char out[16] = "";
    memset(seg, 0, sizeof(seg));
    seg[0].source.foreign.ref = refs[1];
    seg[0].source.foreign.offset = 5;
    seg[0].source.foreign.domid = 1;
    seg[0].dest.virt = out;
    seg[0].len = 8;
    seg[0].flags = GNTCOPY_source_gref;
    ck_assert_int_eq(xengnttab_grant_copy(tab, 1, seg), 0);
    ck_assert_int_eq(seg[0].status, GNTST_okay);
    ck_assert_str_eq(out, "from ro");
    seg[0].source.foreign.offset = 4090; /* crosses the page */
    CHECK_FAIL_ERRNO(xengnttab_grant_copy(tab, 1, seg), EINVAL);
}
END_TEST

START_TEST(max_grants)
{
    uint32_t refs[3];
    char *g = xengntshr_share_pages(shr, 2, 3, refs, 1);

    ck_assert_int_eq(xengnttab_set_max_grants(tab, 2), 0);
    char *m = xengnttab_map_domain_grant_refs(tab, 2, 1, refs, PROT_READ);
    ck_assert_ptr_nonnull(m);
    CHECK_NULL_ERRNO(xengnttab_map_grant_ref(tab, 1, refs[2], PROT_READ),
                     ENOMEM);
    xengnttab_unmap(tab, m, 2);
    m = xengnttab_map_grant_ref(tab, 1, refs[2], PROT_READ);
    ck_assert_ptr_nonnull(m);
    xengnttab_close(tab);
    tab = NULL;
    xengntshr_unshare(shr, g, 3);
    pair_released();
}
END_TEST

START_TEST(partial_unshare)
{
    xengntshr_handle *s = sim_gntshr_as(1);
    uint32_t refs[4];
    char *g = xengntshr_share_pages(s, 2, 4, refs, 1);
    struct noxs_simstat st;

    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(xengntshr_unshare(s, g + 4096, 2), 0);
    noxs_simstat_domain(1, 1, &st);
    ck_assert_uint_eq(st.grants_active, 2);
    g[0] = 1;
    g[3 * 4096] = 1;
    /* Like munmap(2), unsharing an already unshared range is fine. */
    ck_assert_int_eq(xengntshr_unshare(s, g + 4096, 1), 0);
    xengntshr_close(s); /* releases the rest */
    noxs_simstat_domain(1, 1, &st);
    ck_assert_uint_eq(st.grants_active, 0);
}
END_TEST


/*
 * gntalloc on a gntshr fd (what noxsd's keeper does): a page allocated
 * by a process that then dies (kill -9) lives on while another process
 * holds the fd it passed, is mapped again from that fd at the index the
 * ALLOC returned, and ends once that file is closed everywhere.
 */
typedef int gntalloc_fn(int, unsigned long, void *);

START_TEST(gntalloc_fd_outlives_process)
{
    struct {
        uint32_t ref;
        uint64_t index;
    } info;
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &info, .iov_len = sizeof(info)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct noxs_simstat st;
    xengnttab_handle *t;
    gntalloc_fn *fn;
    void *sym;
    char *p, *q;
    int sv[2], fd, status;
    pid_t pid;

    fresh_dir();
    sym = dlsym(RTLD_DEFAULT, "noxs_sim_gntalloc_ioctl");
    ck_assert_ptr_nonnull(sym);
    memcpy(&fn, &sym, sizeof(sym));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct ioctl_gntalloc_alloc_gref op = {.domid = 1, .count = 1};
        xengntshr_handle *s = sim_gntshr_as(0);
        struct cmsghdr *c;

        fd = s ? xengntshr_fd(s) : -1;
        if (fd < 0 || fn(fd, IOCTL_GNTALLOC_ALLOC_GREF, &op) < 0)
            _exit(1);
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                 (off_t)op.index);
        if (p == MAP_FAILED)
            _exit(2);
        strcpy(p, "kept");
        info.ref = op.gref_ids[0];
        info.index = op.index;
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        if (sendmsg(sv[1], &mh, 0) != sizeof(info))
            _exit(3);
        raise(SIGKILL);
    }
    ck_assert_int_eq(recvmsg(sv[0], &mh, 0), sizeof(info));
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));

    /* The grant outlives its process: reaping leaves it alone. */
    ck_assert_int_eq(noxs_simstat_domain(0, 1, &st), 0);
    ck_assert_uint_eq(grant_state(0, info.ref, NULL),
                      NOXS_SIMSTAT_GRANT_ACTIVE);
    t = sim_gnttab_as(1);
    q = xengnttab_map_grant_ref(t, 0, info.ref, PROT_READ);
    ck_assert_ptr_nonnull(q);
    ck_assert_str_eq(q, "kept");
    /* Mapped again from the fd, written, seen by the grantee. */
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
             (off_t)info.index);
    ck_assert_ptr_ne(p, MAP_FAILED);
    ck_assert_str_eq(p, "kept");
    strcpy(p, "again");
    ck_assert_str_eq(q, "again");

    /* The file closed everywhere (fd and mapping): the grant ends. */
    munmap(p, 4096);
    close(fd);
    ck_assert_int_eq(noxs_simstat_domain(0, 1, &st), 0);
    ck_assert_uint_eq(grant_state(0, info.ref, NULL),
                      NOXS_SIMSTAT_GRANT_ENDING);
    xengnttab_unmap(t, q, 1);
    xengnttab_close(t);
    ck_assert_uint_eq(grant_state(0, info.ref, NULL),
                      NOXS_SIMSTAT_GRANT_FREE);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/*
 * Descriptors of domain 0's file this process holds, by number (up to
 * max); returns how many.
 */
static int dom0_fds(int *fds, int max)
{
    char want[600], link[600], p[300];
    struct dirent *e;
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    snprintf(want, sizeof(want), "%s/dom-0", getenv("NOXS_SIM_DIR"));
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL && n < max) {
        ssize_t len;

        snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
        len = readlink(p, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (strcmp(link, want) == 0)
            fds[n++] = atoi(e->d_name);
    }
    closedir(d);
    return n;
}

/*
 * Page operations keep one descriptor of domain 0's file per process (so
 * that they do not open and close it, which walks every grant lock on
 * it). A program may close that number or reuse it (a daemon closing
 * what it did not open, a dup2): the next map must still map the right
 * page, and the simulator must not close the number it no longer owns.
 */
START_TEST(kept_fd_replaced_behind_our_back)
{
    xengntshr_handle *s0 = sim_gntshr_as(0);
    xengnttab_handle *t = sim_gnttab_as(2);
    int fds[8], n, null;
    uint32_t ref;
    char *g, *m;

    ck_assert_ptr_nonnull(s0);
    ck_assert_ptr_nonnull(t);
    g = xengntshr_share_pages(s0, 2, 1, &ref, 1);
    ck_assert_ptr_nonnull(g);
    strcpy(g, "domain 0's page");
    for (int i = 0; i < 3; i++) {
        m = xengnttab_map_grant_ref(t, 0, ref, PROT_READ);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(m, "domain 0's page");
        ck_assert_int_eq(xengnttab_unmap(t, m, 1), 0);
    }
    /* One kept descriptor, not one per operation. */
    n = dom0_fds(fds, 8);
    ck_assert_int_eq(n, 1);

    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(null, 0);
    ck_assert_int_eq(dup2(null, fds[0]), fds[0]);
    close(null);
    m = xengnttab_map_grant_ref(t, 0, ref, PROT_READ);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m, "domain 0's page");
    ck_assert_int_eq(xengnttab_unmap(t, m, 1), 0);
    /* The number is still /dev/null's: ours to close, not the simulator's. */
    {
        char p[64], link[64];
        ssize_t len;

        snprintf(p, sizeof(p), "/proc/self/fd/%d", fds[0]);
        len = readlink(p, link, sizeof(link) - 1);
        ck_assert_int_gt(len, 0);
        link[len] = '\0';
        ck_assert_str_eq(link, "/dev/null");
    }
    ck_assert_int_eq(dom0_fds(fds + 1, 7), 1);
    close(fds[0]);

    /* Closed outright: the same. */
    ck_assert_int_eq(dom0_fds(fds, 8), 1);
    close(fds[0]);
    m = xengnttab_map_grant_ref(t, 0, ref, PROT_READ);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m, "domain 0's page");
    ck_assert_int_eq(xengnttab_unmap(t, m, 1), 0);
    ck_assert_int_eq(xengntshr_unshare(s0, g, 1), 0);
    xengnttab_close(t);
    xengntshr_close(s0);
}
END_TEST

/*
 * One handle, many regions (one process serving thousands of devices
 * shares one handle): shares and unshares in an order other than the
 * one they were made in, addresses the kernel hands out again, a
 * partial unshare among them; every page keeps its own contents and
 * every grant is released once.
 */
START_TEST(many_regions)
{
    enum { N = 600 };
    xengntshr_handle *s = sim_gntshr_as(1);
    static char *p[N];
    uint32_t ref;
    struct noxs_simstat st;
    char *two;
    uint32_t refs2[2];

    for (int i = 0; i < N; i++) {
        p[i] = xengntshr_share_pages(s, 2, 1, &ref, 1);
        ck_assert_ptr_nonnull(p[i]);
        snprintf(p[i], 32, "page %d", i);
    }
    two = xengntshr_share_pages(s, 2, 2, refs2, 1);
    ck_assert_ptr_nonnull(two);
    for (int i = 0; i < N; i += 2)
        ck_assert_int_eq(xengntshr_unshare(s, p[i], 1), 0);
    /* Half of the second region goes, then the other half. */
    ck_assert_int_eq(xengntshr_unshare(s, two + 4096, 1), 0);
    for (int i = 0; i < N; i += 2) {
        p[i] = xengntshr_share_pages(s, 2, 1, &ref, 1);
        ck_assert_ptr_nonnull(p[i]);
        snprintf(p[i], 32, "page %d", i);
    }
    noxs_simstat_domain(1, 1, &st);
    ck_assert_uint_eq(st.grants_active, N + 1);
    for (int i = N - 1; i >= 0; i--) {
        char want[32];

        snprintf(want, sizeof(want), "page %d", i);
        ck_assert_str_eq(p[i], want);
        ck_assert_int_eq(xengntshr_unshare(s, p[i], 1), 0);
    }
    ck_assert_int_eq(xengntshr_unshare(s, two, 1), 0);
    noxs_simstat_domain(1, 1, &st);
    ck_assert_uint_eq(st.grants_active, 0);
    /* Nothing is left to unshare: an address no region ever had. */
    ck_assert_int_eq(xengntshr_unshare(s, (void *)(uintptr_t)4096, 1), -1);
    xengntshr_close(s);
}
END_TEST

/*
 * A share takes the lowest free grants, which after unshares are not
 * adjacent: each run of them is made fresh, and only they are (the
 * pages still shared between the runs keep what was written there).
 */
START_TEST(reshare_runs_are_fresh)
{
    uint32_t refs[6], again[3];
    char *g = xengntshr_share_pages(shr, 2, 6, refs, 1);

    ck_assert_ptr_nonnull(g);
    memset(g, 0xab, 6 * 4096);
    ck_assert_int_eq(xengntshr_unshare(shr, g + 1 * 4096, 1), 0);
    ck_assert_int_eq(xengntshr_unshare(shr, g + 3 * 4096, 1), 0);
    char *h = xengntshr_share_pages(shr, 2, 3, again, 1);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(again[0], refs[1]);
    ck_assert_uint_eq(again[1], refs[3]);
    for (int i = 0; i < 3 * 4096; i++)
        ck_assert_int_eq(h[i], 0);
    for (int i = 0; i < 6; i++) {
        if (i == 1 || i == 3)
            continue;
        ck_assert_int_eq((unsigned char)g[i * 4096], 0xab);
        ck_assert_int_eq((unsigned char)g[i * 4096 + 4095], 0xab);
    }
    /* The guest's view of a kept page is the same memory. */
    char *m = xengnttab_map_grant_ref(tab, 1, refs[2], PROT_READ);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq((unsigned char)m[17], 0xab);
    ck_assert_int_eq(xengnttab_unmap(tab, m, 1), 0);
    ck_assert_int_eq(xengntshr_unshare(shr, h, 3), 0);
    for (int i = 0; i < 6; i++)
        if (i != 1 && i != 3)
            ck_assert_int_eq(xengntshr_unshare(shr, g + i * 4096, 1), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = check_suite("sim_gnttab", "gnttab", fresh_dir, NULL, 0,
                           CHECK_TESTS(map_errors, partial_unshare, many_regions,
                                       gntalloc_fd_outlives_process,
                                       kept_fd_replaced_behind_our_back));

    check_add_case(s, "pair", pair_setup, pair_close, 0,
                   CHECK_TESTS(share_and_map, readonly_grant,
                               unshare_while_mapped, unmap_notify_both_sides,
                               grant_copy, max_grants, reshare_runs_are_fresh));
    return s;
}

CHECK_MAIN(suite)
