/* test_store.c: unit tests of src/store/store.c against a fresh LMDB environment in
 * a temporary directory (removed at the end). */
#include "lib/log.h"
#include "lib/parse.h"
#include "store/store.h"
#include "unit.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];
static char datadir[128];

static struct config test_config(void)
{
	struct config cfg;
	config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", datadir);
	cfg.map_size = 64ULL << 20;
	return cfg;
}

/* --- helpers ------------------------------------------------------------------ */

struct msg { uint64_t seq, end; char *data; size_t len; };
struct scan { struct msg m[256]; size_t n; size_t stop_after; };

static int scan_fn(void *ctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len)
{
	struct scan *s = ctx;
	if (s->n < NELEM(s->m)) {
		s->m[s->n].seq = seq;
		s->m[s->n].end = end_bytes;
		s->m[s->n].data = malloc(len ? len : 1);
		memcpy(s->m[s->n].data, data, len);   /* copy: valid only until txn end */
		s->m[s->n].len = len;
	}
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

static void scan_free(struct scan *s)
{
	for (size_t i = 0; i < s->n && i < NELEM(s->m); i++)
		free(s->m[i].data);
	s->n = 0;
}

/* Messages of stream id from seq on, in a read transaction. */
static size_t count_msgs(struct store *st, uint64_t id, uint64_t from)
{
	struct store_txn r;
	struct scan s = { .n = 0 };
	store_txn_init(&r, st);
	if (store_read_begin(&r) != ST_OK)
		return (size_t)-1;
	int rc = store_msg_scan(&r, id, from, scan_fn, &s);
	store_read_end(&r);
	store_txn_release(&r);
	size_t n = rc == ST_OK ? s.n : (size_t)-1;
	scan_free(&s);
	return n;
}

static int meta_exists(struct store *st, const char *name)
{
	struct store_txn r;
	struct stream_meta m;
	store_txn_init(&r, st);
	store_read_begin(&r);
	int rc = store_meta_get(&r, name, strlen(name), &m);
	store_read_end(&r);
	store_txn_release(&r);
	return rc == ST_OK;
}

static int producer_exists(struct store *st, uint64_t id, const char *pid)
{
	struct store_txn r;
	struct producer_state ps;
	store_txn_init(&r, st);
	store_read_begin(&r);
	int rc = store_producer_get(&r, id, NULL, pid, strlen(pid), &ps);
	store_read_end(&r);
	store_txn_release(&r);
	return rc == ST_OK;
}

/* Creates a stream with n messages "m<seq>" and one producer "p". */
static uint64_t make_stream(struct store *st, const char *name, int n, int has_ttl, uint64_t ttl_s,
                            int64_t access_ms, int64_t expires_ms)
{
	struct store_txn w;
	struct stream_meta m;
	memset(&m, 0, sizeof m);
	if (store_write_begin(&w, st) != ST_OK)
		return 0;
	store_new_id(&w, &m.id);
	for (int i = 0; i < n; i++) {
		char buf[32];
		int l = snprintf(buf, sizeof buf, "m%d", i);
		m.tail_bytes += (uint64_t)l;
		store_msg_put(&w, m.id, m.tail_seq++, m.tail_bytes, buf, (size_t)l);
	}
	m.created_ms = m.access_ms = access_ms;
	m.has_ttl = has_ttl;
	m.ttl_s = ttl_s;
	m.expires_ms = expires_ms;
	snprintf(m.content_type, sizeof m.content_type, "text/plain");
	struct producer_state ps = { 1, 2, access_ms };
	store_producer_put(&w, m.id, NULL, "p", 1, &ps);
	if (store_meta_put(&w, name, strlen(name), &m) != ST_OK || store_commit(&w, 0) != ST_OK)
		return 0;
	return m.id;
}

static int housekeep(struct store *st, int64_t now, int max)
{
	struct store_txn w;
	int rc = store_write_begin(&w, st);
	if (rc)
		return rc;
	rc = store_housekeep(&w, now, max);
	if (rc) {
		store_abort(&w);
		return rc;
	}
	return store_commit(&w, 0);
}

/* --- tests ------------------------------------------------------------------------ */

static void test_open(struct store **out)
{
	struct config cfg = test_config();
	struct store *st = NULL;
	CHECK_INT(store_open(&st, &cfg), ST_OK);
	CHECK(st != NULL);
	struct stat sb;
	CHECK(stat(datadir, &sb) == 0 && S_ISDIR(sb.st_mode));   /* nested dirs created */
	CHECK(store_reader_check(st) >= 0);
	*out = st;

	/* A data directory that is a file cannot be opened. */
	char file[160];
	snprintf(file, sizeof file, "%s/plainfile", tmpdir);
	FILE *f = fopen(file, "w");
	if (f)
		fclose(f);
	struct config bad = test_config();
	snprintf(bad.data_dir, sizeof bad.data_dir, "%s", file);
	struct store *st2 = NULL;
	CHECK(store_open(&st2, &bad) != ST_OK);
	unlink(file);
}

static void test_clock(void)
{
	int64_t now = store_now_ms(), t = (int64_t)time(NULL) * 1000;
	CHECK(now >= t - 2000 && now <= t + 2000);
	int64_t a = store_mono_ms(), b = store_mono_ms();
	CHECK(a > 0 && b >= a);
}

static void test_ids(struct store *st)
{
	uint64_t ids[100], last = 0;
	struct store_txn w;
	int distinct = 1;

	CHECK_INT(store_write_begin(&w, st), ST_OK);
	for (size_t i = 0; i < NELEM(ids); i++) {
		CHECK_INT(store_new_id(&w, &ids[i]), ST_OK);
		if (ids[i] == 0)
			distinct = 0;
		for (size_t j = 0; j < i; j++)
			if (ids[j] == ids[i])
				distinct = 0;
	}
	CHECK(distinct);
	CHECK_INT(store_commit(&w, 0), ST_OK);
	for (size_t i = 0; i < NELEM(ids); i++)
		if (ids[i] > last)
			last = ids[i];
	/* Ids of committed transactions are never handed out again. */
	uint64_t next;
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	CHECK_INT(store_new_id(&w, &next), ST_OK);
	CHECK(next > last);
	store_abort(&w);
}

/* Fills every field of a stream_meta with distinct values; strings at their
 * maximum length. */
static void full_meta(struct stream_meta *m, uint64_t id)
{
	memset(m, 0, sizeof *m);
	m->id = id;
	m->tail_seq = 0x0102030405060708ULL;
	m->tail_bytes = 0x1112131415161718ULL;
	m->created_ms = 1728432000123LL;
	m->access_ms = 1728432999999LL;
	m->expires_ms = 4102444800000LL;
	m->ttl_s = 9999999999ULL;
	m->has_ttl = 1;
	m->closed = 1;
	m->closed_by_producer = 1;
	m->cb_epoch = 9007199254740991ULL;
	m->cb_seq = 9007199254740990ULL;
	m->cb_id_len = LS_MAX_PRODUCER_ID;
	for (size_t i = 0; i < LS_MAX_PRODUCER_ID; i++)
		m->cb_id[i] = (char)('!' + i % 90);
	m->has_last_seq = 1;
	m->last_seq_len = LS_MAX_STREAM_SEQ;
	for (size_t i = 0; i < LS_MAX_STREAM_SEQ; i++)
		m->last_seq[i] = (char)('0' + i % 10);
	for (size_t i = 0; i < LS_MAX_CONTENT_TYPE; i++)
		m->content_type[i] = (char)('a' + i % 26);
	for (size_t i = 0; i < LS_MAX_EXPIRES_AT; i++)
		m->expires_at[i] = (char)('A' + i % 26);
}

static void check_meta_eq(int line, const struct stream_meta *a, const struct stream_meta *b)
{
	CHECK_UINT_AT(line, a->id, b->id);
	CHECK_UINT_AT(line, a->tail_seq, b->tail_seq);
	CHECK_UINT_AT(line, a->tail_bytes, b->tail_bytes);
	CHECK_INT_AT(line, a->created_ms, b->created_ms);
	CHECK_INT_AT(line, a->access_ms, b->access_ms);
	CHECK_INT_AT(line, a->expires_ms, b->expires_ms);
	CHECK_UINT_AT(line, a->ttl_s, b->ttl_s);
	CHECK_INT_AT(line, a->has_ttl, b->has_ttl);
	CHECK_INT_AT(line, a->closed, b->closed);
	CHECK_INT_AT(line, a->closed_by_producer, b->closed_by_producer);
	CHECK_UINT_AT(line, a->cb_epoch, b->cb_epoch);
	CHECK_UINT_AT(line, a->cb_seq, b->cb_seq);
	CHECK_MEM_AT(line, a->cb_id, a->cb_id_len, b->cb_id, b->cb_id_len);
	CHECK_INT_AT(line, a->has_last_seq, b->has_last_seq);
	CHECK_MEM_AT(line, a->last_seq, a->last_seq_len, b->last_seq, b->last_seq_len);
	CHECK_STR_AT(line, a->content_type, b->content_type);
	CHECK_STR_AT(line, a->expires_at, b->expires_at);
}

static void test_meta(struct store *st)
{
	static const struct {
		int line;
		int full;          /* every field at its maximum, else all zero but id */
		size_t name_len;   /* name of this many bytes */
	} rows[] = {
		{ __LINE__, 1, 1 },
		{ __LINE__, 1, 37 },
		{ __LINE__, 0, 2 },
		{ __LINE__, 1, LS_MAX_PATH_HARD },
		{ __LINE__, 0, LS_MAX_PATH_HARD - 1 },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		int line = rows[i].line;
		char name[LS_MAX_PATH_HARD + 1];
		for (size_t k = 0; k < rows[i].name_len; k++)
			name[k] = (char)("abc/xyz\xc3\xa9"[k % 9]);
		name[0] = (char)('0' + i);
		name[rows[i].name_len] = '\0';
		size_t nlen = rows[i].name_len;

		struct store_txn w, r;
		struct stream_meta m, got;
		CHECK_INT_AT(line, store_write_begin(&w, st), ST_OK);
		uint64_t id;
		store_new_id(&w, &id);
		if (rows[i].full) {
			full_meta(&m, id);
		} else {
			memset(&m, 0, sizeof m);
			m.id = id;
		}
		CHECK_INT_AT(line, store_meta_get(&w, name, nlen, &got), ST_NOTFOUND);
		CHECK_INT_AT(line, store_meta_put(&w, name, nlen, &m), ST_OK);
		memset(&got, 0x5a, sizeof got);
		CHECK_INT_AT(line, store_meta_get(&w, name, nlen, &got), ST_OK);   /* same txn */
		check_meta_eq(line, &got, &m);
		CHECK_INT_AT(line, store_commit(&w, 0), ST_OK);

		store_txn_init(&r, st);
		CHECK_INT_AT(line, store_read_begin(&r), ST_OK);
		memset(&got, 0xa5, sizeof got);
		CHECK_INT_AT(line, store_meta_get(&r, name, nlen, &got), ST_OK);
		check_meta_eq(line, &got, &m);
		/* A prefix of the name is another stream. */
		if (nlen > 1)
			CHECK_INT_AT(line, store_meta_get(&r, name, nlen - 1, &got), ST_NOTFOUND);
		store_read_end(&r);
		store_txn_release(&r);

		/* Overwrite: the last put wins. */
		CHECK_INT_AT(line, store_write_begin(&w, st), ST_OK);
		m.tail_seq = 5;
		m.closed = 0;
		CHECK_INT_AT(line, store_meta_put(&w, name, nlen, &m), ST_OK);
		CHECK_INT_AT(line, store_commit(&w, 0), ST_OK);
		store_txn_init(&r, st);
		store_read_begin(&r);
		CHECK_INT_AT(line, store_meta_get(&r, name, nlen, &got), ST_OK);
		CHECK_UINT_AT(line, got.tail_seq, 5);
		CHECK_INT_AT(line, got.closed, 0);
		store_read_end(&r);
		store_txn_release(&r);
	}
}

/* The JSON mode is recorded in the metadata: a +json type is JSON when the
 * stream was made so, and stays text or bytes when it was not (a stream
 * created before +json types were JSON, or a fork of one). Metadata without
 * the record is tested on a store of that release (tests/fixtures/store-format-2). */
static void test_json_mode(struct store *st)
{
	static const struct {
		int line;
		const char *ct;
		int fix;                 /* -1: the type's kind; 0/1: store_meta_set_json */
		int want;                /* enum media_kind after a put and a get */
	} rows[] = {
		{ __LINE__, "application/json", -1, MEDIA_JSON },
		{ __LINE__, "application/vnd.example+json", -1, MEDIA_JSON },
		{ __LINE__, "Application/LD+JSON; charset=utf-8", -1, MEDIA_JSON },
		{ __LINE__, "text/x+json", -1, MEDIA_JSON },
		{ __LINE__, "application/vnd.example+json", 0, MEDIA_BINARY },
		{ __LINE__, "text/x+json", 0, MEDIA_TEXT },
		{ __LINE__, "application/json", 0, MEDIA_BINARY },
		{ __LINE__, "application/octet-stream", 1, MEDIA_JSON },
		{ __LINE__, "text/plain", -1, MEDIA_TEXT },
		{ __LINE__, "application/+json", -1, MEDIA_BINARY },
		{ __LINE__, "application/json+x", -1, MEDIA_BINARY },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		int line = rows[i].line;
		char name[32];
		snprintf(name, sizeof name, "json-mode/%zu", i);
		struct store_txn w, r;
		struct stream_meta m, got;
		memset(&m, 0, sizeof m);
		CHECK_INT_AT(line, store_write_begin(&w, st), ST_OK);
		store_new_id(&w, &m.id);
		store_meta_set_type(&m, rows[i].ct);
		if (rows[i].fix >= 0)
			store_meta_set_json(&m, rows[i].fix);
		CHECK_INT_AT(line, m.media, rows[i].want);
		CHECK_INT_AT(line, store_meta_put(&w, name, strlen(name), &m), ST_OK);
		CHECK_INT_AT(line, store_commit(&w, 0), ST_OK);
		store_txn_init(&r, st);
		CHECK_INT_AT(line, store_read_begin(&r), ST_OK);
		CHECK_INT_AT(line, store_meta_get(&r, name, strlen(name), &got), ST_OK);
		CHECK_INT_AT(line, got.media, rows[i].want);
		CHECK_STR_AT(line, got.content_type, rows[i].ct);
		store_read_end(&r);
		store_txn_release(&r);
	}
}

static void test_expiry_value(void)
{
	static const struct {
		int line;
		int has_ttl;
		uint64_t ttl_s;
		int64_t access_ms, expires_ms, want;
	} rows[] = {
		{ __LINE__, 0, 0, 1000, 0, 0 },
		{ __LINE__, 0, 60, 1000, 0, 0 },            /* ttl_s without has_ttl */
		{ __LINE__, 1, 60, 1000, 0, 61000 },
		{ __LINE__, 1, 0, 1000, 0, 1000 },
		{ __LINE__, 0, 0, 1000, 5000, 5000 },
		{ __LINE__, 1, 60, 1000, 5000, 5000 },       /* the earlier of the two */
		{ __LINE__, 1, 1, 1000, 5000, 2000 },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct stream_meta m;
		memset(&m, 0, sizeof m);
		m.has_ttl = rows[i].has_ttl;
		m.ttl_s = rows[i].ttl_s;
		m.access_ms = rows[i].access_ms;
		m.expires_ms = rows[i].expires_ms;
		CHECK_INT_AT(rows[i].line, store_meta_expiry(&m), rows[i].want);
	}
}

static void test_msgs(struct store *st)
{
	static const struct { const char *data; size_t len; } msgs[] = {
		{ "hello", 5 }, { "", 0 }, { "a\0b", 3 }, { "\xff\xfe", 2 }, { "x", 1 },
		{ "", 0 }, { "0123456789", 10 }, { "last", 4 },
	};
	struct store_txn w, r;
	uint64_t id, other_lo, other_hi, end[NELEM(msgs)], total = 0;

	CHECK_INT(store_write_begin(&w, st), ST_OK);
	store_new_id(&w, &other_lo);
	store_new_id(&w, &id);
	store_new_id(&w, &other_hi);
	CHECK(other_lo < id && id < other_hi);
	for (size_t i = 0; i < NELEM(msgs); i++) {
		total += msgs[i].len;
		end[i] = total;
		CHECK_INT(store_msg_put(&w, id, i, total, msgs[i].data, msgs[i].len), ST_OK);
	}
	/* Neighbouring streams: their messages must never show up in id's scans. */
	for (uint64_t s = 0; s < 3; s++) {
		CHECK_INT(store_msg_put(&w, other_lo, s, s + 1, "L", 1), ST_OK);
		CHECK_INT(store_msg_put(&w, other_hi, s, s + 1, "H", 1), ST_OK);
	}
	CHECK_INT(store_commit(&w, 0), ST_OK);

	static const struct { int line; uint64_t from; size_t stop; size_t want_n; uint64_t first; } scans[] = {
		{ __LINE__, 0, 0, NELEM(msgs), 0 },
		{ __LINE__, 1, 0, NELEM(msgs) - 1, 1 },
		{ __LINE__, 5, 0, NELEM(msgs) - 5, 5 },
		{ __LINE__, NELEM(msgs) - 1, 0, 1, NELEM(msgs) - 1 },
		{ __LINE__, NELEM(msgs), 0, 0, 0 },
		{ __LINE__, 1000, 0, 0, 0 },
		{ __LINE__, UINT64_MAX, 0, 0, 0 },
		{ __LINE__, 0, 3, 3, 0 },       /* fn stops the scan */
		{ __LINE__, 2, 1, 1, 2 },
	};
	store_txn_init(&r, st);
	for (size_t i = 0; i < NELEM(scans); i++) {
		int line = scans[i].line;
		struct scan s = { .stop_after = scans[i].stop };
		CHECK_INT_AT(line, store_read_begin(&r), ST_OK);
		CHECK_INT_AT(line, store_msg_scan(&r, id, scans[i].from, scan_fn, &s), ST_OK);
		store_read_end(&r);
		CHECK_UINT_AT(line, s.n, scans[i].want_n);
		for (size_t k = 0; k < s.n && k < NELEM(s.m); k++) {
			uint64_t seq = scans[i].first + k;
			CHECK_UINT_AT(line, s.m[k].seq, seq);
			if (seq >= NELEM(msgs))
				continue;
			CHECK_UINT_AT(line, s.m[k].end, end[seq]);
			CHECK_MEM_AT(line, s.m[k].data, s.m[k].len, msgs[seq].data, msgs[seq].len);
		}
		scan_free(&s);
	}

	/* Byte counts before each message. */
	CHECK_INT(store_read_begin(&r), ST_OK);
	for (uint64_t seq = 0; seq <= NELEM(msgs); seq++) {
		uint64_t b = 777;
		CHECK_INT(store_msg_end_bytes(&r, id, seq, &b), ST_OK);
		CHECK_UINT(b, seq ? end[seq - 1] : 0);
	}
	uint64_t b;
	CHECK_INT(store_msg_end_bytes(&r, id, NELEM(msgs) + 5, &b), ST_NOTFOUND);
	store_read_end(&r);
	store_txn_release(&r);

	CHECK_UINT(count_msgs(st, other_lo, 0), 3);
	CHECK_UINT(count_msgs(st, other_hi, 0), 3);

	/* A large message comes back byte for byte. */
	size_t big = (1u << 20) + 17;
	char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)(i * 31 + 7);
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	uint64_t bid;
	store_new_id(&w, &bid);
	CHECK_INT(store_msg_put(&w, bid, 0, big, data, big), ST_OK);
	CHECK_INT(store_commit(&w, 0), ST_OK);
	struct scan s = { .n = 0 };
	store_txn_init(&r, st);
	CHECK_INT(store_read_begin(&r), ST_OK);
	CHECK_INT(store_msg_scan(&r, bid, 0, scan_fn, &s), ST_OK);
	store_read_end(&r);
	store_txn_release(&r);
	CHECK_UINT(s.n, 1);
	if (s.n == 1) {
		CHECK_UINT(s.m[0].end, big);
		CHECK(s.m[0].len == big && !memcmp(s.m[0].data, data, big));
	}
	scan_free(&s);
	free(data);
}

