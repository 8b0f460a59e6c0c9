/* front_fcgi.c: lmstream.fcgi, the FastCGI worker that also runs as a plain
 * CGI program. It turns the web server's request variables into a
 * proto_request, runs the protocol core and writes the response back. Live
 * reads (long-poll, SSE) are served here for a bounded time: the fallback
 * for hosting without lmstream-live; only so many at once, so that they
 * never take every thread or process from writes (max_live_reads).
 *
 * A FastCGI process takes requests on worker_threads threads. A write is
 * queued to the process's writer thread (batch.h), which commits every
 * write waiting in one transaction and answers them, while the thread
 * that queued it takes the next request. */
#include "core/auth.h"
#include "store/batch.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/num.h"
#include "lib/parse.h"
#include "core/subs.h"
#include "front/deliver.h"
#include "front/notify.h"
#include "core/protocol.h"
#include "core/request.h"
#include "lib/sse.h"
#include "store/store.h"

#include <errno.h>
#include <fastcgi.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Set by the stop signal's handler, read by every thread (a lock-free
 * atomic is safe in a handler). */
static atomic_int stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
}

/* SIGUSR2 only interrupts a thread's accept() at shutdown. */
static void on_wake(int sig)
{
	(void)sig;
}

/* Where request variables come from and where the response goes. */
struct io {
	FCGX_Request *fcgi;   /* NULL in CGI mode */
	int failed;           /* the client went away */
};

static const char *param(struct io *io, const char *name)
{
	const char *v = io->fcgi ? FCGX_GetParam(name, io->fcgi->envp) : getenv(name);
	return v;
}

static int io_write(struct io *io, const char *p, size_t n)
{
	if (io->failed)
		return -1;
	if (io->fcgi) {
		while (n > 0) {
			int chunk = n > (1 << 30) ? (1 << 30) : (int)n;
			if (FCGX_PutStr(p, chunk, io->fcgi->out) != chunk) {
				io->failed = 1;
				return -1;
			}
			p += chunk;
			n -= (size_t)chunk;
		}
		return 0;
	}
	if (n && fwrite(p, 1, n, stdout) != n) {
		io->failed = 1;
		return -1;
	}
	return 0;
}

static int io_flush(struct io *io)
{
	if (io->failed)
		return -1;
	int rc = io->fcgi ? FCGX_FFlush(io->fcgi->out) : fflush(stdout);
	if (rc != 0 || (io->fcgi && FCGX_GetError(io->fcgi->out))) {
		io->failed = 1;
		return -1;
	}
	return 0;
}

static size_t io_read(struct io *io, char *p, size_t n)
{
	if (io->fcgi) {
		int got = FCGX_GetStr(p, n > (1 << 30) ? (1 << 30) : (int)n, io->fcgi->in);
		return got > 0 ? (size_t)got : 0;
	}
	return fread(p, 1, n, stdin);
}

/* Whether the web server is lighttpd (interim_ok, fcgi_write_records). */
static int behind_lighttpd(struct io *io)
{
	const char *sw = param(io, "SERVER_SOFTWARE");
	return sw && !strncmp(sw, "lighttpd/", 9);
}

/* The response head: CGI's Status line, the headers, the blank line. */
static void build_head(struct buf *h, const struct proto_response *r, int with_length, size_t length)
{
	buf_printf(h, "Status: %d %s\r\n", r->status, proto_status_text(r->status));
	buf_puts(h, "X-Lmstream-Front: fcgi\r\n");
	proto_count(r);
	for (int i = 0; i < r->nheaders; i++)
		buf_printf(h, "%s: %s\r\n", r->headers[i].name, r->headers[i].value);
	if (with_length)
		buf_printf(h, "Content-Length: %zu\r\n", length);
	buf_puts(h, "\r\n");
}

static void write_head(struct io *io, const struct proto_response *r, int with_length, size_t length)
{
	struct buf h;
	buf_init(&h);
	build_head(&h, r, with_length, length);
	if (!h.failed)
		io_write(io, h.data, h.len);
	buf_free(&h);
}

/* A whole answer to the web server in FastCGI stdout records, gathered
 * straight from head and body by writev: libfcgi's stream would copy the
 * body into its 8 KiB buffer and make a write call per record, 128 for a
 * 1 MiB catch-up page. What the stream still holds (nothing, for an answer
 * that starts here) goes first; libfcgi writes the closing records at
 * FCGX_Finish_r, as before.
 *
 * The shape suits lighttpd (server.stream-response-body = 2): it keeps at
 * most 64 KiB of an answer in memory, and what it reads beyond that goes
 * to a temporary file in server.upload-dirs (created, written, sent with
 * sendfile, removed), and so does everything after it until the client
 * has taken the whole queue. It reads whatever the connection holds, up to
 * 128 KiB at once, and passes a record on only once the record is whole.
 * So behind lighttpd a large answer goes out through a small socket buffer
 * (FCGI_SNDBUF: the kernel doubles it, and the connection then holds about
 * 48 KiB), and always in records of under 8 KiB: each read plus the part of
 * a record held back stays under lighttpd's 64 KiB, and the answer streams
 * through memory. With the default buffer (over 200 KiB) nearly every 1 MiB
 * page went through about six temporary files. Other servers (mod_fcgid)
 * keep the default buffer: the worker is done sooner. */
