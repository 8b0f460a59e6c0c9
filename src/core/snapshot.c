/* snapshot.c: State streams (docs/state-and-retention.md): change events
 * applied to a materialised state as they are appended, snapshots of that
 * state read in pages (GET ?snapshot) or ahead of a live SSE read, POST
 * ?compact, and the retention headers and 410 answers. */
#include "core/core.h"
#include "core/state.h"
#include "lib/limits.h"
#include "lib/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- change events ----------------------------------------------------------- */

void events_free(struct events *ev)
{
	free(ev->v);
	buf_free(&ev->arena);
	memset(ev, 0, sizeof *ev);
}

int events_parse(const char *body, const struct messages *ms, struct events *ev,
                 struct proto_response *resp)
{
	ev->v = malloc((ms->n ? ms->n : 1) * sizeof *ev->v);
	if (!ev->v) {
		proto_fail(resp, E_NO_MEMORY);
		return -1;
	}
	ev->n = ms->n;
	for (size_t i = 0; i < ms->n; i++) {
		const char *why;
		if (state_parse(body + ms->v[i].off, ms->v[i].len, &ev->v[i], &ev->arena, &why)) {
			if (why)
				proto_fail_detail(resp, E_CHANGE_EVENT, why);
			else
				proto_fail(resp, E_NO_MEMORY);
			return -1;
		}
	}
	ev->parsed = 1;
	return 0;
}

