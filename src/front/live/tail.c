/* tail.c: SSE subscribers outside libmicrohttpd: one thread, shared events, one send each. */
#include "front/live/live.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/sse.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Once the core has decided that a request is an SSE read, libmicrohttpd
 * has done its part: it parsed the request, and what is left is a
 * close-delimited body of events. Held there, each idle subscriber would
 * keep its connection's memory pool (conn_memory, 16 KiB by default, all of
 * it touched) and a place under libmicrohttpd's connection limit. So the
 * socket is duplicated and the duplicate comes here; libmicrohttpd closes
 * its own descriptor (MHD_USE_TURBO: without a shutdown, which would end
 * the connection for both). A subscriber here is a struct sub of a few
 * hundred bytes.
 *
 * One thread serves them all, with an epoll set of their sockets
 * (edge-triggered: writable again, hung up) and a run queue that the waiter
 * registry fills (a commit on their stream, a due timer, the drain). In one
 * turn of the loop the subscribers at the same place of the same stream
 * share one step of the core: the first reads the store and its events
 * become a refcounted chunk; the others take the chunk and the position it
 * leads to. Each subscriber then gets the chunk with one send(). One that
 * cannot take it all keeps the chunk and the offset in it until its socket
 * is writable again, and reads on from the store afterwards on its own: a
 * slow reader never holds more than one chunk, and the store, not a queue,
 * holds what it has not read yet. Chunks count in the memory budget. */

#define RUN_BATCH 512
#define CACHE_SLOTS 256        /* distinct (stream, place) steps shared in one turn */

struct chunk {
	int refs;                  /* 0: static (never freed) */
	size_t len;
	char data[];
};

struct sub {
	int fd;
	struct reg_entry w;        /* in live.reg while it waits */
	struct proto_live live;
	struct chunk *pend;        /* being sent, from pend_off */
	size_t pend_off;
	int64_t sse_end, next_beat, started;
	unsigned ended : 1, gone : 1, queued : 1, budget_wait : 1;
	struct sub *run_next;      /* in the run queue (tail.qlock) */
	struct sub *prev, *next;   /* every subscriber (tail.qlock) */
	int status;
	uint64_t sent;             /* bytes sent, the head's included */
	uint32_t head_len;         /* the response head's */
	uint64_t ip;               /* its address's key in the per-IP count; 0: none */
	char *log;                 /* access log fields, or NULL */
};

/* One shared step: subscribers in the same place get the same events. */
struct step_key {
	uint64_t stream_id, seq, bytes, piece_off;
	unsigned json : 1, base64 : 1, control_sent : 1, line_open : 1, after_cr : 1;
	char cursor[24];
};

struct shared_step {
	int used;
	struct step_key key;
	enum sse_step result;
	struct chunk *events;      /* NULL: none */
	uint64_t regseq;           /* the registry's count before the store was read */
	struct proto_live after;   /* seq, bytes, control_sent, piece_off, piece */
};

struct ipcount {
	uint64_t key;
	int n;
	struct ipcount *next;
};

#define IP_BUCKETS 1024

static struct {
	int ep;                    /* the subscribers' sockets; data.ptr NULL: wake_fd */
	int wake_fd;               /* eventfd: the run queue is not empty */
	pthread_t thread;
	int started;
	atomic_int stop;
	pthread_mutex_t qlock;
	struct sub *runq;          /* resumed subscribers */
	struct sub *all;           /* every subscriber */
	struct chunk *heartbeat;   /* static: refs 0 */
	struct proto_ctx ctx;      /* the thread's */
	struct shared_step cache[CACHE_SLOTS];
	pthread_mutex_t iplock;
	struct ipcount *ips[IP_BUCKETS];
} tail = { .ep = -1, .wake_fd = -1, .qlock = PTHREAD_MUTEX_INITIALIZER,
           .iplock = PTHREAD_MUTEX_INITIALIZER };

/* --- chunks ----------------------------------------------------------------- */

static struct chunk *chunk_new(const char *data, size_t len)
{
	struct chunk *c = malloc(sizeof *c + len);
	if (!c)
		return NULL;
	c->refs = 1;
	c->len = len;
	memcpy(c->data, data, len);
	edge_budget_add(len);
	return c;
}

static struct chunk *chunk_ref(struct chunk *c)
{
	if (c && c->refs)
		c->refs++;
	return c;
}

static void chunk_unref(struct chunk *c)
{
	if (!c || !c->refs || --c->refs)
		return;
	edge_budget_give(c->len);
	free(c);
}

