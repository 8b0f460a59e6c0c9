/*
 * sse-load: hold N concurrent SSE subscriptions and measure delivery.
 *
 * A single-threaded epoll client for the fan-out benchmark (tests/bench/fanout).
 * It opens N HTTP/1.1 GET requests to one URL, spreading them over the source
 * addresses 127.0.0.A, 127.0.0.A+1, ... (--per-source connections each) so that
 * more connections than the ephemeral port range allows can reach one server
 * port. It raises its own RLIMIT_NOFILE (one process holds at most the hard
 * limit: run several processes with --index-offset for more).
 *
 * Every response body is decoded (chunked or not) and parsed as SSE, line by
 * line, across arbitrary read boundaries. Each "data:" line is searched for
 * "i":<n> / "t":<microseconds> pairs (message id, send time on CLOCK_REALTIME),
 * whatever the framing around them (a JSON array of messages, one bare object,
 * ...). For each message it records the delivery latency (receive time - t) in
 * a log-linear histogram, keeps each message's latest delivery (its fan-out
 * time: how long it took to reach every subscriber), and tracks, per subscriber, which ids arrived (a
 * sliding 8192-id window), to count duplicates and losses.
 *
 * Phases are driven by signals, so that a script can measure idle memory, a
 * fixed-rate phase and a saturation phase with the same subscribers:
 *   SIGUSR1  reset the phase counters; the first id of the phase is read from
 *            the --control file ("first=N")
 *   SIGUSR2  write a report of the phase to --report (atomically; the last id
 *            published is read from the --control file, "last=N")
 *   SIGINT, SIGTERM, --max-time  write a final report (if --report) and exit
 * A status line is rewritten to --status every second (connected count, ...).
 *
 *   sse-load --merge REPORT...   prints one combined report of several
 *                                processes (histograms are merged)
 *
 * Long-poll subscribers (--poll ds | etag) instead of SSE: each connection
 * loops on keep-alive GETs, reads each whole response, scans its body for the
 * same "i"/"t" pairs, and asks again at once:
 *   ds    Durable Streams: URL + "&offset=X" (first -1, then each response's
 *         Stream-Next-Offset) and "&cursor=C" (its Stream-Cursor); 200 carries
 *         messages, 204 is a timeout with no body;
 *   etag  Nchan (nchan_subscriber longpoll): If-Modified-Since / If-None-Match
 *         from the previous response's Last-Modified / Etag.
 * A connection the server closes between responses is reopened and asks again
 * from the same position (counted as reconnects, not as drops). A long-poll
 * subscriber counts as connected once its first request is written.
 *
 * Build: cc -O2 -o sse-load sse-load.c   (no dependencies)
 * Only for loopback benchmarks; every run is bounded by --max-time.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include "bench.h" /* also the libc, socket and time headers both clients use */

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ---- latency histogram (log-linear, < 1% relative error) --------------- */

#define HSUB 7 /* 128 sub-buckets per power of two */
#define HBUCKETS ((64 - HSUB) << HSUB)

static int hidx(uint64_t v)
{
	if (v < (1u << HSUB))
		return (int)v;
	int e = 63 - __builtin_clzll(v);
	return ((e - HSUB + 1) << HSUB) + (int)((v >> (e - HSUB)) & ((1u << HSUB) - 1));
}

/* value in the middle of bucket i */
static uint64_t hval(int i)
{
	if (i < (1 << HSUB))
		return (uint64_t)i;
	int e = (i >> HSUB) + HSUB - 1;
	uint64_t m = (uint64_t)(i & ((1 << HSUB) - 1));
	uint64_t lo = ((1ull << HSUB) + m) << (e - HSUB);
	return lo + ((1ull << (e - HSUB)) >> 1);
}

struct stats {
	uint64_t hist[HBUCKETS];
	uint64_t count, max;     /* latency samples (first deliveries), max in us */
	uint64_t deliveries;     /* every message seen, duplicates included */
	uint64_t dup, stale;     /* duplicates; ids from before the phase */
	uint64_t lost;           /* expected - received, over subscribers held */
	uint64_t expected;       /* ids expected per subscriber */
	uint64_t subs;           /* subscribers the losses were counted over */
	int64_t t_reset, t_first, t_last, t_report; /* CLOCK_REALTIME us */
	uint64_t connected, failed, dropped, http_err, pending, target;
	uint64_t bytes, events;
};

static uint64_t hist_pct(const uint64_t *h, uint64_t n, double p)
{
	if (!n)
		return 0;
	uint64_t want = (uint64_t)(p * (double)n + 0.5), acc = 0;
	if (want < 1)
		want = 1;
	for (int i = 0; i < HBUCKETS; i++) {
		acc += h[i];
		if (acc >= want)
			return hval(i);
	}
	return 0;
}

/* ---- connections --------------------------------------------------------- */

enum { S_IDLE, S_CONNECTING, S_HEADERS, S_STREAM, S_CLOSED, S_FAILED };
enum { C_SIZE, C_EXT, C_DATA, C_DATA_END };
#define WIN_WORDS 128 /* 8192-id window: publishers on several connections reorder ids */

struct conn {
	int fd;
	uint8_t state, chunked, cstate, attempts;
	uint8_t have_i, have_t, started;
	uint32_t lblen, lbcap;
	char *lb;                 /* partial line (or headers) */
	uint64_t chunk_left;
	int64_t since_ms;         /* start of the current attempt */
	int64_t pend_i, pend_t;
	uint64_t base;            /* ids < base are behind the window */
	uint64_t win[WIN_WORDS];  /* ids base .. base+8191 seen */
	uint64_t uniq;            /* distinct ids >= phase_first seen in the phase */
	struct pollpos *pp;       /* --poll: where this subscriber continues */
};