static void test_producers(struct store *st)
{
	char longid[LS_MAX_PRODUCER_ID + 1];
	memset(longid, 'q', sizeof longid);
	static const struct {
		int line;
		size_t plen;      /* bytes of longid, or 0 for "w-1" */
		int put_rc, get_rc;
	} rows[] = {
		{ __LINE__, 0, ST_OK, ST_OK },
		{ __LINE__, 1, ST_OK, ST_OK },
		{ __LINE__, LS_MAX_PRODUCER_ID, ST_OK, ST_OK },
		{ __LINE__, LS_MAX_PRODUCER_ID + 1, ST_ERROR, ST_NOTFOUND },
	};
	struct store_txn w, r;
	uint64_t id, id2;

	CHECK_INT(store_write_begin(&w, st), ST_OK);
	store_new_id(&w, &id);
	store_new_id(&w, &id2);
	for (size_t i = 0; i < NELEM(rows); i++) {
		const char *pid = rows[i].plen ? longid : "w-1";
		size_t plen = rows[i].plen ? rows[i].plen : 3;
		struct producer_state ps = { 3 + i, 9007199254740991ULL - i, 1728432000000LL + (int64_t)i }, got;
		CHECK_INT_AT(rows[i].line, store_producer_get(&w, id, NULL, pid, plen, &got), ST_NOTFOUND);
		CHECK_INT_AT(rows[i].line, store_producer_put(&w, id, NULL, pid, plen, &ps), rows[i].put_rc);
		memset(&got, 0, sizeof got);
		CHECK_INT_AT(rows[i].line, store_producer_get(&w, id, NULL, pid, plen, &got), rows[i].get_rc);
		if (rows[i].get_rc == ST_OK) {
			CHECK_UINT_AT(rows[i].line, got.epoch, ps.epoch);
			CHECK_UINT_AT(rows[i].line, got.last_seq, ps.last_seq);
			CHECK_INT_AT(rows[i].line, got.updated_ms, ps.updated_ms);
		}
		/* Scoped to the stream. */
		CHECK_INT_AT(rows[i].line, store_producer_get(&w, id2, NULL, pid, plen, &got), ST_NOTFOUND);
	}
	/* Overwrite. */
	struct producer_state ps = { 10, 0, 5 }, got;
	CHECK_INT(store_producer_put(&w, id, NULL, "w-1", 3, &ps), ST_OK);
	CHECK_INT(store_commit(&w, 0), ST_OK);
	store_txn_init(&r, st);
	CHECK_INT(store_read_begin(&r), ST_OK);
	CHECK_INT(store_producer_get(&r, id, NULL, "w-1", 3, &got), ST_OK);
	CHECK_UINT(got.epoch, 10);
	CHECK_UINT(got.last_seq, 0);
	CHECK_INT(got.updated_ms, 5);
	CHECK_INT(store_producer_get(&r, id, NULL, "w-", 2, &got), ST_NOTFOUND);
	CHECK_INT(store_producer_get(&r, id, NULL, "w-1x", 4, &got), ST_NOTFOUND);
	store_read_end(&r);
	store_txn_release(&r);
}

