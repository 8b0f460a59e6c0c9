/* edge.c: what lmstream-live refuses before a request reaches the core:
 * methods it must not take behind a web server, NUL bytes, two lengths, a
 * body over max_body or over the memory budget; connections slow to send
 * their headers; request lines libmicrohttpd drops without an answer. */
#include "front/live/live.h"
#include "lib/log.h"
#include "store/store.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* One slot per descriptor number: the connection on that descriptor. */
enum {
	SLOT_OPEN = 1,      /* a connection of libmicrohttpd's holds this descriptor */
	SLOT_REQUEST = 2,   /* it has begun at least one request */
	SLOT_ANSWERED = 4,  /* edge.c wrote an answer itself (408 or 400) */
	SLOT_TCP = 8,
};

struct slot {
	_Atomic int64_t since;  /* waiting for headers since (monotonic ms); 0: not waiting */
	atomic_int flags;
	/* Written by the scan only: the wait it found over time with nothing
	 * unread, and when (see edge_scan). */
	int64_t late_since, late_seen;
};

/* How long a wait found over time with nothing left unread is given before
 * its 408: libmicrohttpd's thread may have read the last bytes of the
 * headers and not yet parsed them. */
#define LATE_GRACE_MS 250

static struct {
	struct slot *slots;
	int nslots;
	/* Held while a descriptor's slot is closed, and while the scan writes
	 * to a descriptor: libmicrohttpd closes a descriptor only after its
	 * CLOSED notice, so the scan never writes to a reused number. */
	pthread_mutex_t lock;
	atomic_ullong buffered;  /* bytes held for bodies and unsent events */
} edge = { .lock = PTHREAD_MUTEX_INITIALIZER };

int edge_open(int nfds)
{
	edge.slots = calloc((size_t)nfds, sizeof *edge.slots);
	if (!edge.slots)
		return -1;
	edge.nslots = nfds;
	return 0;
}

void edge_close(void)
{
	free(edge.slots);
	edge.slots = NULL;
	edge.nslots = 0;
}

static struct slot *slot_of(struct MHD_Connection *mc, int *fdp)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	int fd = ci ? ci->connect_fd : -1;
	if (fdp)
		*fdp = fd;
	return fd >= 0 && fd < edge.nslots ? &edge.slots[fd] : NULL;
}

/* --- the memory budget ------------------------------------------------------ */

int edge_budget_take(uint64_t n)
{
	unsigned long long cur = atomic_load(&edge.buffered);
	do {
		if (cur + n > live.cfg.memory_budget || cur + n < cur)
			return -1;
	} while (!atomic_compare_exchange_weak(&edge.buffered, &cur, cur + n));
	return 0;
}

void edge_budget_add(uint64_t n)
{
	atomic_fetch_add(&edge.buffered, n);
}

void edge_budget_give(uint64_t n)
{
	atomic_fetch_sub(&edge.buffered, n);
}

uint64_t edge_buffered(void)
{
	return atomic_load(&edge.buffered);
}

/* --- NUL bytes --------------------------------------------------------------- */

/* libmicrohttpd 0.9.75 keeps the request line and the headers in its read
 * buffer, turns each separator it consumes (the spaces of the request line,
 * '?', '&' and '=' of the query, the colon of a header, CR and LF) into a
 * NUL, and hands out pointers into that buffer; it measures every string
 * with strlen. A NUL sent by the client therefore ends a string early and
 * hides the bytes after it (a path "nul1\0x" becomes "nul1"). Those bytes
 * are still in the buffer: any run of bytes that starts neither a string
 * libmicrohttpd handed out nor is blank came after a client's NUL. (A NUL
 * just before a bare LF is indistinguishable from CR LF and hides nothing.) */

struct starts {
	const char **v;
	size_t n, cap;
};