#define FCGI_REC 8184             /* content bytes per record: 8-aligned, with its header under 8 KiB */
#define FCGI_IOV 64               /* iovecs per writev: 32 records */
#define FCGI_SNDBUF (24 * 1024)   /* SO_SNDBUF behind lighttpd for answers over FCGI_PACED bytes */
#define FCGI_PACED (64 * 1024)

static int fcgi_writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int fcgi_write_records(struct io *io, const char *head, size_t head_len, const char *body, size_t body_len)
{
	FCGX_Request *q = io->fcgi;
	struct iovec iov[FCGI_IOV];
	FCGI_Header hdr[FCGI_IOV / 2];
	const char *part[2] = { head, body };
	size_t left[2] = { head_len, body_len };
	int n = 0, k = 0;

	if (io->failed || io_flush(io))
		return -1;
	if (head_len + body_len > FCGI_PACED && behind_lighttpd(io)) {
		int sndbuf = FCGI_SNDBUF; /* a failure leaves the default: slower, still correct */
		setsockopt(q->ipcFd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	}
	while (k < 2) {
		if (!left[k]) {
			k++;
			continue;
		}
		/* one record: its header, then up to FCGI_REC bytes of this part
		 * (the head is a record of its own, so no record spans two parts) */
		size_t len = left[k] < FCGI_REC ? left[k] : FCGI_REC;
		FCGI_Header *h = &hdr[n / 2];
		*h = (FCGI_Header){ .version = FCGI_VERSION_1, .type = FCGI_STDOUT,
		                    .requestIdB1 = (unsigned char)(q->requestId >> 8),
		                    .requestIdB0 = (unsigned char)q->requestId,
		                    .contentLengthB1 = (unsigned char)(len >> 8),
		                    .contentLengthB0 = (unsigned char)len };
		iov[n++] = (struct iovec){ h, sizeof *h };
		iov[n++] = (struct iovec){ (void *)part[k], len };
		part[k] += len;
		left[k] -= len;
		if (n == FCGI_IOV) {
			if (fcgi_writev_all(q->ipcFd, iov, n))
				goto fail;
			n = 0;
		}
	}
	if (n && fcgi_writev_all(q->ipcFd, iov, n))
		goto fail;
	return 0;
fail:
	io->failed = 1;
	return -1;
}

/* An answer whose body fills a libfcgi record or more goes out in records
 * of its own (fcgi_write_records); a smaller one through libfcgi's stream,
 * which then writes it with the closing records in one call. */
static void write_response(struct io *io, const struct proto_response *r, int head)
{
	int bodyless = r->status == 204 || r->status == 304;
	int with_body = !head && !bodyless && r->body.len;
	if (io->fcgi && with_body && r->body.len >= FCGI_REC) {
		struct buf h;
		buf_init(&h);
		build_head(&h, r, 1, r->body.len);
		if (!h.failed)
			fcgi_write_records(io, h.data, h.len, r->body.data, r->body.len);
		buf_free(&h);
		return;
	}
	write_head(io, r, !bodyless, r->body.len);
	if (with_body)
		io_write(io, r->body.data, r->body.len);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* The web server aborts a request whose client went away by closing the
 * FastCGI connection, or, for CGI, by closing the pipe or socket of our
 * stdout (and signalling us, which sets stopping). While we wait, the
 * FastCGI connection must stay silent, so anything readable means gone;
 * stdout becomes an error or a hang-up. Waits up to wait_ms meanwhile. */
static int client_gone(struct io *io, int wait_ms)
{
	struct pollfd p = { STDOUT_FILENO, 0, 0 };
	if (io->fcgi)
		p = (struct pollfd){ io->fcgi->ipcFd, POLLIN, 0 };
	if (poll(&p, 1, wait_ms) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
		io->failed = 1;
		return 1;
	}
	return 0;
}

/* Whether the web server passes interim (1xx) responses on to the client.
 * lighttpd does, to HTTP/1.1 and HTTP/2 clients; and it notices that a
 * client left (a closed socket looks like a half-closed one) only when a
 * write to it fails. Apache would take a 1xx status for the final one. */
static int interim_ok(struct io *io)
{
	return behind_lighttpd(io);
}

/* "102 Processing": a long-poll's sign of life, so that the web server
 * finds out within seconds that its client left, then ends the request:
 * it closes our connection or pipe, and signals a CGI process. */
static int io_interim(struct io *io)
{
	static const char processing[] = "Status: 102 Processing\r\n\r\n";
	return io_write(io, processing, sizeof processing - 1) || io_flush(io);
}

/* Waits until some process commits, or until deadline (monotonic ms).
 * Returns 1 when a commit was seen, 0 on deadline, shutdown or when the
 * client went away. */
static int wait_commit(struct io *io, struct store *st, uint64_t *seen, int64_t deadline)
{
	while (!stopping && !io->failed) {
		uint64_t now_id = store_last_txnid(st);
		if (now_id != *seen) {
			*seen = now_id;
			return 1;
		}
		int64_t left = deadline - store_mono_ms();
		if (left <= 0)
			return 0;
		if (client_gone(io, left < LS_POLL_INTERVAL_MS ? (int)left : LS_POLL_INTERVAL_MS))
			return 0;
	}
	return 0;
}

/* wait_commit, counted in the node's metrics as a live read waiting (and
 * woken by a commit: any commit wakes a worker, which looks again). */
static int wait_counted(struct io *io, struct store *st, uint64_t *seen, int64_t deadline)
{
	metrics_gauge(MG_WAITING, 1);
	int woken = wait_commit(io, st, seen, deadline);
	metrics_gauge(MG_WAITING, -1);
	if (woken)
		metrics_add(MC_WAKEUPS, 1);
	return woken;
}

/* A long-poll's wait: until data comes, the deadline passes or the
 * client leaves; behind lighttpd, with a sign of life every
 * LS_FALLBACK_BEAT_MS (interim_ok). */
static void serve_longpoll(struct proto_ctx *ctx, struct io *io, const struct proto_request *req,
                           struct proto_live *live, struct proto_response *resp)
{
	uint64_t seen = store_last_txnid(ctx->store);
	int64_t deadline = proto_live_deadline(live, store_mono_ms(), ctx->cfg->long_poll_ms);
	int64_t ping = interim_ok(io) ? store_mono_ms() + LS_FALLBACK_BEAT_MS : INT64_MAX;

	/* Check once more: a commit may have landed before seen was read. */
	metrics_gauge(MG_LIVE_LONGPOLL, 1);
	proto_longpoll_poll(ctx, req, live, resp);
	while (resp->action == PROTO_WAIT) {
		if (wait_counted(io, ctx->store, &seen, ping < deadline ? ping : deadline)) {
			proto_longpoll_poll(ctx, req, live, resp);
			continue;
		}
		if (io->failed)
			return;
		if (!stopping && store_mono_ms() < deadline) {
			if (io_interim(io))
				return;
			ping = store_mono_ms() + LS_FALLBACK_BEAT_MS;
			continue;
		}
		proto_longpoll_timeout(ctx, req, live, resp);
	}
	metrics_gauge(MG_LIVE_LONGPOLL, -1);
	write_response(io, resp, 0);
}

/* When an SSE response writes its next comment line. A worker learns that
 * its client left only when a write fails (behind lighttpd: once lighttpd's
 * write to the client failed), and it serves nobody else meanwhile. Clients
 * tend to leave soon after events come (a page moves on, a reader got what
 * it waited for), so the first beat follows events closely and the next
 * ones come less and less often, up to every max_ms. */
#define FIRST_BEAT_MS 10
struct beat {
	int64_t next;
	int gap, max_ms;
};

static void beat_after_events(struct beat *b, int64_t now)
{
	b->gap = FIRST_BEAT_MS < b->max_ms ? FIRST_BEAT_MS : b->max_ms;
	b->next = now + b->gap;
}

static void beat_after_beat(struct beat *b, int64_t now)
{
	b->gap = b->gap < b->max_ms / 2 ? b->gap * 2 : b->max_ms;
	b->next = now + b->gap;
}

static int write_beat(struct io *io, struct buf *out)
{
	buf_reset(out);
	sse_comment(out, "keep-alive");
	return io_write(io, out->data, out->len) || io_flush(io);
}

static void serve_sse(struct proto_ctx *ctx, struct io *io, struct proto_live *live,
                      const struct proto_response *resp)
{
	struct buf out;
	int64_t start = store_mono_ms();
	int64_t end = proto_live_deadline(live, start, ctx->cfg->sse_lifetime_ms);
	struct beat beat = { 0, 0, ctx->cfg->heartbeat_ms < LS_FALLBACK_BEAT_MS
	                           ? ctx->cfg->heartbeat_ms : LS_FALLBACK_BEAT_MS };
	uint64_t seen = store_last_txnid(ctx->store);

	beat_after_events(&beat, start);
	write_head(io, resp, 0, 0);
	buf_init(&out);
	metrics_gauge(MG_LIVE_SSE, 1);
	while (!io->failed && !stopping) {
		buf_reset(&out);
		enum sse_step s = proto_sse_step(ctx, live, &out);
		if (out.len && (io_write(io, out.data, out.len) || io_flush(io)))
			break;
		if (out.len)
			beat_after_events(&beat, store_mono_ms());
		if (s == SSE_END)
			break;
		if (s == SSE_MORE)
			continue;
		if (store_mono_ms() >= end)
			break;
		if (wait_counted(io, ctx->store, &seen, beat.next < end ? beat.next : end))
			continue; /* a commit: read on */
		if (stopping || store_mono_ms() < beat.next)
			continue; /* the end, or the client left: the loop ends */
		if (write_beat(io, &out))
			break;
		beat_after_beat(&beat, store_mono_ms());
	}
	metrics_gauge(MG_LIVE_SSE, -1);
	buf_free(&out);
}

/* The request line and headers, from the web server's variables. */
static void read_request(struct io *io, struct proto_request *req, char *rebuilt, size_t cap)
{
	memset(req, 0, sizeof *req);
	const char *uri = param(io, "REQUEST_URI");
	req->method = proto_method(param(io, "REQUEST_METHOD"));
	if (!uri) {
		/* Not every CGI host sets REQUEST_URI: rebuild it. */
		const char *sn = param(io, "SCRIPT_NAME"), *pi = param(io, "PATH_INFO");
		snprintf(rebuilt, cap, "%s%s", sn ? sn : "", pi ? pi : "");
		uri = rebuilt;
	}
	/* The query comes from REQUEST_URI too: some servers normalise
	 * QUERY_STRING (lighttpd decodes %2F in it). */
	const char *q = strchr(uri, '?');
	req->target = uri;
	req->target_len = q ? (size_t)(q - uri) : strlen(uri);
	req->query = q ? q + 1 : param(io, "QUERY_STRING");
	if (!req->query)
		req->query = "";
	req->query_len = strlen(req->query);
	for (int i = 0; i < H__COUNT; i++)
		req->h[i] = param(io, proto_headers[i].cgi);
	/* set by the web server when it authenticated the request (a client's
	 * header would arrive as HTTP_REMOTE_USER) */
	req->remote_user = param(io, "REMOTE_USER");
	/* the client's address as the web server saw it */
	req->loopback = parse_is_loopback(param(io, "REMOTE_ADDR"));
	const char *https = param(io, "HTTPS");
	req->https = https && (!strcasecmp(https, "on") || !strcmp(https, "1"));
}

/* The body: read to the end (a chunked body may come with no length),
 * stopping at max_body. A declared length over the limit is refused
 * without reading. Returns -1 when out of memory. */
static int read_body(struct proto_ctx *ctx, struct io *io, struct buf *body, struct proto_request *req)
{
	const char *cl = param(io, "CONTENT_LENGTH");
	uint64_t declared = 0;
	int has_length = cl && *cl && num_decimal(cl, strlen(cl), 19, &declared) == 0;
	size_t limit = ctx->cfg->max_body;
	buf_reset(body);
	if (has_length && declared > limit) {
		req->body_too_large = 1;
	} else if (req->method == M_POST || req->method == M_PUT || (has_length && declared > 0)) {
		size_t want = io->fcgi || !has_length ? limit + 1 : (size_t)declared;
		while (body->len < want) {
			size_t chunk = want - body->len < 65536 ? want - body->len : 65536;
			if (buf_reserve(body, chunk) < 0)
				break;
			size_t got = io_read(io, body->data + body->len, chunk);
			if (got == 0)
				break;
			body->len += got;
		}
		if (body->failed)
			return -1;
		req->body_too_large = body->len > limit;
	}
	req->body = body->data ? body->data : "";
	req->body_len = body->len;
	return 0;
}

/* --- a process and its threads -------------------------------------------- */

/* What the threads of the process share. */
struct process {
	const struct config *cfg;
	pthread_mutex_t open_lock;    /* guards st and batch while they are NULL */
	struct store *st;
	struct batch *batch;
	struct auth *auth;            /* keys of auth = token; NULL: requests get 503 */
	const char *front;            /* "fcgi" or "cgi" */
	int live_cap;                 /* live reads this process serves (or admits) at most at once */
	atomic_int live_reads;        /* ... and serves or admits now */
	atomic_int slots_warned;      /* the slots file was found unusable (logged once) */
};

/* One thread (the only one of a CGI process). */
struct worker {
	struct process *pr;
	pthread_t tid;
	int started;
	atomic_int in_accept, done;   /* read by the main thread at shutdown */
	struct proto_ctx ctx;
	int ctx_store;                /* ctx is bound to the store */
	struct proto_live live;
	int slots;                    /* this thread's description of the slots file; -1: not open */
	int live_held;                /* the request is an admitted live read */
	int slot;                     /* ... holding this byte of the slots file, or SLOT_UNCOUNTED */
};

/* One request: on the heap, since a write queued to the writer threads
 * (batch.h) is answered by them, while this thread accepts the next. */
struct call {
	FCGX_Request request;
	struct io io;
	struct proto_request req;
	struct buf body;
	struct proto_response resp;
	char uri[4096];               /* REQUEST_URI rebuilt, where the server sets none */
};

static struct call *call_new(void)
{
	struct call *k = calloc(1, sizeof *k);
	if (!k)
		return NULL;
	FCGX_InitRequest(&k->request, 0, 0);
	buf_init(&k->body);
	proto_response_init(&k->resp);
	return k;
}

static void call_free(struct call *k)
{
	if (!k)
		return;
	buf_free(&k->body);
	proto_response_free(&k->resp);
	free(k);
}

/* --- live reads without lmstream-live: how many at once -------------------- */

/* Each live read served here holds a thread of a FastCGI process, or a
 * whole CGI process, for up to long_poll_timeout or sse_lifetime. Two
 * bounds leave room for every other request:
 *  - a FastCGI process keeps one thread free of live reads, however the web
 *    server spreads requests over processes;
 *  - max_live_reads, over every lmstream.fcgi process of the data directory,
 *    FastCGI threads and CGI processes alike. Slot i is a write lock on
 *    byte i of DATA_DIR/live-reads.lock, an open file description lock: the
 *    kernel drops it when its process ends, however it ends, so a crashed
 *    worker never keeps a slot. Each thread opens the file itself: the
 *    locks of one description do not exclude each other.
 * A live read beyond either gets 503 with Retry-After (E_LIVE_BUSY) before
 * the core runs: nothing is read, touched or changed. */
#define SLOTS_FILE "live-reads.lock"
#define SLOT_RETRY_MS 25   /* a full table is scanned again after this */
enum { SLOT_FULL = -1, SLOT_UNCOUNTED = -2 };

/* This thread's description of the slots file, opened at its first live
 * read; -1 when it cannot be. */
static int slots_fd(struct worker *w)
{
	const struct config *cfg = w->pr->cfg;
	char path[sizeof cfg->data_dir + sizeof SLOTS_FILE + 1];
	if (w->slots >= 0)
		return w->slots;
	snprintf(path, sizeof path, "%s/%s", cfg->data_dir, SLOTS_FILE);
	w->slots = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
	if (w->slots < 0 && !atomic_exchange(&w->pr->slots_warned, 1))
		log_warn("%s: %s: max_live_reads counts this process's live reads only", path, strerror(errno));
	return w->slots;
}

/* Locks a free byte of the slots file: its index, SLOT_FULL when all
 * max_live_reads bytes are locked, SLOT_UNCOUNTED when the file cannot be
 * used (the per-process bound still holds: the reads are correct without
 * the other). */
static int slot_take(struct worker *w)
{
	int n = w->pr->cfg->max_live_reads, fd = slots_fd(w);
	if (fd < 0)
		return SLOT_UNCOUNTED;
	/* Each process and thread starts at its own byte: fewer tries. */
	unsigned start = (unsigned)getpid() + (unsigned)((uintptr_t)w >> 6);
	for (int k = 0; k < n; k++) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
		                    .l_start = (off_t)((start + (unsigned)k) % (unsigned)n), .l_len = 1 };
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
			return (int)fl.l_start;
		if (errno != EAGAIN && errno != EACCES) {
			if (!atomic_exchange(&w->pr->slots_warned, 1))
				log_warn("locking %s: %s: max_live_reads counts this process's live reads only",
				         SLOTS_FILE, strerror(errno));
			return SLOT_UNCOUNTED;
		}
	}
	return SLOT_FULL;
}

