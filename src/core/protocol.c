/* protocol.c: the entry of the protocol core: the request-header table,
 * the per-thread context, stream look-ups and writes shared by the
 * handlers, and proto_handle, which parses a request once and dispatches
 * it to the module of its method (read.c, write.c, snapshot.c). No I/O. */
#include "core/access.h"
#include "core/core.h"
#include "core/subs.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct proto_header_def proto_headers[H__COUNT] = {
	[H_CONTENT_TYPE] = { "Content-Type", "CONTENT_TYPE", 1 },
	[H_HOST] = { "Host", "HTTP_HOST", 0 },
	[H_IF_NONE_MATCH] = { "If-None-Match", "HTTP_IF_NONE_MATCH", 1 },
	[H_IF_MATCH] = { "If-Match", "HTTP_IF_MATCH", 1 },
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
	[H_COOKIE] = { "Cookie", "HTTP_COOKIE", 0 },
	[H_ORIGIN] = { "Origin", "HTTP_ORIGIN", 0 },
};

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

int proto_is_metrics_path(const struct config *cfg, const char *target, size_t len)
{
	size_t n = strlen(cfg->metrics_path);
	return n && len == n && !memcmp(target, cfg->metrics_path, n);
}

int proto_serves(const struct config *cfg, const char *target, size_t len)
{
	size_t p = strlen(cfg->prefix);
	return (len >= p && !memcmp(target, cfg->prefix, p)) || proto_is_metrics_path(cfg, target, len);
}

/* --- context --------------------------------------------------------------- */

void proto_init(struct proto_ctx *ctx, const struct config *cfg, struct store *st)
{
	ctx->cfg = cfg;
	ctx->store = st;
	store_txn_init(&ctx->rtxn, st);
	ctx->on_commit = NULL;
	ctx->hook_arg = NULL;
	ctx->batch = NULL;
	ctx->on_written = NULL;
	ctx->call = NULL;
	ctx->auth = NULL;
	ctx->front = NULL;
}

void proto_fini(struct proto_ctx *ctx)
{
	store_txn_release(&ctx->rtxn);
}

/* A write's answer, once its job is done: a store failure replaces it, a
 * commit wakes the stream's readers, then the handler's last work. */
static void write_answered(struct core_call *call)
{
	struct batch_job *j = &call->job;
	if (j->rc == ST_OK) {
		if (j->first && call->on_commit)
			call->on_commit(call->hook_arg, j->key, j->txnid);
	} else if (j->rc != BATCH_REFUSED) {
		resp_store_error(call->resp, j->rc);
	}
	if (call->after)
		call->after(j->arg);
}

/* On the flusher thread: the queued write of a call is answered. The
 * core's last touches, then the front is told; the call ends here. */
static void queued_done(struct batch_job *j)
{
	struct core_call *call = (struct core_call *)((char *)j - offsetof(struct core_call, job));
	write_answered(call);
	core_finish(call->cfg, call->raw, call->acc.credentialed, call->resp);
	call->resp->action = PROTO_DONE;
	void (*written)(void *) = call->on_written;
	void *owner = call->raw->owner;
	free(call);
	written(owner);
}

void core_write(struct proto_ctx *ctx, size_t bytes, batch_fn fn, void *arg, void (*after)(void *arg))
{
	struct core_call *call = ctx->call;
	call->job = (struct batch_job){ .fn = fn, .arg = arg, .bytes = bytes };
	call->after = after;
	call->on_commit = ctx->on_commit;
	call->hook_arg = ctx->hook_arg;
	if (call->may_queue) {
		/* From here on the call is the writer threads': it may be
		 * answered and freed before batch_submit returns (a batch
		 * stopped since proto_handle looked runs the job at once). */
		ctx->call = NULL;
		call->job.done = queued_done;
		call->cfg = ctx->cfg;
		call->on_written = ctx->on_written;
		batch_submit(ctx->batch, ctx->store, &call->job);
		return;
	}
	batch_run(ctx->batch, ctx->store, &call->job);
	write_answered(call);
}

int core_no_room(struct proto_response *resp)
{
	resp_store_error(resp, ST_MAPFULL);
	return BATCH_RECLAIM;
}

/* --- streams ----------------------------------------------------------------- */

int core_expired(const struct stream_meta *m, int64_t now)
{
	int64_t e = store_meta_expiry(m);
	return e && now >= e;
}

enum proto_err core_usable(struct store_txn *t, const char *name, size_t nlen, int64_t now,
                           struct stream_meta *m)
{
	int rc = store_meta_get(t, name, nlen, m);
	if (rc == ST_OK && core_expired(m, now))
		return E_STREAM_NOT_FOUND;
	if (rc == ST_OK && m->soft_deleted)
		return E_DELETED;
	return rc == ST_OK ? E_OK : err_of_store(rc);
}

enum proto_err core_lookup(struct proto_ctx *ctx, const char *name, size_t nlen, struct stream_meta *m)
{
	int rc = store_read_begin(&ctx->rtxn);
	if (rc)
		return err_of_store(rc);
	enum proto_err e = core_usable(&ctx->rtxn, name, nlen, store_now_ms(), m);
	if (e)
		store_read_end(&ctx->rtxn);
	return e;
}

/* Noted for the next write of this process, at most once per
 * LS_TTL_TOUCH_MS per stream (a quarter of a short TTL); when the process
 * has not written touches for a while, this reader writes them all
 * (store_touch_note). */