static enum MHD_Result note_start(void *cls, enum MHD_ValueKind kind, const char *key, size_t klen,
                                  const char *value, size_t vlen)
{
	struct starts *s = cls;
	(void)kind;
	(void)klen;
	(void)vlen;
	if (s->n + 2 > s->cap)
		return MHD_NO;
	s->v[s->n++] = key;
	if (value)
		s->v[s->n++] = value;
	return MHD_YES;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const char *const *)a, y = (uintptr_t) * (const char *const *)b;
	return x < y ? -1 : x > y;
}

/* 1 when the header block [block, block + size) holds bytes no string of
 * starts (sorted) begins: bytes a client's NUL hid. */
static int hidden_bytes(const char *block, size_t size, const struct starts *s)
{
	size_t i = 0;
	while (i < size) {
		if (block[i] == '\0') {
			i++;
			continue;
		}
		size_t j = i;
		while (j < size && (block[j] == ' ' || block[j] == '\t'))
			j++;
		if (j == size || block[j] == '\0') {
			i = j;
			continue;
		}
		const char *p = block + j;
		if (!bsearch(&p, s->v, s->n, sizeof *s->v, cmp_ptr))
			return 1;
		i = j + strnlen(p, size - j);
	}
	return 0;
}

static int has_nul(struct MHD_Connection *mc, const char *method, const char *url, const char *version)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	if (!ci || !ci->header_size)
		return 0;
	const char *few[64];
	int n = MHD_get_connection_values(mc, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, NULL, NULL);
	struct starts s = { few, 0, (size_t)(n > 0 ? n : 0) * 2 + 3 };
	if (s.cap > sizeof few / sizeof few[0] && !(s.v = malloc(s.cap * sizeof *s.v)))
		return 0;
	s.v[s.n++] = method;
	s.v[s.n++] = url;
	s.v[s.n++] = version;
	MHD_get_connection_values_n(mc, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, note_start, &s);
	qsort(s.v, s.n, sizeof *s.v, cmp_ptr);
	int hidden = hidden_bytes(method, ci->header_size, &s);
	if (s.v != few)
		free(s.v);
	return hidden;
}

/* --- the checks of a request's first call ----------------------------------- */

struct lengths {
	int content_length, transfer_encoding;
};

static enum MHD_Result count_lengths(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct lengths *l = cls;
	(void)kind;
	(void)value;
	if (!strcasecmp(key, "Content-Length"))
		l->content_length++;
	else if (!strcasecmp(key, "Transfer-Encoding"))
		l->transfer_encoding++;
	return MHD_YES;
}

/* libmicrohttpd builds the answer in the connection's pool (conn_memory),
 * next to the request's headers, and wants about half of the pool for it:
 * headers that fit in the pool but leave less would get the connection
 * closed without any answer. Those get 431, as larger ones get from
 * libmicrohttpd itself. */
static int headers_too_large(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	size_t room = (size_t)live.cfg.conn_memory / 2;
	room = room > LS_ANSWER_ROOM ? room - LS_ANSWER_ROOM : 0;
	return ci && ci->header_size > room;
}

enum proto_err edge_check(struct conn *c, const char *method, const char *url, const char *version)
{
	struct MHD_Connection *mc = c->mc;
	enum proto_method m = c->req.method;
	if (has_nul(mc, method, url, version))
		return E_NUL;
	if (headers_too_large(mc))
		return E_HEADERS_TOO_LARGE;
	struct lengths l = { 0, 0 };
	MHD_get_connection_values(mc, MHD_HEADER_KIND, count_lengths, &l);
	if (l.content_length > 1 || (l.content_length && l.transfer_encoding))
		return E_CONTENT_LENGTH;
	if (live.behind_proxy && m != M_GET && m != M_HEAD && m != M_OPTIONS)
		return E_LIVE_ONLY;
	const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
	if (!cl)
		return E_OK;
	uint64_t len = strtoull(cl, NULL, 10); /* libmicrohttpd checked its digits */
	if (len > live.cfg.max_body)
		return E_BODY_TOO_LARGE;
	if (len && edge_budget_take(len) < 0)
		return E_MEMORY_BUDGET;
	c->reserved = len;
	return E_OK;
}

