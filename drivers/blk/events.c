/*
 * The process's event channels and the ring threads' sleep.
 *
 * One xenevtchn handle serves every device (one file descriptor for the
 * whole process instead of one per device): the main thread binds and
 * unbinds the frontends' ports on it, the ring threads notify through it,
 * and the event thread alone takes the ports it delivers
 * (xenevtchn_pending) and rings the bell of the device the port belongs
 * to, whose ring thread unmasks it. Linux's evtchn device and the simulator's
 * libxenevtchn both allow that use from several threads: bind, unbind
 * and notify are single calls on the handle, and only one thread reads
 * delivered ports.
 *
 * A device's bell (bd->bell) is a futex word: whoever has news for a
 * ring thread (a frontend's event, a finished job of its workers, the
 * main thread stopping it) sets it and wakes the thread if it sleeps.
 * The ring thread sleeps on it only while it is clear, and clears it as
 * it wakes, before it looks at the ring, its finished jobs and its stop
 * flag again: news that came after its last look never waits, and a
 * stale ring only costs a spurious wake-up. Why a futex and not an eventfd per device:
 * no file descriptor, and nothing to wake when the thread is running.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "blkback.h"
#include "common/log.h"

/* Ports -> devices, for the event thread. */
static pthread_mutex_t ports_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blkdev **by_port;
static size_t nports;

