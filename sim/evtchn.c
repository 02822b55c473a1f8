/*
 * libxenevtchn.so.1 on the noxs simulator.
 *
 * A handle is one slot in its domain's slot table plus one Unix datagram
 * socket bound to the slot's abstract name (the only fd it owns). Ports
 * live in the domain's port table and name their handle by (slot, gen).
 * Delivery, masking and coalescing follow the Linux evtchn driver on Xen:
 * a delivered port is masked until xenevtchn_unmask(); events raised while
 * masked collapse into one delivery at unmask. See core_event.c for the
 * wake-up token protocol that keeps xenevtchn_fd() readable exactly while
 * something is pending.
 */
#pragma GCC visibility push(default)
#include <xenevtchn.h>
#pragma GCC visibility pop

#include "sim.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define UNRESTRICTED (-1)

struct xenevtchn_handle {
	int fd;
	uint32_t domid;
	struct sim_domain *dom;
	uint32_t slot;
	uint32_t gen;
	int restrict_domid;
	pthread_mutex_t lock; /* the local fifo */
	uint32_t *fifo; /* delivered ports taken from the slot's stack */
	size_t fifo_head, fifo_len, fifo_cap;
	long owed; /* batches taken whose wake-up token is not consumed yet */
};

static struct sim_slot *slot_of(xenevtchn_handle *h)
{
	return &h->dom->slots[h->slot];
}

static int owns(xenevtchn_handle *h, uint32_t port)
{
	struct sim_port *p;
	uint32_t st;

	if (port == 0 || port >= SIM_NR_PORTS)
		return 0;
	p = &h->dom->ports[port];
	st = atomic_load_explicit(&p->state, memory_order_acquire);
	return (st == SIM_PORT_UNBOUND || st == SIM_PORT_INTERDOMAIN ||
		       st == SIM_PORT_VIRQ) &&
		atomic_load_explicit(&p->slot, memory_order_relaxed) ==
		h->slot &&
		atomic_load_explicit(&p->gen, memory_order_relaxed) == h->gen;
}

/* Take the slot's whole delivery stack into the fifo (call with h->lock). */
static int fifo_fill(xenevtchn_handle *h)
{
	uint32_t list, n = 0;

	if (h->fifo_head > 0) {
		memmove(h->fifo, h->fifo + h->fifo_head,
			(h->fifo_len - h->fifo_head) * sizeof(*h->fifo));
		h->fifo_len -= h->fifo_head;
		h->fifo_head = 0;
	}
	list = atomic_exchange_explicit(&slot_of(h)->head, 0,
		memory_order_acquire);
	if (!list)
		return 0;
	h->owed++;
	for (uint32_t p = list; p && p < SIM_NR_PORTS && n < SIM_NR_PORTS;
		p = atomic_load_explicit(&h->dom->ports[p].next,
			memory_order_relaxed))
		n++;
	if (h->fifo_len + n > h->fifo_cap) {
		size_t cap = h->fifo_cap ? h->fifo_cap : 16;
		while (cap < h->fifo_len + n)
			cap *= 2;
		uint32_t *f = realloc(h->fifo, cap * sizeof(*f));
		if (!f) {
			/* Put the batch back; its token is still queued. */
			uint32_t last = list;
			while (atomic_load(&h->dom->ports[last].next))
				last = atomic_load(&h->dom->ports[last].next);
			uint32_t old = atomic_load(&slot_of(h)->head);
			do
				atomic_store(&h->dom->ports[last].next, old);
			while (!atomic_compare_exchange_weak(&slot_of(h)->head,
				&old, list));
			h->owed--;
			errno = ENOMEM;
			return -1;
		}
		h->fifo = f;
		h->fifo_cap = cap;
	}
	/* The stack is newest first: fill backwards for arrival order. */
	uint32_t i = n;
	for (uint32_t p = list; p && i > 0;
		p = atomic_load_explicit(&h->dom->ports[p].next,
			memory_order_relaxed))
		h->fifo[h->fifo_len + --i] = p;
	h->fifo_len += n;
	return 1;
}

