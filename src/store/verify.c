/* verify.c: the store's consistency, checked from one snapshot
 * (lmstreamctl verify). What must hold (store.h describes the databases):
 *   - each stream's own rows are seqs max(base_seq, purged_seq) .. tail_seq-1,
 *     none missing, none beyond, and their byte counts add up to tail_bytes;
 *   - a fork's inherited ranges are contiguous up to base_seq, their data
 *     is there, its source exists under its name and id, and every stream's
 *     fork_refs is the number of forks naming it (a soft-deleted stream has
 *     some);
 *   - the expiry index has exactly the streams that expire, at their
 *     expiry; the retain index has every stream with bounds or rows left
 *     to trim (entries left behind are allowed: housekeeping drops them);
 *   - data, producers, marks and state rows belong to a stream, a State
 *     stream's state, or an id awaiting reclamation (gc), which no stream
 *     uses; next_id is past every id.
 * The State rows themselves are compared with the log by core/replay.c. */
#include "store/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An id in use: a stream's own (kind 0) or a State stream's state (1). */
struct id_use {
	uint64_t id;
	int kind;
	uint64_t refs;       /* the stream's fork_refs */
	uint64_t forks_seen; /* forks naming it as source_id */
};

struct walk {
	struct store_txn *t;
	store_report_fn report;
	void *ctx;
	long problems;
	struct id_use *ids;
	size_t nids, cap;
	uint64_t *sources;   /* source_id of every fork */
	size_t nsrc, srccap;
	uint64_t *gc;
	size_t ngc;
	uint64_t max_id;
	uint64_t nstreams;   /* streams whose metadata could be read */
	int oom;
};

static void problem(struct walk *w, const char *name, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void problem(struct walk *w, const char *name, size_t len, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	w->problems++;
	w->report(w->ctx, name, len, msg);
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 256;
	void *p = realloc(*v, nc * size);
	if (!p)
		return -1;
	*v = p;
	*cap = nc;
	return 0;
}

static void use_id(struct walk *w, uint64_t id, int kind, uint64_t refs)
{
	if (grow((void **)&w->ids, &w->cap, w->nids, sizeof *w->ids)) {
		w->oom = 1;
		return;
	}
	w->ids[w->nids++] = (struct id_use){ id, kind, refs, 0 };
	if (id > w->max_id)
		w->max_id = id;
}

static int cmp_use(const void *a, const void *b)
{
	uint64_t x = ((const struct id_use *)a)->id, y = ((const struct id_use *)b)->id;
	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static struct id_use *find_use(struct walk *w, uint64_t id)
{
	struct id_use key = { .id = id };
	return w->nids ? bsearch(&key, w->ids, w->nids, sizeof *w->ids, cmp_use) : NULL;
}

static int in_gc(struct walk *w, uint64_t id)
{
	return w->ngc && bsearch(&id, w->gc, w->ngc, sizeof *w->gc, cmp_u64) != NULL;
}

/* The data row (id, seq): 1 with its end byte count and length, 0 when
 * absent, -1 on an error. */
static int data_row(struct walk *w, uint64_t id, uint64_t seq, uint64_t *end, size_t *len)
{
	unsigned char kb[16];
	MDB_val k = { 16, kb }, v;
	be64(kb, id);
	be64(kb + 8, seq);
	int rc = mdb_get(w->t->txn, w->t->st->data, &k, &v);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : -1;
	if (v.mv_size < 8)
		return -1;
	*end = get_be64(v.mv_data);
	*len = v.mv_size - 8;
	return 1;
}

/* A stream's own rows: contiguous from its first kept seq to the tail. */
static void check_rows(struct walk *w, const char *name, size_t len, const struct stream_meta *m)
{
	uint64_t from = m->base_seq > m->purged_seq ? m->base_seq : m->purged_seq;
	unsigned char kb[16];
	MDB_val k = { 16, kb }, v;
	MDB_cursor *c;
	if (mdb_cursor_open(w->t->txn, w->t->st->data, &c)) {
		problem(w, name, len, "cannot read its messages");
		return;
	}
	be64(kb, m->id);
	be64(kb + 8, 0);
	uint64_t expect = from, prev_end = 0;
	int have_prev = 0, reported = 0;
	int rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 16 || get_be64(k.mv_data) != m->id)
			break;
		uint64_t seq = get_be64((unsigned char *)k.mv_data + 8);
		if (v.mv_size < 8) {
			problem(w, name, len, "message %llu: a row of %zu bytes, shorter than its byte count",
			        (unsigned long long)seq, v.mv_size);
			break;
		}
		uint64_t end = get_be64(v.mv_data), mlen = v.mv_size - 8;
		if (seq >= m->tail_seq) {
			problem(w, name, len, "message %llu is stored beyond the tail (%llu messages)",
			        (unsigned long long)seq, (unsigned long long)m->tail_seq);
			break;
		}
		if (seq != expect && !reported) {
			if (seq < from)
				problem(w, name, len, "message %llu is stored before the first kept one (%llu)",
				        (unsigned long long)seq, (unsigned long long)from);
			else
				problem(w, name, len, "messages %llu to %llu are missing",
				        (unsigned long long)expect, (unsigned long long)seq - 1);
			reported = 1;
		}
		if (have_prev && end != prev_end + mlen && !reported) {
			problem(w, name, len, "message %llu: byte count %llu, expected %llu + %llu",
			        (unsigned long long)seq, (unsigned long long)end,
			        (unsigned long long)prev_end, (unsigned long long)mlen);
			reported = 1;
		}
		if (!have_prev && seq == 0 && end != mlen && !reported) {
			problem(w, name, len, "message 0: byte count %llu, but it holds %llu bytes",
			        (unsigned long long)end, (unsigned long long)mlen);
			reported = 1;
		}
		prev_end = end;
		have_prev = 1;
		expect = seq + 1;
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND) {
		problem(w, name, len, "reading its messages failed: %s", mdb_strerror(rc));
		return;
	}
	if (!reported && expect < m->tail_seq && from < m->tail_seq)
		problem(w, name, len, "messages %llu to %llu are missing (the tail is %llu)",
		        (unsigned long long)expect, (unsigned long long)m->tail_seq - 1,
		        (unsigned long long)m->tail_seq);
	else if (!reported && have_prev && prev_end != m->tail_bytes)
		problem(w, name, len, "its last message ends at byte %llu, its metadata says %llu",
		        (unsigned long long)prev_end, (unsigned long long)m->tail_bytes);
}

