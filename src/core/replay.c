/* replay.c: lmstreamctl verify. The store's own checks (store/verify.c),
 * then every State stream's rows compared with its log: replaying the
 * change events it keeps must give exactly the rows stored, with the seq
 * of the message that set each. A stream whose early history was trimmed
 * (compaction, retention) is replayed from its earliest offset: rows the
 * kept log touches must match it, the others must be older than it. */
#include "core/ops.h"
#include "core/state.h"
#include "lib/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The replayed value of one row key: its bytes point into the memory map
 * (valid while the read transaction is open), its key into keys. */
struct slot {
	size_t rk_off;        /* in replay.keys; SIZE_MAX: empty slot */
	uint16_t rk_len;
	uint8_t deleted, seen;
	uint64_t seq;
	const char *value;
	size_t value_len;
};

struct replay {
	struct slot *v;
	size_t cap, n;
	struct buf keys;
	struct buf arena;     /* the row key of the message being replayed */
	int cleared;          /* the replay covers the whole state: a reset or offset 0 */
	int failed;
	const char *why;      /* the first change event that does not parse */
	uint64_t why_seq;
	const char *name;
	size_t nlen;
	store_report_fn report;
	void *ctx;
	long problems;
};

static uint64_t hash_of(const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static void slots_clear(struct replay *r)
{
	for (size_t i = 0; i < r->cap; i++)
		r->v[i].rk_off = SIZE_MAX;
	r->n = 0;
	buf_reset(&r->keys);
}

static struct slot *slot_find(struct replay *r, const unsigned char *rk, size_t len, int add);

static int slots_grow(struct replay *r)
{
	struct slot *old = r->v;
	size_t oldcap = r->cap;
	r->cap = r->cap ? r->cap * 2 : 1024;
	r->v = malloc(r->cap * sizeof *r->v);
	if (!r->v) {
		r->v = old;
		r->cap = oldcap;
		return -1;
	}
	for (size_t i = 0; i < r->cap; i++)
		r->v[i].rk_off = SIZE_MAX;
	r->n = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].rk_off == SIZE_MAX)
			continue;
		struct slot *s = slot_find(r, (const unsigned char *)r->keys.data + old[i].rk_off, old[i].rk_len, 2);
		*s = old[i];
	}
	free(old);
	return 0;
}

/* The slot of rk: found, or (add) a new one, or NULL. add 2: place only
 * (rehashing; the key is in keys already). */
static struct slot *slot_find(struct replay *r, const unsigned char *rk, size_t len, int add)
{
	if (add == 1 && (r->n + 1) * 2 > r->cap && slots_grow(r))
		return NULL;
	if (!r->cap)
		return NULL;
	size_t mask = r->cap - 1, i = (size_t)hash_of(rk, len) & mask;
	for (;; i = (i + 1) & mask) {
		struct slot *s = &r->v[i];
		if (s->rk_off == SIZE_MAX) {
			if (!add)
				return NULL;
			r->n++;
			if (add == 2)
				return s;
			size_t off = r->keys.len;
			if (buf_append(&r->keys, rk, len))
				return NULL;
			*s = (struct slot){ .rk_off = off, .rk_len = (uint16_t)len };
			return s;
		}
		if (s->rk_len == len && !memcmp(r->keys.data + s->rk_off, rk, len))
			return s;
	}
}

/* One message of the log, applied as the append applied it. */
static int replay_msg(void *ctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len)
{
	struct replay *r = ctx;
	struct state_event ev;
	struct buf *arena = &r->arena;
	const char *why = NULL;
	(void)end_bytes;
	buf_reset(arena);
	if (state_parse(data, len, &ev, arena, &why)) {
		if (!r->why) {
			r->why = why ? why : "out of memory";
			r->why_seq = seq;
		}
		return 0;
	}
	switch ((enum state_op)ev.op) {
	case STATE_RESET:
		slots_clear(r);
		r->cleared = 1;
		break;
	case STATE_INSERT:
	case STATE_UPDATE:
	case STATE_UPSERT:
	case STATE_DELETE: {
		struct slot *s = slot_find(r, (const unsigned char *)arena->data + ev.rk_off, ev.rk_len, 1);
		if (!s) {
			r->failed = 1;
			return 1;
		}
		s->deleted = ev.op == STATE_DELETE;
		s->seq = seq;
		s->value = data + ev.value_off;
		s->value_len = ev.value_len;
		break;
	}
	default:
		break;
	}
	return 0;
}

