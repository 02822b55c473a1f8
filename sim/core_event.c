/*
 * noxs simulated hypervisor: event channels (port allocation, raise,
 * unmask, send, close) and their delivery.
 *
 * Event delivery. Each evtchn handle owns a slot with a lock-free
 * multi-producer stack of delivered ports (linked through the port
 * entries) and a Unix datagram socket. A sender pushes the port and, only
 * if the stack was empty, sends a one-byte wake-up token to the socket.
 * The owner takes the whole stack at once (atomic exchange, so no ABA)
 * into a process-local fifo and consumes the matching token when the fifo
 * drains, so the socket is readable exactly while events are pending.
 * A port is on at most one stack at a time (SIM_PF_QUEUED), so a stack
 * never holds more entries than its handle has ports, whatever the sender
 * does; the kernel's datagram queue (net.unix.max_dgram_qlen, 10 here)
 * holds at most a token or two per handle.
 */
#include "sim.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static _Atomic int sender_fd = -1;

static int process_sender(void)
{
	int fd = atomic_load(&sender_fd);

	if (fd >= 0)
		return fd;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int expect = -1;
	if (!atomic_compare_exchange_strong(&sender_fd, &expect, fd)) {
		close(fd);
		fd = expect;
	}
	return fd;
}

static void send_token(uint32_t domid, uint32_t slot, uint32_t gen, int fd)
{
	struct sockaddr_un sun;
	unsigned len;
	char b = 0;
	int saved = errno;

	noxs_sim_slot_name(domid, slot, gen, &sun, &len);
	if (fd < 0)
		fd = process_sender();
	if (fd >= 0 && sendto(fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sun, len) == 1)
		goto out;
	if (errno == EAGAIN || errno == ENOBUFS || fd < 0) {
		/*
		 * Our send buffer is full of tokens not yet read by others (or
		 * the receiver's queue is full, in which case it is readable
		 * anyway). A fresh socket has a fresh send buffer.
		 */
		int tmp = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (tmp >= 0) {
			sendto(tmp, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
				(struct sockaddr *)&sun, len);
			close(tmp);
		}
	}
	/* ECONNREFUSED: the owner is gone; the reaper closes the port. */
out:
	errno = saved;
}

/* ---- events ---- */

uint32_t noxs_sim_port_alloc(struct sim_domain *dom)
{
	struct sim_domain_hdr *h = dom->hdr;
	uint32_t p = atomic_load(&h->port_hint);

	if (p == 0)
		p = 1;
	for (; p < SIM_NR_PORTS; p++) {
		struct sim_port *e = &dom->ports[p];
		if (atomic_load(&e->state) != SIM_PORT_FREE)
			continue;
		atomic_store(&e->flags, 0);
		atomic_store(&e->next, 0);
		atomic_store(&e->remote_dom, 0);
		atomic_store(&e->remote_port, 0);
		atomic_store(&e->state, SIM_PORT_RESERVED);
		atomic_store(&h->port_hint, p + 1);
		if (atomic_load(&h->port_high) < p + 1)
			atomic_store(&h->port_high, p + 1);
		return p;
	}
	errno = ENOSPC;
	return 0;
}