/* --- per-IP count ------------------------------------------------------------ */

static uint64_t ip_key(const struct sockaddr *sa)
{
	const unsigned char *p;
	size_t n;
	if (sa->sa_family == AF_INET) {
		p = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		n = 4;
	} else if (sa->sa_family == AF_INET6) {
		p = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		n = 16;
	} else {
		return 0;
	}
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h | 1; /* never 0 */
}

/* Adds delta to key's count; with delta > 0 only while it stays within
 * limit. Returns 0, or -1 when it would not. */
static int ip_add(uint64_t key, int delta, int limit)
{
	struct ipcount **pp = &tail.ips[key % IP_BUCKETS];
	int r = 0;
	pthread_mutex_lock(&tail.iplock);
	while (*pp && (*pp)->key != key)
		pp = &(*pp)->next;
	struct ipcount *e = *pp;
	if (delta > 0) {
		if (!e && (e = calloc(1, sizeof *e))) {
			e->key = key;
			*pp = e;
		}
		if (!e || e->n + delta > limit)
			r = -1;
		else
			e->n += delta;
	} else if (e && (e->n += delta) <= 0) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&tail.iplock);
	return r;
}

/* c's address's key, or 0 when none is counted (no cap, a unix: socket). */
static uint64_t conn_ip(struct conn *c)
{
	if (live.behind_proxy || live.cfg.max_connections_per_ip <= 0)
		return 0;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	return ci && ci->client_addr ? ip_key(ci->client_addr) : 0;
}

/* --- the registry's operations ------------------------------------------------ */

/* Under the registry's lock, from any thread. */
static void enqueue(struct sub *s)
{
	pthread_mutex_lock(&tail.qlock);
	int was_empty = !tail.runq;
	if (!s->queued) {
		s->queued = 1;
		s->run_next = tail.runq;
		tail.runq = s;
	}
	pthread_mutex_unlock(&tail.qlock);
	if (was_empty) {
		uint64_t one = 1;
		(void)!write(tail.wake_fd, &one, sizeof one);
	}
}

static void sub_suspend(void *owner)
{
	(void)owner; /* a waiting subscriber is only listed */
}

static void sub_resume(void *owner)
{
	enqueue(owner);
}

