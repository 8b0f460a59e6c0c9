/* write.c: writing a stream: PUT creates (PROTOCOL.md section 4.1), POST
 * appends and closes with idempotent producers and Stream-Seq (4.3),
 * DELETE (4.4). Every write runs as a batch job (core_write). */
#include "core/core.h"
#include "core/subs.h"
#include "lib/jsonsplit.h"
#include "lib/limits.h"
#include "lib/metrics.h"

#include <stdlib.h>
#include <string.h>

/* --- messages of a body ------------------------------------------------------ */

struct split {
	struct messages *ms;
	const char *base;
};

static int add_span(void *vctx, const char *msg, size_t len)
{
	struct split *sp = vctx;
	struct messages *ms = sp->ms;
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
	ms->v[ms->n].off = (uint32_t)(msg - sp->base);
	ms->v[ms->n].len = (uint32_t)len;
	ms->n++;
	return 0;
}

void messages_free(struct messages *ms)
{
	if (ms->v != &ms->one)
		free(ms->v);
	ms->v = NULL;
	ms->n = ms->cap = 0;
}

enum proto_err messages_split(const char *body, size_t len, int json, struct messages *ms)
{
	ms->n = 0;
	ms->cap = 1;
	ms->v = &ms->one;
	if (!len)
		return E_OK;
	if (!json) {
		ms->one.off = 0;
		ms->one.len = (uint32_t)len;
		ms->n = 1;
		return E_OK;
	}
	size_t count;
	const char *why;
	struct split sp = { ms, body };
	int rc = json_split(body, len, add_span, &sp, &count, &why);
	if (rc < 0)
		return E_JSON;
	if (rc > 0)
		return ms->n >= LS_MAX_BATCH_MESSAGES ? E_TOO_MANY_MESSAGES : E_NO_MEMORY;
	return E_OK;
}

int messages_append(struct store_txn *w, struct stream_meta *m, const char *body,
                    const struct messages *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		uint64_t end = m->tail_bytes + ms->v[i].len;
		int rc = store_msg_put(w, m->id, m->tail_seq, end, body + ms->v[i].off, ms->v[i].len);
		if (rc)
			return rc;
		m->tail_seq++;
		m->tail_bytes = end;
	}
	return ST_OK;
}

/* Appends the body's messages and materialises their change events. */
static int append_all(struct store_txn *w, struct stream_meta *m, int64_t now, const char *body,
                      const struct messages *ms, const struct events *ev)
{
	uint64_t start = m->tail_seq;
	int rc = ST_OK;
	if (ms->n && (rc = store_retain_note(w, m, now)))
		return rc;
	rc = messages_append(w, m, body, ms);
	if (rc == ST_OK && m->state && ev->parsed)
		rc = events_apply(w, m, start, body, ms, ev);
	return rc;
}

/* The node's metrics: messages appended and their bytes, once durable. */
static void count_appended(const struct messages *ms, size_t bytes)
{
	metrics_add(MC_APPENDED_MESSAGES, ms->n);
	metrics_add(MC_APPENDED_BYTES, bytes);
}

/* --- PUT ------------------------------------------------------------------------- */

/* What a PUT creates (a batch job), or answers 200 for when the stream
 * exists with the same configuration. */
struct put_job {
	const struct config *cfg;
	const struct req *q;
	struct proto_response *resp;
	const char *ct;                /* the content type asked for (or the default) */
	uint64_t ret_age_s, ret_bytes; /* the request's, else the server's defaults */
	struct messages ms;
	struct events ev;
	struct stream_meta m;          /* scratch */
};

static int put_exists(struct put_job *j, const struct stream_meta *m)
{
	if (m->soft_deleted || !fork_same_config(m, j->q, j->ct) || m->state != j->q->state ||
	    m->ret_age_s != j->ret_age_s || m->ret_bytes != j->ret_bytes) {
		proto_fail(j->resp, m->soft_deleted ? E_EXISTS_DELETED : E_EXISTS);
		return 0;
	}
	resp_start(j->resp, 200);
	resp_add_stream_type(j->resp, m->content_type);
	resp_add_offset(j->resp, m->tail_seq, m->tail_bytes);
	if (m->closed)
		resp_add_closed(j->resp);
	return 0;
}