static void slot_give(struct worker *w, int slot)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = slot, .l_len = 1 };
	fcntl(w->slots, F_OFD_SETLK, &fl);
}

/* Whether req is a GET with live=long-poll or live=sse, as the core will
 * parse it; one it refuses on parsing is no live read. */
static int is_live_read(const struct proto_ctx *ctx, const struct proto_request *req)
{
	struct req q;
	if (req->method != M_GET || !req->query_len)
		return 0;
	return req_parse(req, ctx->cfg, &q) == E_OK && q.live != LIVE_NONE;
}

/* Admits a live read (0; live_release lets it go) or refuses it (-1). Past
 * the process's bound it is refused at once; when every slot is taken it
 * waits up to LS_FALLBACK_BEAT_MS for one, since the slot of a reader that
 * left comes back within about a beat (serve_sse, serve_longpoll). */
static int live_admit(struct worker *w, struct io *io)
{
	struct process *pr = w->pr;
	if (pr->cfg->max_live_reads == 0)
		return -1;
	if (atomic_fetch_add(&pr->live_reads, 1) >= pr->live_cap) {
		atomic_fetch_sub(&pr->live_reads, 1);
		return -1;
	}
	int64_t deadline = store_mono_ms() + LS_FALLBACK_BEAT_MS;
	while ((w->slot = slot_take(w)) == SLOT_FULL) {
		if (stopping || store_mono_ms() >= deadline || client_gone(io, SLOT_RETRY_MS)) {
			atomic_fetch_sub(&pr->live_reads, 1);
			return -1;
		}
	}
	w->live_held = 1;
	return 0;
}

