/*
 * blk_hostile: a malicious blk frontend, speaking the ring protocol of
 * <noxs/io/blkif.h> by hand, to show that noxs-blk-back answers
 * every bad request with an error, survives floods and walks away from a
 * ring with garbage indices, without crashing or touching the file.
 *
 *   blk_hostile [-d DEVID] [ROUNDS]
 *   blk_hostile -R [-n] [-d DEVID]
 *   blk_hostile -K FILE | -C FILE [-d DEVID]
 *   blk_hostile -P PROTOCOL [-d DEVID]
 *
 * Phases: (1) bad requests, each with its expected status; (2) ROUNDS
 * (default 1000) full rings of valid reads as fast as the backend takes
 * them; (3) a producer index far beyond the ring: the backend must go to
 * Closing with an "error" key. Exit 0 when all of that held.
 *
 * -K FILE / -C FILE: scribbling while the backend restarts. Connect and
 * do one valid read, print "ready", wait for FILE to exist (the caller
 * stops the backend), then -K: garbage in the ring's indices (rsp_prod
 * and req_prod far off), -C: a new ring-ref key; print "scribbled" and
 * expect the backend that comes back (the caller kills the stopped one)
 * to close the device with an "error" key rather than serve the ring.
 *
 * -P PROTOCOL: offer the ring with that "protocol" key; the backend,
 * which knows one ring layout, must refuse it (Closing with "error")
 * rather than connect. Exit 0 when it did.
 *
 * -R: read-only grants instead. A write whose page is granted read-only
 * succeeds (sector 0 becomes RO_PATTERN repeated, which the caller checks
 * in the file); a read into that page answers BADGREF; a read into a
 * writable page returns what was written. -n: without
 * feature-persistent (so the backend maps each request's pages for that
 * request only).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/noxs.h>

#include <noxs/io/blkif.h>

#define NDATA 12u
#define WAIT_MS 10000
#define RO_PATTERN "read-only grant\n" /* 16 bytes, 256 to a page */

static noxs_dev *dev;
static xenevtchn_handle *xce;
static xengntshr_handle *xgs; /* shares the ring, data and liveness pages */
static uint32_t port;
static struct noxs_blk_sring *sring;
static uint32_t ring_size, req_prod, rsp_cons;
static uint32_t data_refs[NDATA];
static uint64_t sectors;
static uint8_t *data; /* the NDATA pages behind data_refs */
static bool persistent = true;
static const char *protocol; /* -P */
static int failures;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "blk_hostile: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void wait_state(unsigned int want)
{
    int64_t deadline = now_ms() + WAIT_MS;

    for (;;) {
        noxs_dev_refresh(dev);
        if (noxs_dev_peer_state(dev) == want)
            return;
        if (now_ms() > deadline) {
            errno = ETIMEDOUT;
            die("waiting for a backend state");
        }
        noxs_dev_wait(dev, 100);
    }
}

static void set_u32(const char *key, uint32_t v)
{
    char buf[16];

    snprintf(buf, sizeof(buf), "%u", v);
    if (noxs_dev_set_kv(dev, key, buf) < 0)
        die(key);
}

/* The backend's state once it is at least want, or Closing/Closed. */
static unsigned int wait_state_min(unsigned int want)
{
    int64_t deadline = now_ms() + WAIT_MS;

    for (;;) {
        noxs_dev_refresh(dev);
        if (noxs_dev_peer_state(dev) >= want)
            return noxs_dev_peer_state(dev);
        if (now_ms() > deadline) {
            errno = ETIMEDOUT;
            die("waiting for a backend state");
        }
        noxs_dev_wait(dev, 100);
    }
}

/* Share the ring and publish its keys: Initialised. */
static void offer_ring(noxs_frontend *f, uint32_t devid)
{
    uint16_t be;
    uint32_t ring_ref;
    char buf[32];

    dev = noxs_frontend_attach_wait(f, NOXS_DEV_BLK, devid, WAIT_MS);
    if (dev == NULL)
        die("attach");
    be = noxs_dev_backend_domid(dev);
    noxs_dev_set_state(dev, NOXS_STATE_INITIALISING);
    noxs_dev_publish(dev);
    wait_state(NOXS_STATE_INITWAIT);
    if (noxs_dev_peer_kv(dev, "sectors", buf, sizeof(buf)) < 0)
        die("sectors");
    sectors = strtoull(buf, NULL, 10);
    xgs = xengntshr_open(NULL, 0);
    xce = xenevtchn_open(NULL, 0);
    if (xgs == NULL || xce == NULL)
        die("handles");
    xenevtchn_port_or_error_t p = xenevtchn_bind_unbound_port(xce, be);
    if (p < 0)
        die("bind");
    port = (uint32_t)p;
    /* The library's liveness page, as every frontend shares it. */
    if (noxs_dev_liveness_start(dev, 0) < 0)
        die("liveness page");
    sring = xengntshr_share_pages(xgs, be, 1, &ring_ref, 1);
    data = xengntshr_share_pages(xgs, be, NDATA, data_refs, 1);
    if (sring == NULL || data == NULL)
        die("share");
    memset(sring, 0, NOXS_BLK_PAGE_SIZE);
    sring->req_event = sring->rsp_event = 1;
    ring_size = noxs_blk_ring_size(0);
    set_u32("ring-ref", ring_ref);
    set_u32("ring-page-order", 0);
    set_u32("event-channel", port);
    if (protocol != NULL && noxs_dev_set_kv(dev, "protocol", protocol) < 0)
        die("protocol");
    noxs_dev_set_kv(dev, "feature-persistent", persistent ? "1" : "0");
    noxs_dev_set_state(dev, NOXS_STATE_INITIALISED);
    noxs_dev_publish(dev);
}

