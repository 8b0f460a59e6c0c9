/* scrape.c: the node's metrics in the Prometheus text format (version
 * 0.0.4): the counters every process adds to (lib/metrics.h) and what the
 * store says of itself now (map, reader slots, streams). Also the index
 * under which a response is counted: one per error of the table (its
 * reason label is the error's name), then one per success status. */
#include "core/core.h"
#include "core/subs.h"
#include "lib/metrics.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* Statuses counted without an error of the table (answers of the protocol,
 * and what a front sends on its own); anything else counts as "other". */
static const int plain_statuses[] = { 200, 201, 204, 206, 304, 400, 404, 405, 408, 413, 500, 503 };
#define NPLAIN (sizeof plain_statuses / sizeof plain_statuses[0])

_Static_assert(E__COUNT + NPLAIN + 1 <= METRICS_RESPONSES, "raise METRICS_RESPONSES");

static const char *const err_names[E__COUNT] = {
	[E_OK] = "",
#define LS_ERR_NAME(name, status, reason) [name] = #name,
	PROTO_ERRORS(LS_ERR_NAME)
#undef LS_ERR_NAME
};

void proto_count_status(int status, enum proto_err e)
{
	if (e > E_OK && e < E__COUNT) {
		metrics_response((unsigned)e);
		return;
	}
	size_t i = 0;
	while (i < NPLAIN && plain_statuses[i] != status)
		i++;
	metrics_response((unsigned)(E__COUNT + i));
}

void proto_count(const struct proto_response *r)
{
	proto_count_status(r->status, r->err);
}

/* --- the text ----------------------------------------------------------------- */

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	family(b, name, type, help);
	buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* v in plain decimals, no exponent, no trailing zeros ("0.00005", "2.5", "1"). */
static void decimal(char *out, size_t cap, double v)
{
	int n = snprintf(out, cap, "%.6f", v);
	while (n > 1 && out[n - 1] == '0')
		out[--n] = '\0';
	if (n > 1 && out[n - 1] == '.')
		out[--n] = '\0';
}

/* A histogram: cumulative buckets, _sum and _count. scale: 1e6 for one
 * kept in microseconds and shown in seconds; 1 for a count. */
static void histogram(struct buf *b, const struct metrics_sum *s, enum metric_hist h,
                      const char *name, const char *help, double scale)
{
	uint64_t cum = 0;
	family(b, name, "histogram", help);
	for (int i = 0; i <= metrics_nbounds[h]; i++) {
		cum += s->hist[h][i];
		if (i < metrics_nbounds[h]) {
			char le[32];
			decimal(le, sizeof le, (double)metrics_bounds[h][i] / scale);
			buf_printf(b, "%s_bucket{le=\"%s\"} %llu\n", name, le, (unsigned long long)cum);
		} else
			buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	}
	if (scale == 1)
		buf_printf(b, "%s_sum %llu\n", name, (unsigned long long)s->hsum[h]);
	else
		buf_printf(b, "%s_sum %.6f\n", name, (double)s->hsum[h] / scale);
	buf_printf(b, "%s_count %llu\n", name, (unsigned long long)cum);
}

/* reason label of error e: its name without E_, lower case ("storage_full"). */
static void reason_label(char *out, size_t cap, enum proto_err e)
{
	const char *n = err_names[e] + 2;
	size_t i = 0;
	for (; n[i] && i + 1 < cap; i++)
		out[i] = (char)tolower((unsigned char)n[i]);
	out[i] = '\0';
}