static void live_release(struct worker *w)
{
	if (!w->live_held)
		return;
	if (w->slot >= 0)
		slot_give(w, w->slot);
	atomic_fetch_sub(&w->pr->live_reads, 1);
	w->live_held = 0;
}

/* --- one request ------------------------------------------------------------ */

/* Logs an answer of the server's failure. */
static void log_failure(struct call *k)
{
	if (k->resp.status >= 500)
		log_warn("%s %.*s -> %d %s", param(&k->io, "REQUEST_METHOD") ? param(&k->io, "REQUEST_METHOD") : "-",
		         (int)k->req.target_len, k->req.target, k->resp.status,
		         k->resp.reason ? k->resp.reason : "");
}

/* On the flusher thread: a queued write's answer goes out, and the
 * request ends. */
static void on_written(void *owner)
{
	struct call *k = owner;
	char rest[256];
	write_response(&k->io, &k->resp, 0);
	log_failure(k);
	/* The request is read to its end (a body-less one has its empty
	 * record left: take it). So the connection can close at once, without
	 * libfcgi's lingering close (shutdown, then wait until the web server
	 * closes its end), which would hold this thread for a turn of the web
	 * server's event loop per answer. */
	while (FCGX_GetStr(rest, sizeof rest, k->request.in) > 0)
		;
	FCGX_Detach(&k->request);
	FCGX_Finish_r(&k->request);
	call_free(k);
}