static void connect_raw(noxs_frontend *f, uint32_t devid)
{
    offer_ring(f, devid);
    wait_state(NOXS_STATE_CONNECTED);
    noxs_dev_set_state(dev, NOXS_STATE_CONNECTED);
    noxs_dev_publish(dev);
}

static struct noxs_blk_request *next_req(void)
{
    struct noxs_blk_request *r = &sring->slot[req_prod & (ring_size - 1)].req;

    memset(r, 0, sizeof(*r));
    r->id = req_prod;
    req_prod++;
    return r;
}

static void push(void)
{
    noxs_blk_store(&sring->req_prod, req_prod);
    noxs_blk_ring_mb();
    xenevtchn_notify(xce, port);
}

/* Wait for every response up to req_prod; returns the last status. */
static int collect(int *statuses)
{
    int64_t deadline = now_ms() + WAIT_MS;
    int last = 0;

    while (rsp_cons != req_prod) {
        uint32_t prod = noxs_blk_load(&sring->rsp_prod);

        while (rsp_cons != prod) {
            struct noxs_blk_response *rsp =
                &sring->slot[rsp_cons & (ring_size - 1)].rsp;

            if (statuses != NULL)
                statuses[rsp_cons & (ring_size - 1)] = rsp->status;
            last = rsp->status;
            rsp_cons++;
        }
        noxs_blk_store(&sring->rsp_event, rsp_cons + 1);
        noxs_blk_ring_mb();
        if (noxs_blk_load(&sring->rsp_prod) != rsp_cons)
            continue;
        if (rsp_cons == req_prod)
            break;
        if (now_ms() > deadline) {
            errno = ETIMEDOUT;
            die("waiting for responses");
        }
        struct pollfd pf = {.fd = xenevtchn_fd(xce), .events = POLLIN};
        if (poll(&pf, 1, 100) > 0) {
            int pp = xenevtchn_pending(xce);

            if (pp >= 0)
                xenevtchn_unmask(xce, (evtchn_port_t)pp);
        }
    }
    return last;
}

static void rw_req(uint8_t op, uint64_t sector, unsigned int nseg, uint8_t first,
                   uint8_t last, uint32_t gref)
{
    struct noxs_blk_request *r = next_req();

    r->operation = op;
    r->sector_number = sector;
    r->nr_segments = (uint8_t)nseg;
    for (unsigned int i = 0; i < nseg && i < NOXS_BLK_MAX_SEGMENTS; i++) {
        r->u.seg[i].gref = gref ? gref : data_refs[i];
        r->u.seg[i].first_sect = first;
        r->u.seg[i].last_sect = last;
    }
}

static void expect(const char *what, int want)
{
    int got;

    push();
    got = collect(NULL);
    if (got != want) {
        fprintf(stderr, "blk_hostile: %s: status %d, want %d\n", what, got, want);
        failures++;
    } else {
        printf("ok: %s -> %d\n", what, got);
    }
}

