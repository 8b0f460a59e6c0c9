/* read.c: reading a stream: GET catch-up reads and the start of live reads
 * (PROTOCOL.md section 5), HEAD, ETags. */
#include "core/core.h"
#include "lib/limits.h"
#include "lib/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- messages -------------------------------------------------------------- */

struct collect {
	struct buf *out;
	int json;
	size_t limit;
	size_t first_max;   /* a first message longer than this is not read (0: no bound) */
	size_t first_len;   /* ... and its length is here */
	size_t count;
	uint64_t next_seq;
	uint64_t next_bytes;
};

static int collect_msg(void *vctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len)
{
	struct collect *c = vctx;
	if (c->count && c->out->len + len > c->limit)
		return 1;
	if (!c->count && c->first_max && len > c->first_max) {
		c->first_len = len;
		return 1;
	}
	if (c->json && c->count)
		buf_append(c->out, ",", 1);
	buf_append(c->out, data, len);
	c->count++;
	c->next_seq = seq + 1;
	c->next_bytes = end_bytes;
	return c->out->failed ? 1 : 0;
}

int read_messages(struct store_txn *t, const struct stream_meta *m, int json, size_t limit,
                  size_t first_max, size_t *first_len, struct buf *out, uint64_t *seq,
                  uint64_t *bytes, size_t *count)
{
	struct collect c = { out, json, limit, first_max, 0, 0, *seq, *bytes };
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
	if (first_len)
		*first_len = c.first_len;
	return ST_OK;
}

/* --- ETags ------------------------------------------------------------------- */

/* "incarnation.id-start-end[-c]": the store's incarnation (store.h) keeps
 * a restored store's ETags from matching what was cached from another. */
static void etag_range(char *out, size_t cap, struct store *st, const struct stream_meta *m,
                       uint64_t start, uint64_t end, int closed)
{
	snprintf(out, cap, "\"%08x.%llu-%llu-%llu%s\"", (unsigned)store_incarnation(st), (unsigned long long)m->id,
	         (unsigned long long)start, (unsigned long long)end, closed ? "-c" : "");
}

static void etag_value(char *out, size_t cap, const struct proto_ctx *ctx, const struct stream_meta *m,
                       uint64_t start, uint64_t end, int closed)
{
	etag_range(out, cap, ctx->store, m, start, end, closed);
}

void etag_of_stream(char *out, size_t cap, struct store *st, const struct stream_meta *m)
{
	etag_range(out, cap, st, m, 0, m->tail_seq, m->closed);
}

/* A list of entity tags, or "*". */
static int etag_listed(const char *header, const char *etag, int strong)
{
	size_t el = strlen(etag);
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '*')
			return 1;
		int weak = p[0] == 'W' && p[1] == '/';
		if (weak)
			p += 2;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - p) == el && !memcmp(p, etag, el) && !(weak && strong))
			return 1;
		p = e;
	}
	return 0;
}

int etag_matches(const char *header, const char *etag)
{
	return etag_listed(header, etag, 0);
}

int etag_matches_strong(const char *header, const char *etag)
{
	return etag_listed(header, etag, 1);
}

/* --- catch-up reads ------------------------------------------------------------ */

static void read_headers(struct proto_ctx *ctx, const struct stream_meta *m, struct proto_live *live,
                         size_t count, int long_poll, struct proto_response *resp)
{
	int up_to_date = live->seq >= m->tail_seq;
	resp_start(resp, 200);
	resp_add_stream_type(resp, m->content_type);
	resp_add_offset(resp, live->seq, live->bytes);
	if (up_to_date)
		proto_add_header(resp, "Stream-Up-To-Date", "true");
	if (m->closed && up_to_date)
		resp_add_closed(resp);
	if (long_poll)
		resp_add_cursor(resp, live->cursor_in);
	/* Data at an offset never changes (PROTOCOL.md section 10.1); an empty
	 * read at the tail must not hide what comes next. */
	proto_add_header(resp, "Cache-Control", count ? ctx->cfg->cache_control : "no-cache");
}

