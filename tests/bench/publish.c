/*
 * publish: append numbered, timestamped JSON messages to a stream over HTTP.
 *
 * Each message is one POST of {"i":<id>,"t":<send time, us since the epoch,
 * CLOCK_REALTIME>,"pad":"..."} (about --size bytes), with consecutive ids from
 * --first-id. Two modes:
 *   --rate R        R messages per second (default 1) on one connection
 *   --rate 0        saturation: as fast as possible on --connections C
 *                   keep-alive connections (each waits for its answer)
 * for --duration seconds (or --count messages). --streams N spreads the
 * POSTs over the N streams PATH-0 .. PATH-(N-1) (in turn); --producer makes
 * each connection an idempotent producer (Producer-Id bench-<pid>-<conn>,
 * Producer-Epoch 0, Producer-Seq counting per stream from 0); --header
 * "Name: value" adds a header to every request (e.g. "Authorization: Bearer
 * TOKEN"; repeatable). Prints one
 * summary line:
 * sent, ok (2xx), non2xx, errors, first_id, last_id, elapsed_s, rate and the
 * append latency p50/p99 (ms).
 *
 * Build: cc -O2 -o publish publish.c   (no dependencies; loopback only)
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

#include "bench.h" /* also the libc, socket and time headers both clients use */

static struct sockaddr_in dst;
static char host_hdr[300], path[4096], ctype[200] = "application/json";
static double rate = 1, duration = 30;
static long count_limit = -1;
static int nconns = 1, size = 100;
static uint64_t first_id = 1;
static int verbose;
static int nstreams = 1, producer;
static char extra_hdrs[6000]; /* --header lines, each ending in CRLF */
#define MAX_STREAMS 1024

static _Atomic uint64_t next_id;
static _Atomic long n_sent, n_ok, n_non2xx, n_err;
static _Atomic int stop_flag;
static int64_t t_start_us, t_end_us;

struct worker {
	pthread_t th;
	int fd;
	char buf[65536];
	size_t blen;
	uint32_t *lat; /* append latencies, us */
	size_t nlat, caplat;
	int index;
	uint64_t nreq;
	uint64_t *seq; /* next Producer-Seq per stream */
};

