/* http.c: lmstream-live's requests: libmicrohttpd callbacks, long-poll, SSE, static files. */
#include "front/live/live.h"
#include "front/deliver.h"
#include "front/notify.h"
#include "lib/limits.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/sse.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- the registry's operations ------------------------------------------- */

int conn_fd(const struct conn *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	return ci ? ci->connect_fd : -1;
}

static void conn_suspend(void *owner)
{
	struct conn *c = owner;
	bg_watch(c);
	MHD_suspend_connection(c->mc);
}

static void conn_resume(void *owner)
{
	struct conn *c = owner;
	MHD_resume_connection(c->mc);
}

/* True when the client of a waiting connection has closed its side: a
 * heartbeat's check that does not depend on a write failing. */
static int conn_peer_gone(void *owner)
{
	int fd = conn_fd(owner);
	char b;
	if (fd < 0)
		return 0;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

const struct reg_ops conn_reg_ops = {
	.suspend = conn_suspend,
	.resume = conn_resume,
	.peer_gone = conn_peer_gone,
};

/* Commits made by this daemon (standalone writes): wake directly, and tell
 * the other processes of the group through the parent. */
static void on_own_commit(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	reg_note_txnid(&live.reg, txnid);
	reg_wake(&live.reg, stream_id);
	if (live.group_fd >= 0)
		notify_post(live.group_fd, stream_id, txnid);
	deliver_kick();
}

/* On the flusher thread: the queued write of c is answered (c->wresp). */
static void on_written(void *owner)
{
	struct conn *c = owner;
	if (atomic_fetch_or(&c->wflags, W_WRITTEN) & W_SUSPENDED)
		MHD_resume_connection(c->mc);
}

/* --- per-thread protocol context --------------------------------------- */

/* A long-poll answer shared by the waiters a wake-up resumes: those at the
 * same place of the same stream, asking in the same way, get the answer the
 * first of them made (libmicrohttpd's responses are reference counted), as
 * long as nothing else woke since it was made. */
struct lp_shared {
	struct MHD_Response *mr;     /* NULL: none */
	uint64_t regseq;             /* the registry's count before the store was read */
	uint64_t stream_id, seq, bytes;
	unsigned json : 1, base64 : 1, credentialed : 1;
	char cursor[24];
	char origin[256];            /* the Origin header, "" without one */
	int status;
	enum proto_err err;
	uint64_t len;
};

struct tls {
	int ready;
	struct proto_ctx ctx;
	struct proto_response resp;
	struct lp_shared lp;
};
static _Thread_local struct tls tls;
static pthread_key_t tls_key; /* only for its destructor: frees tls when a thread ends */

static void tls_release(void *arg)
{
	struct tls *t = arg;
	if (t->lp.mr)
		MHD_destroy_response(t->lp.mr);
	t->lp.mr = NULL;
	proto_response_free(&t->resp);
	proto_fini(&t->ctx);
	t->ready = 0;
}

int http_init(void)
{
	int e = pthread_key_create(&tls_key, tls_release);
	if (e)
		errno = e;
	return e ? -1 : 0;
}

static struct tls *thread_state(void)
{
	if (!tls.ready) {
		proto_init(&tls.ctx, &live.cfg, live.store);
		tls.ctx.on_commit = on_own_commit;
		tls.ctx.batch = live.batch;
		tls.ctx.on_written = on_written;
		tls.ctx.auth = live.auth;
		tls.ctx.front = "live";
		proto_response_init(&tls.resp);
		pthread_setspecific(tls_key, &tls);
		tls.ready = 1;
	}
	return &tls;
}

/* --- responses ------------------------------------------------------------- */

static enum MHD_Result queue_as(struct conn *c, struct proto_response *r, int close);

/* X-Lmstream-Front tells operators (and the routing tests) which process answered. */
static void add_headers(struct MHD_Response *mr, const struct proto_response *r)
{
	for (int i = 0; i < r->nheaders; i++)
		MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value);
	MHD_add_response_header(mr, "X-Lmstream-Front", "live");
}

static enum MHD_Result queue(struct conn *c, struct proto_response *r)
{
	return queue_as(c, r, 0);
}