/* --poll: one subscriber's position and the response being read */
struct pollpos {
	char off[128], cur[64], lm[64], etag[96];
	int64_t clen;             /* Content-Length of the response, -1 if none */
	uint8_t held, keep, status_ok, until_eof, fails;
};
enum { P_NONE, P_DS, P_ETAG };
static int poll_mode = P_NONE;
static uint64_t total_reconnects, total_polls;

static struct conn *conns;
static int nconn;
static int epfd;
static struct sockaddr_in dst;
static char host_hdr[300], path_q[4096];
static char request[4600];
static int request_len;

static int index_offset, src_first = 1, per_source = 20000;
static double connect_rate = 2000;
static int max_pending = 256;
static int connect_timeout_ms = 15000, retries = 3;
static const char *status_path, *report_path, *control_path;
static double max_time = 1800;

static struct stats st; /* current phase */

/* Per message of the phase (the first MSGS ids): the latest delivery, i.e.
 * the time the message took to reach every subscriber of this process. */
#define MSGS 65536
static uint32_t msg_max[MSGS], msg_cnt[MSGS];
static uint64_t phase_first = 0; /* count ids >= this as the phase's */
static uint64_t total_dropped, total_failed, total_http_err, total_bytes, total_events;
static int n_connected, n_pending;
static volatile sig_atomic_t sig_reset, sig_report, sig_stop;

static void on_signal(int s)
{
	if (s == SIGUSR1)
		sig_reset = 1;
	else if (s == SIGUSR2)
		sig_report = 1;
	else
		sig_stop = 1;
}

static void die(const char *m)
{
	fprintf(stderr, "sse-load: %s\n", m);
	exit(2);
}

/* ---- per-message bookkeeping ---------------------------------------------- */

static void on_message(struct conn *c, uint64_t id, int64_t t, int64_t rx)
{
	st.deliveries++;
	if (!st.t_first)
		st.t_first = rx;
	st.t_last = rx;
	if (!c->started) {
		c->started = 1;
		c->base = id >= 1024 ? (id - 1024) & ~(uint64_t)63 : 0;
	}
	if (id < c->base) {
		st.dup++; /* far behind the window: seen (or given up) long ago */
		return;
	}
	uint64_t span = 64 * WIN_WORDS;
	if (id >= c->base + span) {
		uint64_t shift = (id - c->base - span) / 64 + 1; /* words */
		if (shift >= WIN_WORDS) {
			memset(c->win, 0, sizeof c->win);
		} else {
			memmove(c->win, c->win + shift, (WIN_WORDS - shift) * sizeof c->win[0]);
			memset(c->win + (WIN_WORDS - shift), 0, shift * sizeof c->win[0]);
		}
		c->base += shift * 64;
	}
	uint64_t off = id - c->base;
	uint64_t bit = 1ull << (off & 63);
	if (c->win[off / 64] & bit) {
		st.dup++;
		return;
	}
	c->win[off / 64] |= bit;
	if (id < phase_first) {
		st.stale++;
		return;
	}
	c->uniq++;
	uint64_t lat = rx > t ? (uint64_t)(rx - t) : 0;
	if (lat > (1ull << 40))
		lat = 1ull << 40; /* nonsense send time: keep it in the histogram */
	if (id - phase_first < MSGS) {
		uint64_t m = id - phase_first;
		if (lat > msg_max[m])
			msg_max[m] = lat > 0xffffffffu ? 0xffffffffu : (uint32_t)lat;
		msg_cnt[m]++;
	}
	st.hist[hidx(lat)]++;
	st.count++;
	if (lat > st.max)
		st.max = lat;
}

/* Find "i":N and "t":N pairs in one data line (any JSON framing around them). */
static void scan_data(struct conn *c, const char *p, size_t n, int64_t rx)
{
	const char *end = p + n;
	while (p < end) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q || end - q < 4)
			return;
		char k = q[1];
		if ((k == 'i' || k == 't') && q[2] == '"') {
			const char *v = q + 3;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			if (v < end && *v == ':') {
				v++;
				while (v < end && (*v == ' ' || *v == '\t'))
					v++;
				if (v < end && *v >= '0' && *v <= '9') {
					uint64_t x = 0;
					while (v < end && *v >= '0' && *v <= '9')
						x = x * 10 + (uint64_t)(*v++ - '0');
					if (k == 'i') {
						c->pend_i = (int64_t)x;
						c->have_i = 1;
					} else {
						c->pend_t = (int64_t)x;
						c->have_t = 1;
					}
					if (c->have_i && c->have_t) {
						on_message(c, (uint64_t)c->pend_i, c->pend_t, rx);
						c->have_i = c->have_t = 0;
					}
					p = v;
					continue;
				}
			}
		}
		p = q + 1;
	}
}

static void sse_line(struct conn *c, const char *p, size_t n, int64_t rx)
{
	if (n && p[n - 1] == '\r')
		n--;
	if (n == 0) { /* end of an event */
		c->have_i = c->have_t = 0;
		return;
	}
	if (n >= 5 && !memcmp(p, "data:", 5)) {
		st.events++;
		total_events++;
		scan_data(c, p + 5, n - 5, rx);
	}
	/* "event:", "id:", "retry:" and ":" comments carry nothing we measure */
}