/* A fork's inherited ranges and its source. */
static void check_fork(struct walk *w, const char *name, size_t len, const struct stream_meta *m)
{
	uint64_t at = m->nseg ? m->seg[0].from : m->base_seq;
	for (int i = 0; i < m->nseg; i++) {
		const struct store_segment *s = &m->seg[i];
		uint64_t end;
		size_t mlen;
		if (s->from != at || s->to <= s->from) {
			problem(w, name, len, "inherited range %d (%llu..%llu) does not follow %llu", i,
			        (unsigned long long)s->from, (unsigned long long)s->to, (unsigned long long)at);
			return;
		}
		at = s->to;
		if (data_row(w, s->id, s->from, &end, &mlen) != 1 || data_row(w, s->id, s->to - 1, &end, &mlen) != 1)
			problem(w, name, len, "inherited range %d: the messages %llu..%llu of data %llu are gone", i,
			        (unsigned long long)s->from, (unsigned long long)s->to - 1, (unsigned long long)s->id);
	}
	if (at != m->base_seq)
		problem(w, name, len, "inherited ranges end at %llu, its own messages start at %llu",
		        (unsigned long long)at, (unsigned long long)m->base_seq);
	struct stream_meta *src = malloc(sizeof *src);
	if (!src) {
		w->oom = 1;
		return;
	}
	int rc = store_meta_get(w->t, m->source, m->source_len, src);
	if (rc == ST_NOTFOUND || (rc == ST_OK && src->id != m->source_id))
		problem(w, name, len, "its source %.*s (id %llu) is gone", (int)m->source_len, m->source,
		        (unsigned long long)m->source_id);
	else if (rc)
		problem(w, name, len, "its source %.*s cannot be read", (int)m->source_len, m->source);
	free(src);
	if (!grow((void **)&w->sources, &w->srccap, w->nsrc, sizeof *w->sources))
		w->sources[w->nsrc++] = m->source_id;
	else
		w->oom = 1;
}