int events_apply(struct store_txn *w, struct stream_meta *m, uint64_t seq, const char *body,
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

/* --- retention ---------------------------------------------------------------- */

void state_gone(struct proto_response *resp, const char *prefix, const struct stream_meta *m,
                uint64_t first, uint64_t first_bytes, const char *name, size_t nlen)
{
	char off[OFFSET_LEN + 1];
	proto_fail(resp, m->state ? E_BEFORE_EARLIEST_STATE : E_BEFORE_EARLIEST);
	offset_format(off, first, first_bytes);
	proto_add_header(resp, "Stream-Earliest-Offset", off);
	if (!m->state)
		return;
	/* Link: <prefix/name?snapshot>; rel="snapshot", the path of Location. */
	char path[LS_MAX_URL], link[LS_MAX_URL + 32];
	if (resp_url_path(path, sizeof path, prefix, name, nlen)) {
		snprintf(link, sizeof link, "<%s?snapshot>; rel=\"snapshot\"", path);
		proto_add_header(resp, "Link", link);
	}
}

void state_add_headers(struct proto_response *resp, const struct stream_meta *m, int64_t now)
{
	if (m->state)
		proto_add_header(resp, "Stream-State", "true");
	if (m->ret_age_s)
		resp_add_u64(resp, "Stream-Retention-Age", m->ret_age_s);
	if (m->ret_bytes)
		resp_add_u64(resp, "Stream-Retention-Bytes", m->ret_bytes);
	uint64_t fb, first = store_first_seq(m, now, &fb);
	if (first) {
		char off[OFFSET_LEN + 1];
		offset_format(off, first, fb);
		proto_add_header(resp, "Stream-Earliest-Offset", off);
	}
}

/* --- snapshot pages ------------------------------------------------------------- */

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

static void snapshot_headers(struct proto_ctx *ctx, const struct req *q, const struct stream_meta *m,
                             const struct rows *r, struct proto_response *resp)
{
	char etag[96];
	resp_start(resp, 200);
	proto_add_header(resp, "Content-Type", "application/json");
	resp_add_offset(resp, m->tail_seq, m->tail_bytes);
	proto_add_header(resp, "Stream-Up-To-Date", "true");
	if (m->closed)
		resp_add_closed(resp);
	if (q->live == LIVE_LONG_POLL)
		resp_add_cursor(resp, NULL);
	if (r->more) {
		char next[2 * STATE_MAX_ROW_KEY + 48];
		snap_token_format(next, sizeof next, m->tail_seq, m->state_id, r->last, r->last_len);
		proto_add_header(resp, "Stream-Snapshot-Next", next);
	}
	snprintf(etag, sizeof etag, "\"%08x.%llu-s%llu-%llu%s\"", (unsigned)store_incarnation(ctx->store),
	         (unsigned long long)m->id,
	         (unsigned long long)m->state_id, (unsigned long long)m->tail_seq, m->closed ? "-c" : "");
	proto_add_header(resp, "ETag", etag);
	/* The first page names the current state: revalidate. A later page is
	 * fixed by its token, like data at an offset. */
	proto_add_header(resp, "Cache-Control", q->has_token ? ctx->cfg->cache_control : "no-cache");
	if (q->if_none_match && etag_matches(q->if_none_match, etag)) {
		proto_response_reset(resp);
		resp_start(resp, 304);
		proto_add_header(resp, "ETag", etag);
	}
}

/* GET ?snapshot[=token]: one page of the materialised state of a State
 * stream at one offset (the stream's tail when the first page was read). */
void state_snapshot(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp)
{
	struct stream_meta m;
	char off[OFFSET_LEN + 1];
	enum proto_err e = core_lookup(ctx, q->name.s, q->name.len, &m);
	if (e) {
		proto_fail(resp, e);
		return;
	}
	if (!m.state)
		e = E_NOT_STATE;
	else if (q->has_token && (q->token.seq != m.tail_seq || q->token.sid != m.state_id))
		e = E_SNAPSHOT_MOVED;
	if (e) {
		store_read_end(&ctx->rtxn);
		proto_fail(resp, e);
		return;
	}
	offset_format(off, m.tail_seq, m.tail_bytes);
	struct rows r = { .out = &resp->body, .limit = ctx->cfg->snapshot_page };
	buf_reset(&resp->body);
	int rc = snapshot_page(&ctx->rtxn, m.state_id, off, q->token.after, q->token.after_len,
	                       !q->has_token, &r);
	store_read_end(&ctx->rtxn);
	if (rc) {
		resp_store_error(resp, rc);
		return;
	}
	snapshot_headers(ctx, q, &m, &r, resp);
	core_touch(ctx, q->name.s, q->name.len, &m);
}

/* --- the snapshot ahead of a live SSE read ------------------------------------------ */

/* The state moved on between pages: start over, and say so in payload. */
static void snapshot_restart(struct proto_live *live, const struct stream_meta *m, struct buf *payload)
{
	char off[OFFSET_LEN + 1];
	offset_format(off, m->tail_seq, m->tail_bytes);
	buf_append(payload, "[", 1);
	state_put_control(payload, "reset", off);
	buf_append(payload, "]", 1);
	live->snap_started = 0;
	live->snap_after_len = 0;
	if (live->snap_restarts < 3)
		live->snap_restarts++;
}

/* The whole snapshot is out: go on from its offset. */
static enum sse_step snapshot_done(struct proto_live *live, const struct stream_meta *m, struct buf *out)
{
	char off[OFFSET_LEN + 1], cur[24];
	live->snapshot = 0;
	live->seq = live->snap_seq;
	live->bytes = live->snap_bytes;
	free(live->snap_after);
	live->snap_after = NULL;
	offset_format(off, live->seq, live->bytes);
	int at_tail = live->seq >= m->tail_seq;
	if (at_tail && m->closed) {
		sse_control_event(out, off, NULL, 1, 1);
		return SSE_END;
	}
	cursor_next(live->cursor_in, cur);
	sse_control_event(out, off, cur, at_tail, 0);
	live->control_sent = 1;
	return at_tail ? SSE_IDLE : SSE_MORE;
}

enum sse_step state_sse_step(struct proto_ctx *ctx, struct proto_live *live,
                             const struct stream_meta *m, struct buf *out)
{
	char off[OFFSET_LEN + 1];
	struct buf payload, page;
	buf_init(&payload);
	buf_init(&page);
	if (live->snap_started && (m->tail_seq != live->snap_seq || m->state_id != live->snap_sid))
		snapshot_restart(live, m, &payload);
	if (!live->snap_started) {
		live->snap_seq = m->tail_seq;
		live->snap_bytes = m->tail_bytes;
		live->snap_sid = m->state_id;
	}
	int rc = ST_BUSY;
	/* After two restarts the pages grow to snapshot_page, so that a state
	 * of that size that keeps changing still goes out whole in one
	 * consistent page; never larger: one connection must not hold a whole
	 * state of any size (a larger one that changes faster than a page goes
	 * out keeps restarting). */
	size_t big = ctx->cfg->snapshot_page > LS_SSE_BATCH_BYTES ? (size_t)ctx->cfg->snapshot_page : LS_SSE_BATCH_BYTES;
	struct rows r = { .out = &page, .limit = live->snap_restarts >= 2 ? big : LS_SSE_BATCH_BYTES };
	if (live->snap_after || (live->snap_after = malloc(STATE_MAX_ROW_KEY))) {
		offset_format(off, live->snap_seq, live->snap_bytes);
		rc = snapshot_page(&ctx->rtxn, live->snap_sid, off, live->snap_after, live->snap_after_len,
		                   !live->snap_started, &r);
	}
	store_read_end(&ctx->rtxn);
	if (rc == ST_OK && !payload.failed) {
		if (payload.len)
			sse_data_event(out, payload.data, payload.len);
		sse_data_event(out, page.data, page.len);
		live->snap_started = 1;
	}
	buf_free(&page);
	buf_free(&payload);
	if (rc || !live->snap_started)
		return SSE_END;
	if (!r.more)
		return snapshot_done(live, m, out);
	memcpy(live->snap_after, r.last, r.last_len);
	live->snap_after_len = r.last_len;
	return SSE_MORE;
}

/* --- POST ?compact ------------------------------------------------------------------- */

struct compact_job {
	const struct req *q;
	struct proto_response *resp;
};

/* A State stream drops its whole history; its snapshot stays. Readers of
 * older offsets get 410 at once; the rows go in bounded batches, here and
 * in later housekeeping. */
static int compact_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct compact_job *j = arg;
	struct stream_meta m;
	int64_t now = store_now_ms();
	int budget = LS_GC_ROWS_PER_WRITE, rc = ST_OK;
	enum proto_err e = core_usable(w, j->q->name.s, j->q->name.len, now, &m);
	if (!e && !m.state)
		e = E_COMPACT_NOT_STATE;
	if (!e) {
		m.first_seq = m.tail_seq;
		m.first_bytes = m.tail_bytes;
		if ((rc = store_retain(w, &m, now, &budget)) == ST_OK)
			rc = store_meta_put(w, j->q->name.s, j->q->name.len, &m);
	}
	if (e || rc) {
		proto_fail(j->resp, e ? e : err_of_store(rc));
		return 0;
	}
	*key = m.id;
	resp_start(j->resp, 204);
	resp_add_offset(j->resp, m.tail_seq, m.tail_bytes);
	state_add_headers(j->resp, &m, now);
	return 1;
}

void state_compact(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp)
{
	struct compact_job *j = malloc(sizeof *j);
	if (!j) {
		proto_fail(resp, E_NO_MEMORY);
		return;
	}
	*j = (struct compact_job){ q, resp };
	core_write(ctx, 0, compact_job, j, free);
}