/* --- connections: the header deadline and dropped request lines --------------- */

void edge_connection(struct MHD_Connection *mc, int started)
{
	int fd;
	struct slot *s = slot_of(mc, &fd);
	if (!s)
		return;
	if (started) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		int tcp = ci && ci->client_addr &&
		          (ci->client_addr->sa_family == AF_INET || ci->client_addr->sa_family == AF_INET6);
		atomic_store(&s->flags, SLOT_OPEN | (tcp ? SLOT_TCP : 0));
		atomic_store(&s->since, store_mono_ms());
		return;
	}
	pthread_mutex_lock(&edge.lock);
	int flags = atomic_exchange(&s->flags, 0);
	atomic_store(&s->since, 0);
	pthread_mutex_unlock(&edge.lock);
	/* libmicrohttpd closes a connection whose first line has no space
	 * without a word. When that is what happened (bytes came, no request
	 * began, nothing was sent) the client gets a 400 before the close. */
	if ((flags & (SLOT_TCP | SLOT_REQUEST | SLOT_ANSWERED)) != SLOT_TCP)
		return;
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_data_segs_out) + sizeof ti.tcpi_data_segs_out)
		return;
	if (ti.tcpi_bytes_received > 0 && ti.tcpi_data_segs_out == 0) {
		static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
		                          "Content-Length: 23\r\nConnection: close\r\n\r\n"
		                          "malformed request line\n";
		(void)!send(fd, bad, sizeof bad - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		proto_count_status(400, E_OK);
	}
}

void edge_request_begins(struct MHD_Connection *mc)
{
	struct slot *s = slot_of(mc, NULL);
	if (!s)
		return;
	atomic_store(&s->since, 0);
	atomic_fetch_or(&s->flags, SLOT_REQUEST);
}

void edge_request_ends(struct MHD_Connection *mc)
{
	struct slot *s = slot_of(mc, NULL);
	if (s && (atomic_load(&s->flags) & SLOT_OPEN))
		atomic_store(&s->since, store_mono_ms());
}

void edge_scan(int64_t now)
{
	static const char late[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                           "Content-Length: 37\r\nConnection: close\r\n\r\n"
	                           "the request's headers came too slowly\n";
	int closed = 0;
	for (int fd = 0; fd < edge.nslots; fd++) {
		struct slot *s = &edge.slots[fd];
		int64_t since = atomic_load(&s->since);
		if (!since || now - since < live.cfg.header_timeout_ms)
			continue;
		/* Bytes the client sent that are still in the socket's buffer: the
		 * wait is ours (a burst of connections, a starved process), not the
		 * client's; looked at again on the next scan. */
		int unread = 0;
		if (ioctl(fd, FIONREAD, &unread) == 0 && unread > 0)
			continue;
		/* Nothing unread: the headers may be read and not yet parsed (a
		 * thread starved or just resumed). The 408 goes out on a later
		 * scan if the same wait is still there. */
		if (s->late_since != since) {
			s->late_since = since;
			s->late_seen = now;
			continue;
		}
		if (now - s->late_seen < LATE_GRACE_MS)
			continue;
		pthread_mutex_lock(&edge.lock);
		/* Still the same wait on the same connection? */
		if (atomic_compare_exchange_strong(&s->since, &since, 0) && (atomic_load(&s->flags) & SLOT_OPEN)) {
			atomic_fetch_or(&s->flags, SLOT_ANSWERED);
			(void)!send(fd, late, sizeof late - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			proto_count_status(408, E_OK);
			/* libmicrohttpd sees the end of the stream and closes it. */
			shutdown(fd, SHUT_RDWR);
			closed++;
		}
		pthread_mutex_unlock(&edge.lock);
	}
	if (closed)
		log_debug("closed %d connection(s) that sent no complete request within %d ms", closed,
		          live.cfg.header_timeout_ms);
}
