/* live.c: the steps of live reads (PROTOCOL.md section 5.2): a long-poll
 * checks again after each commit until data comes or its deadline passes;
 * an SSE read turns what follows its offset into events. The front waits
 * between steps; nothing here blocks. */
#include "core/core.h"
#include "lib/limits.h"
#include "lib/metrics.h"
#include "lib/sse.h"

#include <stdlib.h>
#include <string.h>

void proto_live_clear(struct proto_live *live)
{
	free(live->name);
	free(live->snap_after);
	memset(live, 0, sizeof *live);
}

int64_t proto_live_deadline(const struct proto_live *live, int64_t mono_now, int lifetime_ms)
{
	int64_t end = mono_now + lifetime_ms;
	if (live->expires_ms) {
		int64_t left = live->expires_ms - store_now_ms();
		if (mono_now + left < end)
			end = mono_now + (left > 0 ? left : 0);
	}
	return end;
}

/* The live read's stream, still the one it started on: E_OK with the read
 * transaction open, or why not. */
static enum proto_err live_lookup(struct proto_ctx *ctx, const struct proto_live *live,
                                  struct stream_meta *m)
{
	enum proto_err e = core_lookup(ctx, live->name, live->name_len, m);
	if (e == E_OK && m->id != live->stream_id) {
		store_read_end(&ctx->rtxn);
		e = E_STREAM_NOT_FOUND;
	}
	return e;
}

static void longpoll_poll(struct proto_ctx *ctx, const struct proto_request *req,
                          struct proto_live *live, struct proto_response *resp);

void proto_longpoll_poll(struct proto_ctx *ctx, const struct proto_request *req,
                         struct proto_live *live, struct proto_response *resp)
{
	longpoll_poll(ctx, req, live, resp);
	if (resp->action == PROTO_DONE && req)
		core_finish(ctx->cfg, req, live->credentialed, resp);
}

static void longpoll_poll(struct proto_ctx *ctx, const struct proto_request *req,
                          struct proto_live *live, struct proto_response *resp)
{
	struct stream_meta m;
	enum proto_err e = live_lookup(ctx, live, &m);
	resp->action = PROTO_DONE;
	if (e) {
		proto_fail(resp, e);
		return;
	}
	uint64_t first_bytes, first = store_first_seq(&m, store_now_ms(), &first_bytes);
	if (live->seq < first) {
		store_read_end(&ctx->rtxn);
		state_gone(resp, ctx->cfg->prefix, &m, first, first_bytes, live->name, live->name_len);
		return;
	}
	if (live->seq < m.tail_seq) {
		int rc = read_fill(ctx, &m, live, live->seq, NULL, 1, resp);
		store_read_end(&ctx->rtxn);
		if (rc)
			resp_store_error(resp, rc);
		return;
	}
	store_read_end(&ctx->rtxn);
	if (m.closed) {
		proto_longpoll_timeout(ctx, req, live, resp);
		return;
	}
	resp->action = PROTO_WAIT;
}

void proto_longpoll_timeout(struct proto_ctx *ctx, const struct proto_request *req,
                            struct proto_live *live, struct proto_response *resp)
{
	struct stream_meta m;
	int closed = 0;
	(void)req;

	if (core_lookup(ctx, live->name, live->name_len, &m) == E_OK) {
		closed = m.id == live->stream_id && m.closed && live->seq >= m.tail_seq;
		store_read_end(&ctx->rtxn);
	}
	proto_response_reset(resp);
	resp_start(resp, 204);
	resp_add_offset(resp, live->seq, live->bytes);
	proto_add_header(resp, "Stream-Up-To-Date", "true");
	if (closed)
		resp_add_closed(resp);
	else
		resp_add_cursor(resp, live->cursor_in);
	proto_add_header(resp, "Cache-Control", "no-store");
	resp->action = PROTO_DONE;
	if (req)
		core_finish(ctx->cfg, req, live->credentialed, resp);
}

/* The data event of the messages in payload (base64 for binary streams). */
static void sse_messages(const struct proto_live *live, const struct buf *payload, struct buf *out)
{
	if (!live->base64) {
		sse_data_event(out, payload->data, payload->len);
		return;
	}
	struct buf b64;
	buf_init(&b64);
	sse_base64(&b64, payload->data, payload->len);
	sse_data_event(out, b64.data, b64.len);
	buf_free(&b64);
}

/* Reads the next messages into payload (the transaction is ended); a first
 * message too long for one step is left to sse_piece, with its length in
 * *big. */
static int sse_read(struct proto_ctx *ctx, struct proto_live *live, const struct stream_meta *m,
                    struct buf *payload, size_t *count, size_t *big)
{
	int rc = ST_OK;
	*count = 0;
	*big = 0;
	if (live->seq < m->tail_seq) {
		if (live->json)
			buf_append(payload, "[", 1);
		rc = read_messages(&ctx->rtxn, m, live->json, LS_SSE_BATCH_BYTES, LS_SSE_PIECE_BYTES, big,
		                   payload, &live->seq, &live->bytes, count);
		if (live->json)
			buf_append(payload, "]", 1);
	}
	store_read_end(&ctx->rtxn);
	return rc || payload->failed ? -1 : 0;
}

