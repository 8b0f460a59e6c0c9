/* protocol.c: the Durable Streams protocol (create, append, read, live
 * reads, close, delete, producers, TTL) over the store. No I/O. */
#include "core/protocol.h"
#include "store/batch.h"
#include "lib/jsonsplit.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/parse.h"
#include "lib/sse.h"
#include "core/state.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CT_JSON "application/json"

const struct proto_header_def proto_headers[H__COUNT] = {
	[H_CONTENT_TYPE] = { "Content-Type", "CONTENT_TYPE", 1 },
	[H_HOST] = { "Host", "HTTP_HOST", 0 },
	[H_IF_NONE_MATCH] = { "If-None-Match", "HTTP_IF_NONE_MATCH", 1 },
	[H_STREAM_SEQ] = { "Stream-Seq", "HTTP_STREAM_SEQ", 1 },
	[H_STREAM_TTL] = { "Stream-TTL", "HTTP_STREAM_TTL", 1 },
	[H_STREAM_EXPIRES_AT] = { "Stream-Expires-At", "HTTP_STREAM_EXPIRES_AT", 1 },
	[H_STREAM_CLOSED] = { "Stream-Closed", "HTTP_STREAM_CLOSED", 1 },
	[H_PRODUCER_ID] = { "Producer-Id", "HTTP_PRODUCER_ID", 1 },
	[H_PRODUCER_EPOCH] = { "Producer-Epoch", "HTTP_PRODUCER_EPOCH", 1 },
	[H_PRODUCER_SEQ] = { "Producer-Seq", "HTTP_PRODUCER_SEQ", 1 },
	[H_FORKED_FROM] = { "Stream-Forked-From", "HTTP_STREAM_FORKED_FROM", 1 },
	[H_FORK_OFFSET] = { "Stream-Fork-Offset", "HTTP_STREAM_FORK_OFFSET", 1 },
	[H_FORK_SUB_OFFSET] = { "Stream-Fork-Sub-Offset", "HTTP_STREAM_FORK_SUB_OFFSET", 1 },
	[H_AUTHORIZATION] = { "Authorization", "HTTP_AUTHORIZATION", 1 },
	[H_LAST_EVENT_ID] = { "Last-Event-ID", "HTTP_LAST_EVENT_ID", 1 },
	[H_CACHE_CONTROL] = { "Cache-Control", "HTTP_CACHE_CONTROL", 1 },
};

static const char EXPOSE_HEADERS[] =
	"Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, "
	"Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, "
	"Producer-Expected-Seq, Producer-Received-Seq, ETag, Location, Content-Type, Stream-State, "
	"Stream-Retention-Age, Stream-Retention-Bytes, Stream-Earliest-Offset, Stream-Snapshot-Next, Link";
static const char ALLOW_HEADERS[] =
	"Content-Type, Authorization, If-None-Match, Stream-Seq, Stream-TTL, Stream-Expires-At, "
	"Stream-Closed, Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset, Producer-Id, "
	"Producer-Epoch, Producer-Seq, Last-Event-ID, Cache-Control";
static const char ALLOW_METHODS[] = "GET, HEAD, POST, PUT, DELETE, OPTIONS";

/* --- response helpers ---------------------------------------------------- */

void proto_response_init(struct proto_response *r)
{
	r->status = 0;
	r->reason = NULL;
	r->nheaders = 0;
	r->hlen = 0;
	r->action = PROTO_DONE;
	buf_init(&r->body);
}

void proto_response_reset(struct proto_response *r)
{
	r->status = 0;
	r->reason = NULL;
	r->nheaders = 0;
	r->hlen = 0;
	r->action = PROTO_DONE;
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

static void add_common(struct proto_response *r)
{
	proto_add_header(r, "Access-Control-Allow-Origin", "*");
	proto_add_header(r, "Access-Control-Expose-Headers", EXPOSE_HEADERS);
	proto_add_header(r, "X-Content-Type-Options", "nosniff");
	proto_add_header(r, "Cross-Origin-Resource-Policy", "cross-origin");
}

static void add_u64(struct proto_response *r, const char *name, uint64_t v)
{
	char s[24];
	snprintf(s, sizeof s, "%llu", (unsigned long long)v);
	proto_add_header(r, name, s);
}

static void add_offset(struct proto_response *r, uint64_t seq, uint64_t bytes)
{
	char off[OFFSET_LEN + 1];
	offset_format(off, seq, bytes);
	proto_add_header(r, "Stream-Next-Offset", off);
}

void proto_error(struct proto_response *r, int status, const char *reason)
{
	proto_response_reset(r);
	r->status = status;
	r->reason = reason;
	add_common(r);
	proto_add_header(r, "Content-Type", "text/plain; charset=utf-8");
	proto_add_header(r, "Cache-Control", "no-store");
	if (status == 503 || status == 507) {
		char s[16];
		snprintf(s, sizeof s, "%d", LS_RETRY_AFTER_S);
		proto_add_header(r, "Retry-After", s);
	}
	if (status == 405)
		proto_add_header(r, "Allow", ALLOW_METHODS);
	buf_puts(&r->body, reason);
	buf_puts(&r->body, "\n");
}

/* A store lookup found a soft-deleted stream (forks still read it). */
#define RC_GONE 100
/* A handler helper has already filled the response. */
#define RC_REPLIED 101

static void store_error(struct proto_response *r, int rc)
{
	switch (rc) {
	case RC_GONE: proto_error(r, 410, "stream was deleted"); break;
	case ST_MAPFULL: proto_error(r, 507, "storage is full"); break;
	case ST_BUSY: proto_error(r, 503, "server busy, try again"); break;
	case ST_NOTFOUND: proto_error(r, 404, "stream not found"); break;
	default: proto_error(r, 500, "internal storage error"); break;
	}
}

enum proto_method proto_method(const char *m)
{
	static const struct { const char *name; enum proto_method m; } methods[] = {
		{ "GET", M_GET }, { "HEAD", M_HEAD }, { "PUT", M_PUT }, { "POST", M_POST },
		{ "DELETE", M_DELETE }, { "OPTIONS", M_OPTIONS },
	};
	for (size_t i = 0; m && i < sizeof methods / sizeof methods[0]; i++)
		if (!strcmp(m, methods[i].name))
			return methods[i].m;
	return M_OTHER;
}

/* --- context ------------------------------------------------------------- */

void proto_init(struct proto_ctx *ctx, const struct config *cfg, struct store *st)
{
	ctx->cfg = cfg;
	ctx->store = st;
	store_txn_init(&ctx->rtxn, st);
	ctx->on_commit = NULL;
	ctx->hook_arg = NULL;
}

static void committed(struct proto_ctx *ctx, const struct store_txn *w, uint64_t stream_id)
{
	if (ctx->on_commit)
		ctx->on_commit(ctx->hook_arg, stream_id, w->committed_txnid);
}

/* Every write a request asks for runs here: fn as a job of this process's
 * batch (batch.h), durable before write_run returns. A store error that
 * failed the commit replaces the job's answer; a commit wakes the live
 * readers of the stream the job wrote (once per stream and commit). */
static void write_run(struct proto_ctx *ctx, struct proto_response *resp, size_t bytes, batch_fn fn, void *arg)
{
	struct batch_done d;
	int rc = batch_run(ctx->batch, ctx->store, bytes, fn, arg, &d);
	if (rc == ST_OK) {
		if (d.first && ctx->on_commit)
			ctx->on_commit(ctx->hook_arg, d.key, d.txnid);
	} else if (rc != BATCH_REFUSED) {
		store_error(resp, rc);
	}
}

void proto_fini(struct proto_ctx *ctx)
{
	store_txn_release(&ctx->rtxn);
}

/* --- small helpers --------------------------------------------------------- */

static int is_json_type(const char *ct)
{
	char mt[LS_MAX_CONTENT_TYPE + 1];
	int n = parse_media_type(ct, strlen(ct), mt, sizeof mt);
	return n > 0 && !strcmp(mt, CT_JSON);
}

/* Binary streams are base64-encoded in SSE: anything but text/ and JSON. */
static int is_text_type(const char *ct)
{
	char mt[LS_MAX_CONTENT_TYPE + 1];
	int n = parse_media_type(ct, strlen(ct), mt, sizeof mt);
	return n > 0 && (!strncmp(mt, "text/", 5) || !strcmp(mt, CT_JSON));
}

static int same_media_type(const char *a, const char *b)
{
	char ma[LS_MAX_CONTENT_TYPE + 1], mb[LS_MAX_CONTENT_TYPE + 1];
	if (parse_media_type(a, strlen(a), ma, sizeof ma) < 0)
		return 0;
	if (parse_media_type(b, strlen(b), mb, sizeof mb) < 0)
		return 0;
	return !strcmp(ma, mb);
}

static int is_true(const char *v)
{
	return v && !strcasecmp(v, "true");
}

static int expired(const struct stream_meta *m, int64_t now)
{
	int64_t e = store_meta_expiry(m);
	return e && now >= e;
}

/* Stream-Cursor: the 20-second interval number since the protocol's epoch;
 * a client already at or past it is moved ahead by a random jitter so that
 * cached long-poll responses are never reused (PROTOCOL.md, caching). */
static void make_cursor(const char *client, char out[24])
{
	int64_t now = store_now_ms();
	uint64_t cur = (uint64_t)((now - LS_CURSOR_EPOCH_MS) / (LS_CURSOR_INTERVAL_S * 1000));
	if (client && *client) {
		uint64_t c = 0;
		size_t n = strlen(client);
		if (n <= 18 && strspn(client, "0123456789") == n) {
			for (size_t i = 0; i < n; i++)
				c = c * 10 + (uint64_t)(client[i] - '0');
			if (c >= cur) {
				uint32_t jitter_s = 1 + arc4random_uniform(3600);
				uint64_t steps = (jitter_s + LS_CURSOR_INTERVAL_S - 1) / LS_CURSOR_INTERVAL_S;
				cur = c + (steps ? steps : 1);
			}
		}
	}
	snprintf(out, 24, "%llu", (unsigned long long)cur);
}

/* Absolute URL of the stream for Location. The Host header is used only
 * when it looks like a host name; the name is percent-encoded again. */
static void add_location(struct proto_response *r, const struct proto_request *req,
                         const char *prefix, const char *name, size_t nlen)
{
	static const char hex[] = "0123456789ABCDEF";
	char url[2048];
	size_t n = 0;
	const char *host = req->h[H_HOST];
	if (!host || !*host || strlen(host) > 255 ||
	    strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != strlen(host))
		host = "localhost";
	n += (size_t)snprintf(url, sizeof url, "%s://%s%s", req->https ? "https" : "http", host, prefix);
	for (size_t i = 0; i < nlen && n + 4 < sizeof url; i++) {
		unsigned char c = (unsigned char)name[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~/!$&'()*+,;=:@", c)) {
			url[n++] = (char)c;
		} else {
			url[n++] = '%';
			url[n++] = hex[c >> 4];
			url[n++] = hex[c & 15];
		}
	}
	url[n] = '\0';
	proto_add_header(r, "Location", url);
}

/* --- reading messages ---------------------------------------------------- */

struct collect {
	struct buf *out;
	int json;
	size_t limit;
	size_t count;
	uint64_t next_seq;
	uint64_t next_bytes;
};

static int collect_msg(void *vctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len)
{
	struct collect *c = vctx;
	if (c->count && c->out->len + len > c->limit)
		return 1;
	if (c->json && c->count)
		buf_append(c->out, ",", 1);
	buf_append(c->out, data, len);
	c->count++;
	c->next_seq = seq + 1;
	c->next_bytes = end_bytes;
	return c->out->failed ? 1 : 0;
}

/* Reads messages from seq on into out (JSON messages comma-separated, no
 * brackets). Updates *seq and *bytes to the position after the last one. */
static int read_messages(struct store_txn *t, const struct stream_meta *m, int json,
                         size_t limit, struct buf *out, uint64_t *seq, uint64_t *bytes,
                         size_t *count)
{
	struct collect c = { out, json, limit, 0, *seq, *bytes };
	if (*seq >= m->tail_seq) {
		*count = 0;
		return ST_OK;
	}
	int rc = store_stream_scan(t, m, *seq, collect_msg, &c);
	if (rc)
		return rc;
	if (out->failed)
		return ST_ERROR;
	*seq = c.next_seq;
	*bytes = c.next_bytes;
	*count = c.count;
	return ST_OK;
}

/* A stream as clients may use it, in any transaction: an expired stream is
 * absent (ST_NOTFOUND) and a soft-deleted one gone (RC_GONE). */
static int get_usable(struct store_txn *t, const char *name, size_t nlen, int64_t now,
                      struct stream_meta *m)
{
	int rc = store_meta_get(t, name, nlen, m);
	if (rc == ST_OK && expired(m, now))
		rc = ST_NOTFOUND;
	if (rc == ST_OK && m->soft_deleted)
		rc = RC_GONE;
	return rc;
}

/* Looks the stream up in the thread's read transaction, which stays open on
 * ST_OK (the caller ends it). */
static int lookup(struct proto_ctx *ctx, const char *name, size_t nlen, struct stream_meta *m)
{
	int rc = store_read_begin(&ctx->rtxn);
	if (rc)
		return rc;
	rc = get_usable(&ctx->rtxn, name, nlen, store_now_ms(), m);
	if (rc)
		store_read_end(&ctx->rtxn);
	return rc;
}

/* Sliding TTL: a read counts as access. Written without waiting for the
 * disk (losing one on power loss only shortens a lifetime slightly), and at
 * most once per LS_TTL_TOUCH_MS per stream. */
static void touch(struct proto_ctx *ctx, const char *name, size_t nlen, const struct stream_meta *seen)
{
	if (!seen->has_ttl)
		return;
	int64_t now = store_now_ms();
	int64_t every = LS_TTL_TOUCH_MS;
	if ((int64_t)seen->ttl_s * 250 < every)
		every = (int64_t)seen->ttl_s * 250;
	if (now - seen->access_ms < every)
		return;
	struct store_txn w;
	struct stream_meta m;
	if (store_write_begin(&w, ctx->store))
		return;
	if (store_meta_get(&w, name, nlen, &m) == ST_OK && m.id == seen->id && !expired(&m, now)) {
		m.access_ms = now;
		if (store_meta_put(&w, name, nlen, &m) == ST_OK) {
			if (store_commit(&w, 1) == ST_OK)
				committed(ctx, &w, m.id);
			return;
		}
	}
	store_abort(&w);
}

static void etag_value(char *out, size_t cap, const struct stream_meta *m, uint64_t start,
                       uint64_t end, int closed)
{
	snprintf(out, cap, "\"%llu-%llu-%llu%s\"", (unsigned long long)m->id,
	         (unsigned long long)start, (unsigned long long)end, closed ? "-c" : "");
}

static int etag_matches(const char *header, const char *etag)
{
	/* If-None-Match: a list of entity tags, or "*". */
	size_t el = strlen(etag);
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '*')
			return 1;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - p) == el && !memcmp(p, etag, el))
			return 1;
		p = e;
	}
	return 0;
}

