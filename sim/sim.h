/*
 * noxs simulated hypervisor: private core contract.
 *
 * The simulator is a set of files under one directory (NOXS_SIM_DIR), one
 * file per simulated domain, mapped MAP_SHARED by every process that acts
 * as or talks to that domain. There is no daemon: every operation is done
 * by the calling process on the shared tables, under a process-shared
 * robust mutex per domain (control paths) or with atomics alone (the
 * event notify path).
 *
 * Domain file layout (all offsets fixed, file sparse):
 *
 *   0                 struct sim_domain_hdr (one page)
 *   SIM_SLOTS_OFF     struct sim_slot[SIM_NR_SLOTS]     evtchn handles
 *   SIM_PORTS_OFF     struct sim_port[SIM_NR_PORTS]     event channels
 *   SIM_GRANTS_OFF    struct sim_grant[SIM_NR_GRANTS]   grant table
 *   SIM_MAPS_OFF      struct sim_map[SIM_NR_MAPS]       grants this domain maps
 *   SIM_PAGES_OFF     SIM_NR_GRANTS pages               page of grant ref N
 *   SIM_MEM_OFF       mem_pages pages                   guest memory (gfn N)
 *
 * Everything up to SIM_PAGES_OFF is the "meta" region: mapped once per
 * process per domain and shared by all handles. Pages are mapped on
 * demand by the grant and foreign-memory calls.
 *
 * Owners. An event channel belongs to an evtchn handle, identified by
 * (domain, slot, gen); the handle's Unix datagram socket is bound to an
 * abstract name derived from that triple, so the handle is alive exactly
 * while that socket exists (the kernel closes it with the last fd, also on
 * kill -9 or after passing the fd to another process). Grants and grant
 * mappings belong to a process, identified by (pid, start time).
 *
 * Death. The first process-owned resource spawns a guardian process
 * (noxs-sim-guardian) that holds a pidfd of its parent and learns over a
 * pipe which domains and handles the parent used; when the parent dies it
 * reaps them (ports closed and peers woken, mappings released with their
 * unmap notifications, grants ended). Without a guardian, dead owners are
 * reaped lazily (noxs_sim_reap_domain, called by the stat tool and when a
 * table is full).
 */
#ifndef NOXS_SIM_H
#define NOXS_SIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef NOXS_SIM_STATIC
#define NOXS_SIM_API
#else
#define NOXS_SIM_API __attribute__((visibility("default")))
#endif

#define SIM_PAGE_SIZE 4096u
#define SIM_MAGIC 0x31304d4953584f4eull /* "NOXSIM01" */
#define SIM_LAYOUT_VERSION 2u

#define SIM_NR_SLOTS 16384u
#define SIM_NR_PORTS (1u << 17)
#define SIM_NR_GRANTS 32768u
#define SIM_NR_MAPS 65536u
#define SIM_FIRST_GRANT 8u /* refs 0..7 are reserved, as in Xen */
#define SIM_DOMID_LIMIT 0x7ff0u /* DOMID_FIRST_RESERVED */
#define SIM_DOMID_SELF 0x7ff0u
#define SIM_DEFAULT_MEM_PAGES 256u
#define SIM_NONE 0xffffffffu

/* Port states. */
#define SIM_PORT_FREE 0u
#define SIM_PORT_RESERVED 1u
#define SIM_PORT_UNBOUND 2u
#define SIM_PORT_INTERDOMAIN 3u
#define SIM_PORT_VIRQ 4u /* domain 0's VIRQ_DOM_EXC (remote_port: the virq) */

/* Domain life (struct sim_domain_hdr.life). */
#define SIM_LIFE_ALIVE 0u /* zero: what a file made before lives had */
#define SIM_LIFE_DYING 1u /* destroyed; something of it is still held */
#define SIM_LIFE_DEAD 2u /* nothing left; the domid may be reused */

#define SIM_VIRQ_DOM_EXC 3u /* xen.h's VIRQ_DOM_EXC */

/* Port flags. */
#define SIM_PF_PENDING 1u /* raised while masked: redeliver on unmask */
#define SIM_PF_MASKED 2u /* delivered (or masked) until unmask */
#define SIM_PF_QUEUED 4u /* on the owner's delivery stack or local fifo */