/* The index entries a stream needs. */
static void check_indexes(struct walk *w, const char *name, size_t len, const struct stream_meta *m)
{
	unsigned char kb[16];
	MDB_val k = { 16, kb }, v;
	int64_t e = store_meta_expiry(m);
	if (e) {
		expiry_key(kb, e, m->id);
		if (mdb_get(w->t->txn, w->t->st->expiry, &k, &v) || v.mv_size != len || memcmp(v.mv_data, name, len))
			problem(w, name, len, "it expires but is missing from the expiry index");
	}
	if (needs_retain(m)) {
		k.mv_size = 8;
		be64(kb, m->id);
		if (mdb_get(w->t->txn, w->t->st->retain, &k, &v) || v.mv_size != len || memcmp(v.mv_data, name, len))
			problem(w, name, len, "it has retention bounds or rows to trim but is missing from the retain index");
	}
}

static int check_stream(void *ctx, const char *name, size_t len, const struct stream_meta *m)
{
	struct walk *w = ctx;
	w->nstreams++;
	if (m->first_seq > m->tail_seq || m->base_seq > m->tail_seq)
		problem(w, name, len, "its earliest offset (%llu) or fork point (%llu) is past its tail (%llu)",
		        (unsigned long long)m->first_seq, (unsigned long long)m->base_seq,
		        (unsigned long long)m->tail_seq);
	if (m->soft_deleted && !m->fork_refs)
		problem(w, name, len, "soft-deleted but no fork reads it");
	if (m->state && !m->state_id)
		problem(w, name, len, "a State stream without a state id");
	use_id(w, m->id, 0, m->fork_refs);
	if (m->state && m->state_id)
		use_id(w, m->state_id, 1, 0);
	check_rows(w, name, len, m);
	if (m->is_fork)
		check_fork(w, name, len, m);
	check_indexes(w, name, len, m);
	return w->oom;
}

/* Rows of dbi keyed by a be64 id must belong to an id in use of one of
 * the kinds in kinds (a bit per kind) or to the gc. */
static void check_owners(struct walk *w, MDB_dbi dbi, const char *what, unsigned kinds)
{
	unsigned char kb[8];
	MDB_val k, v;
	MDB_cursor *c;
	if (mdb_cursor_open(w->t->txn, dbi, &c)) {
		problem(w, "", 0, "cannot read the %s database", what);
		return;
	}
	int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		if (k.mv_size < 8) {
			problem(w, "", 0, "%s: a row with a %zu-byte key", what, k.mv_size);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		uint64_t id = get_be64(k.mv_data);
		struct id_use *u = find_use(w, id);
		if (id > w->max_id)
			w->max_id = id;
		if (!(u && (kinds & (1u << u->kind))) && !in_gc(w, id))
			problem(w, "", 0, "%s rows of id %llu belong to no stream and are not awaiting reclamation",
			        what, (unsigned long long)id);
		if (id == UINT64_MAX)
			break;
		be64(kb, id + 1); /* on to the next id */
		k.mv_size = 8;
		k.mv_data = kb;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
}

/* Every expiry entry names a stream that expires then. */
static void check_expiry_rows(struct walk *w)
{
	MDB_val k, v;
	MDB_cursor *c;
	struct stream_meta *m = malloc(sizeof *m);
	if (!m || mdb_cursor_open(w->t->txn, w->t->st->expiry, &c)) {
		free(m);
		problem(w, "", 0, "cannot read the expiry index");
		return;
	}
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		unsigned char kb[16];
		if (k.mv_size != 16) {
			problem(w, "", 0, "expiry index: a row with a %zu-byte key", k.mv_size);
			continue;
		}
		uint64_t id = get_be64((unsigned char *)k.mv_data + 8);
		int g = v.mv_size <= LS_MAX_PATH_HARD ? store_meta_get(w->t, v.mv_data, v.mv_size, m) : ST_NOTFOUND;
		int64_t e = g == ST_OK ? store_meta_expiry(m) : 0;
		if (g == ST_OK && e)
			expiry_key(kb, e, m->id);
		if (g != ST_OK || m->id != id || !e || memcmp(kb, k.mv_data, 16))
			problem(w, v.mv_size <= LS_MAX_PATH_HARD ? v.mv_data : "", v.mv_size <= LS_MAX_PATH_HARD ? v.mv_size : 0,
			        "expiry index entry (id %llu) for a stream that is gone or expires at another time",
			        (unsigned long long)id);
	}
	mdb_cursor_close(c);
	free(m);
}