/* --- request parsing shared by the handlers ------------------------------- */

struct target {
	char name[LS_MAX_PATH_HARD + 1];
	size_t nlen;
};

static int parse_target(struct proto_ctx *ctx, const struct proto_request *req,
                        struct target *t, struct proto_response *resp)
{
	switch (parse_stream_path(req->target, req->target_len, ctx->cfg->prefix,
	                          ctx->cfg->max_path, t->name, &t->nlen)) {
	case PATH_OK: return 0;
	case PATH_NOT_PREFIX:
	case PATH_EMPTY: proto_error(resp, 404, "not found"); return -1;
	case PATH_TOO_LONG: proto_error(resp, 414, "stream path too long"); return -1;
	case PATH_BAD_ESCAPE: proto_error(resp, 400, "malformed percent-encoding in path"); return -1;
	case PATH_BAD_CHAR: proto_error(resp, 400, "control character in path"); return -1;
	case PATH_DOT_SEGMENT: proto_error(resp, 400, "'.' and '..' path segments are not allowed"); return -1;
	}
	return -1;
}

/* --- PUT: create ------------------------------------------------------------ */

/* The messages of a request body, as slices of it. JSON bodies are
 * validated and split here, before the writer lock is taken, so the write
 * transaction only copies bytes. */
struct messages {
	size_t n, cap;
	struct span { uint32_t off, len; } *v;
	struct span one;          /* storage when there is a single message */
};

static int add_span(void *vctx, const char *msg, size_t len)
{
	struct messages *ms = ((void **)vctx)[0];
	const char *base = ((void **)vctx)[1];
	if (ms->n >= LS_MAX_BATCH_MESSAGES)
		return 1;
	if (ms->n == ms->cap) {
		size_t cap = ms->cap ? ms->cap * 2 : 64;
		struct span *v = realloc(ms->v == &ms->one ? NULL : ms->v, cap * sizeof *v);
		if (!v)
			return 1;
		if (ms->v == &ms->one)
			v[0] = ms->one;
		ms->v = v;
		ms->cap = cap;
	}
	ms->v[ms->n].off = (uint32_t)(msg - base);
	ms->v[ms->n].len = (uint32_t)len;
	ms->n++;
	return 0;
}

static void messages_free(struct messages *ms)
{
	if (ms->v != &ms->one)
		free(ms->v);
	ms->v = NULL;
	ms->n = ms->cap = 0;
}

/* Returns NULL, or the reason the body cannot be appended (a 400 or 413). */
static const char *split_body(const char *body, size_t len, int json, struct messages *ms,
                              int *status)
{
	ms->n = 0;
	ms->cap = 1;
	ms->v = &ms->one;
	*status = 400;
	if (!len)
		return NULL;
	if (!json) {
		ms->one.off = 0;
		ms->one.len = (uint32_t)len;
		ms->n = 1;
		return NULL;
	}
	size_t count;
	const char *why;
	void *cb[2] = { ms, (void *)body };
	int rc = json_split(body, len, add_span, cb, &count, &why);
	if (rc < 0)
		return "invalid JSON body";
	if (rc > 0) {
		*status = ms->n >= LS_MAX_BATCH_MESSAGES ? 413 : 503;
		return ms->n >= LS_MAX_BATCH_MESSAGES ? "too many messages in one request"
		                                      : "out of memory splitting the body";
	}
	return NULL;
}

/* Appends the messages of body to the stream in the open write transaction. */
static int append_body(struct store_txn *t, struct stream_meta *m, const char *body,
                       const struct messages *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		uint64_t end = m->tail_bytes + ms->v[i].len;
		int rc = store_msg_put(t, m->id, m->tail_seq, end, body + ms->v[i].off, ms->v[i].len);
		if (rc)
			return rc;
		m->tail_seq++;
		m->tail_bytes = end;
	}
	return ST_OK;
}

/* --- State streams and retention (docs/state-and-retention.md) ------------- */

/* Extension parameters of a creating PUT: ?state, ?retention-age=S,
 * ?retention-bytes=N. */
struct create_opts {
	int state;
	uint64_t age_s, bytes;
};

/* A positive decimal query parameter. Returns 0 (absent: *out = 0) or -1. */
static int u64_param(const struct proto_request *req, const char *name, uint64_t *out)
{
	char val[32];
	size_t vlen;
	*out = 0;
	int n = parse_query_param(req->query, req->query_len, name, val, sizeof val, &vlen);
	if (n == 0)
		return 0;
	if (n > 1 || vlen == (size_t)-1 || vlen == 0 || vlen > 15 || strspn(val, "0123456789") != vlen)
		return -1;
	for (size_t i = 0; i < vlen; i++)
		*out = *out * 10 + (uint64_t)(val[i] - '0');
	return *out ? 0 : -1;
}

static int parse_create_opts(const struct proto_request *req, struct create_opts *o,
                             struct proto_response *resp)
{
	char val[8];
	size_t vlen;
	memset(o, 0, sizeof *o);
	int n = parse_query_param(req->query, req->query_len, "state", val, sizeof val, &vlen);
	if (n > 1 || (n == 1 && !(vlen == 0 || (vlen == 4 && !memcmp(val, "true", 4)) ||
	                          (vlen == 1 && val[0] == '1')))) {
		proto_error(resp, 400, "invalid state parameter: use ?state to declare a State stream");
		return -1;
	}
	o->state = n == 1;
	if (u64_param(req, "retention-age", &o->age_s)) {
		proto_error(resp, 400, "invalid retention-age: expected a positive number of seconds");
		return -1;
	}
	if (u64_param(req, "retention-bytes", &o->bytes)) {
		proto_error(resp, 400, "invalid retention-bytes: expected a positive number of bytes");
		return -1;
	}
	return 0;
}

