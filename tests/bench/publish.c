/*
 * publish: append numbered, timestamped JSON messages to a stream over HTTP.
 *
 * Each message is one POST of {"i":<id>,"t":<send time, us since the epoch,
 * CLOCK_REALTIME>,"pad":"..."} (about --size bytes), with consecutive ids from
 * --first-id. Two modes:
 *   --rate 0        saturation: as fast as possible on --connections C
 *                   keep-alive connections, each waiting for its answer
 *                   before it sends the next message
 *   --rate R        R messages per second (default 1) in all, on
 *                   --connections C (default 1): connection k sends at
 *                   start + (k + j * C) / R for j = 0, 1, ... (each every
 *                   C/R s); a message whose connection is still waiting for
 *                   its previous answer goes out as soon as that answer is in
 *                   (counted as late when that is more than 1 ms after its time)
 * for --duration seconds (or --count messages). --streams N spreads the
 * POSTs over the N streams PATH-0 .. PATH-(N-1) (each connection in turn,
 * starting at its own number); --producer makes each connection an
 * idempotent producer (Producer-Id bench-<pid>-<conn>, Producer-Epoch 0,
 * Producer-Seq counting per stream from 0); --header "Name: value" adds a
 * header to every request (e.g. "Authorization: Bearer TOKEN"; repeatable).
 * --create instead PUTs each of the streams (PATH, or PATH-0 .. PATH-(N-1)
 * with --streams N) once, with --content-type, on the C connections, and
 * prints created, ok, non2xx, errors, elapsed_s and rate.
 *
 * The connections are non-blocking and served by --threads T threads (default
 * 1), each with its own epoll set, so that the client takes little of the CPU
 * it shares with the server. Prints one summary line: sent, ok (2xx), non2xx,
 * errors, first_id, last_id, elapsed_s, rate and the append latency
 * p50/p99/max (ms) from sending a request to having its whole answer; at a
 * fixed rate also late and sched_p50_ms/sched_p99_ms, the latency from when
 * each message was due.
 *
 * Build: cc -O2 -o publish publish.c -lpthread   (no dependencies; loopback only)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>

#include "bench.h" /* also the libc, socket and time headers both clients use */

static struct sockaddr_in dst;
static char host_hdr[300], path[4096], ctype[200] = "application/json";
static double rate = 1, duration = 30;
static long count_limit = -1;
static int nconns = 1, nthreads = 1, size = 100;
static uint64_t first_id = 1;
static int verbose, create_mode;
static long nstreams = 1;
static int producer;
static char extra_hdrs[6000]; /* --header lines, each ending in CRLF */
#define MAX_STREAMS 10000000L
#define MAX_CONNS 1024
#define MAX_THREADS 16
#define ANSWER_TIMEOUT_US 30000000 /* an answer not complete after 30 s: an error */
#define LATE_US 1000

static _Atomic uint64_t next_id;
static _Atomic long next_create; /* --create: the next stream to PUT */
static _Atomic long n_sent, n_ok, n_non2xx, n_err, n_late;
static _Atomic int stop_flag;
static int64_t t_start_us, t_end_us, m_start, m_end;

/* One connection: its socket, the request being sent and the answer being read. */
struct conn {
	int fd;
	int index;       /* 0 .. nconns-1 */
	int busy;        /* a request is out and its answer not complete */
	int done;        /* sends nothing more */
	int retried;     /* the request was sent again on a new connection */
	char *out;       /* the request */
	size_t olen, ooff;
	char *in;        /* what has arrived of the answer */
	size_t ilen;
	int64_t t_sent, t_due; /* mono us: request written, and (fixed rate) when it was due */
	int64_t next_due;      /* fixed rate: when the next message is due */
	uint64_t nreq;
	uint32_t *seq; /* --producer: next Producer-Seq per stream */
};
#define IN_CAP 65536
#define OUT_CAP 16384

/* One thread: its connections and the latencies it measured (us). */
struct worker {
	pthread_t th;
	int ep;
	struct conn **c;
	int nc;
	uint32_t *lat, *slat; /* from sending, and (fixed rate) from the due time */
	size_t nlat, caplat;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "publish: out of memory\n");
		exit(2);
	}
	return p;
}

/* a non-blocking keep-alive connection to the target, in w's epoll set; -1 if none */
static int dial(struct worker *w, struct conn *c)
{
	int fd = tcp_socket(0);
	if (fd < 0)
		return -1;
	if (tcp_connect(fd, &dst) != 0) { /* loopback: a blocking connect returns at once */
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		return -1;
	}
	c->fd = fd;
	c->ilen = 0;
	return 0;
}