static int sub_peer_gone(void *owner)
{
	struct sub *s = owner;
	char b;
	ssize_t n = recv(s->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static const struct reg_ops sub_ops = {
	.suspend = sub_suspend,
	.resume = sub_resume,
	.peer_gone = sub_peer_gone,
};

/* --- adopting a subscriber ------------------------------------------------------ */

/* The response head, as libmicrohttpd would have sent it, for a body that
 * ends when the connection closes. */
static struct chunk *response_head(const struct proto_response *r)
{
	struct buf h;
	char date[64];
	buf_init(&h);
	const char *reason = MHD_get_reason_phrase_for((unsigned)r->status);
	buf_printf(&h, "HTTP/1.1 %d %s\r\n", r->status, reason && *reason ? reason : "Unknown");
	for (int i = 0; i < r->nheaders; i++)
		buf_printf(&h, "%s: %s\r\n", r->headers[i].name, r->headers[i].value);
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	buf_printf(&h, "X-Lmstream-Front: live\r\nConnection: close\r\nDate: %s\r\n\r\n", date);
	struct chunk *c = h.failed ? NULL : chunk_new(h.data, h.len);
	buf_free(&h);
	return c;
}

int tail_adopt(struct conn *c, const struct proto_response *r)
{
	int fd = conn_fd(c);
	if (fd < 0 || tail.ep < 0)
		return -1;
	struct sub *s = calloc(1, sizeof *s);
	struct chunk *head = s ? response_head(r) : NULL;
	if (!head) {
		free(s);
		return -1;
	}
	s->ip = conn_ip(c);
	if (s->ip && ip_add(s->ip, 1, live.cfg.max_connections_per_ip) < 0) {
		chunk_unref(head);
		free(s);
		errno = EUSERS;
		return -1;
	}
	s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	/* In the run queue from the start: its socket's first events wait for
	 * the thread's first turn with it. */
	s->queued = 1;
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = s };
	if (s->fd < 0 || epoll_ctl(tail.ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		int e = errno;
		if (s->fd >= 0)
			close(s->fd);
		if (s->ip)
			ip_add(s->ip, -1, 0);
		chunk_unref(head);
		free(s);
		errno = e;
		return -1;
	}
	reg_entry_init(&s->w, s, &sub_ops);
	s->live = c->live; /* its name and snapshot position move along */
	memset(&c->live, 0, sizeof c->live);
	int64_t now = store_mono_ms();
	s->sse_end = proto_live_deadline(&s->live, now, live.cfg.sse_lifetime_ms);
	s->next_beat = now + live.cfg.heartbeat_ms;
	s->started = c->started;
	s->pend = head;
	s->head_len = (uint32_t)head->len;
	c->kind = K_SSE;
	s->log = access_fields(c);
	c->kind = K_HANDED;
	atomic_fetch_add(&live.nsubs, 1);
	metrics_gauge(MG_LIVE_SSE, 1);
	proto_count(r);
	s->status = r->status;
	pthread_mutex_lock(&tail.qlock);
	s->next = tail.all;
	if (s->next)
		s->next->prev = s;
	tail.all = s;
	s->run_next = tail.runq;
	tail.runq = s;
	int was_empty = !s->run_next;
	pthread_mutex_unlock(&tail.qlock);
	if (was_empty) {
		uint64_t one = 1;
		(void)!write(tail.wake_fd, &one, sizeof one);
	}
	return 0;
}

/* --- serving -------------------------------------------------------------------- */

static void finish(struct sub *s)
{
	reg_lock(&live.reg);
	reg_remove(&live.reg, &s->w);
	reg_unlock(&live.reg);
	epoll_ctl(tail.ep, EPOLL_CTL_DEL, s->fd, NULL);
	if (!s->gone) {
		/* The body ends with the connection: the client's side first
		 * sees all of it, then the end. */
		shutdown(s->fd, SHUT_WR);
		char drain[256];
		while (recv(s->fd, drain, sizeof drain, MSG_DONTWAIT) > 0)
			;
	}
	close(s->fd);
	chunk_unref(s->pend);
	access_end_fields(s->log, s->status, s->sent > s->head_len ? s->sent - s->head_len : 0, s->started);
	pthread_mutex_lock(&tail.qlock);
	if (s->prev)
		s->prev->next = s->next;
	else
		tail.all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&tail.qlock);
	free(s->log);
	if (s->ip)
		ip_add(s->ip, -1, 0);
	proto_live_clear(&s->live);
	metrics_gauge(MG_LIVE_SSE, -1);
	atomic_fetch_sub(&live.nsubs, 1);
	free(s);
}

/* Sends what is left of s's chunk. Returns 1 when it is all out, 0 when the
 * socket is full (EPOLLOUT brings s back), -1 when the client is gone. */
static int flush(struct sub *s)
{
	while (s->pend) {
		size_t left = s->pend->len - s->pend_off;
		ssize_t n = send(s->fd, s->pend->data + s->pend_off, left, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		s->pend_off += (size_t)n;
		s->sent += (uint64_t)n;
		if (s->pend_off == s->pend->len) {
			chunk_unref(s->pend);
			s->pend = NULL;
			s->pend_off = 0;
		}
	}
	return 1;
}

static int cacheable(const struct proto_live *l)
{
	return !l->snapshot;
}

static void key_of(const struct proto_live *l, struct step_key *k)
{
	memset(k, 0, sizeof *k);
	k->stream_id = l->stream_id;
	k->seq = l->seq;
	k->bytes = l->bytes;
	k->piece_off = l->piece_off;
	k->json = l->json;
	k->base64 = l->base64;
	k->control_sent = l->control_sent;
	k->line_open = l->piece.line_open;
	k->after_cr = l->piece.after_cr;
	memcpy(k->cursor, l->cursor_in, sizeof k->cursor);
}

static int key_eq(const struct step_key *a, const struct step_key *b)
{
	return a->stream_id == b->stream_id && a->seq == b->seq && a->bytes == b->bytes &&
	       a->piece_off == b->piece_off && a->json == b->json && a->base64 == b->base64 &&
	       a->control_sent == b->control_sent && a->line_open == b->line_open &&
	       a->after_cr == b->after_cr && !strcmp(a->cursor, b->cursor);
}

static size_t key_slot(const struct step_key *k)
{
	uint64_t h = (k->stream_id * 0x9E3779B97F4A7C15ULL) ^ (k->seq * 0xC2B2AE3D27D4EB4FULL) ^ k->piece_off;
	return (size_t)(h >> 32) % CACHE_SLOTS;
}

static void cache_clear(void)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		if (tail.cache[i].used)
			chunk_unref(tail.cache[i].events);
		tail.cache[i].used = 0;
		tail.cache[i].events = NULL;
	}
}