/* Grant states. */
#define SIM_GRANT_FREE 0u
#define SIM_GRANT_ACTIVE 1u
#define SIM_GRANT_ENDING 2u /* granter let go, grantee still maps it */

#define SIM_MAP_FREE 0u
#define SIM_MAP_ACTIVE 1u

#define SIM_SLOT_FREE 0u
#define SIM_SLOT_USED 1u
#define SIM_SLOT_RESERVED 2u /* being opened: socket not bound yet */

struct sim_domain_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t domid;
	uint32_t mem_pages;
	uint32_t pad0;
	uint64_t file_size;
	pthread_mutex_t lock; /* process-shared, robust */
	_Atomic uint32_t port_hint; /* lowest port that may be free */
	_Atomic uint32_t port_high; /* one past the highest port ever used */
	_Atomic uint32_t grant_hint;
	_Atomic uint32_t grant_high;
	_Atomic uint32_t map_hint;
	_Atomic uint32_t map_high;
	_Atomic uint32_t slot_hint;
	_Atomic uint32_t slot_high;
	/* Appended in layout 1: zero in older files means alive. */
	_Atomic uint32_t life; /* SIM_LIFE_* */
	_Atomic uint32_t incarnation; /* bumped when a dead domid is reused */
	_Atomic uint32_t virq_dom_exc; /* domain 0: the bound port, 0 if none */
	/* Appended in layout 2: 0 running, else 1 + SHUTDOWN_* reason
	 * (noxs-simctl shutdown; cleared when the domid is reused). */
	_Atomic uint32_t shutdown;
};

struct sim_slot {
	_Atomic uint32_t state;
	_Atomic uint32_t gen; /* bumped at each allocation */
	_Atomic uint32_t head; /* delivery stack of ports, 0 = empty */
	_Atomic uint32_t pid; /* informational: the opener */
	uint8_t pad[48];
};

struct sim_port {
	_Atomic uint32_t state;
	_Atomic uint32_t remote_dom;
	_Atomic uint32_t remote_port;
	_Atomic uint32_t flags;
	_Atomic uint32_t slot; /* owning handle: slot index and gen */
	_Atomic uint32_t gen;
	_Atomic uint32_t next; /* link on the owner's delivery stack */
	uint32_t pad;
};

struct sim_owner {
	_Atomic uint32_t pid;
	_Atomic uint32_t image; /* struct sim_self.image of the owner */
	_Atomic uint64_t start; /* process start time, against pid reuse */
};

struct sim_grant {
	_Atomic uint32_t state;
	_Atomic uint32_t grantee;
	_Atomic uint32_t readonly;
	_Atomic uint32_t map_count;
	_Atomic uint32_t notify_offset; /* SIM_NONE: none */
	_Atomic uint32_t notify_port;
	struct sim_owner owner;
	uint8_t pad[24];
};

struct sim_map {
	_Atomic uint32_t state;
	_Atomic uint32_t granter;
	_Atomic uint32_t ref;
	_Atomic uint32_t notify_offset;
	_Atomic uint32_t notify_port;
	_Atomic uint32_t readonly;
	struct sim_owner owner;
	uint8_t pad[24];
};

_Static_assert(sizeof(struct sim_domain_hdr) <= SIM_PAGE_SIZE, "hdr size");
_Static_assert(sizeof(struct sim_slot) == 64, "slot size");
_Static_assert(sizeof(struct sim_port) == 32, "port size");
_Static_assert(sizeof(struct sim_grant) == 64, "grant size");
_Static_assert(sizeof(struct sim_map) == 64, "map size");

/*
 * The header page stands alone in a 64 KiB-aligned window: a read fault
 * maps the file's cached neighbours within such a window too (Linux's
 * fault-around), so a process that only reads a domain's header (the
 * domain list, a lookup) would otherwise carry its slot page as well,
 * 4 KiB of RSS per domain that Xen's domctl does not cost anyone.
 */
