/* See drvwait.h. */
#include <errno.h>
#include <time.h>

#include "drvwait.h"

int64_t drv_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int drv_wait_backend(noxs_dev *d, unsigned int want, int64_t deadline_ms,
                     int slice_ms)
{
    for (;;) {
        unsigned int state;
        int64_t left;

        if (noxs_dev_refresh(d) < 0 && errno != EBUSY)
            return -1;
        state = noxs_dev_peer_state(d);
        if (state == want)
            return 0;
        if (want == NOXS_STATE_CONNECTED &&
            (state == NOXS_STATE_CLOSING || state == NOXS_STATE_CLOSED)) {
            errno = ECONNREFUSED;
            return -1;
        }
        left = deadline_ms - drv_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (noxs_dev_wait(d, left < slice_ms ? (int)left : slice_ms) < 0 &&
            errno != EBUSY)
            return -1;
    }
}