/* a keep-alive connection to the target (blocking, 30 s timeouts), or -1 */
static int dial(void)
{
	int fd = tcp_socket(0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (tcp_connect(fd, &dst) != 0) { /* (1: the connect timed out) */
		close(fd);
		return -1;
	}
	return fd;
}

/* read more of the connection into w->buf: 0, or -1 (closed, error, or the buffer is full) */
static int fill(struct worker *w)
{
	if (w->blen == sizeof w->buf)
		return -1;
	ssize_t r = read(w->fd, w->buf + w->blen, sizeof w->buf - w->blen);
	if (r <= 0)
		return -1;
	w->blen += (size_t)r;
	return 0;
}

/* Discard the body of a response whose head w->buf no longer holds: returns
 * status, or -1 on a broken connection; sets *close_after for a body up to close. */
static int skip_body(struct worker *w, int status, int chunked, long clen, int *close_after)
{
	if (status == 204 || status == 304 || (status >= 100 && status < 200))
		return status;
	if (chunked) {
		for (;;) {
			char *nl;
			while (!(nl = memmem(w->buf, w->blen, "\r\n", 2)))
				if (fill(w) < 0)
					return -1;
			long sz = strtol(w->buf, NULL, 16);
			size_t need = (size_t)(nl - w->buf) + 2 + (size_t)sz + 2;
			if (need > sizeof w->buf)
				return -1;
			while (w->blen < need)
				if (fill(w) < 0)
					return -1;
			memmove(w->buf, w->buf + need, w->blen - need);
			w->blen -= need;
			if (sz == 0)
				return status; /* (no trailers expected) */
		}
	}
	if (clen < 0) { /* body until close */
		*close_after = 1;
		return status;
	}
	while ((long)w->blen < clen) {
		size_t keep = w->blen;
		w->blen = 0; /* discard what we have, read the rest */
		clen -= (long)keep;
		ssize_t r = read(w->fd, w->buf, sizeof w->buf);
		if (r <= 0)
			return -1;
		w->blen = (size_t)r;
	}
	memmove(w->buf, w->buf + clen, w->blen - (size_t)clen);
	w->blen -= (size_t)clen;
	return status;
}

/* Read one response; returns the status, or -1 on a broken connection.
 * *close_after is set if the server will close the connection. */
static int read_response(struct worker *w, int *close_after)
{
	*close_after = 0;
	char *hend;
	while (!(hend = memmem(w->buf, w->blen, "\r\n\r\n", 4)))
		if (fill(w) < 0)
			return -1;
	size_t hlen = (size_t)(hend - w->buf) + 4;
	int minor, status = http_status(w->buf, hlen, &minor);
	if (status < 0)
		return -1;
	long clen = -1;
	int chunked = 0;
	const char *name, *val;
	size_t nlen, vlen;
	for (const char *h = w->buf; (h = http_next_header(h, w->buf + hlen, &name, &nlen, &val, &vlen));) {
		if (header_is(name, nlen, "content-length"))
			clen = vlen ? atol(val) : 0;
		else if (header_is(name, nlen, "transfer-encoding") && value_has(val, vlen, "chunked"))
			chunked = 1;
		else if (header_is(name, nlen, "connection") && value_has(val, vlen, "close"))
			*close_after = 1;
	}
	if (minor == 0) /* HTTP/1.0 */
		*close_after = 1;
	if (verbose && (status < 200 || status > 299))
		fprintf(stderr, "publish: %.*s\n", (int)hlen - 2, w->buf);
	memmove(w->buf, w->buf + hlen, w->blen - hlen);
	w->blen -= hlen;
	return skip_body(w, status, chunked, clen, close_after);
}

static int post_one(struct worker *w, uint64_t id)
{
	char body[4096], req[16384];
	int64_t t = now_us();
	int n = snprintf(body, sizeof body, "{\"i\":%" PRIu64 ",\"t\":%" PRId64 ",\"pad\":\"", id, t);
	int pad = size - n - 2;
	if (pad < 0)
		pad = 0;
	if (n + pad + 2 >= (int)sizeof body)
		pad = (int)sizeof body - n - 3;
	memset(body + n, 'x', (size_t)pad);
	n += pad;
	body[n++] = '"';
	body[n++] = '}';
	char target[4200], prod[200] = "";
	int sidx = (int)((w->nreq++ + (uint64_t)w->index) % (uint64_t)nstreams);
	if (nstreams > 1)
		snprintf(target, sizeof target, "%s-%d", path, sidx);
	else
		snprintf(target, sizeof target, "%s", path);
	if (producer)
		snprintf(prod, sizeof prod,
		         "Producer-Id: bench-%d-%d\r\nProducer-Epoch: 0\r\nProducer-Seq: %" PRIu64 "\r\n",
		         (int)getpid(), w->index, w->seq[sidx]++);
	int rl = snprintf(req, sizeof req,
	                  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
	                  "%s%sUser-Agent: lmstream-publish\r\n\r\n",
	                  target, host_hdr, ctype, n, prod, extra_hdrs);
	if (rl < 0 || (size_t)rl + (size_t)n > sizeof req) {
		fprintf(stderr, "publish: request too long\n");
		exit(2);
	}
	memcpy(req + rl, body, (size_t)n);
	rl += n;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (w->fd < 0) {
			w->fd = dial();
			w->blen = 0;
			if (w->fd < 0)
				continue;
		}
		int64_t t0 = mono_us();
		if (write_all(w->fd, req, (size_t)rl) < 0) {
			close(w->fd);
			w->fd = -1;
			continue; /* stale keep-alive connection: once more */
		}
		int close_after;
		int status = read_response(w, &close_after);
		if (status < 0) {
			close(w->fd);
			w->fd = -1;
			break; /* the request may have been applied: do not repeat it */
		}
		int64_t dt = mono_us() - t0;
		if (w->nlat == w->caplat) {
			w->caplat = w->caplat ? w->caplat * 2 : 4096;
			w->lat = realloc(w->lat, w->caplat * sizeof *w->lat);
			if (!w->lat) {
				fprintf(stderr, "publish: out of memory\n");
				exit(2);
			}
		}
		w->lat[w->nlat++] = (uint32_t)(dt > 0xffffffff ? 0xffffffff : dt);
		if (close_after) {
			close(w->fd);
			w->fd = -1;
		}
		return status;
	}
	return -1;
}