/* The parsed change events of a body appended to a State stream, one per
 * message; row keys live in arena. */
struct events {
	struct state_event *v;
	size_t n;
	struct buf arena;
	int parsed;
};

static void events_free(struct events *ev)
{
	free(ev->v);
	buf_free(&ev->arena);
	memset(ev, 0, sizeof *ev);
}

/* Returns NULL, or why the body is refused (*status 400, or 503). */
static const char *parse_events(const char *body, const struct messages *ms, struct events *ev,
                                int *status)
{
	*status = 503;
	ev->v = malloc((ms->n ? ms->n : 1) * sizeof *ev->v);
	if (!ev->v)
		return "out of memory parsing change events";
	ev->n = ms->n;
	for (size_t i = 0; i < ms->n; i++) {
		const char *why;
		if (state_parse(body + ms->v[i].off, ms->v[i].len, &ev->v[i], &ev->arena, &why)) {
			*status = why ? 400 : 503;
			return why ? why : "out of memory parsing change events";
		}
	}
	ev->parsed = 1;
	return NULL;
}

/* Materialises the events of messages appended from seq on, in the
 * append's write transaction: state and log commit together. */
static int apply_events(struct store_txn *w, struct stream_meta *m, uint64_t seq, const char *body,
                        const struct messages *ms, const struct events *ev)
{
	int rc = ST_OK;
	for (size_t i = 0; i < ev->n && rc == ST_OK; i++) {
		const struct state_event *e = &ev->v[i];
		const unsigned char *rk = (const unsigned char *)ev->arena.data + e->rk_off;
		switch ((enum state_op)e->op) {
		case STATE_INSERT:
		case STATE_UPDATE:
		case STATE_UPSERT:
			rc = store_state_put(w, m->state_id, rk, e->rk_len, seq + i,
			                     body + ms->v[i].off + e->value_off, e->value_len);
			break;
		case STATE_DELETE:
			rc = store_state_del(w, m->state_id, rk, e->rk_len);
			break;
		case STATE_RESET:
			rc = store_state_reset(w, m);
			break;
		default:
			break;
		}
	}
	return rc;
}

/* 410 for a read before the earliest retained offset. */
static void gone(struct proto_response *resp, const struct proto_request *req, const char *prefix,
                 const struct stream_meta *m, uint64_t first, uint64_t first_bytes,
                 const char *name, size_t nlen)
{
	char off[OFFSET_LEN + 1];
	proto_error(resp, 410, m->state ? "offset is before the earliest retained offset; read the snapshot"
	                                : "offset is before the earliest retained offset");
	offset_format(off, first, first_bytes);
	proto_add_header(resp, "Stream-Earliest-Offset", off);
	if (m->state) {
		/* Link: <prefix/name?snapshot>; rel="snapshot" */
		struct proto_response tmp;
		proto_response_init(&tmp);
		add_location(&tmp, req, prefix, name, nlen);
		const char *loc = proto_get_header(&tmp, "Location");
		const char *path = loc ? strstr(loc, "://") : NULL;
		path = path ? strchr(path + 3, '/') : NULL;
		if (path) {
			char link[1200];
			snprintf(link, sizeof link, "<%s?snapshot>; rel=\"snapshot\"", path);
			proto_add_header(resp, "Link", link);
		}
		proto_response_free(&tmp);
	}
}

static void add_state_headers(struct proto_response *resp, const struct stream_meta *m, int64_t now)
{
	if (m->state)
		proto_add_header(resp, "Stream-State", "true");
	if (m->ret_age_s)
		add_u64(resp, "Stream-Retention-Age", m->ret_age_s);
	if (m->ret_bytes)
		add_u64(resp, "Stream-Retention-Bytes", m->ret_bytes);
	uint64_t fb, first = store_first_seq(m, now, &fb);
	if (first) {
		char off[OFFSET_LEN + 1];
		offset_format(off, first, fb);
		proto_add_header(resp, "Stream-Earliest-Offset", off);
	}
}

/* One page of a snapshot: rows after the row key after, until about limit
 * bytes. */
struct rows {
	struct buf *out;
	size_t limit;
	size_t n;
	int comma, more;
	size_t last_len;
	unsigned char last[STATE_MAX_ROW_KEY];
};

static int collect_row(void *vctx, const unsigned char *rk, size_t rk_len, uint64_t seq,
                       const char *value, size_t value_len)
{
	struct rows *r = vctx;
	(void)seq;
	if (r->n && r->out->len + rk_len + value_len > r->limit) {
		r->more = 1;
		return 1;
	}
	if (rk_len > sizeof r->last)
		return 1;
	if (r->comma)
		buf_append(r->out, ",", 1);
	r->comma = 1;
	state_put_row(r->out, rk, rk_len, value, value_len);
	memcpy(r->last, rk, rk_len);
	r->last_len = rk_len;
	r->n++;
	return r->out->failed;
}

/* Writes a JSON array: snapshot-start (first page), rows, snapshot-end (last
 * page). Fills r (more, last row key). */
static int snapshot_page(struct store_txn *t, uint64_t sid, const char *offset, const void *after,
                         size_t after_len, int first_page, struct rows *r)
{
	buf_append(r->out, "[", 1);
	if (first_page) {
		state_put_control(r->out, "snapshot-start", offset);
		r->comma = 1;
	}
	int rc = store_state_scan(t, sid, after, after_len, collect_row, r);
	if (rc)
		return rc;
	if (!r->more) {
		if (r->comma)
			buf_append(r->out, ",", 1);
		state_put_control(r->out, "snapshot-end", offset);
	}
	buf_append(r->out, "]", 1);
	return r->out->failed ? ST_BUSY : ST_OK;
}

/* Page tokens: "<seq>.<state id>.<hex row key>". */
static void make_token(char *out, size_t cap, uint64_t seq, uint64_t sid, const unsigned char *rk,
                       size_t rk_len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = (size_t)snprintf(out, cap, "%llu.%llu.", (unsigned long long)seq, (unsigned long long)sid);
	for (size_t i = 0; i < rk_len && n + 3 < cap; i++) {
		out[n++] = hex[rk[i] >> 4];
		out[n++] = hex[rk[i] & 15];
	}
	out[n] = '\0';
}

static int parse_token(const char *s, size_t len, uint64_t *seq, uint64_t *sid, unsigned char *rk,
                       size_t *rk_len)
{
	uint64_t v[2] = { 0, 0 };
	size_t i = 0;
	for (int k = 0; k < 2; k++) {
		size_t start = i;
		while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 19)
			v[k] = v[k] * 10 + (uint64_t)(s[i++] - '0');
		if (i == start || i >= len || s[i] != '.')
			return -1;
		i++;
	}
	size_t hl = len - i;
	if (hl == 0 || hl % 2 || hl / 2 > STATE_MAX_ROW_KEY)
		return -1;
	for (size_t j = 0; j < hl / 2; j++) {
		int b = 0;
		for (int h = 0; h < 2; h++) {
			char ch = s[i + 2 * j + (size_t)h];
			int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
			if (d < 0)
				return -1;
			b = b * 16 + d;
		}
		rk[j] = (unsigned char)b;
	}
	*seq = v[0];
	*sid = v[1];
	*rk_len = hl / 2;
	return 0;
}

/* What a fork PUT asks for (PROTOCOL.md section 4.2). */
struct fork_req {
	struct target src;
	int has_offset;
	struct offset off;
	uint64_t sub;
};

/* Validates the fork headers, before any transaction. Returns 0 (with
 * *is_fork) or -1 with resp filled. */
static int parse_fork(struct proto_ctx *ctx, const struct proto_request *req, struct fork_req *f,
                      int *is_fork, struct proto_response *resp)
{
	*is_fork = req->h[H_FORKED_FROM] != NULL;
	memset(f, 0, sizeof *f);
	if (!*is_fork) {
		if (req->h[H_FORK_OFFSET] || req->h[H_FORK_SUB_OFFSET]) {
			proto_error(resp, 400, "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From");
			return -1;
		}
		return 0;
	}
	const char *from = req->h[H_FORKED_FROM];
	size_t flen = strcspn(from, "?#");
	switch (parse_stream_path(from, flen, ctx->cfg->prefix, ctx->cfg->max_path, f->src.name,
	                          &f->src.nlen)) {
	case PATH_OK: break;
	case PATH_NOT_PREFIX:
	case PATH_EMPTY: proto_error(resp, 404, "source stream not found"); return -1;
	default: proto_error(resp, 400, "invalid Stream-Forked-From: expected the source stream's path"); return -1;
	}
	if (req->h[H_FORK_OFFSET]) {
		f->has_offset = 1;
		if (offset_parse(req->h[H_FORK_OFFSET], strlen(req->h[H_FORK_OFFSET]), &f->off)) {
			proto_error(resp, 400, "invalid Stream-Fork-Offset");
			return -1;
		}
	}
	if (req->h[H_FORK_SUB_OFFSET] &&
	    parse_ttl(req->h[H_FORK_SUB_OFFSET], strlen(req->h[H_FORK_SUB_OFFSET]), &f->sub)) {
		proto_error(resp, 400, "invalid Stream-Fork-Sub-Offset: expected a non-negative integer");
		return -1;
	}
	if (f->sub && !f->has_offset) {
		proto_error(resp, 400, "Stream-Fork-Sub-Offset needs Stream-Fork-Offset");
		return -1;
	}
	return 0;
}

/* Reads the first message at or after seq into a malloc'd copy. */
struct first_msg {
	char *data;
	size_t len;
	int found;
};

static int copy_first(void *vctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len)
{
	struct first_msg *f = vctx;
	(void)seq;
	(void)end_bytes;
	f->data = malloc(len ? len : 1);
	if (f->data)
		memcpy(f->data, data, len);
	f->len = len;
	f->found = 1;
	return 1;
}