static void responses(struct buf *b, const struct metrics_sum *s)
{
	char reason[64];
	family(b, "lmstream_responses_total", "counter",
	       "Responses sent by lmstream, by status and by the reason of a refusal (empty for an answer)");
	for (int e = 1; e < E__COUNT; e++) {
		if (!s->resp[e])
			continue;
		reason_label(reason, sizeof reason, (enum proto_err)e);
		buf_printf(b, "lmstream_responses_total{status=\"%d\",reason=\"%s\"} %llu\n",
		           proto_err_status((enum proto_err)e), reason, (unsigned long long)s->resp[e]);
	}
	for (size_t i = 0; i <= NPLAIN; i++) {
		uint64_t v = s->resp[E__COUNT + i];
		if (!v)
			continue;
		if (i < NPLAIN)
			buf_printf(b, "lmstream_responses_total{status=\"%d\",reason=\"\"} %llu\n",
			           plain_statuses[i], (unsigned long long)v);
		else
			buf_printf(b, "lmstream_responses_total{status=\"other\",reason=\"\"} %llu\n",
			           (unsigned long long)v);
	}
	/* The refusals that say "come back later", whatever their reason. */
	uint64_t busy = 0, full = 0;
	for (int e = 1; e < E__COUNT; e++) {
		int st = proto_err_status((enum proto_err)e);
		busy += st == 503 ? s->resp[e] : 0;
		full += st == 507 ? s->resp[e] : 0;
	}
	for (size_t i = 0; i < NPLAIN; i++)
		if (plain_statuses[i] == 503)
			busy += s->resp[E__COUNT + i]; /* a 503 a front sent without a reason */
	family(b, "lmstream_unavailable_total", "counter",
	       "Requests refused for want of a resource, with Retry-After: 503 (busy, memory, connections) and"
	       " 507 (storage full)");
	buf_printf(b, "lmstream_unavailable_total{status=\"503\"} %llu\n", (unsigned long long)busy);
	buf_printf(b, "lmstream_unavailable_total{status=\"507\"} %llu\n", (unsigned long long)full);
}

static void store_part(struct buf *b, struct store *st)
{
	struct store_stats ss;
	int readers = 0;
	if (store_stats(st, &ss) != ST_OK)
		return;
	store_readers(st, NULL, 0, &readers);
	one(b, "lmstream_map_size_bytes", "gauge", "Size of the store's map (map_size): the most it may hold",
	    ss.map_size);
	one(b, "lmstream_map_used_bytes", "gauge", "Bytes of the map in use (pages of data and indexes)",
	    ss.used_bytes);
	one(b, "lmstream_reader_slots_used", "gauge", "LMDB reader slots taken (by threads of every process)",
	    (uint64_t)readers);
	one(b, "lmstream_reader_slots_max", "gauge", "LMDB reader slots there are", ss.max_readers);
	one(b, "lmstream_streams", "gauge", "Streams in the store (deleted ones still read by forks included)",
	    ss.streams);
	one(b, "lmstream_last_commit_id", "gauge", "ID of the store's last write transaction",
	    ss.last_txnid);
}

/* Subscriptions, from their records in the store (core/subs.h). */
static void subs_part(struct buf *b, struct proto_ctx *ctx)
{
	struct subs_stats ss;
	if (store_read_begin(&ctx->rtxn) != ST_OK)
		return;
	int rc = subs_stats(&ctx->rtxn, &ss);
	store_read_end(&ctx->rtxn);
	if (rc != ST_OK)
		return;
	family(b, "lmstream_subscriptions", "gauge", "Subscriptions, by type");
	buf_printf(b, "lmstream_subscriptions{type=\"webhook\"} %llu\n", (unsigned long long)ss.subscriptions[0]);
	buf_printf(b, "lmstream_subscriptions{type=\"pull-wake\"} %llu\n", (unsigned long long)ss.subscriptions[1]);
	one(b, "lmstream_subscriptions_busy", "gauge",
	    "Subscriptions with a wake due, outstanding or claimed", ss.busy);
	one(b, "lmstream_subscriptions_failing", "gauge",
	    "Webhook subscriptions whose last delivery failed (a retry is scheduled)", ss.failing);
	family(b, "lmstream_webhook_deliveries_total", "counter",
	       "Webhook delivery attempts of the subscriptions there are now, by result");
	buf_printf(b, "lmstream_webhook_deliveries_total{result=\"ok\"} %llu\n", (unsigned long long)ss.webhooks_ok);
	buf_printf(b, "lmstream_webhook_deliveries_total{result=\"failed\"} %llu\n",
	           (unsigned long long)ss.webhooks_failed);
	one(b, "lmstream_wake_events_total", "counter",
	    "Wake events appended for the pull-wake subscriptions there are now", ss.wake_events);
}