/* The core's answer, carried out: at once, after a long-poll's wait, or as
 * an event stream; or later, by the writer threads. Returns 1 when the
 * call is theirs. */
static int respond(struct proto_ctx *ctx, struct call *k, struct proto_live *live)
{
	struct io *io = &k->io;
	switch (proto_handle(ctx, &k->req, &k->resp, live)) {
	case PROTO_QUEUED:
		return 1;
	case PROTO_DONE:
		write_response(io, &k->resp, k->req.method == M_HEAD);
		break;
	case PROTO_WAIT:
		serve_longpoll(ctx, io, &k->req, live, &k->resp);
		break;
	case PROTO_SSE:
		serve_sse(ctx, io, live, &k->resp);
		break;
	}
	proto_live_clear(live);
	return 0;
}

/* One request: variables and body in, response out. What the front
 * refuses itself is refused before the core runs. Returns 1 when the
 * writer threads answer it (the call is theirs). */
static int serve(struct worker *w, struct call *k)
{
	struct io *io = &k->io;
	enum proto_err refused = E_OK;
	read_request(io, &k->req, k->uri, sizeof k->uri);
	k->req.owner = k;
	if (read_body(&w->ctx, io, &k->body, &k->req))
		refused = E_NO_MEMORY;
	else if (!w->ctx_store)
		refused = E_STORAGE_UNAVAILABLE;
	else if (is_live_read(&w->ctx, &k->req) && live_admit(w, io))
		refused = E_LIVE_BUSY;
	if (refused) {
		proto_fail(&k->resp, refused);
		write_response(io, &k->resp, k->req.method == M_HEAD);
	} else if (respond(&w->ctx, k, &w->live)) {
		return 1;
	}
	live_release(w);
	log_failure(k);
	return 0;
}