/* close: the connection ends after this response. */
static enum MHD_Result queue_as(struct conn *c, struct proto_response *r, int close)
{
	int bodyless = r->status == 204 || r->status == 304;
	/* The copy libmicrohttpd keeps until it is sent counts in the memory
	 * budget (a catch-up read of one large message is that large). */
	if (!bodyless && r->body.len) {
		if (edge_budget_take(r->body.len) < 0) {
			proto_fail(r, E_MEMORY_BUDGET);
			close = 1;
		} else {
			c->resp_held += r->body.len;
		}
	}
	struct MHD_Response *mr = MHD_create_response_from_buffer(
		bodyless ? 0 : r->body.len, bodyless ? "" : r->body.data, MHD_RESPMEM_MUST_COPY);
	if (!mr)
		return MHD_NO;
	add_headers(mr, r);
	proto_count(r);
	/* A long-poll's connection stays open for the next one: after a
	 * resume libmicrohttpd 0.9.75 reads the socket again (a client that
	 * left while it waited is seen then), and an idle connection is closed
	 * after header_timeout (edge.c). A refusal before the body ends the
	 * connection: the body is never read. */
	if (close)
		MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ok = MHD_queue_response(c->mc, (unsigned)r->status, mr);
	MHD_destroy_response(mr);
	if (ok == MHD_YES)
		access_sent(c, r->status, bodyless ? 0 : r->body.len);
	return ok;
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

/* Queues the regular file path (opened as fd, of size bytes) as the answer. */
static enum MHD_Result queue_file(struct conn *c, const char *path, int fd, uint64_t size)
{
	struct MHD_Response *mr = MHD_create_response_from_fd(size, fd);
	if (!mr) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(mr, "Content-Type", mime_of(path));
	MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(mr, "Cache-Control", "no-cache");
	proto_count_status(200, E_OK);
	enum MHD_Result ok = MHD_queue_response(c->mc, MHD_HTTP_OK, mr);
	MHD_destroy_response(mr);
	if (ok == MHD_YES)
		access_sent(c, MHD_HTTP_OK, size);
	return ok;
}

/* Serves cfg.www for GET and HEAD outside the stream prefix. Returns MHD_NO
 * through *handled = 0 when the request is not for a static file. */
static enum MHD_Result serve_static(struct conn *c, struct tls *t, int *handled)
{
	char rel[512], path[1100];
	const char *target = c->req.target;
	*handled = 0;
	if (!live.cfg.www[0] || proto_serves(&live.cfg, target, c->req.target_len))
		return MHD_NO;
	*handled = 1;
	if (c->req.method != M_GET && c->req.method != M_HEAD) {
		proto_fail(&t->resp, E_METHOD);
		return queue(c, &t->resp);
	}
	long n = parse_percent_decode(target, c->req.target_len, rel, sizeof rel);
	if (n <= 0 || rel[0] != '/' || strstr(rel, "/..") || memchr(rel, '\0', (size_t)n) ||
	    strchr(rel, '\\')) {
		proto_fail(&t->resp, E_NOT_FOUND);
		return queue(c, &t->resp);
	}
	snprintf(path, sizeof path, "%s%s%s", live.cfg.www, rel, rel[n - 1] == '/' ? "index.html" : "");
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		proto_fail(&t->resp, E_NOT_FOUND);
		return queue(c, &t->resp);
	}
	return queue_file(c, path, fd, (uint64_t)sb.st_size);
}

/* --- request handling -------------------------------------------------------- */

size_t keep_escapes(void *cls, struct MHD_Connection *mc, char *s)
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

/* MHD_get_connection_values callback: keeps the last header named cls's name. */
struct last_header {
	const char *name;
	const char *value;
};

static enum MHD_Result keep_last(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct last_header *h = cls;
	(void)kind;
	if (value && !strcasecmp(key, h->name))
		h->value = value;
	return MHD_YES;
}

const char *conn_last_header(struct MHD_Connection *mc, const char *name)
{
	struct last_header h = { name, NULL };
	MHD_get_connection_values(mc, MHD_HEADER_KIND, keep_last, &h);
	return h.value;
}

/* Behind a web server, on the unix: socket only it can reach: the user it
 * authenticated and its scheme, from the Forwarded element it appended
 * (remote_user=, proto=); the web server drops whatever the client sent
 * in that header. On a TCP port nobody's Forwarded counts. */
static void take_proxy_identity(struct conn *c)
{
	char v[LS_MAX_USER + 1];
	c->req.https = 0;
	if (!live.behind_proxy)
		return;
	const char *fw = conn_last_header(c->mc, "Forwarded");
	if (!fw)
		return;
	if (parse_forwarded_last(fw, "proto", v, sizeof v) > 0)
		c->req.https = !strcasecmp(v, "https");
	if (parse_forwarded_last(fw, "remote_user", v, sizeof v) > 0 && (c->user = strdup(v)))
		c->req.remote_user = c->user;
}

/* Whether the client is on this machine: a TCP peer on a loopback address
 * whose request no proxy forwarded (one on this machine would make every
 * client look local). Behind the web server, on the unix: socket, never:
 * the web server routes metrics_path to its workers, which know the
 * client's address. */