static void hang_up(struct worker *w, struct conn *c)
{
	if (c->fd < 0)
		return;
	epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->ilen = 0;
}

/* Builds the next request of c into c->out: a POST of message `id`, or
 * (--create) a PUT of stream `id`. */
static void build_request(struct conn *c, uint64_t id)
{
	char target[4200], prod[200] = "", body[4096];
	int n = 0;
	long sidx;
	if (create_mode) {
		sidx = (long)id;
	} else {
		sidx = (long)((c->nreq++ + (uint64_t)c->index) % (uint64_t)nstreams);
		n = snprintf(body, sizeof body, "{\"i\":%" PRIu64 ",\"t\":%" PRId64 ",\"pad\":\"", id, now_us());
		int pad = size - n - 2;
		if (pad < 0)
			pad = 0;
		if (n + pad + 2 >= (int)sizeof body)
			pad = (int)sizeof body - n - 3;
		memset(body + n, 'x', (size_t)pad);
		n += pad;
		body[n++] = '"';
		body[n++] = '}';
	}
	if (nstreams > 1)
		snprintf(target, sizeof target, "%s-%ld", path, sidx);
	else
		snprintf(target, sizeof target, "%s", path);
	if (producer && !create_mode)
		snprintf(prod, sizeof prod,
		         "Producer-Id: bench-%d-%d\r\nProducer-Epoch: 0\r\nProducer-Seq: %" PRIu32 "\r\n",
		         (int)getpid(), c->index, c->seq[sidx]++);
	int rl = snprintf(c->out, OUT_CAP,
	                  "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
	                  "%s%sUser-Agent: lmstream-publish\r\n\r\n",
	                  create_mode ? "PUT" : "POST", target, host_hdr, ctype, n, prod, extra_hdrs);
	if (rl < 0 || (size_t)rl + (size_t)n > OUT_CAP) {
		fprintf(stderr, "publish: request too long\n");
		exit(2);
	}
	memcpy(c->out + rl, body, (size_t)n);
	c->olen = (size_t)rl + (size_t)n;
	c->ooff = 0;
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

/* Writes what is left of c's request: 0 (all, or the rest waits for EPOLLOUT), -1 broken. */
static int push(struct worker *w, struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t r = write(c->fd, c->out + c->ooff, c->olen - c->ooff);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
			epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
			return 0;
		}
		if (r <= 0)
			return -1;
		c->ooff += (size_t)r;
	}
	return 0;
}

/* Sends c's request (built): on a broken keep-alive connection once more on a new one. */
static void send_request(struct worker *w, struct conn *c)
{
	c->busy = 1;
	c->retried = 0;
	for (;;) {
		if (c->fd < 0 && dial(w, c) < 0)
			break;
		c->t_sent = mono_us();
		if (push(w, c) == 0)
			return;
		hang_up(w, c);
		if (c->retried++)
			break;
		c->ooff = 0;
	}
	c->busy = 0;
	account(-1);
}

/* Takes the next message (or --create stream) for c and sends it; marks c done when there is none. */
static void next_request(struct worker *w, struct conn *c)
{
	uint64_t id;
	if (create_mode) {
		long s = atomic_fetch_add(&next_create, 1);
		if (s >= nstreams || atomic_load(&stop_flag)) {
			c->done = 1;
			return;
		}
		id = (uint64_t)s;
	} else {
		id = atomic_fetch_add(&next_id, 1);
		if (count_limit >= 0 && id >= first_id + (uint64_t)count_limit) {
			atomic_fetch_sub(&next_id, 1);
			c->done = 1;
			return;
		}
	}
	build_request(c, id);
	send_request(w, c);
}

/* Parses the answer in c->in: 1 complete (*status, *used bytes, *close_after), 0 incomplete, -1 malformed.
 * At eof a body that runs until the close is complete. */