/* Whether the last commit found no lmstream-live to tell: then this
 * process delivers the subscriptions its commits make due. */
static atomic_int no_daemon;
static struct process *the_process;

/* A wake event a deliverer of this process appended: its readers are
 * lmstream-live's, if one runs. */
static void woke_notify(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	notify_send(stream_id, txnid);
}

/* Tell lmstream-live (if it runs) which stream changed. Without it, a
 * commit that made a subscription due starts this process's deliverer (a
 * thread of a FastCGI process; a CGI process's, after its answer). */
static void announce(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	int alone = !notify_send(stream_id, txnid);
	atomic_store(&no_daemon, alone);
	if (alone && subs_marked() && !FCGX_IsCGI() && the_process && the_process->st) {
		subs_unmark();
		if (deliver_thread_start(the_process->st, the_process->cfg, woke_notify, NULL) == 0)
			deliver_kick();
	}
}

/* A CGI process that made a subscription due, with no lmstream-live to
 * deliver it: after the answer is out and the store closed, a detached
 * child (the web server ends the CGI process itself once it answered)
 * makes one bounded attempt. Retries are then lmstreamctl deliver's, from
 * cron. */
static void cgi_deliver_detached(const struct config *cfg)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid != 0)
		return;
	setsid();
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	struct store *st;
	if (store_open(&st, cfg) == ST_OK) {
		deliver_run(st, cfg, DELIVER_CGI_BUDGET_MS, woke_notify, NULL, NULL);
		store_close(st);
	}
	_exit(0);
}

/* --- threads of a FastCGI process ------------------------------------------ */

/* Takes this process's place in the node's counters, beside the store it
 * has just opened (metrics = on). */
static void count_in(struct process *pr)
{
	char err[700];
	if (pr->cfg->metrics &&
	    metrics_attach(pr->cfg->data_dir, FCGX_IsCGI() ? MF_CGI : MF_FCGI, 1, err, sizeof err))
		log_warn("metrics: %s", err);
}

/* Opens the store once for the process; a failed open is tried again at
 * the next request (the data directory may appear later). Binds the
 * thread's protocol context to it. Returns whether the context is bound. */
