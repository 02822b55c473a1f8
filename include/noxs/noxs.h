/*
 * libnoxs: the noxs device path without XenStore.
 *
 * Three roles use this library:
 *   - the toolstack (noxsctl, compat-xs) talks to noxsd through a
 *     noxs_client to create device pages and add/remove devices;
 *   - a backend registers with noxsd for device types (noxs_backend),
 *     and for each device noxsd brokers, owns a control page and an
 *     unbound event channel (a noxs_dev);
 *   - a frontend finds its device page from the bootstrap string
 *     (noxs_frontend) and attaches to devices listed there (noxs_dev).
 *
 * Conventions (as in Xen's libxenevtchn and friends):
 *   - handles are opaque; a handle is not thread-safe, use one per thread
 *     or serialise; after fork() a child must not use inherited handles
 *     except to close them;
 *   - functions return -1 (or NULL) and set errno on failure; errno is
 *     preserved across the cleanup a failing call does;
 *   - the library logs nothing unless a logger is set with
 *     noxs_set_logger();
 *   - everything read from a page written by another domain is validated
 *     before use; a peer that never lets a seqlock settle makes the read
 *     fail with EBUSY after a few tries (NOXS_SEQLOCK_TRIES), never spin
 *     or yield for long; a malformed page fails with EPROTO.
 */
#ifndef NOXS_NOXS_H
#define NOXS_NOXS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <noxs/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Logging                                                             */

#define NOXS_LOG_ERR 3
#define NOXS_LOG_WARNING 4
#define NOXS_LOG_INFO 6
#define NOXS_LOG_DEBUG 7

typedef void noxs_log_fn(int priority, const char *fmt, va_list ap);

/* Install a process-wide logger (NULL: log nothing, the default). */
void noxs_set_logger(noxs_log_fn *fn);

/* ------------------------------------------------------------------ */
/* Names                                                               */

/* "sysctl", "console", "blk", ... or NULL for an unknown type. */
const char *noxs_type_name(unsigned int type);
/* NOXS_DEV_* for a name, or 0 if unknown. */
unsigned int noxs_type_from_name(const char *name);
/* "Initialising", "InitWait", ... ("Unknown" outside 1..8). */
const char *noxs_state_name(unsigned int state);

/* ------------------------------------------------------------------ */
/* Bootstrap string                                                    */

struct noxs_boot {
    uint16_t owner_domid; /* domain noxsd runs in */
    uint32_t gref;        /* grant ref of the device page */
    uint32_t port;        /* owner's unbound port for this guest */
};

/*
 * Parse "noxs=<owner>:<gref>:<port>" (the "noxs=" prefix is optional).
 * The string may be a whole kernel command line: the first "noxs=" word
 * is used. Returns 0, or -1 with errno EINVAL (malformed, out of range)
 * or ENOENT (no noxs= word).
 */
int noxs_boot_parse(const char *s, struct noxs_boot *out);
/* Format into buf ("noxs=0:8:5"); returns the length or -1/ENOSPC. */
int noxs_boot_format(const struct noxs_boot *b, char *buf, size_t len);
/*
 * Find this domain's bootstrap: $NOXS_BOOT if set, else the noxs= word of
 * /proc/cmdline, else the key "noxs" in the domain's own XenStore
 * directory (/local/domain/<self>/noxs, written by a toolstack before it
 * unpauses the domain), read with one request through /dev/xen/xenbus
 * ($NOXS_XENBUS_PATH: that device or a xenstored socket instead; never
 * tried in dom0 unless set) and at most 5 s of waiting. Returns 0, or -1
 * with errno ENOENT (no bootstrap anywhere), EINVAL (a malformed one),
 * ETIMEDOUT (the store did not answer) or EPROTO (it answered nonsense).
 */
int noxs_boot_find(struct noxs_boot *out);