/* Fills the fork part of a new stream m (id, timestamps and the request's
 * TTL/expiry already set) from its source, inside the write transaction:
 * resolves the fork point, inherits content type and expiry, links the
 * inherited ranges and takes a reference on the source. Returns ST_OK, a
 * store error, or RC_REPLIED with resp filled. */
static int make_fork(struct store_txn *w, const struct proto_request *req, const struct fork_req *f,
                     int64_t now, struct stream_meta *m, const char **ct, struct proto_response *resp)
{
	struct stream_meta *src = malloc(sizeof *src);
	struct first_msg first = { 0 };
	uint64_t seq, bytes, fseq;
	int rc;

	if (!src)
		return ST_BUSY;
	rc = store_meta_get(w, f->src.name, f->src.nlen, src);
	if (rc == ST_OK && expired(src, now))
		rc = ST_NOTFOUND;
	if (rc == ST_NOTFOUND) {
		proto_error(resp, 404, "source stream not found");
		rc = RC_REPLIED;
		goto out;
	}
	if (rc)
		goto out;
	if (src->soft_deleted) {
		proto_error(resp, 409, "source stream was deleted");
		rc = RC_REPLIED;
		goto out;
	}
	if (src->state) {
		proto_error(resp, 409, "State streams cannot be forked");
		rc = RC_REPLIED;
		goto out;
	}
	if (req->h[H_CONTENT_TYPE] && *req->h[H_CONTENT_TYPE] && !same_media_type(src->content_type, *ct)) {
		proto_error(resp, 409, "Content-Type does not match the source stream's");
		rc = RC_REPLIED;
		goto out;
	}
	*ct = NULL; /* the source's, set below */
	snprintf(m->content_type, sizeof m->content_type, "%s", src->content_type);
	/* History the source no longer keeps is not the fork's either. */
	uint64_t sfirst_bytes, sfirst = store_first_seq(src, now, &sfirst_bytes);

	/* The fork point. */
	if (!f->has_offset || f->off.kind == OFFSET_NOW) {
		seq = src->tail_seq;
		bytes = src->tail_bytes;
	} else if (f->off.kind == OFFSET_START) {
		seq = bytes = 0;
	} else {
		seq = f->off.seq;
		if (seq > src->tail_seq) {
			proto_error(resp, 400, "Stream-Fork-Offset is beyond the source stream's tail");
			rc = RC_REPLIED;
			goto out;
		}
		if (seq < sfirst) {
			bytes = 0;
		} else if (seq == sfirst) {
			bytes = sfirst_bytes;
		} else if ((rc = store_stream_end_bytes(w, src, seq, &bytes))) {
			goto out;
		}
		if (seq >= sfirst && bytes != f->off.bytes) {
			proto_error(resp, 400, "Stream-Fork-Offset is not an offset of the source stream");
			rc = RC_REPLIED;
			goto out;
		}
	}
	if (seq < sfirst) {
		proto_error(resp, 410, "the fork point is before the source's earliest retained offset");
		rc = RC_REPLIED;
		goto out;
	}
	fseq = seq;
	if (f->sub) {
		if (seq >= src->tail_seq) {
			proto_error(resp, 400, "Stream-Fork-Sub-Offset: the source has no data after Stream-Fork-Offset");
			rc = RC_REPLIED;
			goto out;
		}
		if (is_json_type(src->content_type)) {
			/* JSON messages are stored one per value: count them. */
			if (f->sub > src->tail_seq - seq) {
				proto_error(resp, 400, "Stream-Fork-Sub-Offset is past the source's last message");
				rc = RC_REPLIED;
				goto out;
			}
			fseq = seq + f->sub;
		} else {
			if ((rc = store_stream_scan(w, src, seq, copy_first, &first)))
				goto out;
			if (!first.found || !first.data) {
				rc = first.found ? ST_BUSY : ST_ERROR;
				goto out;
			}
			if (f->sub > first.len) {
				proto_error(resp, 400, "Stream-Fork-Sub-Offset is past the end of the message at Stream-Fork-Offset");
				rc = RC_REPLIED;
				goto out;
			}
			if (f->sub == first.len) {
				fseq = seq + 1;
				first.len = 0; /* the whole message is inherited: nothing to copy */
			}
		}
	}

	m->first_seq = sfirst;
	m->first_bytes = sfirst_bytes;
	if (store_fork_link(m, src, f->src.name, f->src.nlen, fseq)) {
		proto_error(resp, 400, "fork chain too deep");
		rc = RC_REPLIED;
		goto out;
	}
	m->fork_seq = seq;
	m->fork_bytes = bytes;
	m->fork_sub = f->sub;
	m->tail_seq = fseq;
	if (fseq == sfirst)
		m->tail_bytes = sfirst_bytes;
	else if ((rc = store_stream_end_bytes(w, src, fseq, &m->tail_bytes)))
		goto out;
	if (first.len && f->sub) {
		/* A binary fork point inside a message: the fork's first own
		 * message is that prefix (at most one message is copied). */
		m->tail_bytes = bytes + f->sub;
		if ((rc = store_msg_put(w, m->id, seq, m->tail_bytes, first.data, (size_t)f->sub)))
			goto out;
		m->tail_seq = seq + 1;
	}
	/* Expiry: the fork's own if asked for, else the source's (4.2). */
	if (!req->h[H_STREAM_TTL] && !req->h[H_STREAM_EXPIRES_AT]) {
		m->has_ttl = src->has_ttl;
		m->ttl_s = src->ttl_s;
		m->ttl_inherited = src->has_ttl;
		m->expires_ms = src->expires_ms;
		memcpy(m->expires_at, src->expires_at, sizeof m->expires_at);
		m->expires_inherited = src->expires_at[0] != '\0';
	}
	rc = store_meta_put(w, f->src.name, f->src.nlen, src);
out:
	free(first.data);
	free(src);
	return rc;
}

/* Does an existing stream have the configuration a PUT asks for? */
static int same_config(const struct stream_meta *m, const struct proto_request *req, const char *ct,
                       uint64_t ttl, int closed, int is_fork, const struct fork_req *f)
{
	int inherit = is_fork && !req->h[H_STREAM_TTL] && !req->h[H_STREAM_EXPIRES_AT];
	if (m->is_fork != is_fork || m->closed != closed)
		return 0;
	if (!(is_fork && (!req->h[H_CONTENT_TYPE] || !*req->h[H_CONTENT_TYPE])) && !same_media_type(m->content_type, ct))
		return 0;
	if (inherit) {
		if ((m->has_ttl && !m->ttl_inherited) || (m->expires_at[0] && !m->expires_inherited))
			return 0;
	} else if (m->has_ttl != (req->h[H_STREAM_TTL] != NULL) || (m->has_ttl && m->ttl_s != ttl) ||
	           strcmp(m->expires_at, req->h[H_STREAM_EXPIRES_AT] ? req->h[H_STREAM_EXPIRES_AT] : "")) {
		return 0;
	}
	if (!is_fork)
		return 1;
	if (m->source_len != f->src.nlen || memcmp(m->source, f->src.name, f->src.nlen) || m->fork_sub != f->sub)
		return 0;
	if (f->has_offset) {
		uint64_t seq = f->off.kind == OFFSET_AT ? f->off.seq : 0;
		if (f->off.kind == OFFSET_NOW || seq != m->fork_seq)
			return f->off.kind == OFFSET_NOW;
	}
	return 1;
}

/* Creates the stream of a PUT (a batch job; see write_run), or answers
 * 200 when it exists with the same configuration. */
struct put_job {
	const struct proto_ctx *ctx;
	const struct proto_request *req;
	const struct target *tg;
	struct proto_response *resp;
	const char *ct;
	uint64_t ttl;
	int64_t expires_ms;
	int closed, is_fork;
	const struct fork_req *f;
	const struct create_opts *opts;
	struct messages *ms;
	struct events *ev;
	struct stream_meta *m;   /* scratch: too large for the stack of a pool thread */
};

static int put_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct put_job *j = arg;
	const struct proto_request *req = j->req;
	const struct target *tg = j->tg;
	struct proto_response *resp = j->resp;
	struct stream_meta *m = j->m;
	const char *ct = j->ct;
	int64_t now = store_now_ms();
	int rc = store_meta_get(w, tg->name, tg->nlen, m);
	if (rc == ST_OK && expired(m, now)) {
		rc = store_meta_del(w, tg->name, tg->nlen, m);
		if (rc)
			goto fail;
		/* Forks may still hold it: then it is soft-deleted now. */
		rc = store_meta_get(w, tg->name, tg->nlen, m);
	}
	if (rc == ST_OK) {
		/* Exists: the same configuration is an idempotent success. */
		if (m->soft_deleted || !same_config(m, req, ct, j->ttl, j->closed, j->is_fork, j->f) ||
		    m->state != j->opts->state || m->ret_age_s != j->opts->age_s || m->ret_bytes != j->opts->bytes) {
			proto_error(resp, 409, m->soft_deleted ? "a deleted stream still read by forks holds this path"
			                                       : "stream already exists with a different configuration");
			return 0;
		}
		resp->status = 200;
		add_common(resp);
		proto_add_header(resp, "Content-Type", m->content_type);
		add_offset(resp, m->tail_seq, m->tail_bytes);
		if (m->closed)
			proto_add_header(resp, "Stream-Closed", "true");
		return 0;
	}
	if (rc != ST_NOTFOUND)
		goto fail;

	memset(m, 0, sizeof *m);
	rc = store_new_id(w, &m->id);
	if (rc)
		goto fail;
	m->created_ms = m->access_ms = now;
	m->has_ttl = req->h[H_STREAM_TTL] != NULL;
	m->ttl_s = j->ttl;
	m->expires_ms = j->expires_ms;
	m->closed = j->closed;
	snprintf(m->content_type, sizeof m->content_type, "%s", ct);
	snprintf(m->expires_at, sizeof m->expires_at, "%s", req->h[H_STREAM_EXPIRES_AT] ? req->h[H_STREAM_EXPIRES_AT] : "");
	m->ret_age_s = j->opts->age_s;
	m->ret_bytes = j->opts->bytes;
	if (j->opts->state) {
		m->state = 1;
		if ((rc = store_new_id(w, &m->state_id)))
			goto fail;
	}
	if (j->is_fork) {
		rc = make_fork(w, req, j->f, now, m, &ct, resp);
		if (rc == RC_REPLIED)
			return 0; /* resp holds the reason */
		if (rc)
			goto fail;
		int status;
		const char *bad = split_body(req->body, req->body_len, is_json_type(m->content_type), j->ms, &status);
		if (bad) {
			proto_error(resp, status, bad);
			return 0;
		}
	}
	uint64_t start_seq = m->tail_seq;
	if (j->ms->n && (rc = store_retain_note(w, m, now)))
		goto fail;
	rc = append_body(w, m, req->body, j->ms);
	if (rc == ST_OK && j->ev->parsed)
		rc = apply_events(w, m, start_seq, req->body, j->ms, j->ev);
	if (rc)
		goto fail;
	rc = store_meta_put(w, tg->name, tg->nlen, m);
	if (rc)
		goto fail;
	*key = m->id;
	resp->status = 201;
	add_common(resp);
	proto_add_header(resp, "Content-Type", m->content_type);
	add_offset(resp, m->tail_seq, m->tail_bytes);
	add_location(resp, req, j->ctx->cfg->prefix, tg->name, tg->nlen);
	if (m->closed)
		proto_add_header(resp, "Stream-Closed", "true");
	return 1;
