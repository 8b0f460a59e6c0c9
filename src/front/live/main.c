/* front_live.c: lmstream-live, the libmicrohttpd daemon that holds live
 * readers (SSE and long-poll) and serves the whole protocol when it runs
 * alone.
 *
 * A waiting connection is suspended in libmicrohttpd and listed under its
 * stream id in the waiter registry; it holds its offset (struct proto_live)
 * and no queue. A commit by any process reaches the notifier thread as a
 * datagram (notify.h) or, for this daemon's own writes, as a direct call; the
 * waiters of that stream, and only those, are resumed and read what follows
 * their offset from the store. A lost datagram is caught by comparing the
 * store's last transaction id with the last one notified. */
#include "store/batch.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "front/notify.h"
#include "lib/parse.h"
#include "core/protocol.h"
#include "lib/sse.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TICK_MS 100            /* timer scan and lost-notification check */
#define RECONCILE_AFTER_MS 200 /* a commit not notified within this wakes everyone */

enum conn_kind { K_NEW, K_PLAIN, K_LONGPOLL, K_SSE };

struct conn {
	enum conn_kind kind;
	struct MHD_Connection *mc;
	struct proto_request req;
	struct proto_live live;
	struct buf body;         /* request body (standalone writes) */
	struct buf out;          /* SSE bytes not yet handed to libmicrohttpd */
	size_t out_off;
	char *target;            /* raw path */
	char *query;             /* raw query rebuilt from the arguments */
	/* waiter registry (under reg.lock) */
	struct conn *wnext, *wprev;
	int waiting;
	uint64_t wstream;
	size_t hidx;             /* place in reg.heap, or NO_HEAP */
	int64_t due;             /* when its timer fires (monotonic ms) */
	/* timers (monotonic ms) */
	int64_t deadline;        /* long-poll timeout */
	int64_t sse_end;         /* SSE connection lifetime */
	int64_t next_beat;       /* next SSE heartbeat */
	int timed_out;           /* set by the timer before resuming */
	int beat_due;
	int ended;               /* SSE: final events written, end after out drains */
	/* hang-up watch (under reg.lock): the socket is in watch_ep from its
	 * first wait until completion; a completed conn is freed by the notifier */
	int watched;
	int dead;
	atomic_int hung_up;      /* the client closed its side (set by the notifier) */
	struct conn *grave_next;
};

/* --- waiter registry ------------------------------------------------------ */

struct registry {
	pthread_mutex_t lock;
	struct conn **buckets;
	size_t nbuckets;         /* power of two */
	size_t count;
	/* Waiters by due time, a binary min-heap: a timer tick looks at the
	 * waiters whose timer is due and at no other. A waiter that could not
	 * be put in it (out of memory) is found by a walk of the buckets. */
	struct conn **heap;
	size_t heap_len, heap_cap, unheaped;
	_Atomic uint64_t notify_seq;  /* bumped by every wake-up */
	_Atomic uint64_t notified_txnid;
};

static struct registry reg = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct config cfg;
static struct store *store;
static struct batch *batch;  /* appends of the pool threads share commits */
static struct MHD_Daemon *daemon_h;
static atomic_int nconn;
static atomic_int nreq;          /* requests in progress (not idle keep-alive) */
static atomic_int draining;
static int watch_ep = -1;        /* epoll set: notify socket and waiting sockets' hang-ups */
static struct conn *graveyard;   /* completed conns the notifier frees (under reg.lock) */
static atomic_long stat_wakeups, stat_requests;

static size_t bucket_of(uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 20) & (reg.nbuckets - 1);
}

static void reg_grow(void)
{
	size_t n = reg.nbuckets ? reg.nbuckets * 2 : 1024;
	struct conn **b = calloc(n, sizeof *b);
	if (!b)
		return;
	struct conn **old = reg.buckets;
	size_t oldn = reg.nbuckets;
	reg.buckets = b;
	reg.nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		struct conn *c = old[i];
		while (c) {
			struct conn *next = c->wnext;
			size_t k = bucket_of(c->wstream);
			c->wprev = NULL;
			c->wnext = reg.buckets[k];
			if (c->wnext)
				c->wnext->wprev = c;
			reg.buckets[k] = c;
			c = next;
		}
	}
	free(old);
}

#define NO_HEAP ((size_t)-1)

/* The heap, under reg.lock. */
static void heap_set(size_t i, struct conn *c)
{
	reg.heap[i] = c;
	c->hidx = i;
}

static void heap_up(size_t i)
{
	struct conn *c = reg.heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (reg.heap[parent]->due <= c->due)
			break;
		heap_set(i, reg.heap[parent]);
		i = parent;
	}
	heap_set(i, c);
}

static void heap_down(size_t i)
{
	struct conn *c = reg.heap[i];
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		int64_t best = c->due;
		if (l < reg.heap_len && reg.heap[l]->due < best)
			m = l, best = reg.heap[l]->due;
		if (l + 1 < reg.heap_len && reg.heap[l + 1]->due < best)
			m = l + 1;
		if (m == i)
			break;
		heap_set(i, reg.heap[m]);
		i = m;
	}
	heap_set(i, c);
}

