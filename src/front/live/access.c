/* access.c: lmstream-live's access log: one line per completed request. */
#include "front/live/live.h"
#include "lib/log.h"
#include "lib/parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The line, fields separated by one space (docs/operations.md, "Logs"):
 *
 *   TIME CLIENT METHOD PATH LIVE STATUS BYTES MS
 *
 * TIME when the request completed (UTC, ISO 8601 with milliseconds);
 * CLIENT the peer's address, or behind the web server the address it
 * forwarded; PATH the request's path as sent, without its query (a token
 * may be there); LIVE "-", "long-poll" or "sse" as the request asked
 * (?live=), also when it was answered at once or refused; STATUS the
 * status sent, "-" when none was (the client left first); BYTES the body
 * bytes sent: a whole response's body, or the events handed out to an SSE
 * connection, "-" when a whole response did not complete; MS from the
 * request's headers to its completion. Nothing of the query, of Authorization or of
 * a cookie is ever written. A byte that could end or split a field (a
 * control byte, a space, '"', '\' and anything outside ASCII) is written
 * \xHH, so a request cannot forge a line or a field.
 *
 * The descriptor is opened once (main) with O_APPEND and each line is one
 * write(2) of at most ACCESS_LINE_MAX bytes (atomic on a pipe too), so
 * lines of the threads and of a group's processes never interleave. On
 * SIGHUP (logrotate) a new descriptor is put in its place with dup2, which
 * the writing threads never see half done. */

#define ACCESS_LINE_MAX 4096 /* PIPE_BUF: a write to a pipe (journald) is atomic up to this */
#define ACCESS_PATH_MAX 3072 /* bytes of the escaped path; longer ones end with "..." */

static int access_fd = -1;   /* -1: no access log */
static int access_file;      /* access_fd is our file (not stderr): reopened on SIGHUP */

static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		log_error("cannot open access_log %s: %s", path, strerror(errno));
	return fd;
}

int access_open(void)
{
	const char *path = live.cfg.access_log;
	if (!path[0])
		return 0;
	if (!strcmp(path, "-")) {
		access_fd = STDERR_FILENO;
		return 0;
	}
	access_fd = open_log(path);
	access_file = access_fd >= 0;
	return access_fd >= 0 ? 0 : -1;
}

void access_reopen(void)
{
	if (!access_file)
		return;
	int fd = open_log(live.cfg.access_log);
	if (fd < 0)
		return; /* lines go on to the old file */
	if (dup2(fd, access_fd) < 0)
		log_error("cannot reopen access_log %s: %s", live.cfg.access_log, strerror(errno));
	close(fd);
}

/* Behind the web server: the client's address it appended, from for= of
 * its Forwarded element (lighttpd), or the last entry of X-Forwarded-For
 * (Apache's mod_proxy adds it after whatever the client sent). */
static void forwarded_client(struct conn *c)
{
	const char *fw = conn_last_header(c->mc, "Forwarded");
	if (fw && parse_forwarded_last(fw, "for", c->client, sizeof c->client) > 0)
		return;
	const char *xff = conn_last_header(c->mc, "X-Forwarded-For");
	if (!xff)
		return;
	const char *v = strrchr(xff, ',');
	v = v ? v + 1 : xff;
	v += strspn(v, " \t");
	size_t n = strcspn(v, " \t");
	if (n >= sizeof c->client)
		n = sizeof c->client - 1;
	memcpy(c->client, v, n);
	c->client[n] = '\0';
}

/* On a TCP port: the peer's address. */
static void peer_client(struct conn *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	if (!sa)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		          c->client, sizeof c->client);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          c->client, sizeof c->client);
}

void access_begin(struct conn *c, const char *method)
{
	c->started = store_mono_ms();
	snprintf(c->method, sizeof c->method, "%s", method ? method : "");
	if (access_fd < 0)
		return;
	if (live.behind_proxy)
		forwarded_client(c);
	else
		peer_client(c);
}

void access_sent(struct conn *c, int status, uint64_t bytes)
{
	c->status = status;
	c->sent = c->req.method == M_HEAD ? 0 : bytes; /* libmicrohttpd sends no body for HEAD */
}

/* The live mode the request asked for (?live=), which it keeps when it was
 * answered at once (data was there) or refused: "long-poll", "sse" or "-".
 * Only this one parameter of the query is looked at. */