static void test_delete_and_gc(struct store *st)
{
	int64_t now = store_now_ms();
	uint64_t keep = make_stream(st, "gc/keep", 5, 0, 0, now, 0);
	uint64_t gone = make_stream(st, "gc/gone", 20, 0, 0, now, 0);
	CHECK(keep && gone);
	CHECK_UINT(count_msgs(st, gone, 0), 20);

	struct store_txn w;
	struct stream_meta m;
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	CHECK_INT(store_meta_get(&w, "gc/gone", 7, &m), ST_OK);
	CHECK_INT(store_meta_del(&w, "gc/gone", 7, &m), ST_OK);
	CHECK_INT(store_meta_get(&w, "gc/gone", 7, &m), ST_NOTFOUND);
	CHECK_INT(store_commit(&w, 0), ST_OK);
	CHECK(!meta_exists(st, "gc/gone"));

	/* Reclaimed a few rows at a time. */
	int calls = 0;
	while (count_msgs(st, gone, 0) > 0 && calls < 20) {
		size_t before = count_msgs(st, gone, 0);
		CHECK_INT(housekeep(st, now, 7), ST_OK);
		CHECK(count_msgs(st, gone, 0) < before);
		calls++;
	}
	CHECK_UINT(count_msgs(st, gone, 0), 0);
	CHECK(calls >= 3 && calls <= 4);
	CHECK_INT(housekeep(st, now, 7), ST_OK);   /* producer rows */
	CHECK(!producer_exists(st, gone, "p"));
	CHECK_INT(housekeep(st, now, 1000), ST_OK); /* nothing left: still fine */

	/* The other stream is untouched. */
	CHECK(meta_exists(st, "gc/keep"));
	CHECK_UINT(count_msgs(st, keep, 0), 5);
	CHECK(producer_exists(st, keep, "p"));

	/* A path re-created after a delete is a new stream with a new id and no old data. */
	uint64_t again = make_stream(st, "gc/gone", 2, 0, 0, now, 0);
	CHECK(again != 0 && again != gone);
	CHECK_UINT(count_msgs(st, again, 0), 2);
}

