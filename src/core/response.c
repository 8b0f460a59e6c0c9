/* response.c: the error table, status texts and the response helpers. */
#include "core/response.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/num.h"
#include "lib/parse.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

static const struct {
	int status;
	const char *reason;
} errors[E__COUNT] = {
	[E_OK] = { 200, "" },
#define LS_ERR_ROW(name, status, reason) [name] = { status, reason },
	PROTO_ERRORS(LS_ERR_ROW)
#undef LS_ERR_ROW
};

int proto_err_status(enum proto_err e)
{
	return (unsigned)e < E__COUNT ? errors[e].status : 500;
}

const char *proto_err_reason(enum proto_err e)
{
	return (unsigned)e < E__COUNT ? errors[e].reason : "internal error";
}

const char *proto_status_text(int status)
{
	static const struct { int status; const char *text; } texts[] = {
		{ 200, "OK" }, { 201, "Created" }, { 204, "No Content" }, { 304, "Not Modified" },
		{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" }, { 409, "Conflict" },
		{ 410, "Gone" }, { 412, "Precondition Failed" }, { 413, "Payload Too Large" }, { 414, "URI Too Long" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
		{ 503, "Service Unavailable" }, { 507, "Insufficient Storage" },
	};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
		if (texts[i].status == status)
			return texts[i].text;
	return "Unknown";
}

/* The request headers a browser may send: the table's, then the methods. */
static const char EXPOSE_HEADERS[] =
	"Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, "
	"Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, "
	"Producer-Expected-Seq, Producer-Received-Seq, ETag, Location, Content-Type, Stream-State, "
	"Stream-Retention-Age, Stream-Retention-Bytes, Stream-Earliest-Offset, Stream-Snapshot-Next, Link";
const char proto_allow_methods[] = "GET, HEAD, POST, PUT, DELETE, OPTIONS";

void proto_response_init(struct proto_response *r)
{
	buf_init(&r->body);
	proto_response_reset(r);
}

void proto_response_reset(struct proto_response *r)
{
	r->status = 0;
	r->reason = NULL;
	r->nheaders = 0;
	r->hlen = 0;
	r->action = PROTO_DONE;
	r->err = E_OK;
	buf_reset(&r->body);
}

void proto_response_free(struct proto_response *r)
{
	buf_free(&r->body);
}

int proto_add_header(struct proto_response *r, const char *name, const char *value)
{
	size_t n = strlen(value);
	if (r->nheaders >= PROTO_MAX_HEADERS || r->hlen + n + 1 > sizeof r->hbuf) {
		log_error("response header space exhausted adding %s", name);
		return -1;
	}
	char *dst = r->hbuf + r->hlen;
	memcpy(dst, value, n + 1);
	r->hlen += n + 1;
	r->headers[r->nheaders].name = name;
	r->headers[r->nheaders].value = dst;
	r->nheaders++;
	return 0;
}

const char *proto_get_header(const struct proto_response *r, const char *name)
{
	for (int i = 0; i < r->nheaders; i++)
		if (!strcasecmp(r->headers[i].name, name))
			return r->headers[i].value;
	return NULL;
}

void resp_set_header(struct proto_response *r, const char *name, const char *value)
{
	for (int i = 0; i < r->nheaders; i++) {
		if (strcasecmp(r->headers[i].name, name))
			continue;
		if (value) {
			/* The old value stays in hbuf until the response is reset. */
			int n = r->nheaders;
			if (proto_add_header(r, r->headers[i].name, value) == 0) {
				r->headers[i].value = r->headers[n].value;
				r->nheaders = n;
			}
			return;
		}
		memmove(&r->headers[i], &r->headers[i + 1], (size_t)(r->nheaders - i - 1) * sizeof r->headers[0]);
		r->nheaders--;
		return;
	}
	if (value)
		proto_add_header(r, name, value);
}

void resp_start(struct proto_response *r, int status)
{
	r->status = status;
	proto_add_header(r, "Access-Control-Allow-Origin", "*");
	proto_add_header(r, "Access-Control-Expose-Headers", EXPOSE_HEADERS);
	proto_add_header(r, "X-Content-Type-Options", "nosniff");
	proto_add_header(r, "Cross-Origin-Resource-Policy", "cross-origin");
	/* Whatever a stream holds, a browser that opens it as a page runs
	 * nothing of it: no script, no plugin, no form, an opaque origin. */
	proto_add_header(r, "Content-Security-Policy", "sandbox");
}

/* Media types a browser renders as documents that may act: HTML, XHTML,
 * SVG, XML (with XSLT), and multipart (x-mixed-replace). A value listing
 * several types ("text/plain; x=a, text/html") is judged by the first here
 * and by the last in browsers: it takes no chance either. */
static int renders_active(const char *ct)
{
	char mt[LS_MAX_CONTENT_TYPE + 1];
	if (strchr(ct, ',') || parse_media_type(ct, strlen(ct), mt, sizeof mt) <= 0)
		return 1; /* not understood: take no chance */
	return strstr(mt, "html") || strstr(mt, "xml") || strstr(mt, "svg") || strstr(mt, "xsl") ||
	       !strncmp(mt, "multipart/", 10);
}

void resp_add_stream_type(struct proto_response *r, const char *content_type)
{
	proto_add_header(r, "Content-Type", content_type);
	if (renders_active(content_type))
		proto_add_header(r, "Content-Disposition", "attachment");
}

void resp_add_u64(struct proto_response *r, const char *name, uint64_t v)
{
	char s[24];
	snprintf(s, sizeof s, "%llu", (unsigned long long)v);
	proto_add_header(r, name, s);
}

void resp_add_offset(struct proto_response *r, uint64_t seq, uint64_t bytes)
{
	char off[OFFSET_LEN + 1];
	offset_format(off, seq, bytes);
	proto_add_header(r, "Stream-Next-Offset", off);
}

void resp_add_closed(struct proto_response *r)
{
	proto_add_header(r, "Stream-Closed", "true");
}

void proto_fail_detail(struct proto_response *r, enum proto_err e, const char *detail)
{
	int status = proto_err_status(e);
	proto_response_reset(r);
	r->reason = proto_err_reason(e);
	resp_start(r, status);
	r->err = e;
	proto_add_header(r, "Content-Type", "text/plain; charset=utf-8");
	proto_add_header(r, "Cache-Control", "no-store");
	if (status == 503 || status == 507)
		resp_add_u64(r, "Retry-After", LS_RETRY_AFTER_S);
	if (status == 405)
		proto_add_header(r, "Allow", e == E_LIVE_ONLY ? "GET, HEAD, OPTIONS" : proto_allow_methods);
	if (status == 401) /* RFC 6750 section 3 */
		proto_add_header(r, "WWW-Authenticate", e == E_TOKEN_INVALID
		                 ? "Bearer realm=\"lmstream\", error=\"invalid_token\"" : "Bearer realm=\"lmstream\"");
	buf_puts(&r->body, r->reason);
	if (detail && *detail) {
		buf_puts(&r->body, ": ");
		buf_puts(&r->body, detail);
	}
	buf_puts(&r->body, "\n");
}

void proto_fail(struct proto_response *r, enum proto_err e)
{
	proto_fail_detail(r, e, NULL);
}

enum proto_err err_of_store(int rc)
{
	switch (rc) {
	case ST_MAPFULL: return E_STORAGE_FULL;
	case ST_BUSY: return E_BUSY;
	case ST_NOTFOUND: return E_STREAM_NOT_FOUND;
	default: return E_STORAGE;
	}
}

void resp_store_error(struct proto_response *r, int rc)
{
	proto_fail(r, err_of_store(rc));
}

/* Stream-Cursor: the 20-second interval number since the protocol's epoch;
 * a client already at or past it is moved ahead by a random jitter so that
 * cached long-poll responses are never reused (PROTOCOL.md, caching). */
void cursor_next(const char *client, char out[24])
{
	int64_t now = store_now_ms();
	uint64_t c, cur = (uint64_t)((now - LS_CURSOR_EPOCH_MS) / (LS_CURSOR_INTERVAL_S * 1000));
	if (client && num_decimal(client, strlen(client), 18, &c) == 0 && c >= cur) {
		/* getrandom, not arc4random_uniform: glibc 2.34 has it, and
		 * lmstream.cgi runs on hosts of that age (README). */
		uint32_t r = 0;
		if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
			r = (uint32_t)now;
		uint32_t jitter_s = 1 + r % 3600;
		uint64_t steps = (jitter_s + LS_CURSOR_INTERVAL_S - 1) / LS_CURSOR_INTERVAL_S;
		cur = c + (steps ? steps : 1);
	}
	snprintf(out, 24, "%llu", (unsigned long long)cur);
}

void resp_add_cursor(struct proto_response *r, const char *client)
{
	char cur[24];
	cursor_next(client, cur);
	proto_add_header(r, "Stream-Cursor", cur);
}

/* Characters a URL path keeps as they are (RFC 3986 pchar and '/'). */
static int url_keeps(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("-._~/!$&'()*+,;=:@", c));
}

size_t resp_url_path(char *out, size_t cap, const char *prefix, const char *name, size_t nlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = (size_t)snprintf(out, cap, "%s", prefix);
	if (n >= cap)
		return 0;
	for (size_t i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)name[i];
		if (n + 4 > cap)
			return 0;
		if (url_keeps(c)) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
	return n;
}

size_t resp_stream_url(char *url, size_t cap, const struct req *q, const struct config *cfg,
                       const char *name, size_t nlen)
{
	size_t n;
	if (cfg->public_url[0]) {
		n = (size_t)snprintf(url, cap, "%s", cfg->public_url);
	} else {
		const char *host = q->host;
		if (!host || !*host || strlen(host) > 255 ||
		    strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != strlen(host))
			host = "localhost";
		n = (size_t)snprintf(url, cap, "%s://%s", q->https ? "https" : "http", host);
	}
	if (n >= cap)
		return 0;
	size_t p = resp_url_path(url + n, cap - n, cfg->prefix, name, nlen);
	return p ? n + p : 0;
}

void resp_add_location(struct proto_response *r, const struct req *q, const struct config *cfg,
                       const char *name, size_t nlen)
{
	char url[LS_MAX_URL];
	if (resp_stream_url(url, sizeof url, q, cfg, name, nlen))
		proto_add_header(r, "Location", url);
}