static int from_this_machine(struct MHD_Connection *mc)
{
	static const char *const forwarding[] = { "Forwarded", "X-Forwarded-For", "X-Real-IP", "Via" };
	if (live.behind_proxy)
		return 0;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !sockaddr_is_loopback(ci->client_addr))
		return 0;
	for (size_t i = 0; i < sizeof forwarding / sizeof forwarding[0]; i++)
		if (hdr(mc, forwarding[i]))
			return 0;
	return 1;
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
	take_proxy_identity(c);
	r->loopback = from_this_machine(mc);
}

/* What the daemon does not take, decided from the headers alone, before
 * any body is read: over the cap or shutting down, or a request edge.c
 * refuses. Returns E_OK or the refusal. */
static enum proto_err refusal(struct conn *c, const char *method, const char *url, const char *version)
{
	/* The cap counts requests in progress (this one included) and SSE
	 * subscribers: what the daemon holds for its clients. libmicrohttpd's
	 * own limit, a little higher, bounds its sockets. */
	if (atomic_load(&live.draining))
		return E_SHUTTING_DOWN;
	if (atomic_load(&live.nreq) + atomic_load(&live.nsubs) > live.cfg.max_connections)
		return E_TOO_MANY_CONNECTIONS;
	return edge_check(c, method, url, version);
}

/* A refusal with the fewest headers: what is left of the connection's pool
 * after large request headers holds no more. */