#define SIM_HDR_WINDOW ((uint64_t)16 * SIM_PAGE_SIZE)
#define SIM_SLOTS_OFF SIM_HDR_WINDOW
#define SIM_PORTS_OFF (SIM_SLOTS_OFF + (uint64_t)SIM_NR_SLOTS * 64)
#define SIM_GRANTS_OFF (SIM_PORTS_OFF + (uint64_t)SIM_NR_PORTS * 32)
#define SIM_MAPS_OFF (SIM_GRANTS_OFF + (uint64_t)SIM_NR_GRANTS * 64)
#define SIM_META_SIZE (SIM_MAPS_OFF + (uint64_t)SIM_NR_MAPS * 64)
#define SIM_PAGES_OFF SIM_META_SIZE
#define SIM_MEM_OFF (SIM_PAGES_OFF + (uint64_t)SIM_NR_GRANTS * SIM_PAGE_SIZE)

/* One simulated domain as seen by this process (mapped once, never freed). */
struct sim_domain {
	uint32_t domid;
	dev_t dev; /* the domain file's identity, to check a kept fd */
	ino_t ino;
	_Atomic int pages_fd; /* kept fd for page operations, plus one; 0: none */
	struct sim_domain_hdr *hdr;
	struct sim_slot *slots;
	struct sim_port *ports;
	struct sim_grant *grants;
	struct sim_map *maps;
};

/* Process identity (recomputed after fork). */
struct sim_self {
	uint32_t pid;
	uint32_t image; /* random per program image: tells exec'd images apart */
	uint64_t start;
};

/*
 * ---- the core, libnoxs-sim.so.0 ----
 *
 * core.c         the sim directory, the table of mapped domains, the
 *                calling thread's domain, process identity, locking,
 *                the liveness of evtchn handles;
 * core_domain.c  domain files, their mapping, a domain's life;
 * core_event.c   event channels and their delivery;
 * core_grant.c   releasing grants and mappings, grants owned by a file;
 * core_reap.c    reaping what dead owners held;
 * core_guard.c   spawning and telling this process's guardian.
 */

/* Shared by the core's files only: hidden in the library and absent
 * from its version map. */
#define SIM_CORE_HIDDEN __attribute__((visibility("hidden")))
/* The sim directory's real path, set once by noxs_sim_dir(). */
SIM_CORE_HIDDEN extern char sim_dir_path[];
/* Whether it is on tmpfs (no read-ahead to turn off), set with it. */
SIM_CORE_HIDDEN extern int sim_dir_tmpfs;
/* This process's mapping of each domain, NULL until first used. */
SIM_CORE_HIDDEN extern _Atomic(struct sim_domain *) *sim_domains;
/* The path of domid's file into buf. */
SIM_CORE_HIDDEN void sim_domain_path(uint32_t domid, char *buf, size_t len);
/* Free a port of dom (call with dom's lock). */
SIM_CORE_HIDDEN void sim_port_free_locked(struct sim_domain *dom,
	uint32_t port);

/* ---- core.c, core_domain.c ---- */

/* Sim directory (created on demand); NULL with errno on failure. */
NOXS_SIM_API const char *noxs_sim_dir(void);
/*
 * Domain id for a new handle: the calling thread's noxs_sim_open_as()
 * setting, else NOXS_SIM_DOMID; -1 with EINVAL if bad.
 */
NOXS_SIM_API int noxs_sim_env_domid(uint32_t *domid);
/*
 * Handles the calling thread opens from now on act as domain domid (-1:
 * as NOXS_SIM_DOMID says again). Returns the previous setting (-1:
 * none), or -2 with EINVAL for a domid out of range. One process may so
 * play many domains without changing its environment, which other
 * threads may be reading. libnoxs's noxs_open_as() finds it with dlsym.
 */
NOXS_SIM_API int noxs_sim_open_as(int domid);
/*
 * The domain's tables, mapped once per process. create: make the domain
 * exist if it does not (the caller acts as it); otherwise NULL with ESRCH
 * when no process ever acted as that domain.
 */