static const char *live_mode(const struct conn *c)
{
	if (c->kind == K_SSE)
		return "sse";
	if (c->kind == K_LONGPOLL)
		return "long-poll";
	const char *q = c->query ? c->query : "";
	size_t pos = 0;
	struct query_pair p;
	const char *mode = "-";
	while (parse_query_next(q, strlen(q), &pos, &p)) {
		if (p.klen != 4 || memcmp(p.key, "live", 4))
			continue;
		if (p.vlen == 3 && !memcmp(p.val, "sse", 3))
			mode = "sse";
		else if (p.vlen == 9 && !memcmp(p.val, "long-poll", 9))
			mode = "long-poll";
	}
	return mode;
}

/* Appends the n bytes at s to line (len bytes so far) as one field, at most
 * max bytes of it, escaping what could end or split a field; "-" for an
 * empty field. Returns the new length. */
static size_t put_field(char *line, size_t len, const char *s, size_t n, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t start = len;
	if (!n) {
		line[len++] = '-';
		return len;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)s[i];
		int plain = b > 0x20 && b < 0x7f && b != '"' && b != '\\';
		if (len - start + (plain ? 1 : 4) > max - 3) {
			memcpy(line + len, "...", 3);
			return len + 3;
		}
		if (plain) {
			line[len++] = (char)b;
		} else {
			line[len++] = '\\';
			line[len++] = 'x';
			line[len++] = hex[b >> 4];
			line[len++] = hex[b & 15];
		}
	}
	return len;
}

/* The fields of c's line known once its request is in: CLIENT METHOD PATH
 * LIVE, into line (at least ACCESS_LINE_MAX bytes). Returns their length. */
static size_t request_fields(const struct conn *c, char *line)
{
	const char *path = c->target ? c->target : "";
	size_t len = put_field(line, 0, c->client, strlen(c->client), 96);
	line[len++] = ' ';
	len = put_field(line, len, c->method, strlen(c->method), sizeof c->method + 3);
	line[len++] = ' ';
	len = put_field(line, len, path, strcspn(path, "?"), ACCESS_PATH_MAX);
	int n = snprintf(line + len, ACCESS_LINE_MAX - len, " %s", live_mode(c));
	return len + (n > 0 ? (size_t)n : 0);
}

/* Writes one line: the time, the request's fields, STATUS BYTES MS (status
 * 0 and bytes UINT64_MAX: "-"). */
static void write_line(const char *fields, size_t flen, int status, uint64_t bytes, int64_t started)
{
	char line[ACCESS_LINE_MAX], when[32], st[16] = "-", by[24] = "-";
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t wl = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + wl, sizeof when - wl, ".%03ldZ", now.tv_nsec / 1000000);
	if (status)
		snprintf(st, sizeof st, "%d", status);
	if (bytes != UINT64_MAX)
		snprintf(by, sizeof by, "%llu", (unsigned long long)bytes);
	int n = snprintf(line, sizeof line, "%s %.*s %s %s %lld\n", when, (int)flen, fields, st, by,
	                 (long long)(store_mono_ms() - started));
	if (n < 0 || (size_t)n >= sizeof line)
		return; /* cannot happen: the fields are bounded */
	/* One write: a line is never split or mixed with another. */
	ssize_t w;
	do
		w = write(access_fd, line, (size_t)n);
	while (w < 0 && errno == EINTR);
}

void access_end(const struct conn *c, int completed)
{
	char fields[ACCESS_LINE_MAX];
	if (access_fd < 0)
		return;
	/* A whole response's body counts when it went out whole; an SSE
	 * response's, whatever was handed out. */
	uint64_t bytes = c->status && (completed || c->kind == K_SSE) ? c->sent : UINT64_MAX;
	write_line(fields, request_fields(c, fields), c->status, bytes, c->started);
}

char *access_fields(const struct conn *c)
{
	char fields[ACCESS_LINE_MAX];
	if (access_fd < 0)
		return NULL;
	size_t n = request_fields(c, fields);
	char *copy = malloc(n + 1);
	if (copy) {
		memcpy(copy, fields, n);
		copy[n] = '\0';
	}
	return copy;
}

void access_end_fields(const char *fields, int status, uint64_t bytes, int64_t started)
{
	if (access_fd >= 0 && fields)
		write_line(fields, strlen(fields), status, bytes, started);
}