/* The new stream's metadata from the request (before a fork's part). */
static int put_new_meta(struct store_txn *w, struct put_job *j, int64_t now)
{
	const struct req *q = j->q;
	struct stream_meta *m = &j->m;
	memset(m, 0, sizeof *m);
	int rc = store_new_id(w, &m->id);
	if (rc)
		return rc;
	m->created_ms = m->access_ms = now;
	m->has_ttl = q->has_ttl;
	m->ttl_s = q->ttl_s;
	m->expires_ms = q->expires_ms;
	m->closed = q->closed;
	store_meta_set_type(m, j->ct);
	if (q->expires_at)
		snprintf(m->expires_at, sizeof m->expires_at, "%s", q->expires_at);
	m->ret_age_s = j->ret_age_s;
	m->ret_bytes = j->ret_bytes;
	if (q->state) {
		m->state = 1;
		rc = store_new_id(w, &m->state_id);
	}
	return rc;
}

static int put_created(struct put_job *j, uint64_t *key)
{
	const struct stream_meta *m = &j->m;
	*key = m->id;
	resp_start(j->resp, 201);
	resp_add_stream_type(j->resp, m->content_type);
	resp_add_offset(j->resp, m->tail_seq, m->tail_bytes);
	resp_add_location(j->resp, j->q, j->cfg, j->q->name.s, j->q->name.len);
	if (m->closed)
		resp_add_closed(j->resp);
	return 1;
}

/* A fork's body is split once its content type (the source's) is known. */
static int put_fork(struct store_txn *w, struct put_job *j, int64_t now)
{
	int rc = fork_make(w, j->q, now, j->cfg->max_forks, &j->m, j->resp);
	if (rc)
		return rc;
	enum proto_err e = messages_split(j->q->body, j->q->body_len, j->m.media == MEDIA_JSON, &j->ms);
	if (e) {
		proto_fail(j->resp, e);
		return ST_REFUSED;
	}
	return ST_OK;
}

static int put_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct put_job *j = arg;
	const struct stream_name *n = &j->q->name;
	int64_t now = store_now_ms();
	int rc = store_meta_get(w, n->s, n->len, &j->m);
	if (rc == ST_OK && core_expired(&j->m, now)) {
		/* Forks may still hold it: then it is soft-deleted now. */
		if (!(rc = store_meta_del(w, n->s, n->len, &j->m)))
			rc = store_meta_get(w, n->s, n->len, &j->m);
	}
	if (rc == ST_OK)
		return put_exists(j, &j->m);
	if (rc == ST_NOTFOUND && store_room(w, j->q->body_len) != ST_OK)
		return core_no_room(j->resp);
	if (rc == ST_NOTFOUND && !(rc = put_new_meta(w, j, now)) && j->q->is_fork)
		rc = put_fork(w, j, now);
	uint64_t seq0 = j->m.tail_seq, bytes0 = j->m.tail_bytes;
	if (rc == ST_OK && !(rc = append_all(w, &j->m, now, j->q->body, &j->ms, &j->ev)) &&
	    !(rc = store_meta_put(w, n->s, n->len, &j->m)) &&
	    !(rc = subs_on_write(w, n->s, n->len, seq0, bytes0, &j->m)))
		return put_created(j, key);
	if (rc != ST_REFUSED)
		resp_store_error(j->resp, rc);
	return 0;
}

/* Once the write is answered: the counts of what it appended, then the
 * job goes. */
static void put_after(void *arg)
{
	struct put_job *j = arg;
	if (j->resp->status == 201 && j->ms.n)
		count_appended(&j->ms, j->q->body_len);
	messages_free(&j->ms);
	events_free(&j->ev);
	free(j);
}

void write_put(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp)
{
	struct put_job *j = calloc(1, sizeof *j);
	if (!j) {
		proto_fail(resp, E_NO_MEMORY);
		return;
	}
	j->cfg = ctx->cfg;
	j->q = q;
	j->resp = resp;
	j->ct = q->ct.raw ? q->ct.raw : "application/octet-stream";
	j->ret_age_s = q->ret_age_s;
	j->ret_bytes = q->ret_bytes;
	/* Server-wide retention applies to streams created without their own. */
	if (!q->ret_age_s && !q->ret_bytes) {
		j->ret_age_s = ctx->cfg->retention_age_s;
		j->ret_bytes = ctx->cfg->retention_bytes;
	}
	enum proto_err e = q->is_fork ? E_OK : messages_split(q->body, q->body_len, q->ct.kind == MEDIA_JSON, &j->ms);
	/* A stream that would expire as it is made could never be read. */
	if (!e && q->expires_at && q->expires_ms <= store_now_ms())
		e = E_EXPIRES_PAST;
	if (e)
		proto_fail(resp, e);
	if (e || (q->state && events_parse(q->body, &j->ms, &j->ev, resp))) {
		put_after(j);
		return;
	}
	core_write(ctx, q->body_len, put_job, j, put_after);
}