NOXS_SIM_API struct sim_domain *noxs_sim_domain(uint32_t domid, int create);
/* A new O_RDWR fd of the domain's file (caller closes), -1 with errno. */
NOXS_SIM_API int noxs_sim_domain_fd(uint32_t domid);
/*
 * An fd of the domain's file for page operations (share, map, copy):
 * the process's kept one when it has one (see core_domain.c), else a new
 * one. Hand it back with noxs_sim_pages_fd_put(), which closes only a
 * new one. -1 with errno.
 */
NOXS_SIM_API int noxs_sim_pages_fd_get(uint32_t domid);
NOXS_SIM_API void noxs_sim_pages_fd_put(uint32_t domid, int fd);
/* getpid(), without a system call after the first (reset in a fork child). */
NOXS_SIM_API uint32_t noxs_sim_pid(void);
NOXS_SIM_API const struct sim_self *noxs_sim_self(void);
NOXS_SIM_API void noxs_sim_owner_set(struct sim_owner *o);
NOXS_SIM_API int noxs_sim_owner_is_self(const struct sim_owner *o);

/* Robust lock of one domain, or two in domid order (b may equal a / NULL). */
NOXS_SIM_API void noxs_sim_lock(struct sim_domain *a, struct sim_domain *b);
NOXS_SIM_API void noxs_sim_unlock(struct sim_domain *a, struct sim_domain *b);

/* Liveness. */
NOXS_SIM_API int noxs_sim_process_alive(uint32_t pid, uint64_t start);
NOXS_SIM_API int noxs_sim_slot_alive(uint32_t domid, uint32_t slot,
	uint32_t gen);
NOXS_SIM_API void noxs_sim_slot_name(uint32_t domid, uint32_t slot,
	uint32_t gen, void *sockaddr_un, unsigned *len);

/* Guardian registration (no-ops if the guardian cannot run; core_guard.c). */
NOXS_SIM_API void noxs_sim_guard_domain(uint32_t domid);
NOXS_SIM_API void noxs_sim_guard_slot(uint32_t domid, uint32_t slot,
	uint32_t gen);

/* ---- events (core_event.c) ---- */

/* Allocate a port in dom (locked by caller); 0 with errno if full. */
NOXS_SIM_API uint32_t noxs_sim_port_alloc(struct sim_domain *dom);
/*
 * Raise an event on (dom, port) with Xen/Linux semantics: set pending if
 * masked, else mask and deliver to the owner (wake-up token if its
 * delivery stack was empty). sendfd: a datagram socket to send from, or
 * -1 for the process-wide one. Lock-free.
 */
NOXS_SIM_API void noxs_sim_port_raise(struct sim_domain *dom, uint32_t port,
	int sendfd);
/* Unmask a port: clear the mask, redeliver if it became pending meanwhile. */
NOXS_SIM_API void noxs_sim_port_unmask(struct sim_domain *dom, uint32_t port,
	int sendfd);
/* Send an event from (dom, port) to its interdomain peer, if any. */
NOXS_SIM_API void noxs_sim_port_send(struct sim_domain *dom, uint32_t port,
	int sendfd);
/*
 * Close a port of dom: its peer (if interdomain) goes back to unbound and
 * is woken. Takes the locks. The caller has removed it from any local
 * fifo. Returns 0, or -1 with errno if the port was not in state
 * expect_slot/expect_gen (SIM_NONE: any owner).
 */
NOXS_SIM_API int noxs_sim_port_close(struct sim_domain *dom, uint32_t port,
	uint32_t expect_slot, uint32_t expect_gen);

/* ---- grants (core_grant.c) ---- */

/* Release one grant ref held by the granter (notify, then end or free). */
NOXS_SIM_API void noxs_sim_grant_end(struct sim_domain *g, uint32_t ref,
	int zero_fd);
/* Release one map record of domain m (notify, drop the grant's count). */
NOXS_SIM_API void noxs_sim_map_release(struct sim_domain *m, uint32_t idx);

/*
 * Grants made through the gntalloc interface on a gntshr handle's fd
 * (noxs_sim_gntalloc_ioctl) belong to that open file, not to a process:
 * their owner has pid 0 and this image, and the file holds an OFD read
 * lock on the grant's lock byte (the last byte of its record) for as long
 * as it is open anywhere (fd passing, a mapping). Reapers end such a
 * grant once nobody holds the lock.
 */