static void test_expiry(struct store *st)
{
	int64_t now = store_now_ms();
	static const struct {
		int line;
		const char *name;
		int has_ttl;
		uint64_t ttl_s;
		int64_t access_ago_ms;    /* access_ms = now - this */
		int64_t expires_in_ms;    /* expires_ms = now + this, 0 = none */
		int deleted;
	} rows[] = {
		{ __LINE__, "exp/ttl-past", 1, 1, 10000, 0, 1 },
		{ __LINE__, "exp/ttl-zero", 1, 0, 1, 0, 1 },
		{ __LINE__, "exp/ttl-future", 1, 3600, 10000, 0, 0 },
		{ __LINE__, "exp/at-past", 0, 0, 0, -5000, 1 },
		{ __LINE__, "exp/at-future", 0, 0, 0, 3600000, 0 },
		{ __LINE__, "exp/both-at-first", 1, 3600, 0, -1, 1 },
		{ __LINE__, "exp/both-ttl-first", 1, 1, 5000, 3600000, 1 },
		{ __LINE__, "exp/none", 0, 0, 999999999, 0, 0 },
	};
	uint64_t ids[NELEM(rows)];
	for (size_t i = 0; i < NELEM(rows); i++) {
		ids[i] = make_stream(st, rows[i].name, 3, rows[i].has_ttl, rows[i].ttl_s,
		                     now - rows[i].access_ago_ms,
		                     rows[i].expires_in_ms ? now + rows[i].expires_in_ms : 0);
		CHECK_AT(rows[i].line, ids[i] != 0);
	}
	CHECK_INT(housekeep(st, now, 1000), ST_OK);
	for (size_t i = 0; i < NELEM(rows); i++) {
		CHECK_INT_AT(rows[i].line, meta_exists(st, rows[i].name), !rows[i].deleted);
		CHECK_UINT_AT(rows[i].line, count_msgs(st, ids[i], 0), rows[i].deleted ? 0 : 3);
		/* make_stream's producer was last seen at access_ms: idle longer
		 * than the producer TTL, it goes while the stream stays. */
		CHECK_INT_AT(rows[i].line, producer_exists(st, ids[i], "p"),
		             !rows[i].deleted && rows[i].access_ago_ms <= LS_PRODUCER_TTL_MS);
	}

	/* Later, the others expire too, except the one without expiry. */
	CHECK_INT(housekeep(st, now + 4000LL * 1000, 1000), ST_OK);
	for (size_t i = 0; i < NELEM(rows); i++)
		CHECK_INT_AT(rows[i].line, meta_exists(st, rows[i].name), !strcmp(rows[i].name, "exp/none"));

	/* A sliding TTL that was refreshed moves its index entry: no early delete. */
	uint64_t id = make_stream(st, "exp/refreshed", 1, 1, 10, now - 60000, 0);
	struct store_txn w;
	struct stream_meta m;
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	CHECK_INT(store_meta_get(&w, "exp/refreshed", 13, &m), ST_OK);
	m.access_ms = now;
	CHECK_INT(store_meta_put(&w, "exp/refreshed", 13, &m), ST_OK);
	CHECK_INT(store_commit(&w, 0), ST_OK);
	CHECK_INT(housekeep(st, now + 5000, 1000), ST_OK);
	CHECK(meta_exists(st, "exp/refreshed"));
	CHECK_INT(housekeep(st, now + 11000, 1000), ST_OK);
	CHECK(!meta_exists(st, "exp/refreshed"));
	CHECK_UINT(count_msgs(st, id, 0), 0);

	/* The expiry entry of a deleted stream never deletes a newer stream on the same path. */
	CHECK(make_stream(st, "exp/reborn", 1, 1, 10, now, 0) != 0);
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	CHECK_INT(store_meta_get(&w, "exp/reborn", 10, &m), ST_OK);
	CHECK_INT(store_meta_del(&w, "exp/reborn", 10, &m), ST_OK);
	CHECK_INT(store_commit(&w, 0), ST_OK);
	uint64_t reborn = make_stream(st, "exp/reborn", 2, 0, 0, now, 0);
	CHECK_INT(housekeep(st, now + 60000, 1000), ST_OK);
	CHECK(meta_exists(st, "exp/reborn"));
	CHECK_UINT(count_msgs(st, reborn, 0), 2);

	/* Many expired streams: bounded work per call, all gone in the end. */
	for (int i = 0; i < 40; i++) {
		char name[32];
		snprintf(name, sizeof name, "exp/many-%02d", i);
		make_stream(st, name, 2, 1, 1, now - 10000, 0);
	}
	int calls = 0;
	while (meta_exists(st, "exp/many-39") || meta_exists(st, "exp/many-00")) {
		if (++calls > 40)
			break;
		CHECK_INT(housekeep(st, now, 8), ST_OK);
	}
	CHECK(calls > 1 && calls <= 40);
	for (int i = 0; i < 40; i++) {
		char name[32];
		snprintf(name, sizeof name, "exp/many-%02d", i);
		CHECK(!meta_exists(st, name));
	}
}

static void test_txnid(struct store *st)
{
	struct store_txn w, r;
	uint64_t t0 = store_last_txnid(st);

	for (int i = 1; i <= 5; i++) {
		uint64_t id;
		CHECK_INT(store_write_begin(&w, st), ST_OK);
		store_new_id(&w, &id);
		CHECK_INT(store_commit(&w, i % 2), ST_OK);     /* with and without sync */
		CHECK_UINT(store_last_txnid(st), t0 + (uint64_t)i);
		CHECK_UINT(w.committed_txnid, t0 + (uint64_t)i);
	}
	/* Aborted writes and reads commit nothing. */
	uint64_t t1 = store_last_txnid(st);
	uint64_t id;
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	store_new_id(&w, &id);
	store_abort(&w);
	store_txn_init(&r, st);
	CHECK_INT(store_read_begin(&r), ST_OK);
	store_read_end(&r);
	store_txn_release(&r);
	CHECK_UINT(store_last_txnid(st), t1);
}

static void test_read_reuse(struct store *st)
{
	struct store_txn r;
	struct stream_meta m;
	int ok = 1;

	store_txn_init(&r, st);
	for (int i = 0; i < 2000; i++) {
		if (store_read_begin(&r) != ST_OK || store_meta_get(&r, "gc/keep", 7, &m) != ST_OK)
			ok = 0;
		store_read_end(&r);
		/* Writes in between: each begin sees the latest commit. */
		if (i % 500 == 0) {
			struct store_txn w;
			store_write_begin(&w, st);
			m.tail_bytes = (uint64_t)i;
			store_meta_put(&w, "gc/keep", 7, &m);
			store_commit(&w, 1);
			store_read_begin(&r);
			store_meta_get(&r, "gc/keep", 7, &m);
			store_read_end(&r);
			if (m.tail_bytes != (uint64_t)i)
				ok = 0;
		}
	}
	CHECK(ok);
	store_read_end(&r);    /* ending twice is harmless */
	store_txn_release(&r);
	store_txn_release(&r); /* so is releasing twice */
}