fail:
	store_error(resp, rc);
	return 0;
}

static void handle_put(struct proto_ctx *ctx, const struct proto_request *req,
                       const struct target *tg, struct proto_response *resp)
{
	uint64_t ttl = 0;
	int64_t expires_ms = 0;
	const char *ct = req->h[H_CONTENT_TYPE];
	char ctbuf[LS_MAX_CONTENT_TYPE + 1];
	int closed = is_true(req->h[H_STREAM_CLOSED]);
	struct fork_req *f = NULL;
	int is_fork;
	struct fork_req fbuf;

	struct create_opts opts;
	if (parse_fork(ctx, req, &fbuf, &is_fork, resp))
		return;
	if (is_fork)
		f = &fbuf;
	if (parse_create_opts(req, &opts, resp))
		return;
	/* Server-wide retention applies to streams created without their own. */
	if (!opts.age_s && !opts.bytes) {
		opts.age_s = ctx->cfg->retention_age_s;
		opts.bytes = ctx->cfg->retention_bytes;
	}
	if (opts.state && is_fork)
		return proto_error(resp, 400, "a fork cannot be declared a State stream");
	if (req->h[H_STREAM_TTL] && req->h[H_STREAM_EXPIRES_AT])
		return proto_error(resp, 400, "Stream-TTL and Stream-Expires-At cannot be combined");
	if (req->h[H_STREAM_TTL] && parse_ttl(req->h[H_STREAM_TTL], strlen(req->h[H_STREAM_TTL]), &ttl))
		return proto_error(resp, 400, "invalid Stream-TTL: expected a non-negative integer of seconds");
	if (req->h[H_STREAM_EXPIRES_AT] &&
	    (parse_header_safe(req->h[H_STREAM_EXPIRES_AT], strlen(req->h[H_STREAM_EXPIRES_AT]), LS_MAX_EXPIRES_AT) ||
	     parse_expires_at(req->h[H_STREAM_EXPIRES_AT], strlen(req->h[H_STREAM_EXPIRES_AT]), &expires_ms)))
		return proto_error(resp, 400, "invalid Stream-Expires-At: expected an RFC 3339 timestamp");
	if (!ct || !*ct) {
		ct = "application/octet-stream";
	} else if (parse_header_safe(ct, strlen(ct), LS_MAX_CONTENT_TYPE) ||
	           parse_media_type(ct, strlen(ct), ctbuf, sizeof ctbuf) < 0) {
		return proto_error(resp, 400, "invalid Content-Type");
	}
	if (opts.state && !is_json_type(ct))
		return proto_error(resp, 400, "a State stream must have Content-Type: application/json");
	/* A fork's body is split once its content type is known. */
	struct messages ms = { 0 };
	struct events ev = { 0 };
	int status;
	const char *bad = is_fork ? NULL : split_body(req->body, req->body_len, is_json_type(ct), &ms, &status);
	if (!bad && opts.state)
		bad = parse_events(req->body, &ms, &ev, &status);
	if (bad) {
		messages_free(&ms);
		events_free(&ev);
		return proto_error(resp, status, bad);
	}

	struct put_job job = { ctx, req, tg, resp, ct, ttl, expires_ms, closed, is_fork, f, &opts, &ms, &ev,
	                       malloc(sizeof *job.m) };
	if (job.m)
		write_run(ctx, resp, req->body_len, put_job, &job);
	else
		store_error(resp, ST_BUSY);
	free(job.m);
	messages_free(&ms);
	events_free(&ev);
}

/* --- POST: append / close ---------------------------------------------------- */

enum producer_verdict { PV_ACCEPT, PV_DUPLICATE, PV_STALE, PV_BAD_EPOCH_SEQ, PV_GAP };

struct producer {
	const char *id;
	size_t id_len;
	uint64_t epoch, seq;
};

/* Kafka-style idempotent producer check (PROTOCOL.md, idempotent producers). */
static enum producer_verdict check_producer(const struct producer *p, int found,
                                            const struct producer_state *ps, int64_t now,
                                            uint64_t *expected)
{
	if (!found || now - ps->updated_ms > LS_PRODUCER_TTL_MS) {
		if (p->seq != 0) {
			*expected = 0;
			return PV_GAP;
		}
		return PV_ACCEPT;
	}
	if (p->epoch < ps->epoch)
		return PV_STALE;
	if (p->epoch > ps->epoch)
		return p->seq == 0 ? PV_ACCEPT : PV_BAD_EPOCH_SEQ;
	if (p->seq <= ps->last_seq)
		return PV_DUPLICATE;
	if (p->seq == ps->last_seq + 1)
		return PV_ACCEPT;
	*expected = ps->last_seq + 1;
	return PV_GAP;
}

static void producer_reply(struct proto_response *resp, enum producer_verdict v,
                           const struct producer *p, const struct producer_state *ps,
                           uint64_t expected)
{
	switch (v) {
	case PV_ACCEPT:
		break;
	case PV_DUPLICATE:
		resp->status = 204;
		add_common(resp);
		add_u64(resp, "Producer-Epoch", p->epoch);
		add_u64(resp, "Producer-Seq", ps->last_seq);
		break;
	case PV_STALE:
		proto_error(resp, 403, "stale producer epoch");
		add_u64(resp, "Producer-Epoch", ps->epoch);
		break;
	case PV_BAD_EPOCH_SEQ:
		proto_error(resp, 400, "a new producer epoch must start at sequence 0");
		break;
	case PV_GAP:
		proto_error(resp, 409, "producer sequence gap");
		add_u64(resp, "Producer-Expected-Seq", expected);
		add_u64(resp, "Producer-Received-Seq", p->seq);
		break;
	}
}

static int seq_le(const char *a, size_t al, const char *b, size_t bl)
{
	/* Stream-Seq values compare as byte strings. */
	size_t n = al < bl ? al : bl;
	int c = memcmp(a, b, n);
	return c < 0 || (c == 0 && al <= bl);
}

static void closed_conflict(struct proto_response *resp, const struct stream_meta *m)
{
	proto_error(resp, 409, "stream is closed");
	proto_add_header(resp, "Stream-Closed", "true");
	add_offset(resp, m->tail_seq, m->tail_bytes);
}

/* An append, run by batch_run inside a (nested) write transaction. */
struct post_job {
	const struct proto_request *req;
	const struct target *tg;
	struct proto_response *resp;
	struct producer p;
	int has_producer, close;
	const struct messages *ms;
	struct events *ev;
};
static int post_job(struct store_txn *w, void *arg, uint64_t *key);
static void handle_compact(struct proto_ctx *ctx, const struct target *tg, struct proto_response *resp);

static void handle_post(struct proto_ctx *ctx, const struct proto_request *req,
                        const struct target *tg, struct proto_response *resp)
{
	struct producer p = { 0 };
	int has_producer = 0;
	int close = is_true(req->h[H_STREAM_CLOSED]);
	char cval[8];
	size_t cvlen;

	if (parse_query_param(req->query, req->query_len, "compact", cval, sizeof cval, &cvlen) > 0) {
		if (req->body_len || close || req->h[H_PRODUCER_ID])
			return proto_error(resp, 400, "?compact takes no body, producer or Stream-Closed");
		return handle_compact(ctx, tg, resp);
	}
	int nprod = !!req->h[H_PRODUCER_ID] + !!req->h[H_PRODUCER_EPOCH] + !!req->h[H_PRODUCER_SEQ];
	if (nprod && nprod != 3)
		return proto_error(resp, 400, "Producer-Id, Producer-Epoch and Producer-Seq must be sent together");
	if (nprod == 3) {
		p.id = req->h[H_PRODUCER_ID];
		p.id_len = strlen(p.id);
		if (p.id_len == 0)
			return proto_error(resp, 400, "invalid Producer-Id: must not be empty");
		if (parse_header_safe(p.id, p.id_len, LS_MAX_PRODUCER_ID))
			return proto_error(resp, 400, "invalid Producer-Id");
		if (parse_uint53(req->h[H_PRODUCER_EPOCH], strlen(req->h[H_PRODUCER_EPOCH]), &p.epoch))
			return proto_error(resp, 400, "invalid Producer-Epoch: must be a non-negative integer");
		if (parse_uint53(req->h[H_PRODUCER_SEQ], strlen(req->h[H_PRODUCER_SEQ]), &p.seq))
			return proto_error(resp, 400, "invalid Producer-Seq: must be a non-negative integer");
		has_producer = 1;
	}
	if (req->h[H_STREAM_SEQ] && parse_header_safe(req->h[H_STREAM_SEQ], strlen(req->h[H_STREAM_SEQ]), LS_MAX_STREAM_SEQ))
		return proto_error(resp, 400, "invalid Stream-Seq");
	if (req->body_len == 0 && !close)
		return proto_error(resp, 400, "empty body: nothing to append");
	int json = 0;
	if (req->body_len) {
		char mt[LS_MAX_CONTENT_TYPE + 1];
		if (!req->h[H_CONTENT_TYPE] || !*req->h[H_CONTENT_TYPE])
			return proto_error(resp, 400, "Content-Type header is required");
		if (parse_media_type(req->h[H_CONTENT_TYPE], strlen(req->h[H_CONTENT_TYPE]), mt, sizeof mt) < 0)
			return proto_error(resp, 400, "invalid Content-Type");
		json = !strcmp(mt, CT_JSON);
	}
	struct messages ms;
	int status;
	const char *bad = split_body(req->body, req->body_len, json, &ms, &status);
	if (!bad && req->body_len && ms.n == 0)
		bad = "empty JSON array: nothing to append";
	if (bad) {
		messages_free(&ms);
		return proto_error(resp, status, bad);
	}
	/* Change events of a State stream are parsed here too, before the
	 * writer lock; whether the stream is one is looked up first (and
	 * checked again under the lock). */
	struct events ev = { 0 };
	struct stream_meta pm;
	if (json && ms.n && lookup(ctx, tg->name, tg->nlen, &pm) == ST_OK) {
		store_read_end(&ctx->rtxn);
		if (pm.state && (bad = parse_events(req->body, &ms, &ev, &status))) {
			messages_free(&ms);
			events_free(&ev);
			return proto_error(resp, status, bad);
		}
	}
	/* The rest happens under the writer lock, in a batch with the appends
	 * of this process's other threads. */
	struct post_job job = { req, tg, resp, p, has_producer, close, &ms, &ev };
	write_run(ctx, resp, req->body_len, post_job, &job);
	messages_free(&ms);
	events_free(&ev);
}