static void heap_push(struct conn *c)
{
	if (reg.heap_len == reg.heap_cap) {
		size_t n = reg.heap_cap ? reg.heap_cap * 2 : 1024;
		struct conn **h = realloc(reg.heap, n * sizeof *h);
		if (!h) {
			c->hidx = NO_HEAP;
			reg.unheaped++;
			return;
		}
		reg.heap = h;
		reg.heap_cap = n;
	}
	heap_set(reg.heap_len++, c);
	heap_up(c->hidx);
}

static void heap_del(struct conn *c)
{
	size_t i = c->hidx;
	if (i == NO_HEAP) {
		reg.unheaped--;
		return;
	}
	c->hidx = NO_HEAP;
	struct conn *last = reg.heap[--reg.heap_len];
	if (i == reg.heap_len)
		return;
	heap_set(i, last);
	heap_up(i);
	heap_down(last->hidx);
}

/* When the timer of a waiting connection fires: a long-poll's deadline, an
 * SSE stream's next heartbeat or end of lifetime. */
static int64_t due_of(const struct conn *c)
{
	if (c->kind == K_LONGPOLL)
		return c->deadline;
	if (c->kind == K_SSE)
		return c->next_beat < c->sse_end ? c->next_beat : c->sse_end;
	return INT64_MAX;
}

/* Both under reg.lock. */
static void reg_add(struct conn *c, uint64_t stream)
{
	if (reg.count >= reg.nbuckets * 2)
		reg_grow();
	size_t k = bucket_of(stream);
	c->wstream = stream;
	c->wprev = NULL;
	c->wnext = reg.buckets[k];
	if (c->wnext)
		c->wnext->wprev = c;
	reg.buckets[k] = c;
	c->waiting = 1;
	reg.count++;
	c->due = due_of(c);
	heap_push(c);
}

static void reg_remove(struct conn *c)
{
	if (!c->waiting)
		return;
	if (c->wprev)
		c->wprev->wnext = c->wnext;
	else
		reg.buckets[bucket_of(c->wstream)] = c->wnext;
	if (c->wnext)
		c->wnext->wprev = c->wprev;
	c->wnext = c->wprev = NULL;
	c->waiting = 0;
	reg.count--;
	heap_del(c);
}

/* Suspends c until the stream changes, unless a wake-up happened since seq
 * was read (then the caller must look at the store again). Returns 1 when
 * suspended. */
static int reg_wait(struct conn *c, uint64_t stream, uint64_t seq)
{
	pthread_mutex_lock(&reg.lock);
	if (atomic_load(&reg.notify_seq) != seq || atomic_load(&draining) || atomic_load(&c->hung_up)) {
		pthread_mutex_unlock(&reg.lock);
		return 0;
	}
	reg_add(c, stream);
	if (!c->watched && watch_ep >= 0) {
		/* libmicrohttpd does not watch suspended sockets: learn of a client
		 * that leaves while waiting from an edge-triggered hang-up event. */
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLET, .data.ptr = c };
		if (ci && epoll_ctl(watch_ep, EPOLL_CTL_ADD, ci->connect_fd, &ev) == 0)
			c->watched = 1;
	}
	MHD_suspend_connection(c->mc);
	pthread_mutex_unlock(&reg.lock);
	return 1;
}

/* Resumes every waiter of stream. */
static void reg_wake(uint64_t stream)
{
	pthread_mutex_lock(&reg.lock);
	atomic_fetch_add(&reg.notify_seq, 1);
	if (reg.nbuckets) {
		struct conn *c = reg.buckets[bucket_of(stream)];
		while (c) {
			struct conn *next = c->wnext;
			if (c->wstream == stream) {
				reg_remove(c);
				MHD_resume_connection(c->mc);
				atomic_fetch_add(&stat_wakeups, 1);
			}
			c = next;
		}
	}
	pthread_mutex_unlock(&reg.lock);
}

/* True when the client of a waiting connection has closed its side: a
 * heartbeat's check that does not depend on a write failing. */
