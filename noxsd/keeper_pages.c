/*
 * The worker's own view of the keeper's device pages: it writes a guest's
 * page and notifies the guest itself, so that a brokered add is
 * acknowledged without a round trip to the keeper (docs/NOXSD.md, "Where
 * the time goes").
 *
 * Why this keeps the keeper's guarantees:
 *   - The pages still live in the keeper's gntalloc file and the ports on
 *     its evtchn file; the worker holds a second descriptor of each (the
 *     keeper hands them over with KEEPER_FDS) and maps each live page at
 *     the index the keeper allocated it at. Mapping the file adds a user
 *     of the page (gntalloc ends a page at its DEALLOC only once nobody
 *     maps it), so nothing the worker does ends a page; the keeper still
 *     creates and destroys them, and the worker unmaps a page before it
 *     asks the keeper to destroy it.
 *   - One writer at a time: the keeper writes a page only when the
 *     attached worker asks it to (and then the worker waits for the
 *     answer), and it attaches the next worker only once the last one's
 *     connection is closed, which the kernel does after it has torn down
 *     the dead worker's memory: a worker killed mid-write cannot write
 *     again.
 *   - A worker killed mid-write leaves the page's sequence word odd:
 *     readers (noxs_devpage_snapshot) see "a write in progress" and retry,
 *     never a torn table. The keeper reports such a page as torn in its
 *     dump, and the next worker rewrites it from its store when it
 *     reconciles (broker_start.c), which closes the seqlock.
 *   - The worker never calls xenevtchn_close() on its handle: on the
 *     simulator that would unbind the keeper's ports (they are the file's,
 *     and closing a handle ends them); the descriptor goes with the
 *     process.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenevtchn.h>

#include <noxs/page.h>

#include "noxsd.h"

struct kpage {
    void *page; /* NULL: not mapped here (the keeper writes it) */
    uint32_t port;
};

struct keeper_pages {
    int gfd;
    xenevtchn_handle *xce;
    struct kpage *dom; /* NOXS_DOMID_MAX + 1, touched only where used */
    /* Testing: die in the middle of domain kill_dom's kill_at-th write. */
    unsigned long kill_dom, kill_at, writes;
};

/* Closed handles, kept (volatile: the store must stay) rather than closed. */
static xenevtchn_handle *volatile kept_xce;

struct keeper_pages *kpages_open(int gntalloc_fd, int evtchn_fd)
{
    struct keeper_pages *p = calloc(1, sizeof(*p));
    const char *kill_at = getenv("NOXSD_TEST_KILL_IN_PAGE_WRITE");

    if (!p || (p->dom = calloc(NOXS_DOMID_MAX + 1, sizeof(*p->dom))) == NULL)
        goto fail;
    if ((p->xce = xenevtchn_fdopen(NULL, evtchn_fd, 0)) == NULL)
        goto fail;
    p->gfd = gntalloc_fd;
    if (kill_at && sscanf(kill_at, "%lu:%lu", &p->kill_dom, &p->kill_at) != 2)
        p->kill_at = 0;
    return p;
fail:
    if (p)
        free(p->dom);
    free(p);
    close(gntalloc_fd);
    close(evtchn_fd);
    return NULL;
}

/*
 * Unmap every page and drop the gntalloc descriptor. The evtchn handle is
 * not closed (see above): it stays reachable here, its descriptor open,
 * until the process ends.
 */
void kpages_close(struct keeper_pages *p)
{
    unsigned int d;

    if (!p)
        return;
    for (d = 0; d <= NOXS_DOMID_MAX; d++)
        if (p->dom[d].page)
            munmap(p->dom[d].page, NOXS_PAGE_SIZE);
    close(p->gfd);
    kept_xce = p->xce;
    free(p->dom);
    free(p);
}

int kpages_map(struct keeper_pages *p, uint16_t domid, uint64_t index,
               uint32_t port)
{
    struct kpage *d = &p->dom[domid];
    void *page;

    if (d->page)
        return 0;
    /*
     * Populated now, at domain creation: Linux's gntalloc inserts the
     * page when it is mapped, and the simulator's file would otherwise
     * take the fault at the first write, on the path of the domain's
     * first dev-add. (Populating is best effort: mmap ignores its
     * failures.)
     */
    page = mmap(NULL, NOXS_PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_POPULATE, p->gfd, (off_t)index);
    if (page == MAP_FAILED)
        return -errno;
    d->page = page;
    d->port = port;
    return 0;
}

void kpages_unmap(struct keeper_pages *p, uint16_t domid)
{
    struct kpage *d = &p->dom[domid];

    if (d->page)
        munmap(d->page, NOXS_PAGE_SIZE);
    d->page = NULL;
    d->port = 0;
}

/*
 * What a kill inside noxs_devpage_write() leaves: the sequence word odd
 * and part of the new table written. For the tests of that case
 * (NOXSD_TEST_KILL_IN_PAGE_WRITE=DOMID:N: the Nth write of that domain's
 * page by this worker).
 */
static void die_mid_write(void *page)
{
    const size_t seq_off = offsetof(struct noxs_devpage_header, seq);
    uint32_t *seq = (uint32_t *)((char *)page + seq_off);
    uint32_t *slot = (uint32_t *)((char *)page +
                                  sizeof(struct noxs_devpage_header));

    __atomic_store_n(seq, __atomic_load_n(seq, __ATOMIC_RELAXED) | 1u,
                     __ATOMIC_RELEASE);
    for (size_t i = 0; i < sizeof(struct noxs_devpage_entry) / 8; i++)
        __atomic_store_n(&slot[i], 0xdeadbeefu, __ATOMIC_RELEASE);
    raise(SIGKILL);
}

int kpages_write(struct keeper_pages *p, uint16_t domid,
                 const struct noxs_devpage_entry *entries, uint32_t count)
{
    struct kpage *d = &p->dom[domid];

    if (!d->page)
        return -ENOENT;
    if (p->kill_at && domid == p->kill_dom && ++p->writes == p->kill_at)
        die_mid_write(d->page);
    if (noxs_devpage_write(d->page, entries, count) < 0)
        return errno ? -errno : -EIO;
    /* The guest reads the page when told; a lost notify is a stale view. */
    if (xenevtchn_notify(p->xce, d->port) < 0)
        log_warn("notify domain %u", domid);
    return 0;
}
