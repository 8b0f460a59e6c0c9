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
 * Producer-Epoch 0, Producer-Seq counting per stream from 0). Prints one
 * summary line:
 * sent, ok (2xx), non2xx, errors, first_id, last_id, elapsed_s, rate and the
 * append latency p50/p99 (ms).
 *
 * Build: cc -O2 -o publish publish.c   (no dependencies; loopback only)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static struct sockaddr_in dst;
static char host_hdr[300], path[4096], ctype[200] = "application/json";
static double rate = 1, duration = 30;
static long count_limit = -1;
static int nconns = 1, size = 100;
static uint64_t first_id = 1;
static int verbose;
static int nstreams = 1, producer;
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

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one response; returns the status, or -1 on a broken connection.
 * *close_after is set if the server will close the connection. */
static int read_response(struct worker *w, int *close_after)
{
	*close_after = 0;
	char *hend;
	for (;;) {
		hend = memmem(w->buf, w->blen, "\r\n\r\n", 4);
		if (hend)
			break;
		if (w->blen == sizeof w->buf)
			return -1;
		ssize_t r = read(w->fd, w->buf + w->blen, sizeof w->buf - w->blen);
		if (r <= 0)
			return -1;
		w->blen += (size_t)r;
	}
	size_t hlen = (size_t)(hend - w->buf) + 4;
	int status = 0;
	if (sscanf(w->buf, "HTTP/%*d.%*d %d", &status) != 1)
		return -1;
	long clen = -1;
	int chunked = 0;
	hend[2] = '\0'; /* headers as one string (the terminator is dropped below) */
	for (char *l = strstr(w->buf, "\r\n"); l && l < hend; l = strstr(l, "\r\n")) {
		l += 2;
		char *e = strstr(l, "\r\n");
		if (!e)
			break;
		char save = *e;
		*e = '\0';
		if (!strncasecmp(l, "content-length:", 15))
			clen = atol(l + 15);
		else if (!strncasecmp(l, "transfer-encoding:", 18) && strcasestr(l, "chunked"))
			chunked = 1;
		else if (!strncasecmp(l, "connection:", 11) && strcasestr(l, "close"))
			*close_after = 1;
		*e = save;
	}
	if (!strncmp(w->buf, "HTTP/1.0", 8))
		*close_after = 1;
	if (verbose && (status < 200 || status > 299))
		fprintf(stderr, "publish: %.*s\n", (int)hlen, w->buf);
	memmove(w->buf, w->buf + hlen, w->blen - hlen);
	w->blen -= hlen;
	if (status == 204 || status == 304 || (status >= 100 && status < 200))
		return status;
	if (chunked) {
		for (;;) {
			char *nl;
			while (!(nl = memmem(w->buf, w->blen, "\r\n", 2))) {
				ssize_t r = read(w->fd, w->buf + w->blen, sizeof w->buf - w->blen);
				if (r <= 0)
					return -1;
				w->blen += (size_t)r;
			}
			long sz = strtol(w->buf, NULL, 16);
			size_t need = (size_t)(nl - w->buf) + 2 + (size_t)sz + 2;
			if (need > sizeof w->buf)
				return -1;
			while (w->blen < need) {
				ssize_t r = read(w->fd, w->buf + w->blen, sizeof w->buf - w->blen);
				if (r <= 0)
					return -1;
				w->blen += (size_t)r;
			}
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

static int post_one(struct worker *w, uint64_t id)
{
	char body[4096], req[8192];
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
	                  "%sUser-Agent: lmstream-publish\r\n\r\n",
	                  target, host_hdr, ctype, n, prod);
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
	      "  -v                print non-2xx responses\n",
	      f);
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && (i++, 1))
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-v"))
			verbose = 1;
		else if (OPT("--rate"))
			rate = atof(v);
		else if (OPT("--connections"))
			nconns = atoi(v);
		else if (OPT("--duration"))
			duration = atof(v);
		else if (OPT("--count"))
			count_limit = atol(v);
		else if (OPT("--first-id"))
			first_id = strtoull(v, NULL, 10);
		else if (OPT("--size"))
			size = atoi(v);
		else if (OPT("--streams"))
			nstreams = atoi(v);
		else if (!strcmp(a, "--producer"))
			producer = 1;
		else if (OPT("--content-type"))
			snprintf(ctype, sizeof ctype, "%s", v);
		else if (a[0] != '-' && !url)
			url = a;
		else {
			usage(stderr);
			return 2;
		}
#undef OPT
	}
	if (!url || strncmp(url, "http://", 7) || nconns < 1 || nconns > 64 || duration <= 0 ||
	    nstreams < 1 || nstreams > MAX_STREAMS ||
	    duration > 3600 || rate < 0) {
		usage(stderr);
		return 2;
	}
	const char *bad = parse_loopback_url(url, host_hdr, sizeof host_hdr, path, sizeof path, &dst);
	if (bad) {
		fprintf(stderr, "publish: %s\n", bad);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

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
	double p50 = nl ? all[(size_t)(0.50 * (double)(nl - 1))] / 1e3 : 0;
	double p99 = nl ? all[(size_t)(0.99 * (double)(nl - 1))] / 1e3 : 0;
	double mx = nl ? all[nl - 1] / 1e3 : 0;
	uint64_t last = atomic_load(&next_id) - 1;
	printf("sent=%ld ok=%ld non2xx=%ld errors=%ld first_id=%" PRIu64 " last_id=%" PRIu64
	       " elapsed_s=%.3f rate=%.1f append_p50_ms=%.2f append_p99_ms=%.2f append_max_ms=%.2f"
	       " t_start=%" PRId64 " t_end=%" PRId64 "\n",
	       atomic_load(&n_sent), atomic_load(&n_ok), atomic_load(&n_non2xx), atomic_load(&n_err),
	       first_id, last, elapsed, elapsed > 0 ? (double)atomic_load(&n_sent) / elapsed : 0.0,
	       p50, p99, mx, t_start_us, t_end_us);
	return atomic_load(&n_err) || atomic_load(&n_non2xx) ? 1 : 0;
}