/*
 * Which domain this process runs in: the thread's noxs_open_as() setting
 * (simulator only), else $NOXS_DOMID, else $NOXS_SIM_DOMID (the
 * simulator's), else 0. Sets *domid and returns 1 if a variable
 * named the domain, 0 if the default 0 applies, or -1 with errno EINVAL
 * if the variable that applies is not a domain id (decimal 0..32751
 * without a leading zero: "010" is refused, not read as 8). Every noxs
 * program and compat-xs answer the question through this call.
 */
int noxs_self_domid(uint16_t *domid);

/*
 * On the simulator, one process may play several domains: handles the
 * calling thread opens from now on (Xen handles, noxs_frontend_open,
 * noxs_backend_open, ...) act as domain domid, and noxs_self_domid()
 * answers domid on this thread; -1 goes back to the environment. The
 * previous setting (-1: none) is stored in *prev if prev is not NULL.
 * Returns 0, or -1 with errno ENOTSUP when the Xen libraries are not the
 * simulator's (on Xen a process is one domain) or EINVAL for a domid out
 * of range. The environment is never changed.
 */
int noxs_open_as(int domid, int *prev);

/* ------------------------------------------------------------------ */
/* Key/value parameters (device-add parameters, control-page keys)     */

struct noxs_kv {
    const char *key;   /* NUL-terminated, 1..NOXS_CTRL_KEY_MAX bytes */
    const char *value; /* NUL-terminated, <= NOXS_CTRL_VALUE_MAX bytes */
};

/* ------------------------------------------------------------------ */
/* Toolstack: a connection to noxsd                                    */

typedef struct noxs_client noxs_client;

/* Default control socket; $NOXS_SOCKET overrides it. */
#define NOXS_DEFAULT_SOCKET "/run/noxs/noxsd.sock"

/*
 * Connect to noxsd at path (NULL: $NOXS_SOCKET, else the default).
 * Returns NULL with errno (ENOENT/ECONNREFUSED: noxsd not running).
 */
noxs_client *noxs_client_open(const char *path);
int noxs_client_close(noxs_client *c);
/* The socket, for poll() when watching. */
int noxs_client_fd(noxs_client *c);
/* Per-request timeout in ms (default 30000; <0: wait forever). */
void noxs_client_set_timeout(noxs_client *c, int timeout_ms);

/*
 * Create the device page of domain domid and its notify port; fills
 * *boot with what the guest needs. EEXIST if it exists already (and still
 * fills *boot), EPERM if the caller may not change the registry.
 */
int noxs_domain_create(noxs_client *c, uint16_t domid, struct noxs_boot *boot);
/* Remove every device of domid (backends told first), then its page. */
int noxs_domain_destroy(noxs_client *c, uint16_t domid);

/*
 * Add a device: noxsd asks the backend registered for type in
 * backend_domid to create it with params, writes the entry into the
 * guest's device page, notifies the guest and then returns. Errors:
 * ENOENT no such domain, ENODEV no backend for type, EEXIST device
 * exists, ENOSPC device page full, EPERM, ETIMEDOUT backend did not
 * answer, or the backend's own errno.
 */
int noxs_dev_add(noxs_client *c, uint16_t domid, unsigned int type,
                 uint32_t devid, uint16_t backend_domid,
                 const struct noxs_kv *params, size_t nparams);
int noxs_dev_remove(noxs_client *c, uint16_t domid, unsigned int type,
                    uint32_t devid);

struct noxs_dev_info {
    uint16_t domid;
    uint16_t type;
    uint32_t devid;
    uint16_t backend_domid;
    uint32_t control_gref;
    uint32_t backend_port;
    uint8_t backend_state;  /* last state the backend reported */
    uint8_t frontend_state; /* likewise, as the backend saw it */
};

/*
 * List the devices of domid (all domains if domid == NOXS_DOMID_ANY).
 * *out is malloc'd (free() it); *count may be 0.
 */
#define NOXS_DOMID_ANY 0xffffu
int noxs_dev_list(noxs_client *c, uint16_t domid, struct noxs_dev_info **out,
                  size_t *count);