static void test_reopen(struct store **stp)
{
	struct store *st = *stp;
	struct store_txn w, r;
	struct stream_meta m;
	uint64_t id_before, id_after;

	CHECK_INT(store_write_begin(&w, st), ST_OK);
	store_new_id(&w, &id_before);
	store_abort(&w);
	uint64_t id = make_stream(st, "reopen/s", 4, 0, 0, store_now_ms(), 0);
	store_close(st);

	struct config cfg = test_config();
	st = NULL;
	CHECK_INT(store_open(&st, &cfg), ST_OK);
	*stp = st;
	if (!st)
		return;
	store_txn_init(&r, st);
	CHECK_INT(store_read_begin(&r), ST_OK);
	CHECK_INT(store_meta_get(&r, "reopen/s", 8, &m), ST_OK);
	CHECK_UINT(m.id, id);
	CHECK_UINT(m.tail_seq, 4);
	store_read_end(&r);
	store_txn_release(&r);
	CHECK_UINT(count_msgs(st, id, 0), 4);
	CHECK(producer_exists(st, id, "p"));
	CHECK(meta_exists(st, "gc/keep"));
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	store_new_id(&w, &id_after);
	store_abort(&w);
	CHECK(id_after > id);
	CHECK(id_after > id_before);
}

/* --- forks ------------------------------------------------------------------------ */

static struct stream_meta *get_meta(struct store *st, const char *name, int *rc)
{
	static struct stream_meta m;
	struct store_txn r;
	store_txn_init(&r, st);
	store_read_begin(&r);
	*rc = store_meta_get(&r, name, strlen(name), &m);
	store_read_end(&r);
	store_txn_release(&r);
	return &m;
}

/* Creates name as a fork of src at seq with own messages "<tag><seq>". */
static int make_fork(struct store *st, const char *name, const char *src, uint64_t seq, int own,
                     const char *tag)
{
	struct store_txn w;
	struct stream_meta *f = calloc(1, sizeof *f), *s = calloc(1, sizeof *s);
	int rc = store_write_begin(&w, st);
	if (rc)
		goto out;
	if ((rc = store_meta_get(&w, src, strlen(src), s)))
		goto abort;
	store_new_id(&w, &f->id);
	snprintf(f->content_type, sizeof f->content_type, "text/plain");
	if ((rc = store_fork_link(f, s, src, strlen(src), seq)))
		goto abort;
	f->tail_seq = f->base_seq;
	if ((rc = store_stream_end_bytes(&w, s, f->tail_seq, &f->tail_bytes)))
		goto abort;
	for (int i = 0; i < own; i++) {
		char buf[32];
		int l = snprintf(buf, sizeof buf, "%s%llu", tag, (unsigned long long)f->tail_seq);
		f->tail_bytes += (uint64_t)l;
		store_msg_put(&w, f->id, f->tail_seq++, f->tail_bytes, buf, (size_t)l);
	}
	if ((rc = store_meta_put(&w, src, strlen(src), s)) ||
	    (rc = store_meta_put(&w, name, strlen(name), f)))
		goto abort;
	rc = store_commit(&w, 0);
	goto out;
abort:
	store_abort(&w);
out:
	free(f);
	free(s);
	return rc;
}

/* The stream as a reader sees it, "m0,m1,f4" (data joined by commas), from
 * seq on; checks that seqs are consecutive and byte counts continuous. */
static const char *read_joined(struct store *st, const char *name, uint64_t from, size_t stop_after)
{
	static char out[1024];
	struct scan *s = calloc(1, sizeof *s);
	struct store_txn r;
	struct stream_meta m;
	size_t n = 0;
	uint64_t bytes = 0;
	out[0] = '\0';
	s->stop_after = stop_after;
	store_txn_init(&r, st);
	store_read_begin(&r);
	if (store_meta_get(&r, name, strlen(name), &m) != ST_OK ||
	    store_stream_end_bytes(&r, &m, from, &bytes) != ST_OK ||
	    store_stream_scan(&r, &m, from, scan_fn, s) != ST_OK) {
		snprintf(out, sizeof out, "(error)");
	} else {
		for (size_t i = 0; i < s->n && i < NELEM(s->m); i++) {
			if (s->m[i].seq != from + i || s->m[i].end != bytes + s->m[i].len)
				snprintf(out, sizeof out, "(discontinuous at %zu)", i);
			bytes = s->m[i].end;
			if (out[0] == '(')
				break;
			n += (size_t)snprintf(out + n, sizeof out - n, "%s%.*s", i ? "," : "",
			                      (int)s->m[i].len, s->m[i].data);
		}
	}
	store_read_end(&r);
	store_txn_release(&r);
	scan_free(s);
	free(s);
	return out;
}

/* Deletes name in one transaction (soft or hard, cascading). */
static int delete_stream(struct store *st, const char *name)
{
	struct store_txn w;
	struct stream_meta *m = malloc(sizeof *m);
	int rc = store_write_begin(&w, st);
	if (!rc)
		rc = store_meta_get(&w, name, strlen(name), m);
	if (!rc)
		rc = store_meta_del(&w, name, strlen(name), m);
	if (!rc)
		rc = store_commit(&w, 0);
	else
		store_abort(&w);
	free(m);
	return rc;
}

/* 0 = absent, 1 = live, 2 = soft-deleted. */
static int state_of(struct store *st, const char *name)
{
	int rc;
	struct stream_meta *m = get_meta(st, name, &rc);
	return rc != ST_OK ? 0 : m->soft_deleted ? 2 : 1;
}

static uint64_t refs_of(struct store *st, const char *name)
{
	int rc;
	struct stream_meta *m = get_meta(st, name, &rc);
	return rc == ST_OK ? m->fork_refs : (uint64_t)-1;
}

