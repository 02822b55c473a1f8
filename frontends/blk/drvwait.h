/*
 * The frontends' wait for the backend's half of the control page to reach
 * one exact state, shared by the blk and console frontends.
 */
#ifndef NOXS_DRVWAIT_H
#define NOXS_DRVWAIT_H

#include <stdint.h>

#include <noxs/noxs.h>

/* Milliseconds on CLOCK_MONOTONIC, the clock of drv_wait_backend's deadline. */
int64_t drv_now_ms(void);

/*
 * Wait until the backend's state is exactly want, sleeping on the device's
 * event channel in slices of at most slice_ms. Returns 0, or -1 with errno
 * ECONNREFUSED (waiting for Connected and the backend closes), ETIMEDOUT
 * (deadline passed) or the error of noxs_dev_refresh/noxs_dev_wait. A torn
 * backend half (EBUSY) is retried until the deadline, not fatal.
 */
int drv_wait_backend(noxs_dev *d, unsigned int want, int64_t deadline_ms,
                     int slice_ms);

#endif /* NOXS_DRVWAIT_H */