static int peer_gone(struct conn *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	char b;
	if (!ci)
		return 0;
	ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Resumes c if its timer is due at now, or anyway when forced (the heap
 * says it is due; everyone's wake-up: all), marking why. Under reg.lock. */
static void reg_fire(struct conn *c, int64_t now, int force, int all)
{
	int due = force || all;
	if (c->kind == K_LONGPOLL && now >= c->deadline)
		due = c->timed_out = 1;
	if (c->kind == K_SSE && (now >= c->next_beat || now >= c->sse_end))
		due = c->beat_due = 1;
	if (!due)
		return;
	if (!all && peer_gone(c))
		atomic_store(&c->hung_up, 1);
	reg_remove(c);
	MHD_resume_connection(c->mc);
}

/* Resumes waiters whose timer is due, or all of them (all = 1). */
static void reg_scan(int64_t now, int all)
{
	pthread_mutex_lock(&reg.lock);
	if (all)
		atomic_fetch_add(&reg.notify_seq, 1);
	while (!all && reg.heap_len && reg.heap[0]->due <= now)
		reg_fire(reg.heap[0], now, 1, 0);
	for (size_t i = 0; (all || reg.unheaped) && i < reg.nbuckets; i++) {
		struct conn *c = reg.buckets[i];
		while (c) {
			struct conn *next = c->wnext;
			if (all || c->hidx == NO_HEAP)
				reg_fire(c, now, 0, all);
			c = next;
		}
	}
	pthread_mutex_unlock(&reg.lock);
}

static void note_txnid(uint64_t txnid)
{
	uint64_t cur = atomic_load(&reg.notified_txnid);
	while (cur < txnid && !atomic_compare_exchange_weak(&reg.notified_txnid, &cur, txnid))
		;
}

/* In a group of processes (live_processes > 1): this process's end of the
 * datagram pair to the parent, which relays every commit to every process. */
static int group_fd = -1;

/* Commits made by this daemon (standalone writes): wake directly, and tell
 * the other processes of the group through the parent. */
static void on_own_commit(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	note_txnid(txnid);
	reg_wake(stream_id);
	if (group_fd >= 0)
		notify_post(group_fd, stream_id, txnid);
}

/* --- per-thread protocol context --------------------------------------- */

struct tls {
	int ready;
	struct proto_ctx ctx;
	struct proto_response resp;
};
static _Thread_local struct tls tls;
static pthread_key_t tls_key; /* only for its destructor: frees tls when a thread ends */

static void tls_release(void *arg)
{
	struct tls *t = arg;
	proto_response_free(&t->resp);
	proto_fini(&t->ctx);
	t->ready = 0;
}

static struct tls *thread_state(void)
{
	if (!tls.ready) {
		proto_init(&tls.ctx, &cfg, store);
		tls.ctx.on_commit = on_own_commit;
		tls.ctx.batch = batch;
		proto_response_init(&tls.resp);
		pthread_setspecific(tls_key, &tls);
		tls.ready = 1;
	}
	return &tls;
}

/* --- responses ------------------------------------------------------------- */

/* X-Lmstream-Front tells operators (and the routing tests) which process answered. */
static void add_headers(struct MHD_Response *mr, const struct proto_response *r)
{
	for (int i = 0; i < r->nheaders; i++)
		MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value);
	MHD_add_response_header(mr, "X-Lmstream-Front", "live");
}

static enum MHD_Result queue(struct conn *c, struct proto_response *r)
{
	int bodyless = r->status == 204 || r->status == 304;
	struct MHD_Response *mr = MHD_create_response_from_buffer(
		bodyless ? 0 : r->body.len, bodyless ? "" : r->body.data, MHD_RESPMEM_MUST_COPY);
	if (!mr)
		return MHD_NO;
	add_headers(mr, r);
	/* A live response ends a connection: the next long-poll or SSE request
	 * comes on a new one. libmicrohttpd may miss a hang-up that happened
	 * while the connection was suspended, so it must not keep it idle. */
	if (c->kind == K_LONGPOLL)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ok = MHD_queue_response(c->mc, (unsigned)r->status, mr);
	MHD_destroy_response(mr);
	return ok;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max);

static enum MHD_Result queue_sse(struct conn *c, struct proto_response *r)
{
	struct MHD_Response *mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64,
	                                                            sse_reader, c, NULL);
	if (!mr)
		return MHD_NO;
	add_headers(mr, r);
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ok = MHD_queue_response(c->mc, (unsigned)r->status, mr);
	MHD_destroy_response(mr);
	return ok;
}

/* SSE body: hand out pending bytes; when none, ask the core for more; when
 * caught up, suspend until the stream changes or a timer fires. */
static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct conn *c = cls;
	struct tls *t = thread_state();
	(void)pos;

	for (;;) {
		if (c->out_off < c->out.len) {
			size_t n = c->out.len - c->out_off;
			if (n > max)
				n = max;
			memcpy(buf, c->out.data + c->out_off, n);
			c->out_off += n;
			if (c->out_off == c->out.len) {
				buf_free(&c->out); /* idle connections keep no buffer */
				c->out_off = 0;
			}
			return (ssize_t)n;
		}
		if (atomic_load(&c->hung_up))
			return MHD_CONTENT_READER_END_WITH_ERROR; /* nobody to write to */
		if (c->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		int64_t now = store_mono_ms();
		if (atomic_load(&draining) || now >= c->sse_end) {
			c->ended = 1;
			continue;
		}
		uint64_t seq = atomic_load(&reg.notify_seq);
		enum sse_step s = proto_sse_step(&t->ctx, &c->live, &c->out);
		if (s == SSE_END) {
			c->ended = 1;
			continue;
		}
		if (c->out.len)
			continue;
		if (s == SSE_MORE)
			continue;
		if (c->beat_due || now >= c->next_beat) {
			c->beat_due = 0;
			c->next_beat = now + cfg.heartbeat_ms;
			sse_comment(&c->out, "keep-alive");
			continue;
		}
		if (reg_wait(c, c->live.stream_id, seq))
			return 0;
	}
}

/* --- static files (the demo page when running alone) ------------------------ */

static const char *mime_of(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" }, { ".json", "application/json" },
		{ ".svg", "image/svg+xml" }, { ".png", "image/png" }, { ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
	};
	const char *dot = strrchr(path, '.');
	for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
		if (!strcmp(dot, types[i].ext))
			return types[i].type;
	return "application/octet-stream";
}