static void test_fork_reads(struct store *st)
{
	int64_t now = store_now_ms();
	uint64_t sid = make_stream(st, "fk/s", 10, 0, 0, now, 0);
	CHECK(sid != 0);
	CHECK_INT(make_fork(st, "fk/f1", "fk/s", 4, 2, "f"), ST_OK);
	CHECK_STR(read_joined(st, "fk/f1", 0, 0), "m0,m1,m2,m3,f4,f5");
	CHECK_STR(read_joined(st, "fk/f1", 2, 0), "m2,m3,f4,f5");
	CHECK_STR(read_joined(st, "fk/f1", 4, 0), "f4,f5");
	CHECK_STR(read_joined(st, "fk/f1", 5, 0), "f5");
	CHECK_STR(read_joined(st, "fk/f1", 6, 0), "");
	/* A reader that stops stops across the boundary too. */
	CHECK_STR(read_joined(st, "fk/f1", 2, 3), "m2,m3,f4");
	CHECK_STR(read_joined(st, "fk/f1", 0, 4), "m0,m1,m2,m3");
	/* Offsets up to the fork point are the source's. */
	int rc;
	struct stream_meta *f1 = get_meta(st, "fk/f1", &rc);
	CHECK_INT(rc, ST_OK);
	CHECK_UINT(f1->base_seq, 4);
	CHECK_INT(f1->nseg, 1);
	CHECK_UINT(f1->seg[0].id, sid);
	CHECK(f1->is_fork && f1->source_id == sid && !strcmp(f1->source, "fk/s"));
	uint64_t f1id = f1->id; /* get_meta's buffer is reused */
	CHECK_UINT(refs_of(st, "fk/s"), 1);
	/* Forking copies nothing: its own two messages are all it stores. */
	CHECK_UINT(count_msgs(st, f1id, 0), 2);

	/* The source goes on; its fork does not see it. */
	CHECK_STR(read_joined(st, "fk/s", 8, 0), "m8,m9");
	CHECK_STR(read_joined(st, "fk/f1", 3, 0), "m3,f4,f5");

	/* A chain: f2 forks f1 inside f1's own data, f3 forks f2 inside the
	 * range f2 inherits from s, f0 forks s at 0 (inherits nothing). */
	CHECK_INT(make_fork(st, "fk/f2", "fk/f1", 5, 1, "g"), ST_OK);
	CHECK_STR(read_joined(st, "fk/f2", 0, 0), "m0,m1,m2,m3,f4,g5");
	CHECK_INT(make_fork(st, "fk/f3", "fk/f2", 2, 2, "h"), ST_OK);
	CHECK_STR(read_joined(st, "fk/f3", 0, 0), "m0,m1,h2,h3");
	CHECK_STR(read_joined(st, "fk/f3", 1, 0), "m1,h2,h3");
	CHECK_INT(make_fork(st, "fk/f0", "fk/s", 0, 1, "z"), ST_OK);
	CHECK_STR(read_joined(st, "fk/f0", 0, 0), "z0");
	/* A fork at the tail of a fork with no own data. */
	CHECK_INT(make_fork(st, "fk/f4", "fk/f3", 2, 0, "x"), ST_OK);
	CHECK_STR(read_joined(st, "fk/f4", 0, 0), "m0,m1");
	struct stream_meta *f3 = get_meta(st, "fk/f3", &rc);
	CHECK_INT(f3->nseg, 1); /* [s 0..2): the rest of the chain is not read */
	CHECK_UINT(refs_of(st, "fk/s"), 2);
	CHECK_UINT(refs_of(st, "fk/f1"), 1);
	CHECK_UINT(refs_of(st, "fk/f2"), 1);
	CHECK_UINT(refs_of(st, "fk/f3"), 1);
	/* The fork fields survive encoding. */
	struct stream_meta *f2 = get_meta(st, "fk/f2", &rc);
	CHECK_INT(f2->nseg, 2);
	CHECK(f2->seg[0].id == sid && f2->seg[0].from == 0 && f2->seg[0].to == 4);
	CHECK(f2->seg[1].from == 4 && f2->seg[1].to == 5);
	CHECK(f2->base_seq == 5 && f2->tail_seq == 6);

	/* Delete the chain top-down: each goes soft while something reads it. */
	CHECK_INT(delete_stream(st, "fk/s"), ST_OK);
	CHECK_INT(state_of(st, "fk/s"), 2);
	CHECK_INT(delete_stream(st, "fk/f1"), ST_OK);
	CHECK_INT(state_of(st, "fk/f1"), 2);
	CHECK_INT(delete_stream(st, "fk/f2"), ST_OK);
	CHECK_INT(state_of(st, "fk/f2"), 2);
	/* Soft-deleted streams keep their data through housekeeping and never expire. */
	CHECK_INT(housekeep(st, now + 1000000000, 100000), ST_OK);
	CHECK_STR(read_joined(st, "fk/f4", 0, 0), "m0,m1");
	CHECK_STR(read_joined(st, "fk/f0", 0, 0), "z0");
	CHECK(store_meta_expiry(get_meta(st, "fk/s", &rc)) == 0);
	/* f0 goes: s still has f1 (soft) -> f2 (soft) -> f3 -> f4 reading it. */
	CHECK_INT(delete_stream(st, "fk/f0"), ST_OK);
	CHECK_INT(state_of(st, "fk/f0"), 0);
	CHECK_INT(state_of(st, "fk/s"), 2);
	CHECK_UINT(refs_of(st, "fk/s"), 1);
	/* The bottom goes: f4 -> f3 released; f3 is not deleted, so it stays. */
	CHECK_INT(delete_stream(st, "fk/f4"), ST_OK);
	CHECK_INT(state_of(st, "fk/f3"), 1);
	CHECK_UINT(refs_of(st, "fk/f3"), 0);
	/* f3 goes: the cascade takes f2, f1 and s with it, in one transaction. */
	CHECK_INT(delete_stream(st, "fk/f3"), ST_OK);
	CHECK_INT(state_of(st, "fk/f2"), 0);
	CHECK_INT(state_of(st, "fk/f1"), 0);
	CHECK_INT(state_of(st, "fk/s"), 0);
	CHECK_INT(housekeep(st, now, 100000), ST_OK);
	CHECK_UINT(count_msgs(st, sid, 0), 0);
	CHECK_UINT(count_msgs(st, f1id, 0), 0);

	/* Bottom-up: deleting the forks first leaves the source alive. */
	CHECK(make_stream(st, "fk/a", 3, 0, 0, now, 0) != 0);
	CHECK_INT(make_fork(st, "fk/b", "fk/a", 2, 1, "b"), ST_OK);
	CHECK_INT(make_fork(st, "fk/c", "fk/b", 3, 1, "c"), ST_OK);
	CHECK_INT(make_fork(st, "fk/d", "fk/a", 1, 0, "d"), ST_OK);
	CHECK_STR(read_joined(st, "fk/c", 0, 0), "m0,m1,b2,c3");
	CHECK_INT(delete_stream(st, "fk/c"), ST_OK);
	CHECK_INT(state_of(st, "fk/b"), 1);
	CHECK_INT(delete_stream(st, "fk/b"), ST_OK);
	CHECK_INT(state_of(st, "fk/b"), 0);
	CHECK_INT(state_of(st, "fk/a"), 1);
	CHECK_UINT(refs_of(st, "fk/a"), 1);
	/* Source deleted with one fork left: soft, then gone with that fork. */
	CHECK_INT(delete_stream(st, "fk/a"), ST_OK);
	CHECK_INT(state_of(st, "fk/a"), 2);
	CHECK_STR(read_joined(st, "fk/d", 0, 0), "m0");
	CHECK_INT(delete_stream(st, "fk/d"), ST_OK);
	CHECK_INT(state_of(st, "fk/a"), 0);
}

static void test_fork_depth(struct store *st)
{
	int64_t now = store_now_ms();
	char prev[32], name[32];
	CHECK(make_stream(st, "deep/0", 1, 0, 0, now, 0) != 0);
	/* Each level appends one message and forks at its tail: one more range. */
	int level = 1, rc = ST_OK;
	for (; level <= LS_MAX_FORK_DEPTH + 1; level++) {
		snprintf(prev, sizeof prev, "deep/%d", level - 1);
		snprintf(name, sizeof name, "deep/%d", level);
		rc = make_fork(st, name, prev, (uint64_t)level, 1, "d");
		if (rc)
			break;
	}
	CHECK_INT(rc, ST_ERROR);
	CHECK_INT(level, LS_MAX_FORK_DEPTH + 1);
	CHECK_INT(state_of(st, name), 0);
	CHECK_UINT(refs_of(st, prev), 0); /* the failed fork took no reference */
	snprintf(name, sizeof name, "deep/%d", LS_MAX_FORK_DEPTH);
	CHECK_STR(read_joined(st, name, (uint64_t)LS_MAX_FORK_DEPTH - 1, 0), "d31,d32");
	/* Forks with no range of their own do not deepen the chain. */
	for (int i = 0; i < 3 * LS_MAX_FORK_DEPTH; i++) {
		snprintf(prev, sizeof prev, i ? "flat/%d" : "deep/0", i - 1);
		snprintf(name, sizeof name, "flat/%d", i);
		CHECK_INT(make_fork(st, name, prev, 1, 0, "x"), ST_OK);
	}
	CHECK_STR(read_joined(st, name, 0, 0), "m0");
	/* Deleting the root first and the leaf last cascades through 96 levels. */
	CHECK_INT(delete_stream(st, "deep/0"), ST_OK);
	for (int i = 0; i < 3 * LS_MAX_FORK_DEPTH - 1; i++) {
		snprintf(name, sizeof name, "flat/%d", i);
		CHECK_INT(delete_stream(st, name), ST_OK);
	}
	snprintf(name, sizeof name, "flat/%d", 3 * LS_MAX_FORK_DEPTH - 1);
	CHECK_INT(delete_stream(st, name), ST_OK);
	CHECK_INT(state_of(st, "flat/0"), 0);
	CHECK_INT(state_of(st, "deep/0"), 2); /* deep/1 still reads it */
}

/* A crash in the middle of a cascade: a child process runs the cascading
 * delete and dies (SIGKILL) with its write transaction open. The store is
 * as it was before, and the parent can write at once. */
