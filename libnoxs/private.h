/*
 * libnoxs internals shared between the library's own files.
 *
 * Nothing here is part of the public ABI: symbols are hidden by
 * -fvisibility=hidden and by libnoxs.map; only functions marked
 * NOXS_EXPORT (and named noxs_*) are exported. Internal functions are
 * prefixed noxs_i_ so that the version script's "noxs_*" glob would still
 * not matter: they have hidden visibility at compile time.
 *
 * Grouped by the file that defines them.
 */
#ifndef NOXS_PRIVATE_H
#define NOXS_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include <noxs/abi.h>
#include <noxs/noxs.h>
#include <noxs/page.h>

#define NOXS_EXPORT __attribute__((visibility("default")))

/* ---- log.c ---- */

/* Log through the logger set with noxs_set_logger(); errno is preserved. */
void noxs_i_log(int priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define noxs_i_err(...) noxs_i_log(NOXS_LOG_ERR, __VA_ARGS__)
#define noxs_i_warn(...) noxs_i_log(NOXS_LOG_WARNING, __VA_ARGS__)
#define noxs_i_info(...) noxs_i_log(NOXS_LOG_INFO, __VA_ARGS__)
#define noxs_i_debug(...) noxs_i_log(NOXS_LOG_DEBUG, __VA_ARGS__)

/* ---- dev.c ---- */

#define NOXS_I_ROLE_BACKEND 0u
#define NOXS_I_ROLE_FRONTEND 1u

/*
 * Called for an event that a wait consumed on the shared event-channel
 * handle for a port other than the one it waited on (see noxs_dev_wait).
 */
typedef void noxs_i_stray_fn(void *arg, uint32_t port);

struct noxs_dev {
    unsigned int role;     /* NOXS_I_ROLE_* */
    unsigned int own_half; /* NOXS_CTRL_BACKEND or NOXS_CTRL_FRONTEND */
    unsigned int peer_half;
    void *page;            /* the mapped control page */
    xengntshr_handle *gs;  /* backend: the sharing handle (not owned) */
    xengnttab_handle *gt;  /* frontend: the mapping handle (not owned) */
    xenevtchn_handle *xce; /* shared per domain (not owned) */
    uint32_t port;         /* our local port */
    uint32_t remote_port;  /* frontend: the backend's port */
    uint32_t gref;         /* the control page's grant ref */
    uint16_t backend_domid;
    uint16_t frontend_domid;
    unsigned int type;
    uint32_t devid;
    bool peer_valid; /* peer holds a validated snapshot */
    uint32_t peer_generation_seen;
    unsigned int spin_misses;   /* adaptive spinning in noxs_dev_wait */
    struct noxs_ctrl_half own;  /* authoritative copy of our half */
    struct noxs_ctrl_half peer; /* last validated snapshot of the peer */
    char *own_value;            /* buffer behind noxs_dev_get_own_kv */
    void *user;
    struct noxs_frontend *frontend; /* frontend role: the owner */
    struct noxs_dev *next;          /* in the frontend's list */
    noxs_i_stray_fn *stray;
    void *stray_arg;
    /* Backend under an fd store: the page is a mapping of the backend's
     * gntalloc file (munmap, not unshare), and every publish also
     * copies our half here (the record in the backend's state file). */
    bool file_page;
    struct noxs_ctrl_half *mirror;
    /* Backend role: the owner, for the reports of noxs_dev_switch_state. */
    struct noxs_backend *backend;
    /*
     * The liveness page (drvproto.c): the frontend shares it (alive_gs is
     * its frontend's sharing handle), the backend maps it (alive_gt, the
     * backend's). NULL when there is none.
     */
    volatile uint8_t *alive;
    uint32_t alive_ref;
    bool alive_notify;    /* backend: mapped with an unmap notification */
    bool peer_seen_alive; /* the peer's byte was 1 once */
    xengntshr_handle *alive_gs;
    xengnttab_handle *alive_gt;
};

/*
 * Backend side of a new device: share one zeroed page read-write with
 * frontend_domid, bind an unbound port for it, and fill our half's
 * identity (magic, version, type, devid, domids), state Initialising and
 * ports[0] = the port. Nothing is published yet. NULL with errno on
 * failure, having released whatever it took.
 */
noxs_dev *noxs_i_dev_backend_new(xengntshr_handle *gs, xenevtchn_handle *xce,
                                 uint16_t self_domid, uint16_t frontend_domid,
                                 unsigned int type, uint32_t devid);
/*
 * Backend side of a device whose page and port someone else provides
 * (the backend's gntalloc file and its event-channel handle): page is
 * mapped read-write, gref and port are its grant and bound port. With own
 * non-NULL, our half starts as *own (a device adopted after a restart);
 * otherwise as noxs_i_dev_backend_new() fills it. The page is not touched.
 */
noxs_dev *noxs_i_dev_backend_wrap(xenevtchn_handle *xce, void *page,
                                  uint32_t gref, uint32_t port,
                                  uint16_t self_domid, uint16_t frontend_domid,
                                  unsigned int type, uint32_t devid,
                                  const struct noxs_ctrl_half *own);
/* Unbind the port, unshare/unmap the page and free d (either role). */
void noxs_i_dev_free(noxs_dev *d);
/* Free d but leave its port bound and its page allocated (munmap only):
 * they live on in files kept by the service manager. */
void noxs_i_dev_forget(noxs_dev *d);
/*
 * Backend side of removal: publish Closing, wait up to timeout_ms for the
 * frontend to reach Closing or Closed (skipped if it never published or
 * is already Closed), publish Closed. Returns 0, or -1/ETIMEDOUT if the
 * frontend did not answer (Closed is published anyway), or -1 with the
 * publish error. d is not freed.
 */
int noxs_i_dev_backend_close(noxs_dev *d, int timeout_ms);
/*
 * Optional: have waits on d report events they consume for other ports
 * of d's event-channel handle to fn (e.g. to mark those devices dirty).
 */
void noxs_i_dev_set_stray(noxs_dev *d, noxs_i_stray_fn *fn, void *arg);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t noxs_i_now_ms(void);
struct noxs_proto_msg;
/* client.c: wait for and decode one message from noxsd (see there). */
int noxs_i_recv_msg(int fd, void *buf, size_t len, int64_t deadline,
                    struct noxs_proto_msg *m);
/*
 * One blocking step on an event-channel handle: poll its fd until
 * readable or deadline_ms (<0: forever; 0 or past: just check) passes,
 * then consume one pending event and unmask it. Returns the port
 * consumed (> 0), 0 on timeout or interruption, -1 on error. Callers
 * re-check their pages and the deadline and call again.
 */
int noxs_i_evtchn_wait_one(xenevtchn_handle *xce, int64_t deadline_ms);

/* ---- drvproto.c ---- */

/*
 * Backend side of the liveness page: map ref of d's frontend (with an
 * unmap notification on our byte when notify), set our byte. 0 or -1.
 */
int noxs_i_liveness_map(noxs_dev *d, xengnttab_handle *gt, uint32_t ref,
                        bool notify);
/*
 * End d's liveness page (either role). clear: zero our byte first, so the
 * peer learns of it even when no unmap notification does it for us.
 */
void noxs_i_liveness_end(noxs_dev *d, bool clear);
/* 0: the peer's byte was set and has been cleared; 1 otherwise. */
int noxs_i_liveness_peer_alive(const noxs_dev *d);

/* ---- backend.c ---- */

/* Report d's states to noxsd (noxs_backend_report without the check). */
void noxs_i_backend_report(struct noxs_backend *b, noxs_dev *d);

/* ---- frontend.c ---- */

/* The frontend's sharing handle (for liveness pages), NULL if none. */
xengntshr_handle *noxs_i_frontend_gs(struct noxs_frontend *f);


/* Drop d from its frontend's list (called by noxs_i_dev_free). */
void noxs_i_frontend_forget(struct noxs_frontend *f, noxs_dev *d);

#endif /* NOXS_PRIVATE_H */