/* Serves cfg.www for GET and HEAD outside the stream prefix. Returns MHD_NO
 * through *handled = 0 when the request is not for a static file. */
static enum MHD_Result serve_static(struct conn *c, struct tls *t, int *handled)
{
	char rel[512], path[1100];
	const char *target = c->req.target;
	*handled = 0;
	if (!cfg.www[0] || !strncmp(target, cfg.prefix, strlen(cfg.prefix)))
		return MHD_NO;
	*handled = 1;
	if (c->req.method != M_GET && c->req.method != M_HEAD) {
		proto_error(&t->resp, 405, "method not allowed");
		return queue(c, &t->resp);
	}
	long n = parse_percent_decode(target, c->req.target_len, rel, sizeof rel);
	if (n <= 0 || rel[0] != '/' || strstr(rel, "/..") || memchr(rel, '\0', (size_t)n) ||
	    strchr(rel, '\\')) {
		proto_error(&t->resp, 404, "not found");
		return queue(c, &t->resp);
	}
	snprintf(path, sizeof path, "%s%s%s", cfg.www, rel, rel[n - 1] == '/' ? "index.html" : "");
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		proto_error(&t->resp, 404, "not found");
		return queue(c, &t->resp);
	}
	struct MHD_Response *mr = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
	if (!mr) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(mr, "Content-Type", mime_of(path));
	MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(mr, "Cache-Control", "no-cache");
	enum MHD_Result ok = MHD_queue_response(c->mc, MHD_HTTP_OK, mr);
	MHD_destroy_response(mr);
	return ok;
}

/* --- request handling -------------------------------------------------------- */

/* Keep escapes as they are: the core decodes paths and query values itself. */
static size_t keep_escapes(void *cls, struct MHD_Connection *mc, char *s)
{
	(void)cls;
	(void)mc;
	return strlen(s);
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t klen,
                               const char *value, size_t vlen)
{
	struct buf *q = cls;
	(void)kind;
	if (q->len)
		buf_append(q, "&", 1);
	buf_append(q, key, klen);
	if (value) {
		buf_append(q, "=", 1);
		buf_append(q, value, vlen);
	}
	return MHD_YES;
}

static const char *hdr(struct MHD_Connection *mc, const char *name)
{
	return MHD_lookup_connection_value(mc, MHD_HEADER_KIND, name);
}

static void build_request(struct conn *c, const char *url, const char *method)
{
	struct MHD_Connection *mc = c->mc;
	struct buf q;
	struct proto_request *r = &c->req;

	memset(r, 0, sizeof *r);
	r->method = proto_method(method);
	c->target = strdup(url);
	buf_init(&q);
	MHD_get_connection_values_n(mc, MHD_GET_ARGUMENT_KIND, add_arg, &q);
	c->query = q.data ? q.data : strdup("");
	r->target = c->target ? c->target : "";
	r->target_len = strlen(r->target);
	r->query = c->query ? c->query : "";
	r->query_len = strlen(r->query);
	for (int i = 0; i < H__COUNT; i++)
		r->h[i] = hdr(mc, proto_headers[i].name);
	const char *proto = hdr(mc, "X-Forwarded-Proto");
	r->https = proto && !strcasecmp(proto, "https");
	const char *cl = hdr(mc, "Content-Length");
	if (cl && strtoull(cl, NULL, 10) > cfg.max_body)
		r->body_too_large = 1;
}

static void start_longpoll(struct conn *c)
{
	c->kind = K_LONGPOLL;
	c->deadline = store_mono_ms() + cfg.long_poll_ms;
}