struct piece_read {
	uint64_t off;          /* from this byte of the message */
	struct buf *out;       /* at most LS_SSE_PIECE_BYTES of it */
	size_t len;            /* the message's length */
	uint64_t end_bytes;    /* the stream's byte count after it */
};

static int piece_msg(void *vctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len)
{
	struct piece_read *p = vctx;
	(void)seq;
	p->len = len;
	p->end_bytes = end_bytes;
	if (p->off < len)
		buf_append(p->out, data + p->off, len - p->off < LS_SSE_PIECE_BYTES ? len - p->off : LS_SSE_PIECE_BYTES);
	return 1; /* this message only */
}

/* The next piece of the long message at live->seq (the transaction is
 * ended): its data event grows by one piece, so that a slow reader of a
 * message of many MiB holds one piece at a time, never the whole event.
 * Returns 1 when the message is whole (live->seq moves past it), 0 when
 * more pieces follow, -1 on error. */
static int sse_piece(struct proto_ctx *ctx, struct proto_live *live, const struct stream_meta *m,
                     struct buf *out)
{
	struct buf slice;
	buf_init(&slice);
	struct piece_read p = { live->piece_off, &slice, 0, 0 };
	int rc = store_stream_scan(&ctx->rtxn, m, live->seq, piece_msg, &p);
	store_read_end(&ctx->rtxn);
	if (rc || slice.failed || !slice.len) {
		buf_free(&slice);
		return -1;
	}
	if (!live->piece_off) {
		sse_data_begin(out, &live->piece);
		if (live->json)
			sse_data_part(out, &live->piece, "[", 1);
	}
	if (live->base64) {
		/* pieces are multiples of 3 bytes: their encodings concatenate */
		struct buf b64;
		buf_init(&b64);
		sse_base64(&b64, slice.data, slice.len);
		sse_data_part(out, &live->piece, b64.data, b64.len);
		buf_free(&b64);
	} else {
		sse_data_part(out, &live->piece, slice.data, slice.len);
	}
	live->piece_off += slice.len;
	buf_free(&slice);
	if (live->piece_off < p.len)
		return out->failed ? -1 : 0;
	if (live->json)
		sse_data_part(out, &live->piece, "]", 1);
	sse_data_end(out, &live->piece);
	live->piece_off = 0;
	live->seq++;
	live->bytes = p.end_bytes;
	return out->failed ? -1 : 1;
}

static enum sse_step sse_step(struct proto_ctx *ctx, struct proto_live *live, struct buf *out);

/* One step, counted in the node's metrics: the messages it sent whole. */
enum sse_step proto_sse_step(struct proto_ctx *ctx, struct proto_live *live, struct buf *out)
{
	uint64_t seq = live->seq, bytes = live->bytes;
	int snapshot = live->snapshot; /* rows of a snapshot are not messages */
	enum sse_step r = sse_step(ctx, live, out);
	if (live->seq > seq && !snapshot) {
		metrics_add(MC_DELIVERED_MESSAGES, live->seq - seq);
		metrics_add(MC_DELIVERED_BYTES, live->bytes - bytes);
	}
	return r;
}

static enum sse_step sse_step(struct proto_ctx *ctx, struct proto_live *live, struct buf *out)
{
	struct stream_meta m;
	struct buf payload;
	char off[OFFSET_LEN + 1], cur[24];
	size_t count = 0;

	if (live_lookup(ctx, live, &m))
		return SSE_END; /* deleted or expired: end the connection */
	if (live->snapshot)
		return state_sse_step(ctx, live, &m, out);
	uint64_t first_bytes;
	if (live->seq < store_first_seq(&m, store_now_ms(), &first_bytes)) {
		/* Trimmed under the reader: it resumes with a read that gets 410. */
		store_read_end(&ctx->rtxn);
		return SSE_END;
	}
	int failed = 0;
	size_t big = 0;
	if (!live->piece_off) {
		buf_init(&payload);
		failed = sse_read(ctx, live, &m, &payload, &count, &big);
		if (!failed && count)
			sse_messages(live, &payload, out);
		buf_free(&payload);
	}
	if (!failed && (live->piece_off || big)) {
		/* sse_read ended the transaction; a piece in progress still has it */
		if (big && live_lookup(ctx, live, &m))
			return SSE_END;
		int whole = sse_piece(ctx, live, &m, out);
		if (whole < 0)
			return SSE_END;
		if (!whole)
			return SSE_MORE;
		count = 1;
	}
	if (failed)
		return SSE_END;

	int at_tail = live->seq >= m.tail_seq;
	offset_format(off, live->seq, live->bytes);
	if (at_tail && m.closed) {
		sse_control_event(out, off, NULL, 1, 1);
		return SSE_END;
	}
	if (!count && live->control_sent)
		return at_tail ? SSE_IDLE : SSE_MORE; /* nothing new since the last control event */
	cursor_next(live->cursor_in, cur);
	sse_control_event(out, off, cur, at_tail, 0);
	live->control_sent = 1; /* a control event has been sent at least once */
	return at_tail ? SSE_IDLE : SSE_MORE;
}