/* --- POST: producers ------------------------------------------------------------------- */

enum producer_verdict { PV_ACCEPT, PV_DUPLICATE, PV_STALE, PV_BAD_EPOCH_SEQ, PV_GAP };

/* Kafka-style idempotent producer check (PROTOCOL.md, idempotent producers). */
static enum producer_verdict check_producer(const struct req *q, int found,
                                            const struct producer_state *ps, int64_t now,
                                            uint64_t *expected)
{
	if (!found || now - ps->updated_ms > LS_PRODUCER_TTL_MS) {
		*expected = 0;
		return q->producer_seq != 0 ? PV_GAP : PV_ACCEPT;
	}
	if (q->producer_epoch < ps->epoch)
		return PV_STALE;
	if (q->producer_epoch > ps->epoch)
		return q->producer_seq == 0 ? PV_ACCEPT : PV_BAD_EPOCH_SEQ;
	if (q->producer_seq <= ps->last_seq)
		return PV_DUPLICATE;
	*expected = ps->last_seq + 1;
	return q->producer_seq == ps->last_seq + 1 ? PV_ACCEPT : PV_GAP;
}

static void producer_reply(struct proto_response *resp, enum producer_verdict v, const struct req *q,
                           const struct producer_state *ps, uint64_t expected)
{
	switch (v) {
	case PV_ACCEPT:
		break;
	case PV_DUPLICATE:
		resp_start(resp, 204);
		resp_add_u64(resp, "Producer-Epoch", q->producer_epoch);
		resp_add_u64(resp, "Producer-Seq", ps->last_seq);
		break;
	case PV_STALE:
		proto_fail(resp, E_PRODUCER_STALE);
		resp_add_u64(resp, "Producer-Epoch", ps->epoch);
		break;
	case PV_BAD_EPOCH_SEQ:
		proto_fail(resp, E_PRODUCER_NEW_EPOCH);
		break;
	case PV_GAP:
		proto_fail(resp, E_PRODUCER_GAP);
		resp_add_u64(resp, "Producer-Expected-Seq", expected);
		resp_add_u64(resp, "Producer-Received-Seq", q->producer_seq);
		break;
	}
}

/* --- POST: append and close -------------------------------------------------------------- */

struct post_job {
	const struct req *q;
	struct proto_response *resp;
	struct messages ms;
	int json;                      /* ms was split as JSON */
	struct events ev;
	int appended;                  /* the job kept its messages */
};

/* Splits the body as JSON or not into j->ms. Returns E_OK or the error. */
static enum proto_err post_split(struct post_job *j, int json)
{
	messages_free(&j->ms);
	j->json = json;
	enum proto_err e = messages_split(j->q->body, j->q->body_len, json, &j->ms);
	if (!e && j->q->body_len && j->ms.n == 0)
		e = E_EMPTY_ARRAY;
	return e;
}

/* If-Match: the stream's ETag as HEAD gives it, read under the writer lock,
 * so of writers that hold the same ETag one appends and the others are
 * refused. The refusal says where the stream is now. */
static int post_precondition(struct post_job *j, struct store_txn *w, const struct stream_meta *m)
{
	char etag[80];
	etag_of_stream(etag, sizeof etag, w->st, m);
	if (etag_matches_strong(j->q->if_match, etag))
		return ST_OK;
	proto_fail(j->resp, E_PRECONDITION);
	proto_add_header(j->resp, "ETag", etag);
	resp_add_offset(j->resp, m->tail_seq, m->tail_bytes);
	if (m->closed)
		resp_add_closed(j->resp);
	return ST_REFUSED;
}

/* A POST to a closed stream: idempotent retries succeed, the rest is 409. */
static int post_to_closed(const struct req *q, const struct stream_meta *m, struct proto_response *resp)
{
	int same_tuple = q->has_producer && m->closed_by_producer && m->cb_id_len == q->producer_id_len &&
	                 !memcmp(m->cb_id, q->producer_id, q->producer_id_len) &&
	                 m->cb_epoch == q->producer_epoch && m->cb_seq == q->producer_seq;
	if (same_tuple || (!q->body_len && !q->has_producer)) {
		/* A retried close, or closing a closed stream. */
		resp_start(resp, 204);
		resp_add_offset(resp, m->tail_seq, m->tail_bytes);
		resp_add_closed(resp);
		if (same_tuple) {
			resp_add_u64(resp, "Producer-Epoch", q->producer_epoch);
			resp_add_u64(resp, "Producer-Seq", q->producer_seq);
		}
		return 0;
	}
	proto_fail(resp, E_CLOSED);
	resp_add_closed(resp);
	resp_add_offset(resp, m->tail_seq, m->tail_bytes);
	return 0;
}