static void lb_append(struct conn *c, const char *p, size_t n)
{
	if (c->lblen + n > c->lbcap) {
		uint32_t cap = c->lbcap ? c->lbcap : 256;
		while (cap < c->lblen + n)
			cap *= 2;
		char *nb = realloc(c->lb, cap);
		if (!nb)
			die("out of memory");
		c->lb = nb;
		c->lbcap = cap;
	}
	memcpy(c->lb + c->lblen, p, n);
	c->lblen += (uint32_t)n;
}

static void lb_free(struct conn *c)
{
	free(c->lb);
	c->lb = NULL;
	c->lblen = c->lbcap = 0;
}

/* SSE body bytes, split into lines across calls */
static void sse_feed(struct conn *c, const char *p, size_t n, int64_t rx)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		if (!nl) {
			lb_append(c, p, n);
			return;
		}
		size_t len = (size_t)(nl - p);
		if (c->lblen) {
			lb_append(c, p, len);
			sse_line(c, c->lb, c->lblen, rx);
			c->lblen = 0;
		} else {
			sse_line(c, p, len, rx);
		}
		p = nl + 1;
		n -= len + 1;
	}
	if (!c->lblen && c->lbcap > 4096)
		lb_free(c); /* do not keep a big buffer per idle subscriber */
}

/* Response body bytes: undo chunked transfer coding if any. Returns -1 at
 * the end of the body. */
static void sink(struct conn *c, const char *p, size_t n, int64_t rx)
{
	if (poll_mode)
		lb_append(c, p, n); /* a long-poll body is scanned once complete */
	else
		sse_feed(c, p, n, rx);
}

static int body_feed(struct conn *c, const char *p, size_t n, int64_t rx)
{
	if (!c->chunked) {
		sink(c, p, n, rx);
		return 0;
	}
	while (n) {
		switch (c->cstate) {
		case C_SIZE: {
			char ch = *p++;
			n--;
			int d = -1;
			if (ch >= '0' && ch <= '9')
				d = ch - '0';
			else if (ch >= 'a' && ch <= 'f')
				d = ch - 'a' + 10;
			else if (ch >= 'A' && ch <= 'F')
				d = ch - 'A' + 10;
			if (d >= 0) {
				c->chunk_left = c->chunk_left * 16 + (uint64_t)d;
			} else if (ch == '\n') {
				if (c->chunk_left == 0)
					return -1;
				c->cstate = C_DATA;
			} else {
				c->cstate = C_EXT; /* ';' extension or '\r' */
			}
			break;
		}
		case C_EXT: {
			const char *nl = memchr(p, '\n', n);
			if (!nl)
				return 0;
			n -= (size_t)(nl + 1 - p);
			p = nl + 1;
			if (c->chunk_left == 0)
				return -1;
			c->cstate = C_DATA;
			break;
		}
		case C_DATA: {
			size_t k = n < c->chunk_left ? n : (size_t)c->chunk_left;
			sink(c, p, k, rx);
			p += k;
			n -= k;
			c->chunk_left -= k;
			if (!c->chunk_left)
				c->cstate = C_DATA_END;
			break;
		}
		case C_DATA_END: {
			const char *nl = memchr(p, '\n', n);
			if (!nl)
				return 0;
			n -= (size_t)(nl + 1 - p);
			p = nl + 1;
			c->cstate = C_SIZE;
			c->chunk_left = 0;
			break;
		}
		}
	}
	return 0;
}

/* ---- connection life cycle ----------------------------------------------- */

static int opened_total; /* connections started (first attempts) */
static int retry_queue_len;
static int *retry_queue;

static void conn_close(struct conn *c, int new_state)
{
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	if (c->state == S_STREAM)
		n_connected--;
	else if (c->state == S_CONNECTING || c->state == S_HEADERS)
		n_pending--;
	c->state = (uint8_t)new_state;
	lb_free(c);
}

static void conn_fail(struct conn *c, int http_error)
{
	int was_stream = c->state == S_STREAM;
	conn_close(c, S_FAILED);
	if (was_stream) {
		c->state = S_CLOSED;
		total_dropped++;
		st.dropped++;
		return;
	}
	if (http_error)
		total_http_err++;
	if (c->attempts < retries) {
		c->state = S_IDLE;
		retry_queue[retry_queue_len++] = (int)(c - conns);
	} else {
		total_failed++;
	}
}

/* a non-blocking socket from this connection's source address, connecting:
 * 0, or -1 (nothing left open) */
static int open_socket(struct conn *c)
{
	int idx = (int)(c - conns);
	c->since_ms = mono_ms();
	c->chunked = 0;
	c->cstate = C_SIZE;
	c->chunk_left = 0;
	c->have_i = c->have_t = 0;
	int fd = tcp_socket(SOCK_NONBLOCK);
	if (fd < 0) {
		fprintf(stderr, "sse-load: socket: %s\n", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	struct sockaddr_in src = { .sin_family = AF_INET };
	long g = (long)index_offset + idx;
	long a = src_first + g / per_source;
	if (a > 254)
		a = 1 + (a - 1) % 254;
	src.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)a);
	if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
		fprintf(stderr, "sse-load: bind 127.0.0.%ld: %s\n", a, strerror(errno));
		close(fd);
		return -1;
	}
	c->fd = fd;
	c->state = S_CONNECTING;
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)idx };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
	return 0;
}

static void conn_start(struct conn *c)
{
	c->attempts++;
	if (open_socket(c) < 0) {
		c->state = S_FAILED;
		total_failed++;
		return;
	}
	n_pending++;
	if (tcp_connect(c->fd, &dst) < 0)
		conn_fail(c, 0);
}