/* Returns 1 to keep the writes (resp is the answer once they are durable)
 * or 0 with the final answer in resp; the caller undoes what w holds. */
static int post_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct post_job *job = arg;
	const struct proto_request *req = job->req;
	const struct target *tg = job->tg;
	struct proto_response *resp = job->resp;
	const struct producer p = job->p;
	const int has_producer = job->has_producer, close = job->close;
	const struct messages *ms = job->ms;
	struct events *ev = job->ev;

	struct stream_meta m;
	struct producer_state ps = { 0 };
	int64_t now = store_now_ms();
	int rc = get_usable(w, tg->name, tg->nlen, now, &m);
	if (rc)
		goto fail;

	if (m.closed) {
		int same_tuple = has_producer && m.closed_by_producer && m.cb_id_len == p.id_len &&
		                 !memcmp(m.cb_id, p.id, p.id_len) && m.cb_epoch == p.epoch && m.cb_seq == p.seq;
		if (same_tuple) {
			resp->status = 204;
			add_common(resp);
			add_offset(resp, m.tail_seq, m.tail_bytes);
			proto_add_header(resp, "Stream-Closed", "true");
			add_u64(resp, "Producer-Epoch", p.epoch);
			add_u64(resp, "Producer-Seq", p.seq);
			return 0;
		}
		if (!req->body_len && !has_producer) {
			/* Closing a closed stream is idempotent. */
			resp->status = 204;
			add_common(resp);
			add_offset(resp, m.tail_seq, m.tail_bytes);
			proto_add_header(resp, "Stream-Closed", "true");
			return 0;
		}
		closed_conflict(resp, &m);
		return 0;
	}

	if (req->body_len && !same_media_type(m.content_type, req->h[H_CONTENT_TYPE])) {
		proto_error(resp, 409, "Content-Type does not match the stream's");
		return 0;
	}

	if (has_producer) {
		uint64_t expected = 0;
		rc = store_producer_get(w, m.id, p.id, p.id_len, &ps);
		if (rc != ST_OK && rc != ST_NOTFOUND)
			goto fail;
		enum producer_verdict v = check_producer(&p, rc == ST_OK, &ps, now, &expected);
		if (v != PV_ACCEPT) {
			producer_reply(resp, v, &p, &ps, expected);
			return 0;
		}
	}

	if (req->h[H_STREAM_SEQ]) {
		size_t sl = strlen(req->h[H_STREAM_SEQ]);
		if (m.has_last_seq && seq_le(req->h[H_STREAM_SEQ], sl, m.last_seq, m.last_seq_len)) {
			proto_error(resp, 409, "Stream-Seq is not greater than the last one");
			return 0;
		}
		memcpy(m.last_seq, req->h[H_STREAM_SEQ], sl + 1);
		m.last_seq_len = sl;
		m.has_last_seq = 1;
	}

	if (m.state && ms->n && !ev->parsed) {
		/* The stream became a State stream since the look-up. */
		int status;
		const char *bad = parse_events(req->body, ms, ev, &status);
		if (bad) {
			proto_error(resp, status, bad);
			return 0;
		}
	}
	uint64_t start_seq = m.tail_seq;
	if (ms->n && (rc = store_retain_note(w, &m, now)))
		goto fail;
	rc = append_body(w, &m, req->body, ms);
	if (rc == ST_OK && m.state && ev->parsed)
		rc = apply_events(w, &m, start_seq, req->body, ms, ev);
	if (rc)
		goto fail;
	int budget = LS_GC_ROWS_PER_WRITE;
	if ((m.ret_age_s || m.ret_bytes || m.first_seq) && (rc = store_retain(w, &m, now, &budget)))
		goto fail;
	if (close) {
		m.closed = 1;
		if (has_producer) {
			m.closed_by_producer = 1;
			memcpy(m.cb_id, p.id, p.id_len + 1);
			m.cb_id_len = p.id_len;
			m.cb_epoch = p.epoch;
			m.cb_seq = p.seq;
		}
	}
	m.access_ms = now;
	if (has_producer) {
		ps.epoch = p.epoch;
		ps.last_seq = p.seq;
		ps.updated_ms = now;
		rc = store_producer_put(w, m.id, p.id, p.id_len, &ps);
		if (rc)
			goto fail;
	}
	rc = store_meta_put(w, tg->name, tg->nlen, &m);
	if (rc)
		goto fail;
	*key = m.id;
	resp->status = (has_producer && req->body_len) ? 200 : 204;
	add_common(resp);
	add_offset(resp, m.tail_seq, m.tail_bytes);
	if (close)
		proto_add_header(resp, "Stream-Closed", "true");
	if (has_producer) {
		add_u64(resp, "Producer-Epoch", p.epoch);
		add_u64(resp, "Producer-Seq", p.seq);
	}
	return 1;
fail:
	store_error(resp, rc);
	return 0;
}

/* --- DELETE ----------------------------------------------------------------- */

struct target_job {
	const struct target *tg;
	struct proto_response *resp;
};

static int delete_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct target_job *job = arg;
	struct stream_meta m;
	int rc = get_usable(w, job->tg->name, job->tg->nlen, store_now_ms(), &m);
	if (rc == ST_OK)
		rc = store_meta_del(w, job->tg->name, job->tg->nlen, &m);
	if (rc) {
		store_error(job->resp, rc);
		return 0;
	}
	*key = m.id;
	job->resp->status = 204;
	add_common(job->resp);
	return 1;
}

static void handle_delete(struct proto_ctx *ctx, const struct target *tg, struct proto_response *resp)
{
	struct target_job job = { tg, resp };
	write_run(ctx, resp, 0, delete_job, &job);
}

/* --- HEAD ---------------------------------------------------------------------- */

static void add_stream_metadata(struct proto_response *resp, const struct stream_meta *m)
{
	char s[24];
	proto_add_header(resp, "Content-Type", m->content_type);
	if (m->has_ttl) {
		snprintf(s, sizeof s, "%llu", (unsigned long long)m->ttl_s);
		proto_add_header(resp, "Stream-TTL", s);
	}
	if (m->expires_at[0])
		proto_add_header(resp, "Stream-Expires-At", m->expires_at);
}

static void handle_head(struct proto_ctx *ctx, const struct target *tg, struct proto_response *resp)
{
	struct stream_meta m;
	char etag[80];
	int rc = lookup(ctx, tg->name, tg->nlen, &m);
	if (rc)
		return store_error(resp, rc);
	store_read_end(&ctx->rtxn);
	resp->status = 200;
	add_common(resp);
	add_stream_metadata(resp, &m);
	add_offset(resp, m.tail_seq, m.tail_bytes);
	proto_add_header(resp, "Cache-Control", "no-store");
	if (m.closed)
		proto_add_header(resp, "Stream-Closed", "true");
	etag_value(etag, sizeof etag, &m, 0, m.tail_seq, m.closed);
	proto_add_header(resp, "ETag", etag);
	add_state_headers(resp, &m, store_now_ms());
}

/* POST ?compact: a State stream drops its whole history; its snapshot
 * stays. Readers of older offsets get 410 at once; the rows go in bounded
 * batches, here and in later housekeeping. */
static int compact_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct target_job *job = arg;
	struct stream_meta m;
	int64_t now = store_now_ms();
	int rc = get_usable(w, job->tg->name, job->tg->nlen, now, &m);
	if (rc)
		goto fail;
	if (!m.state) {
		proto_error(job->resp, 400, "only State streams can be compacted (their snapshot keeps the state)");
		return 0;
	}
	m.first_seq = m.tail_seq;
	m.first_bytes = m.tail_bytes;
	int budget = LS_GC_ROWS_PER_WRITE;
	if ((rc = store_retain(w, &m, now, &budget)) || (rc = store_meta_put(w, job->tg->name, job->tg->nlen, &m)))
		goto fail;
	*key = m.id;
	job->resp->status = 204;
	add_common(job->resp);
	add_offset(job->resp, m.tail_seq, m.tail_bytes);
	add_state_headers(job->resp, &m, now);
	return 1;
fail:
	store_error(job->resp, rc);
	return 0;
}

static void handle_compact(struct proto_ctx *ctx, const struct target *tg, struct proto_response *resp)
{
	struct target_job job = { tg, resp };
	write_run(ctx, resp, 0, compact_job, &job);
}

/* GET ?snapshot[=token]: one page of the materialised state of a State
 * stream at one offset (the stream's tail when the first page was read). */