/* The checks under the writer lock. Returns ST_OK, a store error, or
 * ST_REFUSED with the answer in resp. */
static int post_admit(struct post_job *j, struct store_txn *w, struct stream_meta *m,
                      struct producer_state *ps, int64_t now)
{
	const struct req *q = j->q;
	if (q->body_len && !media_same(m->content_type, q->ct.raw)) {
		proto_fail(j->resp, E_TYPE_MISMATCH);
		return ST_REFUSED;
	}
	/* The body splits as the stream's JSON mode says (a +json type is bytes
	 * in a stream created before +json types were JSON): write_post guessed
	 * from a look-up before the lock. */
	enum proto_err e = q->body_len && (m->media == MEDIA_JSON) != j->json ? post_split(j, m->media == MEDIA_JSON) : E_OK;
	if (e) {
		proto_fail(j->resp, e);
		return ST_REFUSED;
	}
	if (q->if_match && post_precondition(j, w, m))
		return ST_REFUSED;
	if (q->has_producer) {
		uint64_t expected = 0;
		int rc = store_producer_get(w, m->id, q->who, q->producer_id, q->producer_id_len, ps);
		if (rc != ST_OK && rc != ST_NOTFOUND)
			return rc;
		enum producer_verdict v = check_producer(q, rc == ST_OK, ps, now, &expected);
		if (v != PV_ACCEPT) {
			producer_reply(j->resp, v, q, ps, expected);
			return ST_REFUSED;
		}
	}
	if (q->stream_seq) {
		/* Stream-Seq values compare as byte strings. */
		size_t n = q->stream_seq_len < m->last_seq_len ? q->stream_seq_len : m->last_seq_len;
		int c = memcmp(q->stream_seq, m->last_seq, n);
		if (m->has_last_seq && (c < 0 || (c == 0 && q->stream_seq_len <= m->last_seq_len))) {
			proto_fail(j->resp, E_SEQ_NOT_GREATER);
			return ST_REFUSED;
		}
		memcpy(m->last_seq, q->stream_seq, q->stream_seq_len);
		m->last_seq[q->stream_seq_len] = '\0';
		m->last_seq_len = q->stream_seq_len;
		m->has_last_seq = 1;
	}
	/* The stream became a State stream since the look-up before the lock. */
	if (m->state && j->ms.n && !j->ev.parsed && events_parse(q->body, &j->ms, &j->ev, j->resp))
		return ST_REFUSED;
	return ST_OK;
}

/* The metadata an accepted POST leaves: closure, producer state. */
static int post_commit(struct post_job *j, struct store_txn *w, struct stream_meta *m,
                       struct producer_state *ps, int64_t now)
{
	const struct req *q = j->q;
	int budget = LS_GC_ROWS_PER_WRITE, rc;
	if ((m->ret_age_s || m->ret_bytes || m->first_seq) && (rc = store_retain(w, m, now, &budget)))
		return rc;
	if (q->closed) {
		m->closed = 1;
		if (q->has_producer) {
			m->closed_by_producer = 1;
			memcpy(m->cb_id, q->producer_id, q->producer_id_len);
			m->cb_id[q->producer_id_len] = '\0';
			m->cb_id_len = q->producer_id_len;
			m->cb_epoch = q->producer_epoch;
			m->cb_seq = q->producer_seq;
		}
	}
	m->access_ms = now;
	if (q->has_producer) {
		ps->epoch = q->producer_epoch;
		ps->last_seq = q->producer_seq;
		ps->updated_ms = now;
		if ((rc = store_producer_put(w, m->id, q->who, q->producer_id, q->producer_id_len, ps)))
			return rc;
	}
	return store_meta_put(w, q->name.s, q->name.len, m);
}

static void post_answer(struct store *st, const struct req *q, const struct stream_meta *m,
                        struct proto_response *resp)
{
	resp_start(resp, (q->has_producer && q->body_len) ? 200 : 204);
	resp_add_offset(resp, m->tail_seq, m->tail_bytes);
	if (q->if_match) {
		/* The ETag the next conditional append names. */
		char etag[80];
		etag_of_stream(etag, sizeof etag, st, m);
		proto_add_header(resp, "ETag", etag);
	}
	if (q->closed)
		resp_add_closed(resp);
	if (q->has_producer) {
		resp_add_u64(resp, "Producer-Epoch", q->producer_epoch);
		resp_add_u64(resp, "Producer-Seq", q->producer_seq);
	}
}