static enum MHD_Result queue_bare(struct conn *c, enum proto_err e)
{
	char body[128];
	int n = snprintf(body, sizeof body, "%s\n", proto_err_reason(e));
	struct MHD_Response *mr = MHD_create_response_from_buffer(
		(size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (!mr)
		return MHD_NO;
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
	proto_count_status(proto_err_status(e), e);
	enum MHD_Result ok = MHD_queue_response(c->mc, (unsigned)proto_err_status(e), mr);
	MHD_destroy_response(mr);
	if (ok == MHD_YES)
		access_sent(c, proto_err_status(e), (uint64_t)n);
	return ok;
}

/* The first call for a request: its conn, with the request as the core sees
 * it; or a refusal, which also ends the connection (its body is not read). */
static enum MHD_Result begin_request(struct MHD_Connection *mc, const char *url,
                                     const char *method, const char *version, void **con_cls)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return MHD_NO;
	c->mc = mc;
	reg_entry_init(&c->w, c, NULL);
	buf_init(&c->body);
	*con_cls = c;
	access_begin(c, method);
	edge_request_begins(mc);
	build_request(c, url, method);
	atomic_fetch_add(&live.requests, 1);
	atomic_fetch_add(&live.nreq, 1);
	enum proto_err e = refusal(c, method, url, version);
	if (e == E_OK)
		return MHD_YES;
	if (e == E_HEADERS_TOO_LARGE)
		return queue_bare(c, e);
	struct tls *t = thread_state();
	c->kind = K_PLAIN;
	proto_fail(&t->resp, e);
	return queue_as(c, &t->resp, 1);
}

/* A piece of the body: kept up to max_body and within the memory budget
 * (what Content-Length announced was reserved at the start); past either
 * the request is only marked. */
static void take_body(struct conn *c, const char *data, size_t size)
{
	if (c->req.body_too_large || c->over_budget)
		return;
	if (c->body.len + size > live.cfg.max_body) {
		c->req.body_too_large = 1;
		buf_free(&c->body);
		return;
	}
	if (c->body.len + size > c->reserved) {
		uint64_t more = c->body.len + size - c->reserved;
		if (edge_budget_take(more) < 0) {
			c->over_budget = 1;
			buf_free(&c->body);
			return;
		}
		c->reserved += more;
	}
	buf_append(&c->body, data, size);
}

static void start_longpoll(struct conn *c)
{
	c->kind = K_LONGPOLL;
	metrics_gauge(MG_LIVE_LONGPOLL, 1);
	c->deadline = proto_live_deadline(&c->live, store_mono_ms(), live.cfg.long_poll_ms);
}

/* A shared answer's body: counted in the memory budget until libmicrohttpd
 * lets go of it. */
struct held_body {
	size_t len;
	char data[];
};

static void held_free(void *cls)
{
	struct held_body *h = cls;
	edge_budget_give(h->len);
	free(h);
}

static int lp_matches(const struct lp_shared *lp, const struct conn *c, uint64_t regseq)
{
	const char *origin = c->req.h[H_ORIGIN];
	return lp->mr && lp->regseq == regseq && lp->stream_id == c->live.stream_id &&
	       lp->seq == c->live.seq && lp->bytes == c->live.bytes && lp->json == c->live.json &&
	       lp->base64 == c->live.base64 && lp->credentialed == c->live.credentialed &&
	       !strcmp(lp->cursor, c->live.cursor_in) && !strcmp(lp->origin, origin ? origin : "");
}

static enum MHD_Result lp_queue(struct conn *c, const struct lp_shared *lp)
{
	proto_count_status(lp->status, lp->err);
	enum MHD_Result ok = MHD_queue_response(c->mc, (unsigned)lp->status, lp->mr);
	if (ok == MHD_YES)
		access_sent(c, lp->status, lp->len);
	return ok;
}

/* Queues the answer r of c's long-poll, read from seq (bytes) when the
 * registry's count was regseq, and keeps it for the next waiters there
 * (the read moved c->live on). */
static enum MHD_Result lp_share(struct conn *c, struct tls *t, struct proto_response *r, uint64_t regseq,
                                uint64_t seq, uint64_t bytes)
{
	struct lp_shared *lp = &t->lp;
	const char *origin = c->req.h[H_ORIGIN];
	if (r->status != 200 || !r->body.len || (origin && strlen(origin) >= sizeof lp->origin) ||
	    edge_budget_take(r->body.len) < 0)
		return queue(c, r);
	struct held_body *h = malloc(sizeof *h + r->body.len);
	struct MHD_Response *mr = h ? MHD_create_response_from_buffer_with_free_callback_cls(
		r->body.len, h->data, held_free, h) : NULL;
	if (!mr) {
		free(h);
		edge_budget_give(r->body.len);
		return queue(c, r);
	}
	h->len = r->body.len;
	memcpy(h->data, r->body.data, r->body.len);
	add_headers(mr, r);
	if (lp->mr)
		MHD_destroy_response(lp->mr);
	*lp = (struct lp_shared){
		.mr = mr, .regseq = regseq, .stream_id = c->live.stream_id, .seq = seq,
		.bytes = bytes, .json = c->live.json, .base64 = c->live.base64,
		.credentialed = c->live.credentialed, .status = r->status, .err = r->err, .len = r->body.len,
	};
	memcpy(lp->cursor, c->live.cursor_in, sizeof lp->cursor);
	snprintf(lp->origin, sizeof lp->origin, "%s", origin ? origin : "");
	return lp_queue(c, lp);
}

/* Long-poll after proto_handle or a wake-up: answer, or suspend again. */
static enum MHD_Result longpoll_step(struct conn *c, struct tls *t)
{
	for (;;) {
		if (atomic_load(&c->w.hung_up))
			return MHD_NO; /* close: the client left */
		if (c->w.fired || atomic_load(&live.draining)) {
			proto_longpoll_timeout(&t->ctx, &c->req, &c->live, &t->resp);
			return queue(c, &t->resp);
		}
		uint64_t seq = reg_seq(&live.reg);
		if (lp_matches(&t->lp, c, seq))
			return lp_queue(c, &t->lp);
		uint64_t from = c->live.seq, from_bytes = c->live.bytes;
		proto_longpoll_poll(&t->ctx, &c->req, &c->live, &t->resp);
		if (t->resp.action != PROTO_WAIT)
			return lp_share(c, t, &t->resp, seq, from, from_bytes);
		if (reg_wait(&live.reg, &c->w, c->live.stream_id, c->deadline, seq))
			return MHD_YES;
	}
}

/* A body that could not be kept whole. Returns 1 with the refusal queued
 * in *ret. */
static int refuse_body(struct conn *c, struct tls *t, enum MHD_Result *ret)
{
	if (!c->body.failed && !c->over_budget)
		return 0;
	proto_fail(&t->resp, c->over_budget ? E_MEMORY_BUDGET : E_NO_MEMORY);
	*ret = queue_as(c, &t->resp, 1);
	return 1;
}

/* The request's body is not needed any more. */
static void drop_body(struct conn *c)
{
	buf_free(&c->body);
	edge_budget_give(c->reserved);
	c->reserved = 0;
	c->req.body = "";
	c->req.body_len = 0;
}

/* Whether one more live read (long-poll or SSE) fits: they may fill the
 * cap but for a reserve, which stays for writes and other requests, so
 * that subscribers up to the cap never starve the writers they wait for. */
static int live_read_fits(void)
{
	int cap = live.cfg.max_connections;
	int reserve = cap / LS_LIVE_RESERVE_DIV + LS_LIVE_RESERVE_MIN;
	if (reserve > LS_LIVE_RESERVE_MAX)
		reserve = LS_LIVE_RESERVE_MAX;
	if (reserve > cap / 2)
		reserve = cap / 2;
	return atomic_load(&live.nreq) + atomic_load(&live.nsubs) <= cap - reserve;
}

/* A write's answer is ready (c->wresp): send it. */
static enum MHD_Result written(struct conn *c)
{
	drop_body(c);
	c->kind = K_PLAIN;
	return queue(c, c->wresp);
}

/* The whole request is in: answer it, queue it to the writer, or start a
 * long-poll or SSE response. */
static enum MHD_Result handle(struct conn *c, struct tls *t)
{
	enum MHD_Result ret;
	int handled;