/* Long-poll after proto_handle or a wake-up: answer, or suspend again. */
static enum MHD_Result longpoll_step(struct conn *c, struct tls *t)
{
	for (;;) {
		if (atomic_load(&c->hung_up))
			return MHD_NO; /* close: the client left */
		if (c->timed_out || atomic_load(&draining)) {
			proto_longpoll_timeout(&t->ctx, &c->req, &c->live, &t->resp);
			return queue(c, &t->resp);
		}
		uint64_t seq = atomic_load(&reg.notify_seq);
		proto_longpoll_poll(&t->ctx, &c->req, &c->live, &t->resp);
		if (t->resp.action != PROTO_WAIT)
			return queue(c, &t->resp);
		if (reg_wait(c, c->live.stream_id, seq))
			return MHD_YES;
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct conn *c = *con_cls;
	struct tls *t = thread_state();
	(void)cls;
	(void)version;

	if (!c) {
		c = calloc(1, sizeof *c);
		if (!c)
			return MHD_NO;
		c->mc = mc;
		buf_init(&c->body);
		buf_init(&c->out);
		*con_cls = c;
		build_request(c, url, method);
		atomic_fetch_add(&stat_requests, 1);
		atomic_fetch_add(&nreq, 1);
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!c->req.body_too_large) {
			if (c->body.len + *upload_data_size > cfg.max_body)
				c->req.body_too_large = 1;
			else
				buf_append(&c->body, upload_data, *upload_data_size);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (c->kind == K_LONGPOLL)
		return longpoll_step(c, t);
	if (c->kind != K_NEW)
		return MHD_NO;

	c->kind = K_PLAIN;
	/* The cap counts requests in progress (this one included): what the
	 * daemon holds for its clients. libmicrohttpd's own limit, a little
	 * higher, bounds the sockets. */
	if (atomic_load(&nreq) > cfg.max_connections || atomic_load(&draining)) {
		proto_error(&t->resp, 503, atomic_load(&draining) ? "server is shutting down"
		                                                  : "too many connections");
		return queue(c, &t->resp);
	}
	if (c->body.failed) {
		proto_error(&t->resp, 503, "out of memory reading the request body");
		return queue(c, &t->resp);
	}
	int handled;
	enum MHD_Result sr = serve_static(c, t, &handled);
	if (handled)
		return sr;
	c->req.body = c->body.data ? c->body.data : "";
	c->req.body_len = c->body.len;
	uint64_t seq = atomic_load(&reg.notify_seq);
	proto_handle(&t->ctx, &c->req, &t->resp, &c->live);
	/* The body is not needed any more. */
	buf_free(&c->body);
	c->req.body = "";
	c->req.body_len = 0;
	switch (t->resp.action) {
	case PROTO_DONE:
		return queue(c, &t->resp);
	case PROTO_WAIT:
		start_longpoll(c);
		if (reg_wait(c, c->live.stream_id, seq))
			return MHD_YES;
		return longpoll_step(c, t);
	case PROTO_SSE: {
		int64_t now = store_mono_ms();
		c->kind = K_SSE;
		c->sse_end = now + cfg.sse_lifetime_ms;
		c->next_beat = now + cfg.heartbeat_ms;
		return queue_sse(c, &t->resp);
	}
	}
	return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct conn *c = *con_cls;
	(void)cls;
	(void)toe;
	if (!c)
		return;
	buf_free(&c->body);
	buf_free(&c->out);
	free(c->target);
	free(c->query);
	proto_live_clear(&c->live);
	*con_cls = NULL;
	atomic_fetch_sub(&nreq, 1);
	pthread_mutex_lock(&reg.lock);
	reg_remove(c);
	if (c->watched) {
		/* The notifier may hold an event for it: it frees the struct. */
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci)
			epoll_ctl(watch_ep, EPOLL_CTL_DEL, ci->connect_fd, NULL);
		c->dead = 1;
		c->grave_next = graveyard;
		graveyard = c;
		c = NULL;
	}
	pthread_mutex_unlock(&reg.lock);
	free(c);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)mc;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&nconn, 1);
	else
		atomic_fetch_sub(&nconn, 1);
}

/* --- notifier thread ---------------------------------------------------------- */

static int notify_fd = -1;
static atomic_int notifier_stop;

static void *notifier(void *arg)
{
	uint64_t pending_since_txn = 0;
	int64_t pending_since = 0, last_tick = store_mono_ms(), last_reader_check = last_tick;
	(void)arg;

	while (!atomic_load(&notifier_stop)) {
		/* Completed conns: no event from before their removal is pending now. */
		pthread_mutex_lock(&reg.lock);
		struct conn *grave = graveyard;
		graveyard = NULL;
		pthread_mutex_unlock(&reg.lock);
		while (grave) {
			struct conn *next = grave->grave_next;
			free(grave);
			grave = next;
		}

		struct epoll_event evs[64];
		int r = epoll_wait(watch_ep, evs, 64, TICK_MS);
		for (int i = 0; i < r; i++) {
			if (!evs[i].data.ptr) {
				struct notify_msg m;
				while (notify_recv(notify_fd, &m) == 1) {
					note_txnid(m.txnid);
					reg_wake(m.stream_id);
				}
				continue;
			}
			/* A client hung up. The edge comes once: if the connection is
			 * busy right now, the flag makes its next step end it instead
			 * of waiting again; if it waits, resume it to end it. */
			struct conn *c = evs[i].data.ptr;
			pthread_mutex_lock(&reg.lock);
			if (!c->dead) {
				atomic_store(&c->hung_up, 1);
				if (c->waiting) {
					reg_remove(c);
					MHD_resume_connection(c->mc);
				}
			}
			pthread_mutex_unlock(&reg.lock);
		}
		int64_t now = store_mono_ms();
		if (now - last_tick < TICK_MS)
			continue;
		last_tick = now;
		reg_scan(now, 0);

		/* A commit that was never announced: wake everyone once to reconcile. */
		uint64_t last = store_last_txnid(store);
		if (last > atomic_load(&reg.notified_txnid)) {
			if (pending_since_txn == 0) {
				pending_since_txn = last;
				pending_since = now;
			} else if (now - pending_since >= RECONCILE_AFTER_MS) {
				log_debug("commit %llu was not announced: waking all waiters",
				          (unsigned long long)last);
				note_txnid(pending_since_txn);
				reg_scan(now, 1);
				pending_since_txn = 0;
			}
		} else {
			pending_since_txn = 0;
		}
		if (now - last_reader_check > 10000) {
			last_reader_check = now;
			int dead = store_reader_check(store);
			if (dead)
				log_info("cleared %d stale reader slot(s)", dead);
		}
	}
	return NULL;
}

/* --- housekeeping -------------------------------------------------------------- */

/* Writers reclaim deleted streams, expire streams and trim retained history a
 * few hundred rows per commit. Streams nobody writes to would keep what they
 * should lose, so the daemon runs one bounded pass every few seconds too,
 * off the notifier thread (it may wait for the writer lock). A pass with
 * nothing to do commits an empty transaction, which writes nothing. */