static void read_gc(struct walk *w)
{
	MDB_val k, v;
	MDB_cursor *c;
	size_t cap = 0;
	if (mdb_cursor_open(w->t->txn, w->t->st->gc, &c)) {
		problem(w, "", 0, "cannot read the gc database");
		return;
	}
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8)
			continue;
		if (grow((void **)&w->gc, &cap, w->ngc, sizeof *w->gc)) {
			w->oom = 1;
			break;
		}
		w->gc[w->ngc++] = get_be64(k.mv_data);
	}
	mdb_cursor_close(c);
}

long store_verify(struct store_txn *t, store_report_fn report, void *ctx)
{
	struct walk w = { .t = t, .report = report, .ctx = ctx };
	struct store *st = t->st;
	MDB_val k = { 6, "format" }, v;

	if (mdb_get(t->txn, st->sys, &k, &v) || v.mv_size != 8 || get_be64(v.mv_data) != STORE_FORMAT)
		problem(&w, "", 0, "the store's format is missing or not %d", STORE_FORMAT);
	read_gc(&w);
	if (w.ngc) /* (qsort and bsearch take no NULL array, even empty) */
		qsort(w.gc, w.ngc, sizeof *w.gc, cmp_u64);
	int rc = store_meta_scan(t, NULL, 0, check_stream, &w);
	MDB_stat ss;
	if (rc == ST_OK && mdb_stat(t->txn, st->streams, &ss) == 0 && ss.ms_entries != w.nstreams)
		problem(&w, "", 0, "%llu stream(s) have metadata that cannot be read",
		        (unsigned long long)(ss.ms_entries - w.nstreams));
	if (rc == ST_OK && !w.oom) {
		if (w.nids)
			qsort(w.ids, w.nids, sizeof *w.ids, cmp_use);
		for (size_t i = 0; i + 1 < w.nids; i++)
			if (w.ids[i].id == w.ids[i + 1].id)
				problem(&w, "", 0, "id %llu is used twice", (unsigned long long)w.ids[i].id);
		for (size_t i = 0; i < w.nsrc; i++) {
			struct id_use *u = find_use(&w, w.sources[i]);
			if (u && u->kind == 0)
				u->forks_seen++;
		}
		for (size_t i = 0; i < w.nids; i++) {
			if (w.ids[i].kind == 0 && w.ids[i].refs != w.ids[i].forks_seen)
				problem(&w, "", 0, "stream id %llu counts %llu forks, %llu name it as their source",
				        (unsigned long long)w.ids[i].id, (unsigned long long)w.ids[i].refs,
				        (unsigned long long)w.ids[i].forks_seen);
			if (in_gc(&w, w.ids[i].id))
				problem(&w, "", 0, "id %llu is in use and awaiting reclamation too",
				        (unsigned long long)w.ids[i].id);
		}
		check_owners(&w, st->data, "data", 1u << 0);
		check_owners(&w, st->producers, "producers", 1u << 0);
		check_owners(&w, st->marks, "marks", 1u << 0);
		check_owners(&w, st->state, "state", 1u << 1);
		check_expiry_rows(&w);
		for (size_t i = 0; i < w.ngc; i++)
			if (w.gc[i] > w.max_id)
				w.max_id = w.gc[i];
		k.mv_size = 7;
		k.mv_data = "next_id";
		uint64_t next = mdb_get(t->txn, st->sys, &k, &v) == 0 && v.mv_size == 8 ? get_be64(v.mv_data) : 1;
		if (w.max_id && next <= w.max_id)
			problem(&w, "", 0, "next_id is %llu, but id %llu is used", (unsigned long long)next,
			        (unsigned long long)w.max_id);
	}
	free(w.ids);
	free(w.sources);
	free(w.gc);
	if (w.oom)
		return ST_ERROR;
	return rc == ST_OK ? w.problems : rc;
}