/*
 * Consume the wake-up tokens of the batches taken so far (the fifo is
 * empty). A token can still be in flight when its sender was preempted
 * between pushing and sending; wait for it briefly, then give up (a late
 * token is then a spurious wake-up, which pending() absorbs).
 */
static void settle(xenevtchn_handle *h)
{
	int tries = 0;

	while (h->owed > 0) {
		char b;
		ssize_t n = recv(h->fd, &b, 1, MSG_DONTWAIT);
		if (n >= 0) {
			h->owed--;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || ++tries > 200) {
			h->owed = 0;
			break;
		}
		struct pollfd pfd = { .fd = h->fd, .events = POLLIN };
		poll(&pfd, 1, 1);
	}
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
	unsigned int flags)
{
	xenevtchn_handle *h;
	struct sockaddr_un sun;
	unsigned len;
	uint32_t domid;
	int e;

	(void)logger;
	if (noxs_sim_env_domid(&domid) < 0)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->fd = -1;
	h->domid = domid;
	h->restrict_domid = UNRESTRICTED;
	h->slot = SIM_NONE;
	pthread_mutex_init(&h->lock, NULL);
	h->dom = noxs_sim_domain(domid, 1);
	if (!h->dom)
		goto fail;

	noxs_sim_lock(h->dom, NULL);
	struct sim_domain_hdr *hdr = h->dom->hdr;
	for (uint32_t i = atomic_load(&hdr->slot_hint); i < SIM_NR_SLOTS; i++) {
		struct sim_slot *s = &h->dom->slots[i];
		if (atomic_load(&s->state) != SIM_SLOT_FREE)
			continue;
		uint32_t gen = atomic_load(&s->gen) + 1;
		if (gen == 0)
			gen = 1;
		atomic_store(&s->gen, gen);
		atomic_store(&s->head, 0);
		atomic_store(&s->pid, (uint32_t)getpid());
		atomic_store(&s->state, SIM_SLOT_RESERVED);
		atomic_store(&hdr->slot_hint, i + 1);
		if (atomic_load(&hdr->slot_high) < i + 1)
			atomic_store(&hdr->slot_high, i + 1);
		h->slot = i;
		h->gen = gen;
		break;
	}
	noxs_sim_unlock(h->dom, NULL);
	if (h->slot == SIM_NONE) {
		/* Full: reap handles of dead processes once, then give up. */
		errno = noxs_sim_reap_domain(h->dom) ? EAGAIN : EMFILE;
		goto fail;
	}

	h->fd = socket(AF_UNIX,
		SOCK_DGRAM | ((flags & XENEVTCHN_NO_CLOEXEC) ? 0 : SOCK_CLOEXEC),
		0);
	if (h->fd < 0)
		goto fail;
	noxs_sim_slot_name(domid, h->slot, h->gen, &sun, &len);
	if (bind(h->fd, (struct sockaddr *)&sun, len) < 0)
		goto fail;
	/* Tokens we send sit in our send buffer until read: allow many. */
	int sndbuf = 4 << 20;
	setsockopt(h->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	atomic_store_explicit(&slot_of(h)->state, SIM_SLOT_USED,
		memory_order_release);
	noxs_sim_guard_slot(domid, h->slot, h->gen);
	return h;
fail:
	e = errno;
	if (h->fd >= 0)
		close(h->fd);
	if (h->dom && h->slot != SIM_NONE) {
		noxs_sim_lock(h->dom, NULL);
		atomic_store(&slot_of(h)->state, SIM_SLOT_FREE);
		noxs_sim_unlock(h->dom, NULL);
	}
	pthread_mutex_destroy(&h->lock);
	free(h);
	errno = e;
	return NULL;
}

xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd,
	unsigned open_flags)
{
	struct sockaddr_un sun, want;
	socklen_t len = sizeof(sun);
	unsigned wlen, dom, slot, gen;
	unsigned long long hash;
	xenevtchn_handle *h;

	(void)logger;
	(void)open_flags;
	if (getsockname(fd, (struct sockaddr *)&sun, &len) < 0) {
		errno = EBADF;
		return NULL;
	}
	if (sun.sun_family != AF_UNIX || len <= sizeof(sa_family_t) + 1 ||
		sun.sun_path[0] != '\0')
		goto bad;
	((char *)&sun)[len < sizeof(sun) ? len : sizeof(sun) - 1] = '\0';
	if (sscanf(sun.sun_path + 1, "noxs-sim/%16llx/%u/%u/%u", &hash, &dom,
		    &slot, &gen) != 4 ||
		dom >= SIM_DOMID_LIMIT || slot >= SIM_NR_SLOTS)
		goto bad;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->dom = noxs_sim_domain(dom, 0);
	noxs_sim_slot_name(dom, slot, gen, &want, &wlen);
	if (!h->dom || wlen != len || memcmp(&want, &sun, len) != 0 ||
		atomic_load(&h->dom->slots[slot].gen) != gen) {
		free(h);
		goto bad;
	}
	h->fd = fd;
	h->domid = dom;
	h->slot = slot;
	h->gen = gen;
	h->restrict_domid = UNRESTRICTED;
	pthread_mutex_init(&h->lock, NULL);
	/*
	 * Events the previous holder took off the stack but never returned
	 * are marked queued yet on no stack: deliver them again here.
	 */
	pthread_mutex_lock(&h->lock);
	fifo_fill(h);
	uint32_t high = atomic_load(&h->dom->hdr->port_high);
	for (uint32_t p = 1; p < high && p < SIM_NR_PORTS; p++) {
		if (!owns(h, p) ||
			!(atomic_load(&h->dom->ports[p].flags) & SIM_PF_QUEUED))
			continue;
		int found = 0;
		for (size_t i = 0; i < h->fifo_len; i++)
			found |= h->fifo[i] == p;
		if (found)
			continue;
		atomic_fetch_and(&h->dom->ports[p].flags, ~SIM_PF_QUEUED);
		atomic_fetch_and(&h->dom->ports[p].flags, ~SIM_PF_MASKED);
		noxs_sim_port_raise(h->dom, p, h->fd);
	}
	pthread_mutex_unlock(&h->lock);
	noxs_sim_guard_slot(dom, slot, gen);
	return h;
bad:
	errno = EINVAL;
	return NULL;
}