static int worker_bind(struct worker *w)
{
	struct process *pr = w->pr;
	if (w->ctx_store)
		return 1;
	pthread_mutex_lock(&pr->open_lock);
	if (!pr->st && store_open(&pr->st, pr->cfg) == ST_OK) {
		/* A CGI process serves one request: no writer threads. */
		pr->batch = FCGX_IsCGI() ? NULL : batch_new(pr->st, LS_BATCH_MAX_JOBS, LS_BATCH_MAX_BYTES);
		count_in(pr);
	}
	struct store *st = pr->st;
	struct batch *b = pr->batch;
	pthread_mutex_unlock(&pr->open_lock);
	if (!st)
		return 0;
	proto_fini(&w->ctx);
	proto_init(&w->ctx, pr->cfg, st);
	w->ctx.on_commit = announce;
	w->ctx.batch = b;
	w->ctx.on_written = on_written; /* without a batch (CGI) nothing is queued */
	w->ctx.auth = pr->auth;
	w->ctx.front = pr->front;
	w->ctx_store = 1;
	return 1;
}

static void worker_setup(struct worker *w)
{
	proto_init(&w->ctx, w->pr->cfg, NULL);
	w->ctx_store = 0;
	memset(&w->live, 0, sizeof w->live);
	w->slots = -1;
	w->live_held = 0;
	worker_bind(w);
}

static void worker_cleanup(struct worker *w)
{
	if (w->slots >= 0)
		close(w->slots);
	proto_fini(&w->ctx);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct call *k = NULL;
	worker_setup(w);
	while (!stopping) {
		if (!k && !(k = call_new())) {
			log_error("out of memory");
			sleep_ms(100);
			continue;
		}
		/* Threads accept at once: the kernel hands each connection to
		 * one of them (libfcgi keeps no shared state in accept). */
		w->in_accept = 1;
		int rc = stopping ? -1 : FCGX_Accept_r(&k->request);
		w->in_accept = 0;
		if (rc < 0)
			break;
		worker_bind(w);
		k->io = (struct io){ &k->request, 0 };
		if (serve(w, k)) {
			k = NULL; /* the writer threads answer it */
			continue;
		}
		FCGX_Finish_r(&k->request);
		/* Do not keep a large body's memory between requests. */
		if (k->body.cap > (1u << 20))
			buf_free(&k->body);
	}
	call_free(k);
	worker_cleanup(w);
	w->done = 1;
	return NULL;
}

/* Starts the threads and waits for a stop signal (they cannot take it:
 * they block it), then for each thread to finish its request. */
static int run_threads(struct process *pr)
{
	int n = pr->cfg->worker_threads;
	struct worker *ws = calloc((size_t)n, sizeof *ws);
	if (!ws) {
		log_error("out of memory");
		return 1;
	}
	sigset_t stop, old;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	int started = 0;
	for (int i = 0; i < n; i++) {
		ws[i].pr = pr;
		if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) == 0) {
			ws[i].started = 1;
			started++;
		}
	}
	if (!started) {
		log_error("cannot start any thread");
		free(ws);
		return 1;
	}
	/* Meanwhile, write the TTL touches of reads that no write took along. */
	while (!stopping) {
		struct timespec tick = { 0, LS_TTL_TOUCH_FLUSH_MS * 1000000L };
		ppoll(NULL, 0, &tick, &old);
		pthread_mutex_lock(&pr->open_lock);
		struct store *st = pr->st;
		pthread_mutex_unlock(&pr->open_lock);
		if (st && !stopping)
			store_touch_flush(st, 0);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* A thread blocked in accept() leaves it when a signal interrupts it
	 * (libfcgi gives up once shutdown is pending). Keep interrupting: a
	 * thread may be just about to enter accept(). */
	for (;;) {
		int left = 0;
		for (int i = 0; i < n; i++) {
			if (!ws[i].started || ws[i].done)
				continue;
			left++;
			if (ws[i].in_accept)
				pthread_kill(ws[i].tid, SIGUSR2);
		}
		if (!left)
			break;
		sleep_ms(10);
	}
	for (int i = 0; i < n; i++)
		if (ws[i].started)
			pthread_join(ws[i].tid, NULL);
	free(ws);
	return 0;
}

/* A CGI process: its one request. */
static int serve_cgi(struct process *pr)
{
	struct worker w = { .pr = pr };
	struct call *k = call_new();
	if (!k) {
		log_error("out of memory");
		return 1;
	}
	worker_setup(&w);
	k->io = (struct io){ NULL, 0 };
	serve(&w, k);
	fflush(stdout);
	call_free(k);
	worker_cleanup(&w);
	return 0;
}

/* lmstream.fcgi --deliver (lmstream.cgi --deliver from a shared host's
 * cron): what is due now, then exit. */