void core_touch(struct proto_ctx *ctx, const char *name, size_t nlen, const struct stream_meta *seen)
{
	if (!seen->has_ttl)
		return;
	int64_t now = store_now_ms();
	int64_t every = LS_TTL_TOUCH_MS;
	if ((int64_t)seen->ttl_s * 250 < every)
		every = (int64_t)seen->ttl_s * 250;
	if (now - seen->access_ms < every)
		return;
	if (store_touch_note(ctx->store, name, nlen, seen->id, now))
		store_touch_flush(ctx->store, 0);
}

/* --- entry point ----------------------------------------------------------------- */

static void handle_options(struct proto_response *resp)
{
	char allow[512];
	size_t n = 0;
	for (int i = 0; i < H__COUNT; i++)
		if (proto_headers[i].cors)
			n += (size_t)snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "",
			                      proto_headers[i].name);
	resp_start(resp, 204);
	proto_add_header(resp, "Access-Control-Allow-Methods", proto_allow_methods);
	proto_add_header(resp, "Access-Control-Allow-Headers", allow);
	proto_add_header(resp, "Access-Control-Max-Age", "86400");
}

void core_finish(const struct config *cfg, const struct proto_request *raw, int credentialed,
                 struct proto_response *resp)
{
	const char *origin = req_origin(raw);
	if (origin && strcmp(origin, "*") && access_origin_listed(cfg, origin)) {
		/* Credentials may come along: the exact origin, never "*". */
		resp_set_header(resp, "Access-Control-Allow-Origin", origin);
		proto_add_header(resp, "Access-Control-Allow-Credentials", "true");
		proto_add_header(resp, "Vary", "Origin");
	} else if (!access_origin_listed(cfg, "*")) {
		resp_set_header(resp, "Access-Control-Allow-Origin", NULL);
	}
	const char *cc = proto_get_header(resp, "Cache-Control");
	if (credentialed && cc && strstr(cc, "public")) {
		char priv[160];
		const char *rest = strstr(cc, "public") + 6;
		snprintf(priv, sizeof priv, "%.*sprivate%s", (int)(strstr(cc, "public") - cc), cc, rest);
		resp_set_header(resp, "Cache-Control", priv);
	}
}

/* GET requests by mode, for the node's metrics. */
static void count_read(const struct req *q)
{
	if (q->snapshot && q->live != LIVE_SSE)
		metrics_add(MC_READS_SNAPSHOT, 1);
	else
		metrics_add(q->live == LIVE_SSE ? MC_READS_SSE : q->live == LIVE_LONG_POLL ? MC_READS_LONGPOLL
		            : MC_READS_CATCHUP, 1);
}

static void dispatch(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp,
                     struct proto_live *live)
{
	if (q->metrics) {
		scrape_answer(ctx, q, resp);
		return;
	}
	if (q->ctl != CTL_NONE) {
		subs_handle(ctx, q, resp);
		return;
	}
	if (q->method == M_GET)
		count_read(q);
	switch (q->method) {
	case M_PUT: write_put(ctx, q, resp); break;
	case M_POST:
		if (q->compact)
			state_compact(ctx, q, resp);
		else
			write_post(ctx, q, resp);
		break;
	case M_GET:
		if (q->snapshot && q->live != LIVE_SSE)
			state_snapshot(ctx, q, resp);
		else
			read_get(ctx, q, resp, live);
		break;
	case M_HEAD: read_head(ctx, q, resp); break;
	case M_DELETE: write_delete(ctx, q, resp); break;
	default: proto_fail(resp, E_METHOD); break;
	}
}

int proto_may_write(enum proto_method m)
{
	return m == M_PUT || m == M_POST || m == M_DELETE;
}

enum proto_action proto_handle(struct proto_ctx *ctx, const struct proto_request *raw,
                               struct proto_response *resp, struct proto_live *live)
{
	struct core_call here, *call = &here;
	proto_response_reset(resp);
	if (raw->method == M_OPTIONS) {
		handle_options(resp);
		core_finish(ctx->cfg, raw, 0, resp);
		return resp->action;
	}
	if (raw->method == M_OTHER) {
		proto_fail(resp, E_METHOD);
		core_finish(ctx->cfg, raw, 0, resp);
		return resp->action;
	}
	/* A write the front lets go without waiting lives on the heap. */
	if (ctx->on_written && raw->owner && proto_may_write(raw->method) && batch_queues(ctx->batch) &&
	    !(call = malloc(sizeof *call)))
		call = &here;
	call->may_queue = call != &here;
	call->raw = raw;
	call->resp = resp;
	memset(&call->acc, 0, sizeof call->acc);
	ctx->call = call;
	struct req *q = &call->q;
	enum proto_err e = req_parse(raw, ctx->cfg, q);
	if (e)
		proto_fail(resp, e);
	else if (access_check(ctx, q, &call->acc, resp) == E_OK) {
		q->who = call->acc.has_principal ? call->acc.principal : NULL;
		dispatch(ctx, q, resp, live);
	}
	if (!ctx->call)
		return PROTO_QUEUED; /* core_write handed the call and resp over: never touch them */
	ctx->call = NULL;
	if (resp->action != PROTO_DONE) {
		live->expires_ms = call->acc.expires_ms;
		live->credentialed = call->acc.credentialed != 0;
	}
	if (!e && q->metrics) {
		/* For this site's pages only: no other origin may read them. */
		resp_set_header(resp, "Access-Control-Allow-Origin", NULL);
	} else {
		core_finish(ctx->cfg, raw, call->acc.credentialed, resp);
	}
	if (call != &here)
		free(call);
	return resp->action;
}