/* -K/-C: see the top. */
static int scribble(noxs_frontend *f, char mode, const char *file)
{
    int64_t deadline;
    char err[128];

    rw_req(NOXS_BLK_OP_READ, 0, 1, 0, 7, 0);
    expect("valid read before the restart", NOXS_BLK_RSP_OKAY);
    printf("ready\n");
    fflush(stdout);
    deadline = now_ms() + WAIT_MS;
    while (access(file, F_OK) != 0) {
        if (now_ms() > deadline) {
            errno = ETIMEDOUT;
            die("waiting for the go");
        }
        usleep(10000);
    }
    if (mode == 'K') {
        noxs_blk_store(&sring->rsp_prod, req_prod + 123457u);
        noxs_blk_store(&sring->req_prod, req_prod + 1000u);
    } else {
        uint32_t ref;

        if (xengntshr_share_pages(xgs, noxs_dev_backend_domid(dev), 1, &ref,
                                  1) == NULL)
            die("share");
        set_u32("ring-ref", ref);
        noxs_dev_publish(dev);
    }
    xenevtchn_notify(xce, port);
    printf("scribbled\n");
    fflush(stdout);
    wait_state(NOXS_STATE_CLOSING);
    if (noxs_dev_peer_kv(dev, "error", err, sizeof(err)) < 0) {
        fprintf(stderr, "blk_hostile: backend closed without an error key\n");
        return 1;
    }
    printf("ok: scribbled while the backend was away -> Closing (%s)\n", err);
    noxs_dev_detach(dev);
    noxs_frontend_close(f);
    return failures == 0 ? 0 : 1;
}

/* -P: a ring the backend cannot serve. */
static int foreign_protocol(noxs_frontend *f, uint32_t devid)
{
    char err[128];

    offer_ring(f, devid);
    if (wait_state_min(NOXS_STATE_CONNECTED) == NOXS_STATE_CONNECTED) {
        fprintf(stderr, "blk_hostile: the backend connected a ring with "
                        "protocol %s\n",
                protocol);
        return 1;
    }
    if (noxs_dev_peer_kv(dev, "error", err, sizeof(err)) < 0) {
        fprintf(stderr, "blk_hostile: backend closed without an error key\n");
        return 1;
    }
    printf("ok: protocol %s -> Closing (%s)\n", protocol, err);
    noxs_dev_detach(dev);
    noxs_frontend_close(f);
    return 0;
}