static atomic_int housekeeper_stop;

static void *housekeeper(void *arg)
{
	(void)arg;
	int64_t last = store_mono_ms();
	while (!atomic_load(&housekeeper_stop)) {
		usleep(200 * 1000);
		int64_t now = store_mono_ms();
		if (now - last < LS_HOUSEKEEP_MS)
			continue;
		last = now;
		struct store_txn w;
		if (store_write_begin(&w, store) != ST_OK)
			continue;
		if (store_housekeep(&w, store_now_ms(), LS_GC_ROWS_PER_WRITE) != ST_OK) {
			store_abort(&w);
			continue;
		}
		/* Nobody was promised these deletions: no flush to wait for. */
		store_commit(&w, 1);
	}
	return NULL;
}

/* --- start-up ------------------------------------------------------------------- */

static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof host)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	int port = atoi(colon + 1);
	if (port <= 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof *ss);
	char *h = host;
	if (h[0] == '[') {
		h++;
		h[strlen(h) - 1] = '\0';
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof *a4;
		return 0;
	}
	if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof *a6;
		return 0;
	}
	return -1;
}

/* Every connection needs one descriptor; keep room for the store, logs and
 * the notify socket. */
static int raise_fd_limit(int connections)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)connections + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		log_error("max_connections = %d needs %llu file descriptors but the hard limit is %llu; "
		          "lower max_connections or raise the limit (ulimit -Hn, LimitNOFILE=)",
		          connections, (unsigned long long)need, (unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_error("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)need, strerror(errno));
		return -1;
	}
	return 0;
}

/* libmicrohttpd reports every client that hangs up mid-stream; that is
 * normal for live readers, so its messages go to the debug level. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("libmicrohttpd: %s", line);
}

static void usage(FILE *f)
{
	fputs("usage: lmstream-live [--config FILE] [--data DIR] [--listen HOST:PORT]\n"
	      "                     [--threads N] [--max-connections N] [--set key=value]...\n"
	      "Serves the Durable Streams protocol over HTTP from the LMDB data directory:\n"
	      "live reads (SSE, long-poll) behind lighttpd or Apache, or everything when alone.\n"
	      "Environment: LMSTREAM_CONFIG=FILE, LMSTREAM_<KEY>=value for any config key.\n", f);
}

/* Runs one daemon process until SIGTERM/SIGINT: the only process, or one
 * of a group (group_fd >= 0), which then takes its commit datagrams from the
 * parent instead of binding the notify socket. Returns the exit status. */
static int serve(const struct sockaddr_storage *ssp, const sigset_t *sigsp)
{
	struct sockaddr_storage ss = *ssp;
	sigset_t sigs = *sigsp;
	sigdelset(&sigs, SIGCHLD); /* stays blocked; a group's parent waits for it */
	/* The daemon's own limit sits a little above the cap so that the cap
	 * can be answered with 503 instead of a refused connection. */
	int mhd_limit = cfg.max_connections + 32;
	if (raise_fd_limit(mhd_limit) < 0)
		return 1;

	if (store_open(&store, &cfg) != ST_OK)
		return 1;
	batch = batch_new(store, LS_BATCH_MAX_JOBS, LS_BATCH_MAX_BYTES);
	pthread_key_create(&tls_key, tls_release);
	notify_fd = group_fd >= 0 ? group_fd : notify_listen(&cfg);
	if (notify_fd < 0)
		log_warn("cannot bind the notify socket (%s): commits by other processes are seen "
		         "by polling only", strerror(errno));
	note_txnid(store_last_txnid(store));
	watch_ep = epoll_create1(EPOLL_CLOEXEC);
	if (watch_ep < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		return 1;
	}
	if (notify_fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
		epoll_ctl(watch_ep, EPOLL_CTL_ADD, notify_fd, &ev);
	}
	pthread_mutex_lock(&reg.lock);
	reg_grow();
	pthread_mutex_unlock(&reg.lock);

	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	                 MHD_USE_TURBO;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	daemon_h = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, NULL,
		/* first, so that it also gets the warnings about later options */
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg.threads > 1 ? cfg.threads : 0),
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)mhd_limit,
		/* Idle connections are closed after this; suspended ones are exempt,
		 * and a live response writes at least every heartbeat. */
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg.heartbeat_ms / 1000 * 2 + 60),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg.conn_memory,
		MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)512,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		MHD_OPTION_END);
	if (!daemon_h) {
		log_error("cannot listen on %s", cfg.listen);
		return 1;
	}
	pthread_t nt;
	if (pthread_create(&nt, NULL, notifier, NULL)) {
		log_error("cannot start the notifier thread");
		return 1;
	}
	pthread_t ht;
	if (pthread_create(&ht, NULL, housekeeper, NULL)) {
		log_error("cannot start the housekeeping thread");
		return 1;
	}
	log_info("listening on %s (data %s, %d thread(s), max %d connections%s)", cfg.listen,
	         cfg.data_dir, cfg.threads, cfg.max_connections,
	         group_fd >= 0 ? ", one process of a group" : "");

	int sig = 0;
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
		log_info("%d connections, %ld requests, %ld wake-ups, %d in progress, %zu waiting",
		         atomic_load(&nconn), atomic_load(&stat_requests), atomic_load(&stat_wakeups),
		         atomic_load(&nreq), reg.count);

	/* Drain: stop accepting, end live responses, give them a moment. */
	log_info("signal %d: draining %d connection(s)", sig, atomic_load(&nconn));
	atomic_store(&draining, 1);
	MHD_socket lfd = MHD_quiesce_daemon(daemon_h);
	reg_scan(store_mono_ms(), 1);
	for (int i = 0; i < 100 && atomic_load(&nreq) > 0; i++) {
		usleep(20000);
		reg_scan(store_mono_ms(), 1);
	}
	atomic_store(&notifier_stop, 1);
	pthread_join(nt, NULL);
	atomic_store(&housekeeper_stop, 1);
	pthread_join(ht, NULL);
	reg_scan(store_mono_ms(), 1);
	MHD_stop_daemon(daemon_h);
	while (graveyard) {
		struct conn *next = graveyard->grave_next;
		free(graveyard);
		graveyard = next;
	}
	close(watch_ep);
	free(reg.buckets);
	free(reg.heap);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	if (notify_fd >= 0) {
		char path[600];
		close(notify_fd);
		if (group_fd < 0 && notify_path(&cfg, path, sizeof path) == 0)
			unlink(path);
	}
	batch_free(batch);
	store_close(store);
	log_info("stopped");
	return 0;
}