struct noxs_domain_info {
    uint16_t domid;
    uint16_t owner_domid;
    uint32_t gref;
    uint32_t port;
    uint32_t ndevices;
};
int noxs_domain_list(noxs_client *c, struct noxs_domain_info **out,
                     size_t *count);

struct noxs_status {
    uint32_t version;    /* protocol version of the daemon */
    uint32_t pid;        /* worker pid */
    uint32_t keeper_pid; /* page keeper pid */
    uint32_t ndomains;
    uint32_t ndevices;
    uint32_t nbackends;
    uint64_t uptime_ms; /* of the worker */
    uint64_t rss_bytes; /* worker + keeper resident memory */
    uint32_t restarts;  /* worker restarts seen by the keeper */
    uint32_t heap_kib;  /* worker + keeper heap in use (0: not known) */
};
int noxs_status_get(noxs_client *c, struct noxs_status *out);

/*
 * Ask the backend of a device to act on key=value (e.g. the sysctl
 * device's "shutdown"="poweroff") and wait up to timeout_ms for it to
 * answer; the backend's answer (e.g. the guest's acknowledgement) is
 * copied to reply (NUL-terminated). ETIMEDOUT if the guest did not
 * answer in time.
 */
int noxs_dev_control(noxs_client *c, uint16_t domid, unsigned int type,
                     uint32_t devid, const char *key, const char *value,
                     int timeout_ms, char *reply, size_t reply_len);

/* Watch events: device added/removed/state changed. */
#define NOXS_EVENT_DEV_ADDED 1u
#define NOXS_EVENT_DEV_REMOVED 2u
#define NOXS_EVENT_DEV_STATE 3u
#define NOXS_EVENT_DOMAIN_CREATED 4u
#define NOXS_EVENT_DOMAIN_DESTROYED 5u
/* The hypervisor reported the domain dead and noxsd released it (its
 * devices removed, its page destroyed): the end of a domain that nobody
 * destroyed through noxsd. Like DOMAIN_DESTROYED, only dev.domid is set. */
#define NOXS_EVENT_DOMAIN_RELEASED 6u
/* The hypervisor reports that a domain, registered with noxsd or not,
 * shut down (poweroff, reboot, suspend, crash), began dying or is gone:
 * what xenstored announces as @releaseDomain. Only dev.domid is set; the
 * domain's state is the hypervisor's to ask (xc_domain_getinfolist).
 * Sent by a noxsd that watches the hypervisor's domain list (it does
 * unless --domain-poll 0). */
#define NOXS_EVENT_DOMAIN_EXCEPTION 7u

struct noxs_event {
    uint32_t kind; /* NOXS_EVENT_* */
    struct noxs_dev_info dev;
};

/*
 * Subscribe this connection to events of domid (NOXS_DOMID_ANY: all).
 * Afterwards the connection should only be used for noxs_watch_next().
 */
int noxs_watch(noxs_client *c, uint16_t domid);
/* Next event; 0 on success, -1/ETIMEDOUT after timeout_ms (<0: forever). */
int noxs_watch_next(noxs_client *c, struct noxs_event *ev, int timeout_ms);

/* ------------------------------------------------------------------ */
/* A device endpoint: one side of a control page (both roles)          */

typedef struct noxs_dev noxs_dev;

uint16_t noxs_dev_frontend_domid(const noxs_dev *d);
uint16_t noxs_dev_backend_domid(const noxs_dev *d);
unsigned int noxs_dev_type(const noxs_dev *d);
uint32_t noxs_dev_id(const noxs_dev *d);
/* Our own port of the device's event channel. */
uint32_t noxs_dev_port(const noxs_dev *d);
/* For the backend: the grant ref of the control page. */
uint32_t noxs_dev_gref(const noxs_dev *d);

/*
 * Our half. Changes are staged locally and become visible to the peer
 * with noxs_dev_publish(), which writes the whole half under its seqlock
 * and notifies the peer. Staging never fails for space silently:
 * noxs_dev_set_kv() returns -1/E2BIG (key or value too long) or ENOSPC
 * (the half's key/value area is full).
 */