static long futex(atomic_uint *word, int op, unsigned int val,
                  const struct timespec *timeout)
{
    return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

void bell_ring(struct blkdev *bd)
{
    /* Only the first news since the thread last looked wakes it: the
     * word was 0, so it may be asleep on it. */
    if (atomic_exchange(&bd->bell, 1u) == 0)
        futex(&bd->bell, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* Sleep till the bell rings or timeout_ms (-1: no timeout) passes.
 * True if it timed out with no news. */
bool bell_wait(struct blkdev *bd, int timeout_ms)
{
    struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    long r = 0;

    /* Sleeps only while the word is still 0: news set since the caller
     * last looked returns at once. */
    if (atomic_load(&bd->bell) == 0)
        r = futex(&bd->bell, FUTEX_WAIT_PRIVATE, 0,
                  timeout_ms < 0 ? NULL : &ts);
    return atomic_exchange(&bd->bell, 0u) == 0 && r < 0 &&
           errno == ETIMEDOUT;
}

/*
 * The ring thread's life. A device idle for IDLE_MS parks its thread
 * (ring_park: the thread ends; an idle device then holds no thread, no
 * stack and nothing that wakes up), and the next event of its port
 * starts a new one (ring_wake, on the event thread), which goes on
 * where the last one stopped: the ring indices, the grant cache and the
 * I/O queue are the device's, not the thread's. The thread parks only
 * with nothing in flight and after asking the frontend for an event
 * (req_event) and finding no request, and only while its bell is quiet
 * and no stop is asked, under rt_lock: an event that came before is seen
 * by the thread, one after by ring_wake. The main thread stops it for
 * good (ring_stop) without holding rt_lock while it waits, so that the
 * event thread never waits for a device's I/O. The threads are detached
 * (a parked thread's stack goes at once, not when someone joins it):
 * the last thing a stopped one does is to say so (ring_end), and it
 * touches the device no more.
 */

/* Start bd's ring thread (rt_lock held). */
static int rt_create(struct blkdev *bd)
{
    pthread_attr_t attr;
    pthread_t t;
    int err;

    thread_attr(&attr, RING_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&t, &attr, ring_thread, bd);
    pthread_attr_destroy(&attr);
    if (err != 0)
        return -1;
    bd->rt = RT_RUNNING;
    return 0;
}

/* A new session's ring thread (main). */
int ring_start(struct blkdev *bd)
{
    int ret;

    pthread_mutex_lock(&bd->rt_lock);
    ret = rt_create(bd);
    pthread_mutex_unlock(&bd->rt_lock);
    return ret;
}

/* News for bd's ring thread: ring its bell, start it if it parked. */
void ring_wake(struct blkdev *bd)
{
    uint64_t one = 1;

    bell_ring(bd);
    pthread_mutex_lock(&bd->rt_lock);
    if (bd->rt == RT_PARKED && rt_create(bd) < 0) {
        /* Nothing would serve the ring: the main thread ends the
         * session (Closing, with an error) as for a broken ring. */
        bd->rt = RT_NONE;
        log_warnx("domain %u blk %u: cannot start the ring thread again",
                  bd->fe_domid, bd->devid);
        atomic_store(&bd->broken, true);
        if (write(conf.wake_fd, &one, sizeof(one)) < 0) {
            /* the main loop rescans on its next wake-up anyway */
        }
    }
    pthread_mutex_unlock(&bd->rt_lock);
}

/* The ring thread, idle with nothing in flight: may it end? */
bool ring_park(struct blkdev *bd)
{
    bool park;

    pthread_mutex_lock(&bd->rt_lock);
    park = atomic_load(&bd->bell) == 0 && !atomic_load(&bd->stopping);
    if (park)
        bd->rt = RT_PARKED;
    pthread_mutex_unlock(&bd->rt_lock);
    return park;
}

/* End the session's ring thread, running or parked (main). A running
 * one answers what it took first. */
void ring_stop(struct blkdev *bd)
{
    pthread_mutex_lock(&bd->rt_lock);
    atomic_store(&bd->stopping, true);
    /* Nothing starts it again now: ring_wake starts parked ones only. */
    bd->rt = bd->rt == RT_RUNNING ? RT_STOPPING : RT_NONE;
    pthread_mutex_unlock(&bd->rt_lock);
    bell_ring(bd);
    pthread_mutex_lock(&bd->rt_lock);
    while (bd->rt == RT_STOPPING)
        pthread_cond_wait(&bd->rt_ended, &bd->rt_lock);
    pthread_mutex_unlock(&bd->rt_lock);
}

/* The ring thread's last act when it leaves for good (stopped, or a
 * broken ring): everything answered; after this it touches bd no more. */
void ring_end(struct blkdev *bd)
{
    pthread_mutex_lock(&bd->rt_lock);
    bd->rt = RT_NONE;
    pthread_cond_broadcast(&bd->rt_ended);
    pthread_mutex_unlock(&bd->rt_lock);
}

/* Bind port (the frontend's) for bd: bd->port. -1 on failure. */
int events_bind(struct blkdev *bd, uint32_t remote_port)
{
    xenevtchn_port_or_error_t p =
        xenevtchn_bind_interdomain(conf.xce, bd->fe_domid, remote_port);
    int ret = 0;

    if (p < 0)
        return -1;
    pthread_mutex_lock(&ports_lock);
    if ((size_t)p >= nports) {
        size_t n = nports ? nports : 64;
        struct blkdev **t;

        while (n <= (size_t)p)
            n *= 2;
        t = realloc(by_port, n * sizeof(*t));
        if (t == NULL) {
            ret = -1;
        } else {
            memset(t + nports, 0, (n - nports) * sizeof(*t));
            by_port = t;
            nports = n;
        }
    }
    if (ret == 0)
        by_port[p] = bd;
    pthread_mutex_unlock(&ports_lock);
    if (ret < 0) {
        xenevtchn_unbind(conf.xce, (evtchn_port_t)p);
        return -1;
    }
    bd->port = (uint32_t)p;
    return 0;
}

/* Unbind bd's port: after this, the event thread never rings bd. */
void events_unbind(struct blkdev *bd)
{
    if (bd->port == 0)
        return;
    pthread_mutex_lock(&ports_lock);
    if (bd->port < nports && by_port[bd->port] == bd)
        by_port[bd->port] = NULL;
    pthread_mutex_unlock(&ports_lock);
    xenevtchn_unbind(conf.xce, bd->port);
    bd->port = 0;
}

static void *event_thread(void *arg)
{
    struct pollfd p = {.fd = xenevtchn_fd(conf.xce), .events = POLLIN};

    (void)arg;
    for (;;) {
        xenevtchn_port_or_error_t port;

        if (poll(&p, 1, -1) < 0) {
            if (errno != EINTR)
                fatalx("event channels: poll: %s", strerror(errno));
            continue;
        }
        if (!(p.revents & POLLIN) || (port = xenevtchn_pending(conf.xce)) < 0)
            continue;
        /*
         * The port stays masked till its ring thread wakes and unmasks
         * it (ring.c), before it looks at the ring: an event raised
         * meanwhile is delivered at the unmask, none is lost, and a
         * frontend that notifies in a loop gets one delivery per round
         * of its own ring thread, never a busy event thread that the
         * other devices' events would wait behind.
         */
        pthread_mutex_lock(&ports_lock);
        if ((size_t)port < nports && by_port[port] != NULL) {
            atomic_store(&by_port[port]->masked, true);
            ring_wake(by_port[port]);
        } else {
            xenevtchn_unmask(conf.xce, (evtchn_port_t)port);
        }
        pthread_mutex_unlock(&ports_lock);
    }
    return NULL;
}

/* The shared handles and the event thread (main, before any device). */
void events_start(void)
{
    pthread_attr_t attr;
    pthread_t t;

    conf.xgt = xengnttab_open(NULL, 0);
    conf.xce = xenevtchn_open(NULL, 0);
    if (conf.xgt == NULL || conf.xce == NULL)
        fatal("cannot open the grant table or event channel device");
    thread_attr(&attr, RING_STACK);
    if (pthread_create(&t, &attr, event_thread, NULL) != 0)
        fatalx("cannot start the event thread");
    pthread_attr_destroy(&attr);
    pthread_detach(t);
}

/* Attributes of our threads: a stack of the given size (their frames
 * are small; see RING_STACK in blkback.h), else (0) the default. */
void thread_attr(pthread_attr_t *attr, size_t stack)
{
    pthread_attr_init(attr);
    if (stack != 0 && pthread_attr_setstacksize(attr, stack) != 0)
        log_debug("stack size %zu refused: the default", stack);
}