static int parse_answer(struct conn *c, int eof, int *status, size_t *used, int *close_after)
{
	char *hend = memmem(c->in, c->ilen, "\r\n\r\n", 4);
	if (!hend)
		return c->ilen == IN_CAP ? -1 : 0;
	size_t hlen = (size_t)(hend - c->in) + 4;
	int minor;
	*status = http_status(c->in, hlen, &minor);
	if (*status < 0)
		return -1;
	long clen = -1;
	int chunked = 0;
	*close_after = minor == 0; /* HTTP/1.0 */
	const char *name, *val;
	size_t nlen, vlen;
	for (const char *h = c->in; (h = http_next_header(h, c->in + hlen, &name, &nlen, &val, &vlen));) {
		if (header_is(name, nlen, "content-length"))
			clen = vlen ? atol(val) : 0;
		else if (header_is(name, nlen, "transfer-encoding") && value_has(val, vlen, "chunked"))
			chunked = 1;
		else if (header_is(name, nlen, "connection") && value_has(val, vlen, "close"))
			*close_after = 1;
	}
	if (*status == 204 || *status == 304 || (*status >= 100 && *status < 200))
		clen = 0;
	if (chunked) {
		size_t p = hlen;
		for (;;) {
			char *nl = memmem(c->in + p, c->ilen - p, "\r\n", 2);
			if (!nl)
				return c->ilen == IN_CAP ? -1 : 0;
			long sz = strtol(c->in + p, NULL, 16);
			size_t need = (size_t)(nl - c->in) + 2 + (size_t)sz + 2;
			if (sz < 0 || need > IN_CAP)
				return -1;
			if (c->ilen < need)
				return 0;
			p = need;
			if (sz == 0) { /* (no trailers expected) */
				*used = p;
				return 1;
			}
		}
	}
	if (clen < 0) { /* body until the close */
		*close_after = 1;
		*used = c->ilen;
		return eof ? 1 : c->ilen == IN_CAP ? -1 : 0;
	}
	if (hlen + (size_t)clen > IN_CAP)
		return -1;
	if (c->ilen < hlen + (size_t)clen)
		return 0;
	*used = hlen + (size_t)clen;
	return 1;
}

/* Records one latency (us) of w; `due` is 0 in saturation mode. */
static void note_latency(struct worker *w, int64_t t_sent, int64_t due, int64_t t_done)
{
	if (w->nlat == w->caplat) {
		w->caplat = w->caplat ? w->caplat * 2 : 4096;
		w->lat = xrealloc(w->lat, w->caplat * sizeof *w->lat);
		w->slat = xrealloc(w->slat, w->caplat * sizeof *w->slat);
	}
	int64_t d = t_done - t_sent, s = due ? t_done - due : d;
	w->lat[w->nlat] = (uint32_t)(d < 0 ? 0 : d > 0xffffffff ? 0xffffffff : d);
	w->slat[w->nlat++] = (uint32_t)(s < 0 ? 0 : s > 0xffffffff ? 0xffffffff : s);
}

/* c's request has its answer (status, or -1 for a broken connection) */
static void finish(struct worker *w, struct conn *c, int status)
{
	c->busy = 0;
	if (status > 0)
		note_latency(w, c->t_sent, rate > 0 ? c->t_due : 0, mono_us());
	if (verbose && status > 0 && (status < 200 || status > 299))
		fprintf(stderr, "publish: HTTP %d\n", status);
	account(status);
}