/* headers complete in c->lb[0..hlen): check the status, find the transfer coding */
static int parse_headers(struct conn *c, size_t hlen)
{
	if (http_status(c->lb, hlen, NULL) != 200)
		return -1;
	const char *name, *val;
	size_t nlen, vlen;
	for (const char *h = c->lb; (h = http_next_header(h, c->lb + hlen, &name, &nlen, &val, &vlen));)
		if (header_is(name, nlen, "transfer-encoding") && value_has(val, vlen, "chunked"))
			c->chunked = 1;
	return 0;
}

static char rbuf[1 << 16];

static void on_readable(struct conn *c)
{
	for (int rounds = 0; rounds < 8; rounds++) {
		ssize_t r = read(c->fd, rbuf, sizeof rbuf);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_fail(c, 0);
			return;
		}
		if (r == 0) {
			conn_fail(c, 0);
			return;
		}
		int64_t rx = now_us();
		total_bytes += (uint64_t)r;
		st.bytes += (uint64_t)r;
		const char *p = rbuf;
		size_t n = (size_t)r;
		if (c->state == S_HEADERS) {
			size_t old = c->lblen;
			lb_append(c, p, n);
			char *e = memmem(c->lb, c->lblen, "\r\n\r\n", 4);
			if (!e) {
				if (c->lblen > 16384)
					conn_fail(c, 1);
				return;
			}
			size_t hlen = (size_t)(e - c->lb) + 4;
			if (parse_headers(c, hlen) < 0) {
				if (total_http_err < 5)
					fprintf(stderr, "sse-load: bad response: %.*s\n",
					        (int)strcspn(c->lb, "\r\n"), c->lb);
				conn_fail(c, 1);
				return;
			}
			size_t used = hlen - old; /* bytes of this read that were headers */
			p += used;
			n -= used;
			c->lblen = 0;
			lb_free(c);
			c->state = S_STREAM;
			n_pending--;
			n_connected++;
		}
		if (n && body_feed(c, p, n, rx) < 0) {
			conn_fail(c, 0);
			return;
		}
		if ((size_t)r < sizeof rbuf)
			return;
	}
}

/* ---- long-poll subscribers (--poll) --------------------------------------- */

static void poll_reopen(struct conn *c, int failed);

/* append v to the request, percent-encoding what is not unreserved */
static int url_enc(char *out, size_t cap, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t k = 0;
	for (; *v && k + 4 < cap; v++) {
		unsigned char ch = (unsigned char)*v;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			out[k++] = (char)ch;
		} else {
			out[k++] = '%';
			out[k++] = hex[ch >> 4];
			out[k++] = hex[ch & 15];
		}
	}
	out[k] = '\0';
	return (int)k;
}

/* write the next long-poll request of c (its socket is connected) */
static void poll_send(struct conn *c)
{
	struct pollpos *pp = c->pp;
	char req[4096 + 600], off[400], cur[200];
	int n;
	if (poll_mode == P_DS) {
		url_enc(off, sizeof off, pp->off);
		url_enc(cur, sizeof cur, pp->cur);
		n = snprintf(req, sizeof req,
		             "GET %s%soffset=%s%s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lmstream-sse-load\r\n\r\n",
		             path_q, strchr(path_q, '?') ? "&" : "?", off, *cur ? "&cursor=" : "", cur, host_hdr);
	} else {
		n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lmstream-sse-load\r\n%s%s%s%s%s%s\r\n",
		             path_q, host_hdr, *pp->lm ? "If-Modified-Since: " : "", pp->lm, *pp->lm ? "\r\n" : "",
		             *pp->etag ? "If-None-Match: " : "", pp->etag, *pp->etag ? "\r\n" : "");
	}
	if (n <= 0 || n >= (int)sizeof req || write_all(c->fd, req, (size_t)n) < 0) {
		poll_reopen(c, 1);
		return;
	}
	if (!pp->held) {
		pp->held = 1;
		n_pending--;
		n_connected++;
	}
	c->state = S_HEADERS;
	c->lblen = 0;
	c->chunked = 0;
	c->cstate = C_SIZE;
	c->chunk_left = 0;
	c->since_ms = mono_ms();
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)(c - conns) };
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* close c's socket and connect again (the next request asks from the same
 * position); after `retries` failures in a row the subscriber is dropped */
static void poll_reopen(struct conn *c, int failed)
{
	struct pollpos *pp = c->pp;
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	c->lblen = 0;
	if (!pp->held) { /* not yet in the loop: the ordinary retry path */
		c->state = S_HEADERS;
		conn_fail(c, 0);
		return;
	}
	total_reconnects++;
	if (failed && ++pp->fails > retries) {
		pp->held = 0;
		n_connected--;
		total_dropped++;
		st.dropped++;
		c->state = S_CLOSED;
		lb_free(c);
		return;
	}
	if (open_socket(c) < 0 || tcp_connect(c->fd, &dst) < 0)
		poll_reopen(c, 1);
}