int xenevtchn_close(xenevtchn_handle *h)
{
	if (!h)
		return 0;
	/* Unbinds every port of the handle; peers see them unbound. */
	noxs_sim_reap_slot(h->dom, h->slot, h->gen);
	close(h->fd);
	pthread_mutex_destroy(&h->lock);
	free(h->fifo);
	free(h);
	return 0;
}

int xenevtchn_fd(xenevtchn_handle *h)
{
	return h->fd;
}

int xenevtchn_notify(xenevtchn_handle *h, evtchn_port_t port)
{
	struct sim_port *p;

	if (!owns(h, port)) {
		errno = ENOTCONN;
		return -1;
	}
	p = &h->dom->ports[port];
	if (atomic_load_explicit(&p->state, memory_order_acquire) ==
		SIM_PORT_INTERDOMAIN)
		noxs_sim_port_send(h->dom, port, h->fd);
	return 0;
}

/* Make port (allocated, the domain locked) h's, bound as state says. */
static void claim_port(xenevtchn_handle *h, uint32_t port,
	uint32_t remote_dom, uint32_t remote_port, uint32_t state)
{
	struct sim_port *p = &h->dom->ports[port];

	atomic_store(&p->slot, h->slot);
	atomic_store(&p->gen, h->gen);
	atomic_store(&p->remote_dom, remote_dom);
	atomic_store(&p->remote_port, remote_port);
	atomic_store_explicit(&p->state, state, memory_order_release);
}

xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *h,
	uint32_t domid)
{
	uint32_t port;

	if (h->restrict_domid != UNRESTRICTED) {
		errno = EACCES;
		return -1;
	}
	if (domid == SIM_DOMID_SELF)
		domid = h->domid;
	if (domid >= SIM_DOMID_LIMIT) {
		errno = EINVAL;
		return -1;
	}
	noxs_sim_lock(h->dom, NULL);
	port = noxs_sim_port_alloc(h->dom);
	if (port) {
		struct sim_port *p = &h->dom->ports[port];
		atomic_store(&p->slot, h->slot);
		atomic_store(&p->gen, h->gen);
		atomic_store(&p->remote_dom, domid);
		atomic_store_explicit(&p->state, SIM_PORT_UNBOUND,
			memory_order_release);
	}
	noxs_sim_unlock(h->dom, NULL);
	if (!port)
		return -1;
	noxs_sim_guard_domain(domid);
	return (xenevtchn_port_or_error_t)port;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *h,
	uint32_t domid, evtchn_port_t remote_port)
{
	struct sim_domain *rdom;
	struct sim_port *r;
	uint32_t port = 0;
	int err = 0;

	if (domid == SIM_DOMID_SELF)
		domid = h->domid;
	if (h->restrict_domid != UNRESTRICTED &&
		(uint32_t)h->restrict_domid != domid) {
		errno = EACCES;
		return -1;
	}
	rdom = noxs_sim_domain(domid, 0);
	if (!rdom) {
		errno = ESRCH;
		return -1;
	}
	if (remote_port == 0 || remote_port >= SIM_NR_PORTS) {
		errno = EINVAL;
		return -1;
	}
	r = &rdom->ports[remote_port];
	/* An unbound port whose handle died is closed, as Xen would have. */
	if (atomic_load(&r->state) == SIM_PORT_UNBOUND &&
		!noxs_sim_slot_alive(domid, atomic_load(&r->slot),
			atomic_load(&r->gen)))
		noxs_sim_reap_slot(rdom, atomic_load(&r->slot),
			atomic_load(&r->gen));
	/*
	 * Likewise a port still bound to a dead handle of our own domain
	 * (a process of this domain bound it and died): with Xen its fd
	 * closed, and so the port, before the death could be seen, but the
	 * guardian reaps asynchronously. A restarted process binding again
	 * right after wait() must not get EINVAL.
	 */
	if (atomic_load(&r->state) == SIM_PORT_INTERDOMAIN &&
		atomic_load(&r->remote_dom) == h->domid) {
		uint32_t lp = atomic_load(&r->remote_port);
		if (lp > 0 && lp < SIM_NR_PORTS) {
			struct sim_port *l = &h->dom->ports[lp];
			uint32_t ls = atomic_load(&l->slot);
			uint32_t lg = atomic_load(&l->gen);
			if (atomic_load(&l->state) == SIM_PORT_INTERDOMAIN &&
				!noxs_sim_slot_alive(h->domid, ls, lg))
				noxs_sim_reap_slot(h->dom, ls, lg);
		}
	}

	noxs_sim_lock(h->dom, rdom);
	if (atomic_load(&r->state) != SIM_PORT_UNBOUND ||
		atomic_load(&r->remote_dom) != h->domid) {
		err = EINVAL;
	} else if ((port = noxs_sim_port_alloc(h->dom)) == 0) {
		err = errno;
	} else {
		claim_port(h, port, domid, remote_port, SIM_PORT_INTERDOMAIN);
		atomic_store(&r->remote_port, port);
		atomic_store_explicit(&r->state, SIM_PORT_INTERDOMAIN,
			memory_order_release);
	}
	noxs_sim_unlock(h->dom, rdom);
	if (err) {
		errno = err;
		return -1;
	}
	noxs_sim_guard_domain(domid);
	/*
	 * Xen sets the new local port pending, in case the remote raised
	 * events on its unbound end: the binder sees one event at once.
	 */
	noxs_sim_port_raise(h->dom, port, h->fd);
	return (xenevtchn_port_or_error_t)port;
}

/*
 * Only VIRQ_DOM_EXC is simulated: a global VIRQ, delivered to domain 0
 * (Xen's default handler of global VIRQs), raised when a domain is
 * destroyed and again when it is gone. As in Xen, one binding per
 * domain: a second bind gets EEXIST while the first handle lives.
 */
xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *h,
	unsigned int virq)
{
	struct sim_domain_hdr *hdr = h->dom->hdr;
	uint32_t port, old;
	int err = 0;

	if (h->restrict_domid != UNRESTRICTED) {
		errno = EACCES;
		return -1;
	}
	if (virq != SIM_VIRQ_DOM_EXC) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (h->domid != 0) {
		errno = EPERM;
		return -1;
	}
	/* A binding whose handle died goes with it (its fd closed). */
	old = atomic_load(&hdr->virq_dom_exc);
	if (old && old < SIM_NR_PORTS) {
		struct sim_port *o = &h->dom->ports[old];
		uint32_t slot = atomic_load(&o->slot), gen = atomic_load(&o->gen);
		if (atomic_load(&o->state) == SIM_PORT_VIRQ &&
			!noxs_sim_slot_alive(h->domid, slot, gen))
			noxs_sim_reap_slot(h->dom, slot, gen);
	}
	noxs_sim_lock(h->dom, NULL);
	if (atomic_load(&hdr->virq_dom_exc) != 0) {
		err = EEXIST;
	} else if ((port = noxs_sim_port_alloc(h->dom)) == 0) {
		err = errno;
	} else {
		claim_port(h, port, SIM_NONE, virq, SIM_PORT_VIRQ);
		atomic_store(&hdr->virq_dom_exc, port);
	}
	noxs_sim_unlock(h->dom, NULL);
	if (err) {
		errno = err;
		return -1;
	}
	return (xenevtchn_port_or_error_t)port;
}

int xenevtchn_unbind(xenevtchn_handle *h, evtchn_port_t port)
{
	if (port == 0 || port >= SIM_NR_PORTS) {
		errno = EINVAL;
		return -1;
	}
	if (!owns(h, port)) {
		errno = ENOTCONN;
		return -1;
	}
	/* Forget any delivery of this port we hold, shared or local. */
	pthread_mutex_lock(&h->lock);
	fifo_fill(h);
	size_t j = h->fifo_head;
	for (size_t i = h->fifo_head; i < h->fifo_len; i++)
		if (h->fifo[i] != port)
			h->fifo[j++] = h->fifo[i];
	h->fifo_len = j;
	if (h->fifo_head == h->fifo_len)
		settle(h);
	pthread_mutex_unlock(&h->lock);
	return noxs_sim_port_close(h->dom, port, h->slot, h->gen);
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *h)
{
	for (;;) {
		pthread_mutex_lock(&h->lock);
		if (h->fifo_head == h->fifo_len)
			fifo_fill(h);
		if (h->fifo_head < h->fifo_len) {
			uint32_t port = h->fifo[h->fifo_head++];
			atomic_fetch_and(&h->dom->ports[port].flags,
				~SIM_PF_QUEUED);
			if (h->fifo_head == h->fifo_len)
				settle(h);
			pthread_mutex_unlock(&h->lock);
			return (xenevtchn_port_or_error_t)port;
		}
		if (h->owed > 0)
			settle(h);
		pthread_mutex_unlock(&h->lock);

		/* Nothing pending: block (unless O_NONBLOCK) like read(2). */
		char b;
		ssize_t n = recv(h->fd, &b, 1, MSG_PEEK);
		if (n < 0)
			return -1;
		pthread_mutex_lock(&h->lock);
		if (h->fifo_head == h->fifo_len && fifo_fill(h) == 0 &&
			h->owed == 0) {
			/* A stale token: nothing behind it. */
			while (recv(h->fd, &b, 1, MSG_DONTWAIT) < 0 &&
				errno == EINTR)
				;
		}
		pthread_mutex_unlock(&h->lock);
	}
}

int xenevtchn_unmask(xenevtchn_handle *h, evtchn_port_t port)
{
	/* The Linux driver ignores ports that are not the caller's. */
	if (owns(h, port))
		noxs_sim_port_unmask(h->dom, port, h->fd);
	return 0;
}

int xenevtchn_restrict(xenevtchn_handle *h, domid_t domid)
{
	if (h->restrict_domid != UNRESTRICTED) {
		errno = EACCES;
		return -1;
	}
	if (domid == 0 || domid >= SIM_DOMID_LIMIT) {
		errno = EINVAL;
		return -1;
	}
	h->restrict_domid = domid;
	return 0;
}