static void test_fork_crash(struct store *st)
{
	int64_t now = store_now_ms();
	CHECK(make_stream(st, "crash/s", 2, 0, 0, now, 0) != 0);
	CHECK_INT(make_fork(st, "crash/f", "crash/s", 2, 1, "f"), ST_OK);
	CHECK_INT(make_fork(st, "crash/g", "crash/f", 3, 1, "g"), ST_OK);
	CHECK_INT(delete_stream(st, "crash/s"), ST_OK);
	CHECK_INT(delete_stream(st, "crash/f"), ST_OK);

	int pipefd[2];
	CHECK(pipe(pipefd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct config cfg = test_config();
		struct store *cst;
		struct store_txn w;
		struct stream_meta *m = malloc(sizeof *m);
		char ok = 'n';
		if (store_open(&cst, &cfg) == ST_OK && store_write_begin(&w, cst) == ST_OK &&
		    store_meta_get(&w, "crash/g", 7, m) == ST_OK && store_meta_del(&w, "crash/g", 7, m) == ST_OK &&
		    store_meta_get(&w, "crash/s", 7, m) == ST_NOTFOUND)
			ok = 'y'; /* the whole cascade is done, not committed */
		if (write(pipefd[1], &ok, 1) != 1)
			_exit(2);
		pause(); /* killed here, writer lock held */
		_exit(0);
	}
	char got = 0;
	close(pipefd[1]);
	CHECK(read(pipefd[0], &got, 1) == 1);
	CHECK(got == 'y');
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pipefd[0]);
	CHECK_INT(state_of(st, "crash/g"), 1);
	CHECK_INT(state_of(st, "crash/f"), 2);
	CHECK_INT(state_of(st, "crash/s"), 2);
	CHECK_UINT(refs_of(st, "crash/s"), 1);
	CHECK_STR(read_joined(st, "crash/g", 0, 0), "m0,m1,f2,g3");
	/* The dead writer's lock is recovered: the same delete now commits. */
	CHECK_INT(delete_stream(st, "crash/g"), ST_OK);
	CHECK_INT(state_of(st, "crash/s"), 0);
	CHECK_INT(state_of(st, "crash/f"), 0);
}

/* --- a map grown by another process, adopted under steady reads ------------- */

struct reader_arg {
	struct store *st;
	atomic_int *stop;
	long reads;
};

static void *reader_loop(void *arg)
{
	struct reader_arg *a = arg;
	struct store_txn r;
	store_txn_init(&r, a->st);
	while (!atomic_load(a->stop)) {
		if (store_read_begin(&r) == ST_OK) {
			usleep(2000); /* a read takes a while: the readers overlap */
			store_read_end(&r);
			a->reads++;
		}
	}
	store_txn_release(&r);
	return NULL;
}

struct writer_arg {
	struct store *st;
	atomic_int done;
	int rc;
};

static void *writer_once(void *arg)
{
	struct writer_arg *a = arg;
	struct store_txn w;
	uint64_t id;
	a->rc = store_write_begin(&w, a->st);
	if (a->rc == ST_OK && (a->rc = store_new_id(&w, &id)) == ST_OK)
		a->rc = store_commit(&w, 1);
	atomic_store(&a->done, 1);
	return NULL;
}

/* Another process grows the map and fills it past this one's size; a
 * writer here must adopt the new size while 8 threads read without pause
 * (glibc's rwlock alone lets the readers starve it). */
static void test_resize_under_reads(void)
{
	char dir[160];
	snprintf(dir, sizeof dir, "%s/resize", tmpdir);
	struct config cfg = test_config();
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
	cfg.map_size = 2ULL << 20;
	struct store *st;
	CHECK_INT(store_open(&st, &cfg), ST_OK);
	if (!st)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		struct config big = cfg;
		big.map_size = 16ULL << 20;
		struct store *cst;
		struct store_txn w;
		static char chunk[64 << 10];
		uint64_t id;
		if (store_open(&cst, &big) != ST_OK || store_write_begin(&w, cst) != ST_OK || store_new_id(&w, &id))
			_exit(2);
		for (uint64_t i = 0; i < 64; i++) /* 4 MiB: past the 2 MiB map */
			if (store_msg_put(&w, id, i, (i + 1) * sizeof chunk, chunk, sizeof chunk) != ST_OK)
				_exit(3);
		_exit(store_commit(&w, 1) == ST_OK ? 0 : 4);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	CHECK_INT(status, 0);

	atomic_int stop = 0;
	pthread_t readers[8], writer;
	struct reader_arg ra[8];
	for (int i = 0; i < 8; i++) {
		ra[i] = (struct reader_arg){ st, &stop, 0 };
		pthread_create(&readers[i], NULL, reader_loop, &ra[i]);
	}
	usleep(100 * 1000);
	struct writer_arg wa = { st, 0, -99 };
	pthread_create(&writer, NULL, writer_once, &wa);
	for (int i = 0; i < 100 && !atomic_load(&wa.done); i++)
		usleep(100 * 1000);
	int adopted = atomic_load(&wa.done);
	atomic_store(&stop, 1);
	for (int i = 0; i < 8; i++)
		pthread_join(readers[i], NULL);
	pthread_join(writer, NULL);
	CHECK(adopted); /* within 10 s, while the readers read */
	CHECK_INT(wa.rc, ST_OK);
	long reads = 0;
	for (int i = 0; i < 8; i++)
		reads += ra[i].reads;
	CHECK(reads > 0);
	store_close(st);
}

/* A stream that expired before 1970 sorts first in the expiry index, like
 * any other time, so housekeeping reaches it (format 1 sorted it last,
 * behind every stream not yet due). */
static void test_expiry_before_1970(struct store *st)
{
	int64_t now = store_now_ms();
	uint64_t soon = make_stream(st, "exp70/soon", 2, 0, 0, now, now + 3600000);
	uint64_t old = make_stream(st, "exp70/1960", 3, 0, 0, now, -315619200000LL);
	CHECK(soon && old);
	CHECK_INT(housekeep(st, now, 1000), ST_OK);
	CHECK(!meta_exists(st, "exp70/1960"));
	CHECK_UINT(count_msgs(st, old, 0), 0);
	CHECK(meta_exists(st, "exp70/soon"));
	CHECK_UINT(count_msgs(st, soon, 0), 2);
}

/* Producer state of one principal is not another's, nor the anonymous one's. */
static void test_producer_principals(struct store *st)
{
	static const unsigned char alice[STORE_PRINCIPAL_LEN] = "alice-principal";
	static const unsigned char mallory[STORE_PRINCIPAL_LEN] = "mallory-princip";
	struct store_txn w;
	struct producer_state ps = { 9007199254740991ULL, 0, store_now_ms() }, got;
	uint64_t id;
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	store_new_id(&w, &id);
	CHECK_INT(store_producer_put(&w, id, mallory, "w-1", 3, &ps), ST_OK);
	CHECK_INT(store_producer_get(&w, id, alice, "w-1", 3, &got), ST_NOTFOUND);
	CHECK_INT(store_producer_get(&w, id, NULL, "w-1", 3, &got), ST_NOTFOUND);
	CHECK_INT(store_producer_get(&w, id, mallory, "w-1", 3, &got), ST_OK);
	CHECK_UINT(got.epoch, 9007199254740991ULL);
	ps.epoch = 0;
	CHECK_INT(store_producer_put(&w, id, alice, "w-1", 3, &ps), ST_OK);
	CHECK_INT(store_producer_get(&w, id, alice, "w-1", 3, &got), ST_OK);
	CHECK_UINT(got.epoch, 0);
	/* The longest producer id fits beside a principal. */
	char longid[LS_MAX_PRODUCER_ID];
	memset(longid, 'x', sizeof longid);
	CHECK_INT(store_producer_put(&w, id, alice, longid, sizeof longid, &ps), ST_OK);
	CHECK_INT(store_producer_get(&w, id, alice, longid, sizeof longid, &got), ST_OK);
	store_abort(&w);
}

/* Producer rows idle for longer than the producer TTL go in housekeeping,
 * a bounded number per call, while the stream stays. */