static void problem(struct replay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct replay *r, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->problems++;
	r->report(r->ctx, r->name, r->nlen, msg);
}

/* One stored row against the replay. */
static int compare_row(void *ctx, const unsigned char *rk, size_t rk_len, uint64_t seq, const char *value,
                       size_t value_len)
{
	struct replay *r = ctx;
	struct slot *s = slot_find(r, rk, rk_len, 0);
	if (!s) {
		if (r->cleared)
			problem(r, "a State row set by message %llu is not set by the log", (unsigned long long)seq);
		return 0;
	}
	s->seen = 1;
	if (s->deleted)
		problem(r, "a State row set by message %llu was deleted by message %llu", (unsigned long long)seq,
		        (unsigned long long)s->seq);
	else if (s->seq != seq)
		problem(r, "a State row is marked as set by message %llu; the log last set it with message %llu",
		        (unsigned long long)seq, (unsigned long long)s->seq);
	else if (s->value_len != value_len || memcmp(s->value, value, value_len))
		problem(r, "a State row differs from the value message %llu set", (unsigned long long)seq);
	return 0;
}

static long check_state(struct store_txn *t, const char *name, size_t len, const struct stream_meta *m,
                        store_report_fn report, void *ctx)
{
	struct replay r = { .name = name, .nlen = len, .report = report, .ctx = ctx };
	uint64_t first_bytes, first = store_first_seq(m, store_now_ms(), &first_bytes);
	buf_init(&r.keys);
	buf_init(&r.arena);
	r.cleared = first == 0;
	int rc = store_stream_scan(t, m, first, replay_msg, &r);
	if (rc == ST_OK && !r.failed && r.why)
		problem(&r, "message %llu is not a change event the append would have taken (%s)",
		        (unsigned long long)r.why_seq, r.why);
	if (rc == ST_OK && !r.failed)
		rc = store_state_scan(t, m->state_id, NULL, 0, compare_row, &r);
	for (size_t i = 0; rc == ST_OK && !r.failed && i < r.cap; i++)
		if (r.v[i].rk_off != SIZE_MAX && !r.v[i].deleted && !r.v[i].seen)
			problem(&r, "the State row message %llu set is missing", (unsigned long long)r.v[i].seq);
	free(r.v);
	buf_free(&r.keys);
	buf_free(&r.arena);
	if (r.failed)
		return ST_ERROR;
	return rc == ST_OK ? r.problems : rc;
}

struct walk_states {
	struct store_txn *t;
	store_report_fn report;
	void *ctx;
	long problems;
	int rc;
};

static int each_state(void *ctx, const char *name, size_t len, const struct stream_meta *m)
{
	struct walk_states *w = ctx;
	if (!m->state || !m->state_id)
		return 0;
	long n = check_state(w->t, name, len, m, w->report, w->ctx);
	if (n < 0) {
		w->rc = (int)n;
		return 1;
	}
	w->problems += n;
	return 0;
}

long core_verify(struct store *st, store_report_fn report, void *ctx)
{
	struct store_txn t;
	store_txn_init(&t, st);
	int rc = store_read_begin(&t);
	if (rc)
		return rc;
	long n = store_verify(&t, report, ctx);
	if (n >= 0) {
		struct walk_states w = { .t = &t, .report = report, .ctx = ctx };
		rc = store_meta_scan(&t, NULL, 0, each_state, &w);
		n = rc ? rc : w.rc ? w.rc : n + w.problems;
	}
	store_read_end(&t);
	store_txn_release(&t);
	return n;
}