/* a header value into a field of cap bytes (cut short if need be) */
static void copy_value(char *out, size_t cap, const char *v, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

/* headers of a long-poll response in c->lb[0..hlen): status, framing, position */
static int poll_headers(struct conn *c, size_t hlen)
{
	struct pollpos *pp = c->pp;
	int minor, status = http_status(c->lb, hlen, &minor);
	if (status < 0 || minor < 0) /* (HTTP/1.x only) */
		return -1;
	pp->clen = -1;
	pp->keep = minor >= 1;
	pp->until_eof = 0;
	pp->status_ok = status == 200;
	if (status != 200 && status != 204 && status != 304)
		return -1;
	const char *name, *v;
	size_t nlen, vl;
	for (const char *h = c->lb; (h = http_next_header(h, c->lb + hlen, &name, &nlen, &v, &vl));) {
		if (header_is(name, nlen, "content-length"))
			pp->clen = vl ? atoll(v) : 0;
		else if (header_is(name, nlen, "transfer-encoding") && value_has(v, vl, "chunked"))
			c->chunked = 1;
		else if (header_is(name, nlen, "connection") && value_has(v, vl, "close"))
			pp->keep = 0;
		else if (header_is(name, nlen, "stream-next-offset"))
			copy_value(pp->off, sizeof pp->off, v, vl);
		else if (header_is(name, nlen, "stream-cursor"))
			copy_value(pp->cur, sizeof pp->cur, v, vl);
		else if (header_is(name, nlen, "last-modified"))
			copy_value(pp->lm, sizeof pp->lm, v, vl);
		else if (header_is(name, nlen, "etag"))
			copy_value(pp->etag, sizeof pp->etag, v, vl);
	}
	if (status != 200)
		pp->clen = 0;
	else if (!c->chunked && pp->clen < 0)
		pp->until_eof = 1;
	return 0;
}

/* a whole response has arrived: count its messages, ask again */
static void poll_done(struct conn *c, int64_t rx)
{
	struct pollpos *pp = c->pp;
	if (pp->status_ok) {
		c->have_i = c->have_t = 0;
		scan_data(c, c->lb, c->lblen, rx);
		st.events++;
		total_events++;
	}
	total_polls++;
	pp->fails = 0;
	c->lblen = 0;
	if (c->lbcap > 4096)
		lb_free(c);
	if (pp->keep && !pp->until_eof)
		poll_send(c);
	else
		poll_reopen(c, 0);
}

static void poll_readable(struct conn *c)
{
	struct pollpos *pp = c->pp;
	for (int rounds = 0; rounds < 8; rounds++) {
		ssize_t r = read(c->fd, rbuf, sizeof rbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		int64_t rx = now_us();
		if (r <= 0) {
			if (c->state == S_STREAM && pp->until_eof) {
				pp->keep = 0;
				poll_done(c, rx);
			} else {
				/* closed between responses (keep-alive ended) or mid-response:
				 * ask again from the same position */
				poll_reopen(c, !(c->state == S_HEADERS && c->lblen == 0));
			}
			return;
		}
		total_bytes += (uint64_t)r;
		st.bytes += (uint64_t)r;
		const char *p = rbuf;
		size_t n = (size_t)r;
		if (c->state == S_HEADERS) {
			while (c->lblen == 0 && n && (*p == '\r' || *p == '\n'))
				p++, n--; /* the CRLF that ends the last chunk of the previous response */
			if (!n)
				continue;
			size_t old = c->lblen;
			lb_append(c, p, n);
			char *e = memmem(c->lb, c->lblen, "\r\n\r\n", 4);
			if (!e) {
				if (c->lblen > 16384)
					poll_reopen(c, 1);
				continue;
			}
			size_t hlen = (size_t)(e - c->lb) + 4;
			if (poll_headers(c, hlen) < 0) {
				total_http_err++;
				if (total_http_err < 5)
					fprintf(stderr, "sse-load: bad response: %.*s\n", (int)strcspn(c->lb, "\r\n"), c->lb);
				poll_reopen(c, 1);
				return;
			}
			size_t used = hlen - old;
			p += used;
			n -= used;
			c->lblen = 0;
			c->state = S_STREAM;
			if (pp->clen == 0) {
				poll_done(c, rx);
				return;
			}
		}
		if (n) {
			if (c->chunked) {
				if (body_feed(c, p, n, rx) < 0) {
					poll_done(c, rx);
					return;
				}
			} else {
				if (pp->clen >= 0 && (int64_t)(c->lblen + n) > pp->clen)
					n = (size_t)(pp->clen - (int64_t)c->lblen);
				lb_append(c, p, n);
				if (pp->clen >= 0 && (int64_t)c->lblen >= pp->clen) {
					poll_done(c, rx);
					return;
				}
			}
		}
		if ((size_t)r < sizeof rbuf)
			return;
	}
}

static void poll_event(struct conn *c, uint32_t events)
{
	if (c->state == S_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & (EPOLLERR | EPOLLHUP))) {
			poll_reopen(c, 1);
			return;
		}
		poll_send(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		poll_readable(c);
}

static void on_event(uint32_t idx, uint32_t events)
{
	struct conn *c = &conns[idx];
	if (c->fd < 0)
		return;
	if (poll_mode) {
		poll_event(c, events);
		return;
	}
	if (c->state == S_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & (EPOLLERR | EPOLLHUP))) {
			conn_fail(c, 0);
			return;
		}
		if (write_all(c->fd, request, (size_t)request_len) < 0) {
			conn_fail(c, 0);
			return;
		}
		c->state = S_HEADERS;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = idx };
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		on_readable(c);
}

/* ---- reports ---------------------------------------------------------------- */

static long read_control(const char *key)
{
	if (!control_path)
		return -1;
	FILE *f = fopen(control_path, "r");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, kl) && line[kl] == '=')
			v = atol(line + kl + 1);
	fclose(f);
	return v;
}