static void handle_snapshot(struct proto_ctx *ctx, const struct proto_request *req,
                            const struct target *tg, const char *token, size_t token_len,
                            int long_poll, struct proto_response *resp)
{
	struct stream_meta m;
	uint64_t tseq = 0, tsid = 0;
	size_t after_len = 0;
	unsigned char after[STATE_MAX_ROW_KEY];
	char off[OFFSET_LEN + 1], etag[96];

	if (token_len && parse_token(token, token_len, &tseq, &tsid, after, &after_len))
		return proto_error(resp, 400, "invalid snapshot page token");
	int rc = lookup(ctx, tg->name, tg->nlen, &m);
	if (rc)
		return store_error(resp, rc);
	if (!m.state) {
		store_read_end(&ctx->rtxn);
		return proto_error(resp, 400, "not a State stream: create it with ?state to read snapshots");
	}
	if (token_len && (tseq != m.tail_seq || tsid != m.state_id)) {
		store_read_end(&ctx->rtxn);
		return proto_error(resp, 409, "the state moved on since this snapshot began: start again with ?snapshot");
	}
	offset_format(off, m.tail_seq, m.tail_bytes);
	struct rows r = { .out = &resp->body, .limit = ctx->cfg->snapshot_page };
	buf_reset(&resp->body);
	rc = snapshot_page(&ctx->rtxn, m.state_id, off, after, after_len, token_len == 0, &r);
	store_read_end(&ctx->rtxn);
	if (rc)
		return store_error(resp, rc);
	resp->status = 200;
	add_common(resp);
	proto_add_header(resp, "Content-Type", CT_JSON);
	add_offset(resp, m.tail_seq, m.tail_bytes);
	proto_add_header(resp, "Stream-Up-To-Date", "true");
	if (m.closed)
		proto_add_header(resp, "Stream-Closed", "true");
	if (long_poll) {
		char cur[24];
		make_cursor(NULL, cur);
		proto_add_header(resp, "Stream-Cursor", cur);
	}
	if (r.more) {
		char next[2 * STATE_MAX_ROW_KEY + 48];
		make_token(next, sizeof next, m.tail_seq, m.state_id, r.last, r.last_len);
		proto_add_header(resp, "Stream-Snapshot-Next", next);
	}
	snprintf(etag, sizeof etag, "\"%llu-s%llu-%llu%s\"", (unsigned long long)m.id,
	         (unsigned long long)m.state_id, (unsigned long long)m.tail_seq, m.closed ? "-c" : "");
	proto_add_header(resp, "ETag", etag);
	/* The first page names the current state: revalidate. A later page is
	 * fixed by its token, like data at an offset. */
	proto_add_header(resp, "Cache-Control", token_len ? ctx->cfg->cache_control : "no-cache");
	if (req->h[H_IF_NONE_MATCH] && etag_matches(req->h[H_IF_NONE_MATCH], etag)) {
		proto_response_reset(resp);
		resp->status = 304;
		add_common(resp);
		proto_add_header(resp, "ETag", etag);
	}
	touch(ctx, tg->name, tg->nlen, &m);
}

/* --- GET ------------------------------------------------------------------------- */

enum live_mode { LIVE_NONE, LIVE_LONG_POLL, LIVE_SSE };

/* Fills a 200 catch-up response with messages from live->seq, replacing
 * whatever resp held (a front may pass the response object of its previous
 * request, as lmstream-live does when a long-poll wakes). The read
 * transaction must be open; it is left open. */
static int fill_read(struct proto_ctx *ctx, const struct stream_meta *m, struct proto_live *live,
                     uint64_t start_seq, const char *if_none_match, int long_poll,
                     struct proto_response *resp)
{
	size_t count;
	char etag[80];
	int json = is_json_type(m->content_type);

	proto_response_reset(resp);
	if (json)
		buf_append(&resp->body, "[", 1);
	int rc = read_messages(&ctx->rtxn, m, json, LS_READ_PAGE_BYTES, &resp->body,
	                       &live->seq, &live->bytes, &count);
	if (rc)
		return rc;
	if (json)
		buf_append(&resp->body, "]", 1);
	if (resp->body.failed)
		return ST_ERROR;
	int up_to_date = live->seq >= m->tail_seq;
	int closed = m->closed && up_to_date;

	resp->status = 200;
	add_common(resp);
	proto_add_header(resp, "Content-Type", m->content_type);
	add_offset(resp, live->seq, live->bytes);
	if (up_to_date)
		proto_add_header(resp, "Stream-Up-To-Date", "true");
	if (closed)
		proto_add_header(resp, "Stream-Closed", "true");
	if (long_poll) {
		char cur[24];
		make_cursor(live->cursor_in, cur);
		proto_add_header(resp, "Stream-Cursor", cur);
	}
	etag_value(etag, sizeof etag, m, start_seq, live->seq, closed);
	proto_add_header(resp, "ETag", etag);
	/* Data at an offset never changes (PROTOCOL.md section 10.1); an empty
	 * read at the tail must not hide what comes next. */
	proto_add_header(resp, "Cache-Control", count ? ctx->cfg->cache_control : "no-cache");
	if (if_none_match && etag_matches(if_none_match, etag)) {
		/* 304 keeps the validators only. */
		proto_response_reset(resp);
		resp->status = 304;
		add_common(resp);
		proto_add_header(resp, "ETag", etag);
	}
	return ST_OK;
}

static void handle_get(struct proto_ctx *ctx, const struct proto_request *req,
                       const struct target *tg, struct proto_response *resp, struct proto_live *live)
{
	char val[64];
	size_t vlen;
	struct offset off = { OFFSET_START, 0, 0 };
	enum live_mode mode = LIVE_NONE;

	int n = parse_query_param(req->query, req->query_len, "offset", val, sizeof val, &vlen);
	if (n > 1)
		return proto_error(resp, 400, "more than one offset parameter");
	if (n == 1 && (vlen == (size_t)-1 || vlen == 0 || offset_parse(val, vlen, &off)))
		return proto_error(resp, 400, "invalid offset");
	n = parse_query_param(req->query, req->query_len, "live", val, sizeof val, &vlen);
	if (n > 1)
		return proto_error(resp, 400, "more than one live parameter");
	if (n == 1) {
		if (vlen == 9 && !memcmp(val, "long-poll", 9))
			mode = LIVE_LONG_POLL;
		else if (vlen == 3 && !memcmp(val, "sse", 3))
			mode = LIVE_SSE;
		else if (!(vlen == 5 && !memcmp(val, "false", 5)))
			return proto_error(resp, 400, "invalid live mode: expected long-poll or sse");
	}
	char tok[2 * STATE_MAX_ROW_KEY + 48];
	size_t toklen;
	int snap = parse_query_param(req->query, req->query_len, "snapshot", tok, sizeof tok, &toklen);
	if (snap > 1)
		return proto_error(resp, 400, "more than one snapshot parameter");
	if (snap == 1) {
		if (toklen == (size_t)-1)
			return proto_error(resp, 400, "invalid snapshot page token");
		if (parse_query_param(req->query, req->query_len, "offset", val, sizeof val, &vlen) > 0)
			return proto_error(resp, 400, "snapshot and offset cannot be combined: the snapshot names its offset");
		if (mode != LIVE_SSE)
			return handle_snapshot(ctx, req, tg, tok, toklen, mode == LIVE_LONG_POLL, resp);
		if (toklen)
			return proto_error(resp, 400, "live=sse sends the whole snapshot: use ?snapshot without a token");
	}
	if (mode != LIVE_NONE && !snap &&
	    parse_query_param(req->query, req->query_len, "offset", val, sizeof val, &vlen) == 0)
		return proto_error(resp, 400, mode == LIVE_SSE ? "SSE requires an offset parameter"
		                                             : "long-poll requires an offset parameter");
	proto_live_clear(live);
	if (parse_query_param(req->query, req->query_len, "cursor", val, sizeof val, &vlen) >= 1 &&
	    vlen != (size_t)-1 && vlen < sizeof live->cursor_in)
		memcpy(live->cursor_in, val, vlen + 1);

	struct stream_meta m;
	int rc = lookup(ctx, tg->name, tg->nlen, &m);
	if (rc)
		return store_error(resp, rc);

	if (snap) {
		/* ?snapshot&live=sse: proto_sse_step sends the snapshot first. */
		store_read_end(&ctx->rtxn);
		if (!m.state)
			return proto_error(resp, 400, "not a State stream: create it with ?state to read snapshots");
		live->name = strndup(tg->name, tg->nlen);
		if (!live->name)
			return store_error(resp, ST_BUSY);
		live->name_len = tg->nlen;
		live->stream_id = m.id;
		live->json = 1;
		live->snapshot = 1;
		resp->status = 200;
		add_common(resp);
		proto_add_header(resp, "Content-Type", "text/event-stream");
		proto_add_header(resp, "Cache-Control", "no-cache");
		resp->action = PROTO_SSE;
		touch(ctx, tg->name, tg->nlen, &m);
		return;
	}

	uint64_t seq = off.kind == OFFSET_START ? 0 : off.kind == OFFSET_NOW ? m.tail_seq : off.seq;
	if (seq > m.tail_seq)
		seq = m.tail_seq;
	uint64_t first_bytes, first = store_first_seq(&m, store_now_ms(), &first_bytes);
	if (seq < first) {
		store_read_end(&ctx->rtxn);
		return gone(resp, req, ctx->cfg->prefix, &m, first, first_bytes, tg->name, tg->nlen);
	}
	live->stream_id = m.id;
	live->seq = seq;
	live->json = is_json_type(m.content_type);
	live->base64 = !is_text_type(m.content_type);
	if (mode != LIVE_NONE) {
		live->name = strndup(tg->name, tg->nlen);
		if (!live->name) {
			rc = ST_BUSY;
			goto fail;
		}
		live->name_len = tg->nlen;
	}
	if (seq == m.tail_seq)
		live->bytes = m.tail_bytes;
	else if (seq == first)
		live->bytes = first_bytes; /* the message before it may be deleted */
	else if ((rc = store_stream_end_bytes(&ctx->rtxn, &m, seq, &live->bytes)))
		goto fail;

	if (mode == LIVE_SSE) {
		store_read_end(&ctx->rtxn);
		resp->status = 200;
		add_common(resp);
		proto_add_header(resp, "Content-Type", "text/event-stream");
		proto_add_header(resp, "Cache-Control", "no-cache");
		if (live->base64)
			proto_add_header(resp, "Stream-SSE-Data-Encoding", "base64");
		resp->action = PROTO_SSE;
		touch(ctx, tg->name, tg->nlen, &m);
		return;
	}

	if (off.kind == OFFSET_NOW && mode == LIVE_NONE) {
		store_read_end(&ctx->rtxn);
		resp->status = 200;
		add_common(resp);
		proto_add_header(resp, "Content-Type", m.content_type);
		add_offset(resp, m.tail_seq, m.tail_bytes);
		proto_add_header(resp, "Stream-Up-To-Date", "true");
		proto_add_header(resp, "Cache-Control", "no-store");
		if (m.closed)
			proto_add_header(resp, "Stream-Closed", "true");
		if (live->json)
			buf_puts(&resp->body, "[]");
		touch(ctx, tg->name, tg->nlen, &m);
		return;
	}

	if (mode == LIVE_LONG_POLL && seq >= m.tail_seq) {
		store_read_end(&ctx->rtxn);
		touch(ctx, tg->name, tg->nlen, &m);
		if (m.closed)
			return proto_longpoll_timeout(ctx, req, live, resp);
		resp->action = PROTO_WAIT;
		return;
	}

	rc = fill_read(ctx, &m, live, seq, req->h[H_IF_NONE_MATCH], mode == LIVE_LONG_POLL, resp);
	store_read_end(&ctx->rtxn);
	if (rc)
		return store_error(resp, rc);
	touch(ctx, tg->name, tg->nlen, &m);
	return;
fail:
	store_read_end(&ctx->rtxn);
	store_error(resp, rc);
}