/* --- several processes on one port ------------------------------------------ */

/* With live_processes = N > 1 the started process becomes a small parent: it
 * binds the notify socket, starts N daemon processes that each listen on the
 * same address (SO_REUSEPORT: the kernel spreads new connections over them,
 * so each holds about 1/N of the connections and descriptors), and relays
 * every commit datagram to all of them: those of other programs' writers
 * arriving on the notify socket, and those of each process's own writes to
 * the others. It forwards SIGHUP, restarts a process that dies (at most
 * RESTARTS_PER_MINUTE times a minute, then it stops the group and exits 1)
 * and on SIGTERM/SIGINT drains every process and waits for them. */

#define RESTARTS_PER_MINUTE 5
#define GROUP_STOP_MS 15000

struct member {
	pid_t pid;              /* 0: not running */
	int fd;                 /* parent's end of the datagram pair, -1 when closed */
};

static struct member *members;
static int nmembers;
static pthread_mutex_t members_lock = PTHREAD_MUTEX_INITIALIZER;
static int relay_ep = -1, relay_live_fd = -1;
static atomic_int relay_stop;

#define RELAY_FROM_SOCKET UINT32_MAX

/* Relay thread of the parent: each datagram goes to every process but the
 * one it came from. It neither allocates nor logs (the parent forks while it
 * runs). */
static void *relay(void *arg)
{
	(void)arg;
	while (!atomic_load(&relay_stop)) {
		struct epoll_event evs[32];
		int r = epoll_wait(relay_ep, evs, 32, 200);
		for (int i = 0; i < r; i++) {
			uint32_t from = evs[i].data.u32;
			struct notify_msg m;
			pthread_mutex_lock(&members_lock);
			int fd = from == RELAY_FROM_SOCKET ? relay_live_fd
			       : (int)from < nmembers ? members[from].fd : -1;
			while (fd >= 0 && notify_recv(fd, &m) == 1)
				for (int k = 0; k < nmembers; k++)
					if ((uint32_t)k != from && members[k].fd >= 0)
						notify_post(members[k].fd, m.stream_id, m.txnid);
			pthread_mutex_unlock(&members_lock);
		}
	}
	return NULL;
}

/* Starts process k of the group. In the child it never returns: the child
 * runs the daemon and exits with its status. */