#define SIM_IMAGE_FILE 2u /* real images are odd */
#define SIM_GRANT_LOCK_OFF(ref) \
	(SIM_GRANTS_OFF + (uint64_t)(ref)*64 + 63)
/* 1 if some open file still owns the grant (ref of dom), else 0. */
NOXS_SIM_API int noxs_sim_grant_file_alive(struct sim_domain *dom,
	uint32_t ref);
/*
 * The gntalloc device's ioctls (IOCTL_GNTALLOC_ALLOC_GREF with count 1,
 * IOCTL_GNTALLOC_DEALLOC_GREF) on an fd from xengntshr_fd(); the index
 * returned is the mmap offset of the grant page in that fd. -1 with errno.
 */
NOXS_SIM_API int noxs_sim_gntalloc_ioctl(int fd, unsigned long request,
	void *arg);

/* ---- reaping (core_reap.c) ---- */

/* Reap everything in dom owned by dead owners; returns number reaped. */
NOXS_SIM_API unsigned noxs_sim_reap_domain(struct sim_domain *dom);
/* Reap what process (pid, start) owned in dom (it is known to be dead). */
NOXS_SIM_API unsigned noxs_sim_reap_process(struct sim_domain *dom,
	uint32_t pid, uint64_t start, uint32_t image);
/* ---- domain life (core_domain.c) ---- */

/*
 * Mark a domain destroyed (DYING), as `xl destroy` does: with kill, every
 * live process that holds a resource as it (an evtchn handle, a grant, a
 * mapping) gets SIGKILL, as the domain's vCPUs would stop; then raise
 * VIRQ_DOM_EXC. 0, or -1 with ESRCH (no such domain, or dead already)
 * or EPERM (domain 0).
 */
NOXS_SIM_API int noxs_sim_domain_destroy(uint32_t domid, int kill);
/* Mark a live domain shut down with reason (SHUTDOWN_poweroff, ...), as
 * a guest's SCHEDOP_shutdown does, and raise VIRQ_DOM_EXC. */
NOXS_SIM_API int noxs_sim_domain_shutdown(uint32_t domid, uint32_t reason);
/*
 * A DYING domain whose resources are all released (dead owners reaped
 * first) becomes DEAD, and VIRQ_DOM_EXC is raised again. Returns the
 * domain's life after that.
 */
NOXS_SIM_API uint32_t noxs_sim_domain_settle(struct sim_domain *dom);
/* Raise domain 0's VIRQ_DOM_EXC if a handle bound it. */
NOXS_SIM_API void noxs_sim_virq_dom_exc(void);

/* Largest domid + 1 that has a file, for scans (0 if none). */
NOXS_SIM_API uint32_t noxs_sim_domain_limit(void);
/* Reap a dead evtchn handle's ports and slot. */
NOXS_SIM_API unsigned noxs_sim_reap_slot(struct sim_domain *dom,
	uint32_t slot, uint32_t gen);

/* Guardian message on the pipe. */
#define SIM_GUARD_DOMAIN 1u
#define SIM_GUARD_SLOT 2u
struct sim_guard_msg {
	uint32_t type;
	uint32_t domid;
	uint32_t slot;
	uint32_t gen;
};

/*
 * The guardian's ledger: a memfd the process and its guardian share (the
 * guardian's fd 5). The process records there the domains it touched and
 * the evtchn handles it opened, with plain stores and no wake-up; the
 * guardian reads it only when the process has died or exec'd. When the
 * slot array is full the process falls back to messages on the socket.
 */
#define SIM_GUARD_LEDGER_SLOTS (1u << 20)
struct sim_guard_ledger {
	_Atomic uint32_t nslots; /* slots[0 .. nslots) are written */
	uint32_t cap;
	uint8_t touched[SIM_DOMID_LIMIT / 8];
	struct sim_guard_msg slots[];
};
#define SIM_GUARD_LEDGER_SIZE \
	(sizeof(struct sim_guard_ledger) + \
		(size_t)SIM_GUARD_LEDGER_SLOTS * sizeof(struct sim_guard_msg))

#endif