/* Reads what arrived on c and completes its answer(s). */
static void on_readable(struct worker *w, struct conn *c)
{
	for (;;) {
		if (c->ilen == IN_CAP) {
			if (c->busy)
				finish(w, c, -1);
			hang_up(w, c);
			return;
		}
		ssize_t r = read(c->fd, c->in + c->ilen, IN_CAP - c->ilen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		int eof = r <= 0;
		if (r > 0)
			c->ilen += (size_t)r;
		if (!c->busy) { /* nothing asked: the server closed an idle connection */
			hang_up(w, c);
			return;
		}
		int status, close_after = 0;
		size_t used = 0;
		int k = parse_answer(c, eof, &status, &used, &close_after);
		if (k == 0 && !eof)
			continue;
		if (k <= 0) { /* broken or malformed: the request may have been applied, do not repeat it */
			finish(w, c, -1);
			hang_up(w, c);
			return;
		}
		memmove(c->in, c->in + used, c->ilen - used);
		c->ilen -= used;
		finish(w, c, status);
		if (close_after || eof)
			hang_up(w, c);
		return;
	}
}

/* epoll_pwait2 with a timeout in microseconds (epoll_wait with whole milliseconds where it is missing) */
static int wait_events(int ep, struct epoll_event *evs, int n, int64_t timeout_us)
{
	static int no_pwait2;
	if (!no_pwait2) {
		struct timespec ts = { .tv_sec = timeout_us / 1000000, .tv_nsec = (timeout_us % 1000000) * 1000 };
		int k = epoll_pwait2(ep, evs, n, &ts, NULL);
		if (k >= 0 || errno != ENOSYS)
			return k;
		no_pwait2 = 1;
	}
	return epoll_wait(ep, evs, n, (int)((timeout_us + 999) / 1000));
}

/* A thread's loop: sends on its connections as the mode says until the end
 * time (or the limit, or a signal), then waits for the answers still out. */
static void *run_worker(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	int64_t end = m_start + (int64_t)(duration * 1e6);
	for (int i = 0; i < w->nc; i++) {
		struct conn *c = w->c[i];
		c->fd = -1;
		c->next_due = m_start + (rate > 0 ? (int64_t)((double)c->index * 1e6 / rate) : 0);
	}
	for (;;) {
		int64_t now = mono_us(), wake = now + 100000;
		int active = 0;
		for (int i = 0; i < w->nc; i++) {
			struct conn *c = w->c[i];
			if (c->busy) {
				active = 1;
				if (now - c->t_sent > ANSWER_TIMEOUT_US) {
					finish(w, c, -1);
					hang_up(w, c);
				}
				continue;
			}
			if (c->done)
				continue;
			if (atomic_load(&stop_flag) || (!create_mode && (now >= end || (rate > 0 && c->next_due >= end)))) {
				c->done = 1;
				continue;
			}
			if (rate > 0 && !create_mode) {
				if (c->next_due > now) {
					if (c->next_due < wake)
						wake = c->next_due;
					active = 1;
					continue;
				}
				c->t_due = c->next_due;
				c->next_due += (int64_t)((double)nconns * 1e6 / rate);
				if (now - c->t_due > LATE_US)
					atomic_fetch_add(&n_late, 1);
			}
			next_request(w, c);
			active |= c->busy || !c->done;
		}
		if (!active)
			break;
		int k = wait_events(w->ep, evs, 256, wake > now ? wake - now : 0);
		for (int i = 0; i < k; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->fd < 0)
				continue;
			if ((evs[i].events & EPOLLOUT) && c->busy && c->ooff < c->olen) {
				if (push(w, c) < 0) {
					finish(w, c, -1);
					hang_up(w, c);
					continue;
				}
				if (c->ooff == c->olen) {
					struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
					epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(w, c);
		}
		/* saturation: an idle connection sends its next message at once (in the loop above) */
	}
	return NULL;
}

static void on_stop(int s)
{
	(void)s;
	atomic_store(&stop_flag, 1);
}

static void usage(FILE *f)
{
	fputs("usage: publish [options] http://127.0.0.1:PORT/PATH\n"
	      "  --rate R          messages per second in all (default 1); 0 = as fast as possible\n"
	      "  --connections C   keep-alive connections (default 1, at most 1024)\n"
	      "  --threads T       client threads sharing the connections (default 1)\n"
	      "  --duration S      seconds to publish (default 30)\n"
	      "  --count N         stop after N messages\n"
	      "  --first-id N      id of the first message (default 1)\n"
	      "  --size BYTES      message size (default 100)\n"
	      "  --content-type T  (default application/json)\n"
	      "  --streams N       POST to PATH-0 .. PATH-(N-1) in turn (default 1: PATH itself)\n"
	      "  --producer        idempotent producer headers, one producer per connection\n"
	      "  --create          PUT each stream once (PATH, or PATH-0 .. PATH-(N-1)) and exit\n"
	      "  --header 'N: V'   add this header to every request (repeatable)\n"
	      "  -v                print the status of non-2xx responses\n",
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
	if (!strcmp(a, "--create")) {
		create_mode = 1;
		return 1;
	}
	if (!v)
		return 0;
	if (!strcmp(a, "--rate"))
		rate = atof(v);
	else if (!strcmp(a, "--connections"))
		nconns = atoi(v);
	else if (!strcmp(a, "--threads"))
		nthreads = atoi(v);
	else if (!strcmp(a, "--duration"))
		duration = atof(v);
	else if (!strcmp(a, "--count"))
		count_limit = atol(v);
	else if (!strcmp(a, "--first-id"))
		first_id = strtoull(v, NULL, 10);
	else if (!strcmp(a, "--size"))
		size = atoi(v);
	else if (!strcmp(a, "--streams"))
		nstreams = atol(v);
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

/* the latencies of all workers, sorted: *n of them */
static uint32_t *gather(struct worker *ws, int nw, int sched, size_t *n)
{
	size_t nl = 0, k = 0;
	for (int i = 0; i < nw; i++)
		nl += ws[i].nlat;
	uint32_t *all = xrealloc(NULL, (nl ? nl : 1) * sizeof *all);
	for (int i = 0; i < nw; i++) {
		if (ws[i].nlat)
			memcpy(all + k, sched ? ws[i].slat : ws[i].lat, ws[i].nlat * sizeof *all);
		k += ws[i].nlat;
	}
	qsort(all, nl, sizeof *all, cmp_u32);
	*n = nl;
	return all;
}

/* the summary line */
static void report(struct worker *ws, int nw, double elapsed)
{
	long sent = atomic_load(&n_sent);
	double r = elapsed > 0 ? (double)sent / elapsed : 0.0;
	if (create_mode) {
		printf("created=%ld ok=%ld non2xx=%ld errors=%ld elapsed_s=%.3f rate=%.1f\n", sent,
		       atomic_load(&n_ok), atomic_load(&n_non2xx), atomic_load(&n_err), elapsed, r);
		return;
	}
	size_t nl;
	uint32_t *all = gather(ws, nw, 0, &nl);
	double p50 = pct_u32(all, nl, 0.50) / 1e3, p99 = pct_u32(all, nl, 0.99) / 1e3;
	double mx = pct_u32(all, nl, 1.0) / 1e3;
	free(all);
	uint64_t last = atomic_load(&next_id) - 1;
	printf("sent=%ld ok=%ld non2xx=%ld errors=%ld first_id=%" PRIu64 " last_id=%" PRIu64
	       " elapsed_s=%.3f rate=%.1f append_p50_ms=%.2f append_p99_ms=%.2f append_max_ms=%.2f"
	       " t_start=%" PRId64 " t_end=%" PRId64,
	       sent, atomic_load(&n_ok), atomic_load(&n_non2xx), atomic_load(&n_err), first_id, last, elapsed, r,
	       p50, p99, mx, t_start_us, t_end_us);
	if (rate > 0) {
		all = gather(ws, nw, 1, &nl);
		printf(" late=%ld sched_p50_ms=%.2f sched_p99_ms=%.2f", atomic_load(&n_late),
		       pct_u32(all, nl, 0.50) / 1e3, pct_u32(all, nl, 0.99) / 1e3);
		free(all);
	}
	printf("\n");
}

int main(int argc, char **argv)
{
	const char *url = parse_args(argc, argv, option, usage);
	if (!url || nconns < 1 || nconns > MAX_CONNS || nthreads < 1 || nthreads > MAX_THREADS || duration <= 0 ||
	    nstreams < 1 || nstreams > MAX_STREAMS || duration > 3600 || rate < 0 ||
	    (producer && (double)nconns * (double)nstreams > 64e6)) {
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
	if (nthreads > nconns)
		nthreads = nconns;
	struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
	struct conn *cs = calloc((size_t)nconns, sizeof *cs);
	if (!ws || !cs)
		return 2;
	for (int t = 0; t < nthreads; t++) {
		ws[t].ep = epoll_create1(EPOLL_CLOEXEC);
		ws[t].c = xrealloc(NULL, (size_t)nconns * sizeof *ws[t].c);
		if (ws[t].ep < 0)
			return 2;
	}
	for (int i = 0; i < nconns; i++) {
		struct conn *c = &cs[i];
		c->index = i;
		c->out = xrealloc(NULL, OUT_CAP);
		c->in = xrealloc(NULL, IN_CAP);
		if (producer) {
			c->seq = calloc((size_t)nstreams, sizeof *c->seq);
			if (!c->seq)
				return 2;
		}
		struct worker *w = &ws[i % nthreads];
		w->c[w->nc++] = c;
	}
	t_start_us = now_us();
	m_start = mono_us();
	for (int t = 0; t < nthreads; t++)
		pthread_create(&ws[t].th, NULL, run_worker, &ws[t]);
	for (int t = 0; t < nthreads; t++)
		pthread_join(ws[t].th, NULL);
	m_end = mono_us();
	t_end_us = now_us();
	report(ws, nthreads, (double)(m_end - m_start) / 1e6);
	return atomic_load(&n_err) || atomic_load(&n_non2xx) ? 1 : 0;
}