void scrape_answer(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp)
{
	struct metrics_sum s;
	struct buf *b = &resp->body;
	int counting = metrics_sum(&s) == 0;

	resp_start(resp, 200);
	proto_add_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	proto_add_header(resp, "Cache-Control", "no-store");
	if (q->method == M_HEAD)
		return;
	family(b, "lmstream_build_info", "gauge", "The lmstream version that answered; 1");
	buf_printf(b, "lmstream_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	one(b, "lmstream_metrics_counting", "gauge",
	    "1 when the node's processes count (metrics = on); 0: every counter below stays 0", counting);
	family(b, "lmstream_processes", "gauge", "lmstream processes running on this node, by program");
	for (int f = MF_FCGI; f < MF__COUNT; f++)
		buf_printf(b, "lmstream_processes{front=\"%s\"} %d\n", metrics_front_names[f], s.processes[f]);

	one(b, "lmstream_appended_messages_total", "counter", "Messages appended to streams",
	    s.c[MC_APPENDED_MESSAGES]);
	one(b, "lmstream_appended_bytes_total", "counter", "Bytes of the messages appended",
	    s.c[MC_APPENDED_BYTES]);
	one(b, "lmstream_commits_total", "counter", "Write transactions committed", s.c[MC_COMMITS]);
	one(b, "lmstream_flushes_total", "counter",
	    "Flushes of the store to disk (one makes every commit before it durable)", s.c[MC_FLUSHES]);
	histogram(b, &s, MH_BATCH, "lmstream_commit_batch_size",
	          "Writes (appends, creates, deletes) that shared one commit", 1);
	histogram(b, &s, MH_COMMIT, "lmstream_commit_seconds",
	          "Time a commit held the store's writer lock, its data pages written", 1e6);
	histogram(b, &s, MH_FLUSH, "lmstream_flush_seconds", "Time of one flush to disk (fsync)", 1e6);

	family(b, "lmstream_reads_total", "counter", "GET requests of streams, by mode");
	static const struct { const char *mode; enum metric_counter c; } modes[] = {
		{ "catch-up", MC_READS_CATCHUP }, { "long-poll", MC_READS_LONGPOLL },
		{ "sse", MC_READS_SSE }, { "snapshot", MC_READS_SNAPSHOT },
	};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
		buf_printf(b, "lmstream_reads_total{mode=\"%s\"} %llu\n", modes[i].mode,
		           (unsigned long long)s.c[modes[i].c]);
	family(b, "lmstream_live_connections", "gauge", "Live responses open now, by mode");
	buf_printf(b, "lmstream_live_connections{mode=\"long-poll\"} %lld\n", (long long)s.g[MG_LIVE_LONGPOLL]);
	buf_printf(b, "lmstream_live_connections{mode=\"sse\"} %lld\n", (long long)s.g[MG_LIVE_SSE]);
	one(b, "lmstream_live_waiting", "gauge", "Live reads waiting for a commit now", (uint64_t)s.g[MG_WAITING]);
	one(b, "lmstream_wakeups_total", "counter", "Live reads woken by a commit of their stream",
	    s.c[MC_WAKEUPS]);
	one(b, "lmstream_delivered_messages_total", "counter",
	    "Messages sent on live reads (SSE events and long-poll answers)", s.c[MC_DELIVERED_MESSAGES]);
	one(b, "lmstream_delivered_bytes_total", "counter", "Bytes of those messages",
	    s.c[MC_DELIVERED_BYTES]);
	responses(b, &s);
	store_part(b, ctx->store);
	subs_part(b, ctx);
	one(b, "lmstream_metrics_since_seconds", "gauge",
	    "When the node's counters started (seconds since the epoch): they count from then on", s.created_s);
}