static void fill_totals(struct stats *s)
{
	s->connected = (uint64_t)n_connected;
	s->pending = (uint64_t)n_pending;
	s->failed = total_failed;
	s->http_err = total_http_err;
	s->target = (uint64_t)nconn;
}

static void write_stats(FILE *f, const struct stats *s)
{
	fprintf(f,
	        "target=%" PRIu64 " connected=%" PRIu64 " pending=%" PRIu64 " failed=%" PRIu64
	        " http_err=%" PRIu64 " dropped=%" PRIu64 "\n"
	        "deliveries=%" PRIu64 " samples=%" PRIu64 " dup=%" PRIu64 " stale=%" PRIu64
	        " lost=%" PRIu64 " expected=%" PRIu64 " subs=%" PRIu64 " max_us=%" PRIu64 "\n"
	        "t_reset=%" PRId64 " t_first=%" PRId64 " t_last=%" PRId64 " t_report=%" PRId64
	        " bytes=%" PRIu64 " events=%" PRIu64 "\n",
	        s->target, s->connected, s->pending, s->failed, s->http_err, s->dropped,
	        s->deliveries, s->count, s->dup, s->stale, s->lost, s->expected, s->subs, s->max,
	        s->t_reset, s->t_first, s->t_last, s->t_report, s->bytes, s->events);
	for (int i = 0; i < HBUCKETS; i++)
		if (s->hist[i])
			fprintf(f, "h %d %" PRIu64 "\n", i, s->hist[i]);
	for (int i = 0; i < MSGS; i++)
		if (msg_cnt[i])
			fprintf(f, "m %d %u %u\n", i, msg_max[i], msg_cnt[i]);
}

/* fan-out time per message (latest delivery of each message): median, max */
static void msg_summary(double *p50, double *p90, double *mx, int *n)
{
	static uint32_t v[MSGS];
	int k = 0;
	for (int i = 0; i < MSGS; i++)
		if (msg_cnt[i])
			v[k++] = msg_max[i];
	*n = k;
	*p50 = *p90 = *mx = 0;
	if (!k)
		return;
	qsort(v, (size_t)k, sizeof v[0], cmp_u32);
	*p50 = pct_u32(v, (size_t)k, 0.50) / 1e3;
	*p90 = pct_u32(v, (size_t)k, 0.90) / 1e3;
	*mx = pct_u32(v, (size_t)k, 1.0) / 1e3;
}

static void print_summary(FILE *f, const struct stats *s)
{
	double span = s->t_last > s->t_reset && s->t_reset ? (double)(s->t_last - s->t_reset) / 1e6 : 0;
	double m50, m90, mmax;
	int mn;
	msg_summary(&m50, &m90, &mmax, &mn);
	fprintf(f,
	        "connected=%" PRIu64 " target=%" PRIu64 " failed=%" PRIu64 " http_err=%" PRIu64
	        " dropped=%" PRIu64 " pending=%" PRIu64 "\n"
	        "deliveries=%" PRIu64 " samples=%" PRIu64 " p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f"
	        " max_ms=%.2f lost=%" PRIu64 " dup=%" PRIu64 " stale=%" PRIu64 " expected=%" PRIu64
	        " subs=%" PRIu64 " span_s=%.3f deliveries_per_s=%.0f t_reset=%" PRId64
	        " t_first=%" PRId64 " t_last=%" PRId64 "\n"
	        "messages=%d fanout_p50_ms=%.2f fanout_p90_ms=%.2f fanout_max_ms=%.2f\n",
	        s->connected, s->target, s->failed, s->http_err, s->dropped, s->pending,
	        s->deliveries, s->count, hist_pct(s->hist, s->count, 0.50) / 1e3,
	        hist_pct(s->hist, s->count, 0.99) / 1e3, hist_pct(s->hist, s->count, 0.999) / 1e3,
	        s->max / 1e3, s->lost, s->dup, s->stale, s->expected, s->subs, span,
	        span > 0 ? (double)s->deliveries / span : 0.0, s->t_reset, s->t_first, s->t_last, mn,
	        m50, m90, mmax);
}

static void make_report(struct stats *s)
{
	*s = st;
	fill_totals(s);
	s->t_report = now_us();
	long last = read_control("last");
	if (last >= 0 && (uint64_t)last + 1 >= phase_first) {
		s->expected = (uint64_t)last + 1 - phase_first;
		for (int i = 0; i < nconn; i++) {
			struct conn *c = &conns[i];
			if (poll_mode ? !c->pp->held : c->state != S_STREAM)
				continue;
			s->subs++;
			if (c->uniq < s->expected)
				s->lost += s->expected - c->uniq;
		}
	}
}

static void write_report(void)
{
	static struct stats s;
	make_report(&s);
	FILE *f = stdout;
	char tmp[4200];
	if (report_path) {
		snprintf(tmp, sizeof tmp, "%s.tmp", report_path);
		f = fopen(tmp, "w");
		if (!f) {
			fprintf(stderr, "sse-load: cannot write %s: %s\n", tmp, strerror(errno));
			return;
		}
	}
	write_stats(f, &s);
	if (report_path) {
		fclose(f);
		rename(tmp, report_path);
	} else {
		print_summary(stdout, &s);
		fflush(stdout);
	}
}

static void reset_phase(void)
{
	long first = read_control("first");
	memset(&st, 0, sizeof st);
	st.t_reset = now_us();
	phase_first = first >= 0 ? (uint64_t)first : 0;
	for (int i = 0; i < nconn; i++)
		conns[i].uniq = 0;
	memset(msg_max, 0, sizeof msg_max);
	memset(msg_cnt, 0, sizeof msg_cnt);
}