	c->kind = K_PLAIN;
	if (refuse_body(c, t, &ret))
		return ret;
	ret = serve_static(c, t, &handled);
	if (handled)
		return ret;
	c->req.body = c->body.data ? c->body.data : "";
	c->req.body_len = c->body.len;
	/* A write may be queued: its answer is filled later, by another
	 * thread, so it cannot be this thread's. Without one of its own it
	 * waits for its commit here. */
	struct proto_response *resp = &t->resp;
	c->req.owner = NULL;
	if (live.batch && proto_may_write(c->req.method) &&
	    (c->wresp = malloc(sizeof *c->wresp))) {
		proto_response_init(c->wresp);
		resp = c->wresp;
		c->req.owner = c;
	}
	uint64_t seq = reg_seq(&live.reg);
	switch (proto_handle(&t->ctx, &c->req, resp, &c->live)) {
	case PROTO_QUEUED:
		/* Until the writer threads answer: see on_written. */
		c->kind = K_WRITING;
		MHD_suspend_connection(c->mc);
		if (atomic_fetch_or(&c->wflags, W_SUSPENDED) & W_WRITTEN)
			MHD_resume_connection(c->mc);
		return MHD_YES;
	case PROTO_DONE:
		drop_body(c);
		return queue(c, resp);
	case PROTO_WAIT:
		drop_body(c);
		if (!live_read_fits()) {
			proto_fail(resp, E_TOO_MANY_CONNECTIONS);
			return queue_as(c, resp, 1);
		}
		start_longpoll(c);
		if (reg_wait(&live.reg, &c->w, c->live.stream_id, c->deadline, seq))
			return MHD_YES;
		return longpoll_step(c, t);
	case PROTO_SSE:
		drop_body(c);
		/* The events go out from tail.c, which takes the socket:
		 * libmicrohttpd closes its own descriptor of it (MHD_NO). */
		if (live_read_fits() && tail_adopt(c, resp) == 0)
			return MHD_NO;
		proto_live_clear(&c->live);
		proto_fail(resp, E_TOO_MANY_CONNECTIONS);
		return queue_as(c, resp, 1);
	}
	return MHD_NO;
}

enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls)
{
	struct conn *c = *con_cls;
	struct tls *t = thread_state();
	(void)cls;

	if (!c)
		return begin_request(mc, url, method, version, con_cls);
	if (*upload_data_size) {
		take_body(c, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (c->kind == K_LONGPOLL)
		return longpoll_step(c, t);
	if (c->kind == K_WRITING)
		return atomic_load(&c->wflags) & W_WRITTEN ? written(c) : MHD_YES;
	if (c->kind != K_NEW)
		return MHD_NO;
	return handle(c, t);
}

void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
	struct conn *c = *con_cls;
	(void)cls;
	if (!c)
		return;
	if (c->kind == K_LONGPOLL)
		metrics_gauge(MG_LIVE_LONGPOLL, -1);
	if (c->kind != K_HANDED) /* else tail.c writes its line when it ends */
		access_end(c, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
	buf_free(&c->body);
	edge_budget_give(c->reserved + c->resp_held);
	c->reserved = c->resp_held = 0;
	edge_request_ends(mc);
	free(c->target);
	free(c->query);
	free(c->user);
	if (c->wresp) {
		proto_response_free(c->wresp);
		free(c->wresp);
	}
	proto_live_clear(&c->live);
	*con_cls = NULL;
	atomic_fetch_sub(&live.nreq, 1);
	reg_lock(&live.reg);
	reg_remove(&live.reg, &c->w);
	if (bg_bury(c))
		c = NULL; /* the notifier may hold an event for it: it frees the struct */
	reg_unlock(&live.reg);
	free(c);
}

void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                   enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)socket_context;
	edge_connection(mc, toe == MHD_CONNECTION_NOTIFY_STARTED);
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&live.nconn, 1);
	else
		atomic_fetch_sub(&live.nconn, 1);
}