static void account(int status)
{
	atomic_fetch_add(&n_sent, 1);
	if (status >= 200 && status <= 299)
		atomic_fetch_add(&n_ok, 1);
	else if (status > 0)
		atomic_fetch_add(&n_non2xx, 1);
	else
		atomic_fetch_add(&n_err, 1);
}

static void *saturate(void *arg)
{
	struct worker *w = arg;
	int64_t end = mono_us() + (int64_t)(duration * 1e6);
	while (!atomic_load(&stop_flag) && mono_us() < end) {
		uint64_t id = atomic_fetch_add(&next_id, 1);
		if (count_limit >= 0 && id >= first_id + (uint64_t)count_limit) {
			atomic_fetch_sub(&next_id, 1);
			break;
		}
		account(post_one(w, id));
	}
	return NULL;
}

static void at_rate(struct worker *w)
{
	int64_t start = mono_us(), end = start + (int64_t)(duration * 1e6);
	for (long k = 0;; k++) {
		if (count_limit >= 0 && k >= count_limit)
			break;
		int64_t due = start + (int64_t)((double)k * 1e6 / rate);
		if (due >= end || atomic_load(&stop_flag))
			break;
		int64_t now = mono_us();
		if (due > now) {
			struct timespec ts = { .tv_sec = (due - now) / 1000000,
				               .tv_nsec = ((due - now) % 1000000) * 1000 };
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !atomic_load(&stop_flag))
				;
		}
		uint64_t id = atomic_fetch_add(&next_id, 1);
		account(post_one(w, id));
	}
}

static void on_stop(int s)
{
	(void)s;
	atomic_store(&stop_flag, 1);
}

static void usage(FILE *f)
{
	fputs("usage: publish [options] http://127.0.0.1:PORT/PATH\n"
	      "  --rate R          messages per second (default 1); 0 = as fast as possible\n"
	      "  --connections C   connections in saturation mode (default 1)\n"
	      "  --duration S      seconds to publish (default 30)\n"
	      "  --count N         stop after N messages\n"
	      "  --first-id N      id of the first message (default 1)\n"
	      "  --size BYTES      message size (default 100)\n"
	      "  --content-type T  (default application/json)\n"
	      "  --streams N       POST to PATH-0 .. PATH-(N-1) in turn (default 1: PATH itself)\n"
	      "  --producer        idempotent producer headers, one producer per connection\n"
	      "  --header 'N: V'   add this header to every request (repeatable)\n"
	      "  -v                print non-2xx responses\n",
	      f);
}

/* one command-line option (see parse_args in bench.h): arguments taken */
static int option(const char *a, const char *v)
{
	if (!strcmp(a, "-v")) {
		verbose = 1;
		return 1;
	}
	if (!strcmp(a, "--producer")) {
		producer = 1;
		return 1;
	}
	if (!v)
		return 0;
	if (!strcmp(a, "--rate"))
		rate = atof(v);
	else if (!strcmp(a, "--connections"))
		nconns = atoi(v);
	else if (!strcmp(a, "--duration"))
		duration = atof(v);
	else if (!strcmp(a, "--count"))
		count_limit = atol(v);
	else if (!strcmp(a, "--first-id"))
		first_id = strtoull(v, NULL, 10);
	else if (!strcmp(a, "--size"))
		size = atoi(v);
	else if (!strcmp(a, "--streams"))
		nstreams = atoi(v);
	else if (!strcmp(a, "--content-type"))
		snprintf(ctype, sizeof ctype, "%s", v);
	else if (!strcmp(a, "--header")) {
		size_t used = strlen(extra_hdrs);
		if (!strchr(v, ':') || strpbrk(v, "\r\n") || used + strlen(v) + 3 > sizeof extra_hdrs) {
			fprintf(stderr, "publish: --header: 'Name: value' on one line, at most %zu bytes in all\n",
			        sizeof extra_hdrs - 3);
			exit(2);
		}
		snprintf(extra_hdrs + used, sizeof extra_hdrs - used, "%s\r\n", v);
	} else
		return 0;
	return 2;
}