static void write_status(void)
{
	if (!status_path)
		return;
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", status_path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f,
	        "target=%d connected=%d pending=%d failed=%" PRIu64 " http_err=%" PRIu64
	        " dropped=%" PRIu64 " opened=%d bytes=%" PRIu64 " events=%" PRIu64
	        " phase_deliveries=%" PRIu64 " phase_samples=%" PRIu64 " polls=%" PRIu64
	        " reconnects=%" PRIu64 "\n",
	        nconn, n_connected, n_pending, total_failed, total_http_err, total_dropped,
	        opened_total, total_bytes, total_events, st.deliveries, st.count, total_polls,
	        total_reconnects);
	fclose(f);
	rename(tmp, status_path);
}

/* ---- merge mode ------------------------------------------------------------ */

/* fold one process's report s into the combined report m */
static void merge_add(struct stats *m, const struct stats *s)
{
	m->target += s->target;
	m->connected += s->connected;
	m->pending += s->pending;
	m->failed += s->failed;
	m->http_err += s->http_err;
	m->dropped += s->dropped;
	m->deliveries += s->deliveries;
	m->count += s->count;
	m->dup += s->dup;
	m->stale += s->stale;
	m->lost += s->lost;
	m->subs += s->subs;
	m->bytes += s->bytes;
	m->events += s->events;
	if (s->expected > m->expected)
		m->expected = s->expected;
	if (s->max > m->max)
		m->max = s->max;
	if (s->t_reset && (!m->t_reset || s->t_reset < m->t_reset))
		m->t_reset = s->t_reset;
	if (s->t_first && (!m->t_first || s->t_first < m->t_first))
		m->t_first = s->t_first;
	if (s->t_last > m->t_last)
		m->t_last = s->t_last;
	if (s->t_report > m->t_report)
		m->t_report = s->t_report;
}

static int merge(int argc, char **argv)
{
	static struct stats m, s;
	for (int a = 0; a < argc; a++) {
		FILE *f = fopen(argv[a], "r");
		if (!f) {
			fprintf(stderr, "sse-load: %s: %s\n", argv[a], strerror(errno));
			return 1;
		}
		memset(&s, 0, sizeof s);
		char line[1024];
		while (fgets(line, sizeof line, f)) {
			if (line[0] == 'h' && line[1] == ' ') {
				int i;
				uint64_t n;
				if (sscanf(line + 2, "%d %" SCNu64, &i, &n) == 2 && i >= 0 && i < HBUCKETS)
					m.hist[i] += n;
				continue;
			}
			if (line[0] == 'm' && line[1] == ' ') {
				int i;
				unsigned mx, n;
				if (sscanf(line + 2, "%d %u %u", &i, &mx, &n) == 3 && i >= 0 && i < MSGS) {
					if (mx > msg_max[i])
						msg_max[i] = mx;
					msg_cnt[i] += n;
				}
				continue;
			}
			for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n")) {
				char *eq = strchr(tok, '=');
				if (!eq)
					continue;
				*eq = '\0';
				const char *k = tok;
				int64_t v = strtoll(eq + 1, NULL, 10);
#define U(name) else if (!strcmp(k, #name)) s.name = (uint64_t)v;
				if (0) {
				}
				U(target) U(connected) U(pending) U(failed) U(http_err) U(dropped)
				U(deliveries) U(dup) U(stale) U(lost) U(expected) U(subs) U(bytes) U(events)
				else if (!strcmp(k, "samples")) s.count = (uint64_t)v;
				else if (!strcmp(k, "max_us")) s.max = (uint64_t)v;
				else if (!strcmp(k, "t_reset")) s.t_reset = v;
				else if (!strcmp(k, "t_first")) s.t_first = v;
				else if (!strcmp(k, "t_last")) s.t_last = v;
				else if (!strcmp(k, "t_report")) s.t_report = v;
#undef U
			}
		}
		fclose(f);
		merge_add(&m, &s);
	}
	print_summary(stdout, &m);
	return 0;
}

/* ---- main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: sse-load [options] http://HOST:PORT/PATH?QUERY\n"
	      "       sse-load --merge REPORT...\n"
	      "  -n N                 subscriptions to hold (default 1000)\n"
	      "  --index-offset K     global index of this process's first connection\n"
	      "  --src-first A        first source address 127.0.0.A (default 1)\n"
	      "  --per-source P       connections per source address (default 20000)\n"
	      "  --connect-rate R     new connections per second (default 2000)\n"
	      "  --max-pending M      connection attempts in flight (default 256)\n"
	      "  --retries K          attempts per connection (default 3)\n"
	      "  --status FILE        status line rewritten every second\n"
	      "  --report FILE        where SIGUSR2 (and exit) write the phase report\n"
	      "  --control FILE       first=N (read at SIGUSR1) and last=N (at SIGUSR2)\n"
	      "  --max-time S         exit after S seconds (default 1800)\n"
	      "  --poll ds|etag       long-poll subscribers instead of SSE (see the top of sse-load.c)\n",
	      f);
}

/* one command-line option (see parse_args in bench.h): arguments taken */
static int option(const char *a, const char *v)
{
	if (!v)
		return 0;
	if (!strcmp(a, "-n"))
		nconn = atoi(v);
	else if (!strcmp(a, "--index-offset"))
		index_offset = atoi(v);
	else if (!strcmp(a, "--src-first"))
		src_first = atoi(v);
	else if (!strcmp(a, "--per-source"))
		per_source = atoi(v);
	else if (!strcmp(a, "--connect-rate"))
		connect_rate = atof(v);
	else if (!strcmp(a, "--max-pending"))
		max_pending = atoi(v);
	else if (!strcmp(a, "--retries"))
		retries = atoi(v);
	else if (!strcmp(a, "--status"))
		status_path = v;
	else if (!strcmp(a, "--report"))
		report_path = v;
	else if (!strcmp(a, "--control"))
		control_path = v;
	else if (!strcmp(a, "--max-time"))
		max_time = atof(v);
	else if (!strcmp(a, "--poll")) {
		if (!strcmp(v, "ds"))
			poll_mode = P_DS;
		else if (!strcmp(v, "etag"))
			poll_mode = P_ETAG;
		else
			die("--poll: ds or etag");
	} else
		return 0;
	return 2;
}

