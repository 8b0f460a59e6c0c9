/* bench.h: helpers shared by the benchmark clients (publish.c, sse-load.c).
 * Include it after `#define _GNU_SOURCE` and before the program's own code. */
#ifndef LS_BENCH_H
#define LS_BENCH_H
#ifndef _GNU_SOURCE
#error "define _GNU_SOURCE before including bench.h"
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- clocks ---------------------------------------------------------------- */

/* Microseconds on clock `id` (since the epoch for CLOCK_REALTIME). */
static inline int64_t clock_us(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Microseconds since the epoch (the clock messages carry). */
static inline int64_t now_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

/* Microseconds on the monotonic clock (for intervals and deadlines). */
static inline int64_t mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

/* Milliseconds on the monotonic clock (for intervals and deadlines). */
static inline int64_t mono_ms(void)
{
	return mono_us() / 1000;
}

/* ---- statistics ------------------------------------------------------------ */

/* qsort comparator for uint32_t, ascending. */
static inline int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The p-quantile (0 <= p <= 1) of n ascending values: v[floor(p * (n - 1))], 0 if n is 0. */
static inline uint32_t pct_u32(const uint32_t *v, size_t n, double p)
{
	return n ? v[(size_t)(p * (double)(n - 1))] : 0;
}

/* ---- command line and signals ---------------------------------------------- */

/* Runs the shared command-line grammar: -h/--help prints usage to stdout and
 * exits 0; every other argument goes to option(arg, next argument or NULL),
 * which returns how many arguments it took (0: not one of its options); the
 * first argument not starting with '-' that no option took is the URL;
 * anything else prints usage to stderr and exits 2. Returns the URL or NULL. */
static inline const char *parse_args(int argc, char **argv, int (*option)(const char *, const char *),
                                     void (*usage)(FILE *))
{
	const char *url = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		int took = option(a, v);
		if (took > 0)
			i += took - 1;
		else if (a[0] != '-' && !url)
			url = a;
		else {
			usage(stderr);
			exit(2);
		}
	}
	return url;
}

/* Sends each of sigs[0..n) to fn (no SA_RESTART: blocking calls return EINTR)
 * and ignores SIGPIPE (a closed peer shows as a failed write instead). */
static inline void catch_signals(void (*fn)(int), const int *sigs, size_t n)
{
	struct sigaction sa = { .sa_handler = fn };
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < n; i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- loopback target and TCP -------------------------------------------------- */

/* 1 if the IPv4 address a is in 127.0.0.0/8 (loopback), else 0. */
static inline int is_loopback(const struct sockaddr_in *a)
{
	return a->sin_family == AF_INET && (ntohl(a->sin_addr.s_addr) >> 24) == 127;
}

/* Splits http://HOST:PORT/path?query into the Host header, the request
 * target and a loopback IPv4 address. Returns NULL, or why the URL is not
 * usable (only loopback targets are accepted: these tools load a server). */
static inline const char *parse_loopback_url(const char *url, char *host, size_t hcap, char *path,
                                             size_t pcap, struct sockaddr_in *dst)
{
	if (strncmp(url, "http://", 7))
		return "only http:// URLs";
	const char *h = url + 7, *slash = strchr(h, '/');
	if (!slash)
		slash = h + strlen(h);
	if ((size_t)(slash - h) >= hcap)
		return "host too long";
	memcpy(host, h, (size_t)(slash - h));
	host[slash - h] = '\0';
	snprintf(path, pcap, "%s", *slash ? slash : "/");
	char hostonly[300];
	snprintf(hostonly, sizeof hostonly, "%s", host);
	int port = 80;
	char *colon = strrchr(hostonly, ':');
	if (colon) {
		*colon = '\0';
		port = atoi(colon + 1);
	}
	if (!strcmp(hostonly, "localhost"))
		strcpy(hostonly, "127.0.0.1");
	memset(dst, 0, sizeof *dst);
	dst->sin_family = AF_INET;
	dst->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, hostonly, &dst->sin_addr) != 1)
		return "host must be an IPv4 address (loopback)";
	if (!is_loopback(dst))
		return "refusing a non-loopback target: this tool is for loopback benchmarks only";
	return NULL;
}

/* A TCP/IPv4 socket (SOCK_CLOEXEC | flags, e.g. SOCK_NONBLOCK) with Nagle off; -1 (errno) if none. */
static inline int tcp_socket(int flags)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Connects fd to the loopback address dst: 0 connected, 1 under way (EINPROGRESS), -1 failed
 * (errno; EACCES for a destination outside 127.0.0.0/8, which is never tried). */
static inline int tcp_connect(int fd, const struct sockaddr_in *dst)
{
	if (!is_loopback(dst)) {
		errno = EACCES;
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)dst, sizeof *dst) == 0)
		return 0;
	return errno == EINPROGRESS ? 1 : -1;
}

/* Writes all n bytes of p to fd, retrying after EINTR and short writes: 0, or -1 (errno;
 * on a non-blocking socket a full send buffer, EAGAIN, is a failure too). */
static inline int write_all(int fd, const char *p, size_t n)
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

/* ---- HTTP/1.x response heads ------------------------------------------------- */

/* The status code of the response head r[0..n) ("HTTP/M.N CODE ..."), or -1 if
 * it does not start with a status line; *minor (if not NULL) gets N when M is 1, else -1. */
static inline int http_status(const char *r, size_t n, int *minor)
{
	char line[64]; /* the status line, bounded and terminated for sscanf */
	size_t k = 0;
	for (; k < n && k < sizeof line - 1 && r[k] != '\r' && r[k] != '\n'; k++)
		line[k] = r[k];
	line[k] = '\0';
	int major, mi, status;
	if (sscanf(line, "HTTP/%d.%d %d", &major, &mi, &status) != 3)
		return -1;
	if (minor)
		*minor = major == 1 ? mi : -1;
	return status;
}

/* Iterates over the header fields of a response head that ends at `end` (just
 * after its blank line): pass the head's start first, then each return value.
 * Sets the field's name (*name, *nlen) and value without surrounding blanks
 * (*val, *vlen; the value is followed by "\r\n" in the buffer) and returns
 * where the field ends; NULL after the last field. Lines without ':' are skipped. */
static inline const char *http_next_header(const char *p, const char *end, const char **name,
                                           size_t *nlen, const char **val, size_t *vlen)
{
	for (;;) {
		const char *l = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!l || l + 2 >= end)
			return NULL;
		const char *h = l + 2, *e = memmem(h, (size_t)(end - h), "\r\n", 2);
		if (!e || e == h)
			return NULL;
		const char *colon = memchr(h, ':', (size_t)(e - h));
		p = e;
		if (!colon)
			continue;
		const char *v = colon + 1, *ve = e;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
			ve--;
		*name = h;
		*nlen = (size_t)(colon - h);
		*val = v;
		*vlen = (size_t)(ve - v);
		return e;
	}
}

/* 1 if the header name n[0..nlen) is `want` (ASCII case ignored), else 0. */
static inline int header_is(const char *n, size_t nlen, const char *want)
{
	return strlen(want) == nlen && !strncasecmp(n, want, nlen);
}

/* 1 if the header value v[0..vlen) contains `word` (ASCII case ignored), else 0. */
static inline int value_has(const char *v, size_t vlen, const char *word)
{
	size_t wl = strlen(word);
	for (size_t i = 0; i + wl <= vlen; i++)
		if (!strncasecmp(v + i, word, wl))
			return 1;
	return 0;
}

#endif
