/*
 * xs-bringup: bring up N domains with one vif-style device each through
 * the legacy xs_* pair (tests/legacy), with K toolstack processes at
 * once (see bringup-common.h for what is measured and printed). The same
 * binary measures Debian's xenstored and oxenstored (XENSTORED_PATH) and
 * compat-xs + noxsd (LD_LIBRARY_PATH=build/lib/compat-xs first).
 *
 *   BENCH_DAEMON_PIDS="..." xs-bringup IMPL N K
 *
 * We start $NOXS_BUILD/bin/legacy-back. Per domain, timed: the toolstack
 * introduces the domain and writes the device's nodes in one transaction;
 * the domain's frontend opens its own handle and connects (InitWait ->
 * rings in a transaction -> Connected -> backend Connected). Frontend
 * handles stay open (nodes and watches kept) until every worker is done.
 *
 * With BENCH_GUESTS=ring (Debian's daemons on the simulator,
 * tests/compat/xsd.sh with XSD_SIM=1 and the same NOXS_SIM_DIR), each
 * domain is created with a store ring and event channel of its own,
 * introduced as (domid, frame, port), and its frontend speaks the ring
 * protocol (bench/xsrclient.c) instead of opening a dom0 socket, as on
 * Xen. With BENCH_GUESTS=sockets the same rings are introduced but stay
 * idle, and every frontend opens its own handle (a dom0 socket on
 * Debian's libxenstore) and keeps it, as where xl leaves a monitor per
 * domain. Unset: no ring, handles only (compat-xs, whose handles act as
 * their domain on noxsd).
 */
#include <pthread.h>

#include <noxs/noxs.h>

#include "../tests/legacy/legacy.h"
#include "svc.h"
#include "xsrclient.h"
#include "bringup-common.h"

#define TIMEOUT_MS 60000

static struct xs_handle *ts, **fe;
static int nfe, worker_k;
static bool ring_guests, ring_idle;
static struct xsrc *rings; /* BENCH_GUESTS=ring: one per domain */
static unsigned int first_domid;

static int bu_setup(void)
{
    backend = bench_legacy_back_start(NULL);
    return backend < 0 ? -1 : 0;
}

static int bu_worker_init(int k, int K, int ndom)
{
    const char *g = getenv("BENCH_GUESTS");

    worker_k = k;
    ring_guests = g && strcmp(g, "ring") == 0;
    ring_idle = g && strcmp(g, "sockets") == 0;
    ts = xsrc_xs_open_as(0);
    fe = calloc((size_t)ndom + 1, sizeof(*fe));
    rings = calloc((size_t)ndom + 1, sizeof(*rings));
    return ts && fe && rings ? 0 : -1;
}

static int bu_bring_up(unsigned int domid)
{
    struct legacy_front front;
    struct xs_handle *h;

    if (ring_guests) {
        /* The domain's store ring and port, then INTRODUCE; the
         * frontend on its ring. */
        struct xsrc *c = &rings[nfe];

        if (xsrc_open(c, domid, XSRC_STORE_GFN) < 0)
            return -1;
        if (nfe == 0)
            first_domid = domid;
        nfe++;
        if (!xs_introduce_domain(ts, domid, XSRC_STORE_GFN, c->port) ||
            legacy_toolstack_add(ts, domid, "vif", 0, 0) < 0)
            return -1;
        return xsrc_front_connect(c, "vif", 0, TIMEOUT_MS);
    }
    if (ring_idle) {
        if (xsrc_open(&rings[nfe], domid, XSRC_STORE_GFN) < 0 ||
            !xs_introduce_domain(ts, domid, XSRC_STORE_GFN, rings[nfe].port))
            return -1;
    } else if (!xs_introduce_domain(ts, domid, 0, 1)) {
        return -1;
    }
    if (legacy_toolstack_add(ts, domid, "vif", 0, 0) < 0)
        return -1;
    h = xsrc_xs_open_as(domid);
    if (!h)
        return -1;
    if (nfe == 0)
        first_domid = domid;
    fe[nfe++] = h;
    return legacy_front_connect(&front, h, domid, "vif", 0, TIMEOUT_MS);
}

static double bu_worker_extra_cpu_us(void)
{
    return 0;
}

/*
 * With BENCH_TXN=COUNT, worker 0 measures, after the parent has taken its
 * figures and before anything is released, COUNT transactions of 4 writes
 * each on its first domain's device directory (as that frontend):
 *   xsop impl=I op=transaction4 samples=S median_us=M p99_us=P
 */
static void transactions(int count)
{
    char dir[LEGACY_PATH_MAX], path[LEGACY_PATH_MAX + 16], val[16];
    double *lat = calloc((size_t)count, sizeof(*lat));
    int done = 0;

    if (!lat || nfe == 0)
        return;
    snprintf(dir, sizeof(dir), "/local/domain/%u/device/vif/0", first_domid);
    for (int i = 0; i < count; i++) {
        double t0 = bu_now_us();

        for (int tries = 0; ring_guests && tries < 100; tries++) {
            uint32_t t = 0;
            bool started = xsrc_tx_start(&rings[0], &t) == 0, ok = started;

            for (int j = 0; ok && j < 4; j++) {
                snprintf(path, sizeof(path), "%s/txn-%d", dir, j);
                snprintf(val, sizeof(val), "%d", i);
                ok = xsrc_write(&rings[0], t, path, val) == 0;
            }
            if (ok && xsrc_tx_end(&rings[0], t, false) == 0)
                break;
            if (started && !ok) {
                int saved = errno;
                xsrc_tx_end(&rings[0], t, true);
                errno = saved;
            }
            if (errno != EAGAIN) {
                fprintf(stderr, "bringup %s: transaction: %s\n", bu_impl,
                        strerror(errno));
                free(lat);
                return;
            }
        }
        for (int tries = 0; !ring_guests && tries < 100; tries++) {
            xs_transaction_t t = xs_transaction_start(fe[0]);
            bool ok = t != XBT_NULL;

            for (int j = 0; ok && j < 4; j++) {
                snprintf(path, sizeof(path), "%s/txn-%d", dir, j);
                snprintf(val, sizeof(val), "%d", i);
                ok = xs_write(fe[0], t, path, val, (unsigned int)strlen(val));
            }
            if (t != XBT_NULL && xs_transaction_end(fe[0], t, !ok) && ok)
                break;
            if (errno != EAGAIN) {
                fprintf(stderr, "bringup %s: transaction: %s\n", bu_impl,
                        strerror(errno));
                free(lat);
                return;
            }
        }
        lat[done++] = bu_now_us() - t0;
    }
    qsort(lat, (size_t)done, sizeof(*lat), bu_cmp);
    printf("xsop impl=%s op=transaction4 samples=%d median_us=%.2f "
           "p99_us=%.2f\n",
           bu_impl, done, bu_pct(lat, (size_t)done, 0.5),
           bu_pct(lat, (size_t)done, 0.99));
    fflush(stdout);
    free(lat);
}

static void bu_worker_fini(void)
{
    const char *txn = getenv("BENCH_TXN");

    if (txn && atoi(txn) > 0 && worker_k == 0)
        transactions(atoi(txn));
    for (int i = 0; i < nfe; i++) {
        if (ring_guests || ring_idle)
            xsrc_close(&rings[i]);
        if (!ring_guests)
            xs_close(fe[i]);
    }
    xs_close(ts);
}

int main(int argc, char **argv)
{
    return bu_main(argc, argv);
}