void proto_live_clear(struct proto_live *live)
{
	free(live->name);
	free(live->snap_after);
	memset(live, 0, sizeof *live);
}

void proto_longpoll_poll(struct proto_ctx *ctx, const struct proto_request *req,
                         struct proto_live *live, struct proto_response *resp)
{
	struct stream_meta m;
	int rc = lookup(ctx, live->name, live->name_len, &m);
	if (rc == ST_OK && m.id != live->stream_id) {
		store_read_end(&ctx->rtxn);
		rc = ST_NOTFOUND;
	}
	if (rc) {
		resp->action = PROTO_DONE;
		return store_error(resp, rc);
	}
	uint64_t first_bytes, first = store_first_seq(&m, store_now_ms(), &first_bytes);
	if (live->seq < first) {
		store_read_end(&ctx->rtxn);
		resp->action = PROTO_DONE;
		return gone(resp, req, ctx->cfg->prefix, &m, first, first_bytes, live->name, live->name_len);
	}
	if (live->seq < m.tail_seq) {
		uint64_t start = live->seq;
		rc = fill_read(ctx, &m, live, start, NULL, 1, resp);
		store_read_end(&ctx->rtxn);
		resp->action = PROTO_DONE;
		if (rc)
			store_error(resp, rc);
		return;
	}
	store_read_end(&ctx->rtxn);
	if (m.closed) {
		resp->action = PROTO_DONE;
		return proto_longpoll_timeout(ctx, req, live, resp);
	}
	resp->action = PROTO_WAIT;
}

void proto_longpoll_timeout(struct proto_ctx *ctx, const struct proto_request *req,
                            struct proto_live *live, struct proto_response *resp)
{
	struct stream_meta m;
	char cur[24];
	int closed = 0;
	(void)req;

	if (lookup(ctx, live->name, live->name_len, &m) == ST_OK) {
		closed = m.id == live->stream_id && m.closed && live->seq >= m.tail_seq;
		store_read_end(&ctx->rtxn);
	}
	proto_response_reset(resp);
	resp->status = 204;
	add_common(resp);
	add_offset(resp, live->seq, live->bytes);
	proto_add_header(resp, "Stream-Up-To-Date", "true");
	if (closed) {
		proto_add_header(resp, "Stream-Closed", "true");
	} else {
		make_cursor(live->cursor_in, cur);
		proto_add_header(resp, "Stream-Cursor", cur);
	}
	proto_add_header(resp, "Cache-Control", "no-store");
	resp->action = PROTO_DONE;
}

/* --- SSE ----------------------------------------------------------------------- */

/* The snapshot phase of ?snapshot&live=sse, with the read transaction of
 * proto_sse_step open (it is ended here). */
static enum sse_step sse_snapshot_step(struct proto_ctx *ctx, struct proto_live *live,
                                       const struct stream_meta *m, struct buf *out)
{
	char off[OFFSET_LEN + 1], cur[24];
	struct buf payload;

	buf_init(&payload);
	if (live->snap_started && (m->tail_seq != live->snap_seq || m->state_id != live->snap_sid)) {
		/* The state moved on between pages: start over, and say so. */
		offset_format(off, m->tail_seq, m->tail_bytes);
		buf_append(&payload, "[", 1);
		state_put_control(&payload, "reset", off);
		buf_append(&payload, "]", 1);
		live->snap_started = 0;
		live->snap_after_len = 0;
		if (live->snap_restarts < 3)
			live->snap_restarts++;
	}
	if (!live->snap_started) {
		live->snap_seq = m->tail_seq;
		live->snap_bytes = m->tail_bytes;
		live->snap_sid = m->state_id;
	}
	if (!live->snap_after && !(live->snap_after = malloc(STATE_MAX_ROW_KEY))) {
		store_read_end(&ctx->rtxn);
		buf_free(&payload);
		return SSE_END;
	}
	offset_format(off, live->snap_seq, live->snap_bytes);
	struct buf page;
	buf_init(&page);
	struct rows r = { .out = &page, .limit = live->snap_restarts >= 2 ? SIZE_MAX : LS_SSE_BATCH_BYTES };
	int rc = snapshot_page(&ctx->rtxn, live->snap_sid, off, live->snap_after, live->snap_after_len,
	                       !live->snap_started, &r);
	store_read_end(&ctx->rtxn);
	if (rc || payload.failed) {
		buf_free(&page);
		buf_free(&payload);
		return SSE_END;
	}
	if (payload.len)
		sse_data_event(out, payload.data, payload.len);
	sse_data_event(out, page.data, page.len);
	buf_free(&page);
	buf_free(&payload);
	live->snap_started = 1;
	if (r.more) {
		memcpy(live->snap_after, r.last, r.last_len);
		live->snap_after_len = r.last_len;
		return SSE_MORE;
	}
	/* The whole snapshot is out: go on from its offset. */
	live->snapshot = 0;
	live->seq = live->snap_seq;
	live->bytes = live->snap_bytes;
	free(live->snap_after);
	live->snap_after = NULL;
	int at_tail = live->seq >= m->tail_seq;
	if (at_tail && m->closed) {
		sse_control_event(out, off, NULL, 1, 1);
		return SSE_END;
	}
	make_cursor(live->cursor_in, cur);
	sse_control_event(out, off, cur, at_tail, 0);
	live->control_sent = 1;
	return at_tail ? SSE_IDLE : SSE_MORE;
}

enum sse_step proto_sse_step(struct proto_ctx *ctx, struct proto_live *live, struct buf *out)
{
	struct stream_meta m;
	struct buf payload;
	char off[OFFSET_LEN + 1], cur[24];
	size_t count = 0;

	int rc = lookup(ctx, live->name, live->name_len, &m);
	if (rc == ST_OK && m.id != live->stream_id) {
		store_read_end(&ctx->rtxn);
		rc = ST_NOTFOUND;
	}
	if (rc)
		return SSE_END; /* deleted or expired: end the connection */
	if (live->snapshot)
		return sse_snapshot_step(ctx, live, &m, out);
	uint64_t first_bytes;
	if (live->seq < store_first_seq(&m, store_now_ms(), &first_bytes)) {
		/* Trimmed under the reader: it resumes with a read that gets 410. */
		store_read_end(&ctx->rtxn);
		return SSE_END;
	}

	buf_init(&payload);
	if (live->seq < m.tail_seq) {
		if (live->json)
			buf_append(&payload, "[", 1);
		rc = read_messages(&ctx->rtxn, &m, live->json, LS_SSE_BATCH_BYTES, &payload,
		                   &live->seq, &live->bytes, &count);
		if (live->json)
			buf_append(&payload, "]", 1);
	}
	store_read_end(&ctx->rtxn);
	if (rc || payload.failed) {
		buf_free(&payload);
		return SSE_END;
	}
	if (count) {
		if (live->base64) {
			struct buf b64;
			buf_init(&b64);
			sse_base64(&b64, payload.data, payload.len);
			sse_data_event(out, b64.data, b64.len);
			buf_free(&b64);
		} else {
			sse_data_event(out, payload.data, payload.len);
		}
	}
	buf_free(&payload);

	int at_tail = live->seq >= m.tail_seq;
	offset_format(off, live->seq, live->bytes);
	if (at_tail && m.closed) {
		sse_control_event(out, off, NULL, 1, 1);
		return SSE_END;
	}
	if (!count && live->control_sent)
		return at_tail ? SSE_IDLE : SSE_MORE; /* nothing new since the last control event */
	make_cursor(live->cursor_in, cur);
	sse_control_event(out, off, cur, at_tail, 0);
	live->control_sent = 1; /* a control event has been sent at least once */
	return at_tail ? SSE_IDLE : SSE_MORE;
}

/* --- entry point ----------------------------------------------------------------- */

void proto_handle(struct proto_ctx *ctx, const struct proto_request *req,
                  struct proto_response *resp, struct proto_live *live)
{
	struct target tg;

	proto_response_reset(resp);
	if (req->method == M_OPTIONS) {
		resp->status = 204;
		add_common(resp);
		proto_add_header(resp, "Access-Control-Allow-Methods", ALLOW_METHODS);
		proto_add_header(resp, "Access-Control-Allow-Headers", ALLOW_HEADERS);
		proto_add_header(resp, "Access-Control-Max-Age", "86400");
		return;
	}
	if (req->method == M_OTHER)
		return proto_error(resp, 405, "method not allowed");
	if (parse_target(ctx, req, &tg, resp))
		return;
	if (req->body_too_large)
		return proto_error(resp, 413, "request body too large");
	switch (req->method) {
	case M_PUT: handle_put(ctx, req, &tg, resp); break;
	case M_POST: handle_post(ctx, req, &tg, resp); break;
	case M_GET: handle_get(ctx, req, &tg, resp, live); break;
	case M_HEAD: handle_head(ctx, &tg, resp); break;
	case M_DELETE: handle_delete(ctx, &tg, resp); break;
	default: proto_error(resp, 405, "method not allowed"); break;
	}
}