/* Takes the position a shared step led to. */
static void take_after(struct proto_live *l, const struct proto_live *after)
{
	uint64_t seq = l->seq, bytes = l->bytes;
	l->seq = after->seq;
	l->bytes = after->bytes;
	l->control_sent = after->control_sent;
	l->piece_off = after->piece_off;
	l->piece = after->piece;
	if (l->seq > seq) {
		metrics_add(MC_DELIVERED_MESSAGES, l->seq - seq);
		metrics_add(MC_DELIVERED_BYTES, l->bytes - bytes);
	}
}

/* One step of s's read, shared with every subscriber in the same place in
 * this turn: its events in *events (a reference, or NULL), the registry's
 * count from before the store was read in *regseq. */
static enum sse_step step(struct sub *s, struct chunk **events, uint64_t *regseq)
{
	struct step_key k;
	struct shared_step *slot = NULL;
	if (cacheable(&s->live)) {
		key_of(&s->live, &k);
		slot = &tail.cache[key_slot(&k)];
		/* A step that sent events moves every taker on, so it may be taken
		 * however old; one without events says "wait from here", which
		 * holds only while nothing was committed since it was made (else
		 * reg_wait refuses and the same answer would come back forever). */
		if (slot->used && key_eq(&slot->key, &k) &&
		    (slot->events || slot->regseq == reg_seq(&live.reg))) {
			take_after(&s->live, &slot->after);
			*events = chunk_ref(slot->events);
			*regseq = slot->regseq;
			return slot->result;
		}
	}
	struct buf out;
	buf_init(&out);
	*regseq = reg_seq(&live.reg);
	enum sse_step r = proto_sse_step(&tail.ctx, &s->live, &out);
	*events = NULL;
	if (out.failed) {
		r = SSE_END;
	} else if (out.len && !(*events = chunk_new(out.data, out.len))) {
		r = SSE_END;
	}
	buf_free(&out);
	if (slot && r != SSE_END) {
		if (slot->used)
			chunk_unref(slot->events);
		slot->used = 1;
		slot->key = k;
		slot->result = r;
		slot->events = chunk_ref(*events);
		slot->regseq = *regseq;
		slot->after.seq = s->live.seq;
		slot->after.bytes = s->live.bytes;
		slot->after.control_sent = s->live.control_sent;
		slot->after.piece_off = s->live.piece_off;
		slot->after.piece = s->live.piece;
	}
	return r;
}

/* Serves s until it waits (in the registry or for its socket) or ends. */
static void serve_sub(struct sub *s)
{
	for (;;) {
		if (s->gone) {
			finish(s);
			return;
		}
		if (s->pend) {
			int f = flush(s);
			if (f < 0) {
				s->gone = 1;
				continue;
			}
			if (!f)
				return; /* EPOLLOUT brings it back */
		}
		if (s->ended) {
			finish(s);
			return;
		}
		int64_t now = store_mono_ms();
		if (atomic_load(&live.draining) || now >= s->sse_end) {
			s->ended = 1;
			continue;
		}
		int64_t due = s->next_beat < s->sse_end ? s->next_beat : s->sse_end;
		/* Over the memory budget (every connection's unsent events
		 * count), events wait: look again a little later. */
		if (edge_buffered() >= live.cfg.memory_budget && !s->w.fired) {
			uint64_t seq = reg_seq(&live.reg);
			s->budget_wait = 1;
			if (now + LS_BUDGET_RETRY_MS < due)
				due = now + LS_BUDGET_RETRY_MS;
			if (reg_wait(&live.reg, &s->w, s->live.stream_id, due, seq))
				return;
			continue;
		}
		if (s->budget_wait && now < s->next_beat)
			s->w.fired = 0; /* that timer was the budget's, not a heartbeat */
		s->budget_wait = 0;
		struct chunk *events;
		uint64_t seq;
		enum sse_step r = step(s, &events, &seq);
		if (r == SSE_END)
			s->ended = 1;
		if (events) {
			s->pend = events;
			s->pend_off = 0;
			int f = flush(s);
			if (f < 0) {
				s->gone = 1;
				continue;
			}
			if (!f)
				return;
		}
		if (r != SSE_IDLE)
			continue;
		if (events)
			s->next_beat = now + live.cfg.heartbeat_ms; /* events keep it alive too */
		else if (s->w.fired || now >= s->next_beat) {
			s->w.fired = 0;
			s->next_beat = now + live.cfg.heartbeat_ms;
			s->pend = tail.heartbeat;
			s->pend_off = 0;
			continue;
		}
		due = s->next_beat < s->sse_end ? s->next_beat : s->sse_end;
		if (reg_wait(&live.reg, &s->w, s->live.stream_id, due, seq))
			return;
	}
}