int noxs_dev_set_kv(noxs_dev *d, const char *key, const char *value);
int noxs_dev_del_kv(noxs_dev *d, const char *key);
/* Our own staged value (NULL if unset). Valid until the next change. */
const char *noxs_dev_get_own_kv(const noxs_dev *d, const char *key);
int noxs_dev_set_refs(noxs_dev *d, const uint32_t *refs, unsigned int n);
int noxs_dev_set_ports(noxs_dev *d, const uint32_t *ports, unsigned int n);
void noxs_dev_set_features(noxs_dev *d, uint64_t features);
void noxs_dev_set_state(noxs_dev *d, unsigned int state);
unsigned int noxs_dev_state(const noxs_dev *d);
int noxs_dev_publish(noxs_dev *d);

/*
 * The peer's half: noxs_dev_refresh() takes a validated snapshot of it
 * (EBUSY: the peer keeps it torn, EPROTO: it is malformed); the getters
 * below read that snapshot. noxs_dev_refresh returns 1 if the peer's
 * generation changed since the previous refresh, 0 if not.
 */
int noxs_dev_refresh(noxs_dev *d);
unsigned int noxs_dev_peer_state(const noxs_dev *d);
uint32_t noxs_dev_peer_generation(const noxs_dev *d);
uint64_t noxs_dev_peer_features(const noxs_dev *d);
/* Peer's value for key into buf (NUL-terminated); length or -1/ENOENT,
 * -1/ENOSPC if buf is too small. */
int noxs_dev_peer_kv(const noxs_dev *d, const char *key, char *buf,
                     size_t len);
/* Peer's refs/ports; returns how many (copied up to max). */
unsigned int noxs_dev_peer_refs(const noxs_dev *d, uint32_t *refs,
                                unsigned int max);
unsigned int noxs_dev_peer_ports(const noxs_dev *d, uint32_t *ports,
                                 unsigned int max);
/* Iterate the peer's keys: call fn for each; stops if fn returns != 0. */
int noxs_dev_peer_kv_foreach(const noxs_dev *d,
                             int (*fn)(const char *key, const char *value,
                                       size_t value_len, void *arg),
                             void *arg);

/*
 * Typed reads of the peer's keys, for values the peer may have made up:
 * a plain decimal number (digits only, no sign, no blanks, no leading
 * zero) in [min, max]. Returns 0, or -1 with errno ENOENT (no such key),
 * EINVAL (not such a number) or ERANGE (a number outside [min, max],
 * also one too big for 32 bits). *out is only written on success.
 */
int noxs_dev_peer_u32(const noxs_dev *d, const char *key, uint32_t min,
                      uint32_t max, uint32_t *out);
/* The same for 64-bit values (sizes, counts). */
int noxs_dev_peer_u64(const noxs_dev *d, const char *key, uint64_t min,
                      uint64_t max, uint64_t *out);
/* A grant ref: NOXS_GREF_MIN..UINT32_MAX. */
int noxs_dev_peer_gref(const noxs_dev *d, const char *key, uint32_t *out);
/* An event-channel port: 1..NOXS_PORT_MAX. */
int noxs_dev_peer_port(const noxs_dev *d, const char *key, uint32_t *out);

/*
 * Move our half to state: stage it, publish and, for a backend's device,
 * report the states to noxsd. Returns 0 (also when already in state, then
 * nothing is published), or -1 with the publish error.
 */
int noxs_dev_switch_state(noxs_dev *d, unsigned int state);

/*
 * Frontend: share this session's liveness page (see NOXS_LIVENESS_KEY in
 * abi.h) and stage its key; the next noxs_dev_publish() tells the backend,
 * whose library maps it. A backend that dies or lets go then shows in
 * noxs_dev_peer_gone(). The page ends with noxs_dev_detach(). Our death
 * is signalled on notify_port, one of our ports bound to the backend: 0
 * is the device's own, which the backend library watches; a data driver
 * whose backend sleeps on a channel of its own may name that one instead
 * (its backend then watches the page itself). Sharing a page costs more
 * than the rest of a handshake on some platforms, so a driver may do it
 * after it is Connected. Returns 0 (also when already shared) or -1 with
 * errno (ENOTSUP: this platform shares no pages).
 */
