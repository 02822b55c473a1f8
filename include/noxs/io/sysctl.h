/*
 * noxs sysctl device protocol (device type NOXS_DEV_SYSCTL): how a
 * toolstack asks a guest to power off, reboot, suspend or crash.
 *
 *   toolstack -> noxsd -> backend: the control request
 *       NOXS_SYSCTL_KEY_SHUTDOWN = <reason name>
 *   backend half:  NOXS_SYSCTL_KEY_SHUTDOWN = <reason name> (the request)
 *   frontend half: "feature-<reason>" = "1" for each reason it supports,
 *                  or the NOXS_SYSCTL_* feature bits below (the backend
 *                  accepts either), and NOXS_SYSCTL_KEY_SHUTDOWN_ACK =
 *                  <reason name> once it acted on the request; then it
 *                  walks Closing -> Closed.
 *
 * A request for a reason the frontend did not advertise is refused by the
 * backend (ENOTSUP). docs/DRIVERS.md describes the exchange.
 */
#ifndef NOXS_IO_SYSCTL_H
#define NOXS_IO_SYSCTL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Keys (control key and key/value records of the halves). */
#define NOXS_SYSCTL_KEY_SHUTDOWN "shutdown"
#define NOXS_SYSCTL_KEY_SHUTDOWN_ACK "shutdown-ack"
#define NOXS_SYSCTL_KEY_FEATURE_PREFIX "feature-" /* + reason name */
#define NOXS_SYSCTL_FEATURE_ON "1"

/* Reason names. */
#define NOXS_SYSCTL_REASON_POWEROFF "poweroff"
#define NOXS_SYSCTL_REASON_REBOOT "reboot"
#define NOXS_SYSCTL_REASON_SUSPEND "suspend"
#define NOXS_SYSCTL_REASON_CRASH "crash"

/* Feature bits of the frontend half (the device-specific high 32 bits of
 * the control half's features), one per reason, in the table's order. */
#define NOXS_SYSCTL_POWEROFF 0x100000000ull
#define NOXS_SYSCTL_REBOOT 0x200000000ull
#define NOXS_SYSCTL_SUSPEND 0x400000000ull
#define NOXS_SYSCTL_CRASH 0x800000000ull

/*
 * The reason table: reason i (0 <= i < NOXS_SYSCTL_NREASONS) is named
 * noxs_sysctl_reason(i, &bit) and advertised by feature bit `bit`; NULL
 * past the end.
 */
#define NOXS_SYSCTL_NREASONS 4u

static inline const char *noxs_sysctl_reason(unsigned int i, uint64_t *bit)
{
    static const char *const names[NOXS_SYSCTL_NREASONS] = {
        NOXS_SYSCTL_REASON_POWEROFF, NOXS_SYSCTL_REASON_REBOOT,
        NOXS_SYSCTL_REASON_SUSPEND, NOXS_SYSCTL_REASON_CRASH};

    if (i >= NOXS_SYSCTL_NREASONS)
        return NULL;
    if (bit)
        *bit = NOXS_SYSCTL_POWEROFF << i;
    return names[i];
}

#ifdef __cplusplus
}
#endif

#endif /* NOXS_IO_SYSCTL_H */