/* the summary line, from the workers' latencies */
static void report(struct worker *ws, int nw, double elapsed)
{
	size_t nl = 0;
	for (int i = 0; i < nw; i++)
		nl += ws[i].nlat;
	uint32_t *all = malloc((nl ? nl : 1) * sizeof *all);
	size_t k = 0;
	for (int i = 0; i < nw; i++) {
		if (ws[i].nlat)
			memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
		k += ws[i].nlat;
		if (ws[i].fd >= 0)
			close(ws[i].fd);
	}
	qsort(all, nl, sizeof *all, cmp_u32);
	double p50 = pct_u32(all, nl, 0.50) / 1e3, p99 = pct_u32(all, nl, 0.99) / 1e3;
	double mx = pct_u32(all, nl, 1.0) / 1e3;
	uint64_t last = atomic_load(&next_id) - 1;
	printf("sent=%ld ok=%ld non2xx=%ld errors=%ld first_id=%" PRIu64 " last_id=%" PRIu64
	       " elapsed_s=%.3f rate=%.1f append_p50_ms=%.2f append_p99_ms=%.2f append_max_ms=%.2f"
	       " t_start=%" PRId64 " t_end=%" PRId64 "\n",
	       atomic_load(&n_sent), atomic_load(&n_ok), atomic_load(&n_non2xx), atomic_load(&n_err),
	       first_id, last, elapsed, elapsed > 0 ? (double)atomic_load(&n_sent) / elapsed : 0.0,
	       p50, p99, mx, t_start_us, t_end_us);
}

int main(int argc, char **argv)
{
	const char *url = parse_args(argc, argv, option, usage);
	if (!url || nconns < 1 || nconns > 64 || duration <= 0 || nstreams < 1 ||
	    nstreams > MAX_STREAMS || duration > 3600 || rate < 0) {
		usage(stderr);
		return 2;
	}
	const char *bad = parse_loopback_url(url, host_hdr, sizeof host_hdr, path, sizeof path, &dst);
	if (bad) {
		fprintf(stderr, "publish: %s\n", bad);
		return 2;
	}
	catch_signals(on_stop, (const int[]){ SIGINT, SIGTERM }, 2);

	atomic_store(&next_id, first_id);
	int nw = rate > 0 ? 1 : nconns;
	struct worker *ws = calloc((size_t)nw, sizeof *ws);
	if (!ws)
		return 2;
	t_start_us = now_us();
	int64_t m0 = mono_us();
	for (int i = 0; i < nw; i++) {
		ws[i].index = i;
		ws[i].seq = calloc((size_t)nstreams, sizeof *ws[i].seq);
		if (!ws[i].seq)
			return 2;
	}
	if (rate > 0) {
		ws[0].fd = -1;
		at_rate(&ws[0]);
	} else {
		for (int i = 0; i < nw; i++) {
			ws[i].fd = -1;
			pthread_create(&ws[i].th, NULL, saturate, &ws[i]);
		}
		for (int i = 0; i < nw; i++)
			pthread_join(ws[i].th, NULL);
	}
	double elapsed = (double)(mono_us() - m0) / 1e6;
	t_end_us = now_us();
	report(ws, nw, elapsed);
	return atomic_load(&n_err) || atomic_load(&n_non2xx) ? 1 : 0;
}