int noxs_dev_liveness_start(noxs_dev *d, uint32_t notify_port);
/*
 * Frontend: whether the backend has gone, from the last snapshot and the
 * liveness page: 1 if the backend is Closing or Closed, or its liveness
 * byte was set and has been cleared (it died or unmapped); 0 otherwise.
 */
int noxs_dev_peer_gone(const noxs_dev *d);
/*
 * Frontend: wait until the backend's state is exactly state (InitWait
 * before connecting, Connected after publishing Initialised), re-reading
 * a torn half after a back-off until the deadline. Returns 0, or -1 with
 * errno ECONNREFUSED (its liveness byte cleared, or, waiting for a state
 * after InitWait, the backend went to Closing or Closed; a backend Closed
 * from an earlier session comes back to InitWait), ETIMEDOUT, or the
 * errors of noxs_dev_wait (EPROTO, EPIPE).
 */
int noxs_dev_wait_peer(noxs_dev *d, unsigned int state, int timeout_ms);

/* Notify the peer (a notification carries no data). */
int noxs_dev_notify(noxs_dev *d);

/*
 * Block until the peer's half changes (generation differs from the last
 * noxs_dev_refresh()) or timeout_ms passes (<0: forever, 0: just check).
 * Spins briefly on the page word, then sleeps on the event channel.
 * Returns 1 changed (and refreshed), 0 timeout, -1 error (EPROTO as
 * refresh; EBUSY if the peer's half is still torn at the deadline, at
 * once for timeout 0; EPIPE if the peer's event channel was closed).
 * A torn half is read again after a short back-off (1 ms doubling to
 * 64 ms), not on each of the peer's notifications, so a peer that keeps
 * it torn cannot make the waiter spin.
 *
 * The devices of one domain share one event-channel handle, so a wait
 * may consume (and unmask) an event meant for another device of the same
 * frontend or backend. That is harmless as long as every waiter re-reads
 * its page before blocking, as noxs_dev_wait() does: after a wait
 * returns, check the other devices' pages (noxs_dev_refresh()) rather
 * than relying on the fd being readable for them. The spin phase can be
 * tuned with $NOXS_SPIN_US (default 30; 0 disables it).
 */
int noxs_dev_wait(noxs_dev *d, int timeout_ms);

/*
 * Block until the peer reaches state >= min_state or one of Closing/
 * Closed (returns that state), or timeout (0 / -1 as noxs_dev_wait).
 * A wait for Closed goes on through Closing.
 */