static void deliver(struct sim_domain *dom, uint32_t port, int sendfd)
{
	struct sim_port *p = &dom->ports[port];
	uint32_t slot = atomic_load_explicit(&p->slot, memory_order_acquire);
	uint32_t gen = atomic_load_explicit(&p->gen, memory_order_acquire);
	struct sim_slot *s;
	uint32_t old;

	if (slot >= SIM_NR_SLOTS)
		goto drop;
	s = &dom->slots[slot];
	if (atomic_load(&s->gen) != gen ||
		atomic_load(&s->state) != SIM_SLOT_USED)
		goto drop;
	old = atomic_load_explicit(&s->head, memory_order_relaxed);
	do {
		atomic_store_explicit(&p->next, old, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak_explicit(&s->head, &old, port,
		memory_order_release, memory_order_relaxed));
	if (old == 0)
		send_token(dom->domid, slot, gen, sendfd);
	return;
drop:
	atomic_fetch_and(&p->flags, ~SIM_PF_QUEUED);
}

void noxs_sim_port_raise(struct sim_domain *dom, uint32_t port, int sendfd)
{
	struct sim_port *p = &dom->ports[port];
	uint32_t f = atomic_load_explicit(&p->flags, memory_order_relaxed);
	uint32_t nf;
	int push;

	for (;;) {
		if (f & SIM_PF_PENDING)
			return; /* coalesced */
		push = 0;
		if (f & SIM_PF_MASKED) {
			nf = f | SIM_PF_PENDING;
		} else {
			nf = f | SIM_PF_MASKED;
			if (!(f & SIM_PF_QUEUED)) {
				nf |= SIM_PF_QUEUED;
				push = 1;
			}
		}
		if (atomic_compare_exchange_weak_explicit(&p->flags, &f, nf,
			    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	if (push)
		deliver(dom, port, sendfd);
}

void noxs_sim_port_unmask(struct sim_domain *dom, uint32_t port, int sendfd)
{
	struct sim_port *p = &dom->ports[port];
	uint32_t f = atomic_load_explicit(&p->flags, memory_order_relaxed);
	uint32_t nf;
	int push;

	for (;;) {
		if (!(f & SIM_PF_MASKED))
			return;
		push = 0;
		if (f & SIM_PF_PENDING) {
			/* Raised while masked: deliver now, stay masked. */
			nf = f & ~SIM_PF_PENDING;
			if (!(f & SIM_PF_QUEUED)) {
				nf |= SIM_PF_QUEUED;
				push = 1;
			}
		} else {
			nf = f & ~SIM_PF_MASKED;
		}
		if (atomic_compare_exchange_weak_explicit(&p->flags, &f, nf,
			    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	if (push)
		deliver(dom, port, sendfd);
}

void noxs_sim_port_send(struct sim_domain *dom, uint32_t port, int sendfd)
{
	struct sim_port *p, *r;
	struct sim_domain *rdom;
	uint32_t rd, rp;

	if (port == 0 || port >= SIM_NR_PORTS)
		return;
	p = &dom->ports[port];
	if (atomic_load_explicit(&p->state, memory_order_acquire) !=
		SIM_PORT_INTERDOMAIN)
		return; /* unbound: Xen drops the event silently */
	rd = atomic_load_explicit(&p->remote_dom, memory_order_relaxed);
	rp = atomic_load_explicit(&p->remote_port, memory_order_relaxed);
	if (rp == 0 || rp >= SIM_NR_PORTS)
		return;
	rdom = noxs_sim_domain(rd, 0);
	if (!rdom)
		return;
	r = &rdom->ports[rp];
	if (atomic_load_explicit(&r->state, memory_order_acquire) !=
			SIM_PORT_INTERDOMAIN ||
		atomic_load_explicit(&r->remote_dom, memory_order_relaxed) !=
			dom->domid ||
		atomic_load_explicit(&r->remote_port, memory_order_relaxed) !=
			port)
		return;
	noxs_sim_port_raise(rdom, rp, sendfd);
}

void sim_port_free_locked(struct sim_domain *dom, uint32_t port)
{
	struct sim_port *p = &dom->ports[port];

	if (atomic_load(&p->state) == SIM_PORT_VIRQ)
		atomic_compare_exchange_strong(&dom->hdr->virq_dom_exc, &port,
			0);
	atomic_store(&p->remote_dom, 0);
	atomic_store(&p->remote_port, 0);
	atomic_store(&p->flags, 0);
	atomic_store(&p->slot, SIM_NONE);
	atomic_store(&p->gen, 0);
	atomic_store_explicit(&p->state, SIM_PORT_FREE, memory_order_release);
	if (atomic_load(&dom->hdr->port_hint) > port)
		atomic_store(&dom->hdr->port_hint, port);
}

int noxs_sim_port_close(struct sim_domain *dom, uint32_t port,
	uint32_t expect_slot, uint32_t expect_gen)
{
	struct sim_port *p = &dom->ports[port];
	struct sim_domain *rdom = NULL;
	uint32_t st, rd = 0, rp = 0;
	int wake = 0;

	for (;;) {
		noxs_sim_lock(dom, rdom);
		st = atomic_load(&p->state);
		if (st == SIM_PORT_FREE ||
			(expect_slot != SIM_NONE &&
				(atomic_load(&p->slot) != expect_slot ||
					atomic_load(&p->gen) != expect_gen))) {
			noxs_sim_unlock(dom, rdom);
			errno = ENOTCONN;
			return -1;
		}
		if (st != SIM_PORT_INTERDOMAIN)
			break;
		rd = atomic_load(&p->remote_dom);
		rp = atomic_load(&p->remote_port);
		struct sim_domain *want = noxs_sim_domain(rd, 0);
		if (want == rdom || want == dom || !want)
			break;
		/* Need the peer's lock too: retake both in order. */
		noxs_sim_unlock(dom, rdom);
		rdom = want;
	}
	if (st == SIM_PORT_INTERDOMAIN && rp && rp < SIM_NR_PORTS) {
		struct sim_domain *peer = rd == dom->domid ? dom :
							     noxs_sim_domain(rd, 0);
		if (peer) {
			struct sim_port *r = &peer->ports[rp];
			if (atomic_load(&r->state) == SIM_PORT_INTERDOMAIN &&
				atomic_load(&r->remote_dom) == dom->domid &&
				atomic_load(&r->remote_port) == port) {
				atomic_store(&r->remote_port, 0);
				atomic_store(&r->state, SIM_PORT_UNBOUND);
				wake = 1;
				rdom = rdom ? rdom : peer;
			}
		}
	}
	sim_port_free_locked(dom, port);
	struct sim_domain *held = rdom && rdom != dom ? rdom : NULL;
	noxs_sim_unlock(dom, held);
	if (wake)
		noxs_sim_port_raise(rd == dom->domid ? dom : rdom, rp, -1);
	return 0;
}