/* descriptors: one per connection plus a few; 0, or 2 (the hard limit is too low) */
static int raise_nofile(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rlim_t need = (rlim_t)nconn + 64;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		fprintf(stderr,
		        "sse-load: %d connections need %llu descriptors, hard limit is %llu: "
		        "run several processes (-n, --index-offset)\n",
		        nconn, (unsigned long long)need, (unsigned long long)rl.rlim_max);
		return 2;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit(RLIMIT_NOFILE)");
	return 0;
}

/* the connection table (and the long-poll positions) and the epoll set */
static void setup_conns(void)
{
	conns = calloc((size_t)nconn, sizeof *conns);
	retry_queue = calloc((size_t)nconn, sizeof *retry_queue);
	if (!conns || !retry_queue)
		die("out of memory");
	for (int i = 0; i < nconn; i++) {
		conns[i].fd = -1;
		if (poll_mode) {
			conns[i].pp = calloc(1, sizeof *conns[i].pp);
			if (!conns[i].pp)
				die("out of memory");
			strcpy(conns[i].pp->off, "-1");
		}
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
}

/* start connections at the configured rate (retries first) */
static void start_connections(int64_t now, int64_t t0, int *next_new)
{
	long allowed = (long)((double)(now - t0) * connect_rate / 1000.0) + 1;
	while (n_pending < max_pending && (retry_queue_len || (*next_new < nconn && opened_total < allowed))) {
		if (retry_queue_len) {
			struct conn *c = &conns[retry_queue[--retry_queue_len]];
			if (now - c->since_ms < 200 && c->attempts > 0) { /* back off a little */
				retry_queue_len++;
				break;
			}
			conn_start(c);
		} else {
			opened_total++;
			conn_start(&conns[(*next_new)++]);
		}
	}
}

/* connection attempts that hang */
static void expire_attempts(int64_t now)
{
	for (int i = 0; i < nconn; i++) {
		struct conn *c = &conns[i];
		if (poll_mode && c->pp->held) { /* a long-poll waits: only connecting can hang */
			if (c->state == S_CONNECTING && now - c->since_ms > connect_timeout_ms)
				poll_reopen(c, 1);
			continue;
		}
		if ((c->state == S_CONNECTING || c->state == S_HEADERS) &&
		    now - c->since_ms > connect_timeout_ms)
			conn_fail(c, 0);
	}
}

/* the event loop, until a stop signal or --max-time */
static void run(void)
{
	int64_t t0 = mono_ms(), last_status = 0, last_scan = t0;
	int next_new = 0;
	struct epoll_event evs[1024];
	while (!sig_stop) {
		int64_t now = mono_ms();
		if (max_time > 0 && now - t0 > (int64_t)(max_time * 1000))
			break;
		start_connections(now, t0, &next_new);
		int timeout = (next_new < nconn || retry_queue_len) ? 5 : 200;
		int n = epoll_wait(epfd, evs, (int)(sizeof evs / sizeof evs[0]), timeout);
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.u32, evs[i].events);
		if (sig_reset) {
			sig_reset = 0;
			reset_phase();
		}
		if (sig_report) {
			sig_report = 0;
			write_report();
		}
		now = mono_ms();
		if (now - last_scan >= 1000) {
			last_scan = now;
			expire_attempts(now);
		}
		if (now - last_status >= 1000) {
			last_status = now;
			write_status();
		}
	}
}

int main(int argc, char **argv)
{
	nconn = 1000;
	if (argc > 1 && !strcmp(argv[1], "--merge"))
		return merge(argc - 2, argv + 2);
	const char *url = parse_args(argc, argv, option, usage);
	if (!url || nconn < 1 || per_source < 1 || connect_rate <= 0 || max_pending < 1 || retries < 1) {
		usage(stderr);
		return 2;
	}

	/* URL: http://A.B.C.D:PORT/path?query (loopback benchmark: IPv4 literal) */
	const char *bad = parse_loopback_url(url, host_hdr, sizeof host_hdr, path_q, sizeof path_q, &dst);
	if (bad)
		die(bad);
	request_len = snprintf(request, sizeof request,
	                       "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
	                       "Cache-Control: no-cache\r\nUser-Agent: lmstream-sse-load\r\n\r\n",
	                       path_q, host_hdr);
	if (raise_nofile())
		return 2;
	setup_conns();
	catch_signals(on_signal, (const int[]){ SIGUSR1, SIGUSR2, SIGINT, SIGTERM }, 4);

	memset(&st, 0, sizeof st);
	st.t_reset = now_us();
	run();
	write_status();
	if (report_path)
		write_report();
	for (int i = 0; i < nconn; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	return 0;
}