static int deliver_once(const struct config *cfg)
{
	struct store *st;
	if (store_open(&st, cfg) != ST_OK)
		return 1;
	notify_sender_init(cfg);
	int n = deliver_run(st, cfg, 50000, woke_notify, NULL, NULL);
	store_close(st);
	if (n < 0)
		return 1;
	log_info("--deliver: %d webhook(s) sent", n);
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: lmstream.fcgi [--config FILE] [--data DIR] [--set key=value]... [--deliver]\n"
	      "Runs as a FastCGI worker when started with a listening socket on fd 0\n"
	      "(lighttpd mod_fastcgi, Apache mod_fcgid, spawn-fcgi), otherwise as a CGI program.\n"
	      "--deliver: sends the subscription deliveries due now (for at most 50 s) and\n"
	      "exits; from cron where no lmstream-live runs (shared hosting).\n"
	      "Environment: LMSTREAM_CONFIG=FILE, LMSTREAM_<KEY>=value for any config key.\n", f);
}

#ifdef LS_CONFIG_BESIDE
/* lmstream.cgi, the shared-hosting build: with no --config and no
 * LMSTREAM_CONFIG (suexec clears the environment; .htaccess cannot be
 * relied on to set it), the configuration is LS_CONFIG_BESIDE under the
 * program's own directory. */
static void config_beside(void)
{
	char exe[4096] = "", path[4096 + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	const char *script = getenv("SCRIPT_FILENAME");
	if (n > 0)
		exe[n] = '\0';
	else if (script && strlen(script) < sizeof exe)
		snprintf(exe, sizeof exe, "%s", script);
	char *slash = strrchr(exe, '/');
	if (slash)
		slash[1] = '\0';
	else
		exe[0] = '\0'; /* no path to go by: relative to the working directory */
	snprintf(path, sizeof path, "%s%s", exe, LS_CONFIG_BESIDE);
	config_fallback(path);
}
#endif

/* A FastCGI process ends with the web server that started it, even one
 * killed with SIGKILL (which cannot stop its workers): SIGTERM then stops it
 * as the web server's own would. Returns the parent followed, or 0. */
static pid_t follow_parent(const struct config *cfg)
{
	pid_t parent = getppid();
	if (FCGX_IsCGI() || !cfg->exit_with_parent)
		return 0;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		stopping = 1; /* gone already */
	return parent;
}

int main(int argc, char **argv)
{
	struct config cfg;

	/* Files and directories are created 0660/0770: the daemon and the web
	 * server's workers run as two users of one group and share the store.
	 * A web server's umask of 022 would make them 0640 and lock one out. */
	umask(007);
	log_init("lmstream.fcgi", getenv("LMSTREAM_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO);
#ifdef LS_CONFIG_BESIDE
	config_beside();
#endif
	static const char *const extra[] = { "--deliver", NULL };
	int status = config_main(&cfg, argc, argv, "lmstream.fcgi", usage, extra);
	if (status == 2 && argc == 1 && getenv("GATEWAY_INTERFACE")) {
		/* A CGI run with a configuration it cannot use: say so to the
		 * client, not only to the web server's error log (which has the
		 * reason), instead of the server's "premature end of headers". */
		fputs("Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
		      "lmstream cannot read its configuration; the web server's error log says why\n", stdout);
		return 0;
	}
	if (status >= 0)
		return status;
	/* From here on the configuration's log_level (LMSTREAM_DEBUG: debug). */
	log_init("lmstream.fcgi", getenv("LMSTREAM_DEBUG") ? LOG_LVL_DEBUG : cfg.log_level);

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--deliver"))
			return deliver_once(&cfg);

	if (FCGX_Init() != 0) {
		log_error("FCGX_Init failed");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_wake;
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	pid_t parent = follow_parent(&cfg);
	struct process pr = { .cfg = &cfg, .front = FCGX_IsCGI() ? "cgi" : "fcgi" };
	the_process = &pr;
	/* One thread always free for everything else (mod_fcgid, which runs one
	 * thread, gives a busy process nothing); a CGI process serves one request. */
	pr.live_cap = FCGX_IsCGI() || cfg.worker_threads < 2 ? 1 : cfg.worker_threads - 1;
	pthread_mutex_init(&pr.open_lock, NULL);
	if (cfg.auth == AUTH_TOKEN) {
		/* Without its keys the process still answers: 503, never open. */
		char err[600];
		if (auth_open(&pr.auth, &cfg, err, sizeof err))
			log_error("auth = token: %s", err);
	}
	notify_sender_init(&cfg);

	int rc = FCGX_IsCGI() ? serve_cgi(&pr) : run_threads(&pr);
	if (parent && getppid() != parent)
		log_info("the process that started this one (pid %ld) has ended: stopped (exit_with_parent = on;"
		         " under spawn-fcgi set it off)", (long)parent);
	deliver_thread_stop();
	batch_free(pr.batch); /* answers the writes still queued */
	metrics_detach();
	auth_close(pr.auth);
	store_close(pr.st);
	if (FCGX_IsCGI() && subs_marked() && atomic_load(&no_daemon))
		cgi_deliver_detached(&cfg);
	return rc;
}