int noxs_dev_wait_state(noxs_dev *d, unsigned int min_state, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Frontend                                                            */

typedef struct noxs_frontend noxs_frontend;

/*
 * Map this domain's device page (read-only) and bind its notify port.
 * boot == NULL: noxs_boot_find(). Errors: ENOENT no bootstrap, EPROTO
 * the page is not a noxs device page or not for this domain, and the
 * errors of the grant and event-channel calls.
 *
 * The domain id is taken from the page; if $NOXS_DOMID or
 * $NOXS_SIM_DOMID is set, the page must name that domain. On the
 * simulator the Xen handles take their domain from $NOXS_SIM_DOMID when
 * they are opened, so a process acting as several domains sets
 * NOXS_SIM_DOMID before each noxs_frontend_open(). Each frontend holds
 * one event-channel fd (plus one grant fd on Linux) and one mapping per
 * page.
 */
noxs_frontend *noxs_frontend_open(const struct noxs_boot *boot);
int noxs_frontend_close(noxs_frontend *f);
uint16_t noxs_frontend_domid(const noxs_frontend *f);
/* The event-channel fd of this domain (all its devices), for poll(). */
int noxs_frontend_fd(noxs_frontend *f);

/*
 * Validated snapshot of the device page's entries (at most max, VALID
 * entries only). Returns the number of entries and sets *generation.
 */
int noxs_frontend_devices(noxs_frontend *f, struct noxs_devpage_entry *out,
                          unsigned int max, uint32_t *generation);
/*
 * Block until the device page's generation differs from generation or
 * timeout (1 changed, 0 timeout, -1 error).
 */
int noxs_frontend_wait(noxs_frontend *f, uint32_t generation, int timeout_ms);
/*
 * Consume pending events on this domain's channel without blocking
 * (call when noxs_frontend_fd() is readable). Returns how many.
 */
int noxs_frontend_handle_events(noxs_frontend *f);

/*
 * Attach to device (type, devid) listed in the device page: map its
 * control page (read-write, checking the backend's identity fields),
 * bind its event channel. Our half starts at Initialising. ENOENT if
 * the device is not listed.
 */
noxs_dev *noxs_frontend_attach(noxs_frontend *f, unsigned int type,
                               uint32_t devid);
/*
 * Wait up to timeout_ms for (type, devid) to appear, then attach.
 */
noxs_dev *noxs_frontend_attach_wait(noxs_frontend *f, unsigned int type,
                                    uint32_t devid, int timeout_ms);
/* Publish Closed if not already, unbind and unmap. */
int noxs_dev_detach(noxs_dev *d);

/* ------------------------------------------------------------------ */
/* Backend                                                             */

typedef struct noxs_backend noxs_backend;

/*
 * A driver's callbacks. They run inside noxs_backend_dispatch() (and
 * noxs_backend_open*() for resume), on the caller's thread; they may call
 * every noxs_dev_* function on their device, noxs_backend_report() and
 * noxs_backend_control_reply(), but must not block, call
 * noxs_backend_dispatch() or close the backend.
 *
 * A driver that gives connect has the library run the xenbus state walk
 * for it (docs/DRIVERS.md):
 *   frontend Initialising/Unknown  end the session (disconnect), clear
 *                                  "error", publish InitWait;
 *   frontend Initialised/Connected while we are InitWait: connect; on
 *                                  success publish Connected, on failure
 *                                  write "error" = why and publish Closing;
 *   frontend Closing               end the session, publish Closing;
 *   frontend Closed                end the session, publish Closed;
 *   frontend dead (its liveness byte cleared while we are Connected)
 *                                  end the session, publish Closing, Closed.
 * While Connected the library maps the frontend's liveness page (key
 * NOXS_LIVENESS_KEY) and watches it. A driver without connect sees only
 * changed and walks the states itself.
 */
struct noxs_backend_ops {
    /*
     * noxsd asks to create a device. The control page and the unbound
     * channel already exist; publish features/keys (the library then
     * publishes InitWait). Return 0 to accept, or -errno to refuse.
     * params are the toolstack's KEY=VALUE parameters.
     */
    int (*create)(noxs_backend *b, noxs_dev *d, const struct noxs_kv *params,
                  size_t nparams, void *arg);
    /* The frontend's half changed (already refreshed). With connect set,
     * called before the library's walk acts on the change. */
    void (*changed)(noxs_backend *b, noxs_dev *d, void *arg);
    /* noxsd asks for control key=value; write up to reply_len bytes of
     * reply. Return 0 answered now, 1 will answer later with
     * noxs_backend_control_reply(), or -errno. */
    int (*control)(noxs_backend *b, noxs_dev *d, const char *key,
                   const char *value, uint32_t request, void *arg);
    /* The device is going away (dev-rm or domain destroy); the library
     * walks Closing -> Closed and frees d after this returns. With
     * connect set, a connected session has been ended first. */
    void (*remove)(noxs_backend *b, noxs_dev *d, void *arg);
    /*
     * The frontend is ready (Initialised or Connected): read its keys
     * (noxs_dev_peer_gref() and friends) and set up the session. Return
     * 0, or -errno with *why a short reason for the frontend, having
     * released what it took. Also called for a device Connected before
     * our restart (noxs_backend_restartable() == 2): pick the session up.
     */
    int (*connect)(noxs_backend *b, noxs_dev *d, const char **why, void *arg);
    /*
     * The session that connect set up ends: why is 0 (the frontend closed
     * or started over), ECONNRESET (the frontend died) or ENODEV (the
     * device is removed). Release the session's resources.
     */
    void (*disconnect)(noxs_backend *b, noxs_dev *d, int why, void *arg);
    /*
     * A device adopted from the fd store after our restart, before any
     * other callback for it: rebuild the driver's own state (what create
     * built). A driver that cannot serves it in the states it has until
     * the frontend or the toolstack moves it.
     */
    void (*resume)(noxs_backend *b, noxs_dev *d, void *arg);
};

/*
 * Connect to noxsd (path NULL: default) and register as the backend for
 * types[0..ntypes) in this domain. EADDRINUSE: another backend serves one
 * of these types in this domain.
 */
noxs_backend *noxs_backend_open(const char *path, const unsigned int *types,
                                size_t ntypes,
                                const struct noxs_backend_ops *ops, void *arg);
/*
 * As noxs_backend_open(), with flags:
 *   NOXS_BACKEND_RESUMABLE  the driver can resume devices after its own
 *     restart (it rebuilds its state for each device listed by
 *     noxs_backend_next_dev() when noxs_backend_restartable() says 2).
 *     Under a service manager's file descriptor store ($NOTIFY_SOCKET,
 *     FileDescriptorStoreMax= >= 3 in the unit, sd_notify(3)) the control
 *     pages are then allocated on the gntalloc file, which with the
 *     event-channel file and a memfd describing the devices is stored
 *     (FDSTORE=1, names "noxs-backend-*"), and a start with those files
 *     in $LISTEN_FDS resumes every device as it was. Without a store, or
 *     with $NOXS_BACKEND_FDSTORE=0, the flag changes nothing.
 */
#define NOXS_BACKEND_RESUMABLE 0x1u
noxs_backend *noxs_backend_open_flags(const char *path,
                                      const unsigned int *types,
                                      size_t ntypes,
                                      const struct noxs_backend_ops *ops,
                                      void *arg, unsigned int flags);
int noxs_backend_close(noxs_backend *b);
/* One fd that is readable when noxs_backend_dispatch() has work. */
int noxs_backend_fd(noxs_backend *b);
/* Handle requests and events; waits up to timeout_ms for the first. */
int noxs_backend_dispatch(noxs_backend *b, int timeout_ms);
/* Answer a control request deferred by ops->control returning 1. */
int noxs_backend_control_reply(noxs_backend *b, uint32_t request, int err,
                               const char *reply);
/* Report our device's states to noxsd (for dev-list and watchers). */
int noxs_backend_report(noxs_backend *b, noxs_dev *d);
/*
 * Whether our devices outlive this process: 0 no (they close with it:
 * not opened NOXS_BACKEND_RESUMABLE, no service manager fd store
 * ($NOTIFY_SOCKET unset) or $NOXS_BACKEND_FDSTORE=0); 1 yes, our files are in the service
 * manager's fd store; 2 yes, and this instance resumed the devices of the
 * previous one from it (they are already registered with noxsd, in the
 * states they had; walk them with noxs_backend_next_dev() to rebuild the
 * driver's own state, e.g. mappings of the frontend's pages). With 1 or
 * 2, noxs_backend_close() leaves the devices to the next instance.
 */
int noxs_backend_restartable(noxs_backend *b);
/* The backend's live devices: prev NULL for the first; NULL at the end. */
noxs_dev *noxs_backend_next_dev(noxs_backend *b, noxs_dev *prev);
/* Per-device user pointer. */
void noxs_dev_set_user(noxs_dev *d, void *user);
void *noxs_dev_user(const noxs_dev *d);

#ifdef __cplusplus
}
#endif

#endif /* NOXS_NOXS_H */