int read_fill(struct proto_ctx *ctx, const struct stream_meta *m, struct proto_live *live,
              uint64_t start_seq, const char *if_none_match, int long_poll,
              struct proto_response *resp)
{
	size_t count;
	char etag[80];
	int json = live->json;
	uint64_t bytes_before = live->bytes;

	proto_response_reset(resp);
	if (json)
		buf_append(&resp->body, "[", 1);
	int rc = read_messages(&ctx->rtxn, m, json, LS_READ_PAGE_BYTES, 0, NULL, &resp->body,
	                       &live->seq, &live->bytes, &count);
	if (rc)
		return rc;
	if (json)
		buf_append(&resp->body, "]", 1);
	if (resp->body.failed)
		return ST_ERROR;
	read_headers(ctx, m, live, count, long_poll, resp);
	if (long_poll && count) {
		metrics_add(MC_DELIVERED_MESSAGES, count);
		metrics_add(MC_DELIVERED_BYTES, live->bytes - bytes_before);
	}
	etag_value(etag, sizeof etag, ctx, m, start_seq, live->seq, m->closed && live->seq >= m->tail_seq);
	proto_add_header(resp, "ETag", etag);
	if (if_none_match && etag_matches(if_none_match, etag)) {
		/* 304 keeps the validators only. */
		proto_response_reset(resp);
		resp_start(resp, 304);
		proto_add_header(resp, "ETag", etag);
	}
	return ST_OK;
}

/* Where a read from q's offset starts: live->seq and live->bytes. Returns
 * E_OK, or E_BEFORE_EARLIEST with *first set (the caller answers 410). */
static enum proto_err read_start(struct proto_ctx *ctx, const struct req *q, const struct stream_meta *m,
                                 struct proto_live *live, uint64_t *first, uint64_t *first_bytes)
{
	const struct offset *o = &q->offset;
	int rc;
	uint64_t seq = !q->has_offset || o->kind == OFFSET_START ? 0
	             : o->kind == OFFSET_NOW ? m->tail_seq : o->seq;
	/* Past the tail: an offset of another copy of the stream (a restored
	 * store, a stream deleted and created again). Clamping it would hand
	 * out again offsets the reader has passed. */
	if (seq > m->tail_seq)
		return E_BEYOND_TAIL;
	*first = store_first_seq(m, store_now_ms(), first_bytes);
	if (seq < *first)
		return E_BEFORE_EARLIEST;
	live->stream_id = m->id;
	live->seq = seq;
	live->json = m->media == MEDIA_JSON;
	live->base64 = m->media == MEDIA_BINARY;
	if (seq == m->tail_seq)
		live->bytes = m->tail_bytes;
	else if (seq == *first)
		live->bytes = *first_bytes; /* the message before it may be deleted */
	else if ((rc = store_stream_end_bytes(&ctx->rtxn, m, seq, &live->bytes)))
		return err_of_store(rc);
	return E_OK;
}

/* ?offset=now without live: the tail, no data. */
static void read_now(const struct stream_meta *m, const struct proto_live *live, struct proto_response *resp)
{
	resp_start(resp, 200);
	resp_add_stream_type(resp, m->content_type);
	resp_add_offset(resp, m->tail_seq, m->tail_bytes);
	proto_add_header(resp, "Stream-Up-To-Date", "true");
	proto_add_header(resp, "Cache-Control", "no-store");
	if (m->closed)
		resp_add_closed(resp);
	if (live->json)
		buf_puts(&resp->body, "[]");
}

/* An SSE response's headers; proto_sse_step streams the events. */
static void start_sse(const struct proto_live *live, struct proto_response *resp)
{
	resp_start(resp, 200);
	proto_add_header(resp, "Content-Type", "text/event-stream");
	proto_add_header(resp, "Cache-Control", "no-cache");
	if (live->base64)
		proto_add_header(resp, "Stream-SSE-Data-Encoding", "base64");
	resp->action = PROTO_SSE;
}