/* -R: data the frontend only lets the backend read. */
static int readonly_grants(void)
{
    uint32_t ro_ref;
    uint8_t *ro = xengntshr_share_pages(xgs, noxs_dev_backend_domid(dev), 1,
                                        &ro_ref, 0);

    if (ro == NULL)
        die("share read-only");
    for (size_t i = 0; i < NOXS_BLK_PAGE_SIZE; i += strlen(RO_PATTERN))
        memcpy(ro + i, RO_PATTERN, strlen(RO_PATTERN));
    rw_req(NOXS_BLK_OP_WRITE, 0, 1, 0, 7, ro_ref);
    expect("write from a read-only grant", NOXS_BLK_RSP_OKAY);
    rw_req(NOXS_BLK_OP_READ, 8, 1, 0, 7, ro_ref);
    expect("read into a read-only grant", NOXS_BLK_RSP_BADGREF);
    /* Once more: a refused read leaves nothing behind to reuse. */
    rw_req(NOXS_BLK_OP_WRITE, 0, 1, 0, 7, ro_ref);
    expect("write from it again", NOXS_BLK_RSP_OKAY);
    rw_req(NOXS_BLK_OP_READ, 0, 1, 0, 7, ro_ref);
    expect("read into it again", NOXS_BLK_RSP_BADGREF);
    memset(data, 0, NOXS_BLK_PAGE_SIZE);
    rw_req(NOXS_BLK_OP_READ, 0, 1, 0, 7, 0);
    expect("read back into a writable grant", NOXS_BLK_RSP_OKAY);
    if (memcmp(data, ro, NOXS_BLK_PAGE_SIZE) != 0) {
        fprintf(stderr, "blk_hostile: read back differs from the write\n");
        failures++;
    } else {
        printf("ok: read back what the read-only grant held\n");
    }
    noxs_dev_detach(dev);
    xengntshr_close(xgs);
    xenevtchn_close(xce);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    uint32_t devid = 0;
    unsigned long rounds = 1000;
    bool ro_mode = false;
    const char *go = NULL;
    char mode = 0;
    int a = 1;
    noxs_frontend *f;

    for (; a < argc && argv[a][0] == '-'; a++) {
        if (strcmp(argv[a], "-R") == 0)
            ro_mode = true;
        else if (strcmp(argv[a], "-n") == 0)
            persistent = false;
        else if (strcmp(argv[a], "-P") == 0 && a + 1 < argc)
            protocol = argv[++a];
        else if ((strcmp(argv[a], "-K") == 0 || strcmp(argv[a], "-C") == 0) &&
                 a + 1 < argc) {
            mode = argv[a][1];
            go = argv[++a];
        } else if (strcmp(argv[a], "-d") == 0 && a + 1 < argc)
            devid = (uint32_t)strtoul(argv[++a], NULL, 10);
        else
            return 2;
    }
    if (a < argc)
        rounds = strtoul(argv[a], NULL, 10);
    f = noxs_frontend_open(NULL);
    if (f == NULL)
        die("frontend");
    if (protocol != NULL)
        return foreign_protocol(f, devid);
    connect_raw(f, devid);
    if (mode != 0)
        return scribble(f, mode, go);
    if (ro_mode) {
        int rc = readonly_grants();
        noxs_frontend_close(f);
        return rc;
    }

    /* (1) bad requests */
    rw_req(NOXS_BLK_OP_READ, 0, 1, 0, 7, 0);
    expect("valid read", NOXS_BLK_RSP_OKAY);
    rw_req(NOXS_BLK_OP_READ, sectors, 1, 0, 0, 0);
    expect("read at the end", NOXS_BLK_RSP_RANGE);
    rw_req(NOXS_BLK_OP_WRITE, sectors - 1, 1, 0, 7, 0);
    expect("write across the end", NOXS_BLK_RSP_RANGE);
    rw_req(NOXS_BLK_OP_WRITE, UINT64_MAX - 2, 1, 0, 7, 0);
    expect("write at 2^64", NOXS_BLK_RSP_RANGE);
    rw_req(NOXS_BLK_OP_WRITE, 0, 0, 0, 7, 0);
    expect("no segments", NOXS_BLK_RSP_INVALID);
    rw_req(NOXS_BLK_OP_WRITE, 0, 11, 0, 7, 0);
    sring->slot[(req_prod - 1) & (ring_size - 1)].req.nr_segments = 255;
    expect("255 segments", NOXS_BLK_RSP_INVALID);
    rw_req(NOXS_BLK_OP_WRITE, 0, 1, 7, 3, 0);
    expect("first > last", NOXS_BLK_RSP_INVALID);
    rw_req(NOXS_BLK_OP_WRITE, 0, 1, 0, 9, 0);
    expect("last beyond the page", NOXS_BLK_RSP_INVALID);
    rw_req(NOXS_BLK_OP_WRITE, 0, 1, 0, 7, 3);
    expect("reserved grant ref", NOXS_BLK_RSP_BADGREF);
    rw_req(NOXS_BLK_OP_WRITE, 0, 1, 0, 7, 30000);
    expect("unallocated grant ref", NOXS_BLK_RSP_BADGREF);
    rw_req(NOXS_BLK_OP_WRITE, 0, 1, 0, 7, 0xfffffff0u);
    expect("huge grant ref", NOXS_BLK_RSP_BADGREF);
    rw_req(NOXS_BLK_OP_WRITE, 0, 11, 0, 7, 0);
    sring->slot[(req_prod - 1) & (ring_size - 1)].req.u.seg[6].gref = 29999;
    expect("one bad ref among eleven", NOXS_BLK_RSP_BADGREF);
    rw_req(99, 0, 1, 0, 7, 0);
    expect("unknown operation", NOXS_BLK_RSP_NOTSUPP);
    {
        struct noxs_blk_request *r = next_req();

        r->operation = NOXS_BLK_OP_DISCARD;
        r->sector_number = 8;
        r->u.discard.nr_sectors = sectors;
        expect("discard past the end", NOXS_BLK_RSP_RANGE);
        r = next_req();
        r->operation = NOXS_BLK_OP_DISCARD;
        r->u.discard.nr_sectors = 0;
        expect("empty discard", NOXS_BLK_RSP_INVALID);
    }

    /* (2) flood: full rings of valid reads, back to back */
    int statuses[512];
    for (unsigned long n = 0; n < rounds; n++) {
        for (uint32_t i = 0; i < ring_size; i++)
            rw_req(NOXS_BLK_OP_READ, (uint64_t)(i % 64) * 8, 1, 0, 7, 0);
        push();
        collect(statuses);
        for (uint32_t i = 0; i < ring_size; i++)
            if (statuses[i] != NOXS_BLK_RSP_OKAY) {
                fprintf(stderr, "blk_hostile: flood: status %d\n", statuses[i]);
                return 1;
            }
    }
    printf("ok: flood of %lu requests answered\n", rounds * ring_size);

    /* (3) garbage producer index: the backend must abandon the ring */
    noxs_blk_store(&sring->req_prod, req_prod + 1000);
    xenevtchn_notify(xce, port);
    wait_state(NOXS_STATE_CLOSING);
    char err[128];
    if (noxs_dev_peer_kv(dev, "error", err, sizeof(err)) < 0) {
        fprintf(stderr, "blk_hostile: backend closed without an error key\n");
        failures++;
    } else {
        printf("ok: garbage indices -> Closing (%s)\n", err);
    }
    noxs_dev_detach(dev);
    noxs_frontend_close(f);
    xengntshr_close(xgs); /* unshares the ring, data and liveness pages */
    xenevtchn_close(xce);
    return failures == 0 ? 0 : 1;
}