/* A hang-up or an error on s's socket. s is not in the run queue (the
 * thread took it) and may wait in the registry. */
static void hang_up(struct sub *s)
{
	s->gone = 1;
	reg_lock(&live.reg);
	reg_remove(&live.reg, &s->w);
	reg_unlock(&live.reg);
	pthread_mutex_lock(&tail.qlock);
	int queued = s->queued;
	pthread_mutex_unlock(&tail.qlock);
	if (!queued)
		finish(s); /* else the run queue ends it */
}

static void *tail_main(void *arg)
{
	(void)arg;
	struct epoll_event evs[RUN_BATCH];
	while (!atomic_load(&tail.stop)) {
		int n = epoll_wait(tail.ep, evs, RUN_BATCH, 500);
		for (int i = 0; i < n; i++) {
			struct sub *s = evs[i].data.ptr;
			if (!s) {
				uint64_t v;
				(void)!read(tail.wake_fd, &v, sizeof v);
				continue;
			}
			if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
				hang_up(s);
				continue;
			}
			/* Writable again: one that waits for its socket goes on (one
			 * in the run queue is served there; its first event comes
			 * before that). */
			pthread_mutex_lock(&tail.qlock);
			int queued = s->queued;
			pthread_mutex_unlock(&tail.qlock);
			if (!queued && s->pend)
				serve_sub(s);
		}
		pthread_mutex_lock(&tail.qlock);
		struct sub *run = tail.runq;
		tail.runq = NULL;
		for (struct sub *s = run; s; s = s->run_next)
			s->queued = 0;
		pthread_mutex_unlock(&tail.qlock);
		while (run) {
			struct sub *next = run->run_next;
			serve_sub(run);
			run = next;
		}
		cache_clear();
	}
	return NULL;
}

/* --- start and stop ---------------------------------------------------------------- */

int tail_open(void)
{
	tail.ep = epoll_create1(EPOLL_CLOEXEC);
	tail.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (tail.ep < 0 || tail.wake_fd < 0 || epoll_ctl(tail.ep, EPOLL_CTL_ADD, tail.wake_fd, &ev) < 0) {
		log_error("tail: %s", strerror(errno));
		return -1;
	}
	struct buf hb;
	buf_init(&hb);
	sse_comment(&hb, "keep-alive");
	tail.heartbeat = hb.failed ? NULL : malloc(sizeof *tail.heartbeat + hb.len);
	if (!tail.heartbeat) {
		buf_free(&hb);
		log_error("tail: out of memory");
		return -1;
	}
	tail.heartbeat->refs = 0;
	tail.heartbeat->len = hb.len;
	memcpy(tail.heartbeat->data, hb.data, hb.len);
	buf_free(&hb);
	proto_init(&tail.ctx, &live.cfg, live.store);
	tail.ctx.auth = live.auth;
	tail.ctx.front = "live";
	return 0;
}

int tail_start(void)
{
	if (pthread_create(&tail.thread, NULL, tail_main, NULL)) {
		log_error("cannot start the SSE thread");
		return -1;
	}
	tail.started = 1;
	return 0;
}

void tail_stop(void)
{
	if (tail.started) {
		atomic_store(&tail.stop, 1);
		uint64_t one = 1;
		(void)!write(tail.wake_fd, &one, sizeof one);
		pthread_join(tail.thread, NULL);
		tail.started = 0;
	}
	/* Whoever is left (the drain did not see them out): end them here. */
	pthread_mutex_lock(&tail.qlock);
	tail.runq = NULL;
	struct sub *left = tail.all;
	pthread_mutex_unlock(&tail.qlock);
	while (left) {
		struct sub *next = left->next;
		left->gone = 1;
		finish(left);
		left = next;
	}
	cache_clear();
	free(tail.heartbeat);
	tail.heartbeat = NULL;
	if (tail.ep >= 0) {
		proto_fini(&tail.ctx);
		close(tail.ep);
		tail.ep = -1;
	}
	if (tail.wake_fd >= 0)
		close(tail.wake_fd);
	tail.wake_fd = -1;
}
