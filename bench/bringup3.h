/*
 * bringup3: bring-up of domains with three devices each (sysctl,
 * console, blk), timed to the first byte; see bench/bringup3.c.
 *
 * The guest side (bringup3-guest.c) is a process that acts as up to
 * B3_PER_GUEST domains: it reads "DOMID noxs=O:G:P" lines on stdin and
 * brings each domain's three devices up before it reads the next line,
 * writing on stdout, with CLOCK_MONOTONIC times in ns:
 *   opened DOMID           the device page is mapped (before any dev-add)
 *   conn DOMID NS          all three devices Connected
 *   byte DOMID NS          sector 0 read back right (4 KiB) and one byte
 *                          put on the console's out ring
 *   up DOMID               done with the domain (after the untimed rest
 *                          of its set-up: the sysctl liveness page)
 *   error DOMID MESSAGE    this domain failed (the others go on)
 * Every domain it brought up stays connected until it is told to stop
 * (SIGTERM or the end of its input).
 */
#ifndef NOXS_BENCH_BRINGUP3_H
#define NOXS_BENCH_BRINGUP3_H

#include <stdint.h>

#define B3_PER_GUEST 1000
/* The byte every guest puts on its console. */
#define B3_CONSOLE_BYTE 'b'
/* Byte i of the shared image (so that a read of sector 0 can be
 * checked without a copy of it). */
#define B3_IMAGE_BYTE(i) ((uint8_t)((i)*131u + 7u))
#define B3_IMAGE_BYTES (1u << 20)
/* Liveness bound of every wait, per domain, in ms. */
#define B3_TIMEOUT_MS 60000

/* The guest process: serve lines from in_fd, report on out_fd; the
 * exit status. */
int b3_guest_main(int in_fd, int out_fd);

#endif