/* ?snapshot&live=sse: proto_sse_step sends the snapshot first. */
static void start_snapshot_sse(const struct stream_meta *m, struct proto_live *live,
                               struct proto_response *resp)
{
	if (!m->state) {
		proto_fail(resp, E_NOT_STATE);
		return;
	}
	live->stream_id = m->id;
	live->json = 1;
	live->snapshot = 1;
	start_sse(live, resp);
}

/* Keeps the stream's name for the live read's later steps. */
static int live_name(struct proto_live *live, const struct req *q)
{
	live->name = strndup(q->name.s, q->name.len);
	live->name_len = q->name.len;
	return live->name ? 0 : -1;
}

/* Whether a GET answers with data read now (in the open transaction). */
static int reads_now(const struct req *q, const struct stream_meta *m, const struct proto_live *live)
{
	if (q->snapshot || q->live == LIVE_SSE)
		return 0;
	if (q->has_offset && q->offset.kind == OFFSET_NOW && q->live == LIVE_NONE)
		return 0;
	return !(q->live == LIVE_LONG_POLL && live->seq >= m->tail_seq);
}

/* The answers that need no data (the read transaction is over). */
static void answer_without_data(struct proto_ctx *ctx, const struct req *q, const struct stream_meta *m,
                                struct proto_live *live, struct proto_response *resp)
{
	if (q->snapshot)
		start_snapshot_sse(m, live, resp);
	else if (q->live == LIVE_SSE)
		start_sse(live, resp);
	else if (q->live == LIVE_NONE)
		read_now(m, live, resp);
	else if (m->closed)
		proto_longpoll_timeout(ctx, NULL, live, resp);
	else
		resp->action = PROTO_WAIT; /* a long-poll at the tail */
}

void read_get(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp,
              struct proto_live *live)
{
	struct stream_meta m;
	uint64_t first, first_bytes;

	proto_live_clear(live);
	memcpy(live->cursor_in, q->cursor, sizeof live->cursor_in);
	enum proto_err e = core_lookup(ctx, q->name.s, q->name.len, &m);
	if (e) {
		proto_fail(resp, e);
		return;
	}
	if (!q->snapshot && (e = read_start(ctx, q, &m, live, &first, &first_bytes)) == E_BEFORE_EARLIEST) {
		store_read_end(&ctx->rtxn);
		state_gone(resp, ctx->cfg->prefix, &m, first, first_bytes, q->name.s, q->name.len);
		return;
	}
	if (!e && (q->live != LIVE_NONE || q->snapshot) && live_name(live, q))
		e = E_NO_MEMORY;
	int with_data = !e && reads_now(q, &m, live);
	if (with_data) {
		int rc = read_fill(ctx, &m, live, live->seq, q->if_none_match, q->live == LIVE_LONG_POLL, resp);
		if (rc)
			e = err_of_store(rc);
	}
	store_read_end(&ctx->rtxn);
	if (e) {
		proto_fail(resp, e);
		return;
	}
	if (!with_data)
		answer_without_data(ctx, q, &m, live, resp);
	if (resp->status < 400)
		core_touch(ctx, q->name.s, q->name.len, &m);
}

/* --- HEAD -------------------------------------------------------------------------- */

void read_head(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp)
{
	struct stream_meta m;
	char etag[80];
	enum proto_err e = core_lookup(ctx, q->name.s, q->name.len, &m);
	if (e) {
		proto_fail(resp, e);
		return;
	}
	store_read_end(&ctx->rtxn);
	resp_start(resp, 200);
	resp_add_stream_type(resp, m.content_type);
	if (m.has_ttl)
		resp_add_u64(resp, "Stream-TTL", m.ttl_s);
	if (m.expires_at[0])
		proto_add_header(resp, "Stream-Expires-At", m.expires_at);
	resp_add_offset(resp, m.tail_seq, m.tail_bytes);
	proto_add_header(resp, "Cache-Control", "no-store");
	if (m.closed)
		resp_add_closed(resp);
	etag_of_stream(etag, sizeof etag, ctx->store, &m);
	proto_add_header(resp, "ETag", etag);
	state_add_headers(resp, &m, store_now_ms());
}