/* Returns 1 to keep the writes (resp is the answer once they are durable)
 * or 0 with the final answer in resp; the batch undoes what w holds. */
static int post_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct post_job *j = arg;
	struct stream_meta m;
	struct producer_state ps = { 0 };
	int64_t now = store_now_ms();
	enum proto_err e = core_usable(w, j->q->name.s, j->q->name.len, now, &m);
	if (e) {
		proto_fail(j->resp, e);
		return 0;
	}
	/* Closing a closed stream again is 204, unless If-Match names another
	 * state of it; an append to it is 409 whatever If-Match says. */
	if (m.closed && j->q->if_match && !j->q->body_len && post_precondition(j, w, &m))
		return 0;
	if (m.closed)
		return post_to_closed(j->q, &m, j->resp);
	if (store_room(w, j->q->body_len) != ST_OK)
		return core_no_room(j->resp);
	int rc = post_admit(j, w, &m, &ps, now);
	uint64_t seq0 = m.tail_seq, bytes0 = m.tail_bytes;
	if (rc == ST_OK && !(rc = append_all(w, &m, now, j->q->body, &j->ms, &j->ev)) &&
	    !(rc = post_commit(j, w, &m, &ps, now)) &&
	    (m.tail_seq == seq0 || !(rc = subs_on_write(w, j->q->name.s, j->q->name.len, seq0, bytes0, &m)))) {
		*key = m.id;
		post_answer(w->st, j->q, &m, j->resp);
		j->appended = 1;
		return 1;
	}
	if (rc != ST_REFUSED)
		resp_store_error(j->resp, rc);
	return 0;
}

static void post_after(void *arg)
{
	struct post_job *j = arg;
	if (j->appended && j->resp->err == E_OK && j->ms.n)
		count_appended(&j->ms, j->q->body_len);
	messages_free(&j->ms);
	events_free(&j->ev);
	free(j);
}

void write_post(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp)
{
	struct post_job *j = calloc(1, sizeof *j);
	struct stream_meta pm;
	if (!j) {
		proto_fail(resp, E_NO_MEMORY);
		return;
	}
	j->q = q;
	j->resp = resp;
	/* A body of a JSON type is split here, before the writer lock, as the
	 * stream's JSON mode says (looked up first, and checked again under the
	 * lock: post_admit): a +json type is bytes in a stream created before
	 * +json types were JSON. Change events of a State stream are parsed
	 * here too. */
	int json = q->ct.kind == MEDIA_JSON, found = 0;
	if (json && q->body_len && core_lookup(ctx, q->name.s, q->name.len, &pm) == E_OK) {
		store_read_end(&ctx->rtxn);
		found = 1;
		json = pm.media == MEDIA_JSON;
	}
	enum proto_err e = post_split(j, json);
	if (e) {
		proto_fail(resp, e);
		post_after(j);
		return;
	}
	if (found && pm.state && j->ms.n && events_parse(q->body, &j->ms, &j->ev, resp)) {
		post_after(j);
		return;
	}
	/* The rest happens under the writer lock, in a batch with the writes
	 * of this process's other requests. */
	core_write(ctx, q->body_len, post_job, j, post_after);
}

/* --- DELETE -------------------------------------------------------------------------------- */

struct delete_job {
	const struct req *q;
	struct proto_response *resp;
};

static int delete_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct delete_job *j = arg;
	struct stream_meta m;
	enum proto_err e = core_usable(w, j->q->name.s, j->q->name.len, store_now_ms(), &m);
	int rc = e ? ST_OK : store_meta_del(w, j->q->name.s, j->q->name.len, &m);
	if (!e && !rc)
		rc = subs_on_delete(w, j->q->name.s, j->q->name.len);
	if (e || rc) {
		proto_fail(j->resp, e ? e : err_of_store(rc));
		return 0;
	}
	*key = m.id;
	resp_start(j->resp, 204);
	return 1;
}

void write_delete(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp)
{
	struct delete_job *j = malloc(sizeof *j);
	if (!j) {
		proto_fail(resp, E_NO_MEMORY);
		return;
	}
	*j = (struct delete_job){ q, resp };
	core_write(ctx, 0, delete_job, j, free);
}