static void test_producer_sweep(struct store *st)
{
	int64_t now = store_now_ms();
	int64_t idle = now - LS_PRODUCER_TTL_MS - 1000;
	uint64_t id = make_stream(st, "sweep/s", 25, 0, 0, now, 0);
	CHECK(id != 0);
	struct store_txn w;
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	for (int i = 0; i < 300; i++) {
		char pid[16];
		int n = snprintf(pid, sizeof pid, "old-%03d", i);
		struct producer_state ps = { 0, 3, idle };
		CHECK_INT(store_producer_put(&w, id, i % 2 ? (const unsigned char *)"some-principal.." : NULL,
		                             pid, (size_t)n, &ps), ST_OK);
	}
	struct producer_state fresh = { 0, 1, now - 1000 };
	CHECK_INT(store_producer_put(&w, id, NULL, "fresh", 5, &fresh), ST_OK);
	CHECK_INT(store_commit(&w, 0), ST_OK);
	/* 64 rows looked at per call: 302 rows (and the other tests' rows) are
	 * covered within 12 calls. */
	for (int i = 0; i < 12; i++)
		CHECK_INT(housekeep(st, now, 1000), ST_OK);
	CHECK(!producer_exists(st, id, "old-000"));
	CHECK(!producer_exists(st, id, "old-298"));
	struct store_txn r;
	struct producer_state got;
	int left = 0;
	store_txn_init(&r, st);
	CHECK_INT(store_read_begin(&r), ST_OK);
	for (int i = 0; i < 300; i++) {
		char pid[16];
		int n = snprintf(pid, sizeof pid, "old-%03d", i);
		left += store_producer_get(&r, id, i % 2 ? (const unsigned char *)"some-principal.." : NULL,
		                           pid, (size_t)n, &got) == ST_OK;
	}
	store_read_end(&r);
	store_txn_release(&r);
	CHECK_INT(left, 0);
	CHECK(producer_exists(st, id, "fresh"));
	CHECK(producer_exists(st, id, "p")); /* make_stream's, updated now */
	CHECK(meta_exists(st, "sweep/s"));
	CHECK_UINT(count_msgs(st, id, 0), 25);
}

/* Touches noted by reads are written by the next write transaction, or by
 * the flush; they move access_ms forward only, on the same stream only. */
static void test_touches(struct store *st)
{
	int64_t now = store_now_ms();
	uint64_t a = make_stream(st, "touch/a", 1, 1, 60, now - 30000, 0);
	uint64_t b = make_stream(st, "touch/b", 1, 1, 60, now - 30000, 0);
	CHECK(a && b);
	CHECK_INT(store_touch_note(st, "touch/a", 7, a, now), 1);
	CHECK_INT(store_touch_note(st, "touch/b", 7, b + 1000, now), 1); /* another id: not this stream */
	CHECK_INT(housekeep(st, now, 1000), ST_OK);
	struct store_txn r;
	struct stream_meta m;
	store_txn_init(&r, st);
	CHECK_INT(store_read_begin(&r), ST_OK);
	CHECK_INT(store_meta_get(&r, "touch/a", 7, &m), ST_OK);
	CHECK_INT(m.access_ms, now);
	CHECK_INT(store_meta_get(&r, "touch/b", 7, &m), ST_OK);
	CHECK_INT(m.access_ms, now - 30000);
	store_read_end(&r);
	CHECK_INT(store_touch_note(st, "touch/b", 7, b, now + 5), 1);
	CHECK_INT(store_touch_note(st, "touch/a", 7, a, now - 10), 1); /* older: no effect */
	CHECK_INT(store_touch_flush(st, 0), ST_OK);
	CHECK_INT(store_read_begin(&r), ST_OK);
	CHECK_INT(store_meta_get(&r, "touch/a", 7, &m), ST_OK);
	CHECK_INT(m.access_ms, now);
	CHECK_INT(store_meta_get(&r, "touch/b", 7, &m), ST_OK);
	CHECK_INT(m.access_ms, now + 5);
	store_read_end(&r);
	/* The flush does not wait for the meta page to reach the disk. */
	CHECK(store_sync_needed(st, store_last_txnid(st)));
	/* Right after a flush, the next waits LS_TTL_TOUCH_FLUSH_MS (unless
	 * forced, as at exit); the touch waits meanwhile. */
	uint64_t txn = store_last_txnid(st);
	CHECK_INT(store_touch_note(st, "touch/a", 7, a, now + 7), 0);
	CHECK_INT(store_touch_flush(st, 0), ST_OK);
	CHECK_UINT(store_last_txnid(st), txn);
	CHECK_INT(store_touch_flush(st, 1), ST_OK);
	CHECK_UINT(store_last_txnid(st), txn + 1);
	CHECK_INT(store_read_begin(&r), ST_OK);
	CHECK_INT(store_meta_get(&r, "touch/a", 7, &m), ST_OK);
	CHECK_INT(m.access_ms, now + 7);
	store_read_end(&r);
	store_txn_release(&r);
}

/* Writes stop short of the map's end (map_reserve): deleting a stream and
 * reclaiming its rows still works then, and gives room back. */
/* A data directory on a network filesystem is refused by name; local ones
 * (this test's own directory among them) open. */
static void test_network_fs(void)
{
	CHECK_STR(store_network_fs(0x6969), "NFS");
	CHECK_STR(store_network_fs(0xFF534D42L), "CIFS");
	CHECK_STR(store_network_fs(0xFE534D42L), "SMB2");
	CHECK_STR(store_network_fs(0x517B), "SMB");
	CHECK(store_network_fs(0xEF53) == NULL);     /* ext4 */
	CHECK(store_network_fs(0x01021994) == NULL); /* tmpfs */
	CHECK(store_network_fs(0x794c7630) == NULL); /* overlayfs */
	CHECK(store_network_fs(0x58465342) == NULL); /* xfs */
	CHECK(store_network_fs(0x9123683E) == NULL); /* btrfs */
}

static void test_room(void)
{
	char dir[160];
	snprintf(dir, sizeof dir, "%s/room", tmpdir);
	struct config cfg = test_config();
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
	cfg.map_size = 2ULL << 20; /* a reserve of 256 KiB, an eighth */
	struct store *st;
	CHECK_INT(store_open(&st, &cfg), ST_OK);
	if (!st)
		return;
	static char chunk[1000];
	memset(chunk, 'c', sizeof chunk);
	int64_t now = store_now_ms();
	uint64_t ids[8] = { 0 };
	int refused = 0, full = 0;
	for (int s = 0; s < 8 && !refused; s++) {
		struct store_txn w;
		struct stream_meta m;
		char name[16];
		int n = snprintf(name, sizeof name, "room/%d", s);
		CHECK_INT(store_write_begin(&w, st), ST_OK);
		memset(&m, 0, sizeof m);
		store_new_id(&w, &m.id);
		ids[s] = m.id;
		for (int i = 0; i < 400 && !refused; i++) {
			if (store_room(&w, sizeof chunk) != ST_OK) {
				refused = 1;
				break;
			}
			int rc = store_msg_put(&w, m.id, m.tail_seq, m.tail_bytes + sizeof chunk, chunk, sizeof chunk);
			full |= rc == ST_MAPFULL;
			if (rc)
				break;
			m.tail_seq++;
			m.tail_bytes += sizeof chunk;
		}
		CHECK_INT(store_meta_put(&w, name, (size_t)n, &m), ST_OK);
		CHECK_INT(store_commit(&w, 1), ST_OK);
	}
	CHECK(refused);
	CHECK(!full); /* refused before LMDB itself ran out */
	/* Delete the first stream; reclaiming its rows needs pages too. */
	struct store_txn w;
	struct stream_meta m;
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	CHECK_INT(store_meta_get(&w, "room/0", 6, &m), ST_OK);
	CHECK_INT(store_meta_del(&w, "room/0", 6, &m), ST_OK);
	CHECK_INT(store_commit(&w, 1), ST_OK);
	for (int i = 0; i < 4; i++)
		CHECK_INT(housekeep(st, now, 512), ST_OK);
	CHECK_UINT(count_msgs(st, ids[0], 0), 0);
	CHECK_INT(store_write_begin(&w, st), ST_OK);
	CHECK_INT(store_room(&w, 100 << 10), ST_OK);
	store_abort(&w);
	store_close(st);
}

int main(void)
{
	struct store *st = NULL;

	log_init("test_store", LOG_LVL_WARN);
	if (unit_tmpdir(tmpdir, sizeof tmpdir, "store"))
		return 99;
	snprintf(datadir, sizeof datadir, "%s/data/nested", tmpdir);

	test_open(&st);
	if (st) {
		test_clock();
		test_ids(st);
		test_meta(st);
		test_json_mode(st);
		test_expiry_value();
		test_msgs(st);
		test_producers(st);
		test_delete_and_gc(st);
		test_expiry(st);
		test_expiry_before_1970(st);
		test_producer_principals(st);
		test_producer_sweep(st);
		test_touches(st);
		test_txnid(st);
		test_read_reuse(st);
		test_fork_reads(st);
		test_fork_depth(st);
		test_fork_crash(st);
		test_resize_under_reads();
		test_room();
		test_network_fs();
		test_reopen(&st);
		store_close(st);
	}
	unit_rm_rf(tmpdir);
	return unit_done();
}