static int spawn_member(int k, const struct sockaddr_storage *ss, const sigset_t *sigs)
{
	int sv[2];
	if (notify_pair(sv) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t parent = getpid();
	pthread_mutex_lock(&members_lock);
	pid_t pid = fork();
	if (pid == 0) {
		/* The child: it must not outlive the parent, which deploy/run and
		 * systemd watch. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		close(sv[0]);
		close(relay_ep);
		close(relay_live_fd);
		for (int j = 0; j < nmembers; j++)
			if (members[j].fd >= 0)
				close(members[j].fd);
		group_fd = sv[1];
		exit(serve(ss, sigs));
	}
	if (pid < 0) {
		int e = errno;
		pthread_mutex_unlock(&members_lock);
		close(sv[0]);
		close(sv[1]);
		log_error("fork: %s", strerror(e));
		return -1;
	}
	close(sv[1]);
	members[k].pid = pid;
	members[k].fd = sv[0];
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)k };
	epoll_ctl(relay_ep, EPOLL_CTL_ADD, sv[0], &ev);
	pthread_mutex_unlock(&members_lock);
	return 0;
}

/* Reaps ended processes; returns how many of them had been running. */
static int reap_members(int *which, int cap)
{
	int n = 0, status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		pthread_mutex_lock(&members_lock);
		for (int k = 0; k < nmembers; k++) {
			if (members[k].pid != pid)
				continue;
			members[k].pid = 0;
			if (members[k].fd >= 0)
				close(members[k].fd); /* also leaves relay_ep */
			members[k].fd = -1;
			if (n < cap)
				which[n++] = k;
		}
		pthread_mutex_unlock(&members_lock);
		if (WIFSIGNALED(status))
			log_warn("process %d ended by signal %d", (int)pid, WTERMSIG(status));
		else
			log_info("process %d exited with status %d", (int)pid, WEXITSTATUS(status));
	}
	return n;
}

static void signal_members(int sig)
{
	pthread_mutex_lock(&members_lock);
	for (int k = 0; k < nmembers; k++)
		if (members[k].pid > 0)
			kill(members[k].pid, sig);
	pthread_mutex_unlock(&members_lock);
}

static int members_running(void)
{
	int n = 0;
	pthread_mutex_lock(&members_lock);
	for (int k = 0; k < nmembers; k++)
		n += members[k].pid > 0;
	pthread_mutex_unlock(&members_lock);
	return n;
}

static int run_group(const struct sockaddr_storage *ss, const sigset_t *sigs)
{
	int n = cfg.live_processes, status = 0;
	/* max_connections is the group's total; each process gets its share. */
	int total = cfg.max_connections;
	cfg.max_connections = (total + n - 1) / n;
	members = calloc((size_t)n, sizeof *members);
	if (!members)
		return 1;
	nmembers = n;
	for (int k = 0; k < n; k++)
		members[k].fd = -1;
	relay_live_fd = notify_listen(&cfg);
	if (relay_live_fd < 0)
		log_warn("cannot bind the notify socket (%s): commits by other processes are seen "
		         "by polling only", strerror(errno));
	relay_ep = epoll_create1(EPOLL_CLOEXEC);
	if (relay_ep < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		return 1;
	}
	if (relay_live_fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = RELAY_FROM_SOCKET };
		epoll_ctl(relay_ep, EPOLL_CTL_ADD, relay_live_fd, &ev);
	}
	log_info("starting %d processes on %s (max %d connections each)", n, cfg.listen,
	         cfg.max_connections);
	for (int k = 0; k < n; k++)
		if (spawn_member(k, ss, sigs) < 0)
			return 1;
	pthread_t rt;
	if (pthread_create(&rt, NULL, relay, NULL)) {
		log_error("cannot start the relay thread");
		signal_members(SIGTERM);
		return 1;
	}

	int64_t restarts[RESTARTS_PER_MINUTE] = { 0 };
	int nrestarts = 0, sig = 0;
	while (sigwait(sigs, &sig) == 0) {
		if (sig == SIGHUP) {
			signal_members(SIGHUP);
			continue;
		}
		if (sig != SIGCHLD)
			break;
		int ended[64];
		int ne = reap_members(ended, 64);
		int64_t now = store_mono_ms();
		for (int i = 0; i < ne; i++) {
			int64_t oldest = restarts[nrestarts % RESTARTS_PER_MINUTE];
			if (nrestarts >= RESTARTS_PER_MINUTE && now - oldest < 60000) {
				log_error("%d restarts within a minute: stopping", RESTARTS_PER_MINUTE);
				status = 1;
				goto stop;
			}
			restarts[nrestarts++ % RESTARTS_PER_MINUTE] = now;
			log_warn("restarting process %d of the group", ended[i]);
			if (spawn_member(ended[i], ss, sigs) < 0) {
				status = 1;
				goto stop;
			}
		}
	}
	log_info("signal %d: stopping %d process(es)", sig, members_running());
stop:
	signal_members(SIGTERM);
	{
		int64_t until = store_mono_ms() + GROUP_STOP_MS;
		int ended[64];
		while (members_running() > 0) {
			reap_members(ended, 64);
			if (members_running() == 0)
				break;
			if (store_mono_ms() > until) {
				log_warn("processes still running after %d ms: killing them", GROUP_STOP_MS);
				signal_members(SIGKILL);
				until = INT64_MAX;
			}
			usleep(20000);
		}
	}
	atomic_store(&relay_stop, 1);
	pthread_join(rt, NULL);
	close(relay_ep);
	if (relay_live_fd >= 0) {
		char path[600];
		close(relay_live_fd);
		if (notify_path(&cfg, path, sizeof path) == 0)
			unlink(path);
	}
	free(members);
	log_info("stopped");
	return status;
}

int main(int argc, char **argv)
{
	/* --standalone is accepted for clarity: it always serves everything. */
	static const char *const extra[] = { "--standalone", NULL };

	log_init("lmstream-live", getenv("LMSTREAM_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	int status = config_main(&cfg, argc, argv, "lmstream-live", usage, extra);
	if (status >= 0)
		return status;

	struct sockaddr_storage ss;
	socklen_t sslen;
	if (parse_listen(cfg.listen, &ss, &sslen)) {
		log_error("invalid listen address '%s' (expected HOST:PORT)", cfg.listen);
		return 2;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	if (cfg.live_processes > 1)
		sigaddset(&sigs, SIGCHLD); /* only the parent of a group waits for it */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every thread inherits this */
	signal(SIGPIPE, SIG_IGN);
	if (cfg.live_processes > 1)
		return run_group(&ss, &sigs);
	return serve(&ss, &sigs);
}
